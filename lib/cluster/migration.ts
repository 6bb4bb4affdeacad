/**
 * The migration jobs of the data plane (docs/cluster.md, "Migrations"): a better-queue job
 * queue per view (bounded concurrency, retries) that sends each partition's copy to where the
 * view's plans say (a merge into the acting master, the acting master's fill of the owners),
 * by delta where the target already holds data; and the receiving side, which checks every
 * migration message against the sender's role in the plan and applies what it accepts.
 */
import BetterQueue = require('better-queue');
import type { PartitionExchange } from './partition-exchange';
import { yieldTurn } from './background';
import { MIGRATION_BATCH_MAX_BYTES, MIGRATION_BATCH_RECORDS, MIGRATION_CONCURRENCY, MIGRATION_MAX_RETRIES, MIGRATION_REQUEUE_DELAY_MS } from './constants';
import type { RecordVersion } from './local-store';
import type { WireMessage } from './network';
import { bitIsSet } from './partition-plan';
import { isDigest, isPartition, parseWireVersions, versionsToWire } from './peer-checks';
import type { DataPlaneState, MigrationJob } from './data-plane-state';
import { versionFingerprint } from './data-plane-wire';

export class Migrations {
  private queue: BetterQueue<MigrationJob>;
  /** Jobs queued or running, by id (to requeue one that exhausted its retries). */
  private readonly jobs = new Map<string, MigrationJob>();

  constructor(
    private readonly plane: DataPlaneState,
    private readonly exchange: PartitionExchange,
  ) {
    this.queue = this.createQueue();
  }

  /** A new view: the old view's jobs are dropped with their queue. */
  reset(): void {
    this.jobs.clear();
    this.queue.destroy();
    this.queue = this.createQueue();
  }

