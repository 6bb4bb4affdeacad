/**
 * Digests computed outside the hot path: for callers who address records by digest and for
 * tools. The namespaces compute digests natively from the exchange buffer instead.
 */
import { addon } from '../native/addon';
import { Exchange, EX_KEY, EX_KEY_LENGTH, EX_KEY_TYPE, EX_SET, EX_SET_LENGTH } from '../native/exchange';
import { KEY_MAX_BYTES, SET_NAME_MAX_BYTES } from '../constants';
import { invalidArgument } from '../errors';
import type { Key } from './key';
import { KEY_LENGTH_SHIFT, KEY_TYPE_MASK, KeyValue, encodeSetName, partitionIdOf, writeKey, writeKeyValue } from './key';

const scratch = new Exchange(0);

/**
 * The 20-byte RIPEMD-160 digest of a key in a set, as Aerospike's clients compute it.
 * @throws ShoalError INVALID_ARGUMENT for a key of the wrong type or size.
 */
export function digestOf(set: string | undefined, key: KeyValue): Buffer {
  writeKey(scratch, { ns: '-', set, key });
  const buffer = scratch.buffer;
  const setLength = buffer.readUInt16LE(EX_SET_LENGTH);
  const keyLength = buffer.readUInt32LE(EX_KEY_LENGTH);
  const input = Buffer.concat([
    buffer.subarray(EX_SET, EX_SET + setLength),
    buffer.subarray(EX_KEY_TYPE, EX_KEY_TYPE + 1),
    buffer.subarray(EX_KEY, EX_KEY + keyLength),
  ]);
  return addon().ripemd160(input);
}

/** The partition (0..4095) a digest belongs to. */
export function partitionOf(digest: Uint8Array): number {
  return partitionIdOf(digest);
}

/** Bytes of the message buffer digestsOf fills before each native call. */
const DIGEST_MESSAGES_BYTES = 256 * 1024;
const messages = Buffer.alloc(DIGEST_MESSAGES_BYTES);
const messageBytes = new Uint8Array(messages.buffer, messages.byteOffset, messages.length);
/** The largest message one key makes: set name, key type byte, key. */
const MESSAGE_MAX_BYTES = SET_NAME_MAX_BYTES + 1 + KEY_MAX_BYTES;

/**
 * The digests of many keys (as digestOf computes each), with one native call per
 * DIGEST_MESSAGES_BYTES of keys instead of one per key: digest i is bytes [20 i, 20 i + 20) of
 * the result. A key given by its digest keeps it.
 * @throws ShoalError INVALID_ARGUMENT for a key of the wrong type or size (TypeError-free:
 *   callers check key shapes first).
 */
export function digestsOf(keys: readonly Key[]): Buffer {
  const digests = Buffer.allocUnsafe(keys.length * 20);
  if (typeof addon().ripemd160Many !== 'function') {
    // An addon built before ripemd160Many: one native call per key, as digestOf makes.
    keys.forEach((key, i) => digests.set(key.key === undefined || key.key === null ? (key.digest as Uint8Array) : digestOf(key.set, key.key), i * 20));
    return digests;
  }
  const ends = new Uint32Array(keys.length);
  let first = 0;
  let at = 0;
  let lastSet: string | undefined;
  let lastSetBytes: Buffer = Buffer.alloc(0);
  const flush = (end: number) => {
    if (end > first) addon().ripemd160Many(messages, ends.subarray(first, end), digests.subarray(first * 20, end * 20));
    first = end;
    at = 0;
  };
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (at + MESSAGE_MAX_BYTES > DIGEST_MESSAGES_BYTES) flush(i);
    if (key.key === undefined || key.key === null) {
      // Given by digest: an empty message keeps the native side in step; its digest is copied below.
      ends[i] = at;
      continue;
    }
    const set = key.set ?? '';
    if (set !== lastSet) {
      lastSet = set;
      lastSetBytes = set.length === 0 ? Buffer.alloc(0) : encodeSetName(set);
    }
    messageBytes.set(lastSetBytes, at);
    const written = writeKeyValue(messageBytes, messages, at + lastSetBytes.length + 1, key.key);
    messageBytes[at + lastSetBytes.length] = written & KEY_TYPE_MASK;
    at += lastSetBytes.length + 1 + (written >>> KEY_LENGTH_SHIFT);
    ends[i] = at;
  }
  flush(keys.length);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (key.key !== undefined && key.key !== null) continue;
    if (!(key.digest instanceof Uint8Array) || key.digest.length !== 20) throw invalidArgument('a key needs a key or a 20-byte digest');
    digests.set(key.digest, i * 20);
  }
  return digests;
}
