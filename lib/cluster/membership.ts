/**
 * Membership agreement (docs/cluster.md, "Membership rounds").
 *
 * The principal (highest node id of the clique this node computes) proposes a succession list
 * and a fresh cluster key once the clique has been stable for MEMBERSHIP_STABLE_TICKS ticks and
 * differs from the current view. A Paxos-style round whose quorum is every proposed member
 * (unanimity) makes all members adopt the proposal, or none:
 *
 *   prepare(ballot, proposal) -> promise | nack     acceptor checks ballot and its own clique
 *   accept(ballot, proposal)  -> accepted | nack    acceptor records the accepted proposal
 *   commit(ballot, proposal)  -> commit-ack         members adopt; re-sent until acknowledged
 *
 * A member that accepted but missed the commit adopts the accepted proposal as soon as a
 * heartbeat from another member carries the proposal's cluster key (the commit is then known
 * to have happened). A node whose view differs from its clique for a whole heartbeat timeout
 * with nobody completing a round forms a cluster of its own, so it keeps serving (AP).
 */
import { computeClique, compareNodeIdsDescending, sameMembers } from './clique';
import {
  MAX_CLUSTER_KEY_LENGTH,
  MAX_CLUSTER_NODES,
  MEMBERSHIP_COMMIT_RETRY_TICKS,
  MEMBERSHIP_KEY_MISMATCH_TICKS,
  MEMBERSHIP_ORPHAN_TIMEOUTS,
  MEMBERSHIP_ROUND_TIMEOUT_INTERVALS,
  MEMBERSHIP_STABLE_TICKS,
} from './constants';
import { isNodeId } from './network';
import type { Heartbeat } from './heartbeat';
import type { WireMessage } from './network';
import type { Runtime } from './seams';

/** An agreed cluster view. */
export interface ClusterView {
  clusterKey: string;
  /** Members, highest id first; the first is the principal. */
  succession: string[];
  /** Members quiesced in this view: they sort last in the partition map. */
  quiesced: string[];
  /** Ballot number of the round that made this view: increases with every agreed view. */
  epoch: number;
}

/** A Paxos ballot: ordered by number, then proposer id. */
export interface Ballot {
  n: number;
  id: string;
}

