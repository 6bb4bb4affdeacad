/**
 * List operations with Aerospike's semantics (the server's particle_list.c), over CdtLists.
 * Each takes the list the operation addresses (undefined when the bin or element is missing)
 * and its arguments, changes the list in place or creates one, and returns its result.
 */
import { ErrorCode, ShoalError } from '../../errors';
import type { OperationArgs } from './args';
import { ListCode, ListWriteFlags, ReturnType } from './codes';
import { compareValues, lowerBound, upperBound, valuesEqual } from './order';
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
  span,
} from './select';
import { CdtList, CdtValue, INF as INF_VALUE, LIST_ORDERED, PERSIST_INDEX, isInteger, isNumeric } from './value';

/** What an operation did. */
export interface Outcome {
  /** Its result; undefined when it returns nothing. */
  result: CdtValue | undefined;
  /** Whether it changed its target (in place, or by creating it). */
  changed: boolean;
  /** The target it created where there was none. */
  created?: CdtValue;
}

export const NOTHING: Outcome = { result: undefined, changed: false };

/** A read of a missing bin: nil. */
export const NIL_RESULT: Outcome = { result: null, changed: false };

export type ListRun = (list: CdtList | undefined, args: OperationArgs) => Outcome;

function exists(message: string): ShoalError {
  return new ShoalError(ErrorCode.ELEMENT_EXISTS, message);
}

function checkListOrder(order: number): number {
  if ((order & ~(LIST_ORDERED | PERSIST_INDEX)) !== 0) throw notApplicable(`list order ${order} is not UNORDERED (0) or ORDERED (1)`);
  return order & LIST_ORDERED;
}

/** The list to change, created with `order` when missing. */
function targetOf(list: CdtList | undefined, order: number): [CdtList, boolean] {
  return list === undefined ? [new CdtList(checkListOrder(order), []), true] : [list, false];
}

function changed(list: CdtList, created: boolean, result: CdtValue | undefined): Outcome {
  return created ? { result, changed: true, created: list } : { result, changed: true };
}

/** A no-op write: the list as it was (a missing one still comes into being, as Aerospike's empty static list). */
function unchanged(list: CdtList, created: boolean, result: CdtValue | undefined): Outcome {
  return created ? { result, changed: true, created: list } : { result, changed: false };
}

function contains(list: CdtList, value: CdtValue): boolean {
  if (list.ordered) {
    const at = lowerBound(list.items, value);
    return at < list.items.length && valuesEqual(list.items[at]!, value);
  }
  return list.items.some((item) => valuesEqual(item, value));
}

/**
 * The values an add-unique write keeps (all of them without ADD_UNIQUE), or undefined when
 * the write must do nothing (NO_FAIL).
 * @throws ShoalError ELEMENT_EXISTS for a value already in the list, OP_NOT_APPLICABLE for a
 *   value given twice (unless NO_FAIL / PARTIAL allow it).
 */
function uniqueValues(list: CdtList, values: readonly CdtValue[], flags: number, dropsDuplicatesFirst: boolean): CdtValue[] | undefined {
  if ((flags & ListWriteFlags.ADD_UNIQUE) === 0) return [...values];
  const noFail = (flags & ListWriteFlags.NO_FAIL) !== 0;
  const partial = noFail && (flags & ListWriteFlags.PARTIAL) !== 0;
  const kept: CdtValue[] = [];
  for (let i = 0; i < values.length; i++) {
    const value = values[i]!;
    const repeated = values.slice(0, i).some((earlier) => valuesEqual(earlier, value));
    const present = contains(list, value);
    if (repeated && (dropsDuplicatesFirst || !present)) {
      if (!noFail) throw notApplicable('the items hold the same value twice and ADD_UNIQUE is set');
      if (!partial) return undefined;
      continue;
    }
    if (present) {
      if (partial) continue;
      if (noFail) return undefined;
      throw exists('the list already holds the value (ADD_UNIQUE)');
    }
    kept.push(value);
  }
  if (kept.length === 0 && values.length > 0) {
    if (noFail) return undefined;
    throw exists('the list already holds every value (ADD_UNIQUE)');
  }
  return kept;
}

function insertSorted(list: CdtList, value: CdtValue): void {
  list.items.splice(upperBound(list.items, value), 0, value);
}

// ---------------------------------------------------------------------------------------
// Writes

