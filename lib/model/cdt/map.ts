/**
 * Map operations with Aerospike's semantics (the server's particle_map.c), over CdtMaps. A
 * map's index is the position of a key in key order (for an unordered map too); its rank is
 * the position of a value in value order. Key-ordered maps are stored sorted by key, so their
 * index reads and key ranges need no sort.
 */
import { ErrorCode, ShoalError } from '../../errors';
import type { OperationArgs } from './args';
import { MapCode, MapWriteFlags } from './codes';
import { sortMapByKey } from './convert';
import { NIL_RESULT, NOTHING, Outcome, addNumbers, incrementOf, rankOfValue, valueInterval, valueListPositions } from './list';
import { compareValues, lowerBound } from './order';
import {
  Elements,
  Picked,
  applyInverted,
  buildResult,
  checkReturnType,
  notApplicable,
  parameterError,
  rangeOf,
  relativeRange,
  removePositions,
  singlePosition,
} from './select';
import { CdtMap, CdtValue, INF, PERSIST_INDEX, isMapKey, isNumeric } from './value';

export type MapRun = (map: CdtMap | undefined, args: OperationArgs) => Outcome;

/** Checks map order attributes: UNORDERED (0), KEY_ORDERED (1) or KEY_VALUE_ORDERED (3), persist-index ignored. */
function checkMapOrder(order: number): number {
  const flags = order & ~PERSIST_INDEX;
  if ((order & ~(0x03 | PERSIST_INDEX)) !== 0 || flags === 0x02) throw notApplicable(`map order ${order} is not UNORDERED (0), KEY_ORDERED (1) or KEY_VALUE_ORDERED (3)`);
  return flags;
}

function targetOf(map: CdtMap | undefined, order: number): [CdtMap, boolean] {
  return map === undefined ? [new CdtMap(checkMapOrder(order), [], []), true] : [map, false];
}

/** The position of `key`, or -1. */
export function findKey(map: CdtMap, key: CdtValue): number {
  if (map.keyOrdered) {
    const at = lowerBound(map.keys, key);
    return at < map.keys.length && compareValues(map.keys[at]!, key) === 0 ? at : -1;
  }
  for (let i = 0; i < map.keys.length; i++) if (compareValues(map.keys[i]!, key) === 0) return i;
  return -1;
}

/** Sets key to value: in place when the key is there, else in key order (key ordered) or at the end. */
export function putEntry(map: CdtMap, key: CdtValue, value: CdtValue): void {
  const at = findKey(map, key);
  if (at >= 0) {
    map.values[at] = value;
    return;
  }
  const position = map.keyOrdered ? lowerBound(map.keys, key) : map.keys.length;
  map.keys.splice(position, 0, key);
  map.values.splice(position, 0, value);
}

function checkKey(key: CdtValue): void {
  if (!isMapKey(key)) throw parameterError('a map key must be an integer, a string or bytes');
}

// ---------------------------------------------------------------------------------------
// Writes

const setType: MapRun = (map, args) => {
  const flags = checkMapOrder(args.int(0, 'order'));
  if (map === undefined) return { result: undefined, changed: true, created: new CdtMap(flags, [], []) };
  if (flags === map.flags) return NOTHING;
  const wasKeyOrdered = map.keyOrdered;
  map.flags = flags;
  if (map.keyOrdered && !wasKeyOrdered) sortMapByKey(map);
  return { result: undefined, changed: true };
};

/** Which puts a write allows: overwriting present keys, creating absent ones. */
interface PutControl {
  overwrite: boolean;
  create: boolean;
  noFail: boolean;
  partial: boolean;
}

function controlOf(flags: number): PutControl {
  const noFail = (flags & MapWriteFlags.NO_FAIL) !== 0;
  return {
    overwrite: (flags & MapWriteFlags.CREATE_ONLY) === 0,
    create: (flags & MapWriteFlags.UPDATE_ONLY) === 0,
    noFail,
    partial: noFail && (flags & MapWriteFlags.PARTIAL) !== 0,
  };
}

