/**
 * Routing (docs/cluster.md, "Routing", "Errors that tell the truth"): any node accepts a
 * request and sends it in one hop to the partition's acting master; a node that is not (or no
 * longer) the acting master answers "retry", and the origin retries with its refreshed view
 * until the request's deadline. A write carries a request id; a node never executes one twice,
 * and answers a duplicate or a re-send with the first outcome (request-memory.ts).
 */
import type { DuplicateResolution } from './duplicate-resolution';
import type { Replication } from './replication';
import { ErrorCode, ShoalError } from '../errors';
import { FORWARD_RETRY_DELAY_MS, FORWARD_RETRY_MAX_DELAY_MS, MAX_FORWARD_ATTEMPTS, MAX_FRAME_BYTES } from './constants';
import type { ClusterRequest } from './local-store';
import type { WireMessage } from './network';
import { partitionOf } from './peer-checks';
import type { DataPlaneState } from './data-plane-state';
import { inDoubtError, isRequestId, replyStep, requestPartitions, timeoutMessage, toWireError, unwrap, type Step } from './data-plane-wire';

export class Routing {
  /** Prefix of this node's request ids: node id and a random incarnation (a restarted node never reuses one). */
  private readonly requestIdPrefix: string;
  private nextRequestNumber = 0;
  /** Called with the members that left, at each view change (forwarded writes watch their master). */
  private readonly departureWatchers = new Set<(departed: readonly string[]) => void>();

  constructor(
    private readonly plane: DataPlaneState,
    private readonly duplicates: DuplicateResolution,
    private readonly replication: Replication,
  ) {
    this.requestIdPrefix = `${plane.options.nodeId}/${plane.options.runtime.random.nextUint32().toString(36)}/`;
  }

  /** Members left the view: a forwarded write waiting on one of them stops waiting (see forward). */
  onDeparted(departed: readonly string[]): void {
    for (const watcher of [...this.departureWatchers]) watcher(departed);
  }

  // ---- Routing ----

  /**
   * Executes a client request wherever its partition is served. Resolves to the request's
   * value (for a scan, the concatenated values of every partition group); rejects with the
   * store's error, or ShoalError TIMEOUT (the request may have been applied: in doubt) /
   * PARTITION_UNAVAILABLE (no view agreed in time: not applied).
   */
  execute(request: ClusterRequest): Promise<unknown> {
    const deadline = this.plane.options.runtime.clock.nowMs() + this.plane.requestTimeoutMs;
    if (request.kind === 'record') {
      const requestId = request.readOnly === true ? undefined : `${this.requestIdPrefix}${this.nextRequestNumber++}`;
      return this.executeRouted(request, [partitionOf(request.digest)], deadline, requestId);
    }
    return this.executeScan(request, deadline);
  }

  private async executeScan(request: ClusterRequest & { kind: 'scan' }, deadline: number): Promise<unknown> {
    await this.plane.waitForPlans(deadline);
    const byMaster = new Map<string, number[]>();
    for (const partition of request.partitions) {
      const master = this.plane.actingMaster(partition) ?? this.plane.options.nodeId;
      const list = byMaster.get(master);
      if (list === undefined) byMaster.set(master, [partition]);
      else list.push(partition);
    }
    const parts = await Promise.all(
      [...byMaster.values()].map((partitions) => this.executeRouted({ ...request, partitions }, partitions, deadline, undefined)),
    );
    return (parts as unknown[][]).flat();
  }

