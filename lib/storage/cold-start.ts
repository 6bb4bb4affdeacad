/**
 * Cold start: the native StorageScanner reads every device (block headers in parallel, then
 * the valid blocks with large sequential reads, on worker threads), checks every record and
 * keeps the newest copy of each digest. Here the winners are handed, one at a time, to the
 * store and the namespace's index.
 *
 * Winner layout (80 bytes each, native/storage_scan.cc):
 *   0 digest(20) | 20 u32 generation | 24 u32 void time | 28 u32 flags (1 tombstone, 2 has key,
 *   4 expired shadow, 8 payload holds the key) | 32 f64 last-update ms | 40 u32 device | 44 u32 block | 48 u32 offset |
 *   52 u32 padded size | 56 u32 offset in `variable` | 60 u8 set length | 61 u8 key type |
 *   62 u16 key length | 64 u32 payload length (withPayload) | 68 u32 copies seen |
 *   72 f64 origin sequence (tombstones: the block sequence of the deletion)
 * `variable` holds set name, key and (withPayload) payload of each winner back to back.
 */
import { ErrorCode, ShoalError } from '../errors';
import { COLD_START_CHUNK_BYTES, DATA_START_BYTES } from './constants';
import { locationHigh, locationLow, type TruncateMarker } from './format';
import { type NativeBlockDevice, storageNative } from './native-device';

const WINNER_BYTES = 80;
const WINNER_TOMBSTONE = 1;
const WINNER_HAS_KEY = 2;
const WINNER_EXPIRED_SHADOW = 4;
const WINNER_PAYLOAD_KEY = 8;

/** One recovered record, valid only during the onRecord call (its buffers are views). */
export interface ColdStartRecord {
  digest: Buffer;
  generation: number;
  voidTime: number;
  lastUpdateMs: number;
  setName: string;
  hasKey: boolean;
  /** The payload holds the user key (the index's FLAG_HAS_KEY). */
  payloadHasKey: boolean;
  keyType: number;
  key: Buffer | undefined;
  /** The payload (withPayload only). */
  payload: Buffer | undefined;
  locationLow: number;
  locationHigh: number;
  tombstone: boolean;
  expiredShadow: boolean;
  originSequence: number;
}

export interface ColdStartReport {
  /** Live records handed to the index. */
  records: number;
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
  ms: number;
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
  onRecord: (record: ColdStartRecord) => void;
  onProgress?: (bytesScanned: number, bytesTotal: number) => void;
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
    chunkBytes: Math.max(COLD_START_CHUNK_BYTES, options.writeBlockBytes),
    truncates: options.truncates.map((marker) => ({ set: marker.set ?? null, beforeMs: marker.beforeMs })),
  });
  const total = options.devices.reduce((sum, device) => sum + device.blockCount * options.writeBlockBytes, 0);
  for (const [index, device] of options.devices.entries()) {
    await new Promise<void>((resolve, reject) => {
      scanner.scanDevice(device.native, device.sequences, index, DATA_START_BYTES, options.writeBlockBytes, device.blockCount, (error) => {
        if (error) reject(new ShoalError(ErrorCode.IO_ERROR, error.message, { cause: error }));
        else resolve();
      });
    });
    options.onProgress?.(scanner.progress(), total);
  }
  const finished = scanner.finish();
  const records = deliver(finished.winners, finished.variable, finished.count, options.withPayload, options.onRecord);
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
    megabytesPerSecond: ms > 0 ? finished.bytesScanned / 1e6 / (ms / 1000) : 0,
  };
}

function deliver(winners: Buffer, variable: Buffer, count: number, withPayload: boolean, onRecord: (record: ColdStartRecord) => void): number {
  const record: ColdStartRecord = {
    digest: winners.subarray(0, 0),
    generation: 0,
    voidTime: 0,
    lastUpdateMs: 0,
    setName: '',
    hasKey: false,
    payloadHasKey: false,
    keyType: 0,
    key: undefined,
    payload: undefined,
    locationLow: 0,
    locationHigh: 0,
    tombstone: false,
    expiredShadow: false,
    originSequence: 0,
  };
  let live = 0;
  let lastSetBytes: string | undefined;
  for (let index = 0; index < count; index++) {
    const at = index * WINNER_BYTES;
    const flags = winners.readUInt32LE(at + 28);
    const variableAt = winners.readUInt32LE(at + 56);
    const setLength = winners[at + 60]!;
    const keyLength = winners.readUInt16LE(at + 62);
    const payloadLength = winners.readUInt32LE(at + 64);
    const size = winners.readUInt32LE(at + 52);
    record.digest = winners.subarray(at, at + 20);
    record.generation = winners.readUInt32LE(at + 20);
    record.voidTime = winners.readUInt32LE(at + 24);
    record.lastUpdateMs = winners.readDoubleLE(at + 32);
    // Set names repeat: decode only when the bytes differ from the previous record's.
    const setBytes = variable.toString('latin1', variableAt, variableAt + setLength);
    if (setBytes !== lastSetBytes) {
      lastSetBytes = setBytes;
      record.setName = variable.toString('utf8', variableAt, variableAt + setLength);
    }
    record.hasKey = (flags & WINNER_HAS_KEY) !== 0;
    record.payloadHasKey = (flags & WINNER_PAYLOAD_KEY) !== 0;
    record.keyType = winners[at + 61]!;
    record.key = keyLength > 0 ? variable.subarray(variableAt + setLength, variableAt + setLength + keyLength) : undefined;
    const payloadAt = variableAt + setLength + keyLength;
    record.payload = withPayload && (flags & (WINNER_TOMBSTONE | WINNER_EXPIRED_SHADOW)) === 0 ? variable.subarray(payloadAt, payloadAt + payloadLength) : undefined;
    record.locationLow = locationLow(winners.readUInt32LE(at + 48), size);
    record.locationHigh = locationHigh(winners.readUInt32LE(at + 40), winners.readUInt32LE(at + 44), size);
    record.tombstone = (flags & WINNER_TOMBSTONE) !== 0;
    record.expiredShadow = (flags & WINNER_EXPIRED_SHADOW) !== 0;
    record.originSequence = winners.readDoubleLE(at + 72);
    if (!record.tombstone && !record.expiredShadow) live++;
    onRecord(record);
  }
  return live;
}
