/**
 * Requests to peers that wait for a reply carrying the same id: the data plane's forwarded
 * requests, replications and migration offers, and truncate broadcasts. A call resolves with
 * the reply, with `{ type: 'timeout' }` at its deadline, with `{ type: 'not-sent' }` at once
 * when the message could not be sent (no connection now: it certainly did not arrive), or
 * with the type given to `release` (its target left, this node stopped). It rejects only
 * when the message cannot be encoded (a RangeError for a frame over MAX_FRAME_BYTES).
 */
import { MAX_PENDING_REQUESTS } from './constants';
import type { WireMessage } from './network';
import type { Runtime, TimerHandle } from './seams';

interface PendingCall {
  resolve(message: WireMessage): void;
  timer: TimerHandle;
  target: string;
  /** A release of this type leaves the call waiting (its reply may still come). */
  survives: string | undefined;
}

export class PendingCalls {
  private readonly calls = new Map<string, PendingCall>();
  private nextCallId = 0;

  /**
   * @param idPrefix makes ids unique per node and per user of this class.
   * @param send returns false when the target is not connected (the deadline then resolves the call).
   */
  constructor(
    private readonly idPrefix: string,
    private readonly runtime: Runtime,
    private readonly send: (to: string, message: WireMessage) => boolean,
  ) {}

  /**
   * Sends `message` with a fresh id; resolves with the reply, `{ type: 'timeout' }` (also at
   * once when MAX_PENDING_REQUESTS are waiting) or `{ type: 'not-sent' }`.
   * @throws RangeError (as a rejection) when the message is over MAX_FRAME_BYTES.
   */
  call(target: string, message: WireMessage, deadline: number, survives?: string): Promise<WireMessage> {
    if (this.calls.size >= MAX_PENDING_REQUESTS) return Promise.resolve({ type: 'timeout' });
    const id = `${this.idPrefix}${this.nextCallId++}`;
    return new Promise((resolve, reject) => {
      const timer = this.runtime.timers.setTimeout(() => {
        this.calls.delete(id);
        resolve({ type: 'timeout' });
      }, Math.max(1, deadline - this.runtime.clock.nowMs()));
      this.calls.set(id, { resolve, timer, target, survives });
      let sent: boolean;
      try {
        sent = this.send(target, { ...message, id });
      } catch (error) {
        this.forget(id, timer);
        reject(error);
        return;
      }
      if (!sent && this.calls.has(id)) {
        this.forget(id, timer);
        resolve({ type: 'not-sent' });
      }
    });
  }

  private forget(id: string, timer: TimerHandle): void {
    this.runtime.timers.clearTimeout(timer);
    this.calls.delete(id);
  }

  /** A reply arrived: resolves the call of its id, if `from` is the node that call went to. */
  settle(from: string, reply: WireMessage): void {
    const call = this.calls.get(reply.id as string);
    if (call === undefined || call.target !== from) return;
    this.calls.delete(reply.id as string);
    this.runtime.timers.clearTimeout(call.timer);
    call.resolve(reply);
  }

  /** Resolves the calls to targets `which` accepts (every call by default) with `{ type }`, except those made to survive it. */
  release(type: string, which: (target: string) => boolean = () => true): void {
    for (const [id, call] of this.calls) {
      if (!which(call.target) || call.survives === type) continue;
      this.runtime.timers.clearTimeout(call.timer);
      this.calls.delete(id);
      call.resolve({ type });
    }
  }
}
