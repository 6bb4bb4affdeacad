/**
 * scan (all, by set, by partition ids), batchGet/batchPut, truncate, stats.
 */
import { describe, expect, it } from 'vitest';
import { digestOf, ErrorCode, partitionOf, type ShoalRecord } from '../lib/index';
import { openMemoryDb, useDbCleanup } from './helpers/db';

useDbCleanup();

async function collect(iterable: AsyncIterable<ShoalRecord>): Promise<ShoalRecord[]> {
  const records: ShoalRecord[] = [];
  for await (const record of iterable) records.push(record);
  return records;
}

describe('scan', () => {
  it('visits every record once, by namespace, by set and by partitions', async () => {
    const db = await openMemoryDb({ storeKey: true });
    for (let i = 0; i < 3000; i++) await db.put({ ns: 'cache', set: i % 3 === 0 ? 'a' : 'b', key: i }, { i });
    const all = await collect(db.scan('cache'));
    expect(all).toHaveLength(3000);
    expect(new Set(all.map((r) => r.bins.i)).size).toBe(3000);
    const setA = await collect(db.scan('cache', 'a'));
    expect(setA).toHaveLength(1000);
    expect(setA.every((r) => (r.bins.i as number) % 3 === 0 && r.key.set === 'a')).toBe(true);
    expect(setA.every((r) => r.key.key === r.bins.i)).toBe(true);
    expect(await collect(db.scan('cache', 'unknown'))).toHaveLength(0);
    const partitions = [0, 1, 2, 100, 4095];
    const wanted = new Set(partitions);
    const inPartitions = await collect(db.scan('cache', undefined, { partitions }));
    const expected = all.filter((r) => wanted.has(partitionOf(r.key.digest!)));
    expect(inPartitions.map((r) => r.bins.i).sort()).toEqual(expected.map((r) => r.bins.i).sort());
    expect(inPartitions.every((r) => wanted.has(partitionOf(r.key.digest!)))).toBe(true);
  });

  it('returns digests that match the keys, and user keys only when stored', async () => {
    const db = await openMemoryDb();
    await db.put({ ns: 'cache', set: 's', key: 'plain' }, { a: 1 });
    await db.put({ ns: 'cache', set: 's', key: 'kept' }, { a: 2 }, { storeKey: true });
    const records = await collect(db.scan('cache', 's'));
    const byBin = new Map(records.map((r) => [r.bins.a, r]));
    expect(byBin.get(1)!.key.key).toBeUndefined();
    expect(byBin.get(1)!.key.digest).toEqual(digestOf('s', 'plain'));
    expect(byBin.get(2)!.key.key).toBe('kept');
  });

  it('keeps working while records are written and removed during the scan', async () => {
    const db = await openMemoryDb();
    for (let i = 0; i < 2000; i++) await db.put({ ns: 'cache', key: i }, { i });
    let seen = 0;
    for await (const record of db.scan('cache')) {
      seen++;
      await db.remove({ ns: 'cache', key: (record.bins.i as number) + 1 });
      await db.put({ ns: 'cache', key: 10_000 + seen }, { i: -1 });
    }
    expect(seen).toBeGreaterThan(900);
  });
});

describe('batches', () => {
  it('batchGet returns records in the keys order with undefined for absent ones', async () => {
    const db = await openMemoryDb();
    await db.batchPut(Array.from({ length: 100 }, (_, i) => ({ key: { ns: 'cache', key: i * 2 }, bins: { i } })));
    const results = await db.batchGet(Array.from({ length: 50 }, (_, i) => ({ ns: 'cache', key: i })), { bins: ['i'] });
    results.forEach((record, i) => {
      if (i % 2 === 0) expect(record!.bins).toEqual({ i: i / 2 });
      else expect(record).toBeUndefined();
    });
  });
});

