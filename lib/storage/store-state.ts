/**
 * The state every room of the device store shares (docs/storage.md, "Pieces"): the devices and
 * their block tables, the open write blocks, the sequence counter, live bytes, tombstones and
 * truncate markers, and the failed latch. DeviceStore (device-store.ts) is the facade over it;
 * the write path (write-path.ts), the post-write cache (post-write-cache.ts), defragmentation
 * (defrag.ts) and the device headers (device-headers.ts) each work on this one object.
 */
import { ErrorCode, ShoalError } from '../errors';
import { EX_DIGEST } from '../native/exchange';
import { DATA_START_BYTES, MAX_BLOCKS_PER_DEVICE } from './constants';
import { BLOCK_HEADER_BYTES, type DeviceHeader, locationBlock, locationDevice, locationSize, type TruncateMarker } from './format';
import type { NativeDevice, StorageNative } from './native-device';
import type { Tombstone } from './warm-state';
import type { WriteGate } from './write-gate';

/** Block states (DeviceState.states). */
export const FREE = 0;
export const OPEN = 1;
export const SEALED = 2;
export const DEFRAGGING = 3;

/** What the store needs from the namespace's index (defrag moves only what it points at). */
export interface StoreIndex {
  /** Puts the location held for the digest at digest[at, at+20) into out[0] (low), out[1] (high); false when absent. */
  locate(digest: Buffer, at: number, out: Uint32Array): boolean;
  /** Points the digest's entry at a new location (called right after locate() returned the old one). */
  relocate(digest: Buffer, at: number, low: number, high: number): void;
}

/** A write waiting for block bytes [0, end) to land. */
export interface Waiter {
  end: number;
  resolve: () => void;
  reject: (error: ShoalError) => void;
}

/** A write block in memory: the open one of a device, or a sealed one whose writes are in flight. */
export class WriteBlock {
  fill = BLOCK_HEADER_BYTES;
  written = 0;
  inflight = false;
  sealed = false;
  waiters: Waiter[] = [];
  flushTimer: NodeJS.Timeout | undefined;
  constructor(
    readonly device: DeviceState,
    readonly block: number,
    readonly sequence: number,
    readonly buffer: Buffer,
  ) {}
}

/** One device: its block tables (sequence, live bytes, state per block), free list, open block and commit queue. */
export class DeviceState {
  readonly live: Float64Array;
  readonly sequences: Float64Array;
  readonly states: Uint8Array;
  readonly freeBlocks: number[] = [];
  current: WriteBlock | undefined;
  /** Sealed blocks whose last write has not completed (reads of them go to their buffer). */
  readonly sealedInFlight = new Map<number, WriteBlock>();
  readonly pendingWrites = new Set<Promise<void>>();
  durableWaiters: { resolve: () => void; reject: (error: ShoalError) => void }[] = [];
  commitScheduled = false;
  committing = false;
  nextHeaderSlot = 0;
  constructor(
    readonly index: number,
    readonly device: NativeDevice,
    readonly blockCount: number,
    public header: DeviceHeader,
  ) {
    this.live = new Float64Array(blockCount);
    this.sequences = new Float64Array(blockCount);
    this.states = new Uint8Array(blockCount);
  }
}

/** The fixed facts of a store, known once its devices are open. */
export interface StoreFacts {
  namespace: string;
  writeBlockBytes: number;
  devices: DeviceState[];
  native: StorageNative;
  now: () => number;
  log: (message: string) => void;
  lwmBytes: number;
  reserveBlocks: number;
  signatureHigh: number;
  signatureLow: number;
  openStamp: { high: number; low: number };
}

/** The shared mutable state of one store (see the file comment). */
export class StoreState {
  readonly namespace: string;
  readonly writeBlockBytes: number;
  readonly devices: DeviceState[];
  readonly native: StorageNative;
  readonly now: () => number;
  readonly log: (message: string) => void;
  /** Live bytes below which a sealed block is defragmented. */
  readonly lwmBytes: number;
  /** Free blocks per device that only defragmentation may take. */
  readonly reserveBlocks: number;
  readonly signatureHigh: number;
  readonly signatureLow: number;
  /** This open's stamp: written into every device header now and at close, and into the state file. */
  readonly openStamp: { high: number; low: number };
  nextSequence = 1;
  liveTotal = 0;
  tombstones = new Map<string, Tombstone>();
  truncates: TruncateMarker[] = [];
  index: StoreIndex | undefined;
  failed: ShoalError | undefined;
  started = false;
  closed = false;
  readonly counters = { flushed: 0, commits: 0, defragBlocks: 0, defragMoved: 0 };
  /** Set by the facade: the gate writers pass (write-gate.ts), woken when the latch or room changes. */
  gate: WriteGate | undefined;
  /** Set by the facade: a sealed block fell below the watermark (defrag.ts queues it). */
  queueDefrag: (device: DeviceState, block: number) => void = () => undefined;
  /** Set by the facade: defragmentation may have work (defrag.ts schedules a slice). */
  scheduleDefrag: () => void = () => undefined;

