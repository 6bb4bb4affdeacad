/**
 * Runs once around the whole test run: whatever shared-memory segments the tests create
 * are removed at the end, even when a test failed before its own cleanup ran.
 */
import * as fs from 'node:fs';

const SHM = '/dev/shm';

function shoalSegments(): Set<string> {
  try {
    return new Set(fs.readdirSync(SHM).filter((name) => name.startsWith('shoal-')));
  } catch {
    return new Set();
  }
}

export default function setup(): () => void {
  const before = shoalSegments();
  return () => {
    for (const name of shoalSegments()) {
      if (!before.has(name)) fs.rmSync(`${SHM}/${name}`, { force: true });
    }
  };
}
