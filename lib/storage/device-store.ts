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
 * The store knows records by digest and location only. The namespace owns the index and
 * tells the store through StoreIndex where records live, and calls release() whenever the
 * index stops pointing at a location.
 */
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { WRITE_BLOCK_BYTES_DEFAULT, WRITE_BLOCK_BYTES_MAX, WRITE_BLOCK_BYTES_MIN } from '../constants';
import { ErrorCode, ShoalError } from '../errors';
import { addCut } from '../model/truncate-cuts';
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
  EX_SET,
  EX_SET_LENGTH,
  Exchange,
} from '../native/exchange';
import {
  DATA_START_BYTES,
  DEFAULT_DEFRAG_LWM_PCT,
  DEFAULT_FLUSH_MAX_MS,
  DEFAULT_MIN_FREE_PCT,
  DEFAULT_POST_WRITE_CACHE_BLOCKS,
  WRITE_BLOCK_SPARES,
  DEFRAG_BLOCKS_PER_SLICE,
  DEFRAG_SLEEP_MS,
  HEADER_SLOT_BYTES,
  IO_ALIGN_BYTES,
  MAX_BLOCKS_PER_DEVICE,
  MAX_DEVICES,
  MAX_TRUNCATE_MARKERS,
  MIN_RESERVE_BLOCKS,
  DEFAULT_FILE_MODE,
  DEFRAG_RECORDS_PER_CLOCK_CHECK,
  WRITE_BLOCKS_IN_FLIGHT_MAX,
} from './constants';
import { coldStartScan, type ColdStartRecord, type ColdStartReport } from './cold-start';
import { checkReadings, type DeviceReading, readDevice } from './device-identity';
import { repairDevices } from './device-repair';
import { TimeSlice } from './event-loop';
import { makeDirectory } from './file-mode';
import { fileSystemStateIo, readState, type StateFileIo, type Tombstone, type WarmState, writeState } from './warm-state';
import { WriteGate } from './write-gate';
import {
  BLOCK_HEADER_BYTES,
  type DeviceHeader,
  encodeHeader,
  locationBlock,
  locationDevice,
  locationHigh,
  locationLow,
  locationOffset,
  locationSize,
  RECORD_DIGEST_AT,
  RECORD_FLAG_HAS_KEY,
  RECORD_FLAG_PAYLOAD_KEY,
  RECORD_FLAG_TOMBSTONE,
  RECORD_FLAGS_AT,
  RECORD_GENERATION_AT,
  RECORD_HEADER_BYTES,
  RECORD_TRAILER_BYTES,
  RECORD_KEY_LENGTH_AT,
  RECORD_LAST_UPDATE_AT,
  RECORD_PAYLOAD_LENGTH_AT,
  RECORD_SET_LENGTH_AT,
  RECORD_VOID_TIME_AT,
  recordBytes,
  alignDown,
  type TruncateMarker,
} from './format';
import { type DirectIoMode, type FaultPlan, type IoEngineMode, NativeDevice, type NativeRecordEncoder, storageNative } from './native-device';

export type { ColdStartRecord, ColdStartReport } from './cold-start';

/** What the store needs from the namespace's index (defrag moves only what it points at). */
export interface StoreIndex {
  /** Puts the location held for the digest at digest[at, at+20) into out[0] (low), out[1] (high); false when absent. */
  locate(digest: Buffer, at: number, out: Uint32Array): boolean;
  /** Points the digest's entry at a new location (called right after locate() returned the old one). */
  relocate(digest: Buffer, at: number, low: number, high: number): void;
}

export interface DeviceStoreOptions {
  namespace: string;
  /** Device paths: files (created and sized) or raw block devices. Relative paths resolve against dataDir. */
  paths: string[];
  dataDir?: string;
  /** Size of each file device; raw block devices use their whole size when 0. */
  sizeBytes: number;
  writeBlockBytes?: number;
  directIo?: DirectIoMode;
  /** undefined: SHOAL_IO_ENGINE, else 'threads' (native-device.ts). */
  ioEngine?: IoEngineMode;
  flushMaxMs?: number;
  commitToDevice?: boolean;
  defragLwmPct?: number;
  minFreePct?: number;
  postWriteCacheBlocks?: number;
  ioThreads?: number;
  /** Cold start also hands each record's payload to onRecord (dataInMemory). */
  withPayload?: boolean;
  /** Open every device through the fault-injecting backend (tests). */
  faults?: boolean;
  /** Tests: every device behaves as on a file system that refuses O_DIRECT. */
  refuseDirectIo?: boolean;
  /**
   * Where close() leaves the block tables and tombstones for a warm restart (a file in the
   * data directory). Without it every start is a cold start.
   */
  stateFile?: string;
  /** How the state file is read, written and removed (warm-state.ts); default the file system. Tests inject faults here. */
  stateFileIo?: StateFileIo;
  /** The exact mode of the device files, directories (plus search bits) and state file it creates; default 0o600. */
  fileMode?: number;
  /**
   * Repair devices that open() would refuse as damaged: rebuild a lost header from the write
   * blocks, extend a truncated file back to its size, make a blank device an empty member
   * (device-repair.ts). Never writes over a file that is not a Shoal device.
   */
  repairDevices?: boolean;
  /** Clock (ms); tests pass a fake one. */
  now?: () => number;
  log?: (message: string) => void;
}

const FREE = 0;
const OPEN = 1;
const SEALED = 2;
const DEFRAGGING = 3;

interface Waiter {
  end: number;
  resolve: () => void;
  reject: (error: ShoalError) => void;
}