const setType: ListRun = (list, args) => {
  const flags = checkListOrder(args.int(0, 'order'));
  if (list === undefined) return { result: undefined, changed: true, created: new CdtList(flags, []) };
  if (flags === list.flags) return NOTHING;
  list.flags = flags;
  if (list.ordered) list.items.sort(compareValues);
  return { result: undefined, changed: true };
};

function append(items: boolean): ListRun {
  return (existing, args) => {
    const values = items ? args.list(0, 'items', false).items : [args.value(0, 'value')];
    const [list, created] = targetOf(existing, args.int(1, 'order', 0));
    const flags = args.int(2, 'write flags', 0);
    if (values.length === 0) return unchanged(list, created, list.items.length);
    if (list.ordered) {
      const sorted = [...values].sort(compareValues);
      const kept = uniqueValues(list, sorted, flags, true);
      if (kept === undefined) return unchanged(list, created, list.items.length);
      for (const value of kept) insertSorted(list, value);
    } else {
      const kept = uniqueValues(list, values, flags, false);
      if (kept === undefined) return unchanged(list, created, list.items.length);
      list.items.push(...kept);
    }
    return changed(list, created, list.items.length);
  };
}

/** Inserts values at an index of an unordered list (padding with nils past the end). */
function insertAt(list: CdtList, created: boolean, index: number, values: readonly CdtValue[], flags: number, result: (size: number) => CdtValue | undefined): Outcome {
  const size = list.items.length;
  const position = index < 0 ? size + index : index;
  if (position < 0) throw notApplicable(`index ${index} is out of range for a list of ${size}`);
  if ((flags & ListWriteFlags.INSERT_BOUNDED) !== 0 && position > size) {
    if ((flags & ListWriteFlags.NO_FAIL) !== 0) return unchanged(list, created, result(size));
    throw notApplicable(`index ${index} is past the end of a list of ${size} (INSERT_BOUNDED)`);
  }
  const kept = uniqueValues(list, values, flags, false);
  if (kept === undefined) return unchanged(list, created, result(size));
  while (list.items.length < position) list.items.push(null);
  list.items.splice(position, 0, ...kept);
  return changed(list, created, result(list.items.length));
}

function insert(items: boolean): ListRun {
  return (existing, args) => {
    const index = args.int(0, 'index');
    const values = items ? args.list(1, 'items', false).items : [args.value(1, 'value')];
    const flags = args.int(2, 'write flags', 0);
    const [list, created] = targetOf(existing, 0);
    if (list.ordered) throw notApplicable('insert is not allowed on an ORDERED list');
    if (values.length === 0) return unchanged(list, created, list.items.length);
    return insertAt(list, created, index, values, flags, (size) => size);
  };
}

const set: ListRun = (existing, args) => {
  const index = args.int(0, 'index');
  const value = args.value(1, 'value');
  const flags = args.int(2, 'write flags', 0);
  const [list, created] = targetOf(existing, 0);
  if (list.ordered) throw notApplicable('set is not allowed on an ORDERED list');
  return setAt(list, created, index, value, flags);
};

function setAt(list: CdtList, created: boolean, index: number, value: CdtValue, flags: number): Outcome {
  const size = list.items.length;
  if (index >= size) return insertAt(list, created, index, [value], flags, () => undefined);
  const position = singlePosition(index, size);
  if (position < 0) throw notApplicable(`index ${index} is out of range for a list of ${size}`);
  if ((flags & ListWriteFlags.ADD_UNIQUE) !== 0 && list.items.some((item, i) => i !== position && valuesEqual(item, value))) {
    if ((flags & ListWriteFlags.NO_FAIL) !== 0) return unchanged(list, created, undefined);
    throw exists('the list already holds the value (ADD_UNIQUE)');
  }
  list.items[position] = value;
  return changed(list, created, undefined);
}

