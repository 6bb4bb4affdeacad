/**
 * digestsOf (many keys, one native call per slice: ripemd160Many) gives exactly digestOf's
 * digest for every key: strings, integers, bigints, bytes, with and without a set, keys
 * longer than one RIPEMD-160 block (digested alone), keys given by digest, and more keys than
 * one native call's buffer holds.
 */
import { describe, expect, it } from 'vitest';
import type { Key } from '../lib/model/key';
import { digestOf, digestsOf } from '../lib/model/digest';

describe('digestsOf', () => {
  it('equals digestOf key by key, whatever the key and its length', () => {
    const keys: Key[] = [];
    for (let i = 0; i < 3000; i++) {
      const set = i % 3 === 0 ? undefined : `set-${i % 7}`;
      const kinds = [`k${i}`, i, BigInt(i) * 1_000_000_007n, Buffer.from([i & 255, i >> 8]), 'é'.repeat(i % 40), 'x'.repeat(50 + (i % 200))];
      keys.push({ ns: 'test', set, key: kinds[i % kinds.length]! });
    }
    keys.push({ ns: 'test', set: 's', digest: Buffer.alloc(20, 7) });
    // Past one native call's 256 KiB of messages: long keys fill it quickly.
    for (let i = 0; i < 200; i++) keys.push({ ns: 'test', set: 'big', key: 'y'.repeat(4000) + i });
    const digests = digestsOf(keys);
    keys.forEach((key, i) => {
      const expected = key.key === undefined ? Buffer.from(key.digest!) : digestOf(key.set ?? undefined, key.key);
      expect(digests.subarray(i * 20, i * 20 + 20).equals(expected), `key ${i}`).toBe(true);
    });
  });

  it('refuses a key of the wrong type as digestOf does', () => {
    expect(() => digestsOf([{ ns: 'test', key: 1.5 }])).toThrow(/safe integer/);
  });
});
