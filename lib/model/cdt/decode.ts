/**
 * MessagePack decoding for the collection engine: stored bin values and operation arguments
 * into CdtValues (keeping list and map order flags), stored values into user values (payload
 * format 2, docs/record-payload.md), and skipping values without decoding them.
 *
 * A list or map with order flags starts with an ext header element: ext8 of length 0 whose
 * type byte holds the flags (Aerospike's form), first in a list, or first key of a map with a
 * nil value; both count in the container's length. WILDCARD and INF are fixext1 (or ext8 of
 * length 1) of type 0xff holding 0x00 and 0x01.
 */
import { BIN_VALUE_DEPTH_MAX } from '../../constants';
import { ErrorCode, ShoalError } from '../../errors';
import { CdtList, CdtMap, CdtValue, INF, WILDCARD, defineEntry, setFlags } from './value';

/** Whether a decode reads stored data (a fault is CORRUPTION) or an argument (INVALID_ARGUMENT, INF and WILDCARD allowed). */
export const STORED = 0;
export const ARGUMENT = 1;
type Mode = typeof STORED | typeof ARGUMENT;

/** The offset after the last value decoded or skipped (module state: decoding allocates nothing for it). */
let position = 0;

/** The offset after the value or header the last call read. */
export function endOfLast(): number {
  return position;
}

let source: Buffer;
let limit = 0;
let mode: Mode = STORED;

function fault(message: string): ShoalError {
  return mode === STORED
    ? new ShoalError(ErrorCode.CORRUPTION, `stored collection value is malformed: ${message}`)
    : new ShoalError(ErrorCode.INVALID_ARGUMENT, `operation argument is malformed MessagePack: ${message}`);
}

function need(bytes: number): void {
  if (position + bytes > limit) throw fault(`truncated at offset ${position}`);
}

/**
 * Decodes the value at buffer[at, end) into a CdtValue; `position` is left after it.
 * @throws ShoalError CORRUPTION (STORED) or INVALID_ARGUMENT (ARGUMENT) when it is malformed.
 */
export function decodeCdt(buffer: Buffer, at: number, end: number, decodeMode: Mode): CdtValue {
  source = buffer;
  position = at;
  limit = end;
  mode = decodeMode;
  return readCdt(0);
}

/**
 * Decodes the stored value at buffer[at, end) into a user value: arrays, plain objects (every
 * key a string) or Maps, Buffers; ordered collections carry their flags (value.ts CDT_FLAGS).
 * @throws ShoalError CORRUPTION when it is malformed.
 */
export function decodeUser(buffer: Buffer, at: number, end: number): unknown {
  source = buffer;
  position = at;
  limit = end;
  mode = STORED;
  return readUser(0);
}

/**
 * The offset after the value at buffer[at, end), without decoding it.
 * @throws ShoalError as decodeCdt.
 */
export function skipValue(buffer: Buffer, at: number, end: number, decodeMode: Mode): number {
  source = buffer;
  position = at;
  limit = end;
  mode = decodeMode;
  skip(0);
  return position;
}

let containerCount = 0;

/** The element count (map: entry count) of the container header the last readContainerHeader read. */
export function lastContainerCount(): number {
  return containerCount;
}

/**
 * Reads the container header at buffer[at]: its kind, or undefined when the value there is not
 * a list or map. lastContainerCount() and endOfLast() then give its count and where its elements start.
 */
export function readContainerHeader(buffer: Buffer, at: number, end: number, decodeMode: Mode): 'list' | 'map' | undefined {
  source = buffer;
  position = at;
  limit = end;
  mode = decodeMode;
  need(1);
  const tag = source[position]!;
  if ((tag & 0xf0) === 0x90 || tag === 0xdc || tag === 0xdd) {
    containerCount = listLength(tag);
    return 'list';
  }
  if ((tag & 0xf0) === 0x80 || tag === 0xde || tag === 0xdf) {
    containerCount = mapLength(tag);
    return 'map';
  }
  return undefined;
}

