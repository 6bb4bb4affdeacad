/**
 * A device namespace: the native primary index (in shared memory by default) over the
 * log-structured storage engine (lib/storage/device-store.ts). With dataInMemory the index's
 * arena also keeps each payload, so reads never touch the device and getSync works.
 *
 * Operations that need nothing from the device run synchronously to completion, which makes
 * them atomic for their record. One that must read the current payload from the device first
 * (an upsert that merges bins, touch, operate) holds a per-record lock across that read; any
 * other operation on the same record queues behind it.
 *
 * Start: a warm restart attaches to the shared-memory index when the index, the device
 * headers and the storage state file all say the last close was clean and they belong
 * together; anything else is a cold start that rebuilds the index from the devices. A warm
 * start costs O(blocks), not O(records): it never walks the index.
 */
import * as path from 'node:path';
import { EVICTION_BATCH_MAX, INDEX_ENTRY_BYTES, INDEX_SIDE_ENTRY_BYTES, SCAN_BATCH_RECORDS, TRUNCATE_SLOTS_PER_STEP } from '../constants';
import { ErrorCode, ShoalError, fromNativeError } from '../errors';
import { Bins, decodePayloadBins, decodePayloadKey } from '../model/bins';
import { Key, encodeSetName, writeKey } from '../model/key';
import { addon, NativePrimaryIndex } from '../native/addon';
import {
  BATCH_ACTION,
  BATCH_PARTITION_ID,
  BATCH_PREVIOUS_EXISTED,
  BATCH_PREVIOUS_HIGH,
  BATCH_PREVIOUS_LOW,
  BATCH_SKIP,
  BATCH_SLOT_BYTES,
  ENTRY_EXISTED,
  ENTRY_FLAGS,
  ENTRY_GENERATION,
  ENTRY_LAST_UPDATE_MS,
  ENTRY_LOCATION_HIGH,
  ENTRY_LOCATION_LOW,
  ENTRY_PARTITION_ID,
  ENTRY_SET_ID,
  ENTRY_VOID_TIME,
  EX_DATA,
  EX_DIGEST,
  EX_ENTRY,
  EX_SET,
  EX_SET_LENGTH,
  Exchange,
  FLAG_HAS_KEY,
  READ_COPY_DATA,
  READ_FROM_KEY,
  SCAN_ENTRY_ID,
  SCAN_GENERATION,
  SCAN_LOCATION_HIGH,
  SCAN_LOCATION_LOW,
  SCAN_RECORD_BYTES,
  SCAN_SET_ID,
  SCAN_VOID_TIME,
  UPSERT_KEEP_DATA,
  UPSERT_STORE_DATA,
} from '../native/exchange';
import { type Clock, nowSecondsOf, wallClock } from '../clock';
import type { DataDirConfig, NamespaceConfig } from './config';
import { type ColdStartRecord, type ColdStartReport, DeviceStore, type RecoveryReport, recoveryLogLine, type StoreIndex } from '../storage/device-store';
import { RECORD_FLAG_PAYLOAD_KEY } from '../storage/format';
import { compareVersions, tieWins } from './conflict';
import { partitionFilter } from './partition-filter';
import { type Filter, type FilterSource, passesFilter, requireFilter } from './filter';
import { IndexWalk, countBySet, truncateIndex } from './index-scan';
import { createIndex, dropSegments, lockNamespace, readIndexMeta } from './index-segments';
import { PartitionCounts } from './partition-counts';
import { recordFromExchange, recordOf } from './record-view';
import { binsAfterPut, encodeForWrite, nextVersion, operateReadResult, operateRemovedResult, operateWrites, operateWrittenResult } from './record-rules';
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
import type { TruncateCut } from '../model/truncate-cuts';
import { BatchWriter, PutBatch } from './batch-put';

const META_FORMAT = 1;

/**
 * How many times a device namespace walked every index entry to recount live bytes (tests: a
 * warm restart must not, it reads the counts from the storage state file).
 */
export const indexVisits = { count: 0 };
const ENTRY_OVERHEAD_BYTES = INDEX_ENTRY_BYTES + INDEX_SIDE_ENTRY_BYTES;
/** Attempts at reading a record whose location moved under the read (defrag, overwrite). */
const READ_ATTEMPTS = 3;

interface DeviceMeta {
  format: number;
  kind: 'device';
  name: string;
  sets: string[];
  dataInMemory: boolean;
  /**
   * The open stamp of the run that closed this index (DeviceStore.openStamp): it is attached
   * only if the devices and the state file were closed by that same run (absent before stamps).
   */
  stamp?: [number, number];
}

interface Loaded extends Current {
  setId: number;
  flags: number;
  dataLength: number;
  low: number;
  high: number;
}

const ABSENT: Loaded = { exists: false, gen: 0, voidTime: 0, lastUpdateMs: 0, setId: 0, flags: 0, dataLength: 0, low: 0, high: 0 };

/** The entry a lookup just left in the exchange, for a record found with a payload of `dataLength` bytes. */
function loadedFromExchange(exchange: Exchange, dataLength: number): Loaded {
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
  };
}

type Body<T> = (current: Loaded, payload: Buffer | undefined) => MaybePromise<T>;

export class DeviceNamespace implements Namespace {
  readonly config: NamespaceConfig;
  readonly servesSync: boolean;
  startMode: StartMode = 'new';
  startMs = 0;
  coldStart: ColdStartReport | undefined;
  recovery: RecoveryReport | undefined;

  private readonly exchange: Exchange;
  private readonly dataInMemory: boolean;
  private sets = new SetTable();
  private readonly setBytes = new Map<number, Buffer>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private objects = 0;
  private readonly partitionRecords: PartitionCounts;
  private evicted = 0;
  private expired = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping = false;
  private closed = false;
  /** batchPut's writer (its buffer and the calls under way), made on first use. */
  private batches: BatchWriter | undefined;
  private readonly storeIndex: StoreIndex;
  /** Cold start: the scan's set indexes mapped to set ids. */
  private readonly restoreSetIds: number[] = [];
  private restoreSetTable = new Uint32Array(0);

