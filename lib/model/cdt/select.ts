/**
 * What list and map reads and removes share: turning Aerospike's index, count and rank
 * arguments into positions (negative indexes count from the end, ranges are clipped), and
 * building the result a return type asks for from the selected elements.
 */
import { ErrorCode, ShoalError } from '../../errors';
import { ReturnType } from './codes';
import { compareValues } from './order';
import { CdtList, CdtMap, CdtValue, MAP_KEY_ORDERED, MAP_PRESERVE_ORDER } from './value';

/** A count argument that was left out: to the end. */
export const TO_END = Number.POSITIVE_INFINITY;

export function notApplicable(message: string): ShoalError {
  return new ShoalError(ErrorCode.OP_NOT_APPLICABLE, message);
}

export function parameterError(message: string): ShoalError {
  return new ShoalError(ErrorCode.INVALID_ARGUMENT, message);
}

/** The position of one index among `count` (negative from the end), or -1 when out of range. */
export function singlePosition(index: number, count: number): number {
  const position = index < 0 ? count + index : index;
  return position >= 0 && position < count ? position : -1;
}

/**
 * The [start, count] an (index, count) range covers among `total` elements: an index past the
 * end selects nothing, a negative one counts from the end and a range that starts before the
 * first element is cut to it (Aerospike's calc_index_count).
 */
export function rangeOf(index: number, count: number, total: number): [number, number] {
  if (index >= total) return [total, 0];
  let start = index < 0 ? total + index : index;
  let length = count;
  if (start < 0) {
    length = -start < count ? count + start : 0;
    start = 0;
  }
  return [start, Math.max(0, Math.min(length, total - start))];
}

/** A range relative to a position found by value or key (Aerospike's calc_rel_index_count). */
export function relativeRange(index: number, count: number, relative: number): [number, number] {
  let start = index + relative;
  let length = count;
  if (start < 0) {
    length = count > -start ? count + start : 0;
    start = 0;
  }
  return [start, length];
}

/** Positions from..from+length-1. */
export function span(from: number, length: number): number[] {
  const positions = new Array<number>(length);
  for (let i = 0; i < length; i++) positions[i] = from + i;
  return positions;
}

/** The positions 0..total-1 not in `positions`, ascending. */
export function complement(positions: readonly number[], total: number): number[] {
  const selected = new Uint8Array(total);
  for (const position of positions) selected[position] = 1;
  const rest: number[] = [];
  for (let i = 0; i < total; i++) if (selected[i] === 0) rest.push(i);
  return rest;
}

/**
 * A selection: element positions in the order results list them, and whether rank results
 * are listed ascending (a selection by value or by rank covers consecutive ranks).
 */
export interface Picked {
  positions: number[];
  ranksAscending: boolean;
}

/**
 * The elements a result is built from: a list's items (index = position), or a map's entries
 * (index = position in key order). Ranks are computed on first use.
 */
export class Elements {
  private rankOfPosition: Int32Array | undefined;
  private indexOfPosition: Int32Array | undefined;

  constructor(
    readonly values: readonly CdtValue[],
    readonly keys: readonly CdtValue[] | undefined,
    private readonly sortedByKey: boolean,
    private readonly sortedByValue: boolean,
  ) {}

  static ofList(list: CdtList): Elements {
    return new Elements(list.items, undefined, true, list.ordered);
  }

  static ofMap(map: CdtMap): Elements {
    return new Elements(map.values, map.keys, map.keyOrdered, false);
  }

  get count(): number {
    return this.values.length;
  }

  /** Positions in value order (ties in position order). */
  rankOrder(): number[] {
    const order = span(0, this.values.length);
    if (!this.sortedByValue) order.sort((x, y) => compareValues(this.values[x]!, this.values[y]!) || x - y);
    return order;
  }

  /** Positions in key order (a list: position order). */
  keyOrder(): number[] {
    const order = span(0, this.values.length);
    if (!this.sortedByKey) order.sort((x, y) => compareValues(this.keys![x]!, this.keys![y]!));
    return order;
  }

  rankOf(position: number): number {
    if (this.sortedByValue) return position;
    this.rankOfPosition ??= inverse(this.rankOrder());
    return this.rankOfPosition[position]!;
  }

  indexOf(position: number): number {
    if (this.sortedByKey) return position;
    this.indexOfPosition ??= inverse(this.keyOrder());
    return this.indexOfPosition[position]!;
  }
}

function inverse(order: readonly number[]): Int32Array {
  const result = new Int32Array(order.length);
  for (let i = 0; i < order.length; i++) result[order[i]!] = i;
  return result;
}