class WriteBlock {
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

class DeviceState {
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

export interface DeviceStoreStats {
  deviceUsedBytes: number;
  deviceFreePct: number;
  deviceTotalBytes: number;
  freeBlocks: number;
  totalBlocks: number;
  defragPending: number;
  defragBlocks: number;
  defragMoved: number;
  tombstones: number;
  directIo: 'on' | 'off';
  /** 'io_uring' only if every device reads through io_uring (docs/storage.md, "I/O engines"). */
  ioEngine: 'io_uring' | 'threads';
  writeBlocksFlushed: number;
  commits: number;
  failed: boolean;
  /** Sealed write blocks whose writes have not landed (at most WRITE_BLOCKS_IN_FLIGHT_MAX per device, plus a batch's). */
  writeBlocksInFlight: number;
  /** Write-block buffers that reads can be served from: open, in flight, in the post-write cache. */
  writeBlocksInMemory: number;
}

export class DeviceStore {
  readonly namespace: string;
  readonly writeBlockBytes: number;
  readonly startMode: 'new' | 'existing';
  private readonly devices: DeviceState[];
  private readonly native = storageNative();
  private readonly now: () => number;
  private readonly log: (message: string) => void;
  private readonly flushMaxMs: number;
  private readonly commitToDevice: boolean;
  private readonly lwmBytes: number;
  private readonly reserveBlocks: number;
  private readonly cacheLimit: number;
  private readonly withPayload: boolean;
  private readonly cache = new Map<number, Buffer>();
  private tombstones = new Map<string, Tombstone>();
  private readonly defragQueue = new Set<number>();
  private readonly scratch = new Exchange(8);
  private readonly out = new Uint32Array(2);
  private readonly parseOut: Int32Array;
  private signatureHigh = 0;
  private signatureLow = 0;
  private nextSequence = 1;
  private truncates: TruncateMarker[] = [];
  private index: StoreIndex | undefined;
  private failed: ShoalError | undefined;
  private started = false;
  private closed = false;
  private defragTimer: NodeJS.Timeout | undefined;
  private defragRunning: Promise<void> | undefined;
  /** Defragmentation slices under way (they hold the blocks they read across awaits: no buffer reuse meanwhile). */
  private defragSlices = 0;
  private liveTotal = 0;
  private counters = { flushed: 0, commits: 0, defragBlocks: 0, defragMoved: 0 };
  private readonly stateFile: string | undefined;
  private readonly stateFileIo: StateFileIo;
  /** Bytes scanned so far by a running cold start, and the most it will read. */
  coldStartProgress: { scanned: number; total: number } | undefined;
  /** The native encoder bound to the exchange last written from, and the block it writes to. */
  private encoder: NativeRecordEncoder | undefined;
  private encoderExchange: Exchange | undefined;
  private encoderBlock: WriteBlock | undefined;
  /** Between placeBatch and finishBatch: blocks sealed meanwhile, whose writes wait for the batch's records. */
  private batchSealed: WriteBlock[] | undefined;
  /** Buffers of blocks that left memory, for the next blocks to open (WRITE_BLOCK_SPARES). */
  private readonly spareBlocks: Buffer[] = [];
  /** The devices the batch placed records on. */
  private readonly batchDevices = new Set<DeviceState>();
  /**
   * Backpressure (docs/storage.md, "Backpressure"): every writer passes this gate before it
   * writes (the namespace's put, batchPut, operate, remove, replication, in call order), and
   * defragmentation waits for its room (gate.room: it changes no value, so it goes ahead of the
   * line). It is shut while a device has WRITE_BLOCKS_IN_FLIGHT_MAX sealed blocks whose writes
   * have not landed; writes that have landed are collected first (poll), so a caller that never
   * yields to the event loop is held back by the device alone.
   */
  readonly gate = new WriteGate((poll) => this.blocked(poll));
  private warmState: WarmState | undefined;
  /** Why a warm start is not possible (for the log line), when it is not. */
  private coldReason = 'it is new';
  /** The open stamp the devices were cleanly closed with, when the state file matches it (canAttach). */
  private closedStamp: { high: number; low: number } | undefined;
  /** This open's stamp: written into every device header now and at close, and into the state file. */
  readonly openStamp: { high: number; low: number };
  private readonly fileMode: number;

  private constructor(options: DeviceStoreOptions, devices: DeviceState[], startMode: 'new' | 'existing', writeBlockBytes: number) {
    this.namespace = options.namespace;
    this.devices = devices;
    this.startMode = startMode;
    this.writeBlockBytes = writeBlockBytes;
    this.now = options.now ?? Date.now;
    this.log = options.log ?? (() => undefined);
    this.flushMaxMs = options.flushMaxMs ?? DEFAULT_FLUSH_MAX_MS;
    this.commitToDevice = options.commitToDevice === true;
    this.lwmBytes = ((options.defragLwmPct ?? DEFAULT_DEFRAG_LWM_PCT) / 100) * (writeBlockBytes - BLOCK_HEADER_BYTES);
    const totalBlocks = devices.reduce((sum, device) => sum + device.blockCount, 0);
    const reservePct = options.minFreePct ?? DEFAULT_MIN_FREE_PCT;
    this.reserveBlocks = Math.max(MIN_RESERVE_BLOCKS * devices.length, Math.floor((totalBlocks * reservePct) / 100)) / devices.length;
    this.cacheLimit = options.postWriteCacheBlocks ?? DEFAULT_POST_WRITE_CACHE_BLOCKS;
    this.withPayload = options.withPayload === true;
    this.stateFile = options.stateFile;
    this.stateFileIo = options.stateFileIo ?? fileSystemStateIo;
    this.fileMode = options.fileMode ?? DEFAULT_FILE_MODE;
    const stamp = randomBytes(8);
    this.openStamp = { high: stamp.readUInt32LE(0), low: stamp.readUInt32LE(4) || 1 };
    this.parseOut = new Int32Array(2 * Math.ceil(writeBlockBytes / 16) + 1);
    const header = devices[0]!.header;
    this.signatureHigh = header.signatureHigh;
    this.signatureLow = header.signatureLow;
    this.truncates = header.truncates.slice();
  }

  /**
   * Opens (creating where new) and locks every device and checks their headers belong together.
   * Call coldStart() next, then use the store.
   * @throws ShoalError LOCKED (a device is open elsewhere), IO_ERROR, CORRUPTION (devices of
   *   different namespaces or geometry), INVALID_ARGUMENT (bad options).
   */
  static async open(options: DeviceStoreOptions): Promise<DeviceStore> {
    const writeBlockBytes = validateOptions(options);
    const fileMode = options.fileMode ?? DEFAULT_FILE_MODE;
    const opened: NativeDevice[] = [];
    try {
      for (const devicePath of options.paths) {
        const resolved = path.resolve(options.dataDir ?? '.', devicePath);
        makeDirectory(path.dirname(resolved), fileMode);
        opened.push(
          new NativeDevice({
            path: resolved,
            sizeBytes: options.sizeBytes,
            create: true,
            fileMode,
            directIo: options.directIo ?? 'auto',
            ioEngine: options.ioEngine,
            threads: options.ioThreads,
            faults: options.faults,
            refuseDirectIo: options.refuseDirectIo,
            resultsBytes: 2 * writeBlockBytes,
          }),
        );
      }
      const crc32c = storageNative().crc32c;
      const readings = await Promise.all(opened.map((device) => readDevice(device, device.path, writeBlockBytes, crc32c)));
      if (options.repairDevices === true) {
        await repairDevices(readings, { namespace: options.namespace, sizeBytes: options.sizeBytes, writeBlockBytes, crc32c, now: options.now ?? Date.now, log: options.log ?? (() => undefined) });
      }
      checkReadings(options.namespace, readings, options.sizeBytes);
      return await DeviceStore.fromReadings(options, readings, writeBlockBytes);
    } catch (error) {
      for (const device of opened) device.close();
      throw error;
    }
  }

