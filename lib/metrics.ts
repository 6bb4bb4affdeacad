/**
 * Operation metrics and their Prometheus text exposition (docs/operations.md, "Metrics").
 *
 * With `metrics` in open()'s options, the Db's public methods are wrapped on the instance
 * (instrument()): each call is counted and, when it fails, counted under its error code; get,
 * getSync and batchGet count hits and misses; one call in METRICS_LATENCY_SAMPLE_EVERY is
 * timed into a fixed histogram (reading the clock costs about a memory getSync). Without the
 * option nothing is wrapped and the methods run as before; db.metrics() then reports the
 * namespace and cluster figures only. Everything else (objects, memory, device, evictions,
 * expirations, defrag, start, cluster) is read from stats() when metrics() is called.
 *
 * The exposition is written here rather than with prom-client: see docs/operations.md,
 * "Why not prom-client", for the measurement.
 */
import { performance } from 'node:perf_hooks';
import { METRICS_ERROR_CODES_MAX, METRICS_LATENCY_BUCKETS_SECONDS, METRICS_LATENCY_SAMPLE_EVERY, PARTITION_COUNT } from './constants';
import { ShoalError } from './errors';
import type { ClusterNode } from './cluster/index';
import type { NamespaceStats } from './namespace/namespace';
import type { NamespaceConfig } from './options';

/** The Db methods that are counted and timed. */
export const TIMED_OPERATIONS = ['put', 'get', 'getSync', 'exists', 'remove', 'touch', 'operate', 'batchGet', 'batchPut', 'scan', 'truncate'] as const;
export type TimedOperation = (typeof TIMED_OPERATIONS)[number];

/** The methods of a Db that instrument() replaces (the Db's own type, kept loose to avoid a cycle with db.ts). */
type Methods = Record<TimedOperation, (...args: unknown[]) => unknown>;

/**
 * The keys of the Db's get and put bodies that count into a tally (lib/db.ts: `db[readRecord]`,
 * `db[writeRecord]`). Symbols, known to db.ts and this module only (lib/index.ts exports
 * neither), so the bodies are no part of the Db's public API; instrument() calls them.
 */
export const readRecord: unique symbol = Symbol('shoal.db.readRecord');
export const writeRecord: unique symbol = Symbol('shoal.db.writeRecord');

/** Where a Db call counts its failure (Db[writeRecord]): OperationFigures is one. */
export interface ErrorTally {
  /** Counts a failed call under its error code. */
  count(error: unknown): void;
}

/** Where a read counts its outcome (Db[readRecord]). */
export interface ReadTally extends ErrorTally {
  hits: number;
  misses: number;
}

/** One operation's counters. */
class OperationFigures implements ReadTally {
  calls = 0;
  hits = 0;
  misses = 0;
  sumSeconds = 0;
  /** Observations per bucket (not cumulative); the last one is +Inf. */
  readonly buckets = new Float64Array(METRICS_LATENCY_BUCKETS_SECONDS.length + 1);
  readonly errors = new Map<string, number>();

  observe(startMs: number): void {
    const seconds = (performance.now() - startMs) / 1000;
    this.sumSeconds += seconds;
    let bucket = 0;
    while (bucket < METRICS_LATENCY_BUCKETS_SECONDS.length && seconds > METRICS_LATENCY_BUCKETS_SECONDS[bucket]!) bucket++;
    this.buckets[bucket]!++;
  }

  /** Counts a failed call under its error code. */
  count(error: unknown): void {
    let code = error instanceof ShoalError ? error.code : error instanceof TypeError ? 'TypeError' : 'other';
    if (!this.errors.has(code) && this.errors.size >= METRICS_ERROR_CODES_MAX) code = 'other';
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }
}

/** What metrics() reads besides the counters: the Db's figures at the time of the call. */
export interface MetricsSources {
  namespaces: Record<string, NamespaceStats>;
  clusterNode: ClusterNode | undefined;
  /** The Db's open time, Unix ms. */
  openedAtMs: number;
}

