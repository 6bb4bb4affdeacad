/**
 * The bins' MessagePack encoder of the write path. It writes straight into the caller's
 * buffer (the exchange, a batch buffer), so a put allocates nothing to encode its record and
 * copies nothing afterwards. Its output is byte for byte what lib/model/bins.ts's msgpackr
 * Packr writes for validated bins (test/bin-encoder.test.ts checks that), so msgpackr reads it
 * back exactly: numbers that are 32-bit integers as the smallest integer form (positive
 * fixints up to 127), other numbers as float64, bigints as int64, Buffers and Uint8Arrays as
 * bin, strings as UTF-8 str, arrays, and plain objects as maps sized to their key count.
 *
 * encodeBins' input must have passed checkBins (names, types, depth; null only inside lists
 * and maps); it checks only what it needs not to misbehave. encodeBinsChecked (batchPut) takes
 * unchecked bins and checks as it writes, so a batch walks each entry's bins once instead of
 * three times: it gives up (BINS_NEED_CHECK) at anything checkBins would refuse, and at a
 * top-level null (a bin removal, which the batch leaves to the per-record path); the caller
 * then runs checkBins for the exact error. Neither ever writes past `end`.
 */
import { BIN_NAME_MAX_BYTES, BIN_VALUE_DEPTH_MAX, BINS_PER_RECORD_MAX } from '../constants';
import { invalidArgument } from '../errors';
import type { BinValue, Bins } from './bin-value';
import { fromUser } from './cdt/convert';
import { CDT_FLAGS, CdtList, CdtMap, CdtSpecial, CdtValue, ENCODED_ENTRIES, EncodedEntries, EncodedValue, INF } from './cdt/value';

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

/** Thrown by the writers when the value does not fit before `end`. */
class NoRoom {}
const NO_ROOM = new NoRoom();
/** Thrown by the writers, while checking, at a value checkBins must look at. */
class NeedsCheck {}
const NEEDS_CHECK = new NeedsCheck();

/** encodeBinsChecked's result when the bins need checkBins (an error, or a top-level null). */
export const BINS_NEED_CHECK = -2;

/** Whether the writers check what they write (encodeBinsChecked) or trust it (encodeBins). */
let checking = false;
/** Whether INF and WILDCARD may be written (operation arguments, never stored values). */
let specialsAllowed = false;
/**
 * Whether the last encode wrote something only payload format 2 carries: an order-flags ext
 * header or a map key that is not a string (docs/record-payload.md).
 */
let extended = false;

