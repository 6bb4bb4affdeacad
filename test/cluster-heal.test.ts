/**
 * Issue 21, "connections that heal when the network heals": a one-way fault stalls TCP
 * connections (their data waits for retransmissions that back off to seconds), and the
 * fabric replaces a stalled connection instead of reusing it, so the cluster merges within
 * about one heartbeat timeout of the heal. On the simulated network (a TCP-faithful stall
 * fault, SimNetwork.stall) and between two real processes in network namespaces, with a
 * one-way block on a real link (skipped where namespaces cannot be made: not root, no `ip`).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection, WireMessage } from '../lib/cluster/network';
import { SimCluster } from '../sim/harness';
import { nextRetransmitMs, SimNetwork, SimScheduler } from '../sim/simulation';
import type { ChildState } from './fixtures/cluster-children';
import { ChildNode, compileClusterForChildren, eventually } from './fixtures/cluster-children';

const HEARTBEAT_INTERVAL_MS = 150;
const HEARTBEAT_TIMEOUT = 10;
const TIMEOUT_MS = HEARTBEAT_INTERVAL_MS * HEARTBEAT_TIMEOUT;
/** The block of the report in issue 21. */
const BLOCK_MS = 6_600;

describe('simulated network: a one-way stall', () => {
  it('holds the stalled direction\'s frames in order and releases them at TCP\'s next retransmission after the heal', async () => {
    expect([0, 150, 200, 201, 600, 5_000, 6_300].map((now) => nextRetransmitMs(0, now))).toEqual([0, 200, 200, 600, 600, 6_200, 12_600]);
    const scheduler = new SimScheduler(5);
    const network = new SimNetwork(scheduler, { minDelayMs: 1, maxDelayMs: 1 });
    const [a, b] = [scheduler.host('a'), scheduler.host('b')];
    const arrived: [number, string][] = [];
    await network.forHost(b).listen('b:1', (connection) => connection.setHandlers({ onMessage: (m) => arrived.push([scheduler.nowMs(), m.type]), onClose: () => {} }));
    await network.forHost(a).listen('a:1', () => {});
    const client: Connection = network.forHost(a).connect('b:1');
    client.setHandlers({ onMessage: () => {}, onClose: () => {} });
    client.send({ type: 'one' });
    await scheduler.runFor(50);
    const start = scheduler.nowMs();
    network.stall('a:1', 'b:1');
    for (const type of ['two', 'three']) client.send({ type } as WireMessage);
    await scheduler.runFor(5_000);
    expect(arrived.map(([, type]) => type)).toEqual(['one']);
    network.unstall('a:1', 'b:1');
    client.send({ type: 'four' });
    await scheduler.runFor(10_000);
    // Held since `start` (+1 ms delay): retries at +200, +600, ... +6,200 ms, the first one after the heal at 5,050 ms.
    expect(arrived.map(([, type]) => type)).toEqual(['one', 'two', 'three', 'four']);
    expect(arrived[1]![0] - start).toBeGreaterThanOrEqual(6_000);
    expect(network.messagesHeld).toBeGreaterThanOrEqual(2);
  });

  // Regression seed 21 (the issue): without stall replacement the nodes stayed split until the
  // held frames' retransmission, 6.2 s after a 6.6 s stall (12.6 s after the stall began).
  it('seed 21: after a 6.6 s one-way stall between two of three nodes, one view forms within 2 heartbeat timeouts of the heal', async () => {
    const sim = new SimCluster({ seed: 21, network: { minDelayMs: 1, maxDelayMs: 5 } });
    const ids = ['n1', 'n2', 'n3'];
    for (const id of ids) await sim.addNode(id, ['n1:7000']);
    expect(await sim.scheduler.runUntil(() => sim.agree(ids) && sim.migrationsDone(), 20_000)).toBe(true);
    const before = sim.node('n1').view.clusterKey;
    sim.network.stall('n1:7000', 'n2:7000');
    await sim.scheduler.runFor(BLOCK_MS);
    expect(sim.node('n2').view.succession).not.toContain('n1');
    sim.network.heal();
    const healedAt = sim.scheduler.nowMs();
    expect(await sim.scheduler.runUntil(() => sim.agree(ids), 2 * TIMEOUT_MS), ids.map((id) => `${id}: ${sim.node(id).view.succession}`).join('; ')).toBe(true);
    const mergedMs = sim.scheduler.nowMs() - healedAt;
    expect(sim.node('n1').view.clusterKey).not.toBe(before);
    expect(mergedMs).toBeLessThanOrEqual(2 * TIMEOUT_MS);
    expect(ids.reduce((sum, id) => sum + sim.node(id).fabric.counters.stalledConnections, 0)).toBeGreaterThan(0);
    process.stdout.write(`seed 21: one view ${mergedMs} simulated ms after the heal\n`);
  });
});

/** Whether this machine can make network namespaces (root and `ip`). */
function namespacesUsable(): boolean {
  if (process.getuid?.() !== 0) return false;
  const name = `shoal-probe-${process.pid}`;
  const made = spawnSync('ip', ['netns', 'add', name]).status === 0;
  if (made) spawnSync('ip', ['netns', 'del', name]);
  return made;
}

