/**
 * Cluster mode seen from the Db: how a call becomes a request the cluster can forward to the
 * partition's master, and the LocalStore the cluster uses to execute requests, replicate and
 * migrate over this Db's namespaces.
 */
import { PARTITION_COUNT } from './constants';
import { DATA_PLANE_SLICE_RECORDS, MAX_TRUNCATE_CUT_LEAD_MS } from './cluster/constants';
import type { BatchItemOutcome, ClusterRequest, ClusterTruncateCut, LocalResult, LocalStore, WireError } from './cluster/local-store';
import { coveredBy, isTruncated } from './model/truncate-cuts';
import { ErrorCode, ShoalError, invalidArgument } from './errors';
import { checkBinName, checkBins, decodePayloadBins, isPlainObject } from './model/bins';
import type { Bins } from './model/bins';
import { digestOf, digestsOf } from './model/digest';
import { checkKeyShape, describe } from './model/key';
import type { Key } from './model/key';
import type { BatchOutcome, BatchResults } from './namespace/namespace';
import type { Namespace, ReadOptions, RecordVersion, ScanOptions, ShoalRecord } from './namespace/namespace';
import { checkOperations, checkRemoveOptions, checkTtl, checkWriteOptions, hasBins } from './namespace/semantics';
import type { Operation, RemoveOptions, WriteOptions } from './namespace/semantics';
import { callFromWire, callToWire, recordToWire } from './db-cluster-values';
import { checkFilter } from './namespace/filter';
import { payloadWellFormed } from './model/payload-check';
import { PayloadPut, PutItemEncoder, decodePutItem, isPutItem, writeResultToWire } from './db-batch-wire';
import { checkOptionNames } from './option-names';

const READ_OPTION_NAMES: ReadonlySet<string> = new Set(['bins', 'filter']);
const SCAN_OPTION_NAMES: ReadonlySet<string> = new Set(['partitions', 'filter']);

/** A single-record call, as data. */
export type RecordCall =
  | { method: 'get'; key: Key; opts?: ReadOptions }
  | { method: 'exists'; key: Key }
  | { method: 'put'; key: Key; bins: Bins; opts?: WriteOptions }
  | { method: 'remove'; key: Key; opts?: RemoveOptions }
  | { method: 'touch'; key: Key; ttl?: number }
  | { method: 'operate'; key: Key; ops: Operation[]; opts?: WriteOptions };

/** A scan of some partitions, as data. */
export interface ScanCall {
  set?: string;
  /** The filter expression's bytes (exp.*). */
  filter?: Uint8Array;
}

/** The digest a key addresses: its own, or computed from set and key. */
export function digestOfKey(key: Key): Buffer {
  if (key.key === undefined || key.key === null) return Buffer.from(key.digest as Uint8Array);
  return digestOf(key.set, key.key);
}

/** The request for a single-record call (the key travels as given, plus its digest). */
export function recordRequest(call: RecordCall): ClusterRequest {
  const readOnly = call.method === 'get' || call.method === 'exists';
  return { kind: 'record', ns: call.key.ns, digest: digestOfKey(call.key), operation: callToWire(call), readOnly };
}

/**
 * Checks read options as the public API does.
 * @throws TypeError for options of the wrong type; ShoalError INVALID_ARGUMENT for a bad bin name.
 */
export function checkReadOptions(opts: unknown): asserts opts is ReadOptions | undefined {
  if (opts === undefined) return;
  if (opts === null || typeof opts !== 'object') throw new TypeError('read options must be an object');
  checkOptionNames(opts, READ_OPTION_NAMES, 'read options');
  checkFilter((opts as ReadOptions).filter);
  const bins = (opts as ReadOptions).bins;
  if (bins === undefined) return;
  if (!Array.isArray(bins)) throw new TypeError('opts.bins must be an array of bin names');
  for (const name of bins) {
    if (typeof name !== 'string') throw new TypeError(`opts.bins holds ${describe(name)}; bin names are strings`);
    checkBinName(name);
  }
}

/**
 * Checks scan options as the public API does.
 * @throws TypeError for options of the wrong type; ShoalError INVALID_ARGUMENT for a bad partition id.
 */
