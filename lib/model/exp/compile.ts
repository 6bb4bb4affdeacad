/**
 * Compiles an expression (Aerospike's encoded form, expression.ts) once into a tree of
 * closures with static types, and evaluates it per record without parsing again. Types are
 * checked at compile time as Aerospike's server checks them (a comparison of an integer with a
 * string is refused); at run time a value of another type, a missing bin or a failed list/map
 * read is UNKNOWN, which a filter treats as false.
 */
import { EXPRESSION_DEPTH_MAX, OPERATION_PAYLOAD_BYTES_MAX } from '../../constants';
import { ErrorCode, ShoalError, invalidArgument } from '../../errors';
import { encodeCdtValue } from '../bin-encoder';
import { OperationArgs } from '../cdt/args';
import { CTX_MARKER } from '../cdt/codes';
import { ARGUMENT, decodeCdt, skipValue } from '../cdt/decode';
import { executeCdt, specOf } from '../cdt/execute';
import { compareStrings, compareValues, valuesEqual } from '../cdt/order';
import { CdtList, CdtMap, CdtSpecial, CdtValue, copyValue, isInteger } from '../cdt/value';
import type { KeyValue } from '../key';
import { ExpCode, ExpType, ParticleType, SYS_CALL_CDT, SYS_FLAG_MODIFY_LOCAL } from './codes';
import { Expression } from './expression';
import { GeoJsonError, type Geometry, geoMatches, parseGeoJson } from './geo';
import { compilePosixRegex } from './regex';

/** What an expression sees of a record. */
export interface ExpRecord {
  /** A bin's value, undefined when the bin does not exist. */
  bin(name: string): CdtValue | undefined;
  /** Expiry, Unix seconds (0: never). */
  readonly voidTime: number;
  readonly lastUpdateMs: number;
  /** '' for no set. */
  readonly setName: string;
  /** The stored user key, undefined when none is stored. */
  readonly key: KeyValue | undefined;
  readonly digest: Uint8Array;
  /** The record's stored size in bytes (filter.ts storedRecordBytes: the device format's, overhead included). */
  readonly recordBytes: number;
  /** Whether the namespace stores records on a device (deviceSize) and in memory (memorySize). */
  readonly onDevice: boolean;
  readonly inMemory: boolean;
}

/** The result of an expression that could not be evaluated for this record. */
export const UNKNOWN: unique symbol = Symbol('shoal.exp.unknown');
type Value = unknown;

const ANY = -1;

interface Runtime {
  record: ExpRecord;
  vars: Value[];
  nowMs: number;
}

type Run = (rt: Runtime) => Value;

interface Compiled {
  type: number;
  run: Run;
  /** Set when the value is known at compile time. */
  constant?: { value: Value };
}

/** A compiled expression: evaluate it with evaluate() or matches(). */
export class CompiledExpression {
  constructor(
    readonly type: number,
    private readonly root: Run,
    private readonly varCount: number,
  ) {}

  /** The expression's value for a record, or UNKNOWN. */
  evaluate(record: ExpRecord, nowMs = Date.now()): Value {
    return this.root({ record, vars: new Array(this.varCount), nowMs });
  }

  /** Whether a filter passes: its value is true (false and UNKNOWN filter the record out). */
  matches(record: ExpRecord, nowMs = Date.now()): boolean {
    return this.evaluate(record, nowMs) === true;
  }
}

const compiledFilters = new WeakMap<Expression, CompiledExpression>();

/**
 * Compiles a filter (an exp.* Expression, or its encoded bytes as a peer sends them); an
 * Expression is compiled once and the result kept with it.
 * @throws ShoalError INVALID_ARGUMENT for a malformed expression, a type error, or one whose value is not a boolean.
 */
export function compileFilter(filter: Expression | Uint8Array): CompiledExpression {
  if (filter instanceof Expression) {
    let compiled = compiledFilters.get(filter);
    if (compiled === undefined) {
      compiled = compileExpression(filter.toBytes(), true);
      compiledFilters.set(filter, compiled);
    }
    return compiled;
  }
  if (!(filter instanceof Uint8Array)) throw new TypeError('filter must be an expression built with exp.*');
  return compileExpression(Buffer.isBuffer(filter) ? filter : Buffer.from(filter), true);
}

/** How many expressions this process compiled (a test checks a scan compiles its filter once). */
export const compilations = { count: 0 };

/**
 * Compiles encoded expression bytes.
 * @throws ShoalError INVALID_ARGUMENT as compileFilter.
 */