  private constructor(
    config: NamespaceConfig,
    private readonly index: NativePrimaryIndex,
    exchange: Exchange,
    private readonly store: DeviceStore,
    private readonly lockFd: number,
    private readonly db: DataDirConfig,
    private readonly log: (message: string) => void,
    private readonly clock: Clock,
  ) {
    this.config = config;
    this.exchange = exchange;
    this.dataInMemory = config.device!.dataInMemory;
    this.servesSync = this.dataInMemory;
    this.partitionRecords = new PartitionCounts(index, exchange);
    this.storeIndex = {
      locate: (digest, at, out) => this.locate(digest, at, out),
      relocate: (digest, at, low, high) => this.relocate(digest, at, low, high),
    };
  }

  /**
   * Opens the namespace's devices and index: warm restart where possible, cold start otherwise.
   * @throws ShoalError LOCKED (open in another Db), IO_ERROR, CORRUPTION, INVALID_ARGUMENT.
   */
  static async open(config: NamespaceConfig, db: DataDirConfig, log: (message: string) => void, clock: Clock = wallClock): Promise<DeviceNamespace> {
    const started = performance.now();
    const device = config.device!;
    const exchange = new Exchange(Math.max(config.maxRecordBytes, SCAN_BATCH_RECORDS * SCAN_RECORD_BYTES));
    const lockFd = lockNamespace(db.dataDir, config.name, db.fileMode);
    let store: DeviceStore | undefined;
    let index: NativePrimaryIndex | undefined;
    try {
      store = await DeviceStore.open({
        namespace: config.name,
        paths: device.paths,
        dataDir: db.dataDir,
        sizeBytes: device.sizeBytes,
        writeBlockBytes: device.writeBlockBytes,
        directIo: device.directIo,
        ioEngine: device.ioEngine,
        flushMaxMs: device.flushMaxMs,
        commitToDevice: device.commitToDevice,
        defragLwmPct: device.defragLwmPct,
        withPayload: device.dataInMemory,
        stateFile: path.join(db.dataDir, `${config.name}.device-state`),
        indexFile: device.dataInMemory ? undefined : path.join(db.dataDir, `${config.name}.index-checkpoint`),
        fileMode: db.fileMode,
        repairDevices: device.repairDevices,
        log,
      });
      index = createIndex(db.dataDir, config.name, db.sharedMemoryIndex, exchange, device.dataInMemory, db.fileMode);
      const namespace = new DeviceNamespace(config, index, exchange, store, lockFd, db, log, clock);
      await namespace.start(db.sharedMemoryIndex);
      namespace.startMs = performance.now() - started;
      return namespace;
    } catch (error) {
      await store?.close().catch(() => undefined);
      try {
        index?.close(false);
      } catch {
        // already closed
      }
      addon().unlockFile(lockFd);
      throw error;
    }
  }

  private async start(shared: boolean): Promise<void> {
    const status = this.index.open(shared);
    let why = shared ? 'it has no shared-memory index (a first start, a reboot, or the last run kept none)' : 'sharedMemoryIndex is off';
    if (status === 1) {
      const meta = this.readMeta();
      const refusal = this.attachRefusal(meta);
      if (refusal === undefined) {
        this.sets = SetTable.fromJSON(meta!.sets);
        this.objects = this.index.count();
        await this.store.attach(this.storeIndex);
        this.startMode = 'warm';
        this.afterStart();
        return;
      }
      why = refusal;
    } else if (status === -1) {
      why = 'its shared-memory index has another layout (another version of Shoal)';
    }
    if (status !== 0) {
      this.index.close(true);
      this.index.open(false);
    }
    if (await this.recover(why)) return;
    if (this.store.startMode !== 'new') this.log(`namespace ${this.config.name}: cold start from the devices: ${why}`);
    else if (status !== 0) this.log(`namespace ${this.config.name}: its devices are new; the shared-memory index an earlier run left is dropped`);
    // The batch insert when the addon has it (an addon built before it falls back to one upsert per record).
    const batched = typeof this.index.insertWinners === 'function';
    this.coldStart = await this.store.coldStart(
      this.storeIndex,
      (record) => this.restore(record),
      batched ? (winners, variable, count, setNames) => this.restoreBatch(winners, variable, count, setNames) : undefined,
    );
    this.startMode = this.store.startMode === 'new' ? 'new' : 'cold';
    if (this.store.startMode !== 'new') {
      const report = this.coldStart;
      this.log(
        `namespace ${this.config.name}: cold start read ${(report.bytesScanned / 1e6).toFixed(1)} MB in ${report.ms.toFixed(0)} ms ` +
          `(${report.megabytesPerSecond.toFixed(0)} MB/s): ${report.records} records, ${report.corrupt} corrupt, ${report.expired} expired, ` +
          `${report.truncated} truncated, ${report.tombstones} tombstones`,
      );
    }
    this.afterStart();
  }

  /** After a crash or a reboot: the last index checkpoint and the blocks since (docs/storage.md, "Restart after a crash"). */
  private async recover(why: string): Promise<boolean> {
    if (this.store.startMode === 'new' || this.dataInMemory) return false;
    const sets = { adoptSets: (names: string[]) => void (this.sets = SetTable.fromJSON(names)), setIdFor: (name: string) => this.sets.idFor(name), setIdOf: (name: string) => this.sets.idOf(name) };
    const outcome = await this.store.recover(this.storeIndex, { index: this.index, exchange: this.exchange, ...sets });
    this.log(`namespace ${this.config.name}: ${recoveryLogLine(outcome, why)}`);
    if (typeof outcome === 'string') {
      this.index.close(true);  // the cold start begins from an empty index
      this.index.open(false);
      this.sets = new SetTable();
      return false;
    }
    this.objects = this.index.count();
    this.recovery = outcome;
    this.startMode = 'recovered';
    this.afterStart();
    return true;
  }

  private afterStart(): void {
    if (!this.dataInMemory) this.store.enableCheckpoints({ image: () => this.index.saveImage(), setNames: () => this.sets.toJSON() });
    const signature = this.store.signature();
    this.index.setSignature(signature.high, signature.low);
    this.index.markClean(false);
    if (this.config.nsupPeriodMs > 0) {
      this.sweepTimer = setInterval(() => this.sweepStep(), this.config.nsupPeriodMs);
      this.sweepTimer.unref();
    }
  }

