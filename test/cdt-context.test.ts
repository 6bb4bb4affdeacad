/**
 * Context paths: list and map operations three and more levels deep, by every kind of level
 * (list index / rank / value, map key / index / rank / value), creating missing levels with
 * their order, and the errors of paths that lead nowhere; memory and device namespaces.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, ListOrder, MapOrder, ReturnType, cdt, op, type Bins } from '../lib/index';
import { CDT_KINDS, Scenario, cdtKey, openCdtDb, runScenarios } from './helpers/cdt';
import { useDbCleanup } from './helpers/db';

useDbCleanup(['cdt']);

const RT = ReturnType;
const deep = (): Bins => ({ doc: { users: [{ name: 'ada', tags: ['b', 'a'], scores: { math: 1 } }, { name: 'bob', tags: [], scores: {} }] } }) as Bins;

const scenarios: Scenario[] = [
  {
    name: 'append four levels deep: map key, map key, list index, map key',
    bins: deep(),
    ops: [op.list.append('doc', 'c', { ctx: [cdt.mapKey('users'), cdt.listIndex(0), cdt.mapKey('tags')] }), op.read('doc')],
    result: { doc: { users: [{ name: 'ada', tags: ['b', 'a', 'c'], scores: { math: 1 } }, { name: 'bob', tags: [], scores: {} }] } },
  },
  {
    name: 'increment three levels deep, found by value',
    bins: deep(),
    ops: [op.map.increment('doc', 'math', 5, { ctx: [cdt.mapKey('users'), cdt.listIndex(0), cdt.mapKey('scores')] })],
    result: { doc: 6 },
  },
  {
    name: 'read three levels deep: map index, list rank, map value',
    bins: { m: { z: [{ k: 3 }, { k: 1 }], a: [{ k: 9 }] } },
    ops: [op.map.getByKey('m', 'k', RT.VALUE, { ctx: [cdt.mapIndex(1), cdt.listRank(0)] })],
    result: { m: 1 },
  },
  {
    name: 'map rank and map value levels',
    bins: { m: { a: [5, 6], b: [1, 2], c: [9] } },
    ops: [op.list.size('m', { ctx: [cdt.mapRank(-1)] }), op.list.getByIndex('m', 0, RT.VALUE, { ctx: [cdt.mapValue([1, 2])] })],
    result: { m: 1 },
  },
  {
    name: 'list value level',
    bins: { l: [[3, 2, 1], [1, 2, 3]] },
    ops: [op.list.sort('l', 0, { ctx: [cdt.listValue([3, 2, 1])] }), op.read('l')],
    result: { l: [[1, 2, 3], [1, 2, 3]] },
  },
  {
    name: 'create three missing levels in an empty bin',
    bins: { x: 1 },
    ops: [op.list.append('n', 'v', { ctx: [cdt.mapKeyCreate('a'), cdt.mapKeyCreate('b'), cdt.mapKeyCreate('c')] })],
    result: { n: 1 },
    record: { x: 1, n: { a: { b: { c: ['v'] } } } },
  },
  {
    name: 'create under an existing map with mixed levels and orders',
    bins: { n: { a: {} } },
    ops: [
      op.map.put('n', 'z', 1, { ctx: [cdt.mapKey('a'), cdt.mapKeyCreate('b', MapOrder.KEY_ORDERED), cdt.listIndexCreate(0, ListOrder.UNORDERED)] }),
      op.map.put('n', 'y', 2, { ctx: [cdt.mapKey('a'), cdt.mapKey('b'), cdt.listIndex(0)] }),
      op.map.getByIndex('n', 0, RT.KEY, { ctx: [cdt.mapKey('a'), cdt.mapKey('b'), cdt.listIndex(0)] }),
    ],
    result: { n: 'y' },
    record: { n: { a: { b: [{ z: 1, y: 2 }] } } },
  },
  {
    name: 'a created ordered list stays sorted',
    bins: { x: 1 },
    ops: [
      op.list.append('n', 3, { ctx: [cdt.mapKeyCreate('l', MapOrder.UNORDERED)] }),
      op.list.setOrder('n', ListOrder.ORDERED, { ctx: [cdt.mapKey('l')] }),
      op.list.append('n', 1, { ctx: [cdt.mapKey('l')] }),
      op.read('n'),
    ],
    result: { n: { l: [1, 3] } },
  },
  {
    name: 'a list index level creates at the end, or padded past it',
    bins: { l: [[1]] },
    ops: [
      op.list.append('l', 'x', { ctx: [cdt.listIndexCreate(1)] }),
      op.list.append('l', 'y', { ctx: [cdt.listIndexCreate(4, ListOrder.UNORDERED, true)] }),
      op.read('l'),
    ],
    result: { l: [[1], ['x'], null, null, ['y']] },
  },
  {
    name: 'a change inside an ordered list moves the element to its sorted place',
    bins: { x: 1 },
    ops: [
      op.list.appendItems('l', [[1], [5]], { order: ListOrder.ORDERED }),
      op.list.increment('l', 0, 10, { ctx: [cdt.listIndex(0)] }),
      op.read('l'),
    ],
    result: { l: [[5], [11]] },
  },
  { name: 'a missing map key without create', bins: deep(), ops: [op.list.append('doc', 1, { ctx: [cdt.mapKey('nope'), cdt.listIndex(0)] })], error: ErrorCode.OP_NOT_APPLICABLE },
  { name: 'a list index out of range', bins: { l: [[1]] }, ops: [op.list.append('l', 1, { ctx: [cdt.listIndex(3)] })], error: ErrorCode.OP_NOT_APPLICABLE },
  { name: 'a padded index without pad', bins: { l: [[1]] }, ops: [op.list.append('l', 1, { ctx: [cdt.listIndexCreate(3)] })], error: ErrorCode.OP_NOT_APPLICABLE },
  { name: 'a list level on a map', bins: { m: { a: 1 } }, ops: [op.map.size('m', { ctx: [cdt.listIndex(0)] })], error: ErrorCode.OP_NOT_APPLICABLE },
  { name: 'a level past a scalar', bins: { m: { a: 1 } }, ops: [op.map.size('m', { ctx: [cdt.mapKey('a'), cdt.mapKey('b')] })], error: ErrorCode.OP_NOT_APPLICABLE },
  { name: 'a context on a bin that is not a list or map', bins: { s: 'text' }, ops: [op.list.size('s', { ctx: [cdt.listIndex(0)] })], error: ErrorCode.INVALID_ARGUMENT },
  { name: 'a read of a missing element', bins: deep(), ops: [op.map.size('doc', { ctx: [cdt.mapKey('missing')] })], error: ErrorCode.OP_NOT_APPLICABLE },
  { name: 'a read of a missing bin with a context is nil', bins: { x: 1 }, ops: [op.list.size('none', { ctx: [cdt.mapKey('a')] })], result: { none: null } },
  { name: 'a write into a missing bin without create', bins: { x: 1 }, ops: [op.list.append('none', 1, { ctx: [cdt.mapKey('a')] })], error: ErrorCode.OP_NOT_APPLICABLE },
  { name: 'a remove under a missing created level does nothing', bins: { x: 1 }, ops: [op.list.removeByIndex('none', 0, RT.VALUE, { ctx: [cdt.mapKeyCreate('a')] })], record: { x: 1 } },
  { name: 'the wrong container at the end of the path', bins: deep(), ops: [op.map.size('doc', { ctx: [cdt.mapKey('users')] })], error: ErrorCode.BIN_TYPE },
  {
    name: 'a failure after a nested change changes nothing',
    bins: deep(),
    ops: [op.list.append('doc', 'c', { ctx: [cdt.mapKey('users'), cdt.listIndex(0), cdt.mapKey('tags')] }), op.list.insert('doc', 99, 'x', { ctx: [cdt.mapKey('users')], writeFlags: 2 })],
    error: ErrorCode.OP_NOT_APPLICABLE,
  },
];

describe('context paths', () => {
  for (const kind of CDT_KINDS) {
    it(`${kind}: nested operations, creation and the errors of paths that lead nowhere`, async () => runScenarios(await openCdtDb(kind), scenarios));
  }

  it('checks context levels when they are built', () => {
    expect(() => cdt.listIndex(1.5)).toThrow(/integer/);
    expect(() => cdt.mapKeyCreate('a', 2)).toThrow(/order/);
    expect(() => op.list.append('l', 1, { ctx: [{ type: 'x' } as never] })).toThrow(TypeError);
    expect(() => op.list.append('l', 1, { ctx: Array.from({ length: 65 }, () => cdt.listIndex(0)) })).toThrow(/64/);
  });

  it('the map a create level makes has the level\'s order (stored sorted by key)', async () => {
    const db = await openCdtDb('memory');
    const key = cdtKey('ko');
    await db.operate(key, [op.map.put('n', 'x', 1, { ctx: [cdt.mapKeyCreate('m', MapOrder.KEY_ORDERED)] })]);
    await db.operate(key, [op.map.put('n', 'b', 2), op.map.put('u', 'm', 1, { ctx: [] }), op.map.put('u', 'b', 2)]);
    const bins = (await db.get(key))!.bins as Record<string, Record<string, unknown>>;
    // Plain objects keep insertion order for these keys: the stored order shows through.
    expect(Object.keys(bins.n!)).toEqual(['b', 'm']);
    expect(Object.keys(bins.u!)).toEqual(['m', 'b']);
  });
});
