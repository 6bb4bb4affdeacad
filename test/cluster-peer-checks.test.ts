/**
 * The data plane trusts nothing a peer sends (issue 13), on the simulated network: a member of
 * the cluster (it joined like any node, so the fabric authenticated it) sends data-plane
 * messages with fields out of bounds, or for partitions and roles the receiver does not expect
 * from it. Each is refused, nothing of it is applied, and the refusal is logged, rate-limited.
 * Before, `migrate-batch` with partition -1 was applied, any member could replicate any record
 * with any generation, and any member could settle any partition.
 */
import { describe, expect, it } from 'vitest';
import type { ClusterNode } from '../lib/cluster/cluster';
import type { RecordVersion } from '../lib/cluster/local-store';
import { versionsToWire } from '../lib/cluster/peer-checks';
import { SimCluster } from '../sim/harness';
import { digestOf, partitionOfDigest } from '../sim/store';

const put = (node: ClusterNode, key: string, bins: Record<string, unknown>) =>
  node.execute({ kind: 'record', ns: 'test', digest: digestOf(key), operation: { call: 'put', bins } });

/** Two honest nodes and a member that sends what it likes. */
async function clusterWithIntruder(seed: number): Promise<SimCluster> {
  const sim = new SimCluster({ seed, network: { minDelayMs: 1, maxDelayMs: 2 } });
  for (const id of ['n1', 'n2', 'evil']) await sim.addNode(id, ['n1:7000']);
  expect(await sim.scheduler.runUntil(() => sim.agree(['n1', 'n2', 'evil']) && sim.migrationsDone(), 20_000)).toBe(true);
  return sim;
}

/** A key whose partition `node` masters and `evil` neither serves nor owns. */
function keyServedBy(sim: SimCluster, node: string): string {
  const map = sim.node(node).partitionMap;
  for (let i = 0; ; i++) {
    const key = `victim${i}`;
    const owners = map.owners[partitionOfDigest(digestOf(key))];
    if (owners[0] === node && !owners.includes('evil')) return key;
  }
}

function version(key: string, gen: number, bins: Record<string, unknown>, lastUpdateMs = 1_700_000_000_000): RecordVersion {
  return { digest: digestOf(key), gen, voidTime: 0, lastUpdateMs, setName: '', tombstone: false, payload: Buffer.from(JSON.stringify(bins)) };
}

function stored(sim: SimCluster, node: string, key: string): RecordVersion | undefined {
  return sim.nodes.get(node)!.store.data.get('test')!.get(digestOf(key).toString('hex'));
}

function refusals(sim: SimCluster, node: string): string[] {
  return sim.nodes.get(node)!.logger.entries.filter((e) => e.message.startsWith('cluster: refused')).map((e) => e.message);
}

/** Sends `message` from the intruder to `to` and lets the cluster run a little. */
async function intrude(sim: SimCluster, to: string, message: Record<string, unknown> & { type: string }): Promise<void> {
  sim.node('evil').fabric.sendToNode(to, { id: `evil#${Math.random()}`, ...message });
  await sim.scheduler.runFor(200);
}

