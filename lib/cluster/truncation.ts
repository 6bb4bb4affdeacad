/**
 * Cluster-wide truncate (docs/cluster.md, "Truncate"). Truncate is not a partition's business
 * but every node's: each applies the cut to all its local copies, masters and replicas alike.
 *
 * - The node that takes the call applies the cut locally, then sends it to every other member
 *   of its view and waits for each to apply it (`truncate` / `truncate-ack`). A cut of "now"
 *   is first moved past every member's write clock (`truncate-clock` / `truncate-clock-ack`),
 *   so that it removes every write acknowledged before the call.
 * - A node that missed it (down, on the other side of a split, joining later) learns the cut
 *   from heartbeats, which carry every cut a node has applied, and applies it as soon as it
 *   hears of it, before it has joined a view that would let it serve data.
 * - Every node refuses a replicated or migrated version that a cut it knows removed, so a copy
 *   from a node that has not yet heard of the cut cannot bring a truncated record back.
 *
 * Cuts are kept by the namespaces (durably on device namespaces), so all of this holds across
 * restarts. Cut times are wall-clock times of the node that took the call; nodes' clocks are
 * assumed to agree to within a second (the store refuses a cut further ahead than that).
 */
import { ErrorCode, ShoalError } from '../errors';
import { MAX_HEARTBEAT_CUTS, MAX_REMEMBERED_CUTS, MAX_TRUNCATE_CUT_LEAD_MS } from './constants';
import type { ClusterTruncateCut, LocalStore } from './local-store';
import type { WireMessage } from './network';
import { PendingCalls } from './pending-calls';
import type { Runtime } from './seams';

export const TRUNCATE_MESSAGE_TYPES = ['truncate', 'truncate-ack', 'truncate-clock', 'truncate-clock-ack'] as const;

export interface TruncationOptions {
  nodeId: string;
  runtime: Runtime;
  store: LocalStore;
  /** Sends a message to a node; false when it is not connected now. */
  send(to: string, message: WireMessage): boolean;
  /** The members of the current view (this node included). */
  members(): string[];
  /** How long truncate waits for every member's acknowledgement. */
  timeoutMs: number;
}

export class ClusterTruncation {
  private readonly pending: PendingCalls;
  /**
   * Recent cuts applied here, by cutKey, with what each removed. A cut can arrive twice (from a
   * peer's heartbeat and then its broadcast, in either order); it is applied once, and the
   * broadcast's acknowledgement reports what that one application removed.
   */
  private readonly outcomes = new Map<string, Promise<number>>();

  constructor(private readonly options: TruncationOptions) {
    this.pending = new PendingCalls(`${options.nodeId}#t`, options.runtime, options.send);
  }

  /**
   * Applies `cut` here and on every member of the view. Resolves to the number of local copies
   * removed across the nodes (a record with replicas counts once per copy).
   * @param coversNow the cut is "now": it must remove every write acknowledged before this
   *   call, so it is first moved past every member's write clock (coveringCut).
   * @throws ShoalError TIMEOUT when a member did not acknowledge in time (it still gets the cut
   *   through heartbeats); a member's own error; CLUSTER_ERROR without truncate support.
   */
  async truncate(cut: ClusterTruncateCut, coversNow = false): Promise<number> {
    if (coversNow) cut = { ...cut, beforeMs: await this.coveringCut(cut.beforeMs) };
    let removed = await this.applyLocally(cut);
    const peers = this.options.members().filter((id) => id !== this.options.nodeId);
    const deadline = this.options.runtime.clock.nowMs() + this.options.timeoutMs;
    const replies = await Promise.all(peers.map((peer) => this.pending.call(peer, { type: 'truncate', cut }, deadline)));
    const silent: string[] = [];
    replies.forEach((reply, i) => {
      if (reply.type !== 'truncate-ack') silent.push(peers[i]!);
      else if (reply.error !== undefined) {
        const error = reply.error as { code?: unknown; message?: unknown };
        throw new ShoalError(typeof error.code === 'string' ? (error.code as ErrorCode) : ErrorCode.CLUSTER_ERROR, `truncate on node ${peers[i]}: ${String(error.message)}`);
      } else if (Number.isSafeInteger(reply.removed)) removed += reply.removed as number;
    });
    if (silent.length > 0) {
      throw new ShoalError(
        ErrorCode.TIMEOUT,
        `truncate applied here but not acknowledged by ${silent.join(', ')} in time; they apply it when they next hear this node's heartbeat`,
      );
    }
    return removed;
  }

