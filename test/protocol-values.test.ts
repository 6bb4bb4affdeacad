/**
 * Values on Aerospike's wire (lib/service/particles.ts): particles and the MessagePack dialect
 * of lists and maps, byte for byte as Aerospike's own encoder writes them, and their
 * conversion to Shoal's bin values; plus nil inside lists and maps, which Aerospike clients
 * write and Shoal stores.
 */
import { describe, expect, it } from 'vitest';
import { op } from '../lib/index';
import { ByteWriter } from '../lib/service/byte-writer';
import { ParticleType, decodeParticle, packValue, writeParticle } from '../lib/service/particles';
import { CDT_FLAGS } from '../lib/model/cdt/value';
import { RequestError } from '../lib/service/wire';
import { ResultCode, resultCodeOf } from '../lib/service/result-codes';
import { ErrorCode, ShoalError } from '../lib/index';
import { openMemoryDb, useDbCleanup } from './helpers/db';

useDbCleanup();

function packed(value: Parameters<typeof packValue>[1]): Buffer {
  const writer = new ByteWriter(8);
  packValue(writer, value, 0);
  return writer.copyFrom(0);
}

/** A value read as a client sends it inside a list particle (the one-element list around it is dropped). */
function unpacked(bytes: Buffer): unknown {
  const particle = Buffer.concat([Buffer.from([0x91]), bytes]);
  return (decodeParticle(ParticleType.LIST, particle, 0, particle.length) as unknown[])[0];
}

function flagged<T extends object>(value: T, flags: number): T {
  Object.defineProperty(value, CDT_FLAGS, { value: flags, enumerable: false });
  return value;
}

describe('the MessagePack dialect', () => {
  it('writes lists and key-ordered maps as the Node client and the server do', () => {
    // The bytes the official client's own tests expect back from a server for these bins: the
    // client sends every map key-ordered, and Shoal keeps the order it was given.
    expect(packed([1, 2, 3])).toEqual(Buffer.from([0x93, 0x01, 0x02, 0x03]));
    const clientMap = Buffer.from([0x84, 0xc7, 0x00, 0x01, 0xc0, 0xa2, 0x03, 0x61, 0x01, 0xa2, 0x03, 0x62, 0x02, 0xa2, 0x03, 0x63, 0x03]);
    expect(packed(unpacked(clientMap) as object as never)).toEqual(clientMap);
    expect(packed(flagged({ c: 3, a: 1, b: 2 }, 1))).toEqual(clientMap);
    // An unordered map (an embedded put's plain object) goes in its stored order, without a header.
    expect(packed({ c: 3, a: 1 })).toEqual(Buffer.from([0x82, 0xa2, 0x03, 0x63, 0x03, 0xa2, 0x03, 0x61, 0x01]));
    expect(packed(flagged([2, 1], 1))).toEqual(Buffer.from([0x93, 0xc7, 0x00, 0x01, 0x02, 0x01]));
    expect(packed(new Map<number, number>([[2, 1], [1, 2]]))).toEqual(Buffer.from([0x82, 0x02, 0x01, 0x01, 0x02]));
    expect(packed(flagged(new Map<number, number>([[2, 1], [1, 2]]), 1))).toEqual(Buffer.from([0x83, 0xc7, 0x00, 0x01, 0xc0, 0x01, 0x02, 0x02, 0x01]));
    expect(packed('')).toEqual(Buffer.from([0xa1, 0x03]));
    expect(packed(Buffer.from('hi'))).toEqual(Buffer.from([0xa3, 0x04, 0x68, 0x69]));
    expect(packed(flagged({}, 1))).toEqual(Buffer.from([0x81, 0xc7, 0x00, 0x01, 0xc0]));
  });

  it('round-trips every storable value, integers at every width', () => {
    const values = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53) + 1];
    for (const value of values) expect(unpacked(packed(value))).toBe(value);
    for (const value of [2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n]) expect(unpacked(packed(value))).toBe(value);
    const nested = { s: 'é', d: 0.5, t: true, f: false, n: null, l: [[], {}, Buffer.alloc(0), 'x'.repeat(300)], m: { deep: { deeper: [1.25] } } };
    expect(unpacked(packed(nested))).toEqual(nested);
  });

  it('reads maps that carry any order flag, and lists with an order ext, keeping the flags', () => {
    const map = unpacked(Buffer.from([0x82, 0xc7, 0x00, 0x03, 0xc0, 0xa2, 0x03, 0x61, 0x05])) as object;
    expect(map).toEqual({ a: 5 });
    expect((map as { [CDT_FLAGS]?: number })[CDT_FLAGS]).toBe(3);
    const list = unpacked(Buffer.from([0x92, 0xd4, 0x01, 0x00, 0x07])) as object;
    expect(list).toEqual([7]);
    expect((list as { [CDT_FLAGS]?: number })[CDT_FLAGS]).toBe(1);
    expect(unpacked(Buffer.from([0x81, 0xa2, 0x03, 0x7a, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]))).toEqual({ z: 1.5 });
  });

  it('reads maps with integer and blob keys as Maps', () => {
    expect(unpacked(Buffer.from([0x82, 0x01, 0x02, 0xa3, 0x04, 0x68, 0x69, 0x03]))).toEqual(new Map<unknown, unknown>([[1, 2], [Buffer.from('hi'), 3]]));
  });

  it('refuses what Shoal cannot store, with PARAMETER_ERROR, never a crash', () => {
    const refused = [
      Buffer.from([0x93, 0x01]), // a cut-off list
      Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]), // a list claiming 4 billion items
      Buffer.from([0xc1]), // a never-used tag
      Buffer.from([0xd4, 0xff, 0x01]), // a CDT wildcard where a value belongs
      Buffer.from([0xa3, 0x03, 0xff, 0xfe]), // a string that is not UTF-8
      Buffer.from([0xd5, 0x07, 0x01, 0x02]), // an ext that is neither order flags nor INF/WILDCARD
      Buffer.concat([Buffer.alloc(70, 0x91), Buffer.from([0x01])]), // nested past the depth bound
    ];
    for (const bytes of refused) {
      expect(() => decodeParticle(ParticleType.LIST, bytes, 0, bytes.length), bytes.toString('hex')).toThrow(RequestError);
    }
  });
});

