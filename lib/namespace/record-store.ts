/**
 * The seam between the record core (record-core.ts), which holds every rule about records,
 * and the store behind it, which says where a record's payload lives: in the primary index's
 * own memory (memory-store.ts) or on a DeviceStore (device-records.ts).
 *
 * Both sides share a RecordIndex: the namespace's primary index, the exchange through which
 * every index call passes its record, the set table and the record counts. The core counts the
 * records it adds and removes; a store counts only its own bytes (memory used, or the device
 * locations it releases).
 */
import { INDEX_ENTRY_BYTES, INDEX_SIDE_ENTRY_BYTES, SCAN_BATCH_RECORDS } from '../constants';
import type { Clock } from '../clock';
import type { ShoalError } from '../errors';
import type { NativePrimaryIndex } from '../native/addon';
import {
  BATCH_PARTITION_ID,
  BATCH_PREVIOUS_EXISTED,
  ENTRY_FLAGS,
  ENTRY_GENERATION,
  ENTRY_LAST_UPDATE_MS,
  ENTRY_LOCATION_HIGH,
  ENTRY_LOCATION_LOW,
  ENTRY_SET_ID,
  ENTRY_VOID_TIME,
  Exchange,
  SCAN_RECORD_BYTES,
} from '../native/exchange';
import type { TruncateCut } from '../model/truncate-cuts';
import type { WriteGate } from '../storage/write-gate';
import type { PutBatch } from './batch-put';
import type { NamespaceConfig } from './config';
import type { FilterSource } from './filter';
import type { NamespaceStats, StartMode } from './namespace';
import type { NextVersion } from './record-rules';
import { PartitionCounts } from './partition-counts';
import type { Current } from './semantics';
import { SetTable } from './set-table';

/** Memory charged per record besides its payload: the index entry and its side-table entry. */
export const ENTRY_OVERHEAD_BYTES = INDEX_ENTRY_BYTES + INDEX_SIDE_ENTRY_BYTES;

/** The exchange a namespace's index calls go through: room for its largest record and for a scan batch. */
export function namespaceExchange(config: NamespaceConfig): Exchange {
  return new Exchange(Math.max(config.maxRecordBytes, SCAN_BATCH_RECORDS * SCAN_RECORD_BYTES));
}

/**
 * A record as a lookup found it (its digest and key stay in the exchange until the write that
 * follows), with the time it looked (one clock read per operation) and, when the operation
 * asked for it, its payload: `payloadLength` bytes of `payload` from `payloadOffset` (the
 * exchange itself when the index holds payloads).
 */
export interface Loaded extends Current {
  setId: number;
  flags: number;
  /** The payload bytes the index holds (0 when payloads live on a device only). */
  dataLength: number;
  /** The record's location on the device (DeviceStore), 0 for memory namespaces. */
  low: number;
  high: number;
  nowMs: number;
  payload: Buffer | undefined;
  payloadOffset: number;
  payloadLength: number;
}

/** No record (absent or expired), looked for at `nowMs`. */
export function absentAt(nowMs: number): Loaded {
  return { exists: false, gen: 0, voidTime: 0, lastUpdateMs: 0, setId: 0, flags: 0, dataLength: 0, low: 0, high: 0, nowMs, payload: undefined, payloadOffset: 0, payloadLength: 0 };
}

/** The entry a lookup just left in the exchange, for a record found with `dataLength` bytes in the index. */
export function loadedFromExchange(exchange: Exchange, dataLength: number, nowMs: number, payload: Buffer | undefined, payloadOffset: number): Loaded {
  return {
    exists: true,
    gen: exchange.entryU32(ENTRY_GENERATION),
    voidTime: exchange.entryU32(ENTRY_VOID_TIME),
    lastUpdateMs: exchange.entryF64(ENTRY_LAST_UPDATE_MS),
    setId: exchange.entryU32(ENTRY_SET_ID),
    flags: exchange.entryU32(ENTRY_FLAGS),
    dataLength,
    low: exchange.entryU32(ENTRY_LOCATION_LOW),
    high: exchange.entryU32(ENTRY_LOCATION_HIGH),
    nowMs,
    payload,
    payloadOffset,
    payloadLength: payload === undefined ? 0 : dataLength,
  };
}

/** A record as opts.filter evaluates it (filter.ts): its metadata, `length` bytes of payload from `offset`, its digest. */
export function filterSourceOf(
  records: RecordIndex,
  store: RecordStore,
  meta: { voidTime: number; lastUpdateMs: number; setId: number },
  payload: Buffer,
  offset: number,
  length: number,
  digest: Uint8Array,
): FilterSource {
  return {
    payload,
    offset,
    length,
    voidTime: meta.voidTime,
    lastUpdateMs: meta.lastUpdateMs,
    setName: records.sets.nameOf(meta.setId),
    digest,
    onDevice: store.onDevice,
    inMemory: store.payloadInIndex,
  };
}

/** One namespace's primary index and what the record core and its store both keep of it. */
export class RecordIndex {
  sets = new SetTable();
  /** Live records in the index. */
  objects = 0;
  expired = 0;
  evicted = 0;
  closed = false;
  readonly partitions: PartitionCounts;

