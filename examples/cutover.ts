/**
 * The seed 001 scenario (shared/seeds/001): an upgrade onto a parallel cluster with zero
 * downtime and no silent corruption, using cross-cluster replication (docs/xdr.md).
 *
 *   npm run example:cutover [-- --records 20000 --clients 6 --skew-ms 3000 --dwell-ms 3000]
 *
 * 1. An old cluster (3 processes) holds data under a client load.
 * 2. A new cluster (3 processes) starts, its clock `--skew-ms` behind the old one's (the seed's
 *    case: the old cluster's stamps run ahead); XDR old → new with rewind, and the example
 *    waits until the new cluster has everything.
 * 3. XDR new → old is switched on (active-active).
 * 4. Clients move over one by one. Each stops writing on the old cluster, the old cluster
 *    ships what it acknowledged (waitForShipped: the client's next write then follows its last
 *    one causally), and it goes on writing on the new cluster. Meanwhile clients on both sides
 *    write the same shared keys.
 * 5. The clients stop, both directions drain, XDR is removed on both sides, and the old
 *    cluster is quiesced node by node and retired.
 *
 * It ends with a record-by-record comparison of the two clusters (before the old one is
 * retired), each client's own keys checked against its last acknowledged write, the client
 * error count and the conflict count; it exits non-zero if the clusters differ, a client saw
 * an error or a client's last write was lost. Every process is killed on the way out, even
 * after a failure.
 */
