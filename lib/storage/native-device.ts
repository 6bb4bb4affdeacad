/**
 * One device as the storage engine uses it: the native BlockDevice (native/block_device.h)
 * behind promises. Each request gets a small integer id; completions arrive in batches through
 * one callback that reads a shared Int32Array, so no JS object is made per completion beyond
 * the promise the caller awaits.
 *
 * Completion layout (Int32, 4 per completion): id, result (0 or -errno; -74 EBADMSG: the
 * record failed its checksum), offset of the data in the results buffer, data length.
 */
import { addon } from '../native/addon';
import { ErrorCode, ShoalError } from '../errors';
import { COMPLETION_CAPACITY, DEFAULT_IO_THREADS, MIN_RESULTS_BYTES } from './constants';
import { RECORD_DIGEST_AT, RECORD_HEADER_BYTES, RECORD_KEY_LENGTH_AT, RECORD_PAYLOAD_LENGTH_AT, RECORD_SET_LENGTH_AT } from './format';

/** Whether digest equals the 20 bytes at source[at] (cheaper than Buffer.compare with ranges). */
function sameDigest(digest: Buffer, source: Buffer, at: number): boolean {
  for (let index = 0; index < 20; index++) if (digest[index] !== source[at + index]) return false;
  return true;
}

export type DirectIoMode = 'auto' | 'required' | 'off';
/** The engine that executes a device's I/O (docs/native-boundary.md, "I/O engines"). */
export type IoEngine = 'io_uring' | 'threads';
/**
 * 'threads' (the default): everything on the device's thread pool. 'io_uring': reads through
 * io_uring when the kernel allows it and the device has no fault injection, else the threads
 * (`ioEngine` and `info().ioUringErrno` say what happened). Not the default because it measured
 * slower for db.get on the 2-core VM it was built on (docs/storage.md, "I/O engines").
 */
export type IoEngineMode = 'threads' | 'io_uring';
const DEFAULT_IO_ENGINE: IoEngineMode = 'threads';

export interface NativeBlockDevice {
  info(): { path: string; directIo: boolean; ioEngine: IoEngine; ioUringErrno: number; blockDevice: boolean; sizeBytes: number; fileBytes: number; created: boolean; faults: boolean; open: boolean };
  read(id: number, offset: number, length: number, verifyRecord: boolean): void;
  submitReads(count: number): void;
  write(id: number, offset: number, source: Buffer, sourceStart: number, sourceEnd: number, syncAfter: boolean, sourceStable: boolean): void;
  sync(id: number): void;
  readSync(offset: number, length: number): Buffer;
  writeSync(offset: number, source: Buffer, sync: boolean): void;
  pending(): number;
  poll(): void;
  fault(command: string, ...args: unknown[]): unknown;
  grow(sizeBytes: number): void;
  close(): void;
}

/** What fault('plan') accepts (native/io_backend.h FaultPlan). */
export interface FaultPlan {
  failWriteIn?: number;
  failWritesAfter?: boolean;
  failSyncIn?: number;
  tearWriteIn?: number;
  tearKeepBytes?: number;
  errno?: number;
  holdUnsynced?: boolean;
  /** Each write waits a random 0..this many µs before it lands (reorders writes like a device). */
  maxWriteDelayUs?: number;
}

/** Formats records from one exchange into the current write block (native/storage_format.cc). */
export interface NativeRecordEncoder {
  setBlock(block: Buffer, sequence: number): void;
  /** Padded bytes written at offset, or -1 when the record does not fit. */
  encode(offset: number, flags: number, payloadLength: number): number;
}

export interface StorageNative {
  BlockDevice: new (options: object) => NativeBlockDevice;
  RecordEncoder: new (exchange: Buffer) => NativeRecordEncoder;
  StorageScanner: new (options: object) => NativeScanner;
  storageEncodeRecord(exchange: Buffer, block: Buffer, offset: number, sequence: number, flags: number, payloadLength: number): number;
  storageRewriteRecord(source: Buffer, sourceOffset: number, block: Buffer, offset: number, sequence: number): number;
  storageWriteBlockHeader(block: Buffer, sequence: number, signatureHigh: number, signatureLow: number, device: number, blockIndex: number): void;
  storageParseBlock(block: Buffer, length: number, signatureHigh: number, signatureLow: number, out: Int32Array): number;
  storageCheckRecord(buffer: Buffer, offset: number, length: number): number;
  crc32c(data: Uint8Array, seed?: number): number;
}