  /** Cold start: one recovered record into the index. */
  private restore(record: ColdStartRecord): void {
    const exchange = this.exchange;
    record.copyDigest(exchange.u8, EX_DIGEST);
    let setId = this.restoreSetIds[record.setIndex];
    if (setId === undefined) setId = this.restoreSetIds[record.setIndex] = this.sets.idFor(record.setName);
    const dataLength = this.dataInMemory ? record.copyPayload(exchange.buffer, EX_DATA) : 0;
    this.setEntry(record.generation, record.voidTime, setId, record.payloadHasKey ? FLAG_HAS_KEY : 0, record.lastUpdateMs, dataLength);
    exchange.setEntryU32(ENTRY_LOCATION_LOW, record.locationLow);
    exchange.setEntryU32(ENTRY_LOCATION_HIGH, record.locationHigh);
    this.index.upsert(this.dataInMemory ? UPSERT_STORE_DATA : 0);
    this.objects++;  // the scan hands over each digest once
  }

  /**
   * Cold start: a batch of scanner winners into the index with one native call (the scan hands
   * over each digest once; tombstones and shadows are skipped natively). Set indexes of the
   * scan map to set ids here first, so the set table stays the namespace's.
   */
  private restoreBatch(winners: Buffer, variable: Buffer, count: number, setNames: string[]): void {
    if (this.restoreSetTable.length < setNames.length) {
      const table = new Uint32Array(Math.max(setNames.length, 2 * this.restoreSetTable.length));
      table.set(this.restoreSetTable);
      for (let index = this.restoreSetTable.length; index < setNames.length; index++) {
        table[index] = this.restoreSetIds[index] ??= this.sets.idFor(setNames[index]!);
      }
      this.restoreSetTable = table.subarray(0, setNames.length);
    }
    this.objects += this.index.insertWinners!(winners, variable, count, this.restoreSetTable, this.dataInMemory);
  }

  /**
   * Why the shared-memory index just attached may not be used, or undefined when it describes
   * exactly the devices' state: closed cleanly by the run that last closed the devices (their
   * open stamp), with their signature, its metadata readable and the devices' state file intact.
   */
  private attachRefusal(meta: DeviceMeta | undefined): string | undefined {
    const header = this.index.header();
    const signature = this.store.signature();
    const stamp = this.store.warmStamp();
    if (!header.clean) return 'its shared-memory index was not closed cleanly (a crash or a kill)';
    if (meta === undefined) return 'its shared-memory index has no readable metadata';
    if (header.signatureHigh !== signature.high || header.signatureLow !== signature.low) return 'its shared-memory index belongs to other devices (another signature)';
    if (!this.store.canAttach()) return this.store.coldStartReason();
    if (meta.stamp === undefined || meta.stamp[0] !== stamp!.high || meta.stamp[1] !== stamp!.low) {
      return 'its shared-memory index was left by an earlier run than the one that last closed the devices (their open stamps differ): the devices were opened since without it, or restored from a copy';
    }
    return undefined;
  }

  private readMeta(): DeviceMeta | undefined {
    return readIndexMeta<DeviceMeta>(
      this.index,
      (meta) => meta.format === META_FORMAT && meta.kind === 'device' && meta.name === this.config.name && meta.dataInMemory === this.dataInMemory,
    );
  }

  // ------------------------------------------------------------------------------------
  // The index as the storage engine sees it

  private locate(digest: Buffer, at: number, out: Uint32Array): boolean {
    this.exchange.u8.set(digest.subarray(at, at + 20), EX_DIGEST);
    if (this.index.read(0) < 0) return false;
    out[0] = this.exchange.entryU32(ENTRY_LOCATION_LOW);
    out[1] = this.exchange.entryU32(ENTRY_LOCATION_HIGH);
    return true;
  }

  private relocate(digest: Buffer, at: number, low: number, high: number): void {
    this.exchange.u8.set(digest.subarray(at, at + 20), EX_DIGEST);
    if (this.index.read(0) < 0) return;
    this.exchange.setEntryU32(ENTRY_LOCATION_LOW, low);
    this.exchange.setEntryU32(ENTRY_LOCATION_HIGH, high);
    this.index.upsert(this.dataInMemory ? UPSERT_KEEP_DATA : 0);
  }

  private visitLocations(take: (low: number, high: number) => void): void {
    indexVisits.count++;
    for (const walk = new IndexWalk(this.index, this.exchange); !walk.done; ) {
      const count = walk.next();
      const data = this.exchange.buffer;
      for (let i = 0; i < count; i++) {
        const at = EX_DATA + i * SCAN_RECORD_BYTES;
        take(data.readUInt32LE(at + SCAN_LOCATION_LOW), data.readUInt32LE(at + SCAN_LOCATION_HIGH));
      }
    }
  }

  /** A record as opts.filter evaluates it (filter.ts). */
  private filterSource(current: { voidTime: number; lastUpdateMs: number; setId: number }, payload: Buffer, digest: Uint8Array): FilterSource {
    return {
      payload,
      offset: 0,
      length: payload.length,
      voidTime: current.voidTime,
      lastUpdateMs: current.lastUpdateMs,
      setName: this.sets.nameOf(current.setId),
      digest,
      onDevice: true,
      inMemory: this.dataInMemory,
    };
  }

  /**
   * A write's or remove's filter on the record it found (none there: nothing to filter).
   * @throws ShoalError FILTERED_OUT.
   */
  private checkFilter(filter: Filter | undefined, current: Loaded, payload: Buffer | undefined): void {
    if (filter === undefined || !current.exists || payload === undefined) return;
    requireFilter(filter, this.filterSource(current, payload, this.exchange.buffer.subarray(EX_DIGEST, EX_DIGEST + 20)));
  }

  // ------------------------------------------------------------------------------------
  // Loading the current record; the per-record lock

  /** Looks the key up (digest and key fields stay in the exchange); an expired record is removed and reported absent. */
  private load(key: Key, readPayload: boolean): Loaded {
    const exchange = this.exchange;
    const fromKey = writeKey(exchange, key);
    const length = this.index.read((fromKey ? READ_FROM_KEY : 0) | (readPayload && this.dataInMemory ? READ_COPY_DATA : 0));
    if (length < 0) return ABSENT;
    const voidTime = exchange.entryU32(ENTRY_VOID_TIME);
    if (isExpired(voidTime, nowSecondsOf(this.clock))) {
      this.expireCurrent();
      return ABSENT;
    }
    return loadedFromExchange(exchange, length);
  }

