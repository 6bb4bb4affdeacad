/**
 * Every list operation and write flag, with Aerospike's results (the scenarios of Aerospike's
 * own client tests and documentation), on a memory and a device namespace. A failing operation
 * gives Aerospike's error and leaves the record as it was.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, ListOrder, ListSortFlags, ListWriteFlags, ReturnType, cdt, op } from '../lib/index';
import { CDT_KINDS, Scenario, cdtKey, openCdtDb, outcomeOf, runScenarios } from './helpers/cdt';
import { useDbCleanup } from './helpers/db';

useDbCleanup(['cdt']);

const L = [1, 2, 3, 4, 5];
const { ADD_UNIQUE, INSERT_BOUNDED, NO_FAIL, PARTIAL } = ListWriteFlags;
const RT = ReturnType;

const writes: Scenario[] = [
  { name: 'setOrder sorts', bins: { list: [3, 1, 2] }, ops: [op.list.setOrder('list', ListOrder.ORDERED), op.read('list')], result: { list: [1, 2, 3] } },
  {
    name: 'setOrder of nested lists',
    bins: { list: [[3, 1, 2], [6, 5, 4]] },
    ops: [op.list.setOrder('list', ListOrder.ORDERED, { ctx: [cdt.listIndex(0)] }), op.list.setOrder('list', ListOrder.ORDERED, { ctx: [cdt.listIndex(1)] }), op.read('list')],
    result: { list: [[1, 2, 3], [4, 5, 6]] },
  },
  { name: 'sort', bins: { list: [3, 1, 2, 1] }, ops: [op.list.sort('list', ListSortFlags.DEFAULT), op.read('list')], result: { list: [1, 1, 2, 3] } },
  { name: 'sort dropping duplicates', bins: { list: [3, 1, 2, 1] }, ops: [op.list.sort('list', ListSortFlags.DROP_DUPLICATES)], record: { list: [1, 2, 3] } },
  { name: 'sort descending', bins: { list: [3, 1, 2] }, ops: [op.list.sort('list', ListSortFlags.DESCENDING)], record: { list: [3, 2, 1] } },
  { name: 'sort a nested list', bins: { list: [['a', 'b', 'c'], [3, 1, 2, 1]] }, ops: [op.list.sort('list', 0, { ctx: [cdt.listIndex(-1)] })], record: { list: [['a', 'b', 'c'], [1, 1, 2, 3]] } },
  { name: 'sort of a missing bin', bins: { other: 1 }, ops: [op.list.sort('list')], error: ErrorCode.BIN_TYPE },

  { name: 'append returns the size', bins: { list: L }, ops: [op.list.append('list', 99)], result: { list: 6 }, record: { list: [1, 2, 3, 4, 5, 99] } },
  { name: 'append creates the list', bins: { i: 1 }, ops: [op.list.append('list', 'x')], result: { list: 1 }, record: { i: 1, list: ['x'] } },
  { name: 'append ADD_UNIQUE of a present value', bins: { list: L }, ops: [op.list.append('list', 3, { writeFlags: ADD_UNIQUE })], error: ErrorCode.ELEMENT_EXISTS },
  { name: 'append ADD_UNIQUE | NO_FAIL', bins: { list: L }, ops: [op.list.append('list', 3, { writeFlags: ADD_UNIQUE | NO_FAIL })], result: { list: 5 }, record: { list: L } },
  { name: 'append to a nested list', bins: { list: [1, 2, ['a', 'b', 'c'], 4, 5] }, ops: [op.list.append('list', 'd', { ctx: [cdt.listIndex(2)] })], result: { list: 4 }, record: { list: [1, 2, ['a', 'b', 'c', 'd'], 4, 5] } },
  { name: 'append to an ordered list sorts', bins: { x: 1 }, ops: [op.list.append('list', 5, { order: ListOrder.ORDERED }), op.list.append('list', 1), op.list.append('list', 3), op.read('list')], result: { list: [1, 3, 5] } },

  { name: 'appendItems', bins: { list: L }, ops: [op.list.appendItems('list', [99, 100])], result: { list: 7 }, record: { list: [1, 2, 3, 4, 5, 99, 100] } },
  { name: 'appendItems ADD_UNIQUE', bins: { list: L }, ops: [op.list.appendItems('list', [3, 6], { writeFlags: ADD_UNIQUE })], error: ErrorCode.ELEMENT_EXISTS },
  { name: 'appendItems ADD_UNIQUE | NO_FAIL', bins: { list: L }, ops: [op.list.appendItems('list', [3, 6], { writeFlags: ADD_UNIQUE | NO_FAIL })], result: { list: 5 }, record: { list: L } },
  {
    name: 'appendItems ADD_UNIQUE | NO_FAIL | PARTIAL',
    bins: { list: L },
    ops: [op.list.appendItems('list', [3, 6], { writeFlags: ADD_UNIQUE | NO_FAIL | PARTIAL })],
    result: { list: 6 },
    record: { list: [1, 2, 3, 4, 5, 6] },
  },
  { name: 'appendItems a value twice with ADD_UNIQUE', bins: { list: L }, ops: [op.list.appendItems('list', [7, 7], { writeFlags: ADD_UNIQUE })], error: ErrorCode.OP_NOT_APPLICABLE },
  { name: 'appendItems in a map', bins: { map: { list: L } }, ops: [op.list.appendItems('map', [99, 100], { ctx: [cdt.mapKey('list')] })], result: { map: 7 }, record: { map: { list: [1, 2, 3, 4, 5, 99, 100] } } },
  { name: 'appendItems to an ordered list', bins: { x: 1 }, ops: [op.list.appendItems('list', [9, 2, 5], { order: ListOrder.ORDERED }), op.read('list')], result: { list: [2, 5, 9] } },

  { name: 'insert', bins: { list: L }, ops: [op.list.insert('list', 2, 99)], result: { list: 6 }, record: { list: [1, 2, 99, 3, 4, 5] } },
  { name: 'insert from the end', bins: { list: L }, ops: [op.list.insert('list', -1, 99)], record: { list: [1, 2, 3, 4, 99, 5] } },
  { name: 'insert past the end pads with nils', bins: { list: [1, 2] }, ops: [op.list.insert('list', 4, 9)], result: { list: 5 }, record: { list: [1, 2, null, null, 9] } },
  { name: 'insert ADD_UNIQUE', bins: { list: L }, ops: [op.list.insert('list', 2, 3, { writeFlags: ADD_UNIQUE })], error: ErrorCode.ELEMENT_EXISTS },
  { name: 'insert ADD_UNIQUE | NO_FAIL', bins: { list: L }, ops: [op.list.insert('list', 2, 3, { writeFlags: ADD_UNIQUE | NO_FAIL })], result: { list: 5 }, record: { list: L } },
  { name: 'insert INSERT_BOUNDED past the end', bins: { list: L }, ops: [op.list.insert('list', 10, 99, { writeFlags: INSERT_BOUNDED })], error: ErrorCode.OP_NOT_APPLICABLE },
  { name: 'insert INSERT_BOUNDED | NO_FAIL', bins: { list: L }, ops: [op.list.insert('list', 10, 99, { writeFlags: INSERT_BOUNDED | NO_FAIL })], result: { list: 5 }, record: { list: L } },
  { name: 'insert before the start', bins: { list: L }, ops: [op.list.insert('list', -6, 99)], error: ErrorCode.OP_NOT_APPLICABLE },
  { name: 'insert into an ordered list', bins: { x: 1 }, ops: [op.list.setOrder('list', ListOrder.ORDERED), op.list.insert('list', 0, 1)], error: ErrorCode.OP_NOT_APPLICABLE },
  { name: 'insert in a map', bins: { map: { list: L } }, ops: [op.list.insert('map', 2, 99, { ctx: [cdt.mapKey('list')] })], result: { map: 6 }, record: { map: { list: [1, 2, 99, 3, 4, 5] } } },
  { name: 'insertItems', bins: { list: L }, ops: [op.list.insertItems('list', 2, [99, 100])], result: { list: 7 }, record: { list: [1, 2, 99, 100, 3, 4, 5] } },
  { name: 'insertItems ADD_UNIQUE', bins: { list: L }, ops: [op.list.insertItems('list', 2, [3, 99], { writeFlags: ADD_UNIQUE })], error: ErrorCode.ELEMENT_EXISTS },
  { name: 'insertItems ADD_UNIQUE | NO_FAIL', bins: { list: L }, ops: [op.list.insertItems('list', 2, [3, 99], { writeFlags: ADD_UNIQUE | NO_FAIL })], result: { list: 5 }, record: { list: L } },
  {
    name: 'insertItems ADD_UNIQUE | NO_FAIL | PARTIAL',
    bins: { list: L },
    ops: [op.list.insertItems('list', 2, [3, 99], { writeFlags: ADD_UNIQUE | NO_FAIL | PARTIAL })],
    result: { list: 6 },
    record: { list: [1, 2, 99, 3, 4, 5] },
  },
  { name: 'insertItems INSERT_BOUNDED', bins: { list: L }, ops: [op.list.insertItems('list', 10, [99, 100], { writeFlags: INSERT_BOUNDED })], error: ErrorCode.OP_NOT_APPLICABLE },
  { name: 'insertItems INSERT_BOUNDED | NO_FAIL', bins: { list: L }, ops: [op.list.insertItems('list', 10, [99, 100], { writeFlags: INSERT_BOUNDED | NO_FAIL })], result: { list: 5 }, record: { list: L } },

  { name: 'set', bins: { list: L }, ops: [op.list.set('list', 1, 99)], record: { list: [1, 99, 3, 4, 5] } },
  { name: 'set from the end', bins: { list: L }, ops: [op.list.set('list', -1, 'x')], record: { list: [1, 2, 3, 4, 'x'] } },
  { name: 'set past the end pads', bins: { list: [1] }, ops: [op.list.set('list', 3, 4)], record: { list: [1, null, null, 4] } },
  { name: 'set ADD_UNIQUE of a value elsewhere', bins: { list: L }, ops: [op.list.set('list', 0, 5, { writeFlags: ADD_UNIQUE })], error: ErrorCode.ELEMENT_EXISTS },
  { name: 'set ADD_UNIQUE of the value already there', bins: { list: L }, ops: [op.list.set('list', 0, 1, { writeFlags: ADD_UNIQUE })], record: { list: L } },
  { name: 'set on an ordered list', bins: { x: 1 }, ops: [op.list.append('list', 1, { order: ListOrder.ORDERED }), op.list.set('list', 0, 2)], error: ErrorCode.OP_NOT_APPLICABLE },
  { name: 'set a nested list', bins: { list: [[1, 2], [3]] }, ops: [op.list.set('list', 0, 'a', { ctx: [cdt.listIndex(1)] })], record: { list: [[1, 2], ['a']] } },

  { name: 'increment returns the new value', bins: { list: [1, 2, 3] }, ops: [op.list.increment('list', 1, 10)], result: { list: 12 }, record: { list: [1, 12, 3] } },
  { name: 'increment by 1 by default', bins: { list: [1, 2, 3] }, ops: [op.list.increment('list', 0)], result: { list: 2 } },
  { name: 'increment a double', bins: { list: [1.5] }, ops: [op.list.increment('list', 0, 1)], result: { list: 2.5 } },
  { name: 'increment an integer by a double truncates it (Aerospike)', bins: { list: [1] }, ops: [op.list.increment('list', 0, 2.75)], result: { list: 3 } },
  { name: 'increment past the end', bins: { list: [1] }, ops: [op.list.increment('list', 2, 5)], result: { list: 5 }, record: { list: [1, null, 5] } },
  { name: 'increment a string', bins: { list: ['a'] }, ops: [op.list.increment('list', 0, 1)], error: ErrorCode.INVALID_ARGUMENT },
  { name: 'increment wraps int64', bins: { list: [2n ** 63n - 1n] }, ops: [op.list.increment('list', 0, 1)], result: { list: -(2n ** 63n) } },
  {
    name: 'increment keeps an ordered list sorted',
    bins: { x: 1 },
    ops: [op.list.appendItems('list', [1, 5, 9], { order: ListOrder.ORDERED }), op.list.increment('list', 0, 10), op.read('list')],
    result: { list: [5, 9, 11] },
  },
  { name: 'increment a nested list', bins: { list: [[1, 2, 3], [4]] }, ops: [op.list.increment('list', 1, 10, { ctx: [cdt.listIndex(0)] })], result: { list: 12 }, record: { list: [[1, 12, 3], [4]] } },

  { name: 'clear', bins: { list: L }, ops: [op.list.clear('list')], record: { list: [] } },
  { name: 'clear a missing bin does nothing', bins: { x: 1 }, ops: [op.list.clear('list')], record: { x: 1 } },
  { name: 'clear a nested list', bins: { list: [[1], [2, 3]] }, ops: [op.list.clear('list', { ctx: [cdt.listIndex(1)] })], record: { list: [[1], []] } },
  { name: 'create a nested ordered list', bins: { m: {} }, ops: [op.list.create('m', ListOrder.ORDERED, { ctx: [cdt.mapKey('l')] }), op.list.append('m', 3, { ctx: [cdt.mapKey('l')] }), op.list.append('m', 1, { ctx: [cdt.mapKey('l')] }), op.read('m')], result: { m: { l: [1, 3] } } },
  { name: 'a list operation on a map bin', bins: { map: { a: 1 } }, ops: [op.list.append('map', 1)], error: ErrorCode.BIN_TYPE },
  { name: 'a list operation on a string bin', bins: { s: 'text' }, ops: [op.list.size('s')], error: ErrorCode.BIN_TYPE },
];

const reads: Scenario[] = [
  { name: 'size', bins: { list: L }, ops: [op.list.size('list')], result: { list: 5 } },
  { name: 'size of a missing bin is nil', bins: { x: 1 }, ops: [op.list.size('list')], result: { list: null } },
  { name: 'get', bins: { list: L }, ops: [op.list.get('list', 2)], result: { list: 3 } },
  { name: 'get out of range', bins: { list: L }, ops: [op.list.get('list', 5)], error: ErrorCode.OP_NOT_APPLICABLE },
  { name: 'getRange', bins: { list: L }, ops: [op.list.getRange('list', 1, 2)], result: { list: [2, 3] } },
  { name: 'getRange to the end', bins: { list: L }, ops: [op.list.getRange('list', -2)], result: { list: [4, 5] } },
  { name: 'pop', bins: { list: L }, ops: [op.list.pop('list', 2)], result: { list: 3 }, record: { list: [1, 2, 4, 5] } },
  { name: 'pop nested', bins: { list: [L, [6, 7, 8]] }, ops: [op.list.pop('list', 2, { ctx: [cdt.listIndex(0)] })], result: { list: 3 }, record: { list: [[1, 2, 4, 5], [6, 7, 8]] } },
  { name: 'popRange', bins: { list: L }, ops: [op.list.popRange('list', 2, 2)], result: { list: [3, 4] }, record: { list: [1, 2, 5] } },
  { name: 'popRange to the end', bins: { list: L }, ops: [op.list.popRange('list', 2)], result: { list: [3, 4, 5] }, record: { list: [1, 2] } },
  { name: 'remove', bins: { list: L }, ops: [op.list.remove('list', 2)], result: { list: 1 }, record: { list: [1, 2, 4, 5] } },
  { name: 'removeRange', bins: { list: L }, ops: [op.list.removeRange('list', 2, 2)], result: { list: 2 }, record: { list: [1, 2, 5] } },
  { name: 'removeRange nested', bins: { list: [L, [6, 7, 8]] }, ops: [op.list.removeRange('list', 1, 3, { ctx: [cdt.listIndex(0)] })], result: { list: 3 }, record: { list: [[1, 5], [6, 7, 8]] } },
  { name: 'trim', bins: { list: L }, ops: [op.list.trim('list', 1, 3)], result: { list: 2 }, record: { list: [2, 3, 4] } },

  { name: 'getByIndex VALUE', bins: { list: L }, ops: [op.list.getByIndex('list', 2)], result: { list: 3 } },
  { name: 'getByIndex INDEX / REVERSE_INDEX', bins: { list: L }, ops: [op.list.getByIndex('list', 1, RT.REVERSE_INDEX)], result: { list: 3 } },
  { name: 'getByIndex RANK', bins: { list: [30, 10, 20] }, ops: [op.list.getByIndex('list', 0, RT.RANK)], result: { list: 2 } },
  { name: 'getByIndex REVERSE_RANK', bins: { list: [30, 10, 20] }, ops: [op.list.getByIndex('list', 0, RT.REVERSE_RANK)], result: { list: 0 } },
  { name: 'getByIndex COUNT', bins: { list: L }, ops: [op.list.getByIndex('list', 4, RT.COUNT)], result: { list: 1 } },
  { name: 'getByIndex EXISTS', bins: { list: L }, ops: [op.list.getByIndex('list', 4, RT.EXISTS)], result: { list: true } },
  { name: 'getByIndex out of range', bins: { list: L }, ops: [op.list.getByIndex('list', 9)], error: ErrorCode.OP_NOT_APPLICABLE },
  { name: 'getByIndex INVERTED on one element', bins: { list: L }, ops: [op.list.getByIndex('list', 0, RT.VALUE | RT.INVERTED)], error: ErrorCode.OP_NOT_APPLICABLE },
  { name: 'getByIndex KEY (a map return type)', bins: { list: L }, ops: [op.list.getByIndex('list', 0, RT.KEY)], error: ErrorCode.OP_NOT_APPLICABLE },
  { name: 'getByIndexRange', bins: { list: L }, ops: [op.list.getByIndexRange('list', 1, 2)], result: { list: [2, 3] } },
  { name: 'getByIndexRange INVERTED', bins: { list: L }, ops: [op.list.getByIndexRange('list', 1, 2, RT.VALUE | RT.INVERTED)], result: { list: [1, 4, 5] } },
  { name: 'getByIndexRange before the start', bins: { list: L }, ops: [op.list.getByIndexRange('list', -7, 3)], result: { list: [1] } },
  { name: 'getByValue INDEX', bins: { list: [1, 2, 3, 1, 2, 3] }, ops: [op.list.getByValue('list', 3, RT.INDEX)], result: { list: [2, 5] } },
  { name: 'getByValue WILDCARD', bins: { list: [[1, 'a'], [2, 'b'], [1, 'c']] }, ops: [op.list.getByValue('list', [1, cdt.WILDCARD])], result: { list: [[1, 'a'], [1, 'c']] } },
  { name: 'getByValueList INDEX', bins: { list: [1, 2, 3, 1, 2, 3] }, ops: [op.list.getByValueList('list', [1, 3], RT.INDEX)], result: { list: [0, 2, 3, 5] } },
  { name: 'getByValueRange INDEX', bins: { list: L }, ops: [op.list.getByValueRange('list', 2, 5, RT.INDEX)], result: { list: [1, 2, 3] } },
  { name: 'getByValueRange from the lowest', bins: { list: [3, 1, 2] }, ops: [op.list.getByValueRange('list', null, 3)], result: { list: [1, 2] } },
  { name: 'getByValueRange to the highest', bins: { list: [3, 1, 2] }, ops: [op.list.getByValueRange('list', 2, undefined)], result: { list: [3, 2] } },
  { name: 'getByValueRange RANK', bins: { list: [30, 10, 20, 40] }, ops: [op.list.getByValueRange('list', 15, 35, RT.RANK)], result: { list: [1, 2] } },
  { name: 'getByRank', bins: { list: [30, 10, 20] }, ops: [op.list.getByRank('list', 0)], result: { list: 10 } },
  { name: 'getByRank from the largest', bins: { list: [30, 10, 20] }, ops: [op.list.getByRank('list', -1, RT.INDEX)], result: { list: 0 } },
  // Values of a rank range come in the server's heap order: descending when the range is at least as near the start as the end.
  { name: 'getByRankRange (descending: near the start)', bins: { list: [30, 10, 20, 40] }, ops: [op.list.getByRankRange('list', 1, 2)], result: { list: [30, 20] } },
  { name: 'getByRankRange (ascending: near the end)', bins: { list: [30, 10, 20, 40] }, ops: [op.list.getByRankRange('list', 2, 2)], result: { list: [30, 40] } },
  { name: 'getByRankRange (the client suite\'s case)', bins: { list: [83, 39, 49, 20, 42, 41, 98] }, ops: [op.list.getByRankRange('list', 2, 2)], result: { list: [42, 41] } },
  { name: 'getByRankRange INDEX (index order)', bins: { list: [30, 10, 20, 40] }, ops: [op.list.getByRankRange('list', 1, 2, RT.INDEX)], result: { list: [0, 2] } },
  { name: 'getByRankRange out of range', bins: { list: L }, ops: [op.list.getByRankRange('list', 9, 2)], result: { list: [] } },
];

/** Aerospike's documented examples for rel-rank ranges, on the ordered list [0, 4, 5, 9, 11, 15]. */
const relativeRank: [number, number, number | undefined, number[]][] = [
  [5, 0, undefined, [5, 9, 11, 15]],
  [5, 1, undefined, [9, 11, 15]],
  [5, -1, undefined, [4, 5, 9, 11, 15]],
  [3, 0, undefined, [4, 5, 9, 11, 15]],
  [3, 3, undefined, [11, 15]],
  [3, -3, undefined, [0, 4, 5, 9, 11, 15]],
  [5, 0, 2, [5, 9]],
  [5, 1, 1, [9]],
  [5, -1, 2, [4, 5]],
  [3, 0, 1, [4]],
  [3, 3, 7, [11, 15]],
  [3, -3, 2, []],
];
// The table is the Java client's, for an ordered list (an unordered one lists values in the server's heap order).
for (const [value, rank, count, expected] of relativeRank) {
  reads.push({
    name: `getByValueRelRankRange (${value}, ${rank}, ${count})`,
    bins: { list: [0, 4, 5, 9, 11, 15] },
    ops: [op.list.setOrder('list', ListOrder.ORDERED), op.list.getByValueRelRankRange('list', value, rank, count)],
    result: { list: expected },
  });
}

