/**
 * The seeded fault scenarios and their checkers (docs/cluster.md, "Simulation"), shared by
 * `npm run simulate`, `npm run simulate:long` and test/cluster-faults.test.ts.
 *
 * - `full`: the whole fault schedule: message loss, delay, duplication and reordering
 *   throughout; symmetric splits, one-way blocks, process pauses longer than the heartbeat
 *   timeout, wall-clock steps, crashes with warm or cold restart (a cold start may find its
 *   last flush torn), and a store whose writes fail; a workload of unique-key puts and
 *   compare-and-set registers through random nodes.
 * - `split` and `crash`: the two schedules the first regression seeds were found with.
 *
 * After faults stop every scenario runs the same checkers (`checkCluster`).
 */
import type { RecordVersion } from '../lib/cluster/local-store';
import { SeededRandom } from '../lib/cluster/seams';
import type { SimHost } from './simulation';
import type { SimCluster, SimNode } from './harness';
import { SimCluster as Cluster } from './harness';
import type { SimOperation } from './store';
import { digestOf, partitionOfDigest } from './store';
import { TraceHash } from './trace';

export type ScenarioName = 'full' | 'split' | 'crash' | 'migrate';
export const SCENARIO_NAMES: readonly ScenarioName[] = ['full', 'split', 'crash', 'migrate'];

export interface ScenarioOptions {
  seed: number;
  /** Cluster size (default 5). */
  nodeCount?: number;
  /**
   * Simulated ms of faults to run at least. 0 (default) runs one episode for `split` and
   * `crash` (the schedule the regression seeds were found with) and 20 s for `full`.
   */
  faultMs?: number;
  /** Also hash every message's bytes into the trace (slower; the replay test uses it). */
  traceMessages?: boolean;
}

/** One checker's verdict. */
export interface CheckResult {
  name: string;
  passed: boolean;
  /** What failed (at most a few examples), or a short summary. */
  detail: string;
}

export interface ScenarioResult {
  scenario: ScenarioName;
  seed: number;
  passed: boolean;
  /** One cluster view and no migrations left once faults stopped. */
  converged: boolean;
  checks: CheckResult[];
  /** Unique keys acknowledged. */
  acknowledged: number;
  /** Compare-and-set writes acknowledged. */
  registerWrites: number;
  /** Acknowledged unique keys missing on an owner ("key:holders"). */
  missing: string[];
  /** Copies on nodes that do not own their partition (reported, allowed). */
  strays: number;
  /** Register writes lost as docs/cluster.md admits (a newer generation from another view won). */
  admittedLosses: number;
  /** Faults injected, by kind. */
  faults: Record<string, number>;
  /** Simulated ms from the first node start to the end of the checks. */
  simulatedMs: number;
  events: number;
  /** Digest of every event, message and acknowledgement: equal for equal runs. */
  trace: string;
  /** Victim of the crash scenario, if any. */
  victim?: string;
}

const SCENARIO_START_MS = 1_700_000_000_000;
/** Simulated ms the cluster gets to converge once faults stop. */
const CONVERGE_WITHIN_MS = 60_000;
/** Registers of the compare-and-set workload. */
const REGISTER_COUNT = 8;
/** Log records of the append workload. */
const LOG_COUNT = 4;

function nodeIds(count: number): string[] {
  return Array.from({ length: count }, (_, index) => `n${index + 1}`);
}

function shuffled<T>(ids: readonly T[], random: SeededRandom): T[] {
  const copy = [...ids];
  for (let index = copy.length - 1; index > 0; index--) {
    const other = random.nextInt(index + 1);
    [copy[index], copy[other]] = [copy[other], copy[index]];
  }
  return copy;
}

/** Hooks the trace into the scheduler (every event) and the network (every message). */
function attachTrace(sim: SimCluster, messages: boolean): TraceHash {
  const trace = new TraceHash();
  sim.scheduler.trace = (timeMs, host) => {
    trace.number(timeMs);
    trace.string(host);
  };
  sim.network.onTransmit = (from, to, frame) => {
    trace.number(sim.scheduler.nowMs());
    trace.string(from);
    trace.string(to);
    if (messages) trace.bytes(frame);
    else trace.number(frame.length);
  };
  return trace;
}

/** One executed register write (from the master's store), for the register checker. */
interface ExecutedWrite {
  node: string;
  viewKey: string;
  gen: number;
  tokens: string[];
}

/**
 * Error codes that tell the caller "not applied" (docs/cluster.md, "Errors that tell the
 * truth"). A write answered with one of these must not be found applied anywhere; every other
 * failure is in doubt.
 */
export const NOT_APPLIED_CODES: ReadonlySet<string> = new Set([
  'RECORD_NOT_FOUND',
  'GENERATION_MISMATCH',
  'INVALID_ARGUMENT',
  'RECORD_EXISTS',
  'OUT_OF_SPACE',
  'BIN_TYPE',
  'RECORD_TOO_BIG',
  'KEY_BUSY',
  'NOT_OPEN',
  'LOCKED',
  'PARTITION_UNAVAILABLE',
]);

export interface WorkloadOptions {
  /** Clients putting fresh keys; each reads an acknowledged key back after every put. */
  uniqueWriters: number;
  /** Clients reading a register and compare-and-setting it. */
  registerClients: number;
  /** Clients appending unique tokens to a few log records, unconditionally (applied twice would show). */
  appenders?: number;
  /** Partitions most fresh keys go to (the long-migration workload: many records per partition). */
  hotPartitions?: readonly number[];
  /** Only nodes whose view holds at least this many members take client calls (a restarted node alone is not used). */
  minimumViewSize?: number;
}

