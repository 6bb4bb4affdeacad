/**
 * Writes apply in the order they were called, even when some must wait (docs/storage.md,
 * "Backpressure"): the write gate lets waiting writers through first come first served, and a
 * batchPut holds it across its native calls, so no write called after a batch overtakes it and
 * none called before it is overtaken. Checked on the gate itself, and through the public API
 * with puts, removes and batchPuts fired without awaiting, enough to fill the device's write
 * blocks in flight so that writers really wait.
 */
import { describe, expect, it } from 'vitest';
import { Db, open } from '../lib/index';
import type { NamespaceOptions } from '../lib/options';
import { WriteGate } from '../lib/storage/write-gate';
import { track, useDbCleanup } from './helpers/db';
import { seededFloats } from './helpers/random';
import { tempDir } from './helpers/temp';

useDbCleanup(['disk', 'cache']);

describe('the write gate', () => {
  it('lets waiting writers through in call order once the store has room', async () => {
    let full = true;
    const gate = new WriteGate(() => full);
    const order: number[] = [];
    const done = [0, 1, 2].map((n) => gate.run(() => order.push(n)));
    expect(order).toEqual([]);
    full = false;
    // A writer called now, while the others still wait, goes behind them.
    done.push(gate.run(() => order.push(3)));
    gate.wake();
    await Promise.all(done);
    expect(order).toEqual([0, 1, 2, 3]);
    expect(gate.enter()).toBeUndefined();
  });

  it('keeps every other writer out while a batch holds it, between its slices too', async () => {
    const gate = new WriteGate();
    const order: string[] = [];
    expect(gate.hold()).toBeUndefined();
    const later = gate.run(() => order.push('put'));
    order.push('slice 1');
    await gate.between();
    order.push('slice 2');
    gate.leave();
    await later;
    expect(order).toEqual(['slice 1', 'slice 2', 'put']);
  });
});

const NAMESPACES: NamespaceOptions[] = [
  { name: 'disk', maxRecordBytes: 64 << 10, storage: { type: 'device', paths: ['disk.dat'], sizeBytes: 256 << 20, writeBlockBytes: 128 << 10 } },
  { name: 'cache', storage: { type: 'memory', maxBytes: 256 << 20 } },
];

/** Fires puts, removes and batchPuts on 200 keys without awaiting any; returns each key's last write. */
async function fire(db: Db, ns: string, writes: number, seed: number): Promise<Map<number, number | undefined>> {
  const random = seededFloats(seed);
  const last = new Map<number, number | undefined>();
  const pending: Promise<unknown>[] = [];
  const pad = 'z'.repeat(2000);
  for (let i = 0; i < writes; i++) {
    const kind = random();
    if (kind < 0.002) {
      // A batch of several native calls: it holds the gate across event-loop turns.
      const entries = Array.from({ length: 6000 }, () => Math.floor(random() * 200)).map((key, j) => ({ key: { ns, key }, bins: { v: i * 100 + (j % 100) } }));
      for (const entry of entries) last.set(entry.key.key, entry.bins.v);
      // Replaced, not merged: the records stay small (a merge would keep the 2 KB pads).
      pending.push(db.batchPut(entries, { exists: 'createOrReplace' }));
    } else if (kind < 0.1) {
      const entries = Array.from({ length: 1 + Math.floor(random() * 50) }, () => Math.floor(random() * 200)).map((key, j) => ({ key: { ns, key }, bins: { v: i * 100 + j, pad } }));
      for (const entry of entries) last.set(entry.key.key, entry.bins.v);
      pending.push(db.batchPut(entries));
    } else if (kind < 0.2) {
      const key = Math.floor(random() * 200);
      last.set(key, undefined);
      pending.push(db.remove({ ns, key }));
    } else {
      const key = Math.floor(random() * 200);
      last.set(key, i * 100);
      pending.push(db.put({ ns, key }, { v: i * 100, pad }, { exists: 'createOrReplace' }));
    }
  }
  await Promise.all(pending);
  return last;
}

describe.each(['disk', 'cache'])('writes to a %s namespace', (ns) => {
  it('end with the value of the last write called, for every key', async () => {
    const db = track(await open({ dataDir: tempDir(), sharedMemoryIndex: false, namespaces: NAMESPACES, log: () => undefined }));
    const namespace = (db as unknown as { namespaces: Map<string, { gate?: WriteGate; store?: { gate: WriteGate } }> }).namespaces.get(ns)!;
    const gate = namespace.store?.gate ?? namespace.gate!;
    const last = await fire(db, ns, 10_000, 12);
    // Writers did wait: behind batches of several calls, and (device) for blocks to land.
    expect(gate.waited).toBeGreaterThan(0);
    for (const [key, value] of last) expect((await db.get({ ns, key }))?.bins.v, `key ${key}`).toBe(value);
  });
});