export function checkScanOptions(opts: unknown): asserts opts is ScanOptions | undefined {
  if (opts === undefined) return;
  if (opts === null || typeof opts !== 'object') throw new TypeError('scan options must be an object');
  checkOptionNames(opts, SCAN_OPTION_NAMES, 'scan options');
  checkFilter((opts as ScanOptions).filter);
  const partitions = (opts as ScanOptions).partitions;
  if (partitions === undefined) return;
  if (!Array.isArray(partitions)) throw new TypeError('opts.partitions must be an array of partition ids');
  for (const id of partitions) {
    if (typeof id !== 'number') throw new TypeError(`opts.partitions holds ${describe(id)}; partition ids are integers`);
    if (!Number.isInteger(id) || id < 0 || id >= PARTITION_COUNT) throw invalidArgument(`partition id ${String(id)} is not in 0..${PARTITION_COUNT - 1}`);
  }
}

/**
 * Checks a single-record call with the rules the Db's public methods apply to their arguments
 * (a forwarded call comes from a peer, and is checked again on the master), and that it
 * addresses the record its request names: the key's namespace and digest are the request's.
 * @throws ShoalError INVALID_ARGUMENT naming what is wrong.
 */
export function checkRecordCall(call: unknown, ns: string, digest: Buffer): asserts call is RecordCall {
  checkCallShape(call, ns, false);
  if (!digestOfKey(call.key).equals(digest)) throw invalidArgument("malformed cluster request: the key's digest is not the request's");
}

/**
 * checkRecordCall without the digest (a batch checks its digests together, digestsOf). With
 * `storeChecksBins`, a put's bins are left to the namespace's batch path, which checks them
 * as it encodes them and gives the errors checkBins gives.
 */
function checkCallShape(call: unknown, ns: string, storeChecksBins: boolean): asserts call is RecordCall {
  try {
    if (call === null || typeof call !== 'object') throw new TypeError('the call is not an object');
    const c = call as RecordCall;
    checkKeyShape(c.key);
    if (c.key.ns !== ns) throw new TypeError(`the key's namespace ${JSON.stringify(c.key.ns)} is not the request's ${JSON.stringify(ns)}`);
    switch (c.method) {
      case 'get':
        return checkReadOptions(c.opts);
      case 'exists':
        return;
      case 'put':
        // Bins that came encoded were checked by their walk (PayloadPut), and are not decoded here.
        if (c instanceof PayloadPut) {
          if (!storeChecksBins) checkBins(c.bins, true);
        } else if (storeChecksBins) {
          if (!isPlainObject(c.bins)) checkBins(c.bins, true);
        } else checkBins(c.bins, true);
        return checkWriteOptions(c.opts);
      case 'remove':
        return checkRemoveOptions(c.opts);
      case 'touch':
        if (c.ttl !== undefined) checkTtl(c.ttl);
        return;
      case 'operate':
        checkOperations(c.ops);
        return checkWriteOptions(c.opts);
      default:
        throw new TypeError(`unknown operation ${JSON.stringify((c as { method?: unknown }).method)}`);
    }
  } catch (error) {
    if (error instanceof ShoalError) throw error;
    throw invalidArgument(`malformed cluster request: ${(error as Error).message}`);
  }
}

/**
 * A batch item as batchPut and batchGet send it to a master (ClusterNode.executeBatch): the
 * call as a single request carries it (callToWire: Map bins as payload bytes, filters as
 * bytes), decoded and checked on the master as a forwarded call is.
 */
export type BatchCall = unknown;

/**
 * The checks of a batchPut entry's bins and options that come before its bins are encoded
 * (batchPutCall checks the rest as it encodes them), giving a put's errors in a put's order:
 * bins that are not a plain object, then bad bins beside bad options, then the options.
 * @throws TypeError or ShoalError INVALID_ARGUMENT as put does.
 */
export function checkPutShape(bins: unknown, opts: WriteOptions | undefined): void {
  if (!isPlainObject(bins)) checkBins(bins, true);
  if (opts === undefined) return;
  try {
    checkWriteOptions(opts);
  } catch (error) {
    checkBins(bins, true);
    throw error;
  }
}

/**
 * The batch item of a put: its binary form (lib/db-batch-wire.ts) when that can carry it, else
 * the msgpack call. The bins are checked here (as checkBins(bins, true) checks them: the
 * encoder checks as it writes, checkBins runs only when it cannot vouch for them).
 * @throws what checkBins throws for bad bins.
 */
export function batchPutCall(key: Key, bins: Bins, opts: WriteOptions | undefined, encoder: PutItemEncoder): BatchCall {
  const item = encoder.encode(key, bins, opts);
  if (item !== undefined) return item;
  checkBins(bins, true);
  return callToWire({ method: 'put', key, bins, opts });
}

