/**
 * The seed 000 scenario (shared/seeds/000): move a live cluster onto new nodes with quiesce.
 *
 *   npm run example:replace [-- --records 10000] [-- --phase-timeout-ms N]
 *
 * 1. three nodes (separate processes) form a cluster and load data (batchPut);
 * 2. a client load runs on every node throughout, counting errors and hidden reads (a write
 *    acknowledged, then read back as missing or older);
 * 3. three new nodes join; wait for rebalancing;
 * 4. quiesce the three old nodes, recluster, wait: they end owning nothing;
 * 5. stop the old nodes; every record is still there, and the load saw zero errors and zero
 *    hidden reads.
 *
 * Each phase's wait is bounded by --phase-timeout-ms, by default 60 s plus 0.6 ms per record
 * (a 1M-record rebalance takes minutes). Each phase reports its time and every node's longest
 * event-loop delay during it.
 */
import { ChildProcess, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { segmentBaseName } from '../lib/namespace/index-segments';
import { addon } from '../lib/native/addon';

function option(name: string, fallback: number): number {
  const index = process.argv.indexOf(name);
  if (index < 0) return fallback;
  const value = Number(process.argv[index + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} needs a positive number`);
  return value;
}

const RECORDS = option('--records', 10_000);
/** How long one phase may take: by default 60 s plus 0.6 ms per record. */
const TIMEOUT_MS = option('--phase-timeout-ms', 60_000 + Math.ceil(RECORDS * 0.6));
/** Memory namespace size per node: room for every record twice (a node holds up to all copies while partitions move). */
const MEMORY_MIB = Math.max(256, Math.ceil((RECORDS * 2 * 400) / (1 << 20)));

interface Node {
  name: string;
  process: ChildProcess;
  address: string;
  call(op: string, fields?: Record<string, unknown>): Promise<any>;
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-replace-'));
const nodes: Node[] = [];

function log(line: string): void {
  process.stdout.write(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s] ${line}\n`);
}
const started = performance.now();

function startNode(name: string, seed: string | undefined): Promise<Node> {
  const child = fork(path.join(__dirname, 'cluster-node.js'), [name, path.join(root, name), seed ?? '', String(MEMORY_MIB)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let nextId = 0;
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  return new Promise((resolve, reject) => {
    child.on('exit', (code) => {
      for (const w of waiting.values()) w.reject(new Error(`${name} exited with ${code}`));
      if (code !== 0) reject(new Error(`${name} exited with ${code}`));
    });
    child.on('message', (message: any) => {
      if (message.ready) {
        const node: Node = {
          name,
          process: child,
          address: message.address,
          call: (op, fields = {}) =>
            new Promise((res, rej) => {
              const id = nextId++;
              waiting.set(id, { resolve: res, reject: rej });
              child.send({ id, op, ...fields });
            }),
        };
        nodes.push(node);
        resolve(node);
        return;
      }
      const waiter = waiting.get(message.id);
      waiting.delete(message.id);
      if (message.ok) waiter?.resolve(message.value);
      else waiter?.reject(new Error(message.error));
    });
  });
}

async function clusterState(node: Node): Promise<{ state: any; stats: any }> {
  return node.call('state');
}

async function waitUntil(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function settled(group: Node[], size: number): Promise<boolean> {
  const states = await Promise.all(group.map(clusterState));
  const keys = new Set(states.map((s) => s.state.clusterKey));
  return keys.size === 1 && states.every((s) => s.state.succession.length === size && s.state.migrationsRemaining === 0);
}

/** Phase durations and each node's longest event-loop delay during the phase, for the summary. */
const phases: { name: string; seconds: number; lag: string }[] = [];
let phaseStarted = performance.now();

/** Ends the current phase: logs its time and every running node's longest event-loop delay since the last phase. */
async function endPhase(name: string): Promise<void> {
  const seconds = (performance.now() - phaseStarted) / 1000;
  const lags = await Promise.all(nodes.filter((node) => node.process.exitCode === null).map(async (node) => `${node.name} ${((await node.call('lag')) as { maxMs: number }).maxMs.toFixed(0)}`));
  const lag = lags.join(', ');
  phases.push({ name, seconds, lag });
  log(`phase "${name}": ${seconds.toFixed(1)} s; longest event-loop delay per node (ms): ${lag}`);
  phaseStarted = performance.now();
}

async function main(): Promise<void> {
  log(`starting 3 nodes, then loading ${RECORDS} records (each phase may take up to ${(TIMEOUT_MS / 1000).toFixed(0)} s)`);
  const first = await startNode('old-1', undefined);
  const old = [first, await startNode('old-2', first.address), await startNode('old-3', first.address)];
  await waitUntil('the 3 old nodes to form a cluster', () => settled(old, 3));
  await endPhase('form a 3-node cluster');
  const loaded = (await first.call('put', { from: 0, to: RECORDS })) as { failed: number; errors: string[] };
  if (loaded.failed > 0) throw new Error(`loading failed for ${loaded.failed} records: ${loaded.errors.join('; ')}`);
  log(`3-node cluster holds ${RECORDS} records`);
  await endPhase(`load ${RECORDS} records (batchPut)`);

  for (const [index, node] of old.entries()) await node.call('load', { from: 1_000_000_000 * (index + 1), count: 2000 });
  log('client load running on every node');

  const fresh = [await startNode('new-1', first.address), await startNode('new-2', first.address), await startNode('new-3', first.address)];
  for (const [index, node] of fresh.entries()) await node.call('load', { from: 1_000_000_000 * (index + 4), count: 2000 });
  log('3 new nodes started; waiting for rebalancing');
  await waitUntil('6 nodes and no migrations', () => settled([...old, ...fresh], 6));
  await fresh[0]!.call('wait', { timeoutMs: TIMEOUT_MS });
  const balanced = await Promise.all([...old, ...fresh].map(clusterState));
  log(`rebalanced: objects per node ${balanced.map((s, i) => `${[...old, ...fresh][i]!.name}=${s.stats.namespaces.app.objects}`).join(' ')}`);
  await endPhase('3 new nodes join: rebalance until no migrations');

  for (const node of old) await node.call('quiesce');
  await old[0]!.call('recluster');
  log('quiesced old-1, old-2, old-3 and reclustered; waiting for migrations');
  await waitUntil('the old nodes to own nothing', async () => {
    const states = await Promise.all(old.map(clusterState));
    return (await settled([...old, ...fresh], 6)) && states.every((s) => s.state.partitions.master === 0 && s.state.partitions.replica === 0);
  });
  log('old nodes own 0 master and 0 replica partitions');
  await endPhase('quiesce the old 3 and recluster: until they own nothing');

  const results = [];
  for (const node of old) results.push(await node.call('stop-load'));
  for (const node of old) await node.call('close');
  log('old nodes closed');
  await waitUntil('the 3 new nodes to form the cluster alone', () => settled(fresh, 3));
  for (const node of fresh) results.push(await node.call('stop-load'));
  await endPhase('close the old 3: the new 3 form the cluster');

  const acknowledged = results.flatMap((r) => r.acknowledged as number[]);
  const errors = results.flatMap((r) => r.errors as string[]);
  const hidden = results.flatMap((r) => r.hidden as string[]);
  const check = await fresh[1]!.call('get', { from: 0, to: RECORDS, loadKeys: acknowledged });
  log(`client load: ${acknowledged.length} keys acknowledged, ${errors.length} errors${errors.length > 0 ? `: ${errors.slice(0, 5).join('; ')}` : ''}`);
  log(`read-your-writes: ${hidden.length} hidden reads${hidden.length > 0 ? `: ${hidden.slice(0, 5).join('; ')}` : ''}`);
  log(`verification from new-2: ${RECORDS - check.missing}/${RECORDS} loaded records, ${acknowledged.length - check.loadMissing.length}/${acknowledged.length} load keys present`);
  await endPhase('verify every record and load key');
  for (const node of fresh) await node.call('close');
  log(`phases: ${phases.map((p) => `${p.name} ${p.seconds.toFixed(1)} s`).join('; ')}`);
  if (errors.length > 0 || hidden.length > 0 || check.missing > 0 || check.loadMissing.length > 0) throw new Error('the scenario lost data, hid a write or saw client errors');
  log('done: the cluster moved onto new nodes with zero client errors, zero hidden reads and no lost records');
}

main()
  .catch((error: unknown) => {
    process.stderr.write(`replace-cluster failed: ${(error as Error).message}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const node of nodes) node.process.kill('SIGKILL');
    for (const node of nodes) {
      const dir = path.join(root, node.name);
      if (fs.existsSync(dir)) addon().unlinkIndexSegments(segmentBaseName(dir, 'app'));
    }
    fs.rmSync(root, { recursive: true, force: true });
  });
