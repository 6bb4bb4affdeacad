/**
 * The storage engine on its own (DeviceStore through the engine-level KvHarness): the write
 * path, reads from memory and from the device, cold start, tombstones, expiry, truncate,
 * defragmentation, capacity and locking.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KvHarness } from '../sim/kv-harness';
import type { DeviceStoreOptions } from '../lib/storage/device-store';

const dirs: string[] = [];
const open: KvHarness[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-storage-'));
  dirs.push(dir);
  return dir;
}

async function openStore(dir: string, extra: Partial<DeviceStoreOptions> = {}): Promise<KvHarness> {
  const harness = await KvHarness.open({
    namespace: 'test',
    dataDir: dir,
    paths: ['test.dat'],
    sizeBytes: 32 << 20,
    writeBlockBytes: 128 << 10,
    ...extra,
  });
  open.push(harness);
  return harness;
}

async function reopen(harness: KvHarness, dir: string, extra: Partial<DeviceStoreOptions> = {}): Promise<KvHarness> {
  await harness.close();
  return openStore(dir, extra);
}

function value(key: string, version: number, bytes = 100): Buffer {
  const text = `${key}:${version}:`;
  return Buffer.concat([Buffer.from(text), Buffer.alloc(Math.max(0, bytes - text.length), version % 251)]);
}

afterEach(async () => {
  for (const harness of open.splice(0)) await harness.close().catch(() => undefined);
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('storage engine', () => {
  it('writes, reads back from memory and from the device, and survives a reopen', async () => {
    const dir = tempDir();
    let store = await openStore(dir);
    expect(store.store.startMode).toBe('new');
    for (let index = 0; index < 3000; index++) store.put(`k${index}`, value(`k${index}`, 1));
    expect((await store.get('k5'))!.payload).toEqual(value('k5', 1));
    await store.store.flush();
    store.store.dropCache();
    expect((await store.get('k2999'))!.payload).toEqual(value('k2999', 1));
    expect((await store.get('k0'))!.payload).toEqual(value('k0', 1));
    store = await reopen(store, dir);
    expect(store.store.startMode).toBe('existing');
    expect(store.report!.records).toBe(3000);
    expect(store.report!.corrupt).toBe(0);
    for (const index of [0, 1, 1500, 2999]) expect((await store.get(`k${index}`))!.payload).toEqual(value(`k${index}`, 1));
  });

  it('keeps the newest version and never resurrects a removed record after a cold start', async () => {
    const dir = tempDir();
    let store = await openStore(dir);
    for (let version = 1; version <= 5; version++) {
      for (let index = 0; index < 200; index++) store.put(`k${index}`, value(`k${index}`, version));
      await store.store.flush();
    }
    for (let index = 0; index < 100; index++) await store.remove(`k${index}`, { durable: true }).done;
    store = await reopen(store, dir);
    expect(store.keys()).toBe(100);
    for (let index = 0; index < 200; index++) {
      const record = await store.get(`k${index}`);
      if (index < 100) expect(record).toBeUndefined();
      else expect(record!.payload).toEqual(value(`k${index}`, 5));
    }
    // A removed key written again comes back with the new value only.
    await store.put('k3', value('k3', 9), { durable: true });
    store = await reopen(store, dir);
    expect((await store.get('k3'))!.payload).toEqual(value('k3', 9));
    expect(await store.get('k4')).toBeUndefined();
  });

  it('a key removed and written again in the same millisecond comes back with the new value (regression)', async () => {
    const dir = tempDir();
    let store = await openStore(dir);
    const now = Date.now();
    store.put('r', value('r', 1), { lastUpdateMs: now });
    store.remove('r');
    // Generation restarts at 1 after a removal and the clock has not moved: only the write
    // order can tell that the put is newer than the tombstone.
    await store.put('r', value('r', 2), { lastUpdateMs: now, durable: true });
    store = await reopen(store, dir);
    expect((await store.get('r'))!.payload).toEqual(value('r', 2));
  });

  it('resolves a durable write only after the data is synced, sharing one sync among concurrent writes', async () => {
    const dir = tempDir();
    const store = await openStore(dir);
    const before = store.store.stats().commits;
    await Promise.all(Array.from({ length: 500 }, (_, index) => store.put(`d${index}`, value(`d${index}`, 1), { durable: true })));
    const commits = store.store.stats().commits - before;
    expect(commits).toBeGreaterThanOrEqual(1);
    expect(commits).toBeLessThan(10);
  });

  it('serves getSync from memory with dataInMemory, also after a cold start', async () => {
    const dir = tempDir();
    let store = await openStore(dir, { withPayload: true });
    store.put('a', value('a', 1));
    expect(store.getSync('a')).toEqual(value('a', 1));
    store = await reopen(store, dir, { withPayload: true });
    expect(store.getSync('a')).toEqual(value('a', 1));
  });

  it('does not bring back an older copy when the newest copy has expired', async () => {
    const dir = tempDir();
    let store = await openStore(dir);
    store.put('x', value('x', 1));
    await store.store.flush();
    const past = Math.floor(Date.now() / 1000) - 10;
    store.put('x', value('x', 2), { voidTime: past });
    store = await reopen(store, dir);
    expect(await store.get('x')).toBeUndefined();
    expect(store.report!.expired).toBe(1);
    expect(store.report!.shadows).toBe(1);
    // Churn so defrag runs over both blocks; the old copy must still stay hidden.
    for (let round = 0; round < 40; round++) {
      for (let index = 0; index < 300; index++) store.put(`c${index}`, value(`c${index}`, round, 300));
    }
    await store.store.flush();
    await store.store.defragNow();
    store = await reopen(store, dir);
    expect(await store.get('x')).toBeUndefined();
  });

  it('defragments blocks whose records were overwritten and reuses them', async () => {
    const dir = tempDir();
    let store = await openStore(dir, { sizeBytes: 8 << 20 });
    const total = store.store.stats().totalBlocks;
    // Far more bytes than the device holds, over a small key set: only defrag makes room.
    for (let round = 0; round < 60; round++) {
      for (let index = 0; index < 500; index++) store.put(`k${index}`, value(`k${index}`, round, 400));
      await store.store.flush();
      await store.store.defragNow();
    }
    const stats = store.store.stats();
    expect(stats.defragBlocks).toBeGreaterThan(total);
    expect(stats.freeBlocks).toBeGreaterThan(total / 2);
    for (const index of [0, 250, 499]) expect((await store.get(`k${index}`))!.payload).toEqual(value(`k${index}`, 59, 400));
    store = await reopen(store, dir, { sizeBytes: 8 << 20 });
    expect(store.keys()).toBe(500);
    for (const index of [0, 250, 499]) expect((await store.get(`k${index}`))!.payload).toEqual(value(`k${index}`, 59, 400));
  });

  it('collects tombstones once no older copy remains, and removed records stay removed', async () => {
    const dir = tempDir();
    let store = await openStore(dir, { sizeBytes: 8 << 20 });
    for (let index = 0; index < 300; index++) store.put(`t${index}`, value(`t${index}`, 1, 200));
    for (let index = 0; index < 300; index++) store.remove(`t${index}`);
    expect(store.store.stats().tombstones).toBe(300);
    for (let round = 0; round < 40; round++) {
      for (let index = 0; index < 300; index++) store.put(`o${index}`, value(`o${index}`, round, 400));
      await store.store.flush();
      await store.store.defragNow();
    }
    expect(store.store.stats().tombstones).toBeLessThan(300);
    store = await reopen(store, dir, { sizeBytes: 8 << 20 });
    for (let index = 0; index < 300; index += 7) expect(await store.get(`t${index}`)).toBeUndefined();
  });

  it('persists truncate markers: truncated records stay gone after a cold start', async () => {
    const dir = tempDir();
    let store = await openStore(dir);
    store.put('before', value('before', 1), { lastUpdateMs: 1000 });
    store.put('after', value('after', 1), { lastUpdateMs: 3000 });
    await store.store.truncate(undefined, 2000);
    store = await reopen(store, dir);
    expect(store.report!.truncated).toBe(1);
    expect(await store.get('before')).toBeUndefined();
    expect((await store.get('after'))!.payload).toEqual(value('after', 1));
  });

  it('a truncated newest copy keeps hiding an older copy with a later last-update time', async () => {
    const dir = tempDir();
    let store = await openStore(dir, { sizeBytes: 8 << 20 });
    store.put('t', value('t', 1), { lastUpdateMs: 5000 });
    for (let index = 0; index < 400; index++) store.put(`f${index}`, value(`f${index}`, 1, 400));  // seal that block
    store.put('t', value('t', 2), { lastUpdateMs: 3000 });  // written later (another block), older clock
    for (let index = 0; index < 400; index++) store.remove(`f${index}`);
    await store.store.truncate(undefined, 4000);
    store = await reopen(store, dir, { sizeBytes: 8 << 20 });
    expect(await store.get('t')).toBeUndefined();
    for (let round = 0; round < 30; round++) {
      for (let index = 0; index < 300; index++) store.put(`c${index}`, value(`c${index}`, round, 400));
      await store.store.flush();
      await store.store.defragNow();
    }
    store = await reopen(store, dir, { sizeBytes: 8 << 20 });
    expect(await store.get('t')).toBeUndefined();
  });

  it('stores records up to nearly a whole write block, read back with one aligned read', async () => {
    const dir = tempDir();
    let store = await openStore(dir, { writeBlockBytes: 1 << 20 });
    const sizes = [1, 4095, 4096, 4097, 300_000, (1 << 20) - 64 - 68 - 4];
    for (const [index, size] of sizes.entries()) store.put(`big${index}`, Buffer.alloc(size, index + 1));
    expect(() => store.put('too-big', Buffer.alloc((1 << 20) - 64 - 68 - 3))).toThrow(expect.objectContaining({ code: 'RECORD_TOO_BIG' }));
    await store.store.flush();
    store.store.dropCache();
    // Buffer#equals, not toEqual: a deep comparison of megabyte buffers takes seconds.
    for (const [index, size] of sizes.entries()) expect((await store.get(`big${index}`))!.payload.equals(Buffer.alloc(size, index + 1)), `big${index}`).toBe(true);
    store = await reopen(store, dir, { writeBlockBytes: 1 << 20 });
    for (const [index, size] of sizes.entries()) expect((await store.get(`big${index}`))!.payload.equals(Buffer.alloc(size, index + 1)), `big${index}`).toBe(true);
  });

  it('refuses writes with OUT_OF_SPACE before the device is full, keeping what is stored', async () => {
    const dir = tempDir();
    const store = await openStore(dir, { sizeBytes: 4 << 20 });
    let written = 0;
    let error: unknown;
    try {
      for (; written < 100000; written++) store.put(`f${written}`, value(`f${written}`, 1, 1000));
    } catch (caught) {
      error = caught;
    }
    expect((error as { code?: string }).code).toBe('OUT_OF_SPACE');
    expect(store.store.stats().freeBlocks).toBeGreaterThanOrEqual(2);
    await store.store.flush();
    expect((await store.get('f0'))!.payload).toEqual(value('f0', 1, 1000));
    expect((await store.get(`f${written - 1}`))!.payload).toEqual(value(`f${written - 1}`, 1, 1000));
  });

  it('spreads records over several devices and recovers them all', async () => {
    const dir = tempDir();
    const paths = ['d0.dat', 'd1.dat', 'd2.dat'];
    let store = await openStore(dir, { paths, sizeBytes: 8 << 20 });
    for (let round = 0; round < 8; round++) {
      for (let index = 0; index < 1500; index++) store.put(`m${index}`, value(`m${index}`, round, 300));
      await store.store.flush();
      await store.store.defragNow();
    }
    for (let index = 0; index < 1500; index += 3) store.remove(`m${index}`);
    store = await reopen(store, dir, { paths, sizeBytes: 8 << 20 });
    expect(store.keys()).toBe(1000);
    for (const index of [1, 2, 700, 1499]) expect((await store.get(`m${index}`))!.payload).toEqual(value(`m${index}`, 7, 300));
    expect(await store.get('m3')).toBeUndefined();
    // The devices belong together: opening them in another order is refused.
    await store.close();
    open.splice(open.indexOf(store), 1);
    await expect(openStore(dir, { paths: ['d1.dat', 'd0.dat', 'd2.dat'], sizeBytes: 8 << 20 })).rejects.toMatchObject({ code: 'CORRUPTION' });
  });

  it('rejects a second open of the same device with LOCKED', async () => {
    const dir = tempDir();
    await openStore(dir);
    await expect(openStore(dir)).rejects.toMatchObject({ code: 'LOCKED' });
  });

  it("directIo 'auto' falls back to buffered I/O where the file system refuses O_DIRECT; 'required' fails clearly", async () => {
    const dir = tempDir();
    const store = await openStore(dir, { directIo: 'auto', refuseDirectIo: true });
    expect(store.store.stats().directIo).toBe('off');
    await store.put('a', value('a', 1), { durable: true });
    await store.close();
    open.splice(open.indexOf(store), 1);
    await expect(openStore(dir, { directIo: 'required', refuseDirectIo: true })).rejects.toMatchObject({ code: 'IO_ERROR', message: expect.stringContaining('O_DIRECT') });
    const reopened = await openStore(dir, { directIo: 'required' });
    expect(reopened.store.stats().directIo).toBe('on');
    expect((await reopened.get('a'))!.payload).toEqual(value('a', 1));
  });

  it('reports the direct I/O mode and capacity', async () => {
    const dir = tempDir();
    const store = await openStore(dir, { directIo: 'off' });
    expect(store.store.stats().directIo).toBe('off');
    const stats = store.store.stats();
    expect(stats.deviceFreePct).toBe(100);
    store.put('a', value('a', 1));
    expect(store.store.stats().deviceUsedBytes).toBeGreaterThan(100);
  });
});
