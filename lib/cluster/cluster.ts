/**
 * The cluster node: wires fabric, heartbeat, membership and the partition map, and exposes
 * the public `db.cluster` object of docs/cluster.md (state, quiesce, recluster, quiesceUndo,
 * waitForMigrations, events). Time, timers, randomness and the network come from the injected
 * Runtime and Network, so the same class runs on TCP in production and in the simulator.
 */
import { EventEmitter } from 'node:events';
import * as tls from 'node:tls';
import { ClusterSecrets } from './auth';
import {
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_HEARTBEAT_TIMEOUT,
  DEFAULT_REPLICATION_FACTOR,
  DEFAULT_REQUEST_TIMEOUT_MS,
  MAX_REPLICATION_FACTOR,
  MIN_HEARTBEAT_INTERVAL_MS,
  MIN_HEARTBEAT_TIMEOUT,
  PARTITION_COUNT,
} from './constants';
import { Fabric } from './fabric';
import { Heartbeat, type LagStats } from './heartbeat';
import type { ClusterView } from './membership';
import { Membership } from './membership';
import { DATA_MESSAGE_TYPES, DataPlane } from './data-plane';
import { ErrorCode, ShoalError } from '../errors';
import type { BatchItemOutcome, ClusterRequest, ClusterTruncateCut, LocalStore } from './local-store';
import { ClusterTruncation, TRUNCATE_MESSAGE_TYPES } from './truncation';
import type { Network, TlsSettings, WireMessage } from './network';
import { isNodeId, parseAddress } from './network';
import type { PartitionMap } from './partition-map';
import { computePartitionMap } from './partition-map';
import type { Runtime } from './seams';

/** Cluster options as given to `open({ cluster })` (docs/cluster.md). */
export interface ClusterOptions {
  nodeId: string;
  listen: { host: string; port: number };
  /** Address peers should use, if not the listen address ("host:port"). */
  advertise?: string;
  seeds?: string[];
  clusterName?: string;
  heartbeatIntervalMs?: number;
  heartbeatTimeout?: number;
  replicationFactor?: number;
  /** Rolling-upgrade tests only: the protocol versions this node claims. */
  protocolVersion?: number;
  minProtocolVersion?: number;
  /**
   * The cluster secret, the same on every node: a string of at least 16 characters or a Buffer
   * of at least 16 bytes. Every connection proves it both ways (docs/cluster.md, "Security").
   */
  secret?: string | Buffer;
  /** Further secrets accepted from peers while the secret is rolled (docs/cluster.md, "Rotating the secret"). */
  acceptSecrets?: (string | Buffer)[];
  /** TLS for every fabric, heartbeat and admin connection (PEM), certificates verified both ways. */
  tls?: TlsSettings;
  /** Allow listening beyond loopback without a secret (logs a warning at every start). */
  insecure?: boolean;
}

/** Validated options with defaults applied. */
export interface ResolvedClusterOptions {
  nodeId: string;
  listenAddress: string;
  advertise: string | undefined;
  seeds: string[];
  clusterName: string;
  heartbeatIntervalMs: number;
  heartbeatTimeout: number;
  replicationFactor: number;
  protocolVersion: number | undefined;
  minProtocolVersion: number | undefined;
  /** The secrets (hidden from logs and JSON); undefined without `secret`. */
  secrets: ClusterSecrets | undefined;
  tls: TlsSettings | undefined;
  insecure: boolean;
}

/** What `db.cluster.state()` returns (docs/cluster.md). */
export interface ClusterState {
  nodeId: string;
  clusterKey: string;
  principal: string;
  /** Nodes this node currently hears from, itself included. */
  nodes: string[];
  succession: string[];
  quiesced: string[];
  /** This node's partition counts. */
  partitions: { master: number; replica: number };
  migrationsRemaining: number;
}

/**
 * What the admin protocol's admin-state request answers (docs/cluster.md, "Admin
 * connections"): the state, plus what the operator CLI shows besides it. `stats` is what the
 * node's `describe` gives (the Db's `db.stats()`).
 */
export interface AdminState extends ClusterState {
  address: string;
  migrationsSettledClusterWide: boolean;
  /** Partitions left on all members (this node's, each peer's from its heartbeats); absent from older nodes. */
  clusterMigrationsRemaining?: number;
  /** What the next rebalance changes that the view does not hold yet (pendingChanges); absent from older nodes. */
  pending?: { joining: string[]; leaving: string[]; quiesce: string[]; quiesceUndo: string[] };
  heartbeatIntervalMs?: number;
  lag: LagStats;
  stats?: { namespaces?: Record<string, Record<string, unknown>> };
}

