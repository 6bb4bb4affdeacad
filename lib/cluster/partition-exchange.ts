/**
 * The partition exchange and settling of the data plane (docs/cluster.md, "Migrations", "Who
 * serves a partition"): after each new view every member snapshots what it holds, sends it to
 * every other member, and once all holdings are in, plans each partition (partition-plan.ts);
 * this file then starts the view's migration jobs (through `enqueue`, migration.ts), settles a
 * partition on its owners when its fills are done and its writes in flight replicated, tells
 * the other members (batched settle notices), and drops copies this node no longer owns.
 */
import { DropQueue } from './background';
import { PARTITION_COUNT, SETTLE_NOTICE_BATCH_MS } from './constants';
import type { WireMessage } from './network';
import type { MemberPartitionInfo, PartitionPlan } from './partition-plan';
import { bitIsSet, emptyBitmap, planPartitions, setBit } from './partition-plan';
import type { TimerHandle } from './seams';
import type { DataPlaneState, MigrationJob } from './data-plane-state';
import { parseInfo, settledPartitions } from './data-plane-wire';

export class PartitionExchange {
  /**
   * This node's holdings as of the view change, sent unchanged to every member: every member
   * must plan from the same inputs, even though replication keeps changing local state. Taken
   * once no write of the old view is still executing here (see takeSnapshotWhenIdle).
   */
  private infoSnapshot: WireMessage | undefined;
  /** At an acting master: per member, the settled partitions it has not acknowledged yet. */
  private readonly settleAcks = new Map<string, Set<number>>();
  /** Partitions settled here whose notice has not gone out yet (sent together, see queueSettleNotice). */
  private readonly settleOutbox: number[] = [];
  private settleFlushTimer: TimerHandle | undefined;
  private readonly drops: DropQueue;

  /** @param enqueue queues a migration job of this view (Migrations.enqueue). */
  constructor(
    private readonly plane: DataPlaneState,
    private readonly enqueue: (job: MigrationJob) => void,
  ) {
    const { timers, logger } = plane.options.runtime;
    this.drops = new DropQueue(timers, logger, (partition) => this.dropLocalCopy(partition));
  }

  /** A new view: what the old view's exchange and settle notices still held is dropped. */
  reset(): void {
    this.settleAcks.clear();
    this.settleOutbox.length = 0;
    this.infoSnapshot = undefined;
  }

  stop(): void {
    this.drops.clear();
  }

  /** Every heartbeat tick: re-sends the holdings while plans are missing, and unacknowledged settle notices. */
  onTick(): void {
    const plane = this.plane;
    if (plane.plans === undefined && plane.localSnapshot !== undefined) this.broadcastInfo();
    for (const [member, partitions] of this.settleAcks) {
      if (partitions.size > 0) plane.options.send(member, { type: 'partition-settled', clusterKey: plane.view.clusterKey, partitions: [...partitions] });
    }
  }

  /** A member acknowledged settle notices: they are not re-sent. */
  onSettledAck(from: string, message: WireMessage): void {
    if (message.clusterKey !== this.plane.view.clusterKey) return;
    const pending = this.settleAcks.get(from);
    if (pending === undefined) return;
    for (const partition of settledPartitions(message)) pending.delete(partition);
    if (pending.size === 0) this.settleAcks.delete(from);
  }

  /**
   * Snapshots this node's holdings for the view's exchange once no write is executing here.
   * No new write starts until the view's plans exist, so this waits at most for one store
   * operation per request in flight. A write that ran in the old view is then in this node's
   * copy and in its report (has data), so the planner merges it from here if need be: its
   * copy got a lineage of its own when the view changed with the write in flight.
   */
  takeSnapshotWhenIdle(): void {
    const key = this.plane.view.clusterKey;
    const take = () => {
      if (this.plane.stopped || this.plane.view.clusterKey !== key || this.plane.localSnapshot !== undefined) return;
      this.plane.localSnapshot = this.localInfo();
      this.plane.receivedSinceSnapshot.fill(0);
      this.infoSnapshot = this.infoMessage();
      this.broadcastInfo();
    };
    if (this.plane.executing === 0) take();
    else this.plane.idleWaiters.push(take);
  }

  /**
   * Queues the settle notice of `partition` for every other member; notices queued within
   * SETTLE_NOTICE_BATCH_MS go out together, one `partition-settled` per member. Settles come in bursts (every
   * empty partition of a view settles at once), so this replaces one message per partition and
   * member. Each member's unacknowledged partitions are re-sent every tick.
   */
  private queueSettleNotice(partition: number): void {
    for (const member of this.plane.view.succession) {
      if (member === this.plane.options.nodeId) continue;
      let pending = this.settleAcks.get(member);
      if (pending === undefined) this.settleAcks.set(member, (pending = new Set()));
      pending.add(partition);
    }
    this.settleOutbox.push(partition);
    if (this.settleFlushTimer !== undefined) return;
    this.settleFlushTimer = this.plane.options.runtime.timers.setTimeout(() => {
      this.settleFlushTimer = undefined;
      if (this.plane.stopped) return;
      const fresh = this.settleOutbox.splice(0);
      for (const [member, pending] of this.settleAcks) {
        const partitions = fresh.filter((p) => pending.has(p));
        if (partitions.length > 0) this.plane.options.send(member, { type: 'partition-settled', clusterKey: this.plane.view.clusterKey, partitions });
      }
    }, SETTLE_NOTICE_BATCH_MS);
  }

