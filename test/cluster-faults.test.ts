/**
 * Seeded fault runs on the simulated network: message loss and jitter, a symmetric split
 * (split brain) that heals, and a stalled node. After faults stop the cluster must converge
 * to one view, finish migrations, and hold every acknowledged write (unique keys) on every
 * owner of its partition (RF copies). Stray extra copies on non-owners are counted and reported.
 * The schedules and checkers live in test/fixtures/cluster-sim.ts, shared with `npm run simulate`.
 * A failing seed replays exactly: SHOAL_SEEDS=<seed> npx vitest run test/cluster-faults.test.ts
 */
import { describe, expect, it } from 'vitest';
import type { ClusterNode } from '../lib/cluster/cluster';
import { digestOf } from './fixtures/cluster-memory-store';
import { runCrashScenario, runSplitScenario, SimCluster } from './fixtures/cluster-sim';

// 24, 34, 38, 39: members planned from different holdings (fixed: one snapshot per view).
// 45: an acknowledged write lost when a view changed with its replication in flight (fixed).
// 114: a lost answer to a holdings broadcast was never repeated; migrations waited forever (fixed).
const seeds = process.env.SHOAL_SEEDS?.split(',').map(Number) ?? [24, 34, 45, 114];

const put = (node: ClusterNode, key: string, bins: Record<string, unknown>) =>
  node.execute({ kind: 'record', ns: 'test', digest: digestOf(key), operation: { call: 'put', bins } });

describe('determinism', () => {
  it('the same seed replays the same run exactly', async () => {
    const run = async () => {
      const sim = new SimCluster({ seed: 4242, network: { minDelayMs: 1, maxDelayMs: 15, lossRate: 0.01, duplicateRate: 0.01, reorderRate: 0.01 } });
      const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
      for (const id of ids) await sim.addNode(id, ['n1:7000']);
      // (A writer on a one-node cluster completes in microtasks alone and would starve the loop.)
      expect(await sim.scheduler.runUntil(() => sim.agree(ids), 20_000)).toBe(true);
      let n = 0;
      let stop = false;
      const outcomes: string[] = [];
      const writer = (async () => {
        while (!stop) {
          const key = `k${n++}`;
          try {
            await put(sim.node(ids[n % 5]), key, { n });
            outcomes.push(`${key}@${sim.scheduler.nowMs()}`);
          } catch (error) {
            outcomes.push(`${key}!${(error as Error).message}`);
          }
        }
      })();
      await sim.scheduler.runFor(3_000);
      sim.network.partition(['n1:7000'], ['n2:7000', 'n3:7000', 'n4:7000', 'n5:7000']);
      await sim.scheduler.runFor(3_000);
      sim.network.heal();
      await sim.scheduler.runFor(3_000);
      stop = true;
      await sim.drive(writer);
      return { events: sim.scheduler.eventsRun, keys: ids.map((id) => sim.node(id).view.clusterKey).join(), outcomes: outcomes.join() };
    };
    const first = await run();
    const second = await run();
    expect(second.events).toBe(first.events);
    expect(second.keys).toBe(first.keys);
    expect(second.outcomes).toBe(first.outcomes);
  });
});

// Crash seed 1099: a node that left a view (orphan fallback) re-adopted it from a member's heartbeat, ran a
// second exchange for it and planned differently from the others: a write stayed on one copy (fixed).
const crashSeeds = process.env.SHOAL_CRASH_SEEDS?.split(',').map(Number) ?? [1, 1099];

describe('seeded fault runs with duplication, reordering and a crash (5 nodes)', () => {
  for (const seed of crashSeeds) {
    it(`seed ${seed}: survivors converge and keep every acknowledged write`, async () => {
      const result = await runCrashScenario({ seed });
      console.log(`crash seed ${seed}: victim ${result.victim}, ${result.acknowledged} acknowledged, problems: ${result.missing.slice(0, 5).join(' ')}`);
      expect(result.converged, `seed ${seed}: survivors did not converge`).toBe(true);
      expect(result.missing, `seed ${seed}`).toEqual([]);
    });
  }
});

describe('seeded fault runs (5 nodes)', () => {
  for (const seed of seeds) {
    it(`seed ${seed}: converges and keeps every acknowledged write`, async () => {
      const result = await runSplitScenario({ seed });
      console.log(`seed ${seed}: ${result.acknowledged} acknowledged writes, ${result.simulatedMs} simulated ms, ${result.events} events, stray copies on non-owners ${result.strays}, problems: ${result.missing.slice(0, 5).join(' ')}`);
      expect(result.converged, `seed ${seed}: cluster did not converge`).toBe(true);
      expect(result.missing, `seed ${seed}`).toEqual([]);
    });
  }
});
