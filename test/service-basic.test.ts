/**
 * The official Aerospike Node client (the `aerospike` package) against one Shoal node served
 * by `shoal serve`: every single-record command, operate, batches, scans, truncate and the
 * info commands clients use, with Aerospike's result codes for what Shoal refuses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Aerospike from 'aerospike';
import { cleanupTempDirs } from './helpers/temp';
import { ServedNode, clientConfig, serveNode, stopNode } from './helpers/service-server';

let node: ServedNode;
let client: Aerospike.Client;
const op = Aerospike.operations;
const status = Aerospike.status;
const key = (k: string | number, set = 'basic') => new Aerospike.Key('test', set, k);

/** Runs `task` for 0..count-1, at most `width` at a time (the client caps its connections). */
async function each(count: number, task: (i: number) => Promise<unknown>, width = 32): Promise<void> {
  let next = 0;
  // allSettled: a failure must not leave commands in flight when the client closes.
  const workers = await Promise.allSettled(Array.from({ length: width }, async () => {
    while (next < count) await task(next++);
  }));
  for (const worker of workers) if (worker.status === 'rejected') throw worker.reason;
}

/** The error code a promise rejects with (fails the test if it resolves). */
async function codeOf(promise: Promise<unknown>): Promise<number> {
  try {
    await promise;
  } catch (error) {
    return (error as { code: number }).code;
  }
  throw new Error('expected the call to fail');
}

beforeAll(async () => {
  node = await serveNode();
  client = await Aerospike.connect(clientConfig(node));
});

afterAll(async () => {
  await client?.close();
  if (node !== undefined) await stopNode(node);
  cleanupTempDirs();
});

