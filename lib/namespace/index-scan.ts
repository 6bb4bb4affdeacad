/**
 * Walks over a namespace's primary index in bounded batches: the scan walk (IndexWalk), the
 * truncate walk (truncateIndex) and the per-set count (countBySet), each leaving the event loop
 * free between batches.
 */
import { SCAN_BATCH_RECORDS, SET_COUNT_MAX, SET_COUNT_SLOTS_PER_STEP, TRUNCATE_SLOTS_PER_STEP } from '../constants';
import type { NativePrimaryIndex } from '../native/addon';
import { ENTRY_ID, EX_DATA, EX_PARTITION_FILTER, Exchange, SCAN_RECORD_BYTES } from '../native/exchange';

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

/**
 * How many entries the index holds per set id (element 0: records in no set), a bounded slice
 * of slots per native call with the event loop free between them. Entries added or removed
 * during the walk may or may not be counted. Resolves early, with what was counted, once
 * `closed()` says so.
 */
export async function countBySet(index: NativePrimaryIndex, closed: () => boolean): Promise<Float64Array> {
  const counts = new Float64Array(SET_COUNT_MAX + 1);
  let cursor = 1;
  while (cursor !== 0 && !closed()) {
    cursor = index.countBySet(counts, cursor, SET_COUNT_SLOTS_PER_STEP);
    if (cursor !== 0) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return counts;
}
