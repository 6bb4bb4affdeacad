/**
 * The record core: the one implementation of a namespace's record semantics (put, get, remove,
 * touch, operate, batchPut, scans, truncate, expiry on read, and the cluster's record
 * versions), over a RecordStore that says where payloads live (record-store.ts): the index's
 * own memory (memory-store.ts) or a DeviceStore (device-records.ts). Every decision about a
 * record is made here, in record-rules.ts or in semantics.ts, once for both.
 *
 * Atomicity: an operation that needs nothing it cannot read at once runs synchronously to
 * completion, which makes it atomic for its record without a lock. One that must read the
 * current payload from a device first (a merging put, touch, operate on a device namespace)
 * holds a per-record lock across that read (record-locks.ts); any other operation on the same
 * record queues behind it. Memory namespaces never wait, so they never lock.
 */
import { ErrorCode, ShoalError } from '../errors';
import { type Clock, nowSecondsOf } from '../clock';
import { Bins, decodePayloadBins } from '../model/bins';
import { Key, writeKey } from '../model/key';
import type { NativePrimaryIndex } from '../native/addon';
import {
  ENTRY_EXISTED,
  ENTRY_LOCATION_HIGH,
  ENTRY_LOCATION_LOW,
  ENTRY_PARTITION_ID,
  ENTRY_VOID_TIME,
  EX_DATA,
  EX_DIGEST,
  Exchange,
  FLAG_HAS_KEY,
  FLAG_TOMBSTONE,
  READ_COPY_DATA,
  READ_FROM_KEY,
} from '../native/exchange';
import type { TruncateCut } from '../model/truncate-cuts';
import type { WriteGate } from '../storage/write-gate';
import { type BatchHost, BatchWriter } from './batch-put';
import { type ApplyHost, applyVersions } from './batch-apply';
import type { NamespaceConfig } from './config';
import { compareVersions, tieWins } from './conflict';
import { type Filter, type FilterSource, requireFilter } from './filter';
import { countBySet, truncateIndex } from './index-scan';
import type { BatchPutRequest, BatchResults, MaybePromise, Namespace, NamespaceStats, ReadOptions, RecordVersion, ScanOptions, ShoalRecord, StartMode, WriteResult } from './namespace';
import { RecordLocks, digestLockKey } from './record-locks';
import { binsAfterPut, encodeForWrite, nextVersion, operateReadResult, operateRemovedResult, operateWrites, operateWrittenResult } from './record-rules';
import { partitionDigests, scanRecords, walkVersions } from './record-scan';
import { recordFromExchange, recordOf } from './record-view';
import { ENTRY_OVERHEAD_BYTES, Loaded, RecordIndex, RecordStore, absentAt, filterSourceOf, loadedFromExchange } from './record-store';
import { type Operation, type RemoveOptions, type WriteOptions, applyOperations, checkGenerationMatch, checkPutPolicy, isExpired, putMerges } from './semantics';
import { TRUNCATE_SLOTS_PER_STEP } from '../constants';

/** Attempts at reading a record whose location moved under the read (defrag, overwrite). */
const READ_ATTEMPTS = 3;

type Body<T> = (current: Loaded) => MaybePromise<T>;
/** No local copy, for applyVersion (which reads no clock); shared, never changed (only a present record's Loaded is). */
const NO_LOCAL_COPY = absentAt(0);

export class RecordCore implements Namespace {
  readonly config: NamespaceConfig;
  /** Whether getSync can serve this namespace: every payload is in the index's memory. */
  readonly servesSync: boolean;

  private readonly exchange: Exchange;
  private readonly index: NativePrimaryIndex;
  private readonly clock: Clock;
  private readonly gate: WriteGate;
  /** The store's touchFlags, kept here for the read path. */
  private readonly touchFlags: number;
  private readonly locks = new RecordLocks();
  private readonly sweepTimer: NodeJS.Timeout | undefined;
  /** batchPut's writer (its buffer and the calls under way), made on first use. */
  private batches: BatchWriter | undefined;

  /** A namespace over an opened store (memory-store.ts openMemoryNamespace, device-records.ts openDeviceNamespace). */
  constructor(
    private readonly records: RecordIndex,
    private readonly store: RecordStore,
  ) {
    this.config = records.config;
    this.exchange = records.exchange;
    this.index = records.index;
    this.clock = records.clock;
    this.gate = store.gate;
    this.servesSync = store.payloadInIndex;
    this.touchFlags = store.touchFlags;
    if (this.config.nsupPeriodMs > 0) {
      this.sweepTimer = setInterval(() => store.sweep(), this.config.nsupPeriodMs);
      this.sweepTimer.unref();
    }
  }