/** A failed client call, for the scenarios that promise none. */
interface ClientError {
  atMs: number;
  call: string;
  code: string;
}

/**
 * The workload: `uniqueWriters` clients put fresh keys and read back an acknowledged one after
 * each put, `registerClients` clients read a register and compare-and-set it, `appenders`
 * clients append tokens to log records, each call through a random running node, with 1-4 ms
 * between calls (a client host that never fails). A call whose node crashes under it is in
 * doubt, like any failed one.
 */
export class Workload {
  /** Acknowledged unique keys: label -> digest. */
  readonly acknowledged = new Map<string, Buffer>();
  /** Acknowledged CAS and append tokens per register or log key. */
  readonly registerAcks = new Map<string, string[]>();
  /** Every write executed on a master per register or log key (acknowledged or not). */
  readonly registerHistory = new Map<string, ExecutedWrite[]>();
  /** CAS and append calls answered with a "not applied" error code: register, token, code. */
  readonly definiteFailures: { register: string; token: string; code: string }[] = [];
  /** Read-your-writes: reads of acknowledged keys executed, and those that did not find a write some member of the reader's view held. */
  readonly readChecks = { reads: 0, admitted: 0, violations: [] as string[] };
  readonly clientErrors: ClientError[] = [];
  private stopped = false;
  private counter = 0;
  private readonly clients: Promise<void>[] = [];
  private readonly registerByHex = new Map<string, string>();
  private readonly acknowledgedHex = new Set<string>();
  private readonly ackedLabels: string[] = [];
  private readonly clientHost: SimHost;
  private readonly avoided = new Set<string>();

  constructor(private readonly sim: SimCluster, private readonly random: SeededRandom, private readonly trace: TraceHash, private readonly options: WorkloadOptions) {
    this.clientHost = sim.scheduler.host('client');
    for (let r = 0; r < REGISTER_COUNT; r++) this.registerByHex.set(digestOf(`r${r}`).toString('hex'), `r${r}`);
    for (let l = 0; l < LOG_COUNT; l++) this.registerByHex.set(digestOf(`log${l}`).toString('hex'), `log${l}`);
    sim.onWrite = (nodeId, _ns, version) => this.recordWrite(nodeId, version);
    sim.onRead = (nodeId, _ns, digest, found) => this.checkRead(nodeId, digest, found);
  }

  /** Starts the clients. */
  start(): this {
    for (let i = 0; i < this.options.uniqueWriters; i++) this.clients.push(this.uniqueWriter());
    for (let i = 0; i < this.options.registerClients; i++) this.clients.push(this.registerClient(i));
    for (let i = 0; i < (this.options.appenders ?? 0); i++) this.clients.push(this.appender(i));
    return this;
  }

  /**
   * Writes `count` fresh keys (most in the hot partitions) through random nodes, `concurrency`
   * at a time, before the clients start; each acknowledged key joins the checked ones.
   * Resolves to how many were acknowledged.
   */
  async preload(count: number, concurrency: number): Promise<number> {
    let next = 0;
    const loader = async () => {
      while (next < count) {
        const label = `p${next++}`;
        const digest = this.freshDigest(label);
        const outcome = await this.run(digest, { call: 'put', bins: { p: label } });
        if (outcome.ok) this.acknowledge(label, digest);
      }
    };
    await this.sim.drive(Promise.all(Array.from({ length: concurrency }, loader)), 600_000);
    return this.acknowledged.size;
  }

  /** Clients stop using node `id` (it is about to be stopped: its calls in flight finish first). */
  avoid(id: string): void {
    this.avoided.add(id);
  }

  private acknowledge(label: string, digest: Buffer): void {
    this.acknowledged.set(label, digest);
    this.acknowledgedHex.add(digest.toString('hex'));
    this.ackedLabels.push(label);
    this.trace.string(label);
  }

  private recordWrite(nodeId: string, version: RecordVersion): void {
    const register = this.registerByHex.get(version.digest.toString('hex'));
    if (register === undefined || version.payload === undefined) return;
    const tokens = (JSON.parse(version.payload.toString()) as { tokens?: string[] }).tokens ?? [];
    let history = this.registerHistory.get(register);
    if (history === undefined) this.registerHistory.set(register, (history = []));
    history.push({ node: nodeId, viewKey: this.sim.node(nodeId).view.clusterKey, gen: version.gen, tokens });
  }

  /**
   * Read-your-writes, checked where the read executes: a read of an acknowledged key that
   * finds nothing is a violation if a running node in the same cluster view as the reading
   * node (same key) holds a copy of it now: the data plane promises every read sees what the
   * members of its view hold (the acting master's copy, merged with any copy still merging).
   * A miss with every copy outside that view (a split, a paused node still acting in the view
   * its peers left) is what AP admits.
   */
  private checkRead(nodeId: string, digest: Buffer, found: RecordVersion | undefined): void {
    const hex = digest.toString('hex');
    if (!this.acknowledgedHex.has(hex)) return;
    this.readChecks.reads++;
    if (found !== undefined) return;
    const view = this.sim.node(nodeId).view;
    const holders = view.succession.filter((id) => {
      const node = this.sim.nodes.get(id);
      if (node === undefined || node.host.crashed || node.node.view.clusterKey !== view.clusterKey) return false;
      const version = node.store.data.get('test')!.get(hex);
      return version !== undefined && !version.tombstone;
    });
    if (holders.length === 0) {
      this.readChecks.admitted++;
      return;
    }
    this.readChecks.violations.push(`${hex.slice(0, 8)} (p${partitionOfDigest(digest)}) read on ${nodeId} at ${this.sim.scheduler.nowMs() - SCENARIO_START_MS} ms, held by ${holders.join('+')} in the same view`);
  }

