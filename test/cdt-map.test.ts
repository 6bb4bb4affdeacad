/**
 * Every map operation and write flag, with Aerospike's results (the scenarios of Aerospike's
 * own client tests and documentation), on a memory and a device namespace; maps with integer
 * and bytes keys, which come back as JS Maps.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, MapOrder, MapWriteFlags, ReturnType, cdt, op } from '../lib/index';
import { CDT_KINDS, Scenario, cdtKey, openCdtDb, runScenarios } from './helpers/cdt';
import { useDbCleanup } from './helpers/db';

useDbCleanup(['cdt']);

const RT = ReturnType;
const { CREATE_ONLY, UPDATE_ONLY, NO_FAIL, PARTIAL } = MapWriteFlags;
const ABC = { a: 1, b: 2, c: 3 };
const ABCDE = { a: 1, b: 2, c: 3, d: 4, e: 5 };

const writes: Scenario[] = [
  { name: 'setOrder key ordered', bins: { map: { c: 1, b: 2, a: 3 } }, ops: [op.map.setOrder('map', MapOrder.KEY_ORDERED), op.map.getByKeyRange('map', 'a', 'z', RT.KEY)], result: { map: ['a', 'b', 'c'] } },
  { name: 'create an empty map', bins: { map: ABC }, ops: [op.map.create('emptyMap', MapOrder.KEY_ORDERED)], record: { map: ABC, emptyMap: {} } },
  { name: 'create a map at a new key', bins: { map: { c: 1, b: 2, a: 3 } }, ops: [op.map.create('map', MapOrder.KEY_ORDERED, { ctx: [cdt.mapKeyCreate('nested')] })], record: { map: { a: 3, b: 2, c: 1, nested: {} } } },
  { name: 'put adds', bins: { map: ABC }, ops: [op.map.put('map', 'd', 99)], result: { map: 4 }, record: { map: { ...ABC, d: 99 } } },
  { name: 'put replaces', bins: { map: ABC }, ops: [op.map.put('map', 'b', 99)], result: { map: 3 }, record: { map: { a: 1, b: 99, c: 3 } } },
  { name: 'put creates the map', bins: { i: 1 }, ops: [op.map.put('map', 'a', 1)], result: { map: 1 }, record: { i: 1, map: { a: 1 } } },
  { name: 'put on a string bin', bins: { map: 'this is not a map' }, ops: [op.map.put('map', 'a', 1)], error: ErrorCode.BIN_TYPE },
  { name: 'put UPDATE_ONLY of a present key', bins: { map: ABC }, ops: [op.map.put('map', 'b', 99, { writeFlags: UPDATE_ONLY })], result: { map: 3 }, record: { map: { a: 1, b: 99, c: 3 } } },
  { name: 'put UPDATE_ONLY of a missing key', bins: { map: ABC }, ops: [op.map.put('map', 'd', 99, { writeFlags: UPDATE_ONLY })], error: ErrorCode.ELEMENT_NOT_FOUND },
  { name: 'put UPDATE_ONLY | NO_FAIL of a missing key', bins: { map: ABC }, ops: [op.map.put('map', 'd', 99, { writeFlags: UPDATE_ONLY | NO_FAIL })], result: { map: 3 }, record: { map: ABC } },
  { name: 'put CREATE_ONLY of a present key', bins: { map: ABC }, ops: [op.map.put('map', 'b', 99, { writeFlags: CREATE_ONLY })], error: ErrorCode.ELEMENT_EXISTS },
  { name: 'put CREATE_ONLY of a new key', bins: { map: ABC }, ops: [op.map.put('map', 'd', 99, { writeFlags: CREATE_ONLY })], result: { map: 4 } },
  { name: 'put CREATE_ONLY | NO_FAIL of a present key', bins: { map: ABC }, ops: [op.map.put('map', 'b', 99, { writeFlags: CREATE_ONLY | NO_FAIL })], result: { map: 3 }, record: { map: ABC } },
  { name: 'put into a nested map', bins: { list: [ABC] }, ops: [op.map.put('list', 'd', 99, { ctx: [cdt.listIndex(0)] })], result: { list: 4 }, record: { list: [{ ...ABC, d: 99 }] } },
  { name: 'put a key that is a list', bins: { map: ABC }, ops: [op.map.put('map', [1] as never, 1)], error: ErrorCode.INVALID_ARGUMENT },
  { name: 'putItems', bins: { map: ABC }, ops: [op.map.putItems('map', { c: 99, d: 100 })], result: { map: 4 }, record: { map: { a: 1, b: 2, c: 99, d: 100 } } },
  { name: 'putItems from a Map', bins: { map: ABC }, ops: [op.map.putItems('map', new Map([['e', 150], ['d', 100], ['c', 99]]))], result: { map: 5 }, record: { map: { a: 1, b: 2, c: 99, d: 100, e: 150 } } },
  { name: 'putItems UPDATE_ONLY with a missing key', bins: { map: ABCDE }, ops: [op.map.putItems('map', { c: 10, x: 100 }, { writeFlags: UPDATE_ONLY })], error: ErrorCode.ELEMENT_NOT_FOUND },
  { name: 'putItems UPDATE_ONLY | NO_FAIL', bins: { map: ABCDE }, ops: [op.map.putItems('map', { c: 10, x: 100 }, { writeFlags: UPDATE_ONLY | NO_FAIL })], result: { map: 5 }, record: { map: ABCDE } },
  { name: 'putItems UPDATE_ONLY | NO_FAIL | PARTIAL', bins: { map: ABCDE }, ops: [op.map.putItems('map', { c: 10, x: 100 }, { writeFlags: UPDATE_ONLY | NO_FAIL | PARTIAL })], result: { map: 5 }, record: { map: { ...ABCDE, c: 10 } } },
  { name: 'putItems CREATE_ONLY with a present key', bins: { map: ABCDE }, ops: [op.map.putItems('map', { c: 10, x: 100 }, { writeFlags: CREATE_ONLY })], error: ErrorCode.ELEMENT_EXISTS },
  { name: 'putItems CREATE_ONLY | NO_FAIL', bins: { map: ABCDE }, ops: [op.map.putItems('map', { c: 10, x: 100 }, { writeFlags: CREATE_ONLY | NO_FAIL })], result: { map: 5 }, record: { map: ABCDE } },
  { name: 'putItems CREATE_ONLY | NO_FAIL | PARTIAL', bins: { map: ABCDE }, ops: [op.map.putItems('map', { c: 10, x: 100 }, { writeFlags: CREATE_ONLY | NO_FAIL | PARTIAL })], result: { map: 6 }, record: { map: { ...ABCDE, x: 100 } } },
  { name: 'putItems into a nested map', bins: { map: { nested: ABC } }, ops: [op.map.putItems('map', { c: 99, d: 100 }, { ctx: [cdt.mapKey('nested')] })], result: { map: 4 }, record: { map: { nested: { a: 1, b: 2, c: 99, d: 100 } } } },
  { name: 'increment', bins: { map: ABC }, ops: [op.map.increment('map', 'b', 10)], result: { map: 12 }, record: { map: { a: 1, b: 12, c: 3 } } },
  { name: 'increment a missing key', bins: { map: ABC }, ops: [op.map.increment('map', 'd', 10)], result: { map: 10 }, record: { map: { ...ABC, d: 10 } } },
  { name: 'increment in a nested map', bins: { list: [[1, 2, 3], ABC] }, ops: [op.map.increment('list', 'b', 10, { ctx: [cdt.listIndex(1)] })], result: { list: 12 } },
  { name: 'increment a string value', bins: { map: { a: 'x' } }, ops: [op.map.increment('map', 'a', 1)], error: ErrorCode.INVALID_ARGUMENT },
  { name: 'increment a double', bins: { map: { a: 0.5 } }, ops: [op.map.increment('map', 'a', 1)], result: { map: 1.5 } },
  { name: 'decrement', bins: { map: { a: 1, b: 12, c: 3 } }, ops: [op.map.decrement('map', 'b', 10)], result: { map: 2 } },
  { name: 'decrement a missing key', bins: { map: ABC }, ops: [op.map.decrement('map', 'd', 1)], result: { map: -1 } },
  { name: 'clear', bins: { map: ABC }, ops: [op.map.clear('map')], result: {}, record: { map: {} } },
  { name: 'clear a nested map', bins: { map: { nested: { deepNested: ABC } } }, ops: [op.map.clear('map', { ctx: [cdt.mapKey('nested'), cdt.mapKey('deepNested')] })], record: { map: { nested: { deepNested: {} } } } },
  { name: 'a map operation on a list bin', bins: { list: [1] }, ops: [op.map.size('list')], error: ErrorCode.BIN_TYPE },
];

const reads: Scenario[] = [
  { name: 'size', bins: { map: ABC }, ops: [op.map.size('map')], result: { map: 3 } },
  { name: 'getByKey', bins: { map: ABC }, ops: [op.map.getByKey('map', 'b')], result: { map: 2 } },
  { name: 'getByKey KEY_VALUE', bins: { map: ABC }, ops: [op.map.getByKey('map', 'b', RT.KEY_VALUE)], result: { map: { b: 2 } } },
  { name: 'getByKey of a missing key', bins: { map: ABC }, ops: [op.map.getByKey('map', 'x', RT.VALUE)], result: { map: null } },
  { name: 'getByKey INDEX of a missing key', bins: { map: ABC }, ops: [op.map.getByKey('map', 'x', RT.INDEX)], result: { map: -1 } },
  { name: 'getByKeyList', bins: { map: ABC }, ops: [op.map.getByKeyList('map', ['a', 'c', 'x'], RT.KEY_VALUE)], result: { map: { a: 1, c: 3 } } },
  { name: 'getByKeyRange', bins: { map: { a: 1, b: 2, c: 3, d: 4 } }, ops: [op.map.getByKeyRange('map', 'b', 'd', RT.VALUE)], result: { map: [2, 3] } },
  { name: 'getByKeyRange to the end (null)', bins: { map: { a: 1, b: 2, c: 3, d: 4 } }, ops: [op.map.getByKeyRange('map', 'b', null, RT.KEY)], result: { map: ['b', 'c', 'd'] } },
  { name: 'getByIndex (key order)', bins: { map: { c: 1, a: 2, b: 3 } }, ops: [op.map.getByIndex('map', 0, RT.KEY)], result: { map: 'a' } },
  { name: 'getByIndex out of range', bins: { map: ABC }, ops: [op.map.getByIndex('map', 3)], error: ErrorCode.OP_NOT_APPLICABLE },
  { name: 'getByIndexRange', bins: { map: { c: 1, a: 2, b: 3 } }, ops: [op.map.getByIndexRange('map', 1, 2, RT.KEY)], result: { map: ['b', 'c'] } },
  { name: 'getByIndexRange ORDERED_MAP', bins: { map: { c: 1, a: 2, b: 3 } }, ops: [op.map.getByIndexRange('map', 0, 2, RT.ORDERED_MAP)], result: { map: { a: 2, b: 3 } } },
  { name: 'getByValue (every entry with it)', bins: { map: { a: 1, b: 2, c: 1 } }, ops: [op.map.getByValue('map', 1, RT.KEY)], result: { map: ['a', 'c'] } },
  { name: 'getByValueList', bins: { map: { a: 1, b: 2, c: 3 } }, ops: [op.map.getByValueList('map', [1, 3], RT.COUNT)], result: { map: 2 } },
  { name: 'getByValueRange', bins: { map: { a: 10, b: 20, c: 30 } }, ops: [op.map.getByValueRange('map', 15, 35, RT.KEY)], result: { map: ['b', 'c'] } },
  { name: 'getByValueRange INVERTED', bins: { map: { a: 10, b: 20, c: 30 } }, ops: [op.map.getByValueRange('map', 15, 35, RT.KEY | RT.INVERTED)], result: { map: ['a'] } },
  { name: 'getByRank', bins: { map: { a: 30, b: 10, c: 20 } }, ops: [op.map.getByRank('map', 0, RT.KEY)], result: { map: 'b' } },
  { name: 'getByRank REVERSE_RANK', bins: { map: { a: 30, b: 10, c: 20 } }, ops: [op.map.getByRank('map', 0, RT.REVERSE_RANK)], result: { map: 2 } },
  { name: 'getByRankRange (rank order)', bins: { map: { a: 30, b: 10, c: 20 } }, ops: [op.map.getByRankRange('map', 0, 2, RT.KEY)], result: { map: ['b', 'c'] } },
  { name: 'getByRankRange UNORDERED_MAP', bins: { map: { a: 30, b: 10, c: 20 } }, ops: [op.map.getByRankRange('map', -2, 2, RT.UNORDERED_MAP)], result: { map: { c: 20, a: 30 } } },
  { name: 'getByRank EXISTS', bins: { map: ABC }, ops: [op.map.getByRank('map', 2, RT.EXISTS)], result: { map: true } },
];

/** Aerospike's documented examples: key-relative index ranges on {0:17, 4:2, 5:15, 9:10}. */
const keyRelative: [number, number, number | undefined, [number, number][]][] = [
  [5, 0, undefined, [[5, 15], [9, 10]]],
  [5, 1, undefined, [[9, 10]]],
  [5, -1, undefined, [[4, 2], [5, 15], [9, 10]]],
  [3, 2, undefined, [[9, 10]]],
  [3, -2, undefined, [[0, 17], [4, 2], [5, 15], [9, 10]]],
  [5, 0, 1, [[5, 15]]],
  [5, 1, 2, [[9, 10]]],
  [5, -1, 1, [[4, 2]]],
  [3, 2, 1, [[9, 10]]],
  [3, -2, 2, [[0, 17]]],
];
const integerKeyed = () => new Map([[0, 17], [4, 2], [5, 15], [9, 10]]);
for (const [key, index, count, expected] of keyRelative) {
  reads.push({
    name: `getByKeyRelIndexRange (${key}, ${index}, ${count})`,
    bins: { map: integerKeyed() },
    ops: [op.map.setOrder('map', MapOrder.KEY_ORDERED), op.map.getByKeyRelIndexRange('map', key, index, count, RT.KEY_VALUE)],
    result: { map: new Map(expected) },
  });
}
/** ...and value-relative rank ranges on {4:2, 9:10, 5:15, 0:17}. */
const valueRelative: [number, number, number | undefined, [number, number][]][] = [
  [11, 1, undefined, [[0, 17]]],
  [11, -1, undefined, [[9, 10], [5, 15], [0, 17]]],
  [11, 1, 1, [[0, 17]]],
  [11, -1, 1, [[9, 10]]],
];
for (const [value, rank, count, expected] of valueRelative) {
  reads.push({
    name: `getByValueRelRankRange (${value}, ${rank}, ${count})`,
    bins: { map: new Map([[4, 2], [9, 10], [5, 15], [0, 17]]) },
    ops: [op.map.getByValueRelRankRange('map', value, rank, count, RT.KEY_VALUE)],
    result: { map: new Map(expected) },
  });
}

