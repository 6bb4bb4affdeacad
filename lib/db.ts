/**
 * The Db: the public API of docs/api.md. It validates every argument, finds the
 * namespace, and hands the operation to it (or, in cluster mode, to the partition's master).
 */
import { BATCH_KEYS_MAX, PARTITION_COUNT } from './constants';
import { ErrorCode, ShoalError, invalidArgument } from './errors';
import { Bins, BinsOf, checkBins, isPlainObject } from './model/bins';
import { Key, checkKeyShape } from './model/key';
import type { BatchResults, Namespace, NamespaceStats, ReadOptions, ScanOptions, ShoalRecord, WriteResult } from './namespace/namespace';
import {
  Operation,
  RemoveOptions,
  WriteOptions,
  checkOperations,
  checkRemoveOptions,
  checkTtl,
  checkWriteOptions,
} from './namespace/semantics';
import type { DbConfig } from './options';
import { type Clock, wallClock } from './clock';
import { truncateCutOf } from './model/truncate-cuts';
import { Cluster, ClusterNode } from './cluster/index';
import type { Service } from './service/server';
import { BatchCall, BatchGroups, RecordCall, batchGetCall, batchOutcome, batchPutCall, checkReadOptions, checkScanOptions, checkPutShape, digestOfKey, forEachSlice, recordRequest, runSliced } from './db-cluster';
import { recordFromWire } from './db-cluster-values';
import { PutItemEncoder, writeResultFromWire } from './db-batch-wire';
import { partitionIdOf } from './model/key';
import { unregisterForShutdown } from './shutdown';
import { checkElementOptionNames, checkOptionNames } from './option-names';
import { DbMetrics, readRecord, statusOf, writeRecord, type DbStatus, type ErrorTally, type ReadTally } from './metrics';
import type { MetricsServer } from './metrics-server';

const TRUNCATE_OPTION_NAMES: ReadonlySet<string> = new Set(['before']);
const CLOSE_OPTION_NAMES: ReadonlySet<string> = new Set(['dropIndex']);
const BATCH_ENTRY_NAMES: ReadonlySet<string> = new Set(['key', 'bins', 'opts']);
import type { Xdr } from './xdr/index';

export interface BatchPutEntry<B extends BinsOf<B> = Bins> {
  key: Key;
  bins: B;
  opts?: WriteOptions;
}

export interface TruncateOptions {
  /** Remove records last updated before this time (a Date or Unix ms); default now. */
  before?: Date | number;
}

export interface CloseOptions {
  /** Free the shared-memory index instead of keeping it for a warm restart. */
  dropIndex?: boolean;
}

export interface DbStats {
  namespaces: Record<string, NamespaceStats>;
  clusterSize: number;
  clusterKey: string;
  migratePartitionsRemaining: number;
}

export class Db {
  private closing: Promise<void> | undefined;
  private serviceListener: Service | undefined;
  private metricsListener: MetricsServer | undefined;
  private readonly openedAtMs = Date.now();
  /** Cluster control (docs/cluster.md); undefined unless cluster mode is on. */
  readonly cluster: Cluster | undefined;

  /** Use open(). */
  constructor(
    private readonly config: DbConfig,
    private readonly namespaces: Map<string, Namespace>,
    private readonly clusterNode: ClusterNode | undefined = undefined,
    private readonly metricsState: DbMetrics = new DbMetrics(false),
    /** Cross-cluster shipping (docs/xdr.md): state, waitForShipped, destinations, events; undefined unless cluster mode is on. */
    readonly xdr: Xdr | undefined = undefined,
    /** The clock the namespaces stamp writes with (lib/clock.ts). */
    private readonly clock: Clock = wallClock,
  ) {
    this.cluster = clusterNode === undefined ? undefined : new Cluster(clusterNode);
  }

  /**
   * The Aerospike service listener (docs/protocol.md): `{ address: { host, port }, stats() }`;
   * undefined unless open() was given `service`.
   */
  get service(): Service | undefined {
    return this.serviceListener;
  }

