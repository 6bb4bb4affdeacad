/**
 * Cluster-mode batchPut gives each entry the result individual puts in the entries' order
 * give, and both copies of every record are the master's (two Dbs in cluster mode on loopback,
 * RF 2). The mix walks every way an entry can take on the master: new records and replaces
 * written by the batch path, merges and repeated keys by the per-record path, policy errors,
 * options, stored keys, bins written as null, Map bins, digest-only keys, and bad entries; the
 * master's copy holds the payload bytes a single put writes.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { open, type Db } from '../lib/index';
import { ShoalError } from '../lib/errors';
import type { BatchPutEntry } from '../lib/db';
import { digestOfKey } from '../lib/db-cluster';
import { cleanupTempDirs, tempDir } from './helpers/temp';

const opened: Db[] = [];

afterEach(async () => {
  for (const db of opened.splice(0)) await db.close({ dropIndex: true }).catch(() => undefined);
});

afterAll(() => cleanupTempDirs(['test']));

type StorageKind = 'memory' | 'device';

async function openDb(kind: StorageKind, name: string, cluster?: { nodeId: string; seeds: string[] }): Promise<Db> {
  const dataDir = tempDir(`batch-results-${name}`);
  const storage = kind === 'memory' ? { type: 'memory' as const, maxBytes: 64 << 20 } : { type: 'device' as const, paths: [`${dataDir}/test.dat`], sizeBytes: 64 << 20, writeBlockBytes: 1 << 20 };
  const db = await open({
    dataDir,
    sharedMemoryIndex: false,
    namespaces: [{ name: 'test', storage }],
    cluster: cluster === undefined ? undefined : { nodeId: cluster.nodeId, listen: { host: '127.0.0.1', port: 0 }, seeds: cluster.seeds, heartbeatIntervalMs: 50, heartbeatTimeout: 20 },
    log: () => undefined,
  });
  opened.push(db);
  return db;
}

async function until(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A deterministic mix of entries over 200 keys, half of which exist before the batch. */
function mix(seed: number): BatchPutEntry[] {
  let state = seed;
  const random = (n: number) => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state % n;
  };
  const entries: BatchPutEntry[] = [];
  for (let i = 0; i < 600; i++) {
    const key = { ns: 'test', set: 's', key: `k${random(200)}` };
    switch (random(10)) {
      case 0:
        entries.push({ key, bins: { v: i, gone: null } as never });
        break;
      case 1:
        entries.push({ key, bins: { v: i }, opts: { exists: 'create' } });
        break;
      case 2:
        entries.push({ key, bins: { v: i }, opts: { exists: 'replace', ttl: 500 } });
        break;
      case 3:
        entries.push({ key, bins: { v: i }, opts: { generation: 1 + random(3) } });
        break;
      case 4:
        entries.push({ key, bins: { m: new Map<number, string>([[i, 'x']]) } });
        break;
      case 5:
        entries.push({ key: { ns: 'test', digest: digestOfKey(key) }, bins: { d: i } });
        break;
      case 6:
        entries.push({ key, bins: [i] as never });
        break;
      case 7:
        // Stored keys: the master writes the key into a payload whose bins came encoded.
        entries.push({ key, bins: { v: i, nested: { list: [i, 'x', null], f: i / 3 } }, opts: { storeKey: true } });
        break;
      default:
        entries.push({ key, bins: { v: i, name: `n${i}` }, opts: random(2) === 0 ? { exists: 'update' } : undefined });
    }
  }
  return entries;
}

function outcomeOf(result: unknown): unknown {
  if (result instanceof ShoalError) return result.code;
  // A put's TypeError is a batch entry's INVALID_ARGUMENT (docs/storage.md, "Batched writes").
  if (result instanceof TypeError) return 'INVALID_ARGUMENT';
  const { gen, ttl } = result as { gen: number; ttl: number };
  return { gen, ttlBand: Math.round(ttl / 10) };
}

describe('cluster-mode batchPut results (2 Dbs on loopback, RF 2)', () => {
  it.each(['memory', 'device'] as const)('%s: equal individual puts in the same order, and both copies match the master', async (kind) => {
    const a = await openDb(kind, 'a', { nodeId: 'a', seeds: [] });
    const b = await openDb(kind, 'b', { nodeId: 'b', seeds: [a.cluster!.address] });
    await until(() => [a, b].every((db) => db.cluster!.state().succession.length === 2 && db.cluster!.state().migrationsRemaining === 0));
    const reference = await openDb(kind, 'reference');
    const existing = Array.from({ length: 100 }, (_, i) => ({ key: { ns: 'test', set: 's', key: `k${i * 2}` }, bins: { v: -i, gone: 1 } }));
    for (const db of [a, reference]) await db.batchPut(existing);
    for (const seed of [1, 2, 3]) {
      const entries = mix(seed);
      const batch = await a.batchPut(entries);
      const single: unknown[] = [];
      for (const entry of entries) single.push(await Promise.resolve().then(() => reference.put(entry.key, entry.bins, entry.opts)).catch((error: unknown) => error));
      expect(batch.map(outcomeOf)).toEqual(single.map(outcomeOf));
    }
    const versionOf = (db: Db, digest: Buffer) => (db as unknown as { namespaces: Map<string, { readVersion(d: Buffer): unknown }> }).namespaces.get('test')!.readVersion(digest);
    for (let i = 0; i < 200; i++) {
      const key = { ns: 'test', set: 's', key: `k${i}` };
      const expected = await reference.get(key);
      const copy = await b.get(key);
      expect(copy?.bins, key.key).toEqual(expected?.bins);
      expect(copy?.key, key.key).toEqual(expected?.key);
      // The master stores the bytes a single put writes (bins copied as they came, or encoded again).
      const digest = digestOfKey(key);
      const payload = (version: unknown) => (version as { payload?: Buffer } | undefined)?.payload;
      expect(payload(await versionOf(a, digest)), key.key).toEqual(payload(await versionOf(reference, digest)));
    }
    // Each node holds a copy of every record (RF 2 on two nodes), the same one.
    await until(() => a.stats().namespaces.test!.objects === b.stats().namespaces.test!.objects);
    for (let i = 0; i < 200; i++) {
      const digest = digestOfKey({ ns: 'test', set: 's', key: `k${i}` });
      expect(await versionOf(b, digest)).toEqual(await versionOf(a, digest));
    }
    expect(a.stats().namespaces.test!.objects).toBe(reference.stats().namespaces.test!.objects);
  }, 60_000);
});
