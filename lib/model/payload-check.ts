/**
 * A check of a peer's record payload (docs/record-payload.md) that walks its bytes instead of
 * decoding them. Cluster batches carry bins as payload bytes (a batchPut item, a replicated
 * version); decoding each one with msgpackr only to see that it decodes, and (on a master)
 * encoding the result again, was most of the CPU a replicated batch cost. The walk vouches
 * for a payload only when it is exactly what the write path's encoder writes for bins that
 * checkBins accepts, so the bytes can be stored as they came:
 *
 * - payload format 1 (format 2 holds order flags and non-string map keys: not walked);
 * - a MessagePack map of 1..BINS_PER_RECORD_MAX bins, each name a fixstr of 1..15 ASCII
 *   bytes (no NUL), never `__proto__`, no name twice;
 * - every value well-formed MessagePack of the kinds a bin value encodes to (nil only inside
 *   a list or map, never a bin's own value), containers nested at most BIN_VALUE_DEPTH_MAX
 *   levels, floats finite, unsigned 64-bit integers within the int64 range, maps inside
 *   values keyed by strings other than `__proto__`;
 * - nothing past the map.
 *
 * Anything else (a valid payload the walk does not know, or a malformed one) gets `false`:
 * the caller then decodes the payload as before, which accepts or refuses it with its error.
 * So the walk can only save work, never accept what decoding would refuse.
 */
import { BIN_NAME_MAX_BYTES, BIN_VALUE_DEPTH_MAX, BINS_PER_RECORD_MAX, PAYLOAD_FORMAT_VERSION, PAYLOAD_HEADER_BYTES } from '../constants';

/** Bins whose names are compared pairwise for repeats; a map of more is left to the decoder. */
const NAMES_COMPARED_MAX = 64;
/** `__proto__` in UTF-8: a key msgpackr would turn into a prototype. */
const PROTO = Buffer.from('__proto__', 'latin1');

/**
 * Whether the payload in `source[start, end)` is a format-1 payload whose bins the walk
 * vouches for (see above). The key, if the payload stores one, is only bounds-checked here.
 */
export function payloadWellFormed(source: Uint8Array, start: number, end: number): boolean {
  if (end - start < PAYLOAD_HEADER_BYTES || source[start] !== PAYLOAD_FORMAT_VERSION) return false;
  const keyLength = source[start + 2]! | (source[start + 3]! << 8);
  const binsAt = start + PAYLOAD_HEADER_BYTES + keyLength;
  if (binsAt > end) return false;
  return binsWellFormed(source, binsAt, end);
}

/** Whether `source[at, end)` is exactly one bins map the walk vouches for (see above). */
export function binsWellFormed(source: Uint8Array, at: number, end: number): boolean {
  if (at >= end) return false;
  const tag = source[at]!;
  let count: number;
  if (tag >= 0x81 && tag <= 0x8f) {
    count = tag & 0x0f;
    at += 1;
  } else if (tag === 0xde && at + 3 <= end) {
    count = (source[at + 1]! << 8) | source[at + 2]!;
    at += 3;
  } else {
    return false;
  }
  if (count === 0 || count > BINS_PER_RECORD_MAX || count > NAMES_COMPARED_MAX) return false;
  // Where each name starts, to find a name given twice.
  const names = nameStarts.length >= count ? nameStarts : (nameStarts = new Int32Array(NAMES_COMPARED_MAX));
  for (let i = 0; i < count; i++) {
    if (at >= end) return false;
    const nameTag = source[at]!;
    const nameLength = nameTag - 0xa0;
    if (nameLength < 1 || nameLength > BIN_NAME_MAX_BYTES || at + 1 + nameLength > end) return false;
    for (let k = 1; k <= nameLength; k++) {
      const byte = source[at + k]!;
      if (byte === 0 || byte > 0x7f) return false;
    }
    if (isProto(source, at + 1, nameLength)) return false;
    for (let j = 0; j < i; j++) if (sameName(source, names[j]!, at)) return false;
    names[i] = at;
    at += 1 + nameLength;
    // A bin's own nil removes the bin: only the per-record path writes that.
    if (at >= end || source[at] === 0xc0) return false;
    at = skipValue(source, at, end, 0);
    if (at < 0) return false;
  }
  return at === end;
}

let nameStarts = new Int32Array(NAMES_COMPARED_MAX);

/** Whether the fixstr names at a and b are the same bytes. */
function sameName(source: Uint8Array, a: number, b: number): boolean {
  const length = source[a]!;
  if (source[b] !== length) return false;
  for (let k = 1; k <= length - 0xa0; k++) if (source[a + k] !== source[b + k]) return false;
  return true;
}

function isProto(source: Uint8Array, at: number, length: number): boolean {
  if (length !== PROTO.length) return false;
  for (let k = 0; k < length; k++) if (source[at + k] !== PROTO[k]) return false;
  return true;
}

