/**
 * Never format what cannot be read (docs/storage.md, "What a damaged device gets"): a device
 * whose header slots are both invalid, a truncated device, a device of the wrong size and a
 * file that is not a Shoal device refuse open() with CORRUPTION, naming the file, what was
 * found and a way out, and their bytes are left exactly as they were. `storage.repairDevices`
 * rebuilds a lost header from the write blocks' own headers (signature, device, sequence) and
 * restores a truncated device's size; it still never writes over a foreign file.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Db, ErrorCode, open } from '../lib/index';
import { addon } from '../lib/native/addon';
import type { DeviceStorageOptions } from '../lib/options';
import { track, useDbCleanup } from './helpers/db';
import { seededBytes } from './helpers/random';
import { tempDir } from './helpers/temp';

useDbCleanup(['disk']);

const RECORDS = 100;
const SIZE_BYTES = 16 << 20;
const HEADER_SLOT_BYTES = 32 << 10;

async function openDisk(dir: string, storage: Partial<DeviceStorageOptions> = {}, logs: string[] = []): Promise<Db> {
  const db = await open({
    dataDir: dir,
    namespaces: [{ name: 'disk', maxRecordBytes: 64 << 10, storage: { type: 'device', paths: ['disk.dat'], sizeBytes: SIZE_BYTES, writeBlockBytes: 128 << 10, ...storage } }],
    log: (message) => logs.push(message),
  });
  return track(db);
}

/** A device holding RECORDS records, closed cleanly (with dropIndex, so the next open reads the device). */
async function writtenDevice(): Promise<{ dir: string; file: string }> {
  const dir = tempDir();
  const db = await openDisk(dir);
  for (let i = 0; i < RECORDS; i++) await db.put({ ns: 'disk', key: i }, { i, pad: 'x'.repeat(200) });
  await db.close({ dropIndex: true });
  return { dir, file: path.join(dir, 'disk.dat') };
}

function digestOf(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function overwrite(file: string, offset: number, bytes: Buffer): void {
  const handle = fs.openSync(file, 'r+');
  try {
    fs.writeSync(handle, bytes, 0, bytes.length, offset);
  } finally {
    fs.closeSync(handle);
  }
}

function flipBit(file: string, offset: number, bit: number): void {
  const handle = fs.openSync(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    fs.readSync(handle, byte, 0, 1, offset);
    byte[0] ^= 1 << bit;
    fs.writeSync(handle, byte, 0, 1, offset);
  } finally {
    fs.closeSync(handle);
  }
}

async function expectRefused(dir: string, file: string, message: RegExp, storage: Partial<DeviceStorageOptions> = {}): Promise<void> {
  const before = digestOf(file);
  const size = fs.statSync(file).size;
  const error = await openDisk(dir, storage).then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error, 'open() must refuse').toMatchObject({ code: ErrorCode.CORRUPTION });
  expect((error as Error).message).toContain(file);
  expect((error as Error).message).toMatch(message);
  expect(fs.statSync(file).size, 'the file keeps its size').toBe(size);
  expect(digestOf(file), 'not a byte of the file changes').toBe(before);
}

async function countRecords(db: Db): Promise<number> {
  let found = 0;
  for (let i = 0; i < RECORDS; i++) if ((await db.get({ ns: 'disk', key: i }))?.bins.i === i) found++;
  return found;
}

