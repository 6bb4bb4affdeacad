/**
 * What every namespace offers the Db: the single-record operations, scans, truncation and
 * statistics. Memory namespaces answer synchronously (a value); device namespaces may answer
 * with a promise. The Db validates arguments that are common to all namespaces before it
 * calls in; namespaces validate the rest.
 */
import type { TruncateCut } from '../model/truncate-cuts';
import type { Bins } from '../model/bins';
import type { Key } from '../model/key';
import type { NamespaceConfig } from './config';
import type { Operation, RemoveOptions, WriteOptions } from './semantics';
import type { Filter } from './filter';
import type { ShoalError } from '../errors';

/**
 * A record as returned to callers. B is the bins' shape as the caller asserts it
 * (`db.get<Session>(key)`); Shoal checks bins' values on writes, not their shape on reads.
 */
export interface ShoalRecord<B = Bins> {
  key: Key;
  bins: B;
  gen: number;
  /** Seconds left, or -1 for never expires. */
  ttl: number;
}

export interface WriteResult {
  gen: number;
  ttl: number;
}

export interface ReadOptions {
  /** Only these bins. */
  bins?: string[];
  /** Only if this exp.* expression is true for the record (get: else FILTERED_OUT; batchGet: else undefined). */
  filter?: Filter;
}

export interface ScanOptions {
  /** Only records of these partition ids (0..4095). */
  partitions?: number[];
  /** Only the records this exp.* expression is true for. */
  filter?: Filter;
}

/**
 * How a namespace started: 'new' (nothing on its devices), 'warm' (a clean close's index
 * attached), 'recovered' (an index checkpoint loaded and the blocks since replayed, after a
 * crash or a reboot), 'cold' (the index rebuilt by scanning every device).
 */
export type StartMode = 'warm' | 'recovered' | 'cold' | 'new';

/** Per-namespace statistics, named after Aerospike's. */
export interface NamespaceStats {
  objects: number;
  masterObjects: number;
  replicaObjects: number;
  tombstones: number;
  memoryUsedBytes: number;
  indexUsedBytes: number;
  dataUsedBytes: number;
  deviceUsedBytes: number;
  deviceFreePct: number;
  evicted: number;
  expired: number;
  defragPending: number;
  startMode: StartMode;
  startMs: number;
  directIo: 'on' | 'off' | 'n/a';
  [extra: string]: unknown;
}

/**
 * One version of one record, as replication and migration move it between nodes: the
 * metadata and the opaque payload bytes (docs/record-payload.md).
 */
export interface RecordVersion {
  digest: Buffer;
  gen: number;
  voidTime: number;
  lastUpdateMs: number;
  setName: string;
  tombstone: boolean;
  payload: Buffer | undefined;
}

export type MaybePromise<T> = T | Promise<T>;

/**
 * The key of a batch entry's bins already encoded: a keyless payload of format 1
 * (docs/record-payload.md) whose bytes were checked by payloadWellFormed
 * (lib/model/payload-check.ts). Cluster mode sets it on the puts a peer sent as payload bytes;
 * the batch path then copies them instead of encoding `bins` (which it reads only for the
 * per-record path). A symbol, so no caller's object can carry it by accident or on purpose.
 */
export const ENCODED_BINS: unique symbol = Symbol('shoal.encodedBins');

/** A batchPut entry as the caller gave it. */
export interface BatchEntry {
  key: Key;
  bins: Bins;
  opts?: WriteOptions;
  [ENCODED_BINS]?: Buffer;
}

/**
 * batchPut's entries for one namespace, validated by the Db (key, bins, options):
 * entries[positions[0]], entries[positions[1]], ... in order; `options` applies to those
 * without opts of their own. Results go to the same positions.
 */
export interface BatchPutRequest {
  entries: readonly BatchEntry[];
  positions: readonly number[];
  options: WriteOptions | undefined;
  /**
   * The caller's checks of the entry at a position, run as the namespace reaches it (so a
   * large batch's checks are sliced with its native calls): the error to fail it with, or
   * undefined.
   */
  check?: (position: number) => ShoalError | undefined;
  /**
   * When given, the version each entry the batch path wrote left is put here at its position
   * (cluster mode replicates it without reading the record back); entries the per-record path
   * took, and failed ones, get none.
   */
  versions?: (RecordVersion | undefined)[];
}

export type BatchOutcome = WriteResult | ShoalError;
/** Results by entry position: a value, or a promise that resolves (never rejects) to one. */
export type BatchResults = (BatchOutcome | Promise<BatchOutcome> | undefined)[];

export interface Namespace {
  readonly config: NamespaceConfig;
  readonly startMode: StartMode;
  readonly startMs: number;
  /** Whether getSync can serve this namespace. */
  readonly servesSync: boolean;

  put(key: Key, bins: Bins, options: WriteOptions | undefined): MaybePromise<WriteResult>;
  /**
   * batchPut's entries for this namespace (validated by the Db): each entry's result, error or
   * a promise of one (never rejecting) goes to results at its position; resolves once every
   * entry has one. lib/namespace/batch-put.ts.
   */
  putMany(request: BatchPutRequest, results: BatchResults): Promise<void>;
  get(key: Key, options: ReadOptions | undefined): MaybePromise<ShoalRecord | undefined>;
  getSync(key: Key, options: ReadOptions | undefined): ShoalRecord | undefined;
  exists(key: Key): MaybePromise<boolean>;
  remove(key: Key, options: RemoveOptions | undefined): MaybePromise<boolean>;
  touch(key: Key, ttl: number | undefined): MaybePromise<WriteResult>;
  operate(key: Key, operations: Operation[], options: WriteOptions | undefined): MaybePromise<ShoalRecord>;
  scan(set: string | undefined, options: ScanOptions | undefined): AsyncIterable<ShoalRecord>;
  /** Removes the records of a set (undefined: every set) last updated before beforeMs, and keeps the cut. */
  truncate(set: string | undefined, beforeMs: number): Promise<number>;
  /** The truncate cuts this namespace has applied. */
  truncateCuts(): readonly TruncateCut[];
  /** Every set a record of this namespace was ever written to, with the records it holds now (a sliced walk of the index). */
  setObjects(): Promise<Map<string, number>>;
  stats(): NamespaceStats;
  /** Flushes and releases everything; with dropIndex the shared-memory index is freed. */
  close(dropIndex: boolean): Promise<void>;

  // Cluster hooks: raw record versions for replication and migration.
  readVersion(digest: Buffer): MaybePromise<RecordVersion | undefined>;
  /** Stores a version if it wins over the local copy by the conflict rule; returns whether it did. */
  applyVersion(version: RecordVersion): MaybePromise<boolean>;
  /** applyVersion for many versions at once (a replicated batch): whether each won. */
  applyVersions(versions: readonly RecordVersion[]): Promise<boolean[]>;
  /** Every local record version of one partition. */
  partitionVersions(partitionId: number): AsyncIterable<RecordVersion>;
  /** Removes every local record of one partition (after it has moved away). */
  dropPartition(partitionId: number): Promise<number>;
  /** Live records per partition id (length 4096); cheap enough to call per partition. */
  partitionCounts?(): ArrayLike<number>;
}
