/**
 * Byte-level forms of the hottest list and map writes on a bin that is still its stored bytes:
 * list append / appendItems to an unordered list, and map put / increment on a top-level map
 * (ordered or not). They edit the MessagePack in place of decoding the collection and encoding
 * it again: an append patches the array header and adds the item's bytes after the last item; a
 * map write finds its key by walking the entries (comparing key bytes, skipping values) and
 * splices the value in. Time is a copy of the bin plus, for a map, a walk over its keys; memory
 * per operation does not depend on the collection's size.
 *
 * Each returns undefined whenever the general path (execute.ts) is needed instead: a context,
 * flags that need the values (add-unique, create-only, ...), an element of another type, an
 * error. What they write is byte for byte what the general path writes (test/cdt-fast.test.ts).
 */
import { OPERATION_PAYLOAD_BYTES_MAX } from '../../constants';
import { encodeCdtValue } from '../bin-encoder';
import type { OperationArgs } from './args';
import { ListCode, MapCode, MapWriteFlags, ListWriteFlags } from './codes';
import { ARGUMENT, STORED, decodeCdt, endOfLast, lastContainerCount, readContainerHeader, skipValue } from './decode';
import { addNumbers } from './list';
import { CdtList, CdtMap, CdtValue, isInteger, isNumeric } from './value';

/** Where a fast write leaves the bin's new bytes: output[start, end). */
export interface FastWrite {
  start: number;
  end: number;
  result: CdtValue;
  /** Whether the written bytes hold what only payload format 2 carries (a new integer key, an appended Map...). */
  extended: boolean;
}

/** The bytes fast writes produce during one operate() (reset by resetFastArena). */
export let output = Buffer.allocUnsafe(4096);
let used = 0;

/** Starts a new operate(): earlier fast writes' bytes are no longer referenced. */
export function resetFastArena(): void {
  used = 0;
}

/** Room for `bytes` more in the arena (grown, bounded); -1 when it would pass the bound. */
function reserve(bytes: number): number {
  if (used + bytes > output.length) {
    if (used + bytes > 2 * OPERATION_PAYLOAD_BYTES_MAX) return -1;
    const grown = Buffer.allocUnsafe(Math.max(used + bytes, output.length * 2));
    output.copy(grown, 0, 0, used);
    output = grown;
  }
  const at = used;
  used += bytes;
  return at;
}

/** Header bytes of an array or map of `count` elements. */
function headerBytes(count: number): number {
  return count < 16 ? 1 : count < 0x10000 ? 3 : 5;
}

function writeHeader(at: number, count: number, fix: number, sixteen: number): number {
  if (count < 16) {
    output[at] = fix | count;
    return at + 1;
  }
  if (count < 0x10000) {
    output[at] = sixteen;
    output.writeUInt16BE(count, at + 1);
    return at + 3;
  }
  output[at] = sixteen + 1;
  output.writeUInt32BE(count, at + 1);
  return at + 5;
}

/** Whether the byte at `at` starts an ext (an order-flags header). */
function isExt(source: Buffer, at: number): boolean {
  const tag = source[at];
  return tag === 0xc7 || tag === 0xc8 || tag === 0xc9;
}

/** Tests turn the byte-level writes off to compare them with the general path. */
export const fastWrites = { enabled: true };

/**
 * The operation in `args` applied to the bin stored at source[start, end), or undefined when
 * the general path must run it.
 */
export function fastWrite(source: Buffer, start: number, end: number, args: OperationArgs): FastWrite | undefined {
  if (!fastWrites.enabled || args.context.length !== 0) return undefined;
  switch (args.code) {
    case ListCode.APPEND:
    case ListCode.APPEND_ITEMS:
      return listAppend(source, start, end, args);
    case MapCode.PUT:
    case MapCode.INCREMENT:
      return mapWrite(source, start, end, args);
    default:
      return undefined;
  }
}

function listAppend(source: Buffer, start: number, end: number, args: OperationArgs): FastWrite | undefined {
  if ((args.int(2, 'write flags', 0) & ListWriteFlags.ADD_UNIQUE) !== 0) return undefined;
  if (readContainerHeader(source, start, end, STORED) !== 'list') return undefined;
  const count = lastContainerCount();
  const itemsAt = endOfLast();
  if (count > 0 && isExt(source, itemsAt)) return undefined; // ordered: the general path sorts
  // The new items' bytes, from the payload; checked by decoding them (they are the argument, not the list).
  const [argumentStart, argumentEnd] = args.bytesOf(0);
  let added: number;
  let addedStart: number;
  let extended: boolean;
  if (args.code === ListCode.APPEND) {
    const value = args.value(0, 'value');
    if (depthOf(value) >= 63) return undefined;
    added = 1;
    addedStart = argumentStart;
    extended = needsExtended(value);
  } else {
    const items = args.list(0, 'items', false);
    if (items.flags !== 0 || depthOf(items) >= 64) return undefined;
    readContainerHeader(args.payload, argumentStart, argumentEnd, ARGUMENT);
    added = lastContainerCount();
    addedStart = endOfLast();
    extended = needsExtended(items);
  }
  const total = count + added;
  const itemBytes = end - itemsAt;
  const addedBytes = argumentEnd - addedStart;
  const at = reserve(headerBytes(total) + itemBytes + addedBytes);
  if (at < 0) return undefined;
  let cursor = writeHeader(at, total, 0x90, 0xdc);
  cursor += source.copy(output, cursor, itemsAt, end);
  cursor += args.payload.copy(output, cursor, addedStart, argumentEnd);
  return { start: at, end: cursor, result: total, extended };
}

