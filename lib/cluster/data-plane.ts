/**
 * The data plane of a cluster node (docs/cluster.md, "Routing", "Replication", "Migrations",
 * "Who serves a partition", "Errors that tell the truth"):
 *
 * - routing: any node accepts a request and sends it in one hop to the partition's acting
 *   master; a node that is not (or no longer) the acting master answers "retry", and the
 *   origin retries with its refreshed view until the request's deadline;
 * - replication: the acting master executes the request, ships every record version it wrote
 *   to each other owner of the partition, and answers only once all have applied it;
 * - duplicate resolution: while copies of a partition are still being merged into its acting
 *   master, the acting master reads a record's copy from each pending merge source before it
 *   serves that record, so no acknowledged write is hidden;
 * - idempotence: a write carries a request id; a node never executes one twice, and answers a
 *   duplicate or a re-send with the first outcome (request-memory.ts);
 * - migrations: after each new view the members exchange what they hold, plan each partition
 *   (partition-plan.ts) and move data with a better-queue job queue (bounded concurrency,
 *   retries); a partition settles on its new owners when every fill is acknowledged and the
 *   acting master's writes in flight are replicated, and only then do non-owners drop it;
 * - trust: every message from a peer is checked (peer-checks.ts) against the sender's
 *   membership, its role for that partition, and the wire format's bounds.
 */
import BetterQueue = require('better-queue');
import { endianness } from 'node:os';
import { ErrorCode, ShoalError } from '../errors';
import { DropQueue, runLimited, yieldTurn } from './background';
import {
  BATCH_REQUEST_MAX_BYTES,
  BATCH_REQUEST_RECORDS,
  BATCH_REQUESTS_IN_FLIGHT,
  DATA_PLANE_SLICE_RECORDS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DUPLICATE_READ_ATTEMPT_TIMEOUT_MS,
  FORWARD_RETRY_DELAY_MS,
  FORWARD_RETRY_MAX_DELAY_MS,
  MAX_FORWARD_ATTEMPTS,
  MAX_FRAME_BYTES,
  MIGRATION_BATCH_MAX_BYTES,
  MIGRATION_BATCH_RECORDS,
  MIGRATION_CONCURRENCY,
  MIGRATION_MAX_RETRIES,
  MIGRATION_REQUEUE_DELAY_MS,
  PARTITION_COUNT,
  REMEMBERED_REQUEST_TIMEOUTS,
  REPLICATION_ATTEMPT_TIMEOUT_MS,
  REPLICATION_BATCH_RECORDS,
  SETTLE_NOTICE_BATCH_MS,
} from './constants';
import type { BatchItemOutcome, ClusterRequest, LocalResult, LocalStore, RecordVersion, WireError } from './local-store';
import type { ClusterView } from './membership';
import type { WireMessage } from './network';
import type { PartitionMap } from './partition-map';
import type { MemberPartitionInfo, PartitionPlan } from './partition-plan';
import { bitIsSet, emptyBitmap, lineageOf, planPartitions, setBit } from './partition-plan';
import { isDigest, isPartition, parseWireVersions, partitionOf, RefusalLog, versionsToWire } from './peer-checks';
import { addToReplicationBatch, encodeBatchSteps, packVersions, parseBatchSteps, unpackVersions, type BatchStep, type ReplicationBatch } from './batch-wire';
import { PendingCalls } from './pending-calls';
import type { RequestOutcome } from './request-memory';
import { encodeOutcome, RequestMemory } from './request-memory';
import type { Runtime, TimerHandle } from './seams';

export { partitionOf } from './peer-checks';

export interface DataPlaneOptions {
  nodeId: string;
  runtime: Runtime;
  store: LocalStore;
  send(nodeId: string, message: WireMessage): boolean;
  requestTimeoutMs?: number;
  /** Record versions per migration batch (default MIGRATION_BATCH_RECORDS; the simulator's long-migration workload uses fewer). */
  migrationBatchRecords?: number;
  /** Called when this node's migrations reach zero. */
  onMigrationsComplete(): void;
}

interface MigrationJob {
  id: string;
  clusterKey: string;
  partition: number;
  phase: 'merge' | 'fill';
  targets: readonly string[];
}

/**
 * One attempt at a request: its outcome, or why it must be routed again. `retry` is
 * 'not-master' or 'not-sent' (it did not run there), 'left' (its master left the cluster: it
 * may have run) or 'timeout' (no answer by the deadline: it may have run).
 */
type Step = {
  value?: unknown;
  error?: WireError;
  retry?: 'not-master' | 'not-sent' | 'left' | 'timeout' | 'unknown';
  tooLarge?: boolean;
  /** With retry 'left': the first attempt's reply, still awaited (a stalled master that wakes may yet answer). */
  first?: Promise<Step>;
};


/** Message types the data plane handles. */
export const DATA_MESSAGE_TYPES = [
  'partition-info',
  'request',
  'response',
  'batch-request',
  'batch-response',
  'replicate',
  'replicate-ack',
  'duplicate-read',
  'duplicate-versions',
  'migrate-offer',
  'migrate-batch',
  'migrate-ack',
  'partition-settled',
  'partition-settled-ack',
] as const;

/** Replies: matched to the call that sent the request (PendingCalls). */
const REPLY_TYPES: ReadonlySet<string> = new Set(['response', 'batch-response', 'replicate-ack', 'duplicate-versions', 'migrate-ack']);

/** Longest request id accepted from a peer (node id, incarnation, counter). */
const REQUEST_ID_MAX_LENGTH = 160;

export class DataPlane {
  private readonly requestTimeoutMs: number;
  private readonly migrationBatchRecords: number;
  private view: ClusterView = { clusterKey: '', succession: [], quiesced: [], epoch: 0 };
  /** The view before this one, with its plans: late replication of a write begun there is still accepted. */
  private previous: { clusterKey: string; plans: PartitionPlan[] | undefined } = { clusterKey: '', plans: undefined };
  /** The lineage copies take when they settle in this view (lineageOf(epoch, key)). */
  private viewLineage = '';
  private map: PartitionMap | undefined;
  private readonly infos = new Map<string, MemberPartitionInfo>();
  private plans: PartitionPlan[] | undefined;
  /**
   * This node's holdings as of the view change, sent unchanged to every member: every member
   * must plan from the same inputs, even though replication keeps changing local state. Taken
   * once no write of the old view is still executing here (see takeSnapshotWhenIdle).
   */
  private infoSnapshot: WireMessage | undefined;
  private localSnapshot: MemberPartitionInfo | undefined;
  private readyWaiters: (() => void)[] = [];
  private readonly pending: PendingCalls;
  // Local per-partition state.
  private readonly synced = emptyBitmap();
  private readonly lineage: string[] = new Array(PARTITION_COUNT).fill('');
  private readonly settled = emptyBitmap();
  /** At an acting master: merge sources not yet finished, per partition. */
  private readonly awaitingMerges = new Map<number, Set<string>>();
  /** Partitions this node still has to send (merge or fill) or receive (fill). */
  private readonly outgoing = new Set<number>();
  private readonly incoming = new Set<number>();
  /** At an acting master: per member, the settled partitions it has not acknowledged yet. */
  private readonly settleAcks = new Map<string, Set<number>>();
  /** Partitions settled here whose notice has not gone out yet (sent together, see queueSettleNotice). */
  private readonly settleOutbox: number[] = [];
  private settleFlushTimer: TimerHandle | undefined;
  private queue: BetterQueue<MigrationJob>;
  private stopped = false;
  /** Partitions that received records (replication, migration) since the last snapshot. */
  private readonly receivedSinceSnapshot = emptyBitmap();
  /** Writes executing or replicating per partition (master side). */
  private readonly replicating = new Map<number, number>();
  /** Requests whose local execution (executeLocal) is running: the view's snapshot waits for none. */
  private executing = 0;
  private idleWaiters: (() => void)[] = [];
  /** Partitions whose fills are done, waiting for their writes in flight before they settle (nobody serves them meanwhile). */
  private readonly handingOff = new Map<number, () => void>();
  /** Partitions with a write whose replication gave up (timed out) since the last view change. */
  private readonly unreplicated = new Set<number>();
  private readonly memory: RequestMemory;
  /** Prefix of this node's request ids: node id and a random incarnation (a restarted node never reuses one). */
  private readonly requestIdPrefix: string;
  private nextRequestNumber = 0;
  private readonly drops: DropQueue;
  /** Called with the members that left, at each view change (forwarded writes watch their master). */
  private readonly departureWatchers = new Set<(departed: readonly string[]) => void>();
  readonly refusals: RefusalLog;
  readonly counters = {
    forwarded: 0,
    executedAsMaster: 0,
    replicated: 0,
    migratedRecordsIn: 0,
    migratedRecordsOut: 0,
    skippedByDelta: 0,
    retries: 0,
    scanSplits: 0,
    duplicateReads: 0,
    answeredFromMemory: 0,
    inDoubt: 0,
    batchRequests: 0,
  };

