/**
 * The static types and run-time values of compiled expressions (compile.ts): what an
 * expression sees of a record, UNKNOWN, the compiled form of a node, the scope of variables,
 * the checks of arguments and types every operator shares, and the value helpers (int64
 * arithmetic, typed comparison).
 */
import { ShoalError, invalidArgument } from '../../errors';
import { compareStrings, compareValues } from '../cdt/order';
import { CdtList, CdtMap, CdtValue } from '../cdt/value';
import type { KeyValue } from '../key';
import { ANY, ExpType } from './codes';
import { typeOfValue, type Node } from './parse';

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
export type Value = unknown;

export interface Runtime {
  record: ExpRecord;
  vars: Value[];
  nowMs: number;
}

export type Run = (rt: Runtime) => Value;

export interface Compiled {
  type: number;
  run: Run;
  /** Set when the value is known at compile time. */
  constant?: { value: Value };
}

/** The variables in scope while compiling (let, var), and the compiler of nested nodes. */
export class Scope {
  private readonly names: Map<string, { slot: number; type: number }>[] = [new Map()];
  size = 0;

  /** @param compileNode compiles one node in a scope (compile.ts). */
  constructor(private readonly compileNode: (node: Node, scope: Scope) => Compiled) {}

  /** Compiles a nested node in this scope. */
  compile(node: Node): Compiled {
    return this.compileNode(node, this);
  }

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

export const TYPE_NAMES = ['nil', 'bool', 'int', 'str', 'list', 'map', 'blob', 'float', 'geojson', 'hll'];
export const typeName = (type: number) => (type === ANY ? 'any' : (TYPE_NAMES[type] ?? `type ${type}`));

export function typeError(message: string): ShoalError {
  return invalidArgument(`expression type error: ${message}`);
}

export function constant(value: Value): Compiled {
  return { type: typeOfValue(value as CdtValue), run: () => value, constant: { value } };
}

export type Compiler = (args: Node[], scope: Scope) => Compiled;

export function argCount(args: Node[], name: string, min: number, max = min): void {
  if (args.length < min || args.length > max) throw invalidArgument(`${name} takes ${min === max ? min : `${min} to ${max}`} arguments, not ${args.length}`);
}

export function expectType(compiled: Compiled, types: readonly number[], name: string, position: number): void {
  if (compiled.type === ANY || types.includes(compiled.type)) return;
  throw typeError(`${name} argument ${position + 1} is ${typeName(compiled.type)}, not ${types.map(typeName).join(' or ')}`);
}

export function literalOf<T>(node: Node, check: (value: Value) => value is T, what: string): T {
  if (node.kind !== 'literal' || !check(node.value)) throw invalidArgument(`${what} must be a literal`);
  return node.value;
}

export const isString = (value: Value): value is string => typeof value === 'string';
export const isNumber = (value: Value): value is number => typeof value === 'number' && Number.isInteger(value);

// Values at run time: integers as numbers (bigints past 2^53), floats as numbers, and the rest as the collection engine's values.

export function isIntegerValue(value: Value): value is number | bigint {
  return typeof value === 'bigint' || (typeof value === 'number' && Number.isInteger(value));
}

/** A value of the static type, or UNKNOWN when it is of another. */
export function ofType(value: Value, type: number): Value {
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
export function int64(value: bigint): number | bigint {
  const wrapped = BigInt.asIntN(64, value);
  return wrapped >= -(2n ** 53n) && wrapped <= 2n ** 53n ? Number(wrapped) : wrapped;
}

export function big(value: Value): bigint {
  return BigInt(value as number | bigint);
}

/** -1, 0, 1 for two values of one type (numbers by value; otherwise Aerospike's order). */
export function compareTyped(a: Value, b: Value): number {
  if ((typeof a === 'number' || typeof a === 'bigint') && (typeof b === 'number' || typeof b === 'bigint')) return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'string' && typeof b === 'string') return compareStrings(a, b);
  return compareValues(a as CdtValue, b as CdtValue);
}


export function evaluateAll(parts: Compiled[], rt: Runtime): Value[] | typeof UNKNOWN {
  const values: Value[] = [];
  for (const part of parts) {
    const value = part.run(rt);
    if (value === UNKNOWN) return UNKNOWN;
    values.push(value);
  }
  return values;
}