/**
 * Validates cluster options. Throws TypeError/RangeError naming the bad field.
 */
export function resolveClusterOptions(options: ClusterOptions): ResolvedClusterOptions {
  if (options === null || typeof options !== 'object') throw new TypeError('cluster: options must be an object');
  if (!isNodeId(options.nodeId)) throw new TypeError('cluster.nodeId must be a non-empty string of at most 64 bytes');
  const listen = options.listen;
  if (listen === null || typeof listen !== 'object' || typeof listen.host !== 'string' || !Number.isInteger(listen.port)) {
    throw new TypeError('cluster.listen must be { host: string, port: integer }');
  }
  const listenAddress = `${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`;
  parseAddress(listenAddress);
  const seeds = options.seeds ?? [];
  if (!Array.isArray(seeds)) throw new TypeError('cluster.seeds must be an array of "host:port" strings');
  for (const seed of seeds) parseAddress(seed);
  if (options.advertise !== undefined) parseAddress(options.advertise);
  if (options.advertise === undefined && ['0.0.0.0', '::', '[::]'].includes(listen.host)) {
    throw new RangeError(`cluster.listen.host ${listen.host} is a wildcard: set cluster.advertise to the "host:port" peers should connect to`);
  }
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
  if (!Number.isInteger(heartbeatIntervalMs) || heartbeatIntervalMs < MIN_HEARTBEAT_INTERVAL_MS) {
    throw new RangeError(`cluster.heartbeatIntervalMs must be an integer >= ${MIN_HEARTBEAT_INTERVAL_MS}`);
  }
  const heartbeatTimeout = options.heartbeatTimeout ?? DEFAULT_HEARTBEAT_TIMEOUT;
  if (!Number.isInteger(heartbeatTimeout) || heartbeatTimeout < MIN_HEARTBEAT_TIMEOUT) {
    throw new RangeError(`cluster.heartbeatTimeout must be an integer >= ${MIN_HEARTBEAT_TIMEOUT}`);
  }
  const replicationFactor = options.replicationFactor ?? DEFAULT_REPLICATION_FACTOR;
  if (!Number.isInteger(replicationFactor) || replicationFactor < 1 || replicationFactor > MAX_REPLICATION_FACTOR) {
    throw new RangeError(`cluster.replicationFactor must be an integer in 1..${MAX_REPLICATION_FACTOR}`);
  }
  const clusterName = options.clusterName ?? 'shoal';
  if (typeof clusterName !== 'string' || clusterName.length === 0) throw new TypeError('cluster.clusterName must be a non-empty string');
  const { secrets, tls, insecure } = resolveSecurity(options);
  return {
    nodeId: options.nodeId,
    listenAddress,
    advertise: options.advertise,
    seeds,
    clusterName,
    heartbeatIntervalMs,
    heartbeatTimeout,
    replicationFactor,
    protocolVersion: options.protocolVersion,
    minProtocolVersion: options.minProtocolVersion,
    secrets,
    tls,
    insecure,
  };
}

/**
 * Validates `secret`, `acceptSecrets`, `tls` and `insecure`.
 * @throws TypeError naming the bad field (a secret too short, a PEM node:tls cannot load).
 */
function resolveSecurity(options: ClusterOptions): Pick<ResolvedClusterOptions, 'secrets' | 'tls' | 'insecure'> {
  const insecure = options.insecure ?? false;
  if (typeof insecure !== 'boolean') throw new TypeError('cluster.insecure must be a boolean');
  if (options.secret === undefined && options.acceptSecrets !== undefined) throw new TypeError('cluster.acceptSecrets needs cluster.secret');
  const secrets = options.secret === undefined ? undefined : new ClusterSecrets(options.secret, options.acceptSecrets ?? []);
  const settings = options.tls;
  if (settings === undefined) return { secrets, tls: undefined, insecure };
  if (settings === null || typeof settings !== 'object') throw new TypeError('cluster.tls must be { key, cert, ca } (PEM strings or Buffers)');
  const pem = (value: unknown) => typeof value === 'string' || Buffer.isBuffer(value);
  for (const field of ['key', 'cert', 'ca'] as const) {
    const value = settings[field];
    if (!(pem(value) || (field === 'ca' && Array.isArray(value) && value.length > 0 && value.every(pem)))) {
      throw new TypeError(`cluster.tls.${field} must be PEM (a string or a Buffer${field === 'ca' ? ', or an array of them' : ''})`);
    }
  }
  try {
    tls.createSecureContext({ key: settings.key, cert: settings.cert, ca: settings.ca });
  } catch (error) {
    throw new TypeError(`cluster.tls: node:tls cannot use these certificates: ${(error as Error).message}`);
  }
  return { secrets, tls: { key: settings.key, cert: settings.cert, ca: settings.ca }, insecure };
}