export function compileExpression(bytes: Buffer, boolean: boolean): CompiledExpression {
  compilations.count++;
  if (bytes.length === 0 || bytes.length > OPERATION_PAYLOAD_BYTES_MAX) throw invalidArgument('an expression must be 1 byte to 8 MiB');
  const parser = new Parser(bytes);
  const tree = parser.parse(0);
  if (parser.at !== bytes.length) throw invalidArgument(`an expression has ${bytes.length - parser.at} bytes after its end`);
  const scope = new Scope();
  const compiled = compile(tree, scope);
  if (boolean && compiled.type !== ExpType.BOOL && compiled.type !== ANY) throw invalidArgument('a filter expression must have a boolean value');
  return new CompiledExpression(compiled.type, compiled.run, scope.size);
}

// ---------------------------------------------------------------------------------------
// Parsing: the MessagePack form into nodes (an array is an operation, anything else a literal)

type Node = { kind: 'op'; code: number; args: Node[] } | { kind: 'literal'; type: number; value: Value };

class Parser {
  at = 0;
  constructor(private readonly bytes: Buffer) {}

  parse(depth: number): Node {
    if (depth > EXPRESSION_DEPTH_MAX) throw invalidArgument(`an expression nests deeper than ${EXPRESSION_DEPTH_MAX} levels`);
    if (this.at >= this.bytes.length) throw invalidArgument('an expression is cut short');
    const tag = this.bytes[this.at]!;
    if ((tag & 0xf0) === 0x90 || tag === 0xdc || tag === 0xdd) return this.operation(depth);
    if (tag === 0xca || tag === 0xcb) return { kind: 'literal', type: ExpType.FLOAT, value: this.value() };
    const value = this.value();
    return { kind: 'literal', type: typeOfValue(value), value };
  }

  /** A literal at `at`, decoded (maps and lists as collection values). */
  value(): CdtValue {
    const value = decodeCdt(this.bytes, this.at, this.bytes.length, ARGUMENT);
    this.at = endAfter(this.bytes, this.at);
    return value;
  }

  private operation(depth: number): Node {
    const count = this.arrayHeader();
    if (count === 0) throw invalidArgument('an expression operation needs an op code');
    const code = this.value();
    if (typeof code !== 'number' || !Number.isInteger(code)) throw invalidArgument('an expression operation must start with its op code');
    const args: Node[] = [];
    for (let i = 1; i < count; i++) {
      // QUOTE's argument and CALL's list/map operation are values, not expressions.
      if ((code === ExpCode.QUOTE && i === 1) || (code === ExpCode.CALL && i === 3)) {
        if (code === ExpCode.CALL) args.push(this.callOperation(depth));
        else args.push({ kind: 'literal', type: ANY, value: this.value() });
      } else {
        args.push(this.parse(depth + 1));
      }
    }
    return { kind: 'op', code, args };
  }

  /** A CALL's [code, arg...] or [0xff, context, [code, arg...]]: arguments are expressions, the context a value. */
  private callOperation(depth: number): Node {
    const count = this.arrayHeader();
    const first = this.value();
    if (first === CTX_MARKER && count === 3) {
      const context = this.value();
      const inner = this.callOperation(depth);
      if (inner.kind !== 'op') throw invalidArgument('malformed list/map operation in a CALL');
      return { kind: 'op', code: -1, args: [{ kind: 'literal', type: ANY, value: context }, inner] };
    }
    if (typeof first !== 'number' || !Number.isInteger(first)) throw invalidArgument('a CALL needs a list/map op code');
    const args: Node[] = [];
    for (let i = 1; i < count; i++) args.push(this.parse(depth + 1));
    return { kind: 'op', code: first, args };
  }

  private arrayHeader(): number {
    const bytes = this.bytes;
    const tag = bytes[this.at]!;
    if ((tag & 0xf0) === 0x90) {
      this.at += 1;
      return tag & 0x0f;
    }
    if (tag === 0xdc && this.at + 3 <= bytes.length) {
      this.at += 3;
      return bytes.readUInt16BE(this.at - 2);
    }
    if (tag === 0xdd && this.at + 5 <= bytes.length) {
      this.at += 5;
      return bytes.readUInt32BE(this.at - 4);
    }
    throw invalidArgument('malformed expression: an array was expected');
  }
}


function endAfter(bytes: Buffer, at: number): number {
  return skipValue(bytes, at, bytes.length, ARGUMENT);
}