  get startMode(): StartMode {
    return this.store.startMode;
  }

  get startMs(): number {
    return this.store.startMs;
  }

  // ------------------------------------------------------------------------------------
  // Reads

  get(key: Key, options: ReadOptions | undefined): MaybePromise<ShoalRecord | undefined> {
    if (this.servesSync) return this.getSync(key, options);
    this.checkOpen();
    const current = this.load(key, 0);
    if (!current.exists) return undefined;
    const nowSeconds = Math.floor(current.nowMs / 1000);
    const digest = Buffer.from(this.exchange.buffer.subarray(EX_DIGEST, EX_DIGEST + 20));
    const cached = this.store.cachedPayload(current.low, current.high);
    if (cached !== undefined) return this.readResult(key, current, cached, digest, nowSeconds, options);
    return this.store.readPayload(digest, current).then((read) => (read === undefined ? undefined : this.readResult(key, current, read, digest, nowSeconds, options)));
  }

  /** get's record from a payload read apart from the index (the post-write cache or the device). */
  private readResult(key: Key, current: Loaded, payload: Buffer, digest: Buffer, nowSeconds: number, options: ReadOptions | undefined): ShoalRecord {
    current.payload = payload;
    current.payloadLength = payload.length;
    if (options?.filter !== undefined) requireFilter(options.filter, this.filterSource(current, digest));
    return recordOf(key, decodePayloadBins(payload, 0, payload.length), current.gen, current.voidTime, nowSeconds, options);
  }

  getSync(key: Key, options: ReadOptions | undefined): ShoalRecord | undefined {
    if (!this.servesSync) {
      throw new ShoalError(ErrorCode.INVALID_ARGUMENT, `namespace ${this.config.name} reads from its device; use get(), or set storage.dataInMemory: true for getSync`);
    }
    this.checkOpen();
    const exchange = this.exchange;
    const fromKey = writeKey(exchange, key);
    const length = this.index.read((fromKey ? READ_FROM_KEY : 0) | READ_COPY_DATA | this.touchFlags);
    if (length < 0) return undefined;
    const voidTime = exchange.entryU32(ENTRY_VOID_TIME);
    const nowSeconds = nowSecondsOf(this.clock);
    if (isExpired(voidTime, nowSeconds)) {
      this.expireCurrent();
      return undefined;
    }
    if (options?.filter !== undefined) requireFilter(options.filter, this.filterSource(loadedFromExchange(exchange, length, 0, exchange.buffer, EX_DATA), undefined));
    return recordFromExchange(exchange, key, length, voidTime, nowSeconds, options);
  }

  exists(key: Key): boolean {
    this.checkOpen();
    return this.load(key, 0).exists;
  }

  // ------------------------------------------------------------------------------------
  // Writes

  put(key: Key, bins: Bins, options: WriteOptions | undefined): MaybePromise<WriteResult> {
    this.checkOpen();
    return this.gate.run(() => this.putNow(key, bins, options));
  }

  /** put, past the write gate (batchPut's per-record entries: the batch holds the gate). */
  private putNow(key: Key, bins: Bins, options: WriteOptions | undefined): MaybePromise<WriteResult> {
    const readPayload = putMerges(options) || options?.filter !== undefined;
    const current = this.loadForWrite(key, readPayload, 0);
    if (current === undefined) return this.whenLocked(key, readPayload, 0, (locked) => this.putLoaded(key, bins, options, locked));
    return this.putLoaded(key, bins, options, current);
  }

  private putLoaded(key: Key, bins: Bins, options: WriteOptions | undefined, current: Loaded): MaybePromise<WriteResult> {
    const merges = putMerges(options);
    this.checkFilter(options?.filter, current);
    checkPutPolicy(current, options);
    const payload = current.payload;
    const stored = merges && payload !== undefined ? { buffer: payload, offset: current.payloadOffset, length: current.payloadLength } : undefined;
    const result = binsAfterPut(stored, bins, merges);
    if (result === undefined) return this.removeCurrent(current, options?.durable === true, { gen: 0, ttl: -1 });
    return this.writeCurrent(key, current, result, options);
  }

