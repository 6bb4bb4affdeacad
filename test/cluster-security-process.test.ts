/**
 * Issue 13 on real child processes, each embedding the whole Db in cluster mode with a cluster
 * secret (test/fixtures/cluster-db-child.js), under a client load on every node:
 * - a fuzzing peer sends random valid-looking frames of every message type, before and after
 *   authenticating, to all three nodes; afterwards every acknowledged write reads back and no
 *   process died;
 * - the secret is rolled across the three nodes, one restart at a time (docs/cluster.md,
 *   "Rotating the secret"), with zero client errors.
 * Every child is SIGKILLed in afterEach; every wait is bounded.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DATA_MESSAGE_TYPES } from '../lib/cluster/data-plane';
import { PARTITION_COUNT, PROTOCOL_VERSION_CURRENT } from '../lib/cluster/constants';
import type { WireMessage } from '../lib/cluster/network';
import { SeededRandom } from '../lib/cluster/seams';
import { TRUNCATE_MESSAGE_TYPES } from '../lib/cluster/truncation';
import { ChildNode, eventually, type DbChildState } from './fixtures/cluster-children';
import { authenticatedPeer, closeAll, RawPeer } from './helpers/tcp-cluster';
import { cleanupTempDirs, tempDir } from './helpers/temp';

const OLD_SECRET = 'the secret this cluster started with';
const NEW_SECRET = 'the secret it is rolled over to, 2';

const children: ChildNode[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await closeAll();
});

afterAll(() => cleanupTempDirs());

function startDb(nodeId: string, dataDir: string, seeds: string[], cluster: Record<string, unknown>): ChildNode {
  const child = new ChildNode({ dataDir }, nodeId, seeds, 150, 10, { cluster });
  children.push(child);
  return child;
}

async function settled(nodes: ChildNode[]): Promise<boolean> {
  const states = await Promise.all(nodes.map((node) => node.value<DbChildState>('state').catch(() => undefined)));
  const ids = nodes.map((node) => node.nodeId).sort().join(',');
  return states.every((s) => s !== undefined && [...s.succession].sort().join(',') === ids && s.clusterKey === states[0]!.clusterKey && s.settledClusterWide);
}

async function startCluster(secret: string, extra: Record<string, unknown> = {}): Promise<{ nodes: ChildNode[]; dirs: string[] }> {
  const dirs = [tempDir(), tempDir(), tempDir()];
  const first = startDb('d1', dirs[0]!, [], { secret, ...extra });
  await first.ready;
  const rest = [startDb('d2', dirs[1]!, [first.address], { secret, ...extra }), startDb('d3', dirs[2]!, [first.address], { secret, ...extra })];
  await Promise.all(rest.map((node) => node.ready));
  const nodes = [first, ...rest];
  expect(await eventually(() => settled(nodes), 20_000)).toBe(true);
  return { nodes, dirs };
}

/** Every key of `acked` reads back through each node. */
async function missingKeys(nodes: ChildNode[], acked: string[]): Promise<string[]> {
  const missing = new Set<string>();
  for (const node of nodes) for (const key of await node.value<string[]>('missing', { keys: acked })) missing.add(key);
  return [...missing];
}

/** Random values of every msgpack type, for fields a fuzzer fills. */
function anything(random: SeededRandom, depth = 0): unknown {
  switch (random.nextInt(depth > 1 ? 8 : 10)) {
    case 0: return random.nextInt(2 ** 31) - 2 ** 30;
    case 1: return random.nextFloat() * 1e15;
    case 2: return randomBytes(random.nextInt(40)).toString('hex');
    case 3: return randomBytes(random.nextInt(64));
    case 4: return null;
    case 5: return random.nextInt(2) === 0;
    case 6: return BigInt(random.nextUint32()) * 2n ** 32n;
    case 7: return -1;
    case 8: return Array.from({ length: random.nextInt(6) }, () => anything(random, depth + 1));
    default: return Object.fromEntries(Array.from({ length: random.nextInt(5) }, () => [randomBytes(3).toString('hex'), anything(random, depth + 1)]));
  }
}

