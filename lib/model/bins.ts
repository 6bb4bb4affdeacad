/**
 * Bins: validation of bin names and values, and the record payload, the opaque bytes that
 * the index arena and the storage engine keep for a record (docs/record-payload.md):
 *
 *   u8 format (1, or 2 when a bin holds an ordered collection or a map with keys that are not
 *   strings) | u8 key type (0 = key not stored) | u16 key length (LE) | key bytes | msgpack map of bins
 */
import { Packr } from 'msgpackr';
import {
  BIN_NAME_MAX_BYTES,
  BIN_VALUE_DEPTH_MAX,
  BINS_PER_RECORD_MAX,
  PAYLOAD_FORMAT_EXTENDED,
  PAYLOAD_FORMAT_VERSION,
  PAYLOAD_HEADER_BYTES,
} from '../constants';
import { ErrorCode, ShoalError, formatBytes, invalidArgument } from '../errors';
import { encodeBins, encodeBinsChecked, wroteExtended } from './bin-encoder';
import { canonicalKey } from './cdt/convert';
import { STORED, decodeUser, skipValue as skipCdtValue } from './cdt/decode';
import { KeyValue, decodeKeyValue, describe } from './key';
import type { BinValue, Bins } from './bin-value';

export type { BinValue, Bins } from './bin-value';

/**
 * The constraint on a caller's bins type B (`db.put<Session>(...)`, `db.get<Session>(...)`):
 * every property of B, nested ones too, must be storable. Unlike Bins it admits interfaces,
 * which have no index signature; it refuses Dates, functions and class instances (a Map is a BinValue).
 */
export type BinsOf<B> = { [Name in keyof B]: StorableValue<B[Name]> };

/** T when T can be stored as a bin value (undefined only as an absent optional property), else never. */
type StorableValue<T> = T extends BinValue | undefined
  ? T
  : T extends (...args: never[]) => unknown
    ? never
    : T extends readonly (infer Element)[]
      ? readonly StorableValue<Element>[]
      : T extends object
        ? { [Name in keyof T]: StorableValue<T[Name]> }
        : never;

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
  // typeof comparisons rather than a switch over typeof (see writeKey): this runs per value.
  if (typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw invalidArgument(`bin "${bin}": ${String(value)} is not a finite number`);
    return;
  }
  if (typeof value === 'bigint') {
    if (value < INT64_MIN || value > INT64_MAX) throw invalidArgument(`bin "${bin}": bigint outside the int64 range`);
    return;
  }
  if (typeof value === 'object') {
    // Inside a list or map, null is a value (Aerospike's nil); as a bin's own value it removes
    // the bin, which only a write's top level (checkBins with allowNull) may ask for.
    if (value === null) {
      if (depth > 0) return;
      throw invalidArgument(`bin "${bin}": null is only allowed as a top-level bin value, where it removes the bin`);
    }
    if (depth >= BIN_VALUE_DEPTH_MAX) throw invalidArgument(`bin "${bin}": values nest deeper than ${BIN_VALUE_DEPTH_MAX} levels`);
    if (value instanceof Uint8Array) return;
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) checkBinValue(value[i], bin, depth + 1);
      return;
    }
    if (isPlainObject(value)) {
      for (const name in value) checkBinValue((value as Bins)[name], bin, depth + 1);
      return;
    }
    if (value instanceof Map) {
      checkMapBinValue(value, bin, depth);
      return;
    }
  }
  throw invalidArgument(`bin "${bin}": ${describe(value)} is not a storable value (string, number, bigint, boolean, Buffer, array, plain object, Map)`);
}

