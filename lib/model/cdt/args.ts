/**
 * An operation payload, parsed: [code, arg...] or, with a context path,
 * [0xff, [ctxType, ctxValue, ...], [code, arg...]] (Aerospike's CDT op layout). Arguments are
 * located once and decoded when an operation asks for them, each checked for the type it must
 * have; a missing optional argument takes its default.
 */
import { ARGUMENT, decodeCdt, endOfLast, lastContainerCount, readContainerHeader, skipValue } from './decode';
import { CTX_MARKER } from './codes';
import { parameterError } from './select';
import { CdtList, CdtMap, CdtSpecial, CdtValue, isInteger } from './value';

const INT64_MAX = 2n ** 63n - 1n;

/** One level of a context path. */
export interface ContextItem {
  type: number;
  value: CdtValue;
}

export class OperationArgs {
  /** Where each argument starts in the payload, and where the last one ends. */
  private readonly starts: number[] = [];
  private end = 0;
  private readonly decoded = new Map<number, CdtValue>();
  readonly code: number;
  readonly context: ContextItem[] = [];

  /**
   * @throws ShoalError INVALID_ARGUMENT when the payload is not an operation.
   */
  constructor(readonly payload: Buffer) {
    let at = 0;
    const end = payload.length;
    if (readContainerHeader(payload, at, end, ARGUMENT) !== 'list' || lastContainerCount() === 0) throw parameterError('an operation payload must be a non-empty MessagePack array');
    let count = lastContainerCount();
    at = endOfLast();
    let first = decodeCdt(payload, at, end, ARGUMENT);
    if (first === CTX_MARKER && count === 3) {
      at = skipValue(payload, at, end, ARGUMENT);
      this.readContext(at, end);
      at = skipValue(payload, at, end, ARGUMENT);
      if (readContainerHeader(payload, at, end, ARGUMENT) !== 'list' || lastContainerCount() === 0) throw parameterError('the operation after a context must be a non-empty array');
      count = lastContainerCount();
      at = endOfLast();
      first = decodeCdt(payload, at, end, ARGUMENT);
    }
    if (typeof first !== 'number' || !Number.isInteger(first) || first < 0 || first > 0xff) throw parameterError('an operation payload must start with its op code');
    this.code = first;
    at = skipValue(payload, at, end, ARGUMENT);
    for (let i = 1; i < count; i++) {
      this.starts.push(at);
      at = skipValue(payload, at, end, ARGUMENT);
    }
    this.end = at;
    if (at !== end) throw parameterError(`an operation payload has ${end - at} bytes after its last argument`);
  }

  private readContext(at: number, end: number): void {
    const value = decodeCdt(this.payload, at, end, ARGUMENT);
    if (!(value instanceof CdtList) || value.items.length === 0 || value.items.length % 2 !== 0) {
      throw parameterError('a context must be a non-empty array of (type, value) pairs');
    }
    for (let i = 0; i < value.items.length; i += 2) {
      const type = value.items[i];
      if (typeof type !== 'number' || !Number.isInteger(type) || type < 0 || type > 0xffff) throw parameterError(`context item ${i / 2} has no type`);
      this.context.push({ type, value: value.items[i + 1]! });
    }
  }

  /** How many arguments follow the op code. */
  get count(): number {
    return this.starts.length;
  }

  has(index: number): boolean {
    return index < this.starts.length;
  }

  /** The payload bytes of argument `index`: [start, end). */
  bytesOf(index: number): [number, number] {
    return [this.starts[index]!, index + 1 < this.starts.length ? this.starts[index + 1]! : this.end];
  }

  private argument(index: number): CdtValue {
    let value = this.decoded.get(index);
    if (value === undefined && !this.decoded.has(index)) {
      const [start, end] = this.bytesOf(index);
      value = decodeCdt(this.payload, start, end, ARGUMENT);
      this.decoded.set(index, value);
    }
    return value as CdtValue;
  }

  /** An integer argument (index, rank, flags), or `fallback` when absent. */
  int(index: number, name: string, fallback?: number): number {
    if (!this.has(index)) {
      if (fallback === undefined) throw parameterError(`the ${name} argument is missing`);
      return fallback;
    }
    const value = this.argument(index);
    if (!isInteger(value)) throw parameterError(`the ${name} argument must be an integer`);
    if (typeof value === 'bigint') {
      if (value > INT64_MAX) throw parameterError(`the ${name} argument is out of range`);
      return Number(value);
    }
    return value;
  }

  /** A count argument: a non-negative integer, or to the end when absent. */
  rangeCount(index: number, name: string): number {
    if (!this.has(index)) return Number.POSITIVE_INFINITY;
    const value = this.int(index, name);
    if (value < 0) throw parameterError(`the ${name} argument must not be negative`);
    return value;
  }

  /** A value to store: anything but INF and WILDCARD. */
  value(index: number, name: string): CdtValue {
    if (!this.has(index)) throw parameterError(`the ${name} argument is missing`);
    const value = this.argument(index);
    if (containsSpecial(value)) throw parameterError(`the ${name} argument holds INF or WILDCARD, which cannot be stored`);
    return value;
  }

  /** A value compared against (INF and WILDCARD allowed), or `fallback` when absent. */
  compare(index: number, name: string, fallback?: CdtValue): CdtValue {
    if (!this.has(index)) {
      if (fallback === undefined) throw parameterError(`the ${name} argument is missing`);
      return fallback;
    }
    return this.argument(index);
  }

  list(index: number, name: string, specials: boolean): CdtList {
    const value = specials ? this.compare(index, name) : this.value(index, name);
    if (!(value instanceof CdtList)) throw parameterError(`the ${name} argument must be a list`);
    return value;
  }

  map(index: number, name: string): CdtMap {
    const value = this.value(index, name);
    if (!(value instanceof CdtMap)) throw parameterError(`the ${name} argument must be a map`);
    return value;
  }
}

/** Whether a value holds INF or WILDCARD anywhere. */
export function containsSpecial(value: CdtValue): boolean {
  if (value instanceof CdtSpecial) return true;
  if (value instanceof CdtList) return value.items.some(containsSpecial);
  if (value instanceof CdtMap) return value.keys.some(containsSpecial) || value.values.some(containsSpecial);
  return false;
}