  /**
   * Sends a request to the acting master of `partitions` (all the same node), retrying while
   * they move, until the deadline. A write (`requestId` set) whose master left the cluster
   * while it ran may have been applied: it is sent again only marked as a re-send, which a
   * master answers with the first outcome if it knows it, and "in doubt" otherwise; never by
   * running it a second time.
   */
  private async executeRouted(request: ClusterRequest, partitions: number[], deadline: number, requestId: string | undefined): Promise<unknown> {
    let resend = false;
    let answered = false;
    let first: Promise<Step> | undefined;
    for (let attempt = 0; attempt < MAX_FORWARD_ATTEMPTS && !this.plane.stopped; attempt++) {
      try {
        await this.plane.waitForPlans(deadline);
      } catch (error) {
        // No view agreed in time. For a write an earlier attempt may have applied (its master
        // left with it), that is no proof it was not: in doubt (TIMEOUT below), not unavailable.
        if (answered && requestId !== undefined) break;
        throw error;
      }
      if (this.plane.stopped) break;
      const target = this.plane.actingMaster(partitions[0]) ?? this.plane.options.nodeId;
      let step = target === this.plane.options.nodeId
        ? await this.executeAsMaster(request, partitions, deadline, requestId, resend)
        : await this.forward(target, request, deadline, requestId, resend);
      if (step.retry === 'unknown' && first !== undefined) {
        // The new master knows nothing of the write: the master it first went to, which left
        // the view, may only have stalled and still answers. Its answer is the truth.
        step = await first;
        first = undefined;
        if (step.retry === 'not-master' || step.retry === 'not-sent') resend = false; // it did not run there
        else if (step.retry === 'left') step = { retry: 'timeout' };
      }
      if (step.tooLarge === true) return this.executeInHalves(request, partitions, deadline);
      if (step.retry === undefined) return unwrap(step);
      if (step.retry === 'left' || step.retry === 'timeout' || step.retry === 'unknown') answered = true;
      if (step.retry === 'left' && requestId !== undefined) {
        resend = true;
        first = step.first;
      }
      const now = this.plane.options.runtime.clock.nowMs();
      if (step.retry === 'timeout' || step.retry === 'unknown' || now >= deadline) break;
      this.plane.counters.retries++;
      await this.plane.sleep(Math.min(FORWARD_RETRY_DELAY_MS * (attempt + 1), FORWARD_RETRY_MAX_DELAY_MS, deadline - now));
      if (request.kind === 'scan' && partitions.some((p) => this.plane.actingMaster(p) !== this.plane.actingMaster(partitions[0]))) {
        // The group split across masters while the cluster changed: route each part again.
        return this.executeScan({ ...request, partitions }, deadline);
      }
    }
    if (requestId !== undefined && answered) this.plane.counters.inDoubt++;
    throw new ShoalError(ErrorCode.TIMEOUT, timeoutMessage(partitions[0], requestId !== undefined, this.plane.stopped));
  }

  /**
   * One attempt at a request on another node. A write's call survives its target leaving the
   * view: the attempt then returns `retry: 'left'` at once, with the still-awaited reply in
   * `first`, so the caller can ask the new master while the first may still answer.
   */
  private async forward(target: string, request: ClusterRequest, deadline: number, requestId: string | undefined, resend: boolean): Promise<Step> {
    this.plane.counters.forwarded++;
    const message: WireMessage = { type: 'request', request };
    if (requestId !== undefined) message.requestId = requestId;
    if (resend) message.resend = true;
    if (requestId === undefined) return replyStep(await this.plane.call(target, message, deadline));
    const reply = this.plane.pending.call(target, message, deadline, 'target-left').then(replyStep);
    let watcher: ((departed: readonly string[]) => void) | undefined;
    const left = new Promise<'left'>((resolve) => {
      watcher = (departed) => {
        if (departed.includes(target)) resolve('left');
      };
      this.departureWatchers.add(watcher);
    });
    const outcome = await Promise.race([reply, left]);
    this.departureWatchers.delete(watcher!);
    return outcome === 'left' ? { retry: 'left', first: reply } : outcome;
  }

  /**
   * A scan whose reply did not fit in one frame: its partitions in two halves, one after the
   * other (so the pieces are as small as they need to be, and no larger).
   * @throws ShoalError CLUSTER_ERROR when a single partition's records do not fit in a frame.
   */
  private async executeInHalves(request: ClusterRequest, partitions: number[], deadline: number): Promise<unknown> {
    if (request.kind !== 'scan' || partitions.length < 2) {
      throw new ShoalError(
        ErrorCode.CLUSTER_ERROR,
        `cluster: the reply for partition ${partitions[0]} exceeds the ${MAX_FRAME_BYTES}-byte frame limit; scan it with fewer or smaller records, or on its master`,
      );
    }
    this.plane.counters.scanSplits++;
    const middle = partitions.length >> 1;
    const first = (await this.executeScan({ ...request, partitions: partitions.slice(0, middle) }, deadline)) as unknown[];
    const second = (await this.executeScan({ ...request, partitions: partitions.slice(middle) }, deadline)) as unknown[];
    return first.concat(second);
  }

