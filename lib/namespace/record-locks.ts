/**
 * Per-record locks: an operation that must wait for a device read holds its record's lock
 * across the read, and any other operation on the same record queues behind it
 * (record-core.ts). Keyed by the record's digest as a latin1 string.
 */
import { EX_DIGEST, type Exchange } from '../native/exchange';

/** The lock key of the record whose digest is in the exchange. */
export function digestLockKey(exchange: Exchange): string {
  return exchange.buffer.toString('latin1', EX_DIGEST, EX_DIGEST + 20);
}

export class RecordLocks {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** How many records are locked (0 on the fast path: no lookup needed). */
  get size(): number {
    return this.tails.size;
  }

  has(lockKey: string): boolean {
    return this.tails.has(lockKey);
  }

  /** Runs task once every earlier task of this record has settled; the record stays locked until it settles. */
  run<T>(lockKey: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(lockKey);
    const next = (previous === undefined ? task() : previous.then(task, task)) as Promise<T>;
    const settled = next.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(lockKey, settled);
    settled.then(() => {
      if (this.tails.get(lockKey) === settled) this.tails.delete(lockKey);
    });
    return next;
  }

  /** Resolves once every task locked now has settled. */
  async idle(): Promise<void> {
    await Promise.all([...this.tails.values()]);
  }
}