/** A valid-looking message of `type`: the field names and types it has on the wire, with random values, some of them out of range. */
function fuzzMessage(random: SeededRandom, type: string, nodeIds: string[]): WireMessage {
  const pick = <T>(values: T[]) => values[random.nextInt(values.length)]!;
  const id = () => pick([random.nextInt(1000), `${randomBytes(4).toString('hex')}:${random.nextInt(9)}`, anything(random)]);
  const digest = () => (random.nextInt(5) === 0 ? randomBytes(pick([0, 2, 19, 21, 64])) : randomBytes(20));
  const partition = () => pick([random.nextInt(PARTITION_COUNT), -1, PARTITION_COUNT, 2 ** 40, 1.5]);
  const ns = () => pick(['test', 'nope', '', 'x'.repeat(100)]);
  const clusterKey = () => randomBytes(8).toString('hex');
  const node = () => pick([...nodeIds, 'fuzz', '', 'x'.repeat(80)]);
  const ballot = () => ({ n: pick([random.nextInt(100), 2 ** 53, -1]), id: node() });
  const view = () => ({ clusterKey: clusterKey(), succession: Array.from({ length: random.nextInt(5) }, node), quiesced: [node()], epoch: random.nextInt(1000) });
  const version = () => ({ digest: digest(), gen: pick([random.nextInt(10), 65000, -5]), voidTime: pick([0, 2 ** 32]), lastUpdateMs: pick([Date.now(), 0, -1, 1e20]), setName: pick(['', 's', 'x'.repeat(99)]), tombstone: random.nextInt(2) === 0, payload: pick([randomBytes(random.nextInt(100)), undefined, 'text']) });
  const operation = () => pick([{ call: 'get' }, { call: 'scan' }, { call: pick(['put', 'get', 'remove', 'nope']), key: anything(random), bins: { v: anything(random) } }, anything(random)]);
  const fields: Record<string, () => unknown> = {
    id, nonce: () => randomBytes(pick([32, 31, 0])), proofs: () => [randomBytes(32)], proof: () => randomBytes(32), reason: () => anything(random),
    protocolVersion: () => pick([PROTOCOL_VERSION_CURRENT, 99, -1]), minProtocolVersion: () => pick([2, 0]), nodeId: node, clusterName: () => pick(['shoal', 'other']),
    address: () => pick(['127.0.0.1:1', 'nowhere', `10.0.0.${random.nextInt(255)}:7000`]), adjacency: () => Array.from({ length: random.nextInt(4) }, () => [node(), pick(['127.0.0.1:2', 'bad'])]),
    clusterKey, quiesced: () => pick([true, false, 'yes']), migrationsRemaining: () => pick([0, 7, -3, 2 ** 60]), frames: () => pick([0, 5, -1, 2 ** 60]),
    truncates: () => [[ns(), pick([null, 's']), pick([0, 1e3, Number.NaN, 1e300])]], ballot, promised: ballot, proposal: view,
    request: () => pick([{ kind: 'record', ns: ns(), digest: digest(), operation: operation() }, { kind: 'scan', ns: ns(), partitions: [partition(), partition()], operation: operation() }, anything(random)]),
    value: () => anything(random), error: () => ({ code: pick(['TIMEOUT', 'x']), message: 'fuzz' }), retry: () => 'not-master', ns, version,
    versions: () => Array.from({ length: random.nextInt(4) }, version), partition, phase: () => pick(['merge', 'fill', 'x']), last: () => random.nextInt(2) === 0,
    entries: () => Array.from({ length: random.nextInt(4) }, () => [digest(), random.nextInt(5), Date.now(), random.nextUint32()]),
    want: () => [random.nextInt(5)], ok: () => random.nextInt(2) === 0, partitions: () => Array.from({ length: random.nextInt(5) }, partition),
    synced: () => randomBytes(pick([512, 3])), hasData: () => randomBytes(pick([512, 3])), lineages: () => [`${random.nextInt(9)}/${clusterKey()}`],
    lineageIndex: () => Array.from({ length: pick([PARTITION_COUNT, 3]) }, () => random.nextInt(2)), cut: () => ({ ns: ns(), set: pick([null, 's']), beforeMs: pick([0, 1e5, Number.NaN]) }),
    removed: () => random.nextInt(10), reply: () => random.nextInt(2) === 0, tooLarge: () => random.nextInt(2) === 0,
  };
  const message: WireMessage = { type };
  for (const [name, make] of Object.entries(fields)) if (random.nextInt(3) === 0) message[name] = make();
  return message;
}

