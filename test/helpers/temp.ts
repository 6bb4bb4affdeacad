/**
 * Temporary data directories for tests, removed afterwards together with the
 * shared-memory segments of the namespaces opened in them.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { segmentBaseName } from '../../lib/namespace/index-segments';
import { addon } from '../../lib/native/addon';

const made: string[] = [];

/** A fresh empty directory under the OS temp dir. */
export function tempDir(prefix = 'shoal-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** Removes the shared-memory segments of these namespaces in dir. */
export function dropSegments(dir: string, namespaces: string[]): void {
  if (!fs.existsSync(dir)) return;
  for (const ns of namespaces) addon().unlinkIndexSegments(segmentBaseName(dir, ns));
}

/** Removes every directory made by tempDir(), with the segments of the given namespaces. */
export function cleanupTempDirs(namespaces: string[] = []): void {
  for (const dir of made.splice(0)) {
    try {
      dropSegments(dir, namespaces);
    } catch {
      // The directory may never have held a namespace; the global teardown removes strays.
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
