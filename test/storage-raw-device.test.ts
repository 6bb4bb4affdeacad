/**
 * The raw block device path: a loop device (losetup, as root) stands in for a disk. The store
 * opens it with O_DIRECT and O_EXCL, uses its whole size, and survives a reopen. Skipped, with
 * the reason printed, where loop devices cannot be set up.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { KvHarness } from '../lib/storage/kv-harness';

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

afterAll(() => {
  if (typeof loop === 'string') return;
  try {
    execFileSync('losetup', ['-d', loop.device]);
  } finally {
    fs.rmSync(path.dirname(loop.image), { recursive: true, force: true });
  }
});

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