  /** Used by open() once the listener is up. */
  attachService(service: Service): void {
    if (this.serviceListener !== undefined) throw new Error('the service is already attached');
    this.serviceListener = service;
  }

  /** Used by open() once the metrics listener is up. */
  attachMetricsListener(server: MetricsServer): void {
    if (this.metricsListener !== undefined) throw new Error('the metrics listener is already attached');
    this.metricsListener = server;
  }

  /** Where `metrics.listen` serves `/metrics` and the status page (port 0 resolved); undefined without it. */
  get metricsAddress(): { host: string; port: number } | undefined {
    return this.metricsListener?.address;
  }

  /**
   * The metrics in Prometheus text format (docs/operations.md, "Metrics"): operations, errors,
   * latency histograms, hits and misses (when open() was given `metrics`), namespace and
   * cluster figures (always).
   * @throws ShoalError NOT_OPEN once closed.
   */
  async metrics(): Promise<string> {
    return this.metricsState.render({ namespaces: this.stats().namespaces, clusterNode: this.clusterNode, openedAtMs: this.openedAtMs });
  }

  /**
   * What the status page draws: nodes, each partition's master, migrations, namespaces.
   * @throws ShoalError NOT_OPEN once closed.
   */
  status(): DbStatus {
    return statusOf(this.stats().namespaces, this.config.namespaces, this.clusterNode);
  }

  /** In cluster mode, runs a single-record call on its partition's master (here or one hop away). */
  private routed<T>(call: RecordCall): Promise<T> {
    return this.clusterNode!.execute(recordRequest(call)).then(recordFromWire) as Promise<T>;
  }

  /**
   * Writes bins to a record. Resolves to its new generation and TTL.
   * @throws ShoalError RECORD_EXISTS, RECORD_NOT_FOUND, GENERATION_MISMATCH, RECORD_TOO_BIG,
   *   OUT_OF_SPACE, INVALID_ARGUMENT; TypeError for arguments of the wrong type.
   */
  put<B extends BinsOf<B> = Bins>(key: Key, bins: B, opts?: WriteOptions): Promise<WriteResult>;
  put(key: Key, bins: Bins, opts?: WriteOptions): Promise<WriteResult> {
    return this[writeRecord](key, bins, opts, undefined);
  }

  /**
   * put's body; with `tally` (open()'s `metrics`) a failure is counted inside this one promise,
   * as in [readRecord]. Symbol-keyed (lib/metrics.ts): not part of the public API.
   * @internal
   */
  async [writeRecord](key: Key, bins: Bins, opts: WriteOptions | undefined, tally: ErrorTally | undefined): Promise<WriteResult> {
    try {
      const ns = this.namespaceFor(key);
      checkBins(bins, true);
      checkWriteOptions(opts);
      if (this.cluster !== undefined) return await this.routed<WriteResult>({ method: 'put', key, bins, opts });
      const written = ns.put(key, bins, opts);
      return written instanceof Promise ? await written : written;
    } catch (error) {
      tally?.count(error);
      throw error;
    }
  }

  /** Reads a record; undefined when it does not exist or has expired. */
  get<B extends BinsOf<B> = Bins>(key: Key, opts?: ReadOptions): Promise<ShoalRecord<B> | undefined>;
  get(key: Key, opts?: ReadOptions): Promise<ShoalRecord | undefined> {
    return this[readRecord](key, opts, undefined);
  }

  /**
   * get's body. With `tally` (open()'s `metrics`: lib/metrics.ts counts gets through here) the
   * outcome is counted as a hit, a miss or an error inside this one promise: a counting
   * wrapper's own `then` per call cost 6-7% of an awaited memory get (bench/metrics.ts).
   * Symbol-keyed (lib/metrics.ts): not part of the public API.
   * @internal
   */
  async [readRecord](key: Key, opts: ReadOptions | undefined, tally: ReadTally | undefined): Promise<ShoalRecord | undefined> {
    try {
      const ns = this.namespaceFor(key);
      checkReadOptions(opts);
      let record: ShoalRecord | undefined;
      if (this.cluster !== undefined) {
        record = (await this.routed<ShoalRecord | undefined>({ method: 'get', key, opts })) ?? undefined;
        if (record !== undefined) record.key = key;
      } else {
        const read = ns.get(key, opts);
        record = read instanceof Promise ? await read : read;
      }
      if (tally !== undefined) {
        if (record === undefined) tally.misses++;
        else tally.hits++;
      }
      return record;
    } catch (error) {
      tally?.count(error);
      throw error;
    }
  }

