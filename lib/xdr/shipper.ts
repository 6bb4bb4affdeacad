/**
 * Shipping to one destination cluster (docs/xdr.md): a bounded queue of the records this
 * node's writes changed (coalesced per record: the newest version ships), batches on an
 * admin connection to any node of the destination, retries with backoff while it is down,
 * durable per-partition positions, and re-scans of partitions from their positions (at start,
 * when this node takes a partition over, after a queue overflow, for a rewind).
 */
import { EventEmitter } from 'node:events';
import { AdminClient } from '../cluster/admin-client';
import type { ClusterTruncateCut, LocalStore, RecordVersion } from '../cluster/local-store';
import { packVersions } from '../cluster/batch-wire';
import { partitionOf } from '../cluster/peer-checks';
import { PARTITION_COUNT } from '../constants';
import { ErrorCode, ShoalError } from '../errors';
import {
  XDR_BATCHES_IN_FLIGHT,
  XDR_BATCH_MAX_BYTES,
  XDR_BATCH_RECORDS,
  XDR_CLOCK_MARGIN_MS,
  XDR_LAG_SAMPLES,
  XDR_PENDING_RECORDS_MAX,
  XDR_RETRY_MAX_MS,
  XDR_RETRY_MIN_MS,
  XDR_SCAN_SLICE_RECORDS,
  XDR_SCAN_START_PENDING_MAX,
  XDR_SHIP_TIMEOUT_MS,
} from './constants';
import type { XdrDestinationConfig } from './options';
import { shipLargeVersion } from './large-records';
import { Positions, loadPositions, positionsPath, savePositions, savePositionsAsync } from './positions';
import { RecordMap } from './record-map';
import { newerTombstone } from './removals';
import { TruncateQueue } from './truncates';

/** What a shipper needs from the node it runs on. */
export interface ShipperHost {
  store: LocalStore;
  dataDir: string;
  fileMode: number;
  /** This cluster's name (`cluster.clusterName`): shipped versions say where they come from. */
  clusterName: string;
  log: (message: string) => void;
  /** Whether this node masters the partition (always, outside cluster mode). */
  masters(partition: number): boolean;
  /** The removals of a partition at or after a time (lib/xdr/removals.ts). */
  removalsSince(ns: string, partition: number, fromMs: number): RecordVersion[];
  /** The lowest position the cluster's other nodes report for (destination, ns); undefined if none reported. */
  peerFloor(destination: string, ns: string): number | undefined;
}

/** Per destination, what `db.xdr.state()` shows (docs/xdr.md, "State"). */
export interface XdrDestinationState {
  connected: boolean;
  /** Age of the oldest record waiting to ship (0 when nothing waits), ms. */
  lagMs: number;
  pendingRecords: number;
  shippedRecords: number;
  /** Concurrent updates the destination resolved (docs/xdr.md, "Active-active"). */
  conflicts: number;
  /** Share (0..1) of the partition re-scans started so far that are done (1: none running). */
  rewindProgress: number;
  /** Shipped versions the destination already had (duplicates, or older than its copy). */
  staleRecords: number;
  /** Records too large for a ship message (XDR_BATCH_MAX_BYTES): counted, logged, not shipped. */
  tooLarge: number;
  /** Partitions re-scanned after the queue bound was reached. */
  resyncs: number;
  /** Failed connection attempts and failed batches. */
  retries: number;
  /** Lag of recent shipped records, write seen to applied at the destination, ms. */
  lagP50Ms: number;
  lagP99Ms: number;
}

interface Pending {
  ns: string;
  digest: Buffer;
  partition: number;
  /** Lowest last-update time of the writes this entry stands for (positions must not pass it). */
  lastUpdateMs: number;
  /** Queue sequence of the first write it stands for (waitForShipped). */
  seq: number;
  seenMs: number;
  /** The tombstone to ship if the record is gone when its turn comes. */
  tombstone: RecordVersion | undefined;
}

interface Scan {
  ns: string;
  partition: number;
  fromMs: number;
  seq: number;
  /** The queue sequence when the scan was queued: the records it queues count as queued then. */
  entrySeq: number;
}

