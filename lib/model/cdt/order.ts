/**
 * Aerospike's order of values across types, which ordered lists and maps are sorted by and
 * which ranks, value ranges and value lookups use (the server's msgpack_cmp):
 *
 *   nil < false < true < integer < string < list < map < bytes < double < (geojson) < WILDCARD < INF
 *
 * Integers and doubles compare by value within their type; strings and bytes byte by byte
 * (strings as UTF-8), a prefix first; lists element by element, a shorter list first when one
 * is a prefix of the other; maps by entry count first, then key, value, key, value... in stored
 * order. A WILDCARD anywhere makes the whole comparison equal, so [1, WILDCARD] matches every
 * list that starts with 1.
 */
import { CdtList, CdtMap, CdtSpecial, CdtValue, INF, isInteger } from './value';

const NIL = 1;
const FALSE = 2;
const TRUE = 3;
const INTEGER = 4;
const STRING = 6;
const LIST = 7;
const MAP = 8;
const BYTES = 9;
const DOUBLE = 10;
const WILDCARD_TYPE = 13;
const INF_TYPE = 14;

/** Returned inside a comparison when a WILDCARD was met: equal, and stop comparing. */
const MATCHED = 2;

/** The type's place in Aerospike's order. */
export function typeOrder(value: CdtValue): number {
  switch (typeof value) {
    case 'boolean':
      return value ? TRUE : FALSE;
    case 'string':
      return STRING;
    case 'bigint':
      return INTEGER;
    case 'number':
      return isInteger(value) ? INTEGER : DOUBLE;
    default:
      if (value === null) return NIL;
      if (value instanceof Uint8Array) return BYTES;
      if (value instanceof CdtList) return LIST;
      if (value instanceof CdtMap) return MAP;
      return (value as CdtSpecial) === INF ? INF_TYPE : WILDCARD_TYPE;
  }
}

/** -1, 0 or 1 as a sorts before, with or after b. */
export function compareValues(a: CdtValue, b: CdtValue): number {
  const result = compare(a, b);
  return result === MATCHED ? 0 : result;
}

/** Whether a equals b (a WILDCARD in either matches). */
export function valuesEqual(a: CdtValue, b: CdtValue): boolean {
  return compareValues(a, b) === 0;
}

function compare(a: CdtValue, b: CdtValue): number {
  const typeA = typeOrder(a);
  const typeB = typeOrder(b);
  if (typeA === WILDCARD_TYPE || typeB === WILDCARD_TYPE) return MATCHED;
  if (typeA !== typeB) return typeA < typeB ? -1 : 1;
  switch (typeA) {
    case INTEGER:
    case DOUBLE:
      return (a as number | bigint) < (b as number | bigint) ? -1 : (a as number | bigint) > (b as number | bigint) ? 1 : 0;
    case STRING:
      return compareStrings(a as string, b as string);
    case BYTES:
      return Buffer.compare(a as Uint8Array, b as Uint8Array);
    case LIST:
      return compareLists((a as CdtList).items, (b as CdtList).items);
    case MAP:
      return compareMaps(a as CdtMap, b as CdtMap);
    default:
      return 0;
  }
}

function compareLists(a: readonly CdtValue[], b: readonly CdtValue[]): number {
  const shorter = Math.min(a.length, b.length);
  for (let i = 0; i < shorter; i++) {
    const result = compare(a[i]!, b[i]!);
    if (result !== 0) return result;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

function compareMaps(a: CdtMap, b: CdtMap): number {
  if (a.keys.length !== b.keys.length) return a.keys.length < b.keys.length ? -1 : 1;
  for (let i = 0; i < a.keys.length; i++) {
    let result = compare(a.keys[i]!, b.keys[i]!);
    if (result !== 0) return result;
    result = compare(a.values[i]!, b.values[i]!);
    if (result !== 0) return result;
  }
  return 0;
}

/**
 * Strings in UTF-8 byte order, which is code point order: UTF-16 code units compare the same
 * way except that surrogates (U+D800..DFFF, the halves of code points past U+FFFF) must sort
 * after U+E000..FFFF.
 */
export function compareStrings(a: string, b: string): number {
  const shorter = Math.min(a.length, b.length);
  for (let i = 0; i < shorter; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x < 0xe000 ? x + 0x2000 : x - 0x800;
      y = y < 0xe000 ? y + 0x2000 : y - 0x800;
    }
    return x < y ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** Indices 0..n-1 of `values` sorted by value, ties by index: the rank order. */
export function rankOrder(values: readonly CdtValue[]): number[] {
  const order = new Array<number>(values.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  order.sort((x, y) => compareValues(values[x]!, values[y]!) || x - y);
  return order;
}

/** The first position in sorted `values` whose value is not less than `value` (lower bound). */
export function lowerBound(values: readonly CdtValue[], value: CdtValue): number {
  let low = 0;
  let high = values.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareValues(values[middle]!, value) < 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** The first position in sorted `values` whose value is greater than `value` (upper bound). */
export function upperBound(values: readonly CdtValue[], value: CdtValue): number {
  let low = 0;
  let high = values.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareValues(values[middle]!, value) <= 0) low = middle + 1;
    else high = middle;
  }
  return low;
}
