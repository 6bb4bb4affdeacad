/**
 * batchPut's write path, shared by memory and device namespaces (docs/storage.md, "Batched
 * writes"). A batch crosses into native code twice per call of up to BATCH_PUT_SLOTS_PER_CALL
 * entries, not twice per record:
 *
 *   1. JS writes every entry's set name, key and encoded payload into one batch buffer;
 *      `lookupBatch` computes the digests, finds repeated keys and looks every key up.
 *   2. JS decides each entry from that compact result with the same rules as a single put
 *      (semantics.ts): an error (RECORD_EXISTS, GENERATION_MISMATCH, ...), a write that needs
 *      nothing but the record's metadata (a new record, or a replace), or the per-record path
 *      (a bin merge, an expired record, a repeated key, bins written as null, a record another
 *      operation holds).
 *   3. The namespace stores the writes: `writeBatch` formats the storage records into write
 *      blocks (device namespaces) and upserts the index entries in one call.
 *   4. The entries left for the per-record path run afterwards, in their order, through the
 *      namespace's own put(); a repeated key therefore sees the earlier entries, exactly as
 *      individual puts in that order would.
 *
 * Each entry gets its own result or error; one failure never stops the others.
 */
import { BATCH_PUT_SLOTS_PER_CALL, BATCH_PUT_VARIABLE_BYTES_MIN, INDEX_ENTRY_BYTES, INDEX_SIDE_ENTRY_BYTES, KEY_MAX_BYTES, PAYLOAD_HEADER_BYTES, SET_NAME_MAX_BYTES } from '../constants';
import type { Clock } from '../clock';
import { ErrorCode, ShoalError } from '../errors';
import { BINS_NEED_CHECK } from '../model/bin-encoder';
import { Bins, checkBins, encodePayloadChecked, recordTooBig } from '../model/bins';
import { KEY_LENGTH_SHIFT, KEY_TYPE_MASK, Key, encodeSetName, writeKeyValue } from '../model/key';
import type { NativePrimaryIndex } from '../native/addon';
import {
  BATCH_ACTION,
  BATCH_DATA_LENGTH,
  BATCH_DIGEST,
  BATCH_DONE,
  BATCH_DUPLICATE,
  BATCH_EXISTS,
  BATCH_FLAGS,
  BATCH_GENERATION,
  BATCH_KEY_LENGTH,
  BATCH_KEY_TYPE,
  BATCH_LAST_UPDATE_MS,
  BATCH_LOCATION_HIGH,
  BATCH_LOCATION_LOW,
  BATCH_PAYLOAD_LENGTH,
  BATCH_RECORD_FLAGS,
  BATCH_SET_ID,
  BATCH_SET_LENGTH,
  BATCH_SKIP,
  BATCH_SLOT_BYTES,
  BATCH_STATUS,
  BATCH_VARIABLE_OFFSET,
  BATCH_VOID_TIME,
  BATCH_WRITE_INDEX,
  FLAG_HAS_KEY,
} from '../native/exchange';
import type { NamespaceConfig } from './config';
import { RECORD_FLAG_PAYLOAD_KEY } from '../storage/format';
import type { WriteGate } from '../storage/write-gate';
import { ENCODED_BINS, type BatchEntry, type BatchOutcome, type BatchPutRequest, type BatchResults, type MaybePromise, type RecordVersion, type WriteResult } from './namespace';
import {
  Current,
  WriteOptions,
  checkPutPolicy,
  containsNull,
  isExpired,
  nextGeneration,
  nextLastUpdateMs,
  putMerges,
  ttlOf,
  voidTimeFor,
} from './semantics';

