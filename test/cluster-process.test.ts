/**
 * Real child processes on loopback, each embedding a Shoal cluster node (issue 5). Every
 * child is SIGKILLed in afterEach, even when a test fails; every wait is bounded.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HANDSHAKE_TIMEOUT_MS } from '../lib/cluster/constants';
import type { ChildState } from './fixtures/cluster-children';
import { ChildNode, compileClusterForChildren, eventually } from './fixtures/cluster-children';

let root = '';
const children: ChildNode[] = [];

beforeAll(() => {
  root = compileClusterForChildren();
}, 90_000);

afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

afterAll(() => {
  if (root !== '') fs.rmSync(root, { recursive: true, force: true });
});

/** Starts `ids[0]`, then the rest seeded with it; `heartbeatTimeout` in heartbeat intervals (150 ms). */
async function startCluster(ids: string[], heartbeatTimeout = 10): Promise<ChildNode[]> {
  const first = new ChildNode(root, ids[0], [], 150, heartbeatTimeout);
  children.push(first);
  await first.ready;
  const rest = ids.slice(1).map((id) => {
    const child = new ChildNode(root, id, [first.address], 150, heartbeatTimeout);
    children.push(child);
    return child;
  });
  await Promise.all(rest.map((child) => child.ready));
  return [first, ...rest];
}

async function states(nodes: ChildNode[]): Promise<ChildState[]> {
  return Promise.all(nodes.map((node) => node.value<ChildState>('state')));
}

async function agreed(nodes: ChildNode[]): Promise<boolean> {
  const all = await states(nodes);
  const ids = nodes.map((n) => n.nodeId).sort().join(',');
  return all.every((s) => [...s.succession].sort().join(',') === ids && s.clusterKey === all[0].clusterKey && s.mapHash === all[0].mapHash);
}

async function settled(nodes: ChildNode[]): Promise<boolean> {
  return (await agreed(nodes)) && (await states(nodes)).every((s) => s.settled && s.migrationsRemaining === 0);
}

/** Holders of every key (hex digest) across nodes, owned copies only. */
async function ownedCopies(nodes: ChildNode[]): Promise<Map<string, number>> {
  const copies = new Map<string, number>();
  for (const node of nodes) {
    const { owned } = await node.value<{ owned: string[] }>('holdings');
    for (const hex of owned) copies.set(hex, (copies.get(hex) ?? 0) + 1);
  }
  return copies;
}

function digestHex(key: string): string {
  // Same digest as the child's memory store (sha1 of the key).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('node:crypto').createHash('sha1').update(key).digest('hex');
}

/** A steady write load through the given nodes (round robin); records acknowledged keys and error times. */
function writeLoad(nodes: () => ChildNode[], prefix: string) {
  const acknowledged = new Set<string>();
  const failures: { atMs: number; message: string }[] = [];
  const acknowledgedAt: number[] = [];
  let stop = false;
  let n = 0;
  const workers = [0, 1, 2, 3].map(async (worker) => {
    while (!stop) {
      const live = nodes().filter((node) => !node.exited);
      const node = live[(n + worker) % live.length];
      const key = `${prefix}${n++}`;
      const reply = await node.command('put', { key, value: n });
      if (reply.ok) {
        acknowledged.add(key);
        acknowledgedAt.push(Date.now());
      } else {
        failures.push({ atMs: Date.now(), message: `${key} via ${node.nodeId}: ${reply.code} ${reply.message}` });
      }
    }
  });
  return {
    acknowledged,
    failures,
    acknowledgedAt,
    stop: async () => {
      stop = true;
      await Promise.all(workers);
    },
  };
}

/** Garbage number `i`: 1 + 97 i bytes; every third starts with an oversized frame length. */
function garbage(i: number): Buffer {
  const bytes = Buffer.alloc(1 + i * 97);
  for (let j = 0; j < bytes.length; j++) bytes[j] = (j * 31 + i) & 0xff;
  if (i % 3 === 0 && bytes.length >= 4) bytes.writeUInt32BE(0xfffffff0, 0);
  return bytes;
}

interface GarbageOutcome {
  /** This end's address, as the node names the connection in its log. */
  localAddress: string;
  /** Whether the node closed the connection before `closeWithinMs` passed. */
  closedByNode: boolean;
  /** When this end saw the connection close (Date.now()). */
  closedAtMs: number;
}

/**
 * Connects to a node's fabric address, writes `bytes`, and waits (at most `closeWithinMs`) for
 * the node to close the connection; this end never closes it first.
 */
