/**
 * A memory namespace: index and data in RAM (in POSIX shared memory by default, so a clean
 * restart re-attaches instead of refilling), bounded by maxBytes, with LRU or TTL eviction
 * above the high-water mark, lazy expiry on read and a background expiry sweep.
 *
 * Every operation runs to completion on the JS thread, which makes it atomic for its record
 * without a lock: at once, or, while a batchPut of several native calls holds the write gate,
 * once the batch is done (writes keep their call order: lib/storage/write-gate.ts).
 */
import {
  EVICTION_BATCH_MAX,
  EXPIRY_SWEEP_SLOTS_PER_STEP,
  INDEX_ENTRY_BYTES,
  INDEX_SIDE_ENTRY_BYTES,
  SCAN_BATCH_RECORDS,
} from '../constants';
import { ErrorCode, ShoalError, fromNativeError } from '../errors';
import { Bins, decodePayloadBins, decodePayloadKey } from '../model/bins';
import { Key, writeKey } from '../model/key';
import { addon, NativePrimaryIndex } from '../native/addon';
import {
  BATCH_PARTITION_ID,
  BATCH_PAYLOAD_LENGTH,
  BATCH_PREVIOUS_DATA_LENGTH,
  BATCH_PREVIOUS_EXISTED,
  ENTRY_DATA_LENGTH,
  ENTRY_EXISTED,
  ENTRY_FLAGS,
  ENTRY_GENERATION,
  ENTRY_ID,
  ENTRY_LAST_UPDATE_MS,
  ENTRY_LOCATION_HIGH,
  ENTRY_LOCATION_LOW,
  ENTRY_PARTITION_ID,
  ENTRY_SET_ID,
  ENTRY_VOID_TIME,
  EX_DATA,
  EX_DIGEST,
  Exchange,
  FLAG_HAS_KEY,
  FLAG_TOMBSTONE,
  READ_COPY_DATA,
  READ_FROM_KEY,
  READ_TOUCH_LRU,
  SCAN_ENTRY_ID,
  SCAN_FLAGS,
  SCAN_GENERATION,
  SCAN_RECORD_BYTES,
  SCAN_SET_ID,
  SCAN_VOID_TIME,
  UPSERT_KEEP_DATA,
  UPSERT_STORE_DATA,
} from '../native/exchange';
import { type Clock, nowSecondsOf, wallClock } from '../clock';
import type { DataDirConfig, NamespaceConfig } from './config';
import type { BatchPutRequest, BatchResults, MaybePromise, Namespace, NamespaceStats, ReadOptions, RecordVersion, ScanOptions, ShoalRecord, StartMode, WriteResult } from './namespace';
import {
  Current,
  Operation,
  RemoveOptions,
  WriteOptions,
  applyOperations,
  checkGenerationMatch,
  checkPutPolicy,
  isExpired,
  putMerges,
} from './semantics';
import { SetTable } from './set-table';
import { TruncateCut, addCut } from '../model/truncate-cuts';
import { BatchWriter, PutBatch } from './batch-put';
import { WriteGate } from '../storage/write-gate';
import { partitionFilter } from './partition-filter';
import { type Filter, type FilterSource, passesFilter, requireFilter } from './filter';
import { IndexWalk, countBySet, truncateIndex } from './index-scan';
import { createIndex, dropSegments, lockNamespace, readIndexMeta } from './index-segments';
import { PartitionCounts } from './partition-counts';
import { recordFromExchange, recordOf } from './record-view';
import { binsAfterPut, encodeForWrite, nextVersion, operateReadResult, operateRemovedResult, operateWrites, operateWrittenResult } from './record-rules';
import { compareVersions, tieWins } from './conflict';

const META_FORMAT = 1;
/** Memory charged per record besides its payload: the index entry and its side-table entry. */
const ENTRY_OVERHEAD_BYTES = INDEX_ENTRY_BYTES + INDEX_SIDE_ENTRY_BYTES;

