/**
 * The device namespace (lib/namespace/record-core.ts over device-records.ts) on the storage engine and the
 * native index: operation semantics, per-record atomicity across device reads, warm and cold
 * restarts, durable removes and truncates, scans and stats.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { indexVisits, openDeviceNamespace } from '../lib/namespace/device-records';
import type { RecordCore } from '../lib/namespace/record-core';
import type { ColdStartReport } from '../lib/storage/device-store';
import { resolveOptions } from '../lib/options';
import { addon } from '../lib/native/addon';
import { segmentBaseName } from '../lib/namespace/index-segments';

const dirs: string[] = [];
const open: RecordCore[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-devns-'));
  dirs.push(dir);
  return dir;
}

async function openNamespace(dir: string, storage: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<RecordCore> {
  const config = resolveOptions({
    dataDir: dir,
    namespaces: [{ name: 'users', storage: { type: 'device', paths: ['users.dat'], sizeBytes: 32 << 20, writeBlockBytes: 128 << 10, ...storage }, maxRecordBytes: 64 << 10, ...extra }],
  });
  const namespace = await openDeviceNamespace(config.namespaces[0]!, config, () => undefined);
  open.push(namespace);
  return namespace;
}

async function reopen(namespace: RecordCore, dir: string, dropIndex = false, storage: Record<string, unknown> = {}): Promise<RecordCore> {
  await namespace.close(dropIndex);
  open.splice(open.indexOf(namespace), 1);
  return openNamespace(dir, storage);
}

/** The DeviceStore behind a device namespace's records (record-core.ts `store`, device-records.ts `store`). */
function deviceStoreOf(ns: RecordCore): { flush(): Promise<void>; dropCache(): void; recount(visit: unknown): void; stats(): { deviceUsedBytes: number } } {
  return (ns as unknown as { store: { store: ReturnType<typeof deviceStoreOf> } }).store.store;
}

const key = (k: string | number, set = 'profiles') => ({ ns: 'users', set, key: k });

