/**
 * Secondary indexes and queries over Aerospike's wire (docs/protocol.md, "Secondary indexes"),
 * through the official client: equal and range queries on bins of every indexed type, on list
 * elements, map keys and map values, and on an expression, checked against a plain-JS reference
 * over a few thousand records of mixed types (a value of another type never matches); a filter
 * expression on top; pages of max records resumed by partition and digest; the info commands;
 * and hostile input (malformed sindex-create, a huge expression, a missing index, too many
 * indexes, malformed ranges over a raw socket), each answered with the server's error while
 * the node stays up.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import Aerospike from 'aerospike';
import * as net from 'node:net';
import { ByteWriter } from '../lib/service/byte-writer';
import { FieldType, FrameType, Info1, Info2, Info3, beginFrame, endFrame, writeField, writeMessageHeader, writeStringField } from '../lib/service/wire';
import { SERVICE_BACKGROUND_JOBS_RUNNING_MAX, SINDEX_PER_NAMESPACE_MAX } from '../lib/service/constants';
import { ServedNode, codeOf, settled } from './helpers/service-server';
import { useServedNode } from './helpers/service-cluster';
import { RawConnection } from './helpers/wire-request';
import { seededFloats } from './helpers/random';
import { tempDir } from './helpers/temp';

const { exp, filter, status, indexType, indexDataType } = Aerospike;
const INDEX_NOT_FOUND = 201;

let node: ServedNode;
let client: Aerospike.Client;
let raw: RawConnection;

const DEVICE = [{ name: 'test', storage: { type: 'device', paths: ['test.dat'], sizeBytes: 128 << 20 } }];
const RECORDS = 3000;
const SET = 'q';
const WORDS = ['ant', 'bee', 'cat', 'dog', 'eel'];
const BLOBS = ['aa', 'bb', 'cc', 'dd'].map((text) => Buffer.from(text));
const KEYS = ['a', 'b', 'c', 'd'];

type Bins = Record<string, unknown>;
const reference: Bins[] = [];

/** Mixed-type bins: each indexed bin sometimes holds another type, or is missing. */
function makeRecord(id: number, random: () => number): Bins {
  const pick = <T>(values: readonly T[]) => values[Math.floor(random() * values.length)]!;
  const int = (low: number, high: number) => low + Math.floor(random() * (high - low + 1));
  const bins: Bins = { id };
  const roll = () => random();
  let r = roll();
  if (r < 0.7) bins.n = int(-50, 50);
  else if (r < 0.8) bins.n = String(int(-50, 50));
  else if (r < 0.9) bins.n = int(-50, 50) + 0.5;
  r = roll();
  if (r < 0.8) bins.s = pick(WORDS);
  else if (r < 0.9) bins.s = int(0, 5);
  if (roll() < 0.5) bins.b = pick(BLOBS);
  r = roll();
  if (r < 0.7) bins.l = Array.from({ length: int(0, 4) }, () => (roll() < 0.8 ? int(0, 20) : pick(WORDS)));
  else if (r < 0.8) bins.l = int(0, 20);
  r = roll();
  if (r < 0.6) bins.m = Object.fromEntries(KEYS.filter(() => roll() < 0.5).map((k) => [k, roll() < 0.8 ? int(0, 20) : pick(WORDS)]));
  else if (r < 0.7) bins.m = pick(WORDS);
  return bins;
}

const isInt = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value);
const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value) && !Buffer.isBuffer(value);
const within = (value: unknown, low: number, high: number) => isInt(value) && low <= value && value <= high;

function expected(predicate: (bins: Bins) => boolean): number[] {
  return reference.filter(predicate).map((bins) => bins.id as number).sort((a, b) => a - b);
}

async function ids(query: Aerospike.Query, policy?: Aerospike.QueryPolicy): Promise<number[]> {
  const records = await query.results(policy);
  return records.map((record) => record.bins.id as number).sort((a, b) => a - b);
}

