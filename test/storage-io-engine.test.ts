/**
 * The two I/O engines of a device (docs/native-boundary.md, "I/O engines"): the thread pool
 * (the default) and io_uring for reads (asked for, used when the kernel allows it). The same writes (with sync), raw reads and
 * verified record reads, including a corrupt record (EBADMSG, served as CORRUPTION), give the
 * same results through both; the engine in use is reported; fault injection always uses the
 * thread pool; and closing a device with reads in flight settles them, and a process that
 * leaves reads in flight or closes under them exits cleanly. Where io_uring is refused (a
 * seccomp filter, an old kernel) the io_uring half is skipped with the reason printed.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { addon, addonPath } from '../lib/native/addon';
import { KvHarness, digestOf } from '../sim/kv-harness';
import { NativeDevice, type IoEngineMode } from '../lib/storage/native-device';
import { open } from '../lib/index';
import { seededBytes } from './helpers/random';

const dirs: string[] = [];
const openDevices: NativeDevice[] = [];
const openStores: KvHarness[] = [];

afterEach(async () => {
  for (const device of openDevices.splice(0)) device.close();
  for (const store of openStores.splice(0)) await store.close().catch(() => undefined);
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-io-engine-'));
  dirs.push(dir);
  return dir;
}

function openDevice(dir: string, ioEngine: IoEngineMode, extra: { faults?: boolean; create?: boolean } = {}): NativeDevice {
  const device = new NativeDevice({ path: path.join(dir, 'device.dat'), sizeBytes: 16 << 20, create: extra.create ?? true, directIo: 'auto', ioEngine, faults: extra.faults });
  openDevices.push(device);
  return device;
}

/** Whether io_uring is usable here; if not, the reason (printed, and the io_uring half skipped). */
const ioUring: { available: boolean; reason: string } = (() => {
  const dir = tempDir();
  const device = new NativeDevice({ path: path.join(dir, 'probe.dat'), sizeBytes: 1 << 20, create: true, directIo: 'auto', ioEngine: 'io_uring' });
  const info = device.native.info();
  device.close();
  fs.rmSync(dir, { recursive: true, force: true });
  dirs.splice(dirs.indexOf(dir), 1);
  if (info.ioEngine === 'io_uring') return { available: true, reason: '' };
  return { available: false, reason: `io_uring refused (errno ${info.ioUringErrno})` };
})();
if (!ioUring.available) console.log(`storage-io-engine: io_uring half skipped: ${ioUring.reason}`);


/**
 * Writes 48 blocks of 1..40 KiB (some with syncAfter, then a sync), then reads 600 random
 * unaligned ranges with 64 in flight; returns every read's bytes in order, and the bytes the
 * writes should have left, for comparison.
 */
async function writeThenRead(device: NativeDevice): Promise<{ reads: Buffer[]; expected: Buffer }> {
  const image = Buffer.alloc(4 << 20);
  const writes: Promise<void>[] = [];
  for (let round = 0; round < 48; round++) {
    const offset = ((round * 37) % 900) * 4096;
    const data = seededBytes(1 + ((round * 7919) % (40 << 10)), round + 1);
    data.copy(image, offset);
    image.fill(0, offset + data.length, offset + Math.ceil(data.length / 4096) * 4096);  // the write zero-pads its last page
    writes.push(device.write(offset, data, 0, data.length, round % 5 === 0, round % 2 === 0));
    if (round % 8 === 7) await Promise.all(writes.splice(0));  // later rounds overwrite earlier ones: keep their order
  }
  await Promise.all(writes);
  await device.sync();
  const reads: Buffer[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < 600) {
        const index = next++;
        const offset = (index * 104_729) % ((4 << 20) - 70_000);
        const length = 1 + ((index * 7_919) % 65_536);
        reads[index] = await device.read(offset, length);
      }
    }),
  );
  return { reads, expected: image };
}

const engines: { name: string; mode: IoEngineMode; expect: 'io_uring' | 'threads'; skip: boolean }[] = [
  { name: 'io_uring', mode: 'io_uring', expect: 'io_uring', skip: !ioUring.available },
  { name: 'threads', mode: 'threads', expect: 'threads', skip: false },
];

