/**
 * What XDR did not ship before (docs/xdr.md, "Truncates", "Large records"), with real
 * processes: records larger than one ship message (60 KiB > 56 KiB) travel in parts and arrive
 * whole; a truncate on the source is applied at the destination, records written after it
 * still ship, and with both directions on a truncate made on either side reaches the other and
 * goes no further. Fails on the code before (large records counted in tooLarge and not shipped;
 * truncates not shipped).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { destinationOf, dump, eventually, killAll, startXdrCluster, waitForShipped } from './helpers/xdr-clusters';

afterEach(killAll);

type State = { destinations: Record<string, { pendingRecords: number; tooLarge: number; shippedRecords: number }> };

describe('xdr: large records and truncates', () => {
  it('ships 60 KiB records in parts and applies truncates at the destination, both ways, without loops', async () => {
    const dc2 = await startXdrCluster('dc2', 1);
    const dc1 = await startXdrCluster('dc1', 2, { xdr: { destinations: [destinationOf(dc2)] } });
    const big = 'x'.repeat(60 * 1024);
    for (let i = 0; i < 4; i++) await dc1[i % 2]!.value('put', { key: `big-${i}`, bins: { i, big } });
    for (let i = 0; i < 100; i++) await dc1[i % 2]!.value('put', { key: `small-${i}`, bins: { i } });
    await waitForShipped(dc1);
    const before = await dump(dc1);
    expect(before.length).toBe(104);
    expect(await dump(dc2)).toEqual(before);
    const states = await Promise.all(dc1.map((node) => node.value<State>('xdrState')));
    expect(states.reduce((sum, s) => sum + s.destinations.dc2!.tooLarge, 0)).toBe(4);

    // A truncate of the whole namespace on the source: the destination removes its copies too.
    await dc1[0]!.value('truncate', {});
    expect(await eventually(async () => (await dump(dc2)).length === 0, 30_000)).toBe(true);
    // Writes after the truncate ship as before.
    for (let i = 0; i < 20; i++) await dc1[1]!.value('put', { key: `after-${i}`, bins: { i } });
    await waitForShipped(dc1);
    expect((await dump(dc1)).length).toBe(20);
    expect(await dump(dc2)).toEqual(await dump(dc1));

    // Both directions: a truncate on dc2 reaches dc1, and neither ships it back and forth.
    await dc2[0]!.value('addDestination', { destination: destinationOf(dc1) });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await dc2[0]!.value('truncate', {});
    expect(await eventually(async () => (await dump(dc1)).length === 0, 30_000)).toBe(true);
    await dc2[0]!.value('put', { key: 'last', bins: { v: 1 } });
    await waitForShipped(dc2);
    await waitForShipped(dc1);
    expect(await dump(dc1)).toEqual(await dump(dc2));
    expect((await dump(dc1)).map((r) => r[0])).toEqual(['last']);
    const after = await Promise.all([...dc1, ...dc2].map((node) => node.value<State>('xdrState')));
    for (const state of after) for (const destination of Object.values(state.destinations)) expect(destination.pendingRecords).toBe(0);
  }, 180_000);
});
