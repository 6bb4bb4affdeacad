/**
 * Shipping truncates (docs/xdr.md, "Truncates"). A cut that a node of this cluster applies and
 * did not hold yet goes to every destination's queue; a shipper sends its queue before its
 * record batches, and every cut the node holds again after each (re)connection (a cut is
 * durable in its namespace, so one queued when the node was killed is not lost). At the
 * destination the cut is applied through its cluster (`truncate`, every node), which ships it
 * on to that cluster's own destinations: a cut already held is a no-op there and goes no
 * further, so rings end.
 *
 *   admin-xdr-truncate { source, ns, set, beforeMs } → { applied: boolean }
 */
import type { ClusterNode } from '../cluster/cluster';
import type { ClusterTruncateCut } from '../cluster/local-store';
import { MAX_TRUNCATE_CLOCK_LEAD_MS } from '../cluster/constants';
import { invalidArgument } from '../errors';
import { coveredBy } from '../model/truncate-cuts';
import { XDR_TRUNCATE_WAIT_MAX_MS } from './constants';

/** Whether `cuts` (a LocalStore's truncateCuts()) already cover `cut`. */
export function cutHeld(cuts: readonly ClusterTruncateCut[], cut: ClusterTruncateCut): boolean {
  return coveredBy(
    cuts.filter((c) => c.ns === cut.ns).map((c) => ({ set: c.set ?? undefined, beforeMs: c.beforeMs })),
    { set: cut.set ?? undefined, beforeMs: cut.beforeMs },
  );
}

/** A shipper's truncates waiting to be sent, one per namespace and set (the latest cut). */
export class TruncateQueue {
  private readonly waiting = new Map<string, ClusterTruncateCut>();

  add(cut: ClusterTruncateCut): void {
    const key = `${cut.ns}\0${cut.set ?? ''}`;
    const known = this.waiting.get(key);
    if (known === undefined || known.beforeMs < cut.beforeMs) this.waiting.set(key, cut);
  }

  get size(): number {
    return this.waiting.size;
  }

  /**
   * Sends each waiting cut with `send`, in turn; a cut leaves the queue once sent.
   * @throws the first send's error (the cuts not sent stay queued).
   */
  async flush(send: (cut: ClusterTruncateCut) => Promise<void>): Promise<void> {
    for (const [key, cut] of [...this.waiting]) {
      await send(cut);
      if (this.waiting.get(key) === cut) this.waiting.delete(key);
    }
  }
}

/**
 * Applies a shipped cut through this cluster. A cut ahead of this node's clock by more than the
 * cluster allows (MAX_TRUNCATE_CLOCK_LEAD_MS: the source's clock runs ahead) is held until this
 * clock is close enough, at most XDR_TRUNCATE_WAIT_MAX_MS; further ahead it is refused and the
 * sender retries it.
 * @throws ShoalError INVALID_ARGUMENT for a malformed cut or one still too far ahead.
 */
export async function applyShippedTruncate(node: ClusterNode, namespaces: readonly string[], held: () => ClusterTruncateCut[], message: Record<string, unknown>): Promise<{ applied: boolean }> {
  const { ns, set, beforeMs } = message;
  if (typeof ns !== 'string' || !namespaces.includes(ns)) throw invalidArgument(`xdr-truncate of namespace ${JSON.stringify(ns)}, which this cluster does not have`);
  if (set !== null && (typeof set !== 'string' || set.length === 0)) throw invalidArgument('malformed xdr-truncate: set must be a non-empty string or null');
  if (typeof beforeMs !== 'number' || !Number.isFinite(beforeMs) || beforeMs <= 0) throw invalidArgument('malformed xdr-truncate: beforeMs must be a positive number');
  const cut: ClusterTruncateCut = { ns, set: set as string | null, beforeMs };
  if (cutHeld(held(), cut)) return { applied: false };
  const waitUntil = Date.now() + XDR_TRUNCATE_WAIT_MAX_MS;
  while (beforeMs > Date.now() + MAX_TRUNCATE_CLOCK_LEAD_MS - 10 && Date.now() < waitUntil) await new Promise((resolve) => setTimeout(resolve, 20));
  if (beforeMs > Date.now() + MAX_TRUNCATE_CLOCK_LEAD_MS - 10) throw invalidArgument(`xdr-truncate cut ${beforeMs} is still more than ${MAX_TRUNCATE_CLOCK_LEAD_MS} ms ahead of this cluster's clock`);
  await node.truncate(cut);
  return { applied: true };
}