  /** The store over devices checkReadings passed: all with valid headers (existing) or all blank (new, formatted now). */
  private static async fromReadings(options: DeviceStoreOptions, readings: DeviceReading[], requestedBlockBytes: number): Promise<DeviceStore> {
    const base = readings[0]!.header;
    const startMode: 'new' | 'existing' = base === undefined ? 'new' : 'existing';
    const writeBlockBytes = base?.writeBlockBytes ?? requestedBlockBytes;
    if (base !== undefined) for (const [index, reading] of readings.entries()) checkHeader(options, reading.header!, base, index, readings.length);
    const identity = randomBytes(8);
    const signatureHigh = identity.readUInt32LE(0) || 1;
    const signatureLow = identity.readUInt32LE(4);
    const states = readings.map((reading, index) => {
      const header = reading.header ?? newHeader(options, reading.device, index, readings.length, writeBlockBytes, signatureHigh, signatureLow);
      const blockCount = Math.min(MAX_BLOCKS_PER_DEVICE, Math.floor((header.sizeBytes - DATA_START_BYTES) / writeBlockBytes));
      if (blockCount < 4) throw new ShoalError(ErrorCode.INVALID_ARGUMENT, `device ${reading.path} is too small: it must hold at least 4 write blocks of ${writeBlockBytes} bytes after the 64 KiB header`);
      if (reading.header === undefined && !reading.device.blockDevice) reading.device.grow(header.sizeBytes);
      const state = new DeviceState(index, reading.device, blockCount, header);
      state.nextHeaderSlot = reading.slot === 0 ? 1 : 0;
      return state;
    });
    const store = new DeviceStore(options, states, startMode, writeBlockBytes);
    if (base !== undefined) {
      store.truncates = mergeTruncates(readings.map((reading) => reading.header!.truncates));
      await store.readWarmState(options.stateFile);
    }
    if (options.stateFile !== undefined) await (options.stateFileIo ?? fileSystemStateIo).remove(options.stateFile);
    // Mark every device in use (not clean), with this open's stamp, before anything is written.
    await Promise.all(states.map((state) => store.writeHeader(state, false)));
    return store;
  }

  /**
   * The state file a clean close left, when every device header is clean, they all carry the
   * same open stamp and the file matches them (warmState); else the reason it cannot be used.
   */
  private async readWarmState(stateFile: string | undefined): Promise<void> {
    const headers = this.devices.map((device) => device.header);
    const stamp = headers[0]!;
    if (stateFile === undefined) {
      this.coldReason = 'it keeps no storage state file';
    } else if (!headers.every((header) => header.clean)) {
      this.coldReason = 'its devices were not closed cleanly (a crash, a kill or a power loss)';
    } else if (stamp.openStampHigh === 0 && stamp.openStampLow === 0) {
      this.coldReason = 'its devices were last closed by a version of Shoal without open stamps';
    } else if (!headers.every((header) => header.openStampHigh === stamp.openStampHigh && header.openStampLow === stamp.openStampLow)) {
      this.coldReason = 'its devices were last opened in different runs (their open stamps differ)';
    } else {
      this.warmState = await readState(this.stateFileIo, stateFile, this.devices, stamp.openStampHigh, stamp.openStampLow);
      if (this.warmState === undefined) this.coldReason = 'its storage state file is missing, damaged or from another run than its devices';
      else this.closedStamp = { high: stamp.openStampHigh, low: stamp.openStampLow };
    }
  }

  /**
   * Rebuilds the block tables from the devices and hands every live record to onRecord (the
   * namespace inserts it into its index), or, with onLiveBatch, each batch of scanner winners
   * whose live records the namespace inserts with one native call (onRecord then sees none).
   * A new namespace reports zeros.
   * @throws ShoalError IO_ERROR when a device cannot be read.
   */
  async coldStart(index: StoreIndex, onRecord: (record: ColdStartRecord) => void, onLiveBatch?: (winners: Buffer, variable: Buffer, count: number, setNames: string[]) => void): Promise<ColdStartReport> {
    this.index = index;
    let report: ColdStartReport;
    if (this.startMode === 'new') {
      report = emptyReport();
      for (const device of this.devices) for (let block = device.blockCount - 1; block >= 0; block--) device.freeBlocks.push(block);
    } else {
      report = await this.scanDevices(onRecord, onLiveBatch);
    }
    this.started = true;
    this.scheduleDefrag();
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
    return { high: this.signatureHigh, low: this.signatureLow };
  }

  /**
   * Warm restart: attaches the index without scanning the devices or visiting the index. Block
   * tables (sequences and live bytes per block) and tombstones come from the state file left by
   * close(), which was written after the last change to the index and is checked (CRC-32C,
   * signature, header counters, block counts) before it is trusted. O(blocks + tombstones), not
   * O(records). Only when canAttach().
   */
  async attach(index: StoreIndex): Promise<void> {
    const state = this.warmState;
    if (state === undefined) throw new Error('attach: the devices were not closed cleanly; use coldStart');
    this.warmState = undefined;
    this.index = index;
    this.nextSequence = state.nextSequence;
    this.tombstones = state.tombstones;
    const emptied: [DeviceState, number][] = [];
    for (const [deviceIndex, device] of this.devices.entries()) {
      device.sequences.set(state.sequences[deviceIndex]!);
      device.live.set(state.live[deviceIndex]!);
      for (let block = device.blockCount - 1; block >= 0; block--) {
        this.liveTotal += device.live[block]!;
        if (device.sequences[block] === 0) device.freeBlocks.push(block);
        else if (device.live[block] === 0) emptied.push([device, block]);
        else device.states[block] = SEALED;
      }
    }
    await this.freeBlocks(emptied);
    this.started = true;
    this.queueAllBelowWatermark();
    this.scheduleDefrag();
  }

