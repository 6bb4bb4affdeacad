/**
 * The index checkpoint file (docs/storage-format.md, "The index checkpoint file"; docs/storage.md,
 * "Restart after a crash"): `<dataDir>/<namespace>.index-checkpoint`, what a checkpoint leaves
 * so that a start after a crash or a reboot loads the index instead of scanning every device.
 * Three parts: a 4 KiB lead (magic, version, where the other two are, its own CRC-32C); the
 * index image (native/index_image.cc), written into the file by a worker thread and loaded
 * from it straight into the index's segments, in pieces with a CRC-32C each; the facts of the
 * checkpoint (the open stamp of the run that took it, the checkpoint sequence, the block tables
 * and tombstones of that moment, the set names, the pieces' CRCs) with their own CRC-32C.
 * Replaced atomically (temporary file, fsync, rename) through the StateFileIo seam.
 */
import type { FileHandle } from 'node:fs/promises';
import { INDEX_FILE_TOMBSTONES_PER_SLICE } from './constants';
import { nextTurn } from './event-loop';
import { storageNative } from './native-device';
import type { StateFileIo, Tombstone } from './warm-state';

const MAGIC = 'SHOALIXC';
const VERSION = 2;
/** The lead's size; the image starts right after it. */
export const INDEX_FILE_IMAGE_OFFSET = 4096;
const LEAD_USED_BYTES = 64;
const FACTS_HEAD_BYTES = 96;
const TOMBSTONE_BYTES = 36;

/** What one checkpoint recorded, besides the image. */
export interface CheckpointFacts {
  signatureHigh: number;
  signatureLow: number;
  /** The open stamp of the run that took the checkpoint (its device headers carry the same). */
  stamp: { high: number; low: number };
  /** Every block of a lower sequence was completely written and synced before the file was. */
  checkpointSequence: number;
  nextSequence: number;
  takenMs: number;
  /** Per device: the block table of the checkpoint's moment. */
  sequences: Float64Array[];
  live: Float64Array[];
  /**
   * The tombstones. Encoded after the checkpoint's moment, while writes go on (the store's live
   * table is given): a tombstone removed meanwhile was superseded or collected, one added or
   * moved meanwhile lies in a block at or above the checkpoint sequence, which recovery
   * replays; recovery keeps only those whose block kept its sequence (recovery.ts).
   */
  tombstones: Map<string, Tombstone>;
  /** Set names by set id (index 0 is no set), as the image's entries use them. */
  setNames: string[];
}

/** The image as writeImage left it in the file: its length and the CRC-32C of each piece. */
export interface ImageWritten {
  bytes: number;
  crcs: Uint32Array;
}

/** A checkpoint file whose lead and facts are whole; the image is still to be loaded (and checked) from `handle`. */
export interface CheckpointFile {
  facts: CheckpointFacts;
  image: ImageWritten & { offset: number };
  /** The file, open for reading; the caller closes it. */
  handle: FileHandle;
  fileBytes: number;
}

/** Encodes the facts with the pieces' CRCs; the tombstones INDEX_FILE_TOMBSTONES_PER_SLICE at a time. */
async function encodeFacts(facts: CheckpointFacts, image: ImageWritten): Promise<Buffer> {
  const names = Buffer.from(JSON.stringify(facts.setNames), 'utf8');
  const tables = facts.sequences.reduce((sum, table) => sum + 8 + 16 * table.length, 0);
  const crcBytes = 4 * image.crcs.length;
  const size = align8(FACTS_HEAD_BYTES + tables + facts.tombstones.size * TOMBSTONE_BYTES + names.length + crcBytes + 4);
  const buffer = Buffer.alloc(size);
  buffer.write(MAGIC, 0, 'latin1');
  buffer.writeUInt32LE(VERSION, 8);
  buffer.writeUInt32LE(facts.sequences.length, 12);
  buffer.writeUInt32LE(facts.signatureHigh, 16);
  buffer.writeUInt32LE(facts.signatureLow, 20);
  buffer.writeUInt32LE(facts.stamp.high, 24);
  buffer.writeUInt32LE(facts.stamp.low, 28);
  buffer.writeDoubleLE(facts.checkpointSequence, 32);
  buffer.writeDoubleLE(facts.nextSequence, 40);
  buffer.writeDoubleLE(names.length, 56);
  buffer.writeDoubleLE(image.bytes, 64);
  buffer.writeDoubleLE(facts.takenMs, 72);
  buffer.writeUInt32LE(image.crcs.length, 80);
  buffer.writeUInt32LE(size, 84);
  let at = FACTS_HEAD_BYTES;
  for (const [device, table] of facts.sequences.entries()) {
    buffer.writeUInt32LE(table.length, at);
    at += 8;
    new Float64Array(buffer.buffer, buffer.byteOffset + at, table.length).set(table);
    at += 8 * table.length;
    new Float64Array(buffer.buffer, buffer.byteOffset + at, table.length).set(facts.live[device]!);
    at += 8 * table.length;
  }
  Buffer.from(image.crcs.buffer, image.crcs.byteOffset, crcBytes).copy(buffer, at);
  at += crcBytes;
  names.copy(buffer, at);
  at += names.length;
  // At most the tombstones there were when the buffer was sized; the table may change between turns.
  const capacity = facts.tombstones.size;
  let encoded = 0;
  for (const [digest, tombstone] of facts.tombstones) {
    if (encoded === capacity) break;
    buffer.write(digest, at, 'latin1');
    buffer.writeUInt32LE(tombstone.low, at + 20);
    buffer.writeUInt32LE(tombstone.high, at + 24);
    buffer.writeDoubleLE(tombstone.origin, at + 28);
    at += TOMBSTONE_BYTES;
    if (++encoded % INDEX_FILE_TOMBSTONES_PER_SLICE === 0) await nextTurn();
  }
  buffer.writeDoubleLE(encoded, 48);
  buffer.writeUInt32LE(storageNative().crc32c(buffer.subarray(0, size - 4)), size - 4);
  return buffer;
}

