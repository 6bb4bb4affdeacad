/**
 * opts.filter on get, put, remove, operate, batchGet, batchPut and scan, on memory and device
 * namespaces: a record the filter is false for gives FILTERED_OUT (status 27) and is left as it
 * was; a batch gives undefined (reads) or the error (writes) for it; a scan skips it. A write to
 * a missing record is not filtered. A filter is compiled once per call, not per record.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, ReturnType, exp, op } from '../lib/index';
import { compilations } from '../lib/model/exp/compile';
import { CDT_KINDS, cdtKey, openCdtDb, outcomeOf } from './helpers/cdt';
import { useDbCleanup } from './helpers/db';

useDbCleanup(['cdt']);

const adult = exp.ge(exp.binInt('age'), 18);

for (const kind of CDT_KINDS) {
  describe(`${kind}: opts.filter`, () => {
    it('get returns the record or gives FILTERED_OUT', async () => {
      const db = await openCdtDb(kind);
      await db.put(cdtKey('ada'), { age: 36, name: 'Ada' });
      await db.put(cdtKey('kid'), { age: 9, name: 'Kid' });
      expect((await db.get(cdtKey('ada'), { filter: adult }))?.bins.name).toBe('Ada');
      await expect(db.get(cdtKey('kid'), { filter: adult })).rejects.toMatchObject({ code: ErrorCode.FILTERED_OUT, status: 27 });
      expect(await db.get(cdtKey('nobody'), { filter: adult })).toBeUndefined();
      // A bin of another type makes the comparison UNKNOWN: filtered out.
      await db.put(cdtKey('odd'), { age: 'old' });
      expect(await outcomeOf(db.get(cdtKey('odd'), { filter: adult }))).toBe(ErrorCode.FILTERED_OUT);
    });

    it('put, remove and operate leave a filtered-out record as it was', async () => {
      const db = await openCdtDb(kind);
      await db.put(cdtKey('kid'), { age: 9, tags: ['x'] });
      const before = await db.get(cdtKey('kid'));
      expect(await outcomeOf(db.put(cdtKey('kid'), { age: 10 }, { filter: adult }))).toBe(ErrorCode.FILTERED_OUT);
      expect(await outcomeOf(db.put(cdtKey('kid'), { age: 10 }, { filter: adult, exists: 'replace' }))).toBe(ErrorCode.FILTERED_OUT);
      expect(await outcomeOf(db.remove(cdtKey('kid'), { filter: adult }))).toBe(ErrorCode.FILTERED_OUT);
      expect(await outcomeOf(db.operate(cdtKey('kid'), [op.list.append('tags', 'y')], { filter: adult }))).toBe(ErrorCode.FILTERED_OUT);
      expect(await db.get(cdtKey('kid'))).toEqual(before);
      // True: the write happens.
      const grown = exp.lt(exp.binInt('age'), 18);
      await db.operate(cdtKey('kid'), [op.incr('age', 1), op.list.append('tags', 'y')], { filter: grown });
      await db.put(cdtKey('kid'), { name: 'Kid' }, { filter: grown });
      expect((await db.get(cdtKey('kid')))!.bins).toEqual({ age: 10, tags: ['x', 'y'], name: 'Kid' });
      expect(await db.remove(cdtKey('kid'), { filter: grown })).toBe(true);
      // A missing record is written whatever the filter.
      await db.put(cdtKey('new'), { age: 1 }, { filter: adult });
      expect((await db.get(cdtKey('new')))!.bins.age).toBe(1);
      expect(await db.remove(cdtKey('gone'), { filter: adult })).toBe(false);
    });

    it('batchGet gives undefined, batchPut the error, for filtered-out records', async () => {
      const db = await openCdtDb(kind);
      for (let i = 0; i < 6; i++) await db.put(cdtKey(`b${i}`), { age: i * 5 });
      const read = await db.batchGet([0, 1, 2, 3, 4, 5, 9].map((i) => cdtKey(`b${i}`)), { filter: adult });
      expect(read.map((record) => record?.bins.age)).toEqual([undefined, undefined, undefined, undefined, 20, 25, undefined]);
      const written = await db.batchPut([0, 4, 9].map((i) => ({ key: cdtKey(`b${i}`), bins: { seen: true } })), { filter: adult });
      expect(written.map((result) => (result as { code?: string }).code ?? 'ok')).toEqual([ErrorCode.FILTERED_OUT, 'ok', 'ok']);
      expect((await db.get(cdtKey('b0')))!.bins).toEqual({ age: 0 });
      expect((await db.get(cdtKey('b4')))!.bins).toEqual({ age: 20, seen: true });
    });

    it('scan returns only the records the filter is true for, compiling it once', async () => {
      const db = await openCdtDb(kind);
      for (let i = 0; i < 200; i++) await db.put({ ns: 'cdt', set: i % 2 === 0 ? 'even' : 'odd', key: i }, { i, tags: i % 3 === 0 ? ['three'] : [] }, { storeKey: i % 4 === 0 });
      const filter = exp.and(exp.eq(exp.setName(), 'even'), exp.gt(exp.lists.size(exp.binList('tags')), 0), exp.keyExist());
      const before = compilations.count;
      const found: number[] = [];
      for await (const record of db.scan('cdt', undefined, { filter })) found.push(record.bins.i as number);
      expect(compilations.count - before).toBe(1);
      expect(found.sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i).filter((i) => i % 2 === 0 && i % 3 === 0 && i % 4 === 0));
      // Metadata: a stable third of the records by digest, record sizes, time since update.
      let third = 0;
      for await (const _ of db.scan('cdt', undefined, { filter: exp.eq(exp.digestModulo(3), 0) })) third++;
      expect(third).toBeGreaterThan(40);
      expect(third).toBeLessThan(95);
      let all = 0;
      for await (const _ of db.scan('cdt', 'odd', { filter: exp.and(exp.gt(exp.recordSize(), 4), exp.ge(exp.sinceUpdate(), 0), exp.eq(exp.ttl(), -1)) })) all++;
      expect(all).toBe(100);
    });

    it('filters on list and map contents, and refuses malformed filters before anything runs', async () => {
      const db = await openCdtDb(kind);
      await db.operate(cdtKey('m'), [op.map.putItems('scores', { math: 9, art: 4 })]);
      const strong = exp.gt(exp.maps.getByKey(exp.binMap('scores'), 'math', 2), 5);
      expect((await db.operate(cdtKey('m'), [op.map.getByRank('scores', -1, ReturnType.KEY)], { filter: strong })).bins.scores).toBe('math');
      await expect(db.get(cdtKey('m'), { filter: exp.binInt('x') as never })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
      await expect(db.get(cdtKey('m'), { filter: 'age > 3' as never })).rejects.toThrow(TypeError);
      await expect(db.get(cdtKey('m'), { filter: Buffer.from([0x91, 0xc1]) })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    });
  });
}
