/**
 * The special forms of the expression compiler (operators.ts lists them by op code): bins and
 * their types, the record key and digest, cond, let and var, quoted lists, membership in a
 * list, regex and geo comparisons, and calls into list/map operations (cdt/).
 */
import { OPERATION_PAYLOAD_BYTES_MAX } from '../../constants';
import { ErrorCode, ShoalError, invalidArgument } from '../../errors';
import { encodeCdtValue } from '../bin-encoder';
import { OperationArgs } from '../cdt/args';
import { CTX_MARKER } from '../cdt/codes';
import { executeCdt, specOf } from '../cdt/execute';
import { valuesEqual } from '../cdt/order';
import { CdtList, CdtMap, CdtValue, copyValue, isInteger } from '../cdt/value';
import { ANY, ExpType, ParticleType, SYS_CALL_CDT, SYS_FLAG_MODIFY_LOCAL } from './codes';
import { GeoJsonError, type Geometry, geoMatches, parseGeoJson } from './geo';
import { compilePosixRegex } from './regex';
import {
  argCount,
  int64,
  constant,
  evaluateAll,
  expectType,
  isNumber,
  isString,
  literalOf,
  ofType,
  typeError,
  typeName,
  UNKNOWN,
  type Compiled,
  type Runtime,
  type Scope,
  type Value,
} from './typing';
import type { Node } from './parse';

export function compileRegex(args: Node[], scope: Scope): Compiled {
  argCount(args, 'cmpRegex', 3);
  const flags = literalOf(args[0]!, isNumber, 'cmpRegex flags');
  const source = literalOf(args[1]!, isString, 'cmpRegex pattern');
  const value = scope.compile(args[2]!);
  expectType(value, [ExpType.STR], 'cmpRegex', 2);
  const regex = compilePosixRegex(source, flags);
  return {
    type: ExpType.BOOL,
    run: (rt) => {
      const text = ofType(value.run(rt), ExpType.STR);
      // A text too long for this pattern (REGEX_MATCH_STEPS_MAX) could not be evaluated: UNKNOWN.
      return text === UNKNOWN ? UNKNOWN : (regex.matches(text as string) ?? UNKNOWN);
    },
  };
}

/**
 * cmpGeo: whether a point lies within a region (geo.ts). GeoJSON values are their text (a
 * literal GeoJSON value arrives as a string); a constant is parsed once here, a bin's value
 * for each record (text that is not a supported shape is UNKNOWN).
 */
export function compileGeo(args: Node[], scope: Scope): Compiled {
  argCount(args, 'cmpGeo', 2);
  const sides = args.map((arg, i) => {
    const compiled = scope.compile(arg);
    expectType(compiled, [ExpType.GEOJSON, ExpType.STR], 'cmpGeo', i);
    if (compiled.constant === undefined) return (rt: Runtime) => geometryOf(compiled.run(rt));
    const value = compiled.constant.value;
    let geometry: Geometry;
    try {
      geometry = parseGeoJson(value as string);
    } catch (error) {
      throw invalidArgument(`cmpGeo argument ${i + 1} is not GeoJSON Aerospike compares: ${(error as Error).message}`);
    }
    return () => geometry;
  });
  const [left, right] = sides as [(rt: Runtime) => Geometry | typeof UNKNOWN, (rt: Runtime) => Geometry | typeof UNKNOWN];
  return {
    type: ExpType.BOOL,
    run: (rt) => {
      const a = left(rt);
      if (a === UNKNOWN) return UNKNOWN;
      const b = right(rt);
      return b === UNKNOWN ? UNKNOWN : geoMatches(a, b);
    },
  };
}

function geometryOf(value: Value): Geometry | typeof UNKNOWN {
  if (typeof value !== 'string') return UNKNOWN;
  try {
    return parseGeoJson(value);
  } catch (error) {
    if (error instanceof GeoJsonError) return UNKNOWN;
    throw error;
  }
}

export function compileInList(args: Node[], scope: Scope): Compiled {
  argCount(args, 'inList', 2);
  const value = scope.compile(args[0]!);
  const list = scope.compile(args[1]!);
  expectType(list, [ExpType.LIST], 'inList', 1);
  return {
    type: ExpType.BOOL,
    run: (rt) => {
      const item = value.run(rt);
      const items = ofType(list.run(rt), ExpType.LIST);
      if (item === UNKNOWN || items === UNKNOWN) return UNKNOWN;
      return (items as CdtList).items.some((element) => valuesEqual(element, item as CdtValue));
    },
  };
}

