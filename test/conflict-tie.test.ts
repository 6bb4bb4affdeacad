/**
 * The conflict rule's full tie (lib/namespace/conflict.ts): two copies of a record with the
 * same generation and last-update time but different content, as two views of a split
 * cluster can write. Every namespace kind must keep the same one whichever arrives first,
 * or replicas diverge for good (the simulator's seed 684 found this).
 */
import { describe, expect, it } from 'vitest';
import { digestOf, open } from '../lib/index';
import type { Db } from '../lib/db';
import type { Bins } from '../lib/model/bins';
import type { Namespace, RecordVersion } from '../lib/namespace/namespace';
import { compareVersions, tieWins, versionWins } from '../lib/namespace/conflict';
import { track, useDbCleanup } from './helpers/db';
import { tempDir } from './helpers/temp';

useDbCleanup(['cache', 'disk', 'mirror']);

const KINDS = ['cache', 'disk', 'mirror'] as const;

async function openAllKinds(): Promise<Db> {
  return track(
    await open({
      dataDir: tempDir(),
      namespaces: [
        { name: 'cache', storage: { type: 'memory', maxBytes: 16 << 20 } },
        { name: 'disk', storage: { type: 'device', paths: ['disk.dat'], sizeBytes: 16 << 20, writeBlockBytes: 128 << 10 }, maxRecordBytes: 64 << 10 },
        { name: 'mirror', storage: { type: 'device', paths: ['mirror.dat'], sizeBytes: 16 << 20, writeBlockBytes: 128 << 10, dataInMemory: true }, maxRecordBytes: 64 << 10 },
      ],
      log: () => undefined,
    }),
  );
}

function namespaceOf(db: Db, name: string): Namespace {
  return (db as unknown as { namespaces: Map<string, Namespace> }).namespaces.get(name)!;
}

/** The stored version after writing `bins`, restamped with a fixed generation and time. */
async function versionWith(db: Db, ns: string, bins: Bins): Promise<RecordVersion> {
  const key = { ns, set: 't', key: 'register' };
  await db.put(key, bins);
  const version = (await namespaceOf(db, ns).readVersion(digestOf(key.set, key.key)))!;
  await db.remove(key);
  return { ...version, gen: 7, lastUpdateMs: 1_800_000_000_000 };
}

describe('the conflict rule', () => {
  it('orders by generation, then last-update time, or the reverse', () => {
    expect(compareVersions({ gen: 3, lastUpdateMs: 1 }, { gen: 2, lastUpdateMs: 9 }, 'generation')).toBeGreaterThan(0);
    expect(compareVersions({ gen: 3, lastUpdateMs: 1 }, { gen: 2, lastUpdateMs: 9 }, 'lastUpdateTime')).toBeLessThan(0);
    expect(compareVersions({ gen: 2, lastUpdateMs: 9 }, { gen: 2, lastUpdateMs: 9 }, 'generation')).toBe(0);
  });

  it('breaks a full tie by content: a removal first, then the greater payload; equal content keeps the local copy', () => {
    const a = { gen: 1, lastUpdateMs: 5, tombstone: false, payload: Buffer.from([1, 2, 3]) };
    const b = { gen: 1, lastUpdateMs: 5, tombstone: false, payload: Buffer.from([1, 2, 4]) };
    const removal = { gen: 1, lastUpdateMs: 5, tombstone: true };
    expect(versionWins(b, a, 'generation')).toBe(true);
    expect(versionWins(a, b, 'generation')).toBe(false);
    expect(tieWins(removal, a)).toBe(true);
    expect(tieWins(a, removal)).toBe(false);
    expect(versionWins(a, { ...a, payload: Buffer.from(a.payload) }, 'lastUpdateTime')).toBe(false);
  });
});

describe.each(KINDS)('a full tie in namespace %s', (ns) => {
  it('keeps the same copy whichever arrives first', async () => {
    const db = await openAllKinds();
    const namespace = namespaceOf(db, ns);
    const first = await versionWith(db, ns, { owner: 'left view', n: 1 });
    const second = await versionWith(db, ns, { owner: 'right view', n: 2 });
    expect(Buffer.compare(first.payload!, second.payload!)).not.toBe(0);
    const winner = Buffer.compare(first.payload!, second.payload!) > 0 ? first : second;
    const key = { ns, set: 't', key: 'register' };
    const contents: unknown[] = [];
    for (const order of [[first, second], [second, first]]) {
      for (const version of order) await namespace.applyVersion(version);
      const stored = (await namespace.readVersion(first.digest))!;
      expect(stored.gen).toBe(7);
      expect(Buffer.compare(stored.payload!, winner.payload!)).toBe(0);
      contents.push((await db.get(key))?.bins);
      await db.remove(key);
    }
    expect(contents[0]).toEqual(contents[1]);
    expect(contents[0]).toEqual(winner === first ? { owner: 'left view', n: 1 } : { owner: 'right view', n: 2 });
  });

  it('lets a removal win a tie against data', async () => {
    const db = await openAllKinds();
    const namespace = namespaceOf(db, ns);
    const data = await versionWith(db, ns, { owner: 'left view' });
    await namespace.applyVersion(data);
    expect(await namespace.applyVersion({ ...data, tombstone: true, payload: undefined })).toBe(true);
    expect(await db.get({ ns, set: 't', key: 'register' })).toBeUndefined();
  });
});
