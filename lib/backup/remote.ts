/**
 * Backup and restore of a running node or cluster over an admin connection (docs/backup.md,
 * "Shoal's backup format"), what `npx shoal backup` and `npx shoal restore` run: any node
 * answers; each partition is read from its master, page by page in digest order, and written
 * to the file as it comes, so an interrupted backup resumes where its file ends.
 */
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import { AdminClient } from '../cluster/admin-client';
import type { RecordVersion } from '../cluster/local-store';
import type { TlsSettings } from '../cluster/network';
import { parseWireVersions, versionsToWire } from '../cluster/peer-checks';
import { PARTITION_COUNT } from '../constants';
import { ErrorCode, ShoalError, invalidArgument } from '../errors';
import { XDR_BATCH_MAX_BYTES, XDR_BATCH_RECORDS, BACKUP_SCAN_MAX_RECORDS } from '../xdr/constants';
import { RESTORE_POLICIES, type RestorePolicy } from '../xdr/store';
import { BACKUP_PARTITIONS_IN_FLIGHT, BACKUP_SYNC_EVERY_PARTITIONS, RESTORE_BATCHES_IN_FLIGHT } from './constants';
import {
  BackupHeader,
  SECTION_END,
  SECTION_HEADER,
  SECTION_PARTITION_DONE,
  SECTION_RECORDS,
  SectionReader,
  decodeHeader,
  decodeRecords,
  encodeEnd,
  encodeHeader,
  encodePartitionDone,
  encodeRecords,
} from './shoal-format';

export type { RestorePolicy } from '../xdr/store';

export interface RemoteOptions {
  /** The cluster's `cluster.clusterName`; default 'shoal'. */
  clusterName?: string;
  /** The cluster secret, if it has one. */
  secret?: string | Buffer;
  tls?: TlsSettings;
  /** Per request; default 30,000. */
  timeoutMs?: number;
}

export interface BackupProgress {
  partitionsDone: number;
  partitions: number;
  records: number;
  bytes: number;
}

export interface BackupOptions extends RemoteOptions {
  ns: string;
  /** Only this set's records. */
  set?: string;
  /** Continue the file if it holds an interrupted backup of the same namespace and set (else refuse an existing file). */
  resume?: boolean;
  onProgress?: (progress: BackupProgress) => void;
}

export interface BackupResult {
  records: number;
  bytes: number;
  /** Partitions already in the file when a resume started (0 for a new file). */
  resumedPartitions: number;
}

/** Where an interrupted file stands. */
interface ResumePoint {
  header: BackupHeader;
  validBytes: number;
  nextPartition: number;
  after: Buffer | null;
  records: number;
  recordsInPartition: number;
  complete: boolean;
  hash: Hash;
}

/**
 * Backs up a namespace (or one set) of the cluster a node at `address` belongs to into `file`.
 * @throws ShoalError INVALID_ARGUMENT for a bad option, an existing file without `resume`, or a
 *   file of another backup; IO_ERROR for the file; CLUSTER_ERROR when the cluster does not answer.
 */
export async function backupToFile(address: string, file: string, options: BackupOptions): Promise<BackupResult> {
  if (typeof file !== 'string' || file.length === 0) throw new TypeError('file must be a non-empty path');
  if (typeof options?.ns !== 'string' || options.ns.length === 0) throw new TypeError('options.ns must name a namespace');
  const set = options.set ?? null;
  const point = fs.existsSync(file) ? await resumePoint(file, options, set) : undefined;
  if (point?.complete) return { records: point.records, bytes: point.validBytes, resumedPartitions: PARTITION_COUNT };
  const client = await connect(address, options);
  let handle: fs.promises.FileHandle | undefined;
  try {
    handle = await openForBackup(file, point);
    let bytes = point?.validBytes ?? 0;
    const hash = point?.hash ?? createHash('sha256');
    const write = async (chunk: Buffer) => {
      await handle!.write(chunk, 0, chunk.length, bytes);
      hash.update(chunk);
      bytes += chunk.length;
    };
    if (point === undefined) await write(encodeHeader({ ns: options.ns, set, createdMs: Date.now(), source: address }));
    let records = point?.records ?? 0;
    const first = point?.nextPartition ?? 0;
    const progress = () => options.onProgress?.({ partitionsDone: next, partitions: PARTITION_COUNT, records, bytes });
    let next = first;
    // Partitions are fetched BACKUP_PARTITIONS_IN_FLIGHT at a time and written in order.
    const fetches = new Map<number, Promise<RecordVersion[][]>>();
    const fetch = (partition: number) => {
      const pages = fetchPartition(client, options.ns, set, partition, partition === first ? point?.after ?? null : null);
      pages.catch(() => undefined); // awaited in order below; a failure ahead must not go unhandled meanwhile
      return pages;
    };
    for (let p = first; p < Math.min(PARTITION_COUNT, first + BACKUP_PARTITIONS_IN_FLIGHT); p++) fetches.set(p, fetch(p));
    for (; next < PARTITION_COUNT; next++) {
      const pages = await fetches.get(next)!;
      fetches.delete(next);
      const ahead = next + BACKUP_PARTITIONS_IN_FLIGHT;
      if (ahead < PARTITION_COUNT) fetches.set(ahead, fetch(ahead));
      let inPartition = next === first ? point?.recordsInPartition ?? 0 : 0;
      for (const page of pages) {
        await write(encodeRecords(next, page));
        records += page.length;
        inPartition += page.length;
      }
      await write(encodePartitionDone(next, inPartition));
      if (next % BACKUP_SYNC_EVERY_PARTITIONS === BACKUP_SYNC_EVERY_PARTITIONS - 1) await handle.sync();
      progress();
    }
    await write(encodeEnd(PARTITION_COUNT, records, hash.copy().digest()));
    await handle.sync();
    progress();
    return { records, bytes, resumedPartitions: first };
  } catch (error) {
    if (error instanceof ShoalError || error instanceof TypeError) throw error;
    throw new ShoalError(ErrorCode.CLUSTER_ERROR, `backup of ${options.ns} from ${address} failed: ${(error as Error).message}`, { cause: error });
  } finally {
    await handle?.close().catch(() => undefined);
    client.close();
  }
}

