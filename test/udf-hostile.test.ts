/**
 * Hostile and careless UDF modules (docs/protocol.md, "User-defined functions", bounds): an
 * endless loop, one that catches the timeout with pcall, a memory hog, a pattern match that
 * never returns to Lua, endless recursion, sandbox escapes, modules that do not compile or
 * whose top level never ends. Each call fails with UDF_ERROR (100) and a clear message; the
 * node stays up, a plain get sent alongside answers promptly, and the next call works.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Aerospike from 'aerospike';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { ServedNode, clientConfig, serveNode, stopNode } from './helpers/service-server';
import { cleanupTempDirs, tempDir } from './helpers/temp';

const { status } = Aerospike;

const HOSTILE = `
function spin(rec) while true do end end
function swallow(rec)
  while true do pcall(function() while true do end end) end
end
function hog(rec)
  local t, s = {}, string.rep('x', 1 << 20)
  for i = 1, 100000 do t[i] = s .. i end
end
function huge(rec) return string.rep('x', 1 << 40) end
function stuck(rec) return string.find(string.rep('a', 20000), string.rep('a*', 30) .. 'b') end
function recurse(rec) return recurse(rec) + 1 end
function deep(rec)
  local l = list()
  local top = l
  for i = 1, 200 do local inner = list() list.append(l, inner) l = inner end
  return top
end
function escape(rec)
  local found = list()
  for _, name in ipairs({ 'io', 'os', 'package', 'load', 'loadstring', 'dofile', 'loadfile', 'print' }) do
    if _G[name] ~= nil then list.append(found, name) end
  end
  -- debug is Aerospike's log function here, not Lua's debug library.
  if type(debug) ~= 'function' then list.append(found, 'debug library') end
  if string.dump ~= nil then list.append(found, 'string.dump') end
  if pcall(require, 'os') then list.append(found, 'require os') end
  if pcall(function() getmetatable(list()).__index = nil end) then list.append(found, 'list metatable') end
  if pcall(collectgarbage, 'stop') then list.append(found, 'collectgarbage stop') end
  return found
end
function uses_helper(rec) return require('helper').twice(21) end
function ok(rec) return 'fine' end
`;

let node: ServedNode;
let client: Aerospike.Client;
const modules = tempDir('shoal-udf-hostile-modules-');

async function register(name: string, source: string): Promise<void> {
  const file = path.join(modules, name);
  fs.writeFileSync(file, source);
  await (await client.udfRegister(file)).wait(20);
}

async function failureOf(promise: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await promise;
    return { code: status.OK, message: '' };
  } catch (error) {
    return { code: (error as { code: number }).code, message: (error as Error).message };
  }
}

async function statistics(): Promise<Record<string, string>> {
  const line = (await client.infoAny('statistics')) as string;
  return Object.fromEntries(line.split('\t')[1]!.trim().split(';').map((pair) => pair.split('=') as [string, string]));
}

/** One info command over a raw socket (the client refuses long info requests itself). */
function rawInfo(command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const body = Buffer.from(`${command}\n`);
    const header = Buffer.alloc(8);
    header.writeUInt16BE(0x0201, 0);
    header.writeUIntBE(body.length, 2, 6);
    const socket = net.connect(node.port, node.host, () => socket.write(Buffer.concat([header, body])));
    let reply = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      reply = Buffer.concat([reply, chunk]);
      if (reply.length >= 8 && reply.length >= 8 + reply.readUIntBE(2, 6)) {
        socket.destroy();
        resolve(reply.subarray(8).toString());
      }
    });
    socket.on('error', reject);
  });
}

const target = new Aerospike.Key('test', 'hostile', 'target');
const probe = new Aerospike.Key('test', 'hostile', 'probe');
const apply = (funcname: string) => client.apply(target, { module: 'hostile', funcname }, new Aerospike.ApplyPolicy({ totalTimeout: 10_000 }));

/** Runs a hostile call while timing a plain get sent alongside it. */
async function withProbe(funcname: string): Promise<{ failure: { code: number; message: string }; probeMs: number }> {
  const call = failureOf(apply(funcname));
  const started = performance.now();
  await client.get(probe);
  const probeMs = performance.now() - started;
  return { failure: await call, probeMs };
}

beforeAll(async () => {
  node = await serveNode();
  client = await Aerospike.connect(clientConfig(node));
  await register('helper.lua', 'local helper = {}\nfunction helper.twice(x) return 2 * x end\nreturn helper');
  await register('hostile.lua', HOSTILE);
  await client.put(target, { a: 1 });
  await client.put(probe, { p: 1 });
}, 60_000);

afterAll(async () => {
  await client?.close();
  if (node !== undefined) await stopNode(node);
  cleanupTempDirs();
});

