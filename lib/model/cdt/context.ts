/**
 * Context paths: the list or map element a nested operation works on, found level by level
 * from the bin (list index / rank / value, map key / index / rank / value), as Aerospike's
 * cdt_context_dig does. A level may carry create flags: the container at that level is created
 * (with the order the flags give) when it is missing, and a missing map key or a list index at
 * (or, padded, past) the end is made. Creation happens only when the operation writes.
 */
import { CTX_CREATE_LIST_ORDERED, CTX_CREATE_LIST_UNORDERED_PADDED, CTX_CREATE_MAP_KEY_ORDERED, CTX_CREATE_MAP_KEY_VALUE_ORDERED, CTX_CREATE_MASK, CtxType } from './codes';
import type { ContextItem } from './args';
import { putEntry, findKey } from './map';
import { lowerBound, upperBound, valuesEqual } from './order';
import { Elements, notApplicable, singlePosition } from './select';
import { CdtList, CdtMap, CdtValue, LIST_ORDERED, MAP_KEY_ORDERED, MAP_KEY_VALUE_ORDERED, isMapKey } from './value';

const BASE_TYPES: ReadonlySet<number> = new Set(Object.values(CtxType));

/** An existing container on the path and the position of the child the path goes through. */
interface Level {
  container: CdtList | CdtMap;
  position: number;
}

/** Where a missing child goes in an existing container: a map key, or a list index (past the end: nil padding). */
interface Gap {
  container: CdtList | CdtMap;
  key: CdtValue;
}

export class ContextPath {
  /** The element the operation works on; undefined when it is missing. */
  target: CdtValue | undefined;
  private readonly levels: Level[] = [];
  private gap: Gap | undefined;
  /** Context items whose containers do not exist yet, outermost first. */
  private readonly pending: ContextItem[] = [];

