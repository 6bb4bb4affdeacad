/**
 * List and map operations on Aerospike's wire (op codes 3 and 4, docs/protocol.md "List and
 * map operations"): every list and map operation family through the official client, with
 * strings, blobs, nested values and integer map keys crossing the particle-type dialect both
 * ways; contexts three levels deep; results in Aerospike's layout (one result per op, in
 * order, nil for an op that returns nothing) read over a raw socket; malformed payloads that
 * get a clean result code and leave the record as it was; and what a client wrote is plain
 * MessagePack in storage, read back by the embedded API.
 */
import { describe, expect, it } from 'vitest';
import Aerospike from 'aerospike';
import { open } from '../lib/index';
import { OpCode, Info1, Info2 } from '../lib/service/wire';
import { codeOf } from './helpers/service-server';
import { useServedNode } from './helpers/service-cluster';
import { RawConnection, mp } from './helpers/wire-request';
import { tempDir } from './helpers/temp';

// The client's typings are narrower than what it accepts (map keys and range bounds of any type): arguments outside them are cast.
const { lists, maps, status } = Aerospike;
const LRT = lists.returnType;
const MRT = maps.returnType;
const Context = Aerospike.cdt.Context;

let client: Aerospike.Client;
let raw: RawConnection;
const dataDir = tempDir('shoal-protocol-cdt-');

const served = useServedNode({ dataDir, namespaces: [{ name: 'test', storage: { type: 'device', paths: ['test.dat'], sizeBytes: 64 << 20 } }] }, (session) => ({ client, raw } = session));

let keys = 0;
const key = (set = 'cdt') => new Aerospike.Key('test', set, `k${keys++}`);

interface Scenario {
  name: string;
  bins: Record<string, unknown>;
  ops: Aerospike.operations.Operation[];
  /** The bins operate() returns (the client keeps the last result per bin). */
  result?: Record<string, unknown>;
  /** The record afterwards. */
  record?: Record<string, unknown>;
}

async function run(scenarios: Scenario[]): Promise<void> {
  for (const scenario of scenarios) {
    const k = key();
    await client.put(k, scenario.bins as Aerospike.AerospikeBins);
    const outcome = await client.operate(k, scenario.ops);
    if (scenario.result !== undefined) expect(outcome.bins, scenario.name).toEqual(scenario.result);
    if (scenario.record !== undefined) expect((await client.get(k)).bins, scenario.name).toEqual(scenario.record);
  }
}

const blob = Buffer.from([0, 1, 2, 0xff]);

