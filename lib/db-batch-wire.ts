/**
 * batchPut items in a compact binary form (docs/cluster.md, "Batches"). A cluster-mode
 * batchPut sends each put to its master as one small Buffer instead of a msgpack map per item
 * (method, key map, bins map, options map): the bins travel as the record payload the
 * namespaces store (docs/record-payload.md), so the sender encodes them once with the write
 * path's own encoder and the frame carries bytes, not objects. The master decodes every field
 * with bounds checks and checks the call as any forwarded call is (lib/db-cluster.ts).
 *
 *   u8  tag (PUT_ITEM_TAG)
 *   u8  option flags (OPTION_*), then the options present: f64 ttl, u8 exists policy, f64 generation
 *   u8  set name length, set name (UTF-8)
 *   u8  key type (1 integer, 3 string, 4 bytes: lib/native/exchange.ts), u16 key length, key bytes
 *   the rest: the bins as a record payload without a key
 *
 * A put this form cannot carry (a digest-only key, an empty set name, a filter, a key of the
 * wrong kind, bins over a quarter of an arena) goes as the msgpack call it was before; the
 * master takes both.
 */
import { KEY_MAX_BYTES, PAYLOAD_HEADER_BYTES, SET_NAME_MAX_BYTES } from './constants';
import { invalidArgument } from './errors';
import type { Bins } from './model/bins';
import { checkBins, decodePayloadBins, encodePayload, encodePayloadChecked } from './model/bins';
import { BINS_NEED_CHECK } from './model/bin-encoder';
import { payloadWellFormed } from './model/payload-check';
import { KEY_LENGTH_SHIFT, KEY_TYPE_MASK, decodeKeyValueAt, encodeSetName, writeKeyValue } from './model/key';
import { KEY_TYPE_BYTES, KEY_TYPE_INTEGER, KEY_TYPE_STRING } from './native/exchange';
import type { Key, KeyValue } from './model/key';
import { ENCODED_BINS, type WriteResult } from './namespace/namespace';
import type { WriteOptions } from './namespace/semantics';
import { bytesEqual } from './cluster/batch-wire';

/** First byte of a binary put item: no msgpack value a call is encoded as starts a Buffer with it. */
export const PUT_ITEM_TAG = 0xb1;
/** Bytes of one arena the items of a batch are written into; an item larger than a quarter of it goes as a msgpack call. */
const ARENA_BYTES = 1 << 20;
const ITEM_BYTES_MAX = ARENA_BYTES >> 2;

const OPTION_TTL = 1;
const OPTION_EXISTS = 2;
const OPTION_GENERATION = 4;
const OPTION_DURABLE_TRUE = 8;
const OPTION_DURABLE_FALSE = 16;
const OPTION_STORE_KEY_TRUE = 32;
const OPTION_STORE_KEY_FALSE = 64;
const OPTION_FLAGS_ALL = 127;
/** The exists policies by their wire index (semantics.ts checks the names). */
const EXISTS_POLICIES = ['upsert', 'create', 'update', 'replace', 'createOrReplace'] as const;

/** Encodes the put items of a batchPut into arenas of ARENA_BYTES, one item at a time. */
export class PutItemEncoder {
  private arena = Buffer.allocUnsafe(ARENA_BYTES);
  private used = 0;
  private lastSet = '';
  private lastSetBytes: Uint8Array = new Uint8Array(0);

  /**
   * The binary item of a put whose key and options the Db has checked, and whose bins (a plain
   * object) are checked here as they are written: bins written as null travel as nil, and the
   * master's batch path sends such an entry the per-record way. Undefined when this form
   * cannot carry the put (the caller checks the bins and sends the msgpack call instead).
   * @throws what checkBins(bins, true) throws for bad bins.
   */
  encode(key: Key, bins: Bins, opts: WriteOptions | undefined): Buffer | undefined {
    const value = key.key;
    if (value === undefined || value === null || key.set === '' || (opts !== undefined && opts.filter !== undefined)) return undefined;
    let item: Buffer | undefined | typeof BINS_NEED_CHECK;
    try {
      item = this.encodeItem(key, value, bins, opts, true);
    } catch {
      // A key or set name of the wrong kind: the msgpack call carries it to its error.
      return undefined;
    }
    if (item !== BINS_NEED_CHECK) return item;
    // Something the checking encoder will not vouch for: checkBins gives its error, or passes
    // (a bin written as null), and the bins are written unchecked.
    checkBins(bins, true);
    return this.encodeItem(key, value, bins, opts, false) as Buffer | undefined;
  }