  /**
   * Reads a record synchronously, from memory.
   * @throws ShoalError INVALID_ARGUMENT for a namespace whose data is not in memory.
   */
  getSync<B extends BinsOf<B> = Bins>(key: Key, opts?: ReadOptions): ShoalRecord<B> | undefined;
  getSync(key: Key, opts?: ReadOptions): ShoalRecord | undefined {
    const ns = this.namespaceFor(key);
    checkReadOptions(opts);
    if (!ns.servesSync) {
      throw invalidArgument(
        `getSync serves memory namespaces and device namespaces with dataInMemory: true; namespace ${ns.config.name} reads from its device, so use get()`,
      );
    }
    if (this.cluster !== undefined) {
      const partition = partitionIdOf(digestOfKey(key));
      if (this.clusterNode!.masterOf(partition) !== this.clusterNode!.options.nodeId) {
        throw new ShoalError(
          ErrorCode.PARTITION_UNAVAILABLE,
          `getSync serves only partitions this node masters; partition ${partition} is mastered by ${this.clusterNode!.masterOf(partition)}, so use get()`,
        );
      }
    }
    return ns.getSync(key, opts);
  }

  async exists(key: Key): Promise<boolean> {
    const ns = this.namespaceFor(key);
    if (this.cluster !== undefined) return this.routed({ method: 'exists', key });
    return ns.exists(key);
  }

  /** Removes a record; resolves to whether it existed. */
  async remove(key: Key, opts?: RemoveOptions): Promise<boolean> {
    const ns = this.namespaceFor(key);
    checkRemoveOptions(opts);
    if (this.cluster !== undefined) return this.routed({ method: 'remove', key, opts });
    return ns.remove(key, opts);
  }

  /**
   * Resets a record's TTL (default: the namespace's) and increments its generation.
   * @throws ShoalError RECORD_NOT_FOUND.
   */
  async touch(key: Key, ttl?: number): Promise<WriteResult> {
    const ns = this.namespaceFor(key);
    if (ttl !== undefined) checkTtl(ttl);
    if (this.cluster !== undefined) return this.routed({ method: 'touch', key, ttl });
    return ns.touch(key, ttl);
  }

  /** Applies operations to one record atomically, in order; resolves to the read results. */
  operate<B extends BinsOf<B> = Bins>(key: Key, ops: Operation[], opts?: WriteOptions): Promise<ShoalRecord<B>>;
  async operate(key: Key, ops: Operation[], opts?: WriteOptions): Promise<ShoalRecord> {
    const ns = this.namespaceFor(key);
    checkOperations(ops);
    checkWriteOptions(opts);
    if (this.cluster !== undefined) {
      const record = await this.routed<ShoalRecord>({ method: 'operate', key, ops, opts });
      record.key = key;
      return record;
    }
    return ns.operate(key, ops, opts);
  }

  /** Reads many records; the result is in the keys' order, undefined where absent. */
  batchGet<B extends BinsOf<B> = Bins>(keys: Key[], opts?: ReadOptions): Promise<(ShoalRecord<B> | undefined)[]>;
  async batchGet(keys: Key[], opts?: ReadOptions): Promise<(ShoalRecord | undefined)[]> {
    this.checkOpen();
    checkBatch(keys, 'keys');
    checkReadOptions(opts);
    keys.forEach((key, index) => this.namespaceFor(key, `keys[${index}]`));
    // A record the filter is false for is undefined in a batch (a get gives FILTERED_OUT).
    if (this.cluster !== undefined && opts?.filter === undefined) return this.batchGetCluster(keys, opts);
    const get = this.cluster !== undefined ? (key: Key) => this.get(key, opts) : (key: Key) => this.namespaceFor(key).get(key, opts);
    if (opts?.filter === undefined) return Promise.all(keys.map(get));
    return Promise.all(keys.map((key) => Promise.resolve().then(() => get(key)).catch((error: unknown) => {
      if ((error as ShoalError).code === ErrorCode.FILTERED_OUT) return undefined;
      throw error;
    })));
  }