describe('list operations through the official client', () => {
  it('writes: append, insert, set, increment, sort, clear, with strings, blobs and nested values', async () => {
    await run([
      { name: 'append', bins: { l: ['a'] }, ops: [lists.append('l', 'é')], result: { l: 2 }, record: { l: ['a', 'é'] } },
      { name: 'append a blob', bins: { l: [] }, ops: [lists.append('l', blob)], record: { l: [blob] } },
      { name: 'appendItems', bins: { l: [1] }, ops: [lists.appendItems('l', ['x', [2, 'y'], { k: 'v' }])], result: { l: 4 }, record: { l: [1, 'x', [2, 'y'], { k: 'v' }] } },
      { name: 'insert', bins: { l: [1, 3] }, ops: [lists.insert('l', 1, 'two')], record: { l: [1, 'two', 3] } },
      { name: 'insert past the end pads with nil', bins: { l: [1] }, ops: [lists.insert('l', 3, 4)], record: { l: [1, null, null, 4] } },
      { name: 'insertItems', bins: { l: [1, 4] }, ops: [lists.insertItems('l', 1, [2, 3])], record: { l: [1, 2, 3, 4] } },
      { name: 'set', bins: { l: [1, 2] }, ops: [lists.set('l', -1, 'last')], record: { l: [1, 'last'] } },
      { name: 'increment', bins: { l: [1, 2] }, ops: [lists.increment('l', 1, 40)], result: { l: 42 }, record: { l: [1, 42] } },
      // DESCENDING is the C client's 1 (the Node client names only DEFAULT and DROP_DUPLICATES).
      { name: 'sort descending, dropping duplicates', bins: { l: [3, 1, 3, 2] }, ops: [lists.sort('l', 1 | lists.sortFlags.DROP_DUPLICATES)], record: { l: [3, 2, 1] } },
      { name: 'sort', bins: { l: ['b', 1, 'a'] }, ops: [lists.sort('l', lists.sortFlags.DEFAULT)], record: { l: [1, 'a', 'b'] } },
      // List ops alone do not ask for every op's result (the C client sets respond-all-ops for map and expression ops): clear returns nothing.
      { name: 'clear', bins: { l: [1, 2] }, ops: [lists.clear('l')], result: {}, record: { l: [] } },
      { name: 'setOrder, then append keeps it sorted', bins: { l: [3, 1] }, ops: [lists.setOrder('l', lists.order.ORDERED), lists.append('l', 2)], record: { l: [1, 2, 3] } },
      { name: 'create', bins: { x: 1 }, ops: [lists.create('l', lists.order.ORDERED), lists.appendItems('l', ['b', 'a'])], record: { x: 1, l: ['a', 'b'] } },
      {
        name: 'add-unique with no-fail and partial skips the items present',
        bins: { l: [1, 2] },
        ops: [lists.appendItems('l', [2, 3], { writeFlags: lists.writeFlags.ADD_UNIQUE | lists.writeFlags.NO_FAIL | lists.writeFlags.PARTIAL })],
        record: { l: [1, 2, 3] },
      },
    ]);
  });

  it('pops, removes and trims', async () => {
    await run([
      { name: 'pop', bins: { l: ['a', 'b', 'c'] }, ops: [lists.pop('l', 1)], result: { l: 'b' }, record: { l: ['a', 'c'] } },
      { name: 'popRange', bins: { l: [1, 2, 3, 4] }, ops: [lists.popRange('l', 1, 2)], result: { l: [2, 3] }, record: { l: [1, 4] } },
      { name: 'remove', bins: { l: [1, 2, 3] }, ops: [lists.remove('l', 0)], result: { l: 1 }, record: { l: [2, 3] } },
      { name: 'removeRange', bins: { l: [1, 2, 3, 4] }, ops: [lists.removeRange('l', 2)], result: { l: 2 }, record: { l: [1, 2] } },
      { name: 'trim', bins: { l: [1, 2, 3, 4, 5] }, ops: [lists.trim('l', 1, 3)], result: { l: 2 }, record: { l: [2, 3, 4] } },
      { name: 'removeByIndex', bins: { l: ['a', 'b'] }, ops: [lists.removeByIndex('l', 0, LRT.VALUE)], result: { l: 'a' }, record: { l: ['b'] } },
      { name: 'removeByIndexRange', bins: { l: [1, 2, 3] }, ops: [lists.removeByIndexRange('l', 1, 5, LRT.COUNT)], result: { l: 2 }, record: { l: [1] } },
      { name: 'removeByValue', bins: { l: ['x', 'y', 'x'] }, ops: [lists.removeByValue('l', 'x', LRT.INDEX)], result: { l: [0, 2] }, record: { l: ['y'] } },
      { name: 'removeByValueList', bins: { l: [blob, 'a', 1] }, ops: [lists.removeByValueList('l', [blob, 1], LRT.COUNT)], result: { l: 2 }, record: { l: ['a'] } },
      { name: 'removeByValueRange', bins: { l: [1, 5, 9] }, ops: [lists.removeByValueRange('l', 2, 9, LRT.VALUE)], result: { l: [5] }, record: { l: [1, 9] } },
      { name: 'removeByValueRelRankRange', bins: { l: [0, 4, 5, 9, 11, 15] }, ops: [lists.removeByValueRelRankRange('l', 5, 1, 2, LRT.VALUE)], result: { l: [9, 11] }, record: { l: [0, 4, 5, 15] } },
      { name: 'removeByRank', bins: { l: [30, 10, 20] }, ops: [lists.removeByRank('l', 0, LRT.VALUE)], result: { l: 10 }, record: { l: [30, 20] } },
      { name: 'removeByRankRange inverted', bins: { l: [30, 10, 20] }, ops: [lists.removeByRankRange('l', 0, 1, LRT.VALUE | LRT.INVERTED)], result: { l: [30, 20] }, record: { l: [10] } },
    ]);
  });

  it('reads by index, value, rank and relative rank, with every return type', async () => {
    const l = ['b', 'a', 'c', 'a'];
    await run([
      { name: 'size', bins: { l }, ops: [lists.size('l')], result: { l: 4 } },
      { name: 'get', bins: { l }, ops: [lists.get('l', -1)], result: { l: 'a' } },
      { name: 'getRange', bins: { l }, ops: [lists.getRange('l', 1, 2)], result: { l: ['a', 'c'] } },
      { name: 'getByIndex REVERSE_INDEX', bins: { l }, ops: [lists.getByIndex('l', 0, LRT.REVERSE_INDEX)], result: { l: 3 } },
      { name: 'getByIndexRange VALUE', bins: { l }, ops: [lists.getByIndexRange('l', 2, undefined, LRT.VALUE)], result: { l: ['c', 'a'] } },
      { name: 'getByValue INDEX', bins: { l }, ops: [lists.getByValue('l', 'a', LRT.INDEX)], result: { l: [1, 3] } },
      { name: 'getByValue EXISTS', bins: { l }, ops: [lists.getByValue('l', 'z', LRT.EXISTS)], result: { l: false } },
      { name: 'getByValueList COUNT', bins: { l }, ops: [lists.getByValueList('l', ['a', 'c'], LRT.COUNT)], result: { l: 3 } },
      { name: 'getByValueRange RANK', bins: { l }, ops: [lists.getByValueRange('l', 'b' as never, 'c' as never, LRT.RANK)], result: { l: [2] } },
      { name: 'getByRank VALUE', bins: { l }, ops: [lists.getByRank('l', -1, LRT.VALUE)], result: { l: 'c' } },
      { name: 'getByRankRange REVERSE_RANK', bins: { l }, ops: [lists.getByRankRange('l', 0, 2, LRT.REVERSE_RANK)], result: { l: [3, 2] } },
      // An unordered list's rank range near its start comes in descending order, as the server's heap sort leaves it.
      { name: 'getByValueRelRankRange VALUE', bins: { l: [0, 4, 5, 9, 11, 15] }, ops: [lists.getByValueRelRankRange('l', 5, -1, 2, LRT.VALUE)], result: { l: [5, 4] } },
      { name: 'getByRankRange VALUE near the end', bins: { l: [0, 4, 5, 9, 11, 15] }, ops: [lists.getByRankRange('l', 3, 2, LRT.VALUE)], result: { l: [9, 11] } },
      { name: 'a read of a missing bin is nil', bins: { x: 1 }, ops: [lists.size('l')], result: { l: null } },
    ]);
  });
});