describe('NativeDevice through each I/O engine', () => {
  for (const engine of engines) {
    it.skipIf(engine.skip)(`${engine.name}: reports its engine and reads back exactly what was written and synced`, async () => {
      const device = openDevice(tempDir(), engine.mode);
      expect(device.ioEngine).toBe(engine.expect);
      expect(device.native.info().ioEngine).toBe(engine.expect);
      const { reads, expected } = await writeThenRead(device);
      for (let index = 0; index < reads.length; index++) {
        const offset = (index * 104_729) % ((4 << 20) - 70_000);
        expect(reads[index]!.equals(expected.subarray(offset, offset + reads[index]!.length))).toBe(true);
      }
      expect(device.pending()).toBe(0);
      await expect(device.read(16 << 20, 1)).rejects.toThrow(RangeError);
    });
  }

  it.skipIf(!ioUring.available)('both engines return identical bytes for the same writes and reads', async () => {
    const viaRing = await writeThenRead(openDevice(tempDir(), 'io_uring'));
    const viaThreads = await writeThenRead(openDevice(tempDir(), 'threads'));
    expect(viaRing.reads.length).toBe(600);
    for (let index = 0; index < 600; index++) expect(viaRing.reads[index]!.equals(viaThreads.reads[index]!)).toBe(true);
  });

  it('fault injection always runs on the thread pool (its failures live in the backend io_uring would bypass)', () => {
    const device = openDevice(tempDir(), 'io_uring', { faults: true });
    expect(device.ioEngine).toBe('threads');
  });

  it('falls back to the thread pool when the kernel refuses io_uring, and says why', async () => {
    const dir = tempDir();
    const device = new NativeDevice({ path: path.join(dir, 'device.dat'), sizeBytes: 1 << 20, create: true, directIo: 'auto', ioEngine: 'io_uring', refuseIoUring: true });
    openDevices.push(device);
    expect(device.ioEngine).toBe('threads');
    expect(device.native.info().ioUringErrno).toBe(1);  // EPERM
    await device.write(0, Buffer.from('still works'), 0, 11, true);
    expect((await device.read(0, 11)).toString()).toBe('still works');
  });

  it('uses the threads by default and io_uring with SHOAL_IO_ENGINE=io_uring; refuses an unknown engine with INVALID_ARGUMENT', () => {
    const dir = tempDir();
    expect(() => openDevice(dir, 'uring' as IoEngineMode)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    const saved = process.env.SHOAL_IO_ENGINE;
    process.env.SHOAL_IO_ENGINE = 'fast';
    try {
      expect(() => new NativeDevice({ path: path.join(dir, 'device.dat'), sizeBytes: 1 << 20, create: true, directIo: 'auto' })).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('SHOAL_IO_ENGINE') }),
      );
      process.env.SHOAL_IO_ENGINE = 'io_uring';
      const device = new NativeDevice({ path: path.join(dir, 'device.dat'), sizeBytes: 1 << 20, create: true, directIo: 'auto' });
      expect(device.ioEngine).toBe(ioUring.available ? 'io_uring' : 'threads');
      device.close();
      delete process.env.SHOAL_IO_ENGINE;
      const byDefault = new NativeDevice({ path: path.join(dir, 'device.dat'), sizeBytes: 1 << 20, create: true, directIo: 'auto' });
      openDevices.push(byDefault);
      expect(byDefault.ioEngine).toBe('threads');
    } finally {
      if (saved === undefined) delete process.env.SHOAL_IO_ENGINE;
      else process.env.SHOAL_IO_ENGINE = saved;
    }
    const { BlockDevice } = addon() as unknown as { BlockDevice: new (options: object) => unknown };
    expect(() => new BlockDevice({ path: path.join(dir, 'x.dat'), sizeBytes: 4096, create: true, ioEngine: 7, onComplete: () => undefined, completions: Buffer.alloc(4096), results: Buffer.alloc(4096) })).toThrow(RangeError);
  });
});

/** Opens a store (whose engine comes from SHOAL_IO_ENGINE), writes 500 records, corrupts k7 on the medium. */
async function corruptStore(mode: IoEngineMode): Promise<{ store: KvHarness; outcomes: string[] }> {
  const dir = tempDir();
  const saved = process.env.SHOAL_IO_ENGINE;
  process.env.SHOAL_IO_ENGINE = mode;
  let store: KvHarness;
  try {
    store = await KvHarness.open({ namespace: 'engine', dataDir: dir, paths: ['engine.dat'], sizeBytes: 8 << 20, writeBlockBytes: 128 << 10 });
  } finally {
    if (saved === undefined) delete process.env.SHOAL_IO_ENGINE;
    else process.env.SHOAL_IO_ENGINE = saved;
  }
  openStores.push(store);
  const value = (index: number) => Buffer.concat([Buffer.from(`k${index}:`), Buffer.alloc(300, index % 251)]);
  for (let index = 0; index < 500; index++) store.put(`k${index}`, value(index), { durable: index === 499 });
  await store.store.flush();
  store.store.dropCache();
  // Damage k7's record on the medium itself (a buffered write, synced; O_DIRECT reads see it).
  const entry = store.index.entries.get(digestOf('k7').toString('latin1'))!;
  const where = store.store.deviceOffsetOf(entry.low, entry.high);
  const handle = fs.openSync(path.join(dir, 'engine.dat'), 'r+');
  try {
    const byte = Buffer.alloc(1);
    fs.readSync(handle, byte, 0, 1, where.offset + 100);
    byte[0]! ^= 8;
    fs.writeSync(handle, byte, 0, 1, where.offset + 100);
    fs.fsyncSync(handle);
  } finally {
    fs.closeSync(handle);
  }
  const outcomes = await Promise.all(
    Array.from({ length: 500 }, (_, index) =>
      store.get(`k${index}`).then(
        (record) => (record!.payload.equals(value(index)) ? 'ok' : 'wrong bytes'),
        (error: { code?: string }) => `error ${error.code}`,
      ),
    ),
  );
  return { store, outcomes };
}

