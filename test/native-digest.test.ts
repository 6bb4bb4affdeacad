/**
 * RIPEMD-160, CRC32C and the record digest (SPEC section 1) of the native addon.
 */
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { addon, addonPath } from '../lib/native/addon';
import {
  BATCH_KEY_LENGTH,
  BATCH_KEY_TYPE,
  BATCH_SET_LENGTH,
  BATCH_SLOT_BYTES,
  BATCH_VARIABLE_OFFSET,
  EXCHANGE_HEADER_BYTES,
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
} from '../lib/native/exchange';

const native = addon();

/** A seeded PRNG (mulberry32) so a failure replays. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBytes(random: () => number, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = (random() * 256) | 0;
  return bytes;
}

const hasNodeRipemd = (() => {
  try {
    crypto.createHash('ripemd160');
    return true;
  } catch {
    return false;
  }
})();

describe('ripemd160', () => {
  // The test vectors of the RIPEMD-160 paper (Dobbertin, Bosselaers, Preneel).
  const vectors: [string, string][] = [
    ['', '9c1185a5c5e9fc54612808977ee8f548b2258d31'],
    ['a', '0bdc9d2d256b3ee9daae347be6f4dc835a467ffe'],
    ['abc', '8eb208f7e05d987a9b044a8e98c6b087f15a0bfc'],
    ['message digest', '5d0689ef49d2fae572b881b123a85ffa21595f36'],
    ['abcdefghijklmnopqrstuvwxyz', 'f71c27109c692c1b56bbdceb5b9d2865b3708dbc'],
    ['abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq', '12a053384a9c0c88e405a06c27dcf49ada62eb2b'],
    ['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', 'b0e20b6e3116640286ed3a87a5713079b21f5189'],
    ['1234567890'.repeat(8), '9b752e45573d4b39f4dbd3323cab82bf63326bfb'],
  ];

  it.each(vectors)('digests %j as the paper says', (input, expected) => {
    expect(native.ripemd160(Buffer.from(input, 'latin1')).toString('hex')).toBe(expected);
  });

  it('digests one million "a"', () => {
    expect(native.ripemd160(Buffer.alloc(1_000_000, 'a')).toString('hex')).toBe('52783243c1697bdbe16d37f97f68f08325dc1528');
  });

  it('accepts a Uint8Array that is a view into a larger buffer', () => {
    const backing = Buffer.from('xxabcxx');
    const view = new Uint8Array(backing.buffer, backing.byteOffset + 2, 3);
    expect(native.ripemd160(view).toString('hex')).toBe('8eb208f7e05d987a9b044a8e98c6b087f15a0bfc');
  });

  it.skipIf(!hasNodeRipemd)('matches node:crypto on random inputs around block boundaries', () => {
    const random = prng(1);
    for (let length = 0; length < 300; length++) {
      const data = randomBytes(random, length);
      expect(native.ripemd160(data).toString('hex')).toBe(crypto.createHash('ripemd160').update(data).digest('hex'));
    }
    for (let round = 0; round < 50; round++) {
      const data = randomBytes(random, (random() * 100_000) | 0);
      expect(native.ripemd160(data).toString('hex')).toBe(crypto.createHash('ripemd160').update(data).digest('hex'));
    }
  });

  it('refuses anything but a Uint8Array', () => {
    for (const bad of [undefined, null, 'abc', 42, [1, 2], new Uint16Array(2), {}]) {
      expect(() => native.ripemd160(bad as never)).toThrow(TypeError);
    }
  });
});

/** Bit-at-a-time CRC32C, the reference the native paths are checked against. */
function referenceCrc32c(data: Uint8Array, seed = 0): number {
  let crc = ~seed >>> 0;
  for (const byte of data) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return ~crc >>> 0;
}

