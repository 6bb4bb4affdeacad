/**
 * The exchange buffer: the one preallocated buffer per namespace through which the hot path
 * crosses into native code. Its byte layout is the contract in docs/native-boundary.md; the
 * offsets below mirror it and must change only together with native/exchange_layout.h.
 */

export const EX_DIGEST = 0;
export const EX_KEY_TYPE = 20;
export const EX_SET_LENGTH = 22;
export const EX_KEY_LENGTH = 24;
export const EX_SET = 32;
export const EX_KEY = 96;
export const EX_ENTRY = 4224;
export const EX_PREVIOUS = 4288;
export const EX_PARTITION_FILTER = 4352;
export const EX_DATA = 4864;
export const EXCHANGE_HEADER_BYTES = EX_DATA;

/** Field offsets inside an ENTRY or PREVIOUS block (64 bytes). */
export const ENTRY_GENERATION = 0;
export const ENTRY_VOID_TIME = 4;
export const ENTRY_SET_ID = 8;
export const ENTRY_FLAGS = 12;
export const ENTRY_LAST_UPDATE_MS = 16;
export const ENTRY_LOCATION_LOW = 24;
export const ENTRY_LOCATION_HIGH = 28;
export const ENTRY_DATA_LENGTH = 32;
export const ENTRY_ID = 36;
export const ENTRY_PARTITION_ID = 40;
export const ENTRY_EXISTED = 44;

/** Scan output records in DATA, 64 bytes each. */
export const SCAN_RECORD_BYTES = 64;
export const SCAN_GENERATION = 20;
export const SCAN_VOID_TIME = 24;
export const SCAN_SET_ID = 28;
export const SCAN_FLAGS = 32;
export const SCAN_ENTRY_ID = 36;
export const SCAN_LAST_UPDATE_MS = 40;
export const SCAN_LOCATION_LOW = 48;
export const SCAN_LOCATION_HIGH = 52;
export const SCAN_DATA_LENGTH = 56;
export const SCAN_PARTITION_ID = 60;

/** Flags stored in the index entry (4 bits). */
export const FLAG_TOMBSTONE = 1;
export const FLAG_HAS_KEY = 2;
export const FLAG_STORAGE_A = 4;
export const FLAG_STORAGE_B = 8;

/** Key type bytes, as Aerospike's clients hash them. */
export const KEY_TYPE_INTEGER = 1;
export const KEY_TYPE_STRING = 3;
export const KEY_TYPE_BYTES = 4;

/** Read-call option bits for PrimaryIndex.read(). */
export const READ_FROM_KEY = 1; // compute the digest from the key fields first
export const READ_COPY_DATA = 2; // copy the in-memory payload into DATA
export const READ_TOUCH_LRU = 4; // mark the entry most recently used

/** Upsert option bits for PrimaryIndex.upsert(). */
export const UPSERT_STORE_DATA = 1; // store DATA[0, dataLength) as the entry's in-memory payload
export const UPSERT_KEEP_DATA = 2; // keep the current payload (metadata-only update)

/** Results of PrimaryIndex.read() below zero. */
export const READ_NOT_FOUND = -1;

/**
 * The batch buffer of PrimaryIndex.lookupBatch()/writeBatch() (batchPut): slots of
 * BATCH_SLOT_BYTES, then the variable bytes (set name, key, payload) that slots point into.
 * Mirrors native/exchange_layout.h; docs/native-boundary.md, "The batch buffer".
 */
