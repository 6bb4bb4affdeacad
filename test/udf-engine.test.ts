/**
 * The Lua engine of record UDFs on its own (lib/udf/engine.ts, in this thread): Aerospike's
 * list, map and bytes functions as the prelude defines them, values crossing both ways with
 * their types, the record's cache and commit rules, and require of registered modules.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { UdfEngine, UdfRecordInput } from '../lib/udf/engine';

let engine: UdfEngine;

const record: UdfRecordInput = { exists: true, bins: { i: 1, s: 'é', b: Buffer.from([1, 2]), l: [1, [2]], m: { a: 1 }, im: new Map([[1, 'x']]) }, gen: 3, ttl: 0, lastUpdate: 0, digest: Buffer.alloc(20, 9), set: 'set', key: 'k' };

function run(body: string, args: unknown[] = []): unknown {
  engine.setSources([['t.lua', `function f(rec, ...)\n${body}\nend\nreturn nil`], ['helper.lua', 'return { x = 7 }']]);
  const outcome = engine.apply({ module: 't.lua', function: 'f', args: args as never[], record });
  if (!outcome.ok) throw new Error(outcome.message);
  return outcome;
}

const value = (body: string, args: unknown[] = []) => (run(body, args) as { value: unknown }).value;

beforeAll(async () => {
  engine = await UdfEngine.create();
});

describe('values', () => {
  it('reads every bin type of the record with its Lua type', () => {
    expect(value("return list{ math.type(rec.i), type(rec.s), #rec.s, bytes.size(rec.b), rec.b[2], list.size(rec.l), rec.l[2][1], rec.m.a, rec.im[1], rec.none == nil }")).toEqual(['integer', 'string', 2, 2, 2, 2, 2, 1, 'x', true]);
  });

  it('returns integers, bigints, doubles, strings, bytes, booleans, nil, lists and maps', () => {
    expect(value('return list{ 1, 2^62 // 1 | 0, 0.5, "é", bytes(), false, list{}, map{ a = 1 } }')).toEqual([1, 2n ** 62n, 0.5, 'é', Buffer.alloc(0), false, [], { a: 1 }]);
    expect(value('local l = list() l[2] = 1 return l')).toEqual([null, 1]);
    expect(value('return nil')).toBe(null);
    expect(value('return { 1, 2, 3 }')).toEqual([1, 2, 3]);
    expect(value('return { x = 1 }')).toEqual({ x: 1 });
    expect(value('return function() end')).toBe(null);
    expect(value('local m = map() m[1] = "a" m[2] = "b" return m')).toEqual(new Map([[1, 'a'], [2, 'b']]));
  });

  it('passes arguments of every type', () => {
    expect(value('local a, b, c, d = ... return list{ a, b[2], c.k, d }', [5, [1, 2], { k: 'v' }, Buffer.from('z')])).toEqual([5, 2, 'v', Buffer.from('z')]);
  });
});

describe('list, map and bytes functions', () => {
  it('list', () => {
    expect(value('local l = list{1, 2, 3} list.append(l, 4) list.prepend(l, 0) list.insert(l, 3, 9) list.remove(l, 1) return l')).toEqual([1, 9, 2, 3, 4]);
    expect(value('local l = list{1, 2, 3, 4} return list{ list.take(l, 2), list.drop(l, 3), list.merge(l, list{5}), list.size(l) }')).toEqual([[1, 2], [4], [1, 2, 3, 4, 5], 4]);
    expect(value('local l = list{1, 2, 3} list.trim(l, 2) local sum = 0 for v in list.iterator(l) do sum = sum + v end return list{ l, sum, #l }')).toEqual([[1], 1, 1]);
    expect(value('local l = list() l[3] = "c" return list{ list.size(l), l[1] == nil }')).toEqual([3, true]);
  });

  it('map', () => {
    expect(value('local m = map{ a = 1, b = 2 } m.c = 3 m.a = nil map.remove(m, "b") return m')).toEqual({ c: 3 });
    expect(value('local m = map{ a = 1, b = 2 } local n = 0 for k, v in map.pairs(m) do n = n + v end return list{ n, map.size(m), #m }')).toEqual([3, 2, 2]);
    expect(value('return map.merge(map{ a = 1 }, map{ a = 2, b = 3 }, function(x, y) return x + y end)')).toEqual({ a: 3, b: 3 });
    expect(value('local k = bytes() bytes.append_string(k, "key") local m = map() m[k] = 1 local k2 = bytes() bytes.append_string(k2, "key") return m[k2]')).toBe(1);
  });

  it('bytes', () => {
    expect(value('local b = bytes() bytes.append_int16_be(b, 258) bytes.append_int32_le(b, 1) bytes.set_byte(b, 1, 9) return list{ b, bytes.get_int32_le(b, 3), bytes.get_int16(b, 1), #b }')).toEqual([Buffer.from([9, 2, 1, 0, 0, 0]), 1, 0x0902, 6]);
    expect(value('local b = bytes() bytes.append_string(b, "hello") return list{ bytes.get_string(b, 2, 3), bytes.get_bytes(b, 1, 2) }')).toEqual(['ell', Buffer.from('he')]);
  });
});

describe('the record', () => {
  it('writes only what aerospike:update committed, copied at commit', () => {
    const outcome = run('rec.x = 1 aerospike:update(rec) rec.y = 2 local l = list{1} rec.z = l aerospike:update(rec) list.append(l, 2) return 0') as { updated: boolean; changes: [string, unknown][] };
    expect(outcome.updated).toBe(true);
    expect(Object.fromEntries(outcome.changes)).toEqual({ x: 1, y: 2, z: [1] });
    expect((run('rec.x = 1 return 0') as { updated: boolean }).updated).toBe(false);
  });

  it('answers metadata, create on an existing record, remove', () => {
    expect(value('return list{ record.gen(rec), record.setname(rec), record.key(rec), bytes.size(record.digest(rec)), aerospike:create(rec), record.numbins(rec) }')).toEqual([3, 'set', 'k', 20, 1, 6]);
    const removed = run('return aerospike:remove(rec)') as { value: unknown; changes: [string, unknown][] };
    expect(removed.value).toBe(0);
    expect(removed.changes.map(([name, bin]) => [name, bin]).sort()).toEqual(Object.keys(record.bins).map((name) => [name, null]).sort());
  });

  it('record.set_ttl is returned with the outcome', () => {
    expect((run('record.set_ttl(rec, 60) aerospike:update(rec)') as { ttl: number }).ttl).toBe(60);
  });

  it('require loads registered modules only', () => {
    expect(value('return require("helper").x')).toBe(7);
    expect(() => run('return require("nothere")')).toThrow(/not a registered UDF module/);
  });
});