/** Levels of nested lists and maps in a value (0 for a scalar). */
function depthOf(value: CdtValue): number {
  if (value instanceof CdtList) return 1 + value.items.reduce<number>((deepest, item) => Math.max(deepest, depthOf(item)), 0);
  if (value instanceof CdtMap) return 1 + value.values.reduce<number>((deepest, item) => Math.max(deepest, depthOf(item)), 0);
  return 0;
}

/** Whether a value holds what only payload format 2 carries: order flags, a map key that is not a string. */
export function needsExtended(value: CdtValue): boolean {
  if (value instanceof CdtList) return value.flags !== 0 || value.items.some(needsExtended);
  if (value instanceof CdtMap) return value.flags !== 0 || value.keys.some((key) => typeof key !== 'string') || value.values.some(needsExtended);
  return false;
}

/** A map key to look for, kept in the form that compares fastest against stored key bytes. */
interface KeyTarget {
  kind: 'integer' | 'string' | 'bytes';
  integer: number | bigint;
  bytes: Buffer;
  text: string;
}

function keyTarget(key: CdtValue): KeyTarget | undefined {
  if (typeof key === 'string') return { kind: 'string', integer: 0, bytes: Buffer.from(key, 'utf8'), text: key };
  if (key instanceof Uint8Array) return { kind: 'bytes', integer: 0, bytes: Buffer.from(key.buffer, key.byteOffset, key.byteLength), text: '' };
  if (isInteger(key)) return { kind: 'integer', integer: key, bytes: EMPTY, text: '' };
  return undefined;
}

const EMPTY = Buffer.alloc(0);
/** Integer keys sort before strings, strings before bytes (value.ts order); -2: not a key type. */
const KEY_TYPE_ORDER = { integer: 0, string: 1, bytes: 2 } as const;

/** Where the key compareKey last looked at ends. */
let keyEnd = 0;

/**
 * Compares the stored key at source[at] with the target: -1, 0, 1, or 2 when the stored key is
 * of a type a map key cannot have (the general path then decides); keyEnd is left after the
 * key. Allocates nothing for string and bytes keys.
 */
function compareKey(source: Buffer, at: number, end: number, target: KeyTarget): number {
  const tag = source[at]!;
  let kind: 'integer' | 'string' | 'bytes';
  let length = 0;
  let dataAt = 0;
  if ((tag & 0xe0) === 0xa0) {
    kind = 'string';
    length = tag & 0x1f;
    dataAt = at + 1;
  } else if (tag === 0xd9 || tag === 0xc4) {
    kind = tag === 0xd9 ? 'string' : 'bytes';
    length = source[at + 1]!;
    dataAt = at + 2;
  } else if (tag === 0xda || tag === 0xc5) {
    kind = tag === 0xda ? 'string' : 'bytes';
    length = source.readUInt16BE(at + 1);
    dataAt = at + 3;
  } else if (tag === 0xdb || tag === 0xc6) {
    kind = tag === 0xdb ? 'string' : 'bytes';
    length = source.readUInt32BE(at + 1);
    dataAt = at + 5;
  } else {
    const value = decodeCdt(source, at, end, STORED);
    keyEnd = endOfLast();
    if (!isInteger(value)) return 2;
    if (target.kind !== 'integer') return -1;
    return value < target.integer ? -1 : value > target.integer ? 1 : 0;
  }
  keyEnd = dataAt + length;
  if (keyEnd > end) return 2;
  if (kind !== target.kind) return KEY_TYPE_ORDER[kind] < KEY_TYPE_ORDER[target.kind] ? -1 : 1;
  // UTF-8 byte order is Aerospike's string order; bytes compare the same way. Keys are short:
  // a loop beats Buffer#compare's per-call cost.
  const wanted = target.bytes;
  const common = length < wanted.length ? length : wanted.length;
  for (let i = 0; i < common; i++) {
    const difference = source[dataAt + i]! - wanted[i]!;
    if (difference !== 0) return difference < 0 ? -1 : 1;
  }
  return length === wanted.length ? 0 : length < wanted.length ? -1 : 1;
}

