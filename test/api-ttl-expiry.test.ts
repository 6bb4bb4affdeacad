/**
 * TTL semantics (0, -1, -2, seconds), lazy expiry on read, and the background sweep.
 */
import { describe, expect, it, vi, afterEach } from 'vitest';
import { openMemoryDb, useDbCleanup } from './helpers/db';

useDbCleanup();
afterEach(() => vi.useRealTimers());

const key = (k: string | number) => ({ ns: 'cache', set: 'ttl', key: k });

describe('TTL', () => {
  it('uses the namespace default for 0, never expires for -1, keeps the expiry for -2', async () => {
    const db = await openMemoryDb({ defaultTtl: 1000 });
    expect((await db.put(key('a'), { v: 1 })).ttl).toBe(1000);
    expect((await db.put(key('a'), { v: 2 }, { ttl: -1 })).ttl).toBe(-1);
    expect((await db.put(key('a'), { v: 3 }, { ttl: 50 })).ttl).toBe(50);
    expect((await db.put(key('a'), { v: 4 }, { ttl: -2 })).ttl).toBe(50);
    expect((await db.get(key('a')))!.ttl).toBe(50);
    expect((await db.put(key('new'), { v: 1 }, { ttl: -2 })).ttl).toBe(1000);
  });

  it('never expires by default when the namespace has no defaultTtl', async () => {
    const db = await openMemoryDb();
    expect((await db.put(key('n'), { v: 1 })).ttl).toBe(-1);
  });

  it('never returns an expired record, even before the sweep removes it', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2030-01-01T00:00:00Z'));
    const db = await openMemoryDb({ nsupPeriodSeconds: 0 });
    await db.put(key('e'), { v: 1 }, { ttl: 10 });
    vi.setSystemTime(new Date('2030-01-01T00:00:09Z'));
    expect((await db.get(key('e')))!.ttl).toBe(1);
    vi.setSystemTime(new Date('2030-01-01T00:00:10Z'));
    expect(await db.get(key('e'))).toBeUndefined();
    expect(db.getSync(key('e'))).toBeUndefined();
    expect(await db.exists(key('e'))).toBe(false);
    expect(db.stats().namespaces.cache!.expired).toBe(1);
    // An expired record counts as absent for exists policies.
    expect((await db.put(key('e'), { v: 2 }, { exists: 'create' })).gen).toBe(1);
  });

  it('removes expired records in the background sweep', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2030-01-01T00:00:00Z'));
    const db = await openMemoryDb({ nsupPeriodSeconds: 1 });
    for (let i = 0; i < 5000; i++) await db.put(key(i), { v: i }, { ttl: i % 2 === 0 ? 5 : -1 });
    expect(db.stats().namespaces.cache!.objects).toBe(5000);
    vi.setSystemTime(new Date('2030-01-01T00:01:00Z'));
    await vi.waitFor(() => expect(db.stats().namespaces.cache!.objects).toBe(2500), { timeout: 5000, interval: 50 });
    expect(db.stats().namespaces.cache!.expired).toBe(2500);
    expect((await db.get(key(1)))!.bins.v).toBe(1);
  });
});
