/**
 * The binary forms cluster-mode batchPut sends (lib/db-batch-wire.ts: a put item;
 * lib/cluster/batch-wire.ts: a packed list of replicated versions). Each round-trips what it
 * carries, and every malformed or cut-short input from a peer gets a clear refusal
 * (INVALID_ARGUMENT, or the reason string), never another exception.
 */
import { describe, expect, it } from 'vitest';
import { packVersions, unpackVersions } from '../lib/cluster/batch-wire';
import type { RecordVersion } from '../lib/cluster/local-store';
import { PUT_ITEM_TAG, PutItemEncoder, decodePutItem, isPutItem, writeResultFromWire, writeResultToWire } from '../lib/db-batch-wire';
import { ShoalError } from '../lib/errors';
import type { Key } from '../lib/model/key';
import type { WriteOptions } from '../lib/namespace/semantics';

function expectInvalid(run: () => unknown): void {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ShoalError);
    expect((error as ShoalError).code).toBe('INVALID_ARGUMENT');
    return;
  }
  throw new Error('expected INVALID_ARGUMENT');
}

describe('binary put items', () => {
  const cases: { key: Key; bins: Record<string, unknown>; opts?: WriteOptions }[] = [
    { key: { ns: 'n', key: 'removes a bin' }, bins: { v: null, w: 1 } },
    { key: { ns: 'n', set: 's', key: 'a string key' }, bins: { v: 1, name: 'x', list: [1, 'two', { three: 3 }] } },
    { key: { ns: 'n', key: 42 }, bins: { f: 1.5, neg: -7, big: 2n ** 40n } },
    { key: { ns: 'n', set: 'set', key: -(2 ** 53 - 1) }, bins: { b: Buffer.from([1, 2, 3]) }, opts: { ttl: 60, exists: 'create', durable: true } },
    { key: { ns: 'n', set: 'set', key: 2n ** 62n }, bins: { m: new Map<unknown, unknown>([[1, 'one'], [2, 'two']]) }, opts: { generation: 3, storeKey: true, durable: false } },
    { key: { ns: 'n', set: 'ünïcode', key: Buffer.from('bytes key') }, bins: { s: 'é' }, opts: { exists: 'createOrReplace', storeKey: false, ttl: -1 } },
  ];

  it('round-trip key, bins and options', () => {
    const encoder = new PutItemEncoder();
    for (const { key, bins, opts } of cases) {
      const item = encoder.encode(key, bins as never, opts);
      expect(item).toBeDefined();
      expect(isPutItem(item)).toBe(true);
      const call = decodePutItem(item!, 'n');
      const keyValue = typeof key.key === 'bigint' && key.key <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(key.key) : key.key;
      expect(call.key).toEqual(key.set === undefined ? { ns: 'n', key: keyValue } : { ns: 'n', set: key.set, key: keyValue });
      expect(call.bins).toEqual(bins);
      expect(call.opts).toEqual(opts);
    }
  });

  it('decode integer keys as the int64 they carry: a number when safe, a BigInt otherwise', () => {
    const encoder = new PutItemEncoder();
    // The edges of the two 32-bit words and of the safe range, then random 64-bit values.
    const values: (number | bigint)[] = [0, 1, -1, 2 ** 31, -(2 ** 31) - 1, 2 ** 32 - 1, 2 ** 32, -(2 ** 32), -(2 ** 32) - 1, 2 ** 53 - 1, -(2 ** 53 - 1), 2n ** 53n, -(2n ** 53n), -(2n ** 53n) - 1n, 2n ** 63n - 1n, -(2n ** 63n)];
    let seed = 12345;
    const word = () => BigInt((seed = (seed * 1103515245 + 12345) % 2 ** 31) * 2 + (seed & 1));
    for (let i = 0; i < 2000; i++) values.push(BigInt.asIntN(64, (word() << 32n) | word()), BigInt.asIntN(54, (word() << 32n) | word()));
    for (const value of values) {
      const exact = BigInt(value);
      const expected = exact >= BigInt(Number.MIN_SAFE_INTEGER) && exact <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(exact) : exact;
      const call = decodePutItem(encoder.encode({ ns: 'n', set: 's', key: value }, { v: 1 }, undefined)!, 'n');
      expect(call.key.key).toBe(expected);
    }
  });

  it('leave to the msgpack call what they cannot carry', () => {
    const encoder = new PutItemEncoder();
    expect(encoder.encode({ ns: 'n', digest: Buffer.alloc(20) }, { v: 1 }, undefined)).toBeUndefined();
    expect(encoder.encode({ ns: 'n', set: '', key: 1 }, { v: 1 }, undefined)).toBeUndefined();
    expect(encoder.encode({ ns: 'n', key: 1.5 }, { v: 1 }, undefined)).toBeUndefined();
    expect(encoder.encode({ ns: 'n', key: 1 }, { v: 'x'.repeat(400_000) }, undefined)).toBeUndefined();
    expect(encoder.encode({ ns: 'n', key: 1 }, { v: 1 }, { filter: Buffer.from([1]) as never })).toBeUndefined();
    // Many items in a row fill several arenas; earlier items are not overwritten.
    const items = Array.from({ length: 5_000 }, (_, i) => encoder.encode({ ns: 'n', key: i }, { v: 'y'.repeat(300), i }, undefined)!);
    items.forEach((item, i) => expect(decodePutItem(item, 'n').bins).toEqual({ v: 'y'.repeat(300), i }));
  });

  it('refuse every cut-short or altered item with INVALID_ARGUMENT', () => {
    const encoder = new PutItemEncoder();
    const item = Buffer.from(encoder.encode({ ns: 'n', set: 'set', key: 'k' }, { v: 1, w: 'two' }, { ttl: 5, exists: 'update', generation: 2 })!);
    for (let length = 1; length < item.length; length++) expectInvalid(() => decodePutItem(item.subarray(0, length), 'n'));
    const altered = (at: number, value: number) => {
      const copy = Buffer.from(item);
      copy[at] = value;
      return copy;
    };
    expectInvalid(() => decodePutItem(altered(1, 0x80), 'n')); // unknown option flag
    expectInvalid(() => decodePutItem(altered(1, 8 | 16), 'n')); // durable both ways
    expectInvalid(() => decodePutItem(altered(10, 9), 'n')); // exists policy index out of range
    const setAt = 1 + 1 + 8 + 1 + 8;
    expectInvalid(() => decodePutItem(altered(setAt, 64), 'n')); // set name over 63 bytes
    expectInvalid(() => decodePutItem(altered(setAt + 1, 0xff), 'n')); // set name not UTF-8
    const keyAt = setAt + 1 + 3;
    expectInvalid(() => decodePutItem(altered(keyAt, 2), 'n')); // unknown key type
    expectInvalid(() => decodePutItem(altered(keyAt, 1), 'n')); // integer key of 1 byte
    const payloadAt = keyAt + 3 + 1;
    expectInvalid(() => decodePutItem(altered(payloadAt, 7), 'n')); // unknown payload format
    expectInvalid(() => decodePutItem(altered(payloadAt + 1, 3), 'n')); // payload with a key
    expectInvalid(() => decodePutItem(altered(payloadAt + 4, 0xc1), 'n')); // bins that do not decode
    expect(isPutItem(Buffer.from([PUT_ITEM_TAG - 1]))).toBe(false);
  });

  it('carry results as pairs and read both shapes back', () => {
    expect(writeResultFromWire(writeResultToWire({ gen: 3, ttl: 100 }))).toEqual({ gen: 3, ttl: 100 });
    expect(writeResultFromWire({ gen: 1, ttl: 0 })).toEqual({ gen: 1, ttl: 0 });
  });
});