  private pause(): Promise<void> {
    return new Promise((resolve) => this.clientHost.setTimeout(resolve, 1 + this.random.nextInt(4)));
  }

  private pickNode(): SimNode | undefined {
    const minimum = this.options.minimumViewSize ?? 1;
    const running = this.sim.running().filter((id) => !this.avoided.has(id) && this.sim.node(id).view.succession.length >= minimum);
    if (running.length === 0) return undefined;
    return this.sim.nodes.get(running[this.random.nextInt(running.length)]);
  }

  /** Runs `operation` on a random running node: its value, or the error code (undefined: its node crashed, or none to ask). */
  private async run(digest: Buffer, operation: SimOperation): Promise<{ ok: true; value: unknown } | { ok: false; code: string | undefined }> {
    const target = this.pickNode();
    if (target === undefined) return { ok: false, code: undefined };
    const request = target.node.execute({ kind: 'record', ns: 'test', digest, operation, readOnly: operation.call === 'get' });
    const outcome = await Promise.race([
      request.then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, code: String((error as { code?: unknown })?.code ?? 'ERROR') }),
      ),
      target.crashed.then(() => ({ ok: false as const, code: undefined })),
    ]);
    request.catch(() => {});
    if (!outcome.ok && outcome.code !== undefined) this.clientErrors.push({ atMs: this.sim.scheduler.nowMs(), call: operation.call, code: outcome.code });
    return outcome;
  }

  /** A fresh key's digest: in a hot partition (if any) most of the time. */
  private freshDigest(label: string): Buffer {
    const digest = digestOf(label);
    const hot = this.options.hotPartitions;
    if (hot !== undefined && hot.length > 0 && this.random.nextInt(10) < 8) {
      const partition = hot[this.random.nextInt(hot.length)]!;
      digest[0] = partition & 0xff;
      digest[1] = (digest[1] & 0xf0) | (partition >> 8);
    }
    return digest;
  }

  private async uniqueWriter(): Promise<void> {
    while (!this.stopped) {
      const label = `k${this.counter++}`;
      const digest = this.freshDigest(label);
      const outcome = await this.run(digest, { call: 'put', bins: { v: this.counter } });
      if (outcome.ok) {
        this.acknowledge(label, digest);
        // Read one acknowledged key back: this one, or any earlier one (migrations move them).
        const back = this.random.nextInt(2) === 0 ? label : this.ackedLabels[this.random.nextInt(this.ackedLabels.length)]!;
        await this.run(this.acknowledged.get(back)!, { call: 'get' });
      }
      await this.pause();
    }
  }

  private async registerClient(client: number): Promise<void> {
    for (let n = 0; !this.stopped; n++) {
      const register = `r${this.random.nextInt(REGISTER_COUNT)}`;
      const read = await this.run(digestOf(register), { call: 'get' });
      if (read.ok) {
        const gen = (read.value as { gen?: number } | undefined)?.gen ?? 0;
        await this.tokenWrite(register, `c${client}.${n}`, { call: 'cas', expectGen: gen, token: `c${client}.${n}` });
      }
      await this.pause();
    }
  }

  private async appender(client: number): Promise<void> {
    for (let n = 0; !this.stopped; n++) {
      const log = `log${this.random.nextInt(LOG_COUNT)}`;
      await this.tokenWrite(log, `a${client}.${n}`, { call: 'append', token: `a${client}.${n}` });
      await this.pause();
    }
  }

  /** A CAS or append carrying a unique token: acknowledged, definitely not applied, or in doubt. */
  private async tokenWrite(register: string, token: string, operation: SimOperation): Promise<void> {
    const outcome = await this.run(digestOf(register), operation);
    if (outcome.ok) {
      let acks = this.registerAcks.get(register);
      if (acks === undefined) this.registerAcks.set(register, (acks = []));
      acks.push(token);
      this.trace.string(token);
    } else if (outcome.code !== undefined && NOT_APPLIED_CODES.has(outcome.code)) {
      this.definiteFailures.push({ register, token, code: outcome.code });
    }
  }

  get registerWrites(): number {
    let count = 0;
    for (const acks of this.registerAcks.values()) count += acks.length;
    return count;
  }

  /** Stops the clients and waits for their last operations (each bounded by the request timeout). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.sim.drive(Promise.all(this.clients), 30_000);
  }
}

/** Forms a cluster of `ids` from two seeds; false if it does not form within 20 s. */
async function formCluster(sim: SimCluster, ids: string[]): Promise<boolean> {
  for (const id of ids) await sim.addNode(id, [`n1:7000`, `n2:7000`]);
  return sim.scheduler.runUntil(() => sim.agree(ids), 20_000);
}

/** Whether the cluster is whole: every node running, one view of all of them, no migrations left. */
function healthy(sim: SimCluster, ids: string[]): boolean {
  return sim.running().length === ids.length && sim.agree(ids) && sim.migrationsDone();
}

/**
 * The full fault schedule, two concurrent processes on a "chaos" host that never fails:
 *
 * - network and process faults, one every 0.5-2.5 s, overlapping freely: symmetric splits
 *   and one-way blocks (2-6 s), loss bursts (5-20 % for 1-3 s), pauses of a node longer than
 *   the heartbeat timeout (1.6-4 s), wall-clock steps of up to an hour either way;
 * - faults that lose a node's process or its store, every 2-8 s: a crash with a warm or cold
 *   restart 0.2-5 s later (a cold start may find its last flush torn), or a store whose writes
 *   start failing, restarted cold 1-4 s later. Each waits until the cluster is whole (one view
 *   of every node, migrations done; new network faults are held back meanwhile) so a partition
 *   never faces more than the single failure RF 2 promises to survive (docs/cluster.md,
 *   "Guarantees"). Network faults go on during the downtime.
 */
