/**
 * Backups in Aerospike's asbackup text format (docs/backup.md): `writeAsbackup` writes a
 * namespace (or one set) of a running Db to a file asrestore loads; `restoreAsbackup` loads
 * such a file into a Db.
 */
import * as fs from 'node:fs';
import type { Db } from '../db';
import { ErrorCode, ShoalError, invalidArgument } from '../errors';
import { digestOf } from '../model/digest';
import type { Key } from '../model/key';
import { ASBACKUP_WRITE_BATCH_RECORDS } from './constants';
import { AsbackupRecord, asbackupHeader, encodeAsbackupRecord, readAsbackup } from './asbackup';

export { readAsbackup, encodeAsbackupRecord, asbackupHeader } from './asbackup';
export { backupToFile, restoreFromFile, verifyFile as verifyBackupFile } from './remote';
export type { BackupOptions, BackupProgress, BackupResult, RemoteOptions, RestoreOptions, RestorePolicy, RestoreProgress, RestoreResult } from './remote';
export type { AsbackupRecord } from './asbackup';

export interface WriteAsbackupOptions {
  /** Only this set's records. */
  set?: string;
}

export interface RestoreAsbackupOptions {
  /**
   * 'replace' (default): a record in the file replaces the Db's copy; 'skipExisting': records
   * the Db already holds are left as they are (asrestore's --unique).
   */
  policy?: 'replace' | 'skipExisting';
}

/**
 * Writes every record of a namespace (or of one set) to `file` in asbackup format 3.1. Each
 * record is a consistent copy of one version (the scan's); records written during the backup
 * may or may not be in it. The file is written to `file.tmp` and renamed when complete, so a
 * file at `file` is always whole.
 * @throws ShoalError INVALID_ARGUMENT for an unknown namespace; IO_ERROR when the file cannot be written.
 */
export async function writeAsbackup(db: Db, ns: string, file: string, options: WriteAsbackupOptions = {}): Promise<{ records: number; bytes: number }> {
  if (typeof file !== 'string' || file.length === 0) throw new TypeError('file must be a non-empty path');
  const temporary = `${file}.tmp`;
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(temporary, 'w', 0o600);
  } catch (error) {
    throw new ShoalError(ErrorCode.IO_ERROR, `cannot write ${file}: ${(error as Error).message}`, { cause: error });
  }
  let records = 0;
  let bytes = 0;
  try {
    const write = async (chunk: Buffer) => {
      await handle.write(chunk);
      bytes += chunk.length;
    };
    await write(asbackupHeader(ns));
    let pending: Buffer[] = [];
    for await (const record of db.scan(ns, options.set)) {
      const key = record.key as Key & { digest?: Uint8Array };
      const digest = key.digest !== undefined ? Buffer.from(key.digest) : digestOf(key.set, key.key!);
      const entry: AsbackupRecord = { ns, digest, set: key.set ?? '', key: key.key ?? undefined, gen: record.gen, ttl: record.ttl, bins: record.bins };
      pending.push(encodeAsbackupRecord(entry));
      records++;
      if (pending.length >= ASBACKUP_WRITE_BATCH_RECORDS) {
        await write(Buffer.concat(pending));
        pending = [];
      }
    }
    if (pending.length > 0) await write(Buffer.concat(pending));
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await fs.promises.rm(temporary, { force: true });
    if (error instanceof ShoalError || error instanceof TypeError) throw error;
    throw new ShoalError(ErrorCode.IO_ERROR, `cannot write ${file}: ${(error as Error).message}`, { cause: error });
  }
  await handle.close();
  await fs.promises.rename(temporary, file);
  return { records, bytes };
}

/**
 * Loads an asbackup file into a Db: each record is put with its bins, set, key (when the file
 * has it) and remaining TTL; a record without a key is addressed by its digest. Records of
 * another namespace than `ns` (default: the file's own) are refused.
 * @throws ShoalError CORRUPTION (with the line) for a malformed file, before or while loading;
 *   INVALID_ARGUMENT for a namespace the Db lacks; the put's error for a record the Db refuses.
 */
export async function restoreAsbackup(db: Db, file: string, options: RestoreAsbackupOptions = {}): Promise<{ records: number; skipped: number }> {
  const policy = options.policy ?? 'replace';
  if (policy !== 'replace' && policy !== 'skipExisting') throw invalidArgument("policy must be 'replace' or 'skipExisting'");
  let records = 0;
  let skipped = 0;
  for await (const record of readAsbackup(file)) {
    const key: Key = record.key === undefined ? { ns: record.ns, set: record.set, digest: record.digest } : { ns: record.ns, set: record.set, key: record.key };
    const ttl = record.ttl < 0 ? -1 : record.ttl;
    try {
      await db.put(key, record.bins, { ttl, exists: policy === 'skipExisting' ? 'create' : 'createOrReplace', storeKey: record.key !== undefined });
      records++;
    } catch (error) {
      if (policy === 'skipExisting' && (error as ShoalError).code === ErrorCode.RECORD_EXISTS) {
        skipped++;
        continue;
      }
      throw error;
    }
  }
  return { records, skipped };
}
