/**
 * Keys, digests and partition ids exactly as SPEC section 1 defines them.
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { digestOf, partitionOf, PARTITION_COUNT } from '../lib/index';

/** The documented algorithm, computed independently with node:crypto. */
function referenceDigest(set: string, type: number, keyBytes: Buffer): string {
  return createHash('ripemd160').update(Buffer.concat([Buffer.from(set, 'utf8'), Buffer.from([type]), keyBytes])).digest('hex');
}

function int64(value: bigint): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigInt64BE(value);
  return bytes;
}

describe('digests', () => {
  it('match the digests published in the Aerospike Python client tests (set "set", integer keys)', () => {
    // From the Aerospike Python client's key digest tests.
    expect(digestOf('set', -1).toString('hex')).toBe('22116d253745e29fc63fdf760b6e26f7e197e01d');
    expect(digestOf('set', 0).toString('hex')).toBe('93d943aae37b017ad7e011b0c1d2e2143c2fb37d');
    expect(digestOf('set', 1).toString('hex')).toBe('82d7213b469812947c109a6d341e3b5b1dedec1f');
    expect(digestOf('set', -128).toString('hex')).toBe('93191e549f8f3548d7e2cfc958ddc8c65bcbe4c6');
  });

  it('match an independent RIPEMD-160 over set, key type and key bytes, for every key type', () => {
    for (let i = 0; i < 200; i++) {
      const set = i % 7 === 0 ? '' : `set-${i}-é`;
      const text = randomBytes(1 + (i % 40)).toString('base64');
      expect(digestOf(set, text).toString('hex')).toBe(referenceDigest(set, 3, Buffer.from(text, 'utf8')));
      const integer = BigInt.asIntN(64, randomBytes(8).readBigUInt64BE());
      expect(digestOf(set, integer).toString('hex')).toBe(referenceDigest(set, 1, int64(integer)));
      const bytes = randomBytes(i % 50);
      expect(digestOf(set, bytes).toString('hex')).toBe(referenceDigest(set, 4, bytes));
    }
  });

  it('treat a number and a bigint of the same integer as one key, and 1 and "1" as two', () => {
    expect(digestOf('s', 42)).toEqual(digestOf('s', 42n));
    expect(digestOf('s', -9007199254740991)).toEqual(digestOf('s', -9007199254740991n));
    expect(digestOf('s', 1)).not.toEqual(digestOf('s', '1'));
    expect(digestOf('s', 'k')).not.toEqual(digestOf('t', 'k'));
  });

  it('refuse keys that cannot be hashed faithfully', () => {
    expect(() => digestOf('s', 1.5)).toThrow(/safe integer/);
    expect(() => digestOf('s', Number.NaN)).toThrow(/safe integer/);
    expect(() => digestOf('s', 2 ** 53)).toThrow(/safe integer/);
    expect(() => digestOf('s', 2n ** 63n)).toThrow(/int64/);
    expect(() => digestOf('s', 'x'.repeat(5000))).toThrow(/4096/);
    expect(() => digestOf('x'.repeat(64), 'k')).toThrow(/set name/);
  });
});

describe('partition ids', () => {
  it('are the low 12 bits of the first two digest bytes read little-endian', () => {
    for (let i = 0; i < 1000; i++) {
      const digest = digestOf('p', i);
      expect(partitionOf(digest)).toBe(digest.readUInt16LE(0) & 0x0fff);
      expect(partitionOf(digest)).toBeLessThan(PARTITION_COUNT);
    }
  });

  it('spread sequential keys evenly over 4096 partitions', () => {
    const counts = new Array<number>(PARTITION_COUNT).fill(0);
    const keys = 409_600;
    for (let i = 0; i < keys; i++) counts[partitionOf(digestOf('spread', i))]!++;
    const expected = keys / PARTITION_COUNT;
    // 100 per partition on average: a binomial spread keeps every count well within ±60%.
    expect(Math.min(...counts)).toBeGreaterThan(expected * 0.4);
    expect(Math.max(...counts)).toBeLessThan(expected * 1.6);
  });
});
