/**
 * Shoal's own backup file (docs/backup.md, "Shoal's backup format"): a sequence of sections,
 * each with its length and a CRC-32, and an end section holding the SHA-256 of everything
 * before it. Records are kept as the cluster stores them (generation, void time, last-update
 * time, set, the payload of docs/record-payload.md), partition by partition in digest order,
 * so an interrupted backup resumes after its last whole section.
 *
 *   section  = u32 LE body length | body | u32 LE CRC-32 of body
 *   body     = u8 kind | ...
 *     1 header          "SHOALBK1" | u8 format version (1) | UTF-8 JSON { ns, set, createdMs, source }
 *     2 records         u16 LE partition | u32 LE count | count × record
 *     3 partition done  u16 LE partition | u32 LE records of the partition
 *     4 end             u32 LE partitions | f64 LE records | 32-byte SHA-256 of every byte before this section
 *   record   = 20-byte digest | u32 LE generation | u32 LE void time (Unix s, 0 never) | f64 LE last-update ms
 *              | u8 set length | set (UTF-8) | u32 LE payload length | payload
 */
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import { crc32 } from 'node:zlib';
import type { RecordVersion } from '../cluster/local-store';
import { ErrorCode, ShoalError } from '../errors';
import { SHOAL_BACKUP_READ_CHUNK_BYTES, SHOAL_BACKUP_SECTION_MAX_BYTES } from './constants';

export const SHOAL_BACKUP_MAGIC = 'SHOALBK1';
export const SHOAL_BACKUP_FORMAT_VERSION = 1;

export const SECTION_HEADER = 1;
export const SECTION_RECORDS = 2;
export const SECTION_PARTITION_DONE = 3;
export const SECTION_END = 4;

const DIGEST_BYTES = 20;

export interface BackupHeader {
  ns: string;
  set: string | null;
  createdMs: number;
  /** The address the backup was taken from. */
  source: string;
}

function section(kind: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + 1 + body.length + 4);
  out.writeUInt32LE(1 + body.length, 0);
  out[4] = kind;
  body.copy(out, 5);
  out.writeUInt32LE(crc32(out.subarray(4, 5 + body.length)), 5 + body.length);
  return out;
}

export function encodeHeader(header: BackupHeader): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const body = Buffer.allocUnsafe(SHOAL_BACKUP_MAGIC.length + 1 + json.length);
  body.write(SHOAL_BACKUP_MAGIC, 0, 'latin1');
  body[SHOAL_BACKUP_MAGIC.length] = SHOAL_BACKUP_FORMAT_VERSION;
  json.copy(body, SHOAL_BACKUP_MAGIC.length + 1);
  return section(SECTION_HEADER, body);
}

export function encodeRecords(partition: number, versions: readonly RecordVersion[]): Buffer {
  let size = 6;
  const sets = versions.map((v) => Buffer.from(v.setName, 'utf8'));
  versions.forEach((v, i) => (size += DIGEST_BYTES + 4 + 4 + 8 + 1 + sets[i]!.length + 4 + (v.payload?.length ?? 0)));
  const body = Buffer.allocUnsafe(size);
  body.writeUInt16LE(partition, 0);
  body.writeUInt32LE(versions.length, 2);
  let at = 6;
  versions.forEach((v, i) => {
    const set = sets[i]!;
    const payload = v.payload ?? Buffer.alloc(0);
    v.digest.copy(body, at);
    at += DIGEST_BYTES;
    body.writeUInt32LE(v.gen, at);
    body.writeUInt32LE(v.voidTime, at + 4);
    body.writeDoubleLE(v.lastUpdateMs, at + 8);
    body[at + 16] = set.length;
    at += 17;
    set.copy(body, at);
    at += set.length;
    body.writeUInt32LE(payload.length, at);
    payload.copy(body, at + 4);
    at += 4 + payload.length;
  });
  return section(SECTION_RECORDS, body);
}

export function encodePartitionDone(partition: number, records: number): Buffer {
  const body = Buffer.allocUnsafe(6);
  body.writeUInt16LE(partition, 0);
  body.writeUInt32LE(records, 2);
  return section(SECTION_PARTITION_DONE, body);
}

export function encodeEnd(partitions: number, records: number, hashBefore: Buffer): Buffer {
  const body = Buffer.allocUnsafe(4 + 8 + 32);
  body.writeUInt32LE(partitions, 0);
  body.writeDoubleLE(records, 4);
  hashBefore.copy(body, 12);
  return section(SECTION_END, body);
}

