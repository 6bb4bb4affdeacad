/**
 * The public filter expression builder, exp.* (Aerospike's expression functions, docs/api.md).
 * Every function returns an Expression; arguments that are expressions may also be given as
 * plain JS values (a number with no fraction is an integer, other numbers floats; strings,
 * booleans, Buffers, arrays, plain objects and Maps, null). Types are checked when the
 * expression is compiled (compile.ts), which happens once per call that uses it.
 */
import { invalidArgument } from '../../errors';
import { MapCode, ListCode, ReturnType, CTX_MARKER } from '../cdt/codes';
import type { ContextLevel } from '../cdt/builders';
import { fromUser } from '../cdt/convert';
import { CdtList, INF, WILDCARD } from '../cdt/value';
import { describe } from '../key';
import { ExpCode, ExpType, ParticleType, SYS_CALL_CDT } from './codes';
import { Expression, ExpNode, FloatLiteral, ValueLiteral } from './expression';

const ANY = -1;

type Arg = Expression | unknown;

/** An argument as an expression (plain values become literals). */
function toExpression(value: Arg): Expression {
  if (value instanceof Expression) return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw invalidArgument(`an expression value must be finite, not ${value}`);
    return Number.isInteger(value) ? int(value) : float(value);
  }
  if (typeof value === 'bigint') return int(value);
  if (typeof value === 'string') return str(value);
  if (typeof value === 'boolean') return bool(value);
  if (value === null) return nil();
  if (value instanceof Uint8Array) return bytes(value);
  if (Array.isArray(value)) return list(value);
  if (typeof value === 'object') return map(value as Record<string, unknown>);
  throw invalidArgument(`${describe(value)} is not an expression or a value`);
}

function node(code: number, type: number, ...args: ExpNode[]): Expression {
  return new Expression([code, ...args], type);
}

function nodes(values: readonly Arg[]): ExpNode[] {
  return values.map((value) => toExpression(value).node);
}

function int(value: number | bigint): Expression {
  if (typeof value === 'number' && !Number.isSafeInteger(value)) throw invalidArgument(`exp.int needs a safe integer or a bigint, not ${value}`);
  if (typeof value === 'bigint' && (value < -(2n ** 63n) || value > 2n ** 63n - 1n)) throw invalidArgument('exp.int: bigint outside the int64 range');
  if (typeof value !== 'number' && typeof value !== 'bigint') throw invalidArgument(`exp.int needs an integer, not ${describe(value)}`);
  return new Expression(value, ExpType.INT);
}

function float(value: number): Expression {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw invalidArgument(`exp.float needs a finite number, not ${describe(value)}`);
  return new Expression(new FloatLiteral(value), ExpType.FLOAT);
}

function str(value: string): Expression {
  if (typeof value !== 'string') throw invalidArgument(`exp.str needs a string, not ${describe(value)}`);
  return new Expression(value, ExpType.STR);
}

function bool(value: boolean): Expression {
  if (typeof value !== 'boolean') throw invalidArgument(`exp.bool needs a boolean, not ${describe(value)}`);
  return new Expression(value, ExpType.BOOL);
}

function bytes(value: Uint8Array): Expression {
  if (!(value instanceof Uint8Array)) throw invalidArgument(`exp.bytes needs a Buffer, not ${describe(value)}`);
  return new Expression(value, ExpType.BLOB);
}

function nil(): Expression {
  return new Expression(null, ExpType.NIL);
}

function list(value: unknown[]): Expression {
  if (!Array.isArray(value)) throw invalidArgument(`exp.list needs an array, not ${describe(value)}`);
  return node(ExpCode.QUOTE, ExpType.LIST, new ValueLiteral(fromUser(value, 'exp.list', true)));
}

function map(value: Record<string, unknown> | Map<unknown, unknown>): Expression {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalidArgument(`exp.map needs a plain object or a Map, not ${describe(value)}`);
  return new Expression(new ValueLiteral(fromUser(value, 'exp.map', true)), ExpType.MAP);
}

function binName(name: string): string {
  if (typeof name !== 'string' || name.length === 0) throw invalidArgument(`a bin name must be a non-empty string, not ${describe(name)}`);
  return name;
}