function sendGarbage(address: string, bytes: Buffer, closeWithinMs: number): Promise<GarbageOutcome> {
  const separator = address.lastIndexOf(':');
  return new Promise((resolve) => {
    let localAddress = '';
    const socket = net.connect({ host: address.slice(0, separator), port: Number(address.slice(separator + 1)) }, () => {
      localAddress = `${socket.localAddress}:${socket.localPort}`;
      socket.write(bytes);
    });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ localAddress, closedByNode: false, closedAtMs: Date.now() });
    }, closeWithinMs);
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ localAddress, closedByNode: localAddress !== '', closedAtMs: Date.now() });
    });
  });
}

describe('cluster of child processes on loopback', () => {
  for (const size of [3, 5]) {
    it(`${size} processes form one cluster from a single seed with identical partition maps`, async () => {
      const ids = Array.from({ length: size }, (_, i) => `p${i + 1}`);
      const nodes = await startCluster(ids);
      const startedAt = Date.now();
      expect(await eventually(() => agreed(nodes), 20_000)).toBe(true);
      const formedMs = Date.now() - startedAt;
      const all = await states(nodes);
      expect(new Set(all.map((s) => s.mapHash)).size).toBe(1);
      expect(all.every((s) => s.principal === ids[size - 1])).toBe(true);
      const masters = all.reduce((sum, s) => sum + s.partitions.master, 0);
      expect(masters).toBe(4096);
      console.log(`${size} processes formed one cluster in ${formedMs} ms after the last start`);
    }, 60_000);
  }

  it('writes through any node are readable from every node', async () => {
    const nodes = await startCluster(['r1', 'r2', 'r3']);
    expect(await eventually(() => settled(nodes), 20_000)).toBe(true);
    const keys = Array.from({ length: 200 }, (_, i) => `key${i}`);
    await Promise.all(keys.map((key, i) => nodes[i % 3].value('put', { key, value: i })));
    for (const node of nodes) {
      const values = await Promise.all(keys.map((key) => node.value<number>('get', { key })));
      expect(values).toEqual(keys.map((_, i) => i));
    }
  }, 60_000);

  it('kill -9 of a node under write load (RF 2): no acknowledged write lost, writes resume within 3 s, 2 copies after migrations', async () => {
    const nodes = await startCluster(['k1', 'k2', 'k3', 'k4']);
    expect(await eventually(() => settled(nodes), 20_000)).toBe(true);
    const load = writeLoad(() => nodes, 'w');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const victim = nodes[1];
    const killedAt = Date.now();
    victim.kill('SIGKILL');
    const survivors = nodes.filter((n) => n !== victim);
    expect(await eventually(() => agreed(survivors), 10_000)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await load.stop();
    expect(await eventually(() => settled(survivors), 30_000)).toBe(true);
    // Writes resumed: the longest gap between acknowledgements after the kill.
    const after = [killedAt, ...load.acknowledgedAt.filter((t) => t >= killedAt)];
    let longestGapMs = 0;
    for (let i = 1; i < after.length; i++) longestGapMs = Math.max(longestGapMs, after[i] - after[i - 1]);
    const copies = await ownedCopies(survivors);
    const lost = [...load.acknowledged].filter((key) => (copies.get(digestHex(key)) ?? 0) < 2);
    console.log(`kill -9: ${load.acknowledged.size} acknowledged, ${load.failures.length} failed (in doubt), longest write gap after the kill ${longestGapMs} ms, under-replicated ${lost.length}`);
    expect(lost).toEqual([]);
    expect(longestGapMs).toBeLessThan(3_000);
  }, 90_000);

  it('a node joins under load: migrations finish, migrationsRemaining reaches 0, no acknowledged write lost', async () => {
    const nodes = await startCluster(['j1', 'j2', 'j3']);
    expect(await eventually(() => settled(nodes), 20_000)).toBe(true);
    await Promise.all(Array.from({ length: 1000 }, (_, i) => nodes[i % 3].value('put', { key: `pre${i}`, value: i })));
    const load = writeLoad(() => nodes.slice(0, 3), 'live');
    const joiner = new ChildNode(root, 'j4', [nodes[0].address]);
    children.push(joiner);
    await joiner.ready;
    const all = [...nodes, joiner];
    const joinedAt = Date.now();
    expect(await eventually(() => settled(all), 30_000)).toBe(true);
    const migratedMs = Date.now() - joinedAt;
    await load.stop();
    expect(await eventually(() => settled(all), 10_000)).toBe(true);
    const copies = await ownedCopies(all);
    const expected = [...Array.from({ length: 1000 }, (_, i) => `pre${i}`), ...load.acknowledged];
    const lost = expected.filter((key) => (copies.get(digestHex(key)) ?? 0) < 2);
    expect(lost).toEqual([]);
    const state = await joiner.value<ChildState>('state');
    expect(state.migrationsRemaining).toBe(0);
    expect(state.partitions.master).toBeGreaterThan(900);
    console.log(`join: settled ${migratedMs} ms after the join, ${load.acknowledged.size} writes acknowledged meanwhile, ${load.failures.length} failed`);
  }, 90_000);

  it('benchmark: latency through a non-master (one proxy hop) vs local, and migration throughput', async () => {
    const nodes = await startCluster(['b1', 'b2', 'b3']);
    expect(await eventually(() => settled(nodes), 20_000)).toBe(true);
    type Figures = { p50: number; p90: number; p99: number; max: number; mean: number; opsPerSecond: number };
    const bench = await nodes[0].value<Record<string, Figures>>('bench', { count: 1000 });
    for (const [name, f] of Object.entries(bench)) {
      console.log(`latency ${name}: p50 ${f.p50} ms, p90 ${f.p90} ms, p99 ${f.p99} ms, max ${f.max} ms, mean ${f.mean} ms, ${f.opsPerSecond} ops/s sequential`);
    }
    expect(bench.getLocal.p50).toBeLessThan(bench.getRemote.p50);
    expect(bench.putRemote.p50).toBeLessThan(50);
    // Migration throughput: 15,000 records (about 100 bytes each) over 3 nodes, then a 4th joins.
    await nodes[0].value('load', { prefix: 'm', count: 15_000, concurrency: 64, padBytes: 64 });
    expect(await eventually(() => settled(nodes), 30_000)).toBe(true);
    const before = (await states(nodes)).reduce((sum, s) => sum + (s as unknown as { counters: { migratedRecordsIn: number } }).counters.migratedRecordsIn, 0);
    const joiner = new ChildNode(root, 'b4', [nodes[0].address]);
    children.push(joiner);
    await joiner.ready;
    const started = Date.now();
    const all = [...nodes, joiner];
    expect(await eventually(() => settled(all), 60_000)).toBe(true);
    const elapsedMs = Date.now() - started;
    const after = (await states(all)).reduce((sum, s) => sum + (s as unknown as { counters: { migratedRecordsIn: number } }).counters.migratedRecordsIn, 0);
    const migrated = after - before;
    console.log(`migration: ${migrated} record versions moved in ${elapsedMs} ms from the join to settled (${Math.round(migrated / (elapsedMs / 1000))} records/s, including detection and agreement)`);
    expect(migrated).toBeGreaterThan(5_000);
  }, 120_000);

  it('garbage on the fabric port: the node closes every such connection with a logged reason, keeps serving, and the cluster stays formed', async () => {
    // Failure detection is not under test here: with a 6 s detector (150 ms x 40) scheduler stalls
    // on a loaded machine evict nobody, so a changed cluster key is the garbage's doing (or a
    // membership bug: docs/cluster.md, bug 14).
    const nodes = await startCluster(['g1', 'g2', 'g3'], 40);
    expect(await eventually(() => agreed(nodes), 20_000)).toBe(true);
    const clusterKey = (await states(nodes))[0].clusterKey;
    const target = nodes[1];
    const closeWithinMs = HANDSHAKE_TIMEOUT_MS + 15_000;
    // All at once. Garbage 0 is one byte, an incomplete frame header: only the handshake timeout
    // ends that connection. Every other one is refused for what it contains.
    const outcomes = await Promise.all(Array.from({ length: 30 }, (_, i) => sendGarbage(target.address, garbage(i), closeWithinMs)));
    const [incomplete, ...rejected] = outcomes;
    expect(outcomes.filter((outcome) => !outcome.closedByNode)).toEqual([]);
    // Refused at once, not left open until the handshake timeout (which ended garbage 0).
    expect(rejected.filter((outcome) => outcome.closedAtMs >= incomplete.closedAtMs)).toEqual([]);
    expect(target.exited).toBe(false);
    // Still serving: writes through the target (most are proxied to other masters) read back everywhere.
    const keys = Array.from({ length: 60 }, (_, i) => `after-garbage-${i}`);
    await Promise.all(keys.map((key, i) => target.value('put', { key, value: i })));
    for (const node of nodes) expect(await Promise.all(keys.map((key) => node.value<number>('get', { key })))).toEqual(keys.map((_, i) => i));
    expect(await agreed(nodes)).toBe(true);
    expect((await states(nodes))[0].clusterKey).toBe(clusterKey);
    // The node logged why it closed each connection: the incomplete header at the handshake
    // timeout, every other one for what it contained (not merely for never saying hello).
    const logs = await target.value<string[]>('logs');
    const reason = ({ localAddress }: GarbageOutcome) =>
      logs.find((line) => /(closing|refusing) connection/.test(line) && line.includes(`${localAddress}:`)) ?? 'no log line';
    expect(reason(incomplete)).toContain('no handshake');
    expect(rejected.map(reason).filter((line) => line === 'no log line' || line.includes('no handshake'))).toEqual([]);
  }, 60_000);
});
