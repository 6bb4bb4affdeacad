/**
 * Fault tests through the fault-injecting I/O backend: EIO on a write or a sync is reported as
 * IO_ERROR, never acknowledged, and latches the store; a torn last block and flipped bits are
 * detected by the record checksum and never served; writes never synced are lost on "power
 * loss" but durable ones are not. The fault loops move the failure point one I/O at a time.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KvHarness, digestOf } from '../sim/kv-harness';
import type { DeviceStoreOptions } from '../lib/storage/device-store';

const dirs: string[] = [];
const open: KvHarness[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-faults-'));
  dirs.push(dir);
  return dir;
}

async function openStore(dir: string, extra: Partial<DeviceStoreOptions> = {}): Promise<KvHarness> {
  const harness = await KvHarness.open({ namespace: 'faults', dataDir: dir, paths: ['faults.dat'], sizeBytes: 8 << 20, writeBlockBytes: 128 << 10, ...extra });
  open.push(harness);
  return harness;
}

function value(key: string, version: number, bytes = 300): Buffer {
  const text = `${key}:${version}:`;
  return Buffer.concat([Buffer.from(text), Buffer.alloc(bytes - text.length, version % 251)]);
}

afterEach(async () => {
  for (const harness of open.splice(0)) await harness.close().catch(() => undefined);
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('storage faults', () => {
  it('EIO on a write: the durable put rejects with IO_ERROR and later writes are refused', async () => {
    const dir = tempDir();
    const store = await openStore(dir, { faults: true });
    await store.put('ok', value('ok', 1), { durable: true });
    store.store.injectFaults({ failWriteIn: 1 });
    await expect(store.put('bad', value('bad', 1), { durable: true })).rejects.toMatchObject({ code: 'IO_ERROR' });
    expect(() => store.put('after', value('after', 1))).toThrow(expect.objectContaining({ code: 'IO_ERROR' }));
    expect(store.store.stats().failed).toBe(true);
    await store.close();
    const reopened = await openStore(dir);
    expect(await reopened.get('bad')).toBeUndefined();
    expect((await reopened.get('ok'))!.payload).toEqual(value('ok', 1));
  });

  it('EIO on fdatasync: the durable put rejects with IO_ERROR', async () => {
    const dir = tempDir();
    const store = await openStore(dir, { faults: true });
    store.store.injectFaults({ failSyncIn: 1 });
    await expect(store.put('bad', value('bad', 1), { durable: true })).rejects.toMatchObject({ code: 'IO_ERROR' });
  });

  it('a flipped bit in a record is detected on read (CORRUPTION) and skipped by cold start', async () => {
    const dir = tempDir();
    let store = await openStore(dir, { faults: true });
    // Enough records to seal the first block, so k7 is read from the device, not the open block.
    for (let index = 0; index < 500; index++) store.put(`k${index}`, value(`k${index}`, 1));
    await store.store.flush();
    store.store.dropCache();
    const entry = store.index.entries.get(digestOf('k7').toString('latin1'))!;
    const where = store.store.deviceOffsetOf(entry.low, entry.high);
    store.store.faultDevices()[0]!.fault('flip', where.offset + 100, 3);
    await expect(store.get('k7')).rejects.toMatchObject({ code: 'CORRUPTION' });
    expect((await store.get('k8'))!.payload).toEqual(value('k8', 1));
    await store.close();
    open.splice(open.indexOf(store), 1);
    // The same damage on the medium: cold start counts it and never serves it.
    const file = path.join(dir, 'faults.dat');
    const handle = fs.openSync(file, 'r+');
    const byte = Buffer.alloc(1);
    fs.readSync(handle, byte, 0, 1, where.offset + 100);
    byte[0]! ^= 8;
    fs.writeSync(handle, byte, 0, 1, where.offset + 100);
    fs.closeSync(handle);
    store = await openStore(dir);
    expect(store.report!.corrupt).toBe(1);
    expect(await store.get('k7')).toBeUndefined();
    expect((await store.get('k6'))!.payload).toEqual(value('k6', 1));
    expect(store.keys()).toBe(499);
  });

  it('a torn last block keeps every durable record before the tear and serves nothing torn', async () => {
    const dir = tempDir();
    let store = await openStore(dir, { faults: true });
    for (let index = 0; index < 20; index++) await store.put(`d${index}`, value(`d${index}`, 1), { durable: true });
    for (let index = 0; index < 40; index++) store.put(`n${index}`, value(`n${index}`, 1));
    // The next write (the partial block) reaches the medium only up to 5000 bytes, then power is lost.
    store.store.injectFaults({ tearWriteIn: 1, tearKeepBytes: 5000 });
    await expect(store.put('last', value('last', 1), { durable: true })).rejects.toMatchObject({ code: 'IO_ERROR' });
    await store.close().catch(() => undefined);
    open.splice(open.indexOf(store), 1);
    store = await openStore(dir);
    for (let index = 0; index < 20; index++) expect((await store.get(`d${index}`))!.payload).toEqual(value(`d${index}`, 1));
    let served = 0;
    for (let index = 0; index < 40; index++) {
      const record = await store.get(`n${index}`);
      if (record !== undefined) {
        expect(record.payload).toEqual(value(`n${index}`, 1));
        served++;
      }
    }
    expect(served).toBeLessThan(40);
  });

  it('power loss drops writes that were never synced but keeps durable ones', async () => {
    const dir = tempDir();
    let store = await openStore(dir, { faults: true, flushMaxMs: 5 });
    store.store.injectFaults({ holdUnsynced: true });
    await store.put('durable', value('durable', 1), { durable: true });
    store.put('volatile', value('volatile', 1));
    await new Promise((resolve) => setTimeout(resolve, 30));  // flushed (written) but not synced
    store.store.faultDevices()[0]!.fault('die');
    await store.close().catch(() => undefined);
    open.splice(open.indexOf(store), 1);
    store = await openStore(dir);
    expect((await store.get('durable'))!.payload).toEqual(value('durable', 1));
    expect(await store.get('volatile')).toBeUndefined();
  });

  it('fault loop: whichever write fails or tears, every acknowledged durable write survives', async () => {
    for (let failAt = 1; failAt <= 14; failAt++) {
      const dir = tempDir();
      let store = await openStore(dir, { faults: true });
      const tear = failAt % 2 === 0;
      store.store.injectFaults(tear ? { tearWriteIn: failAt, tearKeepBytes: 700 * failAt, holdUnsynced: true } : { failWriteIn: failAt, holdUnsynced: true });
      const acknowledged: string[] = [];
      for (let round = 0; round < 12; round++) {
        const batch = Array.from({ length: 40 }, (_, index) => `r${round}-${index}`);
        const results = await Promise.allSettled(batch.map((key) => {
          try {
            return store.put(key, value(key, round), { durable: true }) ?? Promise.resolve();
          } catch (error) {
            return Promise.reject(error);
          }
        }));
        results.forEach((result, index) => {
          if (result.status === 'fulfilled') acknowledged.push(batch[index]!);
          else expect((result.reason as { code?: string }).code).toBe('IO_ERROR');
        });
      }
      await store.close().catch(() => undefined);
      open.splice(open.indexOf(store), 1);
      store = await openStore(dir);
      for (const key of acknowledged) {
        const round = Number(key.slice(1, key.indexOf('-')));
        expect((await store.get(key))?.payload, `failAt ${failAt}: ${key}`).toEqual(value(key, round));
      }
      await store.close();
      open.splice(open.indexOf(store), 1);
    }
  });
});