function run(...args: string[]): void {
  const result = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${args.join(' ')} failed: ${result.stderr}`);
}

/**
 * Two network namespaces joined by a veth pair, A at 10.X.Y.1 and B at 10.X.Y.2 (X, Y from the
 * pid, so parallel runs do not collide). `blockAToB` makes everything A sends to B vanish on the
 * way, as a one-way fault on a real network: A's neighbour entry for B is pinned to a MAC
 * address nobody has, so B's interface discards A's frames. A's TCP sees remote loss and backs
 * off its retransmissions. (A drop on A's own egress, a qdisc, is a local drop that TCP retries
 * at once: it does not reproduce the fault.)
 */
class NamespacePair {
  readonly a = `shoal-a-${process.pid}`;
  readonly b = `shoal-b-${process.pid}`;
  private readonly linkA = `sha${process.pid % 100000}`;
  private readonly linkB = `shb${process.pid % 100000}`;
  readonly subnet = `10.${200 + (process.pid % 50)}.${Math.floor(process.pid / 50) % 250}`;

  create(): void {
    this.destroy();
    run('ip', 'netns', 'add', this.a);
    run('ip', 'netns', 'add', this.b);
    run('ip', 'link', 'add', this.linkA, 'type', 'veth', 'peer', 'name', this.linkB);
    run('ip', 'link', 'set', this.linkA, 'netns', this.a);
    run('ip', 'link', 'set', this.linkB, 'netns', this.b);
    for (const [ns, link, host] of [[this.a, this.linkA, 1], [this.b, this.linkB, 2]] as const) {
      run('ip', '-n', ns, 'addr', 'add', `${this.subnet}.${host}/24`, 'dev', link);
      run('ip', '-n', ns, 'link', 'set', link, 'up');
      run('ip', '-n', ns, 'link', 'set', 'lo', 'up');
    }
  }

  blockAToB(): void {
    run('ip', '-n', this.a, 'neigh', 'replace', `${this.subnet}.2`, 'lladdr', '02:00:00:5e:00:01', 'dev', this.linkA, 'nud', 'permanent');
  }

  heal(): void {
    const shown = spawnSync('ip', ['-n', this.b, 'link', 'show', this.linkB], { encoding: 'utf8' }).stdout;
    const mac = /link\/ether ([0-9a-f:]+)/.exec(shown)?.[1];
    if (mac === undefined) throw new Error(`no MAC address for ${this.linkB}: ${shown}`);
    run('ip', '-n', this.a, 'neigh', 'replace', `${this.subnet}.2`, 'lladdr', mac, 'dev', this.linkA, 'nud', 'reachable');
  }

  destroy(): void {
    spawnSync('ip', ['netns', 'del', this.a]);
    spawnSync('ip', ['netns', 'del', this.b]);
  }
}

describe.skipIf(!namespacesUsable())('two real processes in network namespaces', () => {
  const pair = new NamespacePair();
  const children: ChildNode[] = [];
  let root = '';

  beforeAll(() => {
    root = compileClusterForChildren();
    pair.create();
  }, 90_000);

  afterAll(() => {
    for (const child of children) child.kill('SIGKILL');
    pair.destroy();
    if (root !== '') fs.rmSync(root, { recursive: true, force: true });
  });

  it('a 6.6 s one-way block, then a heal: the nodes merge within 2 heartbeat timeouts', async () => {
    const secret = 'one-way block test secret 0123';
    const start = (id: string, ns: string, host: number, seeds: string[]) => {
      const child = new ChildNode(root, id, seeds, HEARTBEAT_INTERVAL_MS, HEARTBEAT_TIMEOUT, {
        cluster: { listen: { host: `${pair.subnet}.${host}`, port: 0 }, secret },
        prefix: ['ip', 'netns', 'exec', ns],
      });
      children.push(child);
      return child;
    };
    const a = start('ha', pair.a, 1, []);
    await a.ready;
    const b = start('hb', pair.b, 2, [a.address]);
    await b.ready;
    const states = () => Promise.all([a, b].map((node) => node.value<ChildState & { fabric: { stalledConnections: number } }>('state')));
    const merged = async () => {
      const [sa, sb] = await states();
      return sa!.clusterKey === sb!.clusterKey && sa!.succession.length === 2 && sb!.succession.length === 2;
    };
    expect(await eventually(merged, 20_000)).toBe(true);
    const formedKey = (await states())[0]!.clusterKey;
    // Traffic on the connections while the block starts, so data is queued behind it.
    await a.command('load', { prefix: 'before', count: 200, concurrency: 8 });

    pair.blockAToB();
    const load = a.command('load', { prefix: 'during', count: 2_000, concurrency: 8 }, 20_000);
    await new Promise((resolve) => setTimeout(resolve, BLOCK_MS));
    const [, duringB] = await states();
    expect(duringB!.succession).toEqual(['hb']);
    pair.heal();
    const healedAt = Date.now();
    expect(await eventually(merged, 15_000)).toBe(true);
    const mergedMs = Date.now() - healedAt;
    process.stdout.write(`one-way block: merged ${mergedMs} ms after the heal (heartbeat timeout ${TIMEOUT_MS} ms)\n`);
    expect(mergedMs).toBeLessThanOrEqual(2 * TIMEOUT_MS);
    await load;
    const [sa, sb] = await states();
    expect(sa!.clusterKey).not.toBe(formedKey);
    expect(sa!.fabric.stalledConnections + sb!.fabric.stalledConnections).toBeGreaterThan(0);
  }, 60_000);
});
