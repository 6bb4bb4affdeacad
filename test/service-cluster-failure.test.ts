/**
 * kill -9 of a Shoal node under an official-client write load: every write the client saw
 * acknowledged is read back afterwards from the surviving nodes (replication factor 2: a write
 * is acknowledged once master and replica applied it), and the client routes to the survivors
 * once they publish the new partition map.
 */
import { afterAll, expect, it } from 'vitest';
import Aerospike from 'aerospike';
import { cleanupTempDirs } from './helpers/temp';
import { ServedNode, stopNode } from './helpers/service-server';
import { serveCluster, waitForSettled } from './helpers/service-cluster';

let nodes: ServedNode[] = [];
let client: Aerospike.Client | undefined;

afterAll(async () => {
  await client?.close();
  await Promise.all(nodes.map((node) => stopNode(node)));
  cleanupTempDirs();
});

it('loses no acknowledged write when a node is killed with SIGKILL under load', async () => {
  nodes = await serveCluster(3);
  client = await Aerospike.connect({ hosts: [{ addr: nodes[0]!.host, port: nodes[0]!.port }], log: { level: Aerospike.log.OFF }, tenderInterval: 250 });
  await waitForSettled(client, nodes, 3);
  const policy = new Aerospike.WritePolicy({ totalTimeout: 3000, maxRetries: 2 });
  const acknowledged = new Map<string, number>();
  let failed = 0;
  let stop = false;
  let next = 0;
  const load = Promise.all(
    Array.from({ length: 16 }, async () => {
      while (!stop) {
        const id = next++;
        const name = `k${id}`;
        try {
          await client!.put(new Aerospike.Key('test', 'kill', name), { id }, {}, policy);
          acknowledged.set(name, id);
        } catch {
          failed++;
        }
      }
    }),
  );
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const victim = nodes[1]!;
  victim.child.kill('SIGKILL');
  await victim.exited;
  const killedAt = acknowledged.size;
  await new Promise((resolve) => setTimeout(resolve, 6000));
  stop = true;
  await load;
  const survivors = nodes.filter((node) => node !== victim);
  await waitForSettled(client, survivors, 2);
  const read = new Aerospike.ReadPolicy({ totalTimeout: 5000, maxRetries: 3 });
  const lost: string[] = [];
  const names = [...acknowledged.keys()];
  for (let start = 0; start < names.length; start += 200) {
    const batch = names.slice(start, start + 200);
    const results = await client.batchRead(batch.map((name) => ({ key: new Aerospike.Key('test', 'kill', name), readAllBins: true })), new Aerospike.BatchPolicy({ totalTimeout: 10_000 }));
    results.forEach((result, i) => {
      if (result.status !== Aerospike.status.OK || result.record.bins.id !== acknowledged.get(batch[i]!)) lost.push(batch[i]!);
    });
  }
  console.log(`kill -9 under load: ${acknowledged.size} writes acknowledged (${killedAt} before the kill), ${failed} failed or timed out, ${lost.length} acknowledged writes lost`);
  expect(acknowledged.size).toBeGreaterThan(killedAt);
  expect(killedAt).toBeGreaterThan(100);
  expect(lost).toEqual([]);
}, 180_000);