const increment: ListRun = (existing, args) => {
  const index = args.int(0, 'index');
  const delta = incrementOf(args, 1, false);
  const [list, created] = targetOf(existing, args.int(2, 'order', 0));
  const flags = args.int(3, 'write flags', 0);
  const size = list.items.length;
  const position = index < 0 ? size + index : index;
  if (position < 0 || index > 0x7fff_ffff) throw notApplicable(`index ${index} is out of range for a list of ${size}`);
  const current = position < size ? list.items[position]! : undefined;
  if (current !== undefined && !isNumeric(current)) throw parameterError(`the element at index ${index} is not a number`);
  const value = addNumbers(current, delta);
  if (!list.ordered) {
    const outcome = setAt(list, created, position, value, flags);
    return { ...outcome, result: value };
  }
  if (position > size) throw notApplicable(`index ${index} is past the end of an ORDERED list of ${size}`);
  if (position < size) list.items.splice(position, 1);
  if ((flags & ListWriteFlags.ADD_UNIQUE) !== 0 && contains(list, value)) {
    if (position < size) list.items.splice(position, 0, current!);
    if ((flags & ListWriteFlags.NO_FAIL) !== 0) return unchanged(list, created, value);
    throw exists('the list already holds the incremented value (ADD_UNIQUE)');
  }
  insertSorted(list, value);
  return changed(list, created, value);
};

/**
 * The increment argument `index` of a list or map increment: a number (default 1; nil is 1),
 * negated for a decrement.
 * @throws ShoalError INVALID_ARGUMENT when it is not a number.
 */
export function incrementOf(args: OperationArgs, index: number, negate: boolean): number | bigint {
  const delta = args.has(index) ? args.value(index, 'increment') : null;
  if (delta !== null && !isNumeric(delta)) throw parameterError('the increment must be an integer or a double');
  const amount = delta ?? 1;
  if (!negate) return amount;
  return typeof amount === 'bigint' ? BigInt.asIntN(64, -amount) : -amount;
}

/**
 * current + delta as Aerospike adds them: an integer element stays an integer (a double
 * delta truncated first, int64 wrapping around), a double stays a double, a missing element
 * becomes the delta.
 */
export function addNumbers(current: number | bigint | undefined, delta: number | bigint): number | bigint {
  if (current === undefined) return delta;
  if (!isInteger(current)) return (current as number) + Number(delta);
  const step = typeof delta === 'number' && !Number.isInteger(delta) ? Math.trunc(delta) : delta;
  if (typeof current === 'number' && typeof step === 'number') {
    const sum = current + step;
    if (Number.isSafeInteger(sum)) return sum;
  }
  return BigInt.asIntN(64, BigInt(current) + BigInt(step));
}

const sort: ListRun = (list, args) => {
  const flags = args.int(0, 'sort flags', 0);
  if ((flags & ~3) !== 0) throw parameterError(`sort flags ${flags} are not DEFAULT, DESCENDING (1) and DROP_DUPLICATES (2)`);
  if (list === undefined) throw new ShoalError(ErrorCode.BIN_TYPE, 'sort needs a list; the bin is empty');
  if (list.items.length <= 1) return NOTHING;
  if (!list.ordered) {
    list.items.sort(compareValues);
    if ((flags & 1) !== 0) list.items.reverse();
  }
  if ((flags & 2) !== 0) {
    const items = list.items;
    let kept = 0;
    // Sorted, equal values are neighbours.
    for (let i = 0; i < items.length; i++) {
      if (kept > 0 && valuesEqual(items[kept - 1]!, items[i]!)) continue;
      items[kept++] = items[i]!;
    }
    items.length = kept;
  }
  return { result: undefined, changed: true };
};

const clear: ListRun = (list) => {
  if (list === undefined) return NOTHING;
  list.items.length = 0;
  return { result: undefined, changed: true };
};

const size: ListRun = (list) => (list === undefined ? NIL_RESULT : { result: list.items.length, changed: false });

// ---------------------------------------------------------------------------------------
// Reads and removes: select elements, build the result, remove them

type Picker = (list: CdtList, args: OperationArgs, multi: boolean) => Picked;

/**
 * A read or remove. `returnTypeAt` is the argument holding the return type, or a fixed one
 * (get, pop, remove, trim) given as -1 - returnType; the picker's arguments follow it.
 */
function byPicker(picker: Picker, multi: boolean, remove: boolean, fixedReturnType?: number): ListRun {
  return (list, args) => {
    const returnType = fixedReturnType ?? args.int(0, 'return type');
    if (list === undefined) return remove ? NOTHING : NIL_RESULT;
    checkReturnType(returnType, false, multi);
    const picked = applyInverted(picker(list, args, multi), returnType, list.items.length);
    const result = buildResult(Elements.ofList(list), picked, returnType, multi, false);
    if (!remove || picked.positions.length === 0) return { result, changed: false };
    removePositions([list.items], picked.positions);
    return { result, changed: true };
  };
}

