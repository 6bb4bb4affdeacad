/**
 * DeviceStore: the log-structured storage engine of one device namespace (docs/storage.md).
 *
 * Records are appended to the current in-memory write block of a device and written with
 * aligned writes when the block is full, after flushMaxMs, or when a durable write asks for a
 * group commit. Reads are served from the open block, a post-write cache of recent blocks, or
 * one aligned device read checked by CRC on the I/O thread. Deletes write tombstones; blocks
 * whose live bytes fall below defragLwmPct are rewritten in the background; cold start
 * rebuilds the index from a native scan (lib/storage/cold-start.ts).
 *
 * This file is the facade: opening and starting. The rooms behind it share one StoreState
 * (store-state.ts): the write path and group commit (write-path.ts), the post-write cache
 * (post-write-cache.ts), defragmentation (defrag.ts), the device headers (device-headers.ts)
 * and the warm-state file (warm-state.ts).
 *
 * The store knows records by digest and location only. The namespace owns the index and
 * tells the store through StoreIndex where records live, and calls release() whenever the
 * index stops pointing at a location.
 */
import { randomBytes } from 'node:crypto';
import { ErrorCode, ShoalError } from '../errors';
import { addCut } from '../model/truncate-cuts';
import type { Exchange } from '../native/exchange';
import type { ColdStartRecord, ColdStartReport } from './cold-start';
import { DEFAULT_CHECKPOINT_INTERVAL_MS, DEFAULT_DEFRAG_LWM_PCT, DEFAULT_FILE_MODE, DEFAULT_FLUSH_MAX_MS, DEFAULT_MIN_FREE_PCT, DEFAULT_POST_WRITE_CACHE_BLOCKS, MAX_TRUNCATE_MARKERS, MIN_RESERVE_BLOCKS } from './constants';
import { Checkpointer, type CheckpointSource } from './checkpoint';
import { Defragmenter } from './defrag';
import { warmStartObstacle, writeHeader } from './device-headers';
import { BLOCK_HEADER_BYTES, locationBlock, locationDevice, locationOffset, locationSize, RECORD_DIGEST_AT, RECORD_HEADER_BYTES, RECORD_KEY_LENGTH_AT, RECORD_PAYLOAD_LENGTH_AT, RECORD_SET_LENGTH_AT, type TruncateMarker } from './format';
import { type FaultPlan, type NativeDevice, storageNative } from './native-device';
import { PostWriteCache } from './post-write-cache';
import { recoverFromCheckpoint, type RecoveryReport, type RecoveryTarget } from './recovery';
import { classifyBlocks, openDevices, restoreBlockTables, scanDevices } from './store-start';
import { type DeviceState, StoreState, type StoreIndex } from './store-state';
import type { DeviceStoreOptions, DeviceStoreStats } from './store-options';
import { fileSystemStateIo, readState, type StateFileIo, type WarmState, writeState } from './warm-state';
import { WriteGate } from './write-gate';
import { WritePath } from './write-path';

export type { ColdStartRecord, ColdStartReport } from './cold-start';
export type { StoreIndex } from './store-state';
export type { DeviceStoreOptions, DeviceStoreStats } from './store-options';
export type { CheckpointSource } from './checkpoint';
export { recoveryLogLine, type RecoveryReport, type RecoveryTarget } from './recovery';