/** The element count after a list tag (position at the tag; left after the header). */
function listLength(tag: number): number {
  if (tag <= 0x9f) {
    position++;
    return tag & 0x0f;
  }
  if (tag === 0xdc) {
    need(3);
    const count = source.readUInt16BE(position + 1);
    position += 3;
    return count;
  }
  need(5);
  const count = source.readUInt32BE(position + 1);
  position += 5;
  return count;
}

function mapLength(tag: number): number {
  if (tag <= 0x8f) {
    position++;
    return tag & 0x0f;
  }
  if (tag === 0xde) {
    need(3);
    const count = source.readUInt16BE(position + 1);
    position += 3;
    return count;
  }
  need(5);
  const count = source.readUInt32BE(position + 1);
  position += 5;
  return count;
}

/** If an ext header is at `position`, consumes it and returns its type byte (the flags); else -1. */
function readExtHeader(): number {
  if (position >= limit) return -1;
  const tag = source[position]!;
  let length: number;
  let header: number;
  if (tag === 0xc7) {
    need(3);
    length = source[position + 1]!;
    header = 2;
  } else if (tag === 0xc8) {
    need(4);
    length = source.readUInt16BE(position + 1);
    header = 3;
  } else if (tag === 0xc9) {
    need(6);
    length = source.readUInt32BE(position + 1);
    header = 5;
  } else {
    return -1;
  }
  const type = source[position + header]!;
  // ext8 of one byte with type 0xff is a WILDCARD or INF element, not a header.
  if (length === 1 && type === 0xff) return -1;
  need(header + 1 + length);
  position += header + 1 + length;
  return type;
}

/** A WILDCARD or INF at `position` (fixext1 or ext8 of length 1, type 0xff), consumed; else undefined. */
function readSpecial(tag: number): CdtValue | undefined {
  let at: number;
  if (tag === 0xd4) at = position + 1;
  else if (tag === 0xc7 && source[position + 1] === 1) at = position + 2;
  else return undefined;
  need(at - position + 2);
  if (source[at] !== 0xff || source[at + 1]! > 1) throw fault(`unsupported ext value at offset ${position}`);
  if (mode === STORED) throw fault('a comparison value (INF, WILDCARD) is stored');
  const value = source[at + 1] === 0 ? WILDCARD : INF;
  position = at + 2;
  return value;
}

function readCdt(depth: number): CdtValue {
  need(1);
  const tag = source[position]!;
  if (tag <= 0x7f) {
    position++;
    return tag;
  }
  if (tag >= 0xe0) {
    position++;
    return tag - 0x100;
  }
  if ((tag & 0xe0) === 0xa0) return readString(tag & 0x1f, 1);
  if ((tag & 0xf0) === 0x90 || tag === 0xdc || tag === 0xdd) return readCdtList(depth);
  if ((tag & 0xf0) === 0x80 || tag === 0xde || tag === 0xdf) return readCdtMap(depth);
  const special = readSpecial(tag);
  if (special !== undefined) return special;
  return readScalar(tag);
}

function checkDepth(depth: number): void {
  if (depth >= BIN_VALUE_DEPTH_MAX) throw fault(`values nest deeper than ${BIN_VALUE_DEPTH_MAX} levels`);
}

function readCdtList(depth: number): CdtList {
  checkDepth(depth);
  let count = listLength(source[position]!);
  let flags = 0;
  if (count > 0) {
    const ext = readExtHeader();
    if (ext >= 0) {
      flags = ext;
      count--;
    }
  }
  if (count > limit - position) throw fault(`list of ${count} elements in ${limit - position} bytes`);
  const items = new Array<CdtValue>(count);
  for (let i = 0; i < count; i++) items[i] = readCdt(depth + 1);
  return new CdtList(flags, items);
}