function encodeLead(image: ImageWritten, factsOffset: number, factsBytes: number): Buffer {
  const lead = Buffer.alloc(INDEX_FILE_IMAGE_OFFSET);
  lead.write(MAGIC, 0, 'latin1');
  lead.writeUInt32LE(VERSION, 8);
  lead.writeDoubleLE(INDEX_FILE_IMAGE_OFFSET, 16);
  lead.writeDoubleLE(image.bytes, 24);
  lead.writeDoubleLE(factsOffset, 32);
  lead.writeDoubleLE(factsBytes, 40);
  lead.writeUInt32LE(image.crcs.length, 48);
  lead.writeUInt32LE(storageNative().crc32c(lead.subarray(0, LEAD_USED_BYTES - 4)), LEAD_USED_BYTES - 4);
  return lead;
}

async function writeAt(handle: FileHandle, bytes: Buffer, position: number): Promise<void> {
  for (let at = 0; at < bytes.length; ) at += (await handle.write(bytes, at, bytes.length - at, position + at)).bytesWritten;
}

/**
 * Replaces the checkpoint file atomically. `writeImage(handle)` starts the image (its moment is
 * the checkpoint's: the caller takes its facts in the same synchronous stretch) and resolves
 * once it is written into the file together with what the facts need then (the caller's
 * commit); then the facts and the lead go in, and the file is synced and renamed.
 * @throws the seam's error, writeImage's (the old file is then still whole).
 */
export async function writeCheckpointFile(io: StateFileIo, file: string, fileMode: number, writeImage: (handle: FileHandle) => Promise<{ facts: CheckpointFacts; image: ImageWritten }>): Promise<number> {
  if (io.replaceWith === undefined) throw new Error('the state file seam cannot write an index checkpoint file (no replaceWith)');
  let fileBytes = 0;
  await io.replaceWith(file, fileMode, async (handle) => {
    const { facts, image } = await writeImage(handle);
    const encoded = await encodeFacts(facts, image);
    const factsOffset = align8(INDEX_FILE_IMAGE_OFFSET + image.bytes);
    await writeAt(handle, encoded, factsOffset);
    await writeAt(handle, encodeLead(image, factsOffset, encoded.length), 0);
    fileBytes = factsOffset + encoded.length;
  });
  return fileBytes;
}

async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer | undefined> {
  const buffer = Buffer.alloc(length);
  let at = 0;
  while (at < length) {
    const { bytesRead } = await handle.read(buffer, at, length - at, position + at);
    if (bytesRead === 0) return undefined;
    at += bytesRead;
  }
  return buffer;
}

/**
 * The checkpoint file when its lead and facts are whole (magic, version, lengths, their
 * checksums), open for the image to be loaded from it; else the reason it is not (a missing
 * file included). The image's own checks are the loader's; those against the devices the caller's.
 */
export async function readCheckpointFile(io: StateFileIo, file: string): Promise<CheckpointFile | string> {
  if (io.openForRead === undefined) return 'its state file seam cannot read an index checkpoint file';
  const handle = await io.openForRead(file);
  if (handle === undefined) return 'it has no index checkpoint file';
  let keep = false;
  try {
    const read = await readFacts(handle);
    if (typeof read === 'string') return read;
    keep = true;
    return { ...read, handle };
  } catch (error) {
    return `its index checkpoint file cannot be read (${(error as Error).message})`;
  } finally {
    if (!keep) await handle.close();
  }
}

