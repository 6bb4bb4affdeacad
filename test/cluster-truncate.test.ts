/**
 * Truncate in cluster mode (docs/cluster.md, "Truncate"): three Dbs in this process on real
 * loopback TCP, and a split on the simulated network. A truncate through any node removes every copy on every node; a node that was
 * away during the truncate comes back with its old copies (a warm restart of its memory
 * namespace, its device namespace's data on disk) and neither serves them nor lets them
 * migrate back.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { ClusterNode } from '../lib/cluster/cluster';
import { SimCluster } from '../sim/harness';
import { digestOf as simDigestOf } from '../sim/store';
import { open, type Db } from '../lib/index';
import { cleanupTempDirs, tempDir } from './helpers/temp';

const NAMESPACES = ['cache', 'disk'];
const open_: Db[] = [];

afterAll(async () => {
  for (const db of open_) await db.close({ dropIndex: true }).catch(() => undefined);
  cleanupTempDirs(NAMESPACES);
});

async function startNode(nodeId: string, dataDir: string, seeds: string[]): Promise<Db> {
  const db = await open({
    dataDir,
    namespaces: [
      { name: 'cache', storage: { type: 'memory', maxBytes: 32 << 20 } },
      { name: 'disk', storage: { type: 'device', paths: ['disk.dat'], sizeBytes: 64 << 20 } },
    ],
    cluster: { nodeId, listen: { host: '127.0.0.1', port: 0 }, seeds, heartbeatIntervalMs: 100 },
    log: () => undefined,
  });
  open_.push(db);
  return db;
}

async function closeNode(db: Db): Promise<void> {
  open_.splice(open_.indexOf(db), 1);
  await db.close();
}

/** Waits until every db sees a cluster of exactly these dbs with migrations finished. */
async function settled(dbs: Db[], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (dbs.some((db) => db.stats().clusterSize !== dbs.length)) {
    if (Date.now() > deadline) throw new Error(`no cluster of ${dbs.length} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await Promise.all(dbs.map((db) => db.cluster!.waitForMigrations({ timeoutMs: Math.max(1, deadline - Date.now()) })));
}

const objects = (db: Db, ns: string) => db.stats().namespaces[ns]!.objects;

describe('truncate in cluster mode', () => {
  it('removes every copy on every node, per set or for the whole namespace', async () => {
    const a = await startNode('tr-a', tempDir(), []);
    const b = await startNode('tr-b', tempDir(), [a.cluster!.address]);
    const c = await startNode('tr-c', tempDir(), [a.cluster!.address]);
    const dbs = [a, b, c];
    await settled(dbs);
    for (const ns of NAMESPACES) {
      for (let i = 0; i < 150; i++) {
        await a.put({ ns, set: 'gone', key: i }, { i });
        await b.put({ ns, set: 'kept', key: i }, { i });
      }
    }
    // Replication factor 2: two copies of each record across the three nodes, one a master copy
    // (counted per partition, which device namespaces do too).
    for (const ns of NAMESPACES) {
      expect(dbs.reduce((sum, db) => sum + objects(db, ns), 0)).toBe(600);
      expect(dbs.reduce((sum, db) => sum + db.stats().namespaces[ns]!.masterObjects, 0)).toBe(300);
    }

    for (const ns of NAMESPACES) expect(await c.truncate(ns, 'gone')).toBe(300);
    for (const db of dbs) {
      for (const ns of NAMESPACES) {
        for (let i = 0; i < 150; i += 7) {
          expect(await db.get({ ns, set: 'gone', key: i })).toBeUndefined();
          expect((await db.get({ ns, set: 'kept', key: i }))?.bins).toEqual({ i });
        }
      }
    }
    for (const ns of NAMESPACES) {
      expect(dbs.reduce((sum, db) => sum + objects(db, ns), 0)).toBe(300);
      expect(dbs.reduce((sum, db) => sum + db.stats().namespaces[ns]!.masterObjects, 0)).toBe(150);
      const scanned = [];
      for await (const record of b.scan(ns)) scanned.push(record);
      expect(scanned.length).toBe(150);
      expect(scanned.every((record) => record.key.set === 'kept')).toBe(true);
    }

    // A write acknowledged after truncate resolves is never taken for truncated.
    expect(await a.truncate('cache')).toBe(300);
    await b.put({ ns: 'cache', set: 'kept', key: 'after' }, { fresh: true });
    for (const db of dbs) expect((await db.get({ ns: 'cache', set: 'kept', key: 'after' }))?.bins).toEqual({ fresh: true });
  }, 60_000);

  it('removes every write acknowledged before the call, even where the hybrid clocks run ahead of the wall clock', async () => {
    const a = await startNode('tr-h', tempDir(), []);
    const b = await startNode('tr-i', tempDir(), [a.cluster!.address]);
    const c = await startNode('tr-j', tempDir(), [a.cluster!.address]);
    const dbs = [a, b, c];
    await settled(dbs);
    // Rewrites of one record within a millisecond are stamped one millisecond apart (last-update
    // times never repeat), and the master's clock follows them: 3,000 rewrites in one batch put
    // it seconds ahead of the wall clock. A cut of "now" by the wall clock would spare them.
    for (const ns of NAMESPACES) {
      const entries = Array.from({ length: 3_000 }, (_, i) => ({ key: { ns, set: 'hot', key: 'counter' }, bins: { i } }));
      const results = await a.batchPut(entries);
      expect(results.every((result) => !(result instanceof Error))).toBe(true);
      await b.put({ ns, set: 'cold', key: 'x' }, { x: 1 });
    }
    for (const ns of NAMESPACES) {
      expect(await c.truncate(ns)).toBe(4);
      for (const db of dbs) {
        expect(await db.get({ ns, set: 'hot', key: 'counter' })).toBeUndefined();
        expect(await db.get({ ns, set: 'cold', key: 'x' })).toBeUndefined();
        expect(objects(db, ns)).toBe(0);
      }
    }
    // And every write acknowledged after it resolves is kept, on every node.
    for (const ns of NAMESPACES) {
      await a.put({ ns, set: 'hot', key: 'counter' }, { after: true });
      for (const db of dbs) expect((await db.get({ ns, set: 'hot', key: 'counter' }))?.bins).toEqual({ after: true });
    }
  }, 60_000);

  it('a node that was away during the truncate neither serves nor migrates back its old copies', async () => {
    const a = await startNode('tr-d', tempDir(), []);
    const b = await startNode('tr-e', tempDir(), [a.cluster!.address]);
    const awayDir = tempDir();
    let away = await startNode('tr-f', awayDir, [a.cluster!.address]);
    await settled([a, b, away]);
    for (const ns of NAMESPACES) for (let i = 0; i < 200; i++) await a.put({ ns, set: 's', key: i }, { i });
    const heldAway = { cache: objects(away, 'cache'), disk: objects(away, 'disk') };
    expect(heldAway.cache).toBeGreaterThan(0);
    expect(heldAway.disk).toBeGreaterThan(0);

    await closeNode(away);
    await settled([a, b]);
    for (const ns of NAMESPACES) expect(await a.truncate(ns, 's')).toBe(400);
    await a.put({ ns: 'disk', set: 's', key: 'fresh' }, { fresh: true });

    // Back with its old copies: the memory namespace re-attaches to shared memory, the device
    // namespace finds its records on disk.
    away = await startNode('tr-f', awayDir, [a.cluster!.address]);
    await settled([a, b, away]);
    for (const db of [a, b, away]) {
      for (const ns of NAMESPACES) {
        for (let i = 0; i < 200; i += 3) expect(await db.get({ ns, set: 's', key: i })).toBeUndefined();
      }
      expect((await db.get({ ns: 'disk', set: 's', key: 'fresh' }))?.bins).toEqual({ fresh: true });
    }
    expect(objects(away, 'cache')).toBe(0);
    expect(objects(a, 'cache') + objects(b, 'cache')).toBe(0);
    expect(objects(a, 'disk') + objects(b, 'disk') + objects(away, 'disk')).toBe(2);
    const scanned = [];
    for await (const record of away.scan('disk')) scanned.push(record.key.key ?? record.key.digest);
    expect(scanned.length).toBe(1);
  }, 90_000);

  it('refuses a malformed truncate from a peer without harm', async () => {
    const a = await startNode('tr-g', tempDir(), []);
    await a.put({ ns: 'cache', key: 1 }, { v: 1 });
    // The cluster node's own entry point, which checks a cut exactly as for a peer's broadcast
    // or heartbeat (a cut far ahead of this node's clock, an unknown namespace, a bad set).
    const node = (a as unknown as { clusterNode: ClusterNode }).clusterNode;
    await expect(node.truncate({ ns: 'cache', set: null, beforeMs: Date.now() + 3_600_000 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(node.truncate({ ns: 'nope', set: null, beforeMs: Date.now() })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(node.truncate({ ns: 'cache', set: 7 as unknown as string, beforeMs: Date.now() })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(node.truncate({ ns: 'cache', set: null, beforeMs: Number.NaN })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((await a.get({ ns: 'cache', key: 1 }))?.bins).toEqual({ v: 1 });
  }, 30_000);
});

describe('truncate on the simulated network (seeded scheduler, in-memory stores)', () => {
  const put = (node: ClusterNode, key: string, bins: Record<string, unknown>) =>
    node.execute({ kind: 'record', ns: 'test', digest: simDigestOf(key), operation: { call: 'put', bins } });
  const get = (node: ClusterNode, key: string) =>
    node.execute({ kind: 'record', ns: 'test', digest: simDigestOf(key), operation: { call: 'get' } }) as Promise<{ bins: Record<string, unknown> } | undefined>;

  it('a node on the other side of a split brings none of its truncated copies back when the split heals', async () => {
    const sim = new SimCluster({ seed: 811, network: { minDelayMs: 1, maxDelayMs: 3 } });
    const ids = ['t1', 't2', 't3'];
    for (const id of ids) await sim.addNode(id, ['t1:7000']);
    expect(await sim.scheduler.runUntil(() => sim.agree(ids) && sim.migrationsDone(), 20_000)).toBe(true);
    const old = Array.from({ length: 200 }, (_, i) => `old${i}`);
    await sim.drive(Promise.all(old.map((key) => put(sim.node('t1'), key, { v: 1 }))));
    expect(sim.nodes.get('t3')!.store.liveCount()).toBeGreaterThan(0);

    sim.network.partition(['t1:7000', 't2:7000'], ['t3:7000']);
    expect(await sim.scheduler.runUntil(() => sim.agree(['t1', 't2']) && sim.agree(['t3']) && sim.migrationsDone(), 20_000)).toBe(true);
    const cut = { ns: 'test', set: null, beforeMs: sim.nodes.get('t1')!.host.wallClock.nowMs() + 1 };
    // The view is {t1, t2}, each with every record after the migrations: two copies each.
    expect(await sim.drive(sim.node('t1').truncate(cut))).toBe(400);
    expect(sim.nodes.get('t3')!.store.liveCount()).toBeGreaterThan(0);  // t3 has not heard of it
    await sim.drive(put(sim.node('t2'), 'fresh', { v: 2 }));

    sim.network.heal();
    expect(await sim.scheduler.runUntil(() => sim.agree(ids) && sim.migrationsDone(), 30_000)).toBe(true);
    expect(sim.nodes.get('t3')!.store.truncateCuts()).toEqual([cut]);
    for (const id of ids) {
      const records = sim.nodes.get(id)!.store.data.get('test')!;
      for (const key of old) expect(records.get(simDigestOf(key).toString('hex'))).toBeUndefined();
      for (const key of old.slice(0, 20)) expect(await sim.drive(get(sim.node(id), key))).toBeUndefined();
      expect((await sim.drive(get(sim.node(id), 'fresh')))?.bins).toEqual({ v: 2 });
    }
  });
});
