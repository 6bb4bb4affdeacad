/**
 * The public builders of list and map operations (op.list.*, op.map.*) and of context paths
 * (cdt.*). An operation is plain data, { op: 'cdt', bin, payload }: its arguments are checked
 * here and encoded once into Aerospike's CDT op layout (args.ts), so it survives the cluster's
 * msgpack frames unchanged and the wire protocol can carry it 1:1.
 */
import { CONTEXT_LEVELS_MAX, OPERATION_PAYLOAD_BYTES_MAX } from '../../constants';
import { invalidArgument } from '../../errors';
import { encodeCdtValue } from '../bin-encoder';
import { checkBinName } from '../bins';
import { describe } from '../key';
import {
  CTX_CREATE_LIST_ORDERED,
  CTX_CREATE_LIST_UNORDERED,
  CTX_CREATE_LIST_UNORDERED_PADDED,
  CTX_CREATE_MAP_KEY_ORDERED,
  CTX_CREATE_MAP_KEY_VALUE_ORDERED,
  CTX_CREATE_MAP_UNORDERED,
  CTX_MARKER,
  CtxType,
  ListCode,
  ListOrder,
  MapCode,
  MapOrder,
  ReturnType,
} from './codes';
import { fromUser } from './convert';
import { CdtList, CdtMap, CdtValue, INF, WILDCARD } from './value';

/** A list or map operation for db.operate(). */
export interface CdtOperation {
  op: 'cdt';
  bin: string;
  /** The encoded operation: [code, args...] or [0xff, context, [code, args...]]. */
  payload: Buffer;
}

/** One level of a context path (build it with cdt.*). */
export interface ContextLevel {
  readonly type: number;
  readonly value: unknown;
}

export interface ContextOptions {
  /** The nested list or map to work on, outermost level first. */
  ctx?: readonly ContextLevel[];
}

export interface ListPolicy extends ContextOptions {
  /** The order of a list the operation creates: ListOrder.UNORDERED (default) or ORDERED. */
  order?: number;
  /** ListWriteFlags, combined with |. */
  writeFlags?: number;
}

export interface MapPolicy extends ContextOptions {
  /** The order of a map the operation creates: MapOrder.UNORDERED (default), KEY_ORDERED or KEY_VALUE_ORDERED. */
  order?: number;
  /** MapWriteFlags, combined with |. */
  writeFlags?: number;
}

const LIST_ORDERS: ReadonlySet<number> = new Set(Object.values(ListOrder));
const MAP_ORDERS: ReadonlySet<number> = new Set(Object.values(MapOrder));

let scratch = Buffer.allocUnsafe(256);

/** Encodes [code, ...args] (behind the context, if any) into a payload of its own. */
function payloadOf(code: number, args: CdtValue[], ctx: readonly ContextLevel[] | undefined): Buffer {
  const operation = new CdtList(0, [code, ...args]);
  const value = ctx === undefined || ctx.length === 0 ? operation : new CdtList(0, [CTX_MARKER, contextValue(ctx), operation]);
  for (;;) {
    const end = encodeCdtValue(scratch, 0, scratch.length, value, true);
    if (end >= 0) return Buffer.from(scratch.subarray(0, end));
    if (scratch.length >= OPERATION_PAYLOAD_BYTES_MAX) throw invalidArgument(`the operation's arguments encode to more than ${OPERATION_PAYLOAD_BYTES_MAX} bytes`);
    scratch = Buffer.allocUnsafe(Math.min(scratch.length * 4, OPERATION_PAYLOAD_BYTES_MAX));
  }
}