/** The counters of one Db, and the rendering of its metrics. */
export class DbMetrics {
  private readonly figures = new Map<TimedOperation, OperationFigures>(TIMED_OPERATIONS.map((name) => [name, new OperationFigures()]));
  private viewChanges = 0;
  private readonly counting: boolean;

  /** `counting`: whether calls are counted (open()'s `metrics` option); false leaves the Db's methods alone. */
  constructor(counting: boolean) {
    this.counting = counting;
  }

  /** Replaces the timed methods of `db` with counting wrappers, on the instance (no-op unless counting). */
  instrument(db: object): void {
    if (!this.counting) return;
    const target = db as Methods;
    for (const name of TIMED_OPERATIONS) {
      const original = target[name];
      if (typeof original !== 'function') continue;
      const figures = this.figures.get(name)!;
      target[name] =
        name === 'get' ? bodyWrapper(figures, (db, key, opts) => db[readRecord](key, opts, figures))
        : name === 'put' ? bodyWrapper(figures, (db, key, bins, opts) => db[writeRecord](key, bins, opts, figures))
        : name === 'getSync' || name === 'scan' ? syncWrapper(original, figures, name === 'getSync')
        : asyncWrapper(original, figures, name);
    }
  }

  /** Counts the cluster's view changes from here on. */
  watchCluster(node: ClusterNode): void {
    node.on('change', () => this.viewChanges++);
  }

  /** The Prometheus text exposition (format 0.0.4) of the counters and of `sources`. */
  render(sources: MetricsSources): string {
    const out = new Exposition();
    if (this.counting) this.renderOperations(out);
    renderNamespaces(out, sources.namespaces);
    out.family('shoal_start_time_seconds', 'gauge', 'When this Db was opened, Unix seconds.');
    out.sample('shoal_start_time_seconds', {}, sources.openedAtMs / 1000);
    out.family('shoal_metrics_operations_counted', 'gauge', '1 when open() was given `metrics` and operations are counted and timed, else 0.');
    out.sample('shoal_metrics_operations_counted', {}, this.counting ? 1 : 0);
    if (sources.clusterNode !== undefined) this.renderCluster(out, sources.clusterNode);
    return out.text();
  }

  private renderOperations(out: Exposition): void {
    out.family('shoal_operations_total', 'counter', 'Calls of each Db operation, failed ones included.');
    for (const [op, f] of this.figures) out.sample('shoal_operations_total', { op }, f.calls);
    out.family('shoal_operation_errors_total', 'counter', 'Failed calls, by operation and error code (ShoalError code, TypeError, other).');
    for (const [op, f] of this.figures) for (const [code, count] of f.errors) out.sample('shoal_operation_errors_total', { op, code }, count);
    out.family('shoal_operation_duration_seconds', 'histogram', `Time from call to result (for promises, to their settling), seconds; one call in ${METRICS_LATENCY_SAMPLE_EVERY} is timed.`);
    for (const [op, f] of this.figures) {
      if (f.calls === 0) continue;
      let cumulative = 0;
      METRICS_LATENCY_BUCKETS_SECONDS.forEach((le, bucket) => {
        cumulative += f.buckets[bucket]!;
        out.sample('shoal_operation_duration_seconds_bucket', { op, le: String(le) }, cumulative);
      });
      cumulative += f.buckets[METRICS_LATENCY_BUCKETS_SECONDS.length]!;
      out.sample('shoal_operation_duration_seconds_bucket', { op, le: '+Inf' }, cumulative);
      out.sample('shoal_operation_duration_seconds_sum', { op }, f.sumSeconds);
      out.sample('shoal_operation_duration_seconds_count', { op }, cumulative);
    }
    out.family('shoal_cache_hits_total', 'counter', 'Reads that found their record (get, getSync, and each key of batchGet).');
    out.family('shoal_cache_misses_total', 'counter', 'Reads that found no record (absent or expired).');
    for (const op of ['get', 'getSync', 'batchGet'] as const) {
      const f = this.figures.get(op)!;
      out.sample('shoal_cache_hits_total', { op }, f.hits);
      out.sample('shoal_cache_misses_total', { op }, f.misses);
    }
  }

