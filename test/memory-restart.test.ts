/**
 * A memory namespace in shared memory survives a clean process restart (warm), refuses a
 * second owner (LOCKED), and starts empty (cold, with a log line) after a kill -9.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode, open } from '../lib/index';
import { lastJson, runNode, startNode, waitForOutput } from './helpers/child';
import { openMemoryDb, useDbCleanup } from './helpers/db';
import { tempDir } from './helpers/temp';

useDbCleanup();

const CHILD = path.join(__dirname, 'fixtures', 'memory-child.js');
const COUNT = 20_000;

interface Verify {
  startMode: string;
  startMs: number;
  objects: number;
  found: number;
  bad: number;
  error?: string;
}

describe('memory namespace restarts', () => {
  it('re-attaches warm in a new process with every record and TTL intact', async () => {
    const dir = tempDir();
    const written = await runNode(CHILD, [dir, 'write', String(COUNT)]);
    expect(written.code, written.stderr).toBe(0);
    const first = lastJson<Verify>((await runNode(CHILD, [dir, 'verify', String(COUNT)])).stdout);
    expect(first).toMatchObject({ startMode: 'warm', objects: COUNT, found: COUNT, bad: 0 });
    // And again: a warm start leaves the index clean for the next one.
    const second = lastJson<Verify>((await runNode(CHILD, [dir, 'verify', String(COUNT)])).stdout);
    expect(second).toMatchObject({ startMode: 'warm', found: COUNT, bad: 0 });
  });

  it('counts the re-attached records per partition, as cluster mode asks (both namespace kinds)', async () => {
    const dir = tempDir();
    const namespaces = [
      { name: 'cache', storage: { type: 'memory' as const, maxBytes: 16 << 20 } },
      { name: 'disk', storage: { type: 'device' as const, paths: ['disk.dat'], sizeBytes: 16 << 20 } },
    ];
    const first = await open({ dataDir: dir, namespaces, log: () => undefined });
    for (let i = 0; i < 500; i++) for (const ns of ['cache', 'disk']) await first.put({ ns, key: i }, { i });
    await first.close();
    const db = await open({ dataDir: dir, namespaces, log: () => undefined });
    try {
      for (const ns of ['cache', 'disk']) {
        expect(db.stats().namespaces[ns]!.startMode).toBe('warm');
        // Until this was recounted on start, a warm memory namespace reported zero everywhere.
        const counts = (db as unknown as { namespaces: Map<string, { partitionCounts(): Uint32Array }> }).namespaces.get(ns)!.partitionCounts();
        expect(counts.reduce((sum, count) => sum + count, 0)).toBe(500);
      }
    } finally {
      await db.close({ dropIndex: true });
    }
  });

  it('re-attaches warm after SIGTERM, which closes cleanly', async () => {
    const dir = tempDir();
    const child = startNode(CHILD, [dir, 'crash', '5000']);
    await waitForOutput(child, 'written');
    const exited = new Promise((resolve) => child.on('exit', resolve));
    child.kill('SIGTERM');
    await exited;
    const verify = lastJson<Verify>((await runNode(CHILD, [dir, 'verify', '5000'])).stdout);
    expect(verify).toMatchObject({ startMode: 'warm', found: 5000, bad: 0 });
  });

  it('starts empty and says why after kill -9, never trusting a possibly torn index', async () => {
    const dir = tempDir();
    const child = startNode(CHILD, [dir, 'crash', '5000']);
    await waitForOutput(child, 'written');
    const exited = new Promise((resolve) => child.on('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const result = await runNode(CHILD, [dir, 'verify', '5000']);
    expect(lastJson<Verify>(result.stdout)).toMatchObject({ startMode: 'cold', found: 0 });
    expect(result.stderr).toMatch(/not closed cleanly/);
  });

  it('refuses a second owner with LOCKED, from another process and from this one', async () => {
    const dir = tempDir();
    const holder = startNode(CHILD, [dir, 'hold']);
    await waitForOutput(holder, 'ready');
    const second = await runNode(CHILD, [dir, 'verify', '1']);
    expect(lastJson<{ error: string }>(second.stdout).error).toBe(ErrorCode.LOCKED);
    const exited = new Promise((resolve) => holder.on('exit', resolve));
    holder.kill('SIGTERM');
    await exited;
    const db = await openMemoryDb({}, { dataDir: dir });
    await expect(
      open({ dataDir: dir, namespaces: [{ name: 'cache', storage: { type: 'memory', maxBytes: 1 << 20 } }], log: () => undefined }),
    ).rejects.toMatchObject({ code: ErrorCode.LOCKED });
    await db.close();
  });

  it('frees its segments with close({ dropIndex: true }) so the next open is new', async () => {
    const dir = tempDir();
    const db = await openMemoryDb({}, { dataDir: dir });
    await db.put({ ns: 'cache', key: 1 }, { a: 1 });
    await db.close({ dropIndex: true });
    const again = await openMemoryDb({}, { dataDir: dir });
    expect(again.stats().namespaces.cache!.startMode).toBe('new');
    expect(await again.get({ ns: 'cache', key: 1 })).toBeUndefined();
  });

  it('keeps nothing in shared memory with sharedMemoryIndex: false', async () => {
    const dir = tempDir();
    const db = await openMemoryDb({}, { dataDir: dir, sharedMemoryIndex: false });
    await db.put({ ns: 'cache', key: 1 }, { a: 1 });
    await db.close();
    const again = await openMemoryDb({}, { dataDir: dir, sharedMemoryIndex: false });
    expect(again.stats().namespaces.cache!.startMode).toBe('new');
    expect(await again.get({ ns: 'cache', key: 1 })).toBeUndefined();
  });
});
