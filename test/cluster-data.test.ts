import { describe, expect, it } from 'vitest';
import type { ClusterNode } from '../lib/cluster/cluster';
import { PARTITION_COUNT } from '../lib/cluster/constants';
import { SeededRandom } from '../lib/cluster/seams';
import { digestOf, partitionOfDigest } from '../sim/store';
import { SimCluster } from '../sim/harness';

const put = (node: ClusterNode, key: string, bins: Record<string, unknown>) =>
  node.execute({ kind: 'record', ns: 'test', digest: digestOf(key), operation: { call: 'put', bins } });
const get = (node: ClusterNode, key: string) =>
  node.execute({ kind: 'record', ns: 'test', digest: digestOf(key), operation: { call: 'get' } }) as Promise<{ bins: Record<string, unknown>; gen: number } | undefined>;

async function formed(sim: SimCluster, ids: string[]): Promise<void> {
  for (const id of ids) await sim.addNode(id, id === ids[0] ? [] : [`${ids[0]}:7000`]);
  const ok = await sim.scheduler.runUntil(() => sim.agree(ids) && sim.migrationsDone(), 20_000);
  expect(ok).toBe(true);
}

/** Copies of each key across the given nodes' stores. */
function copies(sim: SimCluster, ids: string[], key: string): number {
  const hex = digestOf(key).toString('hex');
  return ids.filter((id) => {
    const version = sim.nodes.get(id)!.store.data.get('test')!.get(hex);
    return version !== undefined && !version.tombstone;
  }).length;
}