function readCdtMap(depth: number): CdtMap {
  checkDepth(depth);
  let count = mapLength(source[position]!);
  let flags = 0;
  if (count > 0) {
    const ext = readExtHeader();
    if (ext >= 0) {
      flags = ext;
      readCdt(depth + 1); // the header's nil value
      count--;
    }
  }
  if (count * 2 > limit - position) throw fault(`map of ${count} entries in ${limit - position} bytes`);
  const keys = new Array<CdtValue>(count);
  const values = new Array<CdtValue>(count);
  for (let i = 0; i < count; i++) {
    keys[i] = readCdt(depth + 1);
    values[i] = readCdt(depth + 1);
  }
  return new CdtMap(flags, keys, values);
}

/** Every scalar tag other than fixints and fixstr. */
function readScalar(tag: number): CdtValue {
  switch (tag) {
    case 0xc0:
      position++;
      return null;
    case 0xc2:
      position++;
      return false;
    case 0xc3:
      position++;
      return true;
    case 0xcc:
      need(2);
      position += 2;
      return source[position - 1]!;
    case 0xcd:
      need(3);
      position += 3;
      return source.readUInt16BE(position - 2);
    case 0xce:
      need(5);
      position += 5;
      return source.readUInt32BE(position - 4);
    case 0xcf:
      need(9);
      position += 9;
      return source.readBigUInt64BE(position - 8);
    case 0xd0:
      need(2);
      position += 2;
      return source.readInt8(position - 1);
    case 0xd1:
      need(3);
      position += 3;
      return source.readInt16BE(position - 2);
    case 0xd2:
      need(5);
      position += 5;
      return source.readInt32BE(position - 4);
    case 0xd3:
      need(9);
      position += 9;
      return source.readBigInt64BE(position - 8);
    case 0xca:
      need(5);
      position += 5;
      return source.readFloatBE(position - 4);
    case 0xcb:
      need(9);
      position += 9;
      return source.readDoubleBE(position - 8);
    case 0xd9:
      need(2);
      return readString(source[position + 1]!, 2);
    case 0xda:
      need(3);
      return readString(source.readUInt16BE(position + 1), 3);
    case 0xdb:
      need(5);
      return readString(source.readUInt32BE(position + 1), 5);
    case 0xc4:
      need(2);
      return readBytes(source[position + 1]!, 2);
    case 0xc5:
      need(3);
      return readBytes(source.readUInt16BE(position + 1), 3);
    case 0xc6:
      need(5);
      return readBytes(source.readUInt32BE(position + 1), 5);
    default:
      throw fault(`unsupported MessagePack type 0x${tag.toString(16)} at offset ${position}`);
  }
}

function readString(length: number, header: number): string {
  need(header + length);
  const start = position + header;
  position = start + length;
  return source.toString('utf8', start, position);
}

/** Bytes, copied out: the source is usually a reused buffer. */
function readBytes(length: number, header: number): Buffer {
  need(header + length);
  const start = position + header;
  position = start + length;
  return Buffer.from(source.subarray(start, position));
}

function readUser(depth: number): unknown {
  need(1);
  const tag = source[position]!;
  if (tag <= 0x7f) {
    position++;
    return tag;
  }
  if (tag >= 0xe0) {
    position++;
    return tag - 0x100;
  }
  if ((tag & 0xe0) === 0xa0) return readString(tag & 0x1f, 1);
  if ((tag & 0xf0) === 0x90 || tag === 0xdc || tag === 0xdd) return readUserList(depth);
  if ((tag & 0xf0) === 0x80 || tag === 0xde || tag === 0xdf) return readUserMap(depth);
  const special = readSpecial(tag);
  if (special !== undefined) return special;
  return readScalar(tag);
}

function readUserList(depth: number): unknown[] {
  checkDepth(depth);
  let count = listLength(source[position]!);
  let flags = 0;
  if (count > 0) {
    const ext = readExtHeader();
    if (ext >= 0) {
      flags = ext;
      count--;
    }
  }
  if (count > limit - position) throw fault(`list of ${count} elements in ${limit - position} bytes`);
  const items = new Array<unknown>(count);
  for (let i = 0; i < count; i++) items[i] = readUser(depth + 1);
  return setFlags(items, flags);
}