describe('single records', () => {
  it('writes and reads every value type back', async () => {
    const bins = {
      s: 'héllo',
      i: -42,
      big: 2n ** 62n,
      d: 3.25,
      b: Buffer.from([0, 1, 255]),
      t: true,
      l: [1, 'two', 3.5, Buffer.from('x'), [4], { n: 5 }, false, null],
      m: { a: 1, b: { c: 'd' }, e: [1, 2], f: null },
      empty: [],
      emptyMap: {},
    };
    await client.put(key('types'), bins);
    const record = await client.get(key('types'));
    expect(record.bins).toEqual(bins);
    expect(record.gen).toBe(1);
    expect(record.ttl).toBe(-1);
  });

  it('stores GeoJSON values as their JSON text', async () => {
    await client.put(key('geo'), { g: new Aerospike.GeoJSON.Point(103.8, 1.28) });
    expect((await client.get(key('geo'))).bins.g).toBe('{"type":"Point","coordinates":[103.8,1.28]}');
  });

  it('selects bins, reads headers, tells whether a record exists', async () => {
    await client.put(key('select'), { a: 1, b: 2, c: 3 }, { ttl: 100 });
    expect((await client.select(key('select'), ['a', 'c', 'zz'])).bins).toEqual({ a: 1, c: 3 });
    const header = await client.existsWithMetadata(key('select'));
    expect(header.gen).toBe(1);
    expect(header.ttl).toBeGreaterThan(95);
    expect(header.ttl).toBeLessThanOrEqual(101);
    expect(await client.exists(key('select'))).toBe(true);
    expect(await client.exists(key('no-such-record'))).toBe(false);
    expect(await codeOf(client.get(key('no-such-record')))).toBe(status.ERR_RECORD_NOT_FOUND);
  });

  it('applies the exists and generation policies', async () => {
    const create = new Aerospike.WritePolicy({ exists: Aerospike.policy.exists.CREATE });
    await client.put(key('policy'), { v: 1 }, {}, create);
    expect(await codeOf(client.put(key('policy'), { v: 2 }, {}, create))).toBe(status.ERR_RECORD_EXISTS);
    const update = new Aerospike.WritePolicy({ exists: Aerospike.policy.exists.UPDATE });
    expect(await codeOf(client.put(key('policy-missing'), { v: 1 }, {}, update))).toBe(status.ERR_RECORD_NOT_FOUND);
    const equal = new Aerospike.WritePolicy({ gen: Aerospike.policy.gen.EQ });
    expect(await codeOf(client.put(key('policy'), { v: 3 }, { gen: 7 }, equal))).toBe(status.ERR_RECORD_GENERATION);
    await client.put(key('policy'), { v: 3 }, { gen: 1 }, equal);
    const greater = new Aerospike.WritePolicy({ gen: Aerospike.policy.gen.GT });
    expect(await codeOf(client.put(key('policy'), { v: 4 }, { gen: 2 }, greater))).toBe(status.ERR_RECORD_GENERATION);
    await client.put(key('policy'), { v: 4 }, { gen: 9 }, greater);
    const record = await client.get(key('policy'));
    expect(record.bins).toEqual({ v: 4 });
    expect(record.gen).toBe(3);
    const replace = new Aerospike.WritePolicy({ exists: Aerospike.policy.exists.REPLACE });
    await client.put(key('policy'), { w: 5 }, {}, replace);
    expect((await client.get(key('policy'))).bins).toEqual({ w: 5 });
  });

  it('removes records and bins; a missing record is KEY_NOT_FOUND', async () => {
    await client.put(key('remove'), { a: 1, b: 2 });
    await client.put(key('remove'), { a: null });
    expect((await client.get(key('remove'))).bins).toEqual({ b: 2 });
    const wrongGen = new Aerospike.RemovePolicy({ gen: Aerospike.policy.gen.EQ, generation: 5 });
    expect(await codeOf(client.remove(key('remove'), wrongGen))).toBe(status.ERR_RECORD_GENERATION);
    // Durable delete asks for nothing more: every Shoal delete is durable.
    await client.remove(key('remove'), new Aerospike.RemovePolicy({ durableDelete: true }));
    expect(await client.exists(key('remove'))).toBe(false);
    expect(await codeOf(client.remove(key('remove')))).toBe(status.ERR_RECORD_NOT_FOUND);
  });

  it('keeps the user key when the client sends it, and checks it against the digest', async () => {
    const policy = new Aerospike.WritePolicy({ key: Aerospike.policy.key.SEND });
    await client.put(key(77, 'sendkey'), { v: 1 }, {}, policy);
    const records = await client.scan('test', 'sendkey').results();
    expect(records.map((r) => r.key.key)).toEqual([77]);
  });

  it('sets, keeps and resets TTLs; touch of a missing record is KEY_NOT_FOUND', async () => {
    await client.put(key('ttl'), { v: 1 }, { ttl: 1000 });
    expect((await client.get(key('ttl'))).ttl).toBeGreaterThan(990);
    await client.put(key('ttl'), { v: 2 }, { ttl: Aerospike.ttl.DONT_UPDATE });
    expect((await client.get(key('ttl'))).ttl).toBeGreaterThan(990);
    await client.operate(key('ttl'), [op.touch(5000)]);
    const touched = await client.get(key('ttl'));
    expect(touched.ttl).toBeGreaterThan(4990);
    expect(touched.gen).toBe(3);
    await client.put(key('ttl'), { v: 3 }, { ttl: Aerospike.ttl.NEVER_EXPIRE });
    expect((await client.get(key('ttl'))).ttl).toBe(-1);
    expect(await codeOf(client.operate(key('ttl-missing'), [op.touch(10)]))).toBe(status.ERR_RECORD_NOT_FOUND);
    // Above Shoal's ten-year bound: the Db's own check, as PARAMETER_ERROR.
    expect(await codeOf(client.put(key('ttl'), { v: 4 }, { ttl: 400_000_000 }))).toBe(status.ERR_REQUEST_INVALID);
  });
});

