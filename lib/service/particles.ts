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
import { isUtf8 } from 'node:buffer';

/** Particle types. */
export const ParticleType = {
  NULL: 0,
  INTEGER: 1,
  DOUBLE: 2,
  STRING: 3,
  BLOB: 4,
  BOOL: 17,
  HLL: 18,
  MAP: 19,
  LIST: 20,
  GEOJSON: 23,
} as const;

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
      const reader = new MsgpackReader(source, start, end);
      const value = reader.value(0);
      if (reader.at !== end) throw badValue(`a ${particleType === ParticleType.LIST ? 'list' : 'map'} particle has ${end - reader.at} bytes after its value`);
      if (particleType === ParticleType.LIST ? !Array.isArray(value) : value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
        throw badValue(`a ${particleType === ParticleType.LIST ? 'list' : 'map'} particle holds another type`);
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
// The MessagePack dialect

/** Reads Aerospike's MessagePack into Shoal values. Maps must have string keys. */
export class MsgpackReader {
  /** With `anyMapKeys`, a map with a key that is not a string reads as a Map (backup files, lib/backup/); else it is refused. */
  constructor(
    readonly source: Buffer,
    public at: number,
    readonly end: number,
    readonly anyMapKeys = false,
  ) {}

  private need(bytes: number): void {
    if (this.end - this.at < bytes) throw badValue('a list or map value is cut off');
  }

  private u8(): number {
    this.need(1);
    return this.source[this.at++]!;
  }

  private u16(): number {
    this.need(2);
    const value = this.source.readUInt16BE(this.at);
    this.at += 2;
    return value;
  }

  private u32(): number {
    this.need(4);
    const value = this.source.readUInt32BE(this.at);
    this.at += 4;
    return value;
  }

  /** The next value, `depth` levels deep. @throws RequestError PARAMETER_ERROR. */
  value(depth: number): BinValue {
    if (depth > BIN_VALUE_DEPTH_MAX) throw badValue(`list and map values nest deeper than ${BIN_VALUE_DEPTH_MAX} levels`);
    const tag = this.u8();
    if (tag <= 0x7f) return tag;
    if (tag >= 0xe0) return tag - 0x100;
    if ((tag & 0xe0) === 0xa0) return this.blob(tag & 0x1f);
    if ((tag & 0xf0) === 0x90) return this.list(tag & 0x0f, depth);
    if ((tag & 0xf0) === 0x80) return this.map(tag & 0x0f, depth);
    switch (tag) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xca: {
        this.need(4);
        const value = this.source.readFloatBE(this.at);
        this.at += 4;
        return value;
      }
      case 0xcb: {
        this.need(8);
        const value = this.source.readDoubleBE(this.at);
        this.at += 8;
        return value;
      }
      case 0xcc:
        return this.u8();
      case 0xcd:
        return this.u16();
      case 0xce:
        return this.u32();
      case 0xcf:
      case 0xd3: {
        // Aerospike integers are int64: an unsigned 64-bit value is read as its signed twin.
        this.need(8);
        const value = this.source.readBigInt64BE(this.at);
        this.at += 8;
        return int64Value(value);
      }
      case 0xd0:
        return (this.u8() << 24) >> 24;
      case 0xd1:
        return (this.u16() << 16) >> 16;
      case 0xd2:
        return this.u32() | 0;
      case 0xc4:
      case 0xd9:
        return this.blob(this.u8());
      case 0xc5:
      case 0xda:
        return this.blob(this.u16());
      case 0xc6:
      case 0xdb:
        return this.blob(this.u32());
      case 0xdc:
        return this.list(this.u16(), depth);
      case 0xdd:
        return this.list(this.u32(), depth);
      case 0xde:
        return this.map(this.u16(), depth);
      case 0xdf:
        return this.map(this.u32(), depth);
      default:
        // ext elements (order flags) are read by list() and map(); elsewhere they are CDT
        // wildcards and infinities, which are not storable values.
        throw badValue(`MessagePack tag 0x${tag.toString(16)} is not a storable value`);
    }
  }

  /** A str/bin item: a particle-type byte, then the bytes. */
  private blob(size: number): BinValue {
    this.need(size);
    const start = this.at;
    this.at += size;
    if (size === 0) return Buffer.alloc(0);
    const type = this.source[start]!;
    if (type === ParticleType.STRING || type === ParticleType.GEOJSON) return utf8(this.source, start + 1, start + size);
    return Buffer.from(this.source.subarray(start + 1, start + size));
  }

  /** Skips an ext element at `at` if there is one (a list's or map's order flags); returns whether it did. */
  private skipExt(): boolean {
    if (this.at >= this.end) return false;
    const tag = this.source[this.at]!;
    let size: number;
    if (tag >= 0xd4 && tag <= 0xd8) size = 1 << (tag - 0xd4);
    else if (tag === 0xc7) {
      this.need(2);
      size = this.source[this.at + 1]!;
      this.at += 1;
    } else if (tag === 0xc8) {
      this.need(3);
      size = this.source.readUInt16BE(this.at + 1);
      this.at += 2;
    } else if (tag === 0xc9) {
      this.need(5);
      size = this.source.readUInt32BE(this.at + 1);
      this.at += 4;
    } else return false;
    this.at += 1;
    this.need(1 + size);
    this.at += 1 + size;
    return true;
  }

  private list(count: number, depth: number): BinValue[] {
    if (count > this.end - this.at) throw badValue(`a list claims ${count} items in ${this.end - this.at} bytes`);
    if (count > 0 && this.skipExt()) count--;
    const items: BinValue[] = new Array(count);
    for (let i = 0; i < count; i++) items[i] = this.value(depth + 1);
    return items;
  }

  private map(count: number, depth: number): { [name: string]: BinValue } | Map<string | number | bigint | Buffer, BinValue> {
    if (count > this.end - this.at) throw badValue(`a map claims ${count} entries in ${this.end - this.at} bytes`);
    if (count > 0 && this.skipExt()) {
      this.value(depth + 1);
      count--;
    }
    const map: { [name: string]: BinValue } = {};
    for (let i = 0; i < count; i++) {
      const key = this.value(depth + 1);
      if (typeof key !== 'string') {
        if (this.anyMapKeys) return this.keyedMap(map, key, count - i, depth);
        throw badValue('Shoal map keys are strings; this map has a key of another type');
      }
      const value = this.value(depth + 1);
      if (key === '__proto__') Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
      else map[key] = value;
    }
    return map;
  }

  /** The rest of a map as a Map, from its first key that is not a string (`entries` left, that one's value not read yet). */
  private keyedMap(read: { [name: string]: BinValue }, firstKey: BinValue, entries: number, depth: number): Map<string | number | bigint | Buffer, BinValue> {
    const map = new Map<string | number | bigint | Buffer, BinValue>(Object.entries(read));
    let key = firstKey;
    for (let i = 0; i < entries; i++) {
      if (i > 0) key = this.value(depth + 1);
      if (typeof key !== 'string' && typeof key !== 'number' && typeof key !== 'bigint' && !Buffer.isBuffer(key)) throw badValue('a map key is neither a string, an integer nor bytes');
      map.set(key, this.value(depth + 1));
    }
    return map;
  }
}

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