describe('crc32c', () => {
  it('has the standard check value for "123456789"', () => {
    expect(native.crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(native.crc32cPortable(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  it('matches the iSCSI vectors of RFC 3720', () => {
    const ascending = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
    const descending = Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i));
    expect(native.crc32c(Buffer.alloc(32, 0))).toBe(0x8a9136aa);
    expect(native.crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(native.crc32c(ascending)).toBe(0x46dd794e);
    expect(native.crc32c(descending)).toBe(0x113fdb5c);
  });

  it('uses the SSE4.2 instruction where the CPU has it, and both paths agree with the reference', () => {
    expect(typeof native.crc32cHardware).toBe('boolean');
    const random = prng(2);
    for (let round = 0; round < 300; round++) {
      const length = round < 100 ? round : (random() * 20_000) | 0;
      const offset = (random() * 8) | 0; // unaligned starts too
      const backing = randomBytes(random, length + offset);
      const data = backing.subarray(offset);
      const seed = (random() * 2 ** 32) >>> 0;
      const expected = referenceCrc32c(data, seed);
      expect(native.crc32c(data, seed)).toBe(expected);
      expect(native.crc32cPortable(data, seed)).toBe(expected);
    }
  });

  it('chains: crc32c(b, crc32c(a)) equals crc32c(a + b)', () => {
    const random = prng(3);
    const a = randomBytes(random, 1001);
    const b = randomBytes(random, 77);
    expect(native.crc32c(b, native.crc32c(a))).toBe(native.crc32c(Buffer.concat([a, b])));
  });

  it('refuses bad data and seeds', () => {
    expect(() => native.crc32c('abc' as never)).toThrow(TypeError);
    expect(() => native.crc32c(Buffer.from('a'), 'x' as never)).toThrow(TypeError);
    expect(() => native.crc32c(Buffer.from('a'), -1)).toThrow(RangeError);
    expect(() => native.crc32c(Buffer.from('a'), 2 ** 32)).toThrow(RangeError);
    expect(() => native.crc32c(Buffer.from('a'), 1.5)).toThrow(RangeError);
  });
});

describe('record digest', () => {
  const exchange = new Exchange(4096);
  // computeDigest() needs no open index: it only reads and writes the exchange.
  const index = new native.PrimaryIndex({
    name: `/shoal-test-${process.pid}-digest`,
    shared: false,
    exchange: exchange.buffer,
    withData: false,
  });

  function setKey(set: string, keyType: number, key: Buffer): number {
    const setBytes = Buffer.from(set, 'utf8');
    setBytes.copy(exchange.buffer, EX_SET);
    exchange.buffer.writeUInt16LE(setBytes.length, EX_SET_LENGTH);
    exchange.buffer[EX_KEY_TYPE] = keyType;
    key.copy(exchange.buffer, EX_KEY);
    exchange.buffer.writeUInt32LE(key.length, EX_KEY_LENGTH);
    return index.computeDigest();
  }

  function expectedDigest(set: string, keyType: number, key: Buffer): Buffer {
    return native.ripemd160(Buffer.concat([Buffer.from(set, 'utf8'), Buffer.from([keyType]), key]));
  }

  function integerKey(value: bigint): Buffer {
    const bytes = Buffer.alloc(8);
    bytes.writeBigInt64BE(value);
    return bytes;
  }

  const cases: [string, string, number, Buffer][] = [
    ['string key', 'profiles', KEY_TYPE_STRING, Buffer.from('u1')],
    ['unicode set and key', 'Übersicht', KEY_TYPE_STRING, Buffer.from('ключ', 'utf8')],
    ['integer key', 'demo', KEY_TYPE_INTEGER, integerKey(1n)],
    ['negative integer key', '', KEY_TYPE_INTEGER, integerKey(-42n)],
    ['bytes key', 'blobs', KEY_TYPE_BYTES, Buffer.from([0, 1, 2, 255])],
    ['longest key', 's'.repeat(63), KEY_TYPE_BYTES, Buffer.alloc(4096, 7)],
  ];

  it.each(cases)('hashes set, key type and key (%s) and returns the partition id', (_label, set, keyType, key) => {
    const partition = setKey(set, keyType, key);
    const digest = exchange.buffer.subarray(EX_DIGEST, EX_DIGEST + 20);
    const expected = expectedDigest(set, keyType, key);
    expect(Buffer.compare(digest, expected)).toBe(0);
    expect(partition).toBe((expected[0]! | (expected[1]! << 8)) & 0x0fff);
  });

  it('tells 1 and "1" apart', () => {
    setKey('s', KEY_TYPE_INTEGER, integerKey(1n));
    const integerDigest = exchange.digestCopy();
    setKey('s', KEY_TYPE_STRING, Buffer.from('1'));
    expect(Buffer.compare(integerDigest, exchange.digestCopy())).not.toBe(0);
  });

  it('refuses bad key fields with RangeError', () => {
    expect(() => setKey('s', 2, Buffer.from('x'))).toThrow(RangeError);
    expect(() => setKey('s', KEY_TYPE_INTEGER, Buffer.alloc(7))).toThrow(RangeError);
    exchange.buffer[EX_KEY_TYPE] = KEY_TYPE_STRING;
    exchange.buffer.writeUInt16LE(64, EX_SET_LENGTH);
    expect(() => index.computeDigest()).toThrow(RangeError);
    exchange.buffer.writeUInt16LE(1, EX_SET_LENGTH);
    exchange.buffer.writeUInt32LE(4097, EX_KEY_LENGTH);
    expect(() => index.computeDigest()).toThrow(RangeError);
  });
});

describe('lookupBatch digests keys many at a time, as ripemd160 does one by one', () => {
  /**
   * A child process (the lane implementation is picked once per process) fills a batch with
   * keys of every length across the one-block limit (55 bytes of set, type byte and key),
   * digest-addressed slots between them and a count that is no multiple of 16, and prints how
   * many lookupBatch digests differ from ripemd160(set + type + key).
   */
  const child = `
    const { PrimaryIndex, ripemd160 } = require(process.argv[1]);
    const [slotBytes, keyTypeAt, setLengthAt, keyLengthAt, variableAt, headerBytes] = JSON.parse(process.argv[2]);
    const count = 997;
    const batch = Buffer.alloc(count * slotBytes + count * 200);
    const expected = [];
    let at = count * slotBytes;
    for (let i = 0; i < count; i++) {
      const slot = i * slotBytes;
      batch.writeUInt32LE(at, slot + variableAt);
      if (i % 13 === 5) { batch.fill(i & 0xff, slot, slot + 20); expected.push(Buffer.from(batch.subarray(slot, slot + 20))); continue; }
      const set = Buffer.from('s'.repeat(i % 9));
      const key = Buffer.from('k'.repeat(i % 110) + String(i));
      const type = i % 2 === 0 ? 3 : 4;
      batch[slot + keyTypeAt] = type;
      batch[slot + setLengthAt] = set.length;
      batch.writeUInt16LE(key.length, slot + keyLengthAt);
      set.copy(batch, at);
      key.copy(batch, at + set.length);
      at += set.length + key.length;
      expected.push(ripemd160(Buffer.concat([set, Buffer.from([type]), key])));
    }
    const index = new PrimaryIndex({ name: '/shoal-lanes-' + process.pid, shared: false, exchange: Buffer.alloc(headerBytes + 65536), withData: false });
    index.open(false);
    index.lookupBatch(batch, count);
    index.close(true);
    let wrong = 0;
    for (let i = 0; i < count; i++) if (!batch.subarray(i * slotBytes, i * slotBytes + 20).equals(expected[i])) wrong++;
    console.log(wrong);
  `;
  for (const lanes of ['', 'avx2', 'baseline']) {
    it(`lanes: ${lanes || 'the widest this CPU has'}`, () => {
      const addonFile = addonPath();
      const layout = JSON.stringify([BATCH_SLOT_BYTES, BATCH_KEY_TYPE, BATCH_SET_LENGTH, BATCH_KEY_LENGTH, BATCH_VARIABLE_OFFSET, EXCHANGE_HEADER_BYTES]);
      const output = execFileSync(process.execPath, ['-e', child, addonFile, layout], { env: { ...process.env, SHOAL_RIPEMD160_LANES: lanes }, encoding: 'utf8' });
      expect(output.trim()).toBe('0');
    });
  }
});
