/**
 * Index checkpoints (docs/storage.md, "Restart after a crash"): periodically, and at close, a
 * device namespace records a point up to which its index agrees with its devices, in the index
 * checkpoint file (index-file.ts), so that a start after a crash or a reboot loads that index
 * and replays only the blocks written since (recovery.ts) instead of scanning every device.
 *
 * A checkpoint is taken without stopping writes, and without a long stretch on the JS thread:
 *  1. in one short synchronous stretch (between two index mutations): the checkpoint sequence
 *     S (the lowest sequence of any block not yet completely written: the open blocks and the
 *     sealed ones in flight, else the next sequence), the block tables, the set names, and the
 *     start of the index image: its structure is fixed at this moment, and a worker thread
 *     writes it into the file piece by piece while writes go on (native/index_image.cc; the JS
 *     thread writes a piece itself only when it is about to change that piece's structure
 *     first, and the fields of a live entry may be copied from any moment of the copy);
 *  2. once the image is in the file, a group commit of every device: every byte any entry of
 *     the image points at is now written and synced (below S, or in a block at or above S up
 *     to a fill reached before this commit);
 *  3. the tombstones are encoded (over several turns), the facts and the lead written, the file
 *     synced and renamed over the old one. A crash before the rename leaves the previous
 *     checkpoint, whose tail is only longer.
 * Why every entry changed during the copy is made right by the replay from S: docs/storage.md.
 */
import { FIRST_CHECKPOINT_DELAY_MS } from './constants';
import { type CheckpointFacts, INDEX_FILE_IMAGE_OFFSET, writeCheckpointFile } from './index-file';
import type { StoreState } from './store-state';
import type { StateFileIo } from './warm-state';
import type { WritePath } from './write-path';

/** What the namespace gives the checkpoint: its index's image and its set names, at the same moment. */
export interface CheckpointSource {
  /** Starts the index image (NativePrimaryIndex.writeImage) into the open file, its structure of now; resolves once written. */
  writeImage(fd: number, offset: number, pieceDelayUs: number): Promise<{ crcs: Buffer; bytes: number; jsPieces?: number; jsWaits?: number; jsWaitMaxUs?: number }>;
  /** The image being written: [pieces written, pieces], or null. */
  imageProgress(): [number, number] | null;
  /** Set names by set id, as the image's entries use them. */
  setNames(): string[];
}

export interface CheckpointStats {
  checkpoints: number;
  /** The last checkpoint's: JS-thread time of its synchronous start, and the whole of it (ms). */
  lastCaptureMs: number;
  lastMs: number;
  /** The last checkpoint file's bytes. */
  lastBytes: number;
  /** The last image's JS-thread part: pieces it wrote itself, its waits for the worker's copy of a piece, the longest (ms). */
  lastJsPieces: number;
  lastJsWaits: number;
  lastJsWaitMaxMs: number;
}

/** Thrown inside a checkpoint's file write when the store closed meanwhile (close takes its own). */
class ClosedMeanwhile extends Error {}

export class Checkpointer {
  private source: CheckpointSource | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<boolean> | undefined;
  readonly stats: CheckpointStats = { checkpoints: 0, lastCaptureMs: 0, lastMs: 0, lastBytes: 0, lastJsPieces: 0, lastJsWaits: 0, lastJsWaitMaxMs: 0 };

  /**
   * @param file the index checkpoint file
   * @param intervalMs between two periodic checkpoints (0: only at close)
   */
  constructor(
    private readonly state: StoreState,
    private readonly writes: WritePath,
    readonly file: string,
    private readonly io: StateFileIo,
    private readonly fileMode: number,
    private readonly intervalMs: number,
    /** Tests: the image's worker sleeps this long after each run of pieces (SHOAL_TEST_CHECKPOINT_PIECE_DELAY_US). */
    private readonly pieceDelayUs = 0,
  ) {}

  /** Starts checkpointing the source's index: a first checkpoint soon, then every intervalMs. */
  enable(source: CheckpointSource): void {
    this.source = source;
    if (this.intervalMs > 0) this.arm(Math.min(FIRST_CHECKPOINT_DELAY_MS, this.intervalMs));
  }

