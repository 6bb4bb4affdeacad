/**
 * Batches in cluster mode (batchPut, batchGet; docs/cluster.md, "Batches"): items grouped by
 * their partition's master and sent in bounded messages, each master executing its items
 * together and replicating them in batches per replica (batch-wire.ts).
 */
import type { DuplicateResolution } from './duplicate-resolution';
import type { Replication } from './replication';
import { ErrorCode } from '../errors';
import { yieldTurn } from './background';
import {
  BATCH_REQUEST_RECORDS,
  BATCH_REQUESTS_IN_FLIGHT,
  DATA_PLANE_SLICE_RECORDS,
  FORWARD_RETRY_DELAY_MS,
  FORWARD_RETRY_MAX_DELAY_MS,
  MAX_FORWARD_ATTEMPTS,
  PARTITION_COUNT,
} from './constants';
import type { BatchItemOutcome, LocalResult, WireError } from './local-store';
import type { WireMessage } from './network';
import { setBit } from './partition-plan';
import { isDigest, partitionOf } from './peer-checks';
import { addToReplicationBatch, encodeBatchSteps, packBatchItems, packVersions, parseBatchSteps, unpackBatchItems, type BatchStep, type ReplicationBatch } from './batch-wire';
import type { DataPlaneState } from './data-plane-state';
import { inDoubtError, parseWireError, timeoutMessage, toWireError } from './data-plane-wire';

export class BatchRouting {
  constructor(
    private readonly plane: DataPlaneState,
    private readonly duplicates: DuplicateResolution,
    private readonly replication: Replication,
  ) {}

  // ---- Batches (batchPut, batchGet in cluster mode) ----

  /**
   * Executes many single-record operations of one namespace, each on its partition's master:
   * items are grouped by master and sent in messages of at most BATCH_REQUEST_RECORDS, a
   * bounded number in flight; each master executes its items together and replicates them in
   * batches. Resolves to each item's outcome in order; never rejects. `readOnly` marks a batch
   * of reads, which may be sent again freely; a write item whose master left while it ran is
   * reported in doubt (TIMEOUT), never sent twice. With `more`, the caller is still preparing
   * items: each call appends the next slice to `digests` and `operations` and resolves to
   * whether it added any (false once there are no more); the first messages go out while
   * the rest is prepared.
   */
  async executeBatch(ns: string, digests: Buffer[], operations: unknown[], readOnly: boolean, more?: () => Promise<boolean>): Promise<BatchItemOutcome[]> {
    // Grown an item at a time, in order, as the first attempt takes them (so both stay dense
    // arrays: written at scattered indexes, an empty array turns into a slow dictionary).
    const outcomes: (BatchItemOutcome | undefined)[] = [];
    // Each item has the request timeout from the moment its first message goes out (0 until
    // then): a large batch takes longer than one request may, and its last items go out only then.
    const deadlines: number[] = [];
    let pending: number[] | undefined;
    for (let attempt = 0; pending === undefined || pending.length > 0; attempt++) {
      try {
        await this.plane.waitForPlans(this.plane.options.runtime.clock.nowMs() + this.plane.requestTimeoutMs);
      } catch (error) {
        if (pending === undefined) while (more !== undefined && (await more()));
        if (pending === undefined) while (outcomes.length < digests.length) outcomes.push(undefined);
        for (const index of pending ?? digests.keys()) outcomes[index] = { error: toWireError(error) };
        break;
      }
      const retry: number[] = [];
      await this.attempt(ns, digests, operations, readOnly, pending, more, deadlines, outcomes, retry);
      const now = this.plane.options.runtime.clock.nowMs();
      const expired = (index: number) => now >= deadlines[index]! || attempt + 1 >= MAX_FORWARD_ATTEMPTS || this.plane.stopped;
      for (const index of retry.filter(expired)) {
        outcomes[index] = { error: { code: ErrorCode.TIMEOUT, message: timeoutMessage(partitionOf(digests[index]!), !readOnly, this.plane.stopped) } };
      }
      pending = retry.filter((index) => !expired(index));
      if (pending.length === 0) break;
      this.plane.counters.retries++;
      await this.plane.sleep(Math.min(FORWARD_RETRY_DELAY_MS * (attempt + 1), FORWARD_RETRY_MAX_DELAY_MS));
    }
    outcomes.length = digests.length;
    return outcomes as BatchItemOutcome[];
  }