  /**
   * Writes many records. Each element of the result is that entry's WriteResult, or the
   * ShoalError it failed with; one failure does not stop the others. An entry's own opts
   * replace `opts` for it. The results equal those of individual puts made in the entries'
   * order; the entries cross into native code together (docs/storage.md, "Batched writes"),
   * and a durable entry resolves only once it is on the device.
   */
  batchPut<B extends BinsOf<B> = Bins>(entries: BatchPutEntry<B>[], opts?: WriteOptions): Promise<(WriteResult | ShoalError)[]>;
  async batchPut(entries: BatchPutEntry[], opts?: WriteOptions): Promise<(WriteResult | ShoalError)[]> {
    this.checkOpen();
    checkBatch(entries, 'entries');
    checkWriteOptions(opts);
    // Filtered writes take the per-record path, where the filter meets the record it is for.
    const filtered = opts?.filter !== undefined || entries.some((entry) => entry?.opts?.filter !== undefined);
    if (this.cluster !== undefined && !filtered) return this.batchPutCluster(entries, opts);
    if (filtered) return this.batchPutEach(entries, opts);
    const results: BatchResults = new Array(entries.length);
    // Each entry is checked as its namespace reaches it (request.check), a native call's worth
    // at a time with the event loop turning between: a 100,000-entry batch checked up front held
    // the loop for 40-58 ms (test/storage-stalls.test.ts). Here it is only routed.
    const check = (position: number): ShoalError | undefined => {
      const entry = entries[position];
      try {
        if (entry === null || typeof entry !== 'object') throw new TypeError(`entries[${position}] must be { key, bins, opts? }`);
        checkElementOptionNames(entry, BATCH_ENTRY_NAMES, 'entries', position);
        this.namespaceFor(entry.key);
        // The bins' names and values are checked as the namespace encodes them (one walk, see
        // PutBatch.add); checkBins' error for bins that are not a plain object is thrown here.
        if (!isPlainObject(entry.bins)) checkBins(entry.bins, true);
        if (entry.opts !== undefined) checkWriteOptions(entry.opts);
        return undefined;
      } catch (error) {
        return batchEntryError(this.batchEntryCheck(entry) ?? error, position);
      }
    };
    const groups = new Map<Namespace, number[]>();
    let lastNs: Namespace | undefined;
    let lastPositions: number[] | undefined;
    for (let position = 0; position < entries.length; position++) {
      const key = (entries[position] as BatchPutEntry | null | undefined)?.key as Key | null | undefined;
      const ns = typeof key === 'object' && key !== null ? this.namespaces.get(key.ns) : undefined;
      if (ns === undefined) {
        results[position] = check(position) ?? batchEntryError(new TypeError('key.ns must name a namespace'), position);
        continue;
      }
      // Entries usually share a namespace: the last one's positions are at hand.
      if (ns !== lastNs) {
        lastNs = ns;
        lastPositions = groups.get(ns);
        if (lastPositions === undefined) groups.set(ns, (lastPositions = []));
      }
      lastPositions!.push(position);
    }
    // Every namespace takes its place in its write order now, before anything awaits: a write
    // called after this batch never runs before it (docs/storage.md, "Backpressure").
    await Promise.all([...groups].map(([ns, positions]) => ns.putMany({ entries, positions, options: opts, check }, results)));
    for (let position = 0; position < entries.length; position++) {
      const result = results[position];
      // Await only the promises: an await per plain value would cost a microtask turn each.
      if (result instanceof Promise) results[position] = await result;
    }
    return results as (WriteResult | ShoalError)[];
  }

