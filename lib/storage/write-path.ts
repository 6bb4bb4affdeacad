/**
 * The write path of the device store (docs/storage.md, "Write path", "Group commit"): records
 * appended to the open write block of their device, blocks sealed and written with aligned
 * writes (a partial one after flushMaxMs), the backpressure test of the write gate, and the
 * group commit that resolves durable writes once one fdatasync covers them.
 */
import { ErrorCode, ShoalError } from '../errors';
import {
  BATCH_ACTION,
  BATCH_BLOCK,
  BATCH_BLOCK_OFFSET,
  BATCH_DIGEST,
  BATCH_LOCATION_HIGH,
  BATCH_LOCATION_LOW,
  BATCH_PAYLOAD_LENGTH,
  BATCH_SET_LENGTH,
  BATCH_SKIP,
  BATCH_SLOT_BYTES,
  BATCH_WRITE_INDEX,
  BATCH_WRITE_RECORD,
  ENTRY_GENERATION,
  ENTRY_LAST_UPDATE_MS,
  ENTRY_LOCATION_HIGH,
  ENTRY_LOCATION_LOW,
  ENTRY_VOID_TIME,
  EX_DATA,
  EX_DIGEST,
  EX_ENTRY,
  EX_KEY_LENGTH,
  EX_SET_LENGTH,
  type Exchange,
} from '../native/exchange';
import { IO_ALIGN_BYTES, WRITE_BLOCKS_IN_FLIGHT_MAX } from './constants';
import {
  alignDown,
  BLOCK_HEADER_BYTES,
  locationHigh,
  locationLow,
  RECORD_FLAG_HAS_KEY,
  RECORD_FLAG_PAYLOAD_KEY,
  RECORD_FLAG_TOMBSTONE,
  RECORD_HEADER_BYTES,
  RECORD_TRAILER_BYTES,
  recordBytes,
} from './format';
import type { NativeRecordEncoder } from './native-device';
import type { PostWriteCache } from './post-write-cache';
import { type DeviceState, OPEN, SEALED, type StoreState, WriteBlock } from './store-state';

export class WritePath {
  /** The native encoder bound to the exchange last written from, and the block it writes to. */
  private encoder: NativeRecordEncoder | undefined;
  private encoderExchange: Exchange | undefined;
  private encoderBlock: WriteBlock | undefined;
  /** Between placeBatch and finishBatch: blocks sealed meanwhile, whose writes wait for the batch's records. */
  private batchSealed: WriteBlock[] | undefined;
  /** The devices the batch placed records on. */
  private readonly batchDevices = new Set<DeviceState>();

  constructor(
    private readonly state: StoreState,
    private readonly cache: PostWriteCache,
    private readonly flushMaxMs: number,
    private readonly commitToDevice: boolean,
  ) {}

  /** See DeviceStore.write. */
  write(exchange: Exchange, payloadLength: number, flags: number, durable: boolean): Promise<void> | undefined {
    const state = this.state;
    if (state.failed !== undefined || state.closed || !state.started) state.checkWritable();
    const buffer = exchange.buffer;
    const u8 = exchange.u8;
    const keyBytes = (flags & RECORD_FLAG_HAS_KEY) !== 0 ? exchange.u32[EX_KEY_LENGTH >>> 2]! : 0;
    const size = (RECORD_HEADER_BYTES + (u8[EX_SET_LENGTH]! | (u8[EX_SET_LENGTH + 1]! << 8)) + keyBytes + payloadLength + RECORD_TRAILER_BYTES + 15) & ~15;
    const device = state.pickDevice(buffer);
    const block = this.place(device, size, false);
    const at = block.fill;
    if (this.encoderExchange !== exchange) {
      this.encoder = new state.native.RecordEncoder(buffer);
      this.encoderExchange = exchange;
      this.encoderBlock = undefined;
    }
    if (this.encoderBlock !== block) {
      this.encoder!.setBlock(block.buffer, block.sequence);
      this.encoderBlock = block;
    }
    this.encoder!.encode(at, flags & (RECORD_FLAG_HAS_KEY | RECORD_FLAG_PAYLOAD_KEY), payloadLength);
    this.appended(block, size);
    exchange.u32[(EX_ENTRY + ENTRY_LOCATION_LOW) >>> 2] = locationLow(at, size);
    exchange.u32[(EX_ENTRY + ENTRY_LOCATION_HIGH) >>> 2] = locationHigh(device.index, block.block, size);
    if (state.tombstones.size > 0) state.dropTombstone(buffer.toString('latin1', EX_DIGEST, EX_DIGEST + 20));
    return durable || this.commitToDevice ? this.commit(device) : undefined;
  }