/** The batch item of a get. */
export function batchGetCall(key: Key, opts: ReadOptions | undefined): BatchCall {
  return callToWire({ method: 'get', key, opts });
}

/** A batch item (from a peer: untrusted) as the call it stands for; throws INVALID_ARGUMENT if it is not one. */
function callOfBatchItem(item: unknown, ns: string): RecordCall {
  if (isPutItem(item)) return decodePutItem(item, ns);
  if (item === null || typeof item !== 'object' || ((item as { method?: unknown }).method !== 'put' && (item as { method?: unknown }).method !== 'get')) {
    throw invalidArgument('malformed cluster batch item');
  }
  const call = callFromWire(item as RecordCall);
  if (call.key !== null && typeof call.key === 'object' && call.key.ns !== ns) throw invalidArgument('malformed cluster batch item: another namespace');
  return call;
}

/**
 * The LocalStore over a Db's namespaces. Requests arrive from any node already validated by
 * the Db that took the call, but are checked again here: a peer is not trusted to send only
 * well-formed requests.
 */
export class DbLocalStore implements LocalStore {
  constructor(private readonly namespaces: Map<string, Namespace>) {}

  /** Kept: the data plane asks for every message it checks, and the namespaces never change. */
  private names: string[] | undefined;

  namespaceNames(): string[] {
    return (this.names ??= [...this.namespaces.keys()]);
  }

  private namespace(name: unknown): Namespace {
    const ns = typeof name === 'string' ? this.namespaces.get(name) : undefined;
    if (ns === undefined) throw invalidArgument(`unknown namespace ${JSON.stringify(name)} on this node`);
    return ns;
  }

  async executeLocal(request: ClusterRequest): Promise<LocalResult> {
    const ns = this.namespace(request.ns);
    if (request.kind === 'scan') {
      const call = (request.operation ?? {}) as ScanCall;
      if (call === null || typeof call !== 'object' || (call.set !== undefined && call.set !== null && typeof call.set !== 'string')) {
        throw invalidArgument('malformed cluster scan: set must be a string when given');
      }
      checkScanOptions({ partitions: request.partitions });
      const records: ShoalRecord[] = [];
      const filter = call.filter instanceof Uint8Array ? call.filter : undefined;
      if (filter !== undefined) checkFilter(filter);
      for await (const record of ns.scan(typeof call.set === 'string' ? call.set : undefined, { partitions: request.partitions, filter })) {
        records.push(recordToWire(record));
      }
      return { value: records, writes: [] };
    }
    const digest = Buffer.from(request.digest);
    const call = callFromWire(request.operation as RecordCall);
    checkRecordCall(call, request.ns, digest);
    return this.executeCall(ns, digest, call);
  }

  /** Runs a checked single-record call. */
  private async executeCall(ns: Namespace, digest: Buffer, call: RecordCall): Promise<LocalResult> {
    switch (call.method) {
      case 'get':
        return { value: recordToWire(await ns.get(call.key, call.opts)), writes: [] };
      case 'exists':
        return { value: await ns.exists(call.key), writes: [] };
      case 'put':
        return this.written(ns, digest, await ns.put(call.key, call.bins, call.opts), undefined);
      case 'touch':
        return this.written(ns, digest, await ns.touch(call.key, call.ttl), undefined);
      case 'operate': {
        // A peer is not trusted to send only well-formed operations (the Db that took the call checked them).
        checkOperations(call.ops);
        const before = await ns.readVersion(digest);
        return this.written(ns, digest, recordToWire(await ns.operate(call.key, call.ops, call.opts)), before);
      }
      case 'remove': {
        const before = await ns.readVersion(digest);
        return this.written(ns, digest, await ns.remove(call.key, call.opts), before);
      }
      default:
        throw invalidArgument(`unknown cluster operation ${JSON.stringify((call as { method?: unknown }).method)}`);
    }
  }

  /**
   * The result plus the version the call left, for the replicas: the record as stored now,
   * or, when it is gone, a tombstone one generation past the copy it removed.
   */
  private async written(ns: Namespace, digest: Buffer, value: unknown, before: RecordVersion | undefined): Promise<LocalResult> {
    const after = await ns.readVersion(digest);
    if (after !== undefined) return { value, writes: [{ ns: ns.config.name, version: after }] };
    if (before === undefined || before.tombstone) return { value, writes: [] };
    const tombstone: RecordVersion = {
      digest,
      gen: before.gen + 1,
      voidTime: 0,
      lastUpdateMs: Math.max(Date.now(), before.lastUpdateMs + 1),
      setName: before.setName,
      tombstone: true,
      payload: undefined,
    };
    return { value, writes: [{ ns: ns.config.name, version: tombstone }] };
  }

