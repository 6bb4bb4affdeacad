/**
 * The memory store: payloads in the primary index's own arena (in POSIX shared memory by
 * default, so a clean restart re-attaches instead of refilling), bounded by maxBytes, with LRU
 * or TTL eviction above the high-water mark and a background expiry sweep. The record
 * semantics are the record core's (record-core.ts); this file says only how a memory namespace
 * opens, where its bytes go, when it evicts, and what it keeps across a clean close.
 *
 * Every operation runs to completion on the JS thread, which makes it atomic for its record
 * without a lock: at once, or, while a batchPut of several native calls holds the write gate,
 * once the batch is done (writes keep their call order: lib/storage/write-gate.ts).
 */
import { EVICTION_BATCH_MAX, EXPIRY_SWEEP_SLOTS_PER_STEP, MEMORY_TTL_EVICTION_BATCH_MAX, MEMORY_TTL_EVICTION_FRACTION } from '../constants';
import { ErrorCode, ShoalError, fromNativeError } from '../errors';
import { type Clock, nowSecondsOf, wallClock } from '../clock';
import { addon } from '../native/addon';
import {
  BATCH_PAYLOAD_LENGTH,
  BATCH_PREVIOUS_DATA_LENGTH,
  ENTRY_DATA_LENGTH,
  ENTRY_EXISTED,
  ENTRY_ID,
  ENTRY_LOCATION_HIGH,
  ENTRY_LOCATION_LOW,
  READ_TOUCH_LRU,
  UPSERT_KEEP_DATA,
  UPSERT_STORE_DATA,
} from '../native/exchange';
import { type TruncateCut, addCut } from '../model/truncate-cuts';
import { WriteGate } from '../storage/write-gate';
import type { PutBatch } from './batch-put';
import type { DataDirConfig, NamespaceConfig } from './config';
import { createIndex, dropSegments, lockNamespace, readIndexMeta } from './index-segments';
import type { NamespaceStats, StartMode } from './namespace';
import { RecordCore } from './record-core';
import type { NextVersion } from './record-rules';
import { ENTRY_OVERHEAD_BYTES, type Loaded, RecordIndex, type RecordStore, namespaceExchange } from './record-store';
import { SetTable } from './set-table';

const META_FORMAT = 1;

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

/**
 * Opens (or re-attaches to) a memory namespace's index.
 * @throws ShoalError LOCKED when another Db holds it; IO_ERROR when shared memory fails.
 */
export function openMemoryNamespace(config: NamespaceConfig, db: DataDirConfig, log: (message: string) => void, clock: Clock = wallClock): RecordCore {
  const started = performance.now();
  const exchange = namespaceExchange(config);
  const lockFd = lockNamespace(db.dataDir, config.name, db.fileMode);
  let store: MemoryStore;
  try {
    const index = createIndex(db.dataDir, config.name, db.sharedMemoryIndex, exchange, true, db.fileMode);
    store = new MemoryStore(new RecordIndex(config, index, exchange, clock, log), db, lockFd);
    store.attachOrCreate(db.sharedMemoryIndex);
    index.markClean(false);
  } catch (error) {
    addon().unlockFile(lockFd);
    throw fromNativeError(error, `namespace ${config.name}: cannot open its index`);
  }
  store.startMs = performance.now() - started;
  return new RecordCore(store.records, store);
}

export class MemoryStore implements RecordStore {
  startMode: StartMode = 'new';
  startMs = 0;
  readonly gate = new WriteGate();
  readonly payloadInIndex = true;
  readonly onDevice = false;
  readonly touchFlags: number;
  readonly touchWritesPayload = false;
  readonly truncateReportsLocations = false;

  /** Truncates applied (cluster mode refuses versions they removed; kept across warm restarts). */
  private cuts: TruncateCut[] = [];
  private readonly config: NamespaceConfig;
  private readonly highWaterBytes: number;
  private readonly stopWritesBytes: number;
  /** Payload bytes in the index. */
  private dataBytes = 0;
  private sweeping = false;

  constructor(
    readonly records: RecordIndex,
    private readonly db: DataDirConfig,
    private readonly lockFd: number,
  ) {
    const config = (this.config = records.config);
    this.touchFlags = config.evictPolicy === 'lru' ? READ_TOUCH_LRU : 0;
    this.highWaterBytes = Math.floor((config.maxBytes * config.highWaterPct) / 100);
    this.stopWritesBytes = Math.floor((config.maxBytes * config.stopWritesPct) / 100);
  }

