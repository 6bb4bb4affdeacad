/**
 * Bad input of every kind gets a clear TypeError or ShoalError, and nothing stored is hurt.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, ShoalError, open, op } from '../lib/index';
import { openMemoryDb, useDbCleanup } from './helpers/db';
import { tempDir } from './helpers/temp';

useDbCleanup();

const key = { ns: 'cache', set: 's', key: 'k' };

async function codeOf(promise: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    if (error instanceof ShoalError) return error.code;
    if (error instanceof TypeError) return 'TypeError';
    if (error instanceof RangeError) return 'RangeError';
    return `other: ${String(error)}`;
  }
  return 'no error';
}

describe('bad input', () => {
  it('rejects malformed keys', async () => {
    const db = await openMemoryDb();
    const bad: unknown[] = [
      undefined,
      null,
      'k',
      42,
      {},
      { ns: 'cache' },
      { ns: 5, key: 'k' },
      { ns: 'cache', set: 7, key: 'k' },
      { ns: 'cache', key: 1.5 },
      { ns: 'cache', key: Number.NaN },
      { ns: 'cache', key: Infinity },
      { ns: 'cache', key: {} },
      { ns: 'cache', key: [1] },
      { ns: 'cache', key: true },
      { ns: 'cache', key: Symbol('s') },
      { ns: 'cache', key: 2n ** 64n },
      { ns: 'cache', digest: Buffer.alloc(19) },
      { ns: 'cache', digest: 'x'.repeat(20) },
      { ns: 'cache', key: 'x'.repeat(4097) },
      { ns: 'cache', set: 'x'.repeat(64), key: 'k' },
    ];
    for (const k of bad) {
      const code = await codeOf(db.get(k as never));
      expect(['TypeError', ErrorCode.INVALID_ARGUMENT], `key ${String((k as { key?: unknown })?.key)}`).toContain(code);
    }
  });

  it('rejects an unknown namespace with INVALID_ARGUMENT naming the known ones', async () => {
    const db = await openMemoryDb();
    const error = await db.get({ ns: 'nope', key: 'k' }).catch((e: ShoalError) => e);
    expect(error).toBeInstanceOf(ShoalError);
    expect((error as ShoalError).code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect((error as ShoalError).status).toBe(4);
    expect((error as ShoalError).message).toMatch(/"cache"/);
    expect(await codeOf(() => db.scan('nope'))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(db.truncate('nope'))).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it('rejects bad bins: types, names, NaN, nesting, size', async () => {
    const db = await openMemoryDb({ maxRecordBytes: 8192 });
    const badBins: unknown[] = [
      undefined,
      null,
      'string',
      [1, 2],
      new Map([['a', 1]]),
      {},
      { ['x'.repeat(16)]: 1 },
      { ['é'.repeat(8)]: 1 },
      { '': 1 },
      { a: Number.NaN },
      { a: Infinity },
      { a: undefined },
      { a: () => 1 },
      { a: Symbol('x') },
      { a: new Date() },
      { a: [1, undefined] },
      { a: { b: new Set() } },
      { a: 2n ** 63n },
    ];
    for (const bins of badBins) {
      const code = await codeOf(db.put(key, bins as never));
      expect(['TypeError', ErrorCode.INVALID_ARGUMENT], JSON.stringify(String(bins))).toContain(code);
    }
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    expect(await codeOf(db.put(key, { deep } as never))).toBe(ErrorCode.INVALID_ARGUMENT);
    const tooBig = await db.put(key, { big: 'x'.repeat(9000) }).catch((e: ShoalError) => e);
    expect(tooBig).toMatchObject({ code: ErrorCode.RECORD_TOO_BIG, status: 13 });
    expect(await db.exists(key)).toBe(false);
  });

  it('rejects bad options', async () => {
    const db = await openMemoryDb();
    const badOptions: unknown[] = [
      'x',
      { ttl: 1.5 },
      { ttl: -3 },
      { ttl: Number.NaN },
      { ttl: 2 ** 40 },
      { exists: 'maybe' },
      { generation: -1 },
      { generation: 1.5 },
      { durable: 'yes' },
    ];
    for (const opts of badOptions) {
      expect(['TypeError', ErrorCode.INVALID_ARGUMENT]).toContain(await codeOf(db.put(key, { a: 1 }, opts as never)));
    }
    expect(['TypeError', ErrorCode.INVALID_ARGUMENT]).toContain(await codeOf(db.get(key, { bins: 'a' } as never)));
    expect(['TypeError', ErrorCode.INVALID_ARGUMENT]).toContain(await codeOf(db.touch(key, 'x' as never)));
    expect(['TypeError', ErrorCode.INVALID_ARGUMENT]).toContain(await codeOf(db.operate(key, 'x' as never)));
    expect(['TypeError', ErrorCode.INVALID_ARGUMENT]).toContain(await codeOf(db.operate(key, [])));
    expect(['TypeError', ErrorCode.INVALID_ARGUMENT]).toContain(await codeOf(db.operate(key, [{ op: 'explode' } as never])));
    expect(['TypeError', ErrorCode.INVALID_ARGUMENT]).toContain(await codeOf(db.operate(key, [op.incr('n', 'x' as never)])));
    expect(['TypeError', ErrorCode.INVALID_ARGUMENT]).toContain(await codeOf(() => db.scan('cache', undefined, { partitions: [4096] })));
    expect(['TypeError', ErrorCode.INVALID_ARGUMENT]).toContain(await codeOf(db.truncate('cache', undefined, { before: 'x' as never })));
  });

  it('rejects a huge batch before touching anything, and reports per-entry errors in batchPut', async () => {
    const db = await openMemoryDb();
    const keys = Array.from({ length: 100_001 }, (_, i) => ({ ns: 'cache', key: i }));
    expect(await codeOf(db.batchGet(keys))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(db.batchGet('x' as never))).toBe('TypeError');
    const results = await db.batchPut([
      { key: { ns: 'cache', key: 1 }, bins: { a: 1 } },
      { key: { ns: 'cache', key: 2 }, bins: { a: Number.NaN } },
      { key: { ns: 'nope', key: 3 }, bins: { a: 1 } },
      null as never,
      { key: { ns: 'cache', key: 1 }, bins: { a: 2 }, opts: { exists: 'create' } },
    ]);
    expect(results[0]).toEqual({ gen: 1, ttl: -1 });
    expect(results.slice(1).map((r) => (r as ShoalError).code)).toEqual([
      ErrorCode.INVALID_ARGUMENT,
      ErrorCode.INVALID_ARGUMENT,
      ErrorCode.INVALID_ARGUMENT,
      ErrorCode.RECORD_EXISTS,
    ]);
    expect((await db.get({ ns: 'cache', key: 1 }))!.bins).toEqual({ a: 1 });
  });

  it('rejects bad open() options clearly', async () => {
    const dir = tempDir();
    const cases: unknown[] = [
      undefined,
      {},
      { namespaces: [] },
      { dataDir: dir, namespaces: [{ name: 'a b', storage: { type: 'memory', maxBytes: 1 << 20 } }] },
      { dataDir: dir, namespaces: [{ name: 'a', storage: { type: 'memory', maxBytes: -1 } }] },
      { dataDir: dir, namespaces: [{ name: 'a', storage: { type: 'tape' } }] },
      { dataDir: dir, namespaces: [{ name: 'a', storage: { type: 'memory', maxBytes: 1 << 20 }, defaultTtl: 'x' }] },
      { dataDir: dir, namespaces: [{ name: 'a', storage: { type: 'memory', maxBytes: 1 << 20 }, evict: { policy: 'random' } }] },
      {
        dataDir: dir,
        namespaces: [
          { name: 'a', storage: { type: 'memory', maxBytes: 1 << 20 } },
          { name: 'a', storage: { type: 'memory', maxBytes: 1 << 20 } },
        ],
      },
    ];
    for (const options of cases) {
      expect(['TypeError', ErrorCode.INVALID_ARGUMENT]).toContain(await codeOf(open(options as never)));
    }
  });
});

describe('closed databases', () => {
  it('answer every method with NOT_OPEN, and close twice is harmless', async () => {
    const db = await openMemoryDb();
    await db.put(key, { a: 1 });
    await db.close({ dropIndex: true });
    await db.close();
    for (const call of [
      () => db.put(key, { a: 1 }),
      () => db.get(key),
      () => db.getSync(key),
      () => db.exists(key),
      () => db.remove(key),
      () => db.touch(key),
      () => db.operate(key, [op.read('a')]),
      () => db.batchGet([key]),
      () => db.batchPut([{ key, bins: { a: 1 } }]),
      () => db.scan('cache'),
      () => db.truncate('cache'),
      () => db.stats(),
    ]) {
      expect(await codeOf(call)).toBe(ErrorCode.NOT_OPEN);
    }
  });
});
