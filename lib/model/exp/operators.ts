/**
 * The operator table of the expression compiler (compile.ts): for each op code, its compiler.
 * Comparisons, logic, arithmetic and bit operations and record metadata are built here; the
 * special forms (bins, keys, control flow, variables, regex, geo, list/map calls) are in
 * special-forms.ts.
 */
import { invalidArgument } from '../../errors';
import { ANY, ExpCode, ExpType } from './codes';
import {
  compileBin,
  compileBinType,
  compileCall,
  compileCond,
  compileDigestModulo,
  compileGeo,
  compileInList,
  compileKey,
  compileLet,
  compileQuote,
  compileRegex,
  compileVar,
} from './special-forms';
import {
  argCount,
  big,
  compareTyped,
  evaluateAll,
  expectType,
  int64,
  isIntegerValue,
  ofType,
  typeError,
  typeName,
  UNKNOWN,
  type Compiled,
  type Compiler,
  type Runtime,
  type Value,
} from './typing';

function comparison(name: string, test: (order: number) => boolean): Compiler {
  return (args, scope) => {
    argCount(args, name, 2);
    const left = scope.compile(args[0]!);
    const right = scope.compile(args[1]!);
    if (left.type !== ANY && right.type !== ANY && left.type !== right.type) throw typeError(`${name} compares ${typeName(left.type)} with ${typeName(right.type)}`);
    return {
      type: ExpType.BOOL,
      run: (rt) => {
        const a = left.run(rt);
        if (a === UNKNOWN) return UNKNOWN;
        const b = right.run(rt);
        if (b === UNKNOWN) return UNKNOWN;
        return test(compareTyped(a, b));
      },
    };
  };
}

function logical(name: string, combine: (values: boolean[]) => boolean, decides: (value: boolean) => boolean): Compiler {
  return (args, scope) => {
    if (args.length < 1) throw invalidArgument(`${name} needs at least one argument`);
    const parts = args.map((arg, i) => {
      const compiled = scope.compile(arg);
      expectType(compiled, [ExpType.BOOL], name, i);
      return compiled;
    });
    return {
      type: ExpType.BOOL,
      run: (rt) => {
        let unknown = false;
        const values: boolean[] = [];
        for (const part of parts) {
          const value = ofType(part.run(rt), ExpType.BOOL);
          if (value === UNKNOWN) unknown = true;
          else if (decides(value as boolean)) return value;
          else values.push(value as boolean);
        }
        return unknown ? UNKNOWN : combine(values);
      },
    };
  };
}

/** Arguments all of one numeric type (or of `only`). */
function sameNumericType(parts: Compiled[], name: string, only?: number): number {
  let type = ANY;
  parts.forEach((part, i) => {
    expectType(part, only === undefined ? [ExpType.INT, ExpType.FLOAT] : [only], name, i);
    if (part.type === ANY) return;
    if (type !== ANY && part.type !== type) throw typeError(`${name} mixes ${typeName(type)} and ${typeName(part.type)}`);
    type = part.type;
  });
  return type;
}

/** add, sub, mul, div, min, max and the integer bit operations over any number of arguments. */
function varargs(name: string, minimum: number, only: number | undefined, apply: (values: Value[], float: boolean) => Value): Compiler {
  return (args, scope) => {
    if (args.length < minimum) throw invalidArgument(`${name} needs at least ${minimum} argument${minimum === 1 ? '' : 's'}`);
    const parts = args.map((arg) => scope.compile(arg));
    const type = sameNumericType(parts, name, only);
    return {
      type,
      run: (rt) => {
        const values = evaluateAll(parts, rt);
        if (values === UNKNOWN) return UNKNOWN;
        const float = values.some((value) => typeof value === 'number' && !Number.isInteger(value)) || type === ExpType.FLOAT;
        if (type === ANY && values.some((value) => typeof value !== 'number' && typeof value !== 'bigint')) return UNKNOWN;
        return apply(values, float);
      },
    };
  };
}

function fixed(name: string, types: number[][], result: (types: number[]) => number, apply: (values: Value[]) => Value): Compiler {
  return (args, scope) => {
    argCount(args, name, types.length);
    const parts = args.map((arg, i) => {
      const compiled = scope.compile(arg);
      expectType(compiled, types[i]!, name, i);
      return compiled;
    });
    return {
      type: result(parts.map((part) => part.type)),
      run: (rt) => {
        const values = evaluateAll(parts, rt);
        if (values === UNKNOWN) return UNKNOWN;
        for (let i = 0; i < values.length; i++) if (!types[i]!.some((type) => ofType(values[i], type) !== UNKNOWN)) return UNKNOWN;
        return apply(values);
      },
    };
  };
}