/** What a namespace lends the batch writer. */
export interface BatchHost {
  readonly config: NamespaceConfig;
  /** The namespace's clock (last-update times, void times). */
  readonly clock: Clock;
  /** The set id of a new record's set (assigning one on first use). */
  setIdFor(set: string | undefined): number;
  /** Whether an operation in flight holds the record whose digest is at batch[at, at + 20): the entry must queue behind it. */
  busy(batch: Buffer, at: number): boolean;
  /** Whether the writes may grow memory by `growthBytes` without eviction; if not, they go one by one. */
  admits(growthBytes: number): boolean;
  /**
   * Stores every slot whose action is BATCH_WRITE_INDEX (writeBatch and the namespace's
   * accounting). A slot that fails gets its error in batch.outcomes and BATCH_SKIP. Returns a
   * promise when the writes must reach the device before they are acknowledged; it never
   * rejects, it resolves to the error every written slot then gets (or undefined).
   */
  store(batch: PutBatch): Promise<ShoalError | undefined> | undefined;
  /** The per-record path: the namespace's put, past its write gate (the batch holds it). */
  put(key: Key, bins: Bins, options: WriteOptions | undefined): MaybePromise<WriteResult>;
  /** The namespace's write gate: a batch holds it from its first native call to its last. */
  readonly gate: WriteGate;
}

/** The batch buffer of one native call and what JS keeps per slot. */
export class PutBatch {
  readonly buffer: Buffer;
  readonly u8: Uint8Array;
  readonly u32: Uint32Array;
  readonly f64: Float64Array;
  count = 0;
  private variableEnd = BATCH_PUT_SLOTS_PER_CALL * BATCH_SLOT_BYTES;
  /**
   * Per slot (allocated once at BATCH_PUT_SLOTS_PER_CALL, so filling them never grows an
   * array): the entry, its position in the caller's entries, whether it must take the
   * per-record path (1) or not (0), and its outcome. Slots at and past `count` are stale;
   * reset() drops the entries so a finished batch keeps no caller object alive.
   */
  readonly entries: (BatchEntry | undefined)[] = new Array(BATCH_PUT_SLOTS_PER_CALL).fill(undefined);
  /**
   * Per slot, what decide() needs of the entry, taken while add() has it in cache: its
   * options (its own, else the batch's) and its key's set name.
   */
  readonly entryOptions: (WriteOptions | undefined)[] = new Array(BATCH_PUT_SLOTS_PER_CALL).fill(undefined);
  readonly sets: (string | undefined)[] = new Array(BATCH_PUT_SLOTS_PER_CALL).fill(undefined);
  readonly positions = new Uint32Array(BATCH_PUT_SLOTS_PER_CALL);
  readonly perRecord = new Uint8Array(BATCH_PUT_SLOTS_PER_CALL);
  readonly outcomes: (BatchOutcome | undefined)[] = new Array(BATCH_PUT_SLOTS_PER_CALL).fill(undefined);
  /** The batch's options, for entries without opts of their own. */
  options: WriteOptions | undefined = undefined;
  /** Whether a slot decided to be written is durable (its own or the batch's options); set by decide(). */
  durable = false;
  /** The set name of the last entry added and its UTF-8 bytes (entries of a batch usually share one). */
  private lastSet = '';
  private lastSetBytes: Uint8Array = new Uint8Array(0);
  /** Bytes an entry may need at most: set name, key, payload. */
  private readonly entryBytesMax: number;

  constructor(private readonly maxRecordBytes: number) {
    this.entryBytesMax = SET_NAME_MAX_BYTES + KEY_MAX_BYTES + maxRecordBytes;
    const variableBytes = Math.max(BATCH_PUT_VARIABLE_BYTES_MIN, 2 * this.entryBytesMax);
    this.buffer = Buffer.alloc(BATCH_PUT_SLOTS_PER_CALL * BATCH_SLOT_BYTES + variableBytes);
    this.u8 = new Uint8Array(this.buffer.buffer, this.buffer.byteOffset, this.buffer.length);
    this.u32 = new Uint32Array(this.buffer.buffer, this.buffer.byteOffset, this.buffer.length >>> 2);
    this.f64 = new Float64Array(this.buffer.buffer, this.buffer.byteOffset, this.buffer.length >>> 3);
  }

  reset(): void {
    for (let i = 0; i < this.count; i++) {
      this.entries[i] = undefined;
      this.entryOptions[i] = undefined;
      this.sets[i] = undefined;
      this.outcomes[i] = undefined;
    }
    this.count = 0;
    this.variableEnd = BATCH_PUT_SLOTS_PER_CALL * BATCH_SLOT_BYTES;
    this.durable = false;
  }