  putMany(request: BatchPutRequest, results: BatchResults): Promise<void> {
    this.checkOpen();
    return this.batchWriter().putMany(request, results);
  }

  private batchWriter(): BatchWriter {
    return (this.batches ??= new BatchWriter(this.batchHost(), this.index, this.config.maxRecordBytes));
  }

  /** What the batch paths (batchPut's writer and the replica's version applier) reach of this core. */
  private batchHost(): BatchHost & ApplyHost {
    return (this.batchHostOnce ??= {
      config: this.config,
      clock: this.clock,
      setIdFor: (set) => this.records.sets.idFor(set),
      busy: (batch, at) => this.locks.size > 0 && this.locks.has(batch.toString('latin1', at, at + 20)),
      admits: (growthBytes) => this.store.admits(growthBytes),
      store: (batch) => this.store.writeBatch(batch),
      put: (key, bins, options) => this.putNow(key, bins, options),
      apply: (version) => this.applyPastGate(version),
      gate: this.gate,
    });
  }

  private batchHostOnce: (BatchHost & ApplyHost) | undefined;

  remove(key: Key, options: RemoveOptions | undefined): MaybePromise<boolean> {
    this.checkOpen();
    return this.gate.run(() => {
      const readPayload = options?.filter !== undefined;
      const current = this.loadForWrite(key, readPayload, 0);
      if (current === undefined) return this.whenLocked(key, readPayload, 0, (locked) => this.removeLoaded(options, locked));
      return this.removeLoaded(options, current);
    });
  }

  private removeLoaded(options: RemoveOptions | undefined, current: Loaded): MaybePromise<boolean> {
    this.checkFilter(options?.filter, current);
    checkGenerationMatch(current, options?.generation);
    return this.removeCurrent(current, options?.durable === true, current.exists);
  }

  touch(key: Key, ttl: number | undefined): MaybePromise<WriteResult> {
    this.checkOpen();
    return this.gate.run(() => {
      const readPayload = this.store.touchWritesPayload;
      const current = this.loadForWrite(key, readPayload, 0);
      if (current === undefined) return this.whenLocked(key, readPayload, 0, (locked) => this.touchLoaded(ttl, locked));
      return this.touchLoaded(ttl, current);
    });
  }

  private touchLoaded(ttl: number | undefined, current: Loaded): MaybePromise<WriteResult> {
    if (!current.exists || (this.store.touchWritesPayload && current.payload === undefined)) throw new ShoalError(ErrorCode.RECORD_NOT_FOUND, 'touch: record not found');
    const next = nextVersion(current, ttl, this.config.defaultTtl, current.nowMs);
    this.clock.noteStamp?.(next.lastUpdateMs);
    const done = this.store.rewrite(current, next);
    this.countIfAdded();
    return done === undefined ? next.result : done.then(() => next.result);
  }

  operate(key: Key, operations: Operation[], options: WriteOptions | undefined): MaybePromise<ShoalRecord> {
    this.checkOpen();
    return this.gate.run(() => {
      const current = this.loadForWrite(key, true, this.touchFlags);
      if (current === undefined) return this.whenLocked(key, true, this.touchFlags, (locked) => this.operateLoaded(key, operations, options, locked));
      return this.operateLoaded(key, operations, options, current);
    });
  }

  private operateLoaded(key: Key, operations: Operation[], options: WriteOptions | undefined, current: Loaded): MaybePromise<ShoalRecord> {
    const writes = operateWrites(current, operations);
    this.checkFilter(options?.filter, current);
    if (writes) checkPutPolicy(current, options);
    const source = current.payload !== undefined ? () => this.filterSource(current, undefined) : undefined;
    const outcome = applyOperations(current.payload, current.payloadOffset, current.payloadLength, operations, source);
    if (!outcome.writes) return operateReadResult(key, outcome, current, nowSecondsOf(this.clock));
    if (outcome.bins === undefined) return this.removeCurrent(current, options?.durable === true, operateRemovedResult(key, outcome));
    return then(this.writeCurrent(key, current, outcome.bins, options), (written) => operateWrittenResult(key, outcome, written));
  }

