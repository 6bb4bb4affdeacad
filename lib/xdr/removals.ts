/**
 * The removal journal (docs/xdr.md, "Removals"): a removed record leaves nothing in a
 * namespace's index for a re-scan to find, so every removal this node makes as master or
 * applies as replica is appended here before the write is acknowledged, and a re-scan of a
 * partition from its position ships the removals the journal holds from there on. The
 * append is a write(2) on the calling thread: it survives kill -9 of the process (not a power
 * loss before the page cache reaches the disk, like a device namespace's unflushed writes).
 *
 * File `<dataDir>/xdr/removals.journal`, one entry after another:
 *
 *   u32 LE entry length (after this field) | u32 LE CRC-32 of the rest | u32 LE generation |
 *   f64 LE last-update ms | 20-byte digest | u8 namespace length, namespace | u8 set length, set
 *
 * A torn last entry (the process killed mid-append) is dropped when the journal is opened.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import type { RecordVersion } from '../cluster/local-store';
import { partitionOf } from '../cluster/peer-checks';
import { XDR_REMOVALS_KEPT_MAX, XDR_REMOVAL_JOURNAL_COMPACT_BYTES } from './constants';

const FIXED_BYTES = 4 + 4 + 8 + 20;

export interface Removal {
  ns: string;
  version: RecordVersion;
}

export class RemovalJournal {
  private readonly file: string;
  private fd: number;
  private bytes = 0;
  /** Removals by namespace and partition ("ns/partition"), oldest first. */
  private readonly byPartition = new Map<string, RecordVersion[]>();
  private count = 0;

  /**
   * Opens (creating if needed) the journal of a data directory.
   * @throws Error from the file system.
   */
  constructor(dataDir: string, private readonly fileMode: number, log: (message: string) => void) {
    this.file = path.join(dataDir, 'xdr', 'removals.journal');
    fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const { removals, validBytes, totalBytes } = readJournal(this.file);
    for (const removal of removals) this.remember(removal.ns, removal.version);
    if (validBytes !== totalBytes) {
      log(`xdr: ${this.file} ends in a torn entry (${totalBytes - validBytes} bytes, a kill mid-append); rewritten without it`);
      this.rewrite(() => true);
    }
    this.fd = fs.openSync(this.file, 'a', fileMode);
    this.bytes = validBytes;
  }

  /** Appends a removal (a tombstone version); it is in the file when this returns. */
  append(ns: string, version: RecordVersion): void {
    const entry = encodeEntry(ns, version);
    fs.writeSync(this.fd, entry);
    this.bytes += entry.length;
    this.remember(ns, version);
  }

  /** The removals of a partition at or after `fromMs`. */
  removalsSince(ns: string, partition: number, fromMs: number): RecordVersion[] {
    return (this.byPartition.get(`${ns}/${partition}`) ?? []).filter((version) => version.lastUpdateMs >= fromMs);
  }

  /** Rewrites the journal without the removals before `floorMs` (every destination's lowest position) once it has grown past its bound. */
  compact(floorMs: number): void {
    if (this.bytes < XDR_REMOVAL_JOURNAL_COMPACT_BYTES && this.count < XDR_REMOVALS_KEPT_MAX) return;
    fs.closeSync(this.fd);
    this.rewrite((version) => version.lastUpdateMs >= floorMs);
    this.fd = fs.openSync(this.file, 'a', this.fileMode);
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  private remember(ns: string, version: RecordVersion): void {
    const key = `${ns}/${partitionOf(version.digest)}`;
    let list = this.byPartition.get(key);
    if (list === undefined) this.byPartition.set(key, (list = []));
    list.push(version);
    this.count++;
  }

  /** Keeps the removals `keep` accepts (at most XDR_REMOVALS_KEPT_MAX, the newest), written to a temporary file, synced and renamed over the journal. */
  private rewrite(keep: (version: RecordVersion) => boolean): void {
    const kept: Removal[] = [];
    for (const [key, list] of this.byPartition) {
      const ns = key.slice(0, key.lastIndexOf('/'));
      const remaining = list.filter(keep);
      if (remaining.length === 0) this.byPartition.delete(key);
      else this.byPartition.set(key, remaining);
      for (const version of remaining) kept.push({ ns, version });
    }
    kept.sort((a, b) => a.version.lastUpdateMs - b.version.lastUpdateMs);
    const dropped = kept.splice(0, Math.max(0, kept.length - XDR_REMOVALS_KEPT_MAX));
    for (const removal of dropped) {
      const key = `${removal.ns}/${partitionOf(removal.version.digest)}`;
      this.byPartition.set(key, (this.byPartition.get(key) ?? []).filter((version) => version !== removal.version));
    }
    const body = Buffer.concat(kept.map((removal) => encodeEntry(removal.ns, removal.version)));
    const temporary = `${this.file}.tmp`;
    const fd = fs.openSync(temporary, 'w', this.fileMode);
    try {
      fs.writeSync(fd, body);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temporary, this.file);
    this.bytes = body.length;
    this.count = kept.length;
  }
}

function encodeEntry(ns: string, version: RecordVersion): Buffer {
  const name = Buffer.from(ns);
  const set = Buffer.from(version.setName);
  const entry = Buffer.alloc(4 + FIXED_BYTES + 1 + name.length + 1 + set.length);
  entry.writeUInt32LE(entry.length - 4, 0);
  entry.writeUInt32LE(version.gen, 8);
  entry.writeDoubleLE(version.lastUpdateMs, 12);
  version.digest.copy(entry, 20);
  entry[40] = name.length;
  name.copy(entry, 41);
  entry[41 + name.length] = set.length;
  set.copy(entry, 42 + name.length);
  entry.writeUInt32LE(crc32(entry.subarray(8)), 4);
  return entry;
}

/** The entries of a journal file up to the first that does not read back whole. */
function readJournal(file: string): { removals: Removal[]; validBytes: number; totalBytes: number } {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { removals: [], validBytes: 0, totalBytes: 0 };
    throw error;
  }
  const removals: Removal[] = [];
  let at = 0;
  while (at + 4 <= bytes.length) {
    const length = bytes.readUInt32LE(at);
    if (length < FIXED_BYTES + 2 || at + 4 + length > bytes.length) break;
    const entry = bytes.subarray(at, at + 4 + length);
    if (crc32(entry.subarray(8)) !== entry.readUInt32LE(4)) break;
    const nameLength = entry[40]!;
    if (42 + nameLength > entry.length || 42 + nameLength + entry[41 + nameLength]! !== entry.length) break;
    const ns = entry.toString('utf8', 41, 41 + nameLength);
    const setName = entry.toString('utf8', 42 + nameLength, entry.length);
    const version: RecordVersion = { digest: Buffer.from(entry.subarray(20, 40)), gen: entry.readUInt32LE(8), voidTime: 0, lastUpdateMs: entry.readDoubleLE(12), setName, tombstone: true, payload: undefined };
    removals.push({ ns, version });
    at += 4 + length;
  }
  return { removals, validBytes: at, totalBytes: bytes.length };
}

/**
 * The removal an entry keeps: the newer of two. Never none once one was seen: a re-scan can
 * meet a record's older live version after its removal was queued, and clearing the removal
 * then would leave the record at the destination.
 */
export function newerTombstone(kept: RecordVersion | undefined, incoming: RecordVersion | undefined): RecordVersion | undefined {
  if (incoming === undefined) return kept;
  if (kept === undefined || incoming.lastUpdateMs >= kept.lastUpdateMs) return incoming;
  return kept;
}
