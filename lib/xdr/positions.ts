/**
 * Durable shipping positions (docs/xdr.md, "Positions"): per destination, per namespace, per
 * partition, a last-update time below which every record of the partition has been applied
 * at the destination. They are saved atomically (a temporary file, fsync, rename), so a node
 * killed at any moment restarts from positions it had reached, never from ones it had not.
 *
 * File `<dataDir>/xdr/<destination>.positions`:
 *
 *   8 bytes "SHOALXP1" | u32 LE namespace count | per namespace: u16 LE name length, name
 *   (UTF-8), 4096 float64 LE positions (Unix ms) | 32 bytes SHA-256 of everything before
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PARTITION_COUNT } from '../constants';

const MAGIC = Buffer.from('SHOALXP1');
const HASH_BYTES = 32;

/** Positions of one destination: one Float64Array of 4096 per namespace. */
export type Positions = Map<string, Float64Array>;

/** The positions file of a destination. */
export function positionsPath(dataDir: string, destination: string): string {
  return path.join(dataDir, 'xdr', `${destination}.positions`);
}

/** The file's bytes for these positions. */
export function encodePositions(positions: Positions): Buffer {
  const parts: Buffer[] = [MAGIC, u32(positions.size)];
  for (const [ns, values] of positions) {
    const name = Buffer.from(ns);
    const length = Buffer.alloc(2);
    length.writeUInt16LE(name.length);
    parts.push(length, name, Buffer.from(values.buffer, values.byteOffset, values.byteLength));
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

/** The positions a file holds; a string saying why it cannot be read instead. */
export function decodePositions(bytes: Buffer): Positions | string {
  if (bytes.length < MAGIC.length + 4 + HASH_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return 'not a Shoal XDR positions file';
  const body = bytes.subarray(0, bytes.length - HASH_BYTES);
  if (!createHash('sha256').update(body).digest().equals(bytes.subarray(bytes.length - HASH_BYTES))) return 'its checksum does not match';
  const positions: Positions = new Map();
  const count = body.readUInt32LE(MAGIC.length);
  let at = MAGIC.length + 4;
  for (let i = 0; i < count; i++) {
    if (at + 2 > body.length) return 'it ends inside a namespace';
    const nameLength = body.readUInt16LE(at);
    at += 2;
    if (at + nameLength + PARTITION_COUNT * 8 > body.length) return 'it ends inside a namespace';
    const ns = body.toString('utf8', at, at + nameLength);
    at += nameLength;
    const values = new Float64Array(PARTITION_COUNT);
    Buffer.from(values.buffer).set(body.subarray(at, at + PARTITION_COUNT * 8));
    at += PARTITION_COUNT * 8;
    positions.set(ns, values);
  }
  if (at !== body.length) return 'it has bytes after its last namespace';
  return positions;
}

/**
 * Reads a destination's positions: undefined when there is no file (never shipped there).
 * A file that cannot be read is kept as `<file>.unreadable` and reported, and the caller
 * ships from the beginning (duplicates are harmless; skipping is not).
 */
export function loadPositions(file: string, log: (message: string) => void): Positions | undefined {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const positions = decodePositions(bytes);
  if (typeof positions !== 'string') return positions;
  log(`xdr: ${file} cannot be read (${positions}); kept as ${file}.unreadable, shipping every record again`);
  fs.renameSync(file, `${file}.unreadable`);
  return new Map();
}

/** Saves positions atomically: written to a temporary file, synced, then renamed over the old one. */
export function savePositions(file: string, positions: Positions, fileMode: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.tmp`;
  const fd = fs.openSync(temporary, 'w', fileMode);
  try {
    fs.writeSync(fd, encodePositions(positions));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temporary, file);
  const directory = fs.openSync(path.dirname(file), 'r');
  try {
    fs.fsyncSync(directory);
  } finally {
    fs.closeSync(directory);
  }
}

/** savePositions off the event loop (the periodic saves: an fsync can take long on a busy disk). */
export async function savePositionsAsync(file: string, positions: Positions, fileMode: number): Promise<void> {
  const bytes = encodePositions(positions);
  await fs.promises.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  // Its own temporary file: a synchronous save at close may run meanwhile. Whichever renames
  // last wins; both hold positions that were reached, so either is safe.
  const temporary = `${file}.tmp-background`;
  const handle = await fs.promises.open(temporary, 'w', fileMode);
  try {
    await handle.write(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.promises.rename(temporary, file);
  const directory = await fs.promises.open(path.dirname(file), 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

function u32(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32LE(value);
  return bytes;
}
