/**
 * The seed 000 scenario as a test, with the runnable example itself: three nodes with data,
 * three added, the old three quiesced and removed under a client load on every node, with
 * zero client errors and every record still there.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runNode } from './helpers/child';

const EXAMPLE = path.join(__dirname, '..', 'dist', 'examples', 'replace-cluster.js');

describe('moving a cluster onto new nodes with quiesce (seed 000)', () => {
  it('loses nothing and shows zero client errors', async () => {
    const result = await runNode(EXAMPLE, ['--records', '2000'], 150_000);
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    expect(result.stdout).toMatch(/old nodes own 0 master and 0 replica partitions/);
    expect(result.stdout).toMatch(/client load: \d+ keys acknowledged, 0 errors/);
    expect(result.stdout).toMatch(/read-your-writes: 0 hidden reads/);
    expect(result.stdout).toMatch(/phase "3 new nodes join: rebalance until no migrations": [\d.]+ s; longest event-loop delay per node \(ms\): old-1 \d+/);
    expect(result.stdout).toMatch(/2000\/2000 loaded records/);
    const [, present, acknowledged] = /(\d+)\/(\d+) load keys present/.exec(result.stdout)!;
    expect(present).toBe(acknowledged);
    expect(Number(acknowledged)).toBeGreaterThan(0);
  }, 160_000);
});