async function runFullSchedule(sim: SimCluster, ids: string[], random: SeededRandom, faultMs: number, faults: Record<string, number>): Promise<void> {
  const count = (kind: string) => (faults[kind] = (faults[kind] ?? 0) + 1);
  const chaos = sim.scheduler.host('chaos');
  const sleep = (ms: number) => new Promise<void>((resolve) => chaos.setTimeout(resolve, ms));
  const started = sim.scheduler.nowMs();
  const running = () => sim.scheduler.nowMs() - started < faultMs;
  const blocks = new CountedBlocks(sim);
  const baseLossRate = sim.network.options.lossRate;
  let lossBursts = 0;
  let holdNetworkFaults = false;

  const networkFaults = async () => {
    while (running()) {
      await sleep(500 + random.nextInt(2_000));
      if (holdNetworkFaults || !running()) continue;
      const roll = random.nextInt(100);
      if (roll < 25) {
        const order = shuffled(ids, random);
        const side = 1 + random.nextInt(Math.floor(ids.length / 2));
        const pairs: [string, string][] = [];
        for (const a of order.slice(0, side)) for (const b of order.slice(side)) pairs.push([a, b], [b, a]);
        blocks.add(pairs, 2_000 + random.nextInt(4_000), chaos);
        count('split');
      } else if (roll < 45) {
        const order = shuffled(ids, random);
        const others = order.slice(1, 2 + random.nextInt(ids.length - 1));
        const outbound = random.nextInt(2) === 0;
        blocks.add(others.map((other) => (outbound ? [order[0], other] : [other, order[0]])), 2_000 + random.nextInt(4_000), chaos);
        count('one-way');
      } else if (roll < 60) {
        lossBursts++;
        sim.network.options.lossRate = 0.05 + random.nextInt(16) / 100;
        chaos.setTimeout(() => {
          if (--lossBursts === 0) sim.network.options.lossRate = baseLossRate;
        }, 1_000 + random.nextInt(2_000));
        count('loss-burst');
      } else if (roll < 85) {
        const alive = sim.running();
        sim.nodes.get(alive[random.nextInt(alive.length)])!.host.stall(1_600 + random.nextInt(2_400));
        count('pause');
      } else {
        const magnitude = [1_000, 60_000, 3_600_000][random.nextInt(3)];
        sim.nodes.get(ids[random.nextInt(ids.length)])!.host.jumpWallClock((random.nextInt(2) === 0 ? -1 : 1) * (1 + random.nextInt(magnitude)));
        count('clock-jump');
      }
    }
  };

  const nodeFaults = async () => {
    while (running()) {
      await sleep(2_000 + random.nextInt(6_000));
      if (!running()) break;
      holdNetworkFaults = true;
      let whole = false;
      for (let waited = 0; waited < 15_000 && !(whole = healthy(sim, ids)); waited += 50) await sleep(50);
      holdNetworkFaults = false;
      if (!whole) {
        count('node-fault-skipped');
        continue;
      }
      const victim = ids[random.nextInt(ids.length)];
      if (random.nextInt(4) === 0) {
        sim.nodes.get(victim)!.store.failWrites();
        count('store-failure');
        await sleep(1_000 + random.nextInt(3_000));
        sim.crash(victim);
        await sim.restart(victim, 'cold');
        continue;
      }
      sim.crash(victim);
      count('crash');
      await sleep(200 + random.nextInt(4_800));
      if (random.nextInt(2) === 0) {
        await sim.restart(victim, 'warm');
        count('restart-warm');
        continue;
      }
      const store = sim.nodes.get(victim)!.store;
      const torn = random.nextInt(2) === 0 && store.lastFlushCount > 0 ? random.nextInt(store.lastFlushCount) : undefined;
      await sim.restart(victim, 'cold', torn);
      count(torn === undefined ? 'restart-cold' : 'restart-cold-torn');
    }
  };

  await sim.drive(Promise.all([networkFaults(), nodeFaults()]), faultMs + 60_000);
  sim.network.options.lossRate = baseLossRate;
}

/** Network blocks that overlapping faults add and remove independently (a pair stays blocked while any fault holds it). */
class CountedBlocks {
  private readonly holds = new Map<string, number>();
  constructor(private readonly sim: SimCluster) {}

  add(pairs: [string, string][], durationMs: number, host: SimHost): void {
    for (const [from, to] of pairs) {
      const key = `${from}|${to}`;
      const held = this.holds.get(key) ?? 0;
      if (held === 0) this.sim.network.block(`${from}:7000`, `${to}:7000`);
      this.holds.set(key, held + 1);
    }
    host.setTimeout(() => {
      for (const [from, to] of pairs) {
        const key = `${from}|${to}`;
        const held = this.holds.get(key)! - 1;
        if (held === 0) {
          this.holds.delete(key);
          this.sim.network.unblock(`${from}:7000`, `${to}:7000`);
        } else this.holds.set(key, held);
      }
    }, durationMs);
  }
}

/** Ends every fault: network healed and clean, crashed nodes restarted cold. */
async function endFaults(sim: SimCluster, ids: string[]): Promise<void> {
  sim.network.heal();
  Object.assign(sim.network.options, { lossRate: 0, duplicateRate: 0, reorderRate: 0 });
  for (const id of ids) if (sim.nodes.get(id)!.host.crashed) await sim.restart(id, 'cold');
}

/**
 * Full scenario: 5 nodes, 0.5-2 % loss, 1-20 ms jitter, 1 % duplication and reordering, and
 * the whole fault schedule (runFullSchedule) for `faultMs` (default 20 s); then faults stop
 * and every checker runs.
 */
