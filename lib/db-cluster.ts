/**
 * Cluster mode seen from the Db: how a call becomes a request the cluster can forward to the
 * partition's master, and the LocalStore the cluster uses to execute requests, replicate and
 * migrate over this Db's namespaces.
 */
import { MAX_TRUNCATE_CLOCK_LEAD_MS } from './cluster/constants';
import type { ClusterRequest, ClusterTruncateCut, LocalResult, LocalStore } from './cluster/local-store';
import { coveredBy, isTruncated } from './model/truncate-cuts';
import { ErrorCode, ShoalError, invalidArgument } from './errors';
import type { Bins } from './model/bins';
import { digestOf } from './model/digest';
import type { Key } from './model/key';
import type { Namespace, ReadOptions, RecordVersion, ShoalRecord } from './namespace/namespace';
import { checkOperations, type Operation, type RemoveOptions, type WriteOptions } from './namespace/semantics';
import { callFromWire, callToWire, recordToWire } from './db-cluster-values';
import { checkFilter } from './namespace/filter';

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
  return { kind: 'record', ns: call.key.ns, digest: digestOfKey(call.key), operation: callToWire(call) };
}

/**
 * The LocalStore over a Db's namespaces. Requests arrive from any node already validated by
 * the Db that took the call, but are checked again here: a peer is not trusted to send only
 * well-formed requests.
 */
export class DbLocalStore implements LocalStore {
  constructor(private readonly namespaces: Map<string, Namespace>) {}

  namespaceNames(): string[] {
    return [...this.namespaces.keys()];
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
      const records: ShoalRecord[] = [];
      const filter = call.filter instanceof Uint8Array ? call.filter : undefined;
      if (filter !== undefined) checkFilter(filter);
      for await (const record of ns.scan(typeof call.set === 'string' ? call.set : undefined, { partitions: request.partitions, filter })) {
        records.push(recordToWire(record));
      }
      return { value: records, writes: [] };
    }
    const call = callFromWire(request.operation as RecordCall);
    if (call === null || typeof call !== 'object' || call.key === null || typeof call.key !== 'object') {
      throw invalidArgument('malformed cluster request');
    }
    const digest = request.digest;
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

  async readRecordVersion(ns: string, digest: Buffer): Promise<RecordVersion | undefined> {
    return this.namespace(ns).readVersion(digest);
  }

  async applyRecordVersion(ns: string, version: RecordVersion): Promise<'applied' | 'stale'> {
    const namespace = this.namespace(ns);
    // A copy that a truncate here removed (sent by a node that missed the truncate) stays removed.
    if (isTruncated(namespace.truncateCuts(), version.setName, version.lastUpdateMs)) return 'stale';
    return (await namespace.applyVersion(version)) ? 'applied' : 'stale';
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
    // A peer's clock may run a little ahead of this one, but not a cut far in the future: it
    // would spare this node's writes now and remove them at its next cold start.
    if (cut.beforeMs > Date.now() + MAX_TRUNCATE_CLOCK_LEAD_MS) throw invalidArgument(`truncate cut ${cut.beforeMs} is more than ${MAX_TRUNCATE_CLOCK_LEAD_MS} ms ahead of this node's clock`);
    const set = cut.set ?? undefined;
    const removed = coveredBy(namespace.truncateCuts(), { set, beforeMs: cut.beforeMs }) ? 0 : await namespace.truncate(set, cut.beforeMs);
    // Writes this node acknowledges from now on must be stamped at or after the cut (bounded:
    // a clock far behind the cutting node's is a clock-skew problem the docs name).
    const waitEndMs = Date.now() + MAX_TRUNCATE_CLOCK_LEAD_MS;
    while (Date.now() < cut.beforeMs && Date.now() < waitEndMs) await new Promise((resolve) => setTimeout(resolve, 1));
    return removed;
  }

  partitionCounts(ns: string): ArrayLike<number> {
    const namespace = this.namespace(ns);
    if (namespace.partitionCounts === undefined) {
      throw new ShoalError(ErrorCode.CLUSTER_ERROR, `namespace ${ns} cannot count records per partition`);
    }
    return namespace.partitionCounts();
  }
}