  /** Encodes bins and writes them as the next version of `current`, whose digest and key are in the exchange. */
  private writeCurrent(key: Key, current: Loaded, bins: Bins, options: WriteOptions | undefined): MaybePromise<WriteResult> {
    const { length, storeKey } = encodeForWrite(this.exchange, this.config, key, bins, options);
    this.store.makeRoom(length + (current.exists ? -current.dataLength : ENTRY_OVERHEAD_BYTES));
    const next = nextVersion(current, options?.ttl, this.config.defaultTtl, current.nowMs);
    this.clock.noteStamp?.(next.lastUpdateMs);
    const setId = current.exists ? current.setId : this.records.sets.idFor(key.set);
    const done = this.store.write(setId, next.gen, next.voidTime, storeKey ? FLAG_HAS_KEY : 0, next.lastUpdateMs, length, options?.durable === true);
    this.countIfAdded();
    return done === undefined ? next.result : done.then(() => next.result);
  }

  /** After an upsert: a record that was not in the index before is counted. */
  private countIfAdded(): void {
    if (this.exchange.previousU32(ENTRY_EXISTED) !== 1) this.records.added(this.exchange.entryU32(ENTRY_PARTITION_ID));
  }

  /**
   * Removes `current`, whose digest is in the exchange. When it is already absent (perhaps
   * through an earlier remove not yet on the device), a durable caller still waits until that
   * absence is durable. Resolves to `result`.
   */
  private removeCurrent<T>(current: Loaded, durable: boolean, result: T): MaybePromise<T> {
    let done: Promise<void> | undefined;
    if (!current.exists || this.index.remove() !== 1) done = this.store.nothingRemoved(durable);
    else {
      this.records.removedInExchange();
      done = this.store.removed(current, durable);
    }
    return done === undefined ? result : done.then(() => result);
  }

  /** The record whose digest is in the exchange has expired: it leaves the index (lazy expiry). */
  private expireCurrent(): void {
    if (this.index.remove() !== 1) return;
    this.records.removedInExchange();
    this.records.expired++;
    this.store.dropped();
  }

  // ------------------------------------------------------------------------------------
  // Loading the current record; the per-record lock

  /**
   * Looks the key up, leaving its digest and key in the exchange (and its payload, with
   * READ_COPY_DATA). An expired record is removed and reported absent.
   */
  private load(key: Key, readFlags: number): Loaded {
    const exchange = this.exchange;
    const fromKey = writeKey(exchange, key);
    const length = this.index.read((fromKey ? READ_FROM_KEY : 0) | readFlags);
    const nowMs = this.clock.nowMs();
    if (length < 0) return absentAt(nowMs);
    if (isExpired(exchange.entryU32(ENTRY_VOID_TIME), Math.floor(nowMs / 1000))) {
      this.expireCurrent();
      return absentAt(nowMs);
    }
    return (readFlags & READ_COPY_DATA) !== 0 ? loadedFromExchange(exchange, length, nowMs, exchange.buffer, EX_DATA) : loadedFromExchange(exchange, length, nowMs, undefined, 0);
  }

  /**
   * The current record for a write (with its payload when readPayload), or undefined when the
   * write must wait under the record's lock (whenLocked, called next, while the exchange still
   * holds the digest): another operation holds the record, or the payload is on the device.
   */
  private loadForWrite(key: Key, readPayload: boolean, touchFlags: number): Loaded | undefined {
    const inIndex = this.store.payloadInIndex;
    const current = this.load(key, (readPayload && inIndex ? READ_COPY_DATA : 0) | touchFlags);
    if (this.locks.size > 0 && this.locks.has(digestLockKey(this.exchange))) return undefined;
    if (!readPayload || !current.exists || inIndex) return current;
    const cached = this.store.cachedPayload(current.low, current.high);
    if (cached === undefined) return undefined;
    current.payload = cached;
    current.payloadLength = cached.length;
    return current;
  }

  /** Runs body under the lock of the record whose digest is in the exchange, once its payload is read. */
  private whenLocked<T>(key: Key, readPayload: boolean, touchFlags: number, body: Body<T>): Promise<T> {
    return this.locks.run(digestLockKey(this.exchange), () => this.runLocked(key, readPayload, touchFlags, body));
  }

  private async runLocked<T>(key: Key, readPayload: boolean, touchFlags: number, body: Body<T>): Promise<T> {
    const inIndex = this.store.payloadInIndex;
    for (let attempt = 0; ; attempt++) {
      let current = this.load(key, (readPayload && inIndex ? READ_COPY_DATA : 0) | touchFlags);
      if (!readPayload || !current.exists || inIndex) return await body(current);
      const digest = Buffer.from(this.exchange.buffer.subarray(EX_DIGEST, EX_DIGEST + 20));
      const payload = await this.store.readPayload(digest, current);
      if (payload === undefined) continue;
      const generation = current.gen;
      current = this.load(key, 0); // the exchange again holds this record's digest and key
      if ((current.exists && current.gen === generation) || attempt >= READ_ATTEMPTS) {
        if (current.exists) {
          current.payload = payload;
          current.payloadLength = payload.length;
        }
        return await body(current);
      }
    }
  }