describe('routing and replication (simulated network, in-memory stores)', () => {
  it('writes through any node are readable from every node, with RF copies on the owners', async () => {
    const sim = new SimCluster({ seed: 21, network: { minDelayMs: 1, maxDelayMs: 3 } });
    const ids = ['n1', 'n2', 'n3'];
    await formed(sim, ids);
    const keys = Array.from({ length: 300 }, (_, i) => `k${i}`);
    await sim.drive(Promise.all(keys.map((key, i) => put(sim.node(ids[i % 3]), key, { v: i }))));
    for (const id of ids) {
      const values = await sim.drive(Promise.all(keys.map((key) => get(sim.node(id), key))));
      values.forEach((value, i) => expect(value?.bins.v).toBe(i));
    }
    const map = sim.node('n1').partitionMap;
    for (const key of keys) {
      expect(copies(sim, ids, key)).toBe(2);
      const owners = map.owners[partitionOfDigest(digestOf(key))];
      for (const owner of owners) expect(sim.nodes.get(owner)!.store.data.get('test')!.has(digestOf(key).toString('hex'))).toBe(true);
    }
    // Forwarding happened (one hop): non-masters forwarded requests to masters.
    const forwarded = ids.reduce((sum, id) => sum + sim.node(id).dataPlane!.counters.forwarded, 0);
    expect(forwarded).toBeGreaterThan(300);
  });

  it('scan across the cluster returns every record exactly once', async () => {
    const sim = new SimCluster({ seed: 22 });
    const ids = ['n1', 'n2', 'n3'];
    await formed(sim, ids);
    const keys = Array.from({ length: 200 }, (_, i) => `s${i}`);
    await sim.drive(Promise.all(keys.map((key, i) => put(sim.node('n2'), key, { i }))));
    const all = Array.from({ length: PARTITION_COUNT }, (_, p) => p);
    const rows = (await sim.drive(sim.node('n3').execute({ kind: 'scan', ns: 'test', partitions: all, operation: { call: 'scan' } }))) as { i: number }[];
    expect(rows.map((r) => r.i).sort((a, b) => a - b)).toEqual(keys.map((_, i) => i));
  });

  it('a crashed node under a write load: no acknowledged write lost, RF restored after migrations', async () => {
    const sim = new SimCluster({ seed: 23, network: { minDelayMs: 1, maxDelayMs: 3 } });
    const ids = ['n1', 'n2', 'n3', 'n4'];
    await formed(sim, ids);
    const acknowledged = new Map<string, number>();
    const failures: string[] = [];
    const random = new SeededRandom(5);
    let stop = false;
    let written = 0;
    const writer = async (entry: string) => {
      while (!stop) {
        const key = `w${written++}`;
        try {
          await put(sim.node(entry), key, { n: written });
          acknowledged.set(key, written);
        } catch (error) {
          failures.push(`${key}: ${(error as Error).message}`);
        }
      }
    };
    const writers = [writer('n1'), writer('n2'), writer('n3')];
    await sim.scheduler.runFor(1_000);
    const crashedAt = sim.scheduler.nowMs();
    sim.crash('n4');
    const survivors = ['n1', 'n2', 'n3'];
    await sim.scheduler.runUntil(() => sim.agree(survivors), 10_000);
    const reformedMs = sim.scheduler.nowMs() - crashedAt;
    await sim.scheduler.runFor(2_000);
    stop = true;
    await sim.drive(Promise.all(writers));
    sim.nodes.delete('n4');
    const done = await sim.scheduler.runUntil(() => sim.migrationsDone(), 30_000);
    expect(done).toBe(true);
    expect(reformedMs).toBeLessThan(3_000);
    expect(acknowledged.size).toBeGreaterThan(100);
    // Every acknowledged write is readable, from every survivor, and has 2 copies.
    for (const [key] of acknowledged) {
      expect(copies(sim, survivors, key)).toBe(2);
    }
    const sample = [...acknowledged.keys()].filter(() => random.nextFloat() < 0.2);
    for (const id of survivors) {
      const values = await sim.drive(Promise.all(sample.map((key) => get(sim.node(id), key))));
      values.forEach((value) => expect(value).toBeDefined());
    }
    console.log(`crash test: ${acknowledged.size} acknowledged writes, ${failures.length} failed (in doubt), cluster re-formed in ${reformedMs} ms`);
  });

  it('a node joins under load: migrations finish, no acknowledged write lost, the newcomer owns its share', async () => {
    const sim = new SimCluster({ seed: 24, network: { minDelayMs: 1, maxDelayMs: 3 } });
    const ids = ['n1', 'n2', 'n3'];
    await formed(sim, ids);
    await sim.drive(Promise.all(Array.from({ length: 500 }, (_, i) => put(sim.node(ids[i % 3]), `pre${i}`, { i }))));
    const acknowledged: string[] = [];
    let stop = false;
    let n = 0;
    const writer = (async () => {
      while (!stop) {
        const key = `live${n++}`;
        try {
          await put(sim.node('n1'), key, { n });
          acknowledged.push(key);
        } catch {
          // in doubt; not counted
        }
      }
    })();
    const completed: string[] = [];
    await sim.addNode('n4', ['n2:7000']);
    sim.node('n4').on('migrations-complete', () => completed.push('n4'));
    const all = [...ids, 'n4'];
    const ok = await sim.scheduler.runUntil(() => sim.agree(all) && sim.migrationsDone(), 30_000);
    expect(ok).toBe(true);
    stop = true;
    await sim.drive(writer);
    await sim.scheduler.runUntil(() => sim.migrationsDone(), 10_000);
    for (const key of [...Array.from({ length: 500 }, (_, i) => `pre${i}`), ...acknowledged]) expect(copies(sim, all, key)).toBe(2);
    const state = sim.node('n4').state();
    expect(state.partitions.master).toBeGreaterThan(900);
    expect(state.migrationsRemaining).toBe(0);
    expect(completed).toContain('n4');
    // Non-owners dropped what they no longer own.
    const total = all.reduce((sum, id) => sum + sim.nodes.get(id)!.store.liveCount(), 0);
    expect(total).toBe(2 * (500 + acknowledged.length));
  });

  it('quiesce: the node hands off everything, then leaves with zero client errors', async () => {
    const sim = new SimCluster({ seed: 25, network: { minDelayMs: 1, maxDelayMs: 3 } });
    const ids = ['n1', 'n2', 'n3', 'n4'];
    await formed(sim, ids);
    await sim.drive(Promise.all(Array.from({ length: 400 }, (_, i) => put(sim.node(ids[i % 4]), `q${i}`, { i }))));
    const errors: string[] = [];
    const acknowledged: string[] = [];
    let stop = false;
    let n = 0;
    const writer = (async () => {
      while (!stop) {
        const key = `ql${n++}`;
        try {
          await put(sim.node(['n1', 'n2', 'n3'][n % 3]), key, { n });
          acknowledged.push(key);
        } catch (error) {
          errors.push((error as Error).message);
        }
      }
    })();
    const quiescing = sim.node('n4');
    quiescing.quiesce();
    quiescing.recluster();
    const handedOff = await sim.scheduler.runUntil(
      () => sim.node('n1').view.quiesced.includes('n4') && sim.migrationsDone() && quiescing.state().partitions.master === 0,
      30_000,
    );
    expect(handedOff).toBe(true);
    expect(quiescing.state().partitions).toEqual({ master: 0, replica: 0 });
    await sim.stop('n4');
    const survivors = ['n1', 'n2', 'n3'];
    await sim.scheduler.runUntil(() => sim.agree(survivors) && sim.migrationsDone(), 20_000);
    stop = true;
    await sim.drive(writer);
    expect(errors).toEqual([]);
    for (const key of [...Array.from({ length: 400 }, (_, i) => `q${i}`), ...acknowledged]) expect(copies(sim, survivors, key)).toBe(2);
  });

  it('a returning node catches up by delta, not by a full copy', async () => {
    const sim = new SimCluster({ seed: 26, network: { minDelayMs: 1, maxDelayMs: 3 } });
    const ids = ['n1', 'n2', 'n3'];
    await formed(sim, ids);
    const keys = Array.from({ length: 3000 }, (_, i) => `d${i}`);
    await sim.drive(Promise.all(keys.map((key, i) => put(sim.node(ids[i % 3]), key, { i }))));
    const store = sim.nodes.get('n3')!.store;
    const held = store.liveCount();
    await sim.stop('n3');
    expect(await sim.scheduler.runUntil(() => sim.agree(['n1', 'n2']) && sim.migrationsDone(), 20_000)).toBe(true);
    // While it is away: 100 updates and 100 new records.
    await sim.drive(Promise.all(keys.slice(0, 100).map((key) => put(sim.node('n1'), key, { i: -1 }))));
    await sim.drive(Promise.all(Array.from({ length: 100 }, (_, i) => put(sim.node('n2'), `new${i}`, { i }))));
    const before = ['n1', 'n2'].reduce((sum, id) => sum + sim.node(id).dataPlane!.counters.migratedRecordsOut, 0);
    // It comes back with the data it had (a restart with persisted data).
    await sim.addNode('n3', ['n1:7000'], {}, store);
    expect(await sim.scheduler.runUntil(() => sim.agree(ids) && sim.migrationsDone(), 30_000)).toBe(true);
    const sent = ids.reduce((sum, id) => sum + sim.node(id).dataPlane!.counters.migratedRecordsOut, 0) - before;
    const skipped = ids.reduce((sum, id) => sum + sim.node(id).dataPlane!.counters.skippedByDelta, 0);
    console.log(`returning node: held ${held} records, ${sent} record versions sent on return, ${skipped} skipped as identical`);
    expect(sent).toBeLessThan(held / 4);
    for (const key of [...keys, ...Array.from({ length: 100 }, (_, i) => `new${i}`)]) expect(copies(sim, ids, key)).toBe(2);
    const value = await sim.drive(get(sim.node('n3'), keys[0]));
    expect(value?.bins.i).toBe(-1);
  });

  it('a migration that keeps failing for a while is retried until it succeeds', async () => {
    const sim = new SimCluster({ seed: 27, network: { minDelayMs: 1, maxDelayMs: 3 } });
    const ids = ['n1', 'n2'];
    await formed(sim, ids);
    const keys = Array.from({ length: 200 }, (_, i) => `f${i}`);
    await sim.drive(Promise.all(keys.map((key, i) => put(sim.node('n1'), key, { i }))));
    const joiner = await sim.addNode('n3', ['n1:7000']);
    // The newcomer's store fails every apply for the first 8 simulated seconds (a sick disk).
    const original = joiner.store.applyRecordVersion.bind(joiner.store);
    const healthyAt = sim.scheduler.nowMs() + 8_000;
    joiner.store.applyRecordVersion = async (ns, version) => {
      if (sim.scheduler.nowMs() < healthyAt) throw Object.assign(new Error('EIO'), { code: 'IO_ERROR' });
      return original(ns, version);
    };
    const all = [...ids, 'n3'];
    expect(await sim.scheduler.runUntil(() => sim.agree(all) && sim.migrationsDone(), 60_000)).toBe(true);
    expect(sim.scheduler.nowMs()).toBeGreaterThanOrEqual(healthyAt);
    for (const key of keys) expect(copies(sim, all, key)).toBe(2);
    const requeued = all.reduce((sum, id) => sum + sim.nodes.get(id)!.logger.entries.filter((e) => e.message.includes('retrying in')).length, 0);
    expect(requeued).toBeGreaterThan(0);
  });
});
