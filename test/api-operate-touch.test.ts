/**
 * operate() and touch(): operations applied atomically and in order; generations and TTLs.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, op } from '../lib/index';
import { openMemoryDb, useDbCleanup } from './helpers/db';

useDbCleanup();

const key = (k: string) => ({ ns: 'cache', set: 'ops', key: k });

describe('operate', () => {
  it('applies write, incr, append, prepend and read in order and returns the reads', async () => {
    const db = await openMemoryDb();
    await db.put(key('o'), { count: 1, name: 'b', raw: Buffer.from('2') });
    const result = await db.operate(key('o'), [
      op.incr('count', 4),
      op.read('count'),
      op.append('name', 'c'),
      op.prepend('name', 'a'),
      op.append('raw', Buffer.from('3')),
      op.write('extra', { x: 1 }),
      op.read('name'),
    ]);
    expect(result.bins).toEqual({ count: 5, name: 'abc' });
    expect(result.gen).toBe(2);
    expect((await db.get(key('o')))!.bins).toEqual({ count: 5, name: 'abc', raw: Buffer.from('23'), extra: { x: 1 } });
  });

  it('creates a record from nothing when it writes, and is not found when it only reads', async () => {
    const db = await openMemoryDb();
    await expect(db.operate(key('none'), [op.read('a')])).rejects.toMatchObject({ code: ErrorCode.RECORD_NOT_FOUND });
    const created = await db.operate(key('new'), [op.incr('n', 10n), op.read('n')]);
    expect(created.bins).toEqual({ n: 10n });
    expect(created.gen).toBe(1);
  });

  it('refuses incr and append on bins of another type with BIN_TYPE, changing nothing', async () => {
    const db = await openMemoryDb();
    await db.put(key('t'), { s: 'text', n: 1 });
    await expect(db.operate(key('t'), [op.incr('n', 1), op.incr('s', 1)])).rejects.toMatchObject({ code: ErrorCode.BIN_TYPE, status: 12 });
    await expect(db.operate(key('t'), [op.append('n', 'x')])).rejects.toMatchObject({ code: ErrorCode.BIN_TYPE });
    expect((await db.get(key('t')))!.bins).toEqual({ s: 'text', n: 1 });
    expect((await db.get(key('t')))!.gen).toBe(1);
  });

  it('mixes bigint and number increments exactly and refuses int64 overflow', async () => {
    const db = await openMemoryDb();
    await db.put(key('i'), { n: Number.MAX_SAFE_INTEGER });
    expect((await db.operate(key('i'), [op.incr('n', 2), op.read('n')])).bins.n).toBe(2n ** 53n + 1n);
    await db.put(key('j'), { n: 2n ** 63n - 1n });
    await expect(db.operate(key('j'), [op.incr('n', 1)])).rejects.toMatchObject({ code: ErrorCode.BIN_TYPE });
    await db.put(key('f'), { n: 1.5 });
    expect((await db.operate(key('f'), [op.incr('n', 1), op.read('n')])).bins.n).toBe(2.5);
  });

  it('deletes with op.delete(), and a later write in the same call recreates', async () => {
    const db = await openMemoryDb();
    await db.put(key('d'), { a: 1, b: 2 });
    await db.operate(key('d'), [op.delete()]);
    expect(await db.exists(key('d'))).toBe(false);
    await db.put(key('d2'), { a: 1, b: 2 });
    const recreated = await db.operate(key('d2'), [op.delete(), op.write('c', 3), op.read('a'), op.read('c')]);
    expect(recreated.bins).toEqual({ c: 3 });
    expect((await db.get(key('d2')))!.bins).toEqual({ c: 3 });
  });

  it('honours generation and exists policies', async () => {
    const db = await openMemoryDb();
    await db.put(key('g'), { a: 1 });
    await expect(db.operate(key('g'), [op.write('a', 2)], { generation: 5 })).rejects.toMatchObject({ code: ErrorCode.GENERATION_MISMATCH });
    await expect(db.operate(key('g'), [op.write('a', 2)], { exists: 'create' })).rejects.toMatchObject({ code: ErrorCode.RECORD_EXISTS });
    expect((await db.operate(key('g'), [op.write('a', 2), op.read('a')], { generation: 1 })).bins.a).toBe(2);
  });

  it('op.touch() resets the TTL and increments the generation', async () => {
    const db = await openMemoryDb({ defaultTtl: 100 });
    await db.put(key('tt'), { a: 1 }, { ttl: 10 });
    const touched = await db.operate(key('tt'), [op.touch()], { ttl: 500 });
    expect(touched.gen).toBe(2);
    expect(touched.ttl).toBeGreaterThan(490);
    expect((await db.get(key('tt')))!.bins).toEqual({ a: 1 });
  });
});

describe('touch', () => {
  it('resets the TTL to the namespace default or the given one, and increments the generation', async () => {
    const db = await openMemoryDb({ defaultTtl: 3600 });
    await db.put(key('x'), { a: 1 }, { ttl: 5 });
    const result = await db.touch(key('x'));
    expect(result.gen).toBe(2);
    expect(result.ttl).toBeGreaterThan(3590);
    expect((await db.touch(key('x'), -1)).ttl).toBe(-1);
    expect((await db.get(key('x')))!.bins).toEqual({ a: 1 });
    expect((await db.get(key('x')))!.gen).toBe(3);
  });

  it('fails with RECORD_NOT_FOUND for an absent record', async () => {
    const db = await openMemoryDb();
    await expect(db.touch(key('missing'))).rejects.toMatchObject({ code: ErrorCode.RECORD_NOT_FOUND, status: 2 });
  });
});
