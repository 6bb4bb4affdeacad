/**
 * The LocalStore the cluster runs on when XDR can be in use (docs/xdr.md, "Hooks"): the Db's
 * own store, plus two things. Every record version a client write leaves on this node as
 * master goes to the observer (the shippers queue it); and a shipped version from another
 * cluster (an "xdr-apply" operation, routed to its partition's master like any write) is
 * applied by the namespace's conflict rule and returned as a write, so the data plane
 * replicates it to the partition's other owners.
 */
import type { ClusterRequest, ClusterTruncateCut, LocalResult, LocalStore, RecordVersion, WireError } from '../cluster/local-store';
import { parseWireVersions, versionsToWire } from '../cluster/peer-checks';
import { HybridClock } from '../clock';
import { ErrorCode, ShoalError, invalidArgument } from '../errors';
import { nextGeneration } from '../namespace/semantics';
import { XDR_RECENT_REMOVALS_MAX } from './constants';
import { cutHeld } from './truncates';

/** What an xdr-apply resolves to on the destination's master. */
export type ApplyOutcome = 'applied' | 'stale' | 'conflict-applied' | 'conflict-stale';

/** Writes a store executed, with the cluster they were shipped from (undefined: a client's write here). */
export type WriteObserver = (writes: LocalResult['writes'], shippedFrom: string | undefined) => void;

interface XdrApplyOperation {
  xdr: 'apply';
  /** The cluster that shipped it (its `cluster.clusterName`). */
  source: string;
  /** One version, as versionsToWire lists it. */
  version: unknown[];
}

/** The operation that applies one shipped version on its partition's master. */
export function xdrApplyOperation(source: string, version: RecordVersion): XdrApplyOperation {
  return { xdr: 'apply', source, version: versionsToWire([version]) };
}

function isXdrApply(operation: unknown): operation is XdrApplyOperation {
  return operation !== null && typeof operation === 'object' && (operation as { xdr?: unknown }).xdr === 'apply';
}

/**
 * How a restore (docs/backup.md) treats a record the cluster already holds: 'newer' keeps
 * whichever wins by the namespace's conflict rule (the file's generation and last-update time
 * travel with it; asrestore's default generation check); 'replace' makes the file's copy the
 * record's next version; 'skipExisting' leaves a record that exists as it is.
 */
export type RestorePolicy = 'newer' | 'replace' | 'skipExisting';
export const RESTORE_POLICIES: readonly RestorePolicy[] = ['newer', 'replace', 'skipExisting'];

/** What a restore operation resolves to on the master. */
export type RestoreOutcome = 'restored' | 'skipped' | 'expired';

interface RestoreOperation {
  xdr: 'restore';
  policy: RestorePolicy;
  version: unknown[];
}

/** The operation that restores one version from a backup file on its partition's master. */
export function restoreOperation(policy: RestorePolicy, version: RecordVersion): RestoreOperation {
  return { xdr: 'restore', policy, version: versionsToWire([version]) };
}

function isRestore(operation: unknown): operation is RestoreOperation {
  return operation !== null && typeof operation === 'object' && (operation as { xdr?: unknown }).xdr === 'restore';
}

export class XdrStore implements LocalStore {
  /** Set by the Xdr once it exists; writes before that (none: it is set before the Db serves calls) are not observed. */
  observer: WriteObserver | undefined;
  /**
   * Called for every version this node applies from a peer (replication, migration, duplicate
   * resolution): a removal goes to the journal (for a takeover), and a version merged into the
   * partition's master (a node returning with records the others lack) ships like a write.
   */
  peerVersion: ((ns: string, version: RecordVersion) => void) | undefined;
  /** Called for every truncate cut this node applies that it did not hold yet (the shippers queue it). */
  truncateObserver: ((cut: ClusterTruncateCut) => void) | undefined;
  /** Whether a write of the record made here has not been shipped to the cluster named yet. */
  unshipped: ((clusterName: string, ns: string, digest: Buffer) => boolean) | undefined;
  readonly executeLocalBatch: LocalStore['executeLocalBatch'];
  /** Removals made here as master or applied from other clusters, newest last, at most XDR_RECENT_REMOVALS_MAX: "ns\0digest" → the latest removal's time and generation. */
  private readonly recentRemovals = new Map<string, RemovalStamp>();
  readonly truncateCuts: LocalStore['truncateCuts'];
  readonly applyTruncate: LocalStore['applyTruncate'];
  readonly applyRecordVersions: LocalStore['applyRecordVersions'];