  constructor(
    readonly config: NamespaceConfig,
    readonly index: NativePrimaryIndex,
    readonly exchange: Exchange,
    readonly clock: Clock,
    readonly log: (message: string) => void,
  ) {
    this.partitions = new PartitionCounts(index, exchange);
  }

  /** A new record of this partition is in the index. */
  added(partitionId: number): void {
    this.objects++;
    this.partitions.added(partitionId);
  }

  /** The record whose digest is in the exchange has left the index. */
  removedInExchange(): void {
    this.objects--;
    this.partitions.removedInExchange();
  }

  /** `count` records left the index without saying from which partitions (eviction, a sweep, truncate). */
  bulkRemoved(count: number): void {
    if (count === 0) return;
    this.objects -= count;
    this.partitions.invalidate();
  }

  /**
   * A batch's written slots (PutBatch.forEachWritten): a slot that made a new record is counted
   * here, and each slot, new or not, goes to `each` for the store's own accounting.
   */
  countBatch(batch: PutBatch, failure: ShoalError | undefined, each: (slot: number, existed: boolean) => void): void {
    batch.forEachWritten(failure, (slot) => {
      const existed = batch.u32At(slot + BATCH_PREVIOUS_EXISTED) === 1;
      if (!existed) this.added(batch.u32At(slot + BATCH_PARTITION_ID));
      each(slot, existed);
    });
  }
}

/**
 * Where a namespace's payloads live. The record core decides every write; the store carries it
 * out against the index entry and the payload the exchange holds. Methods that return a promise
 * return one only when the write must reach a device first; they return undefined otherwise.
 */
export interface RecordStore {
  readonly startMode: StartMode;
  /** How long opening took, milliseconds. */
  readonly startMs: number;
  /** Writes pass in call order (a batchPut holds it across its native calls; a device store also holds writes while it has no room). */
  readonly gate: WriteGate;
  /** Every payload is in the index's memory: a lookup copies it into the exchange, no read waits, getSync serves. */
  readonly payloadInIndex: boolean;
  /** A record's home is a device (what filters see as onDevice). */
  readonly onDevice: boolean;
  /** Read flags (READ_TOUCH_LRU or 0) that reads and operate add, so that they count as uses for eviction. */
  readonly touchFlags: number;
  /** A touch writes the record's payload again (a log-structured device), so it needs the payload. */
  readonly touchWritesPayload: boolean;

  /** The payload at a device location when it is in memory anyway (the post-write cache), else undefined. */
  cachedPayload(low: number, high: number): Buffer | undefined;
  /**
   * The payload at a device location, retried where the record moved under the read; undefined
   * when the record went away.
   * @throws ShoalError CORRUPTION, IO_ERROR.
   */
  readPayload(digest: Buffer, location: { low: number; high: number }): Promise<Buffer | undefined>;
  /**
   * Room for `growthBytes` more: memory evicts by its policy above the high-water mark.
   * @throws ShoalError OUT_OF_SPACE above the stop-writes mark.
   */
  makeRoom(growthBytes: number): void;
  /** Whether a batch may grow memory by `growthBytes` without eviction; if not, its entries go one by one. */
  admits(growthBytes: number): boolean;
  /**
   * Stores exchange DATA[0, length) with this metadata for the digest in the exchange and upserts
   * its index entry; releases what the previous copy held.
   */
  write(setId: number, gen: number, voidTime: number, flags: number, lastUpdateMs: number, length: number, durable: boolean): Promise<void> | undefined;
  /** touch: `current`'s next version `next`, same payload (in current.payload when touchWritesPayload). */
  rewrite(current: Loaded, next: NextVersion): Promise<void> | undefined;
  /** `current` (its digest in the exchange) has just left the index: free its bytes, leave what a removal leaves. */
  removed(current: Loaded, durable: boolean): Promise<void> | undefined;
  /** A remove found nothing to remove (perhaps an earlier remove not yet durable): a durable caller still waits for it. */
  nothingRemoved(durable: boolean): Promise<void> | undefined;
  /** The entry the index just removed (an expiry; its previous fields in the exchange) held bytes: free them. */
  dropped(): void;
  /** `count` entries a truncate slice removed (their locations in `locations`, when the store asked for them): free their bytes. */
  truncated(count: number, locations: Uint32Array | undefined): void;
  /** Whether truncate slices must report the removed entries' device locations. */
  readonly truncateReportsLocations: boolean;
  /**
   * batchPut: stores every slot whose action is BATCH_WRITE_INDEX (RecordIndex.countBatch does
   * the counting). A promise, when the writes must reach the device; it resolves to the error
   * every written slot then gets, never rejects.
   */
  writeBatch(batch: PutBatch): Promise<ShoalError | undefined> | undefined;
  /** Keeps a truncate's cut (durably on a device) before the index walk removes what it cuts. */
  keepCut(set: string | undefined, beforeMs: number): Promise<void> | undefined;
  truncateCuts(): readonly TruncateCut[];
  /** One step of the background work every nsupPeriodMs: the expiry sweep, then eviction above the high-water mark. */
  sweep(): void;
  stats(): NamespaceStats;
  /** After the core let every write finish: flushes, keeps the metadata of a clean close, releases the index and the lock. */
  close(dropIndex: boolean): Promise<void>;
}