  private renderCluster(out: Exposition, node: ClusterNode): void {
    const state = node.state();
    out.family('shoal_cluster_size', 'gauge', 'Members of this node\'s view.');
    out.sample('shoal_cluster_size', {}, state.succession.length);
    out.family('shoal_cluster_nodes_heard', 'gauge', 'Nodes this node hears from, itself included.');
    out.sample('shoal_cluster_nodes_heard', {}, state.nodes.length);
    out.family('shoal_cluster_view_changes_total', 'counter', 'Views this node adopted since open().');
    out.sample('shoal_cluster_view_changes_total', {}, this.viewChanges);
    out.family('shoal_cluster_migrations_remaining', 'gauge', 'Partitions this node still has to send or receive.');
    out.sample('shoal_cluster_migrations_remaining', {}, state.migrationsRemaining);
    out.family('shoal_cluster_partitions', 'gauge', 'Partitions this node holds, by role.');
    out.sample('shoal_cluster_partitions', { role: 'master' }, state.partitions.master);
    out.sample('shoal_cluster_partitions', { role: 'replica' }, state.partitions.replica);
    out.family('shoal_cluster_quiesced', 'gauge', '1 when this node\'s quiesce flag is set.');
    out.sample('shoal_cluster_quiesced', {}, node.quiesced ? 1 : 0);
    const lag = node.heartbeat.lag;
    out.family('shoal_cluster_heartbeat_stalls_total', 'counter', 'Heartbeat periods that ran late because the event loop was held (lag guard).');
    out.sample('shoal_cluster_heartbeat_stalls_total', {}, lag.stalls);
    out.family('shoal_cluster_heartbeat_stall_seconds_total', 'counter', 'Total lateness of those periods, seconds.');
    out.sample('shoal_cluster_heartbeat_stall_seconds_total', {}, lag.totalStallMs / 1000);
    out.family('shoal_cluster_heartbeat_stall_seconds_max', 'gauge', 'The longest such lateness, seconds.');
    out.sample('shoal_cluster_heartbeat_stall_seconds_max', {}, lag.maxStallMs / 1000);
    out.family('shoal_cluster_peer_heartbeat_age_seconds', 'gauge', 'Seconds since each peer of the view was last heard.');
    const now = Date.now();
    for (const id of state.succession) {
      const peer = id === state.nodeId ? undefined : node.heartbeat.peer(id);
      if (peer !== undefined) out.sample('shoal_cluster_peer_heartbeat_age_seconds', { peer: id }, Math.max(0, now - peer.lastHeardMs) / 1000);
    }
    const counters = node.dataPlane?.counters;
    if (counters !== undefined) {
      out.family('shoal_cluster_proxied_requests_total', 'counter', 'Requests this node forwarded to a partition\'s master on another node.');
      out.sample('shoal_cluster_proxied_requests_total', {}, counters.forwarded);
      out.family('shoal_cluster_executed_as_master_total', 'counter', 'Requests this node executed as the partition\'s master.');
      out.sample('shoal_cluster_executed_as_master_total', {}, counters.executedAsMaster);
      out.family('shoal_cluster_migrated_records_total', 'counter', 'Record versions migrated, by direction.');
      out.sample('shoal_cluster_migrated_records_total', { direction: 'in' }, counters.migratedRecordsIn);
      out.sample('shoal_cluster_migrated_records_total', { direction: 'out' }, counters.migratedRecordsOut);
      out.family('shoal_cluster_request_retries_total', 'counter', 'Forwarded requests retried (a handoff, a lost master).');
      out.sample('shoal_cluster_request_retries_total', {}, counters.retries);
      out.family('shoal_cluster_requests_in_doubt_total', 'counter', 'Forwarded writes whose outcome is unknown (TIMEOUT).');
      out.sample('shoal_cluster_requests_in_doubt_total', {}, counters.inDoubt);
    }
    let masters = 0;
    for (let p = 0; p < PARTITION_COUNT; p++) if (node.masterOf(p) === state.nodeId) masters++;
    out.family('shoal_cluster_partitions_mastered_by_view', 'gauge', 'Partitions the current map gives this node as master (the partition map, before migrations finish).');
    out.sample('shoal_cluster_partitions_mastered_by_view', {}, masters);
  }
}

