/**
 * Opening throwaway databases in tests. Each is closed with dropIndex and its directory
 * removed after the test file, even when a test fails.
 */
import { afterAll, afterEach } from 'vitest';
import { Db, open } from '../../lib/index';
import type { NamespaceOptions } from '../../lib/options';
import { cleanupTempDirs, tempDir } from './temp';

const openDbs = new Set<Db>();

/** A memory namespace called "cache" (or options of your own) in a fresh directory. */
export async function openMemoryDb(
  namespace: Partial<NamespaceOptions> = {},
  extra: { dataDir?: string; sharedMemoryIndex?: boolean } = {},
): Promise<Db> {
  const db = await open({
    dataDir: extra.dataDir ?? tempDir(),
    sharedMemoryIndex: extra.sharedMemoryIndex ?? true,
    namespaces: [{ name: 'cache', storage: { type: 'memory', maxBytes: 64 << 20 }, ...namespace } as NamespaceOptions],
    log: () => undefined,
  });
  track(db);
  return db;
}

/** Closes the db (dropping its index) when the test ends. */
export function track(db: Db): Db {
  openDbs.add(db);
  return db;
}

/** Installs the cleanup hooks; call once at the top of a test file. */
export function useDbCleanup(namespaces: string[] = ['cache']): void {
  afterEach(async () => {
    for (const db of openDbs) await db.close({ dropIndex: true }).catch(() => undefined);
    openDbs.clear();
  });
  afterAll(() => cleanupTempDirs(namespaces));
}
