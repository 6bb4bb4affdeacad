/**
 * Unknown option names, at every level of open()'s options and of each call's options, are
 * refused with INVALID_ARGUMENT naming the option and the closest valid name; and the one rule
 * for TypeError against INVALID_ARGUMENT (docs/api.md, "Errors for wrong arguments") holds:
 * a value of the wrong JavaScript type (or a required one missing) is a TypeError, a value of
 * the right type that Shoal cannot accept is INVALID_ARGUMENT.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, ShoalError, open } from '../lib/index';
import { closestName } from '../lib/option-names';
import { openMemoryDb, track, useDbCleanup } from './helpers/db';
import { tempDir } from './helpers/temp';

useDbCleanup(['cache', 'disk']);

const memory = { name: 'cache', storage: { type: 'memory', maxBytes: 64 << 20 } };

/** The error a call throws or rejects with. */
async function errorOf(call: () => unknown): Promise<unknown> {
  try {
    const result = await call();
    if (result !== null && typeof result === 'object' && 'close' in result) track(result as never);
  } catch (error) {
    return error;
  }
  throw new Error('the call succeeded');
}

async function expectUnknown(call: () => unknown, name: string, suggestion: string | undefined): Promise<void> {
  const error = await errorOf(call);
  expect(error, String(error)).toBeInstanceOf(ShoalError);
  expect((error as ShoalError).code).toBe(ErrorCode.INVALID_ARGUMENT);
  expect((error as Error).message).toContain(`"${name}"`);
  if (suggestion !== undefined) expect((error as Error).message).toContain(`did you mean "${suggestion}"`);
}

function openWith(options: Record<string, unknown>): () => Promise<unknown> {
  return () => open({ dataDir: tempDir(), namespaces: [memory], log: () => undefined, ...options } as never);
}

describe('closestName', () => {
  it('suggests a near name and nothing for a far one', () => {
    expect(closestName('defaltTtl', ['defaultTtl', 'name', 'storage'])).toBe('defaultTtl');
    expect(closestName('maxbytes', ['type', 'maxBytes'])).toBe('maxBytes');
    expect(closestName('stroage', ['name', 'storage'])).toBe('storage');
    expect(closestName('zzzzzz', ['name', 'storage'])).toBeUndefined();
  });
});