describe('map operations through the official client', () => {
  it('writes: put, putItems, increment, decrement, clear, with integer and blob keys', async () => {
    await run([
      { name: 'put', bins: { m: { a: 1 } }, ops: [maps.put('m', 'b', 'two')], result: { m: 2 }, record: { m: { a: 1, b: 'two' } } },
      { name: 'put an integer key', bins: { x: 0 }, ops: [maps.put('m', 7 as never, 'seven')], record: { x: 0, m: { 7: 'seven' } } },
      { name: 'putItems', bins: { m: { a: 1 } }, ops: [maps.putItems('m', { b: [1, 'x'], c: { d: blob } })], result: { m: 3 }, record: { m: { a: 1, b: [1, 'x'], c: { d: blob } } } },
      {
        name: 'putItems create-only with no-fail and partial',
        bins: { m: { a: 1 } },
        ops: [maps.putItems('m', { a: 9, b: 2 }, { writeFlags: maps.writeFlags.CREATE_ONLY | maps.writeFlags.NO_FAIL | maps.writeFlags.PARTIAL })],
        record: { m: { a: 1, b: 2 } },
      },
      { name: 'increment', bins: { m: { n: 5 } }, ops: [maps.increment('m', 'n', 10)], result: { m: 15 }, record: { m: { n: 15 } } },
      { name: 'decrement a missing key', bins: { m: {} }, ops: [maps.decrement('m', 'n', 3)], result: { m: -3 } },
      { name: 'clear', bins: { m: { a: 1 } }, ops: [maps.clear('m')], result: { m: null }, record: { m: {} } },
      { name: 'setPolicy and create', bins: { x: 1 }, ops: [maps.create('m', maps.order.KEY_ORDERED), maps.putItems('m', { b: 1, a: 2 }), maps.getByIndex('m', 0, MRT.KEY)], result: { m: 'a' } },
    ]);
    const k = key();
    await client.put(k, { m: new Map<unknown, unknown>([[1, 'one'], [blob, 'bytes'], ['s', 'str']]) });
    expect((await client.operate(k, [maps.getByKey('m', blob as never, MRT.VALUE)])).bins.m).toBe('bytes');
    expect((await client.operate(k, [maps.getByKey('m', 1 as never, MRT.VALUE)])).bins.m).toBe('one');
    // An integer key sorts before strings, a blob after them.
    expect((await client.operate(k, [maps.getByIndexRange('m', 0, undefined, MRT.KEY)])).bins.m).toEqual([1, 's', blob]);
  });

  it('reads and removes by key, value, index and rank, with every return type', async () => {
    const m = { a: 3, b: 1, c: 2, d: 1 };
    await run([
      { name: 'size', bins: { m }, ops: [maps.size('m')], result: { m: 4 } },
      { name: 'getByKey VALUE', bins: { m }, ops: [maps.getByKey('m', 'c', MRT.VALUE)], result: { m: 2 } },
      // KEY_VALUE comes back as a list of key, value (Aerospike's preserve-order map).
      { name: 'getByKey KEY_VALUE', bins: { m }, ops: [maps.getByKey('m', 'c', MRT.KEY_VALUE)], result: { m: ['c', 2] } },
      { name: 'getByKeyList KEY', bins: { m }, ops: [maps.getByKeyList('m', ['d', 'a', 'z'], MRT.KEY)], result: { m: ['a', 'd'] } },
      { name: 'getByKeyRange COUNT', bins: { m }, ops: [maps.getByKeyRange('m', 'b', 'd', MRT.COUNT)], result: { m: 2 } },
      { name: 'getByKeyRelIndexRange KEY', bins: { m }, ops: [maps.getByKeyRelIndexRange('m', 'b', 1, 2, MRT.KEY)], result: { m: ['c', 'd'] } },
      { name: 'getByValue KEY', bins: { m }, ops: [maps.getByValue('m', 1, MRT.KEY)], result: { m: ['b', 'd'] } },
      { name: 'getByValueList INDEX', bins: { m }, ops: [maps.getByValueList('m', [2, 3], MRT.INDEX)], result: { m: [0, 2] } },
      { name: 'getByValueRange KEY', bins: { m }, ops: [maps.getByValueRange('m', 2, null, MRT.KEY)], result: { m: ['a', 'c'] } },
      { name: 'getByValueRelRankRange VALUE', bins: { m }, ops: [maps.getByValueRelRankRange('m', 2, 0, 1, MRT.VALUE)], result: { m: [2] } },
      { name: 'getByIndex KEY', bins: { m }, ops: [maps.getByIndex('m', -1, MRT.KEY)], result: { m: 'd' } },
      { name: 'getByIndexRange VALUE', bins: { m }, ops: [maps.getByIndexRange('m', 1, 2, MRT.VALUE)], result: { m: [1, 2] } },
      { name: 'getByRank KEY', bins: { m }, ops: [maps.getByRank('m', -1, MRT.KEY)], result: { m: 'a' } },
      { name: 'getByRankRange RANK', bins: { m }, ops: [maps.getByRankRange('m', 0, 1, MRT.RANK)], result: { m: [0] } },
      { name: 'removeByKey', bins: { m }, ops: [maps.removeByKey('m', 'a', MRT.VALUE)], result: { m: 3 }, record: { m: { b: 1, c: 2, d: 1 } } },
      { name: 'removeByKeyList', bins: { m }, ops: [maps.removeByKeyList('m', ['a', 'b'], MRT.COUNT)], result: { m: 2 }, record: { m: { c: 2, d: 1 } } },
      { name: 'removeByKeyRange', bins: { m }, ops: [maps.removeByKeyRange('m', 'b', null, MRT.KEY)], result: { m: ['b', 'c', 'd'] }, record: { m: { a: 3 } } },
      { name: 'removeByKeyRelIndexRange', bins: { m }, ops: [maps.removeByKeyRelIndexRange('m', 'c', 0, undefined, MRT.NONE)], result: { m: null }, record: { m: { a: 3, b: 1 } } },
      { name: 'removeByValue', bins: { m }, ops: [maps.removeByValue('m', 1, MRT.KEY)], result: { m: ['b', 'd'] }, record: { m: { a: 3, c: 2 } } },
      { name: 'removeByValueList', bins: { m }, ops: [maps.removeByValueList('m', [3], MRT.KEY)], result: { m: ['a'] }, record: { m: { b: 1, c: 2, d: 1 } } },
      { name: 'removeByValueRange', bins: { m }, ops: [maps.removeByValueRange('m', 1, 2, MRT.COUNT)], result: { m: 2 }, record: { m: { a: 3, c: 2 } } },
      { name: 'removeByValueRelRankRange', bins: { m }, ops: [maps.removeByValueRelRankRange('m', 3, 0, undefined, MRT.KEY)], result: { m: ['a'] }, record: { m: { b: 1, c: 2, d: 1 } } },
      { name: 'removeByIndex', bins: { m }, ops: [maps.removeByIndex('m', 0, MRT.KEY)], result: { m: 'a' }, record: { m: { b: 1, c: 2, d: 1 } } },
      { name: 'removeByIndexRange', bins: { m }, ops: [maps.removeByIndexRange('m', 2, undefined, MRT.KEY)], result: { m: ['c', 'd'] }, record: { m: { a: 3, b: 1 } } },
      { name: 'removeByRank', bins: { m }, ops: [maps.removeByRank('m', -1, MRT.KEY)], result: { m: 'a' }, record: { m: { b: 1, c: 2, d: 1 } } },
      { name: 'removeByRankRange inverted', bins: { m }, ops: [maps.removeByRankRange('m', 0, 2, MRT.KEY | MRT.INVERTED)], result: { m: ['a', 'c'] }, record: { m: { b: 1, d: 1 } } },
    ]);
  });

  it('answers errors with Aerospike result codes and leaves the record as it was', async () => {
    const k = key();
    await client.put(k, { l: [1, 2], m: { a: 1 }, s: 'text' });
    const generation = (await client.get(k)).gen;
    expect(await codeOf(client.operate(k, [lists.append('m', 1)]))).toBe(status.ERR_BIN_INCOMPATIBLE_TYPE);
    expect(await codeOf(client.operate(k, [maps.put('s', 'a', 1)]))).toBe(status.ERR_BIN_INCOMPATIBLE_TYPE);
    expect(await codeOf(client.operate(k, [lists.get('l', 5)]))).toBe(status.ERR_OP_NOT_APPLICABLE);
    expect(await codeOf(client.operate(k, [maps.put('m', 'a', 2, { writeFlags: maps.writeFlags.CREATE_ONLY })]))).toBe(status.ERR_FAIL_ELEMENT_EXISTS);
    expect(await codeOf(client.operate(k, [maps.put('m', 'z', 2, { writeFlags: maps.writeFlags.UPDATE_ONLY })]))).toBe(status.ERR_FAIL_ELEMENT_NOT_FOUND);
    // A failing op after a successful one changes nothing: operate is atomic.
    expect(await codeOf(client.operate(k, [lists.append('l', 3), lists.insert('l', 9, 0, { writeFlags: lists.writeFlags.INSERT_BOUNDED })]))).toBe(status.ERR_OP_NOT_APPLICABLE);
    const after = await client.get(k);
    expect(after.bins).toEqual({ l: [1, 2], m: { a: 1 }, s: 'text' });
    expect(after.gen).toBe(generation);
    expect(await codeOf(client.operate(key(), [lists.size('l')]))).toBe(status.ERR_RECORD_NOT_FOUND);
  });
});

