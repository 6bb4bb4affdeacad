/**
 * A shared-memory index is used only if it describes exactly the data it belongs to
 * (docs/index.md, "Which segments may be attached"). Every open of a device namespace stamps
 * its device headers with a new random open stamp; a clean close leaves the same stamp in the
 * storage state file and in the index's metadata, and a warm start needs all three to agree.
 * A Db opened with sharedMemoryIndex: false removes the segments of earlier runs, so neither a
 * device nor a memory namespace can later attach a run older than the last one that wrote.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Db, open } from '../lib/index';
import { segmentBaseName } from '../lib/namespace/index-segments';
import type { NamespaceOptions } from '../lib/options';
import { track, useDbCleanup } from './helpers/db';
import { tempDir } from './helpers/temp';

useDbCleanup(['disk', 'cache']);

const NAMESPACES: NamespaceOptions[] = [
  { name: 'disk', storage: { type: 'device', paths: ['disk.dat'], sizeBytes: 16 << 20 } },
  { name: 'cache', storage: { type: 'memory', maxBytes: 16 << 20 } },
];
const RECORDS = 50;

async function openDb(dir: string, sharedMemoryIndex: boolean, logs: string[] = []): Promise<Db> {
  return track(await open({ dataDir: dir, sharedMemoryIndex, namespaces: NAMESPACES, log: (message) => logs.push(message) }));
}

async function writeAll(db: Db, version: number): Promise<void> {
  for (let i = 0; i < RECORDS; i++) for (const ns of ['disk', 'cache']) await db.put({ ns, key: i }, { version });
}

/** The shared-memory segment files of a namespace in dir. */
function segments(dir: string, ns: string): string[] {
  const base = segmentBaseName(dir, ns).slice(1);
  return fs.readdirSync('/dev/shm').filter((name) => name === `${base}.h` || name.startsWith(`${base}.`));
}

async function versions(db: Db, ns: string): Promise<(number | undefined)[]> {
  const out: (number | undefined)[] = [];
  for (let i = 0; i < RECORDS; i++) out.push((await db.get({ ns, key: i }))?.bins.version as number | undefined);
  return out;
}

async function scanned(db: Db, ns: string): Promise<number> {
  let count = 0;
  for await (const record of db.scan(ns)) if (record !== undefined) count++;
  return count;
}

describe('a shared-memory index never describes stale data', () => {
  it('a run with sharedMemoryIndex: false between two shared runs leaves nothing stale to attach', async () => {
    const dir = tempDir();
    let db = await openDb(dir, true);
    await writeAll(db, 1);
    await db.close();
    expect(segments(dir, 'disk').length).toBeGreaterThan(0);

    db = await openDb(dir, false);
    // The first run's segments are gone as soon as a Db opens the data without them.
    expect(segments(dir, 'disk')).toEqual([]);
    expect(segments(dir, 'cache')).toEqual([]);
    await writeAll(db, 2);
    for (const ns of ['disk', 'cache']) await db.remove({ ns, key: 7 });
    await db.close();

    const logs: string[] = [];
    db = await openDb(dir, true, logs);
    const stats = db.stats().namespaces;
    // No shared-memory index to attach: the index checkpoint the second run left at its close
    // (the same run as the devices' last close) is loaded instead.
    expect(stats.disk!.startMode).toBe('recovered');
    // The device namespace serves the second run's data, read back from the device.
    const disk = await versions(db, 'disk');
    expect(disk[7]).toBeUndefined();
    expect(disk.filter((version) => version === 2)).toHaveLength(RECORDS - 1);
    expect(await scanned(db, 'disk')).toBe(RECORDS - 1);
    // The memory namespace's second run kept its data in private memory, now gone: nothing of
    // the first run may come back in its place.
    expect(stats.cache!.startMode).not.toBe('warm');
    expect((await versions(db, 'cache')).filter((version) => version !== undefined)).toEqual([]);
  });

  it('a device namespace says why it does not attach an index left before the devices were last opened', async () => {
    const dir = tempDir();
    let db = await openDb(dir, true);
    await writeAll(db, 1);
    await db.close();
    // Keep a copy of the first run's segments and put them back after a second shared run:
    // they are intact and clean, and they carry the devices' signature, but not their stamp.
    const saved = new Map(segments(dir, 'disk').map((name) => [name, fs.readFileSync(path.join('/dev/shm', name))]));
    db = await openDb(dir, true);
    await writeAll(db, 2);
    await db.remove({ ns: 'disk', key: 3 });
    await db.close();
    for (const name of segments(dir, 'disk')) fs.rmSync(path.join('/dev/shm', name));
    for (const [name, bytes] of saved) fs.writeFileSync(path.join('/dev/shm', name), bytes, { mode: 0o600 });

    const logs: string[] = [];
    db = await openDb(dir, true, logs);
    // The stale segments are refused (the log says why); the second run's index checkpoint is loaded.
    expect(db.stats().namespaces.disk!.startMode).toBe('recovered');
    expect(logs.join('\n')).toMatch(/namespace disk: .*(stamp|earlier run)/);
    const disk = await versions(db, 'disk');
    expect(disk[3]).toBeUndefined();
    expect(disk.filter((version) => version === 2)).toHaveLength(RECORDS - 1);
  });

  it('close({ dropIndex: true }) of a Db without shared memory removes what earlier runs left', async () => {
    const dir = tempDir();
    const first = await openDb(dir, true);
    await writeAll(first, 1);
    await first.close();
    expect(segments(dir, 'cache').length).toBeGreaterThan(0);
    const db = await openDb(dir, false);
    await db.close({ dropIndex: true });
    expect(segments(dir, 'disk')).toEqual([]);
    expect(segments(dir, 'cache')).toEqual([]);
  });
});