  /**
   * The first error the checks of a single put give a batchPut entry (key, bins, options, in
   * that order), or undefined: a failed entry gets the error it would have had had its bins
   * been checked in full before its options.
   */
  private batchEntryCheck(entry: BatchPutEntry): unknown {
    if (entry === null || typeof entry !== 'object') return undefined;
    try {
      this.namespaceFor(entry.key);
      checkBins(entry.bins, true);
      if (entry.opts !== undefined) checkWriteOptions(entry.opts);
      return undefined;
    } catch (error) {
      return error;
    }
  }

  /**
   * batchPut in cluster mode: each entry is checked as a put's arguments are, then the entries
   * go to their partitions' masters grouped per master (ClusterNode.executeBatch), which
   * execute them together and replicate them in batches. The checks and digests run in slices
   * that yield to the event loop, so a 100,000-entry batch never holds it for long; the first
   * messages go out while the later slices are prepared (runSliced).
   */
  private async batchPutCluster(entries: BatchPutEntry[], opts: WriteOptions | undefined): Promise<(WriteResult | ShoalError)[]> {
    const results: (WriteResult | ShoalError)[] = new Array(entries.length);
    const groups = new BatchGroups();
    const encoder = new PutItemEncoder();
    const prepare = (start: number, end: number): void => {
      const keys: Key[] = [];
      const calls: BatchCall[] = [];
      const positions: number[] = [];
      for (let position = start; position < end; position++) {
        const entry = entries[position];
        try {
          if (entry === null || typeof entry !== 'object') throw new TypeError(`entries[${position}] must be { key, bins, opts? }`);
          checkElementOptionNames(entry, BATCH_ENTRY_NAMES, 'entries', position);
          this.namespaceFor(entry.key);
          // The bins are checked as they are encoded (batchPutCall: one walk).
          checkPutShape(entry.bins, entry.opts);
          calls.push(batchPutCall(entry.key, entry.bins, entry.opts ?? opts, encoder));
          keys.push(entry.key);
          positions.push(position);
        } catch (error) {
          results[position] = batchEntryError(error, position);
        }
      }
      groups.add(keys, calls, positions, (position, error) => (results[position] = batchEntryError(error, position)));
    };
    // The first messages go out while later slices are still being checked and encoded.
    await runSliced(entries.length, groups, prepare, async (ns, group, more) => {
      const outcomes = await this.clusterNode!.executeBatch(ns, group.digests, group.calls, false, more);
      outcomes.forEach((outcome, k) => (results[group.positions[k]!] = 'value' in outcome ? (writeResultFromWire(outcome.value) as WriteResult) : batchOutcome<WriteResult>(outcome)));
    });
    return results;
  }

  /** batchPut entry by entry (filtered writes): each is a put of its own. */
  private batchPutEach(entries: BatchPutEntry[], opts: WriteOptions | undefined): Promise<(WriteResult | ShoalError)[]> {
    return Promise.all(
      entries.map(async (entry, index) => {
        try {
          if (entry === null || typeof entry !== 'object') throw new TypeError(`entries[${index}] must be { key, bins, opts? }`);
          checkElementOptionNames(entry, BATCH_ENTRY_NAMES, 'entries', index);
          return await this.put(entry.key, entry.bins, entry.opts ?? opts);
        } catch (error) {
          return batchEntryError(error, index);
        }
      }),
    );
  }

  /** batchGet in cluster mode: the keys go to their partitions' masters grouped per master (see batchPutCluster). */
  private async batchGetCluster(keys: Key[], opts: ReadOptions | undefined): Promise<(ShoalRecord | undefined)[]> {
    const results: (ShoalRecord | undefined)[] = new Array(keys.length);
    const groups = new BatchGroups();
    let failure: unknown;
    await forEachSlice(keys.length, (start, end) => {
      const slice = keys.slice(start, end);
      groups.add(slice, slice.map((key) => batchGetCall(key, opts)), slice.map((_, k) => start + k), (_, error) => (failure ??= error));
    });
    if (failure !== undefined) throw failure;
    for (const [ns, group] of groups.byNamespace) {
      const outcomes = await this.clusterNode!.executeBatch(ns, group.digests, group.calls, true);
      outcomes.forEach((outcome, k) => {
        const value = batchOutcome<ShoalRecord | undefined>(outcome);
        if (value instanceof ShoalError) throw value;
        const record = recordFromWire(value) as ShoalRecord | undefined;
        const position = group.positions[k]!;
        if (record !== undefined && record !== null) record.key = keys[position]!;
        results[position] = record ?? undefined;
      });
    }
    return results;
  }