  /**
   * batchPut and batchGet in cluster mode, on this node as master: each item (a BatchCall) is
   * checked as executeLocal checks a call, the digests of all together; puts then go through
   * the namespace's batch path (putMany) together, anything else one by one. Each item gets
   * its result with the version it wrote, or its error.
   */
  async executeLocalBatch(nsName: string, digests: Buffer[], operations: unknown[]): Promise<(LocalResult | { error: WireError })[]> {
    const ns = this.namespace(nsName);
    const results: (LocalResult | { error: WireError } | Promise<LocalResult | { error: WireError }>)[] = new Array(digests.length);
    const calls: (RecordCall | undefined)[] = new Array(digests.length);
    for (let i = 0; i < digests.length; i++) {
      try {
        const call = callOfBatchItem(operations[i], nsName);
        checkCallShape(call, nsName, true);
        calls[i] = call;
      } catch (error) {
        results[i] = { error: wireError(error) };
      }
    }
    this.checkBatchDigests(calls, digests, results);
    const puts: Extract<RecordCall, { method: 'put' }>[] = [];
    const putItems: number[] = [];
    calls.forEach((call, i) => {
      if (call === undefined || results[i] !== undefined) return;
      // Filtered puts take the per-record path, where the filter meets the record.
      if (call.method === 'put' && call.opts?.filter === undefined) {
        puts.push(call);
        putItems.push(i);
      } else {
        results[i] = this.executeCall(ns, digests[i]!, call).catch((error: unknown) => ({ error: wireError(error) }));
      }
    });
    if (puts.length > 0) await this.putBatch(ns, puts, putItems, digests, results);
    return Promise.all(results);
  }

  /** Items whose key does not hash to the digest they came with get an error. */
  private checkBatchDigests(calls: (RecordCall | undefined)[], digests: Buffer[], results: unknown[]): void {
    const checked: number[] = [];
    for (let i = 0; i < calls.length; i++) if (calls[i] !== undefined) checked.push(i);
    let computed: Buffer;
    try {
      computed = digestsOf(checked.map((i) => calls[i]!.key));
    } catch {
      // A key of the wrong type or size: find it one by one.
      for (const i of checked) {
        try {
          if (!digestOfKey(calls[i]!.key).equals(digests[i]!)) throw invalidArgument("malformed cluster request: the key's digest is not the request's");
        } catch (error) {
          results[i] = { error: wireError(error) };
        }
      }
      return;
    }
    checked.forEach((i, k) => {
      if (computed.compare(digests[i]!, 0, 20, k * 20, k * 20 + 20) !== 0) results[i] = { error: wireError(invalidArgument("malformed cluster request: the key's digest is not the request's")) };
    });
  }

  /** The puts of a batch through the namespace's putMany; each successful one with the version it left. */
  private async putBatch(ns: Namespace, entries: Extract<RecordCall, { method: 'put' }>[], items: number[], digests: Buffer[], results: unknown[]): Promise<void> {
    const outcomes: BatchResults = new Array(entries.length);
    // The batch path hands back the version each entry it wrote left; only entries the
    // per-record path took are read back.
    const versions: (RecordVersion | undefined)[] = new Array(entries.length);
    // Only a PayloadPut carries its bins encoded (a symbol-keyed field no decoded call can have).
    await ns.putMany({ entries, positions: entries.map((_, k) => k), options: undefined, versions }, outcomes);
    for (let k = 0; k < entries.length; k++) {
      const pending = outcomes[k]!;
      const outcome = pending instanceof Promise ? await pending : pending;
      const item = items[k]!;
      if (outcome instanceof ShoalError) {
        results[item] = { error: wireError(outcome) };
        continue;
      }
      const version = versions[k] ?? (await ns.readVersion(digests[item]!));
      results[item] = { value: writeResultToWire(outcome), writes: version === undefined ? [] : [{ ns: ns.config.name, version }] };
    }
  }

  async readRecordVersion(ns: string, digest: Buffer): Promise<RecordVersion | undefined> {
    return this.namespace(ns).readVersion(digest);
  }

  async applyRecordVersion(ns: string, version: RecordVersion): Promise<'applied' | 'stale'> {
    const namespace = this.namespace(ns);
    const applied = applyChecked(namespace, version);
    return (applied instanceof Promise ? await applied : applied) ? 'applied' : 'stale';
  }