  /**
   * Runs a write (body) with the current record (and its payload when readPayload), once the
   * write gate lets it pass (call order, and room in the store: DeviceStore.gate): synchronously when nothing
   * must be read from the device and no other operation holds the record, else under the
   * record's lock after reading the payload. A write that waits for room reads its key and bins
   * when it runs.
   */
  private run<T>(key: Key, readPayload: boolean, body: Body<T>): MaybePromise<T> {
    this.checkOpen();
    return this.store.gate.run(() => this.runNow(key, readPayload, body));
  }

  private runNow<T>(key: Key, readPayload: boolean, body: Body<T>): MaybePromise<T> {
    const current = this.load(key, readPayload);
    const lockKey = this.locks.size > 0 || (readPayload && current.exists && !this.dataInMemory) ? this.exchange.buffer.toString('latin1', EX_DIGEST, EX_DIGEST + 20) : '';
    if (this.locks.size > 0 && this.locks.has(lockKey)) return this.locked(lockKey, () => this.runLocked(key, readPayload, body));
    if (!readPayload || !current.exists) return body(current, undefined);
    if (this.dataInMemory) return body(current, this.exchange.buffer.subarray(EX_DATA, EX_DATA + current.dataLength));
    const memory = this.store.readFromMemory(current.low, current.high);
    if (memory !== undefined) return body(current, memory);
    return this.locked(lockKey, () => this.runLocked(key, readPayload, body));
  }