  // ---- Executing as master ----

  /**
   * Executes on this node as acting master, then replicates. `retry` set if this node does
   * not serve the partitions after all. A write already executed here (or applied here as a
   * replica) gets its first outcome; a re-send this node knows nothing of is answered "in
   * doubt", since its first attempt may have been applied by a master that left.
   */
  private async executeAsMaster(request: ClusterRequest, partitions: number[], deadline: number, requestId: string | undefined, resend: boolean): Promise<Step> {
    if (!this.plane.serves(partitions)) return { retry: 'not-master' };
    if (requestId !== undefined) {
      const known = await this.recall(requestId);
      if (known !== undefined) return known;
      // A re-send this node has no record of: the first attempt may have been applied by the
      // master that left. Never run it; the origin waits for that master's answer instead.
      if (resend) return { retry: 'unknown' };
    }
    const key = this.plane.view.clusterKey;
    const blocked = await this.duplicates.resolveDuplicates(request.ns, partitions, request.kind === 'record' ? request.digest : undefined, deadline);
    if (blocked !== undefined) return blocked;
    if (this.plane.view.clusterKey !== key || !this.plane.serves(partitions)) return { retry: 'not-master' };
    if (requestId !== undefined) {
      // A duplicate may have started while the copies were being resolved.
      const known = await this.recall(requestId);
      if (known !== undefined) return known;
    }
    this.plane.counters.executedAsMaster++;
    const run = this.replication.executeAndReplicate(request, partitions, deadline, requestId);
    if (requestId !== undefined) {
      this.plane.memory.running(requestId, run.then((ran) => ran.outcome));
      void run.then((ran) => this.plane.memory.finished(requestId, ran.outcome, ran.wrote));
    }
    return (await run).outcome;
  }

  /** The outcome of write `requestId` if this node ran it or applied it as a replica; undefined if not. */
  private async recall(requestId: string): Promise<Step | undefined> {
    const known = this.plane.memory.lookup(requestId);
    if (known === undefined) return undefined;
    this.plane.counters.answeredFromMemory++;
    if ('running' in known) return known.running;
    if (known.recalled !== undefined) return known.recalled;
    this.plane.counters.inDoubt++;
    return { error: inDoubtError(undefined, 'it was applied, but its result was too large to remember for a re-send') };
  }

  // ---- Requests from peers ----

  async onRequest(from: string, message: WireMessage): Promise<void> {
    const request = message.request as ClusterRequest;
    const reply: WireMessage = { type: 'response', id: message.id };
    const partitions = requestPartitions(request);
    const requestId = message.requestId;
    if (partitions === undefined || !this.plane.knowsNamespace(request.ns) || (requestId !== undefined && !isRequestId(requestId))) {
      this.plane.refusals.refuse('request', from, 'malformed forwarded request');
      reply.error = { code: ErrorCode.INVALID_ARGUMENT, message: 'cluster: malformed forwarded request' };
    } else {
      const deadline = this.plane.options.runtime.clock.nowMs() + this.plane.requestTimeoutMs;
      try {
        const step = await this.executeAsMaster(request, partitions, deadline, requestId as string | undefined, message.resend === true);
        if (step.retry === 'timeout') reply.error = { code: ErrorCode.TIMEOUT, message: timeoutMessage(partitions[0], requestId !== undefined, false) };
        else if (step.retry !== undefined) reply.retry = step.retry;
        else if (step.error !== undefined) reply.error = step.error;
        else reply.value = step.value;
      } catch (error) {
        reply.error = toWireError(error);
      }
    }
    try {
      this.plane.options.send(from, reply);
    } catch (error) {
      // A reply over MAX_FRAME_BYTES (a scan of many large records): say so, so the caller
      // asks for fewer partitions at a time, instead of leaving it to time out.
      if (!(error instanceof RangeError)) throw error;
      this.plane.options.send(from, { type: 'response', id: message.id, tooLarge: true });
    }
  }
}
