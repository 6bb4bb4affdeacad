/**
 * Bounded memory under sustained writes (docs/storage.md, "Backpressure"): however much a
 * tight loop writes to a device namespace, at most WRITE_BLOCKS_IN_FLIGHT_MAX sealed write
 * blocks per device wait for their writes to land; a write that would pass the bound waits
 * until one lands. Each loop runs in a child process of its own, so its memory is measured
 * alone: the peak RSS and external memory (JS buffers) during the loop, not time.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { open } from '../lib/index';
import { WRITE_BLOCKS_IN_FLIGHT_MAX } from '../lib/storage/constants';
import { KvHarness } from '../sim/kv-harness';
import { lastJson, runNode } from './helpers/child';
import { track, useDbCleanup } from './helpers/db';
import { tempDir } from './helpers/temp';

useDbCleanup(['disk']);

const CHILD = path.join(__dirname, 'fixtures', 'write-loop-child.js');
const MB = 1e6;

interface LoopReport {
  records: number;
  ms: number;
  baseRssBytes: number;
  peakRssBytes: number;
  peakExternalBytes: number;
  inFlightMax: number;
  error?: string;
  message?: string;
}

async function writeLoop(mode: string, megabytes: number): Promise<LoopReport> {
  const result = await runNode(CHILD, [tempDir(), mode, String(megabytes)], 120_000);
  const report = lastJson<LoopReport>(result.stdout);
  expect(report.error, `${report.message ?? ''} ${result.stderr}`).toBeUndefined();
  return report;
}

describe('write backpressure', () => {
  it('a tight loop of awaited puts (1,000 in flight) writing 300 MB keeps memory flat', async () => {
    const report = await writeLoop('put', 300);
    // Today's bound: 8 blocks of 1 MiB in flight (plus their aligned copies), the 32-block
    // post-write cache, the index of 270k records and the JS heap. Before backpressure every
    // block stayed referenced until the loop ended: 400 MB took 830 MB of RSS and 815 MB of buffers.
    expect(report.peakExternalBytes / MB).toBeLessThan(120);
    expect((report.peakRssBytes - report.baseRssBytes) / MB).toBeLessThan(250);
    expect(report.inFlightMax).toBeLessThanOrEqual(WRITE_BLOCKS_IN_FLIGHT_MAX);
  });

  it.each(['batchPut', 'operate', 'remove'])('so does a tight loop of %s', async (mode) => {
    const report = await writeLoop(mode, 150);
    expect(report.peakExternalBytes / MB).toBeLessThan(120);
    expect((report.peakRssBytes - report.baseRssBytes) / MB).toBeLessThan(250);
    // A batch call may seal the blocks its 4 MiB of records fill before the gate is asked again.
    expect(report.inFlightMax).toBeLessThanOrEqual(WRITE_BLOCKS_IN_FLIGHT_MAX + 5);
  });

  it('serves reads after a load from the device, not from blocks kept beyond the post-write cache', async () => {
    const dir = tempDir();
    const harness = await KvHarness.open({ namespace: 'bp', dataDir: dir, paths: ['bp.dat'], sizeBytes: 64 << 20, writeBlockBytes: 128 << 10, faults: true, postWriteCacheBlocks: 4 });
    try {
      const value = Buffer.alloc(1000, 7);
      // Never yields to the event loop unless a put must wait for room: the loop the issue describes.
      for (let i = 0; i < 20_000; i++) {
        const room = harness.store.gate.enter();
        if (room !== undefined) await room;
        harness.put(`k${i}`, value);
      }
      expect(harness.store.stats().writeBlocksInMemory).toBeLessThanOrEqual(4 + WRITE_BLOCKS_IN_FLIGHT_MAX + 1);
      const device = harness.store.faultDevices()[0]!;
      const readsBefore = device.fault('counts').reads;
      for (let i = 0; i < 100; i++) expect((await harness.get(`k${i}`))!.payload).toEqual(value);
      expect(device.fault('counts').reads - readsBefore).toBe(100);
    } finally {
      await harness.close();
    }
  });

  it('defragmentation waits for room like any writer', async () => {
    const dir = tempDir();
    const db = track(
      await open({
        dataDir: dir,
        sharedMemoryIndex: false,
        namespaces: [{ name: 'disk', maxRecordBytes: 64 << 10, storage: { type: 'device', paths: ['disk.dat'], sizeBytes: 64 << 20, writeBlockBytes: 128 << 10 } }],
        log: () => undefined,
      }),
    );
    const store = (db as unknown as { namespaces: Map<string, { store: { store: { stats(): { writeBlocksInFlight: number; defragBlocks: number }; defragNow(): Promise<void> } } }> }).namespaces.get('disk')!.store.store;
    const pad = 'y'.repeat(1000);
    for (let i = 0; i < 40_000; i++) await db.put({ ns: 'disk', key: i }, { pad });
    // Remove three of every four records: most blocks fall below the defrag watermark.
    for (let i = 0; i < 40_000; i++) if (i % 4 !== 0) await db.remove({ ns: 'disk', key: i });
    let inFlightMax = 0;
    const sampler = setInterval(() => (inFlightMax = Math.max(inFlightMax, store.stats().writeBlocksInFlight)), 1);
    try {
      await store.defragNow();
    } finally {
      clearInterval(sampler);
    }
    expect(store.stats().defragBlocks).toBeGreaterThan(10);
    expect(inFlightMax).toBeLessThanOrEqual(WRITE_BLOCKS_IN_FLIGHT_MAX + 4);
    for (let i = 0; i < 40_000; i += 400) expect((await db.get({ ns: 'disk', key: i }))?.bins.pad).toBe(pad);
  });
});