describe('open() refuses unknown option names at every level', () => {
  it('top level, with the level where the name belongs', async () => {
    await expectUnknown(openWith({ defaltTtl: 5 }), 'defaltTtl', undefined);
    const error = (await errorOf(openWith({ defaultTtl: 5 }))) as Error;
    expect(error.message).toContain('namespaces[i].defaultTtl');
    await expectUnknown(openWith({ dataDri: tempDir() }), 'dataDri', 'dataDir');
    await expectUnknown(openWith({ handleSignal: false }), 'handleSignal', 'handleSignals');
  });

  it('namespace, storage and evict', async () => {
    await expectUnknown(openWith({ namespaces: [{ ...memory, defaltTtl: 5 }] }), 'defaltTtl', 'defaultTtl');
    await expectUnknown(openWith({ namespaces: [{ name: 'cache', storage: { type: 'memory', maxbytes: 64 << 20, maxBytes: 64 << 20 } }] }), 'maxbytes', 'maxBytes');
    await expectUnknown(
      openWith({ namespaces: [{ name: 'disk', storage: { type: 'device', paths: ['d'], sizeBytes: 64 << 20, comitToDevice: true } }] }),
      'comitToDevice',
      'commitToDevice',
    );
    // A device option on a memory namespace is named as such.
    const error = (await errorOf(openWith({ namespaces: [{ name: 'cache', storage: { type: 'memory', maxBytes: 64 << 20, paths: ['x'] } }] }))) as Error;
    expect((error as ShoalError).code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(error.message).toContain('"paths"');
    await expectUnknown(openWith({ namespaces: [{ ...memory, evict: { policy: 'lru', highWatermarkPct: 80 } }] }), 'highWatermarkPct', 'highWaterPct');
  });

  it('cluster, cluster.listen, cluster.tls, service and metrics', async () => {
    const cluster = { listen: { host: '127.0.0.1', port: 0 } };
    await expectUnknown(openWith({ cluster: { ...cluster, seed: [] } }), 'seed', 'seeds');
    await expectUnknown(openWith({ cluster: { listen: { host: '127.0.0.1', prot: 0 } } }), 'prot', 'port');
    await expectUnknown(openWith({ cluster: { ...cluster, tls: { key: 'k', cert: 'c', cas: 'a' } } }), 'cas', 'ca');
    await expectUnknown(openWith({ service: { listen: { host: '127.0.0.1', port: 0 }, user: [] } }), 'user', 'users');
    await expectUnknown(openWith({ metrics: { lisen: { host: '127.0.0.1', port: 0 } } }), 'lisen', 'listen');
    await expectUnknown(openWith({ metrics: { listen: { host: '127.0.0.1', port: 0, hots: 'x' } } }), 'hots', 'host');
  });
});

describe('calls refuse unknown option names', () => {
  it('put, get, remove, operate, scan, batchGet, batchPut, truncate, close', async () => {
    const db = await openMemoryDb();
    const key = { ns: 'cache', set: 's', key: 1 };
    await expectUnknown(() => db.put(key, { a: 1 }, { tll: 5 } as never), 'tll', 'ttl');
    await expectUnknown(() => db.put(key, { a: 1 }, { durabel: true } as never), 'durabel', 'durable');
    await expectUnknown(() => db.get(key, { bin: ['a'] } as never), 'bin', 'bins');
    await expectUnknown(() => db.getSync(key, { bin: ['a'] } as never), 'bin', 'bins');
    await expectUnknown(() => db.remove(key, { generaton: 1 } as never), 'generaton', 'generation');
    await expectUnknown(() => db.operate(key, [{ op: 'read', bin: 'a' }] as never, { exist: 'update' } as never), 'exist', 'exists');
    await expectUnknown(() => db.scan('cache', undefined, { partition: [1] } as never), 'partition', 'partitions');
    await expectUnknown(() => db.batchGet([key], { filtr: undefined } as never), 'filtr', 'filter');
    await expectUnknown(() => db.batchPut([{ key, bins: { a: 1 } }], { tl: 1 } as never), 'tl', 'ttl');
    const [first, entry] = await db.batchPut([{ key: { ...key, key: 2 }, bins: { a: 1 } }, { key, bins: { a: 1 }, opt: { ttl: 1 } } as never]);
    expect(first).not.toBeInstanceOf(Error);
    expect(entry).toBeInstanceOf(ShoalError);
    expect((entry as ShoalError).message).toContain('entries[1] has unknown option "opt"');
    await db.remove({ ...key, key: 2 });
    await expectUnknown(() => db.truncate('cache', undefined, { befor: Date.now() } as never), 'befor', 'before');
    await expectUnknown(() => db.close({ dropindex: true } as never), 'dropindex', 'dropIndex');
    // Nothing was written by the refused calls.
    expect(await db.get(key)).toBeUndefined();
  });
});

describe('one rule: TypeError for the wrong type, INVALID_ARGUMENT for a bad value', () => {
  async function kind(call: () => unknown): Promise<string> {
    const error = await errorOf(call);
    if (error instanceof ShoalError) return error.code;
    if (error instanceof TypeError) return 'TypeError';
    return `other: ${String(error)}`;
  }

  it('open() options', async () => {
    const ns = (extra: Record<string, unknown>) => openWith({ namespaces: [{ ...memory, ...extra }] });
    expect(await kind(ns({ defaultTtl: 'x' }))).toBe('TypeError');
    expect(await kind(ns({ defaultTtl: 1.5 }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await kind(ns({ defaultTtl: -5 }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await kind(ns({ name: 7 }))).toBe('TypeError');
    expect(await kind(ns({ name: 'a b' }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await kind(ns({ evict: { policy: 3 } }))).toBe('TypeError');
    expect(await kind(ns({ evict: { policy: 'fifo' } }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await kind(ns({ storage: { type: 'memory', maxBytes: '1' } }))).toBe('TypeError');
    expect(await kind(ns({ storage: { type: 'memory', maxBytes: 5 } }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await kind(ns({ storage: { type: 'tape' } }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await kind(ns({ storage: { type: 'device', paths: 'd', sizeBytes: 64 << 20 } }))).toBe('TypeError');
    expect(await kind(openWith({ cluster: { listen: { host: '127.0.0.1', port: 0 }, replicationFactor: 9 } }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await kind(openWith({ cluster: { listen: { host: '127.0.0.1', port: 0 }, heartbeatIntervalMs: 'x' } }))).toBe('TypeError');
    expect(await kind(openWith({ metrics: { listen: { host: '127.0.0.1', port: 70000 } } }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await kind(openWith({ metrics: 'yes' }))).toBe('TypeError');
  });

  it('keys and call options', async () => {
    const db = await openMemoryDb();
    const key = { ns: 'cache', key: 1 };
    expect(await kind(() => db.get(null as never))).toBe('TypeError');
    expect(await kind(() => db.get({ id: 1 } as never))).toBe('TypeError');
    expect(await kind(() => db.get({ ns: 'cache' } as never))).toBe('TypeError');
    expect(await kind(() => db.get({ ns: 'nope', key: 1 }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await kind(() => db.get({ ns: 'cache', digest: 'abc' } as never))).toBe('TypeError');
    expect(await kind(() => db.get({ ns: 'cache', digest: Buffer.alloc(3) }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await kind(() => db.put(key, { a: 1 }, { ttl: 'x' } as never))).toBe('TypeError');
    expect(await kind(() => db.put(key, { a: 1 }, { ttl: -9 }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await kind(() => db.put(key, { a: 1 }, { exists: 1 } as never))).toBe('TypeError');
    expect(await kind(() => db.put(key, { a: 1 }, { exists: 'sometimes' } as never))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await kind(() => db.put(key, { a: 1 }, { generation: '1' } as never))).toBe('TypeError');
    expect(await kind(() => db.put(key, { a: 1 }, { generation: -1 }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await kind(() => db.touch(key, 'x' as never))).toBe('TypeError');
    expect(await kind(() => db.scan('cache', undefined, { partitions: ['1'] } as never))).toBe('TypeError');
    expect(await kind(() => db.scan('cache', undefined, { partitions: [4096] }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await kind(() => db.truncate('cache', undefined, { before: 'x' } as never))).toBe('TypeError');
    expect(await kind(() => db.truncate('cache', undefined, { before: Date.now() + 60_000 }))).toBe(ErrorCode.INVALID_ARGUMENT);
  });
});
