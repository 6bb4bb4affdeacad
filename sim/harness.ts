/**
 * N cluster nodes in one process on the simulated network, under one seeded scheduler
 * (simulation.ts). Each node has its own SimHost (clock and timers that can be stalled,
 * crashed or restarted) and its own SimStore. Used by the fault scenarios (scenarios.ts), the
 * `npm run simulate` scripts and the cluster tests.
 */
import type { ClusterOptions } from '../lib/cluster/cluster';
import { ClusterNode } from '../lib/cluster/cluster';
import { MemoryLogger, SeededRandom } from '../lib/cluster/seams';
import type { SimHost, SimNetworkOptions } from './simulation';
import { SimNetwork, SimScheduler } from './simulation';
import type { RecordVersion } from '../lib/cluster/local-store';
import type { SimStoreOptions } from './store';
import { SimStore } from './store';

export interface SimNode {
  id: string;
  address: string;
  host: SimHost;
  logger: MemoryLogger;
  node: ClusterNode;
  store: SimStore;
  /** Resolves when this incarnation's process crashes (never, if it does not). */
  crashed: Promise<void>;
  /** How many times this node was restarted (0 for the first process). */
  incarnation: number;
}

export interface SimClusterOptions {
  seed: number;
  network?: SimNetworkOptions;
  heartbeatIntervalMs?: number;
  heartbeatTimeout?: number;
  replicationFactor?: number;
  /** Store settings of every node (durability, flush interval, write history hook). */
  store?: Omit<SimStoreOptions, 'timers'>;
  /** Log entries kept per node (default 2000). */
  logEntries?: number;
  /** Record versions per migration batch (default: the production MIGRATION_BATCH_RECORDS). */
  migrationBatchRecords?: number;
}

/** How a crashed node comes back: with its whole store, or with what its device kept. */
export type RestartMode = 'warm' | 'cold';

export class SimCluster {
  readonly scheduler: SimScheduler;
  readonly network: SimNetwork;
  readonly nodes = new Map<string, SimNode>();
  private readonly seedsOf = new Map<string, string[]>();
  private readonly extraOf = new Map<string, Partial<ClusterOptions>>();
  private readonly crashSignals = new Map<string, () => void>();
  /** Observer of every write a node executed as master (the history the register checker reads). */
  onWrite: ((nodeId: string, ns: string, version: RecordVersion) => void) | undefined;
  /** Observer of every read a node executed as master, with what it found (the read-your-writes checker). */
  onRead: ((nodeId: string, ns: string, digest: Buffer, found: RecordVersion | undefined) => void) | undefined;
  /** Generation regressions seen by stores replaced at a warm restart (cold restarts forget, by design). */
  readonly retiredGenerationViolations: string[] = [];

  constructor(readonly options: SimClusterOptions) {
    this.scheduler = new SimScheduler(options.seed);
    this.network = new SimNetwork(this.scheduler, options.network);
  }

  /** Adds and starts a node `id` listening at "id:7000" with the given seeds. */
  async addNode(id: string, seeds: string[], extra: Partial<ClusterOptions> = {}, existingStore?: SimStore): Promise<SimNode> {
    const host = this.scheduler.host(id);
    const store =
      existingStore ??
      new SimStore(host.wallClock, {
        ...this.options.store,
        timers: host,
        onWrite: (ns, version) => this.onWrite?.(id, ns, version),
        onRead: (ns, digest, found) => this.onRead?.(id, ns, digest, found),
      });
    return this.startNode(id, host, seeds, extra, store, 0);
  }