const removes: Scenario[] = [
  { name: 'removeByKey', bins: { map: ABC }, ops: [op.map.removeByKey('map', 'b', RT.VALUE)], result: { map: 2 }, record: { map: { a: 1, c: 3 } } },
  { name: 'removeByKey of a missing key', bins: { map: ABC }, ops: [op.map.removeByKey('map', 'd', RT.VALUE)], result: { map: null }, record: { map: ABC } },
  { name: 'removeByKey in a list of maps', bins: { list: [ABC, { a: 2, b: 3, c: 4 }] }, ops: [op.map.removeByKey('list', 'b', RT.NONE, { ctx: [cdt.listIndex(-1)] })], record: { list: [ABC, { a: 2, c: 4 }] } },
  { name: 'removeByKeyList', bins: { map: ABC }, ops: [op.map.removeByKeyList('map', ['a', 'x', 'c'], RT.VALUE)], result: { map: [1, 3] }, record: { map: { b: 2 } } },
  { name: 'removeByKeyList nested', bins: { maps: { a: ABC, b: { a: 2, b: 3, c: 4 } } }, ops: [op.map.removeByKeyList('maps', ['a', 'c'], RT.NONE, { ctx: [cdt.mapKey('a')] })], record: { maps: { a: { b: 2 }, b: { a: 2, b: 3, c: 4 } } } },
  { name: 'removeByKeyRange', bins: { map: { a: 1, b: 2, c: 3, d: 4 } }, ops: [op.map.removeByKeyRange('map', 'b', 'd', RT.VALUE)], result: { map: [2, 3] }, record: { map: { a: 1, d: 4 } } },
  { name: 'removeByKeyRange to the end', bins: { map: { a: 1, b: 2, c: 3, d: 4 } }, ops: [op.map.removeByKeyRange('map', 'b', null, RT.VALUE)], result: { map: [2, 3, 4] }, record: { map: { a: 1 } } },
  { name: 'removeByKeyRange from the start', bins: { map: { a: 1, b: 2, c: 3, d: 4 } }, ops: [op.map.removeByKeyRange('map', null, 'b', RT.VALUE)], result: { map: [1] }, record: { map: { b: 2, c: 3, d: 4 } } },
  { name: 'removeByKeyRelIndexRange', bins: { map: integerKeyed() }, ops: [op.map.removeByKeyRelIndexRange('map', 5, 0, 1, RT.KEY)], result: { map: [5] }, record: { map: new Map([[0, 17], [4, 2], [9, 10]]) } },
  { name: 'removeByValue', bins: { map: { a: 1, b: 2, c: 1 } }, ops: [op.map.removeByValue('map', 1, RT.KEY)], result: { map: ['a', 'c'] }, record: { map: { b: 2 } } },
  { name: 'removeByValueList', bins: { map: ABC }, ops: [op.map.removeByValueList('map', [1, 3], RT.KEY)], result: { map: ['a', 'c'] }, record: { map: { b: 2 } } },
  { name: 'removeByValueRange', bins: { map: { a: 10, b: 20, c: 30 } }, ops: [op.map.removeByValueRange('map', 15, 25, RT.COUNT)], result: { map: 1 }, record: { map: { a: 10, c: 30 } } },
  { name: 'removeByValueRelRankRange', bins: { map: new Map([[4, 2], [9, 10], [5, 15], [0, 17]]) }, ops: [op.map.removeByValueRelRankRange('map', 11, 1, undefined, RT.KEY)], result: { map: [0] } },
  { name: 'removeByIndex', bins: { map: { c: 1, a: 2, b: 3 } }, ops: [op.map.removeByIndex('map', 0, RT.KEY)], result: { map: 'a' }, record: { map: { c: 1, b: 3 } } },
  { name: 'removeByIndexRange', bins: { map: ABCDE }, ops: [op.map.removeByIndexRange('map', 1, 3, RT.COUNT)], result: { map: 3 }, record: { map: { a: 1, e: 5 } } },
  { name: 'removeByIndexRange INVERTED', bins: { map: ABCDE }, ops: [op.map.removeByIndexRange('map', 1, 3, RT.KEY | RT.INVERTED)], result: { map: ['a', 'e'] }, record: { map: { b: 2, c: 3, d: 4 } } },
  { name: 'removeByRank', bins: { map: { a: 30, b: 10, c: 20 } }, ops: [op.map.removeByRank('map', -1, RT.KEY_VALUE)], result: { map: { a: 30 } }, record: { map: { b: 10, c: 20 } } },
  { name: 'removeByRankRange', bins: { map: { a: 30, b: 10, c: 20 } }, ops: [op.map.removeByRankRange('map', 0, 2, RT.VALUE)], result: { map: [10, 20] }, record: { map: { a: 30 } } },
];

