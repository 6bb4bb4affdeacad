/**
 * operate() with list and map operations is atomic: concurrent calls on one record lose no
 * update (a device namespace holds the record's lock across its device read), and a call that
 * fails part way leaves the record exactly as it was (generation too).
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, ListOrder, MapOrder, ReturnType, cdt, op } from '../lib/index';
import { CdtKind, cdtKey, openCdtDb, outcomeOf } from './helpers/cdt';
import { useDbCleanup } from './helpers/db';

useDbCleanup(['cdt']);

const CALLS = 400;

describe('concurrent operate calls', () => {
  for (const kind of ['memory', 'device', 'deviceInMemory'] as CdtKind[]) {
    it(`${kind}: ${CALLS} concurrent appends, increments and merging puts lose nothing`, async () => {
      const db = await openCdtDb(kind);
      const key = cdtKey('hot');
      await db.put(key, { seed: 0 });
      const calls: Promise<unknown>[] = [];
      for (let i = 0; i < CALLS; i++) {
        calls.push(db.operate(key, [op.list.append('l', i, { order: ListOrder.ORDERED }), op.map.increment('m', 'n', 1, { order: MapOrder.KEY_ORDERED })]));
        calls.push(db.operate(key, [op.map.increment('m', `k${i % 7}`, 2), op.list.size('l')]));
        if (i % 25 === 0) calls.push(db.put(key, { [`p${i}`]: i }));
        if (i % 10 === 0) calls.push(db.get(key));
      }
      await Promise.all(calls);
      const record = (await db.get(key))!;
      expect(record.bins.l).toEqual(Array.from({ length: CALLS }, (_, i) => i));
      const map = record.bins.m as Record<string, number>;
      expect(map.n).toBe(CALLS);
      expect(Object.values(map).reduce((sum, v) => sum + v, 0)).toBe(CALLS + 2 * CALLS);
      expect(record.gen).toBe(1 + 2 * CALLS + Math.ceil(CALLS / 25));
    });
  }

  it('device: concurrent appends to a nested list under a context, interleaved with failing calls', async () => {
    const db = await openCdtDb('device');
    const key = cdtKey('nested');
    await db.put(key, { doc: { a: { list: [] } } });
    const ctx = [cdt.mapKey('a'), cdt.mapKey('list')];
    const outcomes = await Promise.all(
      Array.from({ length: CALLS }, (_, i) =>
        outcomeOf(
          db.operate(key, i % 5 === 4
            ? [op.list.append('doc', -i, { ctx }), op.list.insert('doc', 10_000, 'x', { ctx, writeFlags: 2 })]
            : [op.list.append('doc', i, { ctx })]),
        ),
      ),
    );
    expect(outcomes.filter((outcome) => outcome === ErrorCode.OP_NOT_APPLICABLE).length).toBe(CALLS / 5);
    const list = ((await db.get(key))!.bins.doc as { a: { list: number[] } }).a.list;
    expect([...list].sort((a, b) => a - b)).toEqual(Array.from({ length: CALLS }, (_, i) => i).filter((i) => i % 5 !== 4));
  });
});

describe('a failed operate changes nothing', () => {
  for (const kind of ['memory', 'device'] as CdtKind[]) {
    it(`${kind}: every earlier operation of the call is undone, generation included`, async () => {
      const db = await openCdtDb(kind);
      const key = cdtKey('undo');
      await db.put(key, { l: [1, 2, 3], m: { a: 1 }, s: 'x' });
      const before = (await db.get(key))!;
      const failures: [string, ReturnType<typeof op.list.append>[]][] = [
        [ErrorCode.OP_NOT_APPLICABLE, [op.list.append('l', 4), op.map.put('m', 'b', 2), op.list.getByIndex('l', 99)]],
        [ErrorCode.ELEMENT_EXISTS, [op.list.clear('l'), op.map.put('m', 'a', 5, { writeFlags: 1 })]],
        [ErrorCode.BIN_TYPE, [op.write('n', 1) as never, op.list.append('s', 1)]],
        [ErrorCode.BIN_TYPE, [op.map.increment('m', 'a', 1), op.list.increment('l', 0, 1, { ctx: [cdt.listIndex(0)] })]],
        [ErrorCode.INVALID_ARGUMENT, [op.map.increment('m', 'a', 1), op.map.increment('s', 'x', 1, { ctx: [cdt.mapKey('q')] })]],
      ];
      for (const [code, ops] of failures) {
        expect(await outcomeOf(db.operate(key, ops))).toBe(code);
        expect(await db.get(key)).toEqual(before);
      }
      expect((await db.operate(key, [op.map.getByKey('m', 'a', ReturnType.VALUE)])).bins.m).toBe(1);
    });

    it(`${kind}: a value appended so deep that the bin would nest past 64 levels is refused, and the record stays readable`, async () => {
      const db = await openCdtDb(kind);
      const key = cdtKey('deep');
      const nest = (levels: number): unknown => (levels === 0 ? 1 : [nest(levels - 1)]);
      await db.put(key, { l: nest(5) as never });
      const before = (await db.get(key))!;
      const ctx = [cdt.listIndex(0), cdt.listIndex(0), cdt.listIndex(0), cdt.listIndex(0)];
      expect(await outcomeOf(db.operate(key, [op.list.append('l', nest(60), { ctx })]))).toBe(ErrorCode.INVALID_ARGUMENT);
      expect(await db.get(key)).toEqual(before);
      await db.operate(key, [op.list.append('l', nest(50), { ctx })]);
      expect((await db.operate(key, [op.list.size('l', { ctx })])).bins.l).toBe(2);
    });
  }
});
