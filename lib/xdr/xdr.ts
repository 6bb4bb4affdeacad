/**
 * `db.xdr` (docs/xdr.md): cross-cluster shipping on one node. It owns a Shipper per
 * destination, answers the XDR admin requests of other clusters' shippers (applying what they
 * ship through this cluster, so every owner of a partition gets it) and of its own cluster's
 * peers (their positions, waitForShipped), and keeps the positions saved.
 *
 * Events: 'connected', 'disconnected', 'connect-failed', 'conflict', 'resync', each with
 * `{ destination, ... }`; and 'conflict-received' `{ source, ns, count }` when versions this
 * node applied as a destination were conflicts.
 */
import { EventEmitter } from 'node:events';
import { AdminClient, type AdminRequest } from '../cluster/admin-client';
import type { ClusterNode } from '../cluster/cluster';
import type { LocalResult, RecordVersion } from '../cluster/local-store';
import type { WireMessage } from '../cluster/network';
import { unpackVersions } from '../cluster/batch-wire';
import { parseWireVersions, partitionOf } from '../cluster/peer-checks';
import { ErrorCode, ShoalError, invalidArgument } from '../errors';
import { XDR_BATCH_RECORDS, XDR_DESTINATIONS_MAX, XDR_OWNERSHIP_CHECK_INTERVAL_MS, XDR_PEER_POLL_INTERVAL_MS, XDR_POSITION_SAVE_INTERVAL_MS, XDR_RECEIVE_VERSIONS_MAX } from './constants';
import { XdrDestinationConfig, XdrDestinationOptions, resolveXdrDestination } from './options';
import { onOperatorAdmin } from './admin';
import { LargeTransfers, type ShipCounts } from './large-records';
import { applyShippedTruncate } from './truncates';
import { RemovalJournal } from './removals';
import { Shipper, XdrDestinationState } from './shipper';
import { ApplyOutcome, XdrStore, xdrApplyOperation } from './store';

export interface XdrHost {
  store: XdrStore;
  clusterNode: ClusterNode;
  dataDir: string;
  fileMode: number;
  log: (message: string) => void;
}

export interface XdrState {
  destinations: Record<string, XdrDestinationState>;
  /**
   * Shipped versions this node applied as a destination, and the conflicts among them;
   * `clockLeadExceeded`: received versions stamped more than HYBRID_CLOCK_MAX_LEAD_MS ahead of
   * this node's clock (lib/clock.ts), which advanced the hybrid clock only that far.
   */
  received: { applied: number; stale: number; conflicts: number; clockLeadExceeded: number; removalsReasserted: number };
}

export interface WaitForShippedOptions {
  /** Default 30,000. */
  timeoutMs?: number;
}

type Floors = Record<string, Record<string, number | null>>;

const EVENTS = ['connected', 'disconnected', 'connect-failed', 'conflict', 'resync'] as const;

export class Xdr extends EventEmitter {
  private readonly shippers = new Map<string, Shipper>();
  private readonly peerFloors = new Map<string, Floors>();
  private readonly peerClients = new Map<string, Promise<AdminClient>>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly received = { applied: 0, stale: 0, conflicts: 0 };
  private readonly largeTransfers = new LargeTransfers();
  private readonly onChange = () => this.checkOwnership();
  private readonly onMigrationsComplete = () => void this.reassertRemovals();
  /** Whether a round of reassertRemovals runs, and whether another must follow it. */
  private reasserting = false;
  private reassertAgain = false;
  private closed = false;
  private removals: RemovalJournal | undefined;

  /** Use open() with `xdr` (or with `cluster` alone, for a destination). */
  constructor(readonly host: XdrHost, destinations: XdrDestinationConfig[]) {
    super();
    for (const config of destinations) this.addShipper(config);
    host.store.observer = (writes, shippedFrom) => this.note(writes, shippedFrom);
    host.store.peerVersion = (ns, version) => this.notePeerVersion(ns, version);
    host.store.truncateObserver = (cut) => this.shippers.forEach((shipper) => shipper.noteTruncate(cut));
    host.store.unshipped = (clusterName, ns, digest) => {
      for (const shipper of this.shippers.values()) if (shipper.config.clusterName === clusterName && shipper.holds(ns, digest)) return true;
      return false;
    };
    host.clusterNode.setAdminExtension((message, reply) => this.onAdmin(message, reply));
    host.clusterNode.on('change', this.onChange);
    host.clusterNode.on('migrations-complete', this.onMigrationsComplete);
    this.every(XDR_POSITION_SAVE_INTERVAL_MS, () => this.savePositions());
    this.every(XDR_OWNERSHIP_CHECK_INTERVAL_MS, () => this.checkOwnership());
    this.every(XDR_PEER_POLL_INTERVAL_MS, () => void this.pollPeers());
    this.checkOwnership();
  }