  constructor(facts: StoreFacts) {
    this.namespace = facts.namespace;
    this.writeBlockBytes = facts.writeBlockBytes;
    this.devices = facts.devices;
    this.native = facts.native;
    this.now = facts.now;
    this.log = facts.log;
    this.lwmBytes = facts.lwmBytes;
    this.reserveBlocks = facts.reserveBlocks;
    this.signatureHigh = facts.signatureHigh;
    this.signatureLow = facts.signatureLow;
    this.openStamp = facts.openStamp;
  }

  /** @throws ShoalError IO_ERROR (failed), NOT_OPEN (closed, or not started yet). */
  checkWritable(): void {
    if (this.failed !== undefined) throw this.failed;
    if (this.closed) throw new ShoalError(ErrorCode.NOT_OPEN, `namespace ${this.namespace}: the store is closed`);
    if (!this.started) throw new ShoalError(ErrorCode.NOT_OPEN, `namespace ${this.namespace}: the store is not started (call coldStart first)`);
  }

  /** Latches the store into the failed state (writes refuse with IO_ERROR from now on; waiting writers go on to that error). Returns the latched error. */
  fail(error: ShoalError): ShoalError {
    if (this.failed === undefined) {
      this.failed = new ShoalError(
        ErrorCode.IO_ERROR,
        `namespace ${this.namespace}: a device write failed (${error.message}); writes are refused until the namespace is reopened, which recovers everything acknowledged as durable`,
        { cause: error },
      );
      this.log(this.failed.message);
      this.gate?.wake();
    }
    return this.failed;
  }

  /** The byte offset of a write block on its device. */
  blockOffset(block: number): number {
    return DATA_START_BYTES + block * this.writeBlockBytes;
  }

  /** One number for a (device, block) pair: the cache's and the defrag queue's key. */
  blockKey(device: DeviceState, block: number): number {
    return device.index * MAX_BLOCKS_PER_DEVICE + block;
  }

  /** The device and block of a blockKey. */
  deviceOfKey(key: number): DeviceState | undefined {
    return this.devices[Math.floor(key / MAX_BLOCKS_PER_DEVICE)];
  }

  /** The device of the digest at buffer[digestAt, digestAt + 20). */
  pickDevice(buffer: Buffer, digestAt = EX_DIGEST): DeviceState {
    const count = this.devices.length;
    return count === 1 ? this.devices[0]! : this.devices[(buffer[digestAt + 8]! | (buffer[digestAt + 9]! << 8)) % count]!;
  }

  /** Counts the bytes at a location as live. */
  account(low: number, high: number): void {
    const device = this.devices[locationDevice(high)];
    if (device === undefined) return;
    const size = locationSize(low, high);
    device.live[locationBlock(high)]! += size;
    this.liveTotal += size;
  }

  /** The index no longer points at this location: its bytes are dead (defrag may reclaim them). */
  release(low: number, high: number): void {
    if (low === 0 && high === 0) return;
    const device = this.devices[locationDevice(high)];
    if (device === undefined) return;
    const block = locationBlock(high);
    const state = device.states[block];
    if (state === FREE || state === DEFRAGGING) return;
    const size = locationSize(low, high);
    const live = Math.max(0, device.live[block]! - size);
    this.liveTotal -= device.live[block]! - live;
    device.live[block] = live;
    if (state === SEALED && live < this.lwmBytes) this.queueDefrag(device, block);
  }

  /** Forgets the tombstone of a digest (a newer copy supersedes it) and releases its bytes. */
  dropTombstone(key: string): void {
    const tombstone = this.tombstones.get(key);
    if (tombstone === undefined) return;
    this.tombstones.delete(key);
    this.release(tombstone.low, tombstone.high);
  }
}
