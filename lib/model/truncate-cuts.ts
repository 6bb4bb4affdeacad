/**
 * Truncate cuts: "every record of this set (or of every set) last updated before this time is
 * gone". A namespace keeps the cuts it has applied (a device namespace durably, in its device
 * headers), so a cold start skips truncated copies and, in cluster mode, a version of a
 * truncated record arriving from a peer that missed the truncate is refused instead of
 * resurrected (docs/cluster.md, "Truncate").
 */
import type { Clock } from '../clock';
import { invalidArgument } from '../errors';

export interface TruncateCut {
  /** The set; undefined for every set of the namespace. */
  set: string | undefined;
  /** Records last updated before this Unix time (ms) are removed. */
  beforeMs: number;
}

/**
 * The cut of a truncate called now with `before` (a Date or Unix ms, as the caller gave it).
 * The default is past every write acknowledged before the call: the end of this millisecond,
 * or later where a stamp ran ahead of the wall clock (a record rewritten within a millisecond
 * is stamped a millisecond on; versions from peers move the hybrid clock: lib/clock.ts).
 * @throws TypeError for a `before` that is neither; ShoalError INVALID_ARGUMENT for one not
 *   finite or in the future (its cut is durable, and a cold start would remove the writes made
 *   until then: Aerospike refuses a future truncate time too).
 */
export function truncateCutOf(before: unknown, clock: Clock): number {
  const nowMs = Date.now();
  if (before === undefined) return Math.max(nowMs, clock.latestMs?.() ?? clock.nowMs()) + 1;
  const beforeMs = before instanceof Date ? before.getTime() : before;
  if (typeof beforeMs !== 'number') throw new TypeError('opts.before must be a Date or a Unix time in ms');
  if (!Number.isFinite(beforeMs)) throw invalidArgument('opts.before must be a Date or a Unix time in ms');
  if (beforeMs > nowMs + 1) throw invalidArgument('opts.before must not be in the future');
  return beforeMs;
}

/**
 * The cuts with one more applied: a later cut of the same set replaces an earlier one, and a
 * cut of every set makes the per-set cuts it covers redundant.
 */
export function addCut(cuts: readonly TruncateCut[], set: string | undefined, beforeMs: number): TruncateCut[] {
  const next = cuts.map((cut) => ({ ...cut }));
  const existing = next.find((cut) => cut.set === set);
  if (existing !== undefined) existing.beforeMs = Math.max(existing.beforeMs, beforeMs);
  else next.push({ set, beforeMs });
  if (set === undefined) return next.filter((cut) => cut.set === undefined || cut.beforeMs > beforeMs);
  return next;
}

/** Whether the cuts remove a record of `setName` ('' for no set) last updated at `lastUpdateMs`. */
export function isTruncated(cuts: readonly TruncateCut[], setName: string, lastUpdateMs: number): boolean {
  for (const cut of cuts) {
    if (lastUpdateMs < cut.beforeMs && (cut.set === undefined || cut.set === setName)) return true;
  }
  return false;
}

/** Whether `cuts` already remove everything `cut` would (so applying it again changes nothing). */
export function coveredBy(cuts: readonly TruncateCut[], cut: TruncateCut): boolean {
  return cuts.some((known) => known.beforeMs >= cut.beforeMs && (known.set === undefined || known.set === cut.set));
}
