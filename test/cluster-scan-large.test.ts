/**
 * A cluster scan whose reply from one master would exceed the fabric's frame limit
 * (MAX_FRAME_BYTES): the master says so instead of failing to send, and the scan asks again
 * for half the partitions at a time. Two Dbs in this process on real loopback TCP.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { ClusterNode } from '../lib/cluster/cluster';
import { MAX_FRAME_BYTES } from '../lib/cluster/constants';
import { open, type Db } from '../lib/index';
import { digestOf } from '../lib/model/digest';
import { partitionIdOf } from '../lib/model/key';
import { cleanupTempDirs, tempDir } from './helpers/temp';

const dbs: Db[] = [];

afterAll(async () => {
  for (const db of dbs) await db.close({ dropIndex: true }).catch(() => undefined);
  cleanupTempDirs(['big']);
});

async function startNode(nodeId: string, seeds: string[]): Promise<Db> {
  const db = await open({
    dataDir: tempDir(),
    namespaces: [{ name: 'big', storage: { type: 'memory', maxBytes: 256 << 20 }, maxRecordBytes: 1 << 20 }],
    cluster: { nodeId, listen: { host: '127.0.0.1', port: 0 }, seeds, heartbeatIntervalMs: 100 },
    log: () => undefined,
  });
  dbs.push(db);
  return db;
}

const nodeOf = (db: Db) => (db as unknown as { clusterNode: ClusterNode }).clusterNode;

describe('cluster scan over the frame limit', () => {
  it('returns every record: the master reports its reply too large instead of failing to send it, and the caller asks for half the partitions at a time', async () => {
    const a = await startNode('sc-a', []);
    const b = await startNode('sc-b', [a.cluster!.address]);
    const deadline = Date.now() + 20_000;
    while (a.stats().clusterSize !== 2 || b.stats().clusterSize !== 2) {
      if (Date.now() > deadline) throw new Error('no cluster of two');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await a.cluster!.waitForMigrations({ timeoutMs: 20_000 });

    // Keys in the first scan group (partitions 0..255) that b masters: their records all come
    // back in one reply from b unless the scan splits it.
    const blob = Buffer.alloc(700_000, 7);
    const keys: number[] = [];
    for (let i = 0; keys.length * blob.length < MAX_FRAME_BYTES * 1.5; i++) {
      const partition = partitionIdOf(digestOf('s', i));
      if (partition < 256 && nodeOf(a).masterOf(partition) === 'sc-b') keys.push(i);
    }
    for (const key of keys) await a.put({ ns: 'big', set: 's', key }, { key, blob });

    const seen: number[] = [];
    for await (const record of a.scan('big', 's', { partitions: Array.from({ length: 256 }, (_, p) => p) })) {
      expect((record.bins.blob as Buffer).length).toBe(blob.length);
      seen.push(record.bins.key as number);
    }
    expect(seen.sort((x, y) => x - y)).toEqual(keys);
    expect(nodeOf(a).dataPlane!.counters.scanSplits).toBeGreaterThan(0);
    // Both nodes still serve.
    expect((await b.get({ ns: 'big', set: 's', key: keys[0]! }))?.bins.key).toBe(keys[0]);
  }, 60_000);
});