function whereQuery(where: Parameters<Aerospike.Query['where']>[0], set = SET): Aerospike.Query {
  const query = client.query('test', set);
  query.where(where);
  return query;
}

/** An info command's answer, or its ERROR code. */
async function info(command: string): Promise<string> {
  const reply = await client.infoAny(command);
  return reply.slice(reply.indexOf('\t') + 1).trim();
}

/** An info command over a socket of its own (for commands longer than the client sends): its answer. */
async function rawInfo(command: string): Promise<string> {
  const body = Buffer.from(`${command}\n`);
  const header = Buffer.alloc(8);
  header.writeUInt32BE(((2 << 24) | (FrameType.INFO << 16)) >>> 0, 0);
  header.writeUInt32BE(body.length, 4);
  const socket = net.connect(node.port, node.host);
  socket.write(Buffer.concat([header, body]));
  let reply = Buffer.alloc(0);
  for await (const chunk of socket) {
    reply = Buffer.concat([reply, chunk as Buffer]);
    if (reply.length >= 8 && reply.length >= 8 + reply.readUInt32BE(4)) break;
  }
  socket.destroy();
  const text = reply.subarray(8).toString();
  return text.slice(text.indexOf('\t') + 1).trim();
}

async function stillServes(): Promise<void> {
  const key = new Aerospike.Key('test', 'alive', 'probe');
  await client.put(key, { ok: 1 });
  expect((await client.get(key)).bins.ok).toBe(1);
}

// A device namespace (the client suite's exp file covers a memory one), so a restart keeps the records.
const served = useServedNode({ dataDir: tempDir('shoal-query-'), namespaces: DEVICE }, (session) => ({ node, client, raw } = session), 120_000);

beforeAll(async () => {
  const random = seededFloats(15);
  for (let id = 0; id < RECORDS; id++) reference.push(makeRecord(id, random));
  for (let start = 0; start < RECORDS; start += 50) {
    await settled(reference.slice(start, start + 50).map((bins) => client.put(new Aerospike.Key('test', SET, `r${bins.id}`), bins as Aerospike.AerospikeBins)));
  }
  // Records of another set: an index on set "q" and a query of set "q" never return them. (At most
  // 50 commands in flight: the client allows 100 connections per node.)
  await settled(reference.slice(0, 50).map((bins) => client.put(new Aerospike.Key('test', 'other', `o${bins.id}`), { ...bins, id: -1 })));
  const bin = (name: string, datatype: number, type = indexType.DEFAULT) => ({ ns: 'test', set: SET, bin: name, index: `q_${name}_${datatype}_${type}`, datatype, type });
  for (const options of [
    bin('n', indexDataType.NUMERIC),
    bin('s', indexDataType.STRING),
    bin('b', indexDataType.BLOB),
    bin('l', indexDataType.NUMERIC, indexType.LIST),
    bin('l', indexDataType.STRING, indexType.LIST),
    bin('m', indexDataType.STRING, indexType.MAPKEYS),
    bin('m', indexDataType.NUMERIC, indexType.MAPVALUES),
  ]) {
    await (await client.createIndex(options)).wait(10);
  }
  await (await client.createExpIndex({ ns: 'test', set: SET, exp: exp.add(exp.binInt('n'), exp.int(1000)), index: 'q_n_plus', datatype: indexDataType.NUMERIC })).wait(10);
}, 120_000);