export interface NativeScanner {
  /** Reads every device newest block first; live winners arrive in onBatch while it goes on. */
  scan(
    devices: NativeBlockDevice[],
    sequences: Float64Array[],
    blockCounts: number[],
    dataStart: number,
    blockBytes: number,
    onBatch: (winners: Buffer, variable: Buffer, count: number, newSetNames: string[]) => void,
    callback: (error: Error | null, result?: { validBlocks: number; bytesScanned: number; ms: number }) => void,
  ): void;
  progress(): number;
  finish(): ScanFinish;
}

/** What a device scan counted. */
export interface ScanCounts {
  /** Valid record copies read (all versions). */
  recordsSeen: number;
  corrupt: number;
  expired: number;
  tombstones: number;
  truncated: number;
  /** Tombstones and expired records kept because older copies remain on the devices. */
  shadows: number;
  validBlocks: number;
  bytesScanned: number;
}

export interface ScanFinish extends ScanCounts {
  count: number;
  winners: Buffer;
  variable: Buffer;
  setNames: string[];
}

/** The addon's storage exports. @throws Error with a build hint when the addon is missing. */
export function storageNative(): StorageNative {
  return addon() as unknown as StorageNative;
}

const EBADMSG = 74;
/** Reads batched per native call, and the batch size that is submitted without waiting for the tick to end. */
const SUBMISSION_CAPACITY = 1024;
const SUBMIT_EAGER_COUNT = 64;
const READ_RAW = 0;
const READ_PAYLOAD = 1;
/** A write whose completion calls a function at once instead of settling a promise (writeThen). */
const CALLBACK = 2;

function errnoName(errno: number): string {
  const names: Record<number, string> = { 5: 'EIO', 28: 'ENOSPC', 30: 'EROFS', 74: 'EBADMSG', 22: 'EINVAL', 12: 'ENOMEM' };
  return names[errno] ?? `errno ${errno}`;
}

/** Maps a native completion result to the error the caller sees. */
export function ioError(result: number, what: string, path: string): ShoalError {
  if (-result === EBADMSG) {
    return new ShoalError(ErrorCode.CORRUPTION, `${what} on ${path}: the record failed its checksum (it is not served)`);
  }
  return new ShoalError(ErrorCode.IO_ERROR, `${what} on ${path} failed: ${errnoName(-result)}`);
}

export interface NativeDeviceOptions {
  path: string;
  /** The size a file created now gets (a file that exists is never resized here; see grow()). */
  sizeBytes: number;
  create: boolean;
  /** The exact mode of a file created now (default 0o600, owner only). */
  fileMode?: number;
  directIo: DirectIoMode;
  threads?: number;
  /** Default: the SHOAL_IO_ENGINE environment variable ('threads' or 'io_uring'), else 'threads'. */
  ioEngine?: IoEngineMode;
  faults?: boolean;
  /** Tests: behave as a file system that refuses O_DIRECT. */
  refuseDirectIo?: boolean;
  /** Tests: behave as a kernel that refuses io_uring_setup (EPERM, as under a seccomp filter). */
  refuseIoUring?: boolean;
  resultsBytes?: number;
}

/**
 * The engine mode asked for: `requested`, else SHOAL_IO_ENGINE, else DEFAULT_IO_ENGINE.
 * @throws ShoalError INVALID_ARGUMENT for any other value (from either source).
 */
export function ioEngineMode(requested: IoEngineMode | undefined): IoEngineMode {
  const mode: unknown = requested ?? process.env.SHOAL_IO_ENGINE ?? DEFAULT_IO_ENGINE;
  if (mode === 'threads' || mode === 'io_uring') return mode;
  const source = requested === undefined ? 'SHOAL_IO_ENGINE' : 'ioEngine';
  throw new ShoalError(ErrorCode.INVALID_ARGUMENT, `${source} must be 'threads' or 'io_uring', not ${JSON.stringify(mode)}`);
}