afterEach(async () => {
  for (const namespace of open.splice(0)) await namespace.close(true).catch(() => undefined);
  for (const dir of dirs.splice(0)) {
    addon().unlinkIndexSegments(segmentBaseName(dir, 'users'));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe('device namespace', () => {
  it('puts, merges, reads, touches, operates and removes', async () => {
    const dir = tempDir();
    const ns = await openNamespace(dir);
    expect(ns.startMode).toBe('new');
    expect(await ns.put(key('u1'), { name: 'Ada', visits: 1 }, undefined)).toEqual({ gen: 1, ttl: -1 });
    await ns.put(key('u1'), { visits: 2 }, undefined);
    expect(await ns.get(key('u1'), undefined)).toMatchObject({ bins: { name: 'Ada', visits: 2 }, gen: 2 });
    expect((await ns.touch(key('u1'), 100)).gen).toBe(3);
    const operated = await ns.operate(key('u1'), [{ op: 'incr', bin: 'visits', value: 5 }, { op: 'read', bin: 'visits' }] as never, undefined);
    expect(operated.bins).toEqual({ visits: 7 });
    expect(ns.exists(key('u1'))).toBe(true);
    expect(await ns.remove(key('u1'), { durable: true })).toBe(true);
    expect(await ns.get(key('u1'), undefined)).toBeUndefined();
    expect(() => ns.getSync(key('u1'), undefined)).toThrow(/dataInMemory/);
  });

  it('keeps one record atomic while its payload is read from the device', async () => {
    const dir = tempDir();
    const ns = await openNamespace(dir);
    await ns.put(key('hot'), { start: 0 }, undefined);
    deviceStoreOf(ns).dropCache();
    await deviceStoreOf(ns).flush();
    // Push the record's block out of memory so each merge reads the device.
    for (let i = 0; i < 3000; i++) await ns.put(key(`filler${i}`), { pad: 'x'.repeat(1000) }, undefined);
    deviceStoreOf(ns).dropCache();
    await Promise.all(Array.from({ length: 40 }, (_, i) => ns.put(key('hot'), { [`b${i}`]: i }, undefined)));
    const record = await ns.get(key('hot'), undefined);
    expect(Object.keys(record!.bins)).toHaveLength(41);
    expect(record!.gen).toBe(41);
  });

  it('restarts warm after a clean close and cold when the index is gone, with the same records', async () => {
    const dir = tempDir();
    let ns = await openNamespace(dir);
    for (let i = 0; i < 2000; i++) ns.put(key(i), { i, text: `value ${i}` }, { storeKey: true });
    ns.remove(key(5), undefined);
    ns = await reopen(ns, dir);
    expect(ns.startMode).toBe('warm');
    expect(ns.stats().objects).toBe(1999);
    expect(await ns.get(key(1999), undefined)).toMatchObject({ bins: { i: 1999, text: 'value 1999' } });
    ns = await reopen(ns, dir, true);
    expect(ns.startMode).toBe('cold');
    expect(ns.stats().objects).toBe(1999);
    expect((ns.stats().coldStart as ColdStartReport).records).toBe(1999);
    expect(await ns.get(key(5), undefined)).toBeUndefined();
    expect(await ns.get(key(77), undefined)).toMatchObject({ bins: { i: 77 } });
    const scanned = [];
    for await (const record of ns.scan('profiles', undefined)) scanned.push(record);
    expect(scanned).toHaveLength(1999);
    expect(scanned.every((record) => typeof record.key.key === 'number')).toBe(true);
  });

  it('restarts warm without visiting the index: live bytes per block come from the state file', async () => {
    const dir = tempDir();
    let ns = await openNamespace(dir);
    for (let i = 0; i < 3000; i++) ns.put(key(i), { i, pad: 'p'.repeat(i % 300) }, undefined);
    for (let i = 0; i < 3000; i += 3) ns.put(key(i), { i, again: true }, undefined);
    for (let i = 1; i < 3000; i += 7) ns.remove(key(i), undefined);
    await deviceStoreOf(ns).flush();
    const before = ns.stats();
    const visits = indexVisits.count;
    ns = await reopen(ns, dir);
    expect(ns.startMode).toBe('warm');
    expect(indexVisits.count).toBe(visits);
    const after = ns.stats();
    expect(after.objects).toBe(before.objects);
    expect(after.deviceUsedBytes).toBe(before.deviceUsedBytes);
    // The persisted counts are what a full recount from the index finds.
    const records = (ns as unknown as { store: { visitLocations(take: unknown): void } }).store;
    deviceStoreOf(ns).recount((take: unknown) => records.visitLocations(take));
    expect(deviceStoreOf(ns).stats().deviceUsedBytes).toBe(after.deviceUsedBytes);
    expect(await ns.get(key(2999), undefined)).toMatchObject({ bins: { i: 2999 } });
    expect(await ns.get(key(8), undefined)).toBeUndefined();
  });

  it('restarts cold when the storage state file is damaged, never warm from bad counts', async () => {
    const dir = tempDir();
    let ns = await openNamespace(dir);
    for (let i = 0; i < 500; i++) ns.put(key(i), { i }, undefined);
    await ns.close(false);
    open.splice(open.indexOf(ns), 1);
    const stateFile = path.join(dir, 'users.device-state');
    const bytes = fs.readFileSync(stateFile);
    bytes[bytes.length - 40] ^= 0x01;  // inside the live-bytes table or the tombstones
    fs.writeFileSync(stateFile, bytes);
    ns = await openNamespace(dir);
    // Not warm: the index checkpoint of the close is loaded instead (it does not use the state file).
    expect(ns.startMode).toBe('recovered');
    expect(ns.stats().objects).toBe(500);
  });

  it('serves getSync from memory with dataInMemory, after a cold start too', async () => {
    const dir = tempDir();
    let ns = await openNamespace(dir, { dataInMemory: true });
    await ns.put(key('m'), { a: 1 }, { durable: true });
    expect(ns.getSync(key('m'), undefined)).toMatchObject({ bins: { a: 1 } });
    ns = await reopen(ns, dir, true, { dataInMemory: true });
    expect(ns.startMode).toBe('cold');
    expect(ns.getSync(key('m'), undefined)).toMatchObject({ bins: { a: 1 } });
  });

  it('truncates durably: truncated records stay gone after a cold start', async () => {
    const dir = tempDir();
    let ns = await openNamespace(dir);
    for (let i = 0; i < 100; i++) ns.put(key(i, 'a'), { i }, undefined);
    for (let i = 0; i < 100; i++) ns.put(key(i, 'b'), { i }, undefined);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await ns.truncate('a', Date.now())).toBe(100);
    ns = await reopen(ns, dir, true);
    expect(ns.stats().objects).toBe(100);
    expect(await ns.get(key(3, 'a'), undefined)).toBeUndefined();
    expect(await ns.get(key(3, 'b'), undefined)).toMatchObject({ bins: { i: 3 } });
  });

  it('computes the right digest after writing a record of another set by digest (regression)', async () => {
    const dir = tempDir();
    const ns = await openNamespace(dir);
    await ns.put(key('z', 'b'), { v: 2 }, undefined);
    await ns.put(key('x', 'a'), { v: 1 }, undefined);
    const digestZ = addon().ripemd160(Buffer.concat([Buffer.from('b'), Buffer.from([3]), Buffer.from('z')]));
    // A digest-addressed write of a set-b record leaves set b in the exchange...
    await ns.put({ ns: 'users', set: 'b', digest: digestZ }, { v: 3 }, undefined);
    // ...which must not leak into the digest of the next set-a key.
    await ns.put(key('y', 'a'), { v: 4 }, undefined);
    const digestY = addon().ripemd160(Buffer.concat([Buffer.from('a'), Buffer.from([3]), Buffer.from('y')]));
    expect(await ns.get({ ns: 'users', set: 'a', digest: digestY }, undefined)).toMatchObject({ bins: { v: 4 } });
  });

  it('expires records in the background sweep and evicts soonest-expiring ones above the device high-water mark', async () => {
    const dir = tempDir();
    const ns = await openNamespace(dir, { sizeBytes: 4 << 20 }, { nsupPeriodSeconds: 1, evict: { policy: 'ttl', highWaterPct: 40 } });
    for (let i = 0; i < 200; i++) await ns.put(key(`short${i}`), { pad: 'x'.repeat(100) }, { ttl: 1 });
    const before = ns.stats().deviceUsedBytes;
    // Enough long-lived records to pass 40% of the device: the sweep evicts some of them.
    for (let i = 0; i < 4500; i++) await ns.put(key(`long${i}`), { pad: 'y'.repeat(300) }, { ttl: 100_000 + i });
    expect(ns.stats().deviceUsedBytes).toBeGreaterThan(before);
    await new Promise((resolve) => setTimeout(resolve, 2600));
    const stats = ns.stats();
    expect(stats.expired).toBeGreaterThanOrEqual(200);
    expect(stats.evicted).toBeGreaterThan(0);
    expect(await ns.get(key('short5'), undefined)).toBeUndefined();
    // Soonest-expiring first: the earliest long-lived keys went, the last ones stayed.
    expect(await ns.get(key('long4499'), undefined)).toBeDefined();
  }, 20_000);

  it('a durable remove of an absent record waits until an earlier remove is on the device (regression)', async () => {
    const dir = tempDir();
    const ns = await openNamespace(dir);
    await ns.put(key('gone'), { a: 1 }, { durable: true });
    expect(await ns.remove(key('gone'), undefined)).toBe(true);  // its tombstone is not synced yet
    const store = (ns as unknown as { store: { stats(): { commits: number } } }).store;
    const commits = store.stats().commits;
    expect(await ns.remove(key('gone'), { durable: true })).toBe(false);
    expect(store.stats().commits).toBeGreaterThan(commits);
  });

  it('reports device stats', async () => {
    const dir = tempDir();
    const ns = await openNamespace(dir);
    await ns.put(key('s'), { a: 'b' }, undefined);
    const stats = ns.stats();
    expect(stats.deviceUsedBytes).toBeGreaterThan(0);
    expect(stats.deviceFreePct).toBeGreaterThan(90);
    expect(['on', 'off']).toContain(stats.directIo);
    expect(stats.defragPending).toBe(0);
  });

  it('refuses a second open of the same namespace with LOCKED', async () => {
    const dir = tempDir();
    await openNamespace(dir);
    await expect(openNamespace(dir)).rejects.toMatchObject({ code: 'LOCKED' });
  });
});
