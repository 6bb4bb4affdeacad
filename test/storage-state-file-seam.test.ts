/**
 * The warm-state file goes through the store's StateFileIo seam (lib/storage/warm-state.ts):
 * a clean close writes it there, an open reads and then removes it there, and a fault
 * injected there (a failed write, a damaged read) decides the next start as a real one would.
 */
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KvHarness } from '../sim/kv-harness';
import { DeviceStore, type DeviceStoreOptions } from '../lib/storage/device-store';
import { fileSystemStateIo, type StateFileIo } from '../lib/storage/warm-state';
import { cleanupTempDirs, tempDir } from './helpers/temp';

afterEach(() => cleanupTempDirs());

/** A StateFileIo over the real file system that records each call and can fail or damage. */
function recordingIo(options: { failWrite?: boolean; damageRead?: boolean } = {}): StateFileIo & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async read(file) {
      calls.push(`read ${path.basename(file)}`);
      const bytes = await fileSystemStateIo.read(file);
      if (bytes !== undefined && options.damageRead === true) bytes[bytes.length - 1]! ^= 0xff;
      return bytes;
    },
    async write(file, data, fileMode) {
      calls.push(`write ${path.basename(file)}`);
      if (options.failWrite === true) throw new Error('injected: no space left on device');
      await fileSystemStateIo.write(file, data, fileMode);
    },
    async remove(file) {
      calls.push(`remove ${path.basename(file)}`);
      await fileSystemStateIo.remove(file);
    },
  };
}

function storeOptions(dir: string, io: StateFileIo): DeviceStoreOptions {
  return { namespace: 'test', dataDir: dir, paths: ['test.dat'], sizeBytes: 32 << 20, writeBlockBytes: 128 << 10, stateFile: path.join(dir, 'test.device-state'), stateFileIo: io };
}

describe('the warm-state file through its seam', () => {
  it('a clean close writes it, the next open reads and removes it, and can attach', async () => {
    const dir = tempDir();
    const first = recordingIo();
    const harness = await KvHarness.open(storeOptions(dir, first));
    await harness.put('a', Buffer.from('one'), { durable: true });
    await harness.store.close();
    expect(first.calls).toEqual(['remove test.device-state', 'write test.device-state']);
    const second = recordingIo();
    const store = await DeviceStore.open(storeOptions(dir, second));
    try {
      expect(second.calls).toEqual(['read test.device-state', 'remove test.device-state']);
      expect(store.canAttach()).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('a damaged read makes the next start cold, saying why', async () => {
    const dir = tempDir();
    const harness = await KvHarness.open(storeOptions(dir, recordingIo()));
    await harness.put('a', Buffer.from('one'), { durable: true });
    await harness.store.close();
    const store = await DeviceStore.open(storeOptions(dir, recordingIo({ damageRead: true })));
    try {
      expect(store.canAttach()).toBe(false);
      expect(store.coldStartReason()).toMatch(/state file is missing, damaged or from another run/);
    } finally {
      await store.close();
    }
  });

  it('a failed write at close leaves no state file: the next start is cold and finds the records', async () => {
    const dir = tempDir();
    const harness = await KvHarness.open(storeOptions(dir, recordingIo({ failWrite: true })));
    await harness.put('a', Buffer.from('one'), { durable: true });
    await expect(harness.store.close()).rejects.toThrow(/injected/);
    const reopened = await KvHarness.open(storeOptions(dir, recordingIo()));
    try {
      expect(reopened.store.canAttach()).toBe(false);
      expect((await reopened.get('a'))?.payload.toString()).toBe('one');
    } finally {
      await reopened.store.close();
    }
  });
});
