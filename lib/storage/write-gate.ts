/**
 * The order and the pace of one namespace's writes (docs/storage.md, "Backpressure").
 *
 * Writers pass in call order: a writer that comes while others wait, or while a batch holds the
 * gate, waits behind them, so writes apply in the order they were called even when some must
 * wait. A batchPut holds the gate across its native calls (hold, between, leave): the event
 * loop turns between two calls, but no write called after the batch runs before the batch is
 * done. A device namespace's gate is also shut while its store has as many write blocks in
 * flight as it may (the `blocked` predicate); the store opens it (wake) when a block lands.
 */
import { nextTurn } from './event-loop';

interface Waiter {
  resolve: () => void;
  /** A batch: once let in, it holds the gate until leave(). */
  holds: boolean;
}

export class WriteGate {
  private readonly waiters: Waiter[] = [];
  private held = false;
  /** A waiter was let in and its continuation has not run yet: nobody else may pass meanwhile. */
  private releasing = false;
  /** The holder, waiting in between() for the store to have room. */
  private holderWaiting: (() => void) | undefined;
  /** Writers whose order does not matter, waiting only for room (room()). */
  private readonly roomWaiters: (() => void)[] = [];
  /** How many writers had to wait (stats, tests). */
  waited = 0;

  /**
   * @param blocked whether writes must wait for the store (with poll: after collecting the
   *   writes that completed, NativeDevice.poll); never shut when nothing can open it again.
   */
  constructor(private readonly blocked: (poll: boolean) => boolean = () => false) {}

  /** undefined when a write may run now; else a promise that resolves, in call order, once it may. */
  enter(): Promise<void> | undefined {
    if (this.free()) return undefined;
    this.waited++;
    return new Promise<void>((resolve) => this.waiters.push({ resolve, holds: false }));
  }

  /** Runs `write` once the gate lets it pass: now (its own result) or later (a promise of it). */
  run<T>(write: () => T | Promise<T>): T | Promise<T> {
    const entry = this.enter();
    return entry === undefined ? write() : entry.then(write);
  }

  /** enter(), for a writer that runs in several slices: it holds the gate until leave(). */
  hold(): Promise<void> | undefined {
    if (this.free()) {
      this.held = true;
      return undefined;
    }
    this.waited++;
    return new Promise<void>((resolve) => this.waiters.push({ resolve, holds: true }));
  }

  /**
   * For a writer whose order relative to the others does not matter (defragmentation moves
   * records, it changes no value): undefined when the store has room now, else a promise that
   * resolves once it has, ahead of the writers waiting in line.
   */
  room(): Promise<void> | undefined {
    if (!this.blocked(true)) return undefined;
    return new Promise<void>((resolve) => this.roomWaiters.push(resolve));
  }

  /** The holder, between two slices: an event-loop turn, then room in the store; no other writer passes. */
  async between(): Promise<void> {
    await nextTurn();
    while (this.blocked(true)) await new Promise<void>((resolve) => (this.holderWaiting = resolve));
  }

  /** The holder is done: the next writer may pass. */
  leave(): void {
    this.held = false;
    this.release();
  }

  /** The store may have room again (a block landed, or it failed or closed and writers must go on to their error). */
  wake(): void {
    if (this.blocked(false)) return;
    if (this.holderWaiting !== undefined) {
      const resume = this.holderWaiting;
      this.holderWaiting = undefined;
      resume();
    }
    for (const resume of this.roomWaiters.splice(0)) resume();
    this.release();
  }

  /** Resolves once no writer waits or holds the gate. */
  async idle(): Promise<void> {
    while (this.waiters.length > 0 || this.held || this.releasing) await nextTurn();
  }

  private free(): boolean {
    return !this.held && !this.releasing && this.waiters.length === 0 && !this.blocked(true);
  }

  /**
   * Lets the first waiter in when nothing holds the gate and the store has room. Its
   * continuation runs next (it was queued first); only then is the next waiter looked at, so
   * each sees the room the ones before it left. Never polls: it runs inside completion deliveries.
   */
  private release(): void {
    if (this.releasing || this.held || this.waiters.length === 0 || this.blocked(false)) return;
    this.releasing = true;
    const next = this.waiters.shift()!;
    if (next.holds) this.held = true;
    next.resolve();
    queueMicrotask(() => {
      this.releasing = false;
      this.release();
    });
  }
}
