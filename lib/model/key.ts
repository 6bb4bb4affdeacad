/**
 * Record keys: validation, and their encoding into the exchange buffer where the native side
 * computes the digest (RIPEMD-160 over set name, key type byte, key bytes; docs/api.md, "Keys and digests").
 */
import { DIGEST_BYTES, KEY_MAX_BYTES, PARTITION_COUNT, SET_NAME_MAX_BYTES } from '../constants';
import { invalidArgument } from '../errors';
import {
  EX_DIGEST,
  EX_KEY,
  EX_KEY_LENGTH,
  EX_KEY_TYPE,
  EX_SET,
  EX_SET_LENGTH,
  Exchange,
  KEY_TYPE_BYTES,
  KEY_TYPE_INTEGER,
  KEY_TYPE_STRING,
} from '../native/exchange';

/** A user key value: a string, a safe integer, a bigint in int64 range, or bytes. */
export type KeyValue = string | number | bigint | Buffer | Uint8Array;

/** The namespace and set every key names. */
interface KeyAddress {
  ns: string;
  set?: string;
}

/** A record addressed by its user key (a digest given too is ignored: the key's own is used). */
export interface UserKey extends KeyAddress {
  key: KeyValue;
  digest?: Buffer | Uint8Array;
}

/** A record addressed by its 20-byte RIPEMD-160 digest (digestOf(set, key)); scans return the stored key too. */
export interface DigestKey extends KeyAddress {
  key?: KeyValue;
  digest: Buffer | Uint8Array;
}

/** A record's address: `{ ns, set, key }` or `{ ns, set, digest }`; one of key and digest is required. */
export type Key = UserKey | DigestKey;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const TWO_POW_32 = 4294967296;

/** UTF-8 bytes of set names, cached because the same few names are used on every call. */
const setNameBytes = new Map<string, Buffer>();
const SET_NAME_CACHE_MAX = 10_000;

/**
 * Returns the UTF-8 bytes of a set name.
 * @throws ShoalError INVALID_ARGUMENT when the name is too long or holds a NUL.
 */
export function encodeSetName(set: string): Buffer {
  let bytes = setNameBytes.get(set);
  if (bytes !== undefined) return bytes;
  bytes = Buffer.from(set, 'utf8');
  if (bytes.length > SET_NAME_MAX_BYTES) {
    throw invalidArgument(`set name "${set.slice(0, 80)}" is ${bytes.length} bytes; the limit is ${SET_NAME_MAX_BYTES}`);
  }
  if (bytes.includes(0)) throw invalidArgument('set name must not contain a NUL character');
  if (setNameBytes.size < SET_NAME_CACHE_MAX) setNameBytes.set(set, bytes);
  return bytes;
}

/**
 * Checks the shape of a key argument.
 * @throws TypeError when it is not an object with a string `ns`; ShoalError INVALID_ARGUMENT
 *   when `set`, `key` or `digest` are of the wrong kind.
 */
export function checkKeyShape(key: unknown, argument = 'key'): asserts key is Key {
  if (key === null || typeof key !== 'object') {
    throw new TypeError(`${argument} must be an object like { ns, set, key } or { ns, set, digest }`);
  }
  const candidate = key as Key;
  if (typeof candidate.ns !== 'string' || candidate.ns.length === 0) {
    throw new TypeError(`${argument}.ns must be a namespace name (a non-empty string)`);
  }
  if (candidate.set !== undefined && candidate.set !== null && typeof candidate.set !== 'string') {
    throw new TypeError(`${argument}.set must be a string when given`);
  }
  if (candidate.key === undefined || candidate.key === null) {
    if (candidate.digest === undefined || candidate.digest === null) {
      throw new TypeError(`${argument} needs a key or a digest`);
    }
    if (!(candidate.digest instanceof Uint8Array)) throw new TypeError(`${argument}.digest must be a ${DIGEST_BYTES}-byte Buffer, not ${describe(candidate.digest)}`);
    if (candidate.digest.length !== DIGEST_BYTES) {
      throw invalidArgument(`${argument}.digest must be a ${DIGEST_BYTES}-byte Buffer`);
    }
  }
}

