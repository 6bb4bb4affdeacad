/**
 * The values the collection (CDT) engine works on, and their conversion to and from the values
 * users see. Scalars are JS primitives (bytes as Uint8Array); lists and maps are CdtList and
 * CdtMap, which carry their order flags and, for maps, keys of any allowed type in their stored
 * order. docs/record-payload.md describes how they are stored, docs/api.md how users see them.
 */
import { ErrorCode, ShoalError } from '../../errors';

/** List flags, stored in the list's ext header (Aerospike's AS_PACKED_LIST_FLAG_*). */
export const LIST_ORDERED = 0x01;
/** Map flags (Aerospike's AS_PACKED_MAP_FLAG_*): key ordered, and key-value ordered (0x03). */
export const MAP_KEY_ORDERED = 0x01;
export const MAP_KEY_VALUE_ORDERED = 0x03;
/**
 * The flag of a KEY_VALUE result (Aerospike's AS_PACKED_MAP_FLAG_PRESERVE_ORDER): the entries in
 * the order selected. Aerospike clients read such a map as a list of key, value, key, value;
 * it is never stored (writing the value back keeps only the order bits).
 */
export const MAP_PRESERVE_ORDER = 0x08;
/** Aerospike's persist-index flag: accepted on set-order operations and ignored (Shoal keeps no offset index). */
export const PERSIST_INDEX = 0x10;

/** An element of a list, a map key or a map value. */
export type CdtValue = null | boolean | number | bigint | string | Uint8Array | CdtList | CdtMap | CdtSpecial;

/** A list: its items in stored order (sorted when ordered). */
export class CdtList {
  constructor(
    public flags: number,
    public items: CdtValue[],
  ) {}

  get ordered(): boolean {
    return (this.flags & LIST_ORDERED) !== 0;
  }
}

/** A map: keys and values in stored order (sorted by key when key ordered), never a repeated key. */
export class CdtMap {
  constructor(
    public flags: number,
    public keys: CdtValue[],
    public values: CdtValue[],
  ) {}

  get keyOrdered(): boolean {
    return (this.flags & MAP_KEY_ORDERED) !== 0;
  }

  get size(): number {
    return this.keys.length;
  }
}

/**
 * Aerospike's comparison-only values: INF sorts after everything, WILDCARD equals anything. They
 * may appear in operation arguments (value ranges, value lists), never in stored data.
 */
export class CdtSpecial {
  constructor(readonly kind: 'inf' | 'wildcard') {}
}

export const INF = new CdtSpecial('inf');
export const WILDCARD = new CdtSpecial('wildcard');

/**
 * The order flags of a list, plain object or Map that Shoal decoded from an ordered collection.
 * The property is not enumerable, so users never see it; writing the value back (a put that
 * merges bins, op.write) keeps its order, and the encoder re-sorts it in case it was edited.
 */
export const CDT_FLAGS: unique symbol = Symbol('shoal.cdtFlags');

/** The hidden order flags of a user value, 0 when it has none. */
export function flagsOf(value: object): number {
  const flags = (value as { [CDT_FLAGS]?: unknown })[CDT_FLAGS];
  return typeof flags === 'number' ? flags : 0;
}

/** Marks a decoded user value with its collection's order flags. */
export function setFlags<T extends object>(value: T, flags: number): T {
  if (flags !== 0) Object.defineProperty(value, CDT_FLAGS, { value: flags, enumerable: false, writable: true, configurable: true });
  return value;
}

/** A deep copy of a value: lists and maps copied at every level (scalars are immutable). */
export function copyValue(value: CdtValue): CdtValue {
  if (value instanceof CdtList) return new CdtList(value.flags, value.items.map(copyValue));
  if (value instanceof CdtMap) return new CdtMap(value.flags, value.keys.map(copyValue), value.values.map(copyValue));
  return value;
}

/** Whether a value is an integer in the CDT sense: a bigint, or a number with no fraction within int64. */
export function isInteger(value: CdtValue): value is number | bigint {
  return typeof value === 'bigint' || (typeof value === 'number' && Number.isInteger(value) && Math.abs(value) <= 2 ** 63);
}

/** Whether a value is numeric (integer or double). */
export function isNumeric(value: CdtValue): value is number | bigint {
  return typeof value === 'number' || typeof value === 'bigint';
}

/** Whether a value may be a map key: an integer, a string or bytes (Aerospike's rule). */
export function isMapKey(value: CdtValue): boolean {
  return typeof value === 'string' || value instanceof Uint8Array || isInteger(value);
}

/** A CdtValue as users see it: arrays, plain objects (string keys) or Maps, Buffers. */
export function toUser(value: CdtValue): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof CdtList) {
    const items = new Array(value.items.length);
    for (let i = 0; i < items.length; i++) items[i] = toUser(value.items[i]!);
    return setFlags(items, value.flags);
  }
  if (value instanceof CdtMap) return setFlags(mapToUser(value.keys, value.values), value.flags);
  throw new ShoalError(ErrorCode.INVALID_ARGUMENT, 'a comparison value (INF, WILDCARD) cannot be returned');
}

/** Keys and values as a plain object when every key is a string, else as a Map. */
export function mapToUser(keys: readonly CdtValue[], values: readonly CdtValue[]): Record<string, unknown> | Map<unknown, unknown> {
  let allStrings = true;
  for (let i = 0; i < keys.length && allStrings; i++) allStrings = typeof keys[i] === 'string';
  if (allStrings) {
    const object: Record<string, unknown> = {};
    for (let i = 0; i < keys.length; i++) defineEntry(object, keys[i] as string, toUser(values[i]!));
    return object;
  }
  const map = new Map<unknown, unknown>();
  for (let i = 0; i < keys.length; i++) map.set(toUser(keys[i]!), toUser(values[i]!));
  return map;
}

/** Sets a property, including one named "__proto__", as an own enumerable data property. */
export function defineEntry(object: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
  else object[key] = value;
}

/**
 * A value already encoded: bytes source[start, end) copied verbatim when a payload is written
 * (the bins operate() left untouched). `extended` says whether they may hold what only payload
 * format 2 can carry (order flags, maps with keys that are not strings).
 */
export class EncodedValue {
  constructor(
    readonly source: Buffer,
    readonly start: number,
    readonly end: number,
    readonly extended: boolean,
  ) {}
}

/**
 * Bins operate() never looked at: `count` whole name/value entries at source[start, end), copied
 * verbatim after the bins the operations named (under the ENCODED_ENTRIES key of a Bins object).
 */
export class EncodedEntries {
  constructor(
    readonly source: Buffer,
    readonly start: number,
    readonly end: number,
    readonly count: number,
    readonly extended: boolean,
  ) {}
}

/** The key of a Bins object's EncodedEntries (a symbol: for...in and Object.keys never see it). */
export const ENCODED_ENTRIES: unique symbol = Symbol('shoal.encodedEntries');
