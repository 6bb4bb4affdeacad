/**
 * The clock seam: the one way the library below the cluster reads the time. Namespaces read
 * wall-clock time (record last-update times and void times are wall-clock, as Aerospike's),
 * so their default is `wallClock`, which reads Date.now() at each call (fake timers that move
 * Date move it too). The cluster's seams (lib/cluster/seams.ts) use the same interface.
 */

/** Wall-clock milliseconds as this node sees them. */
export interface Clock {
  nowMs(): number;
  /**
   * Takes in the last-update time of a write stamped here, which is past the clock when its
   * record was written earlier in the same millisecond (last-update times never repeat).
   */
  noteStamp?(lastUpdateMs: number): void;
  /** The later of now and every stamp noted: a cut of "now" (truncate) past it removes every write made before. */
  latestMs?(): number;
  /** Later readings are at least `ms` (a truncate's cut: writes acknowledged after it are stamped past it). */
  advanceTo?(ms: number): void;
}

/** Date.now(), read at each call. */
export const wallClock: Clock = { nowMs: () => Date.now() };

/** Whole seconds of a clock's now (void times and TTLs count in seconds). */
export function nowSecondsOf(clock: Clock): number {
  return Math.floor(clock.nowMs() / 1000);
}

/**
 * How far ahead of this node's physical clock a version's last-update time may pull the hybrid
 * clock (HybridClock.observe). A clock further ahead than this (a misconfigured node) would
 * otherwise drag every later write here into its future; beyond it, observe advances only to
 * this lead and counts the version in `leadExceeded`.
 */
export const HYBRID_CLOCK_MAX_LEAD_MS = 60_000;

/**
 * A hybrid logical clock (Kulkarni et al., 2014) with its logical counter folded into the
 * millisecond, so that it fits the record's 48-bit last-update time (docs/xdr.md,
 * "Active-active"). Its value never goes back (a physical clock stepped back holds it), and
 * after observe(t) every later reading is above t: a write made on this node after a version
 * stamped t reached it is stamped later than t, whatever the physical clocks of the two
 * nodes say (up to HYBRID_CLOCK_MAX_LEAD_MS of lead).
 */
export class HybridClock implements Clock {
  private lastMs = 0;
  /**
   * The latest stamp a write here took. Kept apart from the clock's now: one record rewritten
   * thousands of times a second runs its own last-update time ahead of the wall clock, and
   * that must not move every other write's stamp (and every void time) with it.
   */
  private latestStampMs = 0;
  /** Versions whose time was further ahead of the physical clock than HYBRID_CLOCK_MAX_LEAD_MS. */
  leadExceeded = 0;

  constructor(private readonly physical: Clock = wallClock, private readonly maxLeadMs = HYBRID_CLOCK_MAX_LEAD_MS) {}

  /** max(physical now, last value returned, every observed time + 1). */
  nowMs(): number {
    const physicalMs = this.physical.nowMs();
    if (physicalMs > this.lastMs) this.lastMs = physicalMs;
    return this.lastMs;
  }

  /**
   * Takes in the last-update time of a version this node wrote (a write of a record stamped
   * past the clock, as `stored + 1`): later readings are at least that, not above it (so
   * that writes in one millisecond do not push the clock ahead of physical time).
   */
  advanceTo(lastUpdateMs: number): void {
    if (lastUpdateMs > this.lastMs) this.lastMs = lastUpdateMs;
  }

  noteStamp(lastUpdateMs: number): void {
    if (lastUpdateMs > this.latestStampMs) this.latestStampMs = lastUpdateMs;
  }

  latestMs(): number {
    return Math.max(this.nowMs(), this.latestStampMs);
  }

  /** Takes in the last-update time of a version received from another node or cluster. */
  observe(lastUpdateMs: number): void {
    if (!(lastUpdateMs + 1 > this.lastMs)) return;
    const limitMs = this.physical.nowMs() + this.maxLeadMs;
    if (lastUpdateMs + 1 > limitMs) {
      this.leadExceeded++;
      if (limitMs > this.lastMs) this.lastMs = limitMs;
      return;
    }
    this.lastMs = lastUpdateMs + 1;
  }
}