  /**
   * `clock` is the hybrid logical clock the Db's namespaces stamp writes with (lib/clock.ts):
   * every version this node receives (shipped or from a peer) advances it, and removals are
   * stamped by it, so a write made here after a version arrived is stamped later than it.
   */
  constructor(private readonly inner: LocalStore, readonly clock: HybridClock = new HybridClock()) {
    this.executeLocalBatch = inner.executeLocalBatch === undefined ? undefined : (ns, digests, operations) => this.executeBatch(ns, digests, operations);
    this.truncateCuts = inner.truncateCuts?.bind(inner);
    this.applyTruncate = inner.applyTruncate === undefined ? undefined : (cut) => this.truncate(cut);
    this.applyRecordVersions = inner.applyRecordVersions === undefined ? undefined : (ns, versions) => this.applyVersions(ns, versions);
  }

  namespaceNames(): string[] {
    return this.inner.namespaceNames();
  }

  async executeLocal(request: ClusterRequest): Promise<LocalResult> {
    if (request.kind === 'record' && isXdrApply(request.operation)) return this.applyShipped(request.ns, Buffer.from(request.digest), request.operation);
    if (request.kind === 'record' && isRestore(request.operation)) return this.applyRestore(request.ns, Buffer.from(request.digest), request.operation);
    if (request.kind === 'record') this.followRemoval(request.ns, request.digest);
    const result = await this.inner.executeLocal(request);
    if (result.writes.length > 0) {
      this.stamp(result.writes);
      this.observer?.(result.writes, undefined);
    }
    return result;
  }

  private async executeBatch(ns: string, digests: Buffer[], operations: unknown[]): Promise<(LocalResult | { error: WireError })[]> {
    if (operations.some((operation) => isXdrApply(operation) || isRestore(operation))) {
      return Promise.all(
        operations.map((operation, i) => {
          if (isXdrApply(operation)) return this.applyShipped(ns, digests[i]!, operation).catch((error: unknown) => ({ error: wireError(error) }));
          if (isRestore(operation)) return this.applyRestore(ns, digests[i]!, operation).catch((error: unknown) => ({ error: wireError(error) }));
          return { error: wireError(invalidArgument('a batch mixes shipped or restored versions and other operations')) };
        }),
      );
    }
    for (const digest of digests) this.followRemoval(ns, digest);
    const results = await this.inner.executeLocalBatch!(ns, digests, operations);
    const writes: LocalResult['writes'] = [];
    for (const result of results) if ('writes' in result) writes.push(...result.writes);
    if (writes.length > 0) {
      this.stamp(writes);
      this.observer?.(writes, undefined);
    }
    return results;
  }

