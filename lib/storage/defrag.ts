/**
 * Defragmentation of the device store (docs/storage.md, "Defragmentation", "Collecting
 * tombstones"): sealed blocks whose live bytes fell below the watermark are read back in
 * bounded slices, the records the index still points at re-appended (and relocated), the
 * tombstones and shadows that still hide older copies moved, everything synced, and only then
 * are the source blocks' headers zeroed and the blocks freed.
 */
import { ErrorCode, type ShoalError } from '../errors';
import { ENTRY_GENERATION, ENTRY_LAST_UPDATE_MS, ENTRY_VOID_TIME, EX_DATA, EX_DIGEST, EX_ENTRY, EX_SET, EX_SET_LENGTH, Exchange } from '../native/exchange';
import { DEFRAG_BLOCKS_PER_SLICE, DEFRAG_RECORDS_PER_CLOCK_CHECK, DEFRAG_SLEEP_MS, IO_ALIGN_BYTES, MAX_BLOCKS_PER_DEVICE } from './constants';
import { TimeSlice } from './event-loop';
import {
  locationHigh,
  locationLow,
  RECORD_DIGEST_AT,
  RECORD_FLAG_TOMBSTONE,
  RECORD_FLAGS_AT,
  RECORD_GENERATION_AT,
  RECORD_HEADER_BYTES,
  RECORD_LAST_UPDATE_AT,
  RECORD_SET_LENGTH_AT,
  RECORD_VOID_TIME_AT,
  recordBytes,
} from './format';
import type { PostWriteCache } from './post-write-cache';
import { DEFRAGGING, type DeviceState, FREE, SEALED, type StoreState } from './store-state';
import { writeU64, type WritePath } from './write-path';

/** The two lowest sequences of blocks whose contents a cold start would still read, and the block of the lowest. */
interface Lowest {
  first: number;
  firstKey: number;
  second: number;
}

export class Defragmenter {
  private readonly queue = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Slices under way (they hold the blocks they read across awaits: no buffer reuse meanwhile). */
  private slices = 0;
  private readonly scratch = new Exchange(8);
  private readonly out = new Uint32Array(2);
  private readonly parseOut: Int32Array;
  /** The cache, set once both exist (the cache asks busy() before it reuses a buffer). */
  cache: PostWriteCache | undefined;

  constructor(
    private readonly state: StoreState,
    private readonly writes: WritePath,
  ) {
    this.parseOut = new Int32Array(2 * Math.ceil(state.writeBlockBytes / 16) + 1);
  }

  /** Blocks waiting to be defragmented. */
  get pending(): number {
    return this.queue.size;
  }

  /** Whether a slice holds blocks it read (their buffers must not be reused). */
  busy(): boolean {
    return this.slices > 0 || this.running !== undefined;
  }

  /** Queues a block that fell below the watermark and schedules a slice. */
  queueBlock(device: DeviceState, block: number): void {
    this.queue.add(this.state.blockKey(device, block));
    this.schedule();
  }

  /** Queues every sealed block below the watermark (after a start). */
  queueAllBelowWatermark(): void {
    for (const device of this.state.devices) {
      for (let block = 0; block < device.blockCount; block++) {
        if (device.states[block] === SEALED && device.live[block]! < this.state.lwmBytes) this.queue.add(this.state.blockKey(device, block));
      }
    }
  }