/** Whether the last encodeBins / encodeCdtValue wrote order flags or non-string map keys. */
export function wroteExtended(): boolean {
  return extended;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * Encodes bins as one MessagePack map at target[offset, end). Returns the offset after it, or
 * -1 when it does not fit.
 */
export function encodeBins(buffer: Buffer, offset: number, end: number, bins: Bins): number {
  start(buffer, offset, end);
  checking = false;
  specialsAllowed = false;
  try {
    writeMap(bins, -1);
  } catch (error) {
    if (error === NO_ROOM) return -1;
    throw error;
  }
  return position;
}

/**
 * encodeBins for bins nobody has checked but isPlainObject: returns the offset after the map,
 * -1 when it does not fit, or BINS_NEED_CHECK when checkBins(bins, true) would throw or the
 * bins hold a top-level null (target[offset, end) may then hold partial bytes). Never throws.
 */
export function encodeBinsChecked(buffer: Buffer, offset: number, end: number, bins: Bins): number {
  start(buffer, offset, end);
  checking = true;
  specialsAllowed = false;
  try {
    writeBinMap(bins);
  } catch (error) {
    if (error === NO_ROOM) return -1;
    return BINS_NEED_CHECK;
  }
  return position;
}

function start(buffer: Buffer, offset: number, end: number): void {
  if (buffer !== target) {
    target = buffer;
    view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  }
  position = offset;
  limit = Math.min(end, buffer.length);
  extended = false;
}

/**
 * Encodes one collection-engine value at buffer[offset, end) (INF and WILDCARD only when
 * `specials`). Returns the offset after it, or -1 when it does not fit.
 * @throws ShoalError INVALID_ARGUMENT for a comparison value where none is allowed.
 */
export function encodeCdtValue(buffer: Buffer, offset: number, end: number, value: CdtValue, specials: boolean): number {
  start(buffer, offset, end);
  checking = false;
  specialsAllowed = specials;
  try {
    writeCdt(value, 0);
  } catch (error) {
    if (error === NO_ROOM) return -1;
    throw error;
  } finally {
    specialsAllowed = false;
  }
  return position;
}

function isPlainObject(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * The top-level map of encodeBinsChecked: checkBins' rules for names, count and top-level
 * values (a null gives up: the entry takes the per-record path), names from the cache.
 */
function writeBinMap(bins: Bins): void {
  room(1);
  const header = position++;
  let count = 0;
  for (const name in bins) {
    writeBinName(name);
    const value = bins[name];
    if (value === null) throw NEEDS_CHECK;
    writeValue(value as BinValue, 0);
    count++;
  }
  if (count === 0 || count > BINS_PER_RECORD_MAX) throw NEEDS_CHECK;
  finishMap(header, count);
}

/**
 * A bin name, checked by checkBinName's rules: 1 to 15 UTF-8 bytes, counted as written (the
 * short-string loop writes a lone surrogate as 3 bytes, as Buffer.byteLength counts it).
 */
function writeBinName(name: string): void {
  const chars = name.length;
  if (chars === 0 || chars > BIN_NAME_MAX_BYTES) throw NEEDS_CHECK;
  const at = position;
  writeString(name);
  // 15 characters or fewer take at most 45 bytes: the header is one byte, or two past 31.
  if (position - at - 1 > BIN_NAME_MAX_BYTES) throw NEEDS_CHECK;
}

function room(bytes: number): void {
  if (position + bytes > limit) throw NO_ROOM;
}

/** A value nested `depth` levels in its bin (0: the bin's own value). */
function writeValue(value: BinValue, depth: number): void {
  if (typeof value === 'string') writeString(value);
  else if (typeof value === 'number') writeNumber(value);
  else if (typeof value === 'boolean') {
    room(1);
    target[position++] = value ? 0xc3 : 0xc2;
  } else if (typeof value === 'bigint') {
    if (checking && (value < INT64_MIN || value > INT64_MAX)) throw NEEDS_CHECK;
    room(9);
    target[position++] = 0xd3;
    view.setBigInt64(position, value);
    position += 8;
  } else if (value === null && depth > 0) {
    // nil inside a list or map (a bin's own null is a removal, handled before the encoder).
    room(1);
    target[position++] = 0xc0;
  } else if (typeof value === 'object' && value !== null) {
    if (checking && depth >= BIN_VALUE_DEPTH_MAX) throw NEEDS_CHECK;
    if (value instanceof Uint8Array) writeBytes(value);
    else if (Array.isArray(value)) {
      if ((value as { [CDT_FLAGS]?: number })[CDT_FLAGS] === undefined) writeArray(value, depth);
      else writeConverted(value, depth);
    } else if (value instanceof EncodedValue) writeEncoded(value);
    else if (value instanceof CdtList || value instanceof CdtMap) writeCdt(value, depth);
    else if (value instanceof Map || (value as { [CDT_FLAGS]?: number })[CDT_FLAGS] !== undefined) writeConverted(value, depth);
    else if (checking && !isPlainObject(value)) throw NEEDS_CHECK;
    else writeMap(value as Bins, depth);
  } else if (value === null && !checking) {
    // Nil inside a list or map: the collection operations create it (a list padded by an insert past its end).
    room(1);
    target[position++] = 0xc0;
  } else {
    if (checking) throw NEEDS_CHECK;
    throw invalidArgument(`a bin value of type ${value === null ? 'null' : typeof value} cannot be stored`);
  }
}

/**
 * A Map, or a list or plain object carrying order flags: written through its CdtValue (sorted
 * in case it was edited since it was read; Map keys checked). The checking encoder leaves these
 * to checkBins and the per-record path.
 */
function writeConverted(value: object, depth: number): void {
  if (checking) throw NEEDS_CHECK;
  writeCdt(fromUser(value, 'bin value', false), depth);
}

function writeEncoded(value: EncodedValue): void {
  const length = value.end - value.start;
  room(length);
  value.source.copy(target, position, value.start, value.end);
  position += length;
  if (value.extended) extended = true;
}

/** A collection-engine value (trusted: it came from the engine or was converted and checked). */
function writeCdt(value: CdtValue, depth: number): void {
  if (value === null) {
    room(1);
    target[position++] = 0xc0;
  } else if (typeof value !== 'object') {
    writeValue(value, depth);
  } else if (value instanceof Uint8Array) {
    writeBytes(value);
  } else if (value instanceof CdtList) {
    checkCdtDepth(depth);
    const flags = value.flags;
    const items = value.items;
    writeLength(items.length + (flags !== 0 ? 1 : 0), 0x90, 0xdc, 0xdd);
    if (flags !== 0) writeFlagsHeader(flags);
    for (let i = 0; i < items.length; i++) writeCdt(items[i]!, depth + 1);
  } else if (value instanceof CdtMap) {
    checkCdtDepth(depth);
    const flags = value.flags;
    const keys = value.keys;
    const values = value.values;
    writeLength(keys.length + (flags !== 0 ? 1 : 0), 0x80, 0xde, 0xdf);
    if (flags !== 0) {
      writeFlagsHeader(flags);
      room(1);
      target[position++] = 0xc0;
    }
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      if (typeof key !== 'string') extended = true;
      writeCdt(key, depth + 1);
      writeCdt(values[i]!, depth + 1);
    }
  } else if (value instanceof CdtSpecial) {
    if (!specialsAllowed) throw invalidArgument('INF and WILDCARD are comparison values: they cannot be stored');
    room(3);
    target[position++] = 0xd4;
    target[position++] = 0xff;
    target[position++] = value === INF ? 0x01 : 0x00;
  }
}

/**
 * A collection the engine built (a value appended into a list, say) may nest deeper than any
 * one argument did: refused here, before it is stored where a read could not decode it.
 */
function checkCdtDepth(depth: number): void {
  if (depth >= BIN_VALUE_DEPTH_MAX) throw invalidArgument(`values nest deeper than ${BIN_VALUE_DEPTH_MAX} levels`);
}

/** The ext element that carries a list's or map's order flags: ext8, length 0, type = flags. */
function writeFlagsHeader(flags: number): void {
  room(3);
  target[position++] = 0xc7;
  target[position++] = 0x00;
  target[position++] = flags;
  extended = true;
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
    if (checking && value - value !== 0) throw NEEDS_CHECK;  // NaN or an infinity
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

function writeArray(value: BinValue[], depth: number): void {
  const length = value.length;
  writeLength(length, 0x90, 0xdc, 0xdd);
  for (let i = 0; i < length; i++) writeValue(value[i]!, depth + 1);
}

/**
 * A map in one pass over its keys: a one-byte fixmap header is reserved, the entries written,
 * and the header filled in with the count; for 16 or more entries (rare for bins) the entries
 * move up to make room for a map16/map32 header. The output is what a counting pass first
 * would give.
 */
function writeMap(value: Bins, depth: number): void {
  room(1);
  const header = position++;
  let count = 0;
  for (const name in value) {
    writeString(name);
    writeValue(value[name]!, depth + 1);
    count++;
  }
  // The bins operate() did not look at, as they were stored (only ever on the bins map itself).
  if (depth < 0) {
    const entries = (value as { [ENCODED_ENTRIES]?: EncodedEntries })[ENCODED_ENTRIES];
    if (entries !== undefined) {
      const length = entries.end - entries.start;
      room(length);
      entries.source.copy(target, position, entries.start, entries.end);
      position += length;
      count += entries.count;
      if (entries.extended) extended = true;
    }
  }
  finishMap(header, count);
}

/** Fills in the header reserved at `header` for a map of `count` entries written after it. */
function finishMap(header: number, count: number): void {
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