/** The expression type of a literal value. */
function typeOfValue(value: CdtValue): number {
  if (value === null) return ExpType.NIL;
  switch (typeof value) {
    case 'boolean':
      return ExpType.BOOL;
    case 'string':
      return ExpType.STR;
    case 'number':
      return Number.isInteger(value) ? ExpType.INT : ExpType.FLOAT;
    case 'bigint':
      return ExpType.INT;
    default:
      if (value instanceof Uint8Array) return ExpType.BLOB;
      if (value instanceof CdtList) return ExpType.LIST;
      if (value instanceof CdtMap) return ExpType.MAP;
      return ANY;
  }
}

// ---------------------------------------------------------------------------------------
// Compiling

class Scope {
  private readonly names: Map<string, { slot: number; type: number }>[] = [new Map()];
  size = 0;

  define(name: string, type: number): number {
    const slot = this.size++;
    this.names[this.names.length - 1]!.set(name, { slot, type });
    return slot;
  }

  lookup(name: string): { slot: number; type: number } | undefined {
    for (let i = this.names.length - 1; i >= 0; i--) {
      const found = this.names[i]!.get(name);
      if (found !== undefined) return found;
    }
    return undefined;
  }

  enter(): void {
    this.names.push(new Map());
  }

  leave(): void {
    this.names.pop();
  }
}

const TYPE_NAMES = ['nil', 'bool', 'int', 'str', 'list', 'map', 'blob', 'float', 'geojson', 'hll'];
const typeName = (type: number) => (type === ANY ? 'any' : (TYPE_NAMES[type] ?? `type ${type}`));

function typeError(message: string): ShoalError {
  return invalidArgument(`expression type error: ${message}`);
}

function constant(value: Value): Compiled {
  return { type: typeOfValue(value as CdtValue), run: () => value, constant: { value } };
}

function compile(node: Node, scope: Scope): Compiled {
  if (node.kind === 'literal') {
    if (node.value instanceof CdtSpecial) return { type: ANY, run: () => node.value, constant: { value: node.value } };
    return { ...constant(node.value), type: node.type };
  }
  const compiler = COMPILERS.get(node.code);
  if (compiler === undefined) throw invalidArgument(`unknown or unsupported expression op code ${node.code}`);
  return compiler(node.args, scope);
}

type Compiler = (args: Node[], scope: Scope) => Compiled;

function argCount(args: Node[], name: string, min: number, max = min): void {
  if (args.length < min || args.length > max) throw invalidArgument(`${name} takes ${min === max ? min : `${min} to ${max}`} arguments, not ${args.length}`);
}

function expectType(compiled: Compiled, types: readonly number[], name: string, position: number): void {
  if (compiled.type === ANY || types.includes(compiled.type)) return;
  throw typeError(`${name} argument ${position + 1} is ${typeName(compiled.type)}, not ${types.map(typeName).join(' or ')}`);
}

function literalOf<T>(node: Node, check: (value: Value) => value is T, what: string): T {
  if (node.kind !== 'literal' || !check(node.value)) throw invalidArgument(`${what} must be a literal`);
  return node.value;
}

const isString = (value: Value): value is string => typeof value === 'string';
const isNumber = (value: Value): value is number => typeof value === 'number' && Number.isInteger(value);

// Values at run time: integers as numbers (bigints past 2^53), floats as numbers, and the rest as the collection engine's values.

function isIntegerValue(value: Value): value is number | bigint {
  return typeof value === 'bigint' || (typeof value === 'number' && Number.isInteger(value));
}

/** A value of the static type, or UNKNOWN when it is of another. */
function ofType(value: Value, type: number): Value {
  switch (type) {
    case ANY:
      return value;
    case ExpType.INT:
      return isIntegerValue(value) ? value : UNKNOWN;
    case ExpType.FLOAT:
      return typeof value === 'number' ? value : UNKNOWN;
    case ExpType.STR:
    case ExpType.GEOJSON:
      // Shoal stores GeoJSON as its text (docs/protocol.md, "Values").
      return typeof value === 'string' ? value : UNKNOWN;
    case ExpType.BOOL:
      return typeof value === 'boolean' ? value : UNKNOWN;
    case ExpType.BLOB:
      return value instanceof Uint8Array ? value : UNKNOWN;
    case ExpType.LIST:
      return value instanceof CdtList ? value : UNKNOWN;
    case ExpType.MAP:
      return value instanceof CdtMap ? value : UNKNOWN;
    case ExpType.NIL:
      return value === null ? value : UNKNOWN;
    default:
      return UNKNOWN;
  }
}