  private async startNode(id: string, host: SimHost, seeds: string[], extra: Partial<ClusterOptions>, store: SimStore, incarnation: number): Promise<SimNode> {
    const logger = new MemoryLogger(this.options.logEntries ?? 2000);
    host.logger = logger;
    const random = new SeededRandom(this.scheduler.random.nextUint32());
    const node = new ClusterNode(
      {
        nodeId: id,
        listen: { host: id, port: 7000 },
        seeds,
        heartbeatIntervalMs: this.options.heartbeatIntervalMs ?? 150,
        heartbeatTimeout: this.options.heartbeatTimeout ?? 10,
        replicationFactor: this.options.replicationFactor ?? 2,
        ...extra,
      },
      { runtime: { clock: host, timers: host, random, logger }, network: this.network.forHost(host), store, migrationBatchRecords: this.options.migrationBatchRecords },
    );
    const crashed = new Promise<void>((resolve) => this.crashSignals.set(id, resolve));
    await node.start();
    const simNode: SimNode = { id, address: `${id}:7000`, host, logger, node, store, crashed, incarnation };
    this.nodes.set(id, simNode);
    this.seedsOf.set(id, seeds);
    this.extraOf.set(id, extra);
    return simNode;
  }

  node(id: string): ClusterNode {
    return this.nodes.get(id)!.node;
  }

  /** Ids of nodes whose process is running (not crashed). */
  running(): string[] {
    return [...this.nodes.values()].filter((n) => !n.host.crashed).map((n) => n.id);
  }

  /** Whether every listed node has the same cluster key and exactly `members` as succession. */
  agree(members: string[]): boolean {
    const expected = [...members].sort().join(',');
    const keys = new Set<string>();
    for (const id of members) {
      const view = this.node(id).view;
      if ([...view.succession].sort().join(',') !== expected) return false;
      keys.add(view.clusterKey);
    }
    return keys.size === 1;
  }

  /**
   * Crashes a node's process (kill -9; the machine stays up): nothing of it runs again, its
   * connections close as the kernel closes a dead process's sockets. The node stays listed
   * until `restart` or `forget`.
   */
  crash(id: string): void {
    const simNode = this.nodes.get(id)!;
    this.network.crashHost(simNode.host);
    this.crashSignals.get(id)?.();
  }

  /**
   * Starts a new process for a crashed node, with the same id, address and seeds. 'warm': the
   * store as it was (the shared-memory index survived); 'cold': rebuilt from what its device
   * kept (`tornAfter`: the last flush tore after that many records), or empty for a memory
   * store.
   */
  async restart(id: string, mode: RestartMode, tornAfter?: number): Promise<SimNode> {
    const old = this.nodes.get(id)!;
    if (!old.host.crashed) throw new Error(`simulation: ${id} is running; crash it first`);
    const host = this.scheduler.restartHost(id);
    const store = mode === 'warm' ? old.store.recoverWarm(host.wallClock, host) : old.store.recoverCold(host.wallClock, host, tornAfter);
    this.retiredGenerationViolations.push(...old.store.generationViolations.map((v) => `${id}#${old.incarnation}: ${v}`));
    return this.startNode(id, host, this.seedsOf.get(id)!, this.extraOf.get(id)!, store, old.incarnation + 1);
  }

  /** Removes a crashed node from the harness for good. */
  forget(id: string): void {
    this.nodes.delete(id);
  }

  /** Stops a node cleanly and removes it from the harness. */
  async stop(id: string): Promise<void> {
    const simNode = this.nodes.get(id)!;
    await simNode.node.stop();
    simNode.store.close();
    this.nodes.delete(id);
  }

  /** Runs `promise` while advancing simulated time, up to `maxMs`; returns its outcome. */
  async drive<T>(promise: Promise<T>, maxMs = 30_000): Promise<T> {
    let settled = false;
    const tracked = promise.finally(() => {
      settled = true;
    });
    tracked.catch(() => {});
    await this.scheduler.runUntil(() => settled, maxMs, 5);
    if (!settled) throw new Error(`simulation: the awaited operation did not settle within ${maxMs} simulated ms`);
    return tracked;
  }

  /** Whether every running node reports no migrations left and the same key. */
  migrationsDone(): boolean {
    return [...this.nodes.values()].filter((n) => !n.host.crashed).every((n) => n.node.migrationsSettledClusterWide());
  }
}