export interface ClusterDependencies {
  runtime: Runtime;
  network: Network;
  /** The local database; without it the node only takes part in membership. */
  store?: LocalStore;
  /** Time a routed or replicated request may take (ms). */
  requestTimeoutMs?: number;
  /** Record versions per migration batch (the simulator's long-migration workload uses small ones). */
  migrationBatchRecords?: number;
  /** Extra figures for admin clients (the Db passes its stats()). */
  describe?: () => unknown;
}

/**
 * One cluster node. Events: 'change' (ClusterState), 'node-joined' (nodeId), 'node-left'
 * (nodeId), 'migrations-complete' (ClusterState).
 */
export class ClusterNode extends EventEmitter {
  readonly options: ResolvedClusterOptions;
  readonly fabric: Fabric;
  readonly heartbeat: Heartbeat;
  readonly membership: Membership;
  protected readonly runtime: Runtime;
  private quiescedFlag = false;
  private map: PartitionMap;
  private started = false;
  readonly dataPlane: DataPlane | undefined;
  private readonly truncation: ClusterTruncation | undefined;
  private migrationsCompleteKey = '';
  private stopped = false;
  private adminExtension: ((message: WireMessage, reply: (message: WireMessage) => void) => boolean) | undefined;
  /** What heartbeats advertise for this node's Aerospike service listener (advertiseService). */
  private serviceAdvertisement: unknown;
  /** Handlers of fabric messages by type, for the layers built on top (routing, migrations). */
  protected readonly messageHandlers = new Map<string, (from: string, message: WireMessage) => void>();

  constructor(options: ClusterOptions, dependencies: ClusterDependencies) {
    super();
    this.options = resolveClusterOptions(options);
    this.runtime = dependencies.runtime;
    const { nodeId, heartbeatIntervalMs, heartbeatTimeout } = this.options;
    this.fabric = new Fabric({
      nodeId,
      clusterName: this.options.clusterName,
      network: dependencies.network,
      runtime: this.runtime,
      reconnectIntervalMs: heartbeatIntervalMs,
      stallTimeoutMs: heartbeatIntervalMs * heartbeatTimeout,
      secrets: this.options.secrets,
      tls: this.options.tls,
      insecure: this.options.insecure,
      protocolVersion: this.options.protocolVersion,
      minProtocolVersion: this.options.minProtocolVersion,
    });
    this.heartbeat = new Heartbeat({
      intervalMs: heartbeatIntervalMs,
      timeout: heartbeatTimeout,
      seeds: this.options.seeds,
      fabric: this.fabric,
      runtime: this.runtime,
      localStatus: () => ({
        clusterKey: this.membership.view.clusterKey,
        quiesced: this.quiescedFlag,
        migrationsRemaining: this.migrationsRemaining(),
        truncates: this.truncation?.heartbeatCuts(),
        service: this.serviceAdvertisement,
      }),
      onPeerAlive: () => {},
      onPeerDead: () => {},
      onHeartbeat: (peer) => this.membership.onHeartbeatKey(peer.nodeId, peer.clusterKey),
      onPeerTruncates: (from, cuts) => this.truncation?.onPeerCuts(from, cuts),
      onTick: () => {
        this.membership.onTick();
        this.dataPlane?.onTick();
      },
    });
    this.membership = new Membership({
      selfId: nodeId,
      runtime: this.runtime,
      heartbeat: this.heartbeat,
      intervalMs: heartbeatIntervalMs,
      timeout: heartbeatTimeout,
      send: (to, message) => this.fabric.sendToNode(to, message),
      isQuiesced: () => this.quiescedFlag,
      onViewChange: (view, previous) => this.onViewChange(view, previous),
    });
    this.map = this.computeMap(this.membership.view);
    this.fabric.setHandler((from, message) => this.onMessage(from, message));
    this.fabric.setAdminHandler((message, reply) => this.onAdmin(message, reply, dependencies.describe));
    if (dependencies.store !== undefined) {
      const dataPlane = new DataPlane({
        nodeId,
        runtime: this.runtime,
        store: dependencies.store,
        send: (to, message) => this.fabric.sendToNode(to, message),
        requestTimeoutMs: dependencies.requestTimeoutMs,
        migrationBatchRecords: dependencies.migrationBatchRecords,
        onMigrationsComplete: () => this.onMigrationsComplete(),
      });
      this.dataPlane = dataPlane;
      for (const type of DATA_MESSAGE_TYPES) this.messageHandlers.set(type, (from, message) => dataPlane.handle(from, message));
      const truncation = new ClusterTruncation({
        nodeId,
        runtime: this.runtime,
        store: dependencies.store,
        send: (to, message) => this.fabric.sendToNode(to, message),
        members: () => this.membership.view.succession,
        timeoutMs: dependencies.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      });
      this.truncation = truncation;
      for (const type of TRUNCATE_MESSAGE_TYPES) this.messageHandlers.set(type, (from, message) => truncation.handle(from, message));
    }
  }