const binOf = (type: number) => (name: string) => node(ExpCode.BIN, type, type, binName(name));
const metadata = (code: number, type: number) => () => node(code, type);
const compare = (code: number) => (left: Arg, right: Arg) => node(code, ExpType.BOOL, toExpression(left).node, toExpression(right).node);
const logical = (code: number) => (...args: Arg[]) => node(code, ExpType.BOOL, ...nodes(args));
const arithmetic = (code: number) => (...args: Arg[]) => node(code, args.length > 0 ? toExpression(args[0]).type : ANY, ...nodes(args));
const unary = (code: number, type: (arg: Expression) => number) => (arg: Arg) => {
  const expression = toExpression(arg);
  return node(code, type(expression), expression.node);
};
const binary = (code: number, type: number) => (left: Arg, right: Arg) => node(code, type, toExpression(left).node, toExpression(right).node);

// ---------------------------------------------------------------------------------------
// List and map reads: CALL(type, CDT, [code, args...] behind the context, bin)

/** The value type a read gives for its return type (Aerospike's rules). */
function readType(returnType: number, multi: boolean, valueType: number, isMap: boolean): number {
  const base = returnType & ~ReturnType.INVERTED;
  switch (base) {
    case ReturnType.INDEX:
    case ReturnType.REVERSE_INDEX:
    case ReturnType.RANK:
    case ReturnType.REVERSE_RANK:
      return multi ? ExpType.LIST : ExpType.INT;
    case ReturnType.COUNT:
      return ExpType.INT;
    case ReturnType.EXISTS:
      return ExpType.BOOL;
    case ReturnType.VALUE:
    case ReturnType.KEY:
      if (base === ReturnType.KEY && !isMap) break;
      return multi ? ExpType.LIST : valueType;
    case ReturnType.KEY_VALUE:
    case ReturnType.UNORDERED_MAP:
    case ReturnType.ORDERED_MAP:
      if (isMap) return ExpType.MAP;
      break;
    default:
      break;
  }
  throw invalidArgument(`return type ${returnType} gives no value an expression can use`);
}

function contextNode(ctx: readonly ContextLevel[] | undefined): ExpNode | undefined {
  if (ctx === undefined || ctx.length === 0) return undefined;
  if (!Array.isArray(ctx)) throw new TypeError('ctx must be an array of cdt.* context levels');
  const flat = ctx.flatMap((level, i) => {
    if (level === null || typeof level !== 'object' || typeof level.type !== 'number') throw new TypeError(`ctx[${i}] is not a cdt.* context level`);
    return [level.type, fromUser(level.value, `ctx[${i}]`, true)];
  });
  return new ValueLiteral(new CdtList(0, flat));
}

function read(type: number, code: number, bin: Arg, args: ExpNode[], ctx: readonly ContextLevel[] | undefined): Expression {
  const operation: ExpNode = [code, ...args];
  const context = contextNode(ctx);
  return node(ExpCode.CALL, type, type, SYS_CALL_CDT, context === undefined ? operation : [CTX_MARKER, context, operation], toExpression(bin).node);
}

function indexArg(value: unknown, name: string): ExpNode {
  if (value instanceof Expression) return value.node;
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw invalidArgument(`${name} must be an integer or an integer expression, not ${describe(value)}`);
  return value;
}

function countArgs(count: unknown): ExpNode[] {
  return count === undefined || count === null ? [] : [indexArg(count, 'count')];
}

function returnTypeArg(returnType: number): number {
  if (typeof returnType !== 'number' || !Number.isInteger(returnType)) throw invalidArgument(`returnType must be a ReturnType, not ${describe(returnType)}`);
  return returnType;
}

function rangeArgs(begin: unknown, end: unknown): ExpNode[] {
  const args = [toExpression(begin ?? null).node];
  if (end !== undefined && end !== null) args.push(toExpression(end).node);
  return args;
}

type Ctx = readonly ContextLevel[] | undefined;