  /** Attaches to the index a clean close left, else starts empty (a memory namespace has nothing to rebuild from). */
  attachOrCreate(shared: boolean): void {
    const { index, log } = this.records;
    const status = index.open(shared);
    if (status === 1) {
      const header = index.header();
      const meta = readIndexMeta<MemoryMeta>(index, (m) => m.format === META_FORMAT && m.kind === 'memory' && m.name === this.config.name);
      if (header.clean && meta !== undefined) {
        this.records.sets = SetTable.fromJSON(meta.sets);
        this.cuts = meta.truncates ?? [];
        this.records.objects = index.count();
        this.dataBytes = meta.dataBytes;
        this.startMode = 'warm';
        return;
      }
      log(
        `namespace ${this.config.name}: shared-memory data ${header.clean ? 'has no readable metadata' : 'was not closed cleanly (crash)'}; ` +
          'starting empty, as a memory namespace has nothing else to rebuild from',
      );
      index.close(true);
      index.open(false);
      this.startMode = 'cold';
      return;
    }
    if (status === -1) {
      log(`namespace ${this.config.name}: shared-memory segments have an incompatible layout; dropping them and starting empty`);
      index.close(true);
      index.open(false);
      this.startMode = 'cold';
      return;
    }
    this.startMode = 'new';
  }

  // ------------------------------------------------------------------------------------
  // Payloads: always in the index

  cachedPayload(): Buffer | undefined {
    return undefined;
  }

  readPayload(): Promise<Buffer | undefined> {
    return Promise.resolve(undefined);
  }

  write(setId: number, gen: number, voidTime: number, flags: number, lastUpdateMs: number, length: number): undefined {
    const exchange = this.records.exchange;
    this.setEntry(gen, voidTime, setId, flags, lastUpdateMs, length);
    this.records.index.upsert(UPSERT_STORE_DATA);
    this.dataBytes += exchange.previousU32(ENTRY_EXISTED) === 1 ? length - exchange.previousU32(ENTRY_DATA_LENGTH) : length;
    return undefined;
  }

  rewrite(current: Loaded, next: NextVersion): undefined {
    this.setEntry(next.gen, next.voidTime, current.setId, current.flags, next.lastUpdateMs, 0);
    this.records.index.upsert(UPSERT_KEEP_DATA);
    return undefined;
  }

  /** The entry an upsert stores for the digest in the exchange (a memory record has no device location). */
  private setEntry(gen: number, voidTime: number, setId: number, flags: number, lastUpdateMs: number, dataLength: number): void {
    const exchange = this.records.exchange;
    exchange.writeEntryFields(gen, voidTime, setId, flags, lastUpdateMs, dataLength);
    exchange.setEntryU32(ENTRY_LOCATION_LOW, 0);
    exchange.setEntryU32(ENTRY_LOCATION_HIGH, 0);
  }

  removed(): undefined {
    this.dropped();
    return undefined;
  }

  nothingRemoved(): undefined {
    return undefined;
  }

  dropped(): void {
    this.dataBytes -= this.records.exchange.previousU32(ENTRY_DATA_LENGTH);
  }

  /** `count` entries a bulk removal (truncate, eviction, expiry sweep) took: their bytes are in the exchange's entry. */
  truncated(count: number): void {
    if (count > 0) this.dataBytes -= this.records.exchange.entryU32(ENTRY_DATA_LENGTH);
  }

  private bulkRemoved(count: number): void {
    this.truncated(count);
    this.records.bulkRemoved(count);
  }

  /** batchPut: the decided writes of a batch into the index (payloads included), then the accounting. */
  writeBatch(batch: PutBatch): undefined {
    let failure: ShoalError | undefined;
    try {
      this.records.index.writeBatch(batch.buffer, batch.count, [], true);
    } catch (error) {
      failure = fromNativeError(error, `namespace ${this.config.name}: batchPut`);
    }
    this.records.countBatch(batch, failure, (slot, existed) => {
      this.dataBytes += batch.u32At(slot + BATCH_PAYLOAD_LENGTH) - (existed ? batch.u32At(slot + BATCH_PREVIOUS_DATA_LENGTH) : 0);
    });
    return undefined;
  }

