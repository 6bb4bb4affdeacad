/**
 * Secondary-index queries on a 3-node Shoal cluster through the official client (docs/protocol.md,
 * "Secondary indexes", cluster mode): the client creates an index through one node, which sends
 * the definition to its peers, so the client's job.wait() (which polls every node) completes and
 * a query, sent to every node for the partitions it masters, returns each matching record once;
 * the same by pages and by partition ranges; a removal reaches every node.
 */
import { beforeAll, expect, it } from 'vitest';
import Aerospike from 'aerospike';
import { ServedNode, settled } from './helpers/service-server';
import { closeServedCluster, serveSecuredCluster, useServedCluster, waitForClientNodes } from './helpers/service-cluster';

const { filter, indexDataType } = Aerospike;
let nodes: ServedNode[] = [];
let client: Aerospike.Client;
const RECORDS = 900;

useServedCluster(3, (cluster) => ({ nodes, client } = cluster));

beforeAll(async () => {
  await waitForClientNodes(client, 3);
  // Give the client a few tends to load the settled partition map.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  for (let start = 0; start < RECORDS; start += 50) {
    await settled(Array.from({ length: 50 }, (_, i) => start + i).map((id) => client.put(new Aerospike.Key('test', 'cq', `k${id}`), { id, n: id % 30 })));
  }
}, 120_000);


async function ids(query: Aerospike.Query): Promise<number[]> {
  return (await query.results()).map((record) => record.bins.id as number).sort((a, b) => a - b);
}

function expectedIds(low: number, high: number): number[] {
  return Array.from({ length: RECORDS }, (_, id) => id).filter((id) => id % 30 >= low && id % 30 <= high);
}

it('creates an index through one node that every node knows, and queries every node once per record', async () => {
  const job = await client.createIndex({ ns: 'test', set: 'cq', bin: 'n', index: 'cq_n', datatype: indexDataType.NUMERIC });
  await job.wait(50);
  for (const node of nodes) {
    const reply = await client.info('sindex/test/cq_n', { addr: node.host, port: node.port });
    expect(reply, node.node).toContain('load_pct=100');
  }
  const query = client.query('test', 'cq');
  query.where(filter.range('n', 3, 7));
  expect(await ids(query)).toEqual(expectedIds(3, 7));

  const paged = client.query('test', 'cq', { paginate: true, maxRecords: 40 });
  paged.where(filter.range('n', 0, 9));
  const seen: number[] = [];
  for (let page = 0; page < 100; page++) {
    seen.push(...(await paged.results()).map((record) => record.bins.id as number));
    if (!paged.hasNextPage()) break;
  }
  expect(seen.sort((a, b) => a - b)).toEqual(expectedIds(0, 9));

  const parts: number[] = [];
  for (const [begin, count] of [[0, 1000], [1000, 3096]] as const) {
    const part = client.query('test', 'cq');
    part.where(filter.equal('n', 11));
    part.partitions(begin, count);
    parts.push(...(await ids(part)));
  }
  expect(parts.sort((a, b) => a - b)).toEqual(expectedIds(11, 11));

  await client.indexRemove('test', 'cq_n');
  for (const node of nodes) {
    const code = await client
      .info('sindex/test/cq_n', { addr: node.host, port: node.port })
      .then(() => 0)
      .catch((error: { code: number }) => error.code);
    expect(code, node.node).toBe(201);
  }
}, 120_000);

it('sends definitions to peers that require a login, logging in as the first configured user', async () => {
  const secured = await serveSecuredCluster(2, { user: 'ada', password: 'correct horse battery' });
  const secure = secured.client;
  try {
    await (await secure.createIndex({ ns: 'test', set: 'sq', bin: 's', index: 'sq_s', datatype: indexDataType.STRING })).wait(50);
    const exists = await secure.infoAll('sindex-exists:ns=test;indexname=sq_s');
    expect(exists.map((answer) => answer.info.trim().split('\t')[1])).toEqual(['true', 'true']);
    await secure.put(new Aerospike.Key('test', 'sq', 'one'), { s: 'x', id: 1 });
    const query = secure.query('test', 'sq');
    query.where(filter.equal('s', 'x'));
    expect(await ids(query)).toEqual([1]);
  } finally {
    await closeServedCluster(secured);
  }
}, 150_000);