/** Writes a str header for `size` bytes (the particle-type byte included). */
function packStrHeader(writer: ByteWriter, size: number): void {
  if (size < 32) writer.u8(0xa0 | size);
  else if (size < 0x100) {
    writer.u8(0xd9);
    writer.u8(size);
  } else if (size < 0x10000) {
    writer.u8(0xda);
    writer.u16(size);
  } else {
    writer.u8(0xdb);
    writer.u32(size);
  }
}

/** Writes a string item: str header, particle type 3, UTF-8. */
export function packString(writer: ByteWriter, value: string): void {
  const size = Buffer.byteLength(value, 'utf8') + 1;
  packStrHeader(writer, size);
  writer.u8(ParticleType.STRING);
  writer.utf8(value);
}

/** Writes a blob item: str header, particle type 4, the bytes. */
export function packBytes(writer: ByteWriter, value: Uint8Array): void {
  packStrHeader(writer, value.length + 1);
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

/**
 * Writes a Shoal value in Aerospike's MessagePack. Plain objects become key-ordered maps
 * (what the Node client sends for objects, and what a server stores), keys sorted.
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
  else if (Array.isArray(value)) {
    packHeader(writer, value.length, true);
    for (const item of value) packValue(writer, item, depth + 1);
  } else if (value instanceof Map) {
    // A map with keys that are not all strings: its entries in the Map's order, unordered.
    packHeader(writer, value.size, false);
    for (const [key, item] of value) {
      packValue(writer, key as BinValue, depth + 1);
      packValue(writer, item, depth + 1);
    }
  } else {
    const keys = Object.keys(value).sort(compareKeys);
    packHeader(writer, keys.length + 1, false);
    // The key-ordered flag: ext (size 0, type = flags) as the first key, nil as its value.
    writer.u8(0xc7);
    writer.u8(0);
    writer.u8(MapOrder.KEY_ORDERED);
    writer.u8(0xc0);
    for (const key of keys) {
      packString(writer, key);
      packValue(writer, value[key]!, depth + 1);
    }
  }
}