async function readFacts(handle: FileHandle): Promise<Omit<CheckpointFile, 'handle'> | string> {
  const fileBytes = (await handle.stat()).size;
  const lead = await readAt(handle, 0, LEAD_USED_BYTES);
  if (lead === undefined || lead.toString('latin1', 0, 8) !== MAGIC || lead.readUInt32LE(8) !== VERSION) return 'its index checkpoint file is not one (magic or version)';
  const crc32c = storageNative().crc32c;
  if (lead.readUInt32LE(LEAD_USED_BYTES - 4) !== crc32c(lead.subarray(0, LEAD_USED_BYTES - 4))) return 'its index checkpoint file is damaged (the checksum of its lead does not match)';
  const imageOffset = lead.readDoubleLE(16);
  const imageBytes = lead.readDoubleLE(24);
  const factsOffset = lead.readDoubleLE(32);
  const size = lead.readDoubleLE(40);
  const pieces = lead.readUInt32LE(48);
  if (imageOffset !== INDEX_FILE_IMAGE_OFFSET || factsOffset !== align8(imageOffset + imageBytes) || size < FACTS_HEAD_BYTES + 4 || size % 8 !== 0 || size > 1 << 30) {
    return 'its index checkpoint file is damaged (its lead)';
  }
  if (factsOffset + size !== fileBytes) return 'its index checkpoint file is torn (its length does not match)';
  const head = await readAt(handle, factsOffset, size);
  if (head === undefined) return 'its index checkpoint file is torn (its length does not match)';
  if (head.readUInt32LE(size - 4) !== crc32c(head.subarray(0, size - 4))) return 'its index checkpoint file is damaged (the checksum of its facts does not match)';
  if (head.toString('latin1', 0, 8) !== MAGIC || head.readUInt32LE(8) !== VERSION || head.readDoubleLE(64) !== imageBytes || head.readUInt32LE(80) !== pieces || head.readUInt32LE(84) !== size) {
    return 'its index checkpoint file is damaged (its facts do not match its lead)';
  }
  const deviceCount = head.readUInt32LE(12);
  const sequences: Float64Array[] = [];
  const live: Float64Array[] = [];
  let at = FACTS_HEAD_BYTES;
  for (let device = 0; device < deviceCount; device++) {
    if (at + 8 > size) return 'its index checkpoint file is damaged (block tables)';
    const blocks = head.readUInt32LE(at);
    at += 8;
    if (at + 16 * blocks > size) return 'its index checkpoint file is damaged (block tables)';
    sequences.push(new Float64Array(head.buffer, head.byteOffset + at, blocks).slice());
    at += 8 * blocks;
    live.push(new Float64Array(head.buffer, head.byteOffset + at, blocks).slice());
    at += 8 * blocks;
  }
  if (at + 4 * pieces > size) return 'its index checkpoint file is damaged (piece checksums)';
  const crcs = new Uint32Array(pieces);
  for (let piece = 0; piece < pieces; piece++) crcs[piece] = head.readUInt32LE(at + 4 * piece);
  at += 4 * pieces;
  const tombstoneCount = head.readDoubleLE(48);
  const namesBytes = head.readDoubleLE(56);
  if (at + tombstoneCount * TOMBSTONE_BYTES + namesBytes + 4 > size) return 'its index checkpoint file is damaged (lengths)';
  let setNames: string[];
  try {
    setNames = (JSON.parse(head.toString('utf8', at, at + namesBytes)) as unknown[]).map(String);
  } catch {
    return 'its index checkpoint file is damaged (set names)';
  }
  at += namesBytes;
  const tombstones = new Map<string, Tombstone>();
  for (let index = 0; index < tombstoneCount; index++, at += TOMBSTONE_BYTES) {
    tombstones.set(head.toString('latin1', at, at + 20), { low: head.readUInt32LE(at + 20), high: head.readUInt32LE(at + 24), origin: head.readDoubleLE(at + 28) });
    if ((index + 1) % INDEX_FILE_TOMBSTONES_PER_SLICE === 0) await nextTurn();
  }
  return {
    facts: {
      signatureHigh: head.readUInt32LE(16),
      signatureLow: head.readUInt32LE(20),
      stamp: { high: head.readUInt32LE(24), low: head.readUInt32LE(28) },
      checkpointSequence: head.readDoubleLE(32),
      nextSequence: head.readDoubleLE(40),
      takenMs: head.readDoubleLE(72),
      sequences,
      live,
      tombstones,
      setNames,
    },
    image: { offset: imageOffset, bytes: imageBytes, crcs },
    fileBytes,
  };
}

function align8(value: number): number {
  return Math.ceil(value / 8) * 8;
}