/** The offset after the bin value at `at` (at nesting `depth`), or -1 when the walk does not vouch for it. */
function skipValue(source: Uint8Array, at: number, end: number, depth: number): number {
  if (at >= end) return -1;
  const tag = source[at]!;
  if (tag <= 0x7f || tag >= 0xe0 || tag === 0xc0 || tag === 0xc2 || tag === 0xc3) return at + 1;
  if (tag >= 0xa0 && tag <= 0xbf) return within(at + 1 + (tag & 0x1f), end);
  if (tag >= 0x90 && tag <= 0x9f) return skipItems(source, at + 1, end, tag & 0x0f, depth);
  if (tag >= 0x80 && tag <= 0x8f) return skipEntries(source, at + 1, end, tag & 0x0f, depth);
  switch (tag) {
    case 0xcc:
    case 0xd0:
      return within(at + 2, end);
    case 0xcd:
    case 0xd1:
      return within(at + 3, end);
    case 0xce:
    case 0xd2:
      return within(at + 5, end);
    case 0xd3:
      return within(at + 9, end);
    case 0xcf:
      // Past int64 it would decode to a bigint checkBins refuses.
      return at + 9 <= end && source[at + 1]! < 0x80 ? at + 9 : -1;
    case 0xca:
      return at + 5 <= end && finiteFloat32(source, at + 1) ? at + 5 : -1;
    case 0xcb:
      return at + 9 <= end && finiteFloat64(source, at + 1) ? at + 9 : -1;
    case 0xd9:
    case 0xc4:
      return at + 2 <= end ? within(at + 2 + source[at + 1]!, end) : -1;
    case 0xda:
    case 0xc5:
      return at + 3 <= end ? within(at + 3 + ((source[at + 1]! << 8) | source[at + 2]!), end) : -1;
    case 0xdb:
    case 0xc6:
      return at + 5 <= end ? within(at + 5 + u32(source, at + 1), end) : -1;
    case 0xdc:
      return at + 3 <= end ? skipItems(source, at + 3, end, (source[at + 1]! << 8) | source[at + 2]!, depth) : -1;
    case 0xdd:
      return at + 5 <= end ? skipItems(source, at + 5, end, u32(source, at + 1), depth) : -1;
    case 0xde:
      return at + 3 <= end ? skipEntries(source, at + 3, end, (source[at + 1]! << 8) | source[at + 2]!, depth) : -1;
    case 0xdf:
      return at + 5 <= end ? skipEntries(source, at + 5, end, u32(source, at + 1), depth) : -1;
    default:
      // Extensions (0xc7-0xc9, 0xd4-0xd8) and 0xc1: nothing the encoder writes in format 1.
      return -1;
  }
}

function within(next: number, end: number): number {
  return next <= end ? next : -1;
}

/** A list's items: a container is a value at `depth`, its items one level deeper. */
function skipItems(source: Uint8Array, at: number, end: number, items: number, depth: number): number {
  if (depth >= BIN_VALUE_DEPTH_MAX || items > end - at) return -1;
  for (let i = 0; i < items && at >= 0; i++) at = skipValue(source, at, end, depth + 1);
  return at;
}

/** A map's entries: in format 1 every key is a string (a plain object's), never `__proto__`. */
function skipEntries(source: Uint8Array, at: number, end: number, entries: number, depth: number): number {
  if (depth >= BIN_VALUE_DEPTH_MAX || entries * 2 > end - at) return -1;
  for (let i = 0; i < entries; i++) {
    if (at >= end) return -1;
    const tag = source[at]!;
    let keyAt: number;
    let keyLength: number;
    if (tag >= 0xa0 && tag <= 0xbf) {
      keyAt = at + 1;
      keyLength = tag & 0x1f;
    } else if (tag === 0xd9 && at + 2 <= end) {
      keyAt = at + 2;
      keyLength = source[at + 1]!;
    } else if (tag === 0xda && at + 3 <= end) {
      keyAt = at + 3;
      keyLength = (source[at + 1]! << 8) | source[at + 2]!;
    } else if (tag === 0xdb && at + 5 <= end) {
      keyAt = at + 5;
      keyLength = u32(source, at + 1);
    } else {
      return -1;
    }
    if (keyAt + keyLength > end || isProto(source, keyAt, keyLength)) return -1;
    at = skipValue(source, keyAt + keyLength, end, depth + 1);
    if (at < 0) return -1;
  }
  return at;
}

function u32(source: Uint8Array, at: number): number {
  return ((source[at]! << 24) >>> 0) + ((source[at + 1]! << 16) | (source[at + 2]! << 8) | source[at + 3]!);
}

/** A big-endian float32 whose exponent bits are not all ones (not Infinity or NaN). */
function finiteFloat32(source: Uint8Array, at: number): boolean {
  return ((source[at]! & 0x7f) << 1 | (source[at + 1]! >>> 7)) !== 0xff;
}

/** A big-endian float64 whose exponent bits are not all ones (not Infinity or NaN). */
function finiteFloat64(source: Uint8Array, at: number): boolean {
  return ((source[at]! & 0x7f) << 4 | (source[at + 1]! >>> 4)) !== 0x7ff;
}
