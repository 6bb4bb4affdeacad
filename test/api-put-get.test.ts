/**
 * put/get/getSync/exists/remove on a memory namespace: bins of every type, exists policies,
 * generations, bin selection and the record shape.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, ShoalError } from '../lib/index';
import { openMemoryDb, useDbCleanup } from './helpers/db';

useDbCleanup();

const key = (k: string | number | bigint | Buffer, set = 'people') => ({ ns: 'cache', set, key: k });

describe('put and get', () => {
  it('round-trips every bin type exactly', async () => {
    const db = await openMemoryDb();
    const bins = {
      s: 'héllo wörld',
      n: 42,
      f: -1.25,
      big: 2n ** 62n,
      negbig: -(2n ** 40n),
      large: 2 ** 52,
      t: true,
      b: Buffer.from([0, 1, 2, 255]),
      list: [1, 'two', [3], { four: 4 }],
      map: { nested: { deep: [true, false] }, n: 7n },
      empty: '',
    };
    expect(await db.put(key('u1'), bins)).toEqual({ gen: 1, ttl: -1 });
    const record = await db.get(key('u1'));
    expect(record).toBeDefined();
    expect(record!.bins).toEqual(bins);
    expect(typeof record!.bins.big).toBe('bigint');
    expect(typeof record!.bins.large).toBe('number');
    expect(Buffer.isBuffer(record!.bins.b)).toBe(true);
    expect(record!.gen).toBe(1);
    expect(record!.ttl).toBe(-1);
    expect(record!.key).toEqual(key('u1'));
  });

  it('returns values that do not alias internal buffers', async () => {
    const db = await openMemoryDb();
    await db.put(key('a'), { b: Buffer.from('first') });
    const first = await db.get(key('a'));
    await db.put(key('b'), { b: Buffer.from('XXXXXXXXXXXX') });
    await db.get(key('b'));
    expect(first!.bins.b).toEqual(Buffer.from('first'));
  });

  it('addresses records by string, number, bigint and Buffer keys, and by digest', async () => {
    const db = await openMemoryDb();
    await db.put(key(7), { v: 'seven' });
    expect((await db.get(key(7n)))!.bins.v).toBe('seven');
    expect(await db.get(key('7'))).toBeUndefined();
    await db.put(key(Buffer.from('raw')), { v: 'raw' });
    expect((await db.get(key(Buffer.from('raw'))))!.bins.v).toBe('raw');
    const { digestOf } = await import('../lib/index.js');
    expect((await db.get({ ns: 'cache', set: 'people', digest: digestOf('people', 7) }))!.bins.v).toBe('seven');
    expect(await db.get(key(7, 'other'))).toBeUndefined();
  });

  it('merges bins on upsert and removes bins written as null', async () => {
    const db = await openMemoryDb();
    await db.put(key('m'), { a: 1, b: 2 });
    expect(await db.put(key('m'), { b: 3, c: 4 })).toMatchObject({ gen: 2 });
    expect((await db.get(key('m')))!.bins).toEqual({ a: 1, b: 3, c: 4 });
    await db.put(key('m'), { a: null });
    expect((await db.get(key('m')))!.bins).toEqual({ b: 3, c: 4 });
    await db.put(key('m'), { b: null, c: null });
    expect(await db.exists(key('m'))).toBe(false);
  });

  it('selects bins on read', async () => {
    const db = await openMemoryDb();
    await db.put(key('sel'), { a: 1, b: 2, c: 3 });
    expect((await db.get(key('sel'), { bins: ['a', 'c', 'zz'] }))!.bins).toEqual({ a: 1, c: 3 });
    expect(db.getSync(key('sel'), { bins: ['b'] })!.bins).toEqual({ b: 2 });
  });

  it('serves getSync from memory with the same result as get', async () => {
    const db = await openMemoryDb();
    await db.put(key('sync'), { x: [1, 2, 3] });
    expect(db.getSync(key('sync'))).toEqual(await db.get(key('sync')));
    expect(db.getSync(key('absent'))).toBeUndefined();
  });

  it('honours every exists policy', async () => {
    const db = await openMemoryDb();
    const k = key('policy');
    await expect(db.put(k, { a: 1 }, { exists: 'update' })).rejects.toMatchObject({ code: ErrorCode.RECORD_NOT_FOUND, status: 2 });
    await expect(db.put(k, { a: 1 }, { exists: 'replace' })).rejects.toMatchObject({ code: ErrorCode.RECORD_NOT_FOUND });
    expect(await db.put(k, { a: 1, b: 1 }, { exists: 'create' })).toMatchObject({ gen: 1 });
    await expect(db.put(k, { a: 2 }, { exists: 'create' })).rejects.toMatchObject({ code: ErrorCode.RECORD_EXISTS, status: 5 });
    await db.put(k, { c: 1 }, { exists: 'update' });
    expect((await db.get(k))!.bins).toEqual({ a: 1, b: 1, c: 1 });
    await db.put(k, { z: 1 }, { exists: 'replace' });
    expect((await db.get(k))!.bins).toEqual({ z: 1 });
    await db.put(k, { y: 1 }, { exists: 'createOrReplace' });
    expect((await db.get(k))!.bins).toEqual({ y: 1 });
    await db.put(key('fresh'), { y: 2 }, { exists: 'createOrReplace' });
    expect((await db.get(key('fresh')))!.bins).toEqual({ y: 2 });
    expect((await db.get(k))!.gen).toBe(4);
  });

  it('writes only when the generation matches', async () => {
    const db = await openMemoryDb();
    const k = key('cas');
    await expect(db.put(k, { a: 1 }, { generation: 1 })).rejects.toMatchObject({ code: ErrorCode.GENERATION_MISMATCH, status: 3 });
    await db.put(k, { a: 1 }, { generation: 0 });
    await db.put(k, { a: 2 }, { generation: 1 });
    const error = await db.put(k, { a: 3 }, { generation: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShoalError);
    expect((error as ShoalError).code).toBe('GENERATION_MISMATCH');
    expect((await db.get(k))!.bins.a).toBe(2);
    await expect(db.remove(k, { generation: 1 })).rejects.toMatchObject({ code: ErrorCode.GENERATION_MISMATCH });
    expect(await db.remove(k, { generation: 2 })).toBe(true);
  });

  it('removes records and reports whether they existed', async () => {
    const db = await openMemoryDb();
    await db.put(key('r'), { a: 1 });
    expect(await db.exists(key('r'))).toBe(true);
    expect(await db.remove(key('r'))).toBe(true);
    expect(await db.remove(key('r'))).toBe(false);
    expect(await db.get(key('r'))).toBeUndefined();
    expect(await db.exists(key('r'))).toBe(false);
    await db.put(key('r'), { a: 2 });
    expect((await db.get(key('r')))!.gen).toBe(1);
  });

  it('keeps 20k records intact across overwrites and removals (checked against a Map)', async () => {
    const db = await openMemoryDb();
    const model = new Map<number, number>();
    let seed = 12345;
    const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
    for (let i = 0; i < 60_000; i++) {
      const k = next() % 20_000;
      if (next() % 5 === 0) {
        expect(await db.remove(key(k))).toBe(model.delete(k));
      } else {
        const v = next();
        await db.put(key(k), { v, pad: 'x'.repeat(v % 300) });
        model.set(k, v);
      }
    }
    for (let k = 0; k < 20_000; k++) {
      const record = db.getSync(key(k));
      if (model.has(k)) expect(record?.bins.v).toBe(model.get(k));
      else expect(record).toBeUndefined();
    }
    expect(db.stats().namespaces.cache!.objects).toBe(model.size);
  });
});