describe('map operations', () => {
  for (const kind of CDT_KINDS) {
    it(`${kind}: writes, with every write flag`, async () => runScenarios(await openCdtDb(kind), writes));
    it(`${kind}: reads, with every return type`, async () => runScenarios(await openCdtDb(kind), reads));
    it(`${kind}: removes`, async () => runScenarios(await openCdtDb(kind), removes));
  }
});

describe('maps with keys that are not strings', () => {
  for (const kind of CDT_KINDS) {
    it(`${kind}: integer, bigint and bytes keys come back as a Map; string keys as a plain object`, async () => {
      const db = await openCdtDb(kind);
      const key = cdtKey('keys');
      await db.operate(key, [op.map.put('m', 2, 'two'), op.map.put('m', 1n, 'one'), op.map.put('m', Buffer.from('k'), 'bytes'), op.map.put('s', 'x', 1)]);
      const stored = (await db.get(key))!.bins;
      expect(stored.m).toEqual(new Map<unknown, unknown>([[2, 'two'], [1n, 'one'], [Buffer.from('k'), 'bytes']]));
      expect(stored.s).toEqual({ x: 1 });
      // 1 and 1n are the same key; the key keeps the form it was first written in.
      await db.operate(key, [op.map.put('m', 1, 'uno')]);
      expect(((await db.get(key))!.bins.m as Map<unknown, unknown>).get(1n)).toBe('uno');
      // A Map bin can be written with put too, and its keys checked.
      await db.put(key, { direct: new Map<unknown, unknown>([[5, 'five'], ['s', 1]]) } as never);
      expect((await db.get(key))!.bins.direct).toEqual(new Map<unknown, unknown>([[5, 'five'], ['s', 1]]));
      await expect(db.put(key, { bad: new Map([[1.5, 1]]) } as never)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
      await expect(db.put(key, { bad: new Map<unknown, number>([[1, 1], [1n, 2]]) } as never)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    });
  }

  it('a key-ordered map keeps integer keys in numeric order, before string keys', async () => {
    const db = await openCdtDb('memory');
    const result = await db.operate(cdtKey('ko'), [
      op.map.putItems('m', new Map<unknown, unknown>([['b', 1], [10, 2], [-1, 3], ['a', 4], [2, 5]]), { order: MapOrder.KEY_ORDERED }),
      op.map.getByIndexRange('m', 0, null, RT.KEY),
    ]);
    expect(result.bins.m).toEqual([-1, 2, 10, 'a', 'b']);
  });
});
