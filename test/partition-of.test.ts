/**
 * The partition of a digest is written once (lib/model/key.ts); every name for it agrees, and
 * each takes one argument, so `digests.map(f)` gives each digest's partition (a second
 * optional parameter would have received the array index).
 */
import { describe, expect, it } from 'vitest';
import { PARTITION_COUNT, digestOf, partitionOf } from '../lib/index';
import { partitionOf as clusterPartitionOf } from '../lib/cluster/peer-checks';
import { partitionIdAt, partitionIdOf } from '../lib/model/key';
import { partitionOfDigest } from '../sim/store';

describe('the partition of a digest', () => {
  it('is the first two bytes little-endian, low 12 bits, under every name, also through map', () => {
    const digests = Array.from({ length: 64 }, (_, i) => digestOf('set', `key-${i}`));
    const expected = digests.map((digest) => (digest[0]! | (digest[1]! << 8)) & (PARTITION_COUNT - 1));
    expect(new Set(expected).size).toBeGreaterThan(1);
    for (const name of [partitionOf, clusterPartitionOf, partitionIdOf, partitionOfDigest]) expect(digests.map(name)).toEqual(expected);
    const inside = Buffer.concat([Buffer.alloc(7), digests[5]!]);
    expect(partitionIdAt(inside, 7)).toBe(expected[5]);
  });
});