describe('contexts', () => {
  it('reach three levels down by every kind, and create what is missing', async () => {
    const k = key();
    await client.put(k, {
      doc: { users: [{ name: 'ann', tags: ['a'] }, { name: 'bob', tags: ['b', 'c'] }], scores: [[5, 'x'], [1, 'y']], byValue: { k1: [9], k2: [3] } },
    });
    const third = new Context().addMapKey('users').addListIndex(1).addMapKey('tags');
    await client.operate(k, [lists.append('doc', 'd').withContext(third)]);
    const read = async (operation: Aerospike.operations.Operation) => (await client.operate(k, [operation])).bins.doc;
    expect(await read(lists.getByIndexRange('doc', 0, undefined, LRT.VALUE).withContext(third))).toEqual(['b', 'c', 'd']);
    expect(await read(lists.get('doc', 1).withContext(new Context().addMapKey('scores').addListRank(0)))).toBe('y');
    expect(await read(lists.get('doc', 0).withContext(new Context().addMapKey('scores').addListValue([5, 'x'])))).toBe(5);
    expect(await read(lists.get('doc', 0).withContext(new Context().addMapKey('byValue').addMapValue([3])))).toBe(3);
    expect(await read(lists.get('doc', 0).withContext(new Context().addMapKey('byValue').addMapIndex(0)))).toBe(9);
    expect(await read(lists.get('doc', 0).withContext(new Context().addMapKey('byValue').addMapRank(-1)))).toBe(9);
    const created = new Context().addMapKeyCreate('new', maps.order.KEY_ORDERED).addListIndexCreate(0, lists.order.UNORDERED, false).addMapKeyCreate('deep', maps.order.UNORDERED);
    await client.operate(k, [maps.put('doc', 'x', 1).withContext(created)]);
    expect(((await client.get(k)).bins.doc as { new: unknown }).new).toEqual([{ deep: { x: 1 } }]);
    const before = await client.get(k);
    // As the server's cdt_context_dig: a level that selects nothing is OP_NOT_APPLICABLE.
    expect(await codeOf(client.operate(k, [lists.append('doc', 1).withContext(new Context().addMapKey('missing').addListIndex(0))]))).toBe(status.ERR_OP_NOT_APPLICABLE);
    expect(await codeOf(client.operate(k, [lists.append('doc', 1).withContext(new Context().addMapKey('users').addListIndex(0).addMapKey('name'))]))).toBe(status.ERR_BIN_INCOMPATIBLE_TYPE);
    expect((await client.get(k)).bins).toEqual(before.bins);
  });
});

