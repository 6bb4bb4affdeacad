/**
 * The simulated network behaves like TCP where the cluster depends on it (bugs 8 and 9 of
 * docs/cluster.md, found by the full fault schedule): nothing sent on a connection arrives
 * before the connection is set up, and traffic to a socket that is gone draws a reset even
 * when its close was lost in a partition.
 */
import { describe, expect, it } from 'vitest';
import type { Connection } from '../lib/cluster/network';
import { SimCluster } from '../sim/harness';
import { SimNetwork, SimScheduler } from '../sim/simulation';

describe('simulated network', () => {
  it('a hello sent while the connection is being set up is delivered, not dropped (no refused handshakes on a clean network)', async () => {
    const sim = new SimCluster({ seed: 8, network: { minDelayMs: 1, maxDelayMs: 20 } });
    const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
    for (const id of ids) await sim.addNode(id, ['n1:7000']);
    expect(await sim.scheduler.runUntil(() => sim.agree(ids), 20_000)).toBe(true);
    const refused = ids.reduce((sum, id) => sum + sim.node(id).fabric.counters.rejectedHandshakes, 0);
    const violations = ids.reduce((sum, id) => sum + sim.node(id).fabric.counters.protocolViolations, 0);
    expect(refused).toBe(0);
    expect(violations).toBe(0);
  });

  it('a connection to a crashed process whose close was lost in a split is reset once the split heals; the restarted node rejoins', async () => {
    const sim = new SimCluster({ seed: 9, network: { minDelayMs: 1, maxDelayMs: 5 } });
    const ids = ['n1', 'n2', 'n3'];
    for (const id of ids) await sim.addNode(id, ['n1:7000']);
    expect(await sim.scheduler.runUntil(() => sim.agree(ids) && sim.migrationsDone(), 20_000)).toBe(true);
    // n3 crashes while cut off from n1: the kernel's close of its sockets never reaches n1.
    sim.network.partition(['n1:7000'], ['n3:7000']);
    sim.crash('n3');
    await sim.scheduler.runFor(500);
    sim.network.heal();
    await sim.restart('n3', 'warm');
    expect(await sim.scheduler.runUntil(() => sim.agree(ids) && sim.migrationsDone(), 20_000), ids.map((id) => `${id}: ${sim.node(id).view.succession}`).join('; ')).toBe(true);
  });

  it('traffic to a socket closed while its close could not get through draws a reset: the sender learns the connection is dead', async () => {
    const scheduler = new SimScheduler(3);
    const network = new SimNetwork(scheduler, { minDelayMs: 1, maxDelayMs: 5 });
    const [a, b] = [scheduler.host('a'), scheduler.host('b')];
    let accepted: Connection | undefined;
    await network.forHost(b).listen('b:1', (connection) => {
      accepted = connection;
      connection.setHandlers({ onMessage: () => {}, onClose: () => {} });
    });
    await network.forHost(a).listen('a:1', () => {});
    const client = network.forHost(a).connect('b:1');
    let closedWith: string | undefined;
    client.setHandlers({ onMessage: () => {}, onClose: (reason) => (closedWith = reason) });
    client.send({ type: 'hello' });
    await scheduler.runFor(50);
    expect(accepted).toBeDefined();
    // b closes its side while b -> a is blocked: the close never reaches a.
    network.block('b:1', 'a:1');
    accepted!.close('handshake timeout');
    await scheduler.runFor(50);
    network.heal();
    expect(closedWith).toBeUndefined();
    // a's next message reaches a socket that is gone: the reset closes a's side.
    client.send({ type: 'heartbeat' });
    await scheduler.runFor(50);
    expect(closedWith).toBe('closed by peer');
    expect(client.closed).toBe(true);
  });
});