describe('operate', () => {
  it('runs read, write, incr, append, prepend, touch and delete atomically in order', async () => {
    await client.put(key('op'), { n: 10, s: 'mid', d: 1.5 });
    const result = await client.operate(key('op'), [op.incr('n', 5), op.read('n'), op.append('s', '>'), op.prepend('s', '<'), op.read('s'), op.incr('d', 1.25), op.write('w', 'x'), op.touch(3600)]);
    expect(result.bins).toEqual({ n: 15, s: '<mid>' });
    const record = await client.get(key('op'));
    expect(record.bins).toEqual({ n: 15, s: '<mid>', d: 2.75, w: 'x' });
    expect(record.ttl).toBeGreaterThan(3590);
    const deleted = await client.operate(key('op'), [op.read('w'), op.delete()]);
    expect(deleted.bins).toEqual({ w: 'x' });
    expect(await client.exists(key('op'))).toBe(false);
  });

  it('answers a type mismatch with INCOMPATIBLE_TYPE, unsupported ops with UNSUPPORTED_FEATURE, and a UDF of no registered module with UDF_ERROR', async () => {
    await client.put(key('op-types'), { s: 'text', l: [1] });
    expect(await codeOf(client.operate(key('op-types'), [op.incr('s', 1)]))).toBe(status.ERR_BIN_INCOMPATIBLE_TYPE);
    expect(await codeOf(client.operate(key('op-types'), [Aerospike.bitwise.resize('b', 4)]))).toBe(status.ERR_UNSUPPORTED_FEATURE);
    expect(await codeOf(client.operate(key('op-types'), [Aerospike.lists.append('s', 2)]))).toBe(status.ERR_BIN_INCOMPATIBLE_TYPE);
    expect(await codeOf(client.apply(key('op-types'), { module: 'none', funcname: 'f', args: [] }))).toBe(status.ERR_UDF);
    expect((await client.get(key('op-types'))).bins).toEqual({ s: 'text', l: [1] });
  });

  it('filters writes, and refuses secondary-index queries whole, never half-serving them', async () => {
    const exp = Aerospike.exp;
    const filtered = new Aerospike.WritePolicy({ filterExpression: exp.eq(exp.binStr('s'), exp.str('other')) });
    expect(await codeOf(client.put(key('op-types'), { s: 'changed' }, {}, filtered))).toBe(status.FILTERED_OUT);
    expect((await client.get(key('op-types'))).bins.s).toBe('text');
    const query = client.query('test', 'basic');
    query.where(Aerospike.filter.equal('i', 1));
    expect(await codeOf(query.results())).toBe(status.ERR_UNSUPPORTED_FEATURE);
  });
});