/** A Map bin value: keys strings, integers (safe numbers or int64 bigints) or Buffers, never the same key twice. */
function checkMapBinValue(value: Map<unknown, unknown>, bin: string, depth: number): void {
  const seen = new Set<string>();
  for (const [key, item] of value) {
    const integer = typeof key === 'bigint' || (typeof key === 'number' && Number.isSafeInteger(key));
    if (!(typeof key === 'string' || key instanceof Uint8Array || integer)) {
      throw invalidArgument(`bin "${bin}": a Map key must be a string, a safe integer, a bigint or a Buffer, not ${describe(key)}`);
    }
    if (typeof key === 'bigint' && (key < INT64_MIN || key > INT64_MAX)) throw invalidArgument(`bin "${bin}": a Map key is a bigint outside the int64 range`);
    const canonical = canonicalKey(key as string | number | bigint | Uint8Array);
    if (seen.has(canonical)) throw invalidArgument(`bin "${bin}": the Map has the key ${describe(key)} twice (as a number and a bigint, or as equal Buffers)`);
    seen.add(canonical);
    checkBinValue(item, bin, depth + 1);
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Encodes a payload into `target` at `offset`: header, optional key, msgpack bins (written in
 * place by bin-encoder.ts). Returns the payload length, or -1 when it does not fit in
 * `capacity` bytes (then target[offset, offset + capacity) may hold partial bytes).
 */
export function encodePayload(
  target: Buffer,
  offset: number,
  capacity: number,
  bins: Bins,
  keyType: number,
  keyBytes: Uint8Array | undefined,
): number {
  return encodePayloadOf(target, offset, capacity, bins, keyType, keyBytes, false);
}

/**
 * encodePayload for bins nobody has checked but isPlainObject (batchPut): checks them as it
 * encodes them (encodeBinsChecked). Returns the payload length, -1 when it does not fit, or BINS_NEED_CHECK
 * when checkBins(bins, true) would throw or the bins hold a top-level null.
 */
export function encodePayloadChecked(
  target: Buffer,
  offset: number,
  capacity: number,
  bins: Bins,
  keyType: number,
  keyBytes: Uint8Array | undefined,
): number {
  return encodePayloadOf(target, offset, capacity, bins, keyType, keyBytes, true);
}

function encodePayloadOf(
  target: Buffer,
  offset: number,
  capacity: number,
  bins: Bins,
  keyType: number,
  keyBytes: Uint8Array | undefined,
  check: boolean,
): number {
  const keyLength = keyBytes === undefined ? 0 : keyBytes.length;
  if (PAYLOAD_HEADER_BYTES + keyLength > capacity) return -1;
  const binsAt = offset + PAYLOAD_HEADER_BYTES + keyLength;
  const end = check ? encodeBinsChecked(target, binsAt, offset + capacity, bins) : encodeBins(target, binsAt, offset + capacity, bins);
  if (end < 0) return end;
  target[offset] = wroteExtended() ? PAYLOAD_FORMAT_EXTENDED : PAYLOAD_FORMAT_VERSION;
  target[offset + 1] = keyBytes === undefined ? 0 : keyType;
  target[offset + 2] = keyLength & 0xff;
  target[offset + 3] = keyLength >>> 8;
  if (keyBytes !== undefined) target.set(keyBytes, offset + PAYLOAD_HEADER_BYTES);
  return end - offset;
}

/**
 * The RECORD_TOO_BIG error of a write whose payload did not fit maxRecordBytes, naming the
 * payload's size: measured by encoding the bins again with msgpackr, which writes the same
 * bytes as the write path's encoder (error path only).
 */
export function recordTooBig(bins: Bins, keyLength: number, maxRecordBytes: number, namespace: string): ShoalError {
  const bytes = PAYLOAD_HEADER_BYTES + keyLength + packr.pack(bins).length;
  return new ShoalError(
    ErrorCode.RECORD_TOO_BIG,
    `record of ${formatBytes(bytes)} exceeds maxRecordBytes (${formatBytes(maxRecordBytes)}) of namespace ${namespace}`,
  );
}

/** Reused for every decode, so decoding allocates nothing but the result. */
const decodeRange = { start: 0, end: 0 };

/**
 * Decodes the bins of a payload held in `source[offset, offset + length)`.
 * @throws ShoalError CORRUPTION when the payload is not one this version wrote.
 */
export function decodePayloadBins(source: Buffer, offset: number, length: number): Bins {
  const format = source[offset];
  if (length < PAYLOAD_HEADER_BYTES || (format !== PAYLOAD_FORMAT_VERSION && format !== PAYLOAD_FORMAT_EXTENDED)) {
    throw new ShoalError(ErrorCode.CORRUPTION, `record payload has unknown format ${source[offset]} (length ${length})`);
  }
  const keyLength = source.readUInt16LE(offset + 2);
  const start = offset + PAYLOAD_HEADER_BYTES + keyLength;
  // Format 2 holds what msgpackr would misread (order flags, non-string map keys): Shoal's own decoder.
  if (format === PAYLOAD_FORMAT_EXTENDED) return decodeUser(source, start, offset + length) as Bins;
  decodeRange.start = start;
  decodeRange.end = offset + length;
  try {
    return packr.unpack(source, decodeRange as never) as Bins;
  } catch (error) {
    throw new ShoalError(ErrorCode.CORRUPTION, 'record payload could not be decoded', { cause: error });
  }
}

/** The key stored in a payload (`storeKey`), decoded; undefined when the payload holds none. */
export function decodePayloadKey(source: Buffer, offset: number): KeyValue | undefined {
  const type = source[offset + 1]!;
  if (type === 0) return undefined;
  const start = offset + PAYLOAD_HEADER_BYTES;
  return decodeKeyValue(type, source.subarray(start, start + source.readUInt16LE(offset + 2)));
}

/** Picks the named bins out of a decoded record. */
export function selectBins(bins: Bins, names: readonly string[]): Bins {
  const selected: Bins = {};
  for (const name of names) if (name in bins) selected[name] = bins[name]!;
  return selected;
}

/**
 * Whether every bin of the payload in `source[offset, offset + length)` is named in
 * `incoming`, found by walking the MessagePack map's keys and skipping its values, without
 * decoding them. A put whose bins cover the stored ones replaces them all, so it need not
 * decode the old record to merge. Returns false when unsure (an unexpected encoding).
 */
export function storedBinsCoveredBy(source: Buffer, offset: number, length: number, incoming: Bins): boolean {
  const end = offset + length;
  const format2 = source[offset] === PAYLOAD_FORMAT_EXTENDED;
  let at = offset + PAYLOAD_HEADER_BYTES + source.readUInt16LE(offset + 2);
  const tag = source[at]!;
  let count: number;
  if (tag >= 0x80 && tag <= 0x8f) {
    count = tag & 0x0f;
    at += 1;
  } else if (tag === 0xde) {
    count = source.readUInt16BE(at + 1);
    at += 3;
  } else {
    return false;
  }
  for (let i = 0; i < count; i++) {
    const keyTag = source[at]!;
    let keyLength: number;
    if (keyTag >= 0xa0 && keyTag <= 0xbf) {
      keyLength = keyTag & 0x1f;
      at += 1;
    } else if (keyTag === 0xd9) {
      keyLength = source[at + 1]!;
      at += 2;
    } else {
      return false;
    }
    if (!namedIn(incoming, source, at, keyLength)) return false;
    at = format2 ? skipExtendedValue(source, at + keyLength, end) : skipValue(source, at + keyLength, end, 0);
    if (at < 0) return false;
  }
  return at === end;
}

/**
 * Whether `incoming` has a bin named by the UTF-8 bytes source[at, at + length). ASCII names
 * (the usual case) are compared in place, so a put over an existing record allocates no
 * strings to find out whether it replaces every stored bin.
 */
function namedIn(incoming: Bins, source: Buffer, at: number, length: number): boolean {
  for (let i = 0; i < length; i++) {
    if (source[at + i]! > 0x7f) return Object.prototype.hasOwnProperty.call(incoming, source.toString('utf8', at, at + length));
  }
  for (const name in incoming) {
    if (name.length !== length) continue;
    let i = 0;
    while (i < length && name.charCodeAt(i) === source[at + i]) i++;
    if (i === length) return true;
  }
  return false;
}

/** skipValue for values that may hold order-flag ext headers (payload format 2), -1 if it cannot tell. */
function skipExtendedValue(source: Buffer, at: number, end: number): number {
  try {
    return skipCdtValue(source, at, end, STORED);
  } catch {
    return -1;
  }
}

/** The offset after the MessagePack value at `at`, or -1 if it cannot tell. */
function skipValue(source: Buffer, at: number, end: number, depth: number): number {
  if (at >= end || depth > BIN_VALUE_DEPTH_MAX) return -1;
  const tag = source[at]!;
  if (tag <= 0x7f || tag >= 0xe0 || tag === 0xc0 || tag === 0xc2 || tag === 0xc3) return at + 1;
  if (tag >= 0xa0 && tag <= 0xbf) return at + 1 + (tag & 0x1f);
  if (tag >= 0x90 && tag <= 0x9f) return skipItems(source, at + 1, end, tag & 0x0f, depth);
  if (tag >= 0x80 && tag <= 0x8f) return skipItems(source, at + 1, end, (tag & 0x0f) * 2, depth);
  switch (tag) {
    case 0xcc: case 0xd0: return at + 2;
    case 0xcd: case 0xd1: return at + 3;
    case 0xca: case 0xce: case 0xd2: return at + 5;
    case 0xcb: case 0xcf: case 0xd3: return at + 9;
    case 0xd9: case 0xc4: return at + 2 + source[at + 1]!;
    case 0xda: case 0xc5: return at + 3 + source.readUInt16BE(at + 1);
    case 0xdb: case 0xc6: return at + 5 + source.readUInt32BE(at + 1);
    case 0xdc: return skipItems(source, at + 3, end, source.readUInt16BE(at + 1), depth);
    case 0xdd: return skipItems(source, at + 5, end, source.readUInt32BE(at + 1), depth);
    case 0xde: return skipItems(source, at + 3, end, source.readUInt16BE(at + 1) * 2, depth);
    case 0xdf: return skipItems(source, at + 5, end, source.readUInt32BE(at + 1) * 2, depth);
    default: return -1;
  }
}

function skipItems(source: Buffer, at: number, end: number, items: number, depth: number): number {
  for (let i = 0; i < items && at >= 0; i++) at = skipValue(source, at, end, depth + 1);
  return at;
}