  /**
   * Per destination: `{ connected, lagMs, pendingRecords, shippedRecords, conflicts,
   * rewindProgress }` and further figures (XdrDestinationState); `received` counts what
   * this node applied as a destination.
   */
  state(): XdrState {
    const destinations: Record<string, XdrDestinationState> = {};
    for (const [name, shipper] of this.shippers) destinations[name] = shipper.state();
    return { destinations, received: { ...this.received, clockLeadExceeded: this.host.store.clock.leadExceeded, removalsReasserted: this.host.store.reasserted } };
  }

  /**
   * Resolves once every write acknowledged before the call, on any node of this cluster, has
   * been applied at every destination (this node's queues and every peer's).
   * @throws ShoalError TIMEOUT when that takes longer than timeoutMs; INVALID_ARGUMENT for a bad timeout.
   */
  async waitForShipped(options: WaitForShippedOptions = {}): Promise<void> {
    if (options === null || typeof options !== 'object') throw new TypeError('waitForShipped options must be an object');
    const timeoutMs = options.timeoutMs ?? 30_000;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 3_600_000) throw invalidArgument('timeoutMs must be an integer from 1 to 3,600,000');
    const deadline = Date.now() + timeoutMs;
    await Promise.all([this.waitLocal(timeoutMs), ...this.peerAddresses().map((address) => this.waitPeer(address, deadline))]);
  }

  /**
   * Adds a destination at run time (its rewind, if 'all', starts at once).
   * @throws TypeError or ShoalError INVALID_ARGUMENT as open() does for a destination; INVALID_ARGUMENT for a name already in use.
   */
  addDestination(options: XdrDestinationOptions): void {
    this.checkOpen();
    const config = resolveXdrDestination(options, 'destination', this.host.store.namespaceNames());
    if (this.shippers.has(config.name)) throw invalidArgument(`xdr destination "${config.name}" exists already`);
    if (this.shippers.size >= XDR_DESTINATIONS_MAX) throw invalidArgument(`at most ${XDR_DESTINATIONS_MAX} xdr destinations`);
    checkNotSelf(config, this.host.clusterNode.options.clusterName);
    this.addShipper(config).checkOwnership();
  }

  /**
   * Stops shipping to a destination; its positions stay saved, so adding it again resumes from them.
   * @throws ShoalError INVALID_ARGUMENT for an unknown name.
   */
  removeDestination(name: string): void {
    this.checkOpen();
    const shipper = this.shippers.get(name);
    if (shipper === undefined) throw invalidArgument(`no xdr destination "${String(name)}"`);
    this.shippers.delete(name);
    shipper.close();
  }

  /** Stops every shipper (positions saved) and the timers; the Db calls it before stopping the cluster. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    this.host.clusterNode.off('change', this.onChange);
    this.host.clusterNode.off('migrations-complete', this.onMigrationsComplete);
    this.host.store.observer = undefined;
    for (const shipper of this.shippers.values()) shipper.close();
    this.removals?.close();
    this.host.store.peerVersion = undefined;
    this.host.store.unshipped = undefined;
    this.host.store.truncateObserver = undefined;
    for (const client of this.peerClients.values()) void client.then((c) => c.close(), () => undefined);
    this.peerClients.clear();
  }

  private addShipper(config: XdrDestinationConfig): Shipper {
    const node = this.host.clusterNode;
    this.removals ??= new RemovalJournal(this.host.dataDir, this.host.fileMode, this.host.log);
    const removals = this.removals;
    const shipper = new Shipper(config, {
      store: this.host.store,
      dataDir: this.host.dataDir,
      fileMode: this.host.fileMode,
      clusterName: node.options.clusterName,
      log: this.host.log,
      masters: (partition) => node.masterOf(partition) === node.nodeId,
      peerFloor: (destination, ns) => this.peerFloor(destination, ns),
      removalsSince: (ns, partition, fromMs) => removals.removalsSince(ns, partition, fromMs),
    });
    for (const event of EVENTS) shipper.on(event, (details: object) => this.emit(event, { destination: config.name, ...details }));
    this.shippers.set(config.name, shipper);
    return shipper;
  }

  private note(writes: LocalResult['writes'], shippedFrom: string | undefined): void {
    if (this.shippers.size === 0) return;
    for (const write of writes) if (write.version.tombstone) this.journal(write.ns, write.version);
    for (const shipper of this.shippers.values()) shipper.note(writes, shippedFrom);
  }

  /** A version from a peer: journaled if a removal; shipped if this node masters its partition (a merge, not a replication). */
  private notePeerVersion(ns: string, version: RecordVersion): void {
    if (this.shippers.size === 0) return;
    if (version.tombstone) this.journal(ns, version);
    const node = this.host.clusterNode;
    if (node.masterOf(partitionOf(version.digest)) !== node.nodeId) return;
    for (const shipper of this.shippers.values()) shipper.note([{ ns, version }], undefined);
  }

  /** Keeps a removal in the journal (before the write it belongs to is acknowledged) while anything ships. */
  private journal(ns: string, version: RecordVersion): void {
    if (this.shippers.size === 0 || this.removals === undefined) return;
    try {
      this.removals.append(ns, version);
    } catch (error) {
      // Without the journal entry a crash before shipping could lose the removal: say so loudly.
      this.host.log(`xdr: the removal journal cannot be written (${(error as Error).message}); a crash before this removal ships would lose it at the destinations`);
    }
  }

  /**
   * After migrations: every removal shipped here from another cluster that this node
   * remembers (at most XDR_RECENT_REMOVALS_MAX) is applied again on its record's master, which
   * removes a copy older than it. A namespace keeps no tombstones, so a node that comes back with a removed
   * record on its device merges it back into the cluster; at a destination that turned a
   * shipped removal into a record the source does not have (found by the process tests: a
   * destination restarted, one node took the removal alone, the other came back with the
   * record). In batches of XDR_BATCH_RECORDS, one at a time; a round asked for while one runs
   * follows it.
   */
  private async reassertRemovals(): Promise<void> {
    if (this.reasserting) {
      this.reassertAgain = true;
      return;
    }
    this.reasserting = true;
    try {
      do {
        this.reassertAgain = false;
        const removals = this.host.store.rememberedRemovals().filter((removal) => removal.source !== undefined);
        for (let at = 0; at < removals.length && !this.closed; at += XDR_BATCH_RECORDS) {
          const slice = removals.slice(at, at + XDR_BATCH_RECORDS);
          for (const ns of new Set(slice.map((removal) => removal.ns))) {
            const ofNs = slice.filter((removal) => removal.ns === ns);
            const outcomes = await this.host.clusterNode.executeBatch(ns, ofNs.map((r) => r.version.digest), ofNs.map((r) => xdrApplyOperation(r.source!, r.version, true)), false);
            const failed = outcomes.filter((outcome) => 'error' in outcome).length;
            if (failed > 0) this.host.log(`xdr: ${failed} remembered removals could not be applied again after migrations (the next migrations retry them)`);
          }
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      } while (this.reassertAgain && !this.closed);
    } catch (error) {
      this.host.log(`xdr: applying remembered removals again failed: ${(error as Error).message}`);
    } finally {
      this.reasserting = false;
    }
  }

  private checkOwnership(): void {
    for (const shipper of this.shippers.values()) shipper.checkOwnership();
  }

  private savePositions(): void {
    let lowest = Infinity;
    for (const shipper of this.shippers.values()) {
      shipper.savePositionsInBackground().catch((error: unknown) => this.host.log(`xdr: saving the positions of ${shipper.config.name} failed: ${(error as Error).message}`));
      lowest = Math.min(lowest, shipper.lowestPosition());
    }
    // Removals behind every destination's positions are no longer needed.
    if (lowest !== Infinity) {
      try {
        this.removals?.compact(lowest);
      } catch (error) {
        this.host.log(`xdr: compacting the removal journal failed: ${(error as Error).message}`);
      }
    }
  }

  private every(intervalMs: number, task: () => void): void {
    const timer = setInterval(task, intervalMs);
    timer.unref();
    this.timers.push(timer);
  }

  private checkOpen(): void {
    if (this.closed) throw new ShoalError(ErrorCode.NOT_OPEN, 'this database is closed; open() it again');
  }

  private waitLocal(timeoutMs: number): Promise<void> {
    return withTimeout(Promise.all([...this.shippers.values()].map((shipper) => shipper.waitForShipped())).then(() => undefined), timeoutMs, 'waitForShipped');
  }

  private async waitPeer(address: string, deadline: number): Promise<void> {
    const remainingMs = Math.max(1, deadline - Date.now());
    const node = this.host.clusterNode.options;
    const client = await AdminClient.connect(address, { clusterName: node.clusterName, secrets: node.secrets, tls: node.tls, timeoutMs: remainingMs + 1_000 }).catch((error: unknown) => {
      throw new ShoalError(ErrorCode.TIMEOUT, `waitForShipped: cannot reach peer ${address}: ${(error as Error).message}`);
    });
    try {
      await client.request('admin-xdr-wait', { timeoutMs: remainingMs });
    } catch (error) {
      throw new ShoalError(ErrorCode.TIMEOUT, `waitForShipped: peer ${address}: ${(error as Error).message}`);
    } finally {
      client.close();
    }
  }

  /** Fabric addresses of this view's other members (lib/xdr/admin.ts forwards to them). */
  peerAddresses(): string[] {
    const node = this.host.clusterNode;
    const addresses: string[] = [];
    for (const id of node.view.succession) {
      if (id === node.nodeId) continue;
      const address = node.heartbeat.peer(id)?.address;
      if (address !== undefined) addresses.push(address);
    }
    return addresses;
  }

  /** The lowest position this view's other members report for a destination and namespace. */
  private peerFloor(destination: string, ns: string): number | undefined {
    let floor: number | undefined;
    const members = new Set(this.host.clusterNode.view.succession);
    for (const [id, floors] of this.peerFloors) {
      if (!members.has(id)) continue;
      const value = floors[destination]?.[ns];
      if (typeof value === 'number') floor = Math.min(floor ?? Infinity, value);
    }
    return floor;
  }

  /** Asks each member for its shipping positions (what this node starts from if it takes a member's partitions over). */
  private async pollPeers(): Promise<void> {
    if (this.shippers.size === 0) return;
    const node = this.host.clusterNode;
    for (const id of [...this.peerFloors.keys()]) if (!node.view.succession.includes(id)) this.peerFloors.delete(id);
    await Promise.all(
      node.view.succession.map(async (id) => {
        const address = id === node.nodeId ? undefined : node.heartbeat.peer(id)?.address;
        if (address === undefined) return;
        try {
          const client = await this.peerClient(address);
          const reply = (await client.request('admin-xdr-floor')) as { floors?: Floors };
          if (reply !== null && typeof reply === 'object' && reply.floors !== null && typeof reply.floors === 'object') this.peerFloors.set(id, reply.floors);
        } catch {
          this.peerClients.delete(address);
        }
      }),
    );
  }

  /**
   * Sends an admin request to a member of this cluster (lib/xdr/admin.ts) on the connection kept for it.
   * @throws Error when the member cannot be reached or answers with an error.
   */
  async requestPeer(address: string, type: string, fields: Record<string, unknown>): Promise<unknown> {
    const client = await this.peerClient(address);
    try {
      return await client.request(type as AdminRequest, fields);
    } catch (error) {
      if (client.closed) this.peerClients.delete(address);
      throw error;
    }
  }

  private peerClient(address: string): Promise<AdminClient> {
    let client = this.peerClients.get(address);
    if (client !== undefined) {
      void client.then((c) => c.closed && this.peerClients.get(address) === client && this.peerClients.delete(address), () => this.peerClients.delete(address));
      return client;
    }
    const node = this.host.clusterNode.options;
    client = AdminClient.connect(address, { clusterName: node.clusterName, secrets: node.secrets, tls: node.tls, timeoutMs: XDR_PEER_POLL_INTERVAL_MS * 4 });
    client.catch(() => undefined);
    this.peerClients.set(address, client);
    return client;
  }

  /** The XDR admin requests; returns false for any other message. */
  private onAdmin(message: WireMessage, reply: (message: WireMessage) => void): boolean {
    const answer = (work: Promise<unknown>) =>
      work.then(
        (value) => reply({ type: 'admin-reply', id: message.id, ok: true, value }),
        (error: unknown) => reply({ type: 'admin-reply', id: message.id, ok: false, error: { code: (error as ShoalError).code ?? ErrorCode.INVALID_ARGUMENT, message: (error as Error).message } }),
      );
    switch (message.type) {
      case 'admin-xdr-ship':
        void answer(this.receive(message));
        return true;
      case 'admin-xdr-part': {
        void answer(
          (async () => {
            const version = this.largeTransfers.take(message);
            return version === undefined ? { received: message.part } : this.receiveVersions(message.source, message.ns, [version]);
          })(),
        );
        return true;
      }
      case 'admin-xdr-truncate':
        void answer(applyShippedTruncate(this.host.clusterNode, this.host.store.namespaceNames(), () => this.host.store.truncateCuts?.() ?? [], message));
        return true;
      case 'admin-xdr-floor': {
        const floors: Floors = {};
        for (const [name, shipper] of this.shippers) floors[name] = shipper.floors();
        void answer(Promise.resolve({ floors }));
        return true;
      }
      case 'admin-xdr-wait': {
        const timeoutMs = Number.isInteger(message.timeoutMs) && (message.timeoutMs as number) > 0 ? Math.min(message.timeoutMs as number, 3_600_000) : 30_000;
        // From a peer's waitForShipped: this node's queues; from the operator (cluster: true): every member's.
        void answer((message.cluster === true ? this.waitForShipped({ timeoutMs }) : this.waitLocal(timeoutMs)).then(() => ({ shipped: true })));
        return true;
      }
      default:
        return onOperatorAdmin(this, message, (work) => void answer(work));
    }
  }

  /**
   * Applies a ship message from another cluster: each version goes to its partition's master
   * here (executeBatch), which applies it by the conflict rule and replicates it.
   * @throws ShoalError INVALID_ARGUMENT for a malformed message; the first item's error when any failed (the sender retries the message).
   */
  private receive(message: WireMessage): Promise<ShipCounts> {
    // `packed`: one buffer (lib/cluster/batch-wire.ts, as replication sends), what shippers
    // send; `versions`: the flat msgpack list, still taken. Either is checked field by field.
    const versions = message.packed !== undefined ? unpackVersions(message.packed, XDR_RECEIVE_VERSIONS_MAX) : parseWireVersions(message.versions, XDR_RECEIVE_VERSIONS_MAX);
    if (typeof versions === 'string') return Promise.reject(invalidArgument(`malformed xdr-ship: ${versions}`));
    return this.receiveVersions(message.source, message.ns, versions);
  }

  /** Applies checked versions shipped from `source` (receive, or a large record assembled from its parts). */
  private async receiveVersions(source: unknown, ns: unknown, versions: RecordVersion[]): Promise<ShipCounts> {
    if (typeof source !== 'string' || source.length === 0 || Buffer.byteLength(source) > 64) throw invalidArgument('malformed xdr-ship: no source cluster name');
    if (typeof ns !== 'string' || !this.host.store.namespaceNames().includes(ns)) throw invalidArgument(`xdr-ship for namespace ${JSON.stringify(ns)}, which this cluster does not have`);
    const outcomes = await this.host.clusterNode.executeBatch(ns, versions.map((v) => v.digest), versions.map((v) => xdrApplyOperation(source, v)), false);
    const counts = { applied: 0, stale: 0, conflicts: 0 };
    for (const outcome of outcomes) {
      if ('error' in outcome) throw new ShoalError(ShoalError.isCode(outcome.error.code) ? outcome.error.code : ErrorCode.CLUSTER_ERROR, outcome.error.message);
      const value = outcome.value as ApplyOutcome;
      if (value === 'applied' || value === 'conflict-applied') counts.applied++;
      else counts.stale++;
      if (value === 'conflict-applied' || value === 'conflict-stale') counts.conflicts++;
    }
    this.received.applied += counts.applied;
    this.received.stale += counts.stale;
    this.received.conflicts += counts.conflicts;
    if (counts.conflicts > 0) this.emit('conflict-received', { source, ns, count: counts.conflicts });
    return counts;
  }
}

/**
 * Versions shipped from a cluster are never shipped back to it, by its name: a destination
 * named like this cluster would never receive this cluster's forwarded versions.
 * @throws ShoalError INVALID_ARGUMENT when the destination's clusterName is this cluster's.
 */
export function checkNotSelf(config: XdrDestinationConfig, clusterName: string): void {
  if (config.clusterName === clusterName) {
    throw invalidArgument(`xdr destination "${config.name}" has clusterName "${clusterName}", this cluster's own; give each cluster its own cluster.clusterName`);
  }
}

function withTimeout<T>(work: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new ShoalError(ErrorCode.TIMEOUT, `${what}: not done within ${timeoutMs} ms`)), timeoutMs);
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