describe('truncate', () => {
  it('removes a set, or everything last updated before a time', async () => {
    const db = await openMemoryDb();
    for (let i = 0; i < 1000; i++) await db.put({ ns: 'cache', set: i < 500 ? 'x' : 'y', key: i }, { i });
    expect(await db.truncate('cache', 'x')).toBe(500);
    expect(await db.get({ ns: 'cache', set: 'x', key: 1 })).toBeUndefined();
    expect(await db.get({ ns: 'cache', set: 'y', key: 501 })).toBeDefined();
    const cut = Date.now() + 1;
    await new Promise((resolve) => setTimeout(resolve, 5));
    await db.put({ ns: 'cache', set: 'y', key: 'late' }, { i: 'late' });
    expect(await db.truncate('cache', undefined, { before: cut })).toBe(500);
    expect(await db.get({ ns: 'cache', set: 'y', key: 'late' })).toBeDefined();
    expect(db.stats().namespaces.cache!.objects).toBe(1);
  });

  it('by default removes what was written in the same millisecond, and spares what is written after it resolves', async () => {
    const db = await openMemoryDb();
    for (let round = 0; round < 50; round++) {
      await db.put({ ns: 'cache', set: 'z', key: round }, { round });
      expect(await db.truncate('cache', 'z')).toBe(1);
      // truncate resolved only once the clock passed its cut, so `resolved` is at or after it.
      const resolved = Date.now();
      await db.put({ ns: 'cache', set: 'z', key: 'after' }, { round });
      // Stamped at or after `resolved`: even a cut that late spares it (a fixed `Date.now() - 1`
      // here failed on a loaded machine, where more than a millisecond passed after the put).
      expect(await db.truncate('cache', 'z', { before: resolved })).toBe(0);
      expect(await db.get({ ns: 'cache', set: 'z', key: 'after' })).toBeDefined();
      await db.remove({ ns: 'cache', set: 'z', key: 'after' });
    }
  });

  it('by default removes a record rewritten many times within a millisecond too', async () => {
    const db = await openMemoryDb();
    // Each rewrite within one millisecond is stamped a millisecond after the last one, so
    // 3,000 of them put the record's last-update time seconds past the wall clock.
    await db.batchPut(Array.from({ length: 3_000 }, (_, i) => ({ key: { ns: 'cache', key: 'hot' }, bins: { i } })));
    for (let i = 0; i < 1_000; i++) await db.put({ ns: 'cache', key: 'hot2' }, { i });
    expect(await db.truncate('cache')).toBe(2);
    expect(await db.get({ ns: 'cache', key: 'hot' })).toBeUndefined();
    expect(await db.get({ ns: 'cache', key: 'hot2' })).toBeUndefined();
    await db.put({ ns: 'cache', key: 'hot' }, { after: true });
    expect(await db.truncate('cache', undefined, { before: Date.now() })).toBe(0);
    expect((await db.get({ ns: 'cache', key: 'hot' }))?.bins).toEqual({ after: true });
  });

  it('refuses a cut in the future', async () => {
    const db = await openMemoryDb();
    await expect(db.truncate('cache', undefined, { before: Date.now() + 60_000 })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
  });
});

describe('stats', () => {
  it('reports objects, memory, evictions, expiries and the start mode', async () => {
    const db = await openMemoryDb();
    const before = db.stats();
    expect(before.namespaces.cache).toMatchObject({ objects: 0, startMode: 'new', evicted: 0, expired: 0 });
    for (let i = 0; i < 100; i++) await db.put({ ns: 'cache', key: i }, { pad: 'x'.repeat(100) });
    const after = db.stats();
    expect(after.namespaces.cache!.objects).toBe(100);
    expect(after.namespaces.cache!.masterObjects).toBe(100);
    expect(after.namespaces.cache!.memoryUsedBytes).toBeGreaterThan(100 * 100);
    expect(after.clusterSize).toBe(1);
    expect(JSON.parse(JSON.stringify(after))).toEqual(after);
  });
});