  // ------------------------------------------------------------------------------------
  // Capacity: eviction above the high-water mark, OUT_OF_SPACE above stop-writes

  private memoryUsedBytes(): number {
    return this.records.objects * ENTRY_OVERHEAD_BYTES + this.dataBytes;
  }

  admits(growthBytes: number): boolean {
    return this.memoryUsedBytes() + growthBytes <= this.highWaterBytes;
  }

  makeRoom(growthBytes: number): void {
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
    const records = this.records;
    const target = this.memoryUsedBytes() - bytes;
    for (let rounds = 0; rounds < 4 && this.memoryUsedBytes() > target && records.objects > 0; rounds++) {
      const average = Math.max(1, this.memoryUsedBytes() / records.objects);
      const needed = Math.max(1, Math.ceil((this.memoryUsedBytes() - target) / average));
      const removed =
        this.config.evictPolicy === 'lru'
          ? records.index.evictLru(0, Math.min(EVICTION_BATCH_MAX, needed))
          : records.index.evictSoonestExpiring(0, ttlEvictionCount(needed, records.objects), nowSecondsOf(records.clock));
      if (removed === 0) return;
      this.bulkRemoved(removed);
      records.evicted += removed;
    }
  }

  /** The timer's work: a full expiry sweep in bounded slices, then eviction to the high-water mark. */
  sweep(): void {
    const records = this.records;
    if (this.sweeping || records.closed) return;
    this.sweeping = true;
    const nowSeconds = nowSecondsOf(records.clock);
    let cursor = 1;
    const slice = (): void => {
      if (records.closed) return;
      const removed = records.index.sweepExpired(nowSeconds, cursor, EXPIRY_SWEEP_SLOTS_PER_STEP);
      this.bulkRemoved(removed);
      records.expired += removed;
      cursor = records.exchange.entryU32(ENTRY_ID);
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
  // Truncate cuts, stats, close

  keepCut(set: string | undefined, beforeMs: number): undefined {
    this.cuts = addCut(this.cuts, set, beforeMs);
    return undefined;
  }

  truncateCuts(): readonly TruncateCut[] {
    return this.cuts;
  }

  stats(): NamespaceStats {
    const { objects, closed } = this.records;
    const used = closed ? 0 : this.memoryUsedBytes();
    return {
      objects,
      masterObjects: objects,
      replicaObjects: 0,
      tombstones: 0,
      memoryUsedBytes: used,
      indexUsedBytes: objects * ENTRY_OVERHEAD_BYTES,
      dataUsedBytes: this.dataBytes,
      memoryFreePct: Math.max(0, Math.round(100 - (used * 100) / this.config.maxBytes)),
      deviceUsedBytes: 0,
      deviceFreePct: 100,
      evicted: this.records.evicted,
      expired: this.records.expired,
      defragPending: 0,
      startMode: this.startMode,
      startMs: Math.round(this.startMs * 1000) / 1000,
      directIo: 'n/a',
    };
  }

  async close(dropIndex: boolean): Promise<void> {
    const { index } = this.records;
    try {
      if (!dropIndex) {
        const meta: MemoryMeta = {
          format: META_FORMAT,
          kind: 'memory',
          name: this.config.name,
          sets: this.records.sets.toJSON(),
          dataBytes: this.dataBytes,
          objects: this.records.objects,
          truncates: this.cuts,
        };
        index.writeMeta(Buffer.from(JSON.stringify(meta)));
        index.markClean(true);
      }
      index.close(dropIndex);
      // Without shared memory: whatever earlier runs left goes too (open removed it already).
      if (dropIndex && !this.db.sharedMemoryIndex) dropSegments(this.db.dataDir, this.config.name);
    } finally {
      addon().unlockFile(this.lockFd);
    }
  }
}

/** Records one walk of 'ttl' eviction removes: what is needed, and at least a share of all (MEMORY_TTL_EVICTION_FRACTION). */
function ttlEvictionCount(needed: number, objects: number): number {
  return Math.min(MEMORY_TTL_EVICTION_BATCH_MAX, Math.max(needed, Math.ceil(objects * MEMORY_TTL_EVICTION_FRACTION)));
}