  // ------------------------------------------------------------------------------------
  // Filters

  /** `current` as opts.filter evaluates it (filter.ts); digest: the exchange's when undefined. */
  private filterSource(current: Loaded, digest: Uint8Array | undefined): FilterSource {
    return filterSourceOf(this.records, this.store, current, current.payload!, current.payloadOffset, current.payloadLength, digest ?? this.exchange.buffer.subarray(EX_DIGEST, EX_DIGEST + 20));
  }

  /**
   * A write's or remove's filter on the record it found (none there: nothing to filter).
   * @throws ShoalError FILTERED_OUT.
   */
  private checkFilter(filter: Filter | undefined, current: Loaded): void {
    if (filter === undefined || !current.exists || current.payload === undefined) return;
    requireFilter(filter, this.filterSource(current, undefined));
  }

  // ------------------------------------------------------------------------------------
  // Scans, truncation

  scan(set: string | undefined, options: ScanOptions | undefined): AsyncIterable<ShoalRecord> {
    return scanRecords(this.records, this.store, set, options, () => this.checkOpen());
  }

  async truncate(set: string | undefined, beforeMs: number): Promise<number> {
    this.checkOpen();
    // The cut is kept first (durably on a device): whatever the index removes below stays gone after any restart.
    const kept = this.store.keepCut(set, beforeMs);
    if (kept !== undefined) await kept;
    const setId = set === undefined ? -1 : this.records.sets.idOf(set);
    if (setId === undefined) return 0;
    const locations = this.store.truncateReportsLocations ? new Uint32Array(2 * TRUNCATE_SLOTS_PER_STEP) : undefined;
    const records = this.records;
    return truncateIndex(this.index, this.exchange, setId, beforeMs, () => records.closed, (removed) => {
      this.store.truncated(removed, locations);
      records.bulkRemoved(removed);
    }, locations);
  }

  setObjects(): Promise<Map<string, number>> {
    return countBySet(this.index, () => this.records.closed).then((counts) => this.records.sets.objectsOf(counts));
  }

  truncateCuts(): readonly TruncateCut[] {
    return this.store.truncateCuts();
  }

  // ------------------------------------------------------------------------------------
  // Cluster hooks

  readVersion(digest: Buffer): MaybePromise<RecordVersion | undefined> {
    this.checkOpen();
    const exchange = this.exchange;
    exchange.setDigest(digest);
    const inIndex = this.store.payloadInIndex;
    const length = this.index.read(inIndex ? READ_COPY_DATA : 0);
    if (length < 0) return undefined;
    const current = loadedFromExchange(exchange, length, 0, undefined, 0);
    const copy = Buffer.from(digest);
    if (inIndex) {
      const tombstone = (current.flags & FLAG_TOMBSTONE) !== 0;
      return this.versionOf(copy, current, tombstone ? undefined : Buffer.from(exchange.buffer.subarray(EX_DATA, EX_DATA + length)));
    }
    return this.store.readPayload(copy, current).then((payload) => (payload === undefined ? undefined : this.versionOf(copy, current, payload)));
  }

  private versionOf(digest: Buffer, current: Loaded, payload: Buffer | undefined): RecordVersion {
    return { digest, gen: current.gen, voidTime: current.voidTime, lastUpdateMs: current.lastUpdateMs, setName: this.records.sets.nameOf(current.setId), tombstone: payload === undefined, payload };
  }

  applyVersion(version: RecordVersion): MaybePromise<boolean> {
    this.checkOpen();
    return this.gate.run(() => this.applyPastGate(version));
  }

  /** A replica's batch of versions through the batch path's native calls (batch-apply.ts). */
  applyVersions(versions: readonly RecordVersion[]): Promise<boolean[]> {
    this.checkOpen();
    return applyVersions(this.batchHost(), this.index, this.batchWriter().batch, versions);
  }

  /** applyVersion once the write gate let it pass (or a batch holding the gate runs it). */
  private applyPastGate(version: RecordVersion): MaybePromise<boolean> {
    if (this.locks.size > 0) {
      const lockKey = version.digest.toString('latin1', 0, 20);
      if (this.locks.has(lockKey)) return this.locks.run(lockKey, async () => this.applyNow(version));
    }
    return this.applyNow(version);
  }