/**
 * Writes the key's set name and key bytes into the exchange, ready for the native side to
 * hash; or, for a digest-addressed key, writes the digest. Returns true when the native call
 * must compute the digest (a user key), false when the digest is already in place.
 * @throws ShoalError INVALID_ARGUMENT for a key of the wrong type or size.
 */
export function writeKey(exchange: Exchange, key: Key): boolean {
  const set = key.set ?? '';
  const buffer = exchange.buffer;
  const value = key.key;
  if (value === undefined || value === null) {
    exchange.setDigest(key.digest as Uint8Array);
    return false;
  }
  if (set !== exchange.lastSetName) {
    const setBytes = set.length === 0 ? EMPTY : encodeSetName(set);
    buffer.writeUInt16LE(setBytes.length, EX_SET_LENGTH);
    if (setBytes.length > 0) exchange.u8.set(setBytes, EX_SET);
    exchange.lastSetName = set;
  }
  const written = writeKeyValue(exchange.u8, buffer, EX_KEY, value);
  exchange.u8[EX_KEY_TYPE] = written & KEY_TYPE_MASK;
  exchange.u32[EX_KEY_LENGTH >>> 2] = written >>> KEY_LENGTH_SHIFT;
  return true;
}

/** writeKeyValue's result: the key type in the low bits, the key's byte length above. */
export const KEY_TYPE_MASK = 7;
export const KEY_LENGTH_SHIFT = 3;

/**
 * Writes the bytes of a user key (as hashed into its digest) at `offset` of `buffer`, whose
 * bytes `bytes` views. Returns `keyType | (length << KEY_LENGTH_SHIFT)`.
 * @throws ShoalError INVALID_ARGUMENT for a key of the wrong type or size.
 */
export function writeKeyValue(bytes: Uint8Array, buffer: Buffer, offset: number, value: KeyValue): number {
  // typeof comparisons, not a switch over typeof: V8 compiles `typeof x === 'string'` to a
  // type check, while a switch materialises the typeof string with a builtin call.
  if (typeof value === 'string') {
    if (value.length > KEY_MAX_BYTES / 3 && Buffer.byteLength(value, 'utf8') > KEY_MAX_BYTES) {
      throw invalidArgument(`string key is longer than ${KEY_MAX_BYTES} UTF-8 bytes`);
    }
    return KEY_TYPE_STRING | (writeString(bytes, buffer, value, offset) << KEY_LENGTH_SHIFT);
  }
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) {
      throw invalidArgument(`integer key ${String(value)} is not a safe integer; use a bigint or a string`);
    }
    const high = Math.floor(value / TWO_POW_32);
    buffer.writeInt32BE(high, offset);
    buffer.writeUInt32BE(value - high * TWO_POW_32, offset + 4);
    return KEY_TYPE_INTEGER | (8 << KEY_LENGTH_SHIFT);
  }
  if (typeof value === 'bigint') {
    if (value < INT64_MIN || value > INT64_MAX) throw invalidArgument('bigint key is outside the int64 range');
    buffer.writeBigInt64BE(value, offset);
    return KEY_TYPE_INTEGER | (8 << KEY_LENGTH_SHIFT);
  }
  if (!(value instanceof Uint8Array)) {
    throw invalidArgument(`key must be a string, a safe integer, a bigint or a Buffer, not ${describe(value)}`);
  }
  if (value.length > KEY_MAX_BYTES) throw invalidArgument(`bytes key is longer than ${KEY_MAX_BYTES} bytes`);
  bytes.set(value, offset);
  return KEY_TYPE_BYTES | (value.length << KEY_LENGTH_SHIFT);
}