const removes: Scenario[] = [
  { name: 'removeByIndex VALUE', bins: { list: L }, ops: [op.list.removeByIndex('list', 2, RT.VALUE)], result: { list: 3 }, record: { list: [1, 2, 4, 5] } },
  { name: 'removeByIndex returns nothing by default', bins: { list: L }, ops: [op.list.removeByIndex('list', 2)], result: {}, record: { list: [1, 2, 4, 5] } },
  { name: 'removeByIndex in a map', bins: { map: { list: L } }, ops: [op.list.removeByIndex('map', 2, RT.NONE, { ctx: [cdt.mapKey('list')] })], record: { map: { list: [1, 2, 4, 5] } } },
  { name: 'removeByIndex of a missing bin', bins: { x: 1 }, ops: [op.list.removeByIndex('list', 0, RT.VALUE)], result: {}, record: { x: 1 } },
  { name: 'removeByIndexRange', bins: { list: L }, ops: [op.list.removeByIndexRange('list', 2, 2, RT.VALUE)], result: { list: [3, 4] }, record: { list: [1, 2, 5] } },
  { name: 'removeByIndexRange to the end', bins: { list: L }, ops: [op.list.removeByIndexRange('list', 2, null, RT.VALUE)], result: { list: [3, 4, 5] }, record: { list: [1, 2] } },
  { name: 'removeByValue', bins: { list: [1, 2, 3, 1, 2, 3] }, ops: [op.list.removeByValue('list', 3, RT.INDEX)], result: { list: [2, 5] }, record: { list: [1, 2, 1, 2] } },
  { name: 'removeByValue in a list found by value', bins: { list: [[3, 2, 1], [1, 2, 3, 1, 2, 3]] }, ops: [op.list.removeByValue('list', 3, RT.NONE, { ctx: [cdt.listValue([3, 2, 1])] })], record: { list: [[2, 1], [1, 2, 3, 1, 2, 3]] } },
  { name: 'removeByValueList', bins: { list: [1, 2, 3, 1, 2, 3] }, ops: [op.list.removeByValueList('list', [1, 3], RT.INDEX)], result: { list: [0, 2, 3, 5] }, record: { list: [2, 2] } },
  { name: 'removeByValueList INVERTED', bins: { list: [1, 2, 3, 1, 2, 3] }, ops: [op.list.removeByValueList('list', [1, 3], RT.NONE | RT.INVERTED)], record: { list: [1, 3, 1, 3] } },
  { name: 'removeByValueRange', bins: { list: L }, ops: [op.list.removeByValueRange('list', 2, 5, RT.INDEX)], result: { list: [1, 2, 3] }, record: { list: [1, 5] } },
  { name: 'removeByValueRelRankRange', bins: { list: [0, 4, 5, 9, 11, 15] }, ops: [op.list.removeByValueRelRankRange('list', 5, 1, 2, RT.VALUE)], result: { list: [9, 11] }, record: { list: [0, 4, 5, 15] } },
  { name: 'removeByRank', bins: { list: [3, 1, 2] }, ops: [op.list.removeByRank('list', 0, RT.VALUE)], result: { list: 1 }, record: { list: [3, 2] } },
  { name: 'removeByRankRange', bins: { list: [3, 1, 2, 5, 4] }, ops: [op.list.removeByRankRange('list', 0, 3, RT.VALUE)], result: { list: [3, 2, 1] }, record: { list: [5, 4] } },
  { name: 'removeByRankRange INVERTED COUNT', bins: { list: [3, 1, 2, 5, 4] }, ops: [op.list.removeByRankRange('list', 0, 3, RT.COUNT | RT.INVERTED)], result: { list: 2 }, record: { list: [3, 1, 2] } },
  { name: 'remove on a nested ordered list', bins: { x: 1 }, ops: [op.list.appendItems('l', [5, 3, 9], { order: ListOrder.ORDERED }), op.list.removeByRank('l', -1, RT.VALUE)], result: { l: 9 }, record: { x: 1, l: [3, 5] } },
];

