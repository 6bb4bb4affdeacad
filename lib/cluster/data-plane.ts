/**
 * The data plane of a cluster node (docs/cluster.md, "Routing", "Replication", "Migrations",
 * "Who serves a partition", "Errors that tell the truth"). This file wires its roles, each in
 * a file of its own over the shared state (data-plane-state.ts):
 *
 * - routing (routing.ts): any node accepts a request and sends it in one hop to the
 *   partition's acting master; a node that is not (or no longer) the acting master answers
 *   "retry", and the origin retries with its refreshed view until the request's deadline;
 *   batches likewise, grouped per master (batch-routing.ts);
 * - replication (replication.ts): the acting master executes the request, ships every record
 *   version it wrote to each other owner of the partition, and answers only once all have
 *   applied it;
 * - duplicate resolution (duplicate-resolution.ts): while copies of a partition are still
 *   being merged into its acting master, the acting master reads a record's copy from each
 *   pending merge source before it serves that record, so no acknowledged write is hidden;
 * - idempotence: a write carries a request id; a node never executes one twice, and answers a
 *   duplicate or a re-send with the first outcome (request-memory.ts);
 * - migrations: after each new view the members exchange what they hold and plan each
 *   partition (partition-exchange.ts, partition-plan.ts) and move data with a job queue
 *   (migration.ts); a partition settles on its new owners when every fill is acknowledged and
 *   the acting master's writes in flight are replicated, and only then do non-owners drop it;
 * - trust: every message from a peer is checked (peer-checks.ts, data-plane-wire.ts) against
 *   the sender's membership, its role for that partition, and the wire format's bounds.
 */
import { BatchRouting } from './batch-routing';
import { PARTITION_COUNT } from './constants';
import { DataPlaneState, type DataPlaneCounters, type DataPlaneOptions } from './data-plane-state';
import { DuplicateResolution } from './duplicate-resolution';
import type { BatchItemOutcome, ClusterRequest } from './local-store';
import type { ClusterView } from './membership';
import { Migrations } from './migration';
import type { WireMessage } from './network';
import { PartitionExchange } from './partition-exchange';
import type { PartitionMap } from './partition-map';
import { bitIsSet, lineageOf } from './partition-plan';
import type { RefusalLog } from './peer-checks';
import { REPLY_TYPES } from './data-plane-wire';
import { Replication } from './replication';
import { Routing } from './routing';

export { partitionOf } from './peer-checks';
export { DATA_MESSAGE_TYPES, versionFingerprint } from './data-plane-wire';
export type { DataPlaneCounters, DataPlaneOptions } from './data-plane-state';

export class DataPlane {
  private readonly plane: DataPlaneState;
  private readonly exchange: PartitionExchange;
  private readonly migrations: Migrations;
  private readonly duplicates: DuplicateResolution;
  private readonly replication: Replication;
  private readonly routing: Routing;
  private readonly batches: BatchRouting;
  readonly refusals: RefusalLog;
  readonly counters: DataPlaneCounters;

  constructor(options: DataPlaneOptions) {
    const plane = new DataPlaneState(options);
    this.plane = plane;
    this.exchange = new PartitionExchange(plane, (job) => this.migrations.enqueue(job));
    this.migrations = new Migrations(plane, this.exchange);
    this.duplicates = new DuplicateResolution(plane);
    this.replication = new Replication(plane, this.exchange);
    this.routing = new Routing(plane, this.duplicates, this.replication);
    this.batches = new BatchRouting(plane, this.duplicates, this.replication);
    this.refusals = plane.refusals;
    this.counters = plane.counters;
  }

  get clusterKey(): string {
    return this.plane.view.clusterKey;
  }

  /** Partitions this node is still sending or receiving. */
  migrationsRemaining(): number {
    const plane = this.plane;
    if (plane.plans === undefined && plane.view.succession.length > 0) return PARTITION_COUNT;
    let count = plane.outgoing.size;
    for (const partition of plane.incoming) if (!plane.outgoing.has(partition)) count++;
    return count;
  }

  /** Write requests this node remembers the outcome of (executed as master or applied as replica). */
  get rememberedRequests(): number {
    return this.plane.memory.size;
  }

  stop(): void {
    const plane = this.plane;
    plane.stopped = true;
    this.migrations.stop();
    this.exchange.stop();
    plane.pending.release('local-stop');
    plane.idleWaiters = [];
    for (const waiter of plane.readyWaiters.splice(0)) waiter();
  }