  private applyNow(version: RecordVersion): MaybePromise<boolean> {
    const exchange = this.exchange;
    exchange.setDigest(version.digest);
    const length = this.index.read(0);
    const local = length < 0 ? NO_LOCAL_COPY : loadedFromExchange(exchange, length, 0, undefined, 0);
    if (!local.exists) return this.applyLoaded(version, local);
    const order = compareVersions(version, local, this.config.conflictResolution);
    if (order < 0) return false;
    if (order > 0 || version.tombstone) return this.applyLoaded(version, local);
    // A full tie: the content decides (conflict.ts), so every copy keeps the same one.
    if (!this.store.payloadInIndex) return this.applyOnTie(version, local);
    this.index.read(READ_COPY_DATA);
    if (!tieWins(version, { tombstone: false, payload: exchange.buffer.subarray(EX_DATA, EX_DATA + length) })) return false;
    return this.applyLoaded(version, local);
  }

  /** applyNow's tie with the stored payload on the device: read it, then decide unless the record moved meanwhile. */
  private async applyOnTie(version: RecordVersion, local: Loaded): Promise<boolean> {
    const stored = await this.store.readPayload(version.digest, local);
    const exchange = this.exchange;
    exchange.setDigest(version.digest);
    const moved = this.index.read(0) < 0 || exchange.entryU32(ENTRY_LOCATION_LOW) !== local.low || exchange.entryU32(ENTRY_LOCATION_HIGH) !== local.high;
    if (moved || stored === undefined) return this.applyNow(version);
    if (!tieWins(version, { tombstone: false, payload: stored })) return false;
    return this.applyLoaded(version, local);
  }

  /** Stores `version` over `local`, the record whose digest and entry are in the exchange. */
  private applyLoaded(version: RecordVersion, local: Loaded): MaybePromise<boolean> {
    // A removal leaves the index (and, on a device, a tombstone): the absence is the record.
    if (version.tombstone || version.payload === undefined) return this.removeCurrent(local, false, true);
    const payloadLength = version.payload.length;
    if (payloadLength > this.exchange.dataCapacity) {
      throw new ShoalError(ErrorCode.RECORD_TOO_BIG, `replicated record of ${payloadLength} bytes exceeds this node's maxRecordBytes`);
    }
    this.store.makeRoom(payloadLength + ENTRY_OVERHEAD_BYTES);
    this.exchange.u8.set(version.payload, EX_DATA);
    const flags = version.payload[1] !== 0 ? FLAG_HAS_KEY : 0;
    const done = this.store.write(this.records.sets.idFor(version.setName), version.gen, version.voidTime, flags, version.lastUpdateMs, payloadLength, false);
    this.countIfAdded();
    return done === undefined ? true : done.then(() => true);
  }

  partitionVersions(partitionId: number): AsyncIterable<RecordVersion> {
    return walkVersions(this.records, this.store, partitionId);
  }

  async dropPartition(partitionId: number): Promise<number> {
    const digests = await partitionDigests(this.records, this.store, partitionId);
    let removed = 0;
    for (const digest of digests) {
      const room = this.gate.enter();
      if (room !== undefined) await room;
      this.exchange.setDigest(digest);
      const length = this.index.read(0);
      if (length < 0) continue;
      void this.removeCurrent(loadedFromExchange(this.exchange, length, 0, undefined, 0), false, true);
      removed++;
    }
    return removed;
  }

  /** Live records per partition id (length 4096). */
  partitionCounts(): Uint32Array {
    return this.records.partitions.read();
  }

  // ------------------------------------------------------------------------------------
  // Stats, close

  stats(): NamespaceStats {
    return this.store.stats();
  }

  async close(dropIndex: boolean): Promise<void> {
    if (this.records.closed) return;
    this.records.closed = true;
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    // Writes called before close() still run: those waiting for room, then those under a lock.
    await this.gate.idle();
    await this.locks.idle();
    await this.store.close(dropIndex);
  }

  private checkOpen(): void {
    if (this.records.closed) throw new ShoalError(ErrorCode.NOT_OPEN, `namespace ${this.config.name} is closed`);
  }
}

function then<T, U>(value: MaybePromise<T>, next: (value: T) => U): MaybePromise<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}
