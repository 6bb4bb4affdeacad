/**
 * Cold start: the native StorageScanner reads every device on a worker thread (block headers
 * in parallel, then the valid blocks newest first with large aligned reads) and checks every
 * record. Newest first, the first copy of a digest it meets is final, so batches of live
 * records arrive here while it reads on, and are handed one at a time to the store and the
 * namespace's index; tombstones and expired or truncated newest copies that still hide older
 * copies (shadows) come at the end, from finish().
 *
 * Winner layout (96 bytes each, native/storage_scan.cc):
 *   0 digest(20) | 20 u32 generation | 24 u32 void time | 28 u32 flags (1 tombstone, 2 has key,
 *   4 expired shadow, 8 payload holds the key) | 32 f64 last-update ms | 40 u32 device | 44 u32 block | 48 u32 offset |
 *   52 u32 padded size | 56 u32 offset in `variable` | 60 u8 set length | 61 u8 key type |
 *   62 u16 key length | 64 u32 payload length (withPayload) | 68 u32 copies seen |
 *   72 f64 origin sequence (tombstones: the block sequence of the deletion) | 80 u32 set index
 *   (into setNames) | 84 u32 location low | 88 u32 location high | 92 reserved
 * `variable` holds set name, key and (withPayload) payload of each winner back to back.
 */
import { ErrorCode, ShoalError } from '../errors';
import { COLD_START_CHUNK_BYTES, COLD_START_PROGRESS_MS, COLD_START_WINNERS_PER_SLICE, DATA_START_BYTES } from './constants';
import { nextTurn } from './event-loop';
import type { TruncateMarker } from './format';
import { type NativeBlockDevice, type ScanCounts, storageNative } from './native-device';

const WINNER_BYTES = 96;
const WINNER_TOMBSTONE = 1;
const WINNER_HAS_KEY = 2;
const WINNER_EXPIRED_SHADOW = 4;
const WINNER_PAYLOAD_KEY = 8;

/**
 * One recovered record, valid only during the onRecord call (one object is reused for all;
 * digest, key and payload are views, made only when asked for).
 */
export class ColdStartRecord {
  generation = 0;
  voidTime = 0;
  lastUpdateMs = 0;
  /** Index into the scan's set names (stable within one cold start), for a cheap set-id cache. */
  setIndex = 0;
  hasKey = false;
  /** The payload holds the user key (the index's FLAG_HAS_KEY). */
  payloadHasKey = false;
  keyType = 0;
  locationLow = 0;
  locationHigh = 0;
  tombstone = false;
  expiredShadow = false;
  originSequence = 0;
  /** Where this record's fields are: winners[at, at + 96) and variable[variableAt, ...). */
  at = 0;
  variableAt = 0;
  setLength = 0;
  keyLength = 0;
  payloadLength = 0;

  constructor(
    readonly winners: Buffer,
    readonly variable: Buffer,
    readonly setNames: string[],
    private readonly withPayload: boolean,
  ) {}

  get digest(): Buffer {
    return this.winners.subarray(this.at, this.at + 20);
  }

  /** Copies the digest into target[offset, offset + 20) without allocating. */
  copyDigest(target: Uint8Array, offset: number): void {
    const winners = this.winners;
    const at = this.at;
    for (let index = 0; index < 20; index++) target[offset + index] = winners[at + index]!;
  }

  get setName(): string {
    return this.setNames[this.setIndex]!;
  }

  get key(): Buffer | undefined {
    const start = this.variableAt + this.setLength;
    return this.keyLength > 0 ? this.variable.subarray(start, start + this.keyLength) : undefined;
  }

  /** The payload (withPayload only, live records only). */
  get payload(): Buffer | undefined {
    if (!this.withPayload || this.tombstone || this.expiredShadow) return undefined;
    const start = this.variableAt + this.setLength + this.keyLength;
    return this.variable.subarray(start, start + this.payloadLength);
  }

  /** Copies the payload into target at offset (withPayload only); returns its length. */
  copyPayload(target: Buffer, offset: number): number {
    const start = this.variableAt + this.setLength + this.keyLength;
    return this.variable.copy(target, offset, start, start + this.payloadLength);
  }
}

export interface ColdStartReport extends ScanCounts {
  /** Live records handed to the index. */
  records: number;
  /** All of it, from the first read to the last record handed over. */
  ms: number;
  /** Reading and checking the devices (native, worker threads). */
  scanMs: number;
  /** Handing the winners to the index (JS thread; mostly while the scan goes on). */
  indexMs: number;
  megabytesPerSecond: number;
}

