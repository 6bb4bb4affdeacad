/**
 * Upserts merge bins exactly, whether or not the incoming bins name every stored one (the
 * put skips decoding the stored record when they do).
 */
import { describe, expect, it } from 'vitest';
import type { Bins } from '../lib/index';
import { openMemoryDb, useDbCleanup } from './helpers/db';

useDbCleanup();

const NAMES = ['a', 'b', 'ab', 'constructor', 'toString', 'é', 'eé', 'long_bin_name_1'];

function randomValue(next: () => number): Bins[string] {
  switch (next() % 8) {
    case 0: return next();
    case 1: return `s${next()}`;
    case 2: return BigInt(next()) * 1_000_000_007n;
    case 3: return [next(), 'x', [true, null === null], { k: next() }];
    case 4: return { nested: { deep: [1, 2, 3] }, n: -next() / 7 };
    case 5: return Buffer.from([next() & 255, 1, 2]);
    case 6: return next() % 2 === 0;
    default: return 'y'.repeat(next() % 300);
  }
}

describe('upsert merge', () => {
  it('matches a model of merge semantics over random bin sets and values', async () => {
    const db = await openMemoryDb();
    const model = new Map<number, Bins>();
    let seed = 99;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 1);
    for (let step = 0; step < 5000; step++) {
      const k = next() % 50;
      const incoming: Bins = {};
      for (const name of NAMES) if (next() % 2 === 0) incoming[name] = next() % 6 === 0 ? null : randomValue(next);
      if (Object.keys(incoming).length === 0) incoming.a = 1;
      const expected: Bins = { ...(model.get(k) ?? {}) };
      for (const [name, value] of Object.entries(incoming)) {
        if (value === null) delete expected[name];
        else expected[name] = value;
      }
      await db.put({ ns: 'cache', key: k }, incoming);
      if (Object.keys(expected).length === 0) model.delete(k);
      else model.set(k, expected);
      const record = db.getSync({ ns: 'cache', key: k });
      expect(record?.bins, `step ${step}`).toEqual(model.get(k));
    }
  });

  it('keeps stored bins named like Object.prototype members when the put omits them', async () => {
    const db = await openMemoryDb();
    await db.put({ ns: 'cache', key: 'p' }, { a: 1, constructor: 'kept', toString: 'also' });
    await db.put({ ns: 'cache', key: 'p' }, { a: 2 });
    expect(db.getSync({ ns: 'cache', key: 'p' })!.bins).toEqual({ a: 2, constructor: 'kept', toString: 'also' });
  });
});
