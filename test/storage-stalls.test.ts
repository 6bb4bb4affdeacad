/**
 * No call holds the event loop for long (docs/storage.md, "No long stalls"): on one node, a
 * batchPut of 100,000 entries, a cold start, defragmentation, a truncate and a close each
 * give the event loop a turn at least every STALL_MAX_MS of JS-thread CPU time. The probe
 * counts the JS thread's own CPU time between turns (test/helpers/stall-probe.ts), so a busy
 * machine does not make the figures worse; the wall-clock gaps are printed beside them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Db, open } from '../lib/index';
import type { NamespaceOptions } from '../lib/options';
import { useDbCleanup } from './helpers/db';
import { probeStalls, type StallReport } from './helpers/stall-probe';
import { tempDir } from './helpers/temp';

useDbCleanup(['disk']);

/** The figure is about 50 ms; GC pauses of the test's own heap come on top. */
const STALL_MAX_MS = 50;
const RECORDS = 210_000;
const NAMESPACES: NamespaceOptions[] = [{ name: 'disk', storage: { type: 'device', paths: ['disk.dat'], sizeBytes: 256 << 20 } }];

let dir = '';
let db: Db;

/** The tests share one Db, closed after the last (the cleanup hooks would close it after each). */
async function reopen(): Promise<Db> {
  db = await open({ dataDir: dir, sharedMemoryIndex: false, namespaces: NAMESPACES, log: () => undefined });
  return db;
}

function expectShort(what: string, stalls: StallReport): void {
  process.stdout.write(`${what}: longest JS-thread run ${stalls.cpuGapMs.toFixed(1)} ms CPU (${stalls.gcInGapMs.toFixed(1)} ms of it GC), longest wall gap ${stalls.wallGapMs.toFixed(1)} ms\n`);
  expect(stalls.cpuGapMs, what).toBeLessThan(STALL_MAX_MS);
}

function entries(from: number, count: number): { key: { ns: string; key: number }; bins: { i: number; pad: string } }[] {
  return Array.from({ length: count }, (_, j) => ({ key: { ns: 'disk', key: from + j }, bins: { i: from + j, pad: 'x'.repeat(100) } }));
}

describe('no long stalls on one node', () => {
  beforeAll(async () => {
    dir = tempDir();
    await reopen();
  });
  afterAll(async () => {
    await db.close({ dropIndex: true }).catch(() => undefined);
  });

  it('batchPut of 100,000 entries', async () => {
    // Warm: the first calls run unoptimized code (vitest compiles the sources on the fly).
    for (let from = 100_000; from < 140_000; from += 10_000) await db.batchPut(entries(from, 10_000));
    const batch = entries(0, 100_000);
    const { result, stalls } = await probeStalls(() => db.batchPut(batch));
    // The rest of the records first: the later tests share this Db, so a failure here must not leave it short.
    for (let from = 140_000; from < RECORDS; from += 10_000) await db.batchPut(entries(from, 10_000));
    expect(result.filter((outcome) => outcome instanceof Error)).toEqual([]);
    expectShort('batchPut of 100,000', stalls);
  });

  it('close and cold start', async () => {
    expectShort('close', (await probeStalls(() => db.close())).stalls);
    const { stalls } = await probeStalls(() => reopen());
    expect(db.stats().namespaces.disk!.objects).toBe(RECORDS);
    expectShort('cold start', stalls);
  });

  it('defragmentation, and a close that saves many tombstones', async () => {
    for (let i = 0; i < RECORDS; i++) if (i % 3 !== 0) await db.remove({ ns: 'disk', key: i });
    const store = (db as unknown as { namespaces: Map<string, { store: { store: { defragNow(): Promise<void>; stats(): { defragBlocks: number } } } }> }).namespaces.get('disk')!.store.store;
    expectShort('defragmentation', (await probeStalls(() => store.defragNow())).stalls);
    expect(store.stats().defragBlocks).toBeGreaterThan(10);
    expectShort('close with tombstones', (await probeStalls(() => db.close())).stalls);
    await reopen();
    expect(db.stats().namespaces.disk!.objects).toBe(RECORDS / 3);
  });

  it('truncate', async () => {
    for (let from = 0; from < RECORDS; from += 10_000) await db.batchPut(entries(from, 10_000));
    const { result, stalls } = await probeStalls(() => db.truncate('disk'));
    expect(result).toBe(RECORDS);
    expectShort('truncate', stalls);
  });
});
