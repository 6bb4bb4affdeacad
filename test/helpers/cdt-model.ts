/**
 * A plain-JS reference of Aerospike's list and map semantics, written independently of
 * lib/model/cdt for the model-based test (test/cdt-model.test.ts): simple arrays of items and
 * of [key, value] entries, sorted with Array#sort, searched linearly. Slow and obvious.
 */

export type MV = null | boolean | number | bigint | string | Buffer | MList | MMap;
export interface MList {
  kind: 'list';
  ordered: boolean;
  items: MV[];
}
export interface MMap {
  kind: 'map';
  /** 0 unordered, 1 key ordered, 3 key-value ordered. */
  order: number;
  entries: [MV, MV][];
}

/** The failure a step must give: an Aerospike status code name. */
export class ModelError extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}
const fail = (code: string): never => {
  throw new ModelError(code);
};

// ------------------------------------------------------------------------------------
// Order: nil < false < true < integer < string < list < map < bytes < double

function rankOfType(v: MV): number {
  if (v === null) return 0;
  if (v === false) return 1;
  if (v === true) return 2;
  if (typeof v === 'bigint') return 3;
  if (typeof v === 'number') return Number.isInteger(v) ? 3 : 8;
  if (typeof v === 'string') return 4;
  if (Buffer.isBuffer(v)) return 7;
  return (v as MList | MMap).kind === 'list' ? 5 : 6;
}

function utf8(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

export function cmp(a: MV, b: MV): number {
  const ta = rankOfType(a);
  const tb = rankOfType(b);
  if (ta !== tb) return ta - tb;
  if (ta === 3 || ta === 8) {
    const x = a as number | bigint;
    const y = b as number | bigint;
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (ta === 4) return Buffer.compare(utf8(a as string), utf8(b as string));
  if (ta === 7) return Buffer.compare(a as Buffer, b as Buffer);
  if (ta === 5) {
    const x = (a as MList).items;
    const y = (b as MList).items;
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      const c = cmp(x[i]!, y[i]!);
      if (c !== 0) return c;
    }
    return x.length - y.length;
  }
  if (ta === 6) {
    const x = (a as MMap).entries;
    const y = (b as MMap).entries;
    if (x.length !== y.length) return x.length - y.length;
    for (let i = 0; i < x.length; i++) {
      const c = cmp(x[i]![0], y[i]![0]) || cmp(x[i]![1], y[i]![1]);
      if (c !== 0) return c;
    }
    return 0;
  }
  return 0;
}

const eq = (a: MV, b: MV) => cmp(a, b) === 0;

// ------------------------------------------------------------------------------------
// User values in and out

export function fromPlain(v: unknown, ordered = false): MV {
  if (Array.isArray(v)) {
    const items = v.map((x) => fromPlain(x));
    if (ordered) items.sort(cmp);
    return { kind: 'list', ordered, items };
  }
  if (v instanceof Map) return { kind: 'map', order: 0, entries: [...v.entries()].map(([k, x]) => [fromPlain(k), fromPlain(x)]) };
  if (v !== null && typeof v === 'object' && !Buffer.isBuffer(v)) {
    return { kind: 'map', order: 0, entries: Object.entries(v).map(([k, x]) => [k, fromPlain(x)]) };
  }
  return v as MV;
}

export function toPlain(v: MV): unknown {
  if (v === null || typeof v !== 'object' || Buffer.isBuffer(v)) return v;
  if (v.kind === 'list') return v.items.map(toPlain);
  return entriesToPlain(v.entries);
}

export function entriesToPlain(entries: [MV, MV][]): unknown {
  if (entries.every(([k]) => typeof k === 'string')) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of entries) o[k as string] = toPlain(x);
    return o;
  }
  return new Map(entries.map(([k, x]) => [toPlain(k), toPlain(x)]));
}

/** A deep copy (the model keeps its own state). */
export function copy(v: MV): MV {
  if (v === null || typeof v !== 'object' || Buffer.isBuffer(v)) return v;
  if (v.kind === 'list') return { kind: 'list', ordered: v.ordered, items: v.items.map(copy) };
  return { kind: 'map', order: v.order, entries: v.entries.map(([k, x]) => [copy(k), copy(x)]) };
}

// ------------------------------------------------------------------------------------
// Return types