interface MemoryMeta {
  format: number;
  kind: 'memory';
  name: string;
  sets: string[];
  dataBytes: number;
  objects: number;
  /** Truncate cuts in force (absent in metadata written before cuts were kept). */
  truncates?: TruncateCut[];
}

/** A record as loadCurrent found it, with the time it looked (one clock read per operation). */
interface Loaded extends Current {
  setId: number;
  flags: number;
  dataLength: number;
  nowMs: number;
}

function absent(nowMs: number): Loaded {
  return { exists: false, gen: 0, voidTime: 0, lastUpdateMs: 0, setId: 0, flags: 0, dataLength: 0, nowMs };
}

export class MemoryNamespace implements Namespace {
  readonly config: NamespaceConfig;
  readonly servesSync = true;
  startMode: StartMode = 'new';
  startMs = 0;

  private readonly exchange: Exchange;
  private readonly index: NativePrimaryIndex;
  private readonly lockFd: number;
  private sets = new SetTable();
  /** Truncates applied (cluster mode refuses versions they removed; kept across warm restarts). */
  private cuts: TruncateCut[] = [];
  private readonly touchLru: number;
  private readonly highWaterBytes: number;
  private readonly stopWritesBytes: number;
  private objects = 0;
  private dataBytes = 0;
  private evicted = 0;
  private readonly partitionRecords: PartitionCounts;
  private expired = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping = false;
  private closed = false;
  /** batchPut's writer (its buffer), made on first use. */
  private batches: BatchWriter | undefined;
  /** Writes pass in call order; a batchPut holds the gate across its native calls (write-gate.ts). */
  private readonly gate = new WriteGate();

  /**
   * Opens (or re-attaches to) the namespace's index.
   * @throws ShoalError LOCKED when another Db holds it; IO_ERROR when shared memory fails.
   */
  constructor(
    config: NamespaceConfig,
    private readonly db: DataDirConfig,
    private readonly log: (message: string) => void,
    private readonly clock: Clock = wallClock,
  ) {
    const started = performance.now();
    this.config = config;
    this.touchLru = config.evictPolicy === 'lru' ? READ_TOUCH_LRU : 0;
    this.highWaterBytes = Math.floor((config.maxBytes * config.highWaterPct) / 100);
    this.stopWritesBytes = Math.floor((config.maxBytes * config.stopWritesPct) / 100);
    this.exchange = new Exchange(Math.max(config.maxRecordBytes, SCAN_BATCH_RECORDS * SCAN_RECORD_BYTES));
    this.lockFd = lockNamespace(db.dataDir, config.name, db.fileMode);
    try {
      this.index = createIndex(db.dataDir, config.name, db.sharedMemoryIndex, this.exchange, true, db.fileMode);
      this.partitionRecords = new PartitionCounts(this.index, this.exchange);
      this.attachOrCreate(db.sharedMemoryIndex);
      this.index.markClean(false);
    } catch (error) {
      addon().unlockFile(this.lockFd);
      throw fromNativeError(error, `namespace ${config.name}: cannot open its index`);
    }
    this.startMs = performance.now() - started;
    if (config.nsupPeriodMs > 0) {
      this.sweepTimer = setInterval(() => this.backgroundStep(), config.nsupPeriodMs);
      this.sweepTimer.unref();
    }
  }

  private attachOrCreate(shared: boolean): void {
    const status = this.index.open(shared);
    if (status === 1) {
      const header = this.index.header();
      const meta = this.readMeta();
      if (header.clean && meta !== undefined) {
        this.sets = SetTable.fromJSON(meta.sets);
        this.cuts = meta.truncates ?? [];
        this.objects = this.index.count();
        this.dataBytes = meta.dataBytes;
        this.startMode = 'warm';
        return;
      }
      this.log(
        `namespace ${this.config.name}: shared-memory data ${header.clean ? 'has no readable metadata' : 'was not closed cleanly (crash)'}; ` +
          'starting empty, as a memory namespace has nothing else to rebuild from',
      );
      this.index.close(true);
      this.index.open(false);
      this.startMode = 'cold';
      return;
    }
    if (status === -1) {
      this.log(`namespace ${this.config.name}: shared-memory segments have an incompatible layout; dropping them and starting empty`);
      this.index.close(true);
      this.index.open(false);
      this.startMode = 'cold';
      return;
    }
    this.startMode = 'new';
  }