describe('queries against a plain-JS reference', () => {
  it('selects integer bins by equal and range, never a double, a string or a missing bin', async () => {
    for (const [low, high] of [[5, 5], [-50, 50], [-3, 7], [40, 1000], [51, 60]] as const) {
      const query = low === high ? whereQuery(filter.equal('n', low)) : whereQuery(filter.range('n', low, high));
      expect(await ids(query)).toEqual(expected((bins) => within(bins.n, low, high)));
    }
    expect(expected((bins) => within(bins.n, -3, 7)).length).toBeGreaterThan(200);
  });

  it('selects strings and blobs by equal, not ints of the same bin', async () => {
    for (const word of WORDS) expect(await ids(whereQuery(filter.equal('s', word)))).toEqual(expected((bins) => bins.s === word));
    expect(await ids(whereQuery(filter.equal('s', 'zebra')))).toEqual([]);
    for (const blob of BLOBS) {
      const query = client.query('test', SET);
      query.where(filter.equal('b', blob));
      expect(await ids(query)).toEqual(expected((bins) => Buffer.isBuffer(bins.b) && bins.b.equals(blob)));
    }
  });

  it('selects list elements, map keys and map values, each record once', async () => {
    const list = (bins: Bins) => (Array.isArray(bins.l) ? (bins.l as unknown[]) : []);
    const map = (bins: Bins) => (isObject(bins.m) ? bins.m : {});
    expect(await ids(whereQuery(filter.range('l', 3, 9, indexType.LIST)))).toEqual(expected((bins) => list(bins).some((e) => within(e, 3, 9))));
    expect(await ids(whereQuery(filter.contains('l', 7, indexType.LIST)))).toEqual(expected((bins) => list(bins).some((e) => e === 7)));
    expect(await ids(whereQuery(filter.contains('l', 'cat', indexType.LIST)))).toEqual(expected((bins) => list(bins).includes('cat')));
    expect(await ids(whereQuery(filter.contains('m', 'b', indexType.MAPKEYS)))).toEqual(expected((bins) => Object.hasOwn(map(bins), 'b')));
    expect(await ids(whereQuery(filter.range('m', 10, 15, indexType.MAPVALUES)))).toEqual(expected((bins) => Object.values(map(bins)).some((v) => within(v, 10, 15))));
  });

  it('selects by an expression index (whereWithExp), the expression evaluated per record', async () => {
    const query = client.query('test', SET);
    query.whereWithExp(filter.range(null as unknown as string, 990, 1010), exp.add(exp.binInt('n'), exp.int(1000)));
    expect(await ids(query)).toEqual(expected((bins) => within(bins.n, -10, 10)));
    const named = client.query('test', SET);
    const where = filter.range(null as unknown as string, 1040, 1050);
    (where as unknown as { indexName: string }).indexName = 'q_n_plus';
    named.where(where);
    expect(await ids(named)).toEqual(expected((bins) => within(bins.n, 40, 50)));
  });

  it('applies a filter expression on top, and bin selection', async () => {
    const query = whereQuery(filter.range('n', -20, 20));
    const policy = new Aerospike.QueryPolicy({ filterExpression: exp.eq(exp.binStr('s'), exp.str('dog')) });
    expect(await ids(query, policy)).toEqual(expected((bins) => within(bins.n, -20, 20) && bins.s === 'dog'));
    const selecting = whereQuery(filter.equal('s', 'eel'));
    selecting.select('id');
    const records = await selecting.results();
    expect(records.length).toBe(expected((bins) => bins.s === 'eel').length);
    for (const record of records) expect(Object.keys(record.bins)).toEqual(['id']);
  });

  it('pages with max records, resuming each partition after its last digest, and queries by partitions', async () => {
    const query = client.query('test', SET, { paginate: true, maxRecords: 97 });
    query.where(filter.range('n', -30, 30));
    const seen: number[] = [];
    for (let page = 0; page < 100; page++) {
      const records = await query.results();
      seen.push(...records.map((record) => record.bins.id as number));
      if (!query.hasNextPage()) break;
    }
    seen.sort((a, b) => a - b);
    expect(seen).toEqual(expected((bins) => within(bins.n, -30, 30)));
    const half = client.query('test', SET);
    half.where(filter.range('n', -30, 30));
    half.partitions(0, 2048);
    const firstHalf = await ids(half);
    const rest = client.query('test', SET);
    rest.where(filter.range('n', -30, 30));
    rest.partitions(2048, 2048);
    expect([...firstHalf, ...(await ids(rest))].sort((a, b) => a - b)).toEqual(seen);
    expect(firstHalf.length).toBeGreaterThan(0);
    expect(firstHalf.length).toBeLessThan(seen.length);
  });
});