/** The return types lists accept (without INVERTED). */
const LIST_RETURN_TYPES: ReadonlySet<number> = new Set([0, 1, 2, 3, 4, 5, 7, 13]);
const MAP_RETURN_TYPES: ReadonlySet<number> = new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 13, 16, 17]);

/**
 * Checks a return type for a list (isMap false) or map operation.
 * @throws ShoalError OP_NOT_APPLICABLE for a type the container does not have, or INVERTED on a single-element selection.
 */
export function checkReturnType(returnType: number, isMap: boolean, multi: boolean): void {
  const base = returnType & ~ReturnType.INVERTED;
  if ((returnType & ~(ReturnType.INVERTED | 0xff)) !== 0 || !(isMap ? MAP_RETURN_TYPES : LIST_RETURN_TYPES).has(base)) {
    throw notApplicable(`return type ${returnType} is not one a ${isMap ? 'map' : 'list'} operation has`);
  }
  if (!multi && (returnType & ReturnType.INVERTED) !== 0) throw notApplicable('INVERTED needs an operation that selects a range or a set of elements');
}

/** Applies INVERTED: the complement of the selection, in position order. */
export function applyInverted(picked: Picked, returnType: number, total: number): Picked {
  if ((returnType & ReturnType.INVERTED) === 0) return picked;
  return { positions: complement(picked.positions, total), ranksAscending: picked.ranksAscending };
}

/**
 * The result of a read or remove: undefined for NONE, else the value the return type asks for
 * (for a single-element selection a scalar, -1 or null when nothing was found).
 */
export function buildResult(elements: Elements, picked: Picked, returnType: number, multi: boolean, isMap: boolean): CdtValue | undefined {
  const base = returnType & ~ReturnType.INVERTED;
  const positions = picked.positions;
  const total = elements.count;
  switch (base) {
    case ReturnType.NONE:
      return undefined;
    case ReturnType.COUNT:
      return positions.length;
    case ReturnType.EXISTS:
      return positions.length > 0;
    case ReturnType.INDEX:
    case ReturnType.REVERSE_INDEX: {
      const indexes = positions.map((position) => elements.indexOf(position));
      if (!isMap) indexes.sort((a, b) => a - b);
      return numbers(base === ReturnType.REVERSE_INDEX ? indexes.map((i) => total - 1 - i) : indexes, multi);
    }
    case ReturnType.RANK:
    case ReturnType.REVERSE_RANK: {
      const ranks = positions.map((position) => elements.rankOf(position));
      if (picked.ranksAscending) ranks.sort((a, b) => a - b);
      return numbers(base === ReturnType.REVERSE_RANK ? ranks.map((r) => total - 1 - r) : ranks, multi);
    }
    case ReturnType.VALUE:
      return elementsOf(positions.map((position) => elements.values[position]!), multi);
    case ReturnType.KEY:
      return elementsOf(positions.map((position) => elements.keys![position]!), multi);
    default:
      return entriesOf(elements, positions, base);
  }
}

function numbers(values: number[], multi: boolean): CdtValue {
  if (multi) return new CdtList(0, values);
  return values.length === 0 ? -1 : values[0]!;
}

function elementsOf(values: CdtValue[], multi: boolean): CdtValue {
  if (multi) return new CdtList(0, values);
  return values.length === 0 ? null : values[0]!;
}

/** KEY_VALUE: the entries in the order selected (MAP_PRESERVE_ORDER); UNORDERED_MAP: the same, unordered; ORDERED_MAP: sorted by key. */
function entriesOf(elements: Elements, positions: readonly number[], returnType: number): CdtMap {
  const keyOrdered = returnType === ReturnType.ORDERED_MAP;
  let order = [...positions];
  if (keyOrdered) order = order.sort((x, y) => compareValues(elements.keys![x]!, elements.keys![y]!));
  return new CdtMap(
    keyOrdered ? MAP_KEY_ORDERED : returnType === ReturnType.KEY_VALUE ? MAP_PRESERVE_ORDER : 0,
    order.map((position) => elements.keys![position]!),
    order.map((position) => elements.values[position]!),
  );
}

/** Removes the elements at `positions` from parallel arrays (in place). */
export function removePositions(arrays: CdtValue[][], positions: readonly number[]): void {
  if (positions.length === 0) return;
  const total = arrays[0]!.length;
  const removed = new Uint8Array(total);
  for (const position of positions) removed[position] = 1;
  for (const array of arrays) {
    let kept = 0;
    for (let i = 0; i < total; i++) if (removed[i] === 0) array[kept++] = array[i]!;
    array.length = kept;
  }
}