describe('list operations', () => {
  for (const kind of CDT_KINDS) {
    it(`${kind}: writes, with every write flag`, async () => runScenarios(await openCdtDb(kind), writes));
    it(`${kind}: reads, with every return type`, async () => runScenarios(await openCdtDb(kind), reads));
    it(`${kind}: removes`, async () => runScenarios(await openCdtDb(kind), removes));
  }
});

describe('list operations: Aerospike value order', () => {
  it('an ordered list of every type sorts nil < bool < integer < string < list < map < bytes < double', async () => {
    const db = await openCdtDb('memory');
    const items = [2.5, Buffer.from([1]), { a: 1 }, [1], 'b', 'a', 7, -3, true, false, null, 10n];
    const result = await db.operate(cdtKey('order'), [op.list.appendItems('l', items, { order: ListOrder.ORDERED }), op.read('l')]);
    expect(result.bins.l).toEqual([null, false, true, -3, 7, 10n, 'a', 'b', [1], { a: 1 }, Buffer.from([1]), 2.5]);
  });

  it('strings sort by UTF-8 bytes (code points), not UTF-16 units', async () => {
    const db = await openCdtDb('memory');
    // U+FF5E is one UTF-16 unit; U+1F600 is two (surrogates, 0xD83D...) but sorts after it in UTF-8.
    const result = await db.operate(cdtKey('utf8'), [op.list.appendItems('l', ['😀', '～', 'z'], { order: ListOrder.ORDERED }), op.read('l')]);
    expect(result.bins.l).toEqual(['z', '～', '😀']);
  });

  it('rejects values that cannot be stored, and INF / WILDCARD outside comparisons, before anything runs', async () => {
    for (const bad of [Number.NaN, undefined, () => 1, new Set(), 2n ** 64n, cdt.INF]) {
      expect(() => op.list.append('l', bad), String(bad)).toThrow();
    }
    expect(() => op.list.appendItems('l', 99 as never)).toThrow(/array/);
    expect(() => op.list.getByIndexRange('l', 0, -1)).toThrow(/negative/);
    expect(() => op.list.append('this-name-is-too-long', 1)).toThrow(/15/);
    const db = await openCdtDb('memory');
    expect(await outcomeOf(db.operate(cdtKey('x'), [{ op: 'cdt', bin: 'l', payload: Buffer.from([0x91, 0x63]) } as never]))).toBe(ErrorCode.INVALID_ARGUMENT);
  });
});
