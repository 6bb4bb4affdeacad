/**
 * NativeDevice.write: what lands on the device for a copy made at once and for one the I/O
 * thread makes (sourceStable, used for write blocks), including when the caller keeps
 * appending past `end` and drops its own reference to the source while the write is in flight;
 * and NativeDevice.poll, which delivers finished writes while the JS thread stays busy.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NativeDevice } from '../lib/storage/native-device';
import { seededBytes } from './helpers/random';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function openDevice(): NativeDevice {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-device-write-'));
  dirs.push(dir);
  return new NativeDevice({ path: path.join(dir, 'device.dat'), sizeBytes: 40 << 20, create: true, directIo: 'auto' });
}


describe('NativeDevice.write', () => {
  for (const sourceStable of [false, true]) {
    it(`writes source[start, end) zero-padded to 4 KiB (${sourceStable ? 'copied on the I/O thread' : 'copied at once'})`, async () => {
      const device = openDevice();
      try {
        const writes: Promise<void>[] = [];
        const expected: Buffer[] = [];
        for (let round = 0; round < 32; round++) {
          const blockBytes = 1 << 20;
          const source = seededBytes(blockBytes, round + 1);
          const start = (round % 4) * 4096;
          const end = start + 1 + ((round * 7919 * 13) % (blockBytes - start - 1));
          expected.push(Buffer.concat([source.subarray(start, end), Buffer.alloc((4096 - ((end - start) % 4096)) % 4096)]));
          writes.push(device.write(round * (1 << 20), source, start, end, false, sourceStable).then(() => undefined));
          // Allowed: the caller goes on writing past `end` (a write block's next records).
          source.fill(0xab, end);
        }
        (globalThis as { gc?: () => void }).gc?.();
        await Promise.all(writes);
        for (let round = 0; round < 32; round++) {
          const landed = await device.read(round * (1 << 20), expected[round]!.length);
          expect(landed.equals(expected[round]!)).toBe(true);
        }
      } finally {
        device.close();
      }
    });
  }

  it('poll() delivers finished writes without the event loop turning', async () => {
    const device = openDevice();
    try {
      let settled = false;
      const written = device.write(0, seededBytes(1 << 20, 7), 0, 1 << 20, false, true).then(() => {
        settled = true;
      });
      expect(device.pending()).toBe(1);
      // Synchronously, so the event loop cannot deliver the completion: only poll() can.
      const deadline = Date.now() + 10_000;
      while (device.pending() > 0 && Date.now() < deadline) device.poll();
      expect(device.pending()).toBe(0);
      expect(settled).toBe(false); // settlement callbacks still run as microtasks
      await written;
      expect(settled).toBe(true);
    } finally {
      device.close();
    }
  });

  it('still delivers and releases a write copied on the I/O thread when the device closes with it in flight', async () => {
    const device = openDevice();
    const source = seededBytes(1 << 20, 99);
    const written = device.write(0, source, 0, source.length, false, true);
    device.close();
    await expect(written).resolves.toBeUndefined();
  });
});