  /** See DeviceStore.placeBatch. */
  placeBatch(batch: Buffer, count: number, failures: unknown[]): Buffer[] {
    this.state.checkWritable();
    // A bulk load of awaited batches never lets the event loop turn: take the writes that have
    // landed now, so their blocks leave sealedInFlight (and their buffers can be reused) after
    // this call instead of after the whole load (every block a fresh 1 MiB buffer meanwhile).
    for (const device of this.state.devices) device.device.poll();
    const u32 = new Uint32Array(batch.buffer, batch.byteOffset, count * (BATCH_SLOT_BYTES >>> 2));
    const blocks: Buffer[] = [];
    const numbers = new Map<WriteBlock, number>();
    // Consecutive slots usually land in the same block: skip the map (and the set) for them.
    let lastBlock: WriteBlock | undefined;
    let lastNumber = 0;
    this.batchSealed = [];
    this.batchDevices.clear();
    for (let i = 0; i < count; i++) {
      const slot = i * BATCH_SLOT_BYTES;
      if (u32[(slot + BATCH_ACTION) >>> 2] !== BATCH_WRITE_INDEX) continue;
      const size = (RECORD_HEADER_BYTES + batch[slot + BATCH_SET_LENGTH]! + u32[(slot + BATCH_PAYLOAD_LENGTH) >>> 2]! + RECORD_TRAILER_BYTES + 15) & ~15;
      const device = this.state.pickDevice(batch, slot + BATCH_DIGEST);
      let block: WriteBlock;
      try {
        block = this.place(device, size, false);
      } catch (error) {
        failures[i] = error;
        u32[(slot + BATCH_ACTION) >>> 2] = BATCH_SKIP;
        continue;
      }
      if (block !== lastBlock) {
        let number = numbers.get(block);
        if (number === undefined) {
          number = blocks.push(block.buffer) - 1;
          numbers.set(block, number);
        }
        lastBlock = block;
        lastNumber = number;
        this.batchDevices.add(device);
      }
      const number = lastNumber;
      const at = block.fill;
      u32[(slot + BATCH_ACTION) >>> 2] = BATCH_WRITE_RECORD;
      u32[(slot + BATCH_BLOCK) >>> 2] = number;
      u32[(slot + BATCH_BLOCK_OFFSET) >>> 2] = at;
      u32[(slot + BATCH_LOCATION_LOW) >>> 2] = locationLow(at, size);
      u32[(slot + BATCH_LOCATION_HIGH) >>> 2] = locationHigh(device.index, block.block, size);
      this.appended(block, size);
    }
    return blocks;
  }

  /** See DeviceStore.finishBatch. */
  finishBatch(batch: Buffer, count: number, durable: boolean, formatted: boolean): Promise<ShoalError | undefined> | undefined {
    const sealed = this.batchSealed ?? [];
    this.batchSealed = undefined;
    if (!formatted) this.state.fail(new ShoalError(ErrorCode.IO_ERROR, 'a batch of writes was placed but not formatted into its write blocks'));
    for (const block of sealed) this.writeSealed(block);
    if (formatted && this.state.tombstones.size > 0) {
      for (let i = 0; i < count; i++) {
        const slot = i * BATCH_SLOT_BYTES;
        if (batch.readUInt32LE(slot + BATCH_ACTION) === BATCH_WRITE_RECORD) this.state.dropTombstone(batch.toString('latin1', slot + BATCH_DIGEST, slot + BATCH_DIGEST + 20));
      }
    }
    if (!(durable || this.commitToDevice) || this.batchDevices.size === 0) return undefined;
    const commits = [...this.batchDevices].map((device) => this.commit(device));
    return Promise.all(commits).then(
      () => undefined,
      (error: ShoalError) => error,
    );
  }

  /** See DeviceStore.remove. */
  remove(exchange: Exchange, previousLow: number, previousHigh: number, previousGeneration: number, previousLastUpdateMs: number, durable: boolean): Promise<void> | undefined {
    const state = this.state;
    state.checkWritable();
    const buffer = exchange.buffer;
    const size = recordBytes(buffer.readUInt16LE(EX_SET_LENGTH), 0, 8);
    const device = state.pickDevice(buffer);
    const block = this.place(device, size, false);
    const at = block.fill;
    exchange.u32[(EX_ENTRY + ENTRY_GENERATION) >>> 2] = (previousGeneration + 1) >>> 0;
    exchange.u32[(EX_ENTRY + ENTRY_VOID_TIME) >>> 2] = 0;
    exchange.f64[(EX_ENTRY + ENTRY_LAST_UPDATE_MS) >>> 3] = Math.max(state.now(), previousLastUpdateMs);
    buffer.writeDoubleLE(0, EX_DATA);
    writeU64(buffer, EX_DATA, block.sequence);
    state.native.storageEncodeRecord(buffer, block.buffer, at, block.sequence, RECORD_FLAG_TOMBSTONE, 8);
    this.appended(block, size);
    const low = locationLow(at, size);
    const high = locationHigh(device.index, block.block, size);
    exchange.u32[(EX_ENTRY + ENTRY_LOCATION_LOW) >>> 2] = low;
    exchange.u32[(EX_ENTRY + ENTRY_LOCATION_HIGH) >>> 2] = high;
    const key = buffer.toString('latin1', EX_DIGEST, EX_DIGEST + 20);
    state.dropTombstone(key);
    state.tombstones.set(key, { low, high, origin: block.sequence });
    state.release(previousLow, previousHigh);
    return durable || this.commitToDevice ? this.commit(device) : undefined;
  }