  /**
   * A replicated batch: every payload is checked before any version is applied, then the
   * versions no truncate removed go to the namespace together (its batch path: one index
   * lookup and one write call for the lot, Namespace.applyVersions).
   * @throws ShoalError INVALID_ARGUMENT for a payload that does not decode (nothing applied).
   */
  async applyRecordVersions(ns: string, versions: readonly RecordVersion[]): Promise<('applied' | 'stale')[]> {
    const namespace = this.namespace(ns);
    const outcomes: ('applied' | 'stale')[] = new Array(versions.length).fill('stale');
    const cuts = namespace.truncateCuts();
    const live: RecordVersion[] = [];
    const positions: number[] = [];
    for (let i = 0; i < versions.length; i++) {
      const version = versions[i]!;
      checkPayload(version);
      if (cuts.length > 0 && isTruncated(cuts, version.setName, version.lastUpdateMs)) continue;
      live.push(version);
      positions.push(i);
    }
    const won = await namespace.applyVersions(live);
    for (let k = 0; k < live.length; k++) if (won[k]) outcomes[positions[k]!] = 'applied';
    return outcomes;
  }

  iteratePartition(ns: string, partitionId: number): AsyncIterable<RecordVersion> {
    return this.namespace(ns).partitionVersions(partitionId);
  }

  dropPartition(ns: string, partitionId: number): Promise<number> {
    return this.namespace(ns).dropPartition(partitionId);
  }

  truncateCuts(): ClusterTruncateCut[] {
    const cuts: ClusterTruncateCut[] = [];
    for (const [name, namespace] of this.namespaces) {
      for (const cut of namespace.truncateCuts()) cuts.push({ ns: name, set: cut.set ?? null, beforeMs: cut.beforeMs });
    }
    return cuts;
  }

  async applyTruncate(cut: ClusterTruncateCut): Promise<number> {
    const namespace = this.namespace(cut.ns);
    if (cut.set !== null && (typeof cut.set !== 'string' || cut.set.length === 0)) throw invalidArgument('malformed truncate: set must be a non-empty string or null');
    if (typeof cut.beforeMs !== 'number' || !Number.isFinite(cut.beforeMs)) throw invalidArgument('malformed truncate: beforeMs must be a finite number');
    // A cut may be ahead of this node's wall clock by the clock agreement plus a hybrid clock's
    // lead, not more: the write clock is advanced to the cut, and a cut far in the future
    // would drag the stamp of every later write here with it.
    if (cut.beforeMs > Date.now() + MAX_TRUNCATE_CUT_LEAD_MS) throw invalidArgument(`truncate cut ${cut.beforeMs} is more than ${MAX_TRUNCATE_CUT_LEAD_MS} ms ahead of this node's clock`);
    const set = cut.set ?? undefined;
    // Writes this node acknowledges from now on are stamped at or after the cut: the store
    // that owns the write clock advances it past the cut (lib/xdr/store.ts truncate).
    return coveredBy(namespace.truncateCuts(), { set, beforeMs: cut.beforeMs }) ? 0 : await namespace.truncate(set, cut.beforeMs);
  }

  partitionCounts(ns: string): ArrayLike<number> {
    const namespace = this.namespace(ns);
    if (namespace.partitionCounts === undefined) {
      throw new ShoalError(ErrorCode.CLUSTER_ERROR, `namespace ${ns} cannot count records per partition`);
    }
    return namespace.partitionCounts();
  }
}

/**
 * Applies a peer's version by the namespace's conflict rule once its payload is checked;
 * whether it won. A copy that a truncate here removed (sent by a node that missed the
 * truncate) stays removed.
 * @throws ShoalError INVALID_ARGUMENT for a payload that does not decode (checkPayload).
 */
function applyChecked(namespace: Namespace, version: RecordVersion): boolean | Promise<boolean> {
  checkPayload(version);
  if (isTruncated(namespace.truncateCuts(), version.setName, version.lastUpdateMs)) return false;
  return namespace.applyVersion(version);
}

/** An error as it travels to the calling node: its code (INVALID_ARGUMENT for a TypeError) and message. */
function wireError(error: unknown): WireError {
  if (error instanceof ShoalError) return { code: error.code, message: error.message };
  return { code: ErrorCode.INVALID_ARGUMENT, message: (error as Error)?.message ?? String(error) };
}