/** Calls whose count is a multiple of this mask + 1 are timed. */
const SAMPLE_MASK = METRICS_LATENCY_SAMPLE_EVERY - 1;

/**
 * A wrapper for a method returning a promise: counts the call and its outcome (errors by
 * code; hits and misses for batchGet) when the promise settles, and times one call in
 * METRICS_LATENCY_SAMPLE_EVERY. The untimed path allocates nothing but the promise `then` makes.
 */
function asyncWrapper(original: (...args: unknown[]) => unknown, figures: OperationFigures, name: TimedOperation): (...args: unknown[]) => unknown {
  const batchRead = name === 'batchGet';
  const settled = (value: unknown): unknown => {
    if (batchRead) {
      for (const record of value as unknown[]) {
        if (record === undefined) figures.misses++;
        else figures.hits++;
      }
    }
    return value;
  };
  const failed = (error: unknown): never => {
    figures.count(error);
    throw error;
  };
  return function counted(this: unknown, a?: unknown, b?: unknown, c?: unknown): unknown {
    if ((figures.calls++ & SAMPLE_MASK) !== 0) {
      let result: Promise<unknown>;
      try {
        result = original.call(this, a, b, c) as Promise<unknown>;
      } catch (error) {
        return failed(error);
      }
      return result.then(settled, failed);
    }
    const startMs = performance.now();
    let result: Promise<unknown>;
    try {
      result = original.call(this, a, b, c) as Promise<unknown>;
    } catch (error) {
      figures.observe(startMs);
      return failed(error);
    }
    return result.then(
      (value) => {
        figures.observe(startMs);
        return settled(value);
      },
      (error: unknown) => {
        figures.observe(startMs);
        return failed(error);
      },
    );
  };
}

/** The bodies of the Db's two hottest awaited calls, which count into a tally (lib/db.ts). */
interface CountedBodies {
  [readRecord](key: unknown, opts: unknown, tally: ReadTally): Promise<unknown>;
  [writeRecord](key: unknown, bins: unknown, opts: unknown, tally: ErrorTally): Promise<unknown>;
}

/**
 * The wrappers for get and put, the hottest awaited calls: the Db counts the outcome inside its
 * own promise (Db[readRecord], Db[writeRecord]), so an untimed call adds no promise of its own;
 * asyncWrapper's `then` per call cost 6-7% of an awaited memory get (bench/metrics.ts). One call
 * in METRICS_LATENCY_SAMPLE_EVERY is timed, as elsewhere.
 */
function bodyWrapper(figures: OperationFigures, call: (db: CountedBodies, a: unknown, b: unknown, c: unknown) => Promise<unknown>): (...args: unknown[]) => unknown {
  return function counted(this: unknown, a?: unknown, b?: unknown, c?: unknown): unknown {
    if ((figures.calls++ & SAMPLE_MASK) !== 0) return call(this as CountedBodies, a, b, c);
    const startMs = performance.now();
    const observe = (): void => figures.observe(startMs);
    const result = call(this as CountedBodies, a, b, c);
    result.then(observe, observe);
    return result;
  };
}