function contextValue(ctx: readonly ContextLevel[]): CdtList {
  if (!Array.isArray(ctx)) throw new TypeError('ctx must be an array of cdt.* context levels');
  if (ctx.length > CONTEXT_LEVELS_MAX) throw invalidArgument(`a context path has at most ${CONTEXT_LEVELS_MAX} levels`);
  const flat: CdtValue[] = [];
  ctx.forEach((level, i) => {
    if (level === null || typeof level !== 'object' || typeof level.type !== 'number') throw new TypeError(`ctx[${i}] is not a cdt.* context level`);
    flat.push(level.type, fromUser(level.value, `ctx[${i}]`, true));
  });
  return new CdtList(0, flat);
}

function operation(bin: string, code: number, args: CdtValue[], ctx: readonly ContextLevel[] | undefined): CdtOperation {
  if (typeof bin !== 'string') throw new TypeError(`a bin name must be a string, not ${describe(bin)}`);
  checkBinName(bin);
  return { op: 'cdt', bin, payload: payloadOf(code, args, ctx) };
}

function integer(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw invalidArgument(`${name} must be a safe integer, not ${describe(value)}`);
  return value;
}

/** A count argument: a non-negative integer; undefined or null means to the end (left out). */
function countArgs(count: unknown): CdtValue[] {
  if (count === undefined || count === null) return [];
  const value = integer(count, 'count');
  if (value < 0) throw invalidArgument(`count must not be negative, not ${value}`);
  return [value];
}

function returnTypeOf(returnType: unknown): number {
  const value = integer(returnType, 'returnType');
  if ((value & ~(ReturnType.INVERTED | 0xff)) !== 0) throw invalidArgument(`returnType ${value} is not a ReturnType`);
  return value;
}

function orderOf(order: unknown, orders: ReadonlySet<number>, what: string): number {
  const value = integer(order, `${what} order`);
  if (!orders.has(value)) throw invalidArgument(`${what} order ${value} is not one of ${[...orders].join(', ')}`);
  return value;
}

function flagsOf(flags: unknown, name: string): number {
  const value = integer(flags, name);
  if (value < 0 || value > 0xff) throw invalidArgument(`${name} ${value} is not a combination of write flags`);
  return value;
}

function value(item: unknown, what: string): CdtValue {
  return fromUser(item, what, false);
}

function comparison(item: unknown, what: string): CdtValue {
  return fromUser(item, what, true);
}

function listOf(items: unknown, what: string, specials: boolean): CdtValue {
  if (!Array.isArray(items)) throw invalidArgument(`${what} must be an array, not ${describe(items)}`);
  return fromUser(items, what, specials);
}

function mapOf(items: unknown, what: string): CdtValue {
  const converted = items === null || typeof items !== 'object' || Array.isArray(items) ? undefined : fromUser(items, what, false);
  if (!(converted instanceof CdtMap)) throw invalidArgument(`${what} must be a plain object or a Map, not ${describe(items)}`);
  return converted;
}

function checkOptions(options: ContextOptions | undefined): ContextOptions {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object') throw new TypeError('the options of a list or map operation must be an object');
  return options;
}

/** [order, writeFlags] of a list policy, or [] for no policy (Aerospike sends none then). */
function listPolicyArgs(policy: ListPolicy): CdtValue[] {
  if (policy.order === undefined && policy.writeFlags === undefined) return [];
  return [policy.order === undefined ? 0 : orderOf(policy.order, LIST_ORDERS, 'list'), flagsOf(policy.writeFlags ?? 0, 'writeFlags')];
}

function mapOrderArg(policy: MapPolicy): number {
  return policy.order === undefined ? 0 : orderOf(policy.order, MAP_ORDERS, 'map');
}

/** Reads and removes by one selector: [returnType, ...args]. */
function selector(code: number, defaultReturnType: number) {
  return (bin: string, args: CdtValue[], returnType: unknown, options: ContextOptions | undefined): CdtOperation =>
    operation(bin, code, [returnTypeOf(returnType ?? defaultReturnType), ...args], checkOptions(options).ctx);
}

const GET = ReturnType.VALUE;
const REMOVE = ReturnType.NONE;

