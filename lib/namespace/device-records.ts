/**
 * The device store of a namespace: the native primary index (in shared memory by default) over
 * the log-structured storage engine (lib/storage/device-store.ts). With dataInMemory the
 * index's arena also keeps each payload, so reads never touch the device and getSync works.
 * The record semantics are the record core's (record-core.ts); this file says how a device
 * namespace starts, where its writes and removals go on the device, and when it sweeps.
 *
 * Start: a warm restart attaches to the shared-memory index when the index, the device
 * headers and the storage state file all say the last close was clean and they belong
 * together; anything else is a cold start that rebuilds the index from the devices. A warm
 * start costs O(blocks), not O(records): it never walks the index.
 */
import * as path from 'node:path';
import { EVICTION_BATCH_MAX } from '../constants';
import { type Clock, nowSecondsOf, wallClock } from '../clock';
import { ErrorCode, ShoalError, fromNativeError } from '../errors';
import { encodeSetName } from '../model/key';
import type { TruncateCut } from '../model/truncate-cuts';
import { addon, type NativePrimaryIndex } from '../native/addon';
import {
  BATCH_ACTION,
  BATCH_PREVIOUS_HIGH,
  BATCH_PREVIOUS_LOW,
  BATCH_SKIP,
  BATCH_SLOT_BYTES,
  ENTRY_EXISTED,
  ENTRY_GENERATION,
  ENTRY_LAST_UPDATE_MS,
  ENTRY_LOCATION_HIGH,
  ENTRY_LOCATION_LOW,
  ENTRY_PARTITION_ID,
  EX_DATA,
  EX_DIGEST,
  EX_SET,
  EX_SET_LENGTH,
  FLAG_HAS_KEY,
  SCAN_ENTRY_ID,
  SCAN_LOCATION_HIGH,
  SCAN_LOCATION_LOW,
  SCAN_RECORD_BYTES,
  SCAN_VOID_TIME,
  UPSERT_KEEP_DATA,
  UPSERT_STORE_DATA,
} from '../native/exchange';
import { type ColdStartRecord, type ColdStartReport, DeviceStore, type RecoveryReport, recoveryLogLine, type StoreIndex } from '../storage/device-store';
import { RECORD_FLAG_PAYLOAD_KEY } from '../storage/format';
import type { WriteGate } from '../storage/write-gate';
import type { PutBatch } from './batch-put';
import type { DataDirConfig, NamespaceConfig } from './config';
import { IndexWalk } from './index-scan';
import { createIndex, dropSegments, lockNamespace, readIndexMeta } from './index-segments';
import type { NamespaceStats, StartMode } from './namespace';
import { RecordCore } from './record-core';
import type { NextVersion } from './record-rules';
import { ENTRY_OVERHEAD_BYTES, type Loaded, RecordIndex, type RecordStore, namespaceExchange } from './record-store';
import { isExpired } from './semantics';
import { SetTable } from './set-table';

const META_FORMAT = 1;
/**
 * How many times a device namespace walked every index entry to recount live bytes (tests: a
 * warm restart must not, it reads the counts from the storage state file).
 */
export const indexVisits = { count: 0 };
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

/**
 * Opens a device namespace's devices and index: warm restart where possible, cold start otherwise.
 * @throws ShoalError LOCKED (open in another Db), IO_ERROR, CORRUPTION, INVALID_ARGUMENT.
 */
