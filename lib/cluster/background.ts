/**
 * Background work of the data plane that must never starve client requests or heartbeats
 * (docs/cluster.md, "Event loop"): yielding a turn of the event loop, running at most a few
 * tasks at once, and dropping partitions a node no longer owns one slice at a time.
 */
import { DATA_PLANE_SLICE_RECORDS } from './constants';
import type { Logger, Timers } from './seams';

/** Resolves after the work already due (I/O, timers) has had its turn. */
export function yieldTurn(timers: Timers): Promise<void> {
  return new Promise((resolve) => {
    if (timers.setImmediate !== undefined) timers.setImmediate(resolve);
    else timers.setTimeout(resolve, 0);
  });
}

/** Runs `task` on every item with at most `limit` running at once; resolves when all are done. */
export async function runLimited<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Partitions this node no longer owns, dropped one after another, yielding to the event loop
 * after every DATA_PLANE_SLICE_RECORDS records removed. A view change settles thousands of
 * partitions at once; dropping them all in one go would hold the event loop for seconds.
 */
export class DropQueue {
  private readonly queue: { partition: number; stillWanted: () => boolean }[] = [];
  private running = false;

  constructor(
    private readonly timers: Timers,
    private readonly logger: Logger,
    private readonly drop: (partition: number) => Promise<number>,
  ) {}

  /** Queues `partition`; `stillWanted` is asked again just before it is dropped. */
  push(partition: number, stillWanted: () => boolean): void {
    this.queue.push({ partition, stillWanted });
    if (this.running) return;
    this.running = true;
    void this.run();
  }

  /** Forgets every queued drop (the node is stopping). */
  clear(): void {
    this.queue.length = 0;
  }

  private async run(): Promise<void> {
    let sinceYield = 0;
    try {
      await yieldTurn(this.timers);
      while (this.queue.length > 0) {
        const { partition, stillWanted } = this.queue.shift()!;
        if (!stillWanted()) continue;
        try {
          sinceYield += 1 + (await this.drop(partition));
        } catch (error) {
          this.logger.warn(`cluster: dropping partition ${partition} failed: ${String(error)}`);
        }
        if (sinceYield >= DATA_PLANE_SLICE_RECORDS) {
          sinceYield = 0;
          await yieldTurn(this.timers);
        }
      }
    } finally {
      this.running = false;
    }
  }
}
