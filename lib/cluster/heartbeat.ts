/**
 * Mesh heartbeat and failure detection (docs/cluster.md, "Heartbeat").
 *
 * Every `intervalMs` this node sends a heartbeat to every known address (seeds, and peers
 * learned from adjacency lists) carrying the list of peers it currently hears from, with their
 * addresses, so knowing one seed is enough to discover everyone. A peer not heard from for
 * `intervalMs * timeout` is dead.
 *
 * Lag guard: the tick measures how late it fired. A late tick means this node's own event loop
 * stalled; the stall is added to every peer's deadline, because heartbeats that arrived during
 * the stall have not been read yet. A stalled node therefore never evicts healthy peers.
 */
import { NAMESPACE_NAME_MAX_BYTES, SET_NAME_MAX_BYTES } from '../constants';
import {
  AUTH_FAILURE_LOG_LIMIT,
  AUTH_FAILURE_LOG_WINDOW_MS,
  FORGET_DEAD_PEER_AFTER_TIMEOUTS,
  LAG_GUARD_TOLERANCE_INTERVALS,
  MAX_CLUSTER_KEY_LENGTH,
  MAX_CLUSTER_NODES,
  MAX_HEARTBEAT_CUTS,
  MAX_MIGRATIONS_REMAINING,
} from './constants';
import type { Fabric } from './fabric';
import type { WireMessage } from './network';
import { isAddress, isNodeId } from './network';
import type { Runtime, TimerHandle } from './seams';
import { LogLimiter } from './seams';

export interface PeerState {
  nodeId: string;
  address: string;
  alive: boolean;
  lastHeardMs: number;
  /** Node ids this peer reported hearing from, in its latest heartbeat. */
  adjacency: Set<string>;
  /** The cluster key this peer reported in its latest heartbeat. */
  clusterKey: string;
  quiesced: boolean;
  /** Partitions the peer still has to migrate, from its latest heartbeat. */
  migrationsRemaining: number;
  /** What the peer advertises for its Aerospike service listener (unvalidated; lib/service/topology.ts). */
  service?: unknown;
}

export interface HeartbeatOptions {
  intervalMs: number;
  timeout: number;
  seeds: string[];
  fabric: Fabric;
  runtime: Runtime;
  /** Fields this node adds to each heartbeat (cluster key, quiesce flag, the truncates it applied). */
  localStatus(): { clusterKey: string; quiesced: boolean; migrationsRemaining: number; truncates?: unknown[]; service?: unknown };
  onPeerAlive(nodeId: string): void;
  onPeerDead(nodeId: string): void;
  /** Called for every heartbeat received, after the peer state is updated. */
  onHeartbeat(peer: PeerState): void;
  /** A heartbeat listed the truncates its sender applied (unvalidated; lib/cluster/truncation.ts). */
  onPeerTruncates?(from: string, truncates: unknown): void;
  /** Called at the end of every tick (membership runs here). */
  onTick(): void;
}

interface KnownAddress {
  seed: boolean;
  /** When the node at this address was last heard from (or when the address was learned). */
  lastSeenMs: number;
}

/** Lag-guard figures, exposed in stats and asserted by tests. */
export interface LagStats {
  stalls: number;
  maxStallMs: number;
  totalStallMs: number;
}

export class Heartbeat {
  private readonly peers = new Map<string, PeerState>();
  private readonly addresses = new Map<string, KnownAddress>();
  private timer: TimerHandle | undefined;
  private nextTickDueMs = 0;
  readonly lag: LagStats = { stalls: 0, maxStallMs: 0, totalStallMs: 0 };
  private readonly malformed: LogLimiter;

  constructor(private readonly options: HeartbeatOptions) {
    this.malformed = new LogLimiter(options.runtime.logger, options.runtime.clock, AUTH_FAILURE_LOG_LIMIT, AUTH_FAILURE_LOG_WINDOW_MS);
    const now = options.runtime.clock.nowMs();
    for (const seed of options.seeds) this.addresses.set(seed, { seed: true, lastSeenMs: now });
  }

  get deadAfterMs(): number {
    return this.options.intervalMs * this.options.timeout;
  }

  start(): void {
    const { timers, clock } = this.options.runtime;
    this.nextTickDueMs = clock.nowMs() + this.options.intervalMs;
    this.timer = timers.setInterval(() => this.tick(), this.options.intervalMs);
    this.sendHeartbeats();
  }

  /** Stops heartbeating; with `announce`, tells every live peer this node is leaving. */
  stop(announce = false): void {
    if (this.timer !== undefined) this.options.runtime.timers.clearInterval(this.timer);
    this.timer = undefined;
    if (!announce) return;
    for (const peer of this.peers.values()) {
      if (peer.alive) this.options.fabric.sendToNode(peer.nodeId, { type: 'leaving' });
    }
  }