export const RT = { NONE: 0, INDEX: 1, REVERSE_INDEX: 2, RANK: 3, REVERSE_RANK: 4, COUNT: 5, KEY: 6, VALUE: 7, KEY_VALUE: 8, EXISTS: 13, UNORDERED_MAP: 16, ORDERED_MAP: 17, INVERTED: 0x10000 };

/**
 * A selection: positions in the order results list them, and whether ranks are reported sorted.
 * `sortIndexes` lists report indexes ascending; maps in the order selected.
 */
interface Sel {
  positions: number[];
  ranksSorted: boolean;
}

/** Stable rank order of values: positions sorted by value, ties by position. */
function ranked(values: MV[]): number[] {
  return values.map((_, i) => i).sort((i, j) => cmp(values[i]!, values[j]!) || i - j);
}

function clampRange(index: number, count: number, n: number): [number, number] {
  if (index >= n) return [n, 0];
  let start = index < 0 ? n + index : index;
  let c = count;
  if (start < 0) {
    c = Math.max(0, count + start);
    start = 0;
  }
  return [start, Math.max(0, Math.min(c, n - start))];
}

function single(index: number, n: number): number {
  const p = index < 0 ? n + index : index;
  return p >= 0 && p < n ? p : fail('OP_NOT_APPLICABLE');
}

function relative(index: number, count: number, rel: number): [number, number] {
  let s = index + rel;
  let c = count;
  if (s < 0) {
    c = Math.max(0, c + s);
    s = 0;
  }
  return [s, c];
}

interface View {
  values: MV[];
  keys?: MV[];
  /** key order index of each position (lists: the position). */
  indexOf(p: number): number;
}

function result(view: View, sel: Sel, rt: number, multi: boolean, isMap: boolean): unknown {
  const base = rt & ~RT.INVERTED;
  const n = view.values.length;
  const ps = sel.positions;
  const rankOf = (() => {
    const order = ranked(view.values);
    const r: number[] = [];
    order.forEach((p, i) => (r[p] = i));
    return r;
  })();
  const one = (xs: unknown[], none: unknown) => (multi ? xs : xs.length ? xs[0] : none);
  switch (base) {
    case RT.NONE:
      return undefined;
    case RT.COUNT:
      return ps.length;
    case RT.EXISTS:
      return ps.length > 0;
    case RT.INDEX:
    case RT.REVERSE_INDEX: {
      let xs = ps.map((p) => view.indexOf(p));
      if (!isMap) xs = xs.sort((a, b) => a - b);
      if (base === RT.REVERSE_INDEX) xs = xs.map((x) => n - 1 - x);
      return one(xs, -1);
    }
    case RT.RANK:
    case RT.REVERSE_RANK: {
      let xs = ps.map((p) => rankOf[p]!);
      if (sel.ranksSorted) xs = xs.sort((a, b) => a - b);
      if (base === RT.REVERSE_RANK) xs = xs.map((x) => n - 1 - x);
      return one(xs, -1);
    }
    case RT.VALUE:
      return one(ps.map((p) => toPlain(view.values[p]!)), null);
    case RT.KEY:
      return one(ps.map((p) => toPlain(view.keys![p]!)), null);
    default: {
      let order = [...ps];
      if (base === RT.ORDERED_MAP) order = order.sort((i, j) => cmp(view.keys![i]!, view.keys![j]!));
      return entriesToPlain(order.map((p) => [view.keys![p]!, view.values[p]!]));
    }
  }
}

function checkRt(rt: number, isMap: boolean, multi: boolean): void {
  const base = rt & ~RT.INVERTED;
  const ok = isMap ? [0, 1, 2, 3, 4, 5, 6, 7, 8, 13, 16, 17] : [0, 1, 2, 3, 4, 5, 7, 13];
  if (!ok.includes(base)) fail('OP_NOT_APPLICABLE');
  if (!multi && rt & RT.INVERTED) fail('OP_NOT_APPLICABLE');
}

function invert(sel: Sel, rt: number, n: number): Sel {
  if (!(rt & RT.INVERTED)) return sel;
  const chosen = new Set(sel.positions);
  return { positions: [...Array(n).keys()].filter((p) => !chosen.has(p)), ranksSorted: sel.ranksSorted };
}

// ------------------------------------------------------------------------------------
// Lists

export type Step = { result: unknown; value: MV | undefined };

function removeAt<T>(xs: T[], ps: number[]): T[] {
  const gone = new Set(ps);
  return xs.filter((_, i) => !gone.has(i));
}

function listView(l: MList): View {
  return { values: l.items, indexOf: (p) => p };
}