describe('packed record versions', () => {
  const digest = (n: number) => Buffer.alloc(20, n);
  const versions: RecordVersion[] = [
    { digest: digest(1), gen: 1, voidTime: 0, lastUpdateMs: 1_700_000_000_000, setName: '', tombstone: false, payload: Buffer.from([1, 0, 0, 0, 0x81, 0xa1, 0x76, 1]) },
    { digest: digest(2), gen: 0xffff_ffff, voidTime: 0xffff_ffff, lastUpdateMs: 0, setName: 'sét', tombstone: true, payload: undefined },
    { digest: digest(3), gen: 7, voidTime: 12, lastUpdateMs: 1.5, setName: 's'.repeat(63), tombstone: false, payload: Buffer.alloc(1000, 9) },
  ];

  it('round-trip every field', () => {
    expect(unpackVersions(packVersions(versions), 10)).toEqual(versions);
    expect(unpackVersions(packVersions([]), 10)).toEqual([]);
  });

  it('refuse every cut-short, padded or out-of-bounds list with a reason', () => {
    const packed = packVersions(versions);
    for (let length = 0; length < packed.length; length++) expect(typeof unpackVersions(packed.subarray(0, length), 10)).toBe('string');
    expect(typeof unpackVersions(Buffer.concat([packed, Buffer.from([0])]), 10)).toBe('string');
    expect(unpackVersions(packed, 2)).toMatch(/more than 2/);
    expect(typeof unpackVersions('bytes', 10)).toBe('string');
    const one = (change: Partial<RecordVersion>) => unpackVersions(packVersions([{ ...versions[0]!, ...change }]), 10);
    expect(one({ gen: 0 })).toMatch(/generation 0/);
    expect(one({ lastUpdateMs: Number.NaN })).toMatch(/last-update/);
    expect(one({ lastUpdateMs: 9e15 })).toMatch(/last-update/);
    expect(one({ payload: Buffer.alloc(0) })).toMatch(/no payload/);
    expect(one({ setName: 's'.repeat(64) })).toMatch(/set name/);
    const flagged = packVersions([versions[0]!]);
    flagged[4 + 20 + 16] = 2;
    expect(unpackVersions(flagged, 10)).toMatch(/unknown flags/);
    const tombstoneWithPayload = packVersions([versions[0]!]);
    tombstoneWithPayload[4 + 20 + 16] = 1;
    expect(unpackVersions(tombstoneWithPayload, 10)).toMatch(/tombstone version carries a payload/);
    const badUtf8 = packVersions([{ ...versions[0]!, setName: 'ab' }]);
    badUtf8[4 + 20 + 18] = 0xff;
    expect(unpackVersions(badUtf8, 10)).toMatch(/UTF-8/);
    const huge = Buffer.alloc(8);
    huge.writeUInt32LE(0xffff_ffff, 0);
    expect(typeof unpackVersions(huge, 0xffff_ffff)).toBe('string');
  });
});