export async function runFullScenario(options: ScenarioOptions): Promise<ScenarioResult> {
  const { seed } = options;
  const random = new SeededRandom(seed * 2654435761);
  const lossRate = 0.005 + random.nextInt(16) / 1000;
  const sim = new Cluster({ seed, network: { minDelayMs: 1, maxDelayMs: 20, lossRate, duplicateRate: 0.01, reorderRate: 0.01 }, store: { durability: random.nextInt(4) === 0 ? 'memory' : 'device' } });
  const trace = attachTrace(sim, options.traceMessages === true);
  const ids = nodeIds(options.nodeCount ?? 5);
  const faults: Record<string, number> = {};
  if (!(await formCluster(sim, ids))) return scenarioFailure('full', seed, sim, trace, 'the cluster did not form');
  const workload = new Workload(sim, random, trace, { uniqueWriters: 2, registerClients: 2, appenders: 1 }).start();
  await sim.scheduler.runFor(1_000);
  await runFullSchedule(sim, ids, random, options.faultMs || 20_000, faults);
  await endFaults(sim, ids);
  return finish('full', seed, sim, ids, workload, trace, faults);
}

/**
 * Split scenario: 0.5 % loss, 1-15 ms jitter; each episode splits the cluster for 4 s, heals,
 * then stalls a random node for 2-3 s (longer than the heartbeat timeout).
 */
export async function runSplitScenario(options: ScenarioOptions): Promise<ScenarioResult> {
  const { seed } = options;
  const sim = new Cluster({ seed, network: { minDelayMs: 1, maxDelayMs: 15, lossRate: 0.005 } });
  const trace = attachTrace(sim, options.traceMessages === true);
  const ids = nodeIds(options.nodeCount ?? 5);
  if (!(await formCluster(sim, ids))) return scenarioFailure('split', seed, sim, trace, 'the cluster did not form');
  const random = new SeededRandom(seed * 7919);
  const faults: Record<string, number> = {};
  const workload = new Workload(sim, random, trace, { uniqueWriters: 3, registerClients: 0 }).start();
  const faultStartMs = sim.scheduler.nowMs();
  await sim.scheduler.runFor(2_000);
  // First episode: {n1,n2} | rest, as the regression seeds had it; later ones split at random.
  let order = ids;
  let sideSize = Math.floor(ids.length / 2);
  for (let episode = 0; episode === 0 || sim.scheduler.nowMs() - faultStartMs < (options.faultMs ?? 0); episode++) {
    if (episode > 0) {
      order = shuffled(ids, random);
      sideSize = 1 + random.nextInt(Math.floor(ids.length / 2));
    }
    sim.network.partition(order.slice(0, sideSize).map((id) => `${id}:7000`), order.slice(sideSize).map((id) => `${id}:7000`));
    faults.split = (faults.split ?? 0) + 1;
    await sim.scheduler.runFor(4_000);
    sim.network.heal();
    await sim.scheduler.runFor(1_000 + random.nextInt(1_000));
    sim.nodes.get(ids[random.nextInt(ids.length)])!.host.stall(2_000 + random.nextInt(1_000));
    faults.pause = (faults.pause ?? 0) + 1;
    await sim.scheduler.runFor(3_000);
  }
  await endFaults(sim, ids);
  return finish('split', seed, sim, ids, workload, trace, faults);
}

/**
 * Crash scenario: 0.5 % loss, 1 % duplication and reordering, 1-20 ms jitter; one node crashes
 * for good, then each episode isolates one survivor for 2.5 s and heals. Checks the survivors.
 */
export async function runCrashScenario(options: ScenarioOptions): Promise<ScenarioResult> {
  const { seed } = options;
  const sim = new Cluster({ seed, network: { minDelayMs: 1, maxDelayMs: 20, lossRate: 0.005, duplicateRate: 0.01, reorderRate: 0.01 } });
  const trace = attachTrace(sim, options.traceMessages === true);
  const ids = nodeIds(options.nodeCount ?? 5);
  if (!(await formCluster(sim, ids))) return scenarioFailure('crash', seed, sim, trace, 'the cluster did not form');
  const random = new SeededRandom(seed * 104729);
  const victim = ids[random.nextInt(ids.length)];
  const survivors = ids.filter((id) => id !== victim);
  const faults: Record<string, number> = {};
  const workload = new Workload(sim, random, trace, { uniqueWriters: 3, registerClients: 0 }).start();
  const faultStartMs = sim.scheduler.nowMs();
  await sim.scheduler.runFor(1_000 + random.nextInt(2_000));
  sim.crash(victim);
  faults.crash = 1;
  await sim.scheduler.runFor(1_000 + random.nextInt(1_000));
  for (let episode = 0; episode === 0 || sim.scheduler.nowMs() - faultStartMs < (options.faultMs ?? 0); episode++) {
    const isolated = episode === 0 ? survivors[0] : survivors[random.nextInt(survivors.length)];
    sim.network.partition([`${isolated}:7000`], survivors.filter((id) => id !== isolated).map((id) => `${id}:7000`));
    faults.split = (faults.split ?? 0) + 1;
    await sim.scheduler.runFor(2_500);
    sim.network.heal();
    await sim.scheduler.runFor(2_000);
  }
  sim.network.heal();
  Object.assign(sim.network.options, { lossRate: 0, duplicateRate: 0, reorderRate: 0 });
  sim.forget(victim);
  const result = await finish('crash', seed, sim, survivors, workload, trace, faults);
  result.victim = victim;
  return result;
}