  /**
   * Executes a client request on the partition's acting master (this node or one hop away).
   * @throws ShoalError CLUSTER_ERROR without a local store; TIMEOUT, PARTITION_UNAVAILABLE, or
   *   the master's own error.
   */
  execute(request: ClusterRequest): Promise<unknown> {
    if (this.dataPlane === undefined) return Promise.reject(new ShoalError(ErrorCode.CLUSTER_ERROR, 'cluster: this node has no local store'));
    if (this.stopped) return Promise.reject(new ShoalError(ErrorCode.NOT_OPEN, 'cluster: node is stopped'));
    return this.dataPlane.execute(request);
  }

  /**
   * Executes many single-record operations of namespace `ns` (batchPut, batchGet), each on its
   * partition's master, grouped per master (DataPlane.executeBatch). Resolves to each item's
   * `{ value }` or `{ error }` in order; `readOnly` for a batch of reads; `more` appends the
   * items still being prepared (BatchRouting.executeBatch).
   * @throws ShoalError CLUSTER_ERROR without a local store; NOT_OPEN once stopped.
   */
  executeBatch(ns: string, digests: Buffer[], operations: unknown[], readOnly: boolean, more?: () => Promise<boolean>): Promise<BatchItemOutcome[]> {
    if (this.dataPlane === undefined) return Promise.reject(new ShoalError(ErrorCode.CLUSTER_ERROR, 'cluster: this node has no local store'));
    if (this.stopped) return Promise.reject(new ShoalError(ErrorCode.NOT_OPEN, 'cluster: node is stopped'));
    return this.dataPlane.executeBatch(ns, digests, operations, readOnly, more);
  }

  /**
   * Truncates a namespace (or one of its sets) on every node: lib/cluster/truncation.ts.
   * Resolves to the number of copies removed across the nodes. `coversNow`: the cut is "now",
   * to be moved past every write the members acknowledged before the call.
   * @throws ShoalError TIMEOUT when a member did not acknowledge in time; CLUSTER_ERROR without a local store.
   */
  truncate(cut: ClusterTruncateCut, coversNow = false): Promise<number> {
    if (this.truncation === undefined) return Promise.reject(new ShoalError(ErrorCode.CLUSTER_ERROR, 'cluster: this node has no local store'));
    if (this.stopped) return Promise.reject(new ShoalError(ErrorCode.NOT_OPEN, 'cluster: node is stopped'));
    return this.truncation.truncate(cut, coversNow);
  }

