/**
 * Model-based test of list and map operations: random operations (every list and map op,
 * random flags, return types, INVERTED, orders, values of every type) applied both to a Shoal
 * record and to the plain-JS reference in helpers/cdt-model.ts; after each one the result, the
 * error code and the stored bins must agree. Seeded (SHOAL_CDT_SEED replays a run; the seed is
 * printed), on memory and device namespaces.
 */
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ErrorCode, ShoalError, op, type Operation } from '../lib/index';
import * as M from './helpers/cdt-model';
import { CDT_KINDS, cdtKey, openCdtDb } from './helpers/cdt';
import { useDbCleanup } from './helpers/db';
import { seededFloats } from './helpers/random';

useDbCleanup(['cdt']);

const seed = Number(process.env.SHOAL_CDT_SEED ?? Date.now() % 1_000_000);
const STEPS = Number(process.env.SHOAL_CDT_STEPS ?? 700);

type Random = () => number;

function pick<T>(random: Random, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

function int(random: Random, low: number, high: number): number {
  return low + Math.floor(random() * (high - low + 1));
}

/** A value of a random type from a small domain, so that equal values meet often. */
function value(random: Random, depth = 0): unknown {
  const r = random();
  if (r < 0.35) return int(random, -3, 6);
  if (r < 0.45) return pick(random, ['a', 'b', 'ab', 'é', '']);
  if (r < 0.5) return pick(random, [1.5, -0.5, 2.25]);
  if (r < 0.55) return pick(random, [true, false]);
  if (r < 0.58) return null;
  if (r < 0.63) return Buffer.from([int(random, 0, 2)]);
  if (r < 0.65) return pick(random, [7n, -2n]);
  if (depth > 1 || r < 0.8) return int(random, 0, 3);
  if (r < 0.9) return [value(random, depth + 1), value(random, depth + 1)].slice(0, int(random, 0, 2));
  return random() < 0.5 ? { a: value(random, depth + 1) } : new Map([[int(random, 0, 2), value(random, depth + 1)]]);
}

function mapKey(random: Random): unknown {
  const r = random();
  if (r < 0.5) return int(random, -2, 6);
  if (r < 0.85) return pick(random, ['a', 'b', 'c', 'ab']);
  return Buffer.from([int(random, 0, 2)]);
}

function values(random: Random, make: () => unknown): unknown[] {
  return Array.from({ length: int(random, 0, 3) }, make);
}

const count = (random: Random) => (random() < 0.4 ? undefined : int(random, 0, 4));
const index = (random: Random) => int(random, -5, 6);

function returnType(random: Random, isMap: boolean): number {
  const base = isMap ? pick(random, [0, 1, 2, 3, 4, 5, 6, 7, 8, 13, 16, 17]) : pick(random, [0, 1, 2, 3, 4, 5, 7, 13, 7, 1, 3]);
  const invalid = !isMap && random() < 0.03 ? 6 : base;
  return random() < 0.2 ? invalid | M.RT.INVERTED : invalid;
}

const mv = (v: unknown) => M.fromPlain(v);

/** One random step: the Shoal operation and what the model says it does to the bin. */
interface Step {
  bin: string;
  operation: Operation;
  model: (bin: M.MV | undefined) => M.Step;
  describe: string;
}

function listStep(random: Random, bin: string): Step {
  const kind = int(random, 0, 11);
  const flags = random() < 0.5 ? 0 : int(random, 0, 15);
  const order = random() < 0.3 ? 1 : 0;
  switch (kind) {
    case 0: {
      const v = value(random);
      return { bin, operation: op.list.append(bin, v, { order, writeFlags: flags }), model: (b) => M.listAppend(b, [mv(v)], order, flags), describe: `append ${String(v)} o${order} f${flags}` };
    }
    case 1: {
      const vs = values(random, () => value(random));
      return { bin, operation: op.list.appendItems(bin, vs, { order, writeFlags: flags }), model: (b) => M.listAppend(b, vs.map(mv), order, flags), describe: `appendItems f${flags}` };
    }
    case 2: {
      const i = index(random);
      const v = value(random);
      return { bin, operation: op.list.insert(bin, i, v, { writeFlags: flags }), model: (b) => M.listInsert(b, i, [mv(v)], flags), describe: `insert ${i} f${flags}` };
    }
    case 3: {
      const i = index(random);
      const vs = values(random, () => value(random));
      return { bin, operation: op.list.insertItems(bin, i, vs, { writeFlags: flags }), model: (b) => M.listInsert(b, i, vs.map(mv), flags), describe: `insertItems ${i} f${flags}` };
    }
    case 4: {
      const i = index(random);
      const v = value(random);
      return { bin, operation: op.list.set(bin, i, v, { writeFlags: flags }), model: (b) => M.listSet(b, i, mv(v), flags), describe: `set ${i} f${flags}` };
    }
    case 5: {
      const i = index(random);
      const by = pick(random, [1, -2, 0.5, 3n, 10]);
      return { bin, operation: op.list.increment(bin, i, by, { order, writeFlags: flags }), model: (b) => M.listIncrement(b, i, by, order, flags), describe: `increment ${i} by ${by}` };
    }
    case 6: {
      const f = int(random, 0, 3);
      return { bin, operation: op.list.sort(bin, f), model: (b) => M.listSort(b, f), describe: `sort ${f}` };
    }
    case 7:
      return { bin, operation: op.list.setOrder(bin, order), model: (b) => M.listSetOrder(b, order), describe: `setOrder ${order}` };
    case 8:
      return random() < 0.5
        ? { bin, operation: op.list.clear(bin), model: M.listClear, describe: 'clear' }
        : { bin, operation: op.list.size(bin), model: M.listSize, describe: 'size' };
    default:
      return listSelectStep(random, bin);
  }
}

function listSelectStep(random: Random, bin: string): Step {
  const remove = random() < 0.5;
  const rt = returnType(random, false);
  const verb = remove ? 'remove' : 'get';
  const name = (by: string) => `${verb}By${by}` as keyof typeof op.list;
  const call = (by: string, ...args: unknown[]) => (op.list[name(by)] as (...a: unknown[]) => Operation)(bin, ...args);
  const sel = int(random, 0, 7);
  const model = (s: M.ListSelector, multi: boolean) => (b: M.MV | undefined) => M.listSelectOp(b, s, rt, remove, multi);
  switch (sel) {
    case 0: {
      const i = index(random);
      return { bin, operation: call('Index', i, rt), model: model({ by: 'index', index: i }, false), describe: `${verb}ByIndex ${i} rt${rt}` };
    }
    case 1: {
      const i = index(random);
      const c = count(random);
      return { bin, operation: call('IndexRange', i, c, rt), model: model({ by: 'index', index: i, count: c }, true), describe: `${verb}ByIndexRange ${i} ${c} rt${rt}` };
    }
    case 2: {
      const r = index(random);
      return { bin, operation: call('Rank', r, rt), model: model({ by: 'rank', rank: r }, false), describe: `${verb}ByRank ${r} rt${rt}` };
    }
    case 3: {
      const r = index(random);
      const c = count(random);
      return { bin, operation: call('RankRange', r, c, rt), model: model({ by: 'rank', rank: r, count: c }, true), describe: `${verb}ByRankRange ${r} ${c} rt${rt}` };
    }
    case 4: {
      const v = value(random);
      return { bin, operation: call('Value', v, rt), model: model({ by: 'value', value: mv(v) }, true), describe: `${verb}ByValue rt${rt}` };
    }
    case 5: {
      const vs = values(random, () => value(random));
      return { bin, operation: call('ValueList', vs, rt), model: model({ by: 'valueList', values: vs.map(mv) }, true), describe: `${verb}ByValueList rt${rt}` };
    }
    case 6: {
      const begin = value(random);
      const end = random() < 0.3 ? undefined : value(random);
      return { bin, operation: call('ValueRange', begin, end, rt), model: model({ by: 'valueRange', begin: mv(begin), end: end === undefined || end === null ? undefined : mv(end) }, true), describe: `${verb}ByValueRange rt${rt}` };
    }
    default: {
      const v = value(random);
      const r = index(random);
      const c = count(random);
      return { bin, operation: call('ValueRelRankRange', v, r, c, rt), model: model({ by: 'relRank', value: mv(v), rank: r, count: c }, true), describe: `${verb}ByValueRelRankRange ${r} ${c} rt${rt}` };
    }
  }
}

function mapStep(random: Random, bin: string): Step {
  const kind = int(random, 0, 8);
  const flags = random() < 0.5 ? 0 : int(random, 0, 15);
  const order = pick(random, [0, 0, 1, 3]);
  switch (kind) {
    case 0: {
      const k = mapKey(random);
      const v = value(random);
      return { bin, operation: op.map.put(bin, k, v, { order, writeFlags: flags }), model: (b) => M.mapPut(b, [[mv(k), mv(v)]], order, flags), describe: `put ${String(k)} o${order} f${flags}` };
    }
    case 1: {
      const items = new Map<unknown, unknown>();
      for (let i = int(random, 0, 3); i > 0; i--) {
        const k = mapKey(random);
        // Keys equal as values (a Buffer twice) may not repeat in one Map.
        if (![...items.keys()].some((x) => M.cmp(mv(x), mv(k)) === 0)) items.set(k, value(random));
      }
      const entries = [...items].map(([k, v]) => [mv(k), mv(v)] as [M.MV, M.MV]);
      return { bin, operation: op.map.putItems(bin, items, { order, writeFlags: flags }), model: (b) => M.mapPut(b, entries, order, flags), describe: `putItems f${flags}` };
    }
    case 2: {
      const k = mapKey(random);
      const by = pick(random, [1, -3, 0.5, 2n]);
      return { bin, operation: op.map.increment(bin, k, by, { order }), model: (b) => M.mapIncrement(b, mv(k), by, order), describe: `increment ${String(k)} by ${by}` };
    }
    case 3:
      return { bin, operation: op.map.setOrder(bin, order), model: (b) => M.mapSetOrder(b, order), describe: `setOrder ${order}` };
    case 4:
      return random() < 0.5 ? { bin, operation: op.map.clear(bin), model: M.mapClear, describe: 'clear' } : { bin, operation: op.map.size(bin), model: M.mapSize, describe: 'size' };
    default:
      return mapSelectStep(random, bin);
  }
}

function mapSelectStep(random: Random, bin: string): Step {
  const remove = random() < 0.5;
  const rt = returnType(random, true);
  const verb = remove ? 'remove' : 'get';
  const call = (by: string, ...args: unknown[]) => (op.map[`${verb}By${by}` as keyof typeof op.map] as (...a: unknown[]) => Operation)(bin, ...args);
  const model = (s: M.MapSelector) => (b: M.MV | undefined) => M.mapSelectOp(b, s, rt, remove);
  const describe = (by: string) => `${verb}By${by} rt${rt}`;
  switch (int(random, 0, 11)) {
    case 0: {
      const k = mapKey(random);
      return { bin, operation: call('Key', k, rt), model: model({ by: 'key', key: mv(k) }), describe: describe('Key') };
    }
    case 1: {
      const ks = values(random, () => mapKey(random));
      return { bin, operation: call('KeyList', ks, rt), model: model({ by: 'keyList', keys: ks.map(mv) }), describe: describe('KeyList') };
    }
    case 2: {
      const begin = mapKey(random);
      const end = random() < 0.3 ? undefined : mapKey(random);
      return { bin, operation: call('KeyRange', begin, end, rt), model: model({ by: 'keyRange', begin: mv(begin), end: end === undefined || end === null ? undefined : mv(end) }), describe: describe('KeyRange') };
    }
    case 3: {
      const k = mapKey(random);
      const i = index(random);
      const c = count(random);
      return { bin, operation: call('KeyRelIndexRange', k, i, c, rt), model: model({ by: 'keyRelIndex', key: mv(k), index: i, count: c }), describe: describe('KeyRelIndexRange') };
    }
    case 4: {
      const i = index(random);
      return { bin, operation: call('Index', i, rt), model: model({ by: 'index', index: i, multi: false }), describe: describe(`Index ${i}`) };
    }
    case 5: {
      const i = index(random);
      const c = count(random);
      return { bin, operation: call('IndexRange', i, c, rt), model: model({ by: 'index', index: i, count: c, multi: true }), describe: describe(`IndexRange ${i} ${c}`) };
    }
    case 6: {
      const v = value(random);
      return { bin, operation: call('Value', v, rt), model: model({ by: 'value', value: mv(v) }), describe: describe('Value') };
    }
    case 7: {
      const vs = values(random, () => value(random));
      return { bin, operation: call('ValueList', vs, rt), model: model({ by: 'valueList', values: vs.map(mv) }), describe: describe('ValueList') };
    }
    case 8: {
      const begin = value(random);
      const end = random() < 0.3 ? undefined : value(random);
      return { bin, operation: call('ValueRange', begin, end, rt), model: model({ by: 'valueRange', begin: mv(begin), end: end === undefined || end === null ? undefined : mv(end) }), describe: describe('ValueRange') };
    }
    case 9: {
      const r = index(random);
      return { bin, operation: call('Rank', r, rt), model: model({ by: 'rank', rank: r, multi: false }), describe: describe(`Rank ${r}`) };
    }
    case 10: {
      const r = index(random);
      const c = count(random);
      return { bin, operation: call('RankRange', r, c, rt), model: model({ by: 'rank', rank: r, count: c, multi: true }), describe: describe(`RankRange ${r} ${c}`) };
    }
    default: {
      const v = value(random);
      const r = index(random);
      const c = count(random);
      return { bin, operation: call('ValueRelRankRange', v, r, c, rt), model: model({ by: 'relRank', value: mv(v), rank: r, count: c }), describe: describe('ValueRelRankRange') };
    }
  }
}

describe(`list and map operations against a plain-JS model (seed ${seed}, SHOAL_CDT_SEED replays)`, () => {
  for (const kind of CDT_KINDS) {
    it(`${kind}: ${STEPS} random operations give the model's results, errors and bins`, async () => {
      console.log(`cdt-model seed ${seed} (${kind})`);
      const random = seededFloats(seed);
      const db = await openCdtDb(kind);
      const key = cdtKey('model');
      await db.put(key, { keep: 1 });
      const model = new Map<string, M.MV | undefined>([
        ['l1', undefined],
        ['l2', undefined],
        ['m1', undefined],
        ['m2', undefined],
      ]);
      const history: string[] = [];
      for (let step = 0; step < STEPS; step++) {
        const bin = pick(random, ['l1', 'l2', 'm1', 'm2']);
        if (random() < 0.01) {
          // Now and then the bin goes, so that operations create it again.
          await db.operate(key, [op.write(bin, null)]);
          model.set(bin, undefined);
          history.push(`${step}: ${bin} removed`);
          continue;
        }
        // Mostly the kind the bin holds; now and then (once it exists) the other kind: BIN_TYPE.
        const listBin = bin.startsWith('l') !== (model.get(bin) !== undefined && random() < 0.05);
        const { operation, model: apply, describe: what } = listBin ? listStep(random, bin) : mapStep(random, bin);
        history.push(`${step}: ${bin} ${what}`);
        let expected: M.Step | string;
        try {
          expected = apply(model.get(bin) === undefined ? undefined : M.copy(model.get(bin)!));
        } catch (error) {
          if (!(error instanceof M.ModelError)) throw error;
          expected = error.code;
        }
        let actual: unknown;
        try {
          actual = (await db.operate(key, [operation])).bins[bin];
        } catch (error) {
          if (!(error instanceof ShoalError)) throw error;
          actual = error.code;
        }
        const before = model.get(bin) === undefined ? 'missing' : inspect(M.toPlain(model.get(bin)!), { depth: 5 });
        const context = `${history.slice(-6).join('\n')}\nbin before: ${before}\npayload: ${(operation as { payload?: Buffer }).payload?.toString('hex')}`;
        if (typeof expected === 'string') {
          expect(actual, `${context}\nexpected the error ${expected}`).toBe(expected);
        } else {
          expect(actual, `${context}\nresult`).toEqual(expected.result);
          if (expected.value !== undefined) model.set(bin, expected.value);
        }
        const stored = (await db.get(key))!.bins;
        for (const [name, bin] of model) expect(stored[name], `${context}\nbin ${name}`).toEqual(bin === undefined ? undefined : M.toPlain(bin));
        expect(stored.keep).toBe(1);
      }
    });
  }
});

describe('the model itself', () => {
  it('orders values as Aerospike does across types', () => {
    const ordered = [null, false, true, -5, 3, 7n, '', 'a', 'é', [1], [1, 2], { a: 1 }, Buffer.from([0]), 0.5, 2.5];
    for (let i = 0; i + 1 < ordered.length; i++) expect(M.cmp(mv(ordered[i]), mv(ordered[i + 1])), `${i}`).toBeLessThan(0);
    expect(ErrorCode.OP_NOT_APPLICABLE).toBe('OP_NOT_APPLICABLE');
  });
});
