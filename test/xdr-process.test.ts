/**
 * Cross-cluster shipping (XDR, docs/xdr.md) between real clusters: every node a child process
 * embedding the Db, on loopback, with a device namespace. Each test ends with no acknowledged
 * write missing at the destination and both clusters identical record by record (bins and
 * generation). Children are SIGKILLed and their directories removed after each test, even on
 * failure; every wait is bounded.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { XdrCluster, destinationOf, dump, eventually, killAll, settled, startXdrCluster, waitForShipped } from './helpers/xdr-clusters';

afterEach(killAll, 30_000);

interface Load {
  acked: Record<string, number | null>;
  count: number;
  errors: string[];
}

/** Keys whose last acknowledged outcome the cluster does not show (a value not there, or a removed key still there). */
function missing(load: Load, records: [string, Record<string, unknown>, number][]): string[] {
  const byKey = new Map(records.map(([key, bins]) => [key, bins]));
  return Object.entries(load.acked).filter(([key, value]) => (value === null ? byKey.has(key) : byKey.get(key)?.v !== value)).map(([key]) => key);
}

async function expectIdentical(source: XdrCluster, destination: XdrCluster): Promise<[string, Record<string, unknown>, number][]> {
  const [here, there] = await Promise.all([dump(source), dump(destination)]);
  expect(there.length).toBe(here.length);
  expect(there).toEqual(here);
  return here;
}

describe('one-way shipping between 2-node clusters', () => {
  it('ships puts, updates and removes made on either source node; both sides end identical', async () => {
    const dc2 = await startXdrCluster('dc2', 2);
    const dc1 = await startXdrCluster('dc1', 2, { xdr: { destinations: [destinationOf(dc2)] } });
    // Both source nodes take writes; each ships the partitions it masters.
    for (const [i, node] of dc1.entries()) await node.value('startWriters', { prefix: `w${i}`, writers: 4, total: 1500, keySpace: 600, removeEvery: 9 });
    const loads = await Promise.all(dc1.map((node, i) => eventually(async () => (await node.value<number>('writerCount', { prefix: `w${i}` })) >= 1500, 60_000).then(() => node.value<Load>('stopWriters', { prefix: `w${i}` }))));
    await waitForShipped(dc1);
    const records = await expectIdentical(dc1, dc2);
    for (const load of loads) {
      expect(load.errors).toEqual([]);
      expect(missing(load, records)).toEqual([]);
    }
    expect(records.length).toBeGreaterThan(900);
    const states = await Promise.all(dc1.map((node) => node.value<{ destinations: { dc2: { connected: boolean; shippedRecords: number; pendingRecords: number; conflicts: number } } }>('xdrState')));
    // Both nodes shipped (each masters about half the partitions).
    for (const state of states) {
      expect(state.destinations.dc2.connected).toBe(true);
      expect(state.destinations.dc2.shippedRecords).toBeGreaterThan(200);
      expect(state.destinations.dc2.pendingRecords).toBe(0);
      expect(state.destinations.dc2.conflicts).toBe(0);
    }
  }, 180_000);
});