const EMPTY = Buffer.alloc(0);
/** Strings up to this many characters are copied by a JS loop when they are ASCII. */
const ASCII_FAST_PATH_CHARS = 64;

/**
 * Writes a string as UTF-8 and returns its byte length. Short ASCII strings (the common
 * key) are copied byte by byte: several times cheaper than Buffer#write's native call.
 */
function writeString(bytes: Uint8Array, buffer: Buffer, value: string, offset: number): number {
  if (value.length <= ASCII_FAST_PATH_CHARS) {
    let i = 0;
    for (; i < value.length; i++) {
      const code = value.charCodeAt(i);
      if (code > 0x7f) break;
      bytes[offset + i] = code;
    }
    if (i === value.length) return i;
  }
  return buffer.write(value, offset, 'utf8');
}

/** The key type byte and bytes of the key last written by writeKey (copies; not for the hot path). */
export function keyBytesFromExchange(exchange: Exchange): { type: number; bytes: Buffer } {
  const length = exchange.buffer.readUInt32LE(EX_KEY_LENGTH);
  return { type: exchange.u8[EX_KEY_TYPE]!, bytes: Buffer.from(exchange.buffer.subarray(EX_KEY, EX_KEY + length)) };
}

/** Decodes a stored user key from its type byte and bytes. */
export function decodeKeyValue(type: number, bytes: Uint8Array): KeyValue {
  return decodeKeyValueAt(type, bytes, 0, bytes.length);
}

/** 2^32, and the high word's range of an integer key that is a safe JS number (|value| < 2^53). */
const TWO_TO_32 = 4294967296;
const SAFE_HIGH_MAX = 0x1fffff;
const SAFE_HIGH_MIN = -0x200000;

/**
 * decodeKeyValue of bytes[at, at + length), without a view of them: an integer key is read as
 * two 32-bit words (a BigInt only when it is not a safe integer), so decoding a batch of keys
 * allocates nothing for them.
 */
export function decodeKeyValueAt(type: number, bytes: Uint8Array, at: number, length: number): KeyValue {
  if (type === KEY_TYPE_INTEGER && length === 8) {
    const high = ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) | 0;
    const low = ((bytes[at + 4]! << 24) | (bytes[at + 5]! << 16) | (bytes[at + 6]! << 8) | bytes[at + 7]!) >>> 0;
    // -2^53 (high SAFE_HIGH_MIN, low 0) is the one value of these words that is not safe.
    if (high <= SAFE_HIGH_MAX && high >= SAFE_HIGH_MIN && (high !== SAFE_HIGH_MIN || low !== 0)) return high * TWO_TO_32 + low;
  }
  const view = Buffer.from(bytes.buffer, bytes.byteOffset + at, length);
  switch (type) {
    case KEY_TYPE_STRING:
      return view.toString('utf8');
    case KEY_TYPE_INTEGER: {
      const value = view.readBigInt64BE(0);
      return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
    }
    default:
      return Buffer.from(view);
  }
}

/** The partition id of a digest: its first two bytes little-endian, low 12 bits (Aerospike's rule). */
export function partitionIdOf(digest: Uint8Array): number {
  return partitionIdAt(digest, 0);
}

/**
 * The partition id of the digest at bytes[at, at + 20) (a digest inside the exchange): the one
 * place the formula is written.
 */
export function partitionIdAt(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8)) & (PARTITION_COUNT - 1);
}
/** The digest currently in the exchange, as a new Buffer. */
export function digestFromExchange(exchange: Exchange): Buffer {
  return Buffer.from(exchange.buffer.subarray(EX_DIGEST, EX_DIGEST + DIGEST_BYTES));
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number' && Number.isNaN(value)) return 'NaN';
  if (typeof value === 'object') return `an object (${(value as object).constructor?.name ?? 'no prototype'})`;
  return `a ${typeof value}`;
}
