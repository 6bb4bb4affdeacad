/**
 * The write path's bin encoder (lib/model/bin-encoder.ts) against msgpackr: for random bins of
 * every storable type, at the sizes where MessagePack changes header, the bytes are exactly
 * what the project's Packr writes (so msgpackr reads them as it reads its own), and a buffer too
 * small gives -1 without a byte written past its end; the checking encoder (batchPut) writes the
 * same bytes and gives up exactly where checkBins would throw. SHOAL_ENCODER_SEED replays a run.
 */
import { describe, expect, it } from 'vitest';
import { BINS_NEED_CHECK, encodeBins, encodeBinsChecked } from '../lib/model/bin-encoder';
import { Bins, BinValue, checkBins, packr } from '../lib/model/bins';
import { seededFloats } from './helpers/random';

const seed = Number(process.env.SHOAL_ENCODER_SEED ?? Date.now() % 1_000_000);

const random = seededFloats(seed);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
/** Lengths around every header boundary of str, bin, array and map. */
const LENGTHS = [0, 1, 15, 16, 31, 32, 63, 64, 65, 255, 256, 300, 65535, 65536, 70000];
const NUMBERS = [0, -0, 1, 31, 32, 127, 128, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1,
  -1, -31, -32, -33, -127, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53) + 1, 0.5, -1.25, 1e300, 5e-324];
const BIGINTS = [0n, 1n, -1n, 2n ** 62n, 2n ** 63n - 1n, -(2n ** 63n), 12345678901234567n];
const PIECES = ['a', 'Z', ' ', 'é', 'ß', '€', '中', '😀', '\ud800', '\udc00', '\u0000', '\u07ff', '\u0800', '\uffff'];

function randomString(): string {
  const length = random() < 0.2 ? pick(LENGTHS) : Math.floor(random() * 80);
  const ascii = random() < 0.5;
  let text = '';
  while (text.length < length) text += ascii ? String.fromCharCode(97 + Math.floor(random() * 26)) : pick(PIECES);
  return text;
}

function randomValue(depth: number): BinValue {
  const kind = Math.floor(random() * (depth >= 3 ? 6 : 8));
  switch (kind) {
    case 0:
      return randomString();
    case 1:
      return random() < 0.6 ? pick(NUMBERS) : (random() - 0.5) * 10 ** Math.floor(random() * 20);
    case 2:
      return random() < 0.5 ? Math.floor((random() - 0.5) * 2 ** 40) : pick(NUMBERS);
    case 3:
      return pick(BIGINTS);
    case 4:
      return random() < 0.5;
    case 5: {
      const bytes = Buffer.alloc(random() < 0.2 ? pick(LENGTHS) : Math.floor(random() * 40));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
      return random() < 0.5 ? bytes : new Uint8Array(bytes);
    }
    case 6:
      return Array.from({ length: random() < 0.1 ? pick([15, 16, 17]) : Math.floor(random() * 5) }, () => randomValue(depth + 1));
    default:
      return randomBins(depth + 1, random() < 0.1 ? pick([15, 16, 17]) : Math.floor(random() * 5));
  }
}

function randomBins(depth: number, count: number): Bins {
  const bins: Bins = random() < 0.1 ? Object.create(null) : {};
  for (let i = 0; i < count; i++) bins[`b${i}${random() < 0.2 ? 'é' : ''}`] = randomValue(depth);
  return bins;
}

describe(`bin encoder (seed ${seed})`, () => {
  it('writes exactly what msgpackr writes', () => {
    const target = Buffer.alloc(4 << 20);
    for (let round = 0; round < 400; round++) {
      const bins = randomBins(0, 1 + Math.floor(random() * (round % 50 === 0 ? 20 : 6)));
      checkBins(bins, false);
      const expected = packr.pack(bins);
      const offset = 7 + (round % 13);
      const end = encodeBins(target, offset, target.length, bins);
      expect(end - offset).toBe(expected.length);
      expect(target.subarray(offset, end).equals(expected)).toBe(true);
      const checkedTarget = Buffer.alloc(end + 16);
      expect(encodeBinsChecked(checkedTarget, offset, checkedTarget.length, bins)).toBe(end);
      expect(checkedTarget.subarray(offset, end).equals(expected)).toBe(true);
    }
  });

  it('checking, gives up exactly where checkBins throws, and at a bin written as null', () => {
    const faults: (() => unknown)[] = [
      () => null,
      () => Number.NaN,
      () => Number.NEGATIVE_INFINITY,
      () => 2n ** 63n,
      () => -(2n ** 63n) - 1n,
      () => undefined,
      () => new Date(0),
      () => new Set(), // a Map is storable (a map with keys that are not strings), a Set is not
      () => Symbol('s'),
      () => () => 1,
      () => JSON.parse('['.repeat(65) + ']'.repeat(65)),
    ];
    const target = Buffer.alloc(4 << 20);
    let refused = 0;
    for (let round = 0; round < 600; round++) {
      const bins = randomBins(0, Math.floor(random() * 5)) as Record<string, unknown>;
      const fault = round % 3;
      if (fault === 1) {
        // A fault somewhere: a value at the top or nested in a list or map, or a bad name.
        const value = pick(faults)();
        const where = random();
        if (where < 0.4) bins[`f${round % 7}`] = value;
        else if (where < 0.7) bins.nest = [1, { deeper: [value] }];
        else if (where < 0.85) bins[pick(['', 'abcdefghijklmnop', 'é'.repeat(8), '😀'.repeat(4)])] = 1;
        else bins.map = { x: value };
      } else if (fault === 2 && random() < 0.5) {
        bins[`n${round}`] = null;
      }
      let throws = false;
      try {
        checkBins(bins, false);
      } catch {
        throws = true;
      }
      const end = encodeBinsChecked(target, 3, target.length, bins as Bins);
      expect(end === BINS_NEED_CHECK, JSON.stringify(Object.keys(bins))).toBe(throws);
      if (throws) refused++;
      else expect(target.subarray(3, end).equals(packr.pack(bins))).toBe(true);
    }
    expect(refused).toBeGreaterThan(150);
  });

  it('returns -1 when the bins do not fit, never writing past the end', () => {
    for (let round = 0; round < 200; round++) {
      const bins = randomBins(0, 1 + Math.floor(random() * 5));
      const size = packr.pack(bins).length;
      const end = Math.floor(random() * size);
      const target = Buffer.alloc(size + 64, 0xee);
      expect(encodeBins(target, 0, end, bins)).toBe(-1);
      expect(target.subarray(end).every((byte) => byte === 0xee)).toBe(true);
      expect(encodeBins(target, 0, size, bins)).toBe(size);
    }
  });
});