export class DeviceStore {
  readonly namespace: string;
  readonly writeBlockBytes: number;
  readonly startMode: 'new' | 'existing';
  /** This open's stamp: written into every device header now and at close, and into the state file. */
  readonly openStamp: { high: number; low: number };
  /**
   * Backpressure (docs/storage.md, "Backpressure"): every writer passes this gate before it
   * writes (the namespace's put, batchPut, operate, remove, replication, in call order), and
   * defragmentation waits for its room (gate.room: it changes no value, so it goes ahead of the
   * line). It is shut while a device has WRITE_BLOCKS_IN_FLIGHT_MAX sealed blocks whose writes
   * have not landed; writes that have landed are collected first (poll), so a caller that never
   * yields to the event loop is held back by the device alone.
   */
  readonly gate: WriteGate;
  /** Bytes scanned so far by a running cold start, and the most it will read. */
  coldStartProgress: { scanned: number; total: number } | undefined;
  private readonly state: StoreState;
  private readonly writes: WritePath;
  private readonly cache: PostWriteCache;
  private readonly defrag: Defragmenter;
  /** Index checkpoints, when the options name an index file. */
  private readonly checkpoints: Checkpointer | undefined;
  /** The open stamp all device headers carried at open (before this open wrote its own), or undefined when they differ. */
  private headerStamp: { high: number; low: number } | undefined;
  private readonly withPayload: boolean;
  private readonly stateFile: string | undefined;
  private readonly stateFileIo: StateFileIo;
  private readonly fileMode: number;
  private warmState: WarmState | undefined;
  /** Why a warm start is not possible (for the log line), when it is not. */
  private coldReason = 'it is new';
  /** The open stamp the devices were cleanly closed with, when the state file matches it (canAttach). */
  private closedStamp: { high: number; low: number } | undefined;

  private constructor(options: DeviceStoreOptions, devices: DeviceState[], startMode: 'new' | 'existing', writeBlockBytes: number) {
    this.namespace = options.namespace;
    this.startMode = startMode;
    this.writeBlockBytes = writeBlockBytes;
    const totalBlocks = devices.reduce((sum, device) => sum + device.blockCount, 0);
    const reservePct = options.minFreePct ?? DEFAULT_MIN_FREE_PCT;
    const stamp = randomBytes(8);
    this.openStamp = { high: stamp.readUInt32LE(0), low: stamp.readUInt32LE(4) || 1 };
    const header = devices[0]!.header;
    this.state = new StoreState({
      namespace: options.namespace,
      writeBlockBytes,
      devices,
      native: storageNative(),
      now: options.now ?? Date.now,
      log: options.log ?? (() => undefined),
      lwmBytes: ((options.defragLwmPct ?? DEFAULT_DEFRAG_LWM_PCT) / 100) * (writeBlockBytes - BLOCK_HEADER_BYTES),
      reserveBlocks: Math.max(MIN_RESERVE_BLOCKS * devices.length, Math.floor((totalBlocks * reservePct) / 100)) / devices.length,
      signatureHigh: header.signatureHigh,
      signatureLow: header.signatureLow,
      openStamp: this.openStamp,
    });
    this.state.truncates = header.truncates.slice();
    let defrag: Defragmenter | undefined;
    this.cache = new PostWriteCache(this.state, options.postWriteCacheBlocks ?? DEFAULT_POST_WRITE_CACHE_BLOCKS, () => defrag?.busy() !== true);
    this.writes = new WritePath(this.state, this.cache, options.flushMaxMs ?? DEFAULT_FLUSH_MAX_MS, options.commitToDevice === true);
    defrag = this.defrag = new Defragmenter(this.state, this.writes);
    this.defrag.cache = this.cache;
    this.state.queueDefrag = (device, block) => this.defrag.queueBlock(device, block);
    this.state.scheduleDefrag = () => this.defrag.schedule();
    this.gate = new WriteGate((poll) => this.writes.blocked(poll));
    this.state.gate = this.gate;
    this.withPayload = options.withPayload === true;
    this.stateFile = options.stateFile;
    this.stateFileIo = options.stateFileIo ?? fileSystemStateIo;
    this.fileMode = options.fileMode ?? DEFAULT_FILE_MODE;
    if (options.indexFile !== undefined) {
      this.checkpoints = new Checkpointer(this.state, this.writes, options.indexFile, this.stateFileIo, this.fileMode, options.checkpointIntervalMs ?? checkpointIntervalFromEnvironment(), testPieceDelayUs());
    }
  }

