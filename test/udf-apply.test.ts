/**
 * Record UDFs through the official Aerospike client (docs/protocol.md, "User-defined
 * functions"): modules registered with udfRegister (udf-put, polled through udf-list), applied
 * with apply and batchApply, reading and writing bins atomically, returning every bin type,
 * failing with UDF_ERROR (100) and the Lua message, filtered out by expressions (the function
 * does not run), persisted across a restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Aerospike from 'aerospike';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ServedNode, clientConfig, serveNode, stopNode } from './helpers/service-server';
import { cleanupTempDirs, tempDir } from './helpers/temp';

const { status, exp } = Aerospike;

const RECORD_MODULE = `
function touch_bin(rec, bin, value)
  rec[bin] = value
  if aerospike:exists(rec) then aerospike:update(rec) else aerospike:create(rec) end
  return rec[bin]
end

function increment(rec, bin)
  rec[bin] = (rec[bin] or 0) + 1
  if aerospike:exists(rec) then aerospike:update(rec) else aerospike:create(rec) end
  return rec[bin]
end

function fail(rec, message)
  rec['never'] = 1
  aerospike:update(rec)
  error(message)
end

function metadata(rec)
  return map { gen = record.gen(rec), setname = record.setname(rec), digest = record.digest(rec), key = record.key(rec), exists = aerospike:exists(rec) }
end

function with_ttl(rec, ttl)
  rec['t'] = 1
  record.set_ttl(rec, ttl)
  aerospike:update(rec)
  return record.ttl(rec)
end

function values(rec)
  local m = map()
  m['a'] = 1
  m[2] = 'two'
  local b = bytes()
  bytes.append_string(b, 'hi')
  bytes.append_byte(b, 255)
  return list { 7, 1.5, 'text', b, list { 1, list { 2 } }, m, true, 9007199254740993 }
end

function list_and_map(rec)
  local l = rec['l']
  list.append(l, 4)
  list.insert(l, 1, 0)
  local m = rec['m']
  m['z'] = list.size(l)
  m['a'] = nil
  rec['l'] = l
  rec['m'] = m
  aerospike:update(rec)
  local keys = list()
  for k in map.keys(m) do list.append(keys, k) end
  return map.size(m)
end

function uncommitted(rec)
  rec['x'] = 'not written'
  return 'done'
end

function remove_me(rec)
  return aerospike:remove(rec)
end

function drop_bin(rec, bin)
  rec[bin] = nil
  aerospike:update(rec)
  return 0
end
`;

let node: ServedNode;
let client: Aerospike.Client;
const dataDir = tempDir('shoal-udf-apply-');
const modules = tempDir('shoal-udf-modules-');

async function register(name: string, source: string): Promise<void> {
  const file = path.join(modules, name);
  fs.writeFileSync(file, source);
  const job = await client.udfRegister(file);
  await job.wait(20);
}

async function codeOf(promise: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await promise;
    return { code: status.OK, message: '' };
  } catch (error) {
    return { code: (error as { code: number }).code, message: (error as Error).message };
  }
}

let keys = 0;
const key = () => new Aerospike.Key('test', 'udf', `k${keys++}`);
const udf = (funcname: string, args: unknown[] = []) => ({ module: 'records', funcname, args }) as Aerospike.UDF;

beforeAll(async () => {
  node = await serveNode({ dataDir });
  client = await Aerospike.connect(clientConfig(node));
  await register('records.lua', RECORD_MODULE);
}, 60_000);

afterAll(async () => {
  await client?.close();
  if (node !== undefined) await stopNode(node);
  cleanupTempDirs();
});

describe('registration', () => {
  it('udfRegister completes and udf-list and udf-get answer in Aerospike formats', async () => {
    const list = (await client.infoAny('udf-list')) as string;
    expect(list).toMatch(/udf-list\tfilename=records\.lua,hash=[0-9a-f]{40},type=LUA;/);
    const got = (await client.infoAny('udf-get:filename=records.lua')) as string;
    const content = /content=([^;]*);/.exec(got)![1]!;
    expect(Buffer.from(content, 'base64').toString()).toBe(RECORD_MODULE);
    expect(await codeOf(client.infoAny('udf-get:filename=nope.lua'))).toMatchObject({ code: status.ERR_UDF });
  });

  it('udfRemove removes a module, and removing one that is not registered is not an error', async () => {
    await register('gone.lua', 'function f(rec) return 1 end');
    await (await client.udfRemove('gone.lua')).wait(20);
    expect(await client.infoAny('udf-list')).not.toContain('gone.lua');
    await (await client.udfRemove('never-there.lua')).wait(20);
    const k = key();
    expect(await codeOf(client.apply(k, { module: 'gone', funcname: 'f' }))).toMatchObject({ code: status.ERR_UDF });
  });
});

describe('apply', () => {
  it('writes bins atomically and returns the function value', async () => {
    const k = key();
    await client.put(k, { a: 1 });
    expect(await client.apply(k, udf('touch_bin', ['b', 'hello']))).toBe('hello');
    const record = await client.get(k);
    expect(record.bins).toEqual({ a: 1, b: 'hello' });
    expect(record.gen).toBe(2);
  });

  it('creates a record that does not exist, and removes bins and records', async () => {
    const k = key();
    expect(await client.apply(k, udf('touch_bin', ['x', 5]))).toBe(5);
    expect((await client.get(k)).bins).toEqual({ x: 5 });
    await client.put(k, { y: 1 });
    await client.apply(k, udf('drop_bin', ['x']));
    expect((await client.get(k)).bins).toEqual({ y: 1 });
    expect(await client.apply(k, udf('remove_me'))).toBe(0);
    expect(await codeOf(client.get(k))).toMatchObject({ code: status.ERR_RECORD_NOT_FOUND });
  });

  it('changes nothing that was not committed with aerospike:update', async () => {
    const k = key();
    await client.put(k, { a: 1 });
    expect(await client.apply(k, udf('uncommitted'))).toBe('done');
    const record = await client.get(k);
    expect(record.bins).toEqual({ a: 1 });
    expect(record.gen).toBe(1);
  });

  it('returns every bin type', async () => {
    const value = (await client.apply(key(), udf('values'))) as unknown as unknown[];
    expect(value.slice(0, 3)).toEqual([7, 1.5, 'text']);
    expect(value[3]).toEqual(Buffer.from([0x68, 0x69, 0xff]));
    expect(value[4]).toEqual([1, [2]]);
    // The client reads every map as an object.
    expect(value[5]).toEqual({ a: 1, 2: 'two' });
    expect(value[6]).toBe(true);
    expect(value[7]).toBe(BigInt('9007199254740993'));
  });

  it('reads and changes lists and maps of the record', async () => {
    const k = key();
    await client.put(k, { l: [1, 2, 3], m: { a: 1, b: 2 } });
    expect(await client.apply(k, udf('list_and_map'))).toBe(2);
    expect((await client.get(k)).bins).toEqual({ l: [0, 1, 2, 3, 4], m: { b: 2, z: 5 } });
  });

  it('exposes the record metadata and applies record.set_ttl', async () => {
    const k = new Aerospike.Key('test', 'udf', 'meta-key');
    await client.put(k, { a: 1 }, undefined, new Aerospike.WritePolicy({ key: Aerospike.policy.key.SEND }));
    const meta = (await client.apply(k, udf('metadata'), new Aerospike.ApplyPolicy({ key: Aerospike.policy.key.SEND }))) as unknown as Record<string, unknown>;
    expect(meta).toMatchObject({ gen: 1, setname: 'udf', key: 'meta-key', exists: true });
    expect((meta.digest as Buffer).length).toBe(20);
    await client.apply(k, udf('with_ttl', [1000]));
    const ttl = (await client.get(k)).ttl;
    expect(ttl).toBeGreaterThan(990);
    expect(ttl).toBeLessThanOrEqual(1000);
  });

  it('answers a Lua error with UDF_ERROR and its message, and leaves the record as it was', async () => {
    const k = key();
    await client.put(k, { a: 1 });
    const failure = await codeOf(client.apply(k, udf('fail', ['it broke'])));
    expect(failure.code).toBe(status.ERR_UDF);
    expect(failure.message).toContain('it broke');
    const record = await client.get(k);
    expect(record.bins).toEqual({ a: 1 });
    expect(record.gen).toBe(1);
    expect(await codeOf(client.apply(k, udf('no_such_function')))).toMatchObject({ code: status.ERR_UDF });
  });

  it('is atomic under concurrent applies to one record', async () => {
    const k = key();
    const count = 24;
    const results = await Promise.all(Array.from({ length: count }, () => client.apply(k, udf('increment', ['n']))));
    expect((await client.get(k)).bins).toEqual({ n: count });
    expect([...(results as unknown as number[])].sort((a, b) => a - b)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
  });
});

describe('filters', () => {
  it('a filtered-out apply is FILTERED_OUT and does not run', async () => {
    const k = key();
    await client.put(k, { a: 1 });
    const policy = new Aerospike.ApplyPolicy({ filterExpression: exp.eq(exp.binInt('a'), exp.int(2)) });
    expect(await codeOf(client.apply(k, udf('touch_bin', ['b', 1]), policy))).toMatchObject({ code: status.FILTERED_OUT });
    expect((await client.get(k)).bins).toEqual({ a: 1 });
  });

  it('batchApply: rows the filter rejects are FILTERED_OUT and unchanged, the others run', async () => {
    const batch = [key(), key(), key(), key()];
    await Promise.all(batch.map((k, i) => client.put(k, { i })));
    const policy = new Aerospike.BatchApplyPolicy({ filterExpression: exp.ge(exp.binInt('i'), exp.int(2)) });
    const results = await client.batchApply(batch, udf('touch_bin', ['done', true]), undefined, policy);
    expect(results.map((result) => result.status)).toEqual([status.FILTERED_OUT, status.FILTERED_OUT, status.OK, status.OK]);
    expect(results[2]!.record.bins).toEqual({ SUCCESS: true });
    const after = await Promise.all(batch.map((k) => client.get(k)));
    expect(after.map((record) => record.bins.done)).toEqual([undefined, undefined, true, true]);
  });
});

describe('persistence', () => {
  it('modules survive a restart', async () => {
    await client.close();
    await stopNode(node);
    node = await serveNode({ dataDir });
    client = await Aerospike.connect(clientConfig(node));
    expect(await client.infoAny('udf-list')).toContain('filename=records.lua');
    expect(await client.apply(key(), udf('touch_bin', ['r', 1]))).toBe(1);
  }, 60_000);
});

describe('durability', () => {
  it('every acknowledged UDF write on a commitToDevice namespace survives kill -9', async () => {
    const deviceDir = tempDir('shoal-udf-durable-');
    const namespaces = [{ name: 'test', storage: { type: 'device', paths: ['test.dat'], sizeBytes: 16 << 20, writeBlockBytes: 1 << 17, commitToDevice: true }, maxRecordBytes: 64 << 10 }];
    let durable = await serveNode({ dataDir: deviceDir, namespaces });
    let durableClient = await Aerospike.connect(clientConfig(durable));
    try {
      const file = path.join(modules, 'durable.lua');
      fs.writeFileSync(file, 'function bump(rec)\n  rec.n = (rec.n or 0) + 1\n  if aerospike:exists(rec) then aerospike:update(rec) else aerospike:create(rec) end\n  return rec.n\nend\n');
      await (await durableClient.udfRegister(file)).wait(20);
      const keys = Array.from({ length: 20 }, (_, i) => new Aerospike.Key('test', 'durable', `d${i}`));
      const acknowledged = new Map<string, number>();
      for (let round = 0; round < 3; round++) {
        for (const k of keys) acknowledged.set(k.key as string, (await durableClient.apply(k, { module: 'durable', funcname: 'bump' })) as unknown as number);
      }
      durable.child.kill('SIGKILL');
      await durable.exited;
      await durableClient.close();
      durable = await serveNode({ dataDir: deviceDir, namespaces });
      durableClient = await Aerospike.connect(clientConfig(durable));
      for (const k of keys) expect((await durableClient.get(k)).bins.n).toBe(acknowledged.get(k.key as string));
      expect(await durableClient.apply(keys[0]!, { module: 'durable', funcname: 'bump' })).toBe(4);
    } finally {
      await durableClient.close();
      await stopNode(durable);
    }
  }, 90_000);
});
