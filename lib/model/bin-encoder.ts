/**
 * The bins' MessagePack encoder of the write path. It writes straight into the caller's
 * buffer (the exchange, a batch buffer), so a put allocates nothing to encode its record and
 * copies nothing afterwards. Its output is byte for byte what lib/model/bins.ts's msgpackr
 * Packr writes for validated bins (test/bin-encoder.test.ts checks that), so msgpackr reads it
 * back exactly: numbers that are 32-bit integers as the smallest integer form (positive
 * fixints up to 127), other numbers as float64, bigints as int64, Buffers and Uint8Arrays as
 * bin, strings as UTF-8 str, arrays, and plain objects as maps sized to their key count.
 *
 * Input must have passed checkBins (names, types, depth, no nested null); the encoder checks
 * only what it needs not to misbehave, and never writes past `end`.
 */
import { invalidArgument } from '../errors';
import type { BinValue, Bins } from './bins';

/** Strings shorter than this are written by a JS loop, longer ones by Buffer#utf8Write (msgpackr's threshold: the two differ on lone surrogates). */
const SHORT_STRING_CHARS = 64;

let target: Buffer;
let view: DataView;
let position = 0;
let limit = 0;

/**
 * Node's Buffer#utf8Write (what Buffer#write calls after normalising its arguments, and what
 * msgpackr uses): undocumented but present in every Node version Shoal supports.
 */
interface Utf8Writer {
  utf8Write(text: string, offset: number, maxBytes: number): number;
}

/** Returned by the writers when the value does not fit before `end`. */
class NoRoom {}
const NO_ROOM = new NoRoom();

/**
 * Encodes bins as one MessagePack map at target[offset, end). Returns the offset after it, or
 * -1 when it does not fit.
 */
export function encodeBins(buffer: Buffer, offset: number, end: number, bins: Bins): number {
  if (buffer !== target) {
    target = buffer;
    view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  }
  position = offset;
  limit = Math.min(end, buffer.length);
  try {
    writeMap(bins);
  } catch (error) {
    if (error === NO_ROOM) return -1;
    throw error;
  }
  return position;
}

function room(bytes: number): void {
  if (position + bytes > limit) throw NO_ROOM;
}

function writeValue(value: BinValue): void {
  if (typeof value === 'string') writeString(value);
  else if (typeof value === 'number') writeNumber(value);
  else if (typeof value === 'boolean') {
    room(1);
    target[position++] = value ? 0xc3 : 0xc2;
  } else if (typeof value === 'bigint') {
    room(9);
    target[position++] = 0xd3;
    view.setBigInt64(position, value);
    position += 8;
  } else if (typeof value === 'object' && value !== null) {
    if (value instanceof Uint8Array) writeBytes(value);
    else if (Array.isArray(value)) writeArray(value);
    else writeMap(value as Bins);
  } else {
    throw invalidArgument(`a bin value of type ${value === null ? 'null' : typeof value} cannot be stored`);
  }
}

function writeNumber(value: number): void {
  if (value >>> 0 === value) {
    if (value < 0x80) {
      room(1);
      target[position++] = value;
    } else if (value < 0x100) {
      room(2);
      target[position++] = 0xcc;
      target[position++] = value;
    } else if (value < 0x10000) {
      room(3);
      target[position++] = 0xcd;
      target[position++] = value >> 8;
      target[position++] = value & 0xff;
    } else {
      room(5);
      target[position++] = 0xce;
      view.setUint32(position, value);
      position += 4;
    }
  } else if (value >> 0 === value) {
    if (value >= -0x20) {
      room(1);
      target[position++] = 0x100 + value;
    } else if (value >= -0x80) {
      room(2);
      target[position++] = 0xd0;
      target[position++] = value + 0x100;
    } else if (value >= -0x8000) {
      room(3);
      target[position++] = 0xd1;
      view.setInt16(position, value);
      position += 2;
    } else {
      room(5);
      target[position++] = 0xd2;
      view.setInt32(position, value);
      position += 4;
    }
  } else {
    room(9);
    target[position++] = 0xcb;
    view.setFloat64(position, value);
    position += 8;
  }
}

/** Header bytes of a str (or bin, map, array count) of this length. */
function headerBytes(length: number): number {
  return length < 0x20 ? 1 : length < 0x100 ? 2 : length < 0x10000 ? 3 : 5;
}