  private async runLocked<T>(key: Key, readPayload: boolean, body: Body<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      let current = this.load(key, readPayload);
      if (!readPayload || !current.exists) return await body(current, undefined);
      if (this.dataInMemory) return await body(current, this.exchange.buffer.subarray(EX_DATA, EX_DATA + current.dataLength));
      const digest = Buffer.from(this.exchange.buffer.subarray(EX_DIGEST, EX_DIGEST + 20));
      const payload = await this.readPayload(digest, current);
      if (payload === undefined) continue;
      const generation = current.gen;
      current = this.load(key, false);  // the exchange again holds this record's digest and key
      if ((current.exists && current.gen === generation) || attempt >= READ_ATTEMPTS) return await body(current, current.exists ? payload : undefined);
    }
  }

  private locked<T>(lockKey: string, task: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(lockKey);
    const next = (previous === undefined ? task() : previous.then(task, task)) as Promise<T>;
    const settled = next.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(lockKey, settled);
    settled.then(() => {
      if (this.locks.get(lockKey) === settled) this.locks.delete(lockKey);
    });
    return next;
  }

  /**
   * Reads a payload from the device. A location that changed under the read (defrag moved the
   * record, or it was overwritten) is retried; undefined when the record went away.
   * @throws ShoalError CORRUPTION (the record on the device fails its checks), IO_ERROR.
   */
  private async readPayload(digest: Buffer, current: { low: number; high: number }): Promise<Buffer | undefined> {
    let low = current.low;
    let high = current.high;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.store.read(low, high, digest);
      } catch (error) {
        if ((error as ShoalError).code !== ErrorCode.CORRUPTION || attempt >= READ_ATTEMPTS) throw error;
        this.exchange.setDigest(digest);
        if (this.index.read(0) < 0) return undefined;
        const nextLow = this.exchange.entryU32(ENTRY_LOCATION_LOW);
        const nextHigh = this.exchange.entryU32(ENTRY_LOCATION_HIGH);
        if (nextLow === low && nextHigh === high) throw error;
        low = nextLow;
        high = nextHigh;
      }
    }
  }

  // ------------------------------------------------------------------------------------
  // Reads

  get(key: Key, options: ReadOptions | undefined): MaybePromise<ShoalRecord | undefined> {
    this.checkOpen();
    if (this.dataInMemory) return this.getFromMemory(key, options);
    const current = this.load(key, true);
    if (!current.exists) return undefined;
    const nowSeconds = nowSecondsOf(this.clock);
    const payload = this.store.readFromMemory(current.low, current.high);
    const digest = Buffer.from(this.exchange.buffer.subarray(EX_DIGEST, EX_DIGEST + 20));
    if (payload !== undefined) {
      if (options?.filter !== undefined) requireFilter(options.filter, this.filterSource(current, payload, digest));
      return recordOf(key, decodePayloadBins(payload, 0, payload.length), current.gen, current.voidTime, nowSeconds, options);
    }
    return this.readPayload(digest, current).then((read) => {
      if (read === undefined) return undefined;
      if (options?.filter !== undefined) requireFilter(options.filter, this.filterSource(current, read, digest));
      return recordOf(key, decodePayloadBins(read, 0, read.length), current.gen, current.voidTime, nowSeconds, options);
    });
  }

  /** dataInMemory: the payload comes with the index lookup; decoded straight from the exchange. */
  private getFromMemory(key: Key, options: ReadOptions | undefined): ShoalRecord | undefined {
    const exchange = this.exchange;
    const fromKey = writeKey(exchange, key);
    const length = this.index.read((fromKey ? READ_FROM_KEY : 0) | READ_COPY_DATA);
    if (length < 0) return undefined;
    const voidTime = exchange.u32[(EX_ENTRY + ENTRY_VOID_TIME) >>> 2]!;
    const nowSeconds = nowSecondsOf(this.clock);
    if (isExpired(voidTime, nowSeconds)) {
      this.expireCurrent();
      return undefined;
    }
    if (options?.filter !== undefined) {
      const payload = exchange.buffer.subarray(EX_DATA, EX_DATA + length);
      requireFilter(options.filter, this.filterSource(loadedFromExchange(exchange, length), payload, exchange.buffer.subarray(EX_DIGEST, EX_DIGEST + 20)));
    }
    return recordFromExchange(exchange, key, length, voidTime, nowSeconds, options);
  }

  getSync(key: Key, options: ReadOptions | undefined): ShoalRecord | undefined {
    if (!this.dataInMemory) {
      throw new ShoalError(ErrorCode.INVALID_ARGUMENT, `namespace ${this.config.name} reads from its device; use get(), or set storage.dataInMemory: true for getSync`);
    }
    return this.get(key, options) as ShoalRecord | undefined;
  }

  exists(key: Key): boolean {
    this.checkOpen();
    return this.load(key, false).exists;
  }

  // ------------------------------------------------------------------------------------
  // Writes

  put(key: Key, bins: Bins, options: WriteOptions | undefined): MaybePromise<WriteResult> {
    this.checkOpen();
    return this.store.gate.run(() => this.putNow(key, bins, options));
  }

  /** put, past the write gate (batchPut's per-record entries: the batch holds the gate). */
  private putNow(key: Key, bins: Bins, options: WriteOptions | undefined): MaybePromise<WriteResult> {
    const merges = putMerges(options);
    return this.runNow(key, merges || options?.filter !== undefined, (current, payload) => {
      this.checkFilter(options?.filter, current, payload);
      checkPutPolicy(current, options);
      const stored = payload === undefined || !merges ? undefined : { buffer: payload, offset: 0, length: payload.length };
      const result = binsAfterPut(stored, bins, merges);
      if (result === undefined) return this.removeCurrent(current, options?.durable === true, { gen: 0, ttl: -1 });
      return this.writeCurrent(key, current, result, options);
    });
  }

  putMany(request: BatchPutRequest, results: BatchResults): Promise<void> {
    this.checkOpen();
    this.batches ??= new BatchWriter(
      {
        config: this.config,
        clock: this.clock,
        setIdFor: (set) => this.sets.idFor(set),
        busy: (batch, at) => this.locks.size > 0 && this.locks.has(batch.toString('latin1', at, at + 20)),
        admits: () => true,
        store: (batch) => this.storeBatch(batch),
        put: (key, bins, options) => this.putNow(key, bins, options),
        gate: this.store.gate,
      },
      this.index,
      this.config.maxRecordBytes,
    );
    return this.batches.putMany(request, results);
  }

  /**
   * batchPut: the decided writes of a batch: the store places them in write blocks, one native
   * call formats the records there and upserts their index entries, the store starts the
   * blocks' writes (and group-commits them when durable); then the accounting.
   */
  private storeBatch(batch: PutBatch): Promise<ShoalError | undefined> | undefined {
    const durable = batch.durable;
    let blocks: Buffer[];
    try {
      blocks = this.store.placeBatch(batch.buffer, batch.count, batch.outcomes);
    } catch (error) {
      for (let i = 0; i < batch.count; i++) {
        if (batch.u32At(i * BATCH_SLOT_BYTES + BATCH_ACTION) === BATCH_SKIP) continue;
        batch.outcomes[i] = error as ShoalError;
        batch.setU32(i * BATCH_SLOT_BYTES + BATCH_ACTION, BATCH_SKIP);
      }
      return undefined;
    }
    let failure: ShoalError | undefined;
    let formatted = true;
    try {
      this.index.writeBatch(batch.buffer, batch.count, blocks, this.dataInMemory);
    } catch (error) {
      // A TypeError/RangeError refused the batch before any record was formatted; anything
      // else (the index out of memory) came after all of them were.
      formatted = !(error instanceof TypeError || error instanceof RangeError);
      failure = fromNativeError(error, `namespace ${this.config.name}: batchPut`);
    }
    const committed = this.store.finishBatch(batch.buffer, batch.count, durable, formatted);
    batch.forEachWritten(failure, (slot) => {
      if (batch.u32At(slot + BATCH_PREVIOUS_EXISTED) === 1) {
        this.store.release(batch.u32At(slot + BATCH_PREVIOUS_LOW), batch.u32At(slot + BATCH_PREVIOUS_HIGH));
      } else {
        this.objects++;
        this.partitionRecords.added(batch.u32At(slot + BATCH_PARTITION_ID));
      }
    });
    return committed;
  }

  remove(key: Key, options: RemoveOptions | undefined): MaybePromise<boolean> {
    return this.run(key, options?.filter !== undefined, (current, payload) => {
      this.checkFilter(options?.filter, current, payload);
      checkGenerationMatch(current, options?.generation);
      return this.removeCurrent(current, options?.durable === true, current.exists);
    });
  }

  touch(key: Key, ttl: number | undefined): MaybePromise<WriteResult> {
    return this.run(key, true, (current, payload) => {
      if (!current.exists || payload === undefined) throw new ShoalError(ErrorCode.RECORD_NOT_FOUND, 'touch: record not found');
      const next = nextVersion(current, ttl, this.config.defaultTtl, this.clock.nowMs());
      if (payload.buffer !== this.exchange.buffer.buffer || payload.byteOffset !== EX_DATA) this.exchange.u8.set(payload, EX_DATA);
      return this.writeRaw(current.setId, next.gen, next.voidTime, current.flags & FLAG_HAS_KEY, next.lastUpdateMs, payload.length, false, next.result);
    });
  }

  operate(key: Key, operations: Operation[], options: WriteOptions | undefined): MaybePromise<ShoalRecord> {
    return this.run(key, true, (current, payload) => {
      const writes = operateWrites(current, operations);
      this.checkFilter(options?.filter, current, payload);
      if (writes) checkPutPolicy(current, options);
      const outcome = applyOperations(payload, 0, payload?.length ?? 0, operations, current.exists && payload !== undefined ? () => this.filterSource(current, payload, this.exchange.buffer.subarray(EX_DIGEST, EX_DIGEST + 20)) : undefined);
      if (!outcome.writes) return operateReadResult(key, outcome, current, nowSecondsOf(this.clock));
      if (outcome.bins === undefined) return this.removeCurrent(current, options?.durable === true, operateRemovedResult(key, outcome));
      return then(this.writeCurrent(key, current, outcome.bins, options), (written) => operateWrittenResult(key, outcome, written));
    });
  }

  /** Encodes bins and writes them as the new version of the record whose digest and key are in the exchange. */
  private writeCurrent(key: Key, current: Loaded, bins: Bins, options: WriteOptions | undefined): MaybePromise<WriteResult> {
    const { length, storeKey } = encodeForWrite(this.exchange, this.config, key, bins, options);
    const next = nextVersion(current, options?.ttl, this.config.defaultTtl, this.clock.nowMs());
    const setId = current.exists ? current.setId : this.sets.idFor(key.set);
    const flags = storeKey ? FLAG_HAS_KEY : 0;
    return this.writeRaw(setId, next.gen, next.voidTime, flags, next.lastUpdateMs, length, options?.durable === true, next.result);
  }

  /** Stores DATA[0, length) with this metadata for the digest in the exchange; the index follows the device. */
  private writeRaw<T>(setId: number, gen: number, voidTime: number, flags: number, lastUpdateMs: number, length: number, durable: boolean, result: T): MaybePromise<T> {
    const exchange = this.exchange;
    this.writeSetName(setId);
    this.setEntry(gen, voidTime, setId, flags, lastUpdateMs, length);
    const done = this.store.write(exchange, length, (flags & FLAG_HAS_KEY) !== 0 ? RECORD_FLAG_PAYLOAD_KEY : 0, durable);
    this.index.upsert(this.dataInMemory ? UPSERT_STORE_DATA : 0);
    if (exchange.previousU32(ENTRY_EXISTED) === 1) {
      this.store.release(exchange.previousU32(ENTRY_LOCATION_LOW), exchange.previousU32(ENTRY_LOCATION_HIGH));
    } else {
      this.objects++;
      this.partitionRecords.added(exchange.entryU32(ENTRY_PARTITION_ID));
    }
    return done === undefined ? result : done.then(() => result);
  }

  /**
   * Removes the record whose digest is in the exchange, leaving a tombstone on the device. When
   * it is already absent (perhaps through an earlier remove not yet on the device), a durable
   * caller still waits until that absence is durable.
   */
  private removeCurrent<T>(current: Loaded, durable: boolean, result: T): MaybePromise<T> {
    if (!current.exists || this.index.remove() !== 1) {
      return durable || this.config.device!.commitToDevice ? this.store.flush().then(() => result) : result;
    }
    const exchange = this.exchange;
    this.objects--;
    this.partitionRecords.removedInExchange();
    this.writeSetName(current.setId);
    const done = this.store.remove(
      exchange,
      exchange.previousU32(ENTRY_LOCATION_LOW),
      exchange.previousU32(ENTRY_LOCATION_HIGH),
      exchange.previousU32(ENTRY_GENERATION),
      exchange.previousF64(ENTRY_LAST_UPDATE_MS),
      durable,
    );
    return done === undefined ? result : done.then(() => result);
  }

  /** An expired record leaves the index; its copy on the device hides older copies until defrag shadows or drops it. */
  private expireCurrent(): void {
    if (this.index.remove() !== 1) return;
    this.objects--;
    this.partitionRecords.removedInExchange();
    this.expired++;
    this.store.release(this.exchange.previousU32(ENTRY_LOCATION_LOW), this.exchange.previousU32(ENTRY_LOCATION_HIGH));
  }

  private setEntry(gen: number, voidTime: number, setId: number, flags: number, lastUpdateMs: number, dataLength: number): void {
    this.exchange.writeEntryFields(gen, voidTime, setId, flags, lastUpdateMs, dataLength);
  }

  /**
   * The set name of a set id into the exchange (digest-addressed keys do not write one). Keeps
   * exchange.lastSetName true, which writeKey relies on to skip rewriting the set.
   */
  private writeSetName(setId: number): void {
    const name = this.sets.nameOf(setId);
    if (this.exchange.lastSetName === name) return;
    let bytes = this.setBytes.get(setId);
    if (bytes === undefined) {
      bytes = setId === 0 ? Buffer.alloc(0) : encodeSetName(name);
      this.setBytes.set(setId, bytes);
    }
    this.exchange.buffer.writeUInt16LE(bytes.length, EX_SET_LENGTH);
    this.exchange.u8.set(bytes, EX_SET);
    this.exchange.lastSetName = name;
  }

  // ------------------------------------------------------------------------------------
  // Background expiry sweep: removes expired entries and frees their device bytes

  private sweepStep(): void {
    if (this.sweeping || this.closed) return;
    this.sweeping = true;
    const nowSeconds = nowSecondsOf(this.clock);
    const walk = new IndexWalk(this.index, this.exchange);
    const slice = (): void => {
      if (this.closed) return;
      const batch = walk.nextCopy();
      for (let at = 0; at < batch.length; at += SCAN_RECORD_BYTES) {
        if (!isExpired(batch.readUInt32LE(at + SCAN_VOID_TIME), nowSeconds)) continue;
        if (this.index.removeEntry(batch.readUInt32LE(at + SCAN_ENTRY_ID)) !== 1) continue;
        this.objects--;
        this.partitionRecords.removed(this.exchange.previousU32(ENTRY_PARTITION_ID));
        this.expired++;
        this.store.release(this.exchange.previousU32(ENTRY_LOCATION_LOW), this.exchange.previousU32(ENTRY_LOCATION_HIGH));
      }
      if (!walk.done) {
        setImmediate(slice);
        return;
      }
      this.sweeping = false;
      this.evictAboveHighWater(nowSeconds);
    };
    slice();
  }

  /**
   * Device high-water mark: above highWaterPct of the device bytes, evicts records that expire
   * soonest (as Aerospike does; records that never expire are never evicted), one bounded batch
   * per sweep period, and releases the locations the index reports for them so defrag reclaims
   * their blocks. An evicted
   * record's newest copy still hides older ones on the device (see docs/storage.md).
   */
  private evictAboveHighWater(nowSeconds: number): void {
    if (this.closed || this.config.evictPolicy === 'none' || this.objects === 0) return;
    const storage = this.store.stats();
    const limit = (storage.deviceTotalBytes * this.config.highWaterPct) / 100;
    if (storage.deviceUsedBytes <= limit) return;
    const average = storage.deviceUsedBytes / this.objects;
    const wanted = Math.min(EVICTION_BATCH_MAX, Math.max(1, Math.ceil((storage.deviceUsedBytes - limit) / average)));
    const locations = new Uint32Array(2 * wanted);
    const removed = this.index.evictSoonestExpiring(-1, wanted, nowSeconds, locations);
    if (removed === 0) return;
    this.objects -= removed;
    this.partitionRecords.invalidate();
    this.evicted += removed;
    this.releaseAll(locations, removed);
  }

  // ------------------------------------------------------------------------------------
  // Scans, truncation

  async *scan(set: string | undefined, options: ScanOptions | undefined): AsyncIterable<ShoalRecord> {
    this.checkOpen();
    const setId = set === undefined ? -1 : this.sets.idOf(set);
    if (setId === undefined) return;
    const filter = partitionFilter(options?.partitions);
    for await (const batch of this.scanBatches(setId, filter)) {
      const records = await Promise.all(batch.map((entry) => this.scanRecord(entry, options?.filter)));
      for (const record of records) if (record !== undefined) yield record;
    }
  }

  private async *scanBatches(setId: number, filter: Uint8Array | undefined): AsyncIterable<ScanEntry[]> {
    for (const walk = new IndexWalk(this.index, this.exchange, setId, filter); !walk.done && !this.closed; ) {
      const batch = walk.nextCopy();
      const nowSeconds = nowSecondsOf(this.clock);
      const entries: ScanEntry[] = [];
      for (let at = 0; at < batch.length; at += SCAN_RECORD_BYTES) {
        const voidTime = batch.readUInt32LE(at + SCAN_VOID_TIME);
        if (isExpired(voidTime, nowSeconds)) continue;
        const entry: ScanEntry = {
          digest: batch.subarray(at, at + 20),
          entryId: batch.readUInt32LE(at + SCAN_ENTRY_ID),
          gen: batch.readUInt32LE(at + SCAN_GENERATION),
          voidTime,
          setId: batch.readUInt32LE(at + SCAN_SET_ID),
          low: batch.readUInt32LE(at + SCAN_LOCATION_LOW),
          high: batch.readUInt32LE(at + SCAN_LOCATION_HIGH),
          payload: undefined,
          lastUpdateMs: 0,
          flags: 0,
        };
        // Metadata and (in memory) the payload, now, before anything can change the entry.
        const length = this.index.readEntry(entry.entryId, this.dataInMemory ? READ_COPY_DATA : 0);
        if (length < 0 || this.exchange.buffer.compare(entry.digest, 0, 20, EX_DIGEST, EX_DIGEST + 20) !== 0) continue;
        entry.lastUpdateMs = this.exchange.entryF64(ENTRY_LAST_UPDATE_MS);
        entry.flags = this.exchange.entryU32(ENTRY_FLAGS);
        if (this.dataInMemory) entry.payload = Buffer.from(this.exchange.buffer.subarray(EX_DATA, EX_DATA + length));
        else {
          const view = this.store.readFromMemory(entry.low, entry.high);
          entry.payload = view === undefined ? undefined : Buffer.from(view);
        }
        entries.push(entry);
      }
      yield entries;
    }
  }

  private async scanPayload(entry: ScanEntry): Promise<Buffer | undefined> {
    if (entry.payload !== undefined) return entry.payload;
    try {
      return await this.readPayload(entry.digest, entry);
    } catch (error) {
      if ((error as ShoalError).code === ErrorCode.CORRUPTION) {
        this.log(`namespace ${this.config.name}: scan skipped a record that fails its checksum`);
        return undefined;
      }
      throw error;
    }
  }

  private async scanRecord(entry: ScanEntry, expression: Filter | undefined): Promise<ShoalRecord | undefined> {
    const payload = await this.scanPayload(entry);
    if (payload === undefined) return undefined;
    if (expression !== undefined && !passesFilter(expression, this.filterSource(entry, payload, entry.digest))) return undefined;
    const key: Key = { ns: this.config.name, set: this.sets.nameOf(entry.setId), digest: entry.digest };
    if ((entry.flags & FLAG_HAS_KEY) !== 0) {
      const stored = decodePayloadKey(payload, 0);
      if (stored !== undefined) key.key = stored;
    }
    return recordOf(key, decodePayloadBins(payload, 0, payload.length), entry.gen, entry.voidTime, nowSecondsOf(this.clock), undefined);
  }

  async truncate(set: string | undefined, beforeMs: number): Promise<number> {
    this.checkOpen();
    // The marker is durable first: whatever the index removes below stays gone after any restart.
    await this.store.truncate(set, beforeMs);
    const setId = set === undefined ? -1 : this.sets.idOf(set);
    if (setId === undefined) return 0;
    const locations = new Uint32Array(2 * TRUNCATE_SLOTS_PER_STEP);
    return truncateIndex(
      this.index,
      this.exchange,
      setId,
      beforeMs,
      () => this.closed,
      (removed) => {
        this.objects -= removed;
        if (removed > 0) this.partitionRecords.invalidate();
        this.releaseAll(locations, removed);
      },
      locations,
    );
  }

  /** The bytes of `count` removed entries whose locations (low, high) are in `locations` are dead. */
  private releaseAll(locations: Uint32Array, count: number): void {
    for (let i = 0; i < count; i++) this.store.release(locations[2 * i]!, locations[2 * i + 1]!);
  }

  setObjects(): Promise<Map<string, number>> {
    return countBySet(this.index, () => this.closed).then((counts) => this.sets.objectsOf(counts));
  }

  truncateCuts(): readonly TruncateCut[] {
    return this.store.truncateMarkers();
  }

  // ------------------------------------------------------------------------------------
  // Cluster hooks

  async readVersion(digest: Buffer): Promise<RecordVersion | undefined> {
    this.checkOpen();
    this.exchange.setDigest(digest);
    const length = this.index.read(this.dataInMemory ? READ_COPY_DATA : 0);
    if (length < 0) return undefined;
    const exchange = this.exchange;
    const current = {
      gen: exchange.entryU32(ENTRY_GENERATION),
      voidTime: exchange.entryU32(ENTRY_VOID_TIME),
      lastUpdateMs: exchange.entryF64(ENTRY_LAST_UPDATE_MS),
      setId: exchange.entryU32(ENTRY_SET_ID),
      low: exchange.entryU32(ENTRY_LOCATION_LOW),
      high: exchange.entryU32(ENTRY_LOCATION_HIGH),
    };
    const payload = this.dataInMemory ? Buffer.from(exchange.buffer.subarray(EX_DATA, EX_DATA + length)) : await this.readPayload(Buffer.from(digest), current);
    if (payload === undefined) return undefined;
    return { digest: Buffer.from(digest), gen: current.gen, voidTime: current.voidTime, lastUpdateMs: current.lastUpdateMs, setName: this.sets.nameOf(current.setId), tombstone: false, payload };
  }

  applyVersion(version: RecordVersion): MaybePromise<boolean> {
    this.checkOpen();
    return this.store.gate.run(() => this.applyWithRoom(version));
  }

  private applyWithRoom(version: RecordVersion): MaybePromise<boolean> {
    const lockKey = version.digest.toString('latin1', 0, 20);
    if (this.locks.has(lockKey)) return this.locked(lockKey, async () => this.applyNow(version));
    return this.applyNow(version);
  }

  private applyNow(version: RecordVersion): MaybePromise<boolean> {
    const exchange = this.exchange;
    exchange.setDigest(version.digest);
    const length = this.index.read(0);
    const local = length < 0 ? ABSENT : loadedFromExchange(exchange, length);
    if (!local.exists) return this.applyLoaded(version, local);
    const order = compareVersions(version, local, this.config.conflictResolution);
    if (order < 0) return false;
    if (order > 0 || version.tombstone) return this.applyLoaded(version, local);
    // A full tie: the content decides (conflict.ts), so every copy keeps the same one.
    if (!this.dataInMemory) return this.applyOnTie(version, local);
    this.index.read(READ_COPY_DATA);
    if (!tieWins(version, { tombstone: false, payload: exchange.buffer.subarray(EX_DATA, EX_DATA + length) })) return false;
    return this.applyLoaded(version, local);
  }

  /** applyNow's tie with the stored payload on the device: read it, then decide unless the record moved meanwhile. */
  private async applyOnTie(version: RecordVersion, local: Loaded): Promise<boolean> {
    const stored = await this.readPayload(version.digest, local);
    const exchange = this.exchange;
    exchange.setDigest(version.digest);
    const moved = this.index.read(0) < 0 || exchange.entryU32(ENTRY_LOCATION_LOW) !== local.low || exchange.entryU32(ENTRY_LOCATION_HIGH) !== local.high;
    if (moved || stored === undefined) return this.applyNow(version);
    if (!tieWins(version, { tombstone: false, payload: stored })) return false;
    return this.applyLoaded(version, local);
  }

  /** Stores `version` over `local`, the record whose digest and entry are in the exchange. */
  private applyLoaded(version: RecordVersion, local: Loaded): MaybePromise<boolean> {
    const exchange = this.exchange;
    if (version.tombstone || version.payload === undefined) return this.removeCurrent(local, false, true);
    if (version.payload.length > exchange.dataCapacity) {
      throw new ShoalError(ErrorCode.RECORD_TOO_BIG, `replicated record of ${version.payload.length} bytes exceeds this node's maxRecordBytes`);
    }
    exchange.u8.set(version.payload, EX_DATA);
    const flags = version.payload[1] !== 0 ? FLAG_HAS_KEY : 0;
    return this.writeRaw(this.sets.idFor(version.setName), version.gen, version.voidTime, flags, version.lastUpdateMs, version.payload.length, false, true);
  }

  async *partitionVersions(partitionId: number): AsyncIterable<RecordVersion> {
    for await (const batch of this.scanBatches(-1, partitionFilter([partitionId]))) {
      const payloads = await Promise.all(batch.map((entry) => this.scanPayload(entry)));
      for (const [i, entry] of batch.entries()) {
        const payload = payloads[i];
        if (payload === undefined) continue;
        yield { digest: Buffer.from(entry.digest), gen: entry.gen, voidTime: entry.voidTime, lastUpdateMs: entry.lastUpdateMs, setName: this.sets.nameOf(entry.setId), tombstone: false, payload };
      }
    }
  }

  async dropPartition(partitionId: number): Promise<number> {
    const digests: Buffer[] = [];
    for await (const batch of this.scanBatches(-1, partitionFilter([partitionId]))) for (const entry of batch) digests.push(Buffer.from(entry.digest));
    let removed = 0;
    for (const digest of digests) {
      const room = this.store.gate.enter();
      if (room !== undefined) await room;
      this.exchange.setDigest(digest);
      const length = this.index.read(0);
      if (length < 0) continue;
      const current: Loaded = { ...ABSENT, exists: true, setId: this.exchange.entryU32(ENTRY_SET_ID) };
      this.removeCurrent(current, false, true);
      removed++;
    }
    return removed;
  }

  /** Live records per partition id (length 4096). */
  partitionCounts(): Uint32Array {
    return this.partitionRecords.read();
  }

  // ------------------------------------------------------------------------------------
  // Stats, close

  stats(): NamespaceStats {
    const storage = this.store.stats();
    const dataBytes = this.closed || !this.dataInMemory ? 0 : this.index.stats().dataBytes;
    return {
      objects: this.objects,
      masterObjects: this.objects,
      replicaObjects: 0,
      tombstones: storage.tombstones,
      memoryUsedBytes: this.objects * ENTRY_OVERHEAD_BYTES + dataBytes,
      indexUsedBytes: this.objects * ENTRY_OVERHEAD_BYTES,
      dataUsedBytes: dataBytes,
      deviceUsedBytes: storage.deviceUsedBytes,
      deviceFreePct: storage.deviceFreePct,
      deviceTotalBytes: storage.deviceTotalBytes,
      evicted: this.evicted,
      expired: this.expired,
      defragPending: storage.defragPending,
      defragBlocks: storage.defragBlocks,
      defragMoved: storage.defragMoved,
      writeBlocksFlushed: storage.writeBlocksFlushed,
      commits: storage.commits,
      startMode: this.startMode,
      startMs: Math.round(this.startMs * 1000) / 1000,
      directIo: storage.directIo,
      ioEngine: storage.ioEngine,
      coldStart: this.coldStart,
      recovery: this.recovery,
      checkpoints: storage.checkpoints,
    };
  }

  async close(dropIndex: boolean): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    // Writes called before close() still run: those waiting for room, then those under a lock.
    await this.store.gate.idle();
    await Promise.all([...this.locks.values()]);
    try {
      await this.store.close({ dropIndex });
      if (!dropIndex) {
        const stamp = this.store.openStamp;
        const meta: DeviceMeta = { format: META_FORMAT, kind: 'device', name: this.config.name, sets: this.sets.toJSON(), dataInMemory: this.dataInMemory, stamp: [stamp.high, stamp.low] };
        this.index.writeMeta(Buffer.from(JSON.stringify(meta)));
        this.index.markClean(true);
      }
    } finally {
      this.index.close(dropIndex);
      // Without shared memory: whatever earlier runs left goes too (open removed it already).
      if (dropIndex && !this.db.sharedMemoryIndex) dropSegments(this.db.dataDir, this.config.name);
      addon().unlockFile(this.lockFd);
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new ShoalError(ErrorCode.NOT_OPEN, `namespace ${this.config.name} is closed`);
  }
}

interface ScanEntry {
  digest: Buffer;
  entryId: number;
  gen: number;
  voidTime: number;
  setId: number;
  low: number;
  high: number;
  lastUpdateMs: number;
  flags: number;
  payload: Buffer | undefined;
}

function then<T, U>(value: MaybePromise<T>, next: (value: T) => U): MaybePromise<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}