export function compileDigestModulo(args: Node[]): Compiled {
  argCount(args, 'digestModulo', 1);
  const mod = literalOf(args[0]!, isNumber, 'digestModulo');
  if (mod <= 0) throw invalidArgument('digestModulo needs a positive modulus');
  return {
    type: ExpType.INT,
    run: (rt) => {
      const digest = rt.record.digest;
      // Aerospike reads the digest's bytes 16..19 as a little-endian u32.
      const word = (digest[16]! | (digest[17]! << 8) | (digest[18]! << 16) | (digest[19]! << 24)) >>> 0;
      return word % mod;
    },
  };
}

export function compileKey(args: Node[]): Compiled {
  argCount(args, 'key', 1);
  const type = literalOf(args[0]!, isNumber, 'key type');
  if (type !== ExpType.INT && type !== ExpType.STR && type !== ExpType.BLOB) throw invalidArgument(`a record key is an int, a str or a blob, not ${typeName(type)}`);
  return {
    type,
    run: (rt) => {
      const key = rt.record.key;
      if (key === undefined) return UNKNOWN;
      return ofType(typeof key === 'bigint' ? int64(key) : key, type);
    },
  };
}

const BIN_TYPES: ReadonlySet<number> = new Set([ExpType.BOOL, ExpType.INT, ExpType.FLOAT, ExpType.STR, ExpType.BLOB, ExpType.LIST, ExpType.MAP, ExpType.GEOJSON]);

export function compileBin(args: Node[]): Compiled {
  argCount(args, 'bin', 2);
  const type = literalOf(args[0]!, isNumber, 'bin type');
  const name = literalOf(args[1]!, isString, 'bin name');
  if (!BIN_TYPES.has(type)) throw invalidArgument(`a bin read of ${typeName(type)} is not supported`);
  return {
    type,
    run: (rt) => {
      const value = rt.record.bin(name);
      return value === undefined ? UNKNOWN : ofType(value, type);
    },
  };
}

export function compileBinType(args: Node[]): Compiled {
  argCount(args, 'binType', 1);
  const name = literalOf(args[0]!, isString, 'bin name');
  return { type: ExpType.INT, run: (rt) => particleTypeOf(rt.record.bin(name)) };
}

function particleTypeOf(value: CdtValue | undefined): number {
  if (value === undefined || value === null) return ParticleType.NULL;
  if (typeof value === 'boolean') return ParticleType.BOOL;
  if (typeof value === 'string') return ParticleType.STRING;
  if (typeof value === 'bigint') return ParticleType.INTEGER;
  if (typeof value === 'number') return isInteger(value) ? ParticleType.INTEGER : ParticleType.FLOAT;
  if (value instanceof Uint8Array) return ParticleType.BLOB;
  if (value instanceof CdtList) return ParticleType.LIST;
  return ParticleType.MAP;
}

export function compileCond(args: Node[], scope: Scope): Compiled {
  if (args.length < 3 || args.length % 2 === 0) throw invalidArgument('cond needs (test, value) pairs and a default: an odd count of at least 3');
  const parts = args.map((arg) => scope.compile(arg));
  let type = ANY;
  parts.forEach((part, i) => {
    if (i % 2 === 0 && i < parts.length - 1) {
      expectType(part, [ExpType.BOOL], 'cond', i);
      return;
    }
    if (part.type === ANY) return;
    if (type !== ANY && part.type !== type) throw typeError(`cond values are ${typeName(type)} and ${typeName(part.type)}`);
    type = part.type;
  });
  return {
    type,
    run: (rt) => {
      for (let i = 0; i + 1 < parts.length; i += 2) {
        const test = ofType(parts[i]!.run(rt), ExpType.BOOL);
        if (test === UNKNOWN) return UNKNOWN;
        if (test === true) return parts[i + 1]!.run(rt);
      }
      return parts[parts.length - 1]!.run(rt);
    },
  };
}

export function compileLet(args: Node[], scope: Scope): Compiled {
  if (args.length < 1 || args.length % 2 === 0) throw invalidArgument('let needs (name, value) pairs and an expression');
  scope.enter();
  try {
    const definitions: [number, Compiled][] = [];
    for (let i = 0; i + 1 < args.length; i += 2) {
      const name = literalOf(args[i]!, isString, 'a let variable name');
      const value = scope.compile(args[i + 1]!);
      definitions.push([scope.define(name, value.type), value]);
    }
    const body = scope.compile(args[args.length - 1]!);
    return {
      type: body.type,
      run: (rt) => {
        for (const [slot, value] of definitions) rt.vars[slot] = value.run(rt);
        return body.run(rt);
      },
    };
  } finally {
    scope.leave();
  }
}