export const BATCH_SLOT_BYTES = 128;
export const BATCH_DIGEST = 0;
export const BATCH_KEY_TYPE = 20;
export const BATCH_SET_LENGTH = 21;
export const BATCH_KEY_LENGTH = 22;
export const BATCH_VARIABLE_OFFSET = 24;
export const BATCH_PAYLOAD_LENGTH = 28;
export const BATCH_STATUS = 32;
export const BATCH_DATA_LENGTH = 36;
export const BATCH_GENERATION = 40;
export const BATCH_VOID_TIME = 44;
export const BATCH_SET_ID = 48;
export const BATCH_FLAGS = 52;
export const BATCH_LAST_UPDATE_MS = 56;
export const BATCH_LOCATION_LOW = 64;
export const BATCH_LOCATION_HIGH = 68;
export const BATCH_ACTION = 72;
export const BATCH_BLOCK = 76;
export const BATCH_BLOCK_OFFSET = 80;
export const BATCH_RECORD_FLAGS = 84;
export const BATCH_PARTITION_ID = 88;
export const BATCH_PREVIOUS_EXISTED = 92;
export const BATCH_PREVIOUS_LOW = 96;
export const BATCH_PREVIOUS_HIGH = 100;
export const BATCH_PREVIOUS_DATA_LENGTH = 104;
export const BATCH_ENTRY_ID = 108;
export const BATCH_DONE = 112;
/** Slots one lookupBatch/writeBatch call accepts. */
export const BATCH_SLOTS_MAX = 65536;

/** BATCH_STATUS values written by lookupBatch. */
export const BATCH_ABSENT = 0;
export const BATCH_EXISTS = 1;
export const BATCH_DUPLICATE = 2;

/** BATCH_ACTION values read by writeBatch. */
export const BATCH_SKIP = 0;
export const BATCH_WRITE_INDEX = 1;
export const BATCH_WRITE_RECORD = 2;

/**
 * Typed views over one exchange buffer. All share the same memory; offsets are in bytes and
 * divided by the element size when indexing.
 */
export class Exchange {
  readonly buffer: Buffer;
  readonly u8: Uint8Array;
  readonly u32: Uint32Array;
  readonly f64: Float64Array;
  readonly dataCapacity: number;
  /**
   * The set name whose bytes are in the set field now (writeKey skips re-copying them).
   * Only writeKey writes the set field, so this stays true until it changes it.
   */
  lastSetName: string | undefined = undefined;

  constructor(dataCapacity: number) {
    this.dataCapacity = dataCapacity;
    this.buffer = Buffer.alloc(EXCHANGE_HEADER_BYTES + dataCapacity);
    const arrayBuffer = this.buffer.buffer;
    this.u8 = new Uint8Array(arrayBuffer, this.buffer.byteOffset, this.buffer.length);
    this.u32 = new Uint32Array(arrayBuffer, this.buffer.byteOffset, this.buffer.length >>> 2);
    this.f64 = new Float64Array(arrayBuffer, this.buffer.byteOffset, this.buffer.length >>> 3);
  }

  entryU32(field: number): number {
    return this.u32[(EX_ENTRY + field) >>> 2]!;
  }

  setEntryU32(field: number, value: number): void {
    this.u32[(EX_ENTRY + field) >>> 2] = value;
  }

  entryF64(field: number): number {
    return this.f64[(EX_ENTRY + field) >>> 3]!;
  }

  setEntryF64(field: number, value: number): void {
    this.f64[(EX_ENTRY + field) >>> 3] = value;
  }

  /** Writes the ENTRY fields a write sets (the location is left to the caller). */
  writeEntryFields(gen: number, voidTime: number, setId: number, flags: number, lastUpdateMs: number, dataLength: number): void {
    this.setEntryU32(ENTRY_GENERATION, gen);
    this.setEntryU32(ENTRY_VOID_TIME, voidTime);
    this.setEntryU32(ENTRY_SET_ID, setId);
    this.setEntryU32(ENTRY_FLAGS, flags);
    this.setEntryF64(ENTRY_LAST_UPDATE_MS, lastUpdateMs);
    this.setEntryU32(ENTRY_DATA_LENGTH, dataLength);
  }

  previousU32(field: number): number {
    return this.u32[(EX_PREVIOUS + field) >>> 2]!;
  }

  previousF64(field: number): number {
    return this.f64[(EX_PREVIOUS + field) >>> 3]!;
  }

  /** A copy of the digest currently in the exchange (allocates; not for the hot path). */
  digestCopy(): Buffer {
    return Buffer.from(this.buffer.subarray(EX_DIGEST, EX_DIGEST + 20));
  }

  setDigest(digest: Uint8Array): void {
    this.u8.set(digest, EX_DIGEST);
  }
}