  /**
   * Opens (creating where new) and locks every device and checks their headers belong together.
   * Call coldStart() or attach() next, then use the store.
   * @throws ShoalError LOCKED (a device is open elsewhere), IO_ERROR, CORRUPTION (devices of
   *   different namespaces or geometry), INVALID_ARGUMENT (bad options).
   */
  static async open(options: DeviceStoreOptions): Promise<DeviceStore> {
    const opened = await openDevices(options);
    try {
      const store = new DeviceStore(options, opened.devices, opened.startMode, opened.writeBlockBytes);
      const first = opened.devices[0]!.header;
      const oneStamp = opened.devices.every((device) => device.header.openStampHigh === first.openStampHigh && device.header.openStampLow === first.openStampLow);
      store.headerStamp = oneStamp && (first.openStampHigh !== 0 || first.openStampLow !== 0) ? { high: first.openStampHigh, low: first.openStampLow } : undefined;
      if (opened.startMode === 'existing') {
        store.state.truncates = opened.truncates;
        await store.readWarmState(options.stateFile);
      }
      if (options.stateFile !== undefined) await store.stateFileIo.remove(options.stateFile);
      // Mark every device in use (not clean), with this open's stamp, before anything is written.
      await Promise.all(opened.devices.map((device) => writeHeader(store.state, device, false)));
      return store;
    } catch (error) {
      for (const device of opened.devices) device.device.close();
      throw error;
    }
  }

  /**
   * The state file a clean close left, when every device header is clean, they all carry the
   * same open stamp and the file matches them (warmState); else the reason it cannot be used.
   */
  private async readWarmState(stateFile: string | undefined): Promise<void> {
    const headers = this.state.devices.map((device) => device.header);
    const obstacle = warmStartObstacle(headers, stateFile);
    if (obstacle !== undefined) {
      this.coldReason = obstacle;
      return;
    }
    const stamp = headers[0]!;
    this.warmState = await readState(this.stateFileIo, stateFile!, this.state.devices, stamp.openStampHigh, stamp.openStampLow);
    if (this.warmState === undefined) this.coldReason = 'its storage state file is missing, damaged or from another run than its devices';
    else this.closedStamp = { high: stamp.openStampHigh, low: stamp.openStampLow };
  }

  /**
   * Rebuilds the block tables from the devices and hands every live record to onRecord (the
   * namespace inserts it into its index), or, with onLiveBatch, each batch of scanner winners
   * whose live records the namespace inserts with one native call (onRecord then sees none).
   * A new namespace reports zeros.
   * @throws ShoalError IO_ERROR when a device cannot be read.
   */
  async coldStart(index: StoreIndex, onRecord: (record: ColdStartRecord) => void, onLiveBatch?: (winners: Buffer, variable: Buffer, count: number, setNames: string[]) => void): Promise<ColdStartReport> {
    this.state.index = index;
    let report: ColdStartReport;
    if (this.startMode === 'new') {
      report = emptyReport();
      for (const device of this.state.devices) for (let block = device.blockCount - 1; block >= 0; block--) device.freeBlocks.push(block);
    } else {
      const scanned = await scanDevices(this.state, this.withPayload, onRecord, onLiveBatch, (bytes, total) => {
        this.coldStartProgress = { scanned: bytes, total };
      });
      await this.defrag.freeBlocks(scanned.emptied);
      this.defrag.queueAllBelowWatermark();
      report = scanned.report;
    }
    this.state.started = true;
    this.defrag.schedule();
    return report;
  }

  /** Whether the devices were closed cleanly with a valid state file: attach() can skip the scan. */
  canAttach(): boolean {
    return this.warmState !== undefined;
  }

  /**
   * The open stamp of the run that closed the devices cleanly and left the state file, when
   * canAttach(): an index may be attached only if that same run left it (it records the stamp).
   */
  warmStamp(): { high: number; low: number } | undefined {
    return this.warmState === undefined ? undefined : this.closedStamp;
  }

  /** Why the devices cannot start warm (when canAttach() is false), for the namespace's log line. */
  coldStartReason(): string {
    return this.coldReason;
  }

  /** The namespace signature shared by the devices (the index records it to match them). */
  signature(): { high: number; low: number } {
    return { high: this.state.signatureHigh, low: this.state.signatureLow };
  }

