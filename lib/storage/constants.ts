/**
 * The storage engine's bounds, in one place (STYLE.md: every queue, buffer, batch and loop has
 * a named bound). The relations between them are checked at the bottom, at load time.
 */
import { WRITE_BLOCK_BYTES_MAX } from '../constants';

/** O_DIRECT alignment of device offsets, lengths and buffers. */
export const IO_ALIGN_BYTES = 4096;
/** Records start on 16-byte boundaries inside a write block. */
export const RECORD_ALIGN_BYTES = 16;

// The default and allowed write-block sizes (a power of two) are open() options' bounds:
// WRITE_BLOCK_BYTES_DEFAULT, _MIN and _MAX in lib/constants.ts.

/** The device header region: two 32 KiB header slots, then the first write block. */
export const HEADER_SLOT_BYTES = 32 << 10;
export const DATA_START_BYTES = 2 * HEADER_SLOT_BYTES;
/** Truncate markers kept in each header slot (80 bytes each, after the first 4 KiB). */
export const MAX_TRUNCATE_MARKERS = 256;
export const TRUNCATE_MARKER_BYTES = 80;

/** Location encoding limits (docs/storage-format.md, "Locations"). */
export const MAX_DEVICES = 64;
export const MAX_BLOCKS_PER_DEVICE = 1 << 20;

/** Flush a partly filled write block after this long without a flush (namespace flushMaxMs). */
export const DEFAULT_FLUSH_MAX_MS = 1000;
/** Defragment blocks whose live bytes fall below this percentage (namespace defragLwmPct). */
export const DEFAULT_DEFRAG_LWM_PCT = 50;
/** Blocks defragmented per background slice, and the pause between slices. */
export const DEFRAG_BLOCKS_PER_SLICE = 4;
export const DEFRAG_SLEEP_MS = 5;
/** Writes stop with OUT_OF_SPACE while free blocks are at or below this share (but >= 2 blocks). */
export const DEFAULT_MIN_FREE_PCT = 5;
export const MIN_RESERVE_BLOCKS = 2;
/** Recent write blocks kept in memory to serve reads without I/O. */
export const DEFAULT_POST_WRITE_CACHE_BLOCKS = 32;
/**
 * Write-block buffers kept for reuse once their block has left the post-write cache: a fresh
 * 1 MiB buffer costs a page fault per 4 KiB on first touch (~0.6 ms a block on the development
 * VM), a recycled one nothing.
 */
export const WRITE_BLOCK_SPARES = 4;
/**
 * Write backpressure (docs/storage.md, "Backpressure"): sealed write blocks per device whose
 * writes may be in flight at once. Each holds its 1 MiB buffer and the aligned copy the I/O
 * thread writes from; a write that would seal one more waits until one lands.
 */
export const WRITE_BLOCKS_IN_FLIGHT_MAX = 8;

/**
 * The mode of every file Shoal creates (devices, lock and state files, shared-memory
 * segments) unless open() is given fileMode: its owner's alone. Directories it creates get
 * the same bits plus search (x) where there is read (0o700 by default).
 */
export const DEFAULT_FILE_MODE = 0o600;
/**
 * A device with no valid header is new (Shoal may format it) only when its first and last
 * BLANK_CHECK_BYTES are zeros: that covers where file systems, partition tables and volume
 * managers keep their signatures (docs/storage.md, "What a damaged device gets").
 */
export const BLANK_CHECK_BYTES = 1 << 20;
/**
 * Work cut into slices with an event-loop turn between them (docs/storage.md, "No long
 * stalls"): tombstones encoded or decoded for the state file, cold-start winners handed over
 * (tombstones and shadows), records moved by defragmentation.
 */
export const STATE_TOMBSTONES_PER_SLICE = 16_384;
/** Tombstones encoded or decoded per event-loop turn in the index checkpoint file (index-file.ts). */
export const INDEX_FILE_TOMBSTONES_PER_SLICE = 16_384;
/**
 * How often a device namespace checkpoints its index (checkpoint.ts; docs/storage.md, "Restart
 * after a crash"), unless SHOAL_CHECKPOINT_MS says otherwise (0: never, but at close).
 */
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 60_000;
/**
 * The first checkpoint of a run, this long after its start: at once, since a file left by an
 * earlier run is stale for this one (recovery.ts, check 3), so a crash before this run's first
 * checkpoint is a cold start.
 */
export const FIRST_CHECKPOINT_DELAY_MS = 0;
export const COLD_START_WINNERS_PER_SLICE = 16_384;
/** Work whose cost per item varies (defragmentation's moves) runs for this long between turns. */
export const SLICE_BUDGET_MS = 5;
/** How many records defragmentation handles between two looks at the clock. */
export const DEFRAG_RECORDS_PER_CLOCK_CHECK = 64;
/** storage.repairDevices: block headers read at once while looking for a device's write blocks. */
export const REPAIR_READS_IN_FLIGHT = 64;
/** A refused device's error says whether it holds Shoal write blocks: this many are probed per block size. */
export const DAMAGE_PROBE_BLOCKS = 16;

/** Native I/O threads per device (random reads need queue depth; libuv has only 4). */
export const DEFAULT_IO_THREADS = 32;
/** Completions the native side hands JS per callback (16 bytes each). */
export const COMPLETION_CAPACITY = 4096;
/** The results area that carries read data to JS: at least two write blocks. */
export const MIN_RESULTS_BYTES = 8 << 20;
/** Cold start reads this many bytes per sequential read, and reports progress this often. */
export const COLD_START_CHUNK_BYTES = 8 << 20;
export const COLD_START_PROGRESS_MS = 1000;

function check(condition: boolean, message: string): void {
  if (!condition) throw new Error(`storage constants: ${message}`);
}
check(DATA_START_BYTES % IO_ALIGN_BYTES === 0, 'data start must be aligned');
check(4096 + MAX_TRUNCATE_MARKERS * TRUNCATE_MARKER_BYTES + 4 <= HEADER_SLOT_BYTES, 'truncate markers must fit a header slot');
check(WRITE_BLOCK_BYTES_MAX / RECORD_ALIGN_BYTES <= 1 << 19, 'offsets must fit 19 bits of 16-byte units');
check(MIN_RESULTS_BYTES >= 2 * WRITE_BLOCK_BYTES_MAX / 2, 'results must hold a block read');
check(COLD_START_CHUNK_BYTES >= WRITE_BLOCK_BYTES_MAX, 'a cold-start chunk holds at least one block');
check(WRITE_BLOCKS_IN_FLIGHT_MAX >= 1 && WRITE_BLOCKS_IN_FLIGHT_MAX <= DEFAULT_POST_WRITE_CACHE_BLOCKS, 'blocks in flight are still in the post-write cache');
check(BLANK_CHECK_BYTES >= DATA_START_BYTES && BLANK_CHECK_BYTES % IO_ALIGN_BYTES === 0, 'the blank check covers the header region in aligned reads');