  /** Whether another entry surely fits. */
  hasRoom(): boolean {
    return this.count < BATCH_PUT_SLOTS_PER_CALL && this.variableEnd + this.entryBytesMax <= this.buffer.length;
  }

  /**
   * Adds an entry: its key (for the digest), set name (for the record), and, unless it goes
   * the per-record way anyway, its payload. Checks the bins (the Db checked only that they are
   * a plain object), giving the error checkBins gives. Returns an error for an entry that
   * cannot be written (bad bins, a bad key or set, a record too big); nothing is added then.
   */
  add(entry: BatchEntry, position: number, storeKeyDefault: boolean): ShoalError | undefined {
    const slot = this.count * BATCH_SLOT_BYTES;
    const u8 = this.u8;
    let at = this.variableEnd;
    const key = entry.key;
    const set = key.set ?? '';
    let setLength = 0;
    let written = 0;
    try {
      if (set.length > 0) setLength = this.writeSetName(set, at);
      const value = key.key;
      if (value === undefined || value === null) u8.set(key.digest!, slot + BATCH_DIGEST);
      else written = writeKeyValue(u8, this.buffer, at + setLength, value);
    } catch (error) {
      // The Db checks the bins before the key's bytes are written: a bad bin is the error.
      return binsError(entry.bins, position) ?? asShoalError(error);
    }
    const keyType = written & KEY_TYPE_MASK;
    const keyLength = written >>> KEY_LENGTH_SHIFT;
    // The bins are checked as they are encoded (the Db left them to this one walk); anything
    // the encoder will not vouch for is checked by checkBins: an error is the entry's result,
    // a bin written as null sends the entry the per-record way.
    const options = entry.opts ?? this.options;
    const storeKey = (options?.storeKey ?? storeKeyDefault) && keyType !== 0;
    const payloadAt = at + setLength + keyLength;
    const keyBytes = storeKey ? u8.subarray(at + setLength, payloadAt) : undefined;
    const encoded = entry[ENCODED_BINS];
    let payloadLength = encoded === undefined ? encodePayloadChecked(this.buffer, payloadAt, this.maxRecordBytes, entry.bins, keyType, keyBytes) : this.copyPayload(encoded, payloadAt, keyType, keyBytes);
    let perRecord = false;
    if (payloadLength < 0) {
      const error = binsError(entry.bins, position);
      if (error !== undefined) return error;
      perRecord = containsNull(entry.bins) || payloadLength === BINS_NEED_CHECK;
      if (!perRecord) return recordTooBig(entry.bins, keyBytes?.length ?? 0, this.maxRecordBytes, entry.key.ns);
      payloadLength = 0;
    }
    u8[slot + BATCH_KEY_TYPE] = keyType;
    u8[slot + BATCH_SET_LENGTH] = setLength;
    u8[slot + BATCH_KEY_LENGTH] = keyLength & 0xff;
    u8[slot + BATCH_KEY_LENGTH + 1] = keyLength >>> 8;
    this.setU32(slot + BATCH_VARIABLE_OFFSET, at);
    this.setU32(slot + BATCH_PAYLOAD_LENGTH, payloadLength);
    this.setU32(slot + BATCH_RECORD_FLAGS, storeKey && !perRecord ? RECORD_FLAG_PAYLOAD_KEY : 0);
    this.setU32(slot + BATCH_ACTION, BATCH_SKIP);
    this.setU32(slot + BATCH_DONE, 0);
    at += setLength + keyLength + payloadLength;
    this.variableEnd = (at + 7) & ~7;
    const index = this.count++;
    this.entries[index] = entry;
    this.entryOptions[index] = options;
    this.sets[index] = key.set ?? undefined;
    this.positions[index] = position;
    this.perRecord[index] = perRecord ? 1 : 0;
    return undefined;
  }

  /** Writes the set name's bytes at `at` in the variable area; returns their length. */
  private writeSetName(set: string, at: number): number {
    if (set !== this.lastSet) {
      this.lastSetBytes = encodeSetName(set);
      this.lastSet = set;
    }
    // A byte loop: set names are at most 63 bytes, and TypedArray#set costs more than that.
    const setBytes = this.lastSetBytes;
    const u8 = this.u8;
    for (let i = 0; i < setBytes.length; i++) u8[at + i] = setBytes[i]!;
    return setBytes.length;
  }