export interface ColdStartOptions {
  devices: { native: NativeBlockDevice; sequences: Float64Array; blockCount: number }[];
  signatureHigh: number;
  signatureLow: number;
  writeBlockBytes: number;
  nowSeconds: number;
  truncates: TruncateMarker[];
  withPayload: boolean;
  /**
   * Replay after a checkpoint (checkpoint.ts): read only blocks of this sequence or newer (the
   * headers of all blocks are still read, so `sequences` is complete), and hand over every
   * newest copy that is a tombstone, expired or truncated as a shadow, since older copies may
   * lie in blocks not read. 0 (the default): the full cold start.
   */
  minSequence?: number;
  /**
   * Recovery: nothing is handed over before this settles (the scan reads meanwhile, its
   * batches wait in memory: the tail's winners), so the reads overlap the index image's load;
   * nothing at all if it resolves to false. It must not reject.
   */
  deliverAfter?: Promise<boolean>;
  onRecord: (record: ColdStartRecord) => void;
  /**
   * The batch path for live records: given, onRecord sees only tombstones and shadows, each
   * live record's location goes to onLive (a few numbers, no record object), and then the whole
   * batch to onLiveBatch, which inserts its live winners into the index in one native call
   * (PrimaryIndex.insertWinners skips tombstones and shadows).
   */
  onLive?: (locationLow: number, locationHigh: number) => void;
  onLiveBatch?: (winners: Buffer, variable: Buffer, count: number, setNames: string[]) => void;
  /** Called about every COLD_START_PROGRESS_MS while the devices are read, and after each device. */
  onProgress?: (bytesScanned: number, bytesTotal: number) => void;
}

/** One batch of live winners from the scanner. */
interface ScanBatch {
  winners: Buffer;
  variable: Buffer;
  count: number;
  newSetNames: string[];
}

/** @throws ShoalError IO_ERROR when a device cannot be read. */
export async function coldStartScan(options: ColdStartOptions): Promise<ColdStartReport> {
  const started = performance.now();
  const native = storageNative();
  const scanner = new native.StorageScanner({
    signatureHigh: options.signatureHigh,
    signatureLow: options.signatureLow,
    nowSeconds: options.nowSeconds,
    withPayload: options.withPayload,
    minSequence: options.minSequence ?? 0,
    chunkBytes: Math.max(COLD_START_CHUNK_BYTES, options.writeBlockBytes),
    truncates: options.truncates.map((marker) => ({ set: marker.set ?? null, beforeMs: marker.beforeMs })),
  });
  const total = options.devices.reduce((sum, device) => sum + device.blockCount * options.writeBlockBytes, 0);
  const setNames: string[] = [];
  let records = 0;
  let indexMs = 0;
  const handOver = (batch: ScanBatch): void => {
    const handing = performance.now();
    for (const name of batch.newSetNames) setNames.push(name);
    records += deliver(batch, setNames, options.withPayload, options.onRecord, options.onLiveBatch === undefined ? undefined : options.onLive);
    options.onLiveBatch?.(batch.winners, batch.variable, batch.count, setNames);
    indexMs += performance.now() - handing;
  };
  // The scanner may deliver several batches in one callback when the JS thread fell behind:
  // they are queued, and handed over one (a few ms of inserts) per event-loop turn, in order
  // (each owns its buffers), never in the callback itself.
  const queued: ScanBatch[] = [];
  let handingOver: Promise<void> | undefined;
  let handOverError: unknown;
  const onBatch = (winners: Buffer, variable: Buffer, count: number, newSetNames: string[]) => {
    queued.push({ winners, variable, count, newSetNames });
    if (handingOver !== undefined) return;
    handingOver = (async () => {
      const delivering = options.deliverAfter === undefined || (await options.deliverAfter);
      while (queued.length > 0) {
        await nextTurn();
        const batch = queued.shift()!;
        if (delivering) handOver(batch);
      }
    })().then(
      () => {
        handingOver = undefined;
      },
      (error: unknown) => {
        handOverError ??= error;
        queued.length = 0;
        handingOver = undefined;
      },
    );
  };
  const ticker = options.onProgress === undefined ? undefined : setInterval(() => options.onProgress!(scanner.progress(), total), COLD_START_PROGRESS_MS);
  ticker?.unref();
  let scanMs: number;
  try {
    scanMs = await new Promise<number>((resolve, reject) => {
      scanner.scan(
        options.devices.map((device) => device.native),
        options.devices.map((device) => device.sequences),
        options.devices.map((device) => device.blockCount),
        DATA_START_BYTES,
        options.writeBlockBytes,
        onBatch,
        (error, result) => (error ? reject(new ShoalError(ErrorCode.IO_ERROR, error.message, { cause: error })) : resolve(result!.ms)),
      );
    });
  } finally {
    if (ticker !== undefined) clearInterval(ticker);
  }
  while (handingOver !== undefined) await handingOver;
  if (handOverError !== undefined) throw handOverError;
  const delivering = options.deliverAfter === undefined || (await options.deliverAfter);
  options.onProgress?.(scanner.progress(), total);
  const finished = scanner.finish();
  for (const name of finished.setNames) setNames.push(name);
  // Tombstones and shadows come all at once here (a namespace with many removes has many):
  // handed over a slice at a time, the event loop free in between.
  for (let from = 0; delivering && from < finished.count; from += COLD_START_WINNERS_PER_SLICE) {
    if (from > 0) await nextTurn();
    const handing = performance.now();
    records += deliver(finished, setNames, options.withPayload, options.onRecord, options.onLiveBatch === undefined ? undefined : options.onLive, from, Math.min(finished.count, from + COLD_START_WINNERS_PER_SLICE));
    indexMs += performance.now() - handing;
  }
  const handing = performance.now();
  if (delivering) options.onLiveBatch?.(finished.winners, finished.variable, finished.count, setNames);
  indexMs += performance.now() - handing;
  const ms = performance.now() - started;
  return {
    records,
    recordsSeen: finished.recordsSeen,
    corrupt: finished.corrupt,
    expired: finished.expired,
    tombstones: finished.tombstones,
    truncated: finished.truncated,
    shadows: finished.shadows,
    validBlocks: finished.validBlocks,
    bytesScanned: finished.bytesScanned,
    ms,
    scanMs,
    indexMs,
    megabytesPerSecond: ms > 0 ? finished.bytesScanned / 1e6 / (ms / 1000) : 0,
  };
}

