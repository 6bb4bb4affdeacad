/**
 * The on-device format as JS sees it: record header offsets (mirroring
 * native/storage_format.h), record locations in the index, and the device header.
 * docs/storage-format.md is the byte-by-byte description; change them together.
 */
import {
  DATA_START_BYTES,
  HEADER_SLOT_BYTES,
  MAX_TRUNCATE_MARKERS,
  RECORD_ALIGN_BYTES,
  TRUNCATE_MARKER_BYTES,
} from './constants';

export const FORMAT_VERSION = 1;

/** Record header fields (little-endian). */
export const RECORD_HEADER_BYTES = 64;
export const RECORD_LENGTH_AT = 4;
export const RECORD_SEQUENCE_AT = 8;
export const RECORD_DIGEST_AT = 16;
export const RECORD_GENERATION_AT = 36;
export const RECORD_VOID_TIME_AT = 40;
export const RECORD_FLAGS_AT = 44;
export const RECORD_SET_LENGTH_AT = 46;
export const RECORD_KEY_TYPE_AT = 47;
export const RECORD_LAST_UPDATE_AT = 48;
export const RECORD_KEY_LENGTH_AT = 56;
export const RECORD_PAYLOAD_LENGTH_AT = 60;
export const RECORD_TRAILER_BYTES = 4;

export const RECORD_FLAG_TOMBSTONE = 1;
export const RECORD_FLAG_HAS_KEY = 2;
/** The payload holds the user key (the index's FLAG_HAS_KEY); no key bytes in the record. */
export const RECORD_FLAG_PAYLOAD_KEY = 4;

export const BLOCK_HEADER_BYTES = 64;

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

export function alignDown(value: number, alignment: number): number {
  return Math.floor(value / alignment) * alignment;
}

/** Padded on-device size of a record with these parts. */
export function recordBytes(setBytes: number, keyBytes: number, payloadBytes: number): number {
  return alignUp(RECORD_HEADER_BYTES + setBytes + keyBytes + payloadBytes + RECORD_TRAILER_BYTES, RECORD_ALIGN_BYTES);
}

/**
 * Locations: 64 bits as (low, high) u32 halves, as the index stores them.
 *   low  bits 0..18  offset in the block / 16
 *   low  bits 19..31 padded size / 16, bits 0..12
 *   high bits 0..5   padded size / 16, bits 13..18
 *   high bits 6..25  block index
 *   high bits 26..31 device index
 * (0, 0) is never a record (offset 0 is the block header).
 */
export function locationLow(offset: number, size: number): number {
  const sizeUnits = size >>> 4;
  return ((offset >>> 4) | ((sizeUnits & 0x1fff) << 19)) >>> 0;
}

export function locationHigh(device: number, block: number, size: number): number {
  const sizeUnits = size >>> 4;
  return ((sizeUnits >>> 13) | (block << 6) | (device << 26)) >>> 0;
}

export function locationOffset(low: number): number {
  return (low & 0x7ffff) * RECORD_ALIGN_BYTES;
}

export function locationSize(low: number, high: number): number {
  return ((low >>> 19) | ((high & 0x3f) << 13)) * RECORD_ALIGN_BYTES;
}

export function locationBlock(high: number): number {
  return (high >>> 6) & 0xfffff;
}

export function locationDevice(high: number): number {
  return high >>> 26;
}

/** Device header slot layout (two slots, A at 0 and B at 32 KiB; the newer valid one wins). */
export const DEVICE_MAGIC = 'SHOALDEV';
export const HEADER_VERSION_AT = 8;
export const HEADER_COUNTER_AT = 16;
export const HEADER_SIGNATURE_HIGH_AT = 24;
export const HEADER_SIGNATURE_LOW_AT = 28;
export const HEADER_DEVICE_INDEX_AT = 32;
export const HEADER_DEVICE_COUNT_AT = 36;
export const HEADER_WRITE_BLOCK_BYTES_AT = 40;
export const HEADER_DATA_START_AT = 44;
export const HEADER_SIZE_BYTES_AT = 48;
export const HEADER_CLEAN_AT = 56;
export const HEADER_TRUNCATE_COUNT_AT = 60;
export const HEADER_CREATED_MS_AT = 64;
export const HEADER_MAX_SEQUENCE_AT = 72;
export const HEADER_NAMESPACE_LENGTH_AT = 80;
export const HEADER_NAMESPACE_AT = 81;
export const HEADER_NAMESPACE_MAX_BYTES = 63;
/** The open stamp: 64 random bits chosen by every open (two u32, high then low; 0 in headers written before it existed). */
export const HEADER_OPEN_STAMP_HIGH_AT = 144;
export const HEADER_OPEN_STAMP_LOW_AT = 148;
export const HEADER_TRUNCATES_AT = 4096;
export const HEADER_CRC_AT = HEADER_SLOT_BYTES - 4;

