/**
 * The data plane of a cluster node (docs/cluster.md, "Routing", "Replication", "Migrations"):
 *
 * - routing: any node accepts a request and sends it in one hop to the partition's acting
 *   master; a node that is not (or no longer) the acting master answers "retry", and the
 *   origin retries with its refreshed view, a bounded number of times;
 * - replication: the acting master executes the request, ships every record version it wrote
 *   to each other owner of the partition, and answers only once all have applied it;
 * - migrations: after each new view the members exchange what they hold, plan each partition
 *   (partition-plan.ts) and move data with a better-queue job queue (bounded concurrency,
 *   retries); a partition settles on its new owners when every fill is acknowledged, and only
 *   then do non-owners drop it.
 */
import BetterQueue = require('better-queue');
import { endianness } from 'node:os';
import { ErrorCode, ShoalError } from '../errors';
import {
  DEFAULT_REQUEST_TIMEOUT_MS,
  FORWARD_RETRY_DELAY_MS,
  MAX_FORWARD_ATTEMPTS,
  MAX_FRAME_BYTES,
  MIGRATION_BATCH_MAX_BYTES,
  MIGRATION_BATCH_RECORDS,
  MIGRATION_CONCURRENCY,
  MIGRATION_MAX_RETRIES,
  MIGRATION_REQUEUE_DELAY_MS,
  PARTITION_COUNT,
  REPLICATION_ATTEMPT_TIMEOUT_MS,
  SETTLE_NOTICE_BATCH_MS,
} from './constants';
import type { ClusterRequest, LocalStore, RecordVersion, WireError } from './local-store';
import type { ClusterView } from './membership';
import type { WireMessage } from './network';
import type { PartitionMap } from './partition-map';
import type { MemberPartitionInfo, PartitionPlan } from './partition-plan';
import { bitIsSet, emptyBitmap, lineageOf, planPartitions, setBit } from './partition-plan';
import { PendingCalls } from './pending-calls';
import type { Runtime, TimerHandle } from './seams';

export interface DataPlaneOptions {
  nodeId: string;
  runtime: Runtime;
  store: LocalStore;
  send(nodeId: string, message: WireMessage): boolean;
  requestTimeoutMs?: number;
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

/** Message types the data plane handles. */
export const DATA_MESSAGE_TYPES = [
  'partition-info',
  'request',
  'response',
  'replicate',
  'replicate-ack',
  'migrate-offer',
  'migrate-batch',
  'migrate-ack',
  'partition-settled',
  'partition-settled-ack',
] as const;

export class DataPlane {
  private readonly requestTimeoutMs: number;
  private view: ClusterView = { clusterKey: '', succession: [], quiesced: [], epoch: 0 };
  /** The lineage copies take when they settle in this view (lineageOf(epoch, key)). */
  private viewLineage = '';
  private map: PartitionMap | undefined;
  private readonly infos = new Map<string, MemberPartitionInfo>();
  private plans: PartitionPlan[] | undefined;
  /**
   * This node's holdings as of the view change, sent unchanged to every member: every member
   * must plan from the same inputs, even though replication keeps changing local state.
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
  /** Partitions with a write whose replication gave up (timed out) since the last view change. */
  private readonly unreplicated = new Set<number>();
  readonly counters = { forwarded: 0, executedAsMaster: 0, replicated: 0, migratedRecordsIn: 0, migratedRecordsOut: 0, skippedByDelta: 0, retries: 0, scanSplits: 0 };