  /**
   * A write block with room for size bytes; opens a new one (sealing the current) if needed.
   * Defragmentation (forDefrag) may take the reserved blocks.
   * @throws ShoalError RECORD_TOO_BIG, OUT_OF_SPACE.
   */
  place(device: DeviceState, size: number, forDefrag: boolean): WriteBlock {
    const current = device.current;
    if (current !== undefined && current.fill + size <= this.state.writeBlockBytes) return current;
    if (size > this.state.writeBlockBytes - BLOCK_HEADER_BYTES) {
      throw new ShoalError(ErrorCode.RECORD_TOO_BIG, `namespace ${this.state.namespace}: a record of ${size} bytes does not fit a ${this.state.writeBlockBytes}-byte write block`);
    }
    const floor = forDefrag ? 0 : this.state.reserveBlocks;
    if (device.freeBlocks.length <= floor) {
      this.state.scheduleDefrag();
      throw new ShoalError(ErrorCode.OUT_OF_SPACE, `namespace ${this.state.namespace}: device ${device.device.path} is full (${device.freeBlocks.length} free write blocks kept for defragmentation); remove records, shorten TTLs or add devices`);
    }
    if (current !== undefined) this.seal(current);
    return this.openBlock(device);
  }

  private openBlock(device: DeviceState): WriteBlock {
    const state = this.state;
    const block = device.freeBlocks.pop()!;
    const sequence = state.nextSequence++;
    const buffer = this.cache.takeSpare() ?? Buffer.allocUnsafeSlow(state.writeBlockBytes);
    state.native.storageWriteBlockHeader(buffer, sequence, state.signatureHigh, state.signatureLow, device.index, block);
    const writeBlock = new WriteBlock(device, block, sequence, buffer);
    device.states[block] = OPEN;
    device.sequences[block] = sequence;
    device.live[block] = 0;
    device.current = writeBlock;
    return writeBlock;
  }

  /** size bytes were appended to the block: count them live and arm its flush timer. */
  appended(block: WriteBlock, size: number): void {
    block.fill += size;
    block.device.live[block.block]! += size;
    this.state.liveTotal += size;
    if (block.flushTimer === undefined && !block.sealed) {
      block.flushTimer = setTimeout(() => {
        block.flushTimer = undefined;
        this.writeUpTo(block, block.fill).catch(() => undefined);
      }, this.flushMaxMs);
      block.flushTimer.unref();
    }
  }

  private seal(block: WriteBlock): void {
    const device = block.device;
    block.sealed = true;
    if (block.flushTimer !== undefined) clearTimeout(block.flushTimer);
    block.flushTimer = undefined;
    device.current = undefined;
    device.states[block.block] = SEALED;
    device.sealedInFlight.set(block.block, block);
    this.cache.put(device, block.block, block.buffer);
    // A batch is still formatting records into this block: its write starts once they are in.
    if (this.batchSealed !== undefined) this.batchSealed.push(block);
    else this.writeSealed(block);
    if (device.live[block.block]! < this.state.lwmBytes) this.state.queueDefrag(device, block.block);
  }

  /** Starts the write of a sealed block (its last; it leaves the post-write cache's care once it lands). */
  private writeSealed(block: WriteBlock): void {
    const device = block.device;
    const written = this.writeUpTo(block, block.fill);
    device.pendingWrites.add(written);
    const forget = (): void => {
      device.pendingWrites.delete(written);
    };
    written.then(forget, forget);
    this.state.counters.flushed++;
    // Nothing left to write (a timed flush wrote it all, or the store has failed): it has landed.
    if (!block.inflight) this.landed(block);
  }