  /**
   * One attempt at the `pending` items (undefined: every item, the first attempt, including
   * those `more` adds while it runs): grouped by the node serving their partition into
   * messages of at most BATCH_REQUEST_RECORDS, each sent as soon as it is full, at most
   * BATCH_REQUESTS_IN_FLIGHT at a time, in the order they filled (so a node gets a key's
   * items in the caller's order). Grouping yields every DATA_PLANE_SLICE_RECORDS items.
   */
  private async attempt(
    ns: string,
    digests: Buffer[],
    operations: unknown[],
    readOnly: boolean,
    pending: number[] | undefined,
    more: (() => Promise<boolean>) | undefined,
    deadlines: number[],
    outcomes: (BatchItemOutcome | undefined)[],
    retry: number[],
  ): Promise<void> {
    const queue = new ChunkQueue();
    const send = async ({ target, items }: { target: string; items: number[] }): Promise<void> => {
      const now = this.plane.options.runtime.clock.nowMs();
      let deadline = Number.POSITIVE_INFINITY;
      for (const i of items) {
        if (deadlines[i] === 0) deadlines[i] = now + this.plane.requestTimeoutMs;
        deadline = Math.min(deadline, deadlines[i]!);
      }
      const steps = await this.batchAttempt(target, ns, items.map((i) => digests[i]!), items.map((i) => operations[i]), readOnly, deadline);
      steps.forEach((step, k) => {
        if ('retry' in step) retry.push(items[k]!);
        else outcomes[items[k]!] = step;
      });
    };
    const workers = Array.from({ length: BATCH_REQUESTS_IN_FLIGHT }, async () => {
      for (let chunk = await queue.take(); chunk !== undefined; chunk = await queue.take()) await send(chunk);
    });
    try {
      const byTarget = new Map<string, number[]>();
      const add = (index: number): void => {
        const target = this.plane.actingMaster(partitionOf(digests[index]!)) ?? this.plane.options.nodeId;
        let items = byTarget.get(target);
        if (items === undefined) byTarget.set(target, (items = []));
        items.push(index);
        if (items.length >= BATCH_REQUEST_RECORDS) {
          queue.push({ target, items });
          byTarget.delete(target);
        }
      };
      const timers = this.plane.options.runtime.timers;
      if (pending !== undefined) {
        for (let k = 0; k < pending.length; k++) {
          if (k > 0 && k % DATA_PLANE_SLICE_RECORDS === 0) await yieldTurn(timers);
          add(pending[k]!);
        }
      } else {
        let next = 0;
        for (;;) {
          while (next < digests.length) {
            if (next > 0 && next % DATA_PLANE_SLICE_RECORDS === 0) await yieldTurn(timers);
            deadlines.push(0);
            outcomes.push(undefined);
            add(next++);
          }
          if (more === undefined || !(await more())) break;
        }
      }
      for (const [target, items] of byTarget) queue.push({ target, items });
    } finally {
      queue.close();
      await Promise.all(workers);
    }
  }

