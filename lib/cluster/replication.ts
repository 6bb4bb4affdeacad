/**
 * Replication (docs/cluster.md, "Replication"): the acting master executes a request on its
 * LocalStore, ships every record version it wrote to each other owner of the partition, and
 * answers only once all have applied it; a replica applies a replication only from the node
 * that serves the partition in the view it names (this one or the one before).
 */
import type { PartitionExchange } from './partition-exchange';
import { ErrorCode, ShoalError } from '../errors';
import { yieldTurn } from './background';
import { FORWARD_RETRY_DELAY_MS, REPLICATION_ATTEMPT_TIMEOUT_MS, REPLICATION_BATCH_RECORDS } from './constants';
import type { ClusterRequest, LocalResult } from './local-store';
import type { WireMessage } from './network';
import { setBit } from './partition-plan';
import { parseWireVersions, partitionOf, versionsToWire } from './peer-checks';
import { unpackVersions } from './batch-wire';
import type { RequestOutcome } from './request-memory';
import { encodeOutcome } from './request-memory';
import type { DataPlaneState } from './data-plane-state';
import { isRequestId, toWireError } from './data-plane-wire';

export class Replication {
  constructor(
    private readonly plane: DataPlaneState,
    private readonly exchange: PartitionExchange,
  ) {}

  /**
   * Runs a request on the local store and replicates what it wrote. `wrote`: whether the
   * store applied anything (then the outcome is remembered under the request id).
   */
  async executeAndReplicate(request: ClusterRequest, partitions: number[], deadline: number, requestId: string | undefined): Promise<{ outcome: RequestOutcome; wrote: boolean }> {
    // The plan and view this write belongs to, captured before it runs: a view change while it
    // runs or replicates must neither skip its replication nor let this copy pass as identical
    // to replicas that may lack it (the in-flight count gives it a lineage of its own).
    const plans = this.plane.plans!;
    const key = this.plane.view.clusterKey;
    const writes = request.kind === 'record';
    if (writes) this.plane.beginInFlight(partitions[0]);
    try {
      let result: LocalResult;
      this.plane.beginExecute();
      try {
        result = await this.plane.options.store.executeLocal(request);
      } catch (error) {
        return { outcome: { error: toWireError(error) }, wrote: false };
      } finally {
        this.plane.endExecute();
      }
      for (const { version } of result.writes) setBit(this.plane.receivedSinceSnapshot, partitionOf(version.digest), true);
      const encoded = requestId !== undefined && result.writes.length > 0 ? encodeOutcome({ value: result.value }) : undefined;
      for (const { ns, version } of result.writes) {
        const partition = partitionOf(version.digest);
        const targets = plans[partition].owners.filter((id) => id !== this.plane.options.nodeId);
        const message: WireMessage = { type: 'replicate', clusterKey: key, ns, versions: versionsToWire([version]) };
        if (requestId !== undefined) message.requestId = requestId;
        if (encoded !== undefined) message.result = encoded;
        try {
          await Promise.all(targets.map((target) => this.replicateUntilAcknowledged(target, message, key, deadline)));
        } catch (error) {
          // A replica never acknowledged: this copy now holds a version it may lack, so the
          // two must not pass as identical at the next view (see onViewChange).
          this.plane.unreplicated.add(partition);
          return { outcome: { error: toWireError(error) }, wrote: true };
        }
        this.plane.counters.replicated += targets.length;
      }
      return { outcome: { value: result.value }, wrote: result.writes.length > 0 };
    } finally {
      if (writes) this.plane.endInFlight(partitions[0]);
    }
  }