/** A wrapper for a synchronous method (getSync; scan, timed until its iterable is returned), timing one call in METRICS_LATENCY_SAMPLE_EVERY. */
function syncWrapper(original: (...args: unknown[]) => unknown, figures: OperationFigures, reads: boolean): (...args: unknown[]) => unknown {
  return function counted(this: unknown, a?: unknown, b?: unknown, c?: unknown): unknown {
    const timed = (figures.calls++ & SAMPLE_MASK) === 0;
    const startMs = timed ? performance.now() : 0;
    let value: unknown;
    try {
      value = original.call(this, a, b, c);
    } catch (error) {
      if (timed) figures.observe(startMs);
      figures.count(error);
      throw error;
    }
    if (timed) figures.observe(startMs);
    if (reads) {
      if (value === undefined) figures.misses++;
      else figures.hits++;
    }
    return value;
  };
}

/** Namespace gauges and counters from stats(). */
function renderNamespaces(out: Exposition, namespaces: Record<string, NamespaceStats>): void {
  const entries = Object.entries(namespaces);
  const gauge = (name: string, type: 'gauge' | 'counter', help: string, value: (stats: NamespaceStats) => unknown, scale = 1) => {
    out.family(name, type, help);
    for (const [ns, stats] of entries) {
      const v = value(stats);
      if (typeof v === 'number' && Number.isFinite(v)) out.sample(name, { ns }, v * scale);
    }
  };
  gauge('shoal_namespace_objects', 'gauge', 'Records stored (this node\'s copies).', (s) => s.objects);
  gauge('shoal_namespace_master_objects', 'gauge', 'Records this node masters.', (s) => s.masterObjects);
  gauge('shoal_namespace_tombstones', 'gauge', 'Tombstones kept for durable removes.', (s) => s.tombstones);
  gauge('shoal_namespace_memory_used_bytes', 'gauge', 'Index and data bytes in memory.', (s) => s.memoryUsedBytes);
  gauge('shoal_namespace_index_used_bytes', 'gauge', 'Index bytes.', (s) => s.indexUsedBytes);
  gauge('shoal_namespace_data_used_bytes', 'gauge', 'Record data bytes in memory.', (s) => s.dataUsedBytes);
  gauge('shoal_namespace_device_used_bytes', 'gauge', 'Live record bytes on the devices.', (s) => s.deviceUsedBytes);
  gauge('shoal_namespace_device_total_bytes', 'gauge', 'Device capacity, bytes.', (s) => s['deviceTotalBytes']);
  gauge('shoal_namespace_device_free_ratio', 'gauge', 'Free write blocks over all write blocks (0..1).', (s) => (s.directIo === 'n/a' ? undefined : s.deviceFreePct), 0.01);
  gauge('shoal_namespace_device_write_blocks_flushed_total', 'counter', 'Write blocks written to the devices.', (s) => s['writeBlocksFlushed']);
  gauge('shoal_namespace_device_commits_total', 'counter', 'Commit-to-device writes (one device write each).', (s) => s['commits']);
  gauge('shoal_namespace_evicted_total', 'counter', 'Records evicted (high water).', (s) => s.evicted);
  gauge('shoal_namespace_expired_total', 'counter', 'Records removed by expiry.', (s) => s.expired);
  gauge('shoal_namespace_defrag_pending_blocks', 'gauge', 'Write blocks queued for defragmentation.', (s) => s.defragPending);
  gauge('shoal_namespace_defrag_blocks_total', 'counter', 'Write blocks defragmented.', (s) => s['defragBlocks']);
  gauge('shoal_namespace_defrag_moved_records_total', 'counter', 'Records moved by defragmentation.', (s) => s['defragMoved']);
  gauge('shoal_namespace_start_seconds', 'gauge', 'How long the namespace took to open, seconds.', (s) => s.startMs, 0.001);
  out.family('shoal_namespace_start_mode', 'gauge', '1 for the way the namespace started: warm (shared-memory index), cold (rebuilt from the devices) or new.');
  for (const [ns, stats] of entries) for (const mode of ['warm', 'cold', 'new']) out.sample('shoal_namespace_start_mode', { ns, mode }, stats.startMode === mode ? 1 : 0);
}