function metadata(type: number, read: (rt: Runtime) => Value): Compiler {
  return (args) => {
    argCount(args, 'metadata', 0);
    return { type, run: read };
  };
}

const INT = [ExpType.INT];
const FLOAT = [ExpType.FLOAT];
const NUMBER = [ExpType.INT, ExpType.FLOAT];

const integerResult = () => ExpType.INT;
const floatResult = () => ExpType.FLOAT;

function bitScan(value: bigint, set: boolean, fromMostSignificant: boolean): number {
  const bits = BigInt.asUintN(64, set ? value : ~value);
  if (bits === 0n) return -1;
  if (fromMostSignificant) return 63 - (bits.toString(2).length - 1);
  let position = 63;
  let rest = bits;
  while ((rest & 1n) === 0n) {
    rest >>= 1n;
    position--;
  }
  return position;
}

export const COMPILERS = new Map<number, Compiler>([
  [ExpCode.UNKNOWN, (args) => {
    argCount(args, 'unknown', 0);
    return { type: ANY, run: () => UNKNOWN };
  }],
  [ExpCode.CMP_EQ, comparison('eq', (order) => order === 0)],
  [ExpCode.CMP_NE, comparison('ne', (order) => order !== 0)],
  [ExpCode.CMP_GT, comparison('gt', (order) => order > 0)],
  [ExpCode.CMP_GE, comparison('ge', (order) => order >= 0)],
  [ExpCode.CMP_LT, comparison('lt', (order) => order < 0)],
  [ExpCode.CMP_LE, comparison('le', (order) => order <= 0)],
  [ExpCode.CMP_REGEX, compileRegex],
  [ExpCode.CMP_GEO, compileGeo],
  [ExpCode.IN_LIST, compileInList],
  [ExpCode.AND, logical('and', () => true, (value) => !value)],
  [ExpCode.OR, logical('or', () => false, (value) => value)],
  [ExpCode.EXCLUSIVE, logical('exclusive', (values) => values.filter(Boolean).length === 1, () => false)],
  [ExpCode.NOT, fixed('not', [[ExpType.BOOL]], () => ExpType.BOOL, ([value]) => !value)],
  [ExpCode.ADD, varargs('add', 1, undefined, (values, float) => (float ? values.reduce<number>((sum, v) => sum + Number(v), 0) : int64(values.reduce<bigint>((sum, v) => sum + big(v), 0n))))],
  [ExpCode.SUB, varargs('sub', 1, undefined, (values, float) => {
    if (values.length === 1) return float ? -Number(values[0]) : int64(-big(values[0]));
    return float ? values.slice(1).reduce<number>((rest, v) => rest - Number(v), Number(values[0])) : int64(values.slice(1).reduce<bigint>((rest, v) => rest - big(v), big(values[0])));
  })],
  [ExpCode.MUL, varargs('mul', 1, undefined, (values, float) => (float ? values.reduce<number>((product, v) => product * Number(v), 1) : int64(values.reduce<bigint>((product, v) => product * big(v), 1n))))],
  [ExpCode.DIV, varargs('div', 1, undefined, (values, float) => {
    const operands = values.length === 1 ? [float ? 1 : 1n, values[0]] : values;
    if (float) return operands.slice(1).reduce<number>((quotient, v) => quotient / Number(v), Number(operands[0]));
    let quotient = big(operands[0]);
    for (const divisor of operands.slice(1)) {
      if (big(divisor) === 0n) return UNKNOWN;
      quotient /= big(divisor);
    }
    return int64(quotient);
  })],
  [ExpCode.POW, fixed('pow', [FLOAT, FLOAT], floatResult, ([a, b]) => Number(a) ** Number(b))],
  [ExpCode.LOG, fixed('log', [FLOAT, FLOAT], floatResult, ([a, b]) => Math.log(Number(a)) / Math.log(Number(b)))],
  [ExpCode.MOD, fixed('mod', [INT, INT], integerResult, ([a, b]) => (big(b) === 0n ? UNKNOWN : int64(big(a) % big(b))))],
  [ExpCode.ABS, fixed('abs', [NUMBER], ([type]) => type!, ([a]) => (isIntegerValue(a) ? int64(big(a) < 0n ? -big(a) : big(a)) : Math.abs(a as number)))],
  [ExpCode.FLOOR, fixed('floor', [FLOAT], floatResult, ([a]) => Math.floor(Number(a)))],
  [ExpCode.CEIL, fixed('ceil', [FLOAT], floatResult, ([a]) => Math.ceil(Number(a)))],
  [ExpCode.TO_INT, fixed('toInt', [FLOAT], integerResult, ([a]) => int64(BigInt(Math.trunc(Math.max(-(2 ** 63), Math.min(2 ** 63 - 1, Number(a)))))))],
  [ExpCode.TO_FLOAT, fixed('toFloat', [INT], floatResult, ([a]) => Number(a))],
  [ExpCode.INT_AND, varargs('intAnd', 1, ExpType.INT, (values) => int64(values.reduce<bigint>((all, v) => all & big(v), -1n)))],
  [ExpCode.INT_OR, varargs('intOr', 1, ExpType.INT, (values) => int64(values.reduce<bigint>((all, v) => all | big(v), 0n)))],
  [ExpCode.INT_XOR, varargs('intXor', 1, ExpType.INT, (values) => int64(values.reduce<bigint>((all, v) => all ^ big(v), 0n)))],
  [ExpCode.INT_NOT, fixed('intNot', [INT], integerResult, ([a]) => int64(~big(a)))],
  [ExpCode.INT_LSHIFT, fixed('intLshift', [INT, INT], integerResult, ([a, b]) => int64(big(a) << BigInt.asUintN(6, big(b))))],
  [ExpCode.INT_RSHIFT, fixed('intRshift', [INT, INT], integerResult, ([a, b]) => int64(BigInt.asUintN(64, big(a)) >> BigInt.asUintN(6, big(b))))],
  [ExpCode.INT_ARSHIFT, fixed('intArshift', [INT, INT], integerResult, ([a, b]) => int64(BigInt.asIntN(64, big(a)) >> BigInt.asUintN(6, big(b))))],
  [ExpCode.INT_COUNT, fixed('intCount', [INT], integerResult, ([a]) => [...BigInt.asUintN(64, big(a)).toString(2)].filter((bit) => bit === '1').length)],
  [ExpCode.INT_LSCAN, fixed('intLscan', [INT, [ExpType.BOOL]], integerResult, ([a, set]) => bitScan(big(a), set as boolean, true))],
  [ExpCode.INT_RSCAN, fixed('intRscan', [INT, [ExpType.BOOL]], integerResult, ([a, set]) => bitScan(big(a), set as boolean, false))],
  [ExpCode.MIN, varargs('min', 1, undefined, (values) => values.reduce((least, v) => (compareTyped(v, least) < 0 ? v : least)))],
  [ExpCode.MAX, varargs('max', 1, undefined, (values) => values.reduce((most, v) => (compareTyped(v, most) > 0 ? v : most)))],
  [ExpCode.DIGEST_MODULO, compileDigestModulo],
  [ExpCode.DEVICE_SIZE, metadata(ExpType.INT, (rt) => (rt.record.onDevice ? rt.record.recordBytes : 0))],
  [ExpCode.MEMORY_SIZE, metadata(ExpType.INT, (rt) => (rt.record.inMemory ? rt.record.recordBytes : 0))],
  [ExpCode.RECORD_SIZE, metadata(ExpType.INT, (rt) => rt.record.recordBytes)],
  [ExpCode.LAST_UPDATE, metadata(ExpType.INT, (rt) => int64(BigInt(Math.round(rt.record.lastUpdateMs)) * 1_000_000n))],
  [ExpCode.SINCE_UPDATE, metadata(ExpType.INT, (rt) => Math.max(0, rt.nowMs - rt.record.lastUpdateMs))],
  [ExpCode.VOID_TIME, metadata(ExpType.INT, (rt) => (rt.record.voidTime === 0 ? -1 : int64(BigInt(rt.record.voidTime) * 1_000_000_000n)))],
  [ExpCode.TTL, metadata(ExpType.INT, (rt) => (rt.record.voidTime === 0 ? -1 : Math.max(0, rt.record.voidTime - Math.floor(rt.nowMs / 1000))))],
  [ExpCode.SET_NAME, metadata(ExpType.STR, (rt) => rt.record.setName)],
  [ExpCode.KEY_EXIST, metadata(ExpType.BOOL, (rt) => rt.record.key !== undefined)],
  [ExpCode.IS_TOMBSTONE, metadata(ExpType.BOOL, () => false)],
  [ExpCode.KEY, compileKey],
  [ExpCode.BIN, compileBin],
  [ExpCode.BIN_TYPE, compileBinType],
  [ExpCode.COND, compileCond],
  [ExpCode.LET, compileLet],
  [ExpCode.VAR, compileVar],
  [ExpCode.QUOTE, compileQuote],
  [ExpCode.CALL, compileCall],
]);