  /**
   * Follows `items` from the bin's value `root` (undefined: the bin is missing).
   * @throws ShoalError OP_NOT_APPLICABLE when a level leads nowhere (a missing key or an index
   *   out of range without create flags, a list level on a map, a scalar), or a create flag
   *   where a read or a level other than list index or map key cannot have one.
   */
  constructor(
    private readonly root: CdtValue | undefined,
    items: readonly ContextItem[],
    modify: boolean,
  ) {
    let current = root;
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      const base = item.type & ~CTX_CREATE_MASK;
      const create = item.type & CTX_CREATE_MASK;
      if (!BASE_TYPES.has(base) || (item.type & ~0xff) !== 0) throw notApplicable(`context item ${i} has unknown type 0x${item.type.toString(16)}`);
      if (create !== 0 && base !== CtxType.LIST_INDEX && base !== CtxType.MAP_KEY) throw notApplicable(`context item ${i}: only list index and map key levels can create`);
      if (current === undefined) {
        // Below a level that creates, every level is created too (with its own order flags).
        const creating = this.gap !== undefined || this.pending.length > 0;
        if (!modify || (!creating && create === 0)) throw notApplicable(`context item ${i}: the ${i === 0 ? 'bin' : 'element'} is missing and the level has no create flag`);
        if (base !== CtxType.LIST_INDEX && base !== CtxType.MAP_KEY) throw notApplicable(`context item ${i}: a level below a created one must be a list index or a map key`);
        if (base === CtxType.MAP_KEY && !isMapKey(item.value)) throw notApplicable(`context item ${i}: a map key must be an integer, a string or bytes`);
        if (base === CtxType.LIST_INDEX && !(typeof item.value === 'number' && Number.isInteger(item.value) && item.value >= -1)) {
          throw notApplicable(`context item ${i}: a created list needs an index of -1 or more`);
        }
        this.pending.push(item);
        continue;
      }
      current = this.descend(current, item, i, modify);
    }
    this.target = current;
  }

  private descend(current: CdtValue, item: ContextItem, at: number, modify: boolean): CdtValue | undefined {
    const base = item.type & ~CTX_CREATE_MASK;
    const isListLevel = base < CtxType.MAP_INDEX;
    if (isListLevel ? !(current instanceof CdtList) : !(current instanceof CdtMap)) {
      throw notApplicable(`context item ${at} expects a ${isListLevel ? 'list' : 'map'} but the element is ${current instanceof CdtList ? 'a list' : current instanceof CdtMap ? 'a map' : 'not a list or map'}`);
    }
    const position = isListLevel ? this.listPosition(current as CdtList, item, at, modify) : this.mapPosition(current as CdtMap, item, at, modify);
    if (position < 0) return undefined;
    this.levels.push({ container: current as CdtList | CdtMap, position });
    return current instanceof CdtList ? current.items[position]! : (current as CdtMap).values[position]!;
  }

  /** The list position a level selects, or -1 after recording a gap to create at. */
  private listPosition(list: CdtList, item: ContextItem, at: number, modify: boolean): number {
    const base = item.type & ~CTX_CREATE_MASK;
    const size = list.items.length;
    if (base === CtxType.LIST_VALUE) {
      const position = list.ordered ? lowerBound(list.items, item.value) : list.items.findIndex((value) => valuesEqual(value, item.value));
      if (position < 0 || position >= size || !valuesEqual(list.items[position]!, item.value)) throw notApplicable(`context item ${at}: the list holds no such value`);
      return position;
    }
    const index = integerOf(item.value, at);
    if (base === CtxType.LIST_RANK) {
      const rank = singlePosition(index, size);
      if (rank < 0) throw notApplicable(`context item ${at}: rank ${index} is out of range for a list of ${size}`);
      return Elements.ofList(list).rankOrder()[rank]!;
    }
    const position = singlePosition(index, size);
    if (position >= 0) return position;
    const create = item.type & CTX_CREATE_MASK;
    const fits = (size === 0 && index === -1) || index === size || (index > size && (list.ordered || create === CTX_CREATE_LIST_UNORDERED_PADDED));
    if (!modify || create === 0 || !fits) throw notApplicable(`context item ${at}: index ${index} is out of range for a list of ${size}`);
    this.gap = { container: list, key: Math.max(index, 0) };
    return -1;
  }

  private mapPosition(map: CdtMap, item: ContextItem, at: number, modify: boolean): number {
    const base = item.type & ~CTX_CREATE_MASK;
    if (base === CtxType.MAP_KEY) {
      const position = findKey(map, item.value);
      if (position >= 0) return position;
      if (!modify || (item.type & CTX_CREATE_MASK) === 0 || !isMapKey(item.value)) throw notApplicable(`context item ${at}: the map holds no such key`);
      this.gap = { container: map, key: item.value };
      return -1;
    }
    if (base === CtxType.MAP_VALUE) {
      const position = map.values.findIndex((value) => valuesEqual(value, item.value));
      if (position < 0) throw notApplicable(`context item ${at}: the map holds no such value`);
      return position;
    }
    const index = integerOf(item.value, at);
    const place = singlePosition(index, map.size);
    if (place < 0) throw notApplicable(`context item ${at}: ${base === CtxType.MAP_RANK ? 'rank' : 'index'} ${index} is out of range for a map of ${map.size}`);
    const elements = Elements.ofMap(map);
    return (base === CtxType.MAP_RANK ? elements.rankOrder() : elements.keyOrder())[place]!;
  }

  /**
   * Stores `value` where the missing target was, creating the containers the path needs, and
   * returns the bin's new value.
   */
  attach(value: CdtValue): CdtValue {
    let child = value;
    for (let i = this.pending.length - 1; i >= 0; i--) child = containerFor(this.pending[i]!, child);
    if (this.gap === undefined) {
      if (this.levels.length === 0 && this.root === undefined) return child;
      throw notApplicable('the context path has no place for a new element');
    }
    const container = this.gap.container;
    if (container instanceof CdtMap) putEntry(container, this.gap.key, child);
    else if (container.ordered) container.items.splice(upperBound(container.items, child), 0, child);
    else {
      const index = this.gap.key as number;
      while (container.items.length < index) container.items.push(null);
      container.items.splice(index, 0, child);
    }
    this.reorder();
    return this.root!;
  }

  /** After the target changed in place: moves it within any ordered list on the path, and returns the bin's value. */
  changed(): CdtValue {
    this.reorder();
    return this.root!;
  }

  /** Each ordered list on the path keeps its order once the child it leads through has changed. */
  private reorder(): void {
    for (let i = this.levels.length - 1; i >= 0; i--) {
      const { container, position } = this.levels[i]!;
      if (!(container instanceof CdtList) || !container.ordered) continue;
      const [child] = container.items.splice(position, 1);
      container.items.splice(upperBound(container.items, child!), 0, child!);
    }
  }
}

function integerOf(value: CdtValue, at: number): number {
  if (typeof value === 'bigint') return Number(value);
  if (typeof value !== 'number' || !Number.isInteger(value)) throw notApplicable(`context item ${at} needs an integer index or rank`);
  return value;
}

/** The container a pending level creates, holding `child` at its key or index. */
function containerFor(item: ContextItem, child: CdtValue): CdtList | CdtMap {
  const create = item.type & CTX_CREATE_MASK;
  if ((item.type & ~CTX_CREATE_MASK) === CtxType.MAP_KEY) {
    const flags = create === CTX_CREATE_MAP_KEY_VALUE_ORDERED ? MAP_KEY_VALUE_ORDERED : create === CTX_CREATE_MAP_KEY_ORDERED ? MAP_KEY_ORDERED : 0;
    return new CdtMap(flags, [item.value], [child]);
  }
  if (create === CTX_CREATE_LIST_ORDERED) return new CdtList(LIST_ORDERED, [child]);
  const index = typeof item.value === 'number' ? item.value : 0;
  const items: CdtValue[] = [];
  if (create === CTX_CREATE_LIST_UNORDERED_PADDED) for (let i = 0; i < index; i++) items.push(null);
  else if (index > 0) throw notApplicable(`a new unordered list cannot hold index ${index} without padding (create with pad)`);
  items.push(child);
  return new CdtList(0, items);
}
