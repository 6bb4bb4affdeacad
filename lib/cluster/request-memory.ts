/**
 * Idempotent execution of write requests (docs/cluster.md, "Errors that tell the truth"). The
 * node that takes a client call gives each write a request id, and every send of that call
 * carries it. A node remembers, for a while, the outcome of every write it executed as master
 * and of every write it applied as a replica (the master's replication carries the id and the
 * result). So:
 *
 * - a duplicate of a request that is executing here waits for that execution and gets its
 *   result; one that already ran gets the remembered result: a write never runs twice;
 * - a write re-sent to a new master, after the one it went to left the cluster, is answered
 *   with the first result when the new master applied it as a replica;
 * - a remembered write whose result was too large to keep is answered "in doubt" (TIMEOUT),
 *   never run again.
 *
 * Bounded by REMEMBERED_REQUESTS_MAX entries and a time window (a multiple of the request
 * timeout); the oldest go first.
 */
import { Packr } from 'msgpackr';
import { REMEMBERED_REQUESTS_MAX, REMEMBERED_RESULT_MAX_BYTES } from './constants';
import type { WireError } from './local-store';
import type { Clock } from './seams';

/** What a write request ended with: its value, or the error the master's store raised. */
export type RequestOutcome = { value: unknown } | { error: WireError };

/** A remembered write: its outcome, or `undefined` when it ran but its result was too large to keep. */
export type Recalled = RequestOutcome | undefined;

interface Entry {
  atMs: number;
  /** Encoded outcome (msgpack), or undefined when too large to keep. */
  encoded: Buffer | undefined;
  /** Set while the request executes here: duplicates wait on it. */
  running: Promise<RequestOutcome> | undefined;
}

/** The codec of remembered results: plain msgpack, as the frames (bigints as int64). */
const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'bigint' } as ConstructorParameters<typeof Packr>[0]);

export class RequestMemory {
  private readonly entries = new Map<string, Entry>();

  /** @param windowMs how long an outcome is kept. */
  constructor(private readonly clock: Clock, private readonly windowMs: number) {}

  /** Number of requests remembered (tests, stats). */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Whether `id` ran (or runs) here. Returns undefined when it never did; otherwise
   * `{ recalled }`, or `{ running }` for a request still executing.
   */
  lookup(id: string): { recalled: Recalled } | { running: Promise<RequestOutcome> } | undefined {
    const entry = this.entries.get(id);
    if (entry === undefined) return undefined;
    if (entry.running !== undefined) return { running: entry.running };
    return { recalled: entry.encoded === undefined ? undefined : (packr.unpack(entry.encoded) as RequestOutcome) };
  }

  /** Marks `id` as executing here until `outcome` settles. */
  running(id: string, outcome: Promise<RequestOutcome>): void {
    this.insert(id, { atMs: this.clock.nowMs(), encoded: undefined, running: outcome });
  }

  /** `id` finished: remembers its outcome if it wrote something, else forgets it (running it again is harmless). */
  finished(id: string, outcome: RequestOutcome, wrote: boolean): void {
    if (!wrote) {
      this.entries.delete(id);
      return;
    }
    this.insert(id, { atMs: this.clock.nowMs(), encoded: encodeOutcome(outcome), running: undefined });
  }

  /** A replica applied the write `id` (its master sent the encoded result, or none when too large). */
  replicated(id: string, encoded: Buffer | undefined): void {
    const known = this.entries.get(id);
    if (known !== undefined && known.running !== undefined) return;
    this.insert(id, { atMs: this.clock.nowMs(), encoded: encoded !== undefined && encoded.length <= REMEMBERED_RESULT_MAX_BYTES ? encoded : undefined, running: undefined });
  }

  private insert(id: string, entry: Entry): void {
    this.entries.delete(id);
    this.entries.set(id, entry);
    const oldestKept = entry.atMs - this.windowMs;
    for (const [key, head] of this.entries) {
      if (this.entries.size <= REMEMBERED_REQUESTS_MAX && head.atMs >= oldestKept) break;
      // An entry still executing ends within its request timeout, and finishing re-inserts it
      // at the tail: the sweep resumes past it at a later insert.
      if (head.running !== undefined) break;
      this.entries.delete(key);
    }
  }
}

/** The outcome as the bytes a replica keeps: undefined when over REMEMBERED_RESULT_MAX_BYTES. */
export function encodeOutcome(outcome: RequestOutcome): Buffer | undefined {
  let encoded: Buffer;
  try {
    encoded = packr.pack(outcome);
  } catch {
    return undefined;
  }
  return encoded.length <= REMEMBERED_RESULT_MAX_BYTES ? encoded : undefined;
}