  /** A new view was adopted: start the exchange of partition holdings. */
  onViewChange(view: ClusterView, map: PartitionMap): void {
    const plane = this.plane;
    const departed = plane.view.succession.filter((id) => !view.succession.includes(id));
    plane.previous = { clusterKey: plane.view.clusterKey, plans: plane.plans };
    plane.view = view;
    plane.viewLineage = lineageOf(view.epoch, view.clusterKey);
    plane.map = map;
    plane.plans = undefined;
    plane.infos.clear();
    this.migrations.reset();
    plane.awaitingMerges.clear();
    plane.outgoing.clear();
    plane.incoming.clear();
    this.exchange.reset();
    plane.handingOff.clear();
    // A copy with replications still in flight, or whose replication timed out in the last
    // view, holds writes its replicas may lack: it must not pass as identical to them, so it
    // gets a lineage of its own (and is merged).
    for (const partition of new Set([...plane.replicating.keys(), ...plane.unreplicated])) {
      if (bitIsSet(plane.synced, partition)) plane.lineage[partition] = `${plane.lineage[partition]}+${plane.options.nodeId}@${view.clusterKey}`;
    }
    plane.unreplicated.clear();
    plane.localSnapshot = undefined;
    // Calls waiting on nodes that left can never be answered: release them (a forwarded
    // write's call keeps waiting too: its master may only be stalled, see Routing.forward).
    plane.pending.release('target-left', (target) => departed.includes(target));
    if (departed.length > 0) this.routing.onDeparted(departed);
    this.exchange.takeSnapshotWhenIdle();
  }

  /** Runs on every heartbeat tick: re-sends what may have been lost. */
  onTick(): void {
    if (this.plane.stopped || this.plane.view.clusterKey === '') return;
    this.exchange.onTick();
  }

  /**
   * A message from peer `from` (authenticated by the fabric). Replies go to the call that
   * waits for them; anything else is accepted only from a member of the current view.
   */
  handle(from: string, message: WireMessage): void {
    const plane = this.plane;
    if (REPLY_TYPES.has(message.type)) {
      plane.pending.settle(from, message);
      return;
    }
    if (!plane.view.succession.includes(from)) {
      // Normal for a moment around a view change (the sender is still in an older view); a
      // request gets "retry", so its origin routes it again with its refreshed view.
      plane.refusals.refuse('message from a non-member', from, `"${message.type}": the sender is not a member of this node's cluster view`, 'info');
      if (message.type === 'request') plane.options.send(from, { type: 'response', id: message.id, retry: 'not-master' });
      return;
    }
    switch (message.type) {
      case 'partition-info':
        return this.exchange.onPartitionInfo(from, message);
      case 'request':
        return void this.routing.onRequest(from, message);
      case 'batch-request':
        return void this.batches.onBatchRequest(from, message);
      case 'replicate':
        return void this.replication.onReplicate(from, message);
      case 'duplicate-read':
        return void this.duplicates.onDuplicateRead(from, message);
      case 'migrate-batch':
        return void this.migrations.onMigrateBatch(from, message);
      case 'migrate-offer':
        return void this.migrations.onMigrateOffer(from, message);
      case 'partition-settled':
        return this.exchange.onSettled(from, message);
      case 'partition-settled-ack':
        return this.exchange.onSettledAck(from, message);
    }
  }

  /** The node currently serving partition `partitionId` (undefined while the view's exchange runs). */
  actingMaster(partitionId: number): string | undefined {
    return this.plane.actingMaster(partitionId);
  }

  /**
   * Executes a client request wherever its partition is served (Routing.execute). Resolves to
   * the request's value (for a scan, the concatenated values of every partition group); rejects
   * with the store's error, or ShoalError TIMEOUT (the request may have been applied: in doubt)
   * / PARTITION_UNAVAILABLE (no view agreed in time: not applied).
   */
  execute(request: ClusterRequest): Promise<unknown> {
    return this.routing.execute(request);
  }

  /**
   * Executes many single-record operations of one namespace, each on its partition's master
   * (BatchRouting.executeBatch). Resolves to each item's outcome in order; never rejects.
   */
  executeBatch(ns: string, digests: Buffer[], operations: unknown[], readOnly: boolean, more?: () => Promise<boolean>): Promise<BatchItemOutcome[]> {
    return this.batches.executeBatch(ns, digests, operations, readOnly, more);
  }
}
