/**
 * What the cluster needs from the local database (implemented by lib/db.ts over its
 * namespaces; by an in-memory fake in the cluster's unit tests). Everything crossing this
 * interface is plain data that msgpackr can carry, because requests and results travel
 * between nodes unchanged.
 */
import type { RecordVersion } from '../namespace/namespace';

export type { RecordVersion };

/**
 * A client operation, described as data so it can be forwarded to the partition's master.
 * The cluster reads only `kind`, `ns`, `digest` and `partitions`; `operation` is opaque to it
 * (the Db encodes the call and its arguments there and decodes them in executeLocal).
 */
export type ClusterRequest =
  | {
      kind: 'record';
      ns: string;
      digest: Buffer;
      operation: unknown;
      /**
       * True for an operation that changes nothing (a read): it may be sent again freely. A
       * write is never sent twice blindly (docs/cluster.md, "Errors that tell the truth").
       */
      readOnly?: boolean;
    }
  | { kind: 'scan'; ns: string; partitions: number[]; operation: unknown };

/** The outcome of one item of a batch: its value, or its error. */
export type BatchItemOutcome = { value: unknown } | { error: WireError };

/** The outcome of executing a request locally. */
export interface LocalResult {
  /** The value returned to the caller (plain data). */
  value: unknown;
  /**
   * Record versions this request created or changed (tombstones for removes), in the order
   * written; the master ships each to every replica before the caller is answered.
   */
  writes: { ns: string; version: RecordVersion }[];
}

/** An error raised by executeLocal, carried to the calling node as plain data. */
export interface WireError {
  code: string;
  message: string;
}

export interface LocalStore {
  /** Names of the namespaces of this database (identical on every node of a cluster). */
  namespaceNames(): string[];
  /**
   * Executes a request on local data, as master of its partition(s). Rejects with a
   * ShoalError (or any error with a string `code`) for a failure the caller should see.
   */
  executeLocal(request: ClusterRequest): Promise<LocalResult>;
  /**
   * Executes many single-record operations of one namespace on local data, as master of their
   * partitions (batchPut and batchGet in cluster mode): `operations[i]` is an operation as
   * executeLocal takes it, on the record with digest `digests[i]`. Resolves to each item's
   * result or error, in order; one item's failure never stops the others. Optional: without
   * it the data plane runs executeLocal per item.
   */
  executeLocalBatch?(ns: string, digests: Buffer[], operations: unknown[]): Promise<(LocalResult | { error: WireError })[]>;
  /** The local version of a record, tombstones included; undefined if none. */
  readRecordVersion(ns: string, digest: Buffer): Promise<RecordVersion | undefined>;
  /**
   * Stores `version` if it wins over the local copy by the namespace's conflict rule
   * (generation, then last-update time by default). Idempotent.
   */
  applyRecordVersion(ns: string, version: RecordVersion): Promise<'applied' | 'stale'>;
  /**
   * applyRecordVersion for each version in order (a replicated batch), in one call: each
   * version's outcome. Rejects at the first version it cannot apply (those before it stay
   * applied, as with one call each). Optional: without it the data plane applies them one by one.
   */
  applyRecordVersions?(ns: string, versions: readonly RecordVersion[]): Promise<('applied' | 'stale')[]>;
  /** Every local record version of one partition, tombstones included. */
  iteratePartition(ns: string, partitionId: number): AsyncIterable<RecordVersion>;
  /** Removes every local record of one partition; returns how many. */
  dropPartition(ns: string, partitionId: number): Promise<number>;
  /** Local record counts per partition (length 4096). */
  partitionCounts(ns: string): ArrayLike<number>;
  /**
   * Cluster-wide truncate (lib/cluster/truncation.ts); a store without these two refuses it.
   * The cuts applied here, every namespace's; shared with peers through heartbeats.
   */
  truncateCuts?(): ClusterTruncateCut[];
  /**
   * Applies a cut to local data (and keeps it, so versions it removed are refused from now
   * on); resolves to how many local records it removed once this node's clock is past the cut.
   */
  applyTruncate?(cut: ClusterTruncateCut): Promise<number>;
  /**
   * The later of this node's write clock (the hybrid clock) and every stamp a write here took,
   * either of which can run ahead of the wall clock; a cut of "now" is taken past every member's.
   */
  writeClockMs?(): number;
}

/** A truncate as the cluster carries it: namespace, set (null: every set) and the cut time. */
export interface ClusterTruncateCut {
  ns: string;
  set: string | null;
  beforeMs: number;
}