/** Index and count arguments start at `at`: 0 for the fixed-return-type ops, 1 after a return type. */
function byIndex(at: number): Picker {
  return (list, args, multi) => {
    const size = list.items.length;
    if (!multi) {
      const index = args.int(at, 'index');
      const position = singlePosition(index, size);
      if (position < 0) throw notApplicable(`index ${index} is out of range for a list of ${size}`);
      return { positions: [position], ranksAscending: false };
    }
    const [start, count] = rangeOf(args.int(at, 'index'), args.rangeCount(at + 1, 'count'), size);
    return { positions: span(start, count), ranksAscending: false };
  };
}

function rankRange(list: CdtList, rank: number, count: number, multi: boolean): Picked {
  const size = list.items.length;
  const order = Elements.ofList(list).rankOrder();
  if (!multi) {
    const position = singlePosition(rank, size);
    if (position < 0) throw notApplicable(`rank ${rank} is out of range for a list of ${size}`);
    return { positions: [order[position]!], ranksAscending: true };
  }
  const [start, length] = rangeOf(rank, count, size);
  const positions = order.slice(start, start + length);
  // The server selects a rank range of an unordered list by a partial heap sort and lists the
  // values as the heap leaves them: in descending rank order when the range lies at least as
  // near the smallest value as the largest (particle_list.c packed_list_get_remove_by_rank_range).
  if (!list.ordered && start <= size - start - length) positions.reverse();
  return { positions, ranksAscending: true };
}

const byRank: Picker = (list, args, multi) => rankRange(list, args.int(1, 'rank'), multi ? args.rangeCount(2, 'count') : 1, multi);

/** Positions whose value is in [begin, end), or equal to begin when `exact`. */
export function valueInterval(values: readonly CdtValue[], sorted: boolean, begin: CdtValue, end: CdtValue, exact: boolean): number[] {
  if (sorted) {
    const from = lowerBound(values, begin);
    const to = exact ? upperBound(values, begin) : Math.max(from, lowerBound(values, end));
    return span(from, to - from);
  }
  const positions: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const value = values[i]!;
    const inside = exact ? valuesEqual(value, begin) : compareValues(value, begin) >= 0 && compareValues(value, end) < 0;
    if (inside) positions.push(i);
  }
  return positions;
}

const byValue: Picker = (list, args) => ({
  positions: valueInterval(list.items, list.ordered, args.compare(1, 'value'), null, true),
  ranksAscending: true,
});

const byValueInterval: Picker = (list, args) => ({
  positions: valueInterval(list.items, list.ordered, args.compare(1, 'begin'), args.compare(2, 'end', INF_VALUE), false),
  ranksAscending: true,
});

/** Positions whose value equals one of `wanted`, in position order. */
export function valueListPositions(values: readonly CdtValue[], wanted: readonly CdtValue[]): number[] {
  const positions: number[] = [];
  for (let i = 0; i < values.length; i++) if (wanted.some((value) => valuesEqual(values[i]!, value))) positions.push(i);
  return positions;
}

const byValueList: Picker = (list, args) => ({ positions: valueListPositions(list.items, args.list(1, 'values', true).items), ranksAscending: true });

/** How many of `values` sort before `value`: its rank if it were there. */
export function rankOfValue(values: readonly CdtValue[], sorted: boolean, value: CdtValue): number {
  if (sorted) return lowerBound(values, value);
  let count = 0;
  for (const item of values) if (compareValues(item, value) < 0) count++;
  return count;
}

const byValueRelativeRank: Picker = (list, args) => {
  const relative = rankOfValue(list.items, list.ordered, args.compare(1, 'value'));
  const [rank, count] = relativeRange(args.int(2, 'rank'), args.rangeCount(3, 'count'), relative);
  return rankRange(list, rank, count, true);
};

