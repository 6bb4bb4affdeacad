/**
 * Memory namespaces as a real cache: maxBytes holds, LRU and TTL eviction above the
 * high-water mark, OUT_OF_SPACE at stop-writes when nothing can be evicted.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../lib/index';
import { openMemoryDb, useDbCleanup } from './helpers/db';

useDbCleanup();

const MAX_BYTES = 2 << 20;
const key = (k: number) => ({ ns: 'cache', key: k });
const value = (i: number) => ({ v: i, pad: 'p'.repeat(400) });

describe('eviction', () => {
  it('keeps memory under maxBytes with LRU, evicting the least recently used first', async () => {
    const db = await openMemoryDb({ storage: { type: 'memory', maxBytes: MAX_BYTES }, evict: { policy: 'lru', highWaterPct: 80 } });
    // Fill about half, then keep reading the first 500 keys so they stay recent.
    for (let i = 0; i < 2000; i++) await db.put(key(i), value(i));
    for (let i = 2000; i < 20_000; i++) {
      await db.put(key(i), value(i));
      db.getSync(key(i % 500));
      const stats = db.stats().namespaces.cache!;
      expect(stats.memoryUsedBytes).toBeLessThanOrEqual(MAX_BYTES);
    }
    const stats = db.stats().namespaces.cache!;
    expect(stats.evicted).toBeGreaterThan(10_000);
    expect(stats.memoryUsedBytes).toBeLessThanOrEqual(MAX_BYTES * 0.8 + 1000);
    for (let i = 0; i < 500; i++) expect(db.getSync(key(i)), `hot key ${i}`).toBeDefined();
    // The cold middle of the key range went first.
    let coldSurvivors = 0;
    for (let i = 500; i < 2000; i++) if (db.getSync(key(i)) !== undefined) coldSurvivors++;
    expect(coldSurvivors).toBe(0);
    for (let i = 19_900; i < 20_000; i++) expect(db.getSync(key(i))).toBeDefined();
    let live = 0;
    for (let i = 0; i < 20_000; i++) if (db.getSync(key(i)) !== undefined) live++;
    expect(stats.objects).toBe(live);
  });

  it('with policy ttl, evicts the soonest-expiring records and never the ones without a TTL', async () => {
    const db = await openMemoryDb({ storage: { type: 'memory', maxBytes: MAX_BYTES }, evict: { policy: 'ttl', highWaterPct: 70 } });
    for (let i = 0; i < 1000; i++) await db.put(key(i), value(i), { ttl: -1 });
    for (let i = 1000; i < 8000; i++) await db.put(key(i), value(i), { ttl: 100_000 + i });
    const stats = db.stats().namespaces.cache!;
    expect(stats.evicted).toBeGreaterThan(0);
    expect(stats.memoryUsedBytes).toBeLessThanOrEqual(MAX_BYTES);
    for (let i = 0; i < 1000; i++) expect(db.getSync(key(i)), `never-expiring ${i}`).toBeDefined();
    // Survivors with TTLs are the ones that expire last.
    const survivors: number[] = [];
    for (let i = 1000; i < 8000; i++) if (db.getSync(key(i)) !== undefined) survivors.push(i);
    expect(survivors.length).toBeGreaterThan(0);
    expect(survivors[0]).toBeGreaterThan(8000 - survivors.length - 300);
  });

  it('with policy ttl, a write past the high-water mark does not pay for a pass over the whole index', async () => {
    // Choosing the soonest-expiring records walks every entry of the index; evicting one
    // write's worth per walk made each such write cost a walk (200,000 puts took 545 s and
    // single puts 433 ms on 75,000 records). A walk must evict for many writes.
    const db = await openMemoryDb({ storage: { type: 'memory', maxBytes: 8 << 20 }, evict: { policy: 'ttl', highWaterPct: 80 } });
    const index = (db as unknown as { namespaces: Map<string, { index: { evictSoonestExpiring: (...args: number[]) => number } }> }).namespaces.get('cache')!.index;
    const walk = index.evictSoonestExpiring.bind(index);
    let walks = 0;
    Object.defineProperty(index, 'evictSoonestExpiring', {
      value: (...args: number[]) => {
        walks++;
        return walk(...args);
      },
    });
    const puts = 60_000;
    for (let i = 0; i < puts; i++) db.put(key(i), { v: i, pad: 'p'.repeat(100) }, { ttl: 100_000 + (i % 10_000) });
    await db.put(key(puts), value(puts), { ttl: 100_000 });
    const stats = db.stats().namespaces.cache!;
    expect(stats.memoryUsedBytes).toBeLessThanOrEqual(8 << 20);
    expect(stats.evicted).toBeGreaterThan(20_000);
    // One walk per 0.5 % of the records (MEMORY_TTL_EVICTION_FRACTION) at the least.
    expect(walks).toBeLessThan(stats.evicted / 50);
    expect(walks).toBeGreaterThan(0);
  });

  it('stops writes with OUT_OF_SPACE when nothing can be evicted, keeping what is stored', async () => {
    const db = await openMemoryDb({ storage: { type: 'memory', maxBytes: MAX_BYTES }, evict: { policy: 'none' } });
    let stored = 0;
    let error: unknown;
    for (let i = 0; i < 20_000; i++) {
      try {
        await db.put(key(i), value(i));
        stored++;
      } catch (e) {
        error = e;
        break;
      }
    }
    expect(error).toMatchObject({ code: ErrorCode.OUT_OF_SPACE, status: 8 });
    expect(stored).toBeGreaterThan(1000);
    for (let i = 0; i < stored; i++) expect(db.getSync(key(i))?.bins.v).toBe(i);
    // Removing frees room again.
    for (let i = 0; i < 100; i++) await db.remove(key(i));
    await db.put(key(999_999), value(1));
  });
});