type Resolve = (value: Buffer | undefined) => void;
type Reject = (error: ShoalError) => void;
/** writeThen's completion: undefined when the write landed, else its error. */
export type WriteDone = (error: ShoalError | undefined) => void;

export class NativeDevice {
  readonly path: string;
  readonly native: NativeBlockDevice;
  readonly directIo: boolean;
  /** 'io_uring' when reads go through io_uring, 'threads' when everything runs on the thread pool. */
  readonly ioEngine: IoEngine;
  /** Usable bytes: the file's size aligned down to 4 KiB, or a block device's size. */
  sizeBytes: number;
  /** The file's size in bytes (a block device: sizeBytes). */
  fileBytes: number;
  /** This open created the file. */
  readonly created: boolean;
  readonly blockDevice: boolean;
  readonly faults: boolean;
  private readonly completions: Int32Array;
  private readonly results: Buffer;
  private readonly resolves: (Resolve | undefined)[] = [];
  private readonly rejects: (Reject | undefined)[] = [];
  private readonly kinds: number[] = [];
  private readonly digests: (Buffer | undefined)[] = [];
  private readonly callbacks: (WriteDone | undefined)[] = [];
  private readonly freeIds: number[] = [];
  private nextId = 1;
  /** Reads queued in this tick, submitted together (SUBMISSION_CAPACITY at most per call). */
  private readonly submissions: Float64Array;
  private submissionCount = 0;
  private submitScheduled = false;
  private readonly submitNow = (): void => {
    this.submitScheduled = false;
    if (this.submissionCount === 0) return;
    const count = this.submissionCount;
    this.submissionCount = 0;
    this.native.submitReads(count);
  };