/** List operations for db.operate() (Aerospike's list operations; docs/api.md). */
export const list = {
  /** Sets the list's order (ListOrder), sorting it when it becomes ORDERED; creates an empty list if the bin is missing. */
  setOrder: (bin: string, order: number, options?: ContextOptions) =>
    operation(bin, ListCode.SET_TYPE, [orderOf(order, LIST_ORDERS, 'list')], checkOptions(options).ctx),
  /** Creates a list with this order at the context's end (the last level created when missing). */
  create: (bin: string, order: number, options?: ContextOptions & { pad?: boolean }) => {
    const o = checkOptions(options) as ContextOptions & { pad?: boolean };
    const checked = orderOf(order, LIST_ORDERS, 'list');
    const ctx = o.ctx === undefined || o.ctx.length === 0 ? undefined : withCreate(o.ctx, listCreateFlag(checked, o.pad === true));
    return operation(bin, ListCode.SET_TYPE, [checked], ctx);
  },
  /** Sorts the list (ListSortFlags). */
  sort: (bin: string, flags = 0, options?: ContextOptions) => operation(bin, ListCode.SORT, [flagsOf(flags, 'sort flags')], checkOptions(options).ctx),
  /** Appends a value (in sorted position for an ordered list); returns the list's new size. */
  append: (bin: string, item: unknown, policy: ListPolicy = {}) =>
    operation(bin, ListCode.APPEND, [value(item, 'list.append value'), ...listPolicyArgs(checkOptions(policy) as ListPolicy)], policy.ctx),
  /** Appends every item of an array; returns the list's new size. */
  appendItems: (bin: string, items: unknown[], policy: ListPolicy = {}) =>
    operation(bin, ListCode.APPEND_ITEMS, [listOf(items, 'list.appendItems items', false), ...listPolicyArgs(checkOptions(policy) as ListPolicy)], policy.ctx),
  /** Inserts a value at an index (negative: from the end; past the end: padded with nils); returns the new size. */
  insert: (bin: string, index: number, item: unknown, policy: ListPolicy = {}) =>
    operation(bin, ListCode.INSERT, [integer(index, 'index'), value(item, 'list.insert value'), ...insertFlags(policy)], policy.ctx),
  insertItems: (bin: string, index: number, items: unknown[], policy: ListPolicy = {}) =>
    operation(bin, ListCode.INSERT_ITEMS, [integer(index, 'index'), listOf(items, 'list.insertItems items', false), ...insertFlags(policy)], policy.ctx),
  /** Replaces the value at an index (past the end: padded with nils). */
  set: (bin: string, index: number, item: unknown, policy: ListPolicy = {}) =>
    operation(bin, ListCode.SET, [integer(index, 'index'), value(item, 'list.set value'), ...insertFlags(policy)], policy.ctx),
  /** Adds to the number at an index (a missing element becomes the increment); returns the new value. */
  increment: (bin: string, index: number, by: number | bigint = 1, policy: ListPolicy = {}) =>
    operation(bin, ListCode.INCREMENT, [integer(index, 'index'), numberOf(by), ...listPolicyArgs(checkOptions(policy) as ListPolicy)], policy.ctx),
  /** Removes every element (the list stays, empty). */
  clear: (bin: string, options?: ContextOptions) => operation(bin, ListCode.CLEAR, [], checkOptions(options).ctx),
  /** The number of elements. */
  size: (bin: string, options?: ContextOptions) => operation(bin, ListCode.SIZE, [], checkOptions(options).ctx),
  /** The value at an index. */
  get: (bin: string, index: number, options?: ContextOptions) => operation(bin, ListCode.GET, [integer(index, 'index')], checkOptions(options).ctx),
  getRange: (bin: string, index: number, count?: number | null, options?: ContextOptions) =>
    operation(bin, ListCode.GET_RANGE, [integer(index, 'index'), ...countArgs(count)], checkOptions(options).ctx),
  /** Removes and returns the value at an index. */
  pop: (bin: string, index: number, options?: ContextOptions) => operation(bin, ListCode.POP, [integer(index, 'index')], checkOptions(options).ctx),
  popRange: (bin: string, index: number, count?: number | null, options?: ContextOptions) =>
    operation(bin, ListCode.POP_RANGE, [integer(index, 'index'), ...countArgs(count)], checkOptions(options).ctx),
  /** Removes the value at an index; returns 1. */
  remove: (bin: string, index: number, options?: ContextOptions) => operation(bin, ListCode.REMOVE, [integer(index, 'index')], checkOptions(options).ctx),
  removeRange: (bin: string, index: number, count?: number | null, options?: ContextOptions) =>
    operation(bin, ListCode.REMOVE_RANGE, [integer(index, 'index'), ...countArgs(count)], checkOptions(options).ctx),
  /** Keeps only [index, index + count); returns how many were removed. */
  trim: (bin: string, index: number, count: number, options?: ContextOptions) =>
    operation(bin, ListCode.TRIM, [integer(index, 'index'), ...countArgs(count)], checkOptions(options).ctx),

  getByIndex: (bin: string, index: number, returnType: number = GET, options?: ContextOptions) =>
    selector(ListCode.GET_BY_INDEX, GET)(bin, [integer(index, 'index')], returnType, options),
  getByIndexRange: (bin: string, index: number, count?: number | null, returnType: number = GET, options?: ContextOptions) =>
    selector(ListCode.GET_BY_INDEX_RANGE, GET)(bin, [integer(index, 'index'), ...countArgs(count)], returnType, options),
  getByValue: (bin: string, item: unknown, returnType: number = GET, options?: ContextOptions) =>
    selector(ListCode.GET_ALL_BY_VALUE, GET)(bin, [comparison(item, 'list.getByValue value')], returnType, options),
  getByValueList: (bin: string, items: unknown[], returnType: number = GET, options?: ContextOptions) =>
    selector(ListCode.GET_BY_VALUE_LIST, GET)(bin, [listOf(items, 'list.getByValueList values', true)], returnType, options),
  /** Values in [begin, end): begin null is the lowest value, end null or undefined the highest (INF). */
  getByValueRange: (bin: string, begin: unknown, end: unknown, returnType: number = GET, options?: ContextOptions) =>
    selector(ListCode.GET_BY_VALUE_INTERVAL, GET)(bin, rangeArgs(begin, end, 'list.getByValueRange'), returnType, options),
  getByValueRelRankRange: (bin: string, item: unknown, rank: number, count?: number | null, returnType: number = GET, options?: ContextOptions) =>
    selector(ListCode.GET_BY_VALUE_REL_RANK_RANGE, GET)(bin, [comparison(item, 'list.getByValueRelRankRange value'), integer(rank, 'rank'), ...countArgs(count)], returnType, options),
  getByRank: (bin: string, rank: number, returnType: number = GET, options?: ContextOptions) =>
    selector(ListCode.GET_BY_RANK, GET)(bin, [integer(rank, 'rank')], returnType, options),
  getByRankRange: (bin: string, rank: number, count?: number | null, returnType: number = GET, options?: ContextOptions) =>
    selector(ListCode.GET_BY_RANK_RANGE, GET)(bin, [integer(rank, 'rank'), ...countArgs(count)], returnType, options),

  removeByIndex: (bin: string, index: number, returnType: number = REMOVE, options?: ContextOptions) =>
    selector(ListCode.REMOVE_BY_INDEX, REMOVE)(bin, [integer(index, 'index')], returnType, options),
  removeByIndexRange: (bin: string, index: number, count?: number | null, returnType: number = REMOVE, options?: ContextOptions) =>
    selector(ListCode.REMOVE_BY_INDEX_RANGE, REMOVE)(bin, [integer(index, 'index'), ...countArgs(count)], returnType, options),
  removeByValue: (bin: string, item: unknown, returnType: number = REMOVE, options?: ContextOptions) =>
    selector(ListCode.REMOVE_ALL_BY_VALUE, REMOVE)(bin, [comparison(item, 'list.removeByValue value')], returnType, options),
  removeByValueList: (bin: string, items: unknown[], returnType: number = REMOVE, options?: ContextOptions) =>
    selector(ListCode.REMOVE_BY_VALUE_LIST, REMOVE)(bin, [listOf(items, 'list.removeByValueList values', true)], returnType, options),
  removeByValueRange: (bin: string, begin: unknown, end: unknown, returnType: number = REMOVE, options?: ContextOptions) =>
    selector(ListCode.REMOVE_BY_VALUE_INTERVAL, REMOVE)(bin, rangeArgs(begin, end, 'list.removeByValueRange'), returnType, options),
  removeByValueRelRankRange: (bin: string, item: unknown, rank: number, count?: number | null, returnType: number = REMOVE, options?: ContextOptions) =>
    selector(ListCode.REMOVE_BY_VALUE_REL_RANK_RANGE, REMOVE)(bin, [comparison(item, 'list.removeByValueRelRankRange value'), integer(rank, 'rank'), ...countArgs(count)], returnType, options),
  removeByRank: (bin: string, rank: number, returnType: number = REMOVE, options?: ContextOptions) =>
    selector(ListCode.REMOVE_BY_RANK, REMOVE)(bin, [integer(rank, 'rank')], returnType, options),
  removeByRankRange: (bin: string, rank: number, count?: number | null, returnType: number = REMOVE, options?: ContextOptions) =>
    selector(ListCode.REMOVE_BY_RANK_RANGE, REMOVE)(bin, [integer(rank, 'rank'), ...countArgs(count)], returnType, options),
};