  private readMeta(): MemoryMeta | undefined {
    return readIndexMeta<MemoryMeta>(this.index, (meta) => meta.format === META_FORMAT && meta.kind === 'memory' && meta.name === this.config.name);
  }

  // ------------------------------------------------------------------------------------
  // Reads

  get(key: Key, options: ReadOptions | undefined): ShoalRecord | undefined {
    return this.getSync(key, options);
  }

  getSync(key: Key, options: ReadOptions | undefined): ShoalRecord | undefined {
    this.checkOpen();
    const exchange = this.exchange;
    const fromKey = writeKey(exchange, key);
    const length = this.index.read((fromKey ? READ_FROM_KEY : 0) | READ_COPY_DATA | this.touchLru);
    if (length < 0) return undefined;
    const voidTime = exchange.entryU32(ENTRY_VOID_TIME);
    const nowSeconds = nowSecondsOf(this.clock);
    if (voidTime !== 0 && voidTime <= nowSeconds) {
      this.expireCurrent();
      return undefined;
    }
    if (options?.filter !== undefined) requireFilter(options.filter, this.filterSource(length));
    return recordFromExchange(exchange, key, length, voidTime, nowSeconds, options);
  }

  exists(key: Key): boolean {
    this.checkOpen();
    return this.loadCurrent(key, 0).exists;
  }

  // ------------------------------------------------------------------------------------
  // Writes

  put(key: Key, bins: Bins, options: WriteOptions | undefined): MaybePromise<WriteResult> {
    this.checkOpen();
    return this.gate.run(() => this.putNow(key, bins, options));
  }

  /** put, past the write gate (batchPut's per-record entries: the batch holds the gate). */
  private putNow(key: Key, bins: Bins, options: WriteOptions | undefined): WriteResult {
    const merges = putMerges(options);
    const current = this.loadCurrent(key, merges || options?.filter !== undefined ? READ_COPY_DATA : 0);
    if (current.exists && options?.filter !== undefined) requireFilter(options.filter, this.filterSource(current.dataLength));
    checkPutPolicy(current, options);
    const stored = merges && current.exists ? { buffer: this.exchange.buffer, offset: EX_DATA, length: current.dataLength } : undefined;
    const result = binsAfterPut(stored, bins, merges);
    if (result === undefined) return this.removeCurrent(current);
    return this.writeCurrent(key, current, result, options, options?.ttl);
  }

  putMany(request: BatchPutRequest, results: BatchResults): Promise<void> {
    this.checkOpen();
    this.batches ??= new BatchWriter(
      {
        config: this.config,
        clock: this.clock,
        setIdFor: (set) => this.sets.idFor(set),
        busy: () => false,
        admits: (growthBytes) => this.memoryUsedBytes() + growthBytes <= this.highWaterBytes,
        store: (batch) => this.storeBatch(batch),
        put: (key, bins, options) => this.putNow(key, bins, options),
        gate: this.gate,
      },
      this.index,
      this.config.maxRecordBytes,
    );
    return this.batches.putMany(request, results);
  }

