/**
 * Aerospike values on the wire (docs/protocol.md, "Values"): the particles of bin ops, and the
 * MessagePack dialect of lists and maps, converted to and from Shoal's bin values.
 *
 * The dialect (Aerospike's as_msgpack.c): strings and blobs are msgpack str items whose first
 * byte is a particle type (3 string, 4 blob, 23 GeoJSON); a list or map may start with an ext
 * element carrying its order flags (for a map, as the key of the first pair, with a nil value);
 * integers take their smallest msgpack form, doubles float64.
 *
 * This module knows nothing of requests: the op dispatch (records.ts) and the CDT operations to
 * come call it to read an op's value and to write a result.
 */
import type { BinValue } from '../model/bins';
import { BIN_VALUE_DEPTH_MAX } from '../constants';
import { ByteWriter } from './byte-writer';
import { RequestError } from './wire';
import { ResultCode } from './result-codes';
import { valueFromWire } from './dialect';
import { ParticleType } from './particle-type';
import { decodeUser } from '../model/cdt/decode';
import { compareValues } from '../model/cdt/order';
import { type CdtValue, flagsOf } from '../model/cdt/value';
import { isUtf8 } from 'node:buffer';

export { ParticleType } from './particle-type';

/** Map order flags (the ext element's type byte). */
export const MapOrder = { UNORDERED: 0, KEY_ORDERED: 1, KEY_VALUE_ORDERED: 3, PRESERVE_ORDER: 8 } as const;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function badValue(message: string): RequestError {
  return new RequestError(ResultCode.PARAMETER_ERROR, message);
}

/** A string from UTF-8 bytes. @throws RequestError PARAMETER_ERROR when they are not UTF-8. */
function utf8(source: Buffer, start: number, end: number): string {
  const bytes = source.subarray(start, end);
  // ASCII is the common case and always valid.
  for (let i = start; i < end; i++) if (source[i]! > 0x7f) {
    if (!isUtf8(bytes)) throw badValue('a string value is not valid UTF-8');
    break;
  }
  return source.toString('utf8', start, end);
}

function int64Value(value: bigint): number | bigint {
  return value >= -9007199254740991n && value <= 9007199254740991n ? Number(value) : value;
}

/**
 * The Shoal value of a bin op's particle at source[start, end); null for the null particle
 * (a write of null removes the bin).
 * @throws RequestError PARAMETER_ERROR for a malformed value; UNSUPPORTED_FEATURE for HLL values.
 */
export function decodeParticle(particleType: number, source: Buffer, start: number, end: number): BinValue {
  const length = end - start;
  switch (particleType) {
    case ParticleType.NULL:
      return null;
    case ParticleType.INTEGER:
      if (length !== 8) throw badValue(`an integer particle has ${length} bytes, not 8`);
      return int64Value(source.readBigInt64BE(start));
    case ParticleType.DOUBLE:
      if (length !== 8) throw badValue(`a double particle has ${length} bytes, not 8`);
      return source.readDoubleBE(start);
    case ParticleType.STRING:
      return utf8(source, start, end);
    case ParticleType.BLOB:
      return Buffer.from(source.subarray(start, end));
    case ParticleType.BOOL:
      if (length !== 1) throw badValue(`a bool particle has ${length} bytes, not 1`);
      return source[start] !== 0;
    case ParticleType.GEOJSON:
      return geoJsonText(source, start, end);
    case ParticleType.LIST:
    case ParticleType.MAP: {
      const list = particleType === ParticleType.LIST;
      const bytes = valueFromWire(source, start, end);
      const value = decodeUser(bytes, 0, bytes.length) as BinValue;
      if (list ? !Array.isArray(value) : value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
        throw badValue(`a ${list ? 'list' : 'map'} particle holds another type`);
      }
      return value;
    }
    case ParticleType.HLL:
      throw new RequestError(ResultCode.UNSUPPORTED_FEATURE, 'Shoal does not store HyperLogLog values');
    default:
      throw badValue(`unknown particle type ${particleType}`);
  }
}

/** GeoJSON particles (flags, cell count, cells, JSON text) are stored as their JSON text. */
function geoJsonText(source: Buffer, start: number, end: number): string {
  if (end - start < 3) throw badValue('a GeoJSON particle is shorter than its header');
  const textStart = start + 3 + source.readUInt16BE(start + 1) * 8;
  if (textStart > end) throw badValue('a GeoJSON particle is shorter than its cells');
  return utf8(source, textStart, end);
}

/**
 * Writes a Shoal value as a particle (the value bytes of a reply op) and returns its particle
 * type. Numbers that are safe integers go as integers, other numbers as doubles.
 */
export function writeParticle(writer: ByteWriter, value: BinValue): number {
  if (typeof value === 'string') {
    writer.utf8(value);
    return ParticleType.STRING;
  }
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) {
      writer.int64(value);
      return ParticleType.INTEGER;
    }
    writer.f64(value);
    return ParticleType.DOUBLE;
  }
  if (typeof value === 'bigint') {
    writer.i64(value);
    return ParticleType.INTEGER;
  }
  if (typeof value === 'boolean') {
    writer.u8(value ? 1 : 0);
    return ParticleType.BOOL;
  }
  if (value === null) return ParticleType.NULL;
  if (value instanceof Uint8Array) {
    writer.bytes(value);
    return ParticleType.BLOB;
  }
  packValue(writer, value, 0);
  return Array.isArray(value) ? ParticleType.LIST : ParticleType.MAP;
}

// ---------------------------------------------------------------------------------------
// The MessagePack dialect: Shoal values into it (dialect.ts reads it)

