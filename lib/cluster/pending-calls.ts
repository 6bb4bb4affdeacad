/**
 * Requests to peers that wait for a reply carrying the same id: the data plane's forwarded
 * requests, replications and migration offers, and truncate broadcasts. A call resolves with
 * the reply, with `{ type: 'timeout' }` at its deadline, or with the type given to `release`
 * (its target left, this node stopped); it never rejects.
 */
import { MAX_PENDING_REQUESTS } from './constants';
import type { WireMessage } from './network';
import type { Runtime, TimerHandle } from './seams';

interface PendingCall {
  resolve(message: WireMessage): void;
  timer: TimerHandle;
  target: string;
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

  /** Sends `message` with a fresh id; resolves with the reply, or `{ type: 'timeout' }` (also at once when MAX_PENDING_REQUESTS are waiting). */
  call(target: string, message: WireMessage, deadline: number): Promise<WireMessage> {
    if (this.calls.size >= MAX_PENDING_REQUESTS) return Promise.resolve({ type: 'timeout' });
    const id = `${this.idPrefix}${this.nextCallId++}`;
    return new Promise((resolve) => {
      const timer = this.runtime.timers.setTimeout(() => {
        this.calls.delete(id);
        resolve({ type: 'timeout' });
      }, Math.max(1, deadline - this.runtime.clock.nowMs()));
      this.calls.set(id, { resolve, timer, target });
      this.send(target, { ...message, id });
    });
  }

  /** A reply arrived: resolves the call of its id, if `from` is the node that call went to. */
  settle(from: string, reply: WireMessage): void {
    const call = this.calls.get(reply.id as string);
    if (call === undefined || call.target !== from) return;
    this.calls.delete(reply.id as string);
    this.runtime.timers.clearTimeout(call.timer);
    call.resolve(reply);
  }

  /** Resolves the calls to targets `which` accepts (every call by default) with `{ type }`. */
  release(type: string, which: (target: string) => boolean = () => true): void {
    for (const [id, call] of this.calls) {
      if (!which(call.target)) continue;
      this.runtime.timers.clearTimeout(call.timer);
      this.calls.delete(id);
      call.resolve({ type });
    }
  }
}