/** Why a put of `key` is refused under `control`, or undefined when it is allowed. */
function refusal(map: CdtMap, key: CdtValue, control: PutControl): ShoalError | undefined {
  const present = findKey(map, key) >= 0;
  if (present && !control.overwrite) return new ShoalError(ErrorCode.ELEMENT_EXISTS, 'the map already holds the key (CREATE_ONLY)');
  if (!present && !control.create) return new ShoalError(ErrorCode.ELEMENT_NOT_FOUND, 'the map does not hold the key (UPDATE_ONLY)');
  return undefined;
}

function putItems(created: boolean, target: CdtMap, keys: readonly CdtValue[], values: readonly CdtValue[], control: PutControl): Outcome {
  const accepted: number[] = [];
  for (let i = 0; i < keys.length; i++) {
    checkKey(keys[i]!);
    const refused = refusal(target, keys[i]!, control);
    if (refused === undefined) accepted.push(i);
    else if (!control.partial) {
      if (control.noFail) return created ? { result: target.size, changed: true, created: target } : { result: target.size, changed: false };
      throw refused;
    }
  }
  for (const i of accepted) putEntry(target, keys[i]!, values[i]!);
  const result = target.size;
  if (created) return { result, changed: true, created: target };
  return { result, changed: accepted.length > 0 };
}

/** put (and add, replace): `flags` fixed for add (CREATE_ONLY) and replace (UPDATE_ONLY), else the argument after the order. */
function put(fixedFlags: number | undefined, items: boolean): MapRun {
  return (existing, args) => {
    let keys: CdtValue[];
    let values: CdtValue[];
    let next: number;
    if (items) {
      const given = args.map(0, 'items');
      keys = given.keys;
      values = given.values;
      next = 1;
    } else {
      keys = [args.value(0, 'key')];
      values = [args.value(1, 'value')];
      next = 2;
    }
    const order = fixedFlags === MapWriteFlags.UPDATE_ONLY ? 0 : args.int(next, 'order', 0);
    const flags = fixedFlags ?? args.int(next + 1, 'write flags', 0);
    const [map, created] = targetOf(existing, order);
    return putItems(created, map, keys, values, controlOf(flags));
  };
}

function increment(negate: boolean): MapRun {
  return (existing, args) => {
    const key = args.value(0, 'key');
    checkKey(key);
    const delta = incrementOf(args, 1, negate);
    const [map, created] = targetOf(existing, args.int(2, 'order', 0));
    const at = findKey(map, key);
    const current = at >= 0 ? map.values[at]! : undefined;
    if (current !== undefined && !isNumeric(current)) throw parameterError('the value at the key is not a number');
    const value = addNumbers(current, delta);
    putEntry(map, key, value);
    return created ? { result: value, changed: true, created: map } : { result: value, changed: true };
  };
}

const clear: MapRun = (map) => {
  if (map === undefined) return NOTHING;
  map.keys.length = 0;
  map.values.length = 0;
  return { result: undefined, changed: true };
};

const size: MapRun = (map) => (map === undefined ? NIL_RESULT : { result: map.size, changed: false });

// ---------------------------------------------------------------------------------------
// Reads and removes

type Picker = (map: CdtMap, args: OperationArgs, multi: boolean) => Picked;

function byPicker(picker: Picker, multi: boolean, remove: boolean): MapRun {
  return (map, args) => {
    const returnType = args.int(0, 'return type');
    if (map === undefined) return remove ? NOTHING : NIL_RESULT;
    checkReturnType(returnType, true, multi);
    const picked = applyInverted(picker(map, args, multi), returnType, map.size);
    const result = buildResult(Elements.ofMap(map), picked, returnType, multi, true);
    if (!remove || picked.positions.length === 0) return { result, changed: false };
    removePositions([map.keys, map.values], picked.positions);
    return { result, changed: true };
  };
}

const byKey: Picker = (map, args) => {
  const at = findKey(map, args.compare(1, 'key'));
  return { positions: at < 0 ? [] : [at], ranksAscending: false };
};