describe('the info commands', () => {
  it('lists indexes, reports them loaded, and refuses a query once one is removed', async () => {
    const list = await info('sindex-list:ns=test');
    expect(list).toContain('ns=test:indexname=q_n_1_0:set=q:bin=n:type=NUMERIC:indextype=DEFAULT:context=null:exp=null:state=RW');
    expect(list).toContain('indexname=q_n_plus:set=q:bin=null:type=NUMERIC:indextype=DEFAULT:context=null:exp=');
    expect(await info('sindex/test/q_s_0_0')).toContain('load_pct=100');
    expect(await info('sindex-exists:ns=test;indexname=q_s_0_0')).toBe('true');
    await (await client.createIndex({ ns: 'test', set: SET, bin: 'gone', index: 'gone', datatype: indexDataType.STRING })).wait(10);
    // The same name and definition again is ok; another definition under the name is INDEX_FOUND (200).
    await client.createIndex({ ns: 'test', set: SET, bin: 'gone', index: 'gone', datatype: indexDataType.STRING });
    expect(await codeOf(client.createIndex({ ns: 'test', set: SET, bin: 'other', index: 'gone', datatype: indexDataType.STRING }))).toBe(200);
    expect(await ids(whereQuery(filter.equal('gone', 'x')))).toEqual([]);
    await client.indexRemove('test', 'gone');
    expect(await codeOf(whereQuery(filter.equal('gone', 'x')).results())).toBe(INDEX_NOT_FOUND);
    expect(await codeOf(client.infoAny('sindex/test/gone'))).toBe(INDEX_NOT_FOUND);
    expect(await info('sindex/nosuchns')).toBe('ns_type=unknown');
    // Removing an index that does not exist is ok, as the server answers it.
    await client.indexRemove('test', 'gone');
  });
});

/** A query frame for namespace "test", set "q", all partitions, with the given extra fields. */
function queryFrame(fields: [number, Buffer][]): Buffer {
  const writer = new ByteWriter();
  const start = beginFrame(writer);
  writeMessageHeader(writer, { info1: Info1.READ, info3: Info3.PARTITION_DONE, resultCode: 0, recordTtl: 0xffffffff, fieldCount: 2 + fields.length, opCount: 0 });
  writeStringField(writer, FieldType.NAMESPACE, 'test');
  writeStringField(writer, FieldType.SET, SET);
  for (const [type, value] of fields) writeField(writer, type, value);
  endFrame(writer, start, FrameType.MESSAGE);
  return writer.copyFrom(0);
}

/** A background query (write ops) of the records with n = 50, task `id`, at most `perSecond` records a second (0: no limit), with `op` (one raw op). */
function backgroundFrame(id: bigint, perSecond: number, op: Buffer): Buffer {
  const task = Buffer.alloc(8);
  task.writeBigUInt64BE(id);
  const rate = Buffer.alloc(4);
  rate.writeUInt32BE(perSecond);
  const fields: [number, Buffer][] = [[FieldType.TASK_ID, task], [FieldType.INDEX_RANGE, rangeField('n', 1, integerValues(50n, 50n))]];
  if (perSecond > 0) fields.push([FieldType.RECORDS_PER_SECOND, rate]);
  const frame = Buffer.concat([queryFrame(fields), op]);
  frame.writeUInt32BE(frame.length - 8, 4);
  frame[8 + 1] = 0;
  frame[8 + 2] = Info2.WRITE;
  frame.writeUInt16BE(1, 8 + 20);
  return frame;
}

/** An index range field: one range on `bin`, the particle type, then the values as given. */
function rangeField(bin: string, particleType: number, values: Buffer, ranges = 1): Buffer {
  const name = Buffer.from(bin);
  return Buffer.concat([Buffer.from([ranges, name.length]), name, Buffer.from([particleType]), values]);
}

