/**
 * A namespace's native primary index as files and segments: the names of its shared-memory
 * segments and of its lock file, taking the lock, creating (or attaching) the index, dropping
 * its segments, and the metadata a clean close left beside it. The segment name is derived
 * from the data directory's real path and the namespace, so two databases never share
 * segments and the same database finds its own again after a restart (docs/index.md).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ErrorCode, ShoalError, fromNativeError } from '../errors';
import { addon, NativePrimaryIndex } from '../native/addon';
import type { Exchange } from '../native/exchange';

/** "/shoal-<16 hex of sha256(realpath(dataDir))>-<namespace>" */
export function segmentBaseName(dataDir: string, namespace: string): string {
  const real = fs.realpathSync(dataDir);
  const hash = createHash('sha256').update(real).digest('hex').slice(0, 16);
  return `/shoal-${hash}-${namespace}`;
}

/** The lock file that makes one Db the owner of a namespace: "<dataDir>/<namespace>.lock". */
export function lockFilePath(dataDir: string, namespace: string): string {
  return path.join(dataDir, `${namespace}.lock`);
}

/**
 * Takes the namespace's lock file (one Db owns a namespace's data at a time; made with exactly
 * `fileMode` when it is new) and returns its descriptor, for addon().unlockFile at close.
 * @throws ShoalError LOCKED when another Db, in this process or another, holds it.
 */
export function lockNamespace(dataDir: string, namespace: string, fileMode: number): number {
  try {
    return addon().lockFile(lockFilePath(dataDir, namespace), fileMode);
  } catch (error) {
    const wrapped = fromNativeError(error, `namespace ${namespace}`);
    if (wrapped.code !== ErrorCode.LOCKED) throw wrapped;
    throw new ShoalError(ErrorCode.LOCKED, `namespace ${namespace} is already open in another Db (this process or another); close it first`, { cause: error });
  }
}

/**
 * The namespace's primary index, not yet opened: in shared memory (segments named after the
 * data directory and the namespace, made with exactly `fileMode`) or in private memory.
 * Without shared memory, the segments an earlier run left are removed first: this run changes
 * the data they describe, so a later shared run must never attach them (docs/index.md, "Which
 * segments may be attached").
 * @throws ShoalError IO_ERROR when segments cannot be removed or memory not had.
 */
export function createIndex(dataDir: string, namespace: string, shared: boolean, exchange: Exchange, withData: boolean, fileMode: number): NativePrimaryIndex {
  try {
    if (!shared) dropSegments(dataDir, namespace);
    return new (addon().PrimaryIndex)({ name: segmentBaseName(dataDir, namespace), shared, exchange: exchange.buffer, withData, fileMode });
  } catch (error) {
    throw fromNativeError(error, `namespace ${namespace}: cannot create its index`);
  }
}

/** Removes every shared-memory segment of the namespace's index (none there is fine). @throws Error from shm_unlink. */
export function dropSegments(dataDir: string, namespace: string): void {
  addon().unlinkIndexSegments(segmentBaseName(dataDir, namespace));
}

/** The metadata a clean close wrote beside the index, when it parses and `accepts` it; else undefined. */
export function readIndexMeta<T>(index: NativePrimaryIndex, accepts: (meta: T) => boolean): T | undefined {
  try {
    const meta = JSON.parse(index.readMeta().toString('utf8')) as T;
    return accepts(meta) ? meta : undefined;
  } catch {
    return undefined;
  }
}