/** Writes a list or map header. */
export function packHeader(writer: ByteWriter, count: number, list: boolean): void {
  if (count < 16) writer.u8((list ? 0x90 : 0x80) | count);
  else if (count < 0x10000) {
    writer.u8(list ? 0xdc : 0xde);
    writer.u16(count);
  } else {
    writer.u8(list ? 0xdd : 0xdf);
    writer.u32(count);
  }
}

/** Writes a string item: str header, particle type 3, UTF-8. */
export function packString(writer: ByteWriter, value: string): void {
  const size = Buffer.byteLength(value, 'utf8') + 1;
  writer.msgpackStrHeader(size);
  writer.u8(ParticleType.STRING);
  writer.utf8(value);
}

/** Writes a blob item: str header, particle type 4, the bytes. */
export function packBytes(writer: ByteWriter, value: Uint8Array): void {
  writer.msgpackStrHeader(value.length + 1);
  writer.u8(ParticleType.BLOB);
  writer.bytes(value);
}

/** Writes an integer in its smallest msgpack form. */
export function packInteger(writer: ByteWriter, value: number | bigint): void {
  if (typeof value === 'bigint') {
    if (value >= -9007199254740991n && value <= 9007199254740991n) {
      packInteger(writer, Number(value));
      return;
    }
    if (value < INT64_MIN || value > INT64_MAX) throw badValue('an integer is outside the int64 range');
    writer.u8(0xd3);
    writer.i64(value);
    return;
  }
  if (value >= 0) {
    if (value < 0x80) writer.u8(value);
    else if (value < 0x100) {
      writer.u8(0xcc);
      writer.u8(value);
    } else if (value < 0x10000) {
      writer.u8(0xcd);
      writer.u16(value);
    } else if (value < 4294967296) {
      writer.u8(0xce);
      writer.u32(value);
    } else {
      writer.u8(0xcf);
      writer.int64(value);
    }
  } else if (value >= -32) writer.u8(0x100 + value);
  else if (value >= -0x80) {
    writer.u8(0xd0);
    writer.u8(value & 0xff);
  } else if (value >= -0x8000) {
    writer.u8(0xd1);
    writer.u16(value & 0xffff);
  } else if (value >= -0x80000000) {
    writer.u8(0xd2);
    writer.u32(value >>> 0);
  } else {
    writer.u8(0xd3);
    writer.int64(value);
  }
}

/** Map keys in Aerospike's order for string keys: by their UTF-8 bytes (code point order). */
function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

/** Writes an order-flags header element: ext8 of length 0 whose type byte is the flags. */
function packOrderFlags(writer: ByteWriter, flags: number): void {
  writer.u8(0xc7);
  writer.u8(0);
  writer.u8(flags);
}

/**
 * Writes a Shoal value in Aerospike's MessagePack. Lists and maps keep the order flags Shoal
 * stores with them (value.ts CDT_FLAGS): an ordered list or a key-ordered map leads with its
 * flags header, a key-ordered map's entries go sorted by key (a JS object lists integer-like
 * keys first, whatever their order); an unordered map goes in its stored order.
 */
export function packValue(writer: ByteWriter, value: BinValue, depth: number): void {
  if (typeof value === 'string') packString(writer, value);
  else if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) packInteger(writer, value);
    else {
      writer.u8(0xcb);
      writer.f64(value);
    }
  } else if (typeof value === 'bigint') packInteger(writer, value);
  else if (typeof value === 'boolean') writer.u8(value ? 0xc3 : 0xc2);
  else if (value === null) writer.u8(0xc0);
  else if (value instanceof Uint8Array) packBytes(writer, value);
  else if (depth > BIN_VALUE_DEPTH_MAX) throw badValue(`values nest deeper than ${BIN_VALUE_DEPTH_MAX} levels`);
  else if (Array.isArray(value)) packList(writer, value, depth);
  else if (value instanceof Map) packMap(writer, value, depth);
  else packObject(writer, value, depth);
}

function packList(writer: ByteWriter, value: BinValue[], depth: number): void {
  const flags = flagsOf(value);
  packHeader(writer, value.length + (flags !== 0 ? 1 : 0), true);
  if (flags !== 0) packOrderFlags(writer, flags);
  for (const item of value) packValue(writer, item, depth + 1);
}

/** A map whose keys are not all strings (integers, bytes). */
function packMap(writer: ByteWriter, value: Map<BinValue, BinValue>, depth: number): void {
  const flags = flagsOf(value);
  let entries: Iterable<[BinValue, BinValue]> = value;
  if ((flags & MapOrder.KEY_ORDERED) !== 0) entries = [...value].sort(([a], [b]) => compareValues(a as CdtValue, b as CdtValue));
  packHeader(writer, value.size + (flags !== 0 ? 1 : 0), false);
  if (flags !== 0) {
    packOrderFlags(writer, flags);
    writer.u8(0xc0);
  }
  for (const [key, item] of entries) {
    packValue(writer, key, depth + 1);
    packValue(writer, item, depth + 1);
  }
}

function packObject(writer: ByteWriter, value: { [key: string]: BinValue }, depth: number): void {
  const flags = flagsOf(value);
  const keys = Object.keys(value);
  if ((flags & MapOrder.KEY_ORDERED) !== 0) keys.sort(compareKeys);
  packHeader(writer, keys.length + (flags !== 0 ? 1 : 0), false);
  if (flags !== 0) {
    // The flags header is the first key, with nil as its value.
    packOrderFlags(writer, flags);
    writer.u8(0xc0);
  }
  for (const key of keys) {
    packString(writer, key);
    packValue(writer, value[key]!, depth + 1);
  }
}
