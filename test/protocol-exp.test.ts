/**
 * Filter expressions and expression ops on Aerospike's wire (field 43, op codes 7 and 8;
 * docs/protocol.md "Filter expressions"): the official client's filterExpression on reads,
 * writes, deletes, operate, touch, exists, batch rows (the batch's filter and a row's own) and
 * scans; FILTERED_OUT (27) where Aerospike gives it; expression reads and writes with their
 * flags, modify-local list and map expressions, geo comparisons; and malformed expressions over
 * a raw socket, which get PARAMETER_ERROR and leave the record as it was.
 */
import { describe, expect, it } from 'vitest';
import Aerospike from 'aerospike';
import { FieldType, OpCode } from '../lib/service/wire';
import { codeOf } from './helpers/service-server';
import { useServedNode } from './helpers/service-cluster';
import { RawConnection, mp } from './helpers/wire-request';

// exp.var is typed as _var in the client's typings; it is var at run time.
const { exp, lists, maps, status, operations: op } = Aerospike;
const FILTERED_OUT = status.FILTERED_OUT;

let client: Aerospike.Client;
let raw: RawConnection;

useServedNode({}, (session) => ({ client, raw } = session));

let keys = 0;
const key = (set = 'exp') => new Aerospike.Key('test', set, `k${keys++}`);

const isBlue = exp.eq(exp.binStr('color'), exp.str('blue'));
const isRed = exp.eq(exp.binStr('color'), exp.str('red'));