describe('batches and scans', () => {
  it('reads, writes and removes in batches, each row with its own result', async () => {
    const keys = Array.from({ length: 40 }, (_, i) => key(`b${i}`, 'batch'));
    await each(30, (i) => client.put(keys[i]!, { i }));
    const read = await client.batchRead(keys.map((k) => ({ key: k, readAllBins: true })));
    expect(read.filter((r) => r.status === status.OK).map((r) => r.record.bins.i)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(read.slice(30).every((r) => r.status === status.ERR_RECORD_NOT_FOUND)).toBe(true);
    const selected = await client.batchSelect(keys.slice(0, 2), ['i']);
    // At run time the client puts the bins in record (its typings say bins).
    expect(selected.map((r) => (r as unknown as { record: { bins: unknown } }).record.bins)).toEqual([{ i: 0 }, { i: 1 }]);
    const written = await client.batchWrite([
      { type: Aerospike.batchType.BATCH_WRITE, key: keys[35]!, ops: [op.write('i', 35)] },
      { type: Aerospike.batchType.BATCH_WRITE, key: keys[0]!, ops: [op.incr('i', 100)], policy: new Aerospike.BatchWritePolicy({ exists: Aerospike.policy.exists.CREATE }) },
      { type: Aerospike.batchType.BATCH_REMOVE, key: keys[1]! },
    ]);
    expect(written.map((r) => r.status)).toEqual([status.OK, status.ERR_RECORD_EXISTS, status.OK]);
    expect((await client.get(keys[35]!)).bins).toEqual({ i: 35 });
    expect(await client.exists(keys[1]!)).toBe(false);
  });

  it('scans a set, all bins, some bins or headers only', async () => {
    await each(300, (i) => client.put(key(i, 'scan'), { i, pad: 'x'.repeat(i) }));
    const all = await client.scan('test', 'scan').results();
    expect(all.map((r) => r.bins.i).sort((a, b) => (a as number) - (b as number))).toEqual(Array.from({ length: 300 }, (_, i) => i));
    const scan = client.scan('test', 'scan');
    scan.select('i');
    expect((await scan.results()).every((r) => Object.keys(r.bins).join() === 'i')).toBe(true);
    const none = await client.scan('test', 'no-such-set').results();
    expect(none).toEqual([]);
  });

  it('resumes a scan by digest under maxRecords without losing or repeating a record', async () => {
    const seen: number[] = [];
    const scan = client.scan('test', 'scan', { paginate: true });
    for (let page = 0; page < 50; page++) {
      const records = await scan.results({ maxRecords: 37 });
      seen.push(...records.map((r) => r.bins.i as number));
      if (scan.hasNextPage() === false) break;
    }
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });

  it('truncates a set through the info command', async () => {
    await each(20, (i) => client.put(key(i, 'trunc'), { i }));
    await client.truncate('test', 'trunc', 0);
    expect(await client.scan('test', 'trunc').results()).toEqual([]);
    await client.put(key(1, 'trunc'), { after: true });
    expect((await client.get(key(1, 'trunc'))).bins).toEqual({ after: true });
  });
});

describe('info', () => {
  it('answers the commands clients and tools send, and Aerospike errors for unknown ones', async () => {
    const info = Aerospike.info.parse(await client.infoAny('status\nnamespaces\nbuild\nedition\nnode\npartition-generation\npeers-clear-std\nnamespace/test\nget-config:context=namespace;id=test'));
    expect(info.status).toBe('ok');
    expect(info.namespaces).toBe('test');
    expect(info.build).toBe('7.0.0.0');
    expect(info.node).toBe(node.node);
    expect(info['partition-generation']).toBeGreaterThan(0);
    expect(info['namespace/test']).toMatchObject({ 'replication-factor': 1, 'storage-engine': 'memory' });
    expect(info['get-config:context=namespace;id=test']).toMatchObject({ 'nsup-period': 1, 'allow-ttl-without-nsup': 'true' });
    const raw = await client.infoAny('replicas\n');
    const bitmap = raw.split(',')[2]!.trim();
    expect(Buffer.from(bitmap, 'base64')).toEqual(Buffer.alloc(512, 0xff));
    expect(await codeOf(client.infoAny('no-such-command\n'))).not.toBe(status.OK);
  });

  it('lists each set with the records it holds (sets, sets/ns, sets/ns/set)', async () => {
    await each(7, (i) => client.put(key(i, 'setsA'), { i }));
    await each(3, (i) => client.put(key(i, 'setsB'), { i }));
    await client.remove(key(0, 'setsB'));
    const perSet = (text: string) => new Map(text.split(';').filter((entry) => entry.length > 0).map((entry) => {
      const fields = new Map(entry.split(':').map((pair) => pair.split('=') as [string, string]));
      return [`${fields.get('ns')}/${fields.get('set')}`, Number(fields.get('objects'))];
    }));
    for (const command of ['sets', 'sets/test']) {
      const sets = perSet((await client.infoAny(command)).split('\t')[1]!.trim());
      expect(sets.get('test/setsA'), command).toBe(7);
      expect(sets.get('test/setsB'), command).toBe(2);
    }
    expect([...perSet((await client.infoAny('sets/test/setsB')).split('\t')[1]!.trim())]).toEqual([['test/setsB', 2]]);
    expect((await client.infoAny('sets/nosuch')).split('\t')[1]!.trim()).toBe('ns_type=unknown');
  });
});