  /**
   * A cut time past every write the members have acknowledged: `beforeMs`, raised past each
   * member's write clock (`truncate-clock`). Writes are stamped by hybrid clocks, which run
   * ahead of the wall clock where one record is rewritten within a millisecond or versions
   * cross between nodes faster than that, so a wall-clock "now" would spare the latest writes.
   * A member that does not answer in time adds nothing; the broadcast then reports it silent.
   * A reading further ahead of this node's wall clock than a hybrid clock may run is ignored
   * (the cut would be refused everywhere).
   */
  private async coveringCut(beforeMs: number): Promise<number> {
    const { store, runtime, nodeId } = this.options;
    if (store.writeClockMs === undefined) return beforeMs;
    let cutMs = Math.max(beforeMs, store.writeClockMs() + 1);
    const peers = this.options.members().filter((id) => id !== nodeId);
    const deadline = runtime.clock.nowMs() + this.options.timeoutMs;
    const replies = await Promise.all(peers.map((peer) => this.pending.call(peer, { type: 'truncate-clock' }, deadline)));
    const limitMs = Date.now() + MAX_TRUNCATE_CUT_LEAD_MS;
    replies.forEach((reply, i) => {
      if (reply.type !== 'truncate-clock-ack' || typeof reply.nowMs !== 'number' || !Number.isFinite(reply.nowMs)) return;
      if (reply.nowMs + 1 > limitMs) runtime.logger.warn(`cluster: node ${peers[i]}'s write clock ${reply.nowMs} is too far ahead of this node's to cut a truncate at; ignored`);
      else cutMs = Math.max(cutMs, reply.nowMs + 1);
    });
    return cutMs;
  }

  /** The cuts applied here, compact, for this node's heartbeats. */
  heartbeatCuts(): [string, string | null, number][] | undefined {
    const cuts = this.options.store.truncateCuts?.() ?? [];
    if (cuts.length === 0) return undefined;
    return cuts
      .sort((a, b) => b.beforeMs - a.beforeMs)
      .slice(0, MAX_HEARTBEAT_CUTS)
      .map((cut) => [cut.ns, cut.set, cut.beforeMs]);
  }

  /** A peer's heartbeat listed these cuts: applies here those not already in force. */
  onPeerCuts(from: string, cuts: unknown): void {
    if (!Array.isArray(cuts) || this.options.store.truncateCuts === undefined) return;
    const known = this.options.store.truncateCuts();
    for (const entry of cuts.slice(0, MAX_HEARTBEAT_CUTS)) {
      const cut = parseCut(entry);
      if (cut === undefined || covered(known, cut)) continue;
      if (this.outcomes.has(cutKey(cut))) continue;
      this.options.runtime.logger.info(`cluster: applying a truncate of ${cut.ns}${cut.set === null ? '' : `/${cut.set}`} before ${cut.beforeMs} heard from ${from}`);
      this.applyLocally(cut).catch((error) => this.options.runtime.logger.warn(`cluster: could not apply a truncate heard from ${from}: ${String(error)}`));
    }
  }

  handle(from: string, message: WireMessage): void {
    if (message.type === 'truncate-ack' || message.type === 'truncate-clock-ack') this.pending.settle(from, message);
    else if (message.type === 'truncate') void this.onTruncate(from, message);
    else if (message.type === 'truncate-clock') this.options.send(from, { type: 'truncate-clock-ack', id: message.id, nowMs: this.options.store.writeClockMs?.() ?? null });
  }

  private async onTruncate(from: string, message: WireMessage): Promise<void> {
    const reply: WireMessage = { type: 'truncate-ack', id: message.id };
    const cut = parseCut(message.cut);
    try {
      if (cut === undefined) throw new ShoalError(ErrorCode.CLUSTER_ERROR, 'malformed truncate message');
      reply.removed = await this.applyLocally(cut);
    } catch (error) {
      reply.error = { code: (error as { code?: unknown }).code ?? ErrorCode.CLUSTER_ERROR, message: (error as Error).message ?? String(error) };
    }
    this.options.send(from, reply);
  }

  private applyLocally(cut: ClusterTruncateCut): Promise<number> {
    const store = this.options.store;
    if (store.applyTruncate === undefined) return Promise.reject(new ShoalError(ErrorCode.CLUSTER_ERROR, 'cluster: this node cannot truncate'));
    const key = cutKey(cut);
    const known = this.outcomes.get(key);
    if (known !== undefined) return known;
    const outcome = store.applyTruncate(cut);
    this.outcomes.set(key, outcome);
    outcome.catch(() => this.outcomes.delete(key));  // a failed application may be tried again
    if (this.outcomes.size > MAX_REMEMBERED_CUTS) this.outcomes.delete(this.outcomes.keys().next().value!);
    return outcome;
  }

  /** Ends every call waiting for an acknowledgement (the node is stopping). */
  stop(): void {
    this.pending.release('local-stop');
  }
}

/** A cut from the wire (untrusted): `{ ns, set, beforeMs }` or the heartbeat's `[ns, set, beforeMs]`. */
function parseCut(value: unknown): ClusterTruncateCut | undefined {
  const [ns, set, beforeMs] = Array.isArray(value)
    ? value
    : value !== null && typeof value === 'object'
      ? [(value as Record<string, unknown>).ns, (value as Record<string, unknown>).set, (value as Record<string, unknown>).beforeMs]
      : [];
  if (typeof ns !== 'string' || ns.length === 0 || ns.length > 64) return undefined;
  if (set !== null && (typeof set !== 'string' || set.length === 0 || set.length > 64)) return undefined;
  if (typeof beforeMs !== 'number' || !Number.isFinite(beforeMs)) return undefined;
  return { ns, set: set as string | null, beforeMs };
}

function covered(known: readonly ClusterTruncateCut[], cut: ClusterTruncateCut): boolean {
  return known.some((k) => k.ns === cut.ns && k.beforeMs >= cut.beforeMs && (k.set === null || k.set === cut.set));
}

function cutKey(cut: ClusterTruncateCut): string {
  return `${cut.ns}\u0000${cut.set ?? ''}\u0000${cut.beforeMs}`;
}