/** int64 arithmetic: exact while safe, wrapping at 64 bits past it. */
function int64(value: bigint): number | bigint {
  const wrapped = BigInt.asIntN(64, value);
  return wrapped >= -(2n ** 53n) && wrapped <= 2n ** 53n ? Number(wrapped) : wrapped;
}

function big(value: Value): bigint {
  return BigInt(value as number | bigint);
}

/** -1, 0, 1 for two values of one type (numbers by value; otherwise Aerospike's order). */
function compareTyped(a: Value, b: Value): number {
  if ((typeof a === 'number' || typeof a === 'bigint') && (typeof b === 'number' || typeof b === 'bigint')) return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'string' && typeof b === 'string') return compareStrings(a, b);
  return compareValues(a as CdtValue, b as CdtValue);
}

function comparison(name: string, test: (order: number) => boolean): Compiler {
  return (args, scope) => {
    argCount(args, name, 2);
    const left = compile(args[0]!, scope);
    const right = compile(args[1]!, scope);
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
      const compiled = compile(arg, scope);
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

function evaluateAll(parts: Compiled[], rt: Runtime): Value[] | typeof UNKNOWN {
  const values: Value[] = [];
  for (const part of parts) {
    const value = part.run(rt);
    if (value === UNKNOWN) return UNKNOWN;
    values.push(value);
  }
  return values;
}

/** add, sub, mul, div, min, max and the integer bit operations over any number of arguments. */
function varargs(name: string, minimum: number, only: number | undefined, apply: (values: Value[], float: boolean) => Value): Compiler {
  return (args, scope) => {
    if (args.length < minimum) throw invalidArgument(`${name} needs at least ${minimum} argument${minimum === 1 ? '' : 's'}`);
    const parts = args.map((arg) => compile(arg, scope));
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
      const compiled = compile(arg, scope);
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

const COMPILERS = new Map<number, Compiler>([
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

function compileRegex(args: Node[], scope: Scope): Compiled {
  argCount(args, 'cmpRegex', 3);
  const flags = literalOf(args[0]!, isNumber, 'cmpRegex flags');
  const source = literalOf(args[1]!, isString, 'cmpRegex pattern');
  const value = compile(args[2]!, scope);
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
function compileGeo(args: Node[], scope: Scope): Compiled {
  argCount(args, 'cmpGeo', 2);
  const sides = args.map((arg, i) => {
    const compiled = compile(arg, scope);
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

function compileInList(args: Node[], scope: Scope): Compiled {
  argCount(args, 'inList', 2);
  const value = compile(args[0]!, scope);
  const list = compile(args[1]!, scope);
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

function compileDigestModulo(args: Node[]): Compiled {
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

function compileKey(args: Node[]): Compiled {
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

function compileBin(args: Node[]): Compiled {
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

function compileBinType(args: Node[]): Compiled {
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

function compileCond(args: Node[], scope: Scope): Compiled {
  if (args.length < 3 || args.length % 2 === 0) throw invalidArgument('cond needs (test, value) pairs and a default: an odd count of at least 3');
  const parts = args.map((arg) => compile(arg, scope));
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

function compileLet(args: Node[], scope: Scope): Compiled {
  if (args.length < 1 || args.length % 2 === 0) throw invalidArgument('let needs (name, value) pairs and an expression');
  scope.enter();
  try {
    const definitions: [number, Compiled][] = [];
    for (let i = 0; i + 1 < args.length; i += 2) {
      const name = literalOf(args[i]!, isString, 'a let variable name');
      const value = compile(args[i + 1]!, scope);
      definitions.push([scope.define(name, value.type), value]);
    }
    const body = compile(args[args.length - 1]!, scope);
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

function compileVar(args: Node[], scope: Scope): Compiled {
  argCount(args, 'var', 1);
  const name = literalOf(args[0]!, isString, 'a variable name');
  const found = scope.lookup(name);
  if (found === undefined) throw invalidArgument(`var "${name}" is not defined by an enclosing let`);
  const slot = found.slot;
  return { type: found.type, run: (rt) => rt.vars[slot] };
}

function compileQuote(args: Node[]): Compiled {
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
function compileCall(args: Node[], scope: Scope): Compiled {
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
  const parts = operation.args.map((arg) => compile(arg, scope));
  const bin = compile(args[3]!, scope);
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