  /**
   * Resolves once this node and every member of its view report no remaining migrations under
   * the same cluster key. Rejects with ShoalError TIMEOUT after `timeoutMs` (default 60 s).
   */
  waitForMigrations(options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) return Promise.reject(new RangeError('timeoutMs must be a non-negative number'));
    const { clock, timers } = this.runtime;
    const deadline = clock.nowMs() + timeoutMs;
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.migrationsSettledClusterWide()) {
          resolve();
          return;
        }
        if (clock.nowMs() >= deadline || this.stopped) {
          reject(new ShoalError(ErrorCode.TIMEOUT, `cluster: migrations not finished within ${timeoutMs} ms (${this.migrationsRemaining()} partitions remaining here)`));
          return;
        }
        timers.setTimeout(check, Math.min(this.options.heartbeatIntervalMs, 50));
      };
      check();
    });
  }

  /** Whether this node and all members (by their heartbeats) have no migrations left under this view. */
  migrationsSettledClusterWide(): boolean {
    if (this.migrationsRemaining() > 0) return false;
    const view = this.membership.view;
    return view.succession.every((id) => {
      if (id === this.nodeId) return true;
      const peer = this.heartbeat.peer(id);
      return peer !== undefined && peer.alive && peer.clusterKey === view.clusterKey && peer.migrationsRemaining === 0;
    });
  }

  /** Partitions left to migrate on the members of the view: this node's, and each peer's by its latest heartbeat. */
  private clusterMigrationsRemaining(): number {
    let remaining = this.migrationsRemaining();
    for (const id of this.membership.view.succession) if (id !== this.nodeId) remaining += this.heartbeat.peer(id)?.migrationsRemaining ?? 0;
    return remaining;
  }

  /**
   * What the next rebalance will change that the view does not hold yet, so the CLI neither
   * reports a settled cluster before a rebalance has started nor hides a quiesce waiting for a
   * recluster: nodes heard but not members, members not heard, quiesce flags (this node's own,
   * each peer's from its heartbeats) the view does not list, and listed ones since undone.
   */
  private pendingChanges(): { joining: string[]; leaving: string[]; quiesce: string[]; quiesceUndo: string[] } {
    const view = this.membership.view;
    const heard = [this.nodeId, ...this.heartbeat.alivePeers()].sort();
    const flagged = (id: string) => (id === this.nodeId ? this.quiescedFlag : this.heartbeat.peer(id)?.quiesced === true);
    return {
      joining: heard.filter((id) => !view.succession.includes(id)),
      leaving: view.succession.filter((id) => !heard.includes(id)),
      quiesce: heard.filter((id) => flagged(id) && !view.quiesced.includes(id)),
      quiesceUndo: view.quiesced.filter((id) => heard.includes(id) && !flagged(id)),
    };
  }

  /**
   * The admin protocol (docs/cluster.md, "Admin connections"): the operator CLI's requests.
   * Every request carries an `id`; the reply is `{ type: 'admin-reply', id, ok, value | error }`.
   */
  private onAdmin(message: WireMessage, reply: (message: WireMessage) => void, describe: (() => unknown) | undefined): void {
    const answer = (value: unknown) => reply({ type: 'admin-reply', id: message.id, ok: true, value });
    switch (message.type) {
      case 'admin-state':
        answer({
          ...this.state(),
          address: this.address,
          migrationsSettledClusterWide: this.migrationsSettledClusterWide(),
          clusterMigrationsRemaining: this.clusterMigrationsRemaining(),
          pending: this.pendingChanges(),
          heartbeatIntervalMs: this.options.heartbeatIntervalMs,
          lag: { ...this.heartbeat.lag },
          stats: describe?.() as AdminState['stats'],
        } satisfies AdminState);
        return;
      case 'admin-quiesce':
        this.quiesce();
        answer(this.state());
        return;
      case 'admin-quiesce-undo':
        this.quiesceUndo();
        answer(this.state());
        return;
      case 'admin-recluster':
        this.recluster();
        answer(this.state());
        return;
      default:
        if (this.adminExtension?.(message, reply) === true) return;
        reply({ type: 'admin-reply', id: message.id, ok: false, error: { code: 'INVALID_ARGUMENT', message: `unknown admin request "${message.type}"` } });
    }
  }

  /**
   * Routes admin requests this class does not answer to `handler` (cross-cluster shipping,
   * lib/xdr/), which returns whether it took the message.
   */
  setAdminExtension(handler: (message: WireMessage, reply: (message: WireMessage) => void) => boolean): void {
    this.adminExtension = handler;
  }

  private onMigrationsComplete(): void {
    const key = this.membership.view.clusterKey;
    if (this.migrationsCompleteKey === key) return;
    this.migrationsCompleteKey = key;
    this.emit('migrations-complete', this.state());
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  /** The address peers reach this node at (valid after start). */
  get address(): string {
    return this.fabric.address;
  }

  get view(): ClusterView {
    return this.membership.view;
  }

  get partitionMap(): PartitionMap {
    return this.map;
  }

  /** Starts listening and heartbeating. Rejects if the listen address is unavailable. */
  async start(): Promise<void> {
    if (this.started) throw new Error('cluster: node already started');
    this.started = true;
    await this.fabric.start(this.options.listenAddress, this.options.advertise);
    for (const seed of this.options.seeds) this.heartbeat.addAddress(seed, true);
    this.dataPlane?.onViewChange(this.membership.view, this.map);
    this.heartbeat.start();
  }

  /** Stops heartbeating and closes every connection. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // Leaving notices are queued on the connections before they close, so they go out first
    // (TCP flushes before its FIN; the simulated network keeps the same order).
    this.heartbeat.stop(true);
    this.dataPlane?.stop();
    this.truncation?.stop();
    await this.fabric.stop();
  }

  /**
   * Sets what this node's heartbeats carry for its Aerospike service listener (plain data, read
   * by peers from PeerState.service; lib/service/topology.ts), or undefined to carry nothing.
   */
  advertiseService(value: unknown): void {
    this.serviceAdvertisement = value;
  }

  /** Marks this node to hand off all its partitions at the next rebalance (see recluster). */
  quiesce(): void {
    this.quiescedFlag = true;
  }

  /** Reverts quiesce (effective at the next rebalance). */
  quiesceUndo(): void {
    this.quiescedFlag = false;
  }

  /** Starts a rebalance now: the principal runs a membership round with current quiesce flags. */
  recluster(): void {
    this.membership.requestRecluster();
  }

  get quiesced(): boolean {
    return this.quiescedFlag;
  }

  state(): ClusterState {
    const view = this.membership.view;
    let master = 0;
    let replica = 0;
    for (const owners of this.map.owners) {
      const index = owners.indexOf(this.nodeId);
      if (index === 0) master++;
      else if (index > 0) replica++;
    }
    return {
      nodeId: this.nodeId,
      clusterKey: view.clusterKey,
      principal: view.succession[0],
      nodes: [this.nodeId, ...this.heartbeat.alivePeers()].sort(),
      succession: [...view.succession],
      quiesced: [...view.quiesced],
      partitions: { master, replica },
      migrationsRemaining: this.migrationsRemaining(),
    };
  }

  /** Partitions this node still has to send or receive. */
  migrationsRemaining(): number {
    return this.dataPlane?.migrationsRemaining() ?? 0;
  }

  /**
   * The node serving a partition now: its acting master while it migrates (the node holding
   * the complete data), else the map's master. Reads served locally (getSync) must check this,
   * not the map: a new master still being filled does not have all the data yet.
   */
  masterOf(partitionId: number): string {
    return this.dataPlane?.actingMaster(partitionId) ?? this.map.owners[partitionId][0];
  }

  protected computeMap(view: ClusterView): PartitionMap {
    return computePartitionMap({
      succession: view.succession,
      quiesced: view.quiesced,
      replicationFactor: this.options.replicationFactor,
      partitionCount: PARTITION_COUNT,
    });
  }

  /** Called after a new view is adopted; subclasses extend it to start migrations. */
  protected onViewChange(view: ClusterView, previous: ClusterView): void {
    const previousMap = this.map;
    this.map = this.computeMap(view);
    this.onMapChange(previousMap, this.map, view, previous);
    const before = new Set(previous.succession);
    const after = new Set(view.succession);
    const state = this.state();
    this.emit('change', state);
    for (const id of view.succession) if (!before.has(id)) this.emit('node-joined', id);
    for (const id of previous.succession) if (!after.has(id)) this.emit('node-left', id);
  }

  /** Hands the new view to the data plane, before the 'change' event. */
  protected onMapChange(_previousMap: PartitionMap, map: PartitionMap, view: ClusterView, _previousView: ClusterView): void {
    this.dataPlane?.onViewChange(view, map);
  }

  private onMessage(from: string, message: WireMessage): void {
    if (message.type === 'heartbeat') {
      this.heartbeat.receive(from, message);
      return;
    }
    if (message.type === 'leaving') {
      this.heartbeat.peerLeaving(from);
      return;
    }
    const handler = this.messageHandlers.get(message.type);
    if (handler !== undefined) {
      handler(from, message);
      return;
    }
    this.membership.receive(from, message);
  }
}