  /** Iterates the records of a namespace, or of one set; opts.partitions limits it to some partition ids. */
  scan<B extends BinsOf<B> = Bins>(ns: string, set?: string, opts?: ScanOptions): AsyncIterable<ShoalRecord<B>>;
  scan(ns: string, set?: string, opts?: ScanOptions): AsyncIterable<ShoalRecord> {
    const namespace = this.namespaceNamed(ns);
    if (set !== undefined && typeof set !== 'string') throw new TypeError('set must be a string when given');
    checkScanOptions(opts);
    if (this.cluster !== undefined) return this.clusterScan(ns, set, opts?.partitions, opts?.filter);
    return namespace.scan(set, opts);
  }

  /** A cluster-wide scan: partition groups at a time, each from its master. */
  private async *clusterScan(ns: string, set: string | undefined, partitions: number[] | undefined, filter: ScanOptions['filter']): AsyncIterable<ShoalRecord> {
    const expression = filter instanceof Uint8Array || filter === undefined ? filter : filter.toBytes();
    const all = partitions ?? Array.from({ length: PARTITION_COUNT }, (_, id) => id);
    for (let start = 0; start < all.length; start += CLUSTER_SCAN_PARTITIONS_PER_REQUEST) {
      const group = all.slice(start, start + CLUSTER_SCAN_PARTITIONS_PER_REQUEST);
      const records = (await this.clusterNode!.execute({ kind: 'scan', ns, partitions: group, operation: { set, filter: expression } })) as ShoalRecord[];
      for (const record of records) yield recordFromWire(record);
    }
  }

  /**
   * Removes every record of a namespace (or set) last updated before opts.before (default
   * now). Resolves to how many were removed (in cluster mode: copies, on every node).
   * Truncated records stay gone after restarts.
   */
  async truncate(ns: string, set?: string, opts?: TruncateOptions): Promise<number> {
    const namespace = this.namespaceNamed(ns);
    if (set !== undefined && typeof set !== 'string') throw new TypeError('set must be a string when given');
    if (opts !== undefined) {
      if (opts === null || typeof opts !== 'object') throw new TypeError('truncate options must be an object');
      checkOptionNames(opts, TRUNCATE_OPTION_NAMES, 'truncate options');
    }
    const beforeMs = truncateCutOf(opts?.before, this.clock);
    // In cluster mode every node applies the cut to its copies (lib/cluster/truncation.ts),
    // and a cut of "now" is moved past every member's write clock first.
    const removed =
      this.cluster === undefined
        ? await namespace.truncate(set, beforeMs)
        : await this.clusterNode!.truncate({ ns, set: set ?? null, beforeMs }, opts?.before === undefined);
    // Every write acknowledged after truncate resolves is stamped at or after the cut, so no
    // later cold start takes it for a truncated record (each cluster member's store advances
    // its own clock the same way: lib/xdr/store.ts).
    this.clock.advanceTo?.(beforeMs);
    return removed;
  }

  /** Per-namespace statistics (Aerospike's names) and cluster figures. */
  stats(): DbStats {
    this.checkOpen();
    const namespaces: Record<string, NamespaceStats> = {};
    for (const [name, ns] of this.namespaces) namespaces[name] = ns.stats();
    if (this.cluster === undefined) return { namespaces, clusterSize: 1, clusterKey: '', migratePartitionsRemaining: 0 };
    const state = this.clusterNode!.state();
    const cluster = { clusterSize: state.succession.length, clusterKey: state.clusterKey, migratePartitionsRemaining: state.migrationsRemaining };
    for (const [name, ns] of this.namespaces) {
      const counts = ns.partitionCounts?.();
      let master = 0;
      let replica = 0;
      for (let p = 0; counts !== undefined && p < PARTITION_COUNT; p++) {
        if (this.clusterNode!.masterOf(p) === state.nodeId) master += counts[p]!;
        else replica += counts[p]!;
      }
      Object.assign(namespaces[name]!, { masterObjects: master, replicaObjects: replica, ...cluster });
    }
    return { namespaces, ...cluster };
  }