  /**
   * Adds a replicated record version (batch-apply.ts) as a digest-addressed slot: its digest,
   * set name and payload as they came (checked by the cluster), at `position` in the caller's
   * list. The caller checks hasRoom() first and that the payload is at most maxRecordBytes.
   * @throws ShoalError INVALID_ARGUMENT for a set name the namespace cannot hold (nothing added).
   */
  addVersion(digest: Uint8Array, set: string, payload: Uint8Array, position: number): void {
    const slot = this.count * BATCH_SLOT_BYTES;
    const u8 = this.u8;
    const at = this.variableEnd;
    let setLength = 0;
    if (set.length > 0) setLength = this.writeSetName(set, at);
    // A digest is 20 bytes (the cluster checked it; a longer one would run into the slot's fields).
    if (digest.length !== 20) throw new ShoalError(ErrorCode.INVALID_ARGUMENT, 'a record version digest is not 20 bytes');
    u8.set(digest, slot + BATCH_DIGEST);
    u8.set(payload, at + setLength);
    u8[slot + BATCH_KEY_TYPE] = 0;
    u8[slot + BATCH_SET_LENGTH] = setLength;
    u8[slot + BATCH_KEY_LENGTH] = 0;
    u8[slot + BATCH_KEY_LENGTH + 1] = 0;
    this.setU32(slot + BATCH_VARIABLE_OFFSET, at);
    this.setU32(slot + BATCH_PAYLOAD_LENGTH, payload.length);
    this.setU32(slot + BATCH_RECORD_FLAGS, payload[1] !== 0 ? RECORD_FLAG_PAYLOAD_KEY : 0);
    this.setU32(slot + BATCH_ACTION, BATCH_SKIP);
    this.setU32(slot + BATCH_DONE, 0);
    this.variableEnd = (at + setLength + payload.length + 7) & ~7;
    const index = this.count++;
    this.sets[index] = set.length === 0 ? undefined : set;
    this.positions[index] = position;
    this.perRecord[index] = 0;
  }

  /**
   * Writes a payload whose bins came encoded (BatchEntry[ENCODED_BINS], checked by the cluster:
   * format 1, no top-level nil) at `payloadAt`, with the key when it is stored: the bytes
   * encodePayloadChecked would write for those bins. Returns its length, or -1 when it
   * exceeds maxRecordBytes.
   */
  private copyPayload(encoded: Buffer, payloadAt: number, keyType: number, keyBytes: Uint8Array | undefined): number {
    const keyLength = keyBytes === undefined ? 0 : keyBytes.length;
    const binsLength = encoded.length - PAYLOAD_HEADER_BYTES;
    const length = PAYLOAD_HEADER_BYTES + keyLength + binsLength;
    if (length > this.maxRecordBytes) return -1;
    const u8 = this.u8;
    // The key sits just before the payload in the batch buffer (add): copy it in first.
    if (keyBytes !== undefined) u8.copyWithin(payloadAt + PAYLOAD_HEADER_BYTES, payloadAt - keyLength, payloadAt);
    u8[payloadAt] = encoded[0]!;
    u8[payloadAt + 1] = keyBytes === undefined ? 0 : keyType;
    u8[payloadAt + 2] = keyLength & 0xff;
    u8[payloadAt + 3] = keyLength >>> 8;
    encoded.copy(this.buffer, payloadAt + PAYLOAD_HEADER_BYTES + keyLength, PAYLOAD_HEADER_BYTES);
    return length;
  }

  /**
   * After writeBatch: calls `written` with the slot offset of each record it stored; an entry
   * it was to write but did not gets `failure` as its outcome and leaves the batch.
   */
  forEachWritten(failure: ShoalError | undefined, written: (slot: number) => void): void {
    for (let i = 0; i < this.count; i++) {
      const slot = i * BATCH_SLOT_BYTES;
      if (this.u32At(slot + BATCH_ACTION) === BATCH_SKIP) continue;
      if (this.u32At(slot + BATCH_DONE) !== 1) {
        this.outcomes[i] = failure;
        this.setU32(slot + BATCH_ACTION, BATCH_SKIP);
        continue;
      }
      written(slot);
    }
  }