describe('a damaged device is refused, never formatted', () => {
  it('refuses a device whose two header slots were overwritten, and repairDevices rebuilds the header from the write blocks', async () => {
    const { dir, file } = await writtenDevice();
    overwrite(file, 0, seededBytes(2 * HEADER_SLOT_BYTES, 7));
    await expectRefused(dir, file, /no valid (Shoal )?header.*repairDevices/s);
    const logs: string[] = [];
    const db = await openDisk(dir, { repairDevices: true }, logs);
    expect(db.stats().namespaces.disk!.startMode).toBe('cold');
    expect(await countRecords(db)).toBe(RECORDS);
    expect(logs.join('\n')).toMatch(/rebuilt the header of .*disk\.dat/);
    await db.close();
    // The rebuilt header is a header like any other: the next open needs no option.
    const again = await openDisk(dir);
    expect(again.stats().namespaces.disk!.startMode).toBe('warm');
    expect(await countRecords(again)).toBe(RECORDS);
  });

  it('refuses a device with one bit flipped in each header slot', async () => {
    const { dir, file } = await writtenDevice();
    flipBit(file, 200, 3);
    flipBit(file, HEADER_SLOT_BYTES + 200, 5);
    await expectRefused(dir, file, /checksum/);
    const db = await openDisk(dir, { repairDevices: true });
    expect(await countRecords(db)).toBe(RECORDS);
  });

  it('refuses a device file truncated to 100 bytes and leaves it at 100 bytes', async () => {
    const { dir, file } = await writtenDevice();
    fs.truncateSync(file, 100);
    await expectRefused(dir, file, /100 bytes/);
  });

  it('refuses a device shorter than its header says, and repairDevices restores its size', async () => {
    const { dir, file } = await writtenDevice();
    fs.truncateSync(file, 4 << 20);
    await expectRefused(dir, file, /truncated/);
    const logs: string[] = [];
    const db = await openDisk(dir, { repairDevices: true }, logs);
    expect(fs.statSync(file).size).toBe(SIZE_BYTES);
    // 100 records of ~260 bytes fit the first write block: nothing was in the part cut off.
    expect(await countRecords(db)).toBe(RECORDS);
    expect(logs.join('\n')).toMatch(/restored .*disk\.dat to 16777216 bytes/);
  });

  it('refuses a device opened with another sizeBytes than it was created with', async () => {
    const { dir } = await writtenDevice();
    await expect(openDisk(dir, { sizeBytes: 32 << 20 })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, message: expect.stringMatching(/16777216/) });
    expect(fs.statSync(path.join(dir, 'disk.dat')).size).toBe(SIZE_BYTES);
  });

  it('never writes over a file that is not a Shoal device, even with repairDevices', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'disk.dat');
    fs.writeFileSync(file, seededBytes(4 << 20, 11));
    await expectRefused(dir, file, /not a Shoal device/);
    await expectRefused(dir, file, /not a Shoal device/, { repairDevices: true });
  });

  it('refuses a header written by a newer format version instead of taking the device for new', async () => {
    const { dir, file } = await writtenDevice();
    for (const slot of [0, HEADER_SLOT_BYTES]) {
      const header = fs.readFileSync(file).subarray(slot, slot + HEADER_SLOT_BYTES);
      header.writeUInt32LE(99, 8);
      header.writeUInt32LE(addon().crc32c(header.subarray(0, HEADER_SLOT_BYTES - 4)), HEADER_SLOT_BYTES - 4);
      overwrite(file, slot, header);
    }
    await expectRefused(dir, file, /format version 99/);
  });

  it('refuses a blank device among the namespace devices, and repairDevices makes it an empty member', async () => {
    const dir = tempDir();
    const paths = ['d0.dat', 'd1.dat'];
    let db = await openDisk(dir, { paths });
    for (let i = 0; i < RECORDS; i++) await db.put({ ns: 'disk', key: i }, { i, pad: 'x'.repeat(200) });
    await db.close({ dropIndex: true });
    // The second disk "replaced": a blank file of the same size.
    fs.writeFileSync(path.join(dir, 'd1.dat'), Buffer.alloc(SIZE_BYTES));
    await expect(openDisk(dir, { paths })).rejects.toMatchObject({ code: ErrorCode.CORRUPTION, message: expect.stringMatching(/d1\.dat is blank.*repairDevices/s) });
    const logs: string[] = [];
    db = await openDisk(dir, { paths, repairDevices: true }, logs);
    expect(logs.join('\n')).toMatch(/made the blank device .*d1\.dat an empty member/);
    const kept = await countRecords(db);
    // Records are spread over the devices by digest: those of the first device are all there.
    expect(kept).toBeGreaterThan(20);
    expect(kept).toBeLessThan(RECORDS);
    expect(db.stats().namespaces.disk!.objects).toBe(kept);
    await db.put({ ns: 'disk', key: 'new' }, { a: 1 });
    await db.close();
    const again = await openDisk(dir, { paths });
    expect(await countRecords(again)).toBe(kept);
  });

  it('formats a file that is all zeros where a header would be (made ahead of time, e.g. with fallocate)', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'disk.dat');
    fs.writeFileSync(file, Buffer.alloc(SIZE_BYTES));
    const db = await openDisk(dir);
    expect(db.stats().namespaces.disk!.startMode).toBe('new');
    await db.put({ ns: 'disk', key: 1 }, { a: 1 });
    expect((await db.get({ ns: 'disk', key: 1 }))?.bins).toEqual({ a: 1 });
  });
});
