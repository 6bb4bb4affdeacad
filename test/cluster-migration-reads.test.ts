/**
 * Read-your-writes and no client error while partitions move (issue 21), four Db processes
 * on loopback with enough records that each migration takes seconds. Two clients write fresh
 * keys and read each back (and an older one) the whole time, through a node that joins and a
 * node that is quiesced and leaves. Every write must be acknowledged, every read must return
 * what was acknowledged, and every record must be there at the end.
 *
 * Settle notices arrive late, in bursts, as they do when event loops are busy with a large
 * migration (the 1M-record replace of issue 21): the acting masters' notices to the nodes
 * taking over are held back for 1.5 s at a time (they are re-sent every heartbeat until
 * acknowledged). Meanwhile a partition in handoff is served by nobody: requests must be
 * retried inside the cluster until it is. Before, a request gave up after five quick retries
 * (about half a second) and the client saw TIMEOUT.
 */
import { describe, expect, it } from 'vitest';
import { ChildNode, eventually, useDbChildren, type DbChildState } from './fixtures/cluster-children';

interface LoadReport {
  acknowledged: number;
  errors: string[];
  hidden: string[];
}

/** Records loaded before the clients start: a join then moves about 20,000 copies. */
const RECORDS = 40_000;

const { startChild, settled } = useDbChildren('shoal-ryw');

/** Until stopped: `senders` hold back their settle notices to `to` for 1.5 s, then let them through for 0.5 s. */
function lateNotices(senders: ChildNode[], to: string[]) {
  let stopped = false;
  const cycle = (async () => {
    while (!stopped) {
      await Promise.all(senders.map((node) => node.value('dropMessages', { to, types: ['partition-settled'] })));
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await Promise.all(senders.map((node) => node.value('dropNothing')));
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await cycle;
    },
  };
}

describe('reads during migrations (4 Db processes on loopback)', () => {
  it('a join and a quiesce under a read-your-writes load: no error, no hidden read, nothing lost', async () => {
    const m1 = startChild('m1', []);
    await m1.ready;
    const m2 = startChild('m2', [m1.address]);
    const m3 = startChild('m3', [m1.address]);
    await Promise.all([m2.ready, m3.ready]);
    expect(await eventually(() => settled([m1, m2, m3]), 20_000)).toBe(true);
    for (let from = 0; from < RECORDS; from += 500) {
      const reply = await m1.command('batchPut', { prefix: 'base', count: 500, from }, 60_000);
      expect(reply.ok && (reply.value as { failures: number }).failures === 0, JSON.stringify(reply)).toBe(true);
    }
    await m1.value('startLoad', { prefix: 'load-a-' });
    await m2.value('startLoad', { prefix: 'load-b-' });

    const joinedAt = Date.now();
    const m4 = startChild('m4', [m1.address]);
    await m4.ready;
    const joinNotices = lateNotices([m1, m2, m3], ['m4']);
    expect(await eventually(() => settled([m1, m2, m3, m4]), 90_000)).toBe(true);
    await joinNotices.stop();
    const joinMs = Date.now() - joinedAt;

    const quiescedAt = Date.now();
    await m3.value('quiesce');
    await m3.value('recluster');
    const quiesceNotices = lateNotices([m3], ['m1', 'm2', 'm4']);
    expect(
      await eventually(async () => {
        const state = await m3.value<DbChildState>('state');
        return state.quiesced.includes('m3') && state.partitions.master === 0 && state.partitions.replica === 0 && (await settled([m1, m2, m3, m4]));
      }, 90_000),
    ).toBe(true);
    await quiesceNotices.stop();
    const quiesceMs = Date.now() - quiescedAt;

    const reports = [await m1.value<LoadReport>('stopLoad'), await m2.value<LoadReport>('stopLoad')];
    console.log(`join took ${joinMs} ms, quiesce ${quiesceMs} ms; load: ${reports.map((r) => `${r.acknowledged} acknowledged, ${r.errors.length} errors, ${r.hidden.length} hidden reads`).join('; ')} ${JSON.stringify(reports.flatMap((r) => [...r.errors, ...r.hidden]).slice(0, 5))}`);
    for (const report of reports) {
      expect(report.errors.slice(0, 5)).toEqual([]);
      expect(report.hidden.slice(0, 5)).toEqual([]);
      expect(report.acknowledged).toBeGreaterThan(100);
    }
    // Every loaded record is there, read through the node that joined.
    expect(await m4.command('readBack', { prefix: 'base', from: 0, to: RECORDS }, 60_000)).toMatchObject({ ok: true, value: { missing: 0 } });
  }, 300_000);
});
