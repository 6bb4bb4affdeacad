/**
 * The options a device store is opened with, their check, and the figures it reports
 * (docs/storage.md; the namespace's options in docs/api.md map onto these).
 */
import { WRITE_BLOCK_BYTES_DEFAULT, WRITE_BLOCK_BYTES_MAX, WRITE_BLOCK_BYTES_MIN } from '../constants';
import { ErrorCode, ShoalError } from '../errors';
import { DEFAULT_DEFRAG_LWM_PCT, IO_ALIGN_BYTES, MAX_DEVICES } from './constants';
import type { DirectIoMode, IoEngineMode } from './native-device';
import type { StateFileIo } from './warm-state';

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
  /**
   * The index checkpoint file (checkpoint.ts, recovery.ts): where checkpoints of the index are
   * kept so that a start after a crash or a reboot replays only the blocks written since.
   * Without it every such start is a cold start.
   */
  indexFile?: string;
  /** Between two periodic checkpoints (0: only at close); default SHOAL_CHECKPOINT_MS, else DEFAULT_CHECKPOINT_INTERVAL_MS. */
  checkpointIntervalMs?: number;
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
  /** Index checkpoints written by this run (docs/storage.md, "Restart after a crash"). */
  checkpoints: number;
  /** The last checkpoint's image copy on the JS thread, and all of it (ms). */
  lastCheckpointCaptureMs: number;
  lastCheckpointMs: number;
}

/**
 * The write-block size the options ask for, once they are checked.
 * @throws ShoalError INVALID_ARGUMENT naming the bad option.
 */
export function validateOptions(options: DeviceStoreOptions): number {
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