/** Every message type the cluster speaks, plus a few it does not. */
const MESSAGE_TYPES = [
  'hello', 'hello-challenge', 'hello-proof', 'hello-ack', 'hello-reject', 'ack', 'heartbeat', 'leaving',
  'prepare', 'promise', 'nack', 'accept', 'accepted', 'commit', 'commit-ack', 'recluster',
  ...DATA_MESSAGE_TYPES, ...TRUNCATE_MESSAGE_TYPES,
  'admin-state', 'admin-quiesce', 'admin-quiesce-undo', 'admin-recluster', 'admin-reply', 'nonsense',
];

describe('three Db processes with a cluster secret, under a client load', () => {
  it('a fuzzing peer sending random valid-looking frames of every type, before and after authenticating: every acknowledged write is intact, no process died', async () => {
    const { nodes } = await startCluster(OLD_SECRET);
    for (const node of nodes) await node.value('startWriters', { prefix: `fuzz-load-${node.nodeId}`, writers: 2, pauseMs: 2 });
    const seed = Number(process.env.SHOAL_FUZZ_SEED ?? Date.now() % 100_000);
    const random = new SeededRandom(seed);
    const nodeIds = nodes.map((node) => node.nodeId);
    const sent: Record<string, number> = { before: 0, after: 0 };
    const deadline = Date.now() + 8_000;
    let round = 0;
    while (Date.now() < deadline) {
      const target = nodes[random.nextInt(nodes.length)]!;
      if (round++ % 2 === 0) {
        // Before authenticating: whatever comes first, then anything.
        const raw = new RawPeer(target.address);
        await raw.connected;
        for (let i = 0; i < 20; i++) raw.send(fuzzMessage(random, MESSAGE_TYPES[random.nextInt(MESSAGE_TYPES.length)]!, nodeIds));
        if (random.nextInt(4) === 0) raw.write(randomBytes(random.nextInt(3000)));
        sent.before! += 20;
        setTimeout(() => raw.socket.destroy(), 200);
      } else {
        // After authenticating with the secret, as a node id of its own (a holder of the secret is trusted, but its fields are still checked).
        const peer = await authenticatedPeer(target.address, { nodeId: `fuzz-${round}`, secret: OLD_SECRET }).catch(() => undefined);
        if (peer === undefined) continue;
        for (let i = 0; i < 50 && !peer.connection.closed; i++) {
          try {
            peer.connection.send(fuzzMessage(random, MESSAGE_TYPES[random.nextInt(MESSAGE_TYPES.length)]!, nodeIds));
            sent.after!++;
          } catch {
            // an unencodable value: the fuzzer's own problem
          }
        }
        setTimeout(() => peer.connection.close('fuzz round done'), 200);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const loads = await Promise.all(nodes.map((node) => node.value<{ acked: string[]; errors: string[] }>('stopWriters', { prefix: `fuzz-load-${node.nodeId}` })));
    expect(nodes.every((node) => !node.exited), nodes.map((n) => n.stderr.slice(-2000)).join('\n')).toBe(true);
    expect(await eventually(() => settled(nodes), 30_000)).toBe(true);
    const acked = loads.flatMap((load) => load.acked);
    const errors = loads.flatMap((load) => load.errors);
    process.stdout.write(`fuzz seed ${seed}: ${sent.before} frames before authentication, ${sent.after} after; ${acked.length} writes acknowledged, ${errors.length} in doubt\n`);
    expect(acked.length).toBeGreaterThan(500);
    expect(await missingKeys(nodes, acked), `seed ${seed}`).toEqual([]);
    expect(nodes.every((node) => !node.exited)).toBe(true);
  }, 120_000);

  it('rolling the secret across the three nodes, one restart at a time, with zero client errors', async () => {
    const { nodes, dirs } = await startCluster(OLD_SECRET);
    let incarnation = 0;
    const prefixOf = new Map<ChildNode, string>();
    const start = async (node: ChildNode) => {
      const prefix = `roll-${node.nodeId}-${incarnation++}`;
      prefixOf.set(node, prefix);
      await node.value('startWriters', { prefix, writers: 1, pauseMs: 10 });
    };
    const acked: string[] = [];
    const errors: string[] = [];
    const steps: string[] = [];
    const stop = async (node: ChildNode) => {
      const result = await node.value<{ acked: string[]; errors: string[] }>('stopWriters', { prefix: prefixOf.get(node) });
      acked.push(...result.acked);
      errors.push(...result.errors);
    };
    for (const node of nodes) await start(node);
    // Pass 1: every node proves the new secret and still accepts the old one. Pass 2: the new one alone.
    const passes = [{ secret: NEW_SECRET, acceptSecrets: [OLD_SECRET] }, { secret: NEW_SECRET }];
    for (const cluster of passes) {
      for (let i = 0; i < nodes.length; i++) {
        const node = nodes[i]!;
        // Drain the application on this node, hand its partitions off, then restart it.
        const began = Date.now();
        await stop(node);
        await node.value('quiesce');
        await node.value('recluster');
        const drained = async () => {
          const state = await node.value<DbChildState>('state');
          return state.quiesced.includes(node.nodeId) && state.partitions.master === 0 && state.partitions.replica === 0 && state.settledClusterWide;
        };
        expect(await eventually(drained, 30_000), `${node.nodeId} did not hand off its partitions`).toBe(true);
        const handedOff = Date.now();
        await node.command('close');
        await eventually(async () => node.exited, 10_000);
        const others = nodes.filter((other) => other !== node);
        const restarted = startDb(node.nodeId, dirs[i]!, others.map((other) => other.address), cluster);
        await restarted.ready;
        nodes[i] = restarted;
        const restartedAt = Date.now();
        expect(await eventually(() => settled(nodes), 30_000), `${node.nodeId} did not rejoin with ${JSON.stringify(cluster)}`).toBe(true);
        steps.push(`${node.nodeId}: hand-off ${handedOff - began} ms, restart ${restartedAt - handedOff} ms, rejoin ${Date.now() - restartedAt} ms`);
        await start(restarted);
      }
    }
    for (const node of nodes) await stop(node);
    process.stdout.write(`secret roll: ${acked.length} writes acknowledged, ${errors.length} errors; ${steps.join('; ')}\n`);
    expect(errors).toEqual([]);
    expect(acked.length).toBeGreaterThan(300);
    expect(await missingKeys(nodes, acked)).toEqual([]);
    // The old secret is no longer accepted anywhere: its proof is refused.
    await expect(authenticatedPeer(nodes[0]!.address, { nodeId: 'old-secret-holder', secret: OLD_SECRET })).rejects.toThrow(/authentication failed/);
    await expect(authenticatedPeer(nodes[0]!.address, { nodeId: 'new-secret-holder', secret: NEW_SECRET })).resolves.toBeDefined();
  }, 240_000);
});