export class Shipper extends EventEmitter {
  private readonly pending = new RecordMap<Pending>();
  private readonly inFlight = new Set<Pending[]>();
  /** The records in flight, with how many batches hold each. */
  private readonly inFlightKeys = new RecordMap<{ ns: string; digest: Buffer; batches: number }>();
  private readonly scans = new Map<string, Scan>();
  private readonly positions: Positions;
  private readonly file: string;
  /** Whether this node's ownership check has taken the partition on (its re-scan queued). */
  private readonly shipping = new Uint8Array(PARTITION_COUNT);
  private client: AdminClient | undefined;
  private connecting = false;
  private seedIndex = 0;
  private retryDelayMs = XDR_RETRY_MIN_MS;
  private retryTimer: NodeJS.Timeout | undefined;
  private scanning = false;
  private saving = false;
  private firstCheck = true;
  /** Whether the partitions this node masters at start are re-scanned (a positions file, or a rewind). */
  private readonly resumes: boolean;
  private stopped = false;
  private readonly truncates = new TruncateQueue(); // sent before the next batches
  private sendingTruncates = false;
  private seq = 0;
  private scanSeq = 0;
  private scansStarted = 0;
  private scansDone = 0;
  /** The lag of the last XDR_LAG_SAMPLES shipped records, a ring written at lagNext. */
  private readonly lagSamples: number[] = [];
  private lagNext = 0;
  private readonly counters = { shipped: 0, conflicts: 0, stale: 0, tooLarge: 0, resyncs: 0, retries: 0 };
  private readonly waiters = new Set<{ seq: number; scanSeq: number; resolve: () => void; reject: (error: Error) => void }>();

  constructor(readonly config: XdrDestinationConfig, private readonly host: ShipperHost) {
    super();
    this.file = positionsPath(host.dataDir, config.name);
    const saved = loadPositions(this.file, host.log);
    this.resumes = saved !== undefined || config.rewind === 'all';
    // Never shipped there: a rewind starts from the beginning, otherwise from now.
    const startMs = saved !== undefined ? 0 : config.rewind === 'all' ? 0 : Date.now() - XDR_CLOCK_MARGIN_MS;
    this.positions = new Map();
    for (const ns of config.namespaces) this.positions.set(ns, saved?.get(ns) ?? new Float64Array(PARTITION_COUNT).fill(startMs));
  }

  /** Queues a truncate cut of a shipped namespace; it is sent before the records queued after it. */
  noteTruncate(cut: ClusterTruncateCut): void {
    if (this.stopped || !this.positions.has(cut.ns)) return;
    this.truncates.add(cut);
    this.pump();
  }

  /** Queues the versions writes left (ignored for namespaces not shipped, and for versions shipped from this destination); one pump for them all. */
  note(writes: readonly { ns: string; version: RecordVersion }[], shippedFrom: string | undefined): void {
    if (this.stopped || shippedFrom === this.config.clusterName) return;
    const nowMs = Date.now();
    for (const { ns, version } of writes) if (this.positions.has(ns)) this.enqueue(ns, version, version.tombstone ? version : undefined, undefined, nowMs);
    this.pump();
  }

  /** Whether a write of the record is queued or in flight here. */
  holds(ns: string, digest: Buffer): boolean {
    return this.pending.has(ns, digest) || this.inFlightKeys.has(ns, digest);
  }

  /** Queues a record; `seq` (a re-scan's) dates the entry back to when its scan was queued, for waitForShipped. */
  private enqueue(ns: string, version: { digest: Buffer; lastUpdateMs: number }, tombstone: RecordVersion | undefined, seq?: number, nowMs = Date.now()): boolean {
    // A digest that is a view of a received frame (a forwarded version) is copied: an entry must not keep the frame.
    if (tombstone !== undefined && tombstone.digest.buffer.byteLength > Buffer.poolSize) tombstone = { ...tombstone, digest: Buffer.from(tombstone.digest) };
    const existing = this.pending.get(ns, version.digest);
    if (existing !== undefined) {
      existing.lastUpdateMs = Math.min(existing.lastUpdateMs, version.lastUpdateMs);
      if (seq !== undefined) existing.seq = Math.min(existing.seq, seq);
      existing.tombstone = newerTombstone(existing.tombstone, tombstone);
      return true;
    }
    const partition = partitionOf(version.digest);
    if (this.pending.size >= XDR_PENDING_RECORDS_MAX) {
      this.overflow(ns, partition, version.lastUpdateMs);
      return false;
    }
    const digest = tombstone?.digest ?? (version.digest.buffer.byteLength > Buffer.poolSize ? Buffer.from(version.digest) : version.digest);
    this.pending.set({ ns, digest, partition, lastUpdateMs: version.lastUpdateMs, seq: seq ?? ++this.seq, seenMs: nowMs, tombstone });
    return true;
  }