  constructor(private readonly options: DataPlaneOptions) {
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.migrationBatchRecords = options.migrationBatchRecords ?? MIGRATION_BATCH_RECORDS;
    const { clock, timers, logger, random } = options.runtime;
    this.pending = new PendingCalls(`${options.nodeId}#`, options.runtime, options.send);
    this.memory = new RequestMemory(clock, REMEMBERED_REQUEST_TIMEOUTS * this.requestTimeoutMs);
    this.requestIdPrefix = `${options.nodeId}/${random.nextUint32().toString(36)}/`;
    this.refusals = new RefusalLog(clock, logger);
    this.drops = new DropQueue(timers, logger, (partition) => this.dropLocalCopy(partition));
    this.queue = this.createQueue();
  }

  /**
   * The migration job queue of one view. A new view replaces it: jobs still queued for the
   * old view would only start to find their view gone, and after a burst of view changes
   * (a flapping network) thousands of them would each take a turn first.
   */
  private createQueue(): BetterQueue<MigrationJob> {
    const queue = new BetterQueue<MigrationJob>({
      process: (job, done) => {
        this.runJob(job).then(
          () => done(),
          (error) => done(error),
        );
      },
      concurrent: MIGRATION_CONCURRENCY,
      maxRetries: MIGRATION_MAX_RETRIES,
      id: 'id',
      // Through the Timers seam, so the simulator schedules the queue deterministically.
      setImmediate: (callback: () => void) => {
        const timers = this.options.runtime.timers;
        if (timers.setImmediate !== undefined) timers.setImmediate(callback);
        else timers.setTimeout(callback, 0);
      },
    });
    queue.on('task_failed', (...args: unknown[]) => this.onJobFailed(String(args[0]), args[1]));
    return queue;
  }

  /** Jobs queued or running, by id (to requeue one that exhausted its retries). */
  private readonly jobs = new Map<string, MigrationJob>();

  private enqueue(job: MigrationJob): void {
    this.jobs.set(job.id, job);
    this.queue.push(job, (error) => {
      // On failure the entry stays for onJobFailed (better-queue calls this callback first).
      if (error === undefined || error === null) {
        if (this.jobs.get(job.id) === job) this.jobs.delete(job.id);
      }
    });
  }

  /**
   * A job that exhausted its immediate retries is queued again after a pause while its view
   * stands: a partition must not stay unmigrated (and waitForMigrations unresolved) because of
   * a transient failure. A new view replaces the job anyway.
   */
  private onJobFailed(id: string, error: unknown): void {
    const job = this.jobs.get(id);
    this.jobs.delete(id);
    if (job === undefined || this.stopped || job.clusterKey !== this.view.clusterKey) return;
    this.options.runtime.logger.warn(`cluster: migration job ${id} failed (${String(error)}); retrying in ${MIGRATION_REQUEUE_DELAY_MS} ms`);
    this.options.runtime.timers.setTimeout(() => {
      if (!this.stopped && job.clusterKey === this.view.clusterKey) this.enqueue(job);
    }, MIGRATION_REQUEUE_DELAY_MS);
  }

  get clusterKey(): string {
    return this.view.clusterKey;
  }

  /** Partitions this node is still sending or receiving. */
  migrationsRemaining(): number {
    if (this.plans === undefined && this.view.succession.length > 0) return PARTITION_COUNT;
    let count = this.outgoing.size;
    for (const partition of this.incoming) if (!this.outgoing.has(partition)) count++;
    return count;
  }

  /** Write requests this node remembers the outcome of (executed as master or applied as replica). */
  get rememberedRequests(): number {
    return this.memory.size;
  }

  stop(): void {
    this.stopped = true;
    this.queue.destroy();
    this.drops.clear();
    this.pending.release('local-stop');
    this.idleWaiters = [];
    for (const waiter of this.readyWaiters.splice(0)) waiter();
  }

  /** A new view was adopted: start the exchange of partition holdings. */
  onViewChange(view: ClusterView, map: PartitionMap): void {
    const departed = this.view.succession.filter((id) => !view.succession.includes(id));
    this.previous = { clusterKey: this.view.clusterKey, plans: this.plans };
    this.view = view;
    this.viewLineage = lineageOf(view.epoch, view.clusterKey);
    this.map = map;
    this.plans = undefined;
    this.infos.clear();
    this.jobs.clear();
    this.queue.destroy();
    this.queue = this.createQueue();
    this.awaitingMerges.clear();
    this.outgoing.clear();
    this.incoming.clear();
    this.settleAcks.clear();
    this.settleOutbox.length = 0;
    this.handingOff.clear();
    // A copy with replications still in flight, or whose replication timed out in the last
    // view, holds writes its replicas may lack: it must not pass as identical to them, so it
    // gets a lineage of its own (and is merged).
    for (const partition of new Set([...this.replicating.keys(), ...this.unreplicated])) {
      if (bitIsSet(this.synced, partition)) this.lineage[partition] = `${this.lineage[partition]}+${this.options.nodeId}@${view.clusterKey}`;
    }
    this.unreplicated.clear();
    this.localSnapshot = undefined;
    this.infoSnapshot = undefined;
    // Calls waiting on nodes that left can never be answered: release them (a forwarded
    // write's call keeps waiting too: its master may only be stalled, see forward()).
    this.pending.release('target-left', (target) => departed.includes(target));
    if (departed.length > 0) for (const watcher of [...this.departureWatchers]) watcher(departed);
    this.takeSnapshotWhenIdle();
  }

  /**
   * Snapshots this node's holdings for the view's exchange once no write is executing here.
   * No new write starts until the view's plans exist, so this waits at most for one store
   * operation per request in flight. A write that ran in the old view is then in this node's
   * copy and in its report (has data), so the planner merges it from here if need be: its
   * copy got a lineage of its own when the view changed with the write in flight.
   */
  private takeSnapshotWhenIdle(): void {
    const key = this.view.clusterKey;
    const take = () => {
      if (this.stopped || this.view.clusterKey !== key || this.localSnapshot !== undefined) return;
      this.localSnapshot = this.localInfo();
      this.receivedSinceSnapshot.fill(0);
      this.infoSnapshot = this.infoMessage();
      this.broadcastInfo();
    };
    if (this.executing === 0) take();
    else this.idleWaiters.push(take);
  }

  private beginExecute(): void {
    this.executing++;
  }

  private endExecute(): void {
    if (--this.executing > 0) return;
    for (const waiter of this.idleWaiters.splice(0)) waiter();
  }

  /** Runs on every heartbeat tick: re-sends what may have been lost. */
  onTick(): void {
    if (this.stopped || this.view.clusterKey === '') return;
    if (this.plans === undefined && this.localSnapshot !== undefined) this.broadcastInfo();
    for (const [member, partitions] of this.settleAcks) {
      if (partitions.size > 0) this.options.send(member, { type: 'partition-settled', clusterKey: this.view.clusterKey, partitions: [...partitions] });
    }
  }

  /**
   * Queues the settle notice of `partition` for every other member; notices queued within
   * SETTLE_NOTICE_BATCH_MS go out together, one `partition-settled` per member. Settles come in bursts (every
   * empty partition of a view settles at once), so this replaces one message per partition and
   * member. Each member's unacknowledged partitions are re-sent every tick.
   */
  private queueSettleNotice(partition: number): void {
    for (const member of this.view.succession) {
      if (member === this.options.nodeId) continue;
      let pending = this.settleAcks.get(member);
      if (pending === undefined) this.settleAcks.set(member, (pending = new Set()));
      pending.add(partition);
    }
    this.settleOutbox.push(partition);
    if (this.settleFlushTimer !== undefined) return;
    this.settleFlushTimer = this.options.runtime.timers.setTimeout(() => {
      this.settleFlushTimer = undefined;
      if (this.stopped) return;
      const fresh = this.settleOutbox.splice(0);
      for (const [member, pending] of this.settleAcks) {
        const partitions = fresh.filter((p) => pending.has(p));
        if (partitions.length > 0) this.options.send(member, { type: 'partition-settled', clusterKey: this.view.clusterKey, partitions });
      }
    }, SETTLE_NOTICE_BATCH_MS);
  }

  /**
   * A message from peer `from` (authenticated by the fabric). Replies go to the call that
   * waits for them; anything else is accepted only from a member of the current view.
   */
  handle(from: string, message: WireMessage): void {
    if (REPLY_TYPES.has(message.type)) {
      this.pending.settle(from, message);
      return;
    }
    if (!this.view.succession.includes(from)) {
      // Normal for a moment around a view change (the sender is still in an older view); a
      // request gets "retry", so its origin routes it again with its refreshed view.
      this.refusals.refuse('message from a non-member', from, `"${message.type}": the sender is not a member of this node's cluster view`, 'info');
      if (message.type === 'request') this.options.send(from, { type: 'response', id: message.id, retry: 'not-master' });
      return;
    }
    switch (message.type) {
      case 'partition-info':
        return this.onPartitionInfo(from, message);
      case 'request':
        return void this.onRequest(from, message);
      case 'batch-request':
        return void this.onBatchRequest(from, message);
      case 'replicate':
        return void this.onReplicate(from, message);
      case 'duplicate-read':
        return void this.onDuplicateRead(from, message);
      case 'migrate-batch':
        return void this.onMigrateBatch(from, message);
      case 'migrate-offer':
        return void this.onMigrateOffer(from, message);
      case 'partition-settled':
        return this.onSettled(from, message);
      case 'partition-settled-ack': {
        if (message.clusterKey !== this.view.clusterKey) return;
        const pending = this.settleAcks.get(from);
        if (pending === undefined) return;
        for (const partition of settledPartitions(message)) pending.delete(partition);
        if (pending.size === 0) this.settleAcks.delete(from);
        return;
      }
    }
  }

