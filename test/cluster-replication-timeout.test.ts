/**
 * Regression (full seed 140 of the simulator's long run): a write whose replication timed out
 * while the view stood left the master's copy holding a version the replica lacked, under the
 * same lineage; at the next view the two copies passed as identical and never converged
 * (replicas-identical failed). A copy whose replication gave up now gets a lineage of its own
 * at the next view and is merged.
 *
 * Replay of the original finding: npm run simulate -- --seed 140 --ticks 60000 --scenario full
 */
import { describe, expect, it } from 'vitest';
import type { ClusterNode } from '../lib/cluster/cluster';
import { ShoalError } from '../lib/errors';
import { SimCluster } from '../sim/harness';
import { runScenario } from '../sim/scenarios';
import { digestOf, partitionOfDigest } from '../sim/store';

const put = (node: ClusterNode, key: string) =>
  node.execute({ kind: 'record', ns: 'test', digest: digestOf(key), operation: { call: 'put', bins: { v: key } } });

describe('a write whose replication timed out', () => {
  it('is merged onto the replica at the next view: the owners end identical', async () => {
    const sim = new SimCluster({ seed: 140, network: { minDelayMs: 1, maxDelayMs: 3 } });
    const ids = ['n1', 'n2', 'n3'];
    for (const id of ids) await sim.addNode(id, ['n1:7000']);
    expect(await sim.scheduler.runUntil(() => sim.agree(ids) && sim.migrationsDone(), 20_000)).toBe(true);
    const map = sim.node('n1').partitionMap;
    // A key mastered by n1 with n2 as its replica.
    let key = '';
    for (let i = 0; key === ''; i++) {
      const owners = map.owners[partitionOfDigest(digestOf(`k${i}`))];
      if (owners[0] === 'n1' && owners[1] === 'n2') key = `k${i}`;
    }
    const hex = digestOf(key).toString('hex');
    // The replica's store fails its writes: it never acknowledges; heartbeats go on, so the
    // view stands while the master's replication times out.
    const replica = sim.nodes.get('n2')!.store;
    replica.failWrites();
    const outcome = await sim.drive(put(sim.node('n1'), key).then(() => 'acknowledged', (error: unknown) => (error as ShoalError).code), 20_000);
    expect(outcome).toBe('TIMEOUT');
    const viewBefore = sim.node('n1').view.clusterKey;
    expect(sim.node('n2').view.clusterKey).toBe(viewBefore);
    expect(sim.nodes.get('n1')!.store.data.get('test')!.has(hex)).toBe(true);
    expect(replica.data.get('test')!.has(hex)).toBe(false);
    // The device recovers; the next view (a recluster here) must bring the copies together.
    replica.failed = false;
    sim.node('n2').recluster();
    expect(await sim.scheduler.runUntil(() => sim.node('n1').view.clusterKey !== viewBefore && sim.agree(ids) && sim.migrationsDone(), 20_000)).toBe(true);
    const owners = sim.node('n1').partitionMap.owners[partitionOfDigest(digestOf(key))];
    const versions = owners.map((id) => sim.nodes.get(id)!.store.data.get('test')!.get(hex));
    expect(versions.every((version) => version !== undefined && version.gen === versions[0]!.gen && version.lastUpdateMs === versions[0]!.lastUpdateMs)).toBe(true);
  });

  it('full seed 140 passes every checker', async () => {
    const result = await runScenario('full', { seed: 140, faultMs: 60_000 });
    expect(result.checks.filter((check) => !check.passed), 'replay: npm run simulate -- --seed 140 --ticks 60000 --scenario full').toEqual([]);
  });
});