  /** The queue is full: the partition will be re-scanned from its position (which holds until then). */
  private overflow(ns: string, partition: number, lastUpdateMs: number): void {
    const key = `${ns}/${partition}`;
    const scan = this.scans.get(key);
    const fromMs = Math.min(this.positions.get(ns)![partition]!, lastUpdateMs);
    if (scan !== undefined) {
      scan.fromMs = Math.min(scan.fromMs, fromMs);
      return;
    }
    this.counters.resyncs++;
    this.addScan(ns, partition, fromMs);
    this.emit('resync', { ns, partition });
  }

  private addScan(ns: string, partition: number, fromMs: number): void {
    const key = `${ns}/${partition}`;
    const scan = this.scans.get(key);
    if (scan !== undefined) {
      scan.fromMs = Math.min(scan.fromMs, fromMs);
      return;
    }
    this.scansStarted++;
    this.scans.set(key, { ns, partition, fromMs, seq: ++this.scanSeq, entrySeq: this.seq });
  }

  /**
   * Takes on the partitions this node masters now and did not before: each is re-scanned
   * from its position (a restart, a takeover from a node that died, a handoff back).
   */
  checkOwnership(): void {
    // A destination new to this node without a rewind ships the writes from now on: the
    // partitions it masters at once need no re-scan (their hook is on already).
    const scanTakenOn = !this.firstCheck || this.resumes;
    this.firstCheck = false;
    for (let partition = 0; partition < PARTITION_COUNT; partition++) {
      const masters = this.host.masters(partition) ? 1 : 0;
      if (masters === this.shipping[partition]) continue;
      this.shipping[partition] = masters;
      if (masters === 1 && scanTakenOn) for (const [ns, values] of this.positions) this.addScan(ns, partition, values[partition]!);
    }
    this.pump();
  }

  /** The lowest position over every namespace and partition (the removal journal keeps what is after it). */
  lowestPosition(): number {
    let lowest = Infinity;
    for (const values of this.positions.values()) for (let partition = 0; partition < PARTITION_COUNT; partition++) lowest = Math.min(lowest, values[partition]!);
    return lowest;
  }

  /** The lowest position of the partitions this node masters, per namespace (what peers take over from). */
  floors(): Record<string, number | null> {
    const floors: Record<string, number | null> = {};
    for (const [ns, values] of this.positions) {
      let floor = Infinity;
      for (let partition = 0; partition < PARTITION_COUNT; partition++) if (this.shipping[partition] === 1) floor = Math.min(floor, values[partition]!);
      floors[ns] = floor === Infinity ? null : floor;
    }
    return floors;
  }

  /**
   * Moves every position as far as is safe and saves them durably: a partition's position
   * is the lowest last-update time still waiting (queued, in flight, or in a re-scan), else
   * now minus the clock margin where this node ships the partition, else the lowest position
   * the partition's possible shippers report (so a takeover starts low enough).
   */
  savePositions(): void {
    this.advancePositions();
    savePositions(this.file, this.positions, this.host.fileMode);
  }

  /** savePositions off the event loop; a save still running makes this one a no-op. */
  async savePositionsInBackground(): Promise<void> {
    if (this.saving || this.stopped) return;
    this.saving = true;
    try {
      this.advancePositions();
      // The bytes are taken now: positions that move while the file is written are saved next time.
      await savePositionsAsync(this.file, new Map([...this.positions].map(([ns, values]) => [ns, values.slice()])), this.host.fileMode);
    } finally {
      this.saving = false;
    }
  }

  private advancePositions(): void {
    const nowMs = Date.now();
    const waiting = new Map<string, Float64Array>();
    for (const ns of this.positions.keys()) waiting.set(ns, new Float64Array(PARTITION_COUNT).fill(Infinity));
    const hold = (entry: Pending) => {
      const values = waiting.get(entry.ns)!;
      values[entry.partition] = Math.min(values[entry.partition]!, entry.lastUpdateMs);
    };
    for (const entry of this.pending.values()) hold(entry);
    for (const batch of this.inFlight) batch.forEach(hold);
    for (const [ns, values] of this.positions) {
      const floor = this.host.peerFloor(this.config.name, ns);
      const lowest = waiting.get(ns)!;
      for (let partition = 0; partition < PARTITION_COUNT; partition++) {
        const scan = this.scans.get(`${ns}/${partition}`);
        let base: number;
        if (scan !== undefined) base = scan.fromMs;
        else if (this.shipping[partition] === 1) base = nowMs - XDR_CLOCK_MARGIN_MS;
        else base = floor ?? values[partition]!;
        values[partition] = Math.min(base, lowest[partition]!);
      }
    }
  }