  /**
   * A peer announced a clean shutdown: it is dead now, not after the timeout, so the cluster
   * re-forms at once. Heartbeats still in flight from it are ignored for two intervals.
   */
  peerLeaving(nodeId: string): void {
    const peer = this.peers.get(nodeId);
    if (peer === undefined) return;
    this.leftAtMs.set(nodeId, this.options.runtime.clock.nowMs());
    if (!peer.alive) return;
    peer.alive = false;
    peer.adjacency = new Set();
    this.options.runtime.logger.info(`cluster: peer ${nodeId} is shutting down`);
    this.options.onPeerDead(nodeId);
  }

  private readonly leftAtMs = new Map<string, number>();

  /** Ids of peers currently heard from (not including this node). */
  alivePeers(): Set<string> {
    const alive = new Set<string>();
    for (const peer of this.peers.values()) if (peer.alive) alive.add(peer.nodeId);
    return alive;
  }

  peer(nodeId: string): PeerState | undefined {
    return this.peers.get(nodeId);
  }

  /** Adds an address to heartbeat (e.g. a seed given at run time). */
  addAddress(address: string, seed: boolean): void {
    if (this.options.fabric.isSelfAddress(address)) return;
    const known = this.addresses.get(address);
    const now = this.options.runtime.clock.nowMs();
    if (known !== undefined) {
      known.seed ||= seed;
      return;
    }
    if (this.addresses.size >= MAX_CLUSTER_NODES * 2) return;
    this.addresses.set(address, { seed, lastSeenMs: now });
  }

  /** Handles a heartbeat message from an authenticated peer; a malformed one is ignored whole (and logged, rate-limited). */
  receive(from: string, message: WireMessage): void {
    const problem = heartbeatProblem(message);
    if (problem !== undefined) {
      this.malformed.warn(`cluster: ignoring a malformed heartbeat from ${from}: ${problem}`);
      return;
    }
    const { address, adjacency, clusterKey, quiesced, migrationsRemaining } = message as WireMessage & { address: string; adjacency: [string, string][]; clusterKey: string };
    const now = this.options.runtime.clock.nowMs();
    const leftAt = this.leftAtMs.get(from);
    if (leftAt !== undefined) {
      if (now - leftAt < 2 * this.options.intervalMs) return;
      this.leftAtMs.delete(from);
    }
    let peer = this.peers.get(from);
    if (peer === undefined) {
      if (this.peers.size >= MAX_CLUSTER_NODES) return;
      peer = { nodeId: from, address, alive: false, lastHeardMs: now, adjacency: new Set(), clusterKey, quiesced: false, migrationsRemaining: 0 };
      this.peers.set(from, peer);
    }
    peer.address = address;
    peer.lastHeardMs = now;
    peer.clusterKey = clusterKey;
    peer.quiesced = quiesced === true;
    peer.migrationsRemaining = (migrationsRemaining as number | undefined) ?? 0;
    peer.service = message.service;
    peer.adjacency = new Set();
    this.options.fabric.learnAddress(from, address);
    this.addAddress(address, false);
    this.addresses.get(address)!.lastSeenMs = now;
    for (const [nodeId, peerAddress] of adjacency) {
      peer.adjacency.add(nodeId);
      if (nodeId !== this.options.fabric.nodeId) {
        this.options.fabric.learnAddress(nodeId, peerAddress);
        this.addAddress(peerAddress, false);
      }
    }
    if (!peer.alive) {
      peer.alive = true;
      this.options.onPeerAlive(from);
    }
    this.options.onHeartbeat(peer);
    if (message.truncates !== undefined) this.options.onPeerTruncates?.(from, message.truncates);
  }

  /** One heartbeat period: lag guard, failure detection, heartbeats out, then membership. */
  private tick(): void {
    const now = this.options.runtime.clock.nowMs();
    const lateMs = now - this.nextTickDueMs;
    this.nextTickDueMs = now + this.options.intervalMs;
    if (lateMs > this.options.intervalMs * LAG_GUARD_TOLERANCE_INTERVALS) {
      this.forgiveStall(lateMs, now);
      this.options.fabric.forgiveStall(lateMs);
    } else {
      this.detectDeaths(now);
      this.options.fabric.sweep();
    }
    this.forgetAddresses(now);
    this.sendHeartbeats();
    this.options.onTick();
  }

