/**
 * Names of a namespace's shared-memory segments and lock file. The name is derived from the
 * data directory's real path and the namespace, so two databases never share segments and
 * the same database finds its own again after a restart.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** "/shoal-<16 hex of sha256(realpath(dataDir))>-<namespace>" */
export function segmentBaseName(dataDir: string, namespace: string): string {
  const real = fs.realpathSync(dataDir);
  const hash = createHash('sha256').update(real).digest('hex').slice(0, 16);
  return `/shoal-${hash}-${namespace}`;
}

/** The lock file that makes one Db the owner of a namespace: "<dataDir>/<namespace>.lock". */
export function lockFilePath(dataDir: string, namespace: string): string {
  return path.join(dataDir, `${namespace}.lock`);
}