  /** batchPut: the decided writes of a batch into the index (payloads included), then the accounting. */
  private storeBatch(batch: PutBatch): undefined {
    let failure: ShoalError | undefined;
    try {
      this.index.writeBatch(batch.buffer, batch.count, [], true);
    } catch (error) {
      failure = fromNativeError(error, `namespace ${this.config.name}: batchPut`);
    }
    batch.forEachWritten(failure, (slot) => {
      const length = batch.u32At(slot + BATCH_PAYLOAD_LENGTH);
      if (batch.u32At(slot + BATCH_PREVIOUS_EXISTED) === 1) {
        this.dataBytes += length - batch.u32At(slot + BATCH_PREVIOUS_DATA_LENGTH);
      } else {
        this.dataBytes += length;
        this.objects++;
        this.partitionRecords.added(batch.u32At(slot + BATCH_PARTITION_ID));
      }
    });
    return undefined;
  }

  remove(key: Key, options: RemoveOptions | undefined): MaybePromise<boolean> {
    this.checkOpen();
    return this.gate.run(() => this.removeNow(key, options));
  }

  private removeNow(key: Key, options: RemoveOptions | undefined): boolean {
    const current = this.loadCurrent(key, options?.filter !== undefined ? READ_COPY_DATA : 0);
    if (current.exists && options?.filter !== undefined) requireFilter(options.filter, this.filterSource(current.dataLength));
    checkGenerationMatch(current, options?.generation);
    if (!current.exists) return false;
    this.removeCurrent(current);
    return true;
  }

  touch(key: Key, ttl: number | undefined): MaybePromise<WriteResult> {
    this.checkOpen();
    return this.gate.run(() => this.touchNow(key, ttl));
  }

  private touchNow(key: Key, ttl: number | undefined): WriteResult {
    const current = this.loadCurrent(key, 0);
    if (!current.exists) throw new ShoalError(ErrorCode.RECORD_NOT_FOUND, 'touch: record not found');
    const next = nextVersion(current, ttl, this.config.defaultTtl, current.nowMs);
    this.setEntry(next.gen, next.voidTime, current.setId, current.flags, next.lastUpdateMs, 0);
    this.index.upsert(UPSERT_KEEP_DATA);
    return next.result;
  }

  operate(key: Key, operations: Operation[], options: WriteOptions | undefined): MaybePromise<ShoalRecord> {
    this.checkOpen();
    return this.gate.run(() => this.operateNow(key, operations, options));
  }

  private operateNow(key: Key, operations: Operation[], options: WriteOptions | undefined): ShoalRecord {
    const current = this.loadCurrent(key, READ_COPY_DATA | this.touchLru);
    const writes = operateWrites(current, operations);
    if (current.exists && options?.filter !== undefined) requireFilter(options.filter, this.filterSource(current.dataLength));
    if (writes) checkPutPolicy(current, options);
    const outcome = applyOperations(current.exists ? this.exchange.buffer : undefined, EX_DATA, current.dataLength, operations, current.exists ? () => this.filterSource(current.dataLength) : undefined);
    if (!outcome.writes) return operateReadResult(key, outcome, current, nowSecondsOf(this.clock));
    if (outcome.bins === undefined) {
      this.removeCurrent(current);
      return operateRemovedResult(key, outcome);
    }
    return operateWrittenResult(key, outcome, this.writeCurrent(key, current, outcome.bins, options, options?.ttl));
  }

  /** The record the last lookup left in the exchange (payload copied), as opts.filter evaluates it. */
  private filterSource(length: number): FilterSource {
    const exchange = this.exchange;
    return {
      payload: exchange.buffer,
      offset: EX_DATA,
      length,
      voidTime: exchange.entryU32(ENTRY_VOID_TIME),
      lastUpdateMs: exchange.entryF64(ENTRY_LAST_UPDATE_MS),
      setName: this.sets.nameOf(exchange.entryU32(ENTRY_SET_ID)),
      digest: exchange.buffer.subarray(EX_DIGEST, EX_DIGEST + 20),
      onDevice: false,
      inMemory: true,
    };
  }

  // ------------------------------------------------------------------------------------
  // The current record, held in the exchange between loadCurrent and the write that follows

