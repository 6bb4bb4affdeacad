/**
 * What memory and device namespaces do with the native primary index in the same way: take
 * the namespace's lock file, read back the metadata a clean close left, walk the index in
 * bounded batches, truncate it in bounded steps, count records per partition, and turn the
 * record the last lookup left in the exchange into a ShoalRecord.
 */
import { PARTITION_COUNT, SCAN_BATCH_RECORDS, TRUNCATE_SLOTS_PER_STEP } from '../constants';
import { ErrorCode, ShoalError, fromNativeError } from '../errors';
import { lockFilePath, segmentBaseName } from '../index/segment-name';
import { Bins, decodePayloadBins, selectBins } from '../model/bins';
import type { Key } from '../model/key';
import { addon, NativePrimaryIndex } from '../native/addon';
import { ENTRY_GENERATION, ENTRY_ID, EX_DATA, EX_DIGEST, EX_PARTITION_FILTER, Exchange, SCAN_PARTITION_ID, SCAN_RECORD_BYTES } from '../native/exchange';
import type { ReadOptions, ShoalRecord } from './namespace';
import { ttlOf } from './semantics';

/**
 * Takes the namespace's lock file (one Db owns a namespace's data at a time; made with exactly
 * `fileMode` when it is new) and returns its descriptor, for addon().unlockFile at close.
 * @throws ShoalError LOCKED when another Db, in this process or another, holds it.
 */
export function lockNamespace(dataDir: string, namespace: string, fileMode: number): number {
  try {
    return addon().lockFile(lockFilePath(dataDir, namespace), fileMode);
  } catch (error) {
    const wrapped = fromNativeError(error, `namespace ${namespace}`);
    if (wrapped.code !== ErrorCode.LOCKED) throw wrapped;
    throw new ShoalError(ErrorCode.LOCKED, `namespace ${namespace} is already open in another Db (this process or another); close it first`, { cause: error });
  }
}

/**
 * The namespace's primary index, not yet opened: in shared memory (segments named after the
 * data directory and the namespace, made with exactly `fileMode`) or in private memory.
 * Without shared memory, the segments an earlier run left are removed first: this run changes
 * the data they describe, so a later shared run must never attach them (docs/index.md, "Which
 * segments may be attached").
 * @throws ShoalError IO_ERROR when segments cannot be removed or memory not had.
 */
export function createIndex(dataDir: string, namespace: string, shared: boolean, exchange: Exchange, withData: boolean, fileMode: number): NativePrimaryIndex {
  try {
    if (!shared) dropSegments(dataDir, namespace);
    return new (addon().PrimaryIndex)({ name: segmentBaseName(dataDir, namespace), shared, exchange: exchange.buffer, withData, fileMode });
  } catch (error) {
    throw fromNativeError(error, `namespace ${namespace}: cannot create its index`);
  }
}

/** Removes every shared-memory segment of the namespace's index (none there is fine). @throws Error from shm_unlink. */
export function dropSegments(dataDir: string, namespace: string): void {
  addon().unlinkIndexSegments(segmentBaseName(dataDir, namespace));
}

