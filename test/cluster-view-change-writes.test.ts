/**
 * Writes caught by a view change tell the truth and apply at most once (issue 21), three Db
 * processes on loopback. A compare-and-set and an incr go from c1 to their master c2, which
 * executes them and replicates them to c3; c2's replies to c1 are lost, then c2 is stopped
 * (SIGSTOP), so c1 and c3 form a view without it while c1 still waits. Before, c1 sent both
 * requests again to the new master c3, which held the replicated writes: the compare-and-set
 * came back GENERATION_MISMATCH (the write was applied) and the incr applied twice. Now c3
 * answers the re-send with the first result it remembers from the replication, or the call is
 * reported in doubt (TIMEOUT); either way the record holds each write once.
 */
import { describe, expect, it } from 'vitest';
import { ChildNode, eventually, useDbChildren, type DbChildState } from './fixtures/cluster-children';

const { startChild, settled } = useDbChildren('shoal-vc');

/** A key whose partition c2 masters with c3 as its replica. */
async function keyMasteredBy(origin: ChildNode, prefix: string): Promise<string> {
  for (let i = 0; ; i++) {
    const owners = await origin.value<string[]>('owners', { key: `${prefix}${i}` });
    if (owners[0] === 'c2' && owners[1] === 'c3') return `${prefix}${i}`;
  }
}

describe('writes caught by a view change (3 Db processes on loopback)', () => {
  it('a forwarded compare-and-set and an incr return the truth and apply once', async () => {
    const c1 = startChild('c1', []);
    await c1.ready;
    const c2 = startChild('c2', [c1.address]);
    const c3 = startChild('c3', [c1.address]);
    await Promise.all([c2.ready, c3.ready]);
    expect(await eventually(() => settled([c1, c2, c3]), 20_000)).toBe(true);
    const register = await keyMasteredBy(c1, 'register');
    const counter = await keyMasteredBy(c1, 'counter');
    await c1.value('casAt', { key: register, tokens: ['first'], generation: 0 });
    expect(await c1.value('incr', { key: counter, by: 1 })).toBe(1);

    // c2's answers to c1 are lost from now on; c2 still executes and replicates to c3.
    await c2.value('dropMessages', { to: 'c1', types: ['response'] });
    const cas = c1.command('casAt', { key: register, tokens: ['first', 'second'], generation: 1 }, 20_000);
    const incr = c1.command('incr', { key: counter, by: 1 }, 20_000);
    // Both ran on c2 and reached c3: reading through c3 (routed to c2) shows them.
    expect(await eventually(async () => (await c3.value<{ gen: number } | null>('record', { key: register }))?.gen === 2, 5_000)).toBe(true);
    expect(await eventually(async () => (await c3.value<{ bins: { n: number } } | null>('record', { key: counter }))?.bins.n === 2, 5_000)).toBe(true);
    c2.kill('SIGSTOP');
    const [casReply, incrReply] = await Promise.all([cas, incr]);
    expect(await eventually(() => settled([c1, c3]), 20_000)).toBe(true);
    console.log(`after the view change: cas ${JSON.stringify(casReply)}; incr ${JSON.stringify(incrReply)}`);

    // The truth: applied (with its result), or in doubt; never a definite "not applied".
    expect(casReply.ok || casReply.code === 'TIMEOUT', `cas: ${casReply.code} ${casReply.message}`).toBe(true);
    if (casReply.ok) expect(casReply.value).toMatchObject({ gen: 2 });
    expect(incrReply.ok || incrReply.code === 'TIMEOUT', `incr: ${incrReply.code} ${incrReply.message}`).toBe(true);
    if (incrReply.ok) expect(incrReply.value).toBe(2);
    // Applied once.
    expect(await c1.value('record', { key: register })).toEqual({ bins: { tokens: ['first', 'second'] }, gen: 2 });
    expect(await c1.value('record', { key: counter })).toMatchObject({ bins: { n: 2 }, gen: 2 });

    // c2 comes back and merges: still once.
    c2.kill('SIGCONT');
    await c2.value('dropNothing');
    expect(await eventually(() => settled([c1, c2, c3]), 30_000)).toBe(true);
    for (const node of [c1, c2, c3]) {
      expect(await node.value('record', { key: register })).toEqual({ bins: { tokens: ['first', 'second'] }, gen: 2 });
      expect(await node.value('record', { key: counter })).toMatchObject({ bins: { n: 2 }, gen: 2 });
    }
  }, 120_000);
});