/** Insert and set send only the write flags (an insert never creates an ordered list). */
function insertFlags(policy: ListPolicy): CdtValue[] {
  checkOptions(policy);
  return policy.writeFlags === undefined ? [] : [flagsOf(policy.writeFlags, 'writeFlags')];
}

function numberOf(by: unknown): CdtValue {
  if (!(typeof by === 'bigint' || (typeof by === 'number' && Number.isFinite(by)))) throw invalidArgument(`the increment must be a finite number or a bigint, not ${describe(by)}`);
  return value(by, 'increment');
}

function rangeArgs(begin: unknown, end: unknown, what: string): CdtValue[] {
  const args = [begin === undefined ? null : comparison(begin, `${what} begin`)];
  if (end !== undefined && end !== null) args.push(comparison(end, `${what} end`));
  return args;
}

/** Map operations for db.operate() (Aerospike's map operations; docs/api.md). */
export const map = {
  /** Sets the map's order (MapOrder), sorting it by key when it becomes key ordered; creates an empty map if missing. */
  setOrder: (bin: string, order: number, options?: ContextOptions) =>
    operation(bin, MapCode.SET_TYPE, [orderOf(order, MAP_ORDERS, 'map')], checkOptions(options).ctx),
  /** Creates a map with this order at the context's end (the last level created when missing). */
  create: (bin: string, order: number, options?: ContextOptions) => {
    const o = checkOptions(options);
    const checked = orderOf(order, MAP_ORDERS, 'map');
    const ctx = o.ctx === undefined || o.ctx.length === 0 ? undefined : withCreate(o.ctx, mapCreateFlag(checked));
    return operation(bin, MapCode.SET_TYPE, [checked], ctx);
  },
  /** Sets key to value (MapWriteFlags: CREATE_ONLY, UPDATE_ONLY, NO_FAIL); returns the map's size. */
  put: (bin: string, key: unknown, item: unknown, policy: MapPolicy = {}) =>
    operation(bin, MapCode.PUT, [value(key, 'map.put key'), value(item, 'map.put value'), ...mapPolicyArgs(checkOptions(policy) as MapPolicy)], policy.ctx),
  /** Sets every entry of a plain object or Map (PARTIAL with NO_FAIL: the allowed ones); returns the map's size. */
  putItems: (bin: string, items: Record<string, unknown> | Map<unknown, unknown>, policy: MapPolicy = {}) =>
    operation(bin, MapCode.PUT_ITEMS, [mapOf(items, 'map.putItems items'), ...mapPolicyArgs(checkOptions(policy) as MapPolicy)], policy.ctx),
  /** Adds to the number at a key (a missing key gets the increment); returns the new value. */
  increment: (bin: string, key: unknown, by: number | bigint = 1, policy: MapPolicy = {}) =>
    operation(bin, MapCode.INCREMENT, [value(key, 'map.increment key'), numberOf(by), mapOrderArg(checkOptions(policy) as MapPolicy)], policy.ctx),
  decrement: (bin: string, key: unknown, by: number | bigint = 1, policy: MapPolicy = {}) =>
    operation(bin, MapCode.DECREMENT, [value(key, 'map.decrement key'), numberOf(by), mapOrderArg(checkOptions(policy) as MapPolicy)], policy.ctx),
  clear: (bin: string, options?: ContextOptions) => operation(bin, MapCode.CLEAR, [], checkOptions(options).ctx),
  size: (bin: string, options?: ContextOptions) => operation(bin, MapCode.SIZE, [], checkOptions(options).ctx),

  getByKey: (bin: string, key: unknown, returnType: number = GET, options?: ContextOptions) =>
    selector(MapCode.GET_BY_KEY, GET)(bin, [value(key, 'map.getByKey key')], returnType, options),
  getByKeyList: (bin: string, keys: unknown[], returnType: number = GET, options?: ContextOptions) =>
    selector(MapCode.GET_BY_KEY_LIST, GET)(bin, [listOf(keys, 'map.getByKeyList keys', false)], returnType, options),
  /** Keys in [begin, end): begin null is the lowest key, end null or undefined the highest (INF). */
  getByKeyRange: (bin: string, begin: unknown, end: unknown, returnType: number = GET, options?: ContextOptions) =>
    selector(MapCode.GET_BY_KEY_INTERVAL, GET)(bin, rangeArgs(begin, end, 'map.getByKeyRange'), returnType, options),
  getByKeyRelIndexRange: (bin: string, key: unknown, index: number, count?: number | null, returnType: number = GET, options?: ContextOptions) =>
    selector(MapCode.GET_BY_KEY_REL_INDEX_RANGE, GET)(bin, [comparison(key, 'map.getByKeyRelIndexRange key'), integer(index, 'index'), ...countArgs(count)], returnType, options),
  getByValue: (bin: string, item: unknown, returnType: number = GET, options?: ContextOptions) =>
    selector(MapCode.GET_ALL_BY_VALUE, GET)(bin, [comparison(item, 'map.getByValue value')], returnType, options),
  getByValueList: (bin: string, items: unknown[], returnType: number = GET, options?: ContextOptions) =>
    selector(MapCode.GET_BY_VALUE_LIST, GET)(bin, [listOf(items, 'map.getByValueList values', true)], returnType, options),
  getByValueRange: (bin: string, begin: unknown, end: unknown, returnType: number = GET, options?: ContextOptions) =>
    selector(MapCode.GET_BY_VALUE_INTERVAL, GET)(bin, rangeArgs(begin, end, 'map.getByValueRange'), returnType, options),
  getByValueRelRankRange: (bin: string, item: unknown, rank: number, count?: number | null, returnType: number = GET, options?: ContextOptions) =>
    selector(MapCode.GET_BY_VALUE_REL_RANK_RANGE, GET)(bin, [comparison(item, 'map.getByValueRelRankRange value'), integer(rank, 'rank'), ...countArgs(count)], returnType, options),
  getByIndex: (bin: string, index: number, returnType: number = GET, options?: ContextOptions) =>
    selector(MapCode.GET_BY_INDEX, GET)(bin, [integer(index, 'index')], returnType, options),
  getByIndexRange: (bin: string, index: number, count?: number | null, returnType: number = GET, options?: ContextOptions) =>
    selector(MapCode.GET_BY_INDEX_RANGE, GET)(bin, [integer(index, 'index'), ...countArgs(count)], returnType, options),
  getByRank: (bin: string, rank: number, returnType: number = GET, options?: ContextOptions) =>
    selector(MapCode.GET_BY_RANK, GET)(bin, [integer(rank, 'rank')], returnType, options),
  getByRankRange: (bin: string, rank: number, count?: number | null, returnType: number = GET, options?: ContextOptions) =>
    selector(MapCode.GET_BY_RANK_RANGE, GET)(bin, [integer(rank, 'rank'), ...countArgs(count)], returnType, options),

  removeByKey: (bin: string, key: unknown, returnType: number = REMOVE, options?: ContextOptions) =>
    selector(MapCode.REMOVE_BY_KEY, REMOVE)(bin, [value(key, 'map.removeByKey key')], returnType, options),
  removeByKeyList: (bin: string, keys: unknown[], returnType: number = REMOVE, options?: ContextOptions) =>
    selector(MapCode.REMOVE_BY_KEY_LIST, REMOVE)(bin, [listOf(keys, 'map.removeByKeyList keys', false)], returnType, options),
  removeByKeyRange: (bin: string, begin: unknown, end: unknown, returnType: number = REMOVE, options?: ContextOptions) =>
    selector(MapCode.REMOVE_BY_KEY_INTERVAL, REMOVE)(bin, rangeArgs(begin, end, 'map.removeByKeyRange'), returnType, options),
  removeByKeyRelIndexRange: (bin: string, key: unknown, index: number, count?: number | null, returnType: number = REMOVE, options?: ContextOptions) =>
    selector(MapCode.REMOVE_BY_KEY_REL_INDEX_RANGE, REMOVE)(bin, [comparison(key, 'map.removeByKeyRelIndexRange key'), integer(index, 'index'), ...countArgs(count)], returnType, options),
  removeByValue: (bin: string, item: unknown, returnType: number = REMOVE, options?: ContextOptions) =>
    selector(MapCode.REMOVE_ALL_BY_VALUE, REMOVE)(bin, [comparison(item, 'map.removeByValue value')], returnType, options),
  removeByValueList: (bin: string, items: unknown[], returnType: number = REMOVE, options?: ContextOptions) =>
    selector(MapCode.REMOVE_BY_VALUE_LIST, REMOVE)(bin, [listOf(items, 'map.removeByValueList values', true)], returnType, options),
  removeByValueRange: (bin: string, begin: unknown, end: unknown, returnType: number = REMOVE, options?: ContextOptions) =>
    selector(MapCode.REMOVE_BY_VALUE_INTERVAL, REMOVE)(bin, rangeArgs(begin, end, 'map.removeByValueRange'), returnType, options),
  removeByValueRelRankRange: (bin: string, item: unknown, rank: number, count?: number | null, returnType: number = REMOVE, options?: ContextOptions) =>
    selector(MapCode.REMOVE_BY_VALUE_REL_RANK_RANGE, REMOVE)(bin, [comparison(item, 'map.removeByValueRelRankRange value'), integer(rank, 'rank'), ...countArgs(count)], returnType, options),
  removeByIndex: (bin: string, index: number, returnType: number = REMOVE, options?: ContextOptions) =>
    selector(MapCode.REMOVE_BY_INDEX, REMOVE)(bin, [integer(index, 'index')], returnType, options),
  removeByIndexRange: (bin: string, index: number, count?: number | null, returnType: number = REMOVE, options?: ContextOptions) =>
    selector(MapCode.REMOVE_BY_INDEX_RANGE, REMOVE)(bin, [integer(index, 'index'), ...countArgs(count)], returnType, options),
  removeByRank: (bin: string, rank: number, returnType: number = REMOVE, options?: ContextOptions) =>
    selector(MapCode.REMOVE_BY_RANK, REMOVE)(bin, [integer(rank, 'rank')], returnType, options),
  removeByRankRange: (bin: string, rank: number, count?: number | null, returnType: number = REMOVE, options?: ContextOptions) =>
    selector(MapCode.REMOVE_BY_RANK_RANGE, REMOVE)(bin, [integer(rank, 'rank'), ...countArgs(count)], returnType, options),
};

