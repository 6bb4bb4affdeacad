/**
 * Digests computed outside the hot path: for callers who address records by digest and for
 * tools. The namespaces compute digests natively from the exchange buffer instead.
 */
import { addon } from '../native/addon';
import { Exchange, EX_KEY, EX_KEY_LENGTH, EX_KEY_TYPE, EX_SET, EX_SET_LENGTH } from '../native/exchange';
import { KeyValue, partitionIdOf, writeKey } from './key';

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