  u32At(byteOffset: number): number {
    return this.u32[byteOffset >>> 2]!;
  }

  setU32(byteOffset: number, value: number): void {
    this.u32[byteOffset >>> 2] = value;
  }

  f64At(byteOffset: number): number {
    return this.f64[byteOffset >>> 3]!;
  }

  setF64(byteOffset: number, value: number): void {
    this.f64[byteOffset >>> 3] = value;
  }
}

/**
 * One namespace's batchPut calls (docs/storage.md, "Batched writes"): each runs its entries
 * through the batch path, a native call of at most BATCH_PUT_SLOTS_PER_CALL entries at a time.
 * A call holds the namespace's write gate from its first native call to its last, with the
 * event loop free (and, on a device, room in the write path awaited) between two, so a big
 * batch never holds the event loop long, and no write called after it runs before it is done.
 * Calls run one after another, in call order (they also share the batch buffer).
 */
export class BatchWriter {
  /** The batch buffer; a replica's version batches (batch-apply.ts) share it, under the same gate. */
  readonly batch: PutBatch;

  constructor(
    private readonly host: BatchHost,
    private readonly index: NativePrimaryIndex,
    maxRecordBytes: number,
  ) {
    this.batch = new PutBatch(maxRecordBytes);
  }

  /**
   * Writes the request's entries, putting each entry's result (or a promise of it) into results
   * at the entry's position. When the gate is free, a batch of one native call's size is
   * written before this returns.
   */
  putMany(request: BatchPutRequest, results: BatchResults): Promise<void> {
    const gate = this.host.gate;
    const entry = gate.hold();
    // A batch of several calls first gives the event loop the turn the Db's routing of it took.
    const start = (): Promise<void> => (request.positions.length > BATCH_PUT_SLOTS_PER_CALL ? gate.between().then(() => this.writeFrom(request, results, 0)) : this.writeFrom(request, results, 0));
    return entry === undefined ? start() : entry.then(start);
  }

  /** Writes the entries from positions[from] on, one native call at a time, the gate held; leaves it when done. */
  private writeFrom(request: BatchPutRequest, results: BatchResults, from: number): Promise<void> {
    const gate = this.host.gate;
    let next: number;
    try {
      next = this.writeCall(request, results, from);
    } catch (error) {
      gate.leave();
      return Promise.reject(error);
    }
    if (next >= request.positions.length) {
      gate.leave();
      return Promise.resolve();
    }
    return gate.between().then(
      () => this.writeFrom(request, results, next),
      (error: unknown) => {
        gate.leave();
        throw error;
      },
    );
  }

  /** One native call's worth of entries from positions[from] on; returns where the next call starts. */
  private writeCall(request: BatchPutRequest, results: BatchResults, from: number): number {
    const { host, index, batch } = this;
    batch.reset();
    batch.options = request.options;
    let at = from;
    for (; at < request.positions.length && batch.hasRoom(); at++) {
      const position = request.positions[at]!;
      const refused = request.check?.(position);
      if (refused !== undefined) {
        results[position] = refused;
        continue;
      }
      const error = batch.add(request.entries[position]!, position, host.config.storeKey);
      if (error !== undefined) results[position] = error;
    }
    flush(host, index, batch, results, request.versions);
    return at;
  }
}