  private async scanDevices(onRecord: (record: ColdStartRecord) => void, onLiveBatch: ((winners: Buffer, variable: Buffer, count: number, setNames: string[]) => void) | undefined): Promise<ColdStartReport> {
    const result = await coldStartScan({
      devices: this.devices.map((device) => ({ native: device.device.native, sequences: device.sequences, blockCount: device.blockCount })),
      signatureHigh: this.signatureHigh,
      signatureLow: this.signatureLow,
      writeBlockBytes: this.writeBlockBytes,
      nowSeconds: Math.floor(this.now() / 1000),
      truncates: this.truncates,
      withPayload: this.withPayload,
      onProgress: (scanned, total) => {
        this.coldStartProgress = { scanned, total };
        if (scanned < total) this.log(`namespace ${this.namespace}: cold start scanned ${(scanned / 1e6).toFixed(0)} of at most ${(total / 1e6).toFixed(0)} MB`);
      },
      onLiveBatch,
      onLive: (low, high) => {
        const size = locationSize(low, high);
        this.devices[high >>> 26]!.live[(high >>> 6) & 0xfffff]! += size;
        this.liveTotal += size;
      },
      onRecord: (record) => {
        const device = this.devices[record.locationHigh >>> 26]!;
        const size = locationSize(record.locationLow, record.locationHigh);
        device.live[(record.locationHigh >>> 6) & 0xfffff]! += size;
        this.liveTotal += size;
        if (record.tombstone || record.expiredShadow) {
          this.tombstones.set(record.digest.toString('latin1'), { low: record.locationLow, high: record.locationHigh, origin: record.originSequence });
        } else {
          onRecord(record);
        }
      },
    });
    let maxSequence = Math.max(...this.devices.map((device) => device.header.maxSequence));
    const emptied: [DeviceState, number][] = [];
    for (const device of this.devices) {
      for (let block = device.blockCount - 1; block >= 0; block--) {
        const sequence = device.sequences[block]!;
        maxSequence = Math.max(maxSequence, sequence);
        if (sequence === 0) device.freeBlocks.push(block);
        else if (device.live[block] === 0) emptied.push([device, block]);
        else device.states[block] = SEALED;
      }
    }
    this.nextSequence = maxSequence + 1;
    await this.freeBlocks(emptied);
    this.queueAllBelowWatermark();
    return result;
  }