describe('results on the wire', () => {
  const append = (value: Buffer) => ({ op: OpCode.CDT_MODIFY, name: 'l', value: mp.array(mp.int(1), value) });

  it('answers every op in order, several for one bin, and a nil bin for an op that returns nothing', async () => {
    const reply = await raw.send({
      set: 'raw',
      key: 'order',
      ops: [
        append(mp.str('x')),
        { op: OpCode.CDT_READ, name: 'l', value: mp.array(mp.int(16)) },
        { op: OpCode.CDT_MODIFY, name: 'l', value: mp.array(mp.int(11)) },
        { op: OpCode.READ, name: 'l' },
        { op: OpCode.WRITE, name: 'w', particleType: 1, value: Buffer.from([0, 0, 0, 0, 0, 0, 0, 7]) },
      ],
    });
    expect(reply.resultCode).toBe(0);
    expect(reply.ops.map((op) => [op.name, op.value])).toEqual([
      ['l', 1],
      ['l', 1],
      ['l', null],
      ['l', []],
      ['w', null],
    ]);
    expect(reply.ops[2]!.particleType).toBe(0);
  });

  it('keeps strings, blobs and GeoJSON apart by their particle type, both ways', async () => {
    const geo = '{"type":"Point","coordinates":[1,2]}';
    const geoItem = Buffer.concat([Buffer.from([0xd9, geo.length + 1, 23]), Buffer.from(geo)]);
    await raw.send({ set: 'raw', key: 'types', ops: [append(mp.str('text')), append(mp.blob(Buffer.from('text'))), append(geoItem), append(Buffer.from([0xa0]))] });
    const reply = await raw.send({ set: 'raw', key: 'types', ops: [{ op: OpCode.READ, name: 'l' }] });
    expect(reply.ops[0]!.value).toEqual(['text', Buffer.from('text'), geo, Buffer.alloc(0)]);
    // On the wire the string and the blob differ only in their particle-type byte.
    expect(reply.ops[0]!.bytes).toEqual(Buffer.concat([Buffer.from([0x94]), mp.str('text'), mp.blob(Buffer.from('text')), mp.str(geo), mp.blob(Buffer.alloc(0))]));
  });

  it('writes KEY_VALUE results with the preserve-order flag and ordered maps with their key-ordered header', async () => {
    await client.put(new Aerospike.Key('test', 'raw', 'kv'), { m: { b: 2, a: 1 } });
    const keyValue = await raw.send({ set: 'raw', key: 'kv', ops: [{ op: OpCode.CDT_READ, name: 'm', value: mp.array(mp.int(104), mp.int(MRT.KEY_VALUE), mp.int(0)) }] });
    expect(keyValue.ops[0]!.bytes).toEqual(Buffer.concat([Buffer.from([0x83, 0xc7, 0x00, 0x08, 0xc0]), mp.str('a'), mp.int(1), mp.str('b'), mp.int(2)]));
    const ordered = await raw.send({ set: 'raw', key: 'kv', ops: [{ op: OpCode.CDT_READ, name: 'm', value: mp.array(mp.int(104), mp.int(MRT.ORDERED_MAP), mp.int(0)) }] });
    expect(ordered.ops[0]!.bytes.subarray(0, 4)).toEqual(Buffer.from([0x83, 0xc7, 0x00, 0x01]));
    // The bin itself, as the client sent it: key ordered.
    const bin = await raw.send({ set: 'raw', key: 'kv', ops: [{ op: OpCode.READ, name: 'm' }] });
    expect(bin.ops[0]!.bytes).toEqual(Buffer.concat([Buffer.from([0x83, 0xc7, 0x00, 0x01, 0xc0]), mp.str('a'), mp.int(1), mp.str('b'), mp.int(2)]));
  });
});