  /** This node was stalled for `stallMs`: peers are not to blame for that time. */
  private forgiveStall(stallMs: number, now: number): void {
    this.lag.stalls++;
    this.lag.totalStallMs += stallMs;
    this.lag.maxStallMs = Math.max(this.lag.maxStallMs, stallMs);
    for (const peer of this.peers.values()) peer.lastHeardMs = Math.min(now, peer.lastHeardMs + stallMs);
    this.options.runtime.logger.info(`cluster: event loop stalled ${Math.round(stallMs)} ms; peer deadlines extended`);
  }

  private detectDeaths(now: number): void {
    for (const peer of this.peers.values()) {
      if (peer.alive && now - peer.lastHeardMs > this.deadAfterMs) {
        peer.alive = false;
        peer.adjacency = new Set();
        this.options.runtime.logger.info(`cluster: peer ${peer.nodeId} silent for ${now - peer.lastHeardMs} ms, declared dead`);
        this.options.onPeerDead(peer.nodeId);
      }
    }
  }

  private forgetAddresses(now: number): void {
    const forgetMs = this.deadAfterMs * FORGET_DEAD_PEER_AFTER_TIMEOUTS;
    for (const [address, known] of this.addresses) {
      if (!known.seed && now - known.lastSeenMs > forgetMs) this.addresses.delete(address);
    }
    for (const [nodeId, peer] of this.peers) {
      if (!peer.alive && now - peer.lastHeardMs > forgetMs) this.peers.delete(nodeId);
    }
  }

  private sendHeartbeats(): void {
    const fabric = this.options.fabric;
    const adjacency: [string, string][] = [];
    for (const peer of this.peers.values()) if (peer.alive) adjacency.push([peer.nodeId, peer.address]);
    const status = this.options.localStatus();
    const message: WireMessage = {
      type: 'heartbeat',
      address: fabric.address,
      adjacency,
      clusterKey: status.clusterKey,
      quiesced: status.quiesced,
      migrationsRemaining: status.migrationsRemaining,
    };
    if (status.truncates !== undefined) message.truncates = status.truncates;
    if (status.service !== undefined) message.service = status.service;
    for (const address of this.addresses.keys()) {
      if (!fabric.isSelfAddress(address)) fabric.sendToAddress(address, message);
    }
  }
}

/**
 * Why a heartbeat is malformed, or undefined if every field is valid: its address and every
 * adjacency entry "host:port" (at most MAX_CLUSTER_NODES entries, valid node ids), a cluster
 * key of at most MAX_CLUSTER_KEY_LENGTH characters, flags and counts of the right type and
 * range, and truncate cuts with the bounds of the public truncate (namespace and set names no
 * longer than the API allows, a finite time). Unknown fields are allowed (newer versions add some).
 */
export function heartbeatProblem(message: WireMessage): string | undefined {
  const { address, adjacency, clusterKey, quiesced, migrationsRemaining, truncates } = message;
  if (!isAddress(address)) return 'address is not "host:port"';
  if (typeof clusterKey !== 'string' || clusterKey.length === 0 || clusterKey.length > MAX_CLUSTER_KEY_LENGTH) return 'bad cluster key';
  if (quiesced !== undefined && typeof quiesced !== 'boolean') return 'quiesced is not a boolean';
  if (migrationsRemaining !== undefined && !(Number.isSafeInteger(migrationsRemaining) && (migrationsRemaining as number) >= 0 && (migrationsRemaining as number) <= MAX_MIGRATIONS_REMAINING)) {
    return 'migrationsRemaining out of range';
  }
  if (!Array.isArray(adjacency) || adjacency.length > MAX_CLUSTER_NODES) return `adjacency is not a list of at most ${MAX_CLUSTER_NODES} peers`;
  for (const entry of adjacency) {
    if (!Array.isArray(entry) || entry.length !== 2 || !isNodeId(entry[0]) || !isAddress(entry[1])) return 'adjacency entry is not [nodeId, "host:port"]';
  }
  if (truncates !== undefined) {
    if (!Array.isArray(truncates) || truncates.length > MAX_HEARTBEAT_CUTS) return `truncates is not a list of at most ${MAX_HEARTBEAT_CUTS} cuts`;
    for (const cut of truncates) if (!isHeartbeatCut(cut)) return 'truncate cut is not [namespace, set or null, time in ms]';
  }
  return undefined;
}

function isHeartbeatCut(cut: unknown): boolean {
  if (!Array.isArray(cut) || cut.length !== 3) return false;
  const [ns, set, beforeMs] = cut as unknown[];
  const name = (value: unknown, maxBytes: number) => typeof value === 'string' && value.length > 0 && Buffer.byteLength(value) <= maxBytes;
  return name(ns, NAMESPACE_NAME_MAX_BYTES) && (set === null || name(set, SET_NAME_MAX_BYTES)) && typeof beforeMs === 'number' && Number.isFinite(beforeMs);
}