  /**
   * Warm restart: attaches the index without scanning the devices or visiting the index. Block
   * tables (sequences and live bytes per block) and tombstones come from the state file left by
   * close(), which was written after the last change to the index and is checked (CRC-32C,
   * signature, header counters, block counts) before it is trusted. O(blocks + tombstones), not
   * O(records). Only when canAttach().
   */
  async attach(index: StoreIndex): Promise<void> {
    const warm = this.warmState;
    if (warm === undefined) throw new Error('attach: the devices were not closed cleanly; use coldStart');
    this.warmState = undefined;
    const state = this.state;
    state.index = index;
    state.nextSequence = warm.nextSequence;
    state.tombstones = warm.tombstones;
    const emptied = restoreBlockTables(state, warm.sequences, warm.live);
    await this.defrag.freeBlocks(emptied);
    state.started = true;
    this.defrag.queueAllBelowWatermark();
    this.defrag.schedule();
  }

  /**
   * Restart after a crash or a reboot (recovery.ts): loads the index the last checkpoint saved
   * into `target.index` (open, empty, without data) and replays the blocks written since.
   * Returns the report, or why it could not (then nothing changed: run coldStart, after
   * reopening the index). Only instead of coldStart or attach, on existing devices; `index`
   * is what defragmentation asks afterwards, as with coldStart.
   */
  async recover(index: StoreIndex, target: RecoveryTarget): Promise<RecoveryReport | string> {
    if (this.startMode === 'new') return 'its devices are new';
    if (this.checkpoints === undefined) return 'it keeps no index checkpoint file';
    const state = this.state;
    const outcome = await recoverFromCheckpoint(state, this.stateFileIo, this.checkpoints.file, this.headerStamp, target);
    if (typeof outcome === 'string') return outcome;
    state.index = index;
    const emptied = classifyBlocks(state);
    await this.defrag.freeBlocks(emptied);
    state.started = true;
    this.defrag.queueAllBelowWatermark();
    this.defrag.schedule();
    return outcome;
  }

  /** Checkpoints the source's index from now on (when the options name an index file): soon, every interval, and at close. */
  enableCheckpoints(source: CheckpointSource): void {
    this.checkpoints?.enable(source);
  }

  /** Takes an index checkpoint now (tests, benches); false when checkpoints are off. @throws ShoalError IO_ERROR. */
  async checkpointNow(): Promise<boolean> {
    return (await this.checkpoints?.take()) ?? false;
  }

  /** The checkpoint image being written: [pieces written, pieces], or null (tests). */
  checkpointImageProgress(): [number, number] | null {
    return this.checkpoints?.imageProgress() ?? null;
  }

  /**
   * Appends the record in the exchange (digest, set, key with RECORD_FLAG_HAS_KEY, ENTRY
   * generation / void time / last-update ms, payload DATA[0, payloadLength)) and writes its
   * location into ENTRY's location fields. Returns undefined when the write is acknowledged
   * now, or a promise that resolves once the record is on the device (durable, commitToDevice).
   * A superseded tombstone of the digest is dropped; the caller releases the previous location.
   * @throws ShoalError OUT_OF_SPACE, RECORD_TOO_BIG, IO_ERROR (the store has failed).
   */
  write(exchange: Exchange, payloadLength: number, flags: number, durable: boolean): Promise<void> | undefined {
    return this.writes.write(exchange, payloadLength, flags, durable);
  }

  /**
   * batchPut, first half: places every slot of a batch buffer (native/exchange_layout.h) whose
   * action is BATCH_WRITE_INDEX in a write block of its device, as write() would, and fills in
   * the slot's block number, offset, location and BATCH_WRITE_RECORD. A slot that cannot be
   * placed (OUT_OF_SPACE, RECORD_TOO_BIG) gets its error in failures[i] and BATCH_SKIP. Returns
   * the blocks the slots' block numbers index. Blocks sealed meanwhile are written only by
   * finishBatch, which must follow at once, after the records are formatted.
   * @throws ShoalError IO_ERROR (the store has failed), NOT_OPEN; nothing is placed then.
   */
  placeBatch(batch: Buffer, count: number, failures: unknown[]): Buffer[] {
    return this.writes.placeBatch(batch, count, failures);
  }