describe('the filter field on single-record commands', () => {
  it('filters reads, exists and header reads', async () => {
    const k = key();
    await client.put(k, { color: 'blue', n: 1 });
    expect((await client.get(k, new Aerospike.ReadPolicy({ filterExpression: isBlue }))).bins).toEqual({ color: 'blue', n: 1 });
    expect(await codeOf(client.get(k, new Aerospike.ReadPolicy({ filterExpression: isRed })))).toBe(FILTERED_OUT);
    expect(await codeOf(client.select(k, ['n'], new Aerospike.ReadPolicy({ filterExpression: isRed })))).toBe(FILTERED_OUT);
    expect(await codeOf(client.exists(k, new Aerospike.ReadPolicy({ filterExpression: isRed })))).toBe(FILTERED_OUT);
    // A missing record is not found, whatever the filter.
    expect(await codeOf(client.get(key(), new Aerospike.ReadPolicy({ filterExpression: isRed })))).toBe(status.ERR_RECORD_NOT_FOUND);
  });

  it('filters writes, deletes, operate and touch, leaving a filtered record as it was', async () => {
    const k = key();
    await client.put(k, { color: 'blue', n: 1 });
    const before = await client.get(k);
    const red = { filterExpression: isRed };
    expect(await codeOf(client.put(k, { n: 2 }, {}, new Aerospike.WritePolicy(red)))).toBe(FILTERED_OUT);
    expect(await codeOf(client.remove(k, new Aerospike.RemovePolicy(red)))).toBe(FILTERED_OUT);
    expect(await codeOf(client.operate(k, [op.incr('n', 1), lists.append('l', 1)], {}, new Aerospike.OperatePolicy(red)))).toBe(FILTERED_OUT);
    expect(await codeOf(client.operate(k, [op.touch(100)], {}, new Aerospike.OperatePolicy(red)))).toBe(FILTERED_OUT);
    const after = await client.get(k);
    expect(after.bins).toEqual(before.bins);
    expect(after.gen).toBe(before.gen);
    await client.put(k, { n: 2 }, {}, new Aerospike.WritePolicy({ filterExpression: isBlue }));
    expect((await client.operate(k, [op.incr('n', 1), op.read('n')], {}, new Aerospike.OperatePolicy({ filterExpression: isBlue }))).bins.n).toBe(3);
    await client.operate(k, [op.touch(100)], {}, new Aerospike.OperatePolicy({ filterExpression: isBlue }));
    expect((await client.get(k)).ttl).toBeGreaterThan(90);
    // A write to a missing record is not filtered (there is nothing to evaluate), as in Aerospike.
    const created = key();
    await client.put(created, { color: 'green' }, {}, new Aerospike.WritePolicy(red));
    expect((await client.get(created)).bins.color).toBe('green');
    const absent = key();
    expect(await codeOf(client.operate(absent, [op.touch(100)], {}, new Aerospike.OperatePolicy(red)))).toBe(status.ERR_RECORD_NOT_FOUND);
    expect(await client.exists(absent)).toBe(false);
    await client.remove(k, new Aerospike.RemovePolicy({ filterExpression: isBlue }));
    expect(await codeOf(client.get(k))).toBe(status.ERR_RECORD_NOT_FOUND);
  });

  it('evaluates metadata, list and map reads, arithmetic and regular expressions', async () => {
    const k = key('meta');
    await client.put(k, { tags: ['a', 'b', 'c'], m: { x: 10, y: 20 }, i: 7, f: 2.5, title: 'Star Wars', b: Buffer.from([1, 2]) }, { ttl: 1000 });
    const passes = async (filterExpression: Aerospike.AerospikeExp) => (await codeOf(client.get(k, new Aerospike.ReadPolicy({ filterExpression })))) === status.OK;
    expect(await passes(exp.eq(exp.lists.size(exp.binList('tags')), exp.int(3)))).toBe(true);
    expect(await passes(exp.eq(exp.maps.getByKey(exp.binMap('m'), exp.str('y'), exp.type.INT, maps.returnType.VALUE), exp.int(20)))).toBe(true);
    expect(await passes(exp.gt(exp.add(exp.binInt('i'), exp.int(1)), exp.int(7)))).toBe(true);
    expect(await passes(exp.lt(exp.binFloat('f'), exp.float(2.0)))).toBe(false);
    expect(await passes(exp.cmpRegex(Aerospike.regex.ICASE, '^star', exp.binStr('title')))).toBe(true);
    expect(await passes(exp.eq(exp.binBlob('b'), exp.bytes(Buffer.from([1, 2]))))).toBe(true);
    expect(await passes(exp.and(exp.gt(exp.ttl(), exp.int(900)), exp.eq(exp.setName(), exp.str('meta'))))).toBe(true);
    expect(await passes(exp.binExists('nope'))).toBe(false);
    expect(await passes(exp.eq(exp.binType('tags'), exp.int(20)))).toBe(true);
    expect(await passes(exp.let(exp.def('n', exp.binInt('i')), exp.eq((exp as unknown as { var: (name: string) => Aerospike.AerospikeExp }).var('n'), exp.int(7))))).toBe(true);
    // A bin of another type than the read expects is UNKNOWN: the record is filtered out.
    expect(await passes(exp.eq(exp.binInt('title'), exp.int(1)))).toBe(false);
  });

  it('compares GeoJSON: a point within a circle or polygon, either way round', async () => {
    const k = key();
    await client.put(k, { location: new Aerospike.GeoJSON.Point(103.913, 1.308) });
    const passes = async (filterExpression: Aerospike.AerospikeExp) => (await codeOf(client.get(k, new Aerospike.ReadPolicy({ filterExpression })))) === status.OK;
    const near = new Aerospike.GeoJSON.Circle(103.875, 1.297, 10_000);
    const far = new Aerospike.GeoJSON.Circle(9.78, 53.55, 50_000);
    const square = new Aerospike.GeoJSON.Polygon([103.9, 1.3], [103.92, 1.3], [103.92, 1.32], [103.9, 1.32], [103.9, 1.3]);
    expect(await passes(exp.cmpGeo(exp.binGeo('location'), exp.geo(near)))).toBe(true);
    expect(await passes(exp.cmpGeo(exp.geo(near), exp.binGeo('location')))).toBe(true);
    expect(await passes(exp.cmpGeo(exp.binGeo('location'), exp.geo(far)))).toBe(false);
    expect(await passes(exp.cmpGeo(exp.binGeo('location'), exp.geo(square)))).toBe(true);
    // 4 km off the square's east edge: outside the square, inside the 10 km circle.
    const east = key();
    await client.put(east, { location: new Aerospike.GeoJSON.Point(103.96, 1.31) });
    expect(await codeOf(client.get(east, new Aerospike.ReadPolicy({ filterExpression: exp.cmpGeo(exp.binGeo('location'), exp.geo(square)) })))).toBe(FILTERED_OUT);
    expect(await codeOf(client.get(east, new Aerospike.ReadPolicy({ filterExpression: exp.cmpGeo(exp.binGeo('location'), exp.geo(near)) })))).toBe(status.OK);
  });
});