export function compileVar(args: Node[], scope: Scope): Compiled {
  argCount(args, 'var', 1);
  const name = literalOf(args[0]!, isString, 'a variable name');
  const found = scope.lookup(name);
  if (found === undefined) throw invalidArgument(`var "${name}" is not defined by an enclosing let`);
  const slot = found.slot;
  return { type: found.type, run: (rt) => rt.vars[slot] };
}

export function compileQuote(args: Node[]): Compiled {
  argCount(args, 'quote', 1);
  const node = args[0]!;
  if (node.kind !== 'literal') throw invalidArgument('quote holds a value');
  return constant(node.value);
}

/**
 * A list or map call: [CALL, type, system, operation, bin]. System CDT reads (the value is the
 * operation's result); CDT with MODIFY_LOCAL applies a modify to a copy of the bin's value and
 * is that copy (the record is not changed: an expression write stores it).
 */
export function compileCall(args: Node[], scope: Scope): Compiled {
  argCount(args, 'call', 4);
  const type = literalOf(args[0]!, isNumber, 'call type');
  const system = literalOf(args[1]!, isNumber, 'call system');
  if (system !== SYS_CALL_CDT && system !== (SYS_CALL_CDT | SYS_FLAG_MODIFY_LOCAL)) {
    throw invalidArgument(`expression call ${system} is not supported: only list and map calls (bit and HLL calls are not)`);
  }
  const modifyLocal = system !== SYS_CALL_CDT;
  let operation = args[2]!;
  let context: CdtValue | undefined;
  if (operation.kind === 'op' && operation.code === -1) {
    context = (operation.args[0] as { value: CdtValue }).value;
    operation = operation.args[1]!;
  }
  if (operation.kind !== 'op') throw invalidArgument('a call needs a list or map operation');
  const code = operation.code;
  const parts = operation.args.map((arg) => scope.compile(arg));
  const bin = scope.compile(args[3]!);
  expectType(bin, [ExpType.LIST, ExpType.MAP], 'call', 3);
  const build = (values: Value[]) => operationArgs(code, values, context);
  const fixedArgs = parts.every((part) => part.constant !== undefined) ? build(parts.map((part) => part.constant!.value)) : undefined;
  if (specOf(fixedArgs ?? build(parts.map(() => 0))).modify !== modifyLocal) {
    throw invalidArgument(modifyLocal ? 'a modify-local expression call needs a list or map modify operation' : 'an expression call must be a list or map read');
  }
  return {
    type,
    run: (rt) => {
      const target = bin.run(rt);
      if (!(target instanceof CdtList) && !(target instanceof CdtMap)) return UNKNOWN;
      let callArgs = fixedArgs;
      if (callArgs === undefined) {
        const values = evaluateAll(parts, rt);
        if (values === UNKNOWN) return UNKNOWN;
        callArgs = build(values);
      }
      try {
        if (modifyLocal) return ofType(executeCdt(copyValue(target), callArgs).value ?? UNKNOWN, type);
        const result = executeCdt(target, callArgs).result;
        return result === undefined ? UNKNOWN : ofType(result, type);
      } catch (error) {
        if (error instanceof ShoalError && error.code !== ErrorCode.CORRUPTION) return UNKNOWN;
        throw error;
      }
    },
  };
}

let scratch = Buffer.allocUnsafe(1024);

/** The list/map operation payload for evaluated arguments (args.ts layout). */
function operationArgs(code: number, values: Value[], context: CdtValue | undefined): OperationArgs {
  const operation = new CdtList(0, [code, ...(values as CdtValue[])]);
  const value = context === undefined ? operation : new CdtList(0, [CTX_MARKER, context, operation]);
  for (;;) {
    const end = encodeCdtValue(scratch, 0, scratch.length, value, true);
    if (end >= 0) return new OperationArgs(Buffer.from(scratch.subarray(0, end)));
    if (scratch.length >= OPERATION_PAYLOAD_BYTES_MAX) throw invalidArgument('a list/map read in an expression is too big');
    scratch = Buffer.allocUnsafe(scratch.length * 4);
  }
}
