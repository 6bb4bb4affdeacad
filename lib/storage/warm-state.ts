/**
 * The warm-restart state file (docs/storage-format.md, docs/storage.md "Warm restart"): what
 * close() leaves beside the devices so the next open attaches without a scan: the block
 * tables (sequences, live bytes) and the tombstones. Its codec, and the seam every access to
 * the file goes through (StateFileIo: the file system by default, a fault-injecting one in
 * tests), so no OS call of the store bypasses a seam.
 */
import * as fs from 'node:fs';
import { STATE_TOMBSTONES_PER_SLICE } from './constants';
import { nextTurn } from './event-loop';
import { replaceFileWith, writeFileAtomically } from './file-mode';
import { storageNative } from './native-device';

/** How the store reaches its state file. */
export interface StateFileIo {
  /** The file's bytes, or undefined when it cannot be read (missing, unreadable). */
  read(file: string): Promise<Buffer | undefined>;
  /** Replaces the file atomically with exactly `fileMode`, synced. @throws the write's error. */
  write(file: string, data: Buffer, fileMode: number): Promise<void>;
  /** Like write, with the file's bytes in parts (a large file is not copied into one buffer first). Optional: write is used without it. */
  writeParts?(file: string, parts: readonly Buffer[], fileMode: number): Promise<void>;
  /** Removes the file (absent is fine). @throws the removal's error. */
  remove(file: string): Promise<void>;
  /**
   * The index checkpoint file (index-file.ts), read in ranges and its image natively: the file
   * open for reading, or undefined when it cannot be opened. Optional: without it there is no
   * recovery from a checkpoint.
   */
  openForRead?(file: string): Promise<fs.promises.FileHandle | undefined>;
  /**
   * Replaces the file atomically like write, with bytes that `fill` writes into the open
   * temporary file (the index image is written into it natively). Optional: without it there
   * are no index checkpoints. @throws fill's error or the write's.
   */
  replaceWith?(file: string, fileMode: number, fill: (handle: fs.promises.FileHandle) => Promise<void>): Promise<void>;
}

/** The file system, through file-mode.ts's atomic write. */
export const fileSystemStateIo: StateFileIo = {
  read: (file) => fs.promises.readFile(file).catch(() => undefined),
  write: (file, data, fileMode) => writeFileAtomically(file, data, fileMode),
  writeParts: (file, parts, fileMode) => writeFileAtomically(file, parts, fileMode),
  remove: (file) => fs.promises.rm(file, { force: true }),
  openForRead: (file) => fs.promises.open(file, 'r').catch(() => undefined),
  replaceWith: (file, fileMode, fill) => replaceFileWith(file, fileMode, fill),
};

/** A deletion whose older copies may still be on the devices. */
export interface Tombstone {
  low: number;
  high: number;
  /** Sequence of the block the deletion was first written to: older copies live only in older blocks. */
  origin: number;
}

/** What the state file records of a device. */
export interface StateDevice {
  readonly header: { readonly counter: number; readonly signatureHigh: number; readonly signatureLow: number; readonly writeBlockBytes: number };
  readonly blockCount: number;
  readonly sequences: Float64Array;
  readonly live: Float64Array;
}

export interface WarmState {
  nextSequence: number;
  sequences: Float64Array[];
  /** Live bytes per block at close (what attach would otherwise recount from the index). */
  live: Float64Array[];
  tombstones: Map<string, Tombstone>;
}

const STATE_MAGIC = 'SHOALSTS';
const STATE_VERSION = 3;
const STATE_HEADER_BYTES = 48;
const STATE_TOMBSTONE_BYTES = 36;

/** What writeState records besides the devices' block tables. */
export interface StateFacts {
  nextSequence: number;
  tombstones: Map<string, Tombstone>;
  signatureHigh: number;
  signatureLow: number;
  stamp: { high: number; low: number };
}

/**
 * The warm-restart state file (docs/storage-format.md): magic, version, device count,
 * signature, next sequence, tombstone count, the open stamp of this run; per device the header
 * counter its clean header will carry, the block count, every block's sequence (f64) and every
 * block's live bytes (f64); the tombstones (digest, location low/high, origin); CRC-32C.
 * Written (and fsynced) by close() before the headers are marked clean. The tombstones are
 * encoded STATE_TOMBSTONES_PER_SLICE at a time with the event loop free in between.
 */