import { ChildProcess, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

function option(name: string, fallback: number): number {
  const index = process.argv.indexOf(name);
  if (index < 0) return fallback;
  const value = Number(process.argv[index + 1]);
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} needs a number ≥ 0`);
  return value;
}

const RECORDS = option('--records', 20_000);
const CLIENTS = option('--clients', 6);
/** How far the new cluster's clock is behind the old one's. */
const SKEW_MS = option('--skew-ms', 3_000);
/** Time between two client moves (and before the first, after the last). */
const DWELL_MS = option('--dwell-ms', 3_000);
const TIMEOUT_MS = option('--phase-timeout-ms', 60_000 + RECORDS);
const OWN_KEYS = 40;
const SHARED_KEYS = 20;
const CLIENT_PAUSE_MS = 5;

interface Node {
  name: string;
  process: ChildProcess;
  address: string;
  call<T = unknown>(op: string, fields?: Record<string, unknown>): Promise<T>;
}

interface ClientState {
  seq: number;
  acked: Record<string, number | null>;
  errors: string[];
  writes: number;
}

interface XdrState {
  destinations: Record<string, { connected: boolean; pendingRecords: number; shippedRecords: number; conflicts: number; rewindProgress: number; lagMs: number }>;
  received: { applied: number; stale: number; conflicts: number };
}

type Dump = [string, Record<string, unknown>, number][];

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-cutover-'));
const nodes: Node[] = [];
const started = performance.now();

function log(line: string): void {
  process.stdout.write(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s] ${line}\n`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function startNode(name: string, clusterName: string, seed: string | undefined, skewMs: number): Promise<Node> {
  const child = fork(path.join(__dirname, 'cutover-node.js'), [name, clusterName, path.join(root, name), seed ?? '', String(skewMs)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let nextId = 0;
  const waiting = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  return new Promise((resolve, reject) => {
    child.on('exit', (code) => {
      for (const w of waiting.values()) w.reject(new Error(`${name} exited with ${code}`));
      waiting.clear();
      reject(new Error(`${name} exited with ${code} before it was ready`));
    });
    child.on('message', (message: any) => {
      if (message.ready) {
        const node: Node = {
          name,
          process: child,
          address: message.address,
          call: (op, fields = {}) =>
            new Promise((res, rej) => {
              if (child.exitCode !== null || !child.connected) return rej(new Error(`${name} is not running`));
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
      else waiter?.reject(new Error(`${name} ${message.error}`));
    });
  });
}

async function waitUntil(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${TIMEOUT_MS} ms waiting for ${what}`);
    await sleep(100);
  }
}

async function settled(group: Node[]): Promise<boolean> {
  const states = await Promise.all(group.map((node) => node.call<{ clusterKey: string; succession: string[]; migrationsRemaining: number }>('cluster')));
  return new Set(states.map((s) => s.clusterKey)).size === 1 && states.every((s) => s.succession.length === group.length && s.migrationsRemaining === 0);
}

async function startCluster(clusterName: string, skewMs: number): Promise<Node[]> {
  const first = await startNode(`${clusterName}-1`, clusterName, undefined, skewMs);
  const rest = await Promise.all([2, 3].map((i) => startNode(`${clusterName}-${i}`, clusterName, first.address, skewMs)));
  const cluster = [first, ...rest];
  await waitUntil(`the ${clusterName} cluster to form`, () => settled(cluster));
  return cluster;
}

function destination(name: string, cluster: Node[], rewind: 'all' | 'none') {
  return { name, clusterName: name, seeds: cluster.map((node) => node.address), namespaces: ['app'], rewind };
}

async function xdrStates(group: Node[]): Promise<XdrState[]> {
  return Promise.all(group.map((node) => node.call<XdrState>('xdrState')));
}

/** Waits until every node of `group` has shipped what it acknowledged to every destination (each asks its peers too). */
async function drain(group: Node[]): Promise<void> {
  await Promise.all(group.map((node) => node.call('waitForShipped', { timeoutMs: TIMEOUT_MS })));
}

function compare(old: Dump, fresh: Dump): { compared: number; differing: string[] } {
  const differing: string[] = [];
  const byKey = new Map(fresh.map((entry) => [entry[0], entry]));
  for (const [key, bins, gen] of old) {
    const other = byKey.get(key);
    byKey.delete(key);
    if (other === undefined) differing.push(`${key}: only on the old cluster`);
    else if (JSON.stringify(other[1]) !== JSON.stringify(bins) || other[2] !== gen) differing.push(`${key}: old ${JSON.stringify(bins)} gen ${gen}, new ${JSON.stringify(other[1])} gen ${other[2]}`);
  }
  for (const key of byKey.keys()) differing.push(`${key}: only on the new cluster`);
  return { compared: old.length, differing };
}

async function main(): Promise<void> {
  log(`1. old cluster: 3 processes, ${RECORDS} records, ${CLIENTS} clients`);
  const old = await startCluster('old', 0);
  const failed = await old[0]!.call<number>('preload', { count: RECORDS });
  if (failed > 0) throw new Error(`${failed} records failed to load`);
  const clientHome = new Map<number, Node>();
  for (let id = 0; id < CLIENTS; id++) {
    const home = old[id % old.length]!;
    await home.call('startClient', { spec: { id, seq: 0, acked: {}, errors: [], writes: 0, ownKeys: OWN_KEYS, sharedKeys: SHARED_KEYS, pauseMs: CLIENT_PAUSE_MS } });
    clientHome.set(id, home);
  }
  log(`   loaded; ${CLIENTS} clients writing on the old cluster`);

  log(`2. new cluster: 3 processes, clock ${SKEW_MS} ms behind the old one; XDR old → new with rewind`);
  const fresh = await startCluster('new', -SKEW_MS);
  for (const node of old) await node.call('addDestination', { destination: destination('new', fresh, 'all') });
  await waitUntil('the rewind to finish', async () => {
    const states = await xdrStates(old);
    const progress = states.map((s) => s.destinations.new!.rewindProgress);
    const shipped = states.reduce((sum, s) => sum + s.destinations.new!.shippedRecords, 0);
    log(`   rewind ${progress.map((p) => `${(p * 100).toFixed(0)}%`).join(' ')}, ${shipped} records shipped`);
    return progress.every((p) => p === 1);
  });
  await drain(old);
  const synced = await fresh[0]!.call<Dump>('dump');
  log(`   in sync: the new cluster holds ${synced.length} records`);

  log('3. XDR new → old on: active-active');
  for (const node of fresh) await node.call('addDestination', { destination: destination('old', old, 'none') });
  await sleep(DWELL_MS);

  log('4. clients move one by one; clients on both sides write the shared keys');
  const states = new Map<number, ClientState>();
  for (let id = 0; id < CLIENTS; id++) {
    const state = await clientHome.get(id)!.call<ClientState>('stopClient', { clientId: id });
    // The client's writes reach the new cluster before it writes there: its next write follows them.
    await drain(old);
    const target = fresh[id % fresh.length]!;
    await target.call('startClient', { spec: { id, ...state, ownKeys: OWN_KEYS, sharedKeys: SHARED_KEYS, pauseMs: CLIENT_PAUSE_MS } });
    clientHome.set(id, target);
    const [oldSide, newSide] = [await xdrStates(old), await xdrStates(fresh)];
    const lag = Math.max(...oldSide.map((s) => s.destinations.new!.lagMs), ...newSide.map((s) => s.destinations.old!.lagMs));
    log(`   client ${id} moved to ${target.name} after ${state.writes} writes; ${CLIENTS - id - 1} left on the old cluster; lag ${lag} ms`);
    await sleep(DWELL_MS);
  }

  log('5. clients stop; both directions drain; XDR off; the old cluster is quiesced and retired');
  for (let id = 0; id < CLIENTS; id++) states.set(id, await clientHome.get(id)!.call<ClientState>('stopClient', { clientId: id }));
  await drain(fresh);
  await drain(old);
  const [oldDump, newDump] = [await old[0]!.call<Dump>('dump'), await fresh[0]!.call<Dump>('dump')];
  const xdr = [...(await xdrStates(old)), ...(await xdrStates(fresh))];
  for (const node of old) await node.call('removeDestination', { name: 'new' });
  for (const node of fresh) await node.call('removeDestination', { name: 'old' });
  // Quiesce: old-2 and old-3 hand their master partitions to old-1 (the only member left
  // unquiesced keeps them), then leave; old-1 goes last.
  const leaving = old.slice(1);
  for (const node of leaving) await node.call('quiesce');
  await old[0]!.call('recluster');
  await waitUntil('the quiesced nodes to hand their partitions off', async () => {
    const clusterStates = await Promise.all(leaving.map((node) => node.call<{ partitions: { master: number }; migrationsRemaining: number }>('cluster')));
    return clusterStates.every((state) => state.partitions.master === 0 && state.migrationsRemaining === 0);
  });
  for (const node of leaving) await node.call('close');
  log(`   ${leaving.map((node) => node.name).join(', ')} quiesced (master of nothing) and closed`);
  await old[0]!.call('close');
  log('   old-1 closed: the old cluster is retired');

  const { compared, differing } = compare(oldDump, newDump);
  const errors = [...states.values()].flatMap((s) => s.errors);
  const writes = [...states.values()].reduce((sum, s) => sum + s.writes, 0);
  const byKey = new Map(newDump.map((entry) => [entry[0], entry[1]]));
  const lost: string[] = [];
  let ownChecked = 0;
  for (const [id, state] of states) {
    for (const [key, n] of Object.entries(state.acked)) {
      if (!key.startsWith(`c${id}-`)) continue;
      ownChecked++;
      const bins = byKey.get(key);
      if (n === null ? bins !== undefined : bins?.n !== n) lost.push(`${key}: last acknowledged ${n === null ? 'removal' : `n=${n}`}, the new cluster holds ${JSON.stringify(bins ?? null)}`);
    }
  }
  const conflicts = xdr.reduce((sum, s) => sum + s.received.conflicts, 0);
  log(`record-by-record comparison: ${compared} records on the old cluster, ${newDump.length} on the new, ${differing.length} differing${differing.length > 0 ? `: ${differing.slice(0, 5).join('; ')}` : ''}`);
  log(`clients: ${writes} writes, ${errors.length} errors${errors.length > 0 ? `: ${errors.slice(0, 5).join('; ')}` : ''}`);
  log(`clients' own keys: ${ownChecked - lost.length}/${ownChecked} hold the client's last acknowledged write${lost.length > 0 ? `: ${lost.slice(0, 5).join('; ')}` : ''}`);
  log(`conflicts: ${conflicts} (concurrent writes of a shared key from both clusters, counted where they arrived)`);
  if (differing.length > 0 || errors.length > 0 || lost.length > 0) throw new Error('the clusters differ, a client saw an error, or a client lost its last write');
  for (const node of fresh) await node.call('close');
  log('done: cut over with zero client errors and identical clusters');
}

main()
  .catch((error: unknown) => {
    process.stderr.write(`cutover failed: ${(error as Error).message}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const node of nodes) node.process.kill('SIGKILL');
    fs.rmSync(root, { recursive: true, force: true });
  });
