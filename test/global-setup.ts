/**
 * Runs once around the whole test run: whatever shared-memory segments the tests create
 * are removed at the end, even when a test failed before its own cleanup ran.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const SHM = '/dev/shm';

function shoalSegments(): Set<string> {
  try {
    return new Set(fs.readdirSync(SHM).filter((name) => name.startsWith('shoal-')));
  } catch {
    return new Set();
  }
}

/** Names of the shoal segments that some live process has mapped (from /proc/<pid>/maps). */
function mappedSegments(): Set<string> {
  const mapped = new Set<string>();
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(pid)) continue;
    let maps: string;
    try {
      maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8');
    } catch {
      continue;
    }
    for (const match of maps.matchAll(/\/dev\/shm\/(shoal-[^\s]+)/g)) mapped.add(match[1]!.replace(/ \(deleted\)$/, ''));
  }
  return mapped;
}

/** Child-process fixtures run the compiled library: rebuild dist/ when a source is newer. */
function buildIfStale(): void {
  const root = path.join(__dirname, '..');
  const outputs = ['lib/index.js', 'bin/shoal.js', 'examples/replace-cluster.js'].map((file) => path.join(root, 'dist', file));
  const builtMs = Math.min(...outputs.map((file) => (fs.existsSync(file) ? fs.statSync(file).mtimeMs : 0)));
  const newest = Math.max(...['lib', 'bin', 'examples', 'sim'].map((dir) => newestMtime(path.join(root, dir))));
  if (newest > builtMs) execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : fs.statSync(full).mtimeMs);
  }
  return newest;
}

export default function setup(): () => void {
  buildIfStale();
  const before = shoalSegments();
  return () => {
    // A segment still mapped by a live process belongs to someone else's run: leave it.
    const mapped = mappedSegments();
    for (const name of shoalSegments()) {
      if (!before.has(name) && !mapped.has(name)) fs.rmSync(`${SHM}/${name}`, { force: true });
    }
  };
}