describe('verified record reads through each engine', () => {
  for (const engine of engines) {
    it.skipIf(engine.skip)(`${engine.name}: a corrupt record is CORRUPTION, every other record is served, stats say the engine`, async () => {
      const { store, outcomes } = await corruptStore(engine.mode);
      expect(store.store.stats().ioEngine).toBe(engine.expect);
      expect(outcomes[7]).toBe('error CORRUPTION');
      expect(outcomes.filter((outcome) => outcome === 'ok').length).toBe(499);
    });
  }

  it.skipIf(!ioUring.available)('both engines give the same outcome for every record', async () => {
    const viaRing = await corruptStore('io_uring');
    const viaThreads = await corruptStore('threads');
    expect(viaRing.outcomes).toEqual(viaThreads.outcomes);
  });
});

describe('closing with reads in flight', () => {
  for (const engine of engines) {
    it.skipIf(engine.skip)(`${engine.name}: close() settles every read in flight, later reads fail with IO_ERROR`, async () => {
      const dir = tempDir();
      const device = openDevice(dir, engine.mode);
      await device.write(0, seededBytes(1 << 20, 3), 0, 1 << 20, true);
      const reads = Array.from({ length: 2000 }, (_, index) => device.read(((index * 7919) % 255) * 4096, 4096 + (index % 3)));
      device.close();
      const settled = await Promise.allSettled(reads);
      expect(settled.every((outcome) => outcome.status === 'fulfilled')).toBe(true);
      expect(device.pending()).toBe(0);
      await expect(device.read(0, 1)).rejects.toMatchObject({ code: 'IO_ERROR' });
      device.close();  // idempotent
      // The device is free again (its lock went with close).
      const reopened = openDevice(dir, engine.mode, { create: false });
      expect((await reopened.read(4096, 16)).equals(seededBytes(1 << 20, 3).subarray(4096, 4096 + 16))).toBe(true);
    });
  }

  /** Runs a child that opens a device, queues reads, then closes or just ends; resolves its exit. */
  function runChild(mode: IoEngineMode, closeUnderReads: boolean): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
    const dir = tempDir();
    const addonFile = addonPath();
    const script = `
      const addon = require(${JSON.stringify(addonFile)});
      let delivered = 0;
      const completions = Buffer.alloc(4096 * 16);
      const device = new addon.BlockDevice({
        path: ${JSON.stringify(path.join(dir, 'child.dat'))}, sizeBytes: 8 << 20, create: true, directIo: 1, threads: 32,
        ioEngine: ${mode === 'io_uring' ? 1 : 0}, completions, results: Buffer.alloc(8 << 20),
        onComplete: (count) => { delivered += count; },
      });
      for (let id = 1; id <= 3000; id++) device.read(id, ((id * 7919) % 2000) * 4096, 4096, false);
      console.log('engine', device.info().ioEngine, 'pending', device.pending());
      ${closeUnderReads ? "device.close(); console.log('closed', delivered);" : "process.on('exit', () => console.log('exit', delivered));"}
    `;
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the child did not exit within 20 s (hung); stdout: ${stdout} stderr: ${stderr}`));
      }, 20_000);
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr });
      });
    });
  }

  for (const engine of engines) {
    it.skipIf(engine.skip)(`${engine.name}: a process that closes under 3,000 reads, or exits with them in flight, ends cleanly`, async () => {
      const closed = await runChild(engine.mode, true);
      expect(closed).toMatchObject({ code: 0, signal: null, stderr: '' });
      expect(closed.stdout).toContain(`engine ${engine.expect} pending 3000`);
      expect(closed.stdout).toContain('closed 3000');
      const ended = await runChild(engine.mode, false);
      expect(ended).toMatchObject({ code: 0, signal: null, stderr: '' });
      expect(ended.stdout).toContain('exit 3000');  // the reads kept the process alive until delivered
    });
  }
});

describe('the storage.ioEngine option of open()', () => {
  it.skipIf(!ioUring.available)('a device namespace reads through the engine it names, stats say which, and an unknown engine is refused', async () => {
    const dataDir = tempDir();
    const options = (ioEngine: unknown) => ({
      dataDir,
      sharedMemoryIndex: false,
      namespaces: [{ name: 'disk', storage: { type: 'device' as const, paths: ['disk.dat'], sizeBytes: 16 << 20, ioEngine: ioEngine as 'io_uring' } }],
      log: () => undefined,
    });
    for (const ioEngine of ['io_uring', 'threads'] as const) {
      const db = await open(options(ioEngine));
      try {
        for (let i = 0; i < 200; i++) await db.put({ ns: 'disk', key: i }, { i, engine: ioEngine });
        await db.put({ ns: 'disk', key: 'sync' }, { v: 1 }, { durable: true });
        expect(db.stats().namespaces.disk!.ioEngine).toBe(ioEngine);
        for (let i = 0; i < 200; i += 13) expect((await db.get({ ns: 'disk', key: i }))?.bins.i).toBe(i);
      } finally {
        await db.close();
      }
    }
    await expect(open(options('aio'))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
