/**
 * Record UDFs on a three-node cluster of served nodes (docs/protocol.md, "User-defined
 * functions", cluster mode): a module registered through one node reaches every node (the
 * client's registration job polls each node's udf-list), applies run on every key's master,
 * and a removal reaches every node too; with service users, the forward logs in.
 */
import { expect, it } from 'vitest';
import Aerospike from 'aerospike';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir } from './helpers/temp';
import type { ServedNode } from './helpers/service-server';
import { closeServedCluster, serveSecuredCluster, useServedCluster } from './helpers/service-cluster';

let nodes: ServedNode[] = [];
let client: Aerospike.Client;
const modules = tempDir('shoal-udf-cluster-');

async function udfListOf(node: ServedNode): Promise<string> {
  return (await client.info('udf-list', { addr: node.host, port: node.port })) as string;
}

useServedCluster(3, (cluster) => ({ nodes, client } = cluster));

it('a module registered through one node reaches every node, and applies run on every master', async () => {
  const file = path.join(modules, 'counter.lua');
  fs.writeFileSync(file, 'function bump(rec)\n  rec.n = (rec.n or 0) + 1\n  if aerospike:exists(rec) then aerospike:update(rec) else aerospike:create(rec) end\n  return rec.n\nend\n');
  // The job polls every node's udf-list: it completes only when all three have the module.
  await (await client.udfRegister(file)).wait(50);
  for (const node of nodes) expect(await udfListOf(node)).toContain('filename=counter.lua');
  const keys = Array.from({ length: 60 }, (_, i) => new Aerospike.Key('test', 'udf-cluster', `k${i}`));
  const policy = new Aerospike.ApplyPolicy({ totalTimeout: 5000 });
  for (const key of keys) expect(await client.apply(key, { module: 'counter', funcname: 'bump' }, policy)).toBe(1);
  for (const key of keys) expect(await client.apply(key, { module: 'counter', funcname: 'bump' }, policy)).toBe(2);
  const records = await client.batchRead(keys.map((key) => ({ key, readAllBins: true })));
  expect(records.map((record) => record.record.bins.n)).toEqual(keys.map(() => 2));
  await (await client.udfRemove('counter.lua')).wait(50);
  for (const node of nodes) expect(await udfListOf(node)).not.toContain('counter.lua');
}, 120_000);

it('a module reaches peers that require a login, sent as the first configured user', async () => {
  const secured = await serveSecuredCluster(2, { user: 'ada', password: 'correct horse battery' });
  const secure = secured.client;
  try {
    const file = path.join(modules, 'secured.lua');
    fs.writeFileSync(file, 'function one(rec)\n  return 1\nend\n');
    await (await secure.udfRegister(file)).wait(50);
    // infoAll logs in on every node; before peer-info.ts carried registrations, the peer refused the unauthenticated forward.
    const lists = await secure.infoAll('udf-list');
    expect(lists).toHaveLength(2);
    for (const answer of lists) expect(answer.info).toContain('filename=secured.lua');
  } finally {
    await closeServedCluster(secured);
  }
}, 150_000);