/** Records preloaded by the long-migration scenario, most of them in its hot partitions. */
const MIGRATE_PRELOAD_RECORDS = 6_000;
/** Hot partitions of the long-migration scenario: about 250 records each. */
const MIGRATE_HOT_PARTITIONS = 24;

/**
 * Long-migration scenario: many records per partition (most keys in a few hot partitions),
 * small migration batches and slow partition reads, so partitions stay in handoff for seconds,
 * and every kind of handoff happens while they move: two nodes join one after the other (the
 * second while the first join still migrates), two old nodes are quiesced mid-migration and
 * leave once they own nothing. The network duplicates and reorders but loses nothing, and
 * nothing splits or pauses: no client call may fail, no read may hide an acknowledged write,
 * no write may be lost or applied twice.
 */
export async function runMigrateScenario(options: ScenarioOptions): Promise<ScenarioResult> {
  const { seed } = options;
  const random = new SeededRandom(seed * 40503);
  const sim = new Cluster({
    seed,
    network: { minDelayMs: 1, maxDelayMs: 8, lossRate: 0, duplicateRate: 0.01, reorderRate: 0.01 },
    store: { durability: 'memory', partitionReadDelayMs: 2 + random.nextInt(6), partitionReadBatch: 4 },
    migrationBatchRecords: 8,
  });
  const trace = attachTrace(sim, options.traceMessages === true);
  const all = nodeIds(options.nodeCount ?? 5);
  const initial = all.slice(0, 3);
  const faults: Record<string, number> = {};
  if (!(await formCluster(sim, initial))) return scenarioFailure('migrate', seed, sim, trace, 'the cluster did not form');
  const hot = shuffled(Array.from({ length: 4096 }, (_, p) => p), random).slice(0, MIGRATE_HOT_PARTITIONS);
  const workload = new Workload(sim, random, trace, { uniqueWriters: 2, registerClients: 2, appenders: 1, hotPartitions: hot, minimumViewSize: 2 });
  await workload.preload(MIGRATE_PRELOAD_RECORDS, 32);
  workload.start();
  const busy = busyEventLoops(sim, random, faults);
  await sim.scheduler.runFor(500);
  for (const id of all.slice(3)) {
    await sim.addNode(id, ['n1:7000', 'n2:7000']);
    faults.join = (faults.join ?? 0) + 1;
    await sim.scheduler.runFor(1_000 + random.nextInt(2_000));
  }
  await sim.scheduler.runFor(random.nextInt(3_000));
  const leaving = shuffled(initial, random).slice(0, 2);
  for (const id of leaving) sim.node(id).quiesce();
  sim.node(leaving[0]!).recluster();
  faults.quiesce = leaving.length;
  const drained = await sim.scheduler.runUntil(
    () => sim.agree(all) && sim.migrationsDone() && leaving.every((id) => sim.node(id).view.quiesced.includes(id) && ownsNothing(sim, id)),
    180_000,
    50,
  );
  if (!drained) return scenarioFailure('migrate', seed, sim, trace, `the quiesced nodes did not hand off within 180 s: ${describeViews(sim, all)}`);
  // Clients move off the leaving nodes, their calls in flight finish, then they stop.
  for (const id of leaving) workload.avoid(id);
  await sim.scheduler.runFor(6_000);
  for (const id of leaving) await sim.stop(id);
  faults.leave = leaving.length;
  const remaining = all.filter((id) => !leaving.includes(id));
  await sim.scheduler.runUntil(() => sim.agree(remaining) && sim.migrationsDone(), 60_000, 50);
  await sim.scheduler.runFor(1_000);
  busy.stop();
  return finish('migrate', seed, sim, remaining, workload, trace, faults, { noClientErrors: true });
}

/**
 * Busy event loops: every 0.2-1 s a random running node stalls for 50-400 ms, as a node
 * migrating a large data set while serving does (well under the heartbeat timeout, so no view
 * changes for it). Settle notices, replies and heartbeats then arrive late.
 */
function busyEventLoops(sim: SimCluster, random: SeededRandom, faults: Record<string, number>): { stop(): void } {
  const chaos = sim.scheduler.host('chaos');
  let stopped = false;
  const next = () => {
    if (stopped) return;
    const running = sim.running();
    sim.nodes.get(running[random.nextInt(running.length)]!)!.host.stall(50 + random.nextInt(350));
    faults.busy = (faults.busy ?? 0) + 1;
    chaos.setTimeout(next, 200 + random.nextInt(800));
  };
  chaos.setTimeout(next, 200);
  return { stop: () => (stopped = true) };
}

function ownsNothing(sim: SimCluster, id: string): boolean {
  const { master, replica } = sim.node(id).state().partitions;
  return master === 0 && replica === 0;
}

/** Runs one scenario by name. */
export function runScenario(name: ScenarioName, options: ScenarioOptions): Promise<ScenarioResult> {
  if (name === 'full') return runFullScenario(options);
  if (name === 'migrate') return runMigrateScenario(options);
  return name === 'split' ? runSplitScenario(options) : runCrashScenario(options);
}

