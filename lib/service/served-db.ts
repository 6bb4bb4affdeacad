/**
 * What the service listener calls of the Db: its public record API, nothing more. lib/db.ts
 * implements it; the service depends on this interface, not on the Db, so the Db can start the
 * listener without an import cycle.
 */
import type { Cluster } from '../cluster/cluster-api';
import type { Bins } from '../model/bins';
import type { Key } from '../model/key';
import type { NamespaceStats, ReadOptions, ScanOptions, ShoalRecord, WriteResult } from '../namespace/namespace';
import type { Operation, RemoveOptions, WriteOptions } from '../namespace/semantics';

export interface ServedDb {
  readonly cluster: Cluster | undefined;
  put(key: Key, bins: Bins, opts?: WriteOptions): Promise<WriteResult>;
  get(key: Key, opts?: ReadOptions): Promise<ShoalRecord | undefined>;
  getSync(key: Key, opts?: ReadOptions): ShoalRecord | undefined;
  remove(key: Key, opts?: RemoveOptions): Promise<boolean>;
  touch(key: Key, ttl?: number): Promise<WriteResult>;
  operate(key: Key, ops: Operation[], opts?: WriteOptions): Promise<ShoalRecord>;
  scan(ns: string, set?: string, opts?: ScanOptions): AsyncIterable<ShoalRecord>;
  truncate(ns: string, set?: string, opts?: { before?: Date | number }): Promise<number>;
  stats(): { namespaces: Record<string, NamespaceStats>; clusterSize: number; clusterKey: string; migratePartitionsRemaining: number };
}