describe('the filter field in batches and scans', () => {
  it('filters batch rows with the batch filter, unless a row has its own', async () => {
    const blue = key('batch');
    const red = key('batch');
    const missing = key('batch');
    await client.put(blue, { color: 'blue' });
    await client.put(red, { color: 'red' });
    const policy = new Aerospike.BatchPolicy({ filterExpression: isBlue });
    const read = await client.batchRead([blue, red, missing].map((k) => ({ key: k, readAllBins: true })), policy);
    expect(read.map((row) => row.status)).toEqual([status.OK, FILTERED_OUT, status.ERR_RECORD_NOT_FOUND]);
    const rowOwn = await client.batchRead([{ key: red, readAllBins: true, policy: new Aerospike.BatchReadPolicy({ filterExpression: isRed }) }, { key: blue, readAllBins: true }], policy);
    expect(rowOwn.map((row) => row.status)).toEqual([status.OK, status.OK]);
    const written = await client.batchWrite([
      { type: Aerospike.batchType.BATCH_WRITE, key: blue, ops: [op.write('n', 1)], policy: new Aerospike.BatchWritePolicy({ filterExpression: isRed }) },
      { type: Aerospike.batchType.BATCH_WRITE, key: red, ops: [op.write('n', 1)], policy: new Aerospike.BatchWritePolicy({ filterExpression: isRed }) },
    ]);
    expect(written.map((row) => row.status)).toEqual([FILTERED_OUT, status.OK]);
    expect((await client.get(blue)).bins).toEqual({ color: 'blue' });
    expect((await client.get(red)).bins).toEqual({ color: 'red', n: 1 });
    const removed = await client.batchRemove([blue, red], null, new Aerospike.BatchRemovePolicy({ filterExpression: isBlue }));
    expect(removed.map((row) => row.status)).toEqual([status.OK, FILTERED_OUT]);
  });

  it('sends only the records a scan filter is true for', async () => {
    for (let i = 0; i < 60; i++) await client.put(new Aerospike.Key('test', 'scanned', i), { i, odd: i % 2 === 1 });
    const scan = client.scan('test', 'scanned');
    const records = await scan.results(new Aerospike.ScanPolicy({ filterExpression: exp.and(exp.binBool('odd'), exp.lt(exp.binInt('i'), exp.int(20))) }));
    expect(records.map((record) => record.bins.i as number).sort((a, b) => a - b)).toEqual([1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
  });
});

describe('regular expressions on the wire', () => {
  const evil = `${'a'.repeat(26)}!`;
  const hostile = exp.cmpRegex(Aerospike.regex.EXTENDED, '^(a+)+$', exp.binStr('s'));

  it('a pattern that backtracks exponentially elsewhere answers at once, and the server stays responsive', async () => {
    // JS RegExp took 9.6 s of event loop per record for this pattern and text (exp-compile.test.ts).
    for (let i = 0; i < 20; i++) await client.put(new Aerospike.Key('test', 'regex', i), { s: evil, i });
    const started = performance.now();
    const scan = client.scan('test', 'regex').results(new Aerospike.ScanPolicy({ filterExpression: hostile }));
    const single = codeOf(client.get(new Aerospike.Key('test', 'regex', 0), new Aerospike.ReadPolicy({ filterExpression: hostile })));
    // A plain read sent while both run is answered while they run, not after.
    const plain = client.get(new Aerospike.Key('test', 'regex', 1));
    expect((await plain).bins).toEqual({ s: evil, i: 1 });
    expect(await single).toBe(FILTERED_OUT);
    expect(await scan).toEqual([]);
    expect(performance.now() - started).toBeLessThan(5_000);
    // The same pattern matches where it should.
    await client.put(new Aerospike.Key('test', 'regex', 0), { s: 'aaaa', i: 0 });
    const matched = await client.scan('test', 'regex').results(new Aerospike.ScanPolicy({ filterExpression: hostile }));
    expect(matched.map((record) => record.bins.i)).toEqual([0]);
  });

  it("reads the flags as regcomp does: basic syntax without EXTENDED, the client's ICASE and NEWLINE", async () => {
    const k = new Aerospike.Key('test', 'regex', 'flags');
    await client.put(k, { s: 'ab+\ncd' });
    const passes = async (flags: number, pattern: string) =>
      (await codeOf(client.get(k, new Aerospike.ReadPolicy({ filterExpression: exp.cmpRegex(flags, pattern, exp.binStr('s')) })))) === status.OK;
    expect(await passes(Aerospike.regex.BASIC, 'b+')).toBe(true);
    expect(await passes(Aerospike.regex.EXTENDED, 'ab+$')).toBe(false);
    expect(await passes(Aerospike.regex.EXTENDED | Aerospike.regex.NEWLINE, 'ab\\+$')).toBe(true);
    expect(await passes(Aerospike.regex.EXTENDED | Aerospike.regex.NEWLINE, '^CD')).toBe(false);
    expect(await passes(Aerospike.regex.EXTENDED | Aerospike.regex.NEWLINE | Aerospike.regex.ICASE, '^CD')).toBe(true);
  });
});

describe('expression ops', () => {
  it('reads a computed value into a named result, and writes one to a bin', async () => {
    const k = key();
    await client.put(k, { a: 2, list: [3, 1, 2], m: { x: 1 } });
    const result = await client.operate(k, [
      exp.operations.read('sum', exp.add(exp.binInt('a'), exp.int(40)), exp.expReadFlags.DEFAULT),
      exp.operations.write('sorted', exp.lists.sort(exp.binList('list'), lists.sortFlags.DEFAULT), exp.expWriteFlags.DEFAULT),
      // The Node client's exp.maps.put takes (bin, value, key).
      exp.operations.write('m', exp.maps.put(exp.binMap('m'), exp.int(2), exp.str('y')), exp.expWriteFlags.DEFAULT),
      op.read('sorted'),
    ]);
    expect(result.bins.sum).toBe(42);
    expect(result.bins.sorted).toEqual([1, 2, 3]);
    expect((await client.get(k)).bins).toEqual({ a: 2, list: [3, 1, 2], m: { x: 1, y: 2 }, sorted: [1, 2, 3] });
  });

  it('honours create-only, update-only, allow-delete and the no-fail flags', async () => {
    const k = key();
    await client.put(k, { a: 1 });
    const flags = exp.expWriteFlags;
    expect(await codeOf(client.operate(k, [exp.operations.write('a', exp.int(2), flags.CREATE_ONLY)]))).toBe(status.ERR_BIN_EXISTS);
    expect(await codeOf(client.operate(k, [exp.operations.write('b', exp.int(2), flags.UPDATE_ONLY)]))).toBe(status.ERR_BIN_NOT_FOUND);
    await client.operate(k, [exp.operations.write('a', exp.int(2), flags.CREATE_ONLY | flags.POLICY_NO_FAIL)]);
    expect(await codeOf(client.operate(k, [exp.operations.write('a', exp.nil(), flags.DEFAULT)]))).toBe(status.ERR_OP_NOT_APPLICABLE);
    expect(await codeOf(client.operate(k, [exp.operations.write('a', exp.binInt('missing'), flags.DEFAULT)]))).toBe(status.ERR_OP_NOT_APPLICABLE);
    await client.operate(k, [exp.operations.write('a', exp.binInt('missing'), flags.EVAL_NO_FAIL)]);
    expect((await client.get(k)).bins).toEqual({ a: 1 });
    await client.operate(k, [exp.operations.write('b', exp.int(5), flags.DEFAULT), exp.operations.write('a', exp.nil(), flags.ALLOW_DELETE)]);
    expect((await client.get(k)).bins).toEqual({ b: 5 });
    expect(await codeOf(client.operate(k, [exp.operations.read('r', exp.binInt('missing'), exp.expReadFlags.DEFAULT)]))).toBe(status.ERR_OP_NOT_APPLICABLE);
    // With EVAL_NO_FAIL the read answers a nil bin (expression ops ask for every op's result).
    expect((await client.operate(k, [exp.operations.read('r', exp.binInt('missing'), exp.expReadFlags.EVAL_NO_FAIL), op.read('b')])).bins).toEqual({ r: null, b: 5 });
  });

  it('sees the record as the ops before it left it', async () => {
    const k = key();
    await client.put(k, { n: 1 });
    const result = await client.operate(k, [op.incr('n', 10), exp.operations.read('seen', exp.binInt('n'), 0), lists.append('l', 'x'), exp.operations.read('size', exp.lists.size(exp.binList('l')), 0)]);
    expect(result.bins).toMatchObject({ seen: 11, size: 1 });
  });
});

describe('malformed expressions', () => {
  const eq = (left: Buffer, right: Buffer) => mp.array(mp.int(1), left, right);
  const binStr = (name: string) => mp.array(mp.int(81), mp.int(3), mp.raw(name));
  const cases: [string, Buffer][] = [
    ['not MessagePack', Buffer.from([0xc1])],
    ['cut off', Buffer.from([0x93, 0x01, 0x05])],
    ['an unknown op code', mp.array(mp.int(99), mp.int(1))],
    ['a type error', eq(binStr('s'), mp.int(1))],
    ['not a boolean', mp.int(1)],
    ['a bin name that is not a string', mp.array(mp.int(81), mp.int(3), mp.int(5))],
    ['an op without its arguments', mp.array(mp.int(1))],
    ['nested 300 deep', Buffer.concat([Buffer.from(Array.from({ length: 300 }, () => [0x92, 0x12]).flat()), mp.bool(true)])],
    ['a regular expression that does not compile', mp.array(mp.int(7), mp.int(1), mp.raw('('), binStr('s'))],
    ['a regular expression with a back-reference', mp.array(mp.int(7), mp.int(1), mp.raw('(a)\\1'), binStr('s'))],
    ['a regular expression a million NFA states big', mp.array(mp.int(7), mp.int(1), mp.raw('a{1000}{1000}'), binStr('s'))],
    ['regular expression flags regcomp does not have', mp.array(mp.int(7), mp.int(16), mp.raw('a'), binStr('s'))],
    ['a geo literal that is not GeoJSON', mp.array(mp.int(8), binStr('s'), mp.str('{"type":"Line"}'))],
    ['a list call that writes, as a read', mp.array(mp.int(127), mp.int(4), mp.int(0), mp.array(mp.int(11)), mp.array(mp.int(81), mp.int(4), mp.raw('l')))],
    ['bytes after the expression', Buffer.concat([mp.bool(true), mp.int(1)])],
  ];

  it('get PARAMETER_ERROR as a filter and as an expression op, and the record stays as it was', async () => {
    const k = new Aerospike.Key('test', 'raw', 'victim');
    await client.put(k, { s: 'x', l: [1] });
    const before = await client.get(k);
    for (const [name, bytes] of cases) {
      const filtered = await raw.send({ set: 'raw', key: 'victim', ops: [{ op: OpCode.WRITE, name: 's', particleType: 3, value: Buffer.from('y') }], fields: [[FieldType.FILTER, bytes]] });
      expect(filtered.resultCode, `filter: ${name}`).toBe(status.ERR_REQUEST_INVALID);
      if (name === 'not a boolean') continue;
      const written = await raw.send({ set: 'raw', key: 'victim', ops: [{ op: OpCode.EXP_MODIFY, name: 's', value: mp.array(bytes, mp.int(0)) }] });
      expect(written.resultCode, `expression op: ${name}`).toBe(status.ERR_REQUEST_INVALID);
    }
    const badValues: [string, Buffer][] = [
      ['not a list', mp.int(1)],
      ['an empty list', mp.array()],
      ['three elements', mp.array(mp.bool(true), mp.int(0), mp.int(0))],
      ['flags that are not an integer', mp.array(mp.bool(true), mp.str('x'))],
      ['unknown write flags', mp.array(mp.bool(true), mp.int(64))],
    ];
    for (const [name, value] of badValues) {
      const reply = await raw.send({ set: 'raw', key: 'victim', ops: [{ op: OpCode.EXP_MODIFY, name: 's', value }] });
      expect(reply.resultCode, `expression op value: ${name}`).toBe(status.ERR_REQUEST_INVALID);
    }
    const readFlags = await raw.send({ set: 'raw', key: 'victim', ops: [{ op: OpCode.EXP_READ, name: 'r', value: mp.array(mp.bool(true), mp.int(1)) }] });
    expect(readFlags.resultCode, 'read flags other than EVAL_NO_FAIL').toBe(status.ERR_REQUEST_INVALID);
    const after = await client.get(k);
    expect(after.bins).toEqual(before.bins);
    expect(after.gen).toBe(before.gen);
    // The connection still serves, and a well-formed filter over it works.
    const good = await raw.send({ set: 'raw', key: 'victim', ops: [{ op: OpCode.READ, name: 's' }], fields: [[FieldType.FILTER, eq(binStr('s'), mp.str('x'))]] });
    expect(good.ops[0]!.value).toBe('x');
    const filteredOut = await raw.send({ set: 'raw', key: 'victim', ops: [{ op: OpCode.READ, name: 's' }], fields: [[FieldType.FILTER, eq(binStr('s'), mp.str('no'))]] });
    expect(filteredOut.resultCode).toBe(FILTERED_OUT);
  });
});