async function openForBackup(file: string, point: ResumePoint | undefined): Promise<fs.promises.FileHandle> {
  try {
    if (point === undefined) return await fs.promises.open(file, 'wx', 0o600);
    const handle = await fs.promises.open(file, 'r+');
    await handle.truncate(point.validBytes);
    return handle;
  } catch (error) {
    throw new ShoalError(ErrorCode.IO_ERROR, `cannot write ${file}: ${(error as Error).message}`, { cause: error });
  }
}

/** Every page of one partition's records (after `after`, for a resume inside it). */
async function fetchPartition(client: AdminClient, ns: string, set: string | null, partition: number, after: Buffer | null): Promise<RecordVersion[][]> {
  const pages: RecordVersion[][] = [];
  for (let cursor = after; ; ) {
    const reply = (await client.request('admin-backup-scan', { ns, set, partition, after: cursor })) as { versions?: unknown; more?: unknown };
    const versions = parseWireVersions(reply?.versions, BACKUP_SCAN_MAX_RECORDS, partition);
    if (typeof versions === 'string') throw new ShoalError(ErrorCode.CLUSTER_ERROR, `backup scan of partition ${partition}: ${versions}`);
    if (versions.length > 0) pages.push(versions);
    if (reply.more !== true || versions.length === 0) return pages;
    cursor = versions[versions.length - 1]!.digest;
  }
}

/**
 * Reads an existing file to see where a resume continues: after the last whole section.
 * @throws ShoalError INVALID_ARGUMENT without `resume`, or for a backup of another namespace or set.
 */
async function resumePoint(file: string, options: BackupOptions, set: string | null): Promise<ResumePoint | undefined> {
  if (options.resume !== true) throw invalidArgument(`${file} exists: remove it, or pass resume (--resume) to continue an interrupted backup`);
  const reader = new SectionReader(file);
  let header: BackupHeader | undefined;
  const point = { validBytes: 0, nextPartition: 0, after: null as Buffer | null, records: 0, recordsInPartition: 0, complete: false };
  for await (const section of reader.sections()) {
    if (header === undefined) {
      header = decodeHeader(section, file);
      if (header.ns !== options.ns || header.set !== set) throw invalidArgument(`${file} is a backup of ${header.ns}${header.set === null ? '' : `/${header.set}`}, not of ${options.ns}${set === null ? '' : `/${set}`}`);
    } else if (section.kind === SECTION_RECORDS) {
      const { partition, versions } = decodeRecords(section.body, file);
      if (partition !== point.nextPartition || versions.length === 0) break;
      point.records += versions.length;
      point.recordsInPartition += versions.length;
      point.after = versions[versions.length - 1]!.digest;
    } else if (section.kind === SECTION_PARTITION_DONE) {
      if (section.body.readUInt16LE(0) !== point.nextPartition) break;
      point.nextPartition++;
      point.after = null;
      point.recordsInPartition = 0;
    } else if (section.kind === SECTION_END) {
      point.complete = true;
    } else break;
    point.validBytes = section.end;
    if (point.complete) break;
  }
  // A file with no whole header is started again.
  if (header === undefined) {
    await fs.promises.rm(file, { force: true });
    return undefined;
  }
  return { header, ...point, hash: reader.hash };
}

export interface RestoreProgress {
  records: number;
  bytes: number;
  totalBytes: number;
}

export interface RestoreOptions extends RemoteOptions {
  /** Default 'newer' (docs/backup.md, "Restore policies"). */
  policy?: RestorePolicy;
  /** Restore into this namespace instead of the file's. */
  ns?: string;
  onProgress?: (progress: RestoreProgress) => void;
}

export interface RestoreResult {
  records: number;
  restored: number;
  skipped: number;
  expired: number;
}