/** Every list operation by op code. */
export const LIST_OPERATIONS: ReadonlyMap<number, { name: string; modify: boolean; run: ListRun }> = new Map([
  [ListCode.SET_TYPE, { name: 'list.setOrder', modify: true, run: setType }],
  [ListCode.APPEND, { name: 'list.append', modify: true, run: append(false) }],
  [ListCode.APPEND_ITEMS, { name: 'list.appendItems', modify: true, run: append(true) }],
  [ListCode.INSERT, { name: 'list.insert', modify: true, run: insert(false) }],
  [ListCode.INSERT_ITEMS, { name: 'list.insertItems', modify: true, run: insert(true) }],
  [ListCode.SET, { name: 'list.set', modify: true, run: set }],
  [ListCode.INCREMENT, { name: 'list.increment', modify: true, run: increment }],
  [ListCode.SORT, { name: 'list.sort', modify: true, run: sort }],
  [ListCode.CLEAR, { name: 'list.clear', modify: true, run: clear }],
  [ListCode.SIZE, { name: 'list.size', modify: false, run: size }],
  [ListCode.POP, { name: 'list.pop', modify: true, run: byPicker(byIndex(0), false, true, ReturnType.VALUE) }],
  [ListCode.POP_RANGE, { name: 'list.popRange', modify: true, run: byPicker(byIndex(0), true, true, ReturnType.VALUE) }],
  [ListCode.REMOVE, { name: 'list.remove', modify: true, run: byPicker(byIndex(0), false, true, ReturnType.COUNT) }],
  [ListCode.REMOVE_RANGE, { name: 'list.removeRange', modify: true, run: byPicker(byIndex(0), true, true, ReturnType.COUNT) }],
  [ListCode.TRIM, { name: 'list.trim', modify: true, run: byPicker(byIndex(0), true, true, ReturnType.COUNT | ReturnType.INVERTED) }],
  [ListCode.GET, { name: 'list.get', modify: false, run: byPicker(byIndex(0), false, false, ReturnType.VALUE) }],
  [ListCode.GET_RANGE, { name: 'list.getRange', modify: false, run: byPicker(byIndex(0), true, false, ReturnType.VALUE) }],
  [ListCode.GET_BY_INDEX, { name: 'list.getByIndex', modify: false, run: byPicker(byIndex(1), false, false) }],
  [ListCode.GET_BY_INDEX_RANGE, { name: 'list.getByIndexRange', modify: false, run: byPicker(byIndex(1), true, false) }],
  [ListCode.GET_BY_RANK, { name: 'list.getByRank', modify: false, run: byPicker(byRank, false, false) }],
  [ListCode.GET_BY_RANK_RANGE, { name: 'list.getByRankRange', modify: false, run: byPicker(byRank, true, false) }],
  [ListCode.GET_ALL_BY_VALUE, { name: 'list.getByValue', modify: false, run: byPicker(byValue, true, false) }],
  [ListCode.GET_BY_VALUE_LIST, { name: 'list.getByValueList', modify: false, run: byPicker(byValueList, true, false) }],
  [ListCode.GET_BY_VALUE_INTERVAL, { name: 'list.getByValueRange', modify: false, run: byPicker(byValueInterval, true, false) }],
  [ListCode.GET_BY_VALUE_REL_RANK_RANGE, { name: 'list.getByValueRelRankRange', modify: false, run: byPicker(byValueRelativeRank, true, false) }],
  [ListCode.REMOVE_BY_INDEX, { name: 'list.removeByIndex', modify: true, run: byPicker(byIndex(1), false, true) }],
  [ListCode.REMOVE_BY_INDEX_RANGE, { name: 'list.removeByIndexRange', modify: true, run: byPicker(byIndex(1), true, true) }],
  [ListCode.REMOVE_BY_RANK, { name: 'list.removeByRank', modify: true, run: byPicker(byRank, false, true) }],
  [ListCode.REMOVE_BY_RANK_RANGE, { name: 'list.removeByRankRange', modify: true, run: byPicker(byRank, true, true) }],
  [ListCode.REMOVE_ALL_BY_VALUE, { name: 'list.removeByValue', modify: true, run: byPicker(byValue, true, true) }],
  [ListCode.REMOVE_BY_VALUE_LIST, { name: 'list.removeByValueList', modify: true, run: byPicker(byValueList, true, true) }],
  [ListCode.REMOVE_BY_VALUE_INTERVAL, { name: 'list.removeByValueRange', modify: true, run: byPicker(byValueInterval, true, true) }],
  [ListCode.REMOVE_BY_VALUE_REL_RANK_RANGE, { name: 'list.removeByValueRelRankRange', modify: true, run: byPicker(byValueRelativeRank, true, true) }],
]);