/** [order, writeFlags] of a map policy; [order] alone when there are no flags (as Aerospike's clients send). */
function mapPolicyArgs(policy: MapPolicy): CdtValue[] {
  const order = mapOrderArg(policy);
  return policy.writeFlags === undefined || policy.writeFlags === 0 ? [order] : [order, flagsOf(policy.writeFlags, 'writeFlags')];
}

function listCreateFlag(order: number, pad: boolean): number {
  return order === ListOrder.ORDERED ? CTX_CREATE_LIST_ORDERED : pad ? CTX_CREATE_LIST_UNORDERED_PADDED : CTX_CREATE_LIST_UNORDERED;
}

function mapCreateFlag(order: number): number {
  return order === MapOrder.KEY_VALUE_ORDERED ? CTX_CREATE_MAP_KEY_VALUE_ORDERED : order === MapOrder.KEY_ORDERED ? CTX_CREATE_MAP_KEY_ORDERED : CTX_CREATE_MAP_UNORDERED;
}

/** The context with the last level's create flag set (how Aerospike's list/map create works). */
function withCreate(ctx: readonly ContextLevel[], flag: number): ContextLevel[] {
  const levels = [...ctx];
  const last = levels[levels.length - 1]!;
  levels[levels.length - 1] = { type: (last.type & ~0xc0) | flag, value: last.value };
  return levels;
}

