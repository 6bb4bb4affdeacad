/**
 * Giving the event loop a turn in the middle of long work (docs/storage.md, "No long
 * stalls"): work that may take more than a few milliseconds of JS-thread time is cut into
 * slices with a turn in between, so timers, I/O completions and other callers run meanwhile.
 */

import { SLICE_BUDGET_MS } from './constants';

/** Resolves in the check phase of the next event-loop turn (after pending I/O callbacks ran). */
export function nextTurn(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * A slice of JS-thread work with a time budget: `spent()` says when SLICE_BUDGET_MS of wall
 * time have passed since the slice began (wall time is never less than the thread's own CPU
 * time, so a busy machine only makes slices shorter), `next()` gives the event loop a turn and
 * begins the next slice.
 */
export class TimeSlice {
  private deadline = performance.now() + SLICE_BUDGET_MS;

  spent(): boolean {
    return performance.now() >= this.deadline;
  }

  async next(): Promise<void> {
    await nextTurn();
    this.deadline = performance.now() + SLICE_BUDGET_MS;
  }
}