  private account(low: number, high: number): void {
    const device = this.devices[locationDevice(high)];
    if (device === undefined) return;
    const size = locationSize(low, high);
    device.live[locationBlock(high)]! += size;
    this.liveTotal += size;
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
    if (this.failed !== undefined || this.closed || !this.started) this.checkWritable();
    const buffer = exchange.buffer;
    const u8 = exchange.u8;
    const keyBytes = (flags & RECORD_FLAG_HAS_KEY) !== 0 ? exchange.u32[EX_KEY_LENGTH >>> 2]! : 0;
    const size = (RECORD_HEADER_BYTES + (u8[EX_SET_LENGTH]! | (u8[EX_SET_LENGTH + 1]! << 8)) + keyBytes + payloadLength + RECORD_TRAILER_BYTES + 15) & ~15;
    const device = this.pickDevice(buffer);
    const block = this.place(device, size, false);
    const at = block.fill;
    if (this.encoderExchange !== exchange) {
      this.encoder = new this.native.RecordEncoder(buffer);
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
    if (this.tombstones.size > 0) this.dropTombstone(buffer.toString('latin1', EX_DIGEST, EX_DIGEST + 20));
    return durable || this.commitToDevice ? this.commit(device) : undefined;
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
    this.checkWritable();
    // A bulk load of awaited batches never lets the event loop turn: take the writes that have
    // landed now, so their blocks leave sealedInFlight (and their buffers can be reused) after
    // this call instead of after the whole load (every block a fresh 1 MiB buffer meanwhile).
    for (const device of this.devices) device.device.poll();
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
      const device = this.pickDevice(batch, slot + BATCH_DIGEST);
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
    const sealed = this.batchSealed ?? [];
    this.batchSealed = undefined;
    if (!formatted) this.fail(new ShoalError(ErrorCode.IO_ERROR, 'a batch of writes was placed but not formatted into its write blocks'));
    for (const block of sealed) this.writeSealed(block);
    if (formatted && this.tombstones.size > 0) {
      for (let i = 0; i < count; i++) {
        const slot = i * BATCH_SLOT_BYTES;
        if (batch.readUInt32LE(slot + BATCH_ACTION) === BATCH_WRITE_RECORD) this.dropTombstone(batch.toString('latin1', slot + BATCH_DIGEST, slot + BATCH_DIGEST + 20));
      }
    }
    if (!(durable || this.commitToDevice) || this.batchDevices.size === 0) return undefined;
    const commits = [...this.batchDevices].map((device) => this.commit(device));
    return Promise.all(commits).then(
      () => undefined,
      (error: ShoalError) => error,
    );
  }

  /**
   * Records the removal of the digest in the exchange, whose newest copy had this generation and
   * last-update time: writes a tombstone that hides every older copy after a cold start, and
   * releases the previous location. Overwrites ENTRY's generation, void time, last-update time
   * and location, and DATA[0, 8).
   * @throws ShoalError OUT_OF_SPACE, IO_ERROR.
   */
  remove(exchange: Exchange, previousLow: number, previousHigh: number, previousGeneration: number, previousLastUpdateMs: number, durable: boolean): Promise<void> | undefined {
    this.checkWritable();
    const buffer = exchange.buffer;
    const size = recordBytes(buffer.readUInt16LE(EX_SET_LENGTH), 0, 8);
    const device = this.pickDevice(buffer);
    const block = this.place(device, size, false);
    const at = block.fill;
    exchange.u32[(EX_ENTRY + ENTRY_GENERATION) >>> 2] = (previousGeneration + 1) >>> 0;
    exchange.u32[(EX_ENTRY + ENTRY_VOID_TIME) >>> 2] = 0;
    exchange.f64[(EX_ENTRY + ENTRY_LAST_UPDATE_MS) >>> 3] = Math.max(this.now(), previousLastUpdateMs);
    buffer.writeDoubleLE(0, EX_DATA);
    writeU64(buffer, EX_DATA, block.sequence);
    this.native.storageEncodeRecord(buffer, block.buffer, at, block.sequence, RECORD_FLAG_TOMBSTONE, 8);
    this.appended(block, size);
    const low = locationLow(at, size);
    const high = locationHigh(device.index, block.block, size);
    exchange.u32[(EX_ENTRY + ENTRY_LOCATION_LOW) >>> 2] = low;
    exchange.u32[(EX_ENTRY + ENTRY_LOCATION_HIGH) >>> 2] = high;
    const key = buffer.toString('latin1', EX_DIGEST, EX_DIGEST + 20);
    this.dropTombstone(key);
    this.tombstones.set(key, { low, high, origin: block.sequence });
    this.release(previousLow, previousHigh);
    return durable || this.commitToDevice ? this.commit(device) : undefined;
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

  /**
   * Rebuilds live-byte accounting from the index: visit every indexed location. One
   * synchronous walk of the whole index, so only for checks (tests): truncate and eviction
   * release the exact locations the index reports instead.
   */
  recount(visit: (take: (low: number, high: number) => void) => void): void {
    for (const device of this.devices) device.live.fill(0);
    this.liveTotal = 0;
    visit((low, high) => this.account(low, high));
    for (const tombstone of this.tombstones.values()) this.account(tombstone.low, tombstone.high);
    this.queueAllBelowWatermark();
    this.scheduleDefrag();
  }

  /**
   * The payload of the record at a location, from memory when its block is still there, else
   * with one aligned read. With digest, a record of another digest there is CORRUPTION.
   * @throws ShoalError CORRUPTION (checksum or digest mismatch), IO_ERROR.
   */
  read(low: number, high: number, digest?: Buffer): Promise<Buffer> {
    const device = this.devices[locationDevice(high)];
    if (device === undefined) return Promise.reject(new ShoalError(ErrorCode.CORRUPTION, `namespace ${this.namespace}: location names device ${locationDevice(high)}, which does not exist`));
    const block = locationBlock(high);
    const offset = locationOffset(low);
    const memory = this.blockInMemory(device, block);
    if (memory !== undefined) {
      try {
        return Promise.resolve(payloadAt(memory, offset, digest, this.namespace));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return device.device.readRecordPayload(this.blockOffset(block) + offset, locationSize(low, high), digest);
  }

  /**
   * The payload when the record's block is in memory (open or recently written), else
   * undefined. The result is a view into the block, valid until the next write: decode or copy
   * it at once. (The location comes from the index in the same tick, so no digest check.)
   */
  readFromMemory(low: number, high: number): Buffer | undefined {
    const device = this.devices[locationDevice(high)];
    if (device === undefined) return undefined;
    const memory = this.blockInMemory(device, locationBlock(high));
    return memory === undefined ? undefined : payloadView(memory, locationOffset(low));
  }

  /**
   * Persists a truncate marker (every record of the set, or of all sets, last updated before
   * beforeMs, stays gone after any restart) in every device header, durably.
   * @throws ShoalError IO_ERROR; RangeError when there are too many distinct truncated sets.
   */
  async truncate(set: string | undefined, beforeMs: number): Promise<void> {
    this.checkWritable();
    const next = addCut(this.truncates, set, beforeMs);
    if (next.length > MAX_TRUNCATE_MARKERS) throw new ShoalError(ErrorCode.INVALID_ARGUMENT, `namespace ${this.namespace}: at most ${MAX_TRUNCATE_MARKERS} sets can carry truncate markers`);
    this.truncates = next;
    await Promise.all(this.devices.map((device) => this.writeHeader(device, false)));
  }

  /** The truncate markers in force (a copy). */
  truncateMarkers(): TruncateMarker[] {
    return this.truncates.map((marker) => ({ ...marker }));
  }

  /** Flushes every open block and syncs every device (group commit). @throws ShoalError IO_ERROR. */
  async flush(): Promise<void> {
    await Promise.all(this.devices.map((device) => this.commit(device)));
  }

  /**
   * Stops background work, flushes and syncs, marks the devices clean and closes them.
   * Idempotent. @throws ShoalError IO_ERROR when the final flush fails (devices still close).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.gate.wake();
    if (this.defragTimer !== undefined) clearTimeout(this.defragTimer);
    this.defragTimer = undefined;
    if (this.defragRunning !== undefined) await this.defragRunning.catch(() => undefined);
    let failure: unknown;
    try {
      if (this.failed === undefined) {
        await this.flush();
        if (this.stateFile !== undefined && this.started) {
          const facts = { nextSequence: this.nextSequence, tombstones: this.tombstones, signatureHigh: this.signatureHigh, signatureLow: this.signatureLow, stamp: this.openStamp };
          await writeState(this.stateFileIo, this.stateFile, this.devices, facts, this.fileMode);
        }
        await Promise.all(this.devices.map((device) => this.writeHeader(device, true)));
      }
    } catch (error) {
      failure = error;
    }
    for (const device of this.devices) {
      if (device.current?.flushTimer !== undefined) clearTimeout(device.current.flushTimer);
      device.device.close();
    }
    if (failure !== undefined) throw failure;
  }

  stats(): DeviceStoreStats {
    let free = 0;
    let total = 0;
    for (const device of this.devices) {
      free += device.freeBlocks.length;
      total += device.blockCount;
    }
    return {
      deviceUsedBytes: this.liveTotal,
      deviceFreePct: total === 0 ? 0 : Math.floor((100 * free) / total),
      deviceTotalBytes: total * this.writeBlockBytes,
      freeBlocks: free,
      totalBlocks: total,
      defragPending: this.defragQueue.size,
      defragBlocks: this.counters.defragBlocks,
      defragMoved: this.counters.defragMoved,
      tombstones: this.tombstones.size,
      directIo: this.devices.every((device) => device.device.directIo) ? 'on' : 'off',
      ioEngine: this.devices.every((device) => device.device.ioEngine === 'io_uring') ? 'io_uring' : 'threads',
      writeBlocksFlushed: this.counters.flushed,
      commits: this.counters.commits,
      failed: this.failed !== undefined,
      writeBlocksInFlight: this.devices.reduce((sum, device) => sum + device.sealedInFlight.size, 0),
      writeBlocksInMemory: this.blocksInMemory(),
    };
  }

  private blocksInMemory(): number {
    const buffers = new Set<Buffer>(this.cache.values());
    for (const device of this.devices) {
      if (device.current !== undefined) buffers.add(device.current.buffer);
      for (const block of device.sealedInFlight.values()) buffers.add(block.buffer);
    }
    return buffers.size;
  }

  /** The devices, for fault injection in tests. */
  faultDevices(): NativeDevice[] {
    return this.devices.map((device) => device.device);
  }

  /** Injects a fault plan into every device (the store must have been opened with faults: true). */
  injectFaults(plan: FaultPlan): void {
    for (const device of this.devices) device.device.fault('plan', plan);
  }

  /** Where a location lives on its device (tests flip bits there). */
  deviceOffsetOf(low: number, high: number): { device: number; offset: number; size: number } {
    return { device: locationDevice(high), offset: this.blockOffset(locationBlock(high)) + locationOffset(low), size: locationSize(low, high) };
  }

  /** Forgets the post-write cache so reads go to the device (tests). */
  dropCache(): void {
    this.cache.clear();
  }

  /** Runs defragmentation now until nothing is pending (tests, and close of a nearly full device). */
  async defragNow(): Promise<void> {
    while (this.defragQueue.size > 0 && this.failed === undefined) {
      const before = this.defragQueue.size;
      await this.defragSlice();
      if (this.defragQueue.size >= before && this.defragQueue.size > 0) {
        // Nothing could be taken (blocks still being written): let their writes finish.
        await Promise.all(this.devices.flatMap((device) => [...device.pendingWrites])).catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    }
  }

  // ---- write path ----

  private checkWritable(): void {
    if (this.failed !== undefined) throw this.failed;
    if (this.closed) throw new ShoalError(ErrorCode.NOT_OPEN, `namespace ${this.namespace}: the store is closed`);
    if (!this.started) throw new ShoalError(ErrorCode.NOT_OPEN, `namespace ${this.namespace}: the store is not started (call coldStart first)`);
  }

  /** The device of the digest at buffer[digestAt, digestAt + 20). */
  private pickDevice(buffer: Buffer, digestAt = EX_DIGEST): DeviceState {
    const count = this.devices.length;
    return count === 1 ? this.devices[0]! : this.devices[(buffer[digestAt + 8]! | (buffer[digestAt + 9]! << 8)) % count]!;
  }

  /** A write block with room for size bytes; opens a new one (sealing the current) if needed. */
  private place(device: DeviceState, size: number, forDefrag: boolean): WriteBlock {
    const current = device.current;
    if (current !== undefined && current.fill + size <= this.writeBlockBytes) return current;
    if (size > this.writeBlockBytes - BLOCK_HEADER_BYTES) {
      throw new ShoalError(ErrorCode.RECORD_TOO_BIG, `namespace ${this.namespace}: a record of ${size} bytes does not fit a ${this.writeBlockBytes}-byte write block`);
    }
    const floor = forDefrag ? 0 : this.reserveBlocks;
    if (device.freeBlocks.length <= floor) {
      this.scheduleDefrag();
      throw new ShoalError(ErrorCode.OUT_OF_SPACE, `namespace ${this.namespace}: device ${device.device.path} is full (${device.freeBlocks.length} free write blocks kept for defragmentation); remove records, shorten TTLs or add devices`);
    }
    if (current !== undefined) this.seal(current);
    return this.openBlock(device);
  }

  private openBlock(device: DeviceState): WriteBlock {
    const block = device.freeBlocks.pop()!;
    const sequence = this.nextSequence++;
    const buffer = this.spareBlocks.pop() ?? Buffer.allocUnsafeSlow(this.writeBlockBytes);
    this.native.storageWriteBlockHeader(buffer, sequence, this.signatureHigh, this.signatureLow, device.index, block);
    const writeBlock = new WriteBlock(device, block, sequence, buffer);
    device.states[block] = OPEN;
    device.sequences[block] = sequence;
    device.live[block] = 0;
    device.current = writeBlock;
    return writeBlock;
  }

  private appended(block: WriteBlock, size: number): void {
    block.fill += size;
    block.device.live[block.block]! += size;
    this.liveTotal += size;
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
    this.cachePut(this.cacheKey(device, block.block), block.buffer);
    // A batch is still formatting records into this block: its write starts once they are in.
    if (this.batchSealed !== undefined) this.batchSealed.push(block);
    else this.writeSealed(block);
    if (device.live[block.block]! < this.lwmBytes) this.queueDefrag(device, block.block);
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
    this.counters.flushed++;
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
    if (this.cacheLimit <= 0) this.spareBuffer(block.buffer);
    this.gate.wake();
  }

  /** Resolves once block bytes [0, end) are written (one write in flight per block, in order). */
  private writeUpTo(block: WriteBlock, end: number): Promise<void> {
    if (block.written >= end) return Promise.resolve();
    if (this.failed !== undefined) return Promise.reject(this.failed);
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
    block.device.device.writeThen(this.blockOffset(block.block) + start, block.buffer, start, end, false, true, (error) => this.wrote(block, end, error));
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
      const failure = this.fail(error);
      for (const waiter of block.waiters.splice(0)) waiter.reject(failure);
    }
    if (block.sealed && !block.inflight) this.landed(block);
  }

  // ---- backpressure ----

  /** Whether a device has the most sealed blocks in flight (with poll: after collecting the writes that landed). */
  private blocked(poll: boolean): boolean {
    if (this.failed !== undefined || this.closed) return false;  // writers go on to their error
    for (const device of this.devices) {
      if (device.sealedInFlight.size < WRITE_BLOCKS_IN_FLIGHT_MAX) continue;
      if (poll) device.device.poll();
      if (device.sealedInFlight.size >= WRITE_BLOCKS_IN_FLIGHT_MAX) return true;
    }
    return false;
  }

  /** Group commit: resolves once everything appended to the device so far is synced. */
  private commit(device: DeviceState): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
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
    this.counters.commits++;
    Promise.all(waits)
      .then(() => device.device.sync())
      .then(
        () => {
          for (const waiter of batch) waiter.resolve();
        },
        (error: ShoalError) => {
          const failure = this.fail(error);
          for (const waiter of batch) waiter.reject(failure);
        },
      )
      .finally(() => {
        device.committing = false;
        if (device.durableWaiters.length > 0) this.runCommit(device);
      });
  }

  /** Latches the store into the failed state (writes refuse with IO_ERROR from now on; waiting writers go on to that error). */
  private fail(error: ShoalError): ShoalError {
    if (this.failed === undefined) {
      this.failed = new ShoalError(
        ErrorCode.IO_ERROR,
        `namespace ${this.namespace}: a device write failed (${error.message}); writes are refused until the namespace is reopened, which recovers everything acknowledged as durable`,
        { cause: error },
      );
      this.log(this.failed.message);
      this.gate.wake();
    }
    return this.failed;
  }

  // ---- headers ----

  private headerFor(device: DeviceState, clean: boolean): Buffer {
    device.header = {
      ...device.header,
      counter: device.header.counter + 1,
      clean,
      maxSequence: clean ? this.nextSequence - 1 : 0,
      truncates: this.truncates.map((marker) => ({ ...marker })),
      openStampHigh: this.openStamp.high,
      openStampLow: this.openStamp.low,
    };
    return encodeHeader(device.header, this.native.crc32c);
  }

  private async writeHeader(device: DeviceState, clean: boolean): Promise<void> {
    const slot = this.headerFor(device, clean);
    const at = device.nextHeaderSlot * HEADER_SLOT_BYTES;
    device.nextHeaderSlot ^= 1;
    try {
      await device.device.write(at, slot, 0, slot.length, true);
    } catch (error) {
      throw this.fail(error as ShoalError);
    }
  }

  // ---- blocks, cache ----

  private blockOffset(block: number): number {
    return DATA_START_BYTES + block * this.writeBlockBytes;
  }

  private cacheKey(device: DeviceState, block: number): number {
    return device.index * MAX_BLOCKS_PER_DEVICE + block;
  }

  private cachePut(key: number, buffer: Buffer): void {
    if (this.cacheLimit <= 0) return;
    this.cache.delete(key);
    this.cache.set(key, buffer);
    if (this.cache.size > this.cacheLimit) {
      const evicted = this.cache.keys().next().value!;
      const evictedBuffer = this.cache.get(evicted)!;
      this.cache.delete(evicted);
      const device = this.devices[Math.floor(evicted / MAX_BLOCKS_PER_DEVICE)];
      if (device?.sealedInFlight.get(evicted % MAX_BLOCKS_PER_DEVICE)?.buffer !== evictedBuffer) this.spareBuffer(evictedBuffer);
    }
  }

  /**
   * Keeps the buffer of a block that left memory for the next block to open. Only when nothing
   * can still read it: it is out of the cache and not being written (the callers' business),
   * and no defragmentation slice is running (a slice holds the blocks it read across awaits).
   * Never once the store has failed: writeUpTo then rejects at once, so a block can leave
   * sealedInFlight while a write of it is still in flight, and an I/O thread may still be
   * copying from its buffer (NativeDevice.write with sourceStable).
   */
  private spareBuffer(buffer: Buffer): void {
    if (this.failed !== undefined || this.defragSlices > 0 || this.defragRunning !== undefined || this.spareBlocks.length >= WRITE_BLOCK_SPARES || buffer.length !== this.writeBlockBytes) return;
    this.spareBlocks.push(buffer);
  }

  private blockInMemory(device: DeviceState, block: number): Buffer | undefined {
    const current = device.current;
    if (current !== undefined && current.block === block) return current.buffer;
    return device.sealedInFlight.get(block)?.buffer ?? this.cache.get(this.cacheKey(device, block));
  }

  private dropTombstone(key: string): void {
    const tombstone = this.tombstones.get(key);
    if (tombstone === undefined) return;
    this.tombstones.delete(key);
    this.release(tombstone.low, tombstone.high);
  }

  // ---- defragmentation ----

  private queueDefrag(device: DeviceState, block: number): void {
    this.defragQueue.add(this.cacheKey(device, block));
    this.scheduleDefrag();
  }

  private queueAllBelowWatermark(): void {
    for (const device of this.devices) {
      for (let block = 0; block < device.blockCount; block++) {
        if (device.states[block] === SEALED && device.live[block]! < this.lwmBytes) this.defragQueue.add(this.cacheKey(device, block));
      }
    }
  }

  private scheduleDefrag(): void {
    if (!this.started || this.closed || this.defragTimer !== undefined || this.defragRunning !== undefined || this.defragQueue.size === 0) return;
    this.defragTimer = setTimeout(() => {
      this.defragTimer = undefined;
      this.defragRunning = this.defragSlice()
        .catch((error: unknown) => this.log(`namespace ${this.namespace}: defragmentation stopped: ${(error as Error).message}`))
        .finally(() => {
          this.defragRunning = undefined;
          this.scheduleDefrag();
        });
    }, DEFRAG_SLEEP_MS);
    this.defragTimer.unref();
  }

  /**
   * One bounded slice: up to DEFRAG_BLOCKS_PER_SLICE blocks are read, their live records
   * re-appended, everything synced, then the source headers zeroed and synced, and only then
   * are the blocks free for reuse.
   */
  private async defragSlice(): Promise<void> {
    const room = this.gate.room();
    if (room !== undefined) await room;
    this.defragSlices++;
    try {
      await this.defragTaken();
    } finally {
      this.defragSlices--;
    }
  }

  private async defragTaken(): Promise<void> {
    const taken: [DeviceState, number][] = [];
    for (const key of this.defragQueue) {
      if (taken.length >= DEFRAG_BLOCKS_PER_SLICE) break;
      const device = this.devices[Math.floor(key / MAX_BLOCKS_PER_DEVICE)]!;
      const block = key % MAX_BLOCKS_PER_DEVICE;
      if (device.states[block] !== SEALED || device.live[block]! >= this.lwmBytes) {
        this.defragQueue.delete(key);
        continue;
      }
      if (device.sealedInFlight.has(block)) continue;  // its last write has not landed yet
      this.defragQueue.delete(key);
      device.states[block] = DEFRAGGING;
      taken.push([device, block]);
    }
    if (taken.length === 0) return;
    const contents = await Promise.all(
      taken.map(([device, block]) => this.blockInMemory(device, block) ?? device.device.read(this.blockOffset(block), this.writeBlockBytes)),
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
    await this.flush();
    await this.freeBlocks(done);
    this.counters.defragBlocks += done.length;
  }

  /** The two lowest sequences of blocks whose contents a cold start would still read. */
  private lowestSequences(): { first: number; firstKey: number; second: number } {
    let first = Infinity;
    let firstKey = -1;
    let second = Infinity;
    for (const device of this.devices) {
      const { states, sequences } = device;
      for (let block = 0; block < device.blockCount; block++) {
        if (states[block] === FREE) continue;
        const sequence = sequences[block]!;
        if (sequence < first) {
          second = first;
          first = sequence;
          firstKey = this.cacheKey(device, block);
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
  private async defragBlock(device: DeviceState, block: number, contents: Buffer, minimum: { first: number; firstKey: number; second: number }, slice: TimeSlice): Promise<void> {
    const count = this.native.storageParseBlock(contents, this.writeBlockBytes, this.signatureHigh, this.signatureLow, this.parseOut);
    // The parse output is shared by every block: keep this block's record places.
    const places = this.parseOut.slice(0, Math.max(0, 2 * count));
    const olderElsewhere = minimum.firstKey === this.cacheKey(device, block) ? minimum.second : minimum.first;
    for (let from = 0; from < count; from += DEFRAG_RECORDS_PER_CLOCK_CHECK) {
      if (slice.spent()) {
        await slice.next();
        const room = this.gate.room();
        if (room !== undefined) await room;
      }
      this.defragRecords(device, block, contents, places, from, Math.min(count, from + DEFRAG_RECORDS_PER_CLOCK_CHECK), olderElsewhere);
    }
  }

  private defragRecords(device: DeviceState, block: number, contents: Buffer, places: Int32Array, from: number, to: number, olderElsewhere: number): void {
    const blockSequence = device.sequences[block]!;
    for (let index = from; index < to; index++) {
      const offset = places[index * 2]!;
      const size = Math.ceil(places[index * 2 + 1]! / 16) * 16;
      const low = locationLow(offset, size);
      const high = locationHigh(device.index, block, size);
      const key = contents.toString('latin1', offset + RECORD_DIGEST_AT, offset + RECORD_DIGEST_AT + 20);
      if ((contents.readUInt16LE(offset + RECORD_FLAGS_AT) & RECORD_FLAG_TOMBSTONE) !== 0) {
        this.defragTombstone(device, block, contents, offset, size, low, high, key, olderElsewhere);
        continue;
      }
      if (this.index!.locate(contents, offset + RECORD_DIGEST_AT, this.out)) {
        if (this.out[0] === low && this.out[1] === high) {
          const moved = this.move(device, block, contents, offset, size);
          this.index!.relocate(contents, offset + RECORD_DIGEST_AT, moved[0]!, moved[1]!);
        }
        continue;  // else a newer indexed version hides this copy
      }
      if (this.tombstones.has(key)) continue;
      // An unindexed copy nothing hides (expired, evicted, truncated): if an older block may hold
      // an older copy (whose last-update time need not be older), keep the record's place with a
      // tombstone so that copy cannot come back.
      if (olderElsewhere < blockSequence) this.shadow(device, contents, offset, blockSequence, key);
    }
  }

  private defragTombstone(device: DeviceState, block: number, contents: Buffer, offset: number, size: number, low: number, high: number, key: string, olderElsewhere: number): void {
    const tombstone = this.tombstones.get(key);
    if (tombstone === undefined || tombstone.low !== low || tombstone.high !== high) return;
    device.live[block] = Math.max(0, device.live[block]! - size);
    this.liveTotal -= size;
    if (olderElsewhere > tombstone.origin) {
      this.tombstones.delete(key);  // no block older than the deletion remains: nothing to hide
      return;
    }
    const moved = this.moveCounted(device, contents, offset, size);
    tombstone.low = moved[0]!;
    tombstone.high = moved[1]!;
  }

  /** Re-appends a live record; returns its new location. */
  private move(device: DeviceState, block: number, contents: Buffer, offset: number, size: number): Uint32Array {
    device.live[block] = Math.max(0, device.live[block]! - size);
    this.liveTotal -= size;
    return this.moveCounted(device, contents, offset, size);
  }

  private moveCounted(device: DeviceState, contents: Buffer, offset: number, size: number): Uint32Array {
    const target = this.place(device, size, true);
    const at = target.fill;
    const written = this.native.storageRewriteRecord(contents, offset, target.buffer, at, target.sequence);
    if (written !== size) throw new Error(`defrag: rewrote ${written} bytes for a ${size}-byte record`);
    this.appended(target, size);
    this.counters.defragMoved++;
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
    const target = this.place(device, size, true);
    const at = target.fill;
    this.native.storageEncodeRecord(scratch, target.buffer, at, target.sequence, RECORD_FLAG_TOMBSTONE, 8);
    this.appended(target, size);
    this.tombstones.set(key, { low: locationLow(at, size), high: locationHigh(device.index, target.block, size), origin });
  }

  /**
   * Zeroes the headers of blocks whose contents are safely elsewhere (synced), so a cold start
   * never reads them again, then returns them to the free lists.
   */
  private async freeBlocks(blocks: [DeviceState, number][]): Promise<void> {
    if (blocks.length === 0) return;
    const zero = Buffer.alloc(IO_ALIGN_BYTES);
    const touched = new Set<DeviceState>();
    try {
      await Promise.all(blocks.map(([device, block]) => {
        touched.add(device);
        return device.device.write(this.blockOffset(block), zero, 0, zero.length, false);
      }));
      await Promise.all([...touched].map((device) => device.device.sync()));
    } catch (error) {
      throw this.fail(error as ShoalError);
    }
    for (const [device, block] of blocks) {
      this.liveTotal -= device.live[block]!;
      device.live[block] = 0;
      device.sequences[block] = 0;
      device.states[block] = FREE;
      this.cache.delete(this.cacheKey(device, block));
      device.freeBlocks.push(block);
    }
  }
}

function validateOptions(options: DeviceStoreOptions): number {
  const invalid = (message: string) => new ShoalError(ErrorCode.INVALID_ARGUMENT, `namespace ${options.namespace}: ${message}`);
  if (!Array.isArray(options.paths) || options.paths.length === 0 || options.paths.length > MAX_DEVICES) {
    throw invalid(`storage.paths must list 1 to ${MAX_DEVICES} devices`);
  }
  const writeBlockBytes = options.writeBlockBytes ?? WRITE_BLOCK_BYTES_DEFAULT;
  if (!Number.isInteger(writeBlockBytes) || writeBlockBytes < WRITE_BLOCK_BYTES_MIN || writeBlockBytes > WRITE_BLOCK_BYTES_MAX || (writeBlockBytes & (writeBlockBytes - 1)) !== 0) {
    throw invalid(`writeBlockBytes must be a power of two from ${WRITE_BLOCK_BYTES_MIN} to ${WRITE_BLOCK_BYTES_MAX}`);
  }
  if (!Number.isSafeInteger(options.sizeBytes) || options.sizeBytes < 0 || options.sizeBytes % IO_ALIGN_BYTES !== 0) {
    throw invalid('storage.sizeBytes must be a multiple of 4096');
  }
  const lwm = options.defragLwmPct ?? DEFAULT_DEFRAG_LWM_PCT;
  if (!(lwm >= 0 && lwm <= 95)) throw invalid('defragLwmPct must be 0..95');
  return writeBlockBytes;
}

/** The header of a device formatted now: files get the configured size (a larger blank file's tail stays unused). */
function newHeader(options: DeviceStoreOptions, device: NativeDevice, index: number, count: number, writeBlockBytes: number, signatureHigh: number, signatureLow: number): DeviceHeader {
  return {
    counter: 0,
    signatureHigh,
    signatureLow,
    deviceIndex: index,
    deviceCount: count,
    writeBlockBytes,
    dataStart: DATA_START_BYTES,
    sizeBytes: device.blockDevice || options.sizeBytes === 0 ? device.sizeBytes : options.sizeBytes,
    clean: false,
    createdMs: Date.now(),
    maxSequence: 0,
    namespace: options.namespace,
    truncates: [],
    openStampHigh: 0,
    openStampLow: 0,
  };
}

function checkHeader(options: DeviceStoreOptions, header: DeviceHeader, base: DeviceHeader, index: number, count: number): void {
  const problem = (what: string) => new ShoalError(ErrorCode.CORRUPTION, `namespace ${options.namespace}: device ${options.paths[index]} ${what}; check storage.paths (order and files) against the ones this namespace was created with`);
  if (header.namespace !== options.namespace) throw problem(`belongs to namespace "${header.namespace}"`);
  if (header.signatureHigh !== base.signatureHigh || header.signatureLow !== base.signatureLow) throw problem('belongs to another instance of this namespace (signature differs)');
  if (header.deviceIndex !== index || header.deviceCount !== count) throw problem(`is device ${header.deviceIndex} of ${header.deviceCount}, not ${index} of ${count}`);
  if (header.writeBlockBytes !== base.writeBlockBytes) throw problem('has a different write-block size');
  if (options.writeBlockBytes !== undefined && options.writeBlockBytes !== header.writeBlockBytes) {
    throw problem(`was created with writeBlockBytes ${header.writeBlockBytes}, not ${options.writeBlockBytes}`);
  }
}

function mergeTruncates(lists: TruncateMarker[][]): TruncateMarker[] {
  const merged = new Map<string | undefined, number>();
  for (const list of lists) for (const marker of list) merged.set(marker.set, Math.max(merged.get(marker.set) ?? 0, marker.beforeMs));
  return [...merged].map(([set, beforeMs]) => ({ set, beforeMs }));
}

function writeU64(buffer: Buffer, at: number, value: number): void {
  buffer.writeUInt32LE(value % 0x100000000, at);
  buffer.writeUInt32LE(Math.floor(value / 0x100000000), at + 4);
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