  /**
   * Looks the key up, leaving its digest in the exchange (and its payload, with
   * READ_COPY_DATA). An expired record is removed and reported absent.
   */
  private loadCurrent(key: Key, readOptions: number): Loaded {
    const exchange = this.exchange;
    const fromKey = writeKey(exchange, key);
    const length = this.index.read((fromKey ? READ_FROM_KEY : 0) | readOptions);
    const nowMs = this.clock.nowMs();
    if (length < 0) return absent(nowMs);
    const voidTime = exchange.entryU32(ENTRY_VOID_TIME);
    if (isExpired(voidTime, Math.floor(nowMs / 1000))) {
      this.expireCurrent();
      return absent(nowMs);
    }
    return {
      exists: true,
      gen: exchange.entryU32(ENTRY_GENERATION),
      voidTime,
      lastUpdateMs: exchange.entryF64(ENTRY_LAST_UPDATE_MS),
      setId: exchange.entryU32(ENTRY_SET_ID),
      flags: exchange.entryU32(ENTRY_FLAGS),
      dataLength: length,
      nowMs,
    };
  }

  /** Encodes and stores bins for the digest in the exchange. */
  private writeCurrent(
    key: Key,
    current: Loaded,
    bins: Bins,
    options: WriteOptions | undefined,
    ttl: number | undefined,
  ): WriteResult {
    const { length, storeKey } = encodeForWrite(this.exchange, this.config, key, bins, options);
    this.makeRoom(length + (current.exists ? -current.dataLength : ENTRY_OVERHEAD_BYTES));
    const next = nextVersion(current, ttl, this.config.defaultTtl, current.nowMs);
    const setId = current.exists ? current.setId : this.sets.idFor(key.set);
    this.setEntry(next.gen, next.voidTime, setId, storeKey ? FLAG_HAS_KEY : 0, next.lastUpdateMs, length);
    this.index.upsert(UPSERT_STORE_DATA);
    this.accountUpsert(length);
    return next.result;
  }

  private setEntry(gen: number, voidTime: number, setId: number, flags: number, lastUpdateMs: number, dataLength: number): void {
    this.exchange.writeEntryFields(gen, voidTime, setId, flags, lastUpdateMs, dataLength);
    this.exchange.setEntryU32(ENTRY_LOCATION_LOW, 0);
    this.exchange.setEntryU32(ENTRY_LOCATION_HIGH, 0);
  }

  private accountUpsert(length: number): void {
    if (this.exchange.previousU32(ENTRY_EXISTED) === 1) {
      this.dataBytes += length - this.exchange.previousU32(ENTRY_DATA_LENGTH);
    } else {
      this.dataBytes += length;
      this.objects++;
      this.partitionRecords.added(this.exchange.entryU32(ENTRY_PARTITION_ID));
    }
  }

  private removeCurrent(current: Current): WriteResult {
    if (current.exists && this.index.remove() === 1) this.accountRemoval();
    return { gen: 0, ttl: -1 };
  }

  private expireCurrent(): void {
    if (this.index.remove() === 1) {
      this.accountRemoval();
      this.expired++;
    }
  }

  /** Accounts for the entry just removed by remove() (its digest is still in the exchange). */
  private accountRemoval(): void {
    this.dataBytes -= this.exchange.previousU32(ENTRY_DATA_LENGTH);
    this.objects--;
    this.partitionRecords.removedInExchange();
  }

  /** Accounts for a bulk removal (eviction, expiry sweep, truncate) of `removed` entries. */
  private accountBulkRemoval(removed: number): void {
    if (removed === 0) return;
    this.objects -= removed;
    this.dataBytes -= this.exchange.entryU32(ENTRY_DATA_LENGTH);
    this.partitionRecords.invalidate();
  }

  /** Live records per partition id (length 4096). */
  partitionCounts(): Uint32Array {
    return this.partitionRecords.read();
  }

  // ------------------------------------------------------------------------------------
  // Capacity: eviction above the high-water mark, OUT_OF_SPACE above stop-writes