/** Looks up, decides, stores the batch, then runs the per-record entries in order. */
function flush(host: BatchHost, index: NativePrimaryIndex, batch: PutBatch, results: BatchResults, versions: (RecordVersion | undefined)[] | undefined): void {
  if (batch.count === 0) return;
  index.lookupBatch(batch.buffer, batch.count);
  const nowMs = host.clock.nowMs();
  newRecordSet = undefined;
  let writes = 0;
  let growthBytes = 0;
  for (let i = 0; i < batch.count; i++) {
    const growth = decide(host, batch, i, nowMs);
    if (growth === undefined) continue;
    writes++;
    if (growth > 0) growthBytes += growth;
  }
  if (writes > 0 && !host.admits(growthBytes)) {
    // Eviction would run between these writes: let each take the per-record path instead.
    for (let i = 0; i < batch.count; i++) {
      if (batch.u32At(i * BATCH_SLOT_BYTES + BATCH_ACTION) === BATCH_SKIP) continue;
      batch.setU32(i * BATCH_SLOT_BYTES + BATCH_ACTION, BATCH_SKIP);
      batch.outcomes[i] = undefined;
      batch.perRecord[i] = 1;
    }
    writes = 0;
    batch.durable = false;
  }
  const stored = writes > 0 ? host.store(batch) : undefined;
  for (let i = 0; i < batch.count; i++) {
    const position = batch.positions[i]!;
    if (batch.perRecord[i] === 1) {
      const entry = batch.entries[i]!;
      results[position] = settle(() => host.put(entry.key, entry.bins, entry.opts ?? batch.options));
      continue;
    }
    const outcome = batch.outcomes[i]!;
    const written = batch.u32At(i * BATCH_SLOT_BYTES + BATCH_ACTION) !== BATCH_SKIP;
    if (written && versions !== undefined) versions[position] = writtenVersion(batch, i);
    results[position] = stored !== undefined && written ? stored.then((failure) => failure ?? outcome) : outcome;
  }
  batch.reset();
}

/**
 * The set name of the last new record decided in this flush and its set id: entries of a batch
 * usually share a set, and nothing can change a set's id while a flush runs synchronously.
 */
let newRecordSet: string | undefined;
let newRecordSetId = 0;

/** The set id of a new record's set, through the cache above. */
function setIdOfNew(host: BatchHost, set: string | undefined): number {
  if (set === newRecordSet && set !== undefined) return newRecordSetId;
  const id = host.setIdFor(set);
  newRecordSet = set;
  newRecordSetId = id;
  return id;
}

/** The state before the entry being decided (reused: decide() is synchronous). */
const before: Current = { exists: false, gen: 0, voidTime: 0, lastUpdateMs: 0 };
/** Memory a new record costs besides its payload (the memory namespace's accounting). */
const ENTRY_OVERHEAD_BYTES = INDEX_ENTRY_BYTES + INDEX_SIDE_ENTRY_BYTES;

/**
 * Decides slot i from its lookup: an outcome that is an error, the per-record path, or a write
 * whose metadata it fills in (BATCH_WRITE_INDEX). Returns the write's memory growth in bytes,
 * or undefined when it writes nothing now.
 */