function writeString(value: string): void {
  const chars = value.length;
  // At most three bytes per UTF-16 unit (a surrogate pair is 4 bytes for 2 units); near the
  // end of the room, count them exactly (a lone surrogate is 3 bytes either way).
  if (position + 5 + chars * 3 > limit) {
    const bytes = Buffer.byteLength(value, 'utf8');
    room(headerBytes(bytes) + bytes);
  }
  // Write the bytes after a header of the size the character count suggests; move them if
  // the byte count needs a bigger header (never a smaller one: bytes >= characters).
  const headerGuess = headerBytes(chars);
  const start = position + headerGuess;
  let length: number;
  if (chars < SHORT_STRING_CHARS) {
    let at = start;
    for (let i = 0; i < chars; i++) {
      let c1 = value.charCodeAt(i);
      if (c1 < 0x80) target[at++] = c1;
      else if (c1 < 0x800) {
        target[at++] = (c1 >> 6) | 0xc0;
        target[at++] = (c1 & 0x3f) | 0x80;
      } else {
        const c2 = value.charCodeAt(i + 1);
        if ((c1 & 0xfc00) === 0xd800 && (c2 & 0xfc00) === 0xdc00) {
          c1 = 0x10000 + ((c1 & 0x03ff) << 10) + (c2 & 0x03ff);
          i++;
          target[at++] = (c1 >> 18) | 0xf0;
          target[at++] = ((c1 >> 12) & 0x3f) | 0x80;
          target[at++] = ((c1 >> 6) & 0x3f) | 0x80;
          target[at++] = (c1 & 0x3f) | 0x80;
        } else {
          target[at++] = (c1 >> 12) | 0xe0;
          target[at++] = ((c1 >> 6) & 0x3f) | 0x80;
          target[at++] = (c1 & 0x3f) | 0x80;
        }
      }
    }
    length = at - start;
  } else {
    length = (target as unknown as Utf8Writer).utf8Write(value, start, limit - start);
  }
  const header = headerBytes(length);
  if (header !== headerGuess) target.copyWithin(position + header, start, start + length);
  if (header === 1) target[position++] = 0xa0 | length;
  else if (header === 2) {
    target[position++] = 0xd9;
    target[position++] = length;
  } else if (header === 3) {
    target[position++] = 0xda;
    target[position++] = length >> 8;
    target[position++] = length & 0xff;
  } else {
    target[position++] = 0xdb;
    view.setUint32(position, length);
    position += 4;
  }
  position += length;
}

function writeBytes(value: Uint8Array): void {
  const length = value.byteLength;
  room((length < 0x100 ? 2 : length < 0x10000 ? 3 : 5) + length);
  if (length < 0x100) {
    target[position++] = 0xc4;
    target[position++] = length;
  } else if (length < 0x10000) {
    target[position++] = 0xc5;
    target[position++] = length >> 8;
    target[position++] = length & 0xff;
  } else {
    target[position++] = 0xc6;
    view.setUint32(position, length);
    position += 4;
  }
  target.set(value, position);
  position += length;
}

function writeLength(length: number, fix: number, sixteen: number, thirtyTwo: number): void {
  room(length < 0x10 ? 1 : length < 0x10000 ? 3 : 5);
  if (length < 0x10) target[position++] = fix | length;
  else if (length < 0x10000) {
    target[position++] = sixteen;
    target[position++] = length >> 8;
    target[position++] = length & 0xff;
  } else {
    target[position++] = thirtyTwo;
    view.setUint32(position, length);
    position += 4;
  }
}

function writeArray(value: BinValue[]): void {
  const length = value.length;
  writeLength(length, 0x90, 0xdc, 0xdd);
  for (let i = 0; i < length; i++) writeValue(value[i]!);
}

/**
 * A map in one pass over its keys: a one-byte fixmap header is reserved, the entries written,
 * and the header filled in with the count; for 16 or more entries (rare for bins) the entries
 * move up to make room for a map16/map32 header. The output is what a counting pass first
 * would give.
 */
function writeMap(value: Bins): void {
  room(1);
  const header = position++;
  let count = 0;
  for (const name in value) {
    writeString(name);
    writeValue(value[name]!);
    count++;
  }
  if (count < 0x10) {
    target[header] = 0x80 | count;
    return;
  }
  const extra = count < 0x10000 ? 2 : 4;
  room(extra);
  target.copyWithin(header + 1 + extra, header + 1, position);
  position += extra;
  if (extra === 2) {
    target[header] = 0xde;
    target[header + 1] = count >> 8;
    target[header + 2] = count & 0xff;
  } else {
    target[header] = 0xdf;
    view.setUint32(header + 1, count);
  }
}