  private arm(delayMs: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.take()
        .catch((error: unknown) => this.state.log(`namespace ${this.state.namespace}: index checkpoint failed: ${(error as Error).message}`))
        .finally(() => {
          if (!this.state.closed) this.arm(this.intervalMs);
        });
    }, delayMs);
    this.timer.unref();
  }

  /**
   * Takes a checkpoint now (or waits for the one under way and returns its result). Resolves
   * to whether one was written: false when there is nothing to checkpoint (no source, failed).
   * @throws ShoalError IO_ERROR from the commit; the file's write error.
   */
  take(): Promise<boolean> {
    if (this.running !== undefined) return this.running;
    const running = this.run().finally(() => {
      this.running = undefined;
    });
    this.running = running;
    return running;
  }

  /** Stops the timer; waits for a checkpoint under way (its error is ignored: close goes on). */
  async stop(): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running !== undefined) await this.running.catch(() => false);
  }

  /** The checkpoint at close, after the final commit: no write can come after it. */
  async atClose(): Promise<void> {
    await this.stop();
    const source = this.source;
    if (source === undefined || this.state.failed !== undefined) return;
    this.stats.lastBytes = await writeCheckpointFile(this.io, this.file, this.fileMode, async (handle) => {
      const facts = this.capture(source);
      const written = await source.writeImage(handle.fd, INDEX_FILE_IMAGE_OFFSET, 0);
      return { facts, image: imageWritten(written) };
    });
    this.stats.checkpoints++;
  }

  /** The image being written now: [pieces written, pieces], or null (tests). */
  imageProgress(): [number, number] | null {
    return this.source?.imageProgress() ?? null;
  }

  private async run(): Promise<boolean> {
    const source = this.source;
    if (source === undefined || this.state.failed !== undefined || this.state.closed || !this.state.started) return false;
    const started = performance.now();
    try {
      this.stats.lastBytes = await writeCheckpointFile(this.io, this.file, this.fileMode, async (handle) => {
        // Step 1, in one synchronous stretch.
        const begin = performance.now();
        const facts = this.capture(source);
        const writing = source.writeImage(handle.fd, INDEX_FILE_IMAGE_OFFSET, this.pieceDelayUs);
        this.stats.lastCaptureMs = performance.now() - begin;
        const written = await writing;
        this.stats.lastJsPieces = written.jsPieces ?? 0;
        this.stats.lastJsWaits = written.jsWaits ?? 0;
        this.stats.lastJsWaitMaxMs = (written.jsWaitMaxUs ?? 0) / 1000;
        // Step 2.
        await this.writes.flush();
        if (this.state.closed) throw new ClosedMeanwhile();
        return { facts, image: imageWritten(written) };
      });
    } catch (error) {
      if (error instanceof ClosedMeanwhile) return false;
      throw error;
    }
    this.stats.checkpoints++;
    this.stats.lastMs = performance.now() - started;
    return true;
  }

  /** Step 1's facts: everything of one moment, synchronously (the image starts in the same stretch). */
  private capture(source: CheckpointSource): CheckpointFacts {
    const state = this.state;
    let checkpointSequence = state.nextSequence;
    for (const device of state.devices) {
      if (device.current !== undefined) checkpointSequence = Math.min(checkpointSequence, device.current.sequence);
      for (const block of device.sealedInFlight.values()) checkpointSequence = Math.min(checkpointSequence, block.sequence);
    }
    return {
      signatureHigh: state.signatureHigh,
      signatureLow: state.signatureLow,
      stamp: state.openStamp,
      checkpointSequence,
      nextSequence: state.nextSequence,
      takenMs: state.now(),
      sequences: state.devices.map((device) => device.sequences.slice()),
      live: state.devices.map((device) => device.live.slice()),
      tombstones: state.tombstones,
      setNames: source.setNames(),
    };
  }
}

function imageWritten(written: { crcs: Buffer; bytes: number }): { bytes: number; crcs: Uint32Array } {
  const crcs = new Uint32Array(written.crcs.length / 4);
  for (let piece = 0; piece < crcs.length; piece++) crcs[piece] = written.crcs.readUInt32LE(4 * piece);
  return { bytes: written.bytes, crcs };
}
