/**
 * A three-node Shoal cluster as the official client's smart-client tier: given one seed, the
 * client discovers every node through peers-clear-std, learns the partition map from replicas,
 * and sends each key straight to its master, so no node forwards a request. Then quiesce: and
 * recluster: through the client's info API move a node's partitions away under a client load
 * with zero client errors, after which the node is stopped, still with zero errors.
 */
import * as net from 'node:net';
import { expect, it } from 'vitest';
import Aerospike from 'aerospike';
import { digestOf, partitionOf } from '../lib/index';
import { ByteWriter } from '../lib/service/byte-writer';
import { FieldType, FrameType, Info2, OpCode, beginFrame, beginOp, endFrame, endOp, writeField, writeMessageHeader, writeStringField } from '../lib/service/wire';
import { ServedNode, stopNode } from './helpers/service-server';
import { publishedMasters, statisticsOf, useServedCluster, waitForClientNodes } from './helpers/service-cluster';

let nodes: ServedNode[] = [];
let client: Aerospike.Client;

// One seed only: the other two are discovered.
useServedCluster(3, (cluster) => ({ nodes, client } = cluster));

it('discovers all three nodes from one seed and routes every key to its master', async () => {
  await waitForClientNodes(client, 3);
  expect(client.getNodes().map((node) => node.name).sort()).toEqual(nodes.map((node) => node.node).sort());
  const masters = await publishedMasters(client, nodes);
  expect(masters.every((name) => name !== undefined)).toBe(true);
  // Give the client a few tends to load the settled map.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const before = await Promise.all(nodes.map((node) => statisticsOf(client, node)));
  const expected = new Map(nodes.map((node) => [node.node, 0]));
  const keys = 600;
  for (let i = 0; i < keys; i++) {
    const key = new Aerospike.Key('test', 'routing', `k${i}`);
    await client.put(key, { i });
    expect((await client.get(key)).bins.i).toBe(i);
    const master = masters[partitionOf(digestOf('routing', `k${i}`))]!;
    expected.set(master, expected.get(master)! + 2);
  }
  const after = await Promise.all(nodes.map((node) => statisticsOf(client, node)));
  const executed = nodes.map((node, i) => (after[i]!.cluster_requests_executed_as_master as number) - (before[i]!.cluster_requests_executed_as_master as number));
  const forwarded = nodes.map((node, i) => (after[i]!.cluster_requests_forwarded as number) - (before[i]!.cluster_requests_forwarded as number));
  console.log(`per node (put + get of ${keys} keys): executed as master ${executed.join(', ')}; forwarded ${forwarded.join(', ')}; expected ${nodes.map((node) => expected.get(node.node)).join(', ')}`);
  expect(forwarded).toEqual([0, 0, 0]);
  expect(executed).toEqual(nodes.map((node) => expected.get(node.node)));
  for (const count of executed) expect(count).toBeGreaterThan(0);
}, 120_000);

/** Sends a put of { v } for `name` in set "forward" straight to `node`; resolves to the reply's result code. */
function rawPut(node: ServedNode, name: string, v: number): Promise<number> {
  const writer = new ByteWriter();
  const start = beginFrame(writer);
  writeMessageHeader(writer, { info2: Info2.WRITE, resultCode: 0, fieldCount: 3, opCount: 1 });
  writeStringField(writer, FieldType.NAMESPACE, 'test');
  writeStringField(writer, FieldType.SET, 'forward');
  writeField(writer, FieldType.DIGEST, digestOf('forward', name));
  const at = beginOp(writer, OpCode.WRITE, 1, 'v');
  writer.int64(v);
  endOp(writer, at);
  endFrame(writer, start, FrameType.MESSAGE);
  return new Promise((resolve, reject) => {
    const socket = net.connect(node.port, node.host, () => socket.write(writer.copyFrom(0)));
    let reply = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      reply = Buffer.concat([reply, chunk]);
      if (reply.length >= 8 + 22) {
        socket.destroy();
        resolve(reply[8 + 5]!);
      }
    });
    socket.on('error', reject);
  });
}