  /** The node currently serving partition `partitionId` (undefined while the view's exchange runs). */
  actingMaster(partitionId: number): string | undefined {
    const plan = this.plans?.[partitionId];
    if (plan === undefined) return undefined;
    return bitIsSet(this.settled, partitionId) ? plan.owners[0] : plan.actingMaster;
  }

  /** Whether this node serves every one of `partitions` now (acting master, not handing off). */
  private serves(partitions: readonly number[]): boolean {
    return partitions.every((p) => this.actingMaster(p) === this.options.nodeId && !this.handingOff.has(p));
  }

  // ---- Routing ----

  /**
   * Executes a client request wherever its partition is served. Resolves to the request's
   * value (for a scan, the concatenated values of every partition group); rejects with the
   * store's error, or ShoalError TIMEOUT (the request may have been applied: in doubt) /
   * PARTITION_UNAVAILABLE (no view agreed in time: not applied).
   */
  execute(request: ClusterRequest): Promise<unknown> {
    const deadline = this.options.runtime.clock.nowMs() + this.requestTimeoutMs;
    if (request.kind === 'record') {
      const requestId = request.readOnly === true ? undefined : `${this.requestIdPrefix}${this.nextRequestNumber++}`;
      return this.executeRouted(request, [partitionOf(request.digest)], deadline, requestId);
    }
    return this.executeScan(request, deadline);
  }