/**
 * A replicated or migrated version's payload must decode as a record payload
 * (docs/record-payload.md): a peer's bytes are never stored unread. A payload the walk of
 * lib/model/payload-check.ts vouches for decodes by construction; any other is decoded.
 * @throws ShoalError INVALID_ARGUMENT when it does not.
 */
function checkPayload(version: RecordVersion): void {
  if (version.tombstone) return;
  const payload = version.payload;
  if (payload === undefined) throw invalidArgument('a replicated record version has no payload');
  // The usual payload is vouched for by a walk of its bytes; only the rest is decoded.
  if (payloadWellFormed(payload, 0, payload.length)) return;
  let bins: unknown;
  try {
    if (payload.length < 4 || 4 + payload.readUInt16LE(2) > payload.length) throw new Error('its key runs past its end');
    bins = decodePayloadBins(payload, 0, payload.length);
  } catch (error) {
    throw invalidArgument(`a replicated record version's payload does not decode: ${(error as Error).message}`);
  }
  if (!isPlainObject(bins) || !hasBins(bins as Bins)) throw invalidArgument("a replicated record version's payload holds no bins map");
}

/** Calls `visit(start, end)` for slices of DATA_PLANE_SLICE_RECORDS of 0..count, yielding to the event loop between slices. */
export async function forEachSlice(count: number, visit: (start: number, end: number) => void): Promise<void> {
  for (let start = 0; start < count; start += DATA_PLANE_SLICE_RECORDS) {
    if (start > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    visit(start, Math.min(count, start + DATA_PLANE_SLICE_RECORDS));
  }
}

/**
 * A batch prepared a slice of DATA_PLANE_SLICE_RECORDS at a time (`prepare(start, end)` adds
 * the slice's items to `groups`), each namespace's group run by `run`: the first namespace's
 * while its later slices are still being prepared (`more` prepares the next one, after a turn
 * of the event loop, and resolves to false once none is left), the others' once all are.
 */
export async function runSliced(
  count: number,
  groups: BatchGroups,
  prepare: (start: number, end: number) => void,
  run: (ns: string, group: { digests: Buffer[]; calls: BatchCall[]; positions: number[] }, more: (() => Promise<boolean>) | undefined) => Promise<void>,
): Promise<void> {
  let next = 0;
  const more = async (): Promise<boolean> => {
    if (next >= count) return false;
    if (next > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    const end = Math.min(count, next + DATA_PLANE_SLICE_RECORDS);
    prepare(next, end);
    next = end;
    return true;
  };
  while (groups.byNamespace.size === 0 && (await more()));
  const first = groups.byNamespace.keys().next();
  if (first.done === true) return;
  const streamed = first.value;
  await run(streamed, groups.byNamespace.get(streamed)!, more);
  while (await more());
  for (const [ns, group] of groups.byNamespace) if (ns !== streamed) await run(ns, group, undefined);
}

/** Batch items per namespace, with their digests (computed a slice at a time) and positions in the caller's list. */
export class BatchGroups {
  readonly byNamespace = new Map<string, { digests: Buffer[]; calls: BatchCall[]; positions: number[] }>();

  /** Adds a slice of items; when a key has no valid digest, `failed(position, error)` is called for it instead. */
  add(keys: Key[], calls: BatchCall[], positions: number[], failed: (position: number, error: unknown) => void): void {
    let digests: Buffer;
    try {
      digests = digestsOf(keys);
    } catch {
      // A key of the wrong type or size somewhere: one at a time, to tell which.
      keys.forEach((key, k) => {
        try {
          this.push(key.ns, digestsOf([key]), calls[k]!, positions[k]!);
        } catch (error) {
          failed(positions[k]!, error);
        }
      });
      return;
    }
    keys.forEach((key, k) => this.push(key.ns, digests.subarray(k * 20, k * 20 + 20), calls[k]!, positions[k]!));
  }

  private push(ns: string, digest: Buffer, call: BatchCall, position: number): void {
    let group = this.byNamespace.get(ns);
    if (group === undefined) this.byNamespace.set(ns, (group = { digests: [], calls: [], positions: [] }));
    group.digests.push(digest);
    group.calls.push(call);
    group.positions.push(position);
  }
}

/** A batch item's outcome from the cluster as batchPut and batchGet report it: its value, or its ShoalError. */
export function batchOutcome<T>(outcome: BatchItemOutcome): T | ShoalError {
  if ('error' in outcome) {
    const code = ShoalError.isCode(outcome.error.code) ? outcome.error.code : ErrorCode.CLUSTER_ERROR;
    return new ShoalError(code, outcome.error.message);
  }
  return outcome.value as T;
}