  private encodeItem(key: Key, value: KeyValue, bins: Bins, opts: WriteOptions | undefined, check: boolean): Buffer | undefined | typeof BINS_NEED_CHECK {
    if (this.used + ITEM_BYTES_MAX > this.arena.length) {
      this.arena = Buffer.allocUnsafe(ARENA_BYTES);
      this.used = 0;
    }
    const arena = this.arena;
    const start = this.used;
    let at = start;
    arena[at++] = PUT_ITEM_TAG;
    at = writeOptions(arena, at, opts);
    const set = key.set ?? '';
    if (set !== this.lastSet) {
      this.lastSetBytes = encodeSetName(set);
      this.lastSet = set;
    }
    const setBytes = this.lastSetBytes;
    arena[at++] = setBytes.length;
    for (let i = 0; i < setBytes.length; i++) arena[at + i] = setBytes[i]!;
    at += setBytes.length;
    const written = writeKeyValue(arena, arena, at + 3, value);
    const keyLength = written >>> KEY_LENGTH_SHIFT;
    arena[at] = written & KEY_TYPE_MASK;
    arena.writeUInt16LE(keyLength, at + 1);
    at += 3 + keyLength;
    const capacity = start + ITEM_BYTES_MAX - at;
    const payloadLength = check ? encodePayloadChecked(arena, at, capacity, bins, 0, undefined) : encodePayload(arena, at, capacity, bins, 0, undefined);
    if (payloadLength === BINS_NEED_CHECK) return BINS_NEED_CHECK;
    // Too big for an item.
    if (payloadLength < 0) return undefined;
    at += payloadLength;
    this.used = (at + 7) & ~7;
    return arena.subarray(start, at);
  }
}

function writeOptions(target: Buffer, at: number, opts: WriteOptions | undefined): number {
  const flagsAt = at++;
  let flags = 0;
  if (opts !== undefined) {
    if (opts.ttl !== undefined) {
      flags |= OPTION_TTL;
      target.writeDoubleLE(opts.ttl, at);
      at += 8;
    }
    if (opts.exists !== undefined) {
      flags |= OPTION_EXISTS;
      target[at++] = EXISTS_POLICIES.indexOf(opts.exists);
    }
    if (opts.generation !== undefined) {
      flags |= OPTION_GENERATION;
      target.writeDoubleLE(opts.generation, at);
      at += 8;
    }
    if (opts.durable !== undefined) flags |= opts.durable ? OPTION_DURABLE_TRUE : OPTION_DURABLE_FALSE;
    if (opts.storeKey !== undefined) flags |= opts.storeKey ? OPTION_STORE_KEY_TRUE : OPTION_STORE_KEY_FALSE;
  }
  target[flagsAt] = flags;
  return at;
}

/** Whether a batch item (from a peer) is in the binary form. */
export function isPutItem(item: unknown): item is Uint8Array {
  return item instanceof Uint8Array && item.length > 0 && item[0] === PUT_ITEM_TAG;
}

/**
 * The put call a binary item (from a peer: untrusted) stands for, in namespace `ns`. Every
 * field is bounds-checked here; the key, bins and options are then checked as any forwarded
 * call's are.
 * @throws ShoalError INVALID_ARGUMENT naming what is malformed.
 */