export type ListSelector =
  | { by: 'index'; index: number; count?: number }
  | { by: 'rank'; rank: number; count?: number }
  | { by: 'value'; value: MV }
  | { by: 'valueList'; values: MV[] }
  | { by: 'valueRange'; begin: MV; end?: MV }
  | { by: 'relRank'; value: MV; rank: number; count?: number };

function listSelect(l: MList, s: ListSelector, multi: boolean): Sel {
  const n = l.items.length;
  const order = l.ordered ? l.items.map((_, i) => i) : ranked(l.items);
  const byRank = (rank: number, count: number | undefined, m: boolean): Sel => {
    if (!m) return { positions: [order[single(rank, n)]!], ranksSorted: true };
    const [s0, c] = clampRange(rank, count ?? Infinity, n);
    const positions = order.slice(s0, s0 + c);
    // Aerospike lists an unordered list's rank range from its partial heap sort: descending
    // when the range is at least as near the start as the end.
    if (!l.ordered && s0 <= n - s0 - c) positions.reverse();
    return { positions, ranksSorted: true };
  };
  switch (s.by) {
    case 'index': {
      if (!multi) return { positions: [single(s.index, n)], ranksSorted: false };
      const [s0, c] = clampRange(s.index, s.count ?? Infinity, n);
      return { positions: [...Array(c).keys()].map((i) => s0 + i), ranksSorted: false };
    }
    case 'rank':
      return byRank(s.rank, s.count, multi);
    case 'value':
      return { positions: l.items.flatMap((v, i) => (eq(v, s.value) ? [i] : [])), ranksSorted: true };
    case 'valueList':
      return { positions: l.items.flatMap((v, i) => (s.values.some((x) => eq(v, x)) ? [i] : [])), ranksSorted: true };
    case 'valueRange':
      return { positions: l.items.flatMap((v, i) => (cmp(v, s.begin) >= 0 && (s.end === undefined || cmp(v, s.end) < 0) ? [i] : [])), ranksSorted: true };
    case 'relRank': {
      const rel = l.items.filter((v) => cmp(v, s.value) < 0).length;
      const [r, c] = relative(s.rank, s.count ?? Infinity, rel);
      return byRank(r, c, true);
    }
  }
}

/** getBy* (remove false) and removeBy* (remove true) on a list bin; `multi` for ranges and value selections. */
export function listSelectOp(bin: MV | undefined, s: ListSelector, rt: number, remove: boolean, multi: boolean): Step {
  if (bin === undefined) return { result: remove ? undefined : null, value: bin };
  if (!isList(bin)) return fail('BIN_TYPE');
  checkRt(rt, false, multi);
  const sel = invert(listSelect(bin, s, multi), rt, bin.items.length);
  const out = result(listView(bin), sel, rt, multi, false);
  if (!remove || sel.positions.length === 0) return { result: out, value: bin };
  return { result: out, value: { ...bin, items: removeAt(bin.items, sel.positions) } };
}

function isList(v: MV | undefined): v is MList {
  return v !== null && typeof v === 'object' && !Buffer.isBuffer(v) && (v as MList).kind === 'list';
}
function isMap(v: MV | undefined): v is MMap {
  return v !== null && typeof v === 'object' && !Buffer.isBuffer(v) && (v as MMap).kind === 'map';
}

export const WF = { ADD_UNIQUE: 1, INSERT_BOUNDED: 2, NO_FAIL: 4, PARTIAL: 8 };

/** Applies add-unique rules to values about to join l; undefined: do nothing. */
function unique(l: MList, values: MV[], flags: number, sortedFirst: boolean): MV[] | undefined {
  if (!(flags & WF.ADD_UNIQUE)) return values;
  const noFail = !!(flags & WF.NO_FAIL);
  const partial = noFail && !!(flags & WF.PARTIAL);
  const kept: MV[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const dup = values.slice(0, i).some((x) => eq(x, v));
    const inList = l.items.some((x) => eq(x, v));
    if (dup && (sortedFirst || !inList)) {
      if (!noFail) fail('OP_NOT_APPLICABLE');
      if (!partial) return undefined;
      continue;
    }
    if (inList) {
      if (partial) continue;
      if (noFail) return undefined;
      fail('ELEMENT_EXISTS');
    }
    kept.push(v);
  }
  if (kept.length === 0 && values.length > 0) return noFail ? undefined : fail('ELEMENT_EXISTS');
  return kept;
}