/** Stops the workload, waits for convergence, runs every checker. */
async function finish(
  scenario: ScenarioName,
  seed: number,
  sim: SimCluster,
  ids: string[],
  workload: Workload,
  trace: TraceHash,
  faults: Record<string, number>,
  promises: { noClientErrors?: boolean } = {},
): Promise<ScenarioResult> {
  await workload.stop();
  const converged = await sim.scheduler.runUntil(() => sim.agree(ids) && sim.migrationsDone(), CONVERGE_WITHIN_MS);
  const checks: CheckResult[] = [{ name: 'convergence', passed: converged, detail: converged ? `one view of ${ids.length} nodes, no migrations left` : describeViews(sim, ids) }];
  const copies = checkAcknowledgedCopies(sim, ids, workload.acknowledged);
  const replicas = checkReplicasIdentical(sim, ids);
  const registers = checkRegisters(sim, ids, workload);
  checks.push(copies.check, replicas.check, registers.check, checkGenerations(sim, ids));
  checks.push(checkReadYourWrites(workload), checkDefiniteErrors(workload), checkAtMostOnce(sim, ids, workload));
  if (promises.noClientErrors === true) checks.push(checkNoClientErrors(workload));
  trace.string(checks.map((c) => `${c.name}:${c.passed}`).join());
  return {
    scenario,
    seed,
    passed: checks.every((c) => c.passed),
    converged,
    checks,
    acknowledged: workload.acknowledged.size,
    registerWrites: workload.registerWrites,
    missing: copies.missing,
    strays: replicas.strays,
    admittedLosses: registers.admitted,
    faults,
    simulatedMs: sim.scheduler.nowMs() - SCENARIO_START_MS,
    events: sim.scheduler.eventsRun,
    trace: trace.digest(),
  };
}

function describeViews(sim: SimCluster, ids: string[]): string {
  return ids.map((id) => `${id}:${sim.node(id).view.succession.join('+')}/${sim.node(id).migrationsRemaining()}`).join(' ');
}

function scenarioFailure(scenario: ScenarioName, seed: number, sim: SimCluster, trace: TraceHash, why: string): ScenarioResult {
  return {
    scenario, seed, passed: false, converged: false, checks: [{ name: 'formation', passed: false, detail: why }],
    acknowledged: 0, registerWrites: 0, missing: [], strays: 0, admittedLosses: 0, faults: {},
    simulatedMs: sim.scheduler.nowMs() - SCENARIO_START_MS, events: sim.scheduler.eventsRun, trace: trace.digest(),
  };
}

function liveVersion(node: SimNode, hex: string): RecordVersion | undefined {
  const version = node.store.data.get('test')!.get(hex);
  return version !== undefined && !version.tombstone ? version : undefined;
}

/** Checker: every acknowledged unique key is on every owner of its partition (RF copies). */
export function checkAcknowledgedCopies(sim: SimCluster, ids: string[], acknowledged: ReadonlyMap<string, Buffer>): { check: CheckResult; missing: string[] } {
  const missing: string[] = [];
  const map = sim.node(ids[0]).partitionMap;
  for (const [key, digest] of acknowledged) {
    const hex = digest.toString('hex');
    const holders = ids.filter((id) => liveVersion(sim.nodes.get(id)!, hex) !== undefined);
    const owners = map.owners[partitionOfDigest(digest)];
    if (!owners.every((owner) => holders.includes(owner))) missing.push(`${key}:${holders.join('+')}`);
  }
  const copies = map.replicationFactor;
  return {
    missing,
    check: {
      name: 'acknowledged-writes-on-rf-owners',
      passed: missing.length === 0 && map.owners.every((owners) => owners.length === copies),
      detail: missing.length === 0 ? `${acknowledged.size} acknowledged keys, each on all ${copies} owners` : `${missing.length} missing: ${missing.slice(0, 5).join(' ')}`,
    },
  };
}

/**
 * Checker: after migrations, the owners of every partition hold identical records (same
 * digests, generations, last-update times, payloads, tombstones). Records on non-owners are
 * counted as strays.
 */
export function checkReplicasIdentical(sim: SimCluster, ids: string[]): { check: CheckResult; strays: number } {
  const map = sim.node(ids[0]).partitionMap;
  const byPartition = new Map<number, Map<string, Map<string, string>>>();
  let strays = 0;
  for (const id of ids) {
    for (const [hex, version] of sim.nodes.get(id)!.store.data.get('test')!) {
      const partition = partitionOfDigest(version.digest);
      if (!map.owners[partition].includes(id)) {
        strays++;
        continue;
      }
      let nodes = byPartition.get(partition);
      if (nodes === undefined) byPartition.set(partition, (nodes = new Map()));
      let records = nodes.get(id);
      if (records === undefined) nodes.set(id, (records = new Map()));
      records.set(hex, `${version.gen}/${version.lastUpdateMs}/${version.tombstone}/${version.payload?.toString('base64') ?? ''}`);
    }
  }
  const differences: string[] = [];
  for (const [partition, nodes] of byPartition) {
    const owners = map.owners[partition];
    const copies = owners.map((id) => nodes.get(id) ?? new Map<string, string>());
    for (const records of copies) {
      for (const [hex, signature] of records) {
        const disagreeing = owners.filter((_, i) => copies[i].get(hex) !== signature);
        if (disagreeing.length > 0) differences.push(`p${partition} ${hex.slice(0, 8)} differs on ${disagreeing.join('+')}`);
      }
    }
  }
  return {
    strays,
    check: {
      name: 'replicas-identical',
      passed: differences.length === 0,
      detail: differences.length === 0 ? `${byPartition.size} partitions with data, owners identical; ${strays} stray copies on non-owners` : `${differences.length} differences: ${differences.slice(0, 5).join('; ')}`,
    },
  };
}

/**
 * Checker: no acknowledged compare-and-set write is lost, except as docs/cluster.md admits for
 * AP mode: a write W may be lost only if another version of the same register, written on a
 * master in a different cluster view, does not contain W and has a generation at least W's
 * (two views updated the record; the higher generation, then the later update time, won).
 */