  /**
   * batchPut, second half, called whether or not formatting the records succeeded: starts the
   * writes of the blocks sealed by placeBatch and drops the tombstones the new records
   * supersede. With `formatted` false (the native call refused the batch before formatting
   * anything) the placed space holds no records, so the store latches into the failed state
   * rather than let a block with a hole reach the device. Returns, when the writes are durable
   * (`durable` or commitToDevice), a promise that resolves once they are on the device, to
   * undefined, or to the error that kept them from it.
   */
  finishBatch(batch: Buffer, count: number, durable: boolean, formatted: boolean): Promise<ShoalError | undefined> | undefined {
    return this.writes.finishBatch(batch, count, durable, formatted);
  }

  /**
   * Records the removal of the digest in the exchange, whose newest copy had this generation and
   * last-update time: writes a tombstone that hides every older copy after a cold start, and
   * releases the previous location. Overwrites ENTRY's generation, void time, last-update time
   * and location, and DATA[0, 8).
   * @throws ShoalError OUT_OF_SPACE, IO_ERROR.
   */
  remove(exchange: Exchange, previousLow: number, previousHigh: number, previousGeneration: number, previousLastUpdateMs: number, durable: boolean): Promise<void> | undefined {
    return this.writes.remove(exchange, previousLow, previousHigh, previousGeneration, previousLastUpdateMs, durable);
  }

  /** The index no longer points at this location: its bytes are dead (defrag may reclaim them). */
  release(low: number, high: number): void {
    this.state.release(low, high);
  }

  /**
   * Rebuilds live-byte accounting from the index: visit every indexed location. One
   * synchronous walk of the whole index, so only for checks (tests): truncate and eviction
   * release the exact locations the index reports instead.
   */
  recount(visit: (take: (low: number, high: number) => void) => void): void {
    const state = this.state;
    for (const device of state.devices) device.live.fill(0);
    state.liveTotal = 0;
    visit((low, high) => state.account(low, high));
    for (const tombstone of state.tombstones.values()) state.account(tombstone.low, tombstone.high);
    this.defrag.queueAllBelowWatermark();
    this.defrag.schedule();
  }