function sortedInsert(items: MV[], v: MV): MV[] {
  let at = items.length;
  while (at > 0 && cmp(items[at - 1]!, v) > 0) at--;
  return [...items.slice(0, at), v, ...items.slice(at)];
}

export function listAppend(bin: MV | undefined, values: MV[], order: number, flags: number): Step {
  if (bin !== undefined && !isList(bin)) return fail('BIN_TYPE');
  const l: MList = bin ?? { kind: 'list', ordered: order === 1, items: [] };
  if (values.length === 0) return { result: l.items.length, value: l };
  const input = l.ordered ? [...values].sort(cmp) : values;
  const kept = unique(l, input, flags, l.ordered);
  if (kept === undefined) return { result: l.items.length, value: l };
  let items = [...l.items];
  if (l.ordered) for (const v of kept) items = sortedInsert(items, v);
  else items.push(...kept);
  return { result: items.length, value: { ...l, items } };
}

export function listInsert(bin: MV | undefined, index: number, values: MV[], flags: number, returnsSize = true): Step {
  if (bin !== undefined && !isList(bin)) return fail('BIN_TYPE');
  const l: MList = bin ?? { kind: 'list', ordered: false, items: [] };
  if (l.ordered) fail('OP_NOT_APPLICABLE');
  const n = l.items.length;
  const res = (size: number) => (returnsSize ? size : undefined);
  if (values.length === 0) return { result: res(n), value: l };
  const at = index < 0 ? n + index : index;
  if (at < 0) fail('OP_NOT_APPLICABLE');
  if (flags & WF.INSERT_BOUNDED && at > n) {
    if (flags & WF.NO_FAIL) return { result: res(n), value: l };
    fail('OP_NOT_APPLICABLE');
  }
  const kept = unique(l, values, flags, false);
  if (kept === undefined) return { result: res(n), value: l };
  const items = [...l.items];
  while (items.length < at) items.push(null);
  items.splice(at, 0, ...kept);
  return { result: res(items.length), value: { ...l, items } };
}

export function listSet(bin: MV | undefined, index: number, v: MV, flags: number): Step {
  if (bin !== undefined && !isList(bin)) return fail('BIN_TYPE');
  const l: MList = bin ?? { kind: 'list', ordered: false, items: [] };
  if (l.ordered) fail('OP_NOT_APPLICABLE');
  const n = l.items.length;
  if (index >= n) return listInsert(l, index, [v], flags, false);
  const at = single(index, n);
  if (flags & WF.ADD_UNIQUE && l.items.some((x, i) => i !== at && eq(x, v))) {
    if (flags & WF.NO_FAIL) return { result: undefined, value: l };
    fail('ELEMENT_EXISTS');
  }
  const items = [...l.items];
  items[at] = v;
  return { result: undefined, value: { ...l, items } };
}

function add(current: MV | undefined, delta: number | bigint): number | bigint {
  if (current === undefined) return delta;
  if (typeof current === 'number' && !Number.isInteger(current)) return current + Number(delta);
  const d = typeof delta === 'number' && !Number.isInteger(delta) ? Math.trunc(delta) : delta;
  if (typeof current === 'number' && typeof d === 'number' && Number.isSafeInteger(current + d)) return current + d;
  return BigInt.asIntN(64, BigInt(current as number | bigint) + BigInt(d));
}

function isNumber(v: MV | undefined): v is number | bigint {
  return typeof v === 'number' || typeof v === 'bigint';
}

export function listIncrement(bin: MV | undefined, index: number, delta: number | bigint, order: number, flags: number): Step {
  if (bin !== undefined && !isList(bin)) return fail('BIN_TYPE');
  const l: MList = bin ?? { kind: 'list', ordered: order === 1, items: [] };
  const n = l.items.length;
  const at = index < 0 ? n + index : index;
  if (at < 0) fail('OP_NOT_APPLICABLE');
  const current = at < n ? l.items[at] : undefined;
  if (current !== undefined && !isNumber(current)) fail('INVALID_ARGUMENT');
  const v = add(current, delta);
  if (!l.ordered) return { ...listSet(l, at, v, flags), result: v };
  if (at > n) fail('OP_NOT_APPLICABLE');
  const rest = at < n ? removeAt(l.items, [at]) : [...l.items];
  if (flags & WF.ADD_UNIQUE && rest.some((x) => eq(x, v))) {
    if (flags & WF.NO_FAIL) return { result: v, value: l };
    fail('ELEMENT_EXISTS');
  }
  return { result: v, value: { ...l, items: sortedInsert(rest, v) } };
}