  /**
   * Ships one replication message (one version, or a batch) to one replica until it
   * acknowledges or leaves the cluster.
   * @throws ShoalError TIMEOUT at the deadline (the write stays applied on the master).
   */
  async replicateUntilAcknowledged(target: string, message: WireMessage, clusterKey: string, deadline: number): Promise<void> {
    for (let attempt = 0; !this.plane.stopped; attempt++) {
      // Short attempts: a lost message is re-sent instead of waiting out the whole deadline;
      // each waits twice as long as the one before, so a busy replica is not sent more work.
      const attemptDeadline = Math.min(deadline, this.plane.options.runtime.clock.nowMs() + REPLICATION_ATTEMPT_TIMEOUT_MS * 2 ** Math.min(attempt, 4));
      const reply = await this.plane.call(target, message, attemptDeadline);
      if (reply.type === 'replicate-ack' || reply.type === 'target-left') return;
      if (this.plane.view.clusterKey !== clusterKey && !this.plane.view.succession.includes(target)) return;
      if (this.plane.options.runtime.clock.nowMs() >= deadline) {
        throw new ShoalError(ErrorCode.TIMEOUT, `cluster: replica ${target} did not acknowledge in time; the write is applied on the master and will reach replicas through migration (in doubt)`);
      }
      await this.plane.sleep(FORWARD_RETRY_DELAY_MS);
    }
    throw new ShoalError(ErrorCode.TIMEOUT, 'cluster: this node stopped while a write was replicating (in doubt)');
  }

  /**
   * A master's replication: one version (with the request id and result of the write that made
   * it, for request-memory.ts) or a batch of them (a batch request). Applied by the conflict
   * rule and acknowledged only if every version is one this node expects from that master.
   */
  async onReplicate(from: string, message: WireMessage): Promise<void> {
    // A batch's versions come packed (batch-wire.ts), a single write's as a list.
    const versions = message.packed !== undefined ? unpackVersions(message.packed, REPLICATION_BATCH_RECORDS) : parseWireVersions(message.versions, REPLICATION_BATCH_RECORDS);
    if (typeof versions === 'string') return this.plane.refusals.refuse('replicate', from, versions);
    for (const version of versions) {
      const refusal = this.replicationRefusal(from, message, partitionOf(version.digest));
      if (refusal !== undefined) return this.plane.refusals.refuse('replicate', from, refusal.detail, refusal.level);
    }
    if (versions.length > 1) await yieldTurn(this.plane.options.runtime.timers);
    const requestId = message.requestId;
    const result = message.result;
    try {
      const store = this.plane.options.store;
      if (store.applyRecordVersions !== undefined && versions.length > 1) await store.applyRecordVersions(message.ns as string, versions);
      else for (const version of versions) await store.applyRecordVersion(message.ns as string, version);
      for (const version of versions) this.exchange.noteReceived(partitionOf(version.digest));
      if (isRequestId(requestId) && versions.length === 1) this.plane.memory.replicated(requestId, result instanceof Uint8Array ? Buffer.from(result) : undefined);
      this.plane.options.send(from, { type: 'replicate-ack', id: message.id });
    } catch (error) {
      this.plane.options.runtime.logger.warn(`cluster: could not apply replicated records: ${String(error)}`);
    }
  }

  /**
   * Why a replication of `partition` from `from` is refused, or undefined when this node
   * expects it: the sender serves the partition (acting master, or master once it settled) in
   * the view the replication names, this node owns it there, and that view is this one or the
   * one before (a write that began before the view changed replicates after it).
   */
  private replicationRefusal(from: string, message: WireMessage, partition: number): { detail: string; level: 'warn' | 'info' } | undefined {
    if (!this.plane.knowsNamespace(message.ns)) return { detail: 'an unknown namespace', level: 'warn' };
    const key = message.clusterKey;
    const self = this.plane.options.nodeId;
    const plans = key === this.plane.view.clusterKey ? this.plane.plans : key === this.plane.previous.clusterKey && key !== '' ? this.plane.previous.plans : undefined;
    if (plans === undefined) {
      // This view's exchange is still running here: its plans are unknown yet, its owners are.
      if (key === this.plane.view.clusterKey && this.plane.map?.owners[partition].includes(self) === true) return undefined;
      // A write that began two or more views ago: its master reports it in doubt.
      return { detail: `a replication of partition ${partition} under a cluster view this node does not know (any more)`, level: 'info' };
    }
    const plan = plans[partition];
    if (plan.actingMaster !== from && plan.owners[0] !== from) return { detail: `a replication of partition ${partition} from a node that does not serve it`, level: 'warn' };
    if (!plan.owners.includes(self)) return { detail: `a replication of partition ${partition}, which this node does not own`, level: 'warn' };
    return undefined;
  }
}