const byKeyList: Picker = (map, args) => ({ positions: valueListPositions(map.keys, args.list(1, 'keys', true).items), ranksAscending: false });

const byKeyInterval: Picker = (map, args) => ({
  positions: valueInterval(map.keys, map.keyOrdered, args.compare(1, 'begin'), args.compare(2, 'end', INF), false),
  ranksAscending: false,
});

function indexRange(map: CdtMap, index: number, count: number, multi: boolean): Picked {
  const order = Elements.ofMap(map).keyOrder();
  if (!multi) {
    const position = singlePosition(index, map.size);
    if (position < 0) throw notApplicable(`index ${index} is out of range for a map of ${map.size}`);
    return { positions: [order[position]!], ranksAscending: false };
  }
  const [start, length] = rangeOf(index, count, map.size);
  return { positions: order.slice(start, start + length), ranksAscending: false };
}

const byIndex: Picker = (map, args, multi) => indexRange(map, args.int(1, 'index'), multi ? args.rangeCount(2, 'count') : 1, multi);

const byKeyRelativeIndex: Picker = (map, args) => {
  const relative = rankOfValue(map.keys, map.keyOrdered, args.compare(1, 'key'));
  const [index, count] = relativeRange(args.int(2, 'index'), args.rangeCount(3, 'count'), relative);
  return indexRange(map, index, count, true);
};

function rankRange(map: CdtMap, rank: number, count: number, multi: boolean): Picked {
  const order = Elements.ofMap(map).rankOrder();
  if (!multi) {
    const position = singlePosition(rank, map.size);
    if (position < 0) throw notApplicable(`rank ${rank} is out of range for a map of ${map.size}`);
    return { positions: [order[position]!], ranksAscending: true };
  }
  const [start, length] = rangeOf(rank, count, map.size);
  return { positions: order.slice(start, start + length), ranksAscending: true };
}

const byRank: Picker = (map, args, multi) => rankRange(map, args.int(1, 'rank'), multi ? args.rangeCount(2, 'count') : 1, multi);

const byValue: Picker = (map, args) => ({ positions: valueInterval(map.values, false, args.compare(1, 'value'), null, true), ranksAscending: true });

const byValueList: Picker = (map, args) => ({ positions: valueListPositions(map.values, args.list(1, 'values', true).items), ranksAscending: true });

const byValueInterval: Picker = (map, args) => ({
  positions: valueInterval(map.values, false, args.compare(1, 'begin'), args.compare(2, 'end', INF), false),
  ranksAscending: true,
});

const byValueRelativeRank: Picker = (map, args) => {
  const relative = rankOfValue(map.values, false, args.compare(1, 'value'));
  const [rank, count] = relativeRange(args.int(2, 'rank'), args.rangeCount(3, 'count'), relative);
  return rankRange(map, rank, count, true);
};