describe('particles', () => {
  it('decode and encode each type', () => {
    const integer = Buffer.alloc(8);
    integer.writeBigInt64BE(-5n);
    expect(decodeParticle(ParticleType.INTEGER, integer, 0, 8)).toBe(-5);
    integer.writeBigInt64BE(2n ** 60n);
    expect(decodeParticle(ParticleType.INTEGER, integer, 0, 8)).toBe(2n ** 60n);
    expect(decodeParticle(ParticleType.BOOL, Buffer.from([1]), 0, 1)).toBe(true);
    const geo = Buffer.concat([Buffer.from([0, 0, 0]), Buffer.from('{"type":"Point"}')]);
    expect(decodeParticle(ParticleType.GEOJSON, geo, 0, geo.length)).toBe('{"type":"Point"}');
    expect(() => decodeParticle(ParticleType.STRING, Buffer.from([0xff, 0xfe]), 0, 2)).toThrow(RequestError);
    expect(() => decodeParticle(ParticleType.INTEGER, Buffer.alloc(4), 0, 4)).toThrow(RequestError);
    expect(() => decodeParticle(ParticleType.HLL, Buffer.alloc(4), 0, 4)).toThrow(/HyperLogLog/);
    const writer = new ByteWriter(1);
    expect(writeParticle(writer, 3.5)).toBe(ParticleType.DOUBLE);
    expect(writeParticle(writer, 2 ** 53)).toBe(ParticleType.DOUBLE);
    expect(writeParticle(writer, 7)).toBe(ParticleType.INTEGER);
    expect(writeParticle(writer, [1])).toBe(ParticleType.LIST);
    expect(writeParticle(writer, { a: 1 })).toBe(ParticleType.MAP);
  });
});

describe('nil inside lists and maps', () => {
  it('is stored and read back by the embedded API', async () => {
    const db = await openMemoryDb();
    const key = { ns: 'cache', set: 's', key: 'nil' };
    await db.put(key, { l: [1, null, 3], m: { a: null, b: [null] } });
    expect((await db.get(key))!.bins).toEqual({ l: [1, null, 3], m: { a: null, b: [null] } });
    await db.batchPut([{ key: { ...key, key: 'nil-batch' }, bins: { l: [null] } }]);
    expect((await db.get({ ...key, key: 'nil-batch' }))!.bins).toEqual({ l: [null] });
    await db.operate(key, [op.write('w', [null, { x: null }])]);
    expect((await db.get(key))!.bins.w).toEqual([null, { x: null }]);
    // A top-level null still removes the bin.
    await db.put(key, { l: null });
    expect((await db.get(key))!.bins).toEqual({ m: { a: null, b: [null] }, w: [null, { x: null }] });
  });
});

describe('result codes', () => {
  it('map every ShoalError code to one Aerospike result code', () => {
    const expected: Record<string, number> = {
      RECORD_NOT_FOUND: 2, GENERATION_MISMATCH: 3, INVALID_ARGUMENT: 4, RECORD_EXISTS: 5, OUT_OF_SPACE: 8, TIMEOUT: 9,
      PARTITION_UNAVAILABLE: 11, BIN_TYPE: 12, RECORD_TOO_BIG: 13, KEY_BUSY: 14, BIN_EXISTS: 6, BIN_NOT_FOUND: 17,
      ELEMENT_NOT_FOUND: 23, ELEMENT_EXISTS: 24, OP_NOT_APPLICABLE: 26, FILTERED_OUT: 27,
      NOT_OPEN: 11, LOCKED: 1, IO_ERROR: 1, CORRUPTION: 1, CLUSTER_ERROR: 1,
    };
    expect(Object.keys(expected).sort()).toEqual(Object.values(ErrorCode).sort());
    for (const code of Object.values(ErrorCode)) expect(resultCodeOf(new ShoalError(code, 'x')), code).toBe(expected[code]);
    expect(resultCodeOf(new TypeError('x'))).toBe(ResultCode.PARAMETER_ERROR);
    expect(resultCodeOf(new RequestError(ResultCode.UNSUPPORTED_FEATURE, 'x'))).toBe(16);
    expect(resultCodeOf(new Error('x'))).toBe(ResultCode.SERVER_ERROR);
  });
});