export function listSort(bin: MV | undefined, flags: number): Step {
  if (bin === undefined) return fail('BIN_TYPE');
  if (!isList(bin)) return fail('BIN_TYPE');
  let items = bin.ordered ? [...bin.items] : [...bin.items].sort(cmp);
  if (!bin.ordered && flags & 1) items.reverse();
  if (flags & 2) items = items.filter((v, i) => i === 0 || !eq(items[i - 1]!, v));
  return { result: undefined, value: { ...bin, items } };
}

export function listSetOrder(bin: MV | undefined, order: number): Step {
  if (bin !== undefined && !isList(bin)) return fail('BIN_TYPE');
  const l: MList = bin ?? { kind: 'list', ordered: false, items: [] };
  const ordered = order === 1;
  return { result: undefined, value: { kind: 'list', ordered, items: ordered ? [...l.items].sort(cmp) : l.items } };
}

export function listClear(bin: MV | undefined): Step {
  if (bin === undefined) return { result: undefined, value: undefined };
  if (!isList(bin)) return fail('BIN_TYPE');
  return { result: undefined, value: { ...bin, items: [] } };
}

export function listSize(bin: MV | undefined): Step {
  if (bin === undefined) return { result: null, value: bin };
  if (!isList(bin)) return fail('BIN_TYPE');
  return { result: bin.items.length, value: bin };
}

// ------------------------------------------------------------------------------------
// Maps

function keyOrdered(m: MMap): boolean {
  return (m.order & 1) === 1;
}

function mapView(m: MMap): View {
  const byKey = m.entries.map((_, i) => i).sort((i, j) => cmp(m.entries[i]![0], m.entries[j]![0]));
  const index: number[] = [];
  byKey.forEach((p, i) => (index[p] = i));
  return { values: m.entries.map((e) => e[1]), keys: m.entries.map((e) => e[0]), indexOf: (p) => index[p]! };
}

export type MapSelector =
  | { by: 'key'; key: MV }
  | { by: 'keyList'; keys: MV[] }
  | { by: 'keyRange'; begin: MV; end?: MV }
  | { by: 'keyRelIndex'; key: MV; index: number; count?: number }
  | { by: 'index'; index: number; count?: number; multi: boolean }
  | { by: 'value'; value: MV }
  | { by: 'valueList'; values: MV[] }
  | { by: 'valueRange'; begin: MV; end?: MV }
  | { by: 'rank'; rank: number; count?: number; multi: boolean }
  | { by: 'relRank'; value: MV; rank: number; count?: number };

function mapSelect(m: MMap, s: MapSelector): Sel {
  const n = m.entries.length;
  const keys = m.entries.map((e) => e[0]);
  const values = m.entries.map((e) => e[1]);
  const byKey = keys.map((_, i) => i).sort((i, j) => cmp(keys[i]!, keys[j]!));
  const byValue = ranked(values);
  const range = (order: number[], start: number, count: number | undefined, multi: boolean, ranksSorted: boolean): Sel => {
    if (!multi) return { positions: [order[single(start, n)]!], ranksSorted };
    const [s0, c] = clampRange(start, count ?? Infinity, n);
    return { positions: order.slice(s0, s0 + c), ranksSorted };
  };
  const where = (test: (i: number) => boolean, ranksSorted: boolean): Sel => ({ positions: keys.flatMap((_, i) => (test(i) ? [i] : [])), ranksSorted });
  switch (s.by) {
    case 'key':
      return where((i) => eq(keys[i]!, s.key), false);
    case 'keyList':
      return where((i) => s.keys.some((k) => eq(keys[i]!, k)), false);
    case 'keyRange':
      return where((i) => cmp(keys[i]!, s.begin) >= 0 && (s.end === undefined || cmp(keys[i]!, s.end) < 0), false);
    case 'keyRelIndex': {
      const rel = keys.filter((k) => cmp(k, s.key) < 0).length;
      const [i, c] = relative(s.index, s.count ?? Infinity, rel);
      return range(byKey, i, c, true, false);
    }
    case 'index':
      return range(byKey, s.index, s.count, s.multi, false);
    case 'value':
      return where((i) => eq(values[i]!, s.value), true);
    case 'valueList':
      return where((i) => s.values.some((v) => eq(values[i]!, v)), true);
    case 'valueRange':
      return where((i) => cmp(values[i]!, s.begin) >= 0 && (s.end === undefined || cmp(values[i]!, s.end) < 0), true);
    case 'rank':
      return range(byValue, s.rank, s.count, s.multi, true);
    case 'relRank': {
      const rel = values.filter((v) => cmp(v, s.value) < 0).length;
      const [r, c] = relative(s.rank, s.count ?? Infinity, rel);
      return range(byValue, r, c, true, true);
    }
  }
}