export async function openDeviceNamespace(config: NamespaceConfig, db: DataDirConfig, log: (message: string) => void, clock: Clock = wallClock): Promise<RecordCore> {
  const started = performance.now();
  const device = config.device!;
  const exchange = namespaceExchange(config);
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
    const records = new DeviceRecords(new RecordIndex(config, index, exchange, clock, log), store, lockFd, db);
    records.openPhases.devicesMs = performance.now() - started;
    await records.start(db.sharedMemoryIndex);
    records.startMs = performance.now() - started;
    return new RecordCore(records.records, records);
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

export class DeviceRecords implements RecordStore {
  startMode: StartMode = 'new';
  startMs = 0;
  readonly openPhases = { devicesMs: 0, segmentsMs: 0 }; // ms: opening the devices; attaching or dropping the shared-memory index
  coldStart: ColdStartReport | undefined;
  recovery: RecoveryReport | undefined;
  readonly gate: WriteGate;
  readonly payloadInIndex: boolean;
  readonly onDevice = true;
  readonly touchFlags = 0;
  readonly touchWritesPayload = true;
  readonly truncateReportsLocations = true;

  private readonly config: NamespaceConfig;
  private readonly index: NativePrimaryIndex;
  private readonly setBytes = new Map<number, Buffer>();
  private sweeping = false;
  private readonly storeIndex: StoreIndex;
  /** Cold start: the scan's set indexes mapped to set ids. */
  private readonly restoreSetIds: number[] = [];
  private restoreSetTable = new Uint32Array(0);

  constructor(
    readonly records: RecordIndex,
    private readonly store: DeviceStore,
    private readonly lockFd: number,
    private readonly db: DataDirConfig,
  ) {
    this.config = records.config;
    this.index = records.index;
    this.gate = store.gate;
    this.payloadInIndex = this.config.device!.dataInMemory;
    this.storeIndex = {
      locate: (digest, at, out) => this.locate(digest, at, out),
      relocate: (digest, at, low, high) => this.relocate(digest, at, low, high),
    };
  }

  /** Attaches to the shared-memory index where it describes the devices exactly, else rebuilds it from them. */
  async start(shared: boolean): Promise<void> {
    const { index, log } = this.records;
    const opening = performance.now();
    const status = index.open(shared);
    let why = shared ? 'it has no shared-memory index (a first start, a reboot, or the last run kept none)' : 'sharedMemoryIndex is off';
    if (status === 1) {
      const meta = this.readMeta();
      const refusal = this.attachRefusal(meta);
      if (refusal === undefined) {
        this.records.sets = SetTable.fromJSON(meta!.sets);
        this.records.objects = index.count();
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
      index.close(true);
      index.open(false);
    }
    this.openPhases.segmentsMs = performance.now() - opening;
    if (await this.recover(why)) return;
    if (this.store.startMode !== 'new') log(`namespace ${this.config.name}: cold start from the devices: ${why}`);
    else if (status !== 0) log(`namespace ${this.config.name}: its devices are new; the shared-memory index an earlier run left is dropped`);
    // The batch insert when the addon has it (an addon built before it falls back to one upsert per record).
    const batched = typeof index.insertWinners === 'function';
    this.coldStart = await this.store.coldStart(
      this.storeIndex,
      (record) => this.restore(record),
      batched ? (winners, variable, count, setNames) => this.restoreBatch(winners, variable, count, setNames) : undefined,
    );
    this.startMode = this.store.startMode === 'new' ? 'new' : 'cold';
    if (this.store.startMode !== 'new') {
      const report = this.coldStart;
      log(
        `namespace ${this.config.name}: cold start read ${(report.bytesScanned / 1e6).toFixed(1)} MB in ${report.ms.toFixed(0)} ms ` +
          `(${report.megabytesPerSecond.toFixed(0)} MB/s): ${report.records} records, ${report.corrupt} corrupt, ${report.expired} expired, ` +
          `${report.truncated} truncated, ${report.tombstones} tombstones`,
      );
    }
    this.afterStart();
  }

  /** After a crash or a reboot: the last index checkpoint and the blocks since (docs/storage.md, "Restart after a crash"). */
  private async recover(why: string): Promise<boolean> {
    if (this.store.startMode === 'new' || this.payloadInIndex) return false;
    const records = this.records;
    const sets = {
      adoptSets: (names: string[]) => void (records.sets = SetTable.fromJSON(names)),
      setIdFor: (name: string) => records.sets.idFor(name),
      setIdOf: (name: string) => records.sets.idOf(name),
    };
    const outcome = await this.store.recover(this.storeIndex, { index: this.index, exchange: records.exchange, ...sets });
    records.log(`namespace ${this.config.name}: ${recoveryLogLine(outcome, why)}`);
    if (typeof outcome === 'string') {
      this.index.close(true); // the cold start begins from an empty index
      this.index.open(false);
      records.sets = new SetTable();
      return false;
    }
    records.objects = this.index.count();
    Object.assign(outcome.phases, this.openPhases);
    this.recovery = outcome;
    this.startMode = 'recovered';
    this.afterStart();
    return true;
  }

  private afterStart(): void {
    if (!this.payloadInIndex) {
      this.store.enableCheckpoints({
        writeImage: (fd, offset, pieceDelayUs) => this.index.writeImage(fd, offset, pieceDelayUs),
        imageProgress: () => this.index.imageProgress(),
        setNames: () => this.records.sets.toJSON(),
      });
    }
    const signature = this.store.signature();
    this.index.setSignature(signature.high, signature.low);
    this.index.markClean(false);
  }

  /** Cold start: one recovered record into the index. */
  private restore(record: ColdStartRecord): void {
    const exchange = this.records.exchange;
    record.copyDigest(exchange.u8, EX_DIGEST);
    let setId = this.restoreSetIds[record.setIndex];
    if (setId === undefined) setId = this.restoreSetIds[record.setIndex] = this.records.sets.idFor(record.setName);
    const dataLength = this.payloadInIndex ? record.copyPayload(exchange.buffer, EX_DATA) : 0;
    exchange.writeEntryFields(record.generation, record.voidTime, setId, record.payloadHasKey ? FLAG_HAS_KEY : 0, record.lastUpdateMs, dataLength);
    exchange.setEntryU32(ENTRY_LOCATION_LOW, record.locationLow);
    exchange.setEntryU32(ENTRY_LOCATION_HIGH, record.locationHigh);
    this.index.upsert(this.payloadInIndex ? UPSERT_STORE_DATA : 0);
    this.records.objects++; // the scan hands over each digest once
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
        table[index] = this.restoreSetIds[index] ??= this.records.sets.idFor(setNames[index]!);
      }
      this.restoreSetTable = table.subarray(0, setNames.length);
    }
    this.records.objects += this.index.insertWinners!(winners, variable, count, this.restoreSetTable, this.payloadInIndex);
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
      (meta) => meta.format === META_FORMAT && meta.kind === 'device' && meta.name === this.config.name && meta.dataInMemory === this.payloadInIndex,
    );
  }

  // ------------------------------------------------------------------------------------
  // The index as the storage engine sees it

  private locate(digest: Buffer, at: number, out: Uint32Array): boolean {
    const exchange = this.records.exchange;
    exchange.u8.set(digest.subarray(at, at + 20), EX_DIGEST);
    if (this.index.read(0) < 0) return false;
    out[0] = exchange.entryU32(ENTRY_LOCATION_LOW);
    out[1] = exchange.entryU32(ENTRY_LOCATION_HIGH);
    return true;
  }

  private relocate(digest: Buffer, at: number, low: number, high: number): void {
    const exchange = this.records.exchange;
    exchange.u8.set(digest.subarray(at, at + 20), EX_DIGEST);
    if (this.index.read(0) < 0) return;
    exchange.setEntryU32(ENTRY_LOCATION_LOW, low);
    exchange.setEntryU32(ENTRY_LOCATION_HIGH, high);
    this.index.upsert(this.payloadInIndex ? UPSERT_KEEP_DATA : 0);
  }

  /** Every index entry's device location, for DeviceStore.recount (a full walk of the index). */
  private visitLocations(take: (low: number, high: number) => void): void {
    indexVisits.count++;
    const exchange = this.records.exchange;
    for (const walk = new IndexWalk(this.index, exchange); !walk.done; ) {
      const count = walk.next();
      const data = exchange.buffer;
      for (let i = 0; i < count; i++) {
        const at = EX_DATA + i * SCAN_RECORD_BYTES;
        take(data.readUInt32LE(at + SCAN_LOCATION_LOW), data.readUInt32LE(at + SCAN_LOCATION_HIGH));
      }
    }
  }

  // ------------------------------------------------------------------------------------
  // Payloads on the device

  cachedPayload(low: number, high: number): Buffer | undefined {
    return this.store.readFromMemory(low, high);
  }

  async readPayload(digest: Buffer, location: { low: number; high: number }): Promise<Buffer | undefined> {
    const exchange = this.records.exchange;
    let low = location.low;
    let high = location.high;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.store.read(low, high, digest);
      } catch (error) {
        if ((error as ShoalError).code !== ErrorCode.CORRUPTION || attempt >= READ_ATTEMPTS) throw error;
        exchange.setDigest(digest);
        if (this.index.read(0) < 0) return undefined;
        const nextLow = exchange.entryU32(ENTRY_LOCATION_LOW);
        const nextHigh = exchange.entryU32(ENTRY_LOCATION_HIGH);
        if (nextLow === low && nextHigh === high) throw error;
        low = nextLow;
        high = nextHigh;
      }
    }
  }

  /** Device namespaces do not evict on write (the sweep evicts above the high-water mark). */
  makeRoom(): void {}

  admits(): boolean {
    return true;
  }

  /** Stores DATA[0, length) with this metadata for the digest in the exchange; the index follows the device. */
  write(setId: number, gen: number, voidTime: number, flags: number, lastUpdateMs: number, length: number, durable: boolean): Promise<void> | undefined {
    const exchange = this.records.exchange;
    this.writeSetName(setId);
    exchange.writeEntryFields(gen, voidTime, setId, flags, lastUpdateMs, length);
    const done = this.store.write(exchange, length, (flags & FLAG_HAS_KEY) !== 0 ? RECORD_FLAG_PAYLOAD_KEY : 0, durable);
    this.index.upsert(this.payloadInIndex ? UPSERT_STORE_DATA : 0);
    if (exchange.previousU32(ENTRY_EXISTED) === 1) this.store.release(exchange.previousU32(ENTRY_LOCATION_LOW), exchange.previousU32(ENTRY_LOCATION_HIGH));
    return done;
  }

  /** touch: the payload again, with the next version's metadata (a log-structured device keeps no in-place update). */
  rewrite(current: Loaded, next: NextVersion): Promise<void> | undefined {
    const exchange = this.records.exchange;
    const payload = current.payload!;
    if (payload !== exchange.buffer || current.payloadOffset !== EX_DATA) exchange.u8.set(payload.subarray(current.payloadOffset, current.payloadOffset + current.payloadLength), EX_DATA);
    return this.write(current.setId, next.gen, next.voidTime, current.flags & FLAG_HAS_KEY, next.lastUpdateMs, current.payloadLength, false);
  }

  /** The removal goes to the device as a tombstone, so that no older copy comes back at a cold start. */
  removed(current: Loaded, durable: boolean): Promise<void> | undefined {
    const exchange = this.records.exchange;
    this.writeSetName(current.setId);
    return this.store.remove(
      exchange,
      exchange.previousU32(ENTRY_LOCATION_LOW),
      exchange.previousU32(ENTRY_LOCATION_HIGH),
      exchange.previousU32(ENTRY_GENERATION),
      exchange.previousF64(ENTRY_LAST_UPDATE_MS),
      durable,
    );
  }

  nothingRemoved(durable: boolean): Promise<void> | undefined {
    return durable || this.config.device!.commitToDevice ? this.store.flush() : undefined;
  }

  /** An expired record left the index; its copy on the device hides older copies until defrag shadows or drops it. */
  dropped(): void {
    const exchange = this.records.exchange;
    this.store.release(exchange.previousU32(ENTRY_LOCATION_LOW), exchange.previousU32(ENTRY_LOCATION_HIGH));
  }

  truncated(count: number, locations: Uint32Array | undefined): void {
    this.releaseAll(locations!, count);
  }

  /** The bytes of `count` removed entries whose locations (low, high) are in `locations` are dead. */
  private releaseAll(locations: Uint32Array, count: number): void {
    for (let i = 0; i < count; i++) this.store.release(locations[2 * i]!, locations[2 * i + 1]!);
  }

  /**
   * The set name of a set id into the exchange (digest-addressed keys do not write one). Keeps
   * exchange.lastSetName true, which writeKey relies on to skip rewriting the set.
   */
  private writeSetName(setId: number): void {
    const exchange = this.records.exchange;
    const name = this.records.sets.nameOf(setId);
    if (exchange.lastSetName === name) return;
    let bytes = this.setBytes.get(setId);
    if (bytes === undefined) {
      bytes = setId === 0 ? Buffer.alloc(0) : encodeSetName(name);
      this.setBytes.set(setId, bytes);
    }
    exchange.buffer.writeUInt16LE(bytes.length, EX_SET_LENGTH);
    exchange.u8.set(bytes, EX_SET);
    exchange.lastSetName = name;
  }

  /**
   * batchPut: the decided writes of a batch: the store places them in write blocks, one native
   * call formats the records there and upserts their index entries, the store starts the
   * blocks' writes (and group-commits them when durable); then the accounting.
   */
  writeBatch(batch: PutBatch): Promise<ShoalError | undefined> | undefined {
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
      this.index.writeBatch(batch.buffer, batch.count, blocks, this.payloadInIndex);
    } catch (error) {
      // A TypeError/RangeError refused the batch before any record was formatted; anything
      // else (the index out of memory) came after all of them were.
      formatted = !(error instanceof TypeError || error instanceof RangeError);
      failure = fromNativeError(error, `namespace ${this.config.name}: batchPut`);
    }
    const committed = this.store.finishBatch(batch.buffer, batch.count, batch.durable, formatted);
    this.records.countBatch(batch, failure, (slot, existed) => {
      if (existed) this.store.release(batch.u32At(slot + BATCH_PREVIOUS_LOW), batch.u32At(slot + BATCH_PREVIOUS_HIGH));
    });
    return committed;
  }

  // ------------------------------------------------------------------------------------
  // Background expiry sweep: removes expired entries and frees their device bytes

  sweep(): void {
    const records = this.records;
    if (this.sweeping || records.closed) return;
    this.sweeping = true;
    const nowSeconds = nowSecondsOf(records.clock);
    const walk = new IndexWalk(this.index, records.exchange);
    const slice = (): void => {
      if (records.closed) return;
      const batch = walk.nextCopy();
      for (let at = 0; at < batch.length; at += SCAN_RECORD_BYTES) {
        if (!isExpired(batch.readUInt32LE(at + SCAN_VOID_TIME), nowSeconds)) continue;
        if (this.index.removeEntry(batch.readUInt32LE(at + SCAN_ENTRY_ID)) !== 1) continue;
        records.objects--;
        records.partitions.removed(records.exchange.previousU32(ENTRY_PARTITION_ID));
        records.expired++;
        this.dropped();
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
   * their blocks. An evicted record's newest copy still hides older ones on the device (see
   * docs/storage.md).
   */
  private evictAboveHighWater(nowSeconds: number): void {
    const records = this.records;
    if (records.closed || this.config.evictPolicy === 'none' || records.objects === 0) return;
    const storage = this.store.stats();
    const limit = (storage.deviceTotalBytes * this.config.highWaterPct) / 100;
    if (storage.deviceUsedBytes <= limit) return;
    const average = storage.deviceUsedBytes / records.objects;
    const wanted = Math.min(EVICTION_BATCH_MAX, Math.max(1, Math.ceil((storage.deviceUsedBytes - limit) / average)));
    const locations = new Uint32Array(2 * wanted);
    const removed = this.index.evictSoonestExpiring(-1, wanted, nowSeconds, locations);
    if (removed === 0) return;
    records.bulkRemoved(removed);
    records.evicted += removed;
    this.releaseAll(locations, removed);
  }

  // ------------------------------------------------------------------------------------
  // Truncate markers, stats, close

  /** The marker is durable before the index walk removes anything it cuts. */
  keepCut(set: string | undefined, beforeMs: number): Promise<void> {
    return this.store.truncate(set, beforeMs);
  }

  truncateCuts(): readonly TruncateCut[] {
    return this.store.truncateMarkers();
  }

  stats(): NamespaceStats {
    const { objects, closed } = this.records;
    const storage = this.store.stats();
    const dataBytes = closed || !this.payloadInIndex ? 0 : this.index.stats().dataBytes;
    return {
      objects,
      masterObjects: objects,
      replicaObjects: 0,
      tombstones: storage.tombstones,
      memoryUsedBytes: objects * ENTRY_OVERHEAD_BYTES + dataBytes,
      indexUsedBytes: objects * ENTRY_OVERHEAD_BYTES,
      dataUsedBytes: dataBytes,
      deviceUsedBytes: storage.deviceUsedBytes,
      deviceFreePct: storage.deviceFreePct,
      deviceTotalBytes: storage.deviceTotalBytes,
      evicted: this.records.evicted,
      expired: this.records.expired,
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
    try {
      await this.store.close({ dropIndex });
      if (!dropIndex) {
        const stamp = this.store.openStamp;
        const meta: DeviceMeta = { format: META_FORMAT, kind: 'device', name: this.config.name, sets: this.records.sets.toJSON(), dataInMemory: this.payloadInIndex, stamp: [stamp.high, stamp.low] };
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
}
