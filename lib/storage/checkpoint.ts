/**
 * Index checkpoints (docs/storage.md, "Restart after a crash"): periodically, and at close, a
 * device namespace records a point up to which its index agrees with its devices, in the index
 * checkpoint file (index-file.ts), so that a start after a crash or a reboot loads that index
 * and replays only the blocks written since (recovery.ts) instead of scanning every device.
 *
 * A checkpoint is taken without stopping writes:
 *  1. in one synchronous stretch of the JS thread (between two index mutations, so the index is
 *     consistent): the checkpoint sequence (the lowest sequence of any block not yet completely
 *     written: the open blocks and the sealed ones in flight, else the next sequence), the block
 *     tables, the set names and the index image (the tombstones are encoded later, over several
 *     turns: index-file.ts says why that is enough);
 *  2. a group commit of every device: every byte any entry of the image points at is now
 *     written and synced (they all lie in blocks below the checkpoint sequence, or below the
 *     fill of a block open at step 1, which the commit writes);
 *  3. the file is replaced atomically. A crash before step 3 leaves the previous checkpoint,
 *     whose tail is only longer.
 * Its cost: the image copy (48 bytes an entry, one memcpy) on the JS thread, then a sequential
 * file write off it; one checkpoint at a time.
 */
import { FIRST_CHECKPOINT_DELAY_MS } from './constants';
import { type CheckpointFacts, writeCheckpointFile } from './index-file';
import type { StoreState } from './store-state';
import type { StateFileIo } from './warm-state';
import type { WritePath } from './write-path';

/** What the namespace gives the checkpoint: its index and its set names, at the same moment. */
export interface CheckpointSource {
  /** The index image (NativePrimaryIndex.saveImage), taken now. */
  image(): Buffer;
  /** Set names by set id, as the image's entries use them. */
  setNames(): string[];
}

export interface CheckpointStats {
  checkpoints: number;
  /** The last checkpoint's: JS-thread time of the image copy, and the whole of it. */
  lastCaptureMs: number;
  lastMs: number;
  lastBytes: number;
}

export class Checkpointer {
  private source: CheckpointSource | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<boolean> | undefined;
  readonly stats: CheckpointStats = { checkpoints: 0, lastCaptureMs: 0, lastMs: 0, lastBytes: 0 };

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
    if (this.source === undefined || this.state.failed !== undefined) return;
    const captured = this.capture(this.source);
    await writeCheckpointFile(this.io, this.file, captured.facts, captured.image, this.fileMode);
    this.stats.checkpoints++;
  }

  private async run(): Promise<boolean> {
    const source = this.source;
    if (source === undefined || this.state.failed !== undefined || this.state.closed || !this.state.started) return false;
    const started = performance.now();
    const captured = this.capture(source);
    this.stats.lastCaptureMs = performance.now() - started;
    await this.writes.flush();
    if (this.state.closed) return false;  // close takes its own
    await writeCheckpointFile(this.io, this.file, captured.facts, captured.image, this.fileMode);
    this.stats.checkpoints++;
    this.stats.lastMs = performance.now() - started;
    this.stats.lastBytes = captured.image.length;
    return true;
  }

  /** Step 1: everything of one moment, synchronously. */
  private capture(source: CheckpointSource): { facts: CheckpointFacts; image: Buffer } {
    const state = this.state;
    let checkpointSequence = state.nextSequence;
    for (const device of state.devices) {
      if (device.current !== undefined) checkpointSequence = Math.min(checkpointSequence, device.current.sequence);
      for (const block of device.sealedInFlight.values()) checkpointSequence = Math.min(checkpointSequence, block.sequence);
    }
    const image = source.image();
    const facts: CheckpointFacts = {
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
    return { facts, image };
  }
}
