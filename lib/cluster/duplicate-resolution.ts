/**
 * Duplicate resolution (docs/cluster.md, "Routing", "Migrations"): while copies of a partition
 * are still being merged into its acting master, the acting master reads a record's copy from
 * each pending merge source before it serves that record, so no acknowledged write is hidden;
 * and a merge source answers such reads with its own copy.
 */
import { ErrorCode } from '../errors';
import { DUPLICATE_READ_ATTEMPT_TIMEOUT_MS, FORWARD_RETRY_DELAY_MS } from './constants';
import type { RecordVersion, WireError } from './local-store';
import type { WireMessage } from './network';
import { setBit } from './partition-plan';
import { isDigest, isPartition, parseWireVersions, partitionOf, versionsToWire } from './peer-checks';
import type { DataPlaneState } from './data-plane-state';
import { toWireError, type Step } from './data-plane-wire';

export class DuplicateResolution {
  constructor(private readonly plane: DataPlaneState) {}

  // ---- Duplicate resolution ----

  /**
   * Before the acting master serves a record (or, for a scan, whole partitions) of a partition
   * whose copies are still being merged into it, it takes each pending merge source's copy of
   * that record and applies it by the conflict rule: a merge source may hold acknowledged writes
   * this node lacks (a split that healed, a copy with writes in flight at a view change, pieces
   * of a partition that never settled), and until its merge is done nothing else brings them.
   * Returns undefined when the request can run, or the step to return instead.
   */
  async resolveDuplicates(ns: string, partitions: readonly number[], digest: Buffer | undefined, deadline: number): Promise<Step | undefined> {
    for (const partition of partitions) {
      const sources = this.plane.awaitingMerges.get(partition);
      if (sources === undefined || sources.size === 0) continue;
      const key = this.plane.view.clusterKey;
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
      if (this.plane.view.clusterKey !== key) return { retry: 'not-master' };
      // Its merge finished meanwhile: everything it held is here now.
      if (this.plane.awaitingMerges.get(partition)?.has(source) !== true) return undefined;
      this.plane.counters.duplicateReads++;
      const attemptDeadline = Math.min(deadline, this.plane.options.runtime.clock.nowMs() + DUPLICATE_READ_ATTEMPT_TIMEOUT_MS);
      const reply = await this.plane.call(source, message, attemptDeadline);
      if (reply.type === 'duplicate-versions' && reply.ok === true) {
        const failure = await this.applyDuplicates(source, ns, partition, reply.versions);
        if (failure === undefined) return undefined;
        return { error: failure };
      }
      if (reply.type === 'duplicate-versions' && reply.tooLarge === true) {
        return { error: { code: ErrorCode.CLUSTER_ERROR, message: `cluster: partition ${partition} is still merging and its copy on ${source} is too large to read in one message; retry when migrations are done` } };
      }
      if (reply.type === 'target-left') return { retry: 'not-master' };
      if (this.plane.options.runtime.clock.nowMs() >= deadline) return { retry: 'timeout' };
      await this.plane.sleep(FORWARD_RETRY_DELAY_MS);
    }
  }

  /** Applies versions a merge source sent for duplicate resolution; returns the error that stops the request, if any. */
  private async applyDuplicates(source: string, ns: string, partition: number, wire: unknown): Promise<WireError | undefined> {
    const versions = parseWireVersions(wire, Number.MAX_SAFE_INTEGER, partition);
    if (typeof versions === 'string') {
      this.plane.refusals.refuse('duplicate-versions', source, versions);
      return { code: ErrorCode.CLUSTER_ERROR, message: `cluster: merge source ${source} sent a malformed record version (${versions})` };
    }
    try {
      for (const version of versions) await this.plane.options.store.applyRecordVersion(ns, version);
    } catch (error) {
      return toWireError(error);
    }
    if (versions.length > 0) setBit(this.plane.receivedSinceSnapshot, partition, true);
    return undefined;
  }

  /** A merge source answers its acting master's duplicate read with its local copy. */
  async onDuplicateRead(from: string, message: WireMessage): Promise<void> {
    const reply: WireMessage = { type: 'duplicate-versions', id: message.id, ok: false };
    const { ns, partition, digest } = message;
    if (message.clusterKey !== this.plane.view.clusterKey) {
      reply.reason = 'cluster view changed';
      this.plane.options.send(from, reply);
      return;
    }
    const problem = !isPartition(partition)
      ? 'no valid partition'
      : !this.plane.knowsNamespace(ns)
        ? 'an unknown namespace'
        : digest !== undefined && (!isDigest(digest) || partitionOf(digest) !== partition)
          ? 'a digest that is not of that partition'
          : this.plane.plans !== undefined && this.plane.plans[partition].actingMaster !== from
            ? 'a partition the sender is not the acting master of'
            : undefined;
    if (problem !== undefined) {
      this.plane.refusals.refuse('duplicate-read', from, problem);
      reply.reason = problem;
      this.plane.options.send(from, reply);
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
      this.plane.options.send(from, reply);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      this.plane.options.send(from, { type: 'duplicate-versions', id: message.id, ok: false, tooLarge: true });
    }
  }

  private async recordVersions(ns: string, digest: Buffer): Promise<RecordVersion[]> {
    const version = await this.plane.options.store.readRecordVersion(ns, digest);
    return version === undefined ? [] : [version];
  }

  private async partitionVersions(ns: string, partition: number): Promise<RecordVersion[]> {
    const versions: RecordVersion[] = [];
    for await (const version of this.plane.options.store.iteratePartition(ns, partition)) versions.push(version);
    return versions;
  }
}