/** List read expressions: the value a list operation would return, from a list bin or list expression. */
const lists = {
  size: (bin: Arg, ctx?: Ctx) => read(ExpType.INT, ListCode.SIZE, bin, [], ctx),
  getByIndex: (bin: Arg, index: unknown, valueType: number, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, false, valueType, false), ListCode.GET_BY_INDEX, bin, [returnTypeArg(returnType), indexArg(index, 'index')], ctx),
  getByIndexRange: (bin: Arg, index: unknown, count?: unknown, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, true, ANY, false), ListCode.GET_BY_INDEX_RANGE, bin, [returnTypeArg(returnType), indexArg(index, 'index'), ...countArgs(count)], ctx),
  getByRank: (bin: Arg, rank: unknown, valueType: number, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, false, valueType, false), ListCode.GET_BY_RANK, bin, [returnTypeArg(returnType), indexArg(rank, 'rank')], ctx),
  getByRankRange: (bin: Arg, rank: unknown, count?: unknown, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, true, ANY, false), ListCode.GET_BY_RANK_RANGE, bin, [returnTypeArg(returnType), indexArg(rank, 'rank'), ...countArgs(count)], ctx),
  getByValue: (bin: Arg, value: Arg, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, true, ANY, false), ListCode.GET_ALL_BY_VALUE, bin, [returnTypeArg(returnType), toExpression(value).node], ctx),
  getByValueList: (bin: Arg, values: Arg, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, true, ANY, false), ListCode.GET_BY_VALUE_LIST, bin, [returnTypeArg(returnType), toExpression(values).node], ctx),
  /** Values in [begin, end): begin null is the lowest value, end null or undefined the highest. */
  getByValueRange: (bin: Arg, begin: Arg, end: Arg, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, true, ANY, false), ListCode.GET_BY_VALUE_INTERVAL, bin, [returnTypeArg(returnType), ...rangeArgs(begin, end)], ctx),
  getByValueRelRankRange: (bin: Arg, value: Arg, rank: unknown, count?: unknown, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, true, ANY, false), ListCode.GET_BY_VALUE_REL_RANK_RANGE, bin, [returnTypeArg(returnType), toExpression(value).node, indexArg(rank, 'rank'), ...countArgs(count)], ctx),
};

/** Map read expressions: the value a map operation would return, from a map bin or map expression. */
const maps = {
  size: (bin: Arg, ctx?: Ctx) => read(ExpType.INT, MapCode.SIZE, bin, [], ctx),
  getByKey: (bin: Arg, key: Arg, valueType: number, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, false, valueType, true), MapCode.GET_BY_KEY, bin, [returnTypeArg(returnType), toExpression(key).node], ctx),
  getByKeyList: (bin: Arg, keys: Arg, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, true, ANY, true), MapCode.GET_BY_KEY_LIST, bin, [returnTypeArg(returnType), toExpression(keys).node], ctx),
  getByKeyRange: (bin: Arg, begin: Arg, end: Arg, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, true, ANY, true), MapCode.GET_BY_KEY_INTERVAL, bin, [returnTypeArg(returnType), ...rangeArgs(begin, end)], ctx),
  getByKeyRelIndexRange: (bin: Arg, key: Arg, index: unknown, count?: unknown, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, true, ANY, true), MapCode.GET_BY_KEY_REL_INDEX_RANGE, bin, [returnTypeArg(returnType), toExpression(key).node, indexArg(index, 'index'), ...countArgs(count)], ctx),
  getByValue: (bin: Arg, value: Arg, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, true, ANY, true), MapCode.GET_ALL_BY_VALUE, bin, [returnTypeArg(returnType), toExpression(value).node], ctx),
  getByValueList: (bin: Arg, values: Arg, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, true, ANY, true), MapCode.GET_BY_VALUE_LIST, bin, [returnTypeArg(returnType), toExpression(values).node], ctx),
  getByValueRange: (bin: Arg, begin: Arg, end: Arg, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, true, ANY, true), MapCode.GET_BY_VALUE_INTERVAL, bin, [returnTypeArg(returnType), ...rangeArgs(begin, end)], ctx),
  getByValueRelRankRange: (bin: Arg, value: Arg, rank: unknown, count?: unknown, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, true, ANY, true), MapCode.GET_BY_VALUE_REL_RANK_RANGE, bin, [returnTypeArg(returnType), toExpression(value).node, indexArg(rank, 'rank'), ...countArgs(count)], ctx),
  getByIndex: (bin: Arg, index: unknown, valueType: number, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, false, valueType, true), MapCode.GET_BY_INDEX, bin, [returnTypeArg(returnType), indexArg(index, 'index')], ctx),
  getByIndexRange: (bin: Arg, index: unknown, count?: unknown, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, true, ANY, true), MapCode.GET_BY_INDEX_RANGE, bin, [returnTypeArg(returnType), indexArg(index, 'index'), ...countArgs(count)], ctx),
  getByRank: (bin: Arg, rank: unknown, valueType: number, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, false, valueType, true), MapCode.GET_BY_RANK, bin, [returnTypeArg(returnType), indexArg(rank, 'rank')], ctx),
  getByRankRange: (bin: Arg, rank: unknown, count?: unknown, returnType: number = ReturnType.VALUE, ctx?: Ctx) =>
    read(readType(returnType, true, ANY, true), MapCode.GET_BY_RANK_RANGE, bin, [returnTypeArg(returnType), indexArg(rank, 'rank'), ...countArgs(count)], ctx),
};