/**
 * Hands winners [from, to) (default all) to onRecord (live ones only their location to onLive,
 * when given); returns how many were live records.
 */
function deliver(
  batch: { winners: Buffer; variable: Buffer; count: number },
  setNames: string[],
  withPayload: boolean,
  onRecord: (record: ColdStartRecord) => void,
  onLive: ((locationLow: number, locationHigh: number) => void) | undefined,
  from = 0,
  to = batch.count,
): number {
  const { winners, variable } = batch;
  const record = new ColdStartRecord(winners, variable, setNames, withPayload);
  const u32 = new Uint32Array(winners.buffer, winners.byteOffset, winners.length >>> 2);
  const f64 = new Float64Array(winners.buffer, winners.byteOffset, winners.length >>> 3);
  let live = 0;
  for (let index = from; index < to; index++) {
    const word = index * (WINNER_BYTES >>> 2);
    const flags = u32[word + 7]!;
    if (onLive !== undefined && (flags & (WINNER_TOMBSTONE | WINNER_EXPIRED_SHADOW)) === 0) {
      onLive(u32[word + 21]!, u32[word + 22]!);
      live++;
      continue;
    }
    const lengths = u32[word + 15]!;  // set length u8, key type u8, key length u16
    record.at = index * WINNER_BYTES;
    record.generation = u32[word + 5]!;
    record.voidTime = u32[word + 6]!;
    record.lastUpdateMs = f64[(word >>> 1) + 4]!;
    record.variableAt = u32[word + 14]!;
    record.setLength = lengths & 0xff;
    record.keyType = (lengths >>> 8) & 0xff;
    record.keyLength = lengths >>> 16;
    record.payloadLength = u32[word + 16]!;
    record.originSequence = f64[(word >>> 1) + 9]!;
    record.setIndex = u32[word + 20]!;
    record.locationLow = u32[word + 21]!;
    record.locationHigh = u32[word + 22]!;
    record.hasKey = (flags & WINNER_HAS_KEY) !== 0;
    record.payloadHasKey = (flags & WINNER_PAYLOAD_KEY) !== 0;
    record.tombstone = (flags & WINNER_TOMBSTONE) !== 0;
    record.expiredShadow = (flags & WINNER_EXPIRED_SHADOW) !== 0;
    if (!record.tombstone && !record.expiredShadow) live++;
    onRecord(record);
  }
  return live;
}