  /**
   * Applies a shipped version by the namespace's conflict rule. It is a conflict when this
   * cluster holds a write of the record that has not reached the sender yet (`unshipped`):
   * neither write saw the other. Of two concurrent writes at least one side finds the other's
   * version arriving while its own is unshipped, so every conflict is counted at least once
   * (docs/xdr.md, "Active-active").
   * @throws ShoalError INVALID_ARGUMENT for a malformed version or one of another record.
   */
  private async applyShipped(ns: string, digest: Buffer, operation: XdrApplyOperation): Promise<LocalResult> {
    if (typeof operation.source !== 'string' || operation.source.length === 0 || operation.source.length > 64) throw invalidArgument('malformed xdr-apply: no source cluster name');
    const versions = parseWireVersions(operation.version, 1);
    if (typeof versions === 'string') throw invalidArgument(`malformed xdr-apply: ${versions}`);
    const version = versions[0];
    if (version === undefined || !version.digest.equals(digest)) throw invalidArgument("malformed xdr-apply: the version is not the request's record");
    this.clock.observe(version.lastUpdateMs);
    const conflict = this.unshipped?.(operation.source, ns, digest) === true;
    // A namespace keeps no tombstones: an older version arriving after a shipped removal (a
    // batch retried after a timeout while the first send was still being applied) would bring
    // the record back. Recent shipped removals are remembered for that.
    const removedKey = `${ns}\0${digest.toString('latin1')}`;
    const removal = this.recentRemovals.get(removedKey);
    // A removal arriving for a record removed as late or later here changes nothing: stale, so
    // it goes no further (in a ring of three a removal applied to an absent record would
    // otherwise be forwarded round for ever: found by the xdr simulator scenario).
    if (removal !== undefined && !laterThan(version, removal)) return { value: conflict ? 'conflict-stale' : 'stale', writes: [] };
    const applied = (await this.inner.applyRecordVersion(ns, version)) === 'applied';
    if (applied && version.tombstone) this.rememberRemoval(removedKey, version);
    const outcome: ApplyOutcome = conflict ? (applied ? 'conflict-applied' : 'conflict-stale') : applied ? 'applied' : 'stale';
    if (!applied) return { value: outcome, writes: [] };
    const writes = [{ ns, version }];
    this.observer?.(writes, operation.source);
    return { value: outcome, writes };
  }

  /**
   * Restores one version from a backup file by `policy` (RestorePolicy); a restored version
   * is replicated and shipped like a client's write. An expired version is not restored.
   * @throws ShoalError INVALID_ARGUMENT for a malformed operation or a version of another record.
   */
  private async applyRestore(ns: string, digest: Buffer, operation: RestoreOperation): Promise<LocalResult> {
    if (!RESTORE_POLICIES.includes(operation.policy)) throw invalidArgument(`malformed restore: policy ${JSON.stringify(operation.policy)}`);
    const versions = parseWireVersions(operation.version, 1);
    if (typeof versions === 'string') throw invalidArgument(`malformed restore: ${versions}`);
    let version = versions[0];
    if (version === undefined || !version.digest.equals(digest) || version.tombstone) throw invalidArgument("malformed restore: the version is not the request's record, or a removal");
    if (version.voidTime !== 0 && version.voidTime <= Math.floor(this.clock.nowMs() / 1000)) return { value: 'expired' satisfies RestoreOutcome, writes: [] };
    if (operation.policy !== 'newer') {
      const current = await this.inner.readRecordVersion(ns, digest);
      const exists = current !== undefined && !current.tombstone;
      if (exists && operation.policy === 'skipExisting') return { value: 'skipped' satisfies RestoreOutcome, writes: [] };
      // 'replace': the file's copy becomes the record's next version, so it wins by either rule.
      if (exists) version = { ...version, gen: nextGeneration(current.gen), lastUpdateMs: Math.max(this.clock.nowMs(), current.lastUpdateMs + 1) };
      else if (operation.policy === 'replace') version = { ...version, lastUpdateMs: Math.max(version.lastUpdateMs, this.clock.nowMs()) };
    }
    const applied = (await this.inner.applyRecordVersion(ns, version)) === 'applied';
    if (!applied) return { value: 'skipped' satisfies RestoreOutcome, writes: [] };
    const writes = [{ ns, version }];
    this.observer?.(writes, undefined);
    return { value: 'restored' satisfies RestoreOutcome, writes };
  }

  /**
   * After a client's write: the clock is at least every time it stamped (a write stamped
   * `stored + 1`, past the clock, is followed by later ones). A removal leaves no record to
   * stamp: its tombstone (what replicas and destinations apply) was stamped by the wall clock
   * (lib/db-cluster.ts); it takes the hybrid clock's time when that is later, as a write would
   * (docs/xdr.md, "Hybrid logical clock"), and is remembered (followRemoval).
   */
  private stamp(writes: LocalResult['writes']): void {
    for (const write of writes) {
      if (write.version.tombstone) {
        const nowMs = this.clock.nowMs();
        if (nowMs > write.version.lastUpdateMs) write.version.lastUpdateMs = nowMs;
        // Remembered as a shipped removal is, so that an older version shipped from another
        // cluster does not bring the record back here (the namespace keeps no tombstone).
        this.rememberRemoval(`${write.ns}\0${write.version.digest.toString('latin1')}`, write.version);
      }
      this.clock.advanceTo(write.version.lastUpdateMs);
    }
  }

