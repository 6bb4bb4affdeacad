/**
 * A shared-memory index is never trusted blindly: a corrupted segment, or an index that does
 * not match the devices, gives a cold start with a log line saying why, and every record is
 * still there (device) or the namespace starts empty (memory, which has nothing to rebuild from).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { open, type Db, type NamespaceOptions } from '../lib/index';
import { segmentBaseName } from '../lib/namespace/index-segments';
import { cleanupTempDirs, tempDir } from './helpers/temp';

const opened: Db[] = [];
afterEach(async () => {
  for (const db of opened.splice(0)) await db.close({ dropIndex: true }).catch(() => undefined);
  cleanupTempDirs(['cache', 'disk']);
});

const DEVICE: NamespaceOptions = { name: 'disk', storage: { type: 'device', paths: ['disk.dat'], sizeBytes: 32 << 20 } };
const MEMORY: NamespaceOptions = { name: 'cache', storage: { type: 'memory', maxBytes: 32 << 20 } };

async function openWithLog(dataDir: string, namespaces: NamespaceOptions[], lines: string[]): Promise<Db> {
  const db = await open({ dataDir, namespaces, log: (line) => lines.push(line) });
  opened.push(db);
  return db;
}

/** Overwrites the first bytes of the namespace's index header segment, as a stray write would. */
function corruptHeaderSegment(dataDir: string, namespace: string): void {
  const file = path.join('/dev/shm', `${segmentBaseName(dataDir, namespace).slice(1)}.h`);
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.alloc(64, 0xa5), 0, 64, 0);
  fs.closeSync(fd);
}

async function fill(db: Db, ns: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await db.put({ ns, set: 's', key: i }, { i, text: `value-${i}` });
}

describe('restart validation', () => {
  it('a device namespace with a corrupted index segment cold-starts, says why, and keeps every record', async () => {
    const dir = tempDir();
    const db = await openWithLog(dir, [DEVICE], []);
    await fill(db, 'disk', 2000);
    await db.close();
    corruptHeaderSegment(dir, 'disk');
    const lines: string[] = [];
    const again = await openWithLog(dir, [DEVICE], lines);
    // The damaged segment is refused (the log says why); the index checkpoint of the close is loaded.
    expect(again.stats().namespaces.disk!.startMode).toBe('recovered');
    expect(lines.join('\n')).toMatch(/disk.*(incompatible|corrupt|does not match|not closed cleanly|another layout)/);
    for (let i = 0; i < 2000; i++) expect((await again.get({ ns: 'disk', set: 's', key: i }))?.bins.i).toBe(i);
  });

  it('a device namespace whose index belongs to other devices cold-starts from the devices it has', async () => {
    const dir = tempDir();
    const db = await openWithLog(dir, [DEVICE], []);
    await fill(db, 'disk', 500);
    await db.close();
    // Replace the device with a fresh one: the index in shared memory no longer matches it.
    fs.rmSync(path.join(dir, 'disk.dat'));
    const lines: string[] = [];
    const again = await openWithLog(dir, [DEVICE], lines);
    expect(again.stats().namespaces.disk!.startMode).not.toBe('warm');
    expect(lines.join('\n')).toMatch(/disk/);
    expect(await again.get({ ns: 'disk', set: 's', key: 1 })).toBeUndefined();
    expect(again.stats().namespaces.disk!.objects).toBe(0);
  });

  it('a memory namespace with a corrupted segment starts empty and says why', async () => {
    const dir = tempDir();
    const db = await openWithLog(dir, [MEMORY], []);
    await fill(db, 'cache', 500);
    await db.close();
    corruptHeaderSegment(dir, 'cache');
    const lines: string[] = [];
    const again = await openWithLog(dir, [MEMORY], lines);
    expect(again.stats().namespaces.cache!.startMode).toBe('cold');
    expect(again.stats().namespaces.cache!.objects).toBe(0);
    expect(lines.join('\n')).toMatch(/cache.*(incompatible|not closed cleanly)/);
  });
});