  memoryUsedBytes(): number {
    return this.objects * ENTRY_OVERHEAD_BYTES + this.dataBytes;
  }

  /**
   * Evicts (by the namespace's policy) so that `growthBytes` more fit under the high-water
   * mark where it can; refuses the write once memory would pass stop-writes.
   * @throws ShoalError OUT_OF_SPACE.
   */
  private makeRoom(growthBytes: number): void {
    const projected = this.memoryUsedBytes() + growthBytes;
    if (projected <= this.highWaterBytes) return;
    if (this.config.evictPolicy !== 'none') this.evict(projected - this.highWaterBytes);
    if (this.memoryUsedBytes() + growthBytes > this.stopWritesBytes) {
      throw new ShoalError(
        ErrorCode.OUT_OF_SPACE,
        `namespace ${this.config.name} is at its stop-writes mark (${this.config.stopWritesPct}% of maxBytes ${this.config.maxBytes}); ` +
          'raise maxBytes, shorten TTLs or enable eviction',
      );
    }
  }

  /** Evicts at least `bytes` where the policy finds candidates; one bounded batch at a time. */
  private evict(bytes: number): void {
    const target = this.memoryUsedBytes() - bytes;
    for (let rounds = 0; rounds < 4 && this.memoryUsedBytes() > target && this.objects > 0; rounds++) {
      const average = Math.max(1, this.memoryUsedBytes() / this.objects);
      const wanted = Math.min(EVICTION_BATCH_MAX, Math.max(1, Math.ceil((this.memoryUsedBytes() - target) / average)));
      const removed =
        this.config.evictPolicy === 'lru'
          ? this.index.evictLru(0, wanted)
          : this.index.evictSoonestExpiring(0, wanted, nowSecondsOf(this.clock));
      if (removed === 0) return;
      this.accountBulkRemoval(removed);
      this.evicted += removed;
    }
  }

  /** The timer's work: a full expiry sweep in bounded slices, then eviction to the high-water mark. */
  private backgroundStep(): void {
    if (this.sweeping || this.closed) return;
    this.sweeping = true;
    const nowSeconds = nowSecondsOf(this.clock);
    let cursor = 1;
    const slice = (): void => {
      if (this.closed) return;
      const removed = this.index.sweepExpired(nowSeconds, cursor, EXPIRY_SWEEP_SLOTS_PER_STEP);
      this.accountBulkRemoval(removed);
      this.expired += removed;
      cursor = this.exchange.entryU32(ENTRY_ID);
      if (cursor !== 0) {
        setImmediate(slice);
        return;
      }
      if (this.config.evictPolicy !== 'none' && this.memoryUsedBytes() > this.highWaterBytes) {
        this.evict(this.memoryUsedBytes() - this.highWaterBytes);
      }
      this.sweeping = false;
    };
    slice();
  }

  // ------------------------------------------------------------------------------------
  // Scans, truncation

  async *scan(set: string | undefined, options: ScanOptions | undefined): AsyncIterable<ShoalRecord> {
    this.checkOpen();
    const setId = set === undefined ? -1 : this.sets.idOf(set);
    if (setId === undefined) return;
    for (const walk = new IndexWalk(this.index, this.exchange, setId, partitionFilter(options?.partitions)); !walk.done && !this.closed; ) {
      const batch = walk.nextCopy();
      const records: ShoalRecord[] = [];
      for (let offset = 0; offset < batch.length; offset += SCAN_RECORD_BYTES) {
        const record = this.scanRecord(batch, offset, options?.filter);
        if (record !== undefined) records.push(record);
      }
      for (const record of records) yield record;
    }
  }