  /** Starts a slice DEFRAG_SLEEP_MS from now when there is work and none is running. */
  schedule(): void {
    const state = this.state;
    if (!state.started || state.closed || this.timer !== undefined || this.running !== undefined || this.queue.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.slice()
        .catch((error: unknown) => state.log(`namespace ${state.namespace}: defragmentation stopped: ${(error as Error).message}`))
        .finally(() => {
          this.running = undefined;
          this.schedule();
        });
    }, DEFRAG_SLEEP_MS);
    this.timer.unref();
  }

  /** Stops scheduling and waits for the slice under way (close). */
  async stop(): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running !== undefined) await this.running.catch(() => undefined);
  }

  /** Runs slices until nothing is pending (tests, and close of a nearly full device). */
  async runNow(): Promise<void> {
    while (this.queue.size > 0 && this.state.failed === undefined) {
      const before = this.queue.size;
      await this.slice();
      if (this.queue.size >= before && this.queue.size > 0) {
        // Nothing could be taken (blocks still being written): let their writes finish.
        await Promise.all(this.state.devices.flatMap((device) => [...device.pendingWrites])).catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    }
  }

  /**
   * One bounded slice: up to DEFRAG_BLOCKS_PER_SLICE blocks are read, their live records
   * re-appended, everything synced, then the source headers zeroed and synced, and only then
   * are the blocks free for reuse.
   */
  private async slice(): Promise<void> {
    const room = this.state.gate?.room();
    if (room !== undefined) await room;
    this.slices++;
    try {
      await this.taken();
    } finally {
      this.slices--;
    }
  }

  private async taken(): Promise<void> {
    const state = this.state;
    const taken: [DeviceState, number][] = [];
    for (const key of this.queue) {
      if (taken.length >= DEFRAG_BLOCKS_PER_SLICE) break;
      const device = state.deviceOfKey(key)!;
      const block = key % MAX_BLOCKS_PER_DEVICE;
      if (device.states[block] !== SEALED || device.live[block]! >= state.lwmBytes) {
        this.queue.delete(key);
        continue;
      }
      if (device.sealedInFlight.has(block)) continue;  // its last write has not landed yet
      this.queue.delete(key);
      device.states[block] = DEFRAGGING;
      taken.push([device, block]);
    }
    if (taken.length === 0) return;
    const contents = await Promise.all(
      taken.map(([device, block]) => this.cache!.blockInMemory(device, block) ?? device.device.read(state.blockOffset(block), state.writeBlockBytes)),
    );
    const minimum = this.lowestSequences();
    const done: [DeviceState, number][] = [];
    const slice = new TimeSlice();
    for (const [index, [device, block]] of taken.entries()) {
      try {
        await this.defragBlock(device, block, contents[index]!, minimum, slice);
        done.push([device, block]);
      } catch (error) {
        device.states[block] = SEALED;  // keeps what was not moved; retried when it changes
        if ((error as ShoalError).code !== ErrorCode.OUT_OF_SPACE) throw error;
      }
    }
    if (done.length === 0) return;
    await this.writes.flush();
    await this.freeBlocks(done);
    state.counters.defragBlocks += done.length;
  }

  private lowestSequences(): Lowest {
    let first = Infinity;
    let firstKey = -1;
    let second = Infinity;
    for (const device of this.state.devices) {
      const { states, sequences } = device;
      for (let block = 0; block < device.blockCount; block++) {
        if (states[block] === FREE) continue;
        const sequence = sequences[block]!;
        if (sequence < first) {
          second = first;
          first = sequence;
          firstKey = this.state.blockKey(device, block);
        } else if (sequence < second) second = sequence;
      }
    }
    return { first, firstKey, second };
  }

  /**
   * Moves or drops every valid record of a block being defragmented, DEFRAG_RECORDS_PER_SLICE
   * at a time with an event-loop turn (and, when writers wait, room for the moves) in between.
   * The index is asked afresh for each record, so changes made between slices are respected.
   */
  private async defragBlock(device: DeviceState, block: number, contents: Buffer, minimum: Lowest, slice: TimeSlice): Promise<void> {
    const state = this.state;
    const count = state.native.storageParseBlock(contents, state.writeBlockBytes, state.signatureHigh, state.signatureLow, this.parseOut);
    // The parse output is shared by every block: keep this block's record places.
    const places = this.parseOut.slice(0, Math.max(0, 2 * count));
    const olderElsewhere = minimum.firstKey === state.blockKey(device, block) ? minimum.second : minimum.first;
    for (let from = 0; from < count; from += DEFRAG_RECORDS_PER_CLOCK_CHECK) {
      if (slice.spent()) {
        await slice.next();
        const room = state.gate?.room();
        if (room !== undefined) await room;
      }
      this.defragRecords(device, block, contents, places, from, Math.min(count, from + DEFRAG_RECORDS_PER_CLOCK_CHECK), olderElsewhere);
    }
  }

  private defragRecords(device: DeviceState, block: number, contents: Buffer, places: Int32Array, from: number, to: number, olderElsewhere: number): void {
    const index = this.state.index!;
    const blockSequence = device.sequences[block]!;
    for (let record = from; record < to; record++) {
      const offset = places[record * 2]!;
      const size = Math.ceil(places[record * 2 + 1]! / 16) * 16;
      const low = locationLow(offset, size);
      const high = locationHigh(device.index, block, size);
      const key = contents.toString('latin1', offset + RECORD_DIGEST_AT, offset + RECORD_DIGEST_AT + 20);
      if ((contents.readUInt16LE(offset + RECORD_FLAGS_AT) & RECORD_FLAG_TOMBSTONE) !== 0) {
        this.defragTombstone(device, block, contents, offset, size, low, high, key, olderElsewhere);
        continue;
      }
      if (index.locate(contents, offset + RECORD_DIGEST_AT, this.out)) {
        if (this.out[0] === low && this.out[1] === high) {
          const moved = this.move(device, block, contents, offset, size);
          index.relocate(contents, offset + RECORD_DIGEST_AT, moved[0]!, moved[1]!);
        }
        continue;  // else a newer indexed version hides this copy
      }
      if (this.state.tombstones.has(key)) continue;
      // An unindexed copy nothing hides (expired, evicted, truncated): if an older block may hold
      // an older copy (whose last-update time need not be older), keep the record's place with a
      // tombstone so that copy cannot come back.
      if (olderElsewhere < blockSequence) this.shadow(device, contents, offset, blockSequence, key);
    }
  }

  private defragTombstone(device: DeviceState, block: number, contents: Buffer, offset: number, size: number, low: number, high: number, key: string, olderElsewhere: number): void {
    const tombstone = this.state.tombstones.get(key);
    if (tombstone === undefined || tombstone.low !== low || tombstone.high !== high) return;
    device.live[block] = Math.max(0, device.live[block]! - size);
    this.state.liveTotal -= size;
    if (olderElsewhere > tombstone.origin) {
      this.state.tombstones.delete(key);  // no block older than the deletion remains: nothing to hide
      return;
    }
    const moved = this.moveCounted(device, contents, offset, size);
    // A new object, not the old one changed: a checkpoint may be encoding a copy of the table.
    this.state.tombstones.set(key, { low: moved[0]!, high: moved[1]!, origin: tombstone.origin });
  }

  /** Re-appends a live record; returns its new location. */
  private move(device: DeviceState, block: number, contents: Buffer, offset: number, size: number): Uint32Array {
    device.live[block] = Math.max(0, device.live[block]! - size);
    this.state.liveTotal -= size;
    return this.moveCounted(device, contents, offset, size);
  }

  private moveCounted(device: DeviceState, contents: Buffer, offset: number, size: number): Uint32Array {
    const target = this.writes.place(device, size, true);
    const at = target.fill;
    const written = this.state.native.storageRewriteRecord(contents, offset, target.buffer, at, target.sequence);
    if (written !== size) throw new Error(`defrag: rewrote ${written} bytes for a ${size}-byte record`);
    this.writes.appended(target, size);
    this.state.counters.defragMoved++;
    this.out[0] = locationLow(at, size);
    this.out[1] = locationHigh(device.index, target.block, size);
    return this.out;
  }

  private shadow(device: DeviceState, contents: Buffer, offset: number, origin: number, key: string): void {
    const scratch = this.scratch.buffer;
    const setLength = contents[offset + RECORD_SET_LENGTH_AT]!;
    contents.copy(scratch, EX_DIGEST, offset + RECORD_DIGEST_AT, offset + RECORD_DIGEST_AT + 20);
    scratch.writeUInt16LE(setLength, EX_SET_LENGTH);
    contents.copy(scratch, EX_SET, offset + RECORD_HEADER_BYTES, offset + RECORD_HEADER_BYTES + setLength);
    scratch.writeUInt32LE(contents.readUInt32LE(offset + RECORD_GENERATION_AT), EX_ENTRY + ENTRY_GENERATION);
    scratch.writeUInt32LE(contents.readUInt32LE(offset + RECORD_VOID_TIME_AT), EX_ENTRY + ENTRY_VOID_TIME);
    scratch.writeDoubleLE(Number(contents.readBigUInt64LE(offset + RECORD_LAST_UPDATE_AT)), EX_ENTRY + ENTRY_LAST_UPDATE_MS);
    writeU64(scratch, EX_DATA, origin);
    const size = recordBytes(setLength, 0, 8);
    const target = this.writes.place(device, size, true);
    const at = target.fill;
    this.state.native.storageEncodeRecord(scratch, target.buffer, at, target.sequence, RECORD_FLAG_TOMBSTONE, 8);
    this.writes.appended(target, size);
    this.state.tombstones.set(key, { low: locationLow(at, size), high: locationHigh(device.index, target.block, size), origin });
  }

  /**
   * Zeroes the headers of blocks whose contents are safely elsewhere (synced), so a cold start
   * never reads them again, then returns them to the free lists.
   * @throws ShoalError IO_ERROR (the store latches into its failed state).
   */
  async freeBlocks(blocks: [DeviceState, number][]): Promise<void> {
    if (blocks.length === 0) return;
    const state = this.state;
    const zero = Buffer.alloc(IO_ALIGN_BYTES);
    const touched = new Set<DeviceState>();
    try {
      await Promise.all(blocks.map(([device, block]) => {
        touched.add(device);
        return device.device.write(state.blockOffset(block), zero, 0, zero.length, false);
      }));
      await Promise.all([...touched].map((device) => device.device.sync()));
    } catch (error) {
      throw state.fail(error as ShoalError);
    }
    for (const [device, block] of blocks) {
      state.liveTotal -= device.live[block]!;
      device.live[block] = 0;
      device.sequences[block] = 0;
      device.states[block] = FREE;
      this.cache!.forget(device, block);
      device.freeBlocks.push(block);
    }
  }
}