  /** One attempt at a group of batch items on `target` (this node or a peer). */
  private async batchAttempt(target: string, ns: string, digests: Buffer[], operations: unknown[], readOnly: boolean, deadline: number): Promise<BatchStep[]> {
    if (target === this.plane.options.nodeId) return this.executeBatchAsMaster(ns, digests, operations, deadline);
    this.plane.counters.forwarded++;
    let reply: WireMessage;
    try {
      // Binary put items go packed (packBatchItems); anything else as lists.
      const packed = packBatchItems(digests, operations);
      const message: WireMessage = packed === undefined ? { type: 'batch-request', ns, digests, operations } : { type: 'batch-request', ns, packedDigests: packed.digests, packedItems: packed.items };
      reply = await this.plane.call(target, message, deadline);
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

  async onBatchRequest(from: string, message: WireMessage): Promise<void> {
    const { ns } = message;
    let { digests, operations } = message;
    const reply: WireMessage = { type: 'batch-response', id: message.id };
    let refusal = 'malformed batch request';
    if (message.packedDigests !== undefined || message.packedItems !== undefined) {
      const unpacked = digests === undefined && operations === undefined ? unpackBatchItems(message.packedDigests, message.packedItems, 2 * BATCH_REQUEST_RECORDS) : 'a batch request with both packed and listed items';
      if (typeof unpacked === 'string') {
        // Refused whole: nothing of it is read as items.
        refusal = unpacked;
        digests = undefined;
        operations = undefined;
      } else ({ digests, operations } = unpacked);
    }
    const wellFormed =
      this.plane.knowsNamespace(ns) &&
      Array.isArray(digests) &&
      Array.isArray(operations) &&
      digests.length === operations.length &&
      digests.length <= 2 * BATCH_REQUEST_RECORDS &&
      digests.every(isDigest);
    if (!wellFormed) {
      this.plane.refusals.refuse('batch-request', from, refusal);
      const count = Array.isArray(digests) ? Math.min(digests.length, 2 * BATCH_REQUEST_RECORDS) : 0;
      const malformed: WireError = { code: ErrorCode.INVALID_ARGUMENT, message: 'cluster: malformed batch request' };
      this.plane.options.send(from, Object.assign(reply, encodeBatchSteps(Array.from({ length: count }, () => ({ error: malformed })))));
      return;
    }
    this.plane.counters.batchRequests++;
    // Each batch runs in a turn of its own: messages read together do not make one long turn.
    await yieldTurn(this.plane.options.runtime.timers);
    const deadline = this.plane.options.runtime.clock.nowMs() + this.plane.requestTimeoutMs;
    const steps = await this.executeBatchAsMaster(ns, (digests as Uint8Array[]).map((d) => (Buffer.isBuffer(d) ? d : Buffer.from(d))), operations as unknown[], deadline);
    this.plane.options.send(from, Object.assign(reply, encodeBatchSteps(steps)));
  }

  /**
   * Executes batch items on this node as master of their partitions: items of partitions it
   * does not serve get `retry`; items of partitions still merging are duplicate-resolved
   * first; the rest run together on the store, then every version they wrote is replicated,
   * in batches per replica. An item whose replication timed out is in doubt (TIMEOUT).
   */
  private async executeBatchAsMaster(ns: string, digests: Buffer[], operations: unknown[], deadline: number): Promise<BatchStep[]> {
    const count = digests.length;
    const steps: (BatchStep | undefined)[] = new Array(count);
    const partitions = new Uint16Array(count);
    const key = this.plane.view.clusterKey;
    const merging: number[] = [];
    // Usually no partition is merging: then no lookup per item.
    const awaitingMerges = this.plane.awaitingMerges.size > 0 ? this.plane.awaitingMerges : undefined;
    for (let i = 0; i < count; i++) {
      const partition = partitionOf(digests[i]!);
      partitions[i] = partition;
      if (!this.plane.servesPartition(partition)) steps[i] = { retry: true };
      else if (awaitingMerges?.get(partition)?.size) merging.push(i);
    }
    const run: number[] = [];
    if (merging.length === 0) {
      // Nothing awaited since the check above: what it found still holds.
      for (let i = 0; i < count; i++) if (steps[i] === undefined) run.push(i);
    } else {
      await Promise.all(
        merging.map(async (i) => {
          const blocked = await this.duplicates.resolveDuplicates(ns, [partitions[i]!], digests[i], deadline);
          if (blocked === undefined) return;
          steps[i] = blocked.retry === 'not-master' ? { retry: true } : { error: blocked.error ?? { code: ErrorCode.TIMEOUT, message: timeoutMessage(partitions[i]!, true, false) } };
        }),
      );
      for (let i = 0; i < count; i++) {
        if (steps[i] !== undefined) continue;
        if (this.plane.view.clusterKey !== key || !this.plane.servesPartition(partitions[i]!)) steps[i] = { retry: true };
        else run.push(i);
      }
    }
    if (run.length > 0) await this.runBatch(ns, run, digests, operations, partitions, deadline, steps);
    return steps as BatchStep[];
  }

  /** Runs the items `run` of a batch on the store and replicates what they wrote. */
  private async runBatch(ns: string, run: number[], digests: Buffer[], operations: unknown[], partitions: Uint16Array, deadline: number, steps: (BatchStep | undefined)[]): Promise<void> {
    const plans = this.plane.plans!;
    const key = this.plane.view.clusterKey;
    this.plane.counters.executedAsMaster += run.length;
    const inFlight = countByPartition(run, partitions);
    for (let k = 0; k < inFlight.length; k += 2) this.plane.beginInFlight(inFlight[k]!, inFlight[k + 1]!);
    try {
      let results: (LocalResult | { error: WireError })[];
      this.plane.beginExecute();
      try {
        results = await this.executeLocalBatch(ns, run.map((i) => digests[i]!), run.map((i) => operations[i]));
      } finally {
        this.plane.endExecute();
      }
      // Per replica, the versions to send and the items waiting for them.
      const byTarget = new Map<string, ReplicationBatch[]>();
      const self = this.plane.options.nodeId;
      for (let k = 0; k < results.length; k++) {
        const result = results[k]!;
        const i = run[k]!;
        if ('error' in result) {
          steps[i] = { error: result.error };
          continue;
        }
        steps[i] = { value: result.value };
        const writes = result.writes;
        for (let w = 0; w < writes.length; w++) {
          const version = writes[w]!.version;
          const partition = partitionOf(version.digest);
          setBit(this.plane.receivedSinceSnapshot, partition, true);
          const owners = plans[partition].owners;
          for (let o = 0; o < owners.length; o++) {
            if (owners[o] !== self) addToReplicationBatch(byTarget, owners[o]!, version, i);
          }
        }
      }
      await Promise.all(
        [...byTarget].flatMap(([target, batches]) =>
          batches.map(async ({ versions, items }) => {
            try {
              await this.replication.replicateUntilAcknowledged(target, { type: 'replicate', clusterKey: key, ns, packed: packVersions(versions) }, key, deadline);
              this.plane.counters.replicated += versions.length;
            } catch (error) {
              for (const i of items) {
                this.plane.unreplicated.add(partitions[i]!);
                steps[i] = { error: toWireError(error) };
              }
            }
          }),
        ),
      );
    } finally {
      for (let k = 0; k < inFlight.length; k += 2) this.plane.endInFlight(inFlight[k]!, inFlight[k + 1]!);
    }
  }

  /** The store's batch execution, or executeLocal per item for a store without one. */
  private async executeLocalBatch(ns: string, digests: Buffer[], operations: unknown[]): Promise<(LocalResult | { error: WireError })[]> {
    const store = this.plane.options.store;
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
}

/** Items per partition, counted in a scratch array (synchronously: no call shares it across an await). */
const itemsOfPartition = new Uint32Array(PARTITION_COUNT);

/** The partitions of the items `run` with their item counts, as flat (partition, count) pairs. */
function countByPartition(run: readonly number[], partitions: Uint16Array): number[] {
  const pairs: number[] = [];
  for (const i of run) if (itemsOfPartition[partitions[i]!]++ === 0) pairs.push(partitions[i]!, 0);
  for (let k = 0; k < pairs.length; k += 2) {
    pairs[k + 1] = itemsOfPartition[pairs[k]!]!;
    itemsOfPartition[pairs[k]!] = 0;
  }
  return pairs;
}

/** Batch messages waiting for a sender, in the order they filled; senders take them one at a time. */
class ChunkQueue {
  private readonly chunks: ({ target: string; items: number[] } | undefined)[] = [];
  private head = 0;
  private closed = false;
  private readonly waiting: (() => void)[] = [];

  push(chunk: { target: string; items: number[] }): void {
    this.chunks.push(chunk);
    this.waiting.shift()?.();
  }

  /** No more chunks: senders finish what is queued, then stop. */
  close(): void {
    this.closed = true;
    for (const wake of this.waiting.splice(0)) wake();
  }

  /** The next chunk, once there is one; undefined once the queue is closed and empty. */
  async take(): Promise<{ target: string; items: number[] } | undefined> {
    while (this.head === this.chunks.length && !this.closed) await new Promise<void>((resolve) => this.waiting.push(resolve));
    if (this.head === this.chunks.length) return undefined;
    const chunk = this.chunks[this.head];
    this.chunks[this.head++] = undefined;
    return chunk;
  }
}
