/**
 * The index checkpoint file (docs/storage-format.md, "Index checkpoint file"; docs/storage.md,
 * "Restart after a crash"): `<dataDir>/<namespace>.index-checkpoint`, what a checkpoint leaves
 * so that a start after a crash or a reboot loads the index instead of scanning every device.
 * It holds the facts of one checkpoint (the open stamp of the run that took it, the checkpoint
 * sequence: every block below it was completely on the devices and synced when the file was
 * written; the block tables and tombstones of that moment; the set names) and the index image
 * (native/index_image.cc). Written and read through the StateFileIo seam, replaced atomically
 * (temporary file, fsync, rename); the facts carry a CRC-32C, and the image its own.
 */
import { INDEX_FILE_TOMBSTONES_PER_SLICE } from './constants';
import { nextTurn } from './event-loop';
import { storageNative } from './native-device';
import type { StateFileIo, Tombstone } from './warm-state';

const MAGIC = 'SHOALIXC';
const VERSION = 1;
const HEAD_BYTES = 96;
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

/** A checkpoint file read back: its facts and the image (a view into the file's bytes). */
export interface CheckpointFile {
  facts: CheckpointFacts;
  image: Buffer;
}

/** Encodes the facts (the image goes after them unchanged); the tombstones INDEX_FILE_TOMBSTONES_PER_SLICE at a time. */
async function encodeFacts(facts: CheckpointFacts, image: Buffer): Promise<Buffer> {
  const names = Buffer.from(JSON.stringify(facts.setNames), 'utf8');
  const tables = facts.sequences.reduce((sum, table) => sum + 8 + 16 * table.length, 0);
  const size = align8(HEAD_BYTES + tables + facts.tombstones.size * TOMBSTONE_BYTES + names.length + 4);
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
  buffer.writeDoubleLE(image.length, 64);
  buffer.writeDoubleLE(facts.takenMs, 72);
  buffer.writeUInt32LE(storageNative().crc32c(image), 80);
  buffer.writeUInt32LE(size, 84);
  let at = HEAD_BYTES;
  for (const [device, table] of facts.sequences.entries()) {
    buffer.writeUInt32LE(table.length, at);
    at += 8;
    new Float64Array(buffer.buffer, buffer.byteOffset + at, table.length).set(table);
    at += 8 * table.length;
    new Float64Array(buffer.buffer, buffer.byteOffset + at, table.length).set(facts.live[device]!);
    at += 8 * table.length;
  }
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

/**
 * Replaces the checkpoint file atomically with these facts and this image, synced.
 * @throws the seam's error (the old file is then still whole).
 */
export async function writeCheckpointFile(io: StateFileIo, file: string, facts: CheckpointFacts, image: Buffer, fileMode: number): Promise<void> {
  const head = await encodeFacts(facts, image);
  if (io.writeParts !== undefined) await io.writeParts(file, [head, image], fileMode);
  else await io.write(file, Buffer.concat([head, image]), fileMode);
}

/**
 * The checkpoint file when it is whole (magic, version, sizes, both checksums), else the reason
 * it is not (a missing file included). Checks against the devices are the caller's.
 */
export async function readCheckpointFile(io: StateFileIo, file: string): Promise<CheckpointFile | string> {
  const read = await io.read(file);
  if (read === undefined) return 'it has no index checkpoint file';
  if (read.length < HEAD_BYTES + 4 || read.toString('latin1', 0, 8) !== MAGIC || read.readUInt32LE(8) !== VERSION) return 'its index checkpoint file is not one (magic or version)';
  const size = read.readUInt32LE(84);
  const imageBytes = read.readDoubleLE(64);
  if (size < HEAD_BYTES + 4 || size % 8 !== 0 || size + imageBytes !== read.length) return 'its index checkpoint file is torn (its length does not match)';
  // An 8-aligned copy of the facts, so the block tables can be read as Float64Arrays.
  const head = Buffer.alloc(size);
  read.copy(head, 0, 0, size);
  const crc32c = storageNative().crc32c;
  if (head.readUInt32LE(size - 4) !== crc32c(head.subarray(0, size - 4))) return 'its index checkpoint file is damaged (the checksum of its facts does not match)';
  const image = read.subarray(size);
  if (head.readUInt32LE(80) !== crc32c(image)) return 'its index checkpoint file is damaged (the checksum of its index image does not match)';
  const deviceCount = head.readUInt32LE(12);
  const sequences: Float64Array[] = [];
  const live: Float64Array[] = [];
  let at = HEAD_BYTES;
  for (let device = 0; device < deviceCount; device++) {
    const blocks = head.readUInt32LE(at);
    at += 8;
    if (at + 16 * blocks > size) return 'its index checkpoint file is damaged (block tables)';
    sequences.push(new Float64Array(head.buffer, head.byteOffset + at, blocks).slice());
    at += 8 * blocks;
    live.push(new Float64Array(head.buffer, head.byteOffset + at, blocks).slice());
    at += 8 * blocks;
  }
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
    image,
  };
}

function align8(value: number): number {
  return Math.ceil(value / 8) * 8;
}