  private async executeScan(request: ClusterRequest & { kind: 'scan' }, deadline: number): Promise<unknown> {
    await this.waitForPlans(deadline);
    const byMaster = new Map<string, number[]>();
    for (const partition of request.partitions) {
      const master = this.actingMaster(partition) ?? this.options.nodeId;
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
    for (let attempt = 0; attempt < MAX_FORWARD_ATTEMPTS && !this.stopped; attempt++) {
      try {
        await this.waitForPlans(deadline);
      } catch (error) {
        // No view agreed in time. For a write an earlier attempt may have applied (its master
        // left with it), that is no proof it was not: in doubt (TIMEOUT below), not unavailable.
        if (answered && requestId !== undefined) break;
        throw error;
      }
      if (this.stopped) break;
      const target = this.actingMaster(partitions[0]) ?? this.options.nodeId;
      let step = target === this.options.nodeId
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
      const now = this.options.runtime.clock.nowMs();
      if (step.retry === 'timeout' || step.retry === 'unknown' || now >= deadline) break;
      this.counters.retries++;
      await this.sleep(Math.min(FORWARD_RETRY_DELAY_MS * (attempt + 1), FORWARD_RETRY_MAX_DELAY_MS, deadline - now));
      if (request.kind === 'scan' && partitions.some((p) => this.actingMaster(p) !== this.actingMaster(partitions[0]))) {
        // The group split across masters while the cluster changed: route each part again.
        return this.executeScan({ ...request, partitions }, deadline);
      }
    }
    if (requestId !== undefined && answered) this.counters.inDoubt++;
    throw new ShoalError(ErrorCode.TIMEOUT, timeoutMessage(partitions[0], requestId !== undefined, this.stopped));
  }

  /**
   * One attempt at a request on another node. A write's call survives its target leaving the
   * view: the attempt then returns `retry: 'left'` at once, with the still-awaited reply in
   * `first`, so the caller can ask the new master while the first may still answer.
   */
  private async forward(target: string, request: ClusterRequest, deadline: number, requestId: string | undefined, resend: boolean): Promise<Step> {
    this.counters.forwarded++;
    const message: WireMessage = { type: 'request', request };
    if (requestId !== undefined) message.requestId = requestId;
    if (resend) message.resend = true;
    if (requestId === undefined) return replyStep(await this.call(target, message, deadline));
    const reply = this.pending.call(target, message, deadline, 'target-left').then(replyStep);
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
    this.counters.scanSplits++;
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
    if (!this.serves(partitions)) return { retry: 'not-master' };
    if (requestId !== undefined) {
      const known = await this.recall(requestId);
      if (known !== undefined) return known;
      // A re-send this node has no record of: the first attempt may have been applied by the
      // master that left. Never run it; the origin waits for that master's answer instead.
      if (resend) return { retry: 'unknown' };
    }
    const key = this.view.clusterKey;
    const blocked = await this.resolveDuplicates(request.ns, partitions, request.kind === 'record' ? request.digest : undefined, deadline);
    if (blocked !== undefined) return blocked;
    if (this.view.clusterKey !== key || !this.serves(partitions)) return { retry: 'not-master' };
    if (requestId !== undefined) {
      // A duplicate may have started while the copies were being resolved.
      const known = await this.recall(requestId);
      if (known !== undefined) return known;
    }
    this.counters.executedAsMaster++;
    const run = this.executeAndReplicate(request, partitions, deadline, requestId);
    if (requestId !== undefined) {
      this.memory.running(requestId, run.then((ran) => ran.outcome));
      void run.then((ran) => this.memory.finished(requestId, ran.outcome, ran.wrote));
    }
    return (await run).outcome;
  }

  /** The outcome of write `requestId` if this node ran it or applied it as a replica; undefined if not. */
  private async recall(requestId: string): Promise<Step | undefined> {
    const known = this.memory.lookup(requestId);
    if (known === undefined) return undefined;
    this.counters.answeredFromMemory++;
    if ('running' in known) return known.running;
    if (known.recalled !== undefined) return known.recalled;
    this.counters.inDoubt++;
    return { error: inDoubtError(undefined, 'it was applied, but its result was too large to remember for a re-send') };
  }

  /**
   * Runs a request on the local store and replicates what it wrote. `wrote`: whether the
   * store applied anything (then the outcome is remembered under the request id).
   */
  private async executeAndReplicate(request: ClusterRequest, partitions: number[], deadline: number, requestId: string | undefined): Promise<{ outcome: RequestOutcome; wrote: boolean }> {
    // The plan and view this write belongs to, captured before it runs: a view change while it
    // runs or replicates must neither skip its replication nor let this copy pass as identical
    // to replicas that may lack it (the in-flight count gives it a lineage of its own).
    const plans = this.plans!;
    const key = this.view.clusterKey;
    const writes = request.kind === 'record';
    if (writes) this.beginInFlight(partitions[0]);
    try {
      let result: LocalResult;
      this.beginExecute();
      try {
        result = await this.options.store.executeLocal(request);
      } catch (error) {
        return { outcome: { error: toWireError(error) }, wrote: false };
      } finally {
        this.endExecute();
      }
      for (const { version } of result.writes) setBit(this.receivedSinceSnapshot, partitionOf(version.digest), true);
      const encoded = requestId !== undefined && result.writes.length > 0 ? encodeOutcome({ value: result.value }) : undefined;
      for (const { ns, version } of result.writes) {
        const partition = partitionOf(version.digest);
        const targets = plans[partition].owners.filter((id) => id !== this.options.nodeId);
        const message: WireMessage = { type: 'replicate', clusterKey: key, ns, versions: versionsToWire([version]) };
        if (requestId !== undefined) message.requestId = requestId;
        if (encoded !== undefined) message.result = encoded;
        try {
          await Promise.all(targets.map((target) => this.replicateUntilAcknowledged(target, message, key, deadline)));
        } catch (error) {
          // A replica never acknowledged: this copy now holds a version it may lack, so the
          // two must not pass as identical at the next view (see onViewChange).
          this.unreplicated.add(partition);
          return { outcome: { error: toWireError(error) }, wrote: true };
        }
        this.counters.replicated += targets.length;
      }
      return { outcome: { value: result.value }, wrote: result.writes.length > 0 };
    } finally {
      if (writes) this.endInFlight(partitions[0]);
    }
  }

  private beginInFlight(partition: number): void {
    this.replicating.set(partition, (this.replicating.get(partition) ?? 0) + 1);
  }

  private endInFlight(partition: number): void {
    const left = this.replicating.get(partition)! - 1;
    if (left > 0) {
      this.replicating.set(partition, left);
      return;
    }
    this.replicating.delete(partition);
    this.handingOff.get(partition)?.();
  }

  /**
   * Ships one replication message (one version, or a batch) to one replica until it
   * acknowledges or leaves the cluster.
   * @throws ShoalError TIMEOUT at the deadline (the write stays applied on the master).
   */
  private async replicateUntilAcknowledged(target: string, message: WireMessage, clusterKey: string, deadline: number): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      // Short attempts: a lost message is re-sent instead of waiting out the whole deadline;
      // each waits twice as long as the one before, so a busy replica is not sent more work.
      const attemptDeadline = Math.min(deadline, this.options.runtime.clock.nowMs() + REPLICATION_ATTEMPT_TIMEOUT_MS * 2 ** Math.min(attempt, 4));
      const reply = await this.call(target, message, attemptDeadline);
      if (reply.type === 'replicate-ack' || reply.type === 'target-left') return;
      if (this.view.clusterKey !== clusterKey && !this.view.succession.includes(target)) return;
      if (this.options.runtime.clock.nowMs() >= deadline) {
        throw new ShoalError(ErrorCode.TIMEOUT, `cluster: replica ${target} did not acknowledge in time; the write is applied on the master and will reach replicas through migration (in doubt)`);
      }
      await this.sleep(FORWARD_RETRY_DELAY_MS);
    }
    throw new ShoalError(ErrorCode.TIMEOUT, 'cluster: this node stopped while a write was replicating (in doubt)');
  }

  // ---- Duplicate resolution ----

  /**
   * Before the acting master serves a record (or, for a scan, whole partitions) of a partition
   * whose copies are still being merged into it, it takes each pending merge source's copy of
   * that record and applies it by the conflict rule: a merge source may hold acknowledged writes
   * this node lacks (a split that healed, a copy with writes in flight at a view change, pieces
   * of a partition that never settled), and until its merge is done nothing else brings them.
   * Returns undefined when the request can run, or the step to return instead.
   */
  private async resolveDuplicates(ns: string, partitions: readonly number[], digest: Buffer | undefined, deadline: number): Promise<Step | undefined> {
    for (const partition of partitions) {
      const sources = this.awaitingMerges.get(partition);
      if (sources === undefined || sources.size === 0) continue;
      const key = this.view.clusterKey;
      const verdicts = await Promise.all([...sources].map((source) => this.readFromMergeSource(source, ns, partition, digest, key, deadline)));
      const blocked = verdicts.find((verdict) => verdict !== undefined);
      if (blocked !== undefined) return blocked;
    }
    return undefined;
  }

  /** Takes `source`'s copy of one record (or of the whole partition) into this node's copy. */
  private async readFromMergeSource(source: string, ns: string, partition: number, digest: Buffer | undefined, key: string, deadline: number): Promise<Step | undefined> {
    const message: WireMessage = { type: 'duplicate-read', clusterKey: key, ns, partition };
    if (digest !== undefined) message.digest = digest;
    for (;;) {
      if (this.view.clusterKey !== key) return { retry: 'not-master' };
      // Its merge finished meanwhile: everything it held is here now.
      if (this.awaitingMerges.get(partition)?.has(source) !== true) return undefined;
      this.counters.duplicateReads++;
      const attemptDeadline = Math.min(deadline, this.options.runtime.clock.nowMs() + DUPLICATE_READ_ATTEMPT_TIMEOUT_MS);
      const reply = await this.call(source, message, attemptDeadline);
      if (reply.type === 'duplicate-versions' && reply.ok === true) {
        const failure = await this.applyDuplicates(source, ns, partition, reply.versions);
        if (failure === undefined) return undefined;
        return { error: failure };
      }
      if (reply.type === 'duplicate-versions' && reply.tooLarge === true) {
        return { error: { code: ErrorCode.CLUSTER_ERROR, message: `cluster: partition ${partition} is still merging and its copy on ${source} is too large to read in one message; retry when migrations are done` } };
      }
      if (reply.type === 'target-left') return { retry: 'not-master' };
      if (this.options.runtime.clock.nowMs() >= deadline) return { retry: 'timeout' };
      await this.sleep(FORWARD_RETRY_DELAY_MS);
    }
  }

  /** Applies versions a merge source sent for duplicate resolution; returns the error that stops the request, if any. */
  private async applyDuplicates(source: string, ns: string, partition: number, wire: unknown): Promise<WireError | undefined> {
    const versions = parseWireVersions(wire, Number.MAX_SAFE_INTEGER, partition);
    if (typeof versions === 'string') {
      this.refusals.refuse('duplicate-versions', source, versions);
      return { code: ErrorCode.CLUSTER_ERROR, message: `cluster: merge source ${source} sent a malformed record version (${versions})` };
    }
    try {
      for (const version of versions) await this.options.store.applyRecordVersion(ns, version);
    } catch (error) {
      return toWireError(error);
    }
    if (versions.length > 0) setBit(this.receivedSinceSnapshot, partition, true);
    return undefined;
  }

  /** A merge source answers its acting master's duplicate read with its local copy. */
  private async onDuplicateRead(from: string, message: WireMessage): Promise<void> {
    const reply: WireMessage = { type: 'duplicate-versions', id: message.id, ok: false };
    const { ns, partition, digest } = message;
    if (message.clusterKey !== this.view.clusterKey) {
      reply.reason = 'cluster view changed';
      this.options.send(from, reply);
      return;
    }
    const problem = !isPartition(partition)
      ? 'no valid partition'
      : !this.knowsNamespace(ns)
        ? 'an unknown namespace'
        : digest !== undefined && (!isDigest(digest) || partitionOf(digest) !== partition)
          ? 'a digest that is not of that partition'
          : this.plans !== undefined && this.plans[partition].actingMaster !== from
            ? 'a partition the sender is not the acting master of'
            : undefined;
    if (problem !== undefined) {
      this.refusals.refuse('duplicate-read', from, problem);
      reply.reason = problem;
      this.options.send(from, reply);
      return;
    }
    try {
      const versions = digest === undefined ? await this.partitionVersions(ns as string, partition as number) : await this.recordVersions(ns as string, Buffer.from(digest as Uint8Array));
      reply.versions = versionsToWire(versions);
      reply.ok = true;
    } catch (error) {
      reply.reason = String(error);
    }
    try {
      this.options.send(from, reply);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      this.options.send(from, { type: 'duplicate-versions', id: message.id, ok: false, tooLarge: true });
    }
  }

  private async recordVersions(ns: string, digest: Buffer): Promise<RecordVersion[]> {
    const version = await this.options.store.readRecordVersion(ns, digest);
    return version === undefined ? [] : [version];
  }

  private async partitionVersions(ns: string, partition: number): Promise<RecordVersion[]> {
    const versions: RecordVersion[] = [];
    for await (const version of this.options.store.iteratePartition(ns, partition)) versions.push(version);
    return versions;
  }

  // ---- Requests from peers ----

  private async onRequest(from: string, message: WireMessage): Promise<void> {
    const request = message.request as ClusterRequest;
    const reply: WireMessage = { type: 'response', id: message.id };
    const partitions = requestPartitions(request);
    const requestId = message.requestId;
    if (partitions === undefined || !this.knowsNamespace(request.ns) || (requestId !== undefined && !isRequestId(requestId))) {
      this.refusals.refuse('request', from, 'malformed forwarded request');
      reply.error = { code: ErrorCode.INVALID_ARGUMENT, message: 'cluster: malformed forwarded request' };
    } else {
      const deadline = this.options.runtime.clock.nowMs() + this.requestTimeoutMs;
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
      this.options.send(from, reply);
    } catch (error) {
      // A reply over MAX_FRAME_BYTES (a scan of many large records): say so, so the caller
      // asks for fewer partitions at a time, instead of leaving it to time out.
      if (!(error instanceof RangeError)) throw error;
      this.options.send(from, { type: 'response', id: message.id, tooLarge: true });
    }
  }

  /**
   * A master's replication: one version (with the request id and result of the write that made
   * it, for request-memory.ts) or a batch of them (a batch request). Applied by the conflict
   * rule and acknowledged only if every version is one this node expects from that master.
   */
  private async onReplicate(from: string, message: WireMessage): Promise<void> {
    // A batch's versions come packed (batch-wire.ts), a single write's as a list.
    const versions = message.packed !== undefined ? unpackVersions(message.packed, REPLICATION_BATCH_RECORDS) : parseWireVersions(message.versions, REPLICATION_BATCH_RECORDS);
    if (typeof versions === 'string') return this.refusals.refuse('replicate', from, versions);
    for (const version of versions) {
      const refusal = this.replicationRefusal(from, message, partitionOf(version.digest));
      if (refusal !== undefined) return this.refusals.refuse('replicate', from, refusal.detail, refusal.level);
    }
    if (versions.length > 1) await yieldTurn(this.options.runtime.timers);
    const requestId = message.requestId;
    const result = message.result;
    try {
      const store = this.options.store;
      if (store.applyRecordVersions !== undefined && versions.length > 1) await store.applyRecordVersions(message.ns as string, versions);
      else for (const version of versions) await store.applyRecordVersion(message.ns as string, version);
      for (const version of versions) this.noteReceived(partitionOf(version.digest));
      if (isRequestId(requestId) && versions.length === 1) this.memory.replicated(requestId, result instanceof Uint8Array ? Buffer.from(result) : undefined);
      this.options.send(from, { type: 'replicate-ack', id: message.id });
    } catch (error) {
      this.options.runtime.logger.warn(`cluster: could not apply replicated records: ${String(error)}`);
    }
  }

  /**
   * Why a replication of `partition` from `from` is refused, or undefined when this node
   * expects it: the sender serves the partition (acting master, or master once it settled) in
   * the view the replication names, this node owns it there, and that view is this one or the
   * one before (a write that began before the view changed replicates after it).
   */
  private replicationRefusal(from: string, message: WireMessage, partition: number): { detail: string; level: 'warn' | 'info' } | undefined {
    if (!this.knowsNamespace(message.ns)) return { detail: 'an unknown namespace', level: 'warn' };
    const key = message.clusterKey;
    const self = this.options.nodeId;
    const plans = key === this.view.clusterKey ? this.plans : key === this.previous.clusterKey && key !== '' ? this.previous.plans : undefined;
    if (plans === undefined) {
      // This view's exchange is still running here: its plans are unknown yet, its owners are.
      if (key === this.view.clusterKey && this.map?.owners[partition].includes(self) === true) return undefined;
      // A write that began two or more views ago: its master reports it in doubt.
      return { detail: `a replication of partition ${partition} under a cluster view this node does not know (any more)`, level: 'info' };
    }
    const plan = plans[partition];
    if (plan.actingMaster !== from && plan.owners[0] !== from) return { detail: `a replication of partition ${partition} from a node that does not serve it`, level: 'warn' };
    if (!plan.owners.includes(self)) return { detail: `a replication of partition ${partition}, which this node does not own`, level: 'warn' };
    return undefined;
  }

  /**
   * Records that `partition` received data. If it is already settled here and this node does
   * not own it (a late replication or batch from an older view), drop it again: a stray copy
   * on a non-owner would otherwise linger until the next view.
   */
  private noteReceived(partition: number): void {
    setBit(this.receivedSinceSnapshot, partition, true);
    const plan = this.plans?.[partition];
    if (plan !== undefined && bitIsSet(this.settled, partition) && !plan.owners.includes(this.options.nodeId)) this.scheduleDrop(partition);
  }

  private knowsNamespace(ns: unknown): ns is string {
    return typeof ns === 'string' && this.options.store.namespaceNames().includes(ns);
  }

  // ---- Batches (batchPut, batchGet in cluster mode) ----

  /**
   * Executes many single-record operations of one namespace, each on its partition's master:
   * items are grouped by master and sent in messages of at most BATCH_REQUEST_RECORDS, a
   * bounded number in flight; each master executes its items together and replicates them in
   * batches. Resolves to each item's outcome in order; never rejects. `readOnly` marks a batch
   * of reads, which may be sent again freely; a write item whose master left while it ran is
   * reported in doubt (TIMEOUT), never sent twice.
   */
  async executeBatch(ns: string, digests: Buffer[], operations: unknown[], readOnly: boolean): Promise<BatchItemOutcome[]> {
    const outcomes: (BatchItemOutcome | undefined)[] = new Array(digests.length);
    // Each item has the request timeout from the moment its first message goes out: a large
    // batch takes longer than one request may, and its last items are sent only then.
    const deadlines = new Float64Array(digests.length);
    let pending = digests.map((_, index) => index);
    for (let attempt = 0; pending.length > 0; attempt++) {
      try {
        await this.waitForPlans(this.options.runtime.clock.nowMs() + this.requestTimeoutMs);
      } catch (error) {
        for (const index of pending) outcomes[index] = { error: toWireError(error) };
        break;
      }
      const retry: number[] = [];
      const chunks = await this.batchChunks(digests, pending);
      await runLimited(chunks, BATCH_REQUESTS_IN_FLIGHT, async ({ target, items }) => {
        const now = this.options.runtime.clock.nowMs();
        let deadline = Number.POSITIVE_INFINITY;
        for (const i of items) {
          if (deadlines[i] === 0) deadlines[i] = now + this.requestTimeoutMs;
          deadline = Math.min(deadline, deadlines[i]!);
        }
        const steps = await this.batchAttempt(target, ns, items.map((i) => digests[i]!), items.map((i) => operations[i]), readOnly, deadline);
        steps.forEach((step, k) => {
          if ('retry' in step) retry.push(items[k]!);
          else outcomes[items[k]!] = step;
        });
      });
      const now = this.options.runtime.clock.nowMs();
      const expired = (index: number) => now >= deadlines[index]! || attempt + 1 >= MAX_FORWARD_ATTEMPTS || this.stopped;
      for (const index of retry.filter(expired)) {
        outcomes[index] = { error: { code: ErrorCode.TIMEOUT, message: timeoutMessage(partitionOf(digests[index]!), !readOnly, this.stopped) } };
      }
      pending = retry.filter((index) => !expired(index));
      if (pending.length === 0) break;
      this.counters.retries++;
      await this.sleep(Math.min(FORWARD_RETRY_DELAY_MS * (attempt + 1), FORWARD_RETRY_MAX_DELAY_MS));
    }
    return outcomes as BatchItemOutcome[];
  }

  /** The pending items grouped by the node serving their partition, in messages of at most BATCH_REQUEST_RECORDS (yields between slices). */
  private async batchChunks(digests: readonly Buffer[], pending: readonly number[]): Promise<{ target: string; items: number[] }[]> {
    const byTarget = new Map<string, number[]>();
    const chunks: { target: string; items: number[] }[] = [];
    for (let at = 0; at < pending.length; at++) {
      if (at > 0 && at % DATA_PLANE_SLICE_RECORDS === 0) await yieldTurn(this.options.runtime.timers);
      const index = pending[at]!;
      const target = this.actingMaster(partitionOf(digests[index]!)) ?? this.options.nodeId;
      let items = byTarget.get(target);
      if (items === undefined) byTarget.set(target, (items = []));
      items.push(index);
      if (items.length >= BATCH_REQUEST_RECORDS) {
        chunks.push({ target, items });
        byTarget.delete(target);
      }
    }
    for (const [target, items] of byTarget) chunks.push({ target, items });
    return chunks;
  }

  /** One attempt at a group of batch items on `target` (this node or a peer). */
  private async batchAttempt(target: string, ns: string, digests: Buffer[], operations: unknown[], readOnly: boolean, deadline: number): Promise<BatchStep[]> {
    if (target === this.options.nodeId) return this.executeBatchAsMaster(ns, digests, operations, deadline);
    this.counters.forwarded++;
    let reply: WireMessage;
    try {
      reply = await this.call(target, { type: 'batch-request', ns, digests, operations }, deadline);
    } catch (error) {
      // Over MAX_FRAME_BYTES (large records): each half on its own.
      if (!(error instanceof RangeError) || digests.length < 2) throw error;
      const middle = digests.length >> 1;
      const first = await this.batchAttempt(target, ns, digests.slice(0, middle), operations.slice(0, middle), readOnly, deadline);
      return first.concat(await this.batchAttempt(target, ns, digests.slice(middle), operations.slice(middle), readOnly, deadline));
    }
    if (reply.type === 'batch-response') {
      const steps = parseBatchSteps(reply, digests.length, (value) => parseWireError(value)!);
      if (steps !== undefined) return steps;
    }
    if (reply.type === 'not-sent' || (readOnly && (reply.type === 'target-left' || reply.type === 'local-stop'))) return digests.map(() => ({ retry: true }));
    const why = reply.type === 'timeout' ? 'no answer by the deadline' : 'its master left the cluster while it ran';
    return digests.map((digest) => ({ error: inDoubtError(partitionOf(digest), why) }));
  }

  private async onBatchRequest(from: string, message: WireMessage): Promise<void> {
    const { ns, digests, operations } = message;
    const reply: WireMessage = { type: 'batch-response', id: message.id };
    const wellFormed =
      this.knowsNamespace(ns) &&
      Array.isArray(digests) &&
      Array.isArray(operations) &&
      digests.length === operations.length &&
      digests.length <= 2 * BATCH_REQUEST_RECORDS &&
      digests.every(isDigest);
    if (!wellFormed) {
      this.refusals.refuse('batch-request', from, 'malformed batch request');
      const count = Array.isArray(digests) ? Math.min(digests.length, 2 * BATCH_REQUEST_RECORDS) : 0;
      const malformed: WireError = { code: ErrorCode.INVALID_ARGUMENT, message: 'cluster: malformed batch request' };
      this.options.send(from, Object.assign(reply, encodeBatchSteps(Array.from({ length: count }, () => ({ error: malformed })))));
      return;
    }
    this.counters.batchRequests++;
    // Each batch runs in a turn of its own: messages read together do not make one long turn.
    await yieldTurn(this.options.runtime.timers);
    const deadline = this.options.runtime.clock.nowMs() + this.requestTimeoutMs;
    const steps = await this.executeBatchAsMaster(ns, (digests as Uint8Array[]).map((d) => (Buffer.isBuffer(d) ? d : Buffer.from(d))), operations as unknown[], deadline);
    this.options.send(from, Object.assign(reply, encodeBatchSteps(steps)));
  }

  /**
   * Executes batch items on this node as master of their partitions: items of partitions it
   * does not serve get `retry`; items of partitions still merging are duplicate-resolved
   * first; the rest run together on the store, then every version they wrote is replicated,
   * in batches per replica. An item whose replication timed out is in doubt (TIMEOUT).
   */
  private async executeBatchAsMaster(ns: string, digests: Buffer[], operations: unknown[], deadline: number): Promise<BatchStep[]> {
    const steps: (BatchStep | undefined)[] = new Array(digests.length);
    const partitions = digests.map(partitionOf);
    const key = this.view.clusterKey;
    const merging: number[] = [];
    partitions.forEach((partition, i) => {
      if (!this.serves([partition])) steps[i] = { retry: true };
      else if (this.awaitingMerges.get(partition)?.size) merging.push(i);
    });
    await Promise.all(
      merging.map(async (i) => {
        const blocked = await this.resolveDuplicates(ns, [partitions[i]!], digests[i], deadline);
        if (blocked === undefined) return;
        steps[i] = blocked.retry === 'not-master' ? { retry: true } : { error: blocked.error ?? { code: ErrorCode.TIMEOUT, message: timeoutMessage(partitions[i]!, true, false) } };
      }),
    );
    const run: number[] = [];
    for (let i = 0; i < digests.length; i++) {
      if (steps[i] !== undefined) continue;
      if (this.view.clusterKey !== key || !this.serves([partitions[i]!])) steps[i] = { retry: true };
      else run.push(i);
    }
    if (run.length > 0) await this.runBatch(ns, run, digests, operations, partitions, deadline, steps);
    return steps as BatchStep[];
  }

  /** Runs the items `run` of a batch on the store and replicates what they wrote. */
  private async runBatch(ns: string, run: number[], digests: Buffer[], operations: unknown[], partitions: number[], deadline: number, steps: (BatchStep | undefined)[]): Promise<void> {
    const plans = this.plans!;
    const key = this.view.clusterKey;
    this.counters.executedAsMaster += run.length;
    for (const i of run) this.beginInFlight(partitions[i]!);
    try {
      let results: (LocalResult | { error: WireError })[];
      this.beginExecute();
      try {
        results = await this.executeLocalBatch(ns, run.map((i) => digests[i]!), run.map((i) => operations[i]));
      } finally {
        this.endExecute();
      }
      // Per replica, the versions to send and the items waiting for them.
      const byTarget = new Map<string, ReplicationBatch[]>();
      results.forEach((result, k) => {
        const i = run[k]!;
        if ('error' in result) {
          steps[i] = { error: result.error };
          return;
        }
        steps[i] = { value: result.value };
        for (const { version } of result.writes) {
          const partition = partitionOf(version.digest);
          setBit(this.receivedSinceSnapshot, partition, true);
          for (const target of plans[partition].owners) {
            if (target !== this.options.nodeId) addToReplicationBatch(byTarget, target, version, i);
          }
        }
      });
      await Promise.all(
        [...byTarget].flatMap(([target, batches]) =>
          batches.map(async ({ versions, items }) => {
            try {
              await this.replicateUntilAcknowledged(target, { type: 'replicate', clusterKey: key, ns, packed: packVersions(versions) }, key, deadline);
              this.counters.replicated += versions.length;
            } catch (error) {
              for (const i of items) {
                this.unreplicated.add(partitions[i]!);
                steps[i] = { error: toWireError(error) };
              }
            }
          }),
        ),
      );
    } finally {
      for (const i of run) this.endInFlight(partitions[i]!);
    }
  }

  /** The store's batch execution, or executeLocal per item for a store without one. */
  private async executeLocalBatch(ns: string, digests: Buffer[], operations: unknown[]): Promise<(LocalResult | { error: WireError })[]> {
    const store = this.options.store;
    if (store.executeLocalBatch !== undefined) {
      try {
        return (await store.executeLocalBatch(ns, digests, operations)).map((result) => ('error' in result ? { error: parseWireError(result.error)! } : result));
      } catch (error) {
        return digests.map(() => ({ error: toWireError(error) }));
      }
    }
    return Promise.all(
      digests.map((digest, i) =>
        store.executeLocal({ kind: 'record', ns, digest, operation: operations[i] }).then(
          (result) => result,
          (error: unknown) => ({ error: toWireError(error) }),
        ),
      ),
    );
  }

  // ---- Exchange and planning ----

  private localInfo(): MemberPartitionInfo {
    const hasData = emptyBitmap();
    for (const ns of this.options.store.namespaceNames()) {
      const counts = this.options.store.partitionCounts(ns);
      for (let p = 0; p < PARTITION_COUNT; p++) if (counts[p] > 0) setBit(hasData, p, true);
    }
    const lineages: string[] = [];
    const indexOf = new Map<string, number>();
    const lineageIndex = new Uint16Array(PARTITION_COUNT);
    for (let p = 0; p < PARTITION_COUNT; p++) {
      let index = indexOf.get(this.lineage[p]);
      if (index === undefined) {
        index = lineages.length;
        lineages.push(this.lineage[p]);
        indexOf.set(this.lineage[p], index);
      }
      lineageIndex[p] = index;
    }
    return { synced: Uint8Array.from(this.synced), hasData, lineages, lineageIndex };
  }

  private broadcastInfo(): void {
    const message = this.infoMessage();
    for (const member of this.view.succession) {
      if (member !== this.options.nodeId) this.options.send(member, message);
    }
    if (!this.infos.has(this.options.nodeId)) this.recordInfo(this.options.nodeId, this.localSnapshot!);
  }

  private onPartitionInfo(from: string, message: WireMessage): void {
    if (message.clusterKey !== this.view.clusterKey) return;
    // A broadcast (not a reply) means the sender is still collecting: it may lack ours, or our
    // earlier answer was lost. Answer every broadcast, never a reply (no ping-pong). Before
    // this node's snapshot exists there is nothing to answer with: its own broadcast follows.
    if (message.reply !== true && this.infoSnapshot !== undefined) this.options.send(from, { ...this.infoSnapshot, reply: true });
    if (this.infos.has(from)) return;
    const info = parseInfo(message);
    if (info === undefined) return this.refusals.refuse('partition-info', from, 'malformed holdings');
    this.recordInfo(from, info);
  }

  private infoMessage(): WireMessage {
    if (this.infoSnapshot !== undefined) return this.infoSnapshot;
    const info = this.localSnapshot!;
    return {
      type: 'partition-info',
      clusterKey: this.view.clusterKey,
      synced: Buffer.from(info.synced),
      hasData: Buffer.from(info.hasData),
      lineages: info.lineages,
      lineageIndex: Buffer.from(info.lineageIndex.buffer, info.lineageIndex.byteOffset, info.lineageIndex.byteLength),
    };
  }

  private recordInfo(nodeId: string, info: MemberPartitionInfo): void {
    this.infos.set(nodeId, info);
    if (this.plans === undefined && this.localSnapshot !== undefined && this.view.succession.every((id) => this.infos.has(id))) this.makePlans();
  }

  private makePlans(): void {
    const map = this.map!;
    const members = this.view.succession;
    const plans: PartitionPlan[] = planPartitions(map.owners, members, this.infos);
    this.plans = plans;
    this.settled.fill(0);
    const self = this.options.nodeId;
    const key = this.view.clusterKey;
    const lineage = this.viewLineage;
    for (let p = 0; p < PARTITION_COUNT; p++) {
      const plan = plans[p];
      // Copies that receive every write of this view from now on (the acting master, and
      // owners identical to it) carry this view's lineage; a copy left behind keeps its old one.
      if (bitIsSet(this.synced, p) && (plan.actingMaster === self || (plan.owners.includes(self) && !plan.fillTargets.includes(self)))) {
        this.lineage[p] = lineage;
      }
      if (plan.settled) {
        this.settle(p);
        continue;
      }
      if (plan.mergeSources.includes(self)) {
        this.outgoing.add(p);
        this.enqueue({ id: `${key}:${p}:merge`, clusterKey: key, partition: p, phase: 'merge', targets: [plan.actingMaster] });
      }
      if (plan.actingMaster === self) {
        this.outgoing.add(p);
        this.awaitingMerges.set(p, new Set(plan.mergeSources));
        if (plan.mergeSources.length === 0) this.startFill(p);
      }
      if (plan.fillTargets.includes(self)) this.incoming.add(p);
    }
    this.options.runtime.logger.debug('cluster: partition plans ready', { clusterKey: key, outgoing: this.outgoing.size, incoming: this.incoming.size });
    for (const waiter of this.readyWaiters.splice(0)) waiter();
    this.checkMigrationsComplete();
  }

  private startFill(partition: number): void {
    const plan = this.plans![partition];
    // Nothing to send: no fill target, or this node holds no record of the partition (none in
    // its snapshot, none written or received since) and no write of it is in flight. A fill
    // only ever adds versions, so an empty one would change nothing on the targets; every
    // write from now on reaches them by replication. Skipping the job keeps a view change on
    // a cluster with few records from costing a queue job and a message round per partition.
    if (plan.fillTargets.length === 0 || (!this.partitionHasData(partition) && !this.replicating.has(partition))) {
      this.finishActing(partition);
      return;
    }
    const key = this.view.clusterKey;
    this.enqueue({ id: `${key}:${partition}:fill`, clusterKey: key, partition, phase: 'fill', targets: plan.fillTargets });
  }

  /**
   * Acting master: every fill acknowledged. The partition settles on its owners once the
   * writes this node is still replicating for it are acknowledged: from then on the new master
   * serves it, and it must not start from a copy that lacks a write this node acknowledges
   * later. Meanwhile nobody serves it, and requests retry (docs/cluster.md, "Who serves a
   * partition").
   */
  private finishActing(partition: number): void {
    const key = this.view.clusterKey;
    const complete = () => {
      if (this.stopped || this.view.clusterKey !== key || !this.handingOff.has(partition)) return;
      this.handingOff.delete(partition);
      if (this.view.succession.length > 1) this.queueSettleNotice(partition);
      this.settle(partition);
      this.outgoing.delete(partition);
      this.checkMigrationsComplete();
    };
    this.handingOff.set(partition, complete);
    if (!this.replicating.has(partition)) complete();
  }

  /** Applies the settled state of a partition locally: owners become synced, others drop it. */
  private settle(partition: number): void {
    if (bitIsSet(this.settled, partition)) return;
    setBit(this.settled, partition, true);
    const owners = this.plans![partition].owners;
    this.incoming.delete(partition);
    if (owners.includes(this.options.nodeId)) {
      setBit(this.synced, partition, true);
      this.lineage[partition] = this.viewLineage;
      return;
    }
    const hadCopy = bitIsSet(this.synced, partition);
    setBit(this.synced, partition, false);
    this.lineage[partition] = '';
    if (hadCopy || this.partitionHasData(partition)) this.scheduleDrop(partition);
  }

  /** Whether this node may hold records of `partition` (cheap: no store scan per partition). */
  private partitionHasData(partition: number): boolean {
    return bitIsSet(this.localSnapshot?.hasData ?? emptyBitmap(), partition) || bitIsSet(this.receivedSinceSnapshot, partition);
  }

  /** Queues the drop of this node's copy of a settled partition it does not own (done in slices, see DropQueue). */
  private scheduleDrop(partition: number): void {
    const key = this.view.clusterKey;
    this.drops.push(partition, () => !this.stopped && this.view.clusterKey === key && this.plans?.[partition].owners.includes(this.options.nodeId) === false);
  }

  private async dropLocalCopy(partition: number): Promise<number> {
    let removed = 0;
    for (const ns of this.options.store.namespaceNames()) removed += await this.options.store.dropPartition(ns, partition);
    return removed;
  }

  private onSettled(from: string, message: WireMessage): void {
    if (message.clusterKey !== this.view.clusterKey || this.plans === undefined) return;
    const partitions = settledPartitions(message);
    if (partitions.length === 0) return;
    this.options.send(from, { type: 'partition-settled-ack', clusterKey: this.view.clusterKey, partitions });
    for (const partition of partitions) {
      // Only the acting master of a partition settles it.
      if (this.plans[partition].actingMaster !== from) this.refusals.refuse('partition-settled', from, `partition ${partition}, whose acting master is ${this.plans[partition].actingMaster}`);
      else this.settle(partition);
    }
    this.checkMigrationsComplete();
  }

  private checkMigrationsComplete(): void {
    if (this.plans !== undefined && this.outgoing.size === 0 && this.incoming.size === 0) this.options.onMigrationsComplete();
  }

  // ---- Migration jobs ----

  private async runJob(job: MigrationJob): Promise<void> {
    if (this.stopped || job.clusterKey !== this.view.clusterKey) return;
    const store = this.options.store;
    const deadline = () => this.options.runtime.clock.nowMs() + this.requestTimeoutMs;
    const namespaces = store.namespaceNames();
    // Each batch is held until the next one is ready, so the final batch can carry `last`
    // itself instead of costing one more empty round trip.
    let held: { ns: string; versions: RecordVersion[] } | undefined;
    const ship = async (next: { ns: string; versions: RecordVersion[] }) => {
      if (held !== undefined) await this.sendBatch(job, held.ns, held.versions, false, deadline());
      held = next;
    };
    for (const ns of namespaces) {
      let batch: RecordVersion[] = [];
      let bytes = 0;
      for await (const version of store.iteratePartition(ns, job.partition)) {
        if (job.clusterKey !== this.view.clusterKey) return;
        batch.push(version);
        bytes += (version.payload?.length ?? 0) + 64;
        if (batch.length >= this.migrationBatchRecords || bytes >= MIGRATION_BATCH_MAX_BYTES) {
          await ship({ ns, versions: batch });
          batch = [];
          bytes = 0;
        }
      }
      if (batch.length > 0) await ship({ ns, versions: batch });
    }
    const final: { ns: string; versions: RecordVersion[] } = held ?? { ns: namespaces[0] ?? '', versions: [] };
    await this.sendBatch(job, final.ns, final.versions, true, deadline());
    if (job.clusterKey !== this.view.clusterKey) return;
    if (job.phase === 'merge') {
      this.outgoing.delete(job.partition);
      this.checkMigrationsComplete();
    } else {
      this.finishActing(job.partition);
    }
  }

  /**
   * Sends one batch to every target. A target that already holds data of the partition (a
   * returning node, a merge into an acting master) first gets an offer of (digest, generation,
   * last-update) and is sent only the versions it lacks or holds differently: it catches up
   * by delta, not by a full copy. Migration is background work: it yields a turn of the event
   * loop before each batch, so requests and heartbeats that arrived meanwhile go first.
   */
  private async sendBatch(job: MigrationJob, ns: string, versions: RecordVersion[], last: boolean, deadline: number): Promise<void> {
    await yieldTurn(this.options.runtime.timers);
    await Promise.all(job.targets.map((target) => this.sendBatchTo(job, target, ns, versions, last, deadline)));
  }

  private async sendBatchTo(job: MigrationJob, target: string, ns: string, versions: RecordVersion[], last: boolean, deadline: number): Promise<void> {
    const check = (reply: WireMessage): boolean => {
      if (reply.type === 'target-left' || job.clusterKey !== this.view.clusterKey) return false;
      if (reply.type !== 'migrate-ack' || reply.ok !== true) {
        throw new Error(`migration of partition ${job.partition} to ${target}: ${reply.type === 'timeout' ? 'timed out' : reply.type === 'not-sent' ? 'not connected' : String(reply.reason)}`);
      }
      return true;
    };
    let payload = versions;
    const targetInfo = this.infos.get(target);
    if (versions.length > 0 && targetInfo !== undefined && bitIsSet(targetInfo.hasData, job.partition)) {
      const entries = versions.map((v) => [v.digest, v.gen, v.lastUpdateMs, versionFingerprint(v)]);
      const offer = await this.call(target, { type: 'migrate-offer', clusterKey: job.clusterKey, partition: job.partition, phase: job.phase, ns, entries }, deadline);
      if (!check(offer)) return;
      const want = Array.isArray(offer.want) ? (offer.want as unknown[]) : [];
      payload = want.filter((i): i is number => Number.isInteger(i) && (i as number) >= 0 && (i as number) < versions.length).map((i) => versions[i]);
      this.counters.skippedByDelta += versions.length - payload.length;
    }
    if (payload.length === 0 && !last) return;
    const reply = await this.call(
      target,
      { type: 'migrate-batch', clusterKey: job.clusterKey, partition: job.partition, phase: job.phase, ns, versions: versionsToWire(payload), last },
      deadline,
    );
    if (check(reply)) this.counters.migratedRecordsOut += payload.length;
  }

  /**
   * Why a migration message from `from` is refused, or undefined when this node expects it:
   * this view, a valid partition and namespace, and the sender's role in the partition's plan
   * (a merge source sending to its acting master, or the acting master filling an owner).
   */
  private migrationRefusal(from: string, message: WireMessage): string | undefined {
    if (message.clusterKey !== this.view.clusterKey || this.plans === undefined) return 'cluster view changed';
    const { partition, phase } = message;
    if (!isPartition(partition)) return `no valid partition (${String(partition)})`;
    if (!this.knowsNamespace(message.ns)) return 'an unknown namespace';
    const plan = this.plans[partition];
    const self = this.options.nodeId;
    if (phase === 'merge') {
      if (plan.actingMaster !== self || !plan.mergeSources.includes(from)) return `a merge of partition ${partition} this node does not expect from ${from}`;
    } else if (phase === 'fill') {
      if (plan.actingMaster !== from || !plan.fillTargets.includes(self)) return `a fill of partition ${partition} this node does not expect from ${from}`;
    } else return `an unknown migration phase ${String(phase)}`;
    return undefined;
  }

  /** Answers an offer with the indexes of the versions this node lacks or holds differently. */
  private async onMigrateOffer(from: string, message: WireMessage): Promise<void> {
    const reply: WireMessage = { type: 'migrate-ack', id: message.id, ok: false };
    const refusal = this.migrationRefusal(from, message) ?? (Array.isArray(message.entries) ? undefined : 'no list of entries');
    if (refusal !== undefined) {
      if (refusal !== 'cluster view changed') this.refusals.refuse('migrate-offer', from, refusal);
      reply.reason = refusal;
      this.options.send(from, reply);
      return;
    }
    try {
      const want: number[] = [];
      const entries = message.entries as unknown[];
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i];
        if (!Array.isArray(entry) || !isDigest(entry[0])) continue;
        const local = await this.options.store.readRecordVersion(message.ns as string, Buffer.from(entry[0]));
        // Two views can write different versions with the same generation and last-update
        // time (the same millisecond, or wall clocks behind the record's last update); the
        // fingerprint tells them apart, so the conflict rule gets to choose between them.
        if (local === undefined || local.gen !== entry[1] || local.lastUpdateMs !== entry[2] || (entry[3] !== undefined && entry[3] !== versionFingerprint(local))) {
          want.push(i);
        }
      }
      reply.ok = true;
      reply.want = want;
    } catch (error) {
      reply.reason = String(error);
    }
    this.options.send(from, reply);
  }

  private async onMigrateBatch(from: string, message: WireMessage): Promise<void> {
    const reply: WireMessage = { type: 'migrate-ack', id: message.id, ok: false };
    const partition = message.partition as number;
    let refusal = this.migrationRefusal(from, message);
    let versions: RecordVersion[] = [];
    if (refusal === undefined) {
      const parsed = parseWireVersions(message.versions, Math.max(MIGRATION_BATCH_RECORDS, this.migrationBatchRecords) + 1, partition);
      if (typeof parsed === 'string') refusal = parsed;
      else versions = parsed;
    }
    if (refusal !== undefined) {
      if (refusal !== 'cluster view changed') this.refusals.refuse('migrate-batch', from, refusal);
      reply.reason = refusal;
      this.options.send(from, reply);
      return;
    }
    try {
      // Background work: requests and heartbeats already read go first.
      await yieldTurn(this.options.runtime.timers);
      const store = this.options.store;
      if (store.applyRecordVersions !== undefined && versions.length > 1) await store.applyRecordVersions(message.ns as string, versions);
      else for (const version of versions) await store.applyRecordVersion(message.ns as string, version);
      if (versions.length > 0) this.noteReceived(partition);
      this.counters.migratedRecordsIn += versions.length;
      if (message.last === true && message.clusterKey === this.view.clusterKey) {
        if (message.phase === 'merge') {
          const waiting = this.awaitingMerges.get(partition);
          if (waiting?.delete(from) && waiting.size === 0) this.startFill(partition);
        } else {
          this.incoming.delete(partition);
          this.checkMigrationsComplete();
        }
      }
      reply.ok = true;
    } catch (error) {
      reply.reason = String(error);
    }
    this.options.send(from, reply);
  }

  // ---- Plumbing ----

  private async waitForPlans(deadline: number): Promise<void> {
    while (this.plans === undefined && !this.stopped) {
      const remaining = deadline - this.options.runtime.clock.nowMs();
      if (remaining <= 0) {
        throw new ShoalError(ErrorCode.PARTITION_UNAVAILABLE, 'cluster: the cluster is re-forming and has not agreed on partition owners yet; retry the operation');
      }
      await new Promise<void>((resolve) => {
        const timer = this.options.runtime.timers.setTimeout(resolve, remaining);
        this.readyWaiters.push(() => {
          this.options.runtime.timers.clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  private call(target: string, message: WireMessage, deadline: number): Promise<WireMessage> {
    return this.pending.call(target, message, deadline);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.options.runtime.timers.setTimeout(resolve, Math.max(0, ms)));
  }
}

/** One attempt's outcome from the reply to a forwarded request (or what ended the wait for it). */
function replyStep(reply: WireMessage): Step {
  if (reply.type === 'response') {
    if (reply.tooLarge === true) return { tooLarge: true };
    if (reply.retry === 'unknown') return { retry: 'unknown' };
    if (reply.retry !== undefined) return { retry: 'not-master' };
    return { value: reply.value, error: parseWireError(reply.error) };
  }
  if (reply.type === 'not-sent') return { retry: 'not-sent' };
  if (reply.type === 'target-left' || reply.type === 'local-stop') return { retry: 'left' };
  return { retry: 'timeout' };
}

/** The partitions a (possibly forwarded, so untrusted) request addresses; undefined if malformed. */
function requestPartitions(request: unknown): number[] | undefined {
  if (request === null || typeof request !== 'object') return undefined;
  const r = request as { kind?: unknown; ns?: unknown; digest?: unknown; partitions?: unknown };
  if (typeof r.ns !== 'string') return undefined;
  if (r.kind === 'record' && isDigest(r.digest)) return [partitionOf(r.digest)];
  if (r.kind === 'scan' && Array.isArray(r.partitions) && r.partitions.length > 0 && r.partitions.length <= PARTITION_COUNT) {
    return r.partitions.every(isPartition) ? (r.partitions as number[]) : undefined;
  }
  return undefined;
}

function isRequestId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= REQUEST_ID_MAX_LENGTH;
}

/** Adds `version` (written by batch item `item`) to `target`'s replication batches. */
/** An error from the wire (untrusted): its code if known, else CLUSTER_ERROR. */
function parseWireError(value: unknown): WireError | undefined {
  if (value === undefined || value === null) return undefined;
  const error = value as { code?: unknown; message?: unknown };
  const code = ShoalError.isCode(error.code) ? error.code : ErrorCode.CLUSTER_ERROR;
  return { code, message: typeof error.message === 'string' ? error.message : 'cluster: a peer reported an error without a message' };
}

/** The TIMEOUT error of a write whose outcome is unknown. */
function inDoubtError(partition: number | undefined, why: string): WireError {
  const where = partition === undefined ? '' : ` to partition ${partition}`;
  return { code: ErrorCode.TIMEOUT, message: `cluster: the write${where} is in doubt (it may or may not have been applied): ${why}` };
}

function timeoutMessage(partition: number, write: boolean, stopped: boolean): string {
  if (stopped) return `cluster: this node stopped before partition ${partition} answered${write ? '; the write may or may not have been applied (in doubt)' : ''}`;
  if (write) return `cluster: the write to partition ${partition} was not confirmed in time (cluster re-forming or partition moving); it may or may not have been applied (in doubt)`;
  return `cluster: partition ${partition} did not answer in time (cluster re-forming or partition moving); retry the operation`;
}

/** 32-bit FNV-1a of a version's content (tombstone flag, then payload bytes), carried in migration offers. */
export function versionFingerprint(version: RecordVersion): number {
  let hash = version.tombstone ? 0x01000193 : 0x811c9dc5;
  const payload = version.payload;
  if (payload !== undefined && payload !== null) {
    for (let i = 0; i < payload.length; i++) hash = Math.imul(hash ^ payload[i], 0x01000193);
  }
  return hash >>> 0;
}

/** The partitions of a settle notice or its acknowledgement (valid ids only). */
function settledPartitions(message: WireMessage): number[] {
  const list = Array.isArray(message.partitions) ? (message.partitions as unknown[]) : [message.partition];
  return list.filter(isPartition);
}

function parseInfo(message: WireMessage): MemberPartitionInfo | undefined {
  const { synced, hasData, lineages, lineageIndex } = message;
  const bitmapBytes = PARTITION_COUNT / 8;
  if (!(synced instanceof Uint8Array) || synced.length !== bitmapBytes) return undefined;
  if (!(hasData instanceof Uint8Array) || hasData.length !== bitmapBytes) return undefined;
  if (!Array.isArray(lineages) || lineages.length > PARTITION_COUNT || !lineages.every((l) => typeof l === 'string' && l.length <= 4096)) return undefined;
  if (!(lineageIndex instanceof Uint8Array) || lineageIndex.length !== PARTITION_COUNT * 2) return undefined;
  const index = new Uint16Array(PARTITION_COUNT);
  if (LITTLE_ENDIAN) new Uint8Array(index.buffer).set(lineageIndex);
  else {
    const bytes = Buffer.from(lineageIndex);
    for (let p = 0; p < PARTITION_COUNT; p++) index[p] = bytes.readUInt16LE(p * 2);
  }
  return { synced: Uint8Array.from(synced), hasData: Uint8Array.from(hasData), lineages: lineages as string[], lineageIndex: index };
}

/** lineageIndex travels as little-endian u16s (the byte order of the sender's Uint16Array on the platforms Node supports). */
const LITTLE_ENDIAN = endianness() === 'LE';

function toWireError(error: unknown): WireError {
  const code = (error as { code?: unknown })?.code;
  return {
    code: typeof code === 'string' ? code : ErrorCode.CLUSTER_ERROR,
    message: (error as Error)?.message ?? String(error),
  };
}

function unwrap(outcome: { value?: unknown; error?: WireError }): unknown {
  if (outcome.error !== undefined) {
    const code = ShoalError.isCode(outcome.error.code) ? outcome.error.code : ErrorCode.CLUSTER_ERROR;
    throw new ShoalError(code, outcome.error.message);
  }
  return outcome.value;
}