/** Prometheus text format 0.0.4: families with HELP and TYPE, samples with escaped labels. */
class Exposition {
  private readonly lines: string[] = [];

  family(name: string, type: 'gauge' | 'counter' | 'histogram', help: string): void {
    this.lines.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`);
  }

  sample(name: string, labels: Record<string, string>, value: number): void {
    const names = Object.keys(labels);
    const rendered = names.length === 0 ? '' : `{${names.map((label) => `${label}="${escapeLabel(labels[label]!)}"`).join(',')}}`;
    this.lines.push(`${name}${rendered} ${formatValue(value)}`);
  }

  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** What the status page draws (GET /status.json). */
export interface DbStatus {
  nodeId: string;
  clusterKey: string;
  nowMs: number;
  settled: boolean;
  migrationsRemaining: number;
  nodes: { id: string; self: boolean; member: boolean; principal: boolean; quiesced: boolean; heardAgoMs: number | null; migrationsRemaining: number | null }[];
  /** The master of each partition, by partition id (4,096 entries). */
  partitionMasters: string[];
  namespaces: { name: string; objects: number; memoryUsedBytes: number; memoryLimitBytes: number | null; deviceUsedBytes: number; deviceTotalBytes: number | null; evicted: number; expired: number; startMode: string }[];
}

/** The status of a Db from its stats, its namespaces' configuration and its cluster node, if any. */
export function statusOf(stats: Record<string, NamespaceStats>, configs: readonly NamespaceConfig[], node: ClusterNode | undefined): DbStatus {
  const namespaces = configs.map((config) => {
    const s = stats[config.name]!;
    const deviceTotal = s['deviceTotalBytes'];
    return {
      name: config.name,
      objects: s.objects,
      memoryUsedBytes: s.memoryUsedBytes,
      memoryLimitBytes: config.kind === 'memory' ? config.maxBytes : null,
      deviceUsedBytes: s.deviceUsedBytes,
      deviceTotalBytes: typeof deviceTotal === 'number' ? deviceTotal : null,
      evicted: s.evicted,
      expired: s.expired,
      startMode: s.startMode,
    };
  });
  const nowMs = Date.now();
  if (node === undefined) {
    const self = { id: 'local', self: true, member: true, principal: true, quiesced: false, heardAgoMs: null, migrationsRemaining: 0 };
    return { nodeId: 'local', clusterKey: '', nowMs, settled: true, migrationsRemaining: 0, nodes: [self], partitionMasters: new Array<string>(PARTITION_COUNT).fill('local'), namespaces };
  }
  const state = node.state();
  const ids = [...new Set([...state.succession, ...state.nodes])];
  const nodes = ids.map((id) => {
    const peer = id === state.nodeId ? undefined : node.heartbeat.peer(id);
    return {
      id,
      self: id === state.nodeId,
      member: state.succession.includes(id),
      principal: id === state.principal,
      quiesced: state.quiesced.includes(id),
      heardAgoMs: peer === undefined ? null : Math.max(0, nowMs - peer.lastHeardMs),
      migrationsRemaining: id === state.nodeId ? state.migrationsRemaining : peer?.migrationsRemaining ?? null,
    };
  });
  const partitionMasters = Array.from({ length: PARTITION_COUNT }, (_, partition) => node.masterOf(partition));
  const settled = node.migrationsSettledClusterWide() && state.nodes.length === state.succession.length;
  return { nodeId: state.nodeId, clusterKey: state.clusterKey, nowMs, settled, migrationsRemaining: state.migrationsRemaining, nodes, partitionMasters, namespaces };
}