  /**
   * @throws ShoalError LOCKED when the device is already open, IO_ERROR when it cannot be opened,
   * INVALID_ARGUMENT for an unknown ioEngine (or SHOAL_IO_ENGINE).
   */
  constructor(options: NativeDeviceOptions) {
    this.path = options.path;
    const ioEngine = ioEngineMode(options.ioEngine) === 'io_uring' ? 1 : 0;
    const completionBuffer = Buffer.alloc(COMPLETION_CAPACITY * 16);
    this.completions = new Int32Array(completionBuffer.buffer, completionBuffer.byteOffset, COMPLETION_CAPACITY * 4);
    this.results = Buffer.alloc(Math.max(MIN_RESULTS_BYTES, options.resultsBytes ?? 0));
    const directIo = options.directIo === 'off' ? 0 : options.directIo === 'required' ? 2 : 1;
    const submissionBuffer = Buffer.alloc(SUBMISSION_CAPACITY * 32);
    this.submissions = new Float64Array(submissionBuffer.buffer, submissionBuffer.byteOffset, SUBMISSION_CAPACITY * 4);
    try {
      this.native = new (storageNative().BlockDevice)({
        path: options.path,
        sizeBytes: options.sizeBytes,
        create: options.create,
        fileMode: options.fileMode,
        directIo,
        threads: options.threads ?? DEFAULT_IO_THREADS,
        ioEngine,
        faults: options.faults === true,
        refuseDirectIo: options.refuseDirectIo === true,
        refuseIoUring: options.refuseIoUring === true,
        completions: completionBuffer,
        submissions: submissionBuffer,
        results: this.results,
        onComplete: (count: number) => this.onComplete(count),
      });
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === ErrorCode.LOCKED) throw new ShoalError(ErrorCode.LOCKED, (error as Error).message, { cause: error });
      if (code === ErrorCode.OUT_OF_SPACE) throw new ShoalError(ErrorCode.OUT_OF_SPACE, (error as Error).message, { cause: error });
      throw new ShoalError(ErrorCode.IO_ERROR, (error as Error).message, { cause: error });
    }
    const info = this.native.info();
    this.directIo = info.directIo;
    this.ioEngine = info.ioEngine;
    this.sizeBytes = info.sizeBytes;
    this.fileBytes = info.fileBytes;
    this.created = info.created;
    this.blockDevice = info.blockDevice;
    this.faults = info.faults;
  }

  /**
   * Extends a file device to sizeBytes (a multiple of 4096; never shrinks it); the new bytes
   * read as zeros. Only for a file the store found blank, or restores (storage.repairDevices).
   * @throws ShoalError OUT_OF_SPACE, IO_ERROR.
   */
  grow(sizeBytes: number): void {
    try {
      this.native.grow(sizeBytes);
    } catch (error) {
      const code = (error as { code?: string }).code === ErrorCode.OUT_OF_SPACE ? ErrorCode.OUT_OF_SPACE : ErrorCode.IO_ERROR;
      throw new ShoalError(code, (error as Error).message, { cause: error });
    }
    const info = this.native.info();
    this.sizeBytes = info.sizeBytes;
    this.fileBytes = info.fileBytes;
  }

  /** Reads `length` bytes at `offset` (any alignment; at most the results buffer). */
  read(offset: number, length: number): Promise<Buffer> {
    return new Promise<Buffer | undefined>((resolve, reject) => {
      const id = this.take(resolve, reject, READ_RAW, undefined);
      this.native.read(id, offset, length, false);
    }) as Promise<Buffer>;
  }

  /**
   * Reads the record at `offset` (padded size `length`), checks its CRC on the I/O thread and
   * resolves with a copy of its payload. Rejects CORRUPTION when the checksum or the digest
   * (when given) does not match, IO_ERROR when the read fails.
   */
  readRecordPayload(offset: number, length: number, digest: Buffer | undefined): Promise<Buffer> {
    return new Promise<Buffer | undefined>((resolve, reject) => {
      const id = this.take(resolve, reject, READ_PAYLOAD, digest);
      this.queueRead(id, offset, length);
    }) as Promise<Buffer>;
  }

  /**
   * Writes source[start, end) (zero-padded to 4 KiB) at the aligned offset. The bytes are
   * copied at once, unless `sourceStable`: the caller promises not to change source[start,
   * end) until the returned promise settles (bytes past `end` may change), and the copy is made
   * on an I/O thread instead of the JS thread (write blocks, which only grow at their end).
   */
  write(offset: number, source: Buffer, start: number, end: number, syncAfter: boolean, sourceStable = false): Promise<void> {
    return new Promise<Buffer | undefined>((resolve, reject) => {
      const id = this.take(resolve, reject, READ_RAW, undefined);
      this.native.write(id, offset, source, start, end, syncAfter, sourceStable);
    }) as unknown as Promise<void>;
  }

  /**
   * write(), but `done` is called as soon as the completion is delivered, from the event loop
   * or from poll(), rather than when a promise's continuation runs: a caller that never yields
   * to the event loop still learns at poll() that the write landed. `done` must not throw, nor
   * call poll() (it runs inside a delivery).
   * @throws RangeError/TypeError for a write outside the device.
   */
  writeThen(offset: number, source: Buffer, start: number, end: number, syncAfter: boolean, sourceStable: boolean, done: WriteDone): void {
    const id = this.take(undefined, undefined, CALLBACK, undefined);
    this.callbacks[id] = done;
    try {
      this.native.write(id, offset, source, start, end, syncAfter, sourceStable);
    } catch (error) {
      this.callbacks[id] = undefined;
      this.freeIds.push(id);
      throw error;
    }
  }

  sync(): Promise<void> {
    return new Promise<Buffer | undefined>((resolve, reject) => {
      const id = this.take(resolve, reject, READ_RAW, undefined);
      this.native.sync(id);
    }) as unknown as Promise<void>;
  }

  /**
   * Settles the promises of the operations that have already finished, now instead of when the
   * event loop next turns (their callbacks still run as microtasks). For a caller that keeps the
   * JS thread busy; must not be called from a settlement callback's synchronous code path of
   * this device (it would deliver re-entrantly).
   */
  poll(): void {
    this.native.poll();
  }

  pending(): number {
    return this.native.pending();
  }

  /** Fault injection (only on a device opened with faults: true). */
  fault(command: 'plan', plan: FaultPlan): void;
  fault(command: 'flip', offset: number, bit: number): void;
  fault(command: 'clearFlips' | 'die' | 'reset'): void;
  fault(command: 'counts'): { reads: number; writes: number; syncs: number };
  fault(command: string, ...args: unknown[]): unknown {
    return this.native.fault(command, ...args);
  }

  /** Finishes queued I/O (its promises settle) and closes. Idempotent. */
  close(): void {
    if (this.submissionCount > 0 && this.native.info().open) this.submitNow();
    this.native.close();
  }

  /**
   * Queues a verified record read; reads queued in one tick go to the native pool in one call
   * (one lock, few wake-ups), at the latest when the event loop reaches its check phase.
   */
  private queueRead(id: number, offset: number, length: number): void {
    if (this.submissionCount === SUBMISSION_CAPACITY) this.submitNow();
    const at = this.submissionCount++ * 4;
    const submissions = this.submissions;
    submissions[at] = id;
    submissions[at + 1] = offset;
    submissions[at + 2] = length;
    submissions[at + 3] = 1;
    if (this.submissionCount >= SUBMIT_EAGER_COUNT) this.submitNow();
    else if (!this.submitScheduled) {
      this.submitScheduled = true;
      setImmediate(this.submitNow);
    }
  }

  private take(resolve: Resolve | undefined, reject: Reject | undefined, kind: number, digest: Buffer | undefined): number {
    const id = this.freeIds.length > 0 ? this.freeIds.pop()! : this.nextId++;
    this.resolves[id] = resolve;
    this.rejects[id] = reject;
    this.kinds[id] = kind;
    this.digests[id] = digest;
    return id;
  }

  private onComplete(count: number): void {
    const completions = this.completions;
    for (let index = 0; index < count; index++) {
      const id = completions[index * 4]!;
      const result = completions[index * 4 + 1]!;
      const at = completions[index * 4 + 2]!;
      const length = completions[index * 4 + 3]!;
      const resolve = this.resolves[id]!;
      const reject = this.rejects[id]!;
      const kind = this.kinds[id]!;
      const digest = this.digests[id];
      this.resolves[id] = undefined;
      this.rejects[id] = undefined;
      this.digests[id] = undefined;
      this.freeIds.push(id);
      if (kind === CALLBACK) {
        this.callBack(id, result);
      } else if (result < 0) {
        reject(ioError(result, kind === READ_PAYLOAD ? 'reading a record' : 'device I/O', this.path));
      } else if (kind === READ_PAYLOAD) {
        this.deliverPayload(at, length, digest, resolve, reject);
      } else if (length > 0) {
        resolve(Buffer.from(this.results.subarray(at, at + length)));
      } else {
        resolve(undefined);
      }
    }
  }

  private callBack(id: number, result: number): void {
    const done = this.callbacks[id]!;
    this.callbacks[id] = undefined;
    try {
      done(result < 0 ? ioError(result, 'device I/O', this.path) : undefined);
    } catch (error) {
      // Never into the native delivery loop: report it as the uncaught error it is.
      queueMicrotask(() => {
        throw error;
      });
    }
  }

  private deliverPayload(at: number, length: number, digest: Buffer | undefined, resolve: Resolve, reject: Reject): void {
    const results = this.results;
    if (digest !== undefined && !sameDigest(digest, results, at + RECORD_DIGEST_AT)) {
      reject(new ShoalError(ErrorCode.CORRUPTION, `reading a record on ${this.path}: the record there belongs to another digest`));
      return;
    }
    const start = at + RECORD_HEADER_BYTES + results[at + RECORD_SET_LENGTH_AT]! + results.readUInt16LE(at + RECORD_KEY_LENGTH_AT);
    const payloadLength = results.readUInt32LE(at + RECORD_PAYLOAD_LENGTH_AT);
    if (start + payloadLength > at + length) {
      reject(new ShoalError(ErrorCode.CORRUPTION, `reading a record on ${this.path}: inconsistent lengths`));
      return;
    }
    resolve(Buffer.from(results.subarray(start, start + payloadLength)));
  }
}