/** Every map operation by op code. */
export const MAP_OPERATIONS: ReadonlyMap<number, { name: string; modify: boolean; run: MapRun }> = new Map([
  [MapCode.SET_TYPE, { name: 'map.setOrder', modify: true, run: setType }],
  [MapCode.ADD, { name: 'map.add', modify: true, run: put(MapWriteFlags.CREATE_ONLY, false) }],
  [MapCode.ADD_ITEMS, { name: 'map.addItems', modify: true, run: put(MapWriteFlags.CREATE_ONLY, true) }],
  [MapCode.PUT, { name: 'map.put', modify: true, run: put(undefined, false) }],
  [MapCode.PUT_ITEMS, { name: 'map.putItems', modify: true, run: put(undefined, true) }],
  [MapCode.REPLACE, { name: 'map.replace', modify: true, run: put(MapWriteFlags.UPDATE_ONLY, false) }],
  [MapCode.REPLACE_ITEMS, { name: 'map.replaceItems', modify: true, run: put(MapWriteFlags.UPDATE_ONLY, true) }],
  [MapCode.INCREMENT, { name: 'map.increment', modify: true, run: increment(false) }],
  [MapCode.DECREMENT, { name: 'map.decrement', modify: true, run: increment(true) }],
  [MapCode.CLEAR, { name: 'map.clear', modify: true, run: clear }],
  [MapCode.SIZE, { name: 'map.size', modify: false, run: size }],
  [MapCode.GET_BY_KEY, { name: 'map.getByKey', modify: false, run: byPicker(byKey, false, false) }],
  [MapCode.GET_BY_KEY_LIST, { name: 'map.getByKeyList', modify: false, run: byPicker(byKeyList, true, false) }],
  [MapCode.GET_BY_KEY_INTERVAL, { name: 'map.getByKeyRange', modify: false, run: byPicker(byKeyInterval, true, false) }],
  [MapCode.GET_BY_KEY_REL_INDEX_RANGE, { name: 'map.getByKeyRelIndexRange', modify: false, run: byPicker(byKeyRelativeIndex, true, false) }],
  [MapCode.GET_BY_INDEX, { name: 'map.getByIndex', modify: false, run: byPicker(byIndex, false, false) }],
  [MapCode.GET_BY_INDEX_RANGE, { name: 'map.getByIndexRange', modify: false, run: byPicker(byIndex, true, false) }],
  [MapCode.GET_BY_RANK, { name: 'map.getByRank', modify: false, run: byPicker(byRank, false, false) }],
  [MapCode.GET_BY_RANK_RANGE, { name: 'map.getByRankRange', modify: false, run: byPicker(byRank, true, false) }],
  [MapCode.GET_ALL_BY_VALUE, { name: 'map.getByValue', modify: false, run: byPicker(byValue, true, false) }],
  [MapCode.GET_BY_VALUE_LIST, { name: 'map.getByValueList', modify: false, run: byPicker(byValueList, true, false) }],
  [MapCode.GET_BY_VALUE_INTERVAL, { name: 'map.getByValueRange', modify: false, run: byPicker(byValueInterval, true, false) }],
  [MapCode.GET_BY_VALUE_REL_RANK_RANGE, { name: 'map.getByValueRelRankRange', modify: false, run: byPicker(byValueRelativeRank, true, false) }],
  [MapCode.REMOVE_BY_KEY, { name: 'map.removeByKey', modify: true, run: byPicker(byKey, false, true) }],
  [MapCode.REMOVE_BY_KEY_LIST, { name: 'map.removeByKeyList', modify: true, run: byPicker(byKeyList, true, true) }],
  [MapCode.REMOVE_BY_KEY_INTERVAL, { name: 'map.removeByKeyRange', modify: true, run: byPicker(byKeyInterval, true, true) }],
  [MapCode.REMOVE_BY_KEY_REL_INDEX_RANGE, { name: 'map.removeByKeyRelIndexRange', modify: true, run: byPicker(byKeyRelativeIndex, true, true) }],
  [MapCode.REMOVE_BY_INDEX, { name: 'map.removeByIndex', modify: true, run: byPicker(byIndex, false, true) }],
  [MapCode.REMOVE_BY_INDEX_RANGE, { name: 'map.removeByIndexRange', modify: true, run: byPicker(byIndex, true, true) }],
  [MapCode.REMOVE_BY_RANK, { name: 'map.removeByRank', modify: true, run: byPicker(byRank, false, true) }],
  [MapCode.REMOVE_BY_RANK_RANGE, { name: 'map.removeByRankRange', modify: true, run: byPicker(byRank, true, true) }],
  [MapCode.REMOVE_ALL_BY_VALUE, { name: 'map.removeByValue', modify: true, run: byPicker(byValue, true, true) }],
  [MapCode.REMOVE_BY_VALUE_LIST, { name: 'map.removeByValueList', modify: true, run: byPicker(byValueList, true, true) }],
  [MapCode.REMOVE_BY_VALUE_INTERVAL, { name: 'map.removeByValueRange', modify: true, run: byPicker(byValueInterval, true, true) }],
  [MapCode.REMOVE_BY_VALUE_REL_RANK_RANGE, { name: 'map.removeByValueRelRankRange', modify: true, run: byPicker(byValueRelativeRank, true, true) }],
]);