  private scanRecord(batch: Buffer, offset: number, filter: Filter | undefined): ShoalRecord | undefined {
    const flags = batch.readUInt32LE(offset + SCAN_FLAGS);
    const voidTime = batch.readUInt32LE(offset + SCAN_VOID_TIME);
    const nowSeconds = nowSecondsOf(this.clock);
    if ((flags & FLAG_TOMBSTONE) !== 0 || isExpired(voidTime, nowSeconds)) return undefined;
    const length = this.index.readEntry(batch.readUInt32LE(offset + SCAN_ENTRY_ID), READ_COPY_DATA);
    if (length < 0 || this.exchange.buffer.compare(batch, offset, offset + 20, 0, 20) !== 0) return undefined;
    if (filter !== undefined && !passesFilter(filter, this.filterSource(length))) return undefined;
    const digest = batch.subarray(offset, offset + 20);
    const key: Key = { ns: this.config.name, set: this.sets.nameOf(batch.readUInt32LE(offset + SCAN_SET_ID)), digest };
    if ((flags & FLAG_HAS_KEY) !== 0) key.key = decodePayloadKey(this.exchange.buffer, EX_DATA);
    return recordOf(key, decodePayloadBins(this.exchange.buffer, EX_DATA, length), batch.readUInt32LE(offset + SCAN_GENERATION), voidTime, nowSeconds, undefined);
  }

  async truncate(set: string | undefined, beforeMs: number): Promise<number> {
    this.checkOpen();
    this.cuts = addCut(this.cuts, set, beforeMs);
    const setId = set === undefined ? -1 : this.sets.idOf(set);
    if (setId === undefined) return 0;
    return truncateIndex(this.index, this.exchange, setId, beforeMs, () => this.closed, (removed) => this.accountBulkRemoval(removed));
  }

  setObjects(): Promise<Map<string, number>> {
    return countBySet(this.index, () => this.closed).then((counts) => this.sets.objectsOf(counts));
  }

  truncateCuts(): readonly TruncateCut[] {
    return this.cuts;
  }

  // ------------------------------------------------------------------------------------
  // Cluster hooks

  readVersion(digest: Buffer): RecordVersion | undefined {
    this.checkOpen();
    this.exchange.setDigest(digest);
    const length = this.index.read(READ_COPY_DATA);
    if (length < 0) return undefined;
    return this.versionFromExchange(digest, length);
  }

  private versionFromExchange(digest: Buffer, length: number): RecordVersion {
    const exchange = this.exchange;
    const flags = exchange.entryU32(ENTRY_FLAGS);
    return {
      digest: Buffer.from(digest),
      gen: exchange.entryU32(ENTRY_GENERATION),
      voidTime: exchange.entryU32(ENTRY_VOID_TIME),
      lastUpdateMs: exchange.entryF64(ENTRY_LAST_UPDATE_MS),
      setName: this.sets.nameOf(exchange.entryU32(ENTRY_SET_ID)),
      tombstone: (flags & FLAG_TOMBSTONE) !== 0,
      payload: (flags & FLAG_TOMBSTONE) !== 0 ? undefined : Buffer.from(exchange.buffer.subarray(EX_DATA, EX_DATA + length)),
    };
  }

  applyVersion(version: RecordVersion): MaybePromise<boolean> {
    this.checkOpen();
    return this.gate.run(() => this.applyNow(version));
  }