/** The end of the value at `at`: common scalars by their tag, anything else by skipValue. */
function valueEnd(source: Buffer, at: number, end: number): number {
  const tag = source[at]!;
  if (tag <= 0x7f || tag >= 0xe0 || tag === 0xc0 || tag === 0xc2 || tag === 0xc3) return at + 1;
  if ((tag & 0xe0) === 0xa0) return at + 1 + (tag & 0x1f);
  if (tag === 0xcc || tag === 0xd0) return at + 2;
  if (tag === 0xcd || tag === 0xd1) return at + 3;
  if (tag === 0xce || tag === 0xd2 || tag === 0xca) return at + 5;
  if (tag === 0xcb || tag === 0xcf || tag === 0xd3) return at + 9;
  return skipValue(source, at, end, STORED);
}

function mapWrite(source: Buffer, start: number, end: number, args: OperationArgs): FastWrite | undefined {
  const increment = args.code === MapCode.INCREMENT;
  const flags = increment ? 0 : args.int(3, 'write flags', 0);
  if ((flags & (MapWriteFlags.CREATE_ONLY | MapWriteFlags.UPDATE_ONLY)) !== 0) return undefined;
  const key = args.value(0, 'key');
  const target = keyTarget(key);
  if (target === undefined) return undefined;
  if (readContainerHeader(source, start, end, STORED) !== 'map') return undefined;
  let count = lastContainerCount();
  let at = endOfLast();
  const entriesAt = at;
  let ordered = false;
  if (count > 0 && isExt(source, at)) {
    ordered = (source[at + 2]! & 0x01) !== 0;
    at = skipValue(source, skipValue(source, at, end, STORED), end, STORED);
    count--;
  }
  // Find the key, or where it goes: in key order for an ordered map, else at the end.
  let found = false;
  let keyStart = end;
  let valueStart = end;
  let foundValueEnd = end;
  for (let i = 0; i < count; i++) {
    const order = compareKey(source, at, end, target);
    if (order === 2) return undefined;
    if (order === 0 || (ordered && order > 0)) {
      found = order === 0;
      keyStart = at;
      break;
    }
    at = valueEnd(source, keyEnd, end);
    if (at > end) return undefined;
  }
  if (found) {
    valueStart = keyEnd;
    foundValueEnd = valueEnd(source, valueStart, end);
    if (foundValueEnd > end) return undefined;
  }
  let value: CdtValue;
  let result: CdtValue;
  if (increment) {
    const current = found ? decodeCdt(source, valueStart, foundValueEnd, STORED) : undefined;
    if (current !== undefined && !isNumeric(current)) return undefined;
    const delta = args.has(1) ? args.value(1, 'increment') : null;
    if (delta !== null && !isNumeric(delta)) return undefined;
    value = addNumbers(current, delta ?? 1);
    result = value;
  } else {
    value = args.value(1, 'value');
    if (depthOf(value) >= 63) return undefined;
    result = found ? count : count + 1;
  }
  return spliceEntry(source, start, end, entriesAt, found, keyStart, valueStart, foundValueEnd, args, value, result, increment);
}

/** The map's new bytes: header, entries before the key, the key and its new value, the entries after. */
function spliceEntry(
  source: Buffer,
  start: number,
  end: number,
  entriesAt: number,
  found: boolean,
  keyStart: number,
  valueStart: number,
  valueEnd: number,
  args: OperationArgs,
  value: CdtValue,
  result: CdtValue,
  increment: boolean,
): FastWrite | undefined {
  readContainerHeader(source, start, end, STORED);
  const storedCount = lastContainerCount();
  const newCount = found ? storedCount : storedCount + 1;
  const [keyArgStart, keyArgEnd] = args.bytesOf(0);
  const valueBytes = increment ? encodedNumber(value) : undefined;
  const [valueArgStart, valueArgEnd] = increment ? [0, valueBytes!.length] : args.bytesOf(1);
  const before = (found ? valueStart : keyStart) - entriesAt;
  const keyBytes = found ? 0 : keyArgEnd - keyArgStart;
  const after = end - (found ? valueEnd : keyStart);
  const at = reserve(headerBytes(newCount) + before + keyBytes + (valueArgEnd - valueArgStart) + after);
  if (at < 0) return undefined;
  let cursor = writeHeader(at, newCount, 0x80, 0xde);
  cursor += source.copy(output, cursor, entriesAt, entriesAt + before);
  if (!found) cursor += args.payload.copy(output, cursor, keyArgStart, keyArgEnd);
  cursor += (increment ? valueBytes! : args.payload).copy(output, cursor, valueArgStart, valueArgEnd);
  cursor += source.copy(output, cursor, end - after, end);
  return { start: at, end: cursor, result, extended: typeof key(args) !== 'string' || (!increment && needsExtended(value)) };
}

function key(args: OperationArgs): CdtValue {
  return args.value(0, 'key');
}

let numberScratch = Buffer.allocUnsafe(16);

/** A number's canonical encoding (as the bin encoder writes it). */
function encodedNumber(value: CdtValue): Buffer {
  const end = encodeCdtValue(numberScratch, 0, numberScratch.length, value, false);
  return numberScratch.subarray(0, end);
}