/** Filter expressions for opts.filter (Aerospike's expressions; docs/api.md). */
export const exp = {
  // Values
  bool,
  int,
  float,
  str,
  bytes,
  nil,
  /** Sorts after every value (the open end of a range). */
  inf: () => new Expression(new ValueLiteral(INF), ANY),
  /** Equals any value (in value lists and comparisons inside lists). */
  wildcard: () => new Expression(new ValueLiteral(WILDCARD), ANY),
  list,
  map,
  /** A GeoJSON value: its text, or an object that is stringified. */
  geo: (value: string | object) => {
    if (typeof value !== 'string' && (value === null || typeof value !== 'object')) throw invalidArgument(`exp.geo needs GeoJSON text or an object, not ${describe(value)}`);
    return new Expression(typeof value === 'string' ? value : JSON.stringify(value), ExpType.GEOJSON);
  },
  /** An expression that cannot be evaluated: a filter with it is false, an expression operation fails (or, with EVAL_NO_FAIL, does nothing). */
  unknown: () => node(ExpCode.UNKNOWN, ANY),

  // The record's key (when stored) and bins
  keyInt: () => node(ExpCode.KEY, ExpType.INT, ExpType.INT),
  keyStr: () => node(ExpCode.KEY, ExpType.STR, ExpType.STR),
  keyBlob: () => node(ExpCode.KEY, ExpType.BLOB, ExpType.BLOB),
  /** Whether the record has its user key stored (storeKey). */
  keyExist: metadata(ExpCode.KEY_EXIST, ExpType.BOOL),
  binBool: binOf(ExpType.BOOL),
  binInt: binOf(ExpType.INT),
  binFloat: binOf(ExpType.FLOAT),
  binStr: binOf(ExpType.STR),
  binBlob: binOf(ExpType.BLOB),
  binList: binOf(ExpType.LIST),
  binMap: binOf(ExpType.MAP),
  /** A bin holding GeoJSON (stored as its text), for cmpGeo. */
  binGeo: binOf(ExpType.GEOJSON),
  /** The bin's particle type (ParticleType: 0 when the bin does not exist). */
  binType: (name: string) => node(ExpCode.BIN_TYPE, ExpType.INT, binName(name)),
  binExists: (name: string) => node(ExpCode.CMP_NE, ExpType.BOOL, [ExpCode.BIN_TYPE, binName(name)], ParticleType.NULL),

  // Metadata
  /** The set name ('' for none). */
  setName: metadata(ExpCode.SET_NAME, ExpType.STR),
  /** Seconds left to live, -1 for never. */
  ttl: metadata(ExpCode.TTL, ExpType.INT),
  /** Expiry time in nanoseconds since 1970, -1 for never. */
  voidTime: metadata(ExpCode.VOID_TIME, ExpType.INT),
  /** Last-update time in nanoseconds since 1970. */
  lastUpdate: metadata(ExpCode.LAST_UPDATE, ExpType.INT),
  /** Milliseconds since the last update. */
  sinceUpdate: metadata(ExpCode.SINCE_UPDATE, ExpType.INT),
  /** The record's stored size in bytes. */
  recordSize: metadata(ExpCode.RECORD_SIZE, ExpType.INT),
  /** Stored size on a device namespace, 0 on a memory namespace (Aerospike's deprecated form of recordSize). */
  deviceSize: metadata(ExpCode.DEVICE_SIZE, ExpType.INT),
  /** Stored size on a memory namespace, 0 on a device namespace without data in memory. */
  memorySize: metadata(ExpCode.MEMORY_SIZE, ExpType.INT),
  isTombstone: metadata(ExpCode.IS_TOMBSTONE, ExpType.BOOL),
  /** The digest's last four bytes (little-endian) modulo `mod`: a stable sample of records. */
  digestModulo: (mod: number) => {
    if (!Number.isSafeInteger(mod) || mod <= 0) throw invalidArgument(`digestModulo needs a positive integer, not ${describe(mod)}`);
    return node(ExpCode.DIGEST_MODULO, ExpType.INT, mod);
  },

  // Comparisons and logic
  eq: compare(ExpCode.CMP_EQ),
  ne: compare(ExpCode.CMP_NE),
  gt: compare(ExpCode.CMP_GT),
  ge: compare(ExpCode.CMP_GE),
  lt: compare(ExpCode.CMP_LT),
  le: compare(ExpCode.CMP_LE),
  /** Whether a string expression matches a POSIX regular expression, as Aerospike's regcomp reads it (RegexFlags; regex.ts). */
  cmpRegex: (flags: number, regex: string, value: Arg) => {
    if (typeof regex !== 'string') throw invalidArgument('cmpRegex needs a regular expression string');
    return node(ExpCode.CMP_REGEX, ExpType.BOOL, indexArg(flags, 'flags'), regex, toExpression(value).node);
  },
  /** Whether one GeoJSON side is a point within the other, a region (Polygon, MultiPolygon, AeroCircle). */
  cmpGeo: (left: Arg, right: Arg) => node(ExpCode.CMP_GEO, ExpType.BOOL, toExpression(left).node, toExpression(right).node),
  /** Whether a list expression holds a value. */
  inList: (value: Arg, list: Arg) => node(ExpCode.IN_LIST, ExpType.BOOL, toExpression(value).node, toExpression(list).node),
  not: unary(ExpCode.NOT, () => ExpType.BOOL),
  and: logical(ExpCode.AND),
  or: logical(ExpCode.OR),
  /** True when exactly one argument is true. */
  exclusive: logical(ExpCode.EXCLUSIVE),

  // Arithmetic (integers wrap at 64 bits; every argument of one type)
  add: arithmetic(ExpCode.ADD),
  sub: arithmetic(ExpCode.SUB),
  mul: arithmetic(ExpCode.MUL),
  div: arithmetic(ExpCode.DIV),
  pow: binary(ExpCode.POW, ExpType.FLOAT),
  log: binary(ExpCode.LOG, ExpType.FLOAT),
  mod: binary(ExpCode.MOD, ExpType.INT),
  abs: unary(ExpCode.ABS, (arg) => arg.type),
  floor: unary(ExpCode.FLOOR, () => ExpType.FLOAT),
  ceil: unary(ExpCode.CEIL, () => ExpType.FLOAT),
  toInt: unary(ExpCode.TO_INT, () => ExpType.INT),
  toFloat: unary(ExpCode.TO_FLOAT, () => ExpType.FLOAT),
  intAnd: arithmetic(ExpCode.INT_AND),
  intOr: arithmetic(ExpCode.INT_OR),
  intXor: arithmetic(ExpCode.INT_XOR),
  intNot: unary(ExpCode.INT_NOT, () => ExpType.INT),
  intLshift: binary(ExpCode.INT_LSHIFT, ExpType.INT),
  intRshift: binary(ExpCode.INT_RSHIFT, ExpType.INT),
  intArshift: binary(ExpCode.INT_ARSHIFT, ExpType.INT),
  intCount: unary(ExpCode.INT_COUNT, () => ExpType.INT),
  /** Position of the most significant bit equal to `search` (-1: none). */
  intLscan: binary(ExpCode.INT_LSCAN, ExpType.INT),
  /** Position of the least significant bit equal to `search` (-1: none). */
  intRscan: binary(ExpCode.INT_RSCAN, ExpType.INT),
  min: arithmetic(ExpCode.MIN),
  max: arithmetic(ExpCode.MAX),

  // Control
  /** cond(test1, value1, test2, value2, ..., default): the value of the first true test. */
  cond: (...args: Arg[]) => node(ExpCode.COND, args.length > 1 ? toExpression(args[1]).type : ANY, ...nodes(args)),
  /** let(def(name, value), ..., expression): names values for var(name) inside. */
  let: (...args: (Definition | Arg)[]) => {
    const last = args[args.length - 1];
    const definitions = args.slice(0, -1).flatMap((arg) => {
      if (!(arg instanceof Definition)) throw invalidArgument('every argument of exp.let but the last must be exp.def(name, value)');
      return [arg.name, arg.value.node];
    });
    const body = toExpression(last);
    return node(ExpCode.LET, body.type, ...definitions, body.node);
  },
  def: (name: string, value: Arg) => new Definition(varName(name), toExpression(value)),
  var: (name: string) => node(ExpCode.VAR, ANY, varName(name)),

  lists,
  maps,
};

/** A name bound by exp.let. */
export class Definition {
  constructor(
    readonly name: string,
    readonly value: Expression,
  ) {}
}

function varName(name: string): string {
  if (typeof name !== 'string' || name.length === 0) throw invalidArgument(`a variable name must be a non-empty string, not ${describe(name)}`);
  return name;
}
