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

/** The key of an operation's checked version (XdrApplyOperation). */
const CHECKED = Symbol('checked version');

interface XdrApplyOperation {
  xdr: 'apply';
  /** The cluster that shipped it (its `cluster.clusterName`). */
  source: string;
  /** One version, as versionsToWire lists it. */
  version: unknown[];
  /** A remembered removal applied again after migrations (Xdr.reassertRemovals): applied only over an older copy. */
  reassert?: boolean;
  /**
   * On an operation made on this node (xdrApplyOperation), the version it was made from,
   * checked already: the master skips parsing it again. A symbol key never travels (msgpack
   * encodes string keys only), so an operation forwarded from a peer is parsed and checked in full.
   */
  [CHECKED]?: RecordVersion;
}

/** The operation that applies one shipped version (checked by the caller) on its partition's master. */
export function xdrApplyOperation(source: string, version: RecordVersion, reassert = false): XdrApplyOperation {
  const operation: XdrApplyOperation = { xdr: 'apply', source, version: versionsToWire([version]), [CHECKED]: version };
  if (reassert) operation.reassert = true;
  return operation;
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
  /** Remembered removals applied again after migrations that removed a copy merged back (received.removalsReasserted). */
  reasserted = 0;
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
    if (operations.length > 0 && operations.every(isXdrApply)) {
      if (!repeatsRecord(digests) && !operations.some((operation) => operation.reassert === true)) return this.applyShippedBatch(ns, digests, operations);
      // A record twice in one batch: in order, one at a time.
      const results: (LocalResult | { error: WireError })[] = [];
      for (let i = 0; i < operations.length; i++) results.push(await this.applyShipped(ns, digests[i]!, operations[i]!).catch((error: unknown) => ({ error: wireError(error) })));
      return results;
    }
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
    if (operation.reassert === true) return this.reassertRemoval(ns, digest, operation);
    const checked = this.checkShipped(ns, digest, operation);
    if (checked.outcome !== undefined) return { value: checked.outcome, writes: [] };
    const applied = (await this.inner.applyRecordVersion(ns, checked.version)) === 'applied';
    await this.rememberRemovalOf(ns, checked.version, applied, operation.source);
    return this.shippedResult(ns, operation.source, checked.version, checked.conflict, applied);
  }

  /**
   * A batch of shipped versions (one ship message's versions of this node's partitions, each
   * record at most once), applied in one store call (applyRecordVersions): no promise per
   * version. Each item's outcome as applyShipped's; a malformed item gets its error alone.
   */
  private async applyShippedBatch(ns: string, digests: Buffer[], operations: XdrApplyOperation[]): Promise<(LocalResult | { error: WireError })[]> {
    const results: (LocalResult | { error: WireError })[] = new Array(operations.length);
    const items: { index: number; version: RecordVersion; conflict: boolean }[] = [];
    for (let i = 0; i < operations.length; i++) {
      try {
        const checked = this.checkShipped(ns, digests[i]!, operations[i]!);
        if (checked.outcome !== undefined) results[i] = { value: checked.outcome, writes: [] };
        else items.push({ index: i, version: checked.version, conflict: checked.conflict });
      } catch (error) {
        results[i] = { error: wireError(error) };
      }
    }
    if (items.length === 0) return results;
    const outcomes = await this.applyInOrder(ns, items.map((item) => item.version));
    for (let k = 0; k < items.length; k++) {
      const version = items[k]!.version;
      const outcome = outcomes[k]!;
      if (version.tombstone && !(outcome instanceof Error)) await this.rememberRemovalOf(ns, version, outcome === 'applied', operations[items[k]!.index]!.source);
    }
    const writesBySource = new Map<string, LocalResult['writes']>();
    items.forEach(({ index, version, conflict }, k) => {
      const outcome = outcomes[k]!;
      if (outcome instanceof Error) {
        results[index] = { error: wireError(outcome) };
        return;
      }
      const source = operations[index]!.source;
      const result = this.shippedResult(ns, source, version, conflict, outcome === 'applied', false);
      results[index] = result;
      if (result.writes.length === 0) return;
      let writes = writesBySource.get(source);
      if (writes === undefined) writesBySource.set(source, (writes = []));
      writes.push(result.writes[0]!);
    });
    for (const [source, writes] of writesBySource) this.observer?.(writes, source);
    return results;
  }

  /**
   * Versions applied in order in one store call; where the store refuses one (a payload that
   * does not decode) the call stops there, so each is applied again on its own: a version
   * the store then holds exactly was applied by the first call (it must still replicate).
   */
  private async applyInOrder(ns: string, versions: RecordVersion[]): Promise<('applied' | 'stale' | Error)[]> {
    if (this.inner.applyRecordVersions !== undefined) {
      try {
        return await this.inner.applyRecordVersions(ns, versions);
      } catch {
        // One by one below.
      }
    }
    const outcomes: ('applied' | 'stale' | Error)[] = new Array(versions.length);
    for (let i = 0; i < versions.length; i++) {
      const version = versions[i]!;
      try {
        let outcome = await this.inner.applyRecordVersion(ns, version);
        if (outcome === 'stale' && this.inner.applyRecordVersions !== undefined && holdsExactly(await this.inner.readRecordVersion(ns, version.digest), version)) outcome = 'applied';
        outcomes[i] = outcome;
      } catch (error) {
        outcomes[i] = error instanceof Error ? error : new Error(String(error));
      }
    }
    return outcomes;
  }

  /**
   * A shipped version checked (parsed again unless this node made the operation from a
   * checked version), the clock advanced by it, and its conflict status; `outcome` when it is
   * stale before any store call (a removal remembered as late or later).
   * @throws ShoalError INVALID_ARGUMENT for a malformed version or one of another record.
   */
  private checkShipped(ns: string, digest: Buffer, operation: XdrApplyOperation): { version: RecordVersion; conflict: boolean; outcome?: ApplyOutcome } {
    if (typeof operation.source !== 'string' || operation.source.length === 0 || operation.source.length > 64) throw invalidArgument('malformed xdr-apply: no source cluster name');
    let version = operation[CHECKED];
    if (version === undefined) {
      const versions = parseWireVersions(operation.version, 1);
      if (typeof versions === 'string') throw invalidArgument(`malformed xdr-apply: ${versions}`);
      version = versions[0];
    }
    if (version === undefined || !version.digest.equals(digest)) throw invalidArgument("malformed xdr-apply: the version is not the request's record");
    this.clock.observe(version.lastUpdateMs);
    const conflict = this.unshipped?.(operation.source, ns, digest) === true;
    // A namespace keeps no tombstones: an older version arriving after a shipped removal (a
    // batch retried after a timeout while the first send was still being applied) would bring
    // the record back. Recent removals are remembered for that. A removal arriving for a record
    // removed as late or later here changes nothing: stale, so it goes no further (in a ring of
    // three a removal applied to an absent record would otherwise be forwarded round for ever:
    // found by the xdr simulator scenario).
    if (this.recentRemovals.size > 0) {
      const removal = this.recentRemovals.get(removalKey(ns, digest));
      if (removal !== undefined && !laterThan(version, removal)) return { version, conflict, outcome: conflict ? 'conflict-stale' : 'stale' };
    }
    return { version, conflict };
  }

  /**
   * Remembers a removal this node applied, or found stale on a record it does not hold (never
   * shipped or replicated here yet, or removed here): an older version of the record arriving
   * after it (the first send of an earlier batch, still being forwarded inside this cluster
   * when the sender retried; or a version replicated to this node before it became master)
   * must not create it (a store may report a removal of an absent record stale). A removal stale against a live copy is not
   * remembered: by the 'generation' rule a later version may win over that copy and be older
   * than the removal by time.
   */
  private async rememberRemovalOf(ns: string, version: RecordVersion, applied: boolean, source?: string): Promise<void> {
    if (!version.tombstone) return;
    if (!applied) {
      const current = await this.inner.readRecordVersion(ns, version.digest);
      if (current !== undefined && !current.tombstone) return;
    }
    this.rememberRemoval(removalKey(ns, version.digest), version, source);
  }

  /**
   * A remembered removal applied again on the record's master after migrations: a node that
   * came back with an older copy of a removed record on its device merges it back (a
   * namespace keeps no tombstones); the removal takes it out again. Applied only over a copy
   * older by time than the removal (never over a record made after it, whatever the conflict
   * rule), without a conflict counted; its outcome as applyShipped's.
   * @throws ShoalError INVALID_ARGUMENT for a malformed operation or a version that is no removal.
   */
  private async reassertRemoval(ns: string, digest: Buffer, operation: XdrApplyOperation): Promise<LocalResult> {
    const checked = this.checkShipped(ns, digest, operation);
    const version = checked.version;
    if (!version.tombstone) throw invalidArgument('malformed xdr-apply: a re-asserted version is no removal');
    const current = await this.inner.readRecordVersion(ns, digest);
    if (current === undefined || current.tombstone || laterThan(current, version)) return { value: 'stale' satisfies ApplyOutcome, writes: [] };
    const applied = (await this.inner.applyRecordVersion(ns, version)) === 'applied';
    if (applied) this.reasserted++;
    await this.rememberRemovalOf(ns, version, applied, operation.source);
    return this.shippedResult(ns, operation.source, version, false, applied);
  }

  /** The removals remembered (at most XDR_RECENT_REMOVALS_MAX), as tombstones, with the cluster each was shipped from (undefined: made or replicated here). */
  rememberedRemovals(): { ns: string; version: RecordVersion; source: string | undefined }[] {
    const removals: { ns: string; version: RecordVersion; source: string | undefined }[] = [];
    for (const [key, stamp] of this.recentRemovals) {
      const at = key.indexOf('\0');
      const version: RecordVersion = { digest: Buffer.from(key.slice(at + 1), 'latin1'), gen: stamp.gen, voidTime: 0, lastUpdateMs: stamp.lastUpdateMs, setName: stamp.setName, tombstone: true, payload: undefined };
      removals.push({ ns: key.slice(0, at), version, source: stamp.source });
    }
    return removals;
  }

  /** The result of a shipped version the store applied or found stale (the observer queues an applied one for this node's own destinations). */
  private shippedResult(ns: string, source: string, version: RecordVersion, conflict: boolean, applied: boolean, observe = true): LocalResult {
    const outcome: ApplyOutcome = conflict ? (applied ? 'conflict-applied' : 'conflict-stale') : applied ? 'applied' : 'stale';
    if (!applied) return { value: outcome, writes: [] };
    const writes = [{ ns, version }];
    if (observe) this.observer?.(writes, source);
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
        this.rememberRemoval(removalKey(write.ns, write.version.digest), write.version);
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
    const removal = this.recentRemovals.get(removalKey(ns, Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength)));
    if (removal !== undefined) this.clock.observe(removal.lastUpdateMs);
  }

  /** Keeps the latest removal time of a record (an older removal arriving late must not lower it: found by the simulator). */
  private rememberRemoval(key: string, version: RecordVersion, source?: string): void {
    const known = this.recentRemovals.get(key);
    this.recentRemovals.delete(key);
    this.recentRemovals.set(key, known !== undefined && !laterThan(version, known) ? known : { lastUpdateMs: version.lastUpdateMs, gen: version.gen, setName: version.setName, source: source ?? known?.source });
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

  /** The hybrid clock's now, or a later stamp a write here took: a cut past it removes every write made here before. */
  writeClockMs(): number {
    return this.clock.latestMs();
  }

  readRecordVersion(ns: string, digest: Buffer): Promise<RecordVersion | undefined> {
    return this.inner.readRecordVersion(ns, digest);
  }

  async applyRecordVersion(ns: string, version: RecordVersion): Promise<'applied' | 'stale'> {
    this.clock.observe(version.lastUpdateMs);
    const outcome = await this.inner.applyRecordVersion(ns, version);
    if (version.tombstone) await this.rememberRemovalOf(ns, version, outcome === 'applied');
    if (outcome === 'applied') this.peerVersion?.(ns, version);
    return outcome;
  }

  private async applyVersions(ns: string, versions: readonly RecordVersion[]): Promise<('applied' | 'stale')[]> {
    for (const version of versions) this.clock.observe(version.lastUpdateMs);
    const outcomes = await this.inner.applyRecordVersions!(ns, versions);
    // A removal replicated or migrated here is remembered as a shipped one is: when this node
    // becomes the partition's master (its master died or handed it over), an older version
    // shipped late must not bring the record back here either.
    for (let i = 0; i < versions.length; i++) if (versions[i]!.tombstone) await this.rememberRemovalOf(ns, versions[i]!, outcomes[i] === 'applied');
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

/** A remembered removal: its time and generation, its set, and the cluster it was shipped from (undefined: made or replicated here). */
interface RemovalStamp {
  lastUpdateMs: number;
  gen: number;
  setName: string;
  source: string | undefined;
}

/**
 * Whether a version comes after a removal by the 'lastUpdateTime' order (time, then
 * generation; a full tie goes to the removal, as lib/namespace/conflict.ts tieWins does).
 * Comparing times alone refused a version of the removal's millisecond with a higher
 * generation, which the other clusters kept (found by the xdr simulator scenario, 3 clusters).
 */
function laterThan(version: { lastUpdateMs: number; gen: number }, removal: { lastUpdateMs: number; gen: number }): boolean {
  return version.lastUpdateMs !== removal.lastUpdateMs ? version.lastUpdateMs > removal.lastUpdateMs : version.gen > removal.gen;
}

/** The key of a record in the remembered removals. */
function removalKey(ns: string, digest: Buffer): string {
  return ns + '\0' + digest.toString('latin1');
}

/** Whether a store's copy of a record is exactly a version (a live one with its generation and time; for a removal, none). */
function holdsExactly(current: RecordVersion | undefined, version: RecordVersion): boolean {
  if (version.tombstone) return current === undefined || current.tombstone;
  return current !== undefined && !current.tombstone && current.gen === version.gen && current.lastUpdateMs === version.lastUpdateMs;
}

/**
 * Whether a batch names a record twice (a forged message: a sender ships a record once per
 * message). Such a batch is applied item by item in order, so a removal earlier in it is
 * remembered before a later version of the record is checked. Compares the digests' first
 * four bytes.
 */
function repeatsRecord(digests: readonly Buffer[]): boolean {
  if (digests.length < 2) return false;
  const seen = new Set<number>();
  for (const digest of digests) {
    const bucket = digest.length >= 4 ? digest.readUInt32LE(0) : 0;
    // The same record, or another sharing its bucket (about one batch in four million): item by item.
    if (seen.has(bucket)) return true;
    seen.add(bucket);
  }
  return false;
}

function wireError(error: unknown): WireError {
  if (error instanceof ShoalError) return { code: error.code, message: error.message };
  return { code: ErrorCode.INVALID_ARGUMENT, message: (error as Error)?.message ?? String(error) };
}