  private applyNow(version: RecordVersion): boolean {
    const exchange = this.exchange;
    exchange.setDigest(version.digest);
    const length = this.index.read(0);
    if (length >= 0) {
      const local = { gen: exchange.entryU32(ENTRY_GENERATION), lastUpdateMs: exchange.entryF64(ENTRY_LAST_UPDATE_MS) };
      const order = compareVersions(version, local, this.config.conflictResolution);
      if (order < 0) return false;
      if (order === 0) {
        // A full tie: the content decides (conflict.ts), so every copy keeps the same one.
        this.index.read(READ_COPY_DATA);
        if (!tieWins(version, { tombstone: false, payload: exchange.buffer.subarray(EX_DATA, EX_DATA + length) })) return false;
      }
    }
    if (version.tombstone || version.payload === undefined) {
      // Memory namespaces keep no tombstones: a removal is the absence of the record.
      if (length >= 0 && this.index.remove() === 1) this.accountRemoval();
      return true;
    }
    const payloadLength = version.payload.length;
    if (payloadLength > this.exchange.dataCapacity) {
      throw new ShoalError(ErrorCode.RECORD_TOO_BIG, `replicated record of ${payloadLength} bytes exceeds this node's maxRecordBytes`);
    }
    this.makeRoom(payloadLength + ENTRY_OVERHEAD_BYTES);
    exchange.u8.set(version.payload, EX_DATA);
    const flags = version.payload[1] !== 0 ? FLAG_HAS_KEY : 0;
    this.setEntry(version.gen, version.voidTime, this.sets.idFor(version.setName), flags, version.lastUpdateMs, payloadLength);
    this.index.upsert(UPSERT_STORE_DATA);
    this.accountUpsert(payloadLength);
    return true;
  }

  async *partitionVersions(partitionId: number): AsyncIterable<RecordVersion> {
    for (const walk = new IndexWalk(this.index, this.exchange, -1, partitionFilter([partitionId])); !walk.done && !this.closed; ) {
      const batch = walk.nextCopy();
      const versions: RecordVersion[] = [];
      for (let offset = 0; offset < batch.length; offset += SCAN_RECORD_BYTES) {
        const length = this.index.readEntry(batch.readUInt32LE(offset + SCAN_ENTRY_ID), READ_COPY_DATA);
        if (length < 0 || this.exchange.buffer.compare(batch, offset, offset + 20, 0, 20) !== 0) continue;
        versions.push(this.versionFromExchange(batch.subarray(offset, offset + 20), length));
      }
      for (const version of versions) yield version;
    }
  }

  async dropPartition(partitionId: number): Promise<number> {
    let removed = 0;
    const digests: Buffer[] = [];
    for await (const version of this.partitionVersions(partitionId)) digests.push(version.digest);
    const entry = this.gate.enter();
    if (entry !== undefined) await entry;
    for (const digest of digests) {
      this.exchange.setDigest(digest);
      if (this.index.remove() === 1) {
        this.accountRemoval();
        removed++;
      }
    }
    return removed;
  }

  // ------------------------------------------------------------------------------------
  // Stats, close

  stats(): NamespaceStats {
    const used = this.closed ? 0 : this.memoryUsedBytes();
    return {
      objects: this.objects,
      masterObjects: this.objects,
      replicaObjects: 0,
      tombstones: 0,
      memoryUsedBytes: used,
      indexUsedBytes: this.objects * ENTRY_OVERHEAD_BYTES,
      dataUsedBytes: this.dataBytes,
      memoryFreePct: Math.max(0, Math.round(100 - (used * 100) / this.config.maxBytes)),
      deviceUsedBytes: 0,
      deviceFreePct: 100,
      evicted: this.evicted,
      expired: this.expired,
      defragPending: 0,
      startMode: this.startMode,
      startMs: Math.round(this.startMs * 1000) / 1000,
      directIo: 'n/a',
    };
  }

  async close(dropIndex: boolean): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    await this.gate.idle();
    try {
      if (!dropIndex) {
        const meta: MemoryMeta = {
          format: META_FORMAT,
          kind: 'memory',
          name: this.config.name,
          sets: this.sets.toJSON(),
          dataBytes: this.dataBytes,
          objects: this.objects,
          truncates: this.cuts,
        };
        this.index.writeMeta(Buffer.from(JSON.stringify(meta)));
        this.index.markClean(true);
      }
      this.index.close(dropIndex);
      // Without shared memory: whatever earlier runs left goes too (open removed it already).
      if (dropIndex && !this.db.sharedMemoryIndex) dropSegments(this.db.dataDir, this.config.name);
    } finally {
      addon().unlockFile(this.lockFd);
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new ShoalError(ErrorCode.NOT_OPEN, `namespace ${this.config.name} is closed`);
  }
}