function decide(host: BatchHost, batch: PutBatch, i: number, nowMs: number): number | undefined {
  if (batch.perRecord[i] === 1) return undefined;
  const slot = i * BATCH_SLOT_BYTES;
  const options = batch.entryOptions[i];
  const status = batch.u32At(slot + BATCH_STATUS);
  if (status === BATCH_DUPLICATE || host.busy(batch.buffer, slot + BATCH_DIGEST)) {
    batch.perRecord[i] = 1;
    return undefined;
  }
  const nowSeconds = Math.floor(nowMs / 1000);
  const exists = status === BATCH_EXISTS;
  before.exists = exists;
  before.gen = exists ? batch.u32At(slot + BATCH_GENERATION) : 0;
  before.voidTime = exists ? batch.u32At(slot + BATCH_VOID_TIME) : 0;
  before.lastUpdateMs = exists ? batch.f64At(slot + BATCH_LAST_UPDATE_MS) : 0;
  // The per-record path removes an expired record (it counts as absent there).
  if (exists && isExpired(before.voidTime, nowSeconds)) {
    batch.perRecord[i] = 1;
    return undefined;
  }
  try {
    checkPutPolicy(before, options);
  } catch (error) {
    batch.outcomes[i] = error as ShoalError;
    return undefined;
  }
  // Merging needs the stored bins; a digest-addressed key leaves the record's set to check.
  if (exists && (putMerges(options) || batch.u8[slot + BATCH_KEY_TYPE] === 0)) {
    batch.perRecord[i] = 1;
    return undefined;
  }
  let setId: number;
  try {
    setId = exists ? batch.u32At(slot + BATCH_SET_ID) : setIdOfNew(host, batch.sets[i]);
  } catch (error) {
    batch.outcomes[i] = error as ShoalError;
    return undefined;
  }
  const gen = nextGeneration(before.gen);
  const voidTime = voidTimeFor(options?.ttl, host.config.defaultTtl, before, nowSeconds);
  batch.setU32(slot + BATCH_GENERATION, gen);
  batch.setU32(slot + BATCH_VOID_TIME, voidTime);
  batch.setU32(slot + BATCH_SET_ID, setId);
  batch.setU32(slot + BATCH_FLAGS, batch.u32At(slot + BATCH_RECORD_FLAGS) !== 0 ? FLAG_HAS_KEY : 0);
  const lastUpdateMs = nextLastUpdateMs(before, nowMs);
  host.clock.noteStamp?.(lastUpdateMs);
  batch.setF64(slot + BATCH_LAST_UPDATE_MS, lastUpdateMs);
  batch.setU32(slot + BATCH_LOCATION_LOW, 0);
  batch.setU32(slot + BATCH_LOCATION_HIGH, 0);
  batch.setU32(slot + BATCH_ACTION, BATCH_WRITE_INDEX);
  batch.outcomes[i] = { gen, ttl: ttlOf(voidTime, nowSeconds) };
  if (options?.durable === true) batch.durable = true;
  const payloadLength = batch.u32At(slot + BATCH_PAYLOAD_LENGTH);
  return payloadLength + (exists ? -batch.u32At(slot + BATCH_DATA_LENGTH) : ENTRY_OVERHEAD_BYTES);
}

/** The version slot i wrote (copied out of the batch buffer, which the next call reuses). */
function writtenVersion(batch: PutBatch, i: number): RecordVersion {
  const slot = i * BATCH_SLOT_BYTES;
  const u8 = batch.u8;
  const payloadAt = batch.u32At(slot + BATCH_VARIABLE_OFFSET) + u8[slot + BATCH_SET_LENGTH]! + (u8[slot + BATCH_KEY_LENGTH]! | (u8[slot + BATCH_KEY_LENGTH + 1]! << 8));
  return {
    digest: Buffer.from(batch.buffer.subarray(slot + BATCH_DIGEST, slot + BATCH_DIGEST + 20)),
    gen: batch.u32At(slot + BATCH_GENERATION),
    voidTime: batch.u32At(slot + BATCH_VOID_TIME),
    lastUpdateMs: batch.f64At(slot + BATCH_LAST_UPDATE_MS),
    setName: batch.sets[i] ?? '',
    tombstone: false,
    payload: Buffer.from(batch.buffer.subarray(payloadAt, payloadAt + batch.u32At(slot + BATCH_PAYLOAD_LENGTH))),
  };
}

/** Runs the per-record path for one entry; its error becomes its outcome. */
function settle(run: () => MaybePromise<WriteResult>): BatchOutcome | Promise<BatchOutcome> {
  try {
    const result = run();
    return result instanceof Promise ? result.catch(asShoalError) : result;
  } catch (error) {
    return asShoalError(error);
  }
}

/**
 * The error checkBins gives the bins of the entry at `position` (bins written as null
 * allowed), as the Db reported it when it ran checkBins itself: a ShoalError as it is, anything
 * else (a getter that throws) as INVALID_ARGUMENT naming the entry. Undefined when they pass.
 */
function binsError(bins: Bins, position: number): ShoalError | undefined {
  try {
    checkBins(bins, true);
    return undefined;
  } catch (error) {
    if (error instanceof ShoalError) return error;
    return new ShoalError(ErrorCode.INVALID_ARGUMENT, `entries[${position}]: ${(error as Error).message}`, { cause: error });
  }
}

/** An entry's error as the ShoalError batchPut reports (wrong-type arguments become INVALID_ARGUMENT). */
export function asShoalError(error: unknown): ShoalError {
  if (error instanceof ShoalError) return error;
  return new ShoalError(ErrorCode.INVALID_ARGUMENT, (error as Error).message ?? String(error), { cause: error });
}