function integerValues(start: bigint, end: bigint, size = 8): Buffer {
  const bytes = Buffer.alloc(24);
  bytes.writeUInt32BE(size, 0);
  bytes.writeBigInt64BE(start, 4);
  bytes.writeUInt32BE(size, 12);
  bytes.writeBigInt64BE(end, 16);
  return bytes;
}

function stringValues(text: string | Buffer): Buffer {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text);
  const size = Buffer.alloc(4);
  size.writeUInt32BE(bytes.length);
  return Buffer.concat([size, bytes, size, bytes]);
}

describe('hostile and careless input', () => {
  it('answers malformed sindex-create commands with PARAMETER_ERROR and creates nothing', async () => {
    const commands = [
      'sindex-create:ns=test;set=q;indexname=bad1',
      'sindex-create:ns=test;set=q;indexname=bad2;indexdata=n',
      'sindex-create:ns=test;set=q;indexname=bad3;indexdata=n,FLOAT',
      'sindex-create:ns=test;set=q;indexname=bad4;indextype=TREE;indexdata=n,NUMERIC',
      'sindex-create:ns=test;set=q;indexname=bad5;indexdata=n,NUMERIC;type=NUMERIC',
      'sindex-create:ns=test;set=q;indexname=bad6;type=STRING;bin=n;exp=kwGTUQOiYQ==',
      'sindex-create:ns=test;set=q;indexname=bad7;type=STRING;exp=not*base64',
      'sindex-create:ns=test;set=q;indexname=bad8;type=STRING;exp=AAAA',
      // An integer expression for a STRING index: the server refuses the type.
      `sindex-create:ns=test;set=q;indexname=bad9;type=STRING;exp=${client.expressionToBase64(exp.binInt('n'))}`,
      `sindex-create:ns=test;set=q;indexname=${'x'.repeat(64)};indexdata=n,NUMERIC`,
      'sindex-create:ns=nosuchns;set=q;indexname=bad10;indexdata=n,NUMERIC',
      'sindex-create:ns=test;set=q;indexname=bad11;indextype=MAPKEYS;indexdata=m,GEO2DSPHERE',
      // A context level with a create flag: an index never creates.
      `sindex-create:ns=test;set=q;indexname=bad12;indextype=LIST;context=${Buffer.from([0x92, 0x50, 0x00]).toString('base64')};indexdata=l,NUMERIC`,
      'sindex-create:ns=test;set=q;indexname=bad13;context=@@@@;indexdata=l,NUMERIC',
      `sindex-create:ns=test;set=q;indexname=bad14;indexdata=${'b'.repeat(16)},NUMERIC`,
    ];
    for (const command of commands) expect(await codeOf(client.infoAny(command)), command).toBe(status.ERR_REQUEST_INVALID);
    expect(await info('sindex-list:ns=test')).not.toContain('bad');
    await stillServes();
  });

  it('refuses a huge expression, and an index expression that does not compile', async () => {
    const huge = exp.add(exp.binInt('n'), ...Array.from({ length: 6000 }, () => exp.int(1_000_000)));
    const text = client.expressionToBase64(huge);
    expect(text.length).toBeGreaterThan(16 * 1024);
    // The client refuses to send a command this long itself (-2), so it goes over a raw socket.
    expect(await rawInfo(`sindex-create:ns=test;set=q;indexname=huge;type=NUMERIC;exp=${text}`)).toMatch(/^ERROR:4:'exp' longer than 16383 bytes$/);
    expect(await rawInfo(`sindex-create:ns=test;set=q;indexname=huge;type=NUMERIC;context=${'A'.repeat(4096)};bin=n`)).toMatch(/^ERROR:4:/);
    // [999, 1]: no such op.
    expect(await codeOf(client.infoAny(`sindex-create:ns=test;set=q;indexname=noop;type=NUMERIC;exp=${Buffer.from([0x92, 0xcd, 0x03, 0xe7, 0x01]).toString('base64')}`))).toBe(4);
    await stillServes();
  });

  it('answers a query on a missing index INDEX_NOT_FOUND (201), by bin, by name and by expression', async () => {
    expect(await codeOf(whereQuery(filter.equal('nosuchbin', 1)).results())).toBe(INDEX_NOT_FOUND);
    // An index on n exists, but not a STRING one.
    expect(await codeOf(whereQuery(filter.equal('n', 'five')).results())).toBe(INDEX_NOT_FOUND);
    expect(await codeOf(whereQuery(filter.equal('s', 'cat'), 'other').results())).toBe(INDEX_NOT_FOUND);
    const byExpression = client.query('test', SET);
    byExpression.whereWithExp(filter.range(null as unknown as string, 1, 2), exp.add(exp.binInt('n'), exp.int(7)));
    expect(await codeOf(byExpression.results())).toBe(INDEX_NOT_FOUND);
    await stillServes();
  });

  it(`refuses index ${SINDEX_PER_NAMESPACE_MAX + 1} of a namespace with INDEX_MAX_COUNT (206), and still renames`, async () => {
    const existing = (await info('sindex-list:ns=test')).split(';').filter((entry) => entry.length > 0).length;
    const created: string[] = [];
    for (let i = existing; i < SINDEX_PER_NAMESPACE_MAX; i++) {
      expect(await info(`sindex-create:ns=test;set=many;indexname=many${i};indexdata=bin${i},NUMERIC`)).toBe('ok');
      created.push(`many${i}`);
    }
    expect(await codeOf(client.infoAny('sindex-create:ns=test;set=many;indexname=toomany;indexdata=extra,NUMERIC'))).toBe(206);
    // The same definition under a new name is a rename, which the limit does not stop.
    expect(await info(`sindex-create:ns=test;set=many;indexname=renamed;indexdata=bin${existing},NUMERIC`)).toBe('ok');
    expect(await codeOf(client.infoAny(`sindex/test/many${existing}`))).toBe(INDEX_NOT_FOUND);
    for (const name of [...created.slice(1), 'renamed']) expect(await info(`sindex-delete:ns=test;indexname=${name}`)).toBe('ok');
    await stillServes();
  }, 60_000);

  it('answers malformed ranges over a raw socket with PARAMETER_ERROR, and keeps the connection', async () => {
    const frames = [
      queryFrame([[FieldType.INDEX_RANGE, rangeField('n', 1, integerValues(1n, 2n), 2)]]),
      queryFrame([[FieldType.INDEX_RANGE, rangeField('n', 1, integerValues(1n, 2n, 4))]]),
      queryFrame([[FieldType.INDEX_RANGE, rangeField('n', 1, integerValues(9n, 2n))]]),
      queryFrame([[FieldType.INDEX_RANGE, rangeField('n', 1, integerValues(1n, 2n).subarray(0, 20))]]),
      queryFrame([[FieldType.INDEX_RANGE, rangeField('n'.repeat(16), 1, integerValues(1n, 2n))]]),
      queryFrame([[FieldType.INDEX_RANGE, rangeField('s', 3, stringValues('x'.repeat(2048)))]]),
      queryFrame([[FieldType.INDEX_RANGE, rangeField('s', 3, stringValues(Buffer.from([0xff, 0xfe])))]]),
      queryFrame([[FieldType.INDEX_RANGE, rangeField('s', 23, stringValues('{"type":"Nope"}'))]]),
      queryFrame([[FieldType.INDEX_RANGE, rangeField('s', 19, stringValues('x'))]]),
      queryFrame([[FieldType.INDEX_RANGE, rangeField('', 1, integerValues(1n, 2n))]]),
      queryFrame([[FieldType.INDEX_RANGE, Buffer.from([1])]]),
      // An index name beside a bin name; an index name and an expression; an empty index type.
      queryFrame([[FieldType.INDEX_RANGE, rangeField('n', 1, integerValues(1n, 2n))], [FieldType.INDEX_NAME, Buffer.from('q_n_1_0')]]),
      queryFrame([[FieldType.INDEX_RANGE, rangeField('', 1, integerValues(1n, 2n))], [FieldType.INDEX_NAME, Buffer.from('q_n_1_0')], [FieldType.INDEX_EXPRESSION, Buffer.from([0xc3])]]),
      // Index fields without an index range.
      queryFrame([[FieldType.INDEX_NAME, Buffer.from('q_n_1_0')]]),
    ];
    for (const [i, frame] of frames.entries()) expect((await raw.send(frame)).resultCode, `frame ${i}`).toBe(4);
    // The same connection then serves a well-formed query: its first record.
    const good = await raw.send(queryFrame([[FieldType.INDEX_RANGE, rangeField('n', 1, integerValues(5n, 5n))]]));
    expect(good.resultCode).toBe(0);
    await stillServes();
  });
});