export function compareBallots(a: Ballot, b: Ballot): number {
  if (a.n !== b.n) return a.n - b.n;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export interface MembershipOptions {
  selfId: string;
  runtime: Runtime;
  heartbeat: Heartbeat;
  intervalMs: number;
  timeout: number;
  send(nodeId: string, message: WireMessage): void;
  /** Whether this node is currently quiesced (asked to hand off its partitions). */
  isQuiesced(): boolean;
  /** Called after a new view is adopted. */
  onViewChange(view: ClusterView, previous: ClusterView): void;
}

interface Round {
  ballot: Ballot;
  proposal: ClusterView;
  phase: 'prepare' | 'accept';
  responded: Set<string>;
  startedMs: number;
}

interface PendingCommit {
  ballot: Ballot;
  proposal: ClusterView;
  unacknowledged: Set<string>;
  ticksLeft: number;
}

export class Membership {
  view: ClusterView;
  private promised: Ballot = { n: 0, id: '' };
  private accepted: { ballot: Ballot; proposal: ClusterView } | undefined;
  private highestBallotN = 0;
  private round: Round | undefined;
  private pendingCommit: PendingCommit | undefined;
  private lastCliqueKey = '';
  private stableTicks = 0;
  private reclusterRequested = false;
  /** When the pending recluster was requested: the round waits for fresh heartbeats. */
  private reclusterRequestedMs = 0;
  /** When this node's view first differed from its clique (orphan detection). */
  private divergedSinceMs: number | undefined;
  private divergedClique = '';
  private discoveringSinceMs: number | undefined;
  /** Consecutive ticks on which a member's fresh heartbeat advertised a key other than ours. */
  private readonly keyMismatchTicks = new Map<string, number>();
  /** Members whose heartbeat arrived since the last tick (only those are counted). */
  private readonly heardSinceTick = new Set<string>();
  readonly counters = { roundsStarted: 0, roundsCommitted: 0, roundsFailed: 0, viewsAdopted: 0 };

  constructor(private readonly options: MembershipOptions) {
    this.view = { clusterKey: this.newClusterKey(), succession: [options.selfId], quiesced: [], epoch: 0 };
  }

  get principal(): string {
    return this.view.succession[0];
  }

  /** Asks for a new round even if membership did not change (recluster, quiesce). */
  requestRecluster(): void {
    this.markRecluster();
    const principal = this.principal;
    // The request carries this node's quiesce flag: the principal must not propose from a
    // heartbeat sent before quiesce() or quiesceUndo().
    if (principal !== this.options.selfId) this.options.send(principal, { type: 'recluster', quiesced: this.options.isQuiesced() });
  }

  /** The clique this node computes from its heartbeat view. */
  currentClique(): string[] {
    const heartbeat = this.options.heartbeat;
    return computeClique(this.options.selfId, heartbeat.alivePeers(), (id) => heartbeat.peer(id)?.adjacency, new Set(this.view.succession));
  }

  /**
   * Whether discovery is still under way: a peer we hear reports hearing a node we do not
   * hear yet (and that node is not known dead). Proposals wait for it, up to one timeout.
   */
  private discovering(now: number): boolean {
    const heartbeat = this.options.heartbeat;
    const alive = heartbeat.alivePeers();
    let pending = false;
    for (const id of alive) {
      for (const other of heartbeat.peer(id)?.adjacency ?? []) {
        if (other === this.options.selfId || alive.has(other)) continue;
        const known = heartbeat.peer(other);
        if (known === undefined || known.alive || now - known.lastHeardMs > this.options.intervalMs * this.options.timeout) pending = true;
      }
    }
    if (!pending) {
      this.discoveringSinceMs = undefined;
      return false;
    }
    this.discoveringSinceMs ??= now;
    return now - this.discoveringSinceMs < this.options.intervalMs * this.options.timeout;
  }

  /** Runs once per heartbeat tick. */
  onTick(): void {
    const now = this.options.runtime.clock.nowMs();
    const clique = this.currentClique();
    const cliqueKey = clique.join(',');
    if (cliqueKey === this.lastCliqueKey) this.stableTicks++;
    else {
      this.lastCliqueKey = cliqueKey;
      this.stableTicks = 1;
    }
    this.retryCommit();
    this.countKeyMismatches(clique);
    if (this.round !== undefined) {
      if (now - this.round.startedMs > this.options.intervalMs * MEMBERSHIP_ROUND_TIMEOUT_INTERVALS) {
        this.abandonRound('timed out');
      } else {
        return;
      }
    }
    this.watchForOrphaning(clique, now);
    if (clique[0] !== this.options.selfId || this.stableTicks < MEMBERSHIP_STABLE_TICKS) return;
    if (this.needsRound(clique) && !this.discovering(now)) this.startRound(clique);
  }

  /** Handles a membership message from an authenticated peer (or from this node itself). */
  receive(from: string, message: WireMessage): void {
    switch (message.type) {
      case 'prepare':
        return this.onPrepare(from, message);
      case 'promise':
      case 'accepted':
        return this.onVote(from, message);
      case 'nack':
        return this.onNack(from, message);
      case 'accept':
        return this.onAccept(from, message);
      case 'commit':
        return this.onCommit(from, message);
      case 'commit-ack':
        return this.onCommitAck(from, message);
      case 'recluster': {
        const peer = this.options.heartbeat.peer(from);
        if (peer !== undefined && typeof message.quiesced === 'boolean') peer.quiesced = message.quiesced;
        this.markRecluster();
        return;
      }
    }
  }

  /** Learns commits from heartbeats: a member advertising our accepted proposal's key committed it. */
  onHeartbeatKey(from: string, clusterKey: string): void {
    this.heardSinceTick.add(from);
    const accepted = this.accepted;
    if (accepted === undefined || clusterKey === this.view.clusterKey) return;
    // Only a proposal newer than the current view: never re-adopt a view this node left.
    if (accepted.proposal.clusterKey === clusterKey && accepted.proposal.succession.includes(from) && accepted.proposal.epoch > this.view.epoch) {
      this.adopt(accepted.proposal);
    }
  }

  /**
   * Operators quiesce several nodes, then recluster once: the round waits two heartbeat
   * intervals so every quiesce flag set before the request has reached the principal.
   */
  private markRecluster(): void {
    if (!this.reclusterRequested) this.reclusterRequestedMs = this.options.runtime.clock.nowMs();
    this.reclusterRequested = true;
  }

  private needsRound(clique: string[]): boolean {
    if (this.reclusterRequested && this.options.runtime.clock.nowMs() - this.reclusterRequestedMs >= 2 * this.options.intervalMs) return true;
    if (!sameMembers(clique, this.view.succession)) return true;
    if (this.pendingCommit !== undefined) return false;
    // A member that keeps advertising another key missed a commit or restarted: re-form.
    return clique.some((id) => (this.keyMismatchTicks.get(id) ?? 0) >= MEMBERSHIP_KEY_MISMATCH_TICKS);
  }

  private countKeyMismatches(clique: string[]): void {
    const heartbeat = this.options.heartbeat;
    for (const id of this.keyMismatchTicks.keys()) if (!clique.includes(id)) this.keyMismatchTicks.delete(id);
    for (const id of clique) {
      // Only a fresh heartbeat is evidence. A member silent since its last one (stalled, or its
      // heartbeat late) has said nothing new: counting that old heartbeat again on every tick
      // re-formed a cluster whose member had adopted the view and acknowledged the commit.
      if (id === this.options.selfId || !this.heardSinceTick.has(id)) continue;
      const mismatch = heartbeat.peer(id)?.clusterKey !== this.view.clusterKey;
      this.keyMismatchTicks.set(id, mismatch ? (this.keyMismatchTicks.get(id) ?? 0) + 1 : 0);
    }
    this.heardSinceTick.clear();
  }

  /**
   * Orphan fallback, deliberately slow: only the same clique disagreeing with the view for
   * MEMBERSHIP_ORPHAN_TIMEOUTS heartbeat timeouts (a principal that never proposes it) makes
   * this node leave its view. Leaving a view is disruptive (its partitions move), so transient
   * disagreement while a heal is being discovered must not trigger it.
   */
  private watchForOrphaning(clique: string[], now: number): void {
    const inAgreement = sameMembers(clique, this.view.succession);
    const cliqueKey = clique.join(',');
    if (inAgreement || this.view.succession.length === 1 || cliqueKey !== this.divergedClique) {
      this.divergedSinceMs = inAgreement || this.view.succession.length === 1 ? undefined : now;
      this.divergedClique = cliqueKey;
      return;
    }
    this.divergedSinceMs ??= now;
    const orphanAfterMs = this.options.intervalMs * this.options.timeout * MEMBERSHIP_ORPHAN_TIMEOUTS;
    if (clique[0] !== this.options.selfId && now - this.divergedSinceMs > orphanAfterMs) {
      this.options.runtime.logger.info('cluster: no agreed view includes this node; forming a cluster of its own');
      this.divergedSinceMs = undefined;
      // Same epoch: a cluster that evicted this node has moved to a higher one.
      this.adopt({ clusterKey: this.newClusterKey(), succession: [this.options.selfId], quiesced: [], epoch: this.view.epoch });
    }
  }

  private startRound(clique: string[]): void {
    const selfId = this.options.selfId;
    this.highestBallotN = Math.max(this.highestBallotN, this.promised.n) + 1;
    const ballot: Ballot = { n: this.highestBallotN, id: selfId };
    const heartbeat = this.options.heartbeat;
    const quiesced = clique.filter((id) => (id === selfId ? this.options.isQuiesced() : heartbeat.peer(id)?.quiesced === true));
    const proposal: ClusterView = { clusterKey: this.newClusterKey(), succession: clique, quiesced, epoch: ballot.n };
    this.round = { ballot, proposal, phase: 'prepare', responded: new Set(), startedMs: this.options.runtime.clock.nowMs() };
    this.reclusterRequested = false;
    this.counters.roundsStarted++;
    this.options.runtime.logger.debug('cluster: proposing view', { ballot, succession: clique, quiesced });
    for (const member of clique) this.options.send(member, { type: 'prepare', ballot, proposal });
  }

  private abandonRound(reason: string): void {
    if (this.round === undefined) return;
    this.options.runtime.logger.debug(`cluster: membership round abandoned: ${reason}`);
    this.round = undefined;
    this.counters.roundsFailed++;
  }

  private onPrepare(from: string, message: WireMessage): void {
    const ballot = parseBallot(message.ballot);
    const proposal = parseView(message.proposal);
    if (ballot === undefined || proposal === undefined || ballot.id !== from) return;
    this.highestBallotN = Math.max(this.highestBallotN, ballot.n);
    if (compareBallots(ballot, this.promised) <= 0) {
      this.options.send(from, { type: 'nack', ballot, promised: this.promised, reason: 'ballot' });
      return;
    }
    const clique = this.currentClique();
    if (!proposal.succession.includes(this.options.selfId) || !sameMembers(clique, proposal.succession) || proposal.succession[0] !== from) {
      this.options.send(from, { type: 'nack', ballot, promised: this.promised, reason: 'view' });
      return;
    }
    this.promised = ballot;
    this.options.send(from, { type: 'promise', ballot });
  }

  private onAccept(from: string, message: WireMessage): void {
    const ballot = parseBallot(message.ballot);
    const proposal = parseView(message.proposal);
    if (ballot === undefined || proposal === undefined || ballot.id !== from) return;
    if (compareBallots(ballot, this.promised) < 0) {
      this.options.send(from, { type: 'nack', ballot, promised: this.promised, reason: 'ballot' });
      return;
    }
    // The principal asks for acceptance only after every member promised this very ballot, to
    // a proposal it leads and that includes us: anything else is not a round we take part in
    // (an accept out of nowhere would otherwise be adopted at the matching commit).
    if (compareBallots(ballot, this.promised) !== 0 || proposal.succession[0] !== from || !proposal.succession.includes(this.options.selfId)) return;
    this.promised = ballot;
    this.accepted = { ballot, proposal };
    this.options.send(from, { type: 'accepted', ballot });
  }

  private onVote(from: string, message: WireMessage): void {
    const round = this.round;
    const ballot = parseBallot(message.ballot);
    if (round === undefined || ballot === undefined || compareBallots(ballot, round.ballot) !== 0) return;
    const expected = round.phase === 'prepare' ? 'promise' : 'accepted';
    if (message.type !== expected || !round.proposal.succession.includes(from)) return;
    round.responded.add(from);
    if (round.responded.size < round.proposal.succession.length) return;
    if (round.phase === 'prepare') {
      round.phase = 'accept';
      round.responded = new Set();
      for (const member of round.proposal.succession) {
        this.options.send(member, { type: 'accept', ballot: round.ballot, proposal: round.proposal });
      }
      return;
    }
    this.round = undefined;
    this.counters.roundsCommitted++;
    const others = round.proposal.succession.filter((id) => id !== this.options.selfId);
    this.pendingCommit = { ballot: round.ballot, proposal: round.proposal, unacknowledged: new Set(others), ticksLeft: MEMBERSHIP_COMMIT_RETRY_TICKS };
    this.adopt(round.proposal);
    for (const member of others) this.options.send(member, { type: 'commit', ballot: round.ballot, proposal: round.proposal });
  }

  private onNack(from: string, message: WireMessage): void {
    const round = this.round;
    const ballot = parseBallot(message.ballot);
    const promised = parseBallot(message.promised);
    if (promised !== undefined) this.highestBallotN = Math.max(this.highestBallotN, promised.n);
    if (round === undefined || ballot === undefined || compareBallots(ballot, round.ballot) !== 0) return;
    this.abandonRound(`${from} refused (${String(message.reason)})`);
  }

  private onCommit(from: string, message: WireMessage): void {
    const ballot = parseBallot(message.ballot);
    const proposal = parseView(message.proposal);
    if (ballot === undefined || proposal === undefined || ballot.id !== from) return;
    const accepted = this.accepted;
    const known = proposal.clusterKey === this.view.clusterKey;
    if (!known && accepted !== undefined && compareBallots(accepted.ballot, ballot) === 0) this.adopt(accepted.proposal);
    if (known || (accepted !== undefined && compareBallots(accepted.ballot, ballot) === 0)) {
      this.options.send(from, { type: 'commit-ack', ballot });
    }
  }

  private onCommitAck(from: string, message: WireMessage): void {
    const ballot = parseBallot(message.ballot);
    const pending = this.pendingCommit;
    if (pending === undefined || ballot === undefined || compareBallots(ballot, pending.ballot) !== 0) return;
    pending.unacknowledged.delete(from);
    if (pending.unacknowledged.size === 0) this.pendingCommit = undefined;
  }

  private retryCommit(): void {
    const pending = this.pendingCommit;
    if (pending === undefined) return;
    if (pending.ticksLeft-- <= 0 || pending.proposal.clusterKey !== this.view.clusterKey) {
      this.pendingCommit = undefined;
      return;
    }
    for (const member of pending.unacknowledged) {
      this.options.send(member, { type: 'commit', ballot: pending.ballot, proposal: pending.proposal });
    }
  }

  private adopt(view: ClusterView): void {
    if (view.clusterKey === this.view.clusterKey) return;
    const previous = this.view;
    this.view = { clusterKey: view.clusterKey, succession: [...view.succession], quiesced: [...view.quiesced], epoch: view.epoch };
    // An adopted proposal is done with: it must never be adopted again (after this node
    // leaves the view, a late commit or a member's heartbeat would otherwise bring it back).
    if (this.accepted?.proposal.clusterKey === view.clusterKey) this.accepted = undefined;
    this.counters.viewsAdopted++;
    this.divergedSinceMs = undefined;
    this.keyMismatchTicks.clear();
    this.options.runtime.logger.info('cluster: adopted view', {
      clusterKey: view.clusterKey,
      succession: view.succession,
      quiesced: view.quiesced,
    });
    this.options.onViewChange(this.view, previous);
  }

  private newClusterKey(): string {
    const random = this.options.runtime.random;
    return random.nextUint32().toString(16).padStart(8, '0') + random.nextUint32().toString(16).padStart(8, '0');
  }
}

/** A ballot from the wire: a non-negative safe-integer number and a valid proposer id. */
function parseBallot(value: unknown): Ballot | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const { n, id } = value as { n?: unknown; id?: unknown };
  if (!Number.isSafeInteger(n) || (n as number) < 0 || !isNodeId(id)) return undefined;
  return { n: n as number, id };
}

/**
 * A proposed view from the wire: a cluster key of at most MAX_CLUSTER_KEY_LENGTH characters,
 * 1..MAX_CLUSTER_NODES distinct valid node ids, quiesced members among them, and a
 * non-negative epoch. Anything else is ignored (the round then times out).
 */
function parseView(value: unknown): ClusterView | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const { clusterKey, succession, quiesced, epoch } = value as Record<string, unknown>;
  if (typeof clusterKey !== 'string' || clusterKey.length === 0 || clusterKey.length > MAX_CLUSTER_KEY_LENGTH) return undefined;
  if (!Array.isArray(succession) || !Array.isArray(quiesced) || !Number.isSafeInteger(epoch) || (epoch as number) < 0) return undefined;
  if (succession.length === 0 || succession.length > MAX_CLUSTER_NODES || !succession.every(isNodeId) || !quiesced.every(isNodeId)) return undefined;
  const members = new Set(succession as string[]);
  if (members.size !== succession.length || new Set(quiesced).size !== quiesced.length || !quiesced.every((id) => members.has(id as string))) return undefined;
  const ordered = [...(succession as string[])].sort(compareNodeIdsDescending);
  return { clusterKey, succession: ordered, quiesced: quiesced as string[], epoch: epoch as number };
}