export interface TruncateMarker {
  /** undefined: every set. */
  set: string | undefined;
  beforeMs: number;
}

export interface DeviceHeader {
  counter: number;
  signatureHigh: number;
  signatureLow: number;
  deviceIndex: number;
  deviceCount: number;
  writeBlockBytes: number;
  dataStart: number;
  sizeBytes: number;
  clean: boolean;
  createdMs: number;
  maxSequence: number;
  namespace: string;
  truncates: TruncateMarker[];
  /**
   * The open stamp of the run that wrote this header: the storage state file and the
   * shared-memory index's metadata a clean close leaves carry the same one, so a warm start
   * attaches only what that very run left (docs/storage-format.md, "Device header").
   */
  openStampHigh: number;
  openStampLow: number;
}

/** Encodes one header slot (32 KiB) with its CRC. */
export function encodeHeader(header: DeviceHeader, crc32c: (data: Uint8Array) => number): Buffer {
  const slot = Buffer.alloc(HEADER_SLOT_BYTES);
  slot.write(DEVICE_MAGIC, 0, 'latin1');
  slot.writeUInt32LE(FORMAT_VERSION, HEADER_VERSION_AT);
  slot.writeDoubleLE(header.counter, HEADER_COUNTER_AT);
  slot.writeUInt32LE(header.signatureHigh, HEADER_SIGNATURE_HIGH_AT);
  slot.writeUInt32LE(header.signatureLow, HEADER_SIGNATURE_LOW_AT);
  slot.writeUInt32LE(header.deviceIndex, HEADER_DEVICE_INDEX_AT);
  slot.writeUInt32LE(header.deviceCount, HEADER_DEVICE_COUNT_AT);
  slot.writeUInt32LE(header.writeBlockBytes, HEADER_WRITE_BLOCK_BYTES_AT);
  slot.writeUInt32LE(header.dataStart, HEADER_DATA_START_AT);
  slot.writeDoubleLE(header.sizeBytes, HEADER_SIZE_BYTES_AT);
  slot.writeUInt32LE(header.clean ? 1 : 0, HEADER_CLEAN_AT);
  if (header.truncates.length > MAX_TRUNCATE_MARKERS) throw new RangeError('too many truncate markers');
  slot.writeUInt32LE(header.truncates.length, HEADER_TRUNCATE_COUNT_AT);
  slot.writeDoubleLE(header.createdMs, HEADER_CREATED_MS_AT);
  slot.writeDoubleLE(header.maxSequence, HEADER_MAX_SEQUENCE_AT);
  const name = Buffer.from(header.namespace, 'utf8');
  if (name.length > HEADER_NAMESPACE_MAX_BYTES) throw new RangeError('namespace name too long');
  slot.writeUInt8(name.length, HEADER_NAMESPACE_LENGTH_AT);
  name.copy(slot, HEADER_NAMESPACE_AT);
  slot.writeUInt32LE(header.openStampHigh, HEADER_OPEN_STAMP_HIGH_AT);
  slot.writeUInt32LE(header.openStampLow, HEADER_OPEN_STAMP_LOW_AT);
  header.truncates.forEach((marker, index) => {
    const at = HEADER_TRUNCATES_AT + index * TRUNCATE_MARKER_BYTES;
    slot.writeDoubleLE(marker.beforeMs, at);
    slot.writeUInt8(marker.set === undefined ? 1 : 0, at + 8);
    if (marker.set !== undefined) {
      const set = Buffer.from(marker.set, 'utf8');
      slot.writeUInt8(set.length, at + 9);
      set.copy(slot, at + 16);
    }
  });
  slot.writeUInt32LE(crc32c(slot.subarray(0, HEADER_CRC_AT)), HEADER_CRC_AT);
  return slot;
}

/** What a header slot holds: a valid header, or why it is not one. */
export type HeaderSlot =
  | { header: DeviceHeader; problem?: undefined; version?: undefined }
  | { header?: undefined; problem: 'magic' | 'checksum' | 'version'; version?: number };

/** Decodes a header slot; undefined when it is not a valid Shoal header (never written, torn, damaged). */
export function decodeHeader(slot: Buffer, crc32c: (data: Uint8Array) => number): DeviceHeader | undefined {
  return readHeaderSlot(slot, crc32c).header;
}

/**
 * Decodes a header slot, saying what is wrong with one that is not valid: 'magic' (not a Shoal
 * header at all), 'checksum' (a Shoal header whose CRC fails: torn or damaged), 'version' (a
 * valid header of another format version, in `version`).
 */