  /** Resolves once everything queued (or to be re-scanned) before the call has been applied at the destination. */
  waitForShipped(): Promise<void> {
    // Partitions this node masters and has not taken on yet (just after a start) are re-scanned
    // from their positions first: their backlog was acknowledged before this call.
    this.checkOwnership();
    const seq = this.seq;
    const scanSeq = this.scanSeq;
    if (this.doneUpTo(seq, scanSeq)) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.add({ seq, scanSeq, resolve, reject }));
  }

  private doneUpTo(seq: number, scanSeq: number): boolean {
    for (const scan of this.scans.values()) if (scan.seq <= scanSeq) return false;
    for (const entry of this.pending.values()) if (entry.seq <= seq) return false;
    for (const batch of this.inFlight) for (const entry of batch) if (entry.seq <= seq) return false;
    return true;
  }

  private settleWaiters(): void {
    for (const waiter of this.waiters) {
      if (!this.doneUpTo(waiter.seq, waiter.scanSeq)) continue;
      this.waiters.delete(waiter);
      waiter.resolve();
    }
  }

  state(): XdrDestinationState {
    let oldest = this.pending.first()?.seenMs ?? Infinity;
    for (const batch of this.inFlight) oldest = Math.min(oldest, batch[0]?.seenMs ?? Infinity);
    const sorted = [...this.lagSamples].sort((a, b) => a - b);
    const quantile = (q: number) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
    let inFlightRecords = 0;
    for (const batch of this.inFlight) inFlightRecords += batch.length;
    return {
      connected: this.client !== undefined && !this.client.closed,
      lagMs: oldest === Infinity ? 0 : Math.max(0, Date.now() - oldest),
      pendingRecords: this.pending.size + inFlightRecords,
      shippedRecords: this.counters.shipped,
      conflicts: this.counters.conflicts,
      rewindProgress: this.scansStarted === 0 ? 1 : this.scansDone / this.scansStarted,
      staleRecords: this.counters.stale,
      tooLarge: this.counters.tooLarge,
      resyncs: this.counters.resyncs,
      retries: this.counters.retries,
      lagP50Ms: quantile(0.5),
      lagP99Ms: quantile(0.99),
    };
  }

  /** Sends what it can: batches while the destination is connected and fewer than XDR_BATCHES_IN_FLIGHT are out; starts a re-scan when the queue has room. */
  private pump(): void {
    if (this.stopped) return;
    if (!this.scanning && this.scans.size > 0 && this.pending.size < XDR_SCAN_START_PENDING_MAX) void this.runScans();
    if (this.client === undefined || this.client.closed) {
      this.connect();
      return;
    }
    if (this.truncates.size > 0 || this.sendingTruncates) return this.sendTruncates(this.client);
    while (this.inFlight.size < XDR_BATCHES_IN_FLIGHT && this.pending.size > 0) {
      const batch = this.takeBatch();
      if (batch.length === 0) {
        this.inFlight.delete(batch);
        break;
      }
      this.sendBatch(this.client, batch);
    }
  }

  /** Sends the queued truncates one at a time, then goes on with the batches; a failure drops the connection. */
  private sendTruncates(client: AdminClient): void {
    if (this.sendingTruncates) return;
    this.sendingTruncates = true;
    const send = (cut: ClusterTruncateCut) => client.request('admin-xdr-truncate', { source: this.host.clusterName, ...cut }).then(() => undefined);
    const done = (error: Error | undefined) => {
      this.sendingTruncates = false;
      if (error === undefined) return this.pump();
      this.counters.retries++;
      if (this.client === client) this.disconnect(`a truncate failed: ${error.message}`);
      this.scheduleConnect();
    };
    void this.truncates.flush(send).then(() => done(undefined), (error: unknown) => done(error as Error));
  }

  /** Entries of one namespace, the oldest first, at most XDR_BATCH_RECORDS. */
  private takeBatch(): Pending[] {
    const batch: Pending[] = [];
    let ns: string | undefined;
    for (const entry of this.pending.values()) {
      ns ??= entry.ns;
      // One batch per record at a time: two could reach the destination in either order.
      if (entry.ns !== ns) continue;
      const held = this.inFlightKeys.get(entry.ns, entry.digest);
      if (held !== undefined) continue;
      this.pending.delete(entry.ns, entry.digest);
      this.inFlightKeys.set({ ns: entry.ns, digest: entry.digest, batches: 1 });
      batch.push(entry);
      if (batch.length === XDR_BATCH_RECORDS) break;
    }
    this.inFlight.add(batch);
    return batch;
  }

  private sendBatch(client: AdminClient, batch: Pending[]): void {
    const landed = () => {
      this.inFlight.delete(batch);
      for (const entry of batch) {
        const held = this.inFlightKeys.get(entry.ns, entry.digest);
        if (held !== undefined && --held.batches === 0) this.inFlightKeys.delete(entry.ns, entry.digest);
      }
    };
    void this.shipBatch(client, batch).then(
      () => {
        landed();
        this.settleWaiters();
        this.pump();
      },
      (error: unknown) => {
        landed();
        for (const entry of batch) this.requeue(entry);
        this.counters.retries++;
        if (this.client === client) this.disconnect(`a batch failed: ${(error as Error).message}`);
        this.scheduleConnect();
      },
    );
  }

  /** Reads the current versions of a batch's records and ships them (in messages of at most XDR_BATCH_MAX_BYTES). */
  private async shipBatch(client: AdminClient, batch: Pending[]): Promise<void> {
    const ns = batch[0]!.ns;
    let versions: RecordVersion[] = [];
    let bytes = 0;
    const messages: Promise<void>[] = [];
    // Read together: a device namespace's reads overlap instead of one after another.
    const current = await Promise.all(batch.map((entry) => this.host.store.readRecordVersion(ns, entry.digest)));
    for (let i = 0; i < batch.length; i++) {
      const version = current[i] ?? batch[i]!.tombstone;
      // Gone without a removal here (expired or evicted): the destination expires or keeps its own copy.
      if (version === undefined) continue;
      const size = 64 + (version.payload?.length ?? 0) + version.setName.length;
      if (size > XDR_BATCH_MAX_BYTES) {
        // In parts (lib/xdr/large-records.ts); counted in tooLarge too.
        this.counted(ns, 1, await shipLargeVersion(client, this.host.clusterName, ns, version));
        this.counters.tooLarge++;
        continue;
      }
      if (bytes + size > XDR_BATCH_MAX_BYTES) {
        messages.push(this.shipNow(client, ns, versions));
        versions = [];
        bytes = 0;
      }
      versions.push(version);
      bytes += size;
    }
    if (versions.length > 0) messages.push(this.shipNow(client, ns, versions));
    // A batch's messages are out together (each record is in one of them: no order between
    // them to keep); the batch has landed when every one is answered.
    await Promise.all(messages);
    const nowMs = Date.now();
    for (const entry of batch) {
      this.lagSamples[this.lagNext] = nowMs - entry.seenMs;
      this.lagNext = (this.lagNext + 1) % XDR_LAG_SAMPLES;
    }
  }

  /** ship, its failure handled by whoever awaits it later (not an unhandled rejection meanwhile). */
  private shipNow(client: AdminClient, ns: string, versions: RecordVersion[]): Promise<void> {
    const sent = this.ship(client, ns, versions);
    sent.catch(() => undefined);
    return sent;
  }

  private async ship(client: AdminClient, ns: string, versions: RecordVersion[]): Promise<void> {
    const reply = (await client.request('admin-xdr-ship', { source: this.host.clusterName, ns, packed: packVersions(versions) })) as {
      applied?: number;
      stale?: number;
      conflicts?: number;
    };
    this.counted(ns, versions.length, reply);
  }

  private counted(ns: string, shipped: number, reply: { stale?: number; conflicts?: number } | undefined): void {
    this.counters.shipped += shipped;
    this.counters.stale += Number(reply?.stale ?? 0);
    const conflicts = Number(reply?.conflicts ?? 0);
    if (conflicts > 0) {
      this.counters.conflicts += conflicts;
      this.emit('conflict', { ns, count: conflicts });
    }
  }

  /** A batch entry that did not ship goes back to the queue (merged with a newer write of the same record). */
  private requeue(entry: Pending): void {
    const newer = this.pending.get(entry.ns, entry.digest);
    if (newer !== undefined) {
      newer.lastUpdateMs = Math.min(newer.lastUpdateMs, entry.lastUpdateMs);
      newer.seq = Math.min(newer.seq, entry.seq);
      newer.seenMs = Math.min(newer.seenMs, entry.seenMs);
      newer.tombstone = newerTombstone(newer.tombstone, entry.tombstone);
      return;
    }
    // Past the bound, the record's partition is re-scanned instead (its position holds until then).
    if (this.pending.size >= XDR_PENDING_RECORDS_MAX) this.overflow(entry.ns, entry.partition, entry.lastUpdateMs);
    else this.pending.set(entry);
  }

  private connect(): void {
    if (this.connecting || this.retryTimer !== undefined || this.stopped) return;
    this.connecting = true;
    const seed = this.config.seeds[this.seedIndex++ % this.config.seeds.length]!;
    AdminClient.connect(seed, { clusterName: this.config.clusterName, secret: this.config.secret, tls: this.config.tls, timeoutMs: XDR_SHIP_TIMEOUT_MS }).then(
      (client) => {
        this.connecting = false;
        if (this.stopped) {
          client.close();
          return;
        }
        this.client = client;
        this.retryDelayMs = XDR_RETRY_MIN_MS;
        // Every cut this node holds, again: one queued before a crash is not lost (a held cut is a no-op there).
        for (const cut of this.host.store.truncateCuts?.() ?? []) this.noteTruncate(cut);
        this.emit('connected', { address: seed });
        this.pump();
      },
      (error: unknown) => {
        this.connecting = false;
        this.counters.retries++;
        this.emit('connect-failed', { address: seed, reason: (error as Error).message });
        this.scheduleConnect();
      },
    );
  }

  /** Reconnects after the current backoff delay, which doubles up to XDR_RETRY_MAX_MS. */
  private scheduleConnect(): void {
    if (this.stopped || this.retryTimer !== undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.pump();
    }, this.retryDelayMs);
    this.retryTimer.unref();
    this.retryDelayMs = Math.min(XDR_RETRY_MAX_MS, this.retryDelayMs * 2);
  }

  private disconnect(reason: string): void {
    const client = this.client;
    this.client = undefined;
    if (client === undefined) return;
    client.close();
    this.emit('disconnected', { reason });
  }

  /** Re-scans queued partitions one at a time, queueing their records at or after the scan's position. */
  private async runScans(): Promise<void> {
    this.scanning = true;
    try {
      while (!this.stopped && this.scans.size > 0 && this.pending.size < XDR_SCAN_START_PENDING_MAX) {
        const [key, scan] = this.scans.entries().next().value as [string, Scan];
        const fromMs = scan.fromMs;
        const complete = await this.scanPartition(scan, fromMs);
        if (!complete) break;
        // A scan whose position was lowered meanwhile (an overflow) runs again from there.
        if (this.scans.get(key) === scan && scan.fromMs === fromMs) {
          this.scans.delete(key);
          this.scansDone++;
        }
        this.pump();
        // One partition at a time: a walk of a partition with few records must not chain into the next.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      this.host.log(`xdr: re-scan for ${this.config.name} failed: ${(error as Error).message}; retried`);
    } finally {
      this.scanning = false;
    }
    this.settleWaiters();
    if (this.scans.size > 0 && !this.stopped) setTimeout(() => this.pump(), XDR_RETRY_MIN_MS).unref();
  }

  /** Queues a partition's records at or after the scan's position; false when the queue filled up first. */
  private async scanPartition(scan: Scan, fromMs: number): Promise<boolean> {
    const removals = this.host.removalsSince(scan.ns, scan.partition, fromMs);
    if (this.pending.size + removals.length >= XDR_PENDING_RECORDS_MAX) return false;
    for (const removal of removals) this.enqueue(scan.ns, removal, removal, scan.entrySeq);
    let sliced = 0;
    for await (const version of this.host.store.iteratePartition(scan.ns, scan.partition)) {
      if (this.stopped) return false;
      if (version.lastUpdateMs < fromMs) continue;
      if (this.pending.size >= XDR_PENDING_RECORDS_MAX - 1) return false;
      this.enqueue(scan.ns, version, version.tombstone ? version : undefined, scan.entrySeq);
      if (++sliced === XDR_SCAN_SLICE_RECORDS) {
        sliced = 0;
        this.pump();
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    return true;
  }

  /** Stops shipping and saves the positions (what is still queued ships at the next start, from them). */
  close(): void {
    if (this.stopped) return;
    this.savePositions();
    this.stopped = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.disconnect('closing');
    for (const waiter of this.waiters) waiter.reject(new ShoalError(ErrorCode.NOT_OPEN, `shipping to ${this.config.name} stopped before everything had shipped`));
    this.waiters.clear();
  }
}
