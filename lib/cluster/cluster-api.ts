/**
 * `db.cluster`: the public cluster control object of docs/cluster.md, a narrow facade over a
 * ClusterNode so callers see only the supported API (the node's internals stay internal).
 *
 * Events: 'change' (ClusterState), 'node-joined' (nodeId), 'node-left' (nodeId),
 * 'migrations-complete' (ClusterState).
 */
import { EventEmitter } from 'node:events';
import type { ClusterNode, ClusterState } from './cluster';

const EVENTS = ['change', 'node-joined', 'node-left', 'migrations-complete'] as const;

export class Cluster extends EventEmitter {
  /** Use startCluster() and wrap its node; the Db does this. */
  constructor(private readonly node: ClusterNode) {
    super();
    for (const event of EVENTS) node.on(event, (...args: unknown[]) => this.emit(event, ...args));
  }

  /** This node's id. */
  get nodeId(): string {
    return this.node.nodeId;
  }

  /** The address peers and the operator CLI reach this node at ("host:port"). */
  get address(): string {
    return this.node.address;
  }

  /**
   * `{ nodeId, clusterKey, principal, nodes, succession, quiesced, partitions: { master,
   * replica }, migrationsRemaining }`, a snapshot (plain data).
   */
  state(): ClusterState {
    return this.node.state();
  }

  /** Hand off every master and replica role at the next rebalance (see recluster). */
  quiesce(): void {
    this.node.quiesce();
  }

  /** Revert quiesce (effective at the next rebalance). */
  quiesceUndo(): void {
    this.node.quiesceUndo();
  }

  /** Start a rebalance now (a membership round with the current quiesce flags). */
  recluster(): void {
    this.node.recluster();
  }

  /**
   * Resolves once every member reports no remaining migrations under the current view.
   * @throws ShoalError TIMEOUT after `timeoutMs` (default 60000); RangeError for a bad timeout.
   */
  waitForMigrations(options: { timeoutMs?: number } = {}): Promise<void> {
    return this.node.waitForMigrations(options);
  }
}
