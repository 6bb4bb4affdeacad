/**
 * The clock seam: the one way the library below the cluster reads the time. Namespaces read
 * wall-clock time (record last-update times and void times are wall-clock, as Aerospike's),
 * so their default is `wallClock`, which reads Date.now() at each call (fake timers that move
 * Date move it too). The cluster's seams (lib/cluster/seams.ts) use the same interface.
 */

/** Wall-clock milliseconds as this node sees them. */
export interface Clock {
  nowMs(): number;
}

/** Date.now(), read at each call. */
export const wallClock: Clock = { nowMs: () => Date.now() };

/** Whole seconds of a clock's now (void times and TTLs count in seconds). */
export function nowSecondsOf(clock: Clock): number {
  return Math.floor(clock.nowMs() / 1000);
}