  /**
   * Records that `partition` received data. If it is already settled here and this node does
   * not own it (a late replication or batch from an older view), drop it again: a stray copy
   * on a non-owner would otherwise linger until the next view.
   */
  noteReceived(partition: number): void {
    setBit(this.plane.receivedSinceSnapshot, partition, true);
    const plan = this.plane.plans?.[partition];
    if (plan !== undefined && bitIsSet(this.plane.settled, partition) && !plan.owners.includes(this.plane.options.nodeId)) this.scheduleDrop(partition);
  }

  // ---- Exchange and planning ----

  private localInfo(): MemberPartitionInfo {
    const hasData = emptyBitmap();
    for (const ns of this.plane.options.store.namespaceNames()) {
      const counts = this.plane.options.store.partitionCounts(ns);
      for (let p = 0; p < PARTITION_COUNT; p++) if (counts[p] > 0) setBit(hasData, p, true);
    }
    const lineages: string[] = [];
    const indexOf = new Map<string, number>();
    const lineageIndex = new Uint16Array(PARTITION_COUNT);
    for (let p = 0; p < PARTITION_COUNT; p++) {
      let index = indexOf.get(this.plane.lineage[p]);
      if (index === undefined) {
        index = lineages.length;
        lineages.push(this.plane.lineage[p]);
        indexOf.set(this.plane.lineage[p], index);
      }
      lineageIndex[p] = index;
    }
    return { synced: Uint8Array.from(this.plane.synced), hasData, lineages, lineageIndex };
  }

  private broadcastInfo(): void {
    const message = this.infoMessage();
    for (const member of this.plane.view.succession) {
      if (member !== this.plane.options.nodeId) this.plane.options.send(member, message);
    }
    if (!this.plane.infos.has(this.plane.options.nodeId)) this.recordInfo(this.plane.options.nodeId, this.plane.localSnapshot!);
  }

  onPartitionInfo(from: string, message: WireMessage): void {
    if (message.clusterKey !== this.plane.view.clusterKey) return;
    // A broadcast (not a reply) means the sender is still collecting: it may lack ours, or our
    // earlier answer was lost. Answer every broadcast, never a reply (no ping-pong). Before
    // this node's snapshot exists there is nothing to answer with: its own broadcast follows.
    if (message.reply !== true && this.infoSnapshot !== undefined) this.plane.options.send(from, { ...this.infoSnapshot, reply: true });
    if (this.plane.infos.has(from)) return;
    const info = parseInfo(message);
    if (info === undefined) return this.plane.refusals.refuse('partition-info', from, 'malformed holdings');
    this.recordInfo(from, info);
  }

  private infoMessage(): WireMessage {
    if (this.infoSnapshot !== undefined) return this.infoSnapshot;
    const info = this.plane.localSnapshot!;
    return {
      type: 'partition-info',
      clusterKey: this.plane.view.clusterKey,
      synced: Buffer.from(info.synced),
      hasData: Buffer.from(info.hasData),
      lineages: info.lineages,
      lineageIndex: Buffer.from(info.lineageIndex.buffer, info.lineageIndex.byteOffset, info.lineageIndex.byteLength),
    };
  }

  private recordInfo(nodeId: string, info: MemberPartitionInfo): void {
    this.plane.infos.set(nodeId, info);
    if (this.plane.plans === undefined && this.plane.localSnapshot !== undefined && this.plane.view.succession.every((id) => this.plane.infos.has(id))) this.makePlans();
  }

  private makePlans(): void {
    const map = this.plane.map!;
    const members = this.plane.view.succession;
    const plans: PartitionPlan[] = planPartitions(map.owners, members, this.plane.infos);
    this.plane.plans = plans;
    this.plane.settled.fill(0);
    const self = this.plane.options.nodeId;
    const key = this.plane.view.clusterKey;
    const lineage = this.plane.viewLineage;
    for (let p = 0; p < PARTITION_COUNT; p++) {
      const plan = plans[p];
      // Copies that receive every write of this view from now on (the acting master, and
      // owners identical to it) carry this view's lineage; a copy left behind keeps its old one.
      if (bitIsSet(this.plane.synced, p) && (plan.actingMaster === self || (plan.owners.includes(self) && !plan.fillTargets.includes(self)))) {
        this.plane.lineage[p] = lineage;
      }
      if (plan.settled) {
        this.settle(p);
        continue;
      }
      if (plan.mergeSources.includes(self)) {
        this.plane.outgoing.add(p);
        this.enqueue({ id: `${key}:${p}:merge`, clusterKey: key, partition: p, phase: 'merge', targets: [plan.actingMaster] });
      }
      if (plan.actingMaster === self) {
        this.plane.outgoing.add(p);
        this.plane.awaitingMerges.set(p, new Set(plan.mergeSources));
        if (plan.mergeSources.length === 0) this.startFill(p);
      }
      if (plan.fillTargets.includes(self)) this.plane.incoming.add(p);
    }
    this.plane.options.runtime.logger.debug('cluster: partition plans ready', { clusterKey: key, outgoing: this.plane.outgoing.size, incoming: this.plane.incoming.size });
    for (const waiter of this.plane.readyWaiters.splice(0)) waiter();
    this.checkMigrationsComplete();
  }

