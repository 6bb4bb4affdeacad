/**
 * One record core, three stores (lib/namespace/record-core.ts over memory-store.ts and
 * device-records.ts, with and without dataInMemory): the same seeded sequence of operations
 * under the same fake clock gives the same results, errors and records in every kind. A rule
 * that holds for one kind and not another (a drift between two implementations) fails here.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { digestOf } from '../lib/model/digest';
import { partitionIdOf } from '../lib/model/key';
import { openNamespace } from '../lib/namespace/factory';
import type { Namespace } from '../lib/namespace/namespace';
import { resolveOptions } from '../lib/options';
import { seededFloats } from './helpers/random';
import { cleanupTempDirs, tempDir } from './helpers/temp';

const KINDS = {
  memory: { type: 'memory', maxBytes: 64 << 20 },
  device: { type: 'device', paths: ['d.dat'], sizeBytes: 16 << 20, writeBlockBytes: 128 << 10 },
  dataInMemory: { type: 'device', paths: ['d.dat'], sizeBytes: 16 << 20, writeBlockBytes: 128 << 10, dataInMemory: true },
} as const;
const START_MS = 1_800_000_000_000;

const opened: Namespace[] = [];
afterEach(async () => {
  for (const ns of opened.splice(0)) await ns.close(true).catch(() => undefined);
  cleanupTempDirs(['n']);
});

async function openKind(kind: keyof typeof KINDS, clock: { nowMs(): number }): Promise<Namespace> {
  const dir = tempDir('shoal-stores-');
  const config = resolveOptions({ dataDir: dir, sharedMemoryIndex: false, namespaces: [{ name: 'n', storage: KINDS[kind], maxRecordBytes: 64 << 10, nsupPeriodSeconds: 0 }] } as never);
  const ns = await openNamespace(config.namespaces[0]!, config, () => undefined, clock);
  opened.push(ns);
  return ns;
}

/** What a call returned or threw, comparable across kinds. */
async function outcome(call: () => unknown): Promise<unknown> {
  try {
    const value = await call();
    return { value: JSON.parse(JSON.stringify(value ?? null)) };
  } catch (error) {
    return { error: (error as { code?: string }).code ?? String(error) };
  }
}

const POLICIES = [undefined, 'update', 'create', 'replace', 'createOrReplace'] as const;

/** A seeded sequence of operations on a few keys, with the clock moving, and what each returned. */
async function run(kind: keyof typeof KINDS, seed: number): Promise<unknown[]> {
  let now = START_MS;
  const ns = await openKind(kind, { nowMs: () => now });
  const random = seededFloats(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const results: unknown[] = [];
  for (let step = 0; step < 400; step++) {
    const key = { ns: 'n', set: 's', key: `k${Math.floor(random() * 12)}` };
    const choice = random();
    if (choice < 0.3) {
      const bins = { [pick(['a', 'b', 'c'])]: random() < 0.15 ? null : Math.floor(random() * 100), v: step };
      const ttl = random() < 0.2 ? 1 + Math.floor(random() * 30) : undefined;
      results.push(await outcome(() => ns.put(key, bins as never, { exists: pick(POLICIES), ttl } as never)));
    } else if (choice < 0.45) {
      results.push(await outcome(() => ns.get(key, undefined)));
    } else if (choice < 0.55) {
      results.push(await outcome(() => ns.touch(key, random() < 0.5 ? undefined : 5 + Math.floor(random() * 20))));
    } else if (choice < 0.7) {
      results.push(await outcome(() => ns.operate(key, [{ op: 'incr', bin: 'a', value: 1 }, { op: 'read', bin: 'a' }] as never, undefined)));
    } else if (choice < 0.8) {
      results.push(await outcome(() => ns.remove(key, undefined)));
    } else if (choice < 0.9) {
      results.push(await outcome(() => ns.exists(key)));
    } else {
      now += Math.floor(random() * 15_000);
    }
  }
  const scanned: unknown[] = [];
  for await (const record of ns.scan('s', undefined)) scanned.push({ key: record.key.key, bins: record.bins, gen: record.gen, ttl: record.ttl });
  results.push(scanned.sort((a, b) => String((a as { key: string }).key).localeCompare(String((b as { key: string }).key))));
  return results;
}

describe('the record core over every store', () => {
  it.each([1, 2, 3])('gives the same results in memory, on a device and on a device with dataInMemory (seed %i)', async (seed) => {
    const memory = await run('memory', seed);
    // The sequence reaches values and several errors (RECORD_NOT_FOUND, RECORD_EXISTS, ...), not one outcome.
    const kinds = new Set(memory.map((result) => (result !== null && typeof result === 'object' && 'error' in result ? (result as { error: string }).error : 'value')));
    expect(kinds.size).toBeGreaterThanOrEqual(3);
    expect(await run('device', seed)).toEqual(memory);
    expect(await run('dataInMemory', seed)).toEqual(memory);
  });

  it('migrates and drops the same records of a partition: an expired record is neither shipped nor counted', async () => {
    const found: Record<string, unknown> = {};
    for (const kind of Object.keys(KINDS) as (keyof typeof KINDS)[]) {
      let now = START_MS;
      const ns = await openKind(kind, { nowMs: () => now });
      const live = { ns: 'n', set: 's', key: 'live' };
      const partition = partitionIdOf(digestOf('s', 'live'));
      // A second key in the same partition, with a TTL that runs out.
      let other = 0;
      while (partitionIdOf(digestOf('s', `short${other}`)) !== partition) other++;
      await ns.put(live, { a: 1 }, undefined);
      await ns.put({ ns: 'n', set: 's', key: `short${other}` }, { a: 2 }, { ttl: 10 });
      now += 20_000;
      const versions: number[] = [];
      for await (const version of ns.partitionVersions(partition)) versions.push(version.gen);
      found[kind] = { versions, dropped: await ns.dropPartition(partition), left: (await ns.get(live, undefined)) ?? null };
    }
    expect(found['memory']).toEqual({ versions: [1], dropped: 1, left: null });
    expect(found['device']).toEqual(found['memory']);
    expect(found['dataInMemory']).toEqual(found['memory']);
  });
});