  /**
   * Before a client's request on a record removed lately (here or shipped here): the clock
   * passes the removal's time, so a record created again after it is stamped later than the
   * removal's tombstone, which would otherwise win over it where it arrives late (found by the
   * xdr simulator scenario: a create in the removal's millisecond lost to it).
   */
  private followRemoval(ns: string, digest: Uint8Array): void {
    if (this.recentRemovals.size === 0) return;
    const removal = this.recentRemovals.get(`${ns}\0${Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString('latin1')}`);
    if (removal !== undefined) this.clock.observe(removal.lastUpdateMs);
  }

  /** Keeps the latest removal time of a record (an older removal arriving late must not lower it: found by the simulator). */
  private rememberRemoval(key: string, version: RemovalStamp): void {
    const known = this.recentRemovals.get(key);
    this.recentRemovals.delete(key);
    this.recentRemovals.set(key, known !== undefined && !laterThan(version, known) ? known : { lastUpdateMs: version.lastUpdateMs, gen: version.gen });
    if (this.recentRemovals.size > XDR_RECENT_REMOVALS_MAX) this.recentRemovals.delete(this.recentRemovals.keys().next().value!);
  }

  /**
   * Applies a truncate cut; a cut this node did not hold goes to the observer (shipped), and
   * the clock passes it, so every write acknowledged after it is stamped at or after the cut.
   */
  private async truncate(cut: ClusterTruncateCut): Promise<number> {
    const held = cutHeld(this.inner.truncateCuts?.() ?? [], cut);
    const removed = await this.inner.applyTruncate!(cut);
    this.clock.advanceTo(cut.beforeMs);
    if (!held) this.truncateObserver?.(cut);
    return removed;
  }

  readRecordVersion(ns: string, digest: Buffer): Promise<RecordVersion | undefined> {
    return this.inner.readRecordVersion(ns, digest);
  }

  async applyRecordVersion(ns: string, version: RecordVersion): Promise<'applied' | 'stale'> {
    this.clock.observe(version.lastUpdateMs);
    const outcome = await this.inner.applyRecordVersion(ns, version);
    if (outcome === 'applied') this.peerVersion?.(ns, version);
    return outcome;
  }

  private async applyVersions(ns: string, versions: readonly RecordVersion[]): Promise<('applied' | 'stale')[]> {
    for (const version of versions) this.clock.observe(version.lastUpdateMs);
    const outcomes = await this.inner.applyRecordVersions!(ns, versions);
    outcomes.forEach((outcome, i) => outcome === 'applied' && this.peerVersion?.(ns, versions[i]!));
    return outcomes;
  }

  iteratePartition(ns: string, partitionId: number): AsyncIterable<RecordVersion> {
    return this.inner.iteratePartition(ns, partitionId);
  }

  dropPartition(ns: string, partitionId: number): Promise<number> {
    return this.inner.dropPartition(ns, partitionId);
  }

  partitionCounts(ns: string): ArrayLike<number> {
    return this.inner.partitionCounts(ns);
  }
}

/** A remembered removal: its time and generation. */
interface RemovalStamp {
  lastUpdateMs: number;
  gen: number;
}

/**
 * Whether a version comes after a removal by the 'lastUpdateTime' order (time, then
 * generation; a full tie goes to the removal, as lib/namespace/conflict.ts tieWins does).
 * Comparing times alone refused a version of the removal's millisecond with a higher
 * generation, which the other clusters kept (found by the xdr simulator scenario, 3 clusters).
 */
function laterThan(version: RemovalStamp, removal: RemovalStamp): boolean {
  return version.lastUpdateMs !== removal.lastUpdateMs ? version.lastUpdateMs > removal.lastUpdateMs : version.gen > removal.gen;
}

function wireError(error: unknown): WireError {
  if (error instanceof ShoalError) return { code: error.code, message: error.message };
  return { code: ErrorCode.INVALID_ARGUMENT, message: (error as Error)?.message ?? String(error) };
}
