/**
 * User values into CdtValues: the arguments of list and map operations, and values written
 * with their hidden order flags (value.ts CDT_FLAGS). Everything a bin may hold is accepted,
 * plus null (nil) at any depth, Maps, and INF / WILDCARD where a comparison value is allowed.
 */
import { BIN_VALUE_DEPTH_MAX } from '../../constants';
import { invalidArgument } from '../../errors';
import { describe } from '../key';
import { compareValues } from './order';
import { CdtList, CdtMap, CdtSpecial, CdtValue, LIST_ORDERED, flagsOf, isMapKey } from './value';

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * Converts a user value, checking it on the way.
 * @param what names the value in error messages ("list.append value").
 * @param specials whether INF and WILDCARD are allowed (comparison arguments).
 * @throws ShoalError INVALID_ARGUMENT naming `what` for anything that cannot be stored.
 */
export function fromUser(value: unknown, what: string, specials: boolean): CdtValue {
  return convert(value, what, specials, 0);
}

function convert(value: unknown, what: string, specials: boolean, depth: number): CdtValue {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (!Number.isFinite(value)) throw invalidArgument(`${what}: ${String(value)} is not a finite number`);
      return value;
    case 'bigint':
      if (value < INT64_MIN || value > INT64_MAX) throw invalidArgument(`${what}: bigint outside the int64 range`);
      return value;
    case 'object':
      if (value === null) return null;
      if (depth >= BIN_VALUE_DEPTH_MAX) throw invalidArgument(`${what}: values nest deeper than ${BIN_VALUE_DEPTH_MAX} levels`);
      if (value instanceof Uint8Array) return value;
      if (Array.isArray(value)) return convertList(value, what, specials, depth);
      if (value instanceof Map) return convertMap([...value.keys()], [...value.values()], flagsOf(value), what, specials, depth, true);
      if (value instanceof CdtSpecial) {
        if (!specials) throw invalidArgument(`${what}: INF and WILDCARD are only allowed in value ranges and value lists`);
        return value;
      }
      if (isPlainObject(value)) {
        const keys = Object.keys(value);
        // A plain object's keys are distinct strings: no need to look for repeats.
        return convertMap(keys, keys.map((key) => (value as Record<string, unknown>)[key]), flagsOf(value), what, specials, depth, false);
      }
      break;
    default:
      break;
  }
  throw invalidArgument(`${what}: ${describe(value)} is not a storable value (string, number, bigint, boolean, Buffer, array, plain object, Map, null)`);
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function convertList(value: unknown[], what: string, specials: boolean, depth: number): CdtList {
  const items = new Array<CdtValue>(value.length);
  for (let i = 0; i < value.length; i++) items[i] = convert(value[i], what, specials, depth + 1);
  const flags = flagsOf(value) & LIST_ORDERED;
  if (flags !== 0 && !sortedByKey(items)) items.sort(compareValues);
  return new CdtList(flags, items);
}

function convertMap(
  userKeys: unknown[],
  userValues: unknown[],
  hiddenFlags: number,
  what: string,
  specials: boolean,
  depth: number,
  mayRepeat: boolean,
): CdtMap {
  const keys = new Array<CdtValue>(userKeys.length);
  const values = new Array<CdtValue>(userKeys.length);
  const seen = mayRepeat ? new Set<string>() : undefined;
  for (let i = 0; i < keys.length; i++) {
    const key = convert(userKeys[i], what, false, depth + 1);
    if (!isMapKey(key)) throw invalidArgument(`${what}: a map key must be a string, an integer or bytes, not ${describe(userKeys[i])}`);
    if (seen !== undefined) {
      const canonical = canonicalKey(key);
      if (seen.has(canonical)) throw invalidArgument(`${what}: the map has the key ${describe(userKeys[i])} twice (an integer as number and bigint, or equal Buffers)`);
      seen.add(canonical);
    }
    keys[i] = key;
    values[i] = convert(userValues[i], what, specials, depth + 1);
  }
  const map = new CdtMap(hiddenFlags & 0x03, keys, values);
  if (map.keyOrdered && !sortedByKey(map.keys)) sortMapByKey(map);
  return map;
}

/** Whether keys are in order already (a map read back and written unchanged). */
function sortedByKey(keys: readonly CdtValue[]): boolean {
  for (let i = 1; i < keys.length; i++) if (compareValues(keys[i - 1]!, keys[i]!) > 0) return false;
  return true;
}

/** A string naming a map key's value, equal for equal keys of any representation. */
export function canonicalKey(key: CdtValue): string {
  if (typeof key === 'string') return `s${key}`;
  if (key instanceof Uint8Array) return `b${Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex')}`;
  return `i${BigInt(key as number | bigint).toString()}`;
}

/** Sorts a map's entries by key (key-ordered maps are stored that way). */
export function sortMapByKey(map: CdtMap): void {
  const order = map.keys.map((_, i) => i).sort((x, y) => compareValues(map.keys[x]!, map.keys[y]!));
  map.keys = order.map((i) => map.keys[i]!);
  map.values = order.map((i) => map.values[i]!);
}
