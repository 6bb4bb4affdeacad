/**
 * The raw block device path: a loop device (losetup, as root) stands in for a disk. The store
 * opens it with O_DIRECT and O_EXCL, uses its whole size, and survives a reopen. A block device
 * holding a file system is refused with CORRUPTION naming what it found, and not a byte of it
 * is written (docs/storage.md, "What a damaged device gets"). Skipped, with the reason printed,
 * where loop devices (or mkfs.ext4) cannot be had.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, expect, it } from 'vitest';
import { KvHarness } from '../sim/kv-harness';

function setUpLoopDevice(): { device: string; image: string } | string {
  if (process.getuid?.() !== 0) return 'not running as root';
  const image = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-loop-')), 'disk.img');
  try {
    fs.writeFileSync(image, '');
    fs.truncateSync(image, 64 << 20);
    const device = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8' }).trim();
    return { device, image };
  } catch (error) {
    fs.rmSync(path.dirname(image), { recursive: true, force: true });
    return `losetup failed: ${(error as Error).message.split('\n')[0]}`;
  }
}

const loop = setUpLoopDevice();
if (typeof loop === 'string') console.log(`storage-raw-device: skipped (${loop})`);
/** A second loop device with an ext4 file system on it. */
const ext4 = typeof loop === 'string' ? loop : withFileSystem(setUpLoopDevice());
if (typeof ext4 === 'string' && typeof loop !== 'string') console.log(`storage-raw-device: the file-system case is skipped (${ext4})`);

function withFileSystem(device: { device: string; image: string } | string): { device: string; image: string } | string {
  if (typeof device === 'string') return device;
  try {
    execFileSync('mkfs.ext4', ['-q', '-F', device.device], { stdio: 'ignore' });
    return device;
  } catch (error) {
    release(device);
    return `mkfs.ext4 failed: ${(error as Error).message.split('\n')[0]}`;
  }
}

function release(device: { device: string; image: string } | string): void {
  if (typeof device === 'string') return;
  try {
    execFileSync('losetup', ['-d', device.device]);
  } finally {
    fs.rmSync(path.dirname(device.image), { recursive: true, force: true });
  }
}

afterAll(() => {
  try {
    release(loop);
  } finally {
    release(ext4);
  }
});

/** SHA-256 of the device's first and last MiB, where a file system keeps what identifies it. */
function edges(device: string): string {
  const handle = fs.openSync(device, 'r');
  try {
    const size = fs.fstatSync(handle).size || Number(execFileSync('blockdev', ['--getsize64', device], { encoding: 'utf8' }).trim());
    const bytes = Buffer.alloc(2 << 20);
    fs.readSync(handle, bytes, 0, 1 << 20, 0);
    fs.readSync(handle, bytes, 1 << 20, 1 << 20, size - (1 << 20));
    return createHash('sha256').update(bytes).digest('hex');
  } finally {
    fs.closeSync(handle);
  }
}

it.skipIf(typeof loop === 'string')('stores records on a raw block device with O_DIRECT and reopens them', async () => {
  const { device } = loop as { device: string };
  const options = { namespace: 'raw', paths: [device], sizeBytes: 0, writeBlockBytes: 1 << 20, directIo: 'required' as const };
  let store = await KvHarness.open(options);
  try {
    const stats = store.store.stats();
    expect(stats.directIo).toBe('on');
    expect(stats.deviceTotalBytes).toBe(63 << 20);  // 64 MiB less the header region, in whole blocks
    await expect(KvHarness.open(options)).rejects.toMatchObject({ code: 'LOCKED' });
    for (let index = 0; index < 2000; index++) store.put(`k${index}`, Buffer.from(`value ${index}`.padEnd(100, '.')));
    await store.put('last', Buffer.from('durable'), { durable: true });
    await store.close();
    store = await KvHarness.open(options);
    expect(store.report!.records).toBe(2001);
    expect((await store.get('k1234'))!.payload.toString()).toBe('value 1234'.padEnd(100, '.'));
    expect((await store.get('last'))!.payload.toString()).toBe('durable');
  } finally {
    await store.close();
  }
});

it.skipIf(typeof ext4 === 'string')('refuses a block device that holds a file system, and writes nothing to it', async () => {
  const { device } = ext4 as { device: string };
  const before = edges(device);
  for (const repairDevices of [false, true]) {
    const options = { namespace: 'raw', paths: [device], sizeBytes: 0, writeBlockBytes: 1 << 20, directIo: 'required' as const, repairDevices };
    await expect(KvHarness.open(options)).rejects.toMatchObject({ code: 'CORRUPTION', message: expect.stringMatching(/ext2\/ext3\/ext4 file system.*never writes over/) });
  }
  expect(edges(device)).toBe(before);
  // The file system is still there for its owner.
  expect(execFileSync('blkid', ['-o', 'value', '-s', 'TYPE', device], { encoding: 'utf8' }).trim()).toBe('ext4');
});