  constructor(private readonly options: DataPlaneOptions) {
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.pending = new PendingCalls(`${options.nodeId}#`, options.runtime, options.send);
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
      setImmediate: (callback: () => void) => this.options.runtime.timers.setTimeout(callback, 0),
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

  stop(): void {
    this.stopped = true;
    this.queue.destroy();
    this.pending.release('local-stop');
    for (const waiter of this.readyWaiters.splice(0)) waiter();
  }

  /** A new view was adopted: start the exchange of partition holdings. */
  onViewChange(view: ClusterView, map: PartitionMap): void {
    const departed = this.view.succession.filter((id) => !view.succession.includes(id));
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
    // A copy with replications still in flight, or whose replication timed out in the last
    // view, holds writes its replicas may lack: it must not pass as identical to them, so it
    // gets a lineage of its own (and is merged).
    for (const partition of new Set([...this.replicating.keys(), ...this.unreplicated])) {
      if (bitIsSet(this.synced, partition)) this.lineage[partition] = `${this.lineage[partition]}+${this.options.nodeId}@${view.clusterKey}`;
    }
    this.unreplicated.clear();
    this.localSnapshot = this.localInfo();
    this.receivedSinceSnapshot.fill(0);
    this.infoSnapshot = undefined;
    this.infoSnapshot = this.infoMessage();
    // Calls waiting on nodes that left can never be answered: release them.
    this.pending.release('target-left', (target) => departed.includes(target));
    this.broadcastInfo();
  }

  /** Runs on every heartbeat tick: re-sends what may have been lost. */
  onTick(): void {
    if (this.stopped || this.view.clusterKey === '') return;
    if (this.plans === undefined) this.broadcastInfo();
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

  handle(from: string, message: WireMessage): void {
    switch (message.type) {
      case 'partition-info':
        return this.onPartitionInfo(from, message);
      case 'request':
        return void this.onRequest(from, message);
      case 'replicate':
        return void this.onReplicate(from, message);
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
      case 'response':
      case 'replicate-ack':
      case 'migrate-ack':
        return this.pending.settle(from, message);
    }
  }

  /** The node currently serving partition `partitionId` (undefined while the view's exchange runs). */
  actingMaster(partitionId: number): string | undefined {
    const plan = this.plans?.[partitionId];
    if (plan === undefined) return undefined;
    return bitIsSet(this.settled, partitionId) ? plan.owners[0] : plan.actingMaster;
  }

  /**
   * Executes a client request wherever its partition is served. Resolves to the request's
   * value (for a scan, the concatenated values of every partition group); rejects with the
   * store's error, or ShoalError TIMEOUT / PARTITION_UNAVAILABLE.
   */
  async execute(request: ClusterRequest): Promise<unknown> {
    const deadline = this.options.runtime.clock.nowMs() + this.requestTimeoutMs;
    if (request.kind === 'record') return this.executeRouted(request, [partitionOf(request.digest)], deadline);
    await this.waitForPlans(deadline);
    const byMaster = new Map<string, number[]>();
    for (const partition of request.partitions) {
      const master = this.actingMaster(partition) ?? this.options.nodeId;
      const list = byMaster.get(master);
      if (list === undefined) byMaster.set(master, [partition]);
      else list.push(partition);
    }
    const parts = await Promise.all(
      [...byMaster.values()].map((partitions) => this.executeRouted({ ...request, partitions }, partitions, deadline)),
    );
    return parts.flat();
  }

  /** Sends a request to the acting master of `partitions` (all the same node), retrying while they move. */
  private async executeRouted(request: ClusterRequest, partitions: number[], deadline: number): Promise<unknown> {
    for (let attempt = 0; attempt < MAX_FORWARD_ATTEMPTS; attempt++) {
      await this.waitForPlans(deadline);
      const target = this.actingMaster(partitions[0]) ?? this.options.nodeId;
      if (target === this.options.nodeId) {
        const outcome = await this.executeAsMaster(request, partitions, deadline);
        if (outcome.retry === undefined) return unwrap(outcome);
      } else {
        this.counters.forwarded++;
        const reply = await this.call(target, { type: 'request', request }, deadline);
        if (reply.type === 'response' && reply.tooLarge === true) return this.executeInHalves(request, partitions);
        if (reply.type === 'response' && reply.retry === undefined) return unwrap(reply as { value?: unknown; error?: WireError });
      }
      if (this.options.runtime.clock.nowMs() >= deadline) break;
      this.counters.retries++;
      await this.sleep(Math.min(FORWARD_RETRY_DELAY_MS * (attempt + 1), Math.max(0, deadline - this.options.runtime.clock.nowMs())));
      if (request.kind === 'scan' && partitions.some((p) => this.actingMaster(p) !== this.actingMaster(partitions[0]))) {
        // The group split across masters while the cluster changed: route each part again.
        return this.execute({ ...request, partitions });
      }
    }
    throw new ShoalError(
      ErrorCode.TIMEOUT,
      `cluster: partition ${partitions[0]} did not answer in time (cluster re-forming or partition moving); retry the operation`,
    );
  }

  /**
   * A scan whose reply did not fit in one frame: its partitions in two halves, one after the
   * other (so the pieces are as small as they need to be, and no larger).
   * @throws ShoalError CLUSTER_ERROR when a single partition's records do not fit in a frame.
   */
  private async executeInHalves(request: ClusterRequest, partitions: number[]): Promise<unknown> {
    if (request.kind !== 'scan' || partitions.length < 2) {
      throw new ShoalError(
        ErrorCode.CLUSTER_ERROR,
        `cluster: the reply for partition ${partitions[0]} exceeds the ${MAX_FRAME_BYTES}-byte frame limit; scan it with fewer or smaller records, or on its master`,
      );
    }
    this.counters.scanSplits++;
    const middle = partitions.length >> 1;
    const first = (await this.execute({ ...request, partitions: partitions.slice(0, middle) })) as unknown[];
    const second = (await this.execute({ ...request, partitions: partitions.slice(middle) })) as unknown[];
    return first.concat(second);
  }

  /** Executes on this node as acting master, then replicates. `retry` set if not master after all. */
  private async executeAsMaster(
    request: ClusterRequest,
    partitions: number[],
    deadline: number,
  ): Promise<{ value?: unknown; error?: WireError; retry?: string }> {
    if (partitions.some((p) => this.actingMaster(p) !== this.options.nodeId)) return { retry: 'not-master' };
    this.counters.executedAsMaster++;
    // The plan and view this write belongs to, captured before it runs: a view change while it
    // runs or replicates must neither skip its replication nor let this copy pass as identical
    // to replicas that may lack it (the in-flight count gives it a lineage of its own).
    const plans = this.plans!;
    const key = this.view.clusterKey;
    const writes = request.kind === 'record';
    if (writes) this.beginInFlight(partitions[0]);
    try {
      let result;
      try {
        result = await this.options.store.executeLocal(request);
      } catch (error) {
        return { error: toWireError(error) };
      }
      for (const { version } of result.writes) setBit(this.receivedSinceSnapshot, partitionOf(version.digest), true);
      for (const { ns, version } of result.writes) {
        const partition = partitionOf(version.digest);
        const targets = plans[partition].owners.filter((id) => id !== this.options.nodeId);
        try {
          await Promise.all(targets.map((target) => this.replicateUntilAcknowledged(target, ns, version, key, deadline)));
        } catch (error) {
          // A replica never acknowledged: this copy now holds a version it may lack, so the
          // two must not pass as identical at the next view (see onViewChange).
          this.unreplicated.add(partition);
          throw error;
        }
        this.counters.replicated += targets.length;
      }
      return { value: result.value };
    } finally {
      if (writes) this.endInFlight(partitions[0]);
    }
  }

  private beginInFlight(partition: number): void {
    this.replicating.set(partition, (this.replicating.get(partition) ?? 0) + 1);
  }

  private endInFlight(partition: number): void {
    const left = this.replicating.get(partition)! - 1;
    if (left === 0) this.replicating.delete(partition);
    else this.replicating.set(partition, left);
  }

  /**
   * Ships one version to one replica until it acknowledges or leaves the cluster.
   * @throws ShoalError TIMEOUT at the deadline (the write stays applied on the master).
   */
  private async replicateUntilAcknowledged(target: string, ns: string, version: RecordVersion, clusterKey: string, deadline: number): Promise<void> {
    while (!this.stopped) {
      // Short attempts: a lost message is re-sent instead of waiting out the whole deadline.
      const attemptDeadline = Math.min(deadline, this.options.runtime.clock.nowMs() + REPLICATION_ATTEMPT_TIMEOUT_MS);
      const reply = await this.call(target, { type: 'replicate', ns, version }, attemptDeadline);
      if (reply.type === 'replicate-ack' || reply.type === 'target-left') return;
      if (this.view.clusterKey !== clusterKey && !this.view.succession.includes(target)) return;
      if (this.options.runtime.clock.nowMs() >= deadline) {
        throw new ShoalError(ErrorCode.TIMEOUT, `cluster: replica ${target} did not acknowledge in time; the write is applied on the master and will reach replicas through migration`);
      }
      await this.sleep(FORWARD_RETRY_DELAY_MS);
    }
  }

  private async onRequest(from: string, message: WireMessage): Promise<void> {
    const request = message.request as ClusterRequest;
    const reply: WireMessage = { type: 'response', id: message.id };
    const partitions = requestPartitions(request);
    if (partitions === undefined) {
      reply.error = { code: ErrorCode.CLUSTER_ERROR, message: 'malformed forwarded request' };
    } else {
      const deadline = this.options.runtime.clock.nowMs() + this.requestTimeoutMs;
      try {
        Object.assign(reply, await this.executeAsMaster(request, partitions, deadline));
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

  private async onReplicate(from: string, message: WireMessage): Promise<void> {
    const version = message.version as RecordVersion;
    if (typeof message.ns !== 'string' || !isVersion(version)) return;
    try {
      await this.options.store.applyRecordVersion(message.ns, normalizeVersion(version));
      this.noteReceived(partitionOf(version.digest));
      this.options.send(from, { type: 'replicate-ack', id: message.id });
    } catch (error) {
      this.options.runtime.logger.warn(`cluster: could not apply a replicated record: ${String(error)}`);
    }
  }

  /**
   * Records that `partition` received data. If it is already settled here and this node does
   * not own it (a late replication or batch from an older view), drop it again: a stray copy
   * on a non-owner would otherwise linger until the next view.
   */
  private noteReceived(partition: number): void {
    setBit(this.receivedSinceSnapshot, partition, true);
    const plan = this.plans?.[partition];
    if (plan !== undefined && bitIsSet(this.settled, partition) && !plan.owners.includes(this.options.nodeId)) {
      void this.dropPartition(partition);
    }
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
    if (message.clusterKey !== this.view.clusterKey || !this.view.succession.includes(from)) return;
    // A broadcast (not a reply) means the sender is still collecting: it may lack ours, or our
    // earlier answer was lost. Answer every broadcast, never a reply (no ping-pong).
    if (message.reply !== true) this.options.send(from, { ...this.infoMessage(), reply: true });
    if (this.infos.has(from)) return;
    const info = parseInfo(message);
    if (info === undefined) return;
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
    if (this.plans === undefined && this.view.succession.every((id) => this.infos.has(id))) this.makePlans();
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

  /** Acting master: every fill acknowledged; the partition settles on its owners. */
  private finishActing(partition: number): void {
    if (this.view.succession.length > 1) this.queueSettleNotice(partition);
    this.settle(partition);
    this.outgoing.delete(partition);
    this.checkMigrationsComplete();
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
    if (hadCopy || this.partitionHasData(partition)) void this.dropPartition(partition);
  }

  /** Whether this node may hold records of `partition` (cheap: no store scan per partition). */
  private partitionHasData(partition: number): boolean {
    return bitIsSet(this.localSnapshot?.hasData ?? emptyBitmap(), partition) || bitIsSet(this.receivedSinceSnapshot, partition);
  }

  private async dropPartition(partition: number): Promise<void> {
    const key = this.view.clusterKey;
    for (const ns of this.options.store.namespaceNames()) {
      if (this.view.clusterKey !== key) return;
      try {
        await this.options.store.dropPartition(ns, partition);
      } catch (error) {
        this.options.runtime.logger.warn(`cluster: dropping partition ${partition} of ${ns} failed: ${String(error)}`);
      }
    }
  }

  private onSettled(from: string, message: WireMessage): void {
    if (message.clusterKey !== this.view.clusterKey || this.plans === undefined) return;
    const partitions = settledPartitions(message);
    if (partitions.length === 0) return;
    this.options.send(from, { type: 'partition-settled-ack', clusterKey: this.view.clusterKey, partitions });
    for (const partition of partitions) this.settle(partition);
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
        if (batch.length >= MIGRATION_BATCH_RECORDS || bytes >= MIGRATION_BATCH_MAX_BYTES) {
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
   * by delta, not by a full copy.
   */
  private async sendBatch(job: MigrationJob, ns: string, versions: RecordVersion[], last: boolean, deadline: number): Promise<void> {
    await Promise.all(job.targets.map((target) => this.sendBatchTo(job, target, ns, versions, last, deadline)));
  }

  private async sendBatchTo(job: MigrationJob, target: string, ns: string, versions: RecordVersion[], last: boolean, deadline: number): Promise<void> {
    const check = (reply: WireMessage): boolean => {
      if (reply.type === 'target-left' || job.clusterKey !== this.view.clusterKey) return false;
      if (reply.type !== 'migrate-ack' || reply.ok !== true) {
        throw new Error(`migration of partition ${job.partition} to ${target}: ${reply.type === 'timeout' ? 'timed out' : String(reply.reason)}`);
      }
      return true;
    };
    let payload = versions;
    const targetInfo = this.infos.get(target);
    if (versions.length > 0 && targetInfo !== undefined && bitIsSet(targetInfo.hasData, job.partition)) {
      const entries = versions.map((v) => [v.digest, v.gen, v.lastUpdateMs, versionFingerprint(v)]);
      const offer = await this.call(target, { type: 'migrate-offer', clusterKey: job.clusterKey, partition: job.partition, ns, entries }, deadline);
      if (!check(offer)) return;
      const want = Array.isArray(offer.want) ? (offer.want as unknown[]) : [];
      payload = want.filter((i): i is number => Number.isInteger(i) && (i as number) >= 0 && (i as number) < versions.length).map((i) => versions[i]);
      this.counters.skippedByDelta += versions.length - payload.length;
    }
    if (payload.length === 0 && !last) return;
    const reply = await this.call(
      target,
      { type: 'migrate-batch', clusterKey: job.clusterKey, partition: job.partition, phase: job.phase, ns, versions: payload, last },
      deadline,
    );
    if (check(reply)) this.counters.migratedRecordsOut += payload.length;
  }

  /** Answers an offer with the indexes of the versions this node lacks or holds differently. */
  private async onMigrateOffer(from: string, message: WireMessage): Promise<void> {
    const reply: WireMessage = { type: 'migrate-ack', id: message.id, ok: false };
    if (message.clusterKey !== this.view.clusterKey || this.plans === undefined || typeof message.ns !== 'string' || !Array.isArray(message.entries)) {
      reply.reason = 'cluster view changed';
      this.options.send(from, reply);
      return;
    }
    try {
      const want: number[] = [];
      const entries = message.entries as unknown[];
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i];
        if (!Array.isArray(entry) || !isDigest(entry[0])) continue;
        const local = await this.options.store.readRecordVersion(message.ns, Buffer.from(entry[0]));
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
    if (message.clusterKey !== this.view.clusterKey || this.plans === undefined) {
      reply.reason = 'cluster view changed';
      this.options.send(from, reply);
      return;
    }
    const versions = Array.isArray(message.versions) ? (message.versions as RecordVersion[]) : [];
    try {
      for (const version of versions) {
        if (isVersion(version)) await this.options.store.applyRecordVersion(message.ns as string, normalizeVersion(version));
      }
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

  private async waitForMaster(partition: number, deadline: number): Promise<string> {
    await this.waitForPlans(deadline);
    return this.actingMaster(partition) ?? this.options.nodeId;
  }

  private call(target: string, message: WireMessage, deadline: number): Promise<WireMessage> {
    return this.pending.call(target, message, deadline);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.options.runtime.timers.setTimeout(resolve, Math.max(0, ms)));
  }
}

/** Partition id of a digest: first two bytes little-endian, low 12 bits. */
export function partitionOf(digest: Buffer | Uint8Array): number {
  return (digest[0] | (digest[1] << 8)) & (PARTITION_COUNT - 1);
}

/** The partitions a (possibly forwarded, so untrusted) request addresses; undefined if malformed. */
function requestPartitions(request: unknown): number[] | undefined {
  if (request === null || typeof request !== 'object') return undefined;
  const r = request as { kind?: unknown; ns?: unknown; digest?: unknown; partitions?: unknown };
  if (typeof r.ns !== 'string') return undefined;
  if (r.kind === 'record' && isDigest(r.digest)) return [partitionOf(r.digest)];
  if (r.kind === 'scan' && Array.isArray(r.partitions) && r.partitions.length > 0) {
    const ok = r.partitions.every((p) => Number.isInteger(p) && p >= 0 && p < PARTITION_COUNT);
    return ok ? (r.partitions as number[]) : undefined;
  }
  return undefined;
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
  return list.filter((p): p is number => Number.isInteger(p) && (p as number) >= 0 && (p as number) < PARTITION_COUNT);
}

function isDigest(value: unknown): value is Buffer {
  return value instanceof Uint8Array && value.length === 20;
}

function isVersion(value: unknown): value is RecordVersion {
  if (value === null || typeof value !== 'object') return false;
  const v = value as RecordVersion;
  return isDigest(v.digest) && Number.isInteger(v.gen) && typeof v.lastUpdateMs === 'number';
}

/** msgpackr decodes bin data as Buffer in Node, but be explicit about the types. */
function normalizeVersion(version: RecordVersion): RecordVersion {
  return {
    digest: Buffer.from(version.digest),
    gen: version.gen,
    voidTime: version.voidTime,
    lastUpdateMs: version.lastUpdateMs,
    setName: version.setName ?? '',
    tombstone: version.tombstone === true,
    payload: version.payload === undefined || version.payload === null ? undefined : Buffer.from(version.payload),
  };
}

function parseInfo(message: WireMessage): MemberPartitionInfo | undefined {
  const { synced, hasData, lineages, lineageIndex } = message;
  const bitmapBytes = PARTITION_COUNT / 8;
  if (!(synced instanceof Uint8Array) || synced.length !== bitmapBytes) return undefined;
  if (!(hasData instanceof Uint8Array) || hasData.length !== bitmapBytes) return undefined;
  if (!Array.isArray(lineages) || !lineages.every((l) => typeof l === 'string')) return undefined;
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
    const code = (Object.values(ErrorCode) as string[]).includes(outcome.error.code) ? (outcome.error.code as ErrorCode) : ErrorCode.CLUSTER_ERROR;
    throw new ShoalError(code, outcome.error.message);
  }
  return outcome.value;
}