/** The versions of a records section's body (after its kind byte). @throws ShoalError CORRUPTION naming the file. */
export function decodeRecords(body: Buffer, file: string): { partition: number; versions: RecordVersion[] } {
  const bad = (why: string) => new ShoalError(ErrorCode.CORRUPTION, `${file}: malformed records section: ${why}`);
  if (body.length < 6) throw bad('too short');
  const partition = body.readUInt16LE(0);
  const count = body.readUInt32LE(2);
  const versions: RecordVersion[] = [];
  let at = 6;
  for (let i = 0; i < count; i++) {
    if (at + DIGEST_BYTES + 17 > body.length) throw bad('a record is cut off');
    const digest = Buffer.from(body.subarray(at, at + DIGEST_BYTES));
    at += DIGEST_BYTES;
    const gen = body.readUInt32LE(at);
    const voidTime = body.readUInt32LE(at + 4);
    const lastUpdateMs = body.readDoubleLE(at + 8);
    const setLength = body[at + 16]!;
    at += 17;
    if (at + setLength + 4 > body.length) throw bad('a set name is cut off');
    const setName = body.toString('utf8', at, at + setLength);
    at += setLength;
    const payloadLength = body.readUInt32LE(at);
    at += 4;
    if (at + payloadLength > body.length) throw bad('a payload is cut off');
    versions.push({ digest, gen, voidTime, lastUpdateMs, setName, tombstone: false, payload: Buffer.from(body.subarray(at, at + payloadLength)) });
    at += payloadLength;
  }
  if (at !== body.length) throw bad('bytes after the last record');
  return { partition, versions };
}

export interface Section {
  kind: number;
  /** The body after the kind byte. */
  body: Buffer;
  /** Offset of the section's first byte in the file, and of the byte after it. */
  offset: number;
  end: number;
}

/**
 * The sections of a backup file, each checked against its CRC-32, with a running SHA-256 of
 * the bytes before each (`hash`, updated as sections are yielded). A section that is cut off
 * or fails its checksum ends the iteration with `torn` set (the caller decides: a resume
 * rewrites from there, a restore refuses the file).
 * @throws ShoalError IO_ERROR when the file cannot be read.
 */
export class SectionReader {
  readonly hash: Hash = createHash('sha256');
  /** Why the iteration stopped before the end of the file, if it did. */
  torn: string | undefined;

  constructor(private readonly file: string) {}

  async *sections(): AsyncGenerator<Section> {
    let handle: fs.promises.FileHandle;
    try {
      handle = await fs.promises.open(this.file, 'r');
    } catch (error) {
      throw new ShoalError(ErrorCode.IO_ERROR, `cannot read ${this.file}: ${(error as Error).message}`, { cause: error });
    }
    try {
      let buffer = Buffer.alloc(0);
      let bufferOffset = 0; // file offset of buffer[0]
      let eof = false;
      const fill = async (needed: number): Promise<boolean> => {
        while (buffer.length < needed && !eof) {
          const chunk = Buffer.allocUnsafe(Math.max(SHOAL_BACKUP_READ_CHUNK_BYTES, needed - buffer.length));
          const { bytesRead } = await handle.read(chunk, 0, chunk.length, bufferOffset + buffer.length);
          if (bytesRead === 0) eof = true;
          buffer = Buffer.concat([buffer, chunk.subarray(0, bytesRead)]);
        }
        return buffer.length >= needed;
      };
      for (;;) {
        if (!(await fill(4))) {
          if (buffer.length > 0) this.torn = `a section length cut off at byte ${bufferOffset}`;
          return;
        }
        const length = buffer.readUInt32LE(0);
        if (length < 1 || length > SHOAL_BACKUP_SECTION_MAX_BYTES) {
          this.torn = `a section of ${length} bytes at byte ${bufferOffset}`;
          return;
        }
        if (!(await fill(4 + length + 4))) {
          this.torn = `a section cut off at byte ${bufferOffset}`;
          return;
        }
        const whole = buffer.subarray(0, 4 + length + 4);
        if (crc32(whole.subarray(4, 4 + length)) !== whole.readUInt32LE(4 + length)) {
          this.torn = `a section whose checksum does not match at byte ${bufferOffset}`;
          return;
        }
        const result: Section = { kind: whole[4]!, body: Buffer.from(whole.subarray(5, 4 + length)), offset: bufferOffset, end: bufferOffset + whole.length };
        buffer = buffer.subarray(whole.length);
        bufferOffset += whole.length;
        yield result;
        this.hash.update(whole);
      }
    } finally {
      await handle.close();
    }
  }
}

/** The header section's content. @throws ShoalError CORRUPTION when it is not one. */
export function decodeHeader(first: Section | undefined, file: string): BackupHeader {
  const bad = (why: string) => new ShoalError(ErrorCode.CORRUPTION, `${file} is not a Shoal backup file: ${why}`);
  if (first === undefined || first.kind !== SECTION_HEADER) throw bad('no header section');
  if (first.body.toString('latin1', 0, SHOAL_BACKUP_MAGIC.length) !== SHOAL_BACKUP_MAGIC) throw bad('no SHOALBK1 magic');
  const version = first.body[SHOAL_BACKUP_MAGIC.length];
  if (version !== SHOAL_BACKUP_FORMAT_VERSION) throw bad(`format version ${String(version)}, this Shoal reads ${SHOAL_BACKUP_FORMAT_VERSION}`);
  let header: BackupHeader;
  try {
    header = JSON.parse(first.body.toString('utf8', SHOAL_BACKUP_MAGIC.length + 1)) as BackupHeader;
  } catch {
    throw bad('the header is not JSON');
  }
  if (typeof header.ns !== 'string' || (header.set !== null && typeof header.set !== 'string')) throw bad('the header names no namespace');
  return header;
}
