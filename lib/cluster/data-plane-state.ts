/**
 * The state every role of the data plane shares (data-plane.ts wires the roles): the view and
 * its partition plans, the per-partition bookkeeping of this node, the calls waiting for
 * peers, the request memory and the counters, with the few questions every role asks of them
 * (who serves a partition, is a namespace known, wait for the plans). Each role keeps what only
 * it uses; what more than one role reads or writes lives here, in one place.
 */
import { ErrorCode, ShoalError } from '../errors';
import { DEFAULT_REQUEST_TIMEOUT_MS, MIGRATION_BATCH_RECORDS, PARTITION_COUNT, REMEMBERED_REQUEST_TIMEOUTS } from './constants';
import type { LocalStore } from './local-store';
import type { ClusterView } from './membership';
import type { WireMessage } from './network';
import type { PartitionMap } from './partition-map';
import type { MemberPartitionInfo, PartitionPlan } from './partition-plan';
import { bitIsSet, emptyBitmap } from './partition-plan';
import { RefusalLog } from './peer-checks';
import { PendingCalls } from './pending-calls';
import { RequestMemory } from './request-memory';
import type { Runtime } from './seams';

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

/** One migration job: a merge into the acting master, or the acting master's fill of its owners. */
export interface MigrationJob {
  id: string;
  clusterKey: string;
  partition: number;
  phase: 'merge' | 'fill';
  targets: readonly string[];
}

/** What the data plane counts (db.cluster stats, metrics, the tests). */
export interface DataPlaneCounters {
  forwarded: number;
  executedAsMaster: number;
  replicated: number;
  migratedRecordsIn: number;
  migratedRecordsOut: number;
  skippedByDelta: number;
  retries: number;
  scanSplits: number;
  duplicateReads: number;
  answeredFromMemory: number;
  inDoubt: number;
  batchRequests: number;
}

export class DataPlaneState {
  readonly requestTimeoutMs: number;
  readonly migrationBatchRecords: number;
  view: ClusterView = { clusterKey: '', succession: [], quiesced: [], epoch: 0 };
  /** The view before this one, with its plans: late replication of a write begun there is still accepted. */
  previous: { clusterKey: string; plans: PartitionPlan[] | undefined } = { clusterKey: '', plans: undefined };
  /** The lineage copies take when they settle in this view (lineageOf(epoch, key)). */
  viewLineage = '';
  map: PartitionMap | undefined;
  /** Each member's holdings as of this view (partition-exchange.ts). */
  readonly infos = new Map<string, MemberPartitionInfo>();
  plans: PartitionPlan[] | undefined;
  /** This node's holdings as of the view change (see PartitionExchange.takeSnapshotWhenIdle). */
  localSnapshot: MemberPartitionInfo | undefined;
  readyWaiters: (() => void)[] = [];
  readonly pending: PendingCalls;
  // Local per-partition state.
  readonly synced = emptyBitmap();
  readonly lineage: string[] = new Array(PARTITION_COUNT).fill('');
  readonly settled = emptyBitmap();
  /** At an acting master: merge sources not yet finished, per partition. */
  readonly awaitingMerges = new Map<number, Set<string>>();
  /** Partitions this node still has to send (merge or fill) or receive (fill). */
  readonly outgoing = new Set<number>();
  readonly incoming = new Set<number>();
  stopped = false;
  /** Partitions that received records (replication, migration) since the last snapshot. */
  readonly receivedSinceSnapshot = emptyBitmap();
  /** Writes executing or replicating per partition (master side). */
  readonly replicating = new Map<number, number>();
  /** Requests whose local execution (executeLocal) is running: the view's snapshot waits for none. */
  executing = 0;
  idleWaiters: (() => void)[] = [];
  /** Partitions whose fills are done, waiting for their writes in flight before they settle (nobody serves them meanwhile). */
  readonly handingOff = new Map<number, () => void>();
  /** Partitions with a write whose replication gave up (timed out) since the last view change. */
  readonly unreplicated = new Set<number>();
  readonly memory: RequestMemory;
  readonly refusals: RefusalLog;
  readonly counters: DataPlaneCounters = {
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

  constructor(readonly options: DataPlaneOptions) {
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.migrationBatchRecords = options.migrationBatchRecords ?? MIGRATION_BATCH_RECORDS;
    const { clock, logger } = options.runtime;
    this.pending = new PendingCalls(`${options.nodeId}#`, options.runtime, options.send);
    this.memory = new RequestMemory(clock, REMEMBERED_REQUEST_TIMEOUTS * this.requestTimeoutMs);
    this.refusals = new RefusalLog(clock, logger);
  }

  beginExecute(): void {
    this.executing++;
  }

  endExecute(): void {
    if (--this.executing > 0) return;
    for (const waiter of this.idleWaiters.splice(0)) waiter();
  }

  /** The node currently serving partition `partitionId` (undefined while the view's exchange runs). */
  actingMaster(partitionId: number): string | undefined {
    const plan = this.plans?.[partitionId];
    if (plan === undefined) return undefined;
    return bitIsSet(this.settled, partitionId) ? plan.owners[0] : plan.actingMaster;
  }

  /** Whether this node serves every one of `partitions` now (acting master, not handing off). */
  serves(partitions: readonly number[]): boolean {
    return partitions.every((p) => this.servesPartition(p));
  }

  /** serves([partition]) without the array (a batch asks once per item). */
  servesPartition(partition: number): boolean {
    return this.actingMaster(partition) === this.options.nodeId && !this.handingOff.has(partition);
  }

  /** `count` writes of the partition begin (a batch counts its items of a partition together). */
  beginInFlight(partition: number, count = 1): void {
    this.replicating.set(partition, (this.replicating.get(partition) ?? 0) + count);
  }

  endInFlight(partition: number, count = 1): void {
    const left = this.replicating.get(partition)! - count;
    if (left > 0) {
      this.replicating.set(partition, left);
      return;
    }
    this.replicating.delete(partition);
    this.handingOff.get(partition)?.();
  }

  knowsNamespace(ns: unknown): ns is string {
    return typeof ns === 'string' && this.options.store.namespaceNames().includes(ns);
  }

  /**
   * Resolves once this view's plans exist (or the plane stopped).
   * @throws ShoalError PARTITION_UNAVAILABLE at `deadline` without plans.
   */
  async waitForPlans(deadline: number): Promise<void> {
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

  /** A call to a peer that waits for its reply (PendingCalls.call). */
  call(target: string, message: WireMessage, deadline: number): Promise<WireMessage> {
    return this.pending.call(target, message, deadline);
  }

  /**
   * Sends `reply` to `to`; one over MAX_FRAME_BYTES (a scan of many large records, a large copy)
   * is answered with `tooLarge: true` instead (and `ok: false` where the reply has `ok`), so the
   * caller asks for less at a time instead of waiting out its deadline.
   */
  sendReply(to: string, reply: WireMessage): void {
    try {
      this.options.send(to, reply);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      this.options.send(to, 'ok' in reply ? { type: reply.type, id: reply.id, ok: false, tooLarge: true } : { type: reply.type, id: reply.id, tooLarge: true });
    }
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.options.runtime.timers.setTimeout(resolve, Math.max(0, ms)));
  }
}
