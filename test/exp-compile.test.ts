/**
 * Filter expressions: built with exp.*, compiled once, evaluated per record: bin reads of every
 * type, metadata, comparisons, logic, arithmetic (int64 wrapping), regular expressions,
 * cond / let / var, list and map reads; type errors refused at compile time, malformed bytes and
 * hostile nesting refused with INVALID_ARGUMENT; UNKNOWN for values of the wrong type at run time.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, ReturnType, RegexFlags, cdt, exp, ExpType } from '../lib/index';
import { fromUser } from '../lib/model/cdt/convert';
import type { CdtValue } from '../lib/model/cdt/value';
import { UNKNOWN, compileExpression, compileFilter, type ExpRecord } from '../lib/model/exp/compile';
import type { Expression } from '../lib/model/exp/expression';
import { cpuNowMs } from './helpers/cpu-time';

const NOW_MS = 1_700_000_000_000;

function record(bins: Record<string, unknown>, meta: Partial<ExpRecord> = {}): ExpRecord {
  const converted = new Map<string, CdtValue>(Object.entries(bins).map(([name, value]) => [name, fromUser(value, name, false)]));
  const digest = Buffer.alloc(20);
  digest.writeUInt32LE(1001, 16);
  return {
    bin: (name) => converted.get(name),
    voidTime: 0,
    lastUpdateMs: NOW_MS - 5000,
    setName: 'people',
    key: undefined,
    digest,
    recordBytes: 123,
    onDevice: false,
    inMemory: true,
    ...meta,
  };
}

const value = (expression: Expression, rec = record({})) => compileExpression(expression.toBytes(), false).evaluate(rec, NOW_MS);
const errorOf = (build: () => unknown) => {
  try {
    const built = build();
    compileExpression((built as Expression).toBytes(), false);
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
  return 'compiled';
};

const person = record({ name: 'Ada', age: 36, height: 1.72, admin: true, photo: Buffer.from([1, 2]), tags: ['b', 'a', 'c'], scores: { math: 9, art: 4 }, big: 2n ** 60n });

describe('bin reads and values', () => {
  it('reads bins of every type, and UNKNOWN for a missing bin or one of another type', () => {
    expect(value(exp.binStr('name'), person)).toBe('Ada');
    expect(value(exp.binInt('age'), person)).toBe(36);
    expect(value(exp.binFloat('height'), person)).toBe(1.72);
    expect(value(exp.binBool('admin'), person)).toBe(true);
    expect(Buffer.from(value(exp.binBlob('photo'), person) as Uint8Array)).toEqual(Buffer.from([1, 2]));
    expect(value(exp.lists.size(exp.binList('tags')), person)).toBe(3);
    expect(value(exp.maps.size(exp.binMap('scores')), person)).toBe(2);
    expect(value(exp.binInt('big'), person)).toBe(2n ** 60n);
    expect(value(exp.binInt('name'), person)).toBe(UNKNOWN);
    expect(value(exp.binInt('missing'), person)).toBe(UNKNOWN);
    expect(value(exp.binExists('name'), person)).toBe(true);
    expect(value(exp.binExists('missing'), person)).toBe(false);
    expect(value(exp.binType('tags'), person)).toBe(20);
    expect(value(exp.binType('height'), person)).toBe(2);
  });

  it('literals keep their type: 2.0 is a float, 2 an integer', () => {
    expect(value(exp.eq(exp.float(2), exp.float(2.0)))).toBe(true);
    expect(errorOf(() => exp.eq(exp.float(2), exp.int(2)))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(value(exp.eq(exp.list([1, 'a']), exp.list([1, 'a'])))).toBe(true);
    expect(value(exp.eq(exp.map({ a: 1 }), exp.map({ a: 1 })))).toBe(true);
    expect(value(exp.eq(exp.bytes(Buffer.from('x')), exp.bytes(Buffer.from('x'))))).toBe(true);
  });
});

describe('metadata', () => {
  const withKey = record({}, { key: 'user-7', voidTime: NOW_MS / 1000 + 100 });
  it('ttl, void time, last update, since update, set name, key, digest modulo, sizes', () => {
    expect(value(exp.ttl(), person)).toBe(-1);
    expect(value(exp.ttl(), withKey)).toBe(100);
    expect(value(exp.voidTime(), person)).toBe(-1);
    expect(value(exp.voidTime(), withKey)).toBe(BigInt(NOW_MS / 1000 + 100) * 1_000_000_000n);
    expect(value(exp.lastUpdate(), person)).toBe(BigInt(NOW_MS - 5000) * 1_000_000n);
    expect(value(exp.sinceUpdate(), person)).toBe(5000);
    expect(value(exp.setName(), person)).toBe('people');
    expect(value(exp.keyExist(), person)).toBe(false);
    expect(value(exp.keyExist(), withKey)).toBe(true);
    expect(value(exp.keyStr(), withKey)).toBe('user-7');
    expect(value(exp.keyInt(), withKey)).toBe(UNKNOWN);
    expect(value(exp.digestModulo(10), person)).toBe(1);
    expect(value(exp.recordSize(), person)).toBe(123);
    expect(value(exp.memorySize(), person)).toBe(123);
    expect(value(exp.deviceSize(), person)).toBe(0);
    expect(value(exp.isTombstone(), person)).toBe(false);
  });
});

describe('comparisons and logic', () => {
  it('compare values of one type, strings in UTF-8 order', () => {
    expect(value(exp.gt(exp.binInt('age'), 30), person)).toBe(true);
    expect(value(exp.le(exp.binFloat('height'), 1.5), person)).toBe(false);
    expect(value(exp.lt(exp.str('z'), exp.str('～')))).toBe(true);
    expect(value(exp.ne(exp.binStr('name'), 'Bob'), person)).toBe(true);
    expect(value(exp.ge(exp.binInt('big'), exp.int(2 ** 50)), person)).toBe(true);
    expect(errorOf(() => exp.eq(exp.binInt('age'), 'x'))).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it('and, or, not, exclusive with UNKNOWN: false wins an and, true an or', () => {
    const unknown = exp.eq(exp.binInt('missing'), 1);
    expect(value(exp.and(true, unknown), person)).toBe(UNKNOWN);
    expect(value(exp.and(false, unknown), person)).toBe(false);
    expect(value(exp.or(true, unknown), person)).toBe(true);
    expect(value(exp.or(false, unknown), person)).toBe(UNKNOWN);
    expect(value(exp.not(unknown), person)).toBe(UNKNOWN);
    expect(value(exp.exclusive(true, false, false))).toBe(true);
    expect(value(exp.exclusive(true, true))).toBe(false);
    expect(errorOf(() => exp.and(exp.int(1), true))).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it('regular expressions run in linear time: patterns that backtrack exponentially elsewhere answer at once', () => {
    // (a+)+$ on a run of a's and a mismatch takes 2^n steps in a backtracking engine (JS RegExp: seconds at n = 26).
    const text = record({ evil: `${'a'.repeat(26)}!` });
    for (const pattern of ['^(a+)+$', '^(a|aa)+$', '(a*)*b', '^(a|a?)+$']) {
      const started = cpuNowMs();
      expect(value(exp.cmpRegex(RegexFlags.EXTENDED, pattern, exp.binStr('evil')), text), pattern).toBe(false);
      // CPU time, which a loaded machine does not stretch: the backtracking engine took 9.6 s on the first pattern.
      expect(cpuNowMs() - started, pattern).toBeLessThan(500);
    }
    const long = record({ evil: 'x'.repeat(100_000) });
    const started = cpuNowMs();
    expect(value(exp.cmpRegex(0, 'x*x*x*x*x*x*x*x*y', exp.binStr('evil')), long)).toBe(false);
    expect(cpuNowMs() - started).toBeLessThan(1000);
  });

  it('regular expressions and inList', () => {
    expect(value(exp.cmpRegex(0, '^A.a$', exp.binStr('name')), person)).toBe(true);
    expect(value(exp.cmpRegex(2, '^ada$', exp.binStr('name')), person)).toBe(true);
    expect(value(exp.cmpRegex(0, '^ada$', exp.binStr('name')), person)).toBe(false);
    expect(errorOf(() => exp.cmpRegex(RegexFlags.EXTENDED, '(', exp.str('x')))).toBe(ErrorCode.INVALID_ARGUMENT);
    // Without EXTENDED the pattern is POSIX basic syntax, where ( is itself (exp-regex.test.ts).
    expect(value(exp.cmpRegex(RegexFlags.BASIC, '(', exp.str('x(')))).toBe(true);
    expect(value(exp.inList('a', exp.binList('tags')), person)).toBe(true);
    expect(value(exp.inList('z', exp.binList('tags')), person)).toBe(false);
  });
});

describe('arithmetic', () => {
  it('integers wrap at 64 bits, division by zero is UNKNOWN, floats stay floats', () => {
    expect(value(exp.add(1, 2, 3))).toBe(6);
    expect(value(exp.sub(10, 3))).toBe(7);
    expect(value(exp.sub(exp.int(5)))).toBe(-5);
    expect(value(exp.mul(exp.int(2n ** 62n), 4))).toBe(0);
    expect(value(exp.add(exp.int(2n ** 63n - 1n), 1))).toBe(-(2n ** 63n));
    expect(value(exp.div(7, 2))).toBe(3);
    expect(value(exp.div(-7, 2))).toBe(-3);
    expect(value(exp.div(7, 0))).toBe(UNKNOWN);
    expect(value(exp.mod(-7, 3))).toBe(-1);
    expect(value(exp.add(exp.float(0.5), exp.float(0.25)))).toBe(0.75);
    expect(value(exp.pow(exp.float(2), exp.float(10)))).toBe(1024);
    expect(value(exp.log(exp.float(8), exp.float(2)))).toBe(3);
    expect(value(exp.abs(-4))).toBe(4);
    expect(value(exp.floor(exp.float(1.7)))).toBe(1);
    expect(value(exp.ceil(exp.float(1.2)))).toBe(2);
    expect(value(exp.toInt(exp.float(-2.9)))).toBe(-2);
    expect(value(exp.toFloat(3))).toBe(3);
    expect(value(exp.min(4, 2, 9))).toBe(2);
    expect(value(exp.max(exp.float(1.5), exp.float(0.5)))).toBe(1.5);
    expect(errorOf(() => exp.add(1, exp.float(1.5)))).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it('integer bit operations', () => {
    expect(value(exp.intAnd(0b1100, 0b1010))).toBe(0b1000);
    expect(value(exp.intOr(0b1100, 0b1010))).toBe(0b1110);
    expect(value(exp.intXor(0b1100, 0b1010))).toBe(0b0110);
    expect(value(exp.intNot(0))).toBe(-1);
    expect(value(exp.intLshift(1, 4))).toBe(16);
    expect(value(exp.intRshift(-1, 60))).toBe(15);
    expect(value(exp.intArshift(-16, 2))).toBe(-4);
    expect(value(exp.intCount(0b1011))).toBe(3);
    expect(value(exp.intLscan(1, true))).toBe(63);
    expect(value(exp.intRscan(0b1000, true))).toBe(60);
    expect(value(exp.intLscan(0, true))).toBe(-1);
  });
});

describe('cond, let and var', () => {
  it('chooses, names values, and refuses unknown names', () => {
    const band = exp.cond(exp.lt(exp.binInt('age'), 18), 'minor', exp.lt(exp.binInt('age'), 65), 'adult', 'senior');
    expect(value(band, person)).toBe('adult');
    expect(value(exp.let(exp.def('x', exp.mul(exp.binInt('age'), 2)), exp.add(exp.var('x'), exp.var('x'))), person)).toBe(144);
    expect(errorOf(() => exp.var('nowhere'))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(errorOf(() => exp.cond(true, 1, 'x'))).toBe(ErrorCode.INVALID_ARGUMENT);
  });
});

describe('list and map reads', () => {
  it('list reads by index, rank, value and ranges, with contexts', () => {
    const tags = exp.binList('tags');
    expect(value(exp.lists.getByIndex(tags, 0, ExpType.STR), person)).toBe('b');
    expect(value(exp.lists.getByRank(tags, 0, ExpType.STR), person)).toBe('a');
    expect(value(exp.lists.getByValue(tags, 'c', ReturnType.INDEX), person)).toEqual(expect.objectContaining({ items: [2] }));
    expect(value(exp.lists.getByValueRange(tags, 'a', 'c', ReturnType.COUNT), person)).toBe(2);
    expect(value(exp.lists.getByIndexRange(tags, 1, undefined, ReturnType.COUNT), person)).toBe(2);
    expect(value(exp.lists.getByValueList(tags, exp.list(['a', 'z']), ReturnType.EXISTS), person)).toBe(true);
    const nested = record({ l: [[1, 2], [5, 6, 7]] });
    expect(value(exp.lists.size(exp.binList('l'), [cdt.listIndex(1)]), nested)).toBe(3);
    expect(value(exp.lists.getByValueRelRankRange(exp.binList('l'), 6, 0, undefined, ReturnType.COUNT, [cdt.listIndex(-1)]), nested)).toBe(2);
    // An index out of range is UNKNOWN, not an error.
    expect(value(exp.lists.getByIndex(tags, 9, ExpType.STR), person)).toBe(UNKNOWN);
    expect(value(exp.eq(exp.lists.getByIndex(exp.list([3, 1]), 0, ExpType.INT), 3))).toBe(true);
  });

  it('map reads by key, index, rank, value and ranges', () => {
    const scores = exp.binMap('scores');
    expect(value(exp.maps.getByKey(scores, 'math', ExpType.INT), person)).toBe(9);
    expect(value(exp.maps.getByIndex(scores, 0, ExpType.STR, ReturnType.KEY), person)).toBe('art');
    expect(value(exp.maps.getByRank(scores, -1, ExpType.STR, ReturnType.KEY), person)).toBe('math');
    expect(value(exp.maps.getByValueRange(scores, 5, undefined, ReturnType.COUNT), person)).toBe(1);
    expect(value(exp.maps.getByKeyRange(scores, 'a', 'b', ReturnType.COUNT), person)).toBe(1);
    expect(value(exp.maps.getByKeyList(scores, exp.list(['art', 'x']), ReturnType.COUNT), person)).toBe(1);
    expect(value(exp.maps.getByValue(scores, 4, ReturnType.EXISTS), person)).toBe(true);
    expect(value(exp.maps.getByKeyRelIndexRange(scores, 'b', 0, undefined, ReturnType.COUNT), person)).toBe(1);
    expect(value(exp.maps.getByValueRelRankRange(scores, 5, 0, 1, ReturnType.COUNT), person)).toBe(1);
    expect(value(exp.maps.getByIndexRange(scores, 0, 2, ReturnType.COUNT), person)).toBe(2);
    expect(value(exp.maps.getByRankRange(scores, 0, 1, ReturnType.COUNT), person)).toBe(1);
    expect(value(exp.maps.getByValueList(scores, exp.list([9]), ReturnType.COUNT), person)).toBe(1);
    // A list read on a map bin is UNKNOWN.
    expect(value(exp.lists.size(exp.binList('scores')), person)).toBe(UNKNOWN);
  });
});

describe('compiling', () => {
  it('compiles an expression once and reuses it', () => {
    const filter = exp.eq(exp.binInt('age'), 36);
    expect(compileFilter(filter)).toBe(compileFilter(filter));
    expect(compileFilter(filter).matches(person)).toBe(true);
    expect(compileFilter(exp.eq(exp.binInt('age'), 1)).matches(person)).toBe(false);
    expect(compileFilter(exp.eq(exp.binInt('none'), 1)).matches(person)).toBe(false);
  });

  it('refuses a filter that is not a boolean, malformed bytes, unknown codes and deep nesting', () => {
    expect(() => compileFilter(exp.binInt('age'))).toThrow(/boolean/);
    for (const bytes of [[], [0x90], [0x91, 0xcc, 0xff], [0x92, 0x01], [0x93, 0x01, 0x02], [0xc1], [0x92, 0x7f, 0x01]]) {
      expect(() => compileFilter(Buffer.from(bytes)), JSON.stringify(bytes)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    }
    // not(not(not(... 200 deep: refused before evaluation could exhaust the stack.
    const nots = Buffer.alloc(400);
    for (let i = 0; i < 200; i++) {
      nots[2 * i] = 0x92;
      nots[2 * i + 1] = 0x12;
    }
    expect(() => compileFilter(Buffer.concat([nots, Buffer.from([0xc3])]))).toThrow(/deeper/);
    expect(() => compileFilter('eq' as never)).toThrow(TypeError);
  });
});