describe('background queries with write operations', () => {
  it('apply the ops to exactly the records the query selects, once, and report the job', async () => {
    const query = whereQuery(filter.range('n', 10, 12));
    const policy = new Aerospike.QueryPolicy({ filterExpression: exp.ne(exp.binStr('s'), exp.str('ant')) });
    const job = await query.operate([Aerospike.operations.incr('hits', 1)], policy);
    await job.wait(20);
    const jobInfo = await job.info();
    // binStr of a bin that is not a string cannot be evaluated: the filter leaves such records out.
    const selected = expected((bins) => within(bins.n, 10, 12) && typeof bins.s === 'string' && bins.s !== 'ant');
    expect(jobInfo.recordsRead).toBe(selected.length);
    const scan = await client.scan('test', SET).results();
    const hit = scan.filter((record) => record.bins.hits !== undefined);
    expect(hit.map((record) => record.bins.id as number).sort((a, b) => a - b)).toEqual(selected);
    expect(hit.every((record) => record.bins.hits === 1)).toBe(true);
    expect(await info(`query-show:trid=${job.jobID}`)).toMatch(/status=done\(ok\):job-progress=100.00:.*recs-succeeded=\d+:recs-failed=0$/);
    // An unknown job is "not found" (2), which the client takes as done.
    expect(await codeOf(client.infoAny('query-show:trid=12345'))).toBe(2);
  });

  it('refuse reads among the ops, as the server does', async () => {
    // The client refuses a read op itself; a raw request carries one.
    const read = Buffer.from([0, 0, 0, 6, 1, 0, 0, 2, 0x69, 0x64]);
    expect((await raw.send(backgroundFrame(1n, 0, read))).resultCode).toBe(4);
    await stillServes();
  });

  it(`refuse job ${SERVICE_BACKGROUND_JOBS_RUNNING_MAX + 1} while ${SERVICE_BACKGROUND_JOBS_RUNNING_MAX} run (KEY_BUSY), and answer the others at once`, async () => {
    // Jobs throttled to 1 record a second over the ~30 records with n = 50 stay running for the test.
    const write = Buffer.from([0, 0, 0, 14, 2, 1, 0, 2, 0x62, 0x67, 0, 0, 0, 0, 0, 0, 0, 1]);
    for (let i = 0; i < SERVICE_BACKGROUND_JOBS_RUNNING_MAX; i++) expect((await raw.send(backgroundFrame(BigInt(100 + i), 1, write))).resultCode).toBe(0);
    expect((await raw.send(backgroundFrame(200n, 1, write))).resultCode).toBe(14);
    expect(await info('query-show:trid=100')).toContain('status=active(ok)');
    await stillServes();
  });
});

describe('index definitions live in the node', () => {
  it('are gone after a restart: a query is INDEX_NOT_FOUND until the index is created again', async () => {
    await served.restart();
    expect(await codeOf(whereQuery(filter.equal('s', 'cat')).results())).toBe(INDEX_NOT_FOUND);
    await (await client.createIndex({ ns: 'test', set: SET, bin: 's', index: 'q_s_again', datatype: indexDataType.STRING })).wait(10);
    expect(await ids(whereQuery(filter.equal('s', 'cat')))).toEqual(expected((bins) => bins.s === 'cat'));
  }, 60_000);
});