describe('a member that sends what it should not (simulated network)', () => {
  it('migrate-batch for partition -1, or for a partition it has no role in, is refused and nothing is applied', async () => {
    const sim = await clusterWithIntruder(1301);
    const key = keyServedBy(sim, 'n1');
    const clusterKey = sim.node('n1').view.clusterKey;
    const forged = versionsToWire([version(key, 9, { forged: true })]);
    await intrude(sim, 'n1', { type: 'migrate-batch', clusterKey, partition: -1, phase: 'fill', ns: 'test', versions: forged, last: true });
    await intrude(sim, 'n1', { type: 'migrate-batch', clusterKey, partition: partitionOfDigest(digestOf(key)), phase: 'fill', ns: 'test', versions: forged, last: true });
    await intrude(sim, 'n1', { type: 'migrate-batch', clusterKey, partition: partitionOfDigest(digestOf(key)), phase: 'merge', ns: 'test', versions: forged, last: true });
    expect(stored(sim, 'n1', key)).toBeUndefined();
    const refused = refusals(sim, 'n1');
    expect(refused.some((line) => line.includes('migrate-batch') && line.includes('no valid partition'))).toBe(true);
    expect(refused.filter((line) => line.includes('does not expect from evil'))).toHaveLength(2);
  });

  it('a replication of a record it does not serve, with a generation far ahead, is refused and not acknowledged', async () => {
    const sim = await clusterWithIntruder(1302);
    const key = keyServedBy(sim, 'n1');
    await sim.drive(put(sim.node('n1'), key, { v: 'honest' }));
    const clusterKey = sim.node('n1').view.clusterKey;
    const replica = sim.node('n1').partitionMap.owners[partitionOfDigest(digestOf(key))][1]!;
    let acknowledged = false;
    const original = sim.node(replica).fabric.sendToNode.bind(sim.node(replica).fabric);
    sim.node(replica).fabric.sendToNode = (to, message) => {
      if (to === 'evil' && message.type === 'replicate-ack') acknowledged = true;
      return original(to, message);
    };
    await intrude(sim, replica, { type: 'replicate', clusterKey, ns: 'test', versions: versionsToWire([version(key, 65_000, { v: 'forged' })]) });
    expect(acknowledged).toBe(false);
    expect(stored(sim, replica, key)?.gen).toBe(1);
    expect(JSON.parse(stored(sim, replica, key)!.payload!.toString())).toEqual({ v: 'honest' });
    expect(refusals(sim, replica).some((line) => line.includes('replicate') && line.includes('from a node that does not serve it'))).toBe(true);
  });

  it('record versions out of bounds are refused field by field', async () => {
    const sim = await clusterWithIntruder(1303);
    // A partition the intruder serves: only the fields can be wrong.
    const map = sim.node('n1').partitionMap;
    let key = '';
    for (let i = 0; ; i++) {
      const owners = map.owners[partitionOfDigest(digestOf(`own${i}`))];
      if (owners[0] === 'evil' && owners.includes('n1')) {
        key = `own${i}`;
        break;
      }
    }
    const clusterKey = sim.node('n1').view.clusterKey;
    const good = version(key, 3, { v: 1 });
    const wire = (v: Partial<Record<keyof RecordVersion, unknown>>) => [v.digest, v.gen, v.voidTime, v.lastUpdateMs, v.setName, v.tombstone, v.payload ?? null];
    const bad: [string, unknown[]][] = [
      ['2-byte digest', wire({ ...good, digest: Buffer.from([1, 2]) })],
      ['generation 0', wire({ ...good, gen: 0 })],
      ['generation beyond 32 bits', wire({ ...good, gen: 2 ** 33 })],
      ['negative last-update time', wire({ ...good, lastUpdateMs: -5 })],
      ['non-finite last-update time', wire({ ...good, lastUpdateMs: Number.POSITIVE_INFINITY })],
      ['set name of 200 bytes', wire({ ...good, setName: 's'.repeat(200) })],
      ['tombstone flag that is a string', wire({ ...good, tombstone: 'yes' })],
      ['no payload', wire({ ...good, payload: null })],
      ['truncated list', wire(good).slice(0, 5)],
    ];
    for (const [, versions] of bad) await intrude(sim, 'n1', { type: 'replicate', clusterKey, ns: 'test', versions });
    expect(stored(sim, 'n1', key)).toBeUndefined();
    expect(sim.node('n1').dataPlane!.refusals.counts.get('replicate')).toBe(bad.length);
    // The same version, well formed, from the node that serves it, is applied.
    await intrude(sim, 'n1', { type: 'replicate', clusterKey, ns: 'test', versions: versionsToWire([good]) });
    expect(stored(sim, 'n1', key)?.gen).toBe(3);
  });

  it('a settle notice from a node that is not the acting master settles nothing', async () => {
    const sim = await clusterWithIntruder(1304);
    const n1 = sim.node('n1');
    const clusterKey = n1.view.clusterKey;
    // A new view (n3 joins, with data to move) makes partitions migrate; the intruder claims they are done.
    await sim.drive(Promise.all(Array.from({ length: 2_000 }, (_, i) => put(n1, `pre${i}`, { i }))));
    await sim.addNode('n3', ['n1:7000']);
    expect(await sim.scheduler.runUntil(() => n1.view.succession.length === 4 && n1.dataPlane!.migrationsRemaining() < 4096, 20_000, 1)).toBe(true);
    expect(n1.view.clusterKey).not.toBe(clusterKey);
    // Partitions still moving whose acting masters (n2, n3) are paused: only the intruder speaks.
    sim.nodes.get('n2')!.host.stall(1_000);
    sim.nodes.get('n3')!.host.stall(1_000);
    const moving = Array.from({ length: 4096 }, (_, p) => p).filter((p) => ['n2', 'n3'].includes(n1.dataPlane!.actingMaster(p) ?? '') && n1.partitionMap.owners[p][0] !== n1.dataPlane!.actingMaster(p));
    expect(moving.length).toBeGreaterThan(0);
    const before = moving.map((p) => n1.dataPlane!.actingMaster(p));
    sim.node('evil').fabric.sendToNode('n1', { type: 'partition-settled', clusterKey: n1.view.clusterKey, partitions: moving });
    await sim.scheduler.runFor(20);
    expect(moving.map((p) => n1.dataPlane!.actingMaster(p))).toEqual(before);
    expect(refusals(sim, 'n1').some((line) => line.includes('partition-settled'))).toBe(true);
  });

  it('requests from a node outside the view are not executed', async () => {
    const sim = await clusterWithIntruder(1305);
    // The intruder is cut off and falls back to a view of its own.
    sim.network.block('n1:7000', 'evil:7000');
    sim.network.block('n2:7000', 'evil:7000');
    expect(await sim.scheduler.runUntil(() => !sim.node('n1').view.succession.includes('evil'), 20_000)).toBe(true);
    // Healed, the intruder connects again (a handshake needs both directions, so this cannot be
    // a one-way block) a few hundred simulated ms before a merge makes it a member again.
    sim.network.heal();
    expect(await sim.scheduler.runUntil(() => sim.node('evil').fabric.connectionCounts().outbound === 2, 5_000, 1)).toBe(true);
    expect(sim.node('n1').view.succession).not.toContain('evil');
    const key = keyServedBy(sim, 'n1');
    await intrude(sim, 'n1', { type: 'request', request: { kind: 'record', ns: 'test', digest: digestOf(key), operation: { call: 'put', bins: { v: 'outsider' } } } });
    expect(stored(sim, 'n1', key)).toBeUndefined();
    expect(sim.nodes.get('n1')!.logger.entries.some((e) => e.message.includes('refused message from a non-member from evil'))).toBe(true);
  });

  it('a flood of bad messages is logged a few lines per interval, the rest counted', async () => {
    const sim = await clusterWithIntruder(1306);
    const clusterKey = sim.node('n1').view.clusterKey;
    for (let i = 0; i < 200; i++) {
      sim.node('evil').fabric.sendToNode('n1', { type: 'migrate-batch', id: `f${i}`, clusterKey, partition: 5000 + i, phase: 'fill', ns: 'test', versions: [], last: true });
    }
    await sim.scheduler.runFor(500);
    expect(sim.node('n1').dataPlane!.refusals.counts.get('migrate-batch')).toBe(200);
    expect(refusals(sim, 'n1').filter((line) => line.includes('migrate-batch')).length).toBeLessThanOrEqual(5);
  });
});