  /**
   * The payload of the record at a location, from memory when its block is still there, else
   * with one aligned read. With digest, a record of another digest there is CORRUPTION.
   * @throws ShoalError CORRUPTION (checksum or digest mismatch), IO_ERROR.
   */
  read(low: number, high: number, digest?: Buffer): Promise<Buffer> {
    const device = this.state.devices[locationDevice(high)];
    if (device === undefined) return Promise.reject(new ShoalError(ErrorCode.CORRUPTION, `namespace ${this.namespace}: location names device ${locationDevice(high)}, which does not exist`));
    const block = locationBlock(high);
    const offset = locationOffset(low);
    const memory = this.cache.blockInMemory(device, block);
    if (memory !== undefined) {
      try {
        return Promise.resolve(payloadAt(memory, offset, digest, this.namespace));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return device.device.readRecordPayload(this.state.blockOffset(block) + offset, locationSize(low, high), digest);
  }

  /**
   * The payload when the record's block is in memory (open or recently written), else
   * undefined. The result is a view into the block, valid until the next write: decode or copy
   * it at once. (The location comes from the index in the same tick, so no digest check.)
   */
  readFromMemory(low: number, high: number): Buffer | undefined {
    const device = this.state.devices[locationDevice(high)];
    if (device === undefined) return undefined;
    const memory = this.cache.blockInMemory(device, locationBlock(high));
    return memory === undefined ? undefined : payloadView(memory, locationOffset(low));
  }

  /**
   * Persists a truncate marker (every record of the set, or of all sets, last updated before
   * beforeMs, stays gone after any restart) in every device header, durably.
   * @throws ShoalError IO_ERROR; RangeError when there are too many distinct truncated sets.
   */
  async truncate(set: string | undefined, beforeMs: number): Promise<void> {
    const state = this.state;
    state.checkWritable();
    const next = addCut(state.truncates, set, beforeMs);
    if (next.length > MAX_TRUNCATE_MARKERS) throw new ShoalError(ErrorCode.INVALID_ARGUMENT, `namespace ${this.namespace}: at most ${MAX_TRUNCATE_MARKERS} sets can carry truncate markers`);
    state.truncates = next;
    await Promise.all(state.devices.map((device) => writeHeader(state, device, false)));
  }

  /** The truncate markers in force (a copy). */
  truncateMarkers(): TruncateMarker[] {
    return this.state.truncates.map((marker) => ({ ...marker }));
  }

  /** Flushes every open block and syncs every device (group commit). @throws ShoalError IO_ERROR. */
  async flush(): Promise<void> {
    await this.writes.flush();
  }

  /**
   * Stops background work, flushes and syncs, leaves the state file and a last index
   * checkpoint (or, with dropIndex, removes the index checkpoint file), marks the devices clean
   * and closes them. Idempotent. @throws ShoalError IO_ERROR when the final flush fails (devices still close).
   */
  async close(options: { dropIndex?: boolean } = {}): Promise<void> {
    const state = this.state;
    if (state.closed) return;
    state.closed = true;
    this.gate.wake();
    await this.defrag.stop();
    await this.checkpoints?.stop();
    let failure: unknown;
    try {
      if (state.failed === undefined) {
        await this.writes.flush();
        if (this.stateFile !== undefined && state.started) {
          const facts = { nextSequence: state.nextSequence, tombstones: state.tombstones, signatureHigh: state.signatureHigh, signatureLow: state.signatureLow, stamp: this.openStamp };
          await writeState(this.stateFileIo, this.stateFile, state.devices, facts, this.fileMode);
        }
        // The index in every form goes with dropIndex; else a last checkpoint, for a reboot.
        if (options.dropIndex === true) {
          if (this.checkpoints !== undefined) await this.stateFileIo.remove(this.checkpoints.file);
        } else if (state.started) {
          await this.checkpoints?.atClose();
        }
        await Promise.all(state.devices.map((device) => writeHeader(state, device, true)));
      }
    } catch (error) {
      failure = error;
    }
    for (const device of state.devices) {
      if (device.current?.flushTimer !== undefined) clearTimeout(device.current.flushTimer);
      device.device.close();
    }
    if (failure !== undefined) throw failure;
  }

  stats(): DeviceStoreStats {
    const state = this.state;
    let free = 0;
    let total = 0;
    for (const device of state.devices) {
      free += device.freeBlocks.length;
      total += device.blockCount;
    }
    return {
      deviceUsedBytes: state.liveTotal,
      deviceFreePct: total === 0 ? 0 : Math.floor((100 * free) / total),
      deviceTotalBytes: total * this.writeBlockBytes,
      freeBlocks: free,
      totalBlocks: total,
      defragPending: this.defrag.pending,
      defragBlocks: state.counters.defragBlocks,
      defragMoved: state.counters.defragMoved,
      tombstones: state.tombstones.size,
      directIo: state.devices.every((device) => device.device.directIo) ? 'on' : 'off',
      ioEngine: state.devices.every((device) => device.device.ioEngine === 'io_uring') ? 'io_uring' : 'threads',
      writeBlocksFlushed: state.counters.flushed,
      commits: state.counters.commits,
      failed: state.failed !== undefined,
      writeBlocksInFlight: state.devices.reduce((sum, device) => sum + device.sealedInFlight.size, 0),
      writeBlocksInMemory: this.blocksInMemory(),
      checkpoints: this.checkpoints?.stats.checkpoints ?? 0,
      lastCheckpointCaptureMs: this.checkpoints?.stats.lastCaptureMs ?? 0,
      lastCheckpointMs: this.checkpoints?.stats.lastMs ?? 0,
    };
  }

  private blocksInMemory(): number {
    const buffers = new Set<Buffer>(this.cache.buffers());
    for (const device of this.state.devices) {
      if (device.current !== undefined) buffers.add(device.current.buffer);
      for (const block of device.sealedInFlight.values()) buffers.add(block.buffer);
    }
    return buffers.size;
  }

  /** The devices, for fault injection in tests. */
  faultDevices(): NativeDevice[] {
    return this.state.devices.map((device) => device.device);
  }

  /** Injects a fault plan into every device (the store must have been opened with faults: true). */
  injectFaults(plan: FaultPlan): void {
    for (const device of this.state.devices) device.device.fault('plan', plan);
  }

  /** Where a location lives on its device (tests flip bits there). */
  deviceOffsetOf(low: number, high: number): { device: number; offset: number; size: number } {
    return { device: locationDevice(high), offset: this.state.blockOffset(locationBlock(high)) + locationOffset(low), size: locationSize(low, high) };
  }

  /** Forgets the post-write cache so reads go to the device (tests). */
  dropCache(): void {
    this.cache.clear();
  }

  /** Runs defragmentation now until nothing is pending (tests, and close of a nearly full device). */
  async defragNow(): Promise<void> {
    await this.defrag.runNow();
  }
}

/** SHOAL_CHECKPOINT_MS when it is a number ≥ 0, else DEFAULT_CHECKPOINT_INTERVAL_MS. */
function checkpointIntervalFromEnvironment(): number {
  const value = Number(process.env.SHOAL_CHECKPOINT_MS);
  return process.env.SHOAL_CHECKPOINT_MS !== undefined && process.env.SHOAL_CHECKPOINT_MS !== '' && Number.isFinite(value) && value >= 0 ? value : DEFAULT_CHECKPOINT_INTERVAL_MS;
}

/** Tests: SHOAL_TEST_CHECKPOINT_PIECE_DELAY_US slows the checkpoint image's worker down (an integer in [0, 100000]), else 0. */
function testPieceDelayUs(): number {
  const value = Number(process.env.SHOAL_TEST_CHECKPOINT_PIECE_DELAY_US ?? 0);
  return Number.isInteger(value) && value >= 0 && value <= 100_000 ? value : 0;
}

function payloadView(block: Buffer, offset: number): Buffer {
  const start = offset + RECORD_HEADER_BYTES + block[offset + RECORD_SET_LENGTH_AT]! + block.readUInt16LE(offset + RECORD_KEY_LENGTH_AT);
  return block.subarray(start, start + block.readUInt32LE(offset + RECORD_PAYLOAD_LENGTH_AT));
}

/** Whether digest equals the 20 bytes at source[at] (a loop: Buffer.compare with ranges costs more). */
function sameDigest(digest: Buffer, source: Buffer, at: number): boolean {
  for (let index = 0; index < 20; index++) if (digest[index] !== source[at + index]) return false;
  return true;
}

function payloadAt(block: Buffer, offset: number, digest: Buffer | undefined, namespace: string): Buffer {
  if (digest !== undefined && !sameDigest(digest, block, offset + RECORD_DIGEST_AT)) {
    throw new ShoalError(ErrorCode.CORRUPTION, `namespace ${namespace}: the record at this location belongs to another digest`);
  }
  const start = offset + RECORD_HEADER_BYTES + block[offset + RECORD_SET_LENGTH_AT]! + block.readUInt16LE(offset + RECORD_KEY_LENGTH_AT);
  const length = block.readUInt32LE(offset + RECORD_PAYLOAD_LENGTH_AT);
  return Buffer.from(block.subarray(start, start + length));
}

function emptyReport(): ColdStartReport {
  return { records: 0, recordsSeen: 0, corrupt: 0, expired: 0, tombstones: 0, truncated: 0, shadows: 0, validBlocks: 0, bytesScanned: 0, ms: 0, scanMs: 0, indexMs: 0, megabytesPerSecond: 0 };
}