/** The metadata a clean close wrote beside the index, when it parses and `accepts` it; else undefined. */
export function readIndexMeta<T>(index: NativePrimaryIndex, accepts: (meta: T) => boolean): T | undefined {
  try {
    const meta = JSON.parse(index.readMeta().toString('utf8')) as T;
    return accepts(meta) ? meta : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A walk over the index's entries in batches of up to SCAN_BATCH_RECORDS, optionally limited to
 * a set (setId ≥ 0) and to partitions (a filter from partition-filter.ts). Each batch is the
 * native scan layout (SCAN_RECORD_BYTES a record, SCAN_* offsets). Entries added or removed
 * while the walk is under way may or may not be seen; no entry is seen twice.
 */
export class IndexWalk {
  private cursor = 1;

  constructor(
    private readonly index: NativePrimaryIndex,
    private readonly exchange: Exchange,
    private readonly setId = -1,
    private readonly filter: Uint8Array | undefined = undefined,
  ) {}

  get done(): boolean {
    return this.cursor === 0;
  }

  /**
   * The next batch's record count; its records are in the exchange at EX_DATA until the next
   * index call, so a caller that calls the index while reading them takes `nextCopy` instead.
   */
  next(): number {
    if (this.filter !== undefined) this.exchange.u8.set(this.filter, EX_PARTITION_FILTER);
    const count = this.index.scan(this.cursor, SCAN_BATCH_RECORDS, this.setId, this.filter !== undefined);
    this.cursor = this.exchange.entryU32(ENTRY_ID);
    return count;
  }

  /** The next batch, copied out of the exchange (count = length / SCAN_RECORD_BYTES). */
  nextCopy(): Buffer {
    const count = this.next();
    return Buffer.from(this.exchange.buffer.subarray(EX_DATA, EX_DATA + count * SCAN_RECORD_BYTES));
  }
}

/**
 * Live records per partition (cluster mode asks, once per view change and in stats): kept as
 * records come and go, and recounted from the index (not the data) when stale: after a start,
 * and after a bulk removal (truncate, eviction, an expiry sweep) that does not say which
 * partitions it emptied.
 */
export class PartitionCounts {
  private readonly counts = new Uint32Array(PARTITION_COUNT);
  private stale = true;

  constructor(
    private readonly index: NativePrimaryIndex,
    private readonly exchange: Exchange,
  ) {}

  added(partitionId: number): void {
    this.counts[partitionId]!++;
  }

  removed(partitionId: number): void {
    this.counts[partitionId]!--;
  }

  /** A record of the digest in the exchange was removed. */
  removedInExchange(): void {
    const u8 = this.exchange.u8;
    this.counts[(u8[EX_DIGEST]! | (u8[EX_DIGEST + 1]! << 8)) & (PARTITION_COUNT - 1)]!--;
  }

  /** Records went without saying from which partitions: recount at the next read. */
  invalidate(): void {
    this.stale = true;
  }

  /** The counts (length 4096), recounted first when stale. */
  read(): Uint32Array {
    if (this.stale) {
      this.counts.fill(0);
      for (const walk = new IndexWalk(this.index, this.exchange); !walk.done; ) {
        const count = walk.next();
        for (let i = 0; i < count; i++) this.counts[this.exchange.buffer.readUInt32LE(EX_DATA + i * SCAN_RECORD_BYTES + SCAN_PARTITION_ID)]!++;
      }
      this.stale = false;
    }
    return this.counts;
  }
}

/**
 * Removes the entries of a set (setId ≥ 0) or of every set (-1) last updated before `beforeMs`,
 * a bounded slice of the index at a time with the event loop free between slices. `removed`
 * hears of each slice's count while its figures are still in the exchange; given `locations`
 * (2 × TRUNCATE_SLOTS_PER_STEP elements), the slice's removed entries' locations are there too
 * (low, high of each), so a device namespace releases exactly their bytes.
 * Returns how many entries were removed.
 */
export async function truncateIndex(
  index: NativePrimaryIndex,
  exchange: Exchange,
  setId: number,
  beforeMs: number,
  closed: () => boolean,
  removed: (count: number) => void,
  locations?: Uint32Array,
): Promise<number> {
  let cursor = 1;
  let total = 0;
  while (cursor !== 0 && !closed()) {
    const count = index.truncate(setId, beforeMs, cursor, TRUNCATE_SLOTS_PER_STEP, locations);
    total += count;
    removed(count);
    cursor = exchange.entryU32(ENTRY_ID);
    if (cursor !== 0) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return total;
}

/** The record a lookup with READ_COPY_DATA just left in the exchange (payload of `length` bytes). */
export function recordFromExchange(exchange: Exchange, key: Key, length: number, voidTime: number, nowSeconds: number, options: ReadOptions | undefined): ShoalRecord {
  return recordOf(key, decodePayloadBins(exchange.buffer, EX_DATA, length), exchange.entryU32(ENTRY_GENERATION), voidTime, nowSeconds, options);
}

/** A ShoalRecord from decoded bins, narrowed to `options.bins` when asked. */
export function recordOf(key: Key, bins: Bins, gen: number, voidTime: number, nowSeconds: number, options: ReadOptions | undefined): ShoalRecord {
  return { key, bins: options?.bins === undefined ? bins : selectBins(bins, options.bins), gen, ttl: ttlOf(voidTime, nowSeconds) };
}
