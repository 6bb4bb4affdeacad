/**
 * Bins: validation of bin names and values, and the record payload, the opaque bytes that
 * the index arena and the storage engine keep for a record (docs/record-payload.md):
 *
 *   u8 format (1) | u8 key type (0 = key not stored) | u16 key length (LE) | key bytes | msgpack map of bins
 */
import { Packr } from 'msgpackr';
import { BIN_NAME_MAX_BYTES, BIN_VALUE_DEPTH_MAX, BINS_PER_RECORD_MAX, PAYLOAD_FORMAT_VERSION, PAYLOAD_HEADER_BYTES } from '../constants';
import { ErrorCode, ShoalError, invalidArgument } from '../errors';
import { describe } from './key';

/** A bin value as stored: null only appears in writes, where it removes the bin. */
export type BinValue = string | number | bigint | boolean | Buffer | Uint8Array | BinValue[] | { [name: string]: BinValue } | null;
export type Bins = Record<string, BinValue>;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * msgpackr configured so that every bin type round-trips exactly: bigints come back as
 * bigints (int64 tags) and numbers as numbers (msgpackr writes integers past 32 bits as
 * float64), and binary values are copied out rather than left as views of the source.
 */
export const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: 'bigint',
  copyBuffers: true,
  variableMapSize: true,
} as ConstructorParameters<typeof Packr>[0]);

/**
 * Checks a bin name.
 * @throws ShoalError INVALID_ARGUMENT when it is empty or longer than 15 UTF-8 bytes.
 */
export function checkBinName(name: string): void {
  if (validBinNames.has(name)) return;
  if (name.length === 0) throw invalidArgument('bin names must not be empty');
  if (name.length > BIN_NAME_MAX_BYTES || (!isAscii(name) && Buffer.byteLength(name, 'utf8') > BIN_NAME_MAX_BYTES)) {
    throw invalidArgument(`bin name "${name.slice(0, 40)}" is longer than ${BIN_NAME_MAX_BYTES} UTF-8 bytes`);
  }
  if (validBinNames.size < VALID_BIN_NAMES_CACHED) validBinNames.add(name);
}

/** Bin names already checked: applications use a handful, checked on every write. */
const validBinNames = new Set<string>();
const VALID_BIN_NAMES_CACHED = 10_000;

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

/**
 * Checks the bins argument of a write: a plain object of named values.
 * @throws TypeError when bins is not a plain object; ShoalError INVALID_ARGUMENT for a bad
 *   name or value, naming the bin.
 */
export function checkBins(bins: unknown, allowNull: boolean): asserts bins is Bins {
  if (!isPlainObject(bins)) throw new TypeError(`bins must be a plain object of bin names to values, not ${describe(bins)}`);
  let count = 0;
  for (const name in bins) {
    checkBinName(name);
    const value = (bins as Bins)[name];
    if (value === null && allowNull) {
      count++;
      continue;
    }
    checkBinValue(value, name, 0);
    count++;
  }
  if (count === 0) throw invalidArgument('bins must name at least one bin');
  if (count > BINS_PER_RECORD_MAX) throw invalidArgument(`a record holds at most ${BINS_PER_RECORD_MAX} bins`);
}

/**
 * Checks one bin value, recursively for lists and maps.
 * @throws ShoalError INVALID_ARGUMENT naming the bin and the offending type.
 */
export function checkBinValue(value: unknown, bin: string, depth: number): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) throw invalidArgument(`bin "${bin}": ${String(value)} is not a finite number`);
      return;
    case 'bigint':
      if (value < INT64_MIN || value > INT64_MAX) throw invalidArgument(`bin "${bin}": bigint outside the int64 range`);
      return;
    case 'object': {
      if (value === null) throw invalidArgument(`bin "${bin}": null is only allowed as a top-level bin value, where it removes the bin`);
      if (depth >= BIN_VALUE_DEPTH_MAX) throw invalidArgument(`bin "${bin}": values nest deeper than ${BIN_VALUE_DEPTH_MAX} levels`);
      if (value instanceof Uint8Array) return;
      if (Array.isArray(value)) {
        for (const item of value) checkBinValue(item, bin, depth + 1);
        return;
      }
      if (isPlainObject(value)) {
        for (const name in value) checkBinValue((value as Bins)[name], bin, depth + 1);
        return;
      }
      throw invalidArgument(`bin "${bin}": ${describe(value)} is not a storable value (string, number, bigint, boolean, Buffer, array, plain object)`);
    }
    default:
      throw invalidArgument(`bin "${bin}": ${describe(value)} is not a storable value (string, number, bigint, boolean, Buffer, array, plain object)`);
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Encodes a payload into `target` at `offset`: header, optional key, msgpack bins. Returns the
 * payload length, or -1 when it does not fit in `capacity` bytes.
 */
export function encodePayload(
  target: Buffer,
  offset: number,
  capacity: number,
  bins: Bins,
  keyType: number,
  keyBytes: Uint8Array | undefined,
): number {
  const packed = packr.pack(bins);
  const keyLength = keyBytes === undefined ? 0 : keyBytes.length;
  const length = PAYLOAD_HEADER_BYTES + keyLength + packed.length;
  if (length > capacity) return -1;
  target[offset] = PAYLOAD_FORMAT_VERSION;
  target[offset + 1] = keyBytes === undefined ? 0 : keyType;
  target.writeUInt16LE(keyLength, offset + 2);
  if (keyBytes !== undefined) target.set(keyBytes, offset + PAYLOAD_HEADER_BYTES);
  target.set(packed, offset + PAYLOAD_HEADER_BYTES + keyLength);
  return length;
}

/** Reused for every decode, so decoding allocates nothing but the result. */
const decodeRange = { start: 0, end: 0 };

/**
 * Decodes the bins of a payload held in `source[offset, offset + length)`.
 * @throws ShoalError CORRUPTION when the payload is not one this version wrote.
 */
export function decodePayloadBins(source: Buffer, offset: number, length: number): Bins {
  if (length < PAYLOAD_HEADER_BYTES || source[offset] !== PAYLOAD_FORMAT_VERSION) {
    throw new ShoalError(ErrorCode.CORRUPTION, `record payload has unknown format ${source[offset]} (length ${length})`);
  }
  const keyLength = source.readUInt16LE(offset + 2);
  const start = offset + PAYLOAD_HEADER_BYTES + keyLength;
  decodeRange.start = start;
  decodeRange.end = offset + length;
  try {
    return packr.unpack(source, decodeRange as never) as Bins;
  } catch (error) {
    throw new ShoalError(ErrorCode.CORRUPTION, 'record payload could not be decoded', { cause: error });
  }
}

/** The stored key of a payload, if any: its type byte and a copy of its bytes. */
export function payloadKey(source: Buffer, offset: number): { type: number; bytes: Buffer } | undefined {
  const type = source[offset + 1]!;
  if (type === 0) return undefined;
  const keyLength = source.readUInt16LE(offset + 2);
  const start = offset + PAYLOAD_HEADER_BYTES;
  return { type, bytes: Buffer.from(source.subarray(start, start + keyLength)) };
}

/** Picks the named bins out of a decoded record. */
export function selectBins(bins: Bins, names: readonly string[]): Bins {
  const selected: Bins = {};
  for (const name of names) if (name in bins) selected[name] = bins[name]!;
  return selected;
}