describe('calls that never end', () => {
  it('an endless loop fails with "UDF Execution Timeout" by the instruction budget; a get alongside answers promptly', async () => {
    const { failure, probeMs } = await withProbe('spin');
    expect(failure).toMatchObject({ code: status.ERR_UDF });
    expect(failure.message).toContain('UDF Execution Timeout');
    expect(probeMs).toBeLessThan(1000);
    expect((await statistics()).udf_worker_deadlines).toBe('0');
    expect(await apply('ok')).toBe('fine');
  });

  it('a loop that catches the timeout with pcall is stopped all the same, without ending the worker', async () => {
    const failure = await failureOf(apply('swallow'));
    expect(failure).toMatchObject({ code: status.ERR_UDF });
    expect(failure.message).toContain('UDF Execution Timeout');
    expect((await statistics()).udf_worker_deadlines).toBe('0');
  });

  it('a pattern match that never returns to Lua ends the worker at its deadline; the node answers meanwhile and runs the next call', async () => {
    const { failure, probeMs } = await withProbe('stuck');
    expect(failure).toMatchObject({ code: status.ERR_UDF });
    expect(failure.message).toContain('UDF Execution Timeout');
    expect(probeMs).toBeLessThan(1000);
    expect((await statistics()).udf_worker_deadlines).toBe('1');
    expect(await apply('ok')).toBe('fine');
  }, 30_000);

  it('endless recursion fails (stack, memory or time, whichever bound it meets first) and the next call works', async () => {
    const failure = await failureOf(apply('recurse'));
    expect(failure).toMatchObject({ code: status.ERR_UDF });
    expect(failure.message).toMatch(/stack overflow|not enough memory|UDF Execution Timeout/);
    expect(await apply('ok')).toBe('fine');
  });
});

describe('memory', () => {
  it('a memory hog fails with "not enough memory" and the next call works', async () => {
    const failure = await failureOf(apply('hog'));
    expect(failure).toMatchObject({ code: status.ERR_UDF });
    expect(failure.message).toMatch(/not enough memory/);
    expect((await failureOf(apply('huge'))).message).toMatch(/not enough memory|too large/);
    expect(await apply('ok')).toBe('fine');
  });

  it('a value nested past the depth bound is refused', async () => {
    const failure = await failureOf(apply('deep'));
    expect(failure).toMatchObject({ code: status.ERR_UDF });
    expect(failure.message).toMatch(/deeper than 64/);
  });
});

describe('the sandbox', () => {
  it('offers no io, os, debug, package, load, string.dump; require loads registered modules only; the value metatables are protected', async () => {
    expect(await apply('escape')).toEqual([]);
    expect(await apply('uses_helper')).toBe(42);
  });
});

describe('registration', () => {
  it('a module that does not compile is refused with its line, and is not listed', async () => {
    const file = path.join(modules, 'broken.lua');
    fs.writeFileSync(file, 'function ok(rec)\n  return 1\nend\nfunction broken(rec\n  return 2\nend\n');
    const failure = await failureOf(client.udfRegister(file));
    expect(failure.code).toBe(status.ERR_UDF);
    expect(failure.message).toMatch(/compile_error;file=broken\.lua;line=5/);
    expect(await client.infoAny('udf-list')).not.toContain('broken.lua');
  });

  it('a module whose top level never ends is refused', async () => {
    const file = path.join(modules, 'forever.lua');
    fs.writeFileSync(file, 'while true do end');
    const failure = await failureOf(client.udfRegister(file));
    expect(failure.code).toBe(status.ERR_UDF);
    expect(await client.infoAny('udf-list')).not.toContain('forever.lua');
  });

  it('a module above the size bound, a bad name and a bad type are refused', async () => {
    const big = Buffer.alloc(600 << 10, 0x20).toString('base64');
    expect(await rawInfo(`udf-put:filename=big.lua;content=${big};content-len=${big.length};udf-type=LUA;`)).toMatch(/\terror=invalid_udf_content_len/);
    const small = Buffer.from('return 1').toString('base64');
    expect((await failureOf(client.infoAny(`udf-put:filename=noext;content=${small};content-len=${small.length};udf-type=LUA;`))).message).toMatch(/invalid_filename/);
    expect((await failureOf(client.infoAny(`udf-put:filename=a.lua;content=${small};content-len=${small.length};udf-type=PYTHON;`))).message).toMatch(/invalid_udf_type/);
    expect((await failureOf(client.infoAny(`udf-put:filename=../x.lua;content=${small};content-len=${small.length};udf-type=LUA;`))).code).toBe(status.ERR_UDF);
    expect(await client.infoAny('udf-list')).not.toMatch(/big\.lua|noext|x\.lua/);
  });
});