export function mapSelectOp(bin: MV | undefined, s: MapSelector, rt: number, remove: boolean): Step {
  if (bin === undefined) return { result: remove ? undefined : null, value: bin };
  if (!isMap(bin)) return fail('BIN_TYPE');
  const multi = s.by === 'index' || s.by === 'rank' ? s.multi : s.by !== 'key';
  checkRt(rt, true, multi);
  const sel = invert(mapSelect(bin, s), rt, bin.entries.length);
  const out = result(mapView(bin), sel, rt, multi, true);
  if (!remove || sel.positions.length === 0) return { result: out, value: bin };
  return { result: out, value: { ...bin, entries: removeAt(bin.entries, sel.positions) } };
}

export const MWF = { CREATE_ONLY: 1, UPDATE_ONLY: 2, NO_FAIL: 4, PARTIAL: 8 };

function putEntry(entries: [MV, MV][], ordered: boolean, k: MV, v: MV): [MV, MV][] {
  const at = entries.findIndex((e) => eq(e[0], k));
  if (at >= 0) return entries.map((e, i) => (i === at ? [e[0], v] : e));
  if (!ordered) return [...entries, [k, v]];
  let i = 0;
  while (i < entries.length && cmp(entries[i]![0], k) < 0) i++;
  return [...entries.slice(0, i), [k, v], ...entries.slice(i)];
}

export function mapPut(bin: MV | undefined, items: [MV, MV][], order: number, flags: number): Step {
  if (bin !== undefined && !isMap(bin)) return fail('BIN_TYPE');
  const m: MMap = bin ?? { kind: 'map', order, entries: [] };
  const noFail = !!(flags & MWF.NO_FAIL);
  const partial = noFail && !!(flags & MWF.PARTIAL);
  let entries = m.entries;
  const accepted: [MV, MV][] = [];
  for (const [k, v] of items) {
    const present = m.entries.some((e) => eq(e[0], k));
    const refusal = present && flags & MWF.CREATE_ONLY ? 'ELEMENT_EXISTS' : !present && flags & MWF.UPDATE_ONLY ? 'ELEMENT_NOT_FOUND' : undefined;
    if (refusal === undefined) accepted.push([k, v]);
    else if (!partial) {
      if (noFail) return { result: m.entries.length, value: m };
      fail(refusal);
    }
  }
  for (const [k, v] of accepted) entries = putEntry(entries, keyOrdered(m), k, v);
  return { result: entries.length, value: { ...m, entries } };
}

export function mapIncrement(bin: MV | undefined, key: MV, delta: number | bigint, order: number): Step {
  if (bin !== undefined && !isMap(bin)) return fail('BIN_TYPE');
  const m: MMap = bin ?? { kind: 'map', order, entries: [] };
  const at = m.entries.find((e) => eq(e[0], key));
  if (at !== undefined && !isNumber(at[1])) fail('INVALID_ARGUMENT');
  const v = add(at?.[1], delta);
  return { result: v, value: { ...m, entries: putEntry(m.entries, keyOrdered(m), key, v) } };
}

export function mapSetOrder(bin: MV | undefined, order: number): Step {
  if (bin !== undefined && !isMap(bin)) return fail('BIN_TYPE');
  const m: MMap = bin ?? { kind: 'map', order: 0, entries: [] };
  const entries = order & 1 && !(m.order & 1) ? [...m.entries].sort((a, b) => cmp(a[0], b[0])) : m.entries;
  return { result: undefined, value: { kind: 'map', order, entries } };
}

export function mapClear(bin: MV | undefined): Step {
  if (bin === undefined) return { result: undefined, value: undefined };
  if (!isMap(bin)) return fail('BIN_TYPE');
  return { result: undefined, value: { ...bin, entries: [] } };
}

export function mapSize(bin: MV | undefined): Step {
  if (bin === undefined) return { result: null, value: bin };
  if (!isMap(bin)) return fail('BIN_TYPE');
  return { result: bin.entries.length, value: bin };
}