it('forwards a request sent to a node that does not master its partition', async () => {
  const masters = await publishedMasters(client, nodes);
  const name = 'sent-to-the-wrong-node';
  const master = masters[partitionOf(digestOf('forward', name))]!;
  const wrong = nodes.find((node) => node.node !== master)!;
  const before = await statisticsOf(client, wrong);
  expect(await rawPut(wrong, name, 42)).toBe(0);
  const after = await statisticsOf(client, wrong);
  expect((after.cluster_requests_forwarded as number) - (before.cluster_requests_forwarded as number)).toBe(1);
  expect((await client.get(new Aerospike.Key('test', 'forward', name))).bins).toEqual({ v: 42 });
}, 60_000);

it('quiesces a node and reclusters through the info API under load with zero client errors, then stops it', async () => {
  let stop = false;
  const errors: unknown[] = [];
  let phase = 'load';
  let operations = 0;
  const slowest = new Map<string, number>();
  // A rebalance holds requests while the members agree on partition owners (lib/cluster/
  // data-plane.ts): longer than the client's default 1 s total timeout can be, so the load
  // gives each command the embedded API's request timeout, and the slowest are reported.
  const write = new Aerospike.WritePolicy({ totalTimeout: 5000, maxRetries: 0 });
  const read = new Aerospike.ReadPolicy({ totalTimeout: 5000, maxRetries: 0 });
  const load = Promise.all(
    Array.from({ length: 8 }, async (_, worker) => {
      for (let i = 0; !stop; i++) {
        const key = new Aerospike.Key('test', 'quiesce', `w${worker}-${i % 200}`);
        const startedMs = Date.now();
        try {
          await client.put(key, { i }, {}, write);
          const record = await client.get(key, read);
          slowest.set(phase, Math.max(slowest.get(phase) ?? 0, Date.now() - startedMs));
          if (record.bins.i !== i) errors.push(new Error(`read ${String(record.bins.i)} after writing ${i}`));
          operations += 2;
        } catch (error) {
          errors.push({ phase, code: (error as { code?: number }).code, message: (error as Error).message });
        }
      }
    }),
  );
  try {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const leaving = nodes[2]!;
    const leavingNode = client.getNodes().find((node) => node.name === leaving.node)!;
    phase = 'quiesce';
    expect(await client.infoNode('quiesce:', leavingNode)).toBe('quiesce:\tok\n');
    phase = 'recluster';
    const reclustered = await client.infoAll('recluster:');
    expect(reclustered.map((reply) => reply.info)).toEqual(['recluster:\tok\n', 'recluster:\tok\n', 'recluster:\tok\n']);
    // The quiesced node hands every partition to the others.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const masters = await publishedMasters(client, nodes);
      const stats = await Promise.all(nodes.map((node) => statisticsOf(client, node)));
      if (!masters.includes(leaving.node) && stats.every((s) => s.migrate_partitions_remaining === 0)) break;
      if (Date.now() > deadline) throw new Error('the quiesced node still masters partitions after 60 s');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    phase = 'settled';
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const beforeStop = operations;
    phase = 'stop';
    await stopNode(leaving);
    phase = 'stopped';
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(operations).toBeGreaterThan(beforeStop);
  } finally {
    stop = true;
    await load;
  }
  console.log(`quiesce, recluster and stop under load: ${operations} operations, ${errors.length} errors; slowest put+get by phase (ms) ${JSON.stringify(Object.fromEntries(slowest))}; nodes ${nodes.map((node) => `${node.node}=${node.port}`).join(' ')}; ${JSON.stringify(errors)}`);
  expect(errors).toEqual([]);
  expect(operations).toBeGreaterThan(500);
}, 180_000);