  /**
   * Flushes and closes. The shared-memory index is marked clean for a warm restart, or freed
   * with dropIndex. Calling close again resolves once the first close has finished.
   */
  close(opts?: CloseOptions): Promise<void> {
    if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw new TypeError('close options must be an object');
    if (opts !== undefined) checkOptionNames(opts, CLOSE_OPTION_NAMES, 'close options');
    this.closing ??= (async () => {
      unregisterForShutdown(this);
      const errors: unknown[] = [];
      if (this.metricsListener !== undefined) await this.metricsListener.close().catch((error: unknown) => errors.push(error));
      if (this.serviceListener !== undefined) await this.serviceListener.close().catch((error: unknown) => errors.push(error));
      try {
        this.xdr?.close();
      } catch (error) {
        errors.push(error);
      }
      if (this.clusterNode !== undefined) await this.clusterNode.stop().catch((error: unknown) => errors.push(error));
      for (const ns of this.namespaces.values()) {
        await ns.close(opts?.dropIndex === true).catch((error: unknown) => errors.push(error));
      }
      if (errors.length > 0) throw errors[0];
    })();
    return this.closing;
  }

  /** The data directory this Db opened. */
  get dataDir(): string {
    return this.config.dataDir;
  }

  private checkOpen(): void {
    if (this.closing !== undefined) throw new ShoalError(ErrorCode.NOT_OPEN, 'this database is closed; open() it again');
  }

  private namespaceFor(key: Key, argument = 'key'): Namespace {
    this.checkOpen();
    checkKeyShape(key, argument);
    const ns = this.namespaces.get(key.ns);
    if (ns === undefined) throw unknownNamespace(key.ns, this.namespaces);
    return ns;
  }

  private namespaceNamed(name: unknown): Namespace {
    this.checkOpen();
    if (typeof name !== 'string') throw new TypeError('namespace name must be a string');
    const ns = this.namespaces.get(name);
    if (ns === undefined) throw unknownNamespace(name, this.namespaces);
    return ns;
  }
}

// The method is defined below, only where the runtime has the symbol.
export interface Db {
  /** `await using db = await open(...)` closes the Db when the scope ends, as close() does. */
  [Symbol.asyncDispose](): Promise<void>;
}

// Node defines Symbol.asyncDispose from 20.4 on, before V8 itself does; TypeScript's compiled
// `await using` calls it. Shoal does not polyfill it: without it, `await using` is refused by
// its own check, and close() is the way.
if (typeof Symbol.asyncDispose === 'symbol') {
  Object.defineProperty(Db.prototype, Symbol.asyncDispose, {
    value: function asyncDispose(this: Db): Promise<void> {
      return this.close();
    },
    writable: true,
    configurable: true,
  });
}

/** Partitions asked of their masters per request by a cluster-wide scan. */
const CLUSTER_SCAN_PARTITIONS_PER_REQUEST = 256;

function unknownNamespace(name: string, namespaces: Map<string, Namespace>): ShoalError {
  return invalidArgument(`unknown namespace "${name}"; this database has ${[...namespaces.keys()].map((n) => `"${n}"`).join(', ')}`);
}

/** A batchPut entry's failure as the ShoalError its result holds. */
function batchEntryError(error: unknown, position: number): ShoalError {
  if (error instanceof ShoalError) return error;
  return new ShoalError(ErrorCode.INVALID_ARGUMENT, `entries[${position}]: ${(error as Error).message}`, { cause: error });
}

function checkBatch(items: unknown, name: string): void {
  if (!Array.isArray(items)) throw new TypeError(`${name} must be an array`);
  if (items.length > BATCH_KEYS_MAX) throw invalidArgument(`${name} holds ${items.length} items; a batch holds at most ${BATCH_KEYS_MAX}`);
}