  /**
   * A sealed block whose last write completed (or never will: the store failed): reads of it
   * go to the post-write cache or the device from now on, its buffer may be reused once it
   * leaves the cache, and a writer waiting for room may go.
   */
  private landed(block: WriteBlock): void {
    const device = block.device;
    if (device.sealedInFlight.get(block.block) !== block) return;
    device.sealedInFlight.delete(block.block);
    if (this.cache.limit <= 0) this.cache.spare(block.buffer);
    this.state.gate?.wake();
  }

  /** Resolves once block bytes [0, end) are written (one write in flight per block, in order). */
  private writeUpTo(block: WriteBlock, end: number): Promise<void> {
    if (block.written >= end) return Promise.resolve();
    if (this.state.failed !== undefined) return Promise.reject(this.state.failed);
    return new Promise<void>((resolve, reject) => {
      block.waiters.push({ end, resolve, reject });
      this.pump(block);
    });
  }

  private pump(block: WriteBlock): void {
    if (block.inflight || block.written >= block.fill) return;
    // Rewrite from the page holding the previous end: it is re-written with the same bytes
    // plus new ones, so what was durable stays durable even if this write is torn.
    const start = alignDown(block.written, IO_ALIGN_BYTES);
    const end = block.fill;
    block.inflight = true;
    // A block's bytes below its fill never change, and its buffer is not reused before its last
    // write lands (sealedInFlight, spareBuffer): the I/O thread may copy them. The completion
    // runs as soon as it is delivered, from the event loop or from a poll() (writeRoom), so a
    // busy JS thread still learns that the block landed.
    block.device.device.writeThen(this.state.blockOffset(block.block) + start, block.buffer, start, end, false, true, (error) => this.wrote(block, end, error));
  }

  /** A write of block bytes up to `end` completed (error undefined) or failed. Runs inside a completion delivery: never polls. */
  private wrote(block: WriteBlock, end: number, error: ShoalError | undefined): void {
    block.inflight = false;
    if (error === undefined) {
      block.written = end;
      const waiting = block.waiters;
      block.waiters = [];
      for (const waiter of waiting) {
        if (waiter.end <= end) waiter.resolve();
        else block.waiters.push(waiter);
      }
      if (block.written < block.fill && (block.waiters.length > 0 || block.sealed)) this.pump(block);
    } else {
      const failure = this.state.fail(error);
      for (const waiter of block.waiters.splice(0)) waiter.reject(failure);
    }
    if (block.sealed && !block.inflight) this.landed(block);
  }

  /** Whether a device has the most sealed blocks in flight (with poll: after collecting the writes that landed). */
  blocked(poll: boolean): boolean {
    if (this.state.failed !== undefined || this.state.closed) return false;  // writers go on to their error
    for (const device of this.state.devices) {
      if (device.sealedInFlight.size < WRITE_BLOCKS_IN_FLIGHT_MAX) continue;
      if (poll) device.device.poll();
      if (device.sealedInFlight.size >= WRITE_BLOCKS_IN_FLIGHT_MAX) return true;
    }
    return false;
  }

  /** Flushes every open block and syncs every device (group commit). @throws ShoalError IO_ERROR. */
  async flush(): Promise<void> {
    await Promise.all(this.state.devices.map((device) => this.commit(device)));
  }

  /** Group commit: resolves once everything appended to the device so far is synced. */
  commit(device: DeviceState): Promise<void> {
    if (this.state.failed !== undefined) return Promise.reject(this.state.failed);
    return new Promise<void>((resolve, reject) => {
      device.durableWaiters.push({ resolve, reject });
      if (!device.commitScheduled && !device.committing) {
        device.commitScheduled = true;
        setImmediate(() => this.runCommit(device));
      }
    });
  }

  private runCommit(device: DeviceState): void {
    device.commitScheduled = false;
    if (device.committing || device.durableWaiters.length === 0) return;
    device.committing = true;
    const batch = device.durableWaiters;
    device.durableWaiters = [];
    const waits = [...device.pendingWrites];
    const current = device.current;
    if (current !== undefined && current.written < current.fill) waits.push(this.writeUpTo(current, current.fill));
    this.state.counters.commits++;
    Promise.all(waits)
      .then(() => device.device.sync())
      .then(
        () => {
          for (const waiter of batch) waiter.resolve();
        },
        (error: ShoalError) => {
          const failure = this.state.fail(error);
          for (const waiter of batch) waiter.reject(failure);
        },
      )
      .finally(() => {
        device.committing = false;
        if (device.durableWaiters.length > 0) this.runCommit(device);
      });
  }
}

/** Writes a non-negative integer below 2^53 as a little-endian u64. */
export function writeU64(buffer: Buffer, at: number, value: number): void {
  buffer.writeUInt32LE(value % 0x100000000, at);
  buffer.writeUInt32LE(Math.floor(value / 0x100000000), at + 4);
}