/** A map: a plain object while every key is a string, a Map from the first key that is not. */
function readUserMap(depth: number): Record<string, unknown> | Map<unknown, unknown> {
  checkDepth(depth);
  let count = mapLength(source[position]!);
  let flags = 0;
  if (count > 0) {
    const ext = readExtHeader();
    if (ext >= 0) {
      flags = ext;
      readUser(depth + 1);
      count--;
    }
  }
  if (count * 2 > limit - position) throw fault(`map of ${count} entries in ${limit - position} bytes`);
  let object: Record<string, unknown> | undefined = {};
  let map: Map<unknown, unknown> | undefined;
  for (let i = 0; i < count; i++) {
    const key = readUser(depth + 1);
    const value = readUser(depth + 1);
    if (object !== undefined && typeof key === 'string') {
      defineEntry(object, key, value);
      continue;
    }
    if (map === undefined) {
      map = new Map(Object.entries(object!));
      object = undefined;
    }
    map.set(key, value);
  }
  return setFlags((object ?? map)!, flags);
}

/**
 * Skips one value. Scalars are stepped over by their tag without being read (this runs over
 * every element of a bin that operate() copies past), containers element by element.
 */
function skip(depth: number): void {
  skipItems(1, depth);
  if (position > limit) throw fault(`truncated at offset ${limit}`);
}

/** Fixed sizes of the scalar tags 0xc0..0xdf (0: not a fixed-size scalar). */
const FIXED_BYTES = new Uint8Array(0x20);
for (const [tag, bytes] of [[0xc0, 1], [0xc2, 1], [0xc3, 1], [0xcc, 2], [0xd0, 2], [0xcd, 3], [0xd1, 3], [0xca, 5], [0xce, 5], [0xd2, 5], [0xcb, 9], [0xcf, 9], [0xd3, 9]]) {
  FIXED_BYTES[tag! - 0xc0] = bytes!;
}

function skipItems(count: number, depth: number): void {
  for (let i = 0; i < count; i++) {
    if (position >= limit) throw fault(`truncated at offset ${position}`);
    const tag = source[position]!;
    if (tag <= 0x7f || tag >= 0xe0) {
      position++;
      continue;
    }
    if (tag <= 0x8f) {
      checkDepth(depth);
      position++;
      skipItems((tag & 0x0f) * 2, depth + 1);
      continue;
    }
    if (tag <= 0x9f) {
      checkDepth(depth);
      position++;
      skipItems(tag & 0x0f, depth + 1);
      continue;
    }
    if (tag <= 0xbf) {
      position += 1 + (tag & 0x1f);
      continue;
    }
    const fixed = FIXED_BYTES[tag - 0xc0]!;
    if (fixed !== 0) {
      position += fixed;
      continue;
    }
    skipVariable(tag, depth);
  }
}

/** Strings, bytes, 16/32-bit containers and exts. */
function skipVariable(tag: number, depth: number): void {
  switch (tag) {
    case 0xd9:
    case 0xc4:
      need(2);
      position += 2 + source[position + 1]!;
      return;
    case 0xda:
    case 0xc5:
      need(3);
      position += 3 + source.readUInt16BE(position + 1);
      return;
    case 0xdb:
    case 0xc6:
      need(5);
      position += 5 + source.readUInt32BE(position + 1);
      return;
    case 0xdc:
    case 0xdd:
      checkDepth(depth);
      skipItems(listLength(tag), depth + 1);
      return;
    case 0xde:
    case 0xdf:
      checkDepth(depth);
      skipItems(mapLength(tag) * 2, depth + 1);
      return;
    case 0xc7:
    case 0xc8:
    case 0xc9:
      if (readSpecial(tag) !== undefined) return;
      if (readExtHeader() < 0) throw fault('malformed ext');
      return;
    case 0xd4:
      if (readSpecial(tag) === undefined) throw fault(`unsupported ext at offset ${position}`);
      return;
    default:
      throw fault(`unsupported MessagePack type 0x${tag.toString(16)} at offset ${position}`);
  }
}
