/**
 * The seed 001 scenario as a test, with the runnable example itself (examples/cutover.ts, short
 * form): an old 3-process cluster under client load, a new 3-process cluster 3 s behind it on
 * the clock, XDR old → new with rewind, then both ways, clients moving one by one while both
 * sides write the same keys, XDR off, the old cluster quiesced and retired. Zero client errors,
 * identical clusters record by record, every client's last write kept.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runNode } from './helpers/child';

const EXAMPLE = path.join(__dirname, '..', 'dist', 'examples', 'cutover.js');

describe('cutting over to a parallel cluster with active-active XDR under clock skew (seed 001)', () => {
  it('ends with identical clusters, zero client errors and every client write kept', async () => {
    const started = Date.now();
    const result = await runNode(EXAMPLE, ['--records', '2000', '--clients', '3', '--dwell-ms', '1500', '--skew-ms', '3000', '--phase-timeout-ms', '40000'], 100_000);
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    expect(result.stdout).toMatch(/clock 3000 ms behind the old one/);
    expect(result.stdout).toMatch(/in sync: the new cluster holds \d+ records/);
    expect(result.stdout).toMatch(/client 2 moved to new-3/);
    const [, onOld, onNew, differing] = /record-by-record comparison: (\d+) records on the old cluster, (\d+) on the new, (\d+) differing/.exec(result.stdout)!;
    expect(Number(onOld)).toBeGreaterThanOrEqual(2000);
    expect(onNew).toBe(onOld);
    expect(differing).toBe('0');
    expect(result.stdout).toMatch(/clients: [1-9]\d* writes, 0 errors/);
    const [, kept, checked] = /clients' own keys: (\d+)\/(\d+) hold/.exec(result.stdout)!;
    expect(kept).toBe(checked);
    expect(Number(checked)).toBeGreaterThan(0);
    expect(result.stdout).toMatch(/conflicts: \d+/);
    expect(result.stdout).toMatch(/old-1 closed: the old cluster is retired/);
    expect(Date.now() - started).toBeLessThan(100_000);
  }, 110_000);
});
