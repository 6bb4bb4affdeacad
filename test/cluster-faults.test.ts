/**
 * Seeded fault runs on the simulated network: message loss and jitter, a symmetric split
 * (split brain) that heals, and a stalled node. After faults stop the cluster must converge
 * to one view, finish migrations, and hold every acknowledged write (unique keys) on every
 * owner of its partition (RF copies). Stray extra copies on non-owners are counted and reported.
 * A failing seed replays exactly: SHOAL_SEEDS=<seed> npx vitest run test/cluster-faults.test.ts
 */
import { describe, expect, it } from 'vitest';
import type { ClusterNode } from '../lib/cluster/cluster';
import { SeededRandom } from '../lib/cluster/seams';
import { digestOf, partitionOfDigest } from './fixtures/cluster-memory-store';
import { SimCluster } from './fixtures/cluster-sim';

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
      const sim = new SimCluster({ seed, network: { minDelayMs: 1, maxDelayMs: 20, lossRate: 0.005, duplicateRate: 0.01, reorderRate: 0.01 } });
      const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
      for (const id of ids) await sim.addNode(id, [`n1:7000`, `n2:7000`]);
      expect(await sim.scheduler.runUntil(() => sim.agree(ids), 20_000)).toBe(true);
      const random = new SeededRandom(seed * 104729);
      const victim = ids[random.nextInt(ids.length)];
      const survivors = ids.filter((id) => id !== victim);
      const acknowledged = new Set<string>();
      let stop = false;
      let counter = 0;
      const writers = [0, 1, 2].map(async () => {
        while (!stop) {
          const key = `k${counter++}`;
          const entry = survivors[random.nextInt(survivors.length)];
          try {
            await put(sim.node(entry), key, { v: counter });
            acknowledged.add(key);
          } catch {
            // in doubt
          }
        }
      });
      await sim.scheduler.runFor(1_000 + random.nextInt(2_000));
      sim.crash(victim);
      await sim.scheduler.runFor(1_000 + random.nextInt(1_000));
      sim.network.partition([`${survivors[0]}:7000`], survivors.slice(1).map((id) => `${id}:7000`));
      await sim.scheduler.runFor(2_500);
      sim.network.heal();
      await sim.scheduler.runFor(2_000);
      stop = true;
      sim.network.options.lossRate = 0;
      await sim.drive(Promise.all(writers), 20_000);
      sim.nodes.delete(victim);
      const converged = await sim.scheduler.runUntil(() => sim.agree(survivors) && sim.migrationsDone(), 60_000);
      expect(converged, `seed ${seed}: survivors did not converge`).toBe(true);
      const map = sim.node(survivors[0]).partitionMap;
      const missing: string[] = [];
      for (const key of acknowledged) {
        const digest = digestOf(key);
        const hex = digest.toString('hex');
        for (const owner of map.owners[partitionOfDigest(digest)]) {
          const version = sim.nodes.get(owner)!.store.data.get('test')!.get(hex);
          if (version === undefined || version.tombstone) missing.push(`${key}@${owner}`);
        }
      }
      console.log(`crash seed ${seed}: victim ${victim}, ${acknowledged.size} acknowledged, problems: ${missing.slice(0, 5).join(' ')}`);
      expect(missing, `seed ${seed}`).toEqual([]);
    });
  }
});

describe('seeded fault runs (5 nodes)', () => {
  for (const seed of seeds) {
    it(`seed ${seed}: converges and keeps every acknowledged write`, async () => {
      const sim = new SimCluster({ seed, network: { minDelayMs: 1, maxDelayMs: 15, lossRate: 0.005 } });
      const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
      for (const id of ids) await sim.addNode(id, [`n1:7000`, `n2:7000`]);
      expect(await sim.scheduler.runUntil(() => sim.agree(ids), 20_000)).toBe(true);
      const random = new SeededRandom(seed * 7919);
      const acknowledged = new Set<string>();
      let stop = false;
      let counter = 0;
      const writers = [0, 1, 2].map(async () => {
        while (!stop) {
          const key = `k${counter++}`;
          const entry = ids[random.nextInt(ids.length)];
          try {
            await put(sim.node(entry), key, { v: counter });
            acknowledged.add(key);
          } catch {
            // in doubt: not acknowledged
          }
        }
      });
      const startedMs = sim.scheduler.nowMs();
      await sim.scheduler.runFor(2_000);
      // Split brain: {n1,n2} | {n3,n4,n5}, for 4 s.
      const side = ids.slice(0, 2).map((id) => `${id}:7000`);
      const other = ids.slice(2).map((id) => `${id}:7000`);
      sim.network.partition(side, other);
      await sim.scheduler.runFor(4_000);
      sim.network.heal();
      await sim.scheduler.runFor(1_000 + random.nextInt(1_000));
      // A stall longer than the heartbeat timeout on one node.
      sim.nodes.get(ids[random.nextInt(ids.length)])!.host.stall(2_000 + random.nextInt(1_000));
      await sim.scheduler.runFor(3_000);
      stop = true;
      sim.network.options.lossRate = 0;
      await sim.drive(Promise.all(writers), 20_000);
      const converged = await sim.scheduler.runUntil(() => sim.agree(ids) && sim.migrationsDone(), 60_000);
      const simulatedMs = sim.scheduler.nowMs() - startedMs;
      if (!converged) {
        for (const id of ids) {
          const node = sim.node(id);
          const dp = node.dataPlane as unknown as { outgoing: Set<number>; incoming: Set<number>; plans: unknown; infos: Map<string, unknown>; queue: { length: number } };
          console.log('NODE', id, sim.nodes.get(id)!.logger.entries.filter((e) => e.level !== 'debug' && /migration|failed/.test(e.message)).slice(-3).map((e) => e.message).join(' | '));
          for (const p of [...dp.outgoing, ...dp.incoming]) console.log('PLAN', id, p, JSON.stringify((dp.plans as unknown[])[p]), JSON.stringify([...((dp as unknown as { awaitingMerges: Map<number, Set<string>> }).awaitingMerges.get(p) ?? [])]), 'queue', dp.queue.length);
          console.log('NODE', id, JSON.stringify(node.view), 'remaining', node.migrationsRemaining(), 'out', [...dp.outgoing].slice(0, 5), 'in', [...dp.incoming].slice(0, 5), 'plans', dp.plans !== undefined, 'infos', [...dp.infos.keys()], 'alive', [...node.heartbeat.alivePeers()]);
        }
      }
      expect(converged, `seed ${seed}: cluster did not converge`).toBe(true);
      const missing: string[] = [];
      let strays = 0;
      const map = sim.node('n1').partitionMap;
      for (const key of acknowledged) {
        const digest = digestOf(key);
        const hex = digest.toString('hex');
        const holders = ids.filter((id) => {
          const version = sim.nodes.get(id)!.store.data.get('test')!.get(hex);
          return version !== undefined && !version.tombstone;
        });
        const owners = map.owners[partitionOfDigest(digest)];
        if (!owners.every((owner) => holders.includes(owner))) missing.push(`${key}:${holders.join('+')}`);
        strays += holders.filter((id) => !owners.includes(id)).length;
      }
      console.log(`seed ${seed}: ${acknowledged.size} acknowledged writes, ${simulatedMs} simulated ms, ${sim.scheduler.eventsRun} events, stray copies on non-owners ${strays}, problems: ${missing.slice(0, 5).join(' ')}`);
      expect(missing, `seed ${seed}`).toEqual([]);
    });
  }
});
