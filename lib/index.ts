/**
 * Shoal: an embeddable database for Node.js after Aerospike's design.
 * See README.md for a quick start and ../docs for the design.
 */
export { open } from './open';
export type { OpenOptionsWithLog } from './open';
export { Db } from './db';
export type { BatchPutEntry, CloseOptions, DbStats, TruncateOptions } from './db';
export type { LeveledLogger, LogOption } from './log';
export { ShoalError, ErrorCode } from './errors';
export { op } from './namespace/semantics';
export type { ExistsPolicy, Operation, RemoveOptions, WriteOptions } from './namespace/semantics';
export { cdt } from './model/cdt/builders';
export type { CdtOperation, ContextLevel, ContextOptions, ListPolicy, MapPolicy } from './model/cdt/builders';
export { ListOrder, ListSortFlags, ListWriteFlags, MapOrder, MapWriteFlags, ReturnType } from './model/cdt/codes';
export type { NamespaceStats, ReadOptions, ScanOptions, ShoalRecord, StartMode, WriteResult } from './namespace/namespace';
export type { DigestKey, Key, KeyValue, UserKey } from './model/key';
export type { Bins, BinsOf, BinValue } from './model/bins';
import type { ShoalRecord } from './namespace/namespace';
import type { Bins } from './model/bins';
/**
 * @deprecated Use ShoalRecord: this name shadows TypeScript's global Record<K, V> wherever it
 * is imported. Kept through 0.2.x, removed in 0.3.0.
 */
export type Record<B = Bins> = ShoalRecord<B>;
export type { DeviceStorageOptions, EvictOptions, MemoryStorageOptions, MetricsOptions, NamespaceOptions, OpenClusterOptions, OpenOptions } from './options';
export type { DbStatus } from './metrics';
export type { Cluster, ClusterState } from './cluster/index';
export type { Service, ServiceStats } from './service/server';
export type { ServiceOptions } from './service/options';
export type { Xdr, XdrState, XdrDestinationState, XdrOptions, XdrDestinationOptions, WaitForShippedOptions } from './xdr/index';
export { writeAsbackup, restoreAsbackup, readAsbackup, backupToFile, restoreFromFile, verifyBackupFile } from './backup/index';
export type { AsbackupRecord, WriteAsbackupOptions, RestoreAsbackupOptions, BackupOptions, BackupProgress, BackupResult, RemoteOptions, RestoreOptions, RestorePolicy, RestoreProgress, RestoreResult } from './backup/index';
export { PARTITION_COUNT } from './constants';
export { digestOf, partitionOf } from './model/digest';
export { exp } from './model/exp/builders';
export { ExpType, ParticleType, RegexFlags } from './model/exp/codes';
export { ExpReadFlags, ExpWriteFlags } from './model/exp/operation';
export type { ExpOperation } from './model/exp/operation';
export type { Expression } from './model/exp/expression';