export function readHeaderSlot(slot: Buffer, crc32c: (data: Uint8Array) => number): HeaderSlot {
  if (slot.length < HEADER_SLOT_BYTES || slot.toString('latin1', 0, 8) !== DEVICE_MAGIC) return { problem: 'magic' };
  if (slot.readUInt32LE(HEADER_CRC_AT) !== crc32c(slot.subarray(0, HEADER_CRC_AT))) return { problem: 'checksum' };
  if (slot.readUInt32LE(HEADER_VERSION_AT) !== FORMAT_VERSION) return { problem: 'version', version: slot.readUInt32LE(HEADER_VERSION_AT) };
  return { header: decodeValidHeader(slot) };
}

function decodeValidHeader(slot: Buffer): DeviceHeader {
  const truncateCount = Math.min(slot.readUInt32LE(HEADER_TRUNCATE_COUNT_AT), MAX_TRUNCATE_MARKERS);
  const truncates: TruncateMarker[] = [];
  for (let index = 0; index < truncateCount; index++) {
    const at = HEADER_TRUNCATES_AT + index * TRUNCATE_MARKER_BYTES;
    const all = slot.readUInt8(at + 8) === 1;
    truncates.push({
      beforeMs: slot.readDoubleLE(at),
      set: all ? undefined : slot.toString('utf8', at + 16, at + 16 + slot.readUInt8(at + 9)),
    });
  }
  return {
    counter: slot.readDoubleLE(HEADER_COUNTER_AT),
    signatureHigh: slot.readUInt32LE(HEADER_SIGNATURE_HIGH_AT),
    signatureLow: slot.readUInt32LE(HEADER_SIGNATURE_LOW_AT),
    deviceIndex: slot.readUInt32LE(HEADER_DEVICE_INDEX_AT),
    deviceCount: slot.readUInt32LE(HEADER_DEVICE_COUNT_AT),
    writeBlockBytes: slot.readUInt32LE(HEADER_WRITE_BLOCK_BYTES_AT),
    dataStart: slot.readUInt32LE(HEADER_DATA_START_AT),
    sizeBytes: slot.readDoubleLE(HEADER_SIZE_BYTES_AT),
    clean: slot.readUInt32LE(HEADER_CLEAN_AT) === 1,
    createdMs: slot.readDoubleLE(HEADER_CREATED_MS_AT),
    maxSequence: slot.readDoubleLE(HEADER_MAX_SEQUENCE_AT),
    namespace: slot.toString('utf8', HEADER_NAMESPACE_AT, HEADER_NAMESPACE_AT + slot.readUInt8(HEADER_NAMESPACE_LENGTH_AT)),
    truncates,
    openStampHigh: slot.readUInt32LE(HEADER_OPEN_STAMP_HIGH_AT),
    openStampLow: slot.readUInt32LE(HEADER_OPEN_STAMP_LOW_AT),
  };
}

/** Block header fields (docs/storage-format.md, "Block header"), for reading blocks without the native scanner. */
export const BLOCK_MAGIC = 0x4b424853;
export const BLOCK_VERSION_AT = 4;
export const BLOCK_SEQUENCE_AT = 8;
export const BLOCK_SIGNATURE_LOW_AT = 16;
export const BLOCK_SIGNATURE_HIGH_AT = 20;
export const BLOCK_DEVICE_INDEX_AT = 24;
export const BLOCK_INDEX_AT = 28;
export const BLOCK_CRC_AT = 60;

export interface BlockHeader {
  sequence: number;
  signatureHigh: number;
  signatureLow: number;
  deviceIndex: number;
  blockIndex: number;
}

/** The block header at bytes[at, at + 64) when it is a valid one of this format version, else undefined. */
export function decodeBlockHeader(bytes: Buffer, at: number, crc32c: (data: Uint8Array) => number): BlockHeader | undefined {
  if (bytes.length < at + BLOCK_HEADER_BYTES || bytes.readUInt32LE(at) !== BLOCK_MAGIC) return undefined;
  if (bytes.readUInt16LE(at + BLOCK_VERSION_AT) !== FORMAT_VERSION) return undefined;
  if (bytes.readUInt32LE(at + BLOCK_CRC_AT) !== crc32c(bytes.subarray(at, at + BLOCK_CRC_AT))) return undefined;
  return {
    sequence: bytes.readUInt32LE(at + BLOCK_SEQUENCE_AT) + bytes.readUInt32LE(at + BLOCK_SEQUENCE_AT + 4) * 0x100000000,
    signatureHigh: bytes.readUInt32LE(at + BLOCK_SIGNATURE_HIGH_AT),
    signatureLow: bytes.readUInt32LE(at + BLOCK_SIGNATURE_LOW_AT),
    deviceIndex: bytes.readUInt16LE(at + BLOCK_DEVICE_INDEX_AT),
    blockIndex: bytes.readUInt32LE(at + BLOCK_INDEX_AT),
  };
}

export { DATA_START_BYTES };