export async function writeState(io: StateFileIo, file: string, devices: readonly StateDevice[], facts: StateFacts, fileMode: number): Promise<void> {
  const size = STATE_HEADER_BYTES + devices.reduce((sum, device) => sum + 16 + 16 * device.blockCount, 0) + facts.tombstones.size * STATE_TOMBSTONE_BYTES + 4;
  const buffer = Buffer.alloc(size);
  buffer.write(STATE_MAGIC, 0, 'latin1');
  buffer.writeUInt32LE(STATE_VERSION, 8);
  buffer.writeUInt32LE(devices.length, 12);
  buffer.writeUInt32LE(facts.signatureHigh, 16);
  buffer.writeUInt32LE(facts.signatureLow, 20);
  buffer.writeDoubleLE(facts.nextSequence, 24);
  buffer.writeDoubleLE(facts.tombstones.size, 32);
  buffer.writeUInt32LE(facts.stamp.high, 40);
  buffer.writeUInt32LE(facts.stamp.low, 44);
  let at = STATE_HEADER_BYTES;
  for (const device of devices) {
    buffer.writeDoubleLE(device.header.counter + 1, at);
    buffer.writeUInt32LE(device.blockCount, at + 8);
    at += 16;
    float64View(buffer, at, device.blockCount).set(device.sequences);
    at += 8 * device.blockCount;
    float64View(buffer, at, device.blockCount).set(device.live);
    at += 8 * device.blockCount;
  }
  let encoded = 0;
  for (const [digest, tombstone] of facts.tombstones) {
    buffer.write(digest, at, 'latin1');
    buffer.writeUInt32LE(tombstone.low, at + 20);
    buffer.writeUInt32LE(tombstone.high, at + 24);
    buffer.writeDoubleLE(tombstone.origin, at + 28);
    at += STATE_TOMBSTONE_BYTES;
    if (++encoded % STATE_TOMBSTONES_PER_SLICE === 0) await nextTurn();
  }
  buffer.writeUInt32LE(storageNative().crc32c(buffer.subarray(0, at)), at);
  await io.write(file, buffer, fileMode);
}

/** A Float64Array over buffer[at, at + 8 * count) (at is 8-aligned in the state file's layout). */
function float64View(buffer: Buffer, at: number, count: number): Float64Array {
  return new Float64Array(buffer.buffer, buffer.byteOffset + at, count);
}

/**
 * The state file if it is intact and matches the devices' clean headers and their open stamp,
 * else undefined. Its tombstones are decoded STATE_TOMBSTONES_PER_SLICE at a time.
 */
export async function readState(io: StateFileIo, file: string, devices: readonly StateDevice[], stampHigh: number, stampLow: number): Promise<WarmState | undefined> {
  const read = await io.read(file);
  if (read === undefined) return undefined;
  // An 8-aligned copy, so the block tables can be read as Float64Arrays.
  const buffer = Buffer.alloc(read.length);
  read.copy(buffer);
  if (buffer.length < STATE_HEADER_BYTES + 4 || buffer.toString('latin1', 0, 8) !== STATE_MAGIC || buffer.readUInt32LE(8) !== STATE_VERSION) return undefined;
  if (buffer.readUInt32LE(buffer.length - 4) !== storageNative().crc32c(buffer.subarray(0, buffer.length - 4))) return undefined;
  if (buffer.readUInt32LE(12) !== devices.length) return undefined;
  const header = devices[0]!.header;
  if (buffer.readUInt32LE(16) !== header.signatureHigh || buffer.readUInt32LE(20) !== header.signatureLow) return undefined;
  if (buffer.readUInt32LE(40) !== stampHigh || buffer.readUInt32LE(44) !== stampLow) return undefined;
  const sequences: Float64Array[] = [];
  const live: Float64Array[] = [];
  let at = STATE_HEADER_BYTES;
  for (const device of devices) {
    if (at + 16 > buffer.length - 4 || buffer.readDoubleLE(at) !== device.header.counter || buffer.readUInt32LE(at + 8) !== device.blockCount) return undefined;
    at += 16;
    if (at + 16 * device.blockCount > buffer.length - 4) return undefined;
    const table = float64View(buffer, at, device.blockCount).slice();
    at += 8 * device.blockCount;
    const bytes = float64View(buffer, at, device.blockCount).slice();
    at += 8 * device.blockCount;
    for (let block = 0; block < device.blockCount; block++) {
      const value = bytes[block]!;
      // Live bytes fit the block and belong only to used blocks; anything else is not trusted.
      if (!(value >= 0 && value <= device.header.writeBlockBytes) || (value > 0 && table[block] === 0)) return undefined;
    }
    sequences.push(table);
    live.push(bytes);
  }
  const tombstones = new Map<string, Tombstone>();
  const count = buffer.readDoubleLE(32);
  if (at + count * STATE_TOMBSTONE_BYTES !== buffer.length - 4) return undefined;
  for (let index = 0; index < count; index++, at += STATE_TOMBSTONE_BYTES) {
    tombstones.set(buffer.toString('latin1', at, at + 20), { low: buffer.readUInt32LE(at + 20), high: buffer.readUInt32LE(at + 24), origin: buffer.readDoubleLE(at + 28) });
    if ((index + 1) % STATE_TOMBSTONES_PER_SLICE === 0) await nextTurn();
  }
  return { nextSequence: buffer.readDoubleLE(24), sequences, live, tombstones };
}
