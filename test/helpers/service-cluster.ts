/**
 * Shoal nodes and clusters served over the Aerospike protocol, for tests: `shoal serve`
 * children that join one cluster on loopback, the setup a test file repeats around them (a
 * served node with a client and a raw connection; a served cluster with a client, settled;
 * a cluster whose service requires a login), and helpers that read what the nodes publish.
 */
import { afterAll, beforeAll } from 'vitest';
import Aerospike from 'aerospike';
import { PARTITION_COUNT } from '../../lib/constants';
import { ServeConfig, ServedNode, clientConfig, serveNode, stopNode } from './service-server';
import { cleanupTempDirs } from './temp';
import { RawConnection } from './wire-request';

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

type Statistics = Record<string, number | string> | undefined;

/**
 * Every node's `statistics` (undefined for a node that did not answer). Info to one address
 * opens a connection of its own without a login, which a service with users refuses; with
 * `login` the statistics come through infoAll, which logs in on every node the client knows.
 */
async function statisticsOfAll(client: Aerospike.Client, nodes: ServedNode[], login: boolean): Promise<Statistics[]> {
  if (!login) return Promise.all(nodes.map((node) => statisticsOf(client, node).catch(() => undefined)));
  const answers = await client.infoAll('statistics').catch(() => []);
  const stats: Statistics[] = answers.map((answer) => Aerospike.info.parse(answer.info).statistics as Record<string, number | string>);
  while (stats.length < nodes.length) stats.push(undefined);
  return stats;
}

/**
 * Resolves once every node reports a cluster of `size` with no migrations left (rejects after
 * timeoutMs). `login`: the nodes require one, and the client has it (see statisticsOfAll).
 */
export async function waitForSettled(client: Aerospike.Client, nodes: ServedNode[], size: number, options: { timeoutMs?: number; login?: boolean } = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const stats = await statisticsOfAll(client, nodes, options.login === true);
    const keys = new Set(stats.map((s) => s?.cluster_key));
    if (stats.every((s) => s !== undefined && s.cluster_size === size && s.migrate_partitions_remaining === 0) && keys.size === 1) return;
    if (Date.now() > deadline) throw new Error(`cluster not settled at ${size} nodes in ${timeoutMs} ms: ${JSON.stringify(stats)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** A served cluster and a client seeded with its first node. */
export interface ServedCluster {
  nodes: ServedNode[];
  client: Aerospike.Client;
}

/** Closes the client, then stops every node. */
export async function closeServedCluster(cluster: Partial<ServedCluster>): Promise<void> {
  await cluster.client?.close();
  await Promise.all((cluster.nodes ?? []).map((node) => stopNode(node)));
}

/**
 * Starts `count` nodes whose service requires `user` (the only user), connects a client that
 * logs in as it, and resolves once the cluster has settled.
 */
export async function serveSecuredCluster(count: number, user: { user: string; password: string }): Promise<ServedCluster> {
  const nodes = await serveCluster(count, { service: { users: [user] } });
  const cluster: ServedCluster = { nodes, client: undefined as unknown as Aerospike.Client };
  try {
    cluster.client = await Aerospike.connect({ ...clientConfig(nodes[0]!, { tenderInterval: 250 }), user: user.user, password: user.password } as Aerospike.ConfigOptions);
    await waitForSettled(cluster.client, nodes, count, { login: true });
  } catch (error) {
    await closeServedCluster(cluster);
    throw error;
  }
  return cluster;
}

/**
 * The setup of a test file on a served cluster: before all its tests, `count` nodes and a
 * client seeded with the first (the others are discovered), settled, handed to `take`; after
 * them, the client closed, the nodes stopped and the temporary directories removed.
 */
export function useServedCluster(count: number, take: (cluster: ServedCluster) => void, timeoutMs = 120_000): void {
  const cluster: Partial<ServedCluster> = {};
  beforeAll(async () => {
    cluster.nodes = await serveCluster(count);
    cluster.client = await Aerospike.connect(clientConfig(cluster.nodes[0]!, { tenderInterval: 250 }));
    await waitForSettled(cluster.client, cluster.nodes, count);
    take(cluster as ServedCluster);
  }, timeoutMs);
  afterAll(async () => {
    await closeServedCluster(cluster);
    cleanupTempDirs();
  });
}

/** One served node with the official client and a raw connection to it, as protocol tests use them. */
export class ServedSession {
  node!: ServedNode;
  client!: Aerospike.Client;
  raw!: RawConnection;

  /** @param onStart called after every start (the first and each restart), so a test's variables follow. */
  constructor(
    private readonly config: ServeConfig,
    private readonly onStart: (session: ServedSession) => void,
  ) {}

  async start(config: ServeConfig = this.config): Promise<void> {
    this.node = await serveNode(config);
    this.client = await Aerospike.connect(clientConfig(this.node));
    this.raw = await RawConnection.open(this.node.port, this.node.host);
    this.onStart(this);
  }

  /**
   * Closes the connections and stops the node cleanly, runs `between` (the node is down), and
   * starts it again on the same data directory with new connections.
   */
  async restart(between?: () => Promise<void>): Promise<void> {
    const dataDir = this.node.dataDir;
    await this.close();
    await between?.();
    await this.start({ ...this.config, dataDir });
  }

  /** Closes the raw connection and the client, then stops the node. */
  async close(): Promise<void> {
    this.raw?.close();
    await this.client?.close();
    if (this.node !== undefined) await stopNode(this.node);
  }
}

/**
 * The setup of a protocol test file on one served node: before all its tests, `shoal serve`
 * with `config`, a client and a raw connection, handed to `take` (again after each restart);
 * after them, all closed and the temporary directories removed.
 */
export function useServedNode(config: ServeConfig, take: (session: ServedSession) => void, timeoutMs = 60_000): ServedSession {
  const session = new ServedSession(config, take);
  beforeAll(() => session.start(), timeoutMs);
  afterAll(async () => {
    await session.close();
    cleanupTempDirs();
  });
  return session;
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