function level(type: number, value: unknown): ContextLevel {
  return Object.freeze({ type, value });
}

/**
 * Context path levels for nested list and map operations, and the comparison values INF and
 * WILDCARD. A `*Create` level makes its container (with the order given) when it is missing.
 */
export const cdt = {
  /** The list element at an index (negative: from the end). */
  listIndex: (index: number) => level(CtxType.LIST_INDEX, integer(index, 'index')),
  /** listIndex that creates the list (ListOrder; pad: allow an index past the end, padded with nils) when it is missing. */
  listIndexCreate: (index: number, order: number = ListOrder.UNORDERED, pad = false) =>
    level(CtxType.LIST_INDEX | listCreateFlag(orderOf(order, LIST_ORDERS, 'list'), pad), integer(index, 'index')),
  /** The list element of a rank (0: smallest, -1: largest). */
  listRank: (rank: number) => level(CtxType.LIST_RANK, integer(rank, 'rank')),
  /** The first list element equal to a value. */
  listValue: (item: unknown) => level(CtxType.LIST_VALUE, item),
  /** The map value at a key. */
  mapKey: (key: unknown) => level(CtxType.MAP_KEY, key),
  /** mapKey that creates the map (MapOrder) and the key when missing. */
  mapKeyCreate: (key: unknown, order: number = MapOrder.UNORDERED) => level(CtxType.MAP_KEY | mapCreateFlag(orderOf(order, MAP_ORDERS, 'map')), key),
  /** The map value at an index in key order. */
  mapIndex: (index: number) => level(CtxType.MAP_INDEX, integer(index, 'index')),
  /** The map value of a rank in value order. */
  mapRank: (rank: number) => level(CtxType.MAP_RANK, integer(rank, 'rank')),
  /** The first map value equal to a value. */
  mapValue: (item: unknown) => level(CtxType.MAP_VALUE, item),
  /** Sorts after every value: the open end of a value or key range. */
  INF,
  /** Equals any value: [1, WILDCARD] matches every list that starts with 1. */
  WILDCARD,
};