export function checkRegisters(sim: SimCluster, ids: string[], workload: Workload): { check: CheckResult; admitted: number } {
  const map = sim.node(ids[0]).partitionMap;
  const lost: string[] = [];
  let admitted = 0;
  for (const [register, acks] of workload.registerAcks) {
    const digest = digestOf(register);
    const final = liveVersion(sim.nodes.get(map.owners[partitionOfDigest(digest)][0])!, digest.toString('hex'));
    const finalTokens = new Set(final === undefined ? [] : ((JSON.parse(final.payload!.toString()) as { tokens: string[] }).tokens ?? []));
    const history = workload.registerHistory.get(register) ?? [];
    for (const token of acks) {
      if (finalTokens.has(token)) continue;
      const write = history.find((w) => w.tokens[w.tokens.length - 1] === token);
      const divergent = write !== undefined && history.some((v) => v.viewKey !== write.viewKey && v.gen >= write.gen && !v.tokens.includes(token));
      if (divergent) admitted++;
      else lost.push(`${register}:${token}`);
    }
  }
  return {
    admitted,
    check: {
      name: 'registers-no-unadmitted-loss',
      passed: lost.length === 0,
      detail: lost.length === 0 ? `${workload.registerWrites} acknowledged CAS writes; ${admitted} lost to a divergent view (admitted)` : `${lost.length} lost: ${lost.slice(0, 5).join(' ')}`,
    },
  };
}

/**
 * Checker: read-your-writes. Every read of an acknowledged key found it, unless no running
 * member of the reading node's view held a copy at that moment (see Workload.checkRead).
 */
export function checkReadYourWrites(workload: Workload): CheckResult {
  const { reads, admitted, violations } = workload.readChecks;
  return {
    name: 'read-your-writes',
    passed: violations.length === 0,
    detail: violations.length === 0
      ? `${reads} reads of acknowledged keys, each saw the write; ${admitted} misses with every copy outside the reader's view (admitted)`
      : `${violations.length} reads hid an acknowledged write: ${violations.slice(0, 4).join('; ')}`,
  };
}

/**
 * Checker: a call answered with a "not applied" error code (GENERATION_MISMATCH,
 * RECORD_EXISTS, ...) was applied nowhere: no master ever executed a write carrying its token.
 */
export function checkDefiniteErrors(workload: Workload): CheckResult {
  const lies: string[] = [];
  for (const { register, token, code } of workload.definiteFailures) {
    const applied = (workload.registerHistory.get(register) ?? []).find((write) => write.tokens.includes(token));
    if (applied !== undefined) lies.push(`${register}:${token} answered ${code} but applied on ${applied.node} (gen ${applied.gen})`);
  }
  return {
    name: 'definite-errors-not-applied',
    passed: lies.length === 0,
    detail: lies.length === 0 ? `${workload.definiteFailures.length} calls answered "not applied", none applied anywhere` : `${lies.length}: ${lies.slice(0, 4).join('; ')}`,
  };
}

/** Checker: no write applied twice: no version of a register or log, executed or final, holds a token twice. */
export function checkAtMostOnce(sim: SimCluster, ids: string[], workload: Workload): CheckResult {
  const twice: string[] = [];
  const versions: { where: string; tokens: string[] }[] = [];
  for (const [register, history] of workload.registerHistory) for (const write of history) versions.push({ where: `${register} gen ${write.gen} on ${write.node}`, tokens: write.tokens });
  for (const id of ids) {
    for (const register of workload.registerHistory.keys()) {
      const version = liveVersion(sim.nodes.get(id)!, digestOf(register).toString('hex'));
      if (version !== undefined) versions.push({ where: `${register} final on ${id}`, tokens: (JSON.parse(version.payload!.toString()) as { tokens?: string[] }).tokens ?? [] });
    }
  }
  for (const { where, tokens } of versions) {
    if (new Set(tokens).size === tokens.length) continue;
    const seen = new Set<string>();
    twice.push(`${where}: ${tokens.filter((t) => seen.has(t) || !seen.add(t)).join(',')}`);
  }
  return {
    name: 'writes-applied-at-most-once',
    passed: twice.length === 0,
    detail: twice.length === 0 ? `${versions.length} register and log versions, no token twice` : `${twice.length} versions with a token twice: ${twice.slice(0, 4).join('; ')}`,
  };
}

/**
 * Checker (scenarios without network partitions or pauses): no client call failed because its
 * partition moved or the cluster re-formed. A conditional write's true answer (a CAS that lost
 * to another client: GENERATION_MISMATCH) is not a failure.
 */
export function checkNoClientErrors(workload: Workload): CheckResult {
  const errors = workload.clientErrors.filter((error) => !NOT_APPLIED_CODES.has(error.code) || error.code === 'PARTITION_UNAVAILABLE' || error.code === 'NOT_OPEN');
  const byCode = new Map<string, number>();
  for (const error of errors) byCode.set(`${error.call} ${error.code}`, (byCode.get(`${error.call} ${error.code}`) ?? 0) + 1);
  return {
    name: 'no-client-errors',
    passed: errors.length === 0,
    detail: errors.length === 0 ? 'no client call failed' : `${errors.length} failed: ${[...byCode].map(([what, n]) => `${n}x ${what}`).join(', ')}; first at ${errors[0]!.atMs - SCENARIO_START_MS} ms`,
  };
}

/** Checker: no store saw a record's generation go backwards while it held the record. */
export function checkGenerations(sim: SimCluster, ids: string[]): CheckResult {
  const violations = [...sim.retiredGenerationViolations];
  for (const id of ids) violations.push(...sim.nodes.get(id)!.store.generationViolations.map((v) => `${id}: ${v}`));
  return {
    name: 'generations-monotonic',
    passed: violations.length === 0,
    detail: violations.length === 0 ? 'no generation went backwards on any node' : `${violations.length}: ${violations.slice(0, 5).join('; ')}`,
  };
}
