/**
 * The byte-level list append and map put / increment (lib/model/cdt/fast.ts) write exactly the
 * bytes the general path writes: random records and operations run twice, once with the
 * byte-level writes on and once off, must leave identical payloads and results. Seeded
 * (SHOAL_CDT_FAST_SEED replays; printed).
 */
import { describe, expect, it } from 'vitest';
import { Db, ListOrder, MapOrder, MapWriteFlags, op, type Operation } from '../lib/index';
import { fastWrites } from '../lib/model/cdt/fast';
import { digestOf } from '../lib/model/digest';
import type { Namespace } from '../lib/namespace/namespace';
import { cdtKey, openCdtDb } from './helpers/cdt';
import { useDbCleanup } from './helpers/db';
import { seededFloats } from './helpers/random';

useDbCleanup(['cdt']);

const seed = Number(process.env.SHOAL_CDT_FAST_SEED ?? Date.now() % 1_000_000);

async function payloadOf(db: Db, key: ReturnType<typeof cdtKey>): Promise<string> {
  const ns = (db as unknown as { namespaces: Map<string, Namespace> }).namespaces.get('cdt')!;
  return (await ns.readVersion(digestOf(key.set, key.key)))!.payload!.toString('hex');
}

describe(`byte-level writes equal the general path (seed ${seed})`, () => {
  it('random appends, puts and increments leave the same payload and results', async () => {
    console.log(`cdt-fast seed ${seed}`);
    const random = seededFloats(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const scalar = () => pick<unknown>([0, 1, 127, 128, -33, 70_000, 2 ** 40, 1.5, 7n, 'a', 'long string '.repeat(3), '', Buffer.from([1, 2]), true, null]);
    const value = () => (random() < 0.8 ? scalar() : random() < 0.5 ? [scalar(), [scalar()]] : random() < 0.5 ? { k: scalar() } : new Map([[1, scalar()]]));
    const mapKey = () => pick<unknown>(['a', 'b', 'zz', 'é', 'x'.repeat(40), 0, 5, -3, 300, 2n ** 40n, Buffer.from([9])]);
    const fast = await openCdtDb('memory');
    const slow = await openCdtDb('memory');
    for (let round = 0; round < 60; round++) {
      const key = cdtKey(`r${round}`);
      // Lists and maps of every size class (header forms change at 16 and 65,536), ordered or not.
      const size = pick([0, 1, 14, 15, 16, 17, 200]);
      const listOrder = random() < 0.3 ? ListOrder.ORDERED : ListOrder.UNORDERED;
      const mapOrder = pick([MapOrder.UNORDERED, MapOrder.KEY_ORDERED, MapOrder.KEY_VALUE_ORDERED]);
      const setup: Operation[] = [
        op.list.appendItems('l', Array.from({ length: size }, () => scalar()), { order: listOrder }),
        op.map.putItems('m', new Map(Array.from({ length: size }, (_, i) => [random() < 0.5 ? `k${i}` : i, scalar()])), { order: mapOrder }),
        op.write('s', 'other bin'),
      ];
      for (const db of [fast, slow]) await db.operate(key, setup);
      for (let step = 0; step < 25; step++) {
        const kind = random();
        const ops: Operation[] =
          kind < 0.3
            ? [op.list.append('l', value())]
            : kind < 0.45
              ? [op.list.appendItems('l', Array.from({ length: Math.floor(random() * 20) }, () => value()))]
              : kind < 0.7
                ? [op.map.put('m', mapKey(), value(), random() < 0.2 ? { writeFlags: MapWriteFlags.NO_FAIL } : {})]
                : kind < 0.9
                  ? [op.map.increment('m', mapKey(), pick([1, -1, 1000, 0.5, 3n]))]
                  : [op.map.put('m', mapKey(), 1), op.list.append('l', 2), op.read('m'), op.map.increment('m', 'a', 1)];
        fastWrites.enabled = true;
        const a = await fast.operate(key, ops).catch((error: Error) => error.message);
        fastWrites.enabled = false;
        const b = await slow.operate(key, ops).catch((error: Error) => error.message);
        fastWrites.enabled = true;
        expect(a, `round ${round} step ${step}`).toEqual(b);
        expect(await payloadOf(fast, key), `round ${round} step ${step}`).toBe(await payloadOf(slow, key));
      }
    }
  });
});