  stop(): void {
    this.queue.destroy();
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
        const timers = this.plane.options.runtime.timers;
        if (timers.setImmediate !== undefined) timers.setImmediate(callback);
        else timers.setTimeout(callback, 0);
      },
    });
    queue.on('task_failed', (...args: unknown[]) => this.onJobFailed(String(args[0]), args[1]));
    return queue;
  }

  enqueue(job: MigrationJob): void {
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
    if (job === undefined || this.plane.stopped || job.clusterKey !== this.plane.view.clusterKey) return;
    this.plane.options.runtime.logger.warn(`cluster: migration job ${id} failed (${String(error)}); retrying in ${MIGRATION_REQUEUE_DELAY_MS} ms`);
    this.plane.options.runtime.timers.setTimeout(() => {
      if (!this.plane.stopped && job.clusterKey === this.plane.view.clusterKey) this.enqueue(job);
    }, MIGRATION_REQUEUE_DELAY_MS);
  }

  // ---- Migration jobs ----

  private async runJob(job: MigrationJob): Promise<void> {
    if (this.plane.stopped || job.clusterKey !== this.plane.view.clusterKey) return;
    const store = this.plane.options.store;
    const deadline = () => this.plane.options.runtime.clock.nowMs() + this.plane.requestTimeoutMs;
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
        if (job.clusterKey !== this.plane.view.clusterKey) return;
        batch.push(version);
        bytes += (version.payload?.length ?? 0) + 64;
        if (batch.length >= this.plane.migrationBatchRecords || bytes >= MIGRATION_BATCH_MAX_BYTES) {
          await ship({ ns, versions: batch });
          batch = [];
          bytes = 0;
        }
      }
      if (batch.length > 0) await ship({ ns, versions: batch });
    }
    const final: { ns: string; versions: RecordVersion[] } = held ?? { ns: namespaces[0] ?? '', versions: [] };
    await this.sendBatch(job, final.ns, final.versions, true, deadline());
    if (job.clusterKey !== this.plane.view.clusterKey) return;
    if (job.phase === 'merge') {
      this.plane.outgoing.delete(job.partition);
      this.exchange.checkMigrationsComplete();
    } else {
      this.exchange.finishActing(job.partition);
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
    await yieldTurn(this.plane.options.runtime.timers);
    await Promise.all(job.targets.map((target) => this.sendBatchTo(job, target, ns, versions, last, deadline)));
  }

  private async sendBatchTo(job: MigrationJob, target: string, ns: string, versions: RecordVersion[], last: boolean, deadline: number): Promise<void> {
    const check = (reply: WireMessage): boolean => {
      if (reply.type === 'target-left' || job.clusterKey !== this.plane.view.clusterKey) return false;
      if (reply.type !== 'migrate-ack' || reply.ok !== true) {
        throw new Error(`migration of partition ${job.partition} to ${target}: ${reply.type === 'timeout' ? 'timed out' : reply.type === 'not-sent' ? 'not connected' : String(reply.reason)}`);
      }
      return true;
    };
    let payload = versions;
    const targetInfo = this.plane.infos.get(target);
    if (versions.length > 0 && targetInfo !== undefined && bitIsSet(targetInfo.hasData, job.partition)) {
      const entries = versions.map((v) => [v.digest, v.gen, v.lastUpdateMs, versionFingerprint(v)]);
      const offer = await this.plane.call(target, { type: 'migrate-offer', clusterKey: job.clusterKey, partition: job.partition, phase: job.phase, ns, entries }, deadline);
      if (!check(offer)) return;
      const want = Array.isArray(offer.want) ? (offer.want as unknown[]) : [];
      payload = want.filter((i): i is number => Number.isInteger(i) && (i as number) >= 0 && (i as number) < versions.length).map((i) => versions[i]);
      this.plane.counters.skippedByDelta += versions.length - payload.length;
    }
    if (payload.length === 0 && !last) return;
    const reply = await this.plane.call(
      target,
      { type: 'migrate-batch', clusterKey: job.clusterKey, partition: job.partition, phase: job.phase, ns, versions: versionsToWire(payload), last },
      deadline,
    );
    if (check(reply)) this.plane.counters.migratedRecordsOut += payload.length;
  }

  /**
   * Why a migration message from `from` is refused, or undefined when this node expects it:
   * this view, a valid partition and namespace, and the sender's role in the partition's plan
   * (a merge source sending to its acting master, or the acting master filling an owner).
   */
  private migrationRefusal(from: string, message: WireMessage): string | undefined {
    if (message.clusterKey !== this.plane.view.clusterKey || this.plane.plans === undefined) return 'cluster view changed';
    const { partition, phase } = message;
    if (!isPartition(partition)) return `no valid partition (${String(partition)})`;
    if (!this.plane.knowsNamespace(message.ns)) return 'an unknown namespace';
    const plan = this.plane.plans[partition];
    const self = this.plane.options.nodeId;
    if (phase === 'merge') {
      if (plan.actingMaster !== self || !plan.mergeSources.includes(from)) return `a merge of partition ${partition} this node does not expect from ${from}`;
    } else if (phase === 'fill') {
      if (plan.actingMaster !== from || !plan.fillTargets.includes(self)) return `a fill of partition ${partition} this node does not expect from ${from}`;
    } else return `an unknown migration phase ${String(phase)}`;
    return undefined;
  }

  /** Answers an offer with the indexes of the versions this node lacks or holds differently. */
  async onMigrateOffer(from: string, message: WireMessage): Promise<void> {
    const reply: WireMessage = { type: 'migrate-ack', id: message.id, ok: false };
    const refusal = this.migrationRefusal(from, message) ?? (Array.isArray(message.entries) ? undefined : 'no list of entries');
    if (refusal !== undefined) {
      if (refusal !== 'cluster view changed') this.plane.refusals.refuse('migrate-offer', from, refusal);
      reply.reason = refusal;
      this.plane.options.send(from, reply);
      return;
    }
    try {
      const want: number[] = [];
      const entries = message.entries as unknown[];
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i];
        if (!Array.isArray(entry) || !isDigest(entry[0])) continue;
        const local = await this.plane.options.store.readRecordVersion(message.ns as string, Buffer.from(entry[0]));
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
    this.plane.options.send(from, reply);
  }

  async onMigrateBatch(from: string, message: WireMessage): Promise<void> {
    const reply: WireMessage = { type: 'migrate-ack', id: message.id, ok: false };
    const partition = message.partition as number;
    let refusal = this.migrationRefusal(from, message);
    let versions: RecordVersion[] = [];
    if (refusal === undefined) {
      const parsed = parseWireVersions(message.versions, Math.max(MIGRATION_BATCH_RECORDS, this.plane.migrationBatchRecords) + 1, partition);
      if (typeof parsed === 'string') refusal = parsed;
      else versions = parsed;
    }
    if (refusal !== undefined) {
      if (refusal !== 'cluster view changed') this.plane.refusals.refuse('migrate-batch', from, refusal);
      reply.reason = refusal;
      this.plane.options.send(from, reply);
      return;
    }
    try {
      // Background work: requests and heartbeats already read go first.
      await yieldTurn(this.plane.options.runtime.timers);
      const store = this.plane.options.store;
      if (store.applyRecordVersions !== undefined && versions.length > 1) await store.applyRecordVersions(message.ns as string, versions);
      else for (const version of versions) await store.applyRecordVersion(message.ns as string, version);
      if (versions.length > 0) this.exchange.noteReceived(partition);
      this.plane.counters.migratedRecordsIn += versions.length;
      if (message.last === true && message.clusterKey === this.plane.view.clusterKey) {
        if (message.phase === 'merge') {
          const waiting = this.plane.awaitingMerges.get(partition);
          if (waiting?.delete(from) && waiting.size === 0) this.exchange.startFill(partition);
        } else {
          this.plane.incoming.delete(partition);
          this.exchange.checkMigrationsComplete();
        }
      }
      reply.ok = true;
    } catch (error) {
      reply.reason = String(error);
    }
    this.plane.options.send(from, reply);
  }
}