  startFill(partition: number): void {
    const plan = this.plane.plans![partition];
    // Nothing to send: no fill target, or this node holds no record of the partition (none in
    // its snapshot, none written or received since) and no write of it is in flight. A fill
    // only ever adds versions, so an empty one would change nothing on the targets; every
    // write from now on reaches them by replication. Skipping the job keeps a view change on
    // a cluster with few records from costing a queue job and a message round per partition.
    if (plan.fillTargets.length === 0 || (!this.partitionHasData(partition) && !this.plane.replicating.has(partition))) {
      this.finishActing(partition);
      return;
    }
    const key = this.plane.view.clusterKey;
    this.enqueue({ id: `${key}:${partition}:fill`, clusterKey: key, partition, phase: 'fill', targets: plan.fillTargets });
  }

  /**
   * Acting master: every fill acknowledged. The partition settles on its owners once the
   * writes this node is still replicating for it are acknowledged: from then on the new master
   * serves it, and it must not start from a copy that lacks a write this node acknowledges
   * later. Meanwhile nobody serves it, and requests retry (docs/cluster.md, "Who serves a
   * partition").
   */
  finishActing(partition: number): void {
    const key = this.plane.view.clusterKey;
    const complete = () => {
      if (this.plane.stopped || this.plane.view.clusterKey !== key || !this.plane.handingOff.has(partition)) return;
      this.plane.handingOff.delete(partition);
      if (this.plane.view.succession.length > 1) this.queueSettleNotice(partition);
      this.settle(partition);
      this.plane.outgoing.delete(partition);
      this.checkMigrationsComplete();
    };
    this.plane.handingOff.set(partition, complete);
    if (!this.plane.replicating.has(partition)) complete();
  }

  /** Applies the settled state of a partition locally: owners become synced, others drop it. */
  private settle(partition: number): void {
    if (bitIsSet(this.plane.settled, partition)) return;
    setBit(this.plane.settled, partition, true);
    const owners = this.plane.plans![partition].owners;
    this.plane.incoming.delete(partition);
    if (owners.includes(this.plane.options.nodeId)) {
      setBit(this.plane.synced, partition, true);
      this.plane.lineage[partition] = this.plane.viewLineage;
      return;
    }
    const hadCopy = bitIsSet(this.plane.synced, partition);
    setBit(this.plane.synced, partition, false);
    this.plane.lineage[partition] = '';
    if (hadCopy || this.partitionHasData(partition)) this.scheduleDrop(partition);
  }

  /** Whether this node may hold records of `partition` (cheap: no store scan per partition). */
  private partitionHasData(partition: number): boolean {
    return bitIsSet(this.plane.localSnapshot?.hasData ?? emptyBitmap(), partition) || bitIsSet(this.plane.receivedSinceSnapshot, partition);
  }

  /** Queues the drop of this node's copy of a settled partition it does not own (done in slices, see DropQueue). */
  private scheduleDrop(partition: number): void {
    const key = this.plane.view.clusterKey;
    this.drops.push(partition, () => !this.plane.stopped && this.plane.view.clusterKey === key && this.plane.plans?.[partition].owners.includes(this.plane.options.nodeId) === false);
  }

  private async dropLocalCopy(partition: number): Promise<number> {
    let removed = 0;
    for (const ns of this.plane.options.store.namespaceNames()) removed += await this.plane.options.store.dropPartition(ns, partition);
    return removed;
  }

  onSettled(from: string, message: WireMessage): void {
    if (message.clusterKey !== this.plane.view.clusterKey || this.plane.plans === undefined) return;
    const partitions = settledPartitions(message);
    if (partitions.length === 0) return;
    this.plane.options.send(from, { type: 'partition-settled-ack', clusterKey: this.plane.view.clusterKey, partitions });
    for (const partition of partitions) {
      // Only the acting master of a partition settles it.
      if (this.plane.plans[partition].actingMaster !== from) this.plane.refusals.refuse('partition-settled', from, `partition ${partition}, whose acting master is ${this.plane.plans[partition].actingMaster}`);
      else this.settle(partition);
    }
    this.checkMigrationsComplete();
  }

  checkMigrationsComplete(): void {
    if (this.plane.plans !== undefined && this.plane.outgoing.size === 0 && this.plane.incoming.size === 0) this.plane.options.onMigrationsComplete();
  }
}