/**
 * Restores a Shoal backup file into the cluster a node at `address` belongs to. The whole file
 * is checked first (every section's CRC-32, the end section and its SHA-256): a damaged or
 * incomplete file restores nothing.
 * @throws ShoalError CORRUPTION for a damaged or incomplete file; INVALID_ARGUMENT for a bad
 *   option or a record too large for an admin request; CLUSTER_ERROR when the cluster fails.
 */
export async function restoreFromFile(address: string, file: string, options: RestoreOptions = {}): Promise<RestoreResult> {
  const policy = options.policy ?? 'newer';
  if (!RESTORE_POLICIES.includes(policy)) throw invalidArgument(`policy must be one of ${RESTORE_POLICIES.join(', ')}`);
  const header = await verifyFile(file);
  const ns = options.ns ?? header.ns;
  const totalBytes = (await fs.promises.stat(file)).size;
  const client = await connect(address, options);
  const result: RestoreResult = { records: 0, restored: 0, skipped: 0, expired: 0 };
  const inFlight = new Set<Promise<unknown>>();
  let failure: unknown;
  const send = (versions: RecordVersion[]) => {
    const work = (client.request('admin-restore', { ns, policy, versions: versionsToWire(versions) }) as Promise<Record<string, number>>).then(
      (counts) => {
        result.restored += counts.restored ?? 0;
        result.skipped += counts.skipped ?? 0;
        result.expired += counts.expired ?? 0;
      },
      (error: unknown) => (failure ??= error),
    );
    const tracked = work.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  };
  try {
    const reader = new SectionReader(file);
    let batch: RecordVersion[] = [];
    let batchBytes = 0;
    for await (const section of reader.sections()) {
      if (section.kind !== SECTION_RECORDS) continue;
      for (const version of decodeRecords(section.body, file).versions) {
        const size = (version.payload?.length ?? 0) + version.setName.length + 64;
        if (size > XDR_BATCH_MAX_BYTES) throw invalidArgument(`a record of ${size} bytes in ${file} is larger than a restore request can carry (${XDR_BATCH_MAX_BYTES})`);
        if (batch.length >= XDR_BATCH_RECORDS || batchBytes + size > XDR_BATCH_MAX_BYTES) {
          send(batch);
          batch = [];
          batchBytes = 0;
          while (inFlight.size >= RESTORE_BATCHES_IN_FLIGHT) await Promise.race(inFlight);
          if (failure !== undefined) throw failure;
        }
        batch.push(version);
        batchBytes += size;
        result.records++;
      }
      options.onProgress?.({ records: result.records, bytes: section.end, totalBytes });
    }
    if (batch.length > 0) send(batch);
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;
    options.onProgress?.({ records: result.records, bytes: totalBytes, totalBytes });
    return result;
  } catch (error) {
    if (error instanceof ShoalError || error instanceof TypeError) throw error;
    throw new ShoalError(ErrorCode.CLUSTER_ERROR, `restore of ${file} into ${address} failed: ${(error as Error).message}`, { cause: error });
  } finally {
    await Promise.allSettled(inFlight);
    client.close();
  }
}

/**
 * Checks a whole backup file: header, every section's CRC-32, the end section's record count
 * and SHA-256. Returns the header.
 * @throws ShoalError CORRUPTION naming what is wrong; IO_ERROR when it cannot be read.
 */
export async function verifyFile(file: string): Promise<BackupHeader> {
  const reader = new SectionReader(file);
  let header: BackupHeader | undefined;
  let records = 0;
  let ended = false;
  const corrupt = (why: string) => new ShoalError(ErrorCode.CORRUPTION, `${file}: ${why}`);
  for await (const section of reader.sections()) {
    if (ended) throw corrupt('sections after the end section');
    if (header === undefined) header = decodeHeader(section, file);
    else if (section.kind === SECTION_RECORDS) records += decodeRecords(section.body, file).versions.length;
    else if (section.kind === SECTION_END) {
      if (section.body.length !== 44) throw corrupt('a malformed end section');
      if (section.body.readDoubleLE(4) !== records) throw corrupt(`the end section counts ${section.body.readDoubleLE(4)} records, the file holds ${records}`);
      if (!section.body.subarray(12, 44).equals(reader.hash.copy().digest())) throw corrupt('the SHA-256 of the file does not match its end section');
      ended = true;
    } else if (section.kind !== SECTION_PARTITION_DONE && section.kind !== SECTION_HEADER) throw corrupt(`an unknown section kind ${section.kind}`);
  }
  if (reader.torn !== undefined) throw corrupt(`damaged: ${reader.torn}`);
  if (header === undefined) throw corrupt('not a Shoal backup file: empty');
  if (!ended) throw corrupt('incomplete (no end section): the backup was interrupted; resume it (shoal backup ... --resume)');
  return header;
}

async function connect(address: string, options: RemoteOptions): Promise<AdminClient> {
  try {
    return await AdminClient.connect(address, { clusterName: options.clusterName, secret: options.secret, tls: options.tls, timeoutMs: options.timeoutMs ?? 30_000 });
  } catch (error) {
    throw new ShoalError(ErrorCode.CLUSTER_ERROR, `cannot connect to ${address}: ${(error as Error).message}`, { cause: error });
  }
}
