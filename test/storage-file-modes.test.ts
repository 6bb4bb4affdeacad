/**
 * What Shoal creates is readable by its owner only (docs/storage.md, "Files and modes"): a new
 * dataDir is 0700, device files, lock files, the storage state file and shared-memory
 * segments 0600, whatever the umask. `fileMode` opens them to a group (0640, 0660); the
 * directories get the matching search bits. Files that exist keep their modes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NODE_ID_FILE } from '../lib/cluster/index';
import { open } from '../lib/index';
import { segmentBaseName } from '../lib/namespace/index-segments';
import type { NamespaceOptions } from '../lib/options';
import { track, useDbCleanup } from './helpers/db';
import { tempDir } from './helpers/temp';

useDbCleanup(['disk', 'cache']);

const NAMESPACES: NamespaceOptions[] = [
  { name: 'disk', storage: { type: 'device', paths: ['devices/disk.dat'], sizeBytes: 16 << 20 } },
  { name: 'cache', storage: { type: 'memory', maxBytes: 16 << 20 } },
];

function mode(file: string): number {
  return fs.statSync(file).mode & 0o777;
}

function segmentModes(dir: string, ns: string): number[] {
  const base = segmentBaseName(dir, ns).slice(1);
  return fs
    .readdirSync('/dev/shm')
    .filter((name) => name.startsWith(`${base}.`))
    .map((name) => mode(path.join('/dev/shm', name)));
}

let umask = 0;
beforeEach(() => {
  // The most permissive umask: whatever Shoal gets, it asked for.
  umask = process.umask(0);
});
afterEach(() => {
  process.umask(umask);
});

describe('file modes', () => {
  it('creates the data directory 0700 and every file 0600', async () => {
    const dataDir = path.join(tempDir(), 'data');
    const db = track(await open({ dataDir, namespaces: NAMESPACES, log: () => undefined }));
    await db.put({ ns: 'disk', key: 1 }, { a: 1 });
    await db.put({ ns: 'cache', key: 1 }, { a: 1 });
    expect(mode(dataDir)).toBe(0o700);
    expect(mode(path.join(dataDir, 'devices'))).toBe(0o700);
    expect(mode(path.join(dataDir, 'devices', 'disk.dat'))).toBe(0o600);
    expect(mode(path.join(dataDir, 'disk.lock'))).toBe(0o600);
    expect(mode(path.join(dataDir, 'cache.lock'))).toBe(0o600);
    expect(segmentModes(dataDir, 'disk')).not.toEqual([]);
    for (const ns of ['disk', 'cache']) for (const segment of segmentModes(dataDir, ns)) expect(segment).toBe(0o600);
    await db.close();
    expect(mode(path.join(dataDir, 'disk.device-state'))).toBe(0o600);
  });

  it('fileMode opens them to a group, and leaves existing files as they are', async () => {
    const dataDir = path.join(tempDir(), 'data');
    const db = track(await open({ dataDir, fileMode: 0o640, namespaces: NAMESPACES, log: () => undefined }));
    await db.close();
    expect(mode(dataDir)).toBe(0o750);
    expect(mode(path.join(dataDir, 'devices', 'disk.dat'))).toBe(0o640);
    expect(mode(path.join(dataDir, 'disk.lock'))).toBe(0o640);
    expect(mode(path.join(dataDir, 'disk.device-state'))).toBe(0o640);
    for (const ns of ['disk', 'cache']) for (const segment of segmentModes(dataDir, ns)) expect(segment).toBe(0o640);
    fs.chmodSync(path.join(dataDir, 'devices', 'disk.dat'), 0o600);
    const again = track(await open({ dataDir, fileMode: 0o660, namespaces: NAMESPACES, log: () => undefined }));
    await again.close();
    expect(mode(path.join(dataDir, 'devices', 'disk.dat'))).toBe(0o600);
  });

  it('the cluster node-id file gets fileMode too', async () => {
    for (const fileMode of [0o600, 0o640]) {
      const dataDir = path.join(tempDir(), 'data');
      const cluster = { listen: { host: '127.0.0.1', port: 0 }, seeds: [], clusterName: 'modes' };
      const db = track(await open({ dataDir, fileMode, namespaces: [NAMESPACES[1]], cluster, log: () => undefined }));
      await db.close();
      expect(mode(path.join(dataDir, NODE_ID_FILE))).toBe(fileMode);
    }
  });

  it('refuses a fileMode that would lock its owner out or make files executable', async () => {
    for (const fileMode of [0o400, 0o700, 0o1600, -1, 0.5]) {
      await expect(open({ dataDir: tempDir(), fileMode: fileMode as number, namespaces: NAMESPACES, log: () => undefined })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        message: expect.stringMatching(/fileMode/),
      });
    }
    // A string is the wrong type (docs/api.md, "Errors for wrong arguments").
    await expect(open({ dataDir: tempDir(), fileMode: '0600' as never, namespaces: NAMESPACES, log: () => undefined })).rejects.toThrow(TypeError);
  });
});