export function decodePutItem(item: Uint8Array, ns: string): { method: 'put'; key: Key; bins: Bins; opts: WriteOptions | undefined } | PayloadPut {
  const bytes = Buffer.isBuffer(item) ? item : Buffer.from(item.buffer, item.byteOffset, item.length);
  const end = bytes.length;
  let at = 1;
  need(at, end, 1, 'option flags');
  const flags = bytes[at++]!;
  if ((flags & ~OPTION_FLAGS_ALL) !== 0 || (flags & OPTION_DURABLE_TRUE && flags & OPTION_DURABLE_FALSE) || (flags & OPTION_STORE_KEY_TRUE && flags & OPTION_STORE_KEY_FALSE)) {
    throw invalidArgument('malformed cluster batch item: unknown option flags');
  }
  let opts: WriteOptions | undefined;
  if (flags !== 0) {
    opts = {};
    if (flags & OPTION_TTL) {
      need(at, end, 8, 'ttl');
      opts.ttl = bytes.readDoubleLE(at);
      at += 8;
    }
    if (flags & OPTION_EXISTS) {
      need(at, end, 1, 'exists policy');
      const policy = EXISTS_POLICIES[bytes[at++]!];
      if (policy === undefined) throw invalidArgument('malformed cluster batch item: unknown exists policy');
      opts.exists = policy;
    }
    if (flags & OPTION_GENERATION) {
      need(at, end, 8, 'generation');
      opts.generation = bytes.readDoubleLE(at);
      at += 8;
    }
    if (flags & (OPTION_DURABLE_TRUE | OPTION_DURABLE_FALSE)) opts.durable = (flags & OPTION_DURABLE_TRUE) !== 0;
    if (flags & (OPTION_STORE_KEY_TRUE | OPTION_STORE_KEY_FALSE)) opts.storeKey = (flags & OPTION_STORE_KEY_TRUE) !== 0;
  }
  need(at, end, 1, 'set name length');
  const setLength = bytes[at++]!;
  if (setLength > SET_NAME_MAX_BYTES) throw invalidArgument('malformed cluster batch item: a set name over 63 bytes');
  need(at, end, setLength, 'set name');
  const set = setLength === 0 ? undefined : setNameAt(bytes, at, setLength);
  at += setLength;
  need(at, end, 3, 'key header');
  const keyType = bytes[at]!;
  const keyLength = bytes.readUInt16LE(at + 1);
  at += 3;
  const knownType = keyType === KEY_TYPE_STRING || keyType === KEY_TYPE_BYTES || (keyType === KEY_TYPE_INTEGER && keyLength === 8);
  if (!knownType || keyLength > KEY_MAX_BYTES) throw invalidArgument('malformed cluster batch item: a bad key type or length');
  need(at, end, keyLength, 'key');
  const keyValue = decodeKeyValueAt(keyType, bytes, at, keyLength);
  at += keyLength;
  need(at, end, PAYLOAD_HEADER_BYTES, 'payload');
  if (bytes[at + 1] !== 0 || bytes.readUInt16LE(at + 2) !== 0) throw invalidArgument('malformed cluster batch item: its payload carries a key');
  const key: Key = set === undefined ? { ns, key: keyValue } : { ns, set, key: keyValue };
  // Bins the walk vouches for are stored as they came, decoded only if the per-record path needs them.
  if (payloadWellFormed(bytes, at, end)) return new PayloadPut(key, opts, bytes.subarray(at, end));
  let bins: Bins;
  try {
    bins = decodePayloadBins(bytes, at, end - at);
  } catch (error) {
    throw invalidArgument(`malformed cluster batch item: its bins do not decode: ${(error as Error).message}`);
  }
  return { method: 'put', key, bins, opts };
}

/**
 * A put whose bins arrived as a keyless payload that payloadWellFormed (lib/model/payload-check.ts)
 * vouched for: the namespace's batch path copies those bytes into its batch buffer instead of
 * encoding bins (BatchEntry[ENCODED_BINS]); `bins` is decoded on first use (the per-record path: a
 * merge, a repeated key, an error message).
 */
export class PayloadPut {
  readonly method = 'put' as const;
  readonly [ENCODED_BINS]: Buffer;
  private decoded: Bins | undefined;

  constructor(
    readonly key: Key,
    readonly opts: WriteOptions | undefined,
    payload: Buffer,
  ) {
    this[ENCODED_BINS] = payload;
  }

  get bins(): Bins {
    const payload = this[ENCODED_BINS];
    return (this.decoded ??= decodePayloadBins(payload, 0, payload.length));
  }
}

/** The last set name decoded and its UTF-8 bytes: the items of a batch usually share one. */
let lastSetName = '';
let lastSetBytes = Buffer.alloc(0);

/** The set name in bytes[at, at + length), checked to be UTF-8. */
function setNameAt(bytes: Buffer, at: number, length: number): string {
  if (length === lastSetBytes.length && bytesEqual(lastSetBytes, 0, bytes, at, length)) return lastSetName;
  const set = bytes.toString('utf8', at, at + length);
  if (Buffer.byteLength(set) !== length) throw invalidArgument('malformed cluster batch item: a set name that is not UTF-8');
  lastSetName = set;
  lastSetBytes = Buffer.from(bytes.subarray(at, at + length));
  return set;
}

/** Throws unless `count` bytes follow `at` before `end`. */
function need(at: number, end: number, count: number, what: string): void {
  if (at + count > end) throw invalidArgument(`malformed cluster batch item: its ${what} runs past its end`);
}

/** A batch put's result as it travels back to the calling node: [generation, ttl], not a map per item. */
export function writeResultToWire(result: WriteResult): unknown {
  return [result.gen, result.ttl];
}

/**
 * A batch put's result from the cluster: writeResultToWire's pair (this node's own share), or
 * a { gen, ttl } already (packed writes as parseBatchSteps reads them, or a node that sends
 * maps), returned as it is, as is a value of neither shape.
 */
export function writeResultFromWire(value: unknown): unknown {
  if (!Array.isArray(value) || value.length !== 2 || typeof value[0] !== 'number' || typeof value[1] !== 'number') return value;
  return { gen: value[0], ttl: value[1] };
}
