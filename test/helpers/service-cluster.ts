/**
 * Shoal clusters served over the Aerospike protocol, for tests: `shoal serve` children that
 * join one cluster on loopback, and helpers that read what the nodes publish.
 */
import Aerospike from 'aerospike';
import { PARTITION_COUNT } from '../../lib/constants';
import { ServedNode, serveNode } from './service-server';

/** Starts `count` cluster nodes (the first is every other's seed) and resolves once each is up. */
export async function serveCluster(count: number, options: { replicationFactor?: number; service?: Record<string, unknown> } = {}): Promise<ServedNode[]> {
  const nodes: ServedNode[] = [];
  for (let i = 0; i < count; i++) {
    nodes.push(
      await serveNode({
        ...(options.service === undefined ? {} : { service: options.service }),
        cluster: {
          nodeId: `node-${i}`,
          listen: { host: '127.0.0.1', port: 0 },
          seeds: i === 0 ? [] : [nodes[0]!.cluster!],
          heartbeatIntervalMs: 150,
          heartbeatTimeout: 10,
          replicationFactor: options.replicationFactor ?? 2,
        },
      }),
    );
  }
  return nodes;
}

/** The `statistics` of one node, parsed. */
export async function statisticsOf(client: Aerospike.Client, node: ServedNode): Promise<Record<string, number | string>> {
  const reply = await client.info('statistics', { addr: node.host, port: node.port });
  return Aerospike.info.parse(reply).statistics as Record<string, number | string>;
}

/** Resolves once every node reports a cluster of `size` with no migrations left (rejects after timeoutMs). */
export async function waitForSettled(client: Aerospike.Client, nodes: ServedNode[], size: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const stats = await Promise.all(nodes.map((node) => statisticsOf(client, node).catch(() => undefined)));
    const keys = new Set(stats.map((s) => s?.cluster_key));
    if (stats.every((s) => s !== undefined && s.cluster_size === size && s.migrate_partitions_remaining === 0) && keys.size === 1) return;
    if (Date.now() > deadline) throw new Error(`cluster not settled at ${size} nodes in ${timeoutMs} ms: ${JSON.stringify(stats)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The master of every partition as the nodes publish it in `replicas` (node name per partition; undefined if none claims it). */
export async function publishedMasters(client: Aerospike.Client, nodes: ServedNode[], ns = 'test'): Promise<(string | undefined)[]> {
  const masters: (string | undefined)[] = new Array(PARTITION_COUNT);
  for (const node of nodes) {
    const reply = await client.info('replicas', { addr: node.host, port: node.port });
    const entry = reply.split('\t')[1]!.trim().split(';').find((part) => part.startsWith(`${ns}:`))!;
    const bitmap = Buffer.from(entry.split(',')[2]!, 'base64');
    for (let partition = 0; partition < PARTITION_COUNT; partition++) {
      if ((bitmap[partition >> 3]! & (0x80 >> (partition & 7))) !== 0) {
        if (masters[partition] !== undefined) throw new Error(`partition ${partition} is claimed by ${masters[partition]} and ${node.node}`);
        masters[partition] = node.node;
      }
    }
  }
  return masters;
}

/** Waits until the client's view has `count` nodes. */
export async function waitForClientNodes(client: Aerospike.Client, count: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (client.getNodes().length !== count) {
    if (Date.now() > deadline) throw new Error(`the client sees ${client.getNodes().length} nodes, not ${count}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