describe('malformed list and map ops', () => {
  const cases: [string, Buffer, number][] = [
    ['not an array', mp.int(1), status.ERR_REQUEST_INVALID],
    ['an empty array', mp.array(), status.ERR_REQUEST_INVALID],
    ['an unknown op code', mp.array(mp.int(120), mp.int(1)), status.ERR_REQUEST_INVALID],
    ['cut off', Buffer.from([0x92, 0x01]), status.ERR_REQUEST_INVALID],
    ['bytes after the payload', Buffer.concat([mp.array(mp.int(1), mp.int(1)), mp.int(1)]), status.ERR_REQUEST_INVALID],
    ['a list claiming four billion items', Buffer.from([0x92, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff]), status.ERR_REQUEST_INVALID],
    ['a string that is not UTF-8', mp.array(mp.int(1), Buffer.from([0xa3, 0x03, 0xc3, 0x28])), status.ERR_REQUEST_INVALID],
    ['a never-used tag', mp.array(mp.int(1), Buffer.from([0xc1])), status.ERR_REQUEST_INVALID],
    ['values nested 200 deep', mp.array(mp.int(1), Buffer.concat([Buffer.alloc(200, 0x91), mp.int(1)])), status.ERR_REQUEST_INVALID],
    ['a WILDCARD to store', mp.array(mp.int(1), mp.wildcard()), status.ERR_REQUEST_INVALID],
    ['INF to store', mp.array(mp.int(1), mp.inf()), status.ERR_REQUEST_INVALID],
    ['an append without its value', mp.array(mp.int(1)), status.ERR_REQUEST_INVALID],
    ['a context that is not a list', mp.array(mp.int(0xff), mp.int(5), mp.array(mp.int(1), mp.int(1))), status.ERR_REQUEST_INVALID],
    ['a context of odd length', mp.array(mp.int(0xff), mp.array(mp.int(0x10)), mp.array(mp.int(1), mp.int(1))), status.ERR_REQUEST_INVALID],
    ['a context of an unknown type', mp.array(mp.int(0xff), mp.array(mp.int(0x04), mp.int(0)), mp.array(mp.int(1), mp.int(1))), status.ERR_OP_NOT_APPLICABLE],
    ['a read sent as a modify', mp.array(mp.int(16)), status.ERR_REQUEST_INVALID],
    ['a map op on the list bin', mp.array(mp.int(67), mp.str('k'), mp.int(1)), status.ERR_BIN_INCOMPATIBLE_TYPE],
    ['an insert past the end, bounded', mp.array(mp.int(3), mp.int(10), mp.int(1), mp.int(2)), status.ERR_OP_NOT_APPLICABLE],
  ];

  it('get a clean result code, never a crash, and the record stays as it was', async () => {
    const k = new Aerospike.Key('test', 'raw', 'victim');
    await client.put(k, { l: ['a', 1], other: 'kept' });
    const before = await client.get(k);
    for (const [name, payload, code] of cases) {
      const reply = await raw.send({ set: 'raw', key: 'victim', ops: [{ op: OpCode.CDT_MODIFY, name: 'l', value: payload }] });
      expect(reply.resultCode, name).toBe(code);
    }
    const modifyAsRead = await raw.send({ set: 'raw', key: 'victim', info1: Info1.READ, info2: 0, ops: [{ op: OpCode.CDT_READ, name: 'l', value: mp.array(mp.int(1), mp.int(5)) }] });
    expect(modifyAsRead.resultCode, 'a modify sent as a read').toBe(status.ERR_REQUEST_INVALID);
    const noName = await raw.send({ set: 'raw', key: 'victim', info2: Info2.WRITE, ops: [{ op: OpCode.CDT_MODIFY, name: '', value: mp.array(mp.int(1), mp.int(5)) }] });
    expect(noName.resultCode, 'no bin name').toBe(status.ERR_REQUEST_INVALID);
    const after = await client.get(k);
    expect(after.bins).toEqual(before.bins);
    expect(after.gen).toBe(before.gen);
    // The same connection still serves.
    expect((await raw.send({ set: 'raw', key: 'victim', ops: [{ op: OpCode.CDT_READ, name: 'l', value: mp.array(mp.int(16)) }] })).ops[0]!.value).toBe(2);
  });
});

describe('storage', () => {
  it('holds what a client wrote as plain MessagePack, which the embedded API reads after a restart', async () => {
    const k = new Aerospike.Key('test', 'stored', 'doc');
    await client.put(k, { doc: { name: 'ann', blob, tags: ['x'], counts: new Map([[1, 'one']]) } });
    await client.operate(k, [lists.append('doc', 'y').withContext(new Context().addMapKey('tags')), maps.put('doc', 'n', 2)]);
    await served.restart(async () => {
      const db = await open({ dataDir, sharedMemoryIndex: false, namespaces: [{ name: 'test', storage: { type: 'device', paths: ['test.dat'], sizeBytes: 64 << 20 } }] });
      try {
        const record = await db.get({ ns: 'test', set: 'stored', key: 'doc' });
        expect(record!.bins.doc).toEqual({ blob, counts: new Map([[1, 'one']]), n: 2, name: 'ann', tags: ['x', 'y'] });
      } finally {
        await db.close();
      }
    });
    expect(((await client.get(k)).bins.doc as { tags: unknown }).tags).toEqual(['x', 'y']);
  }, 60_000);
});
