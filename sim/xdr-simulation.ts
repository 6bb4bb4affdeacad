/**
 * The `xdr` simulator scenario (docs/xdr.md, "Simulation"): two or three clusters shipping to
 * each other (active-active; three make a full mesh, so versions are also forwarded), under a
 * seeded schedule of cross-cluster faults and clock skew, then a convergence checker.
 *
 * What runs is Shoal's own receiving side and clock: each cluster is one `XdrStore`
 * (lib/xdr/store.ts: the hybrid clock advanced by received versions, removals stamped by it,
 * the recent-removal memory, conflict detection) over an in-memory store that applies the
 * namespaces' rules (lib/namespace/semantics.ts: a write is stamped max(clock, stored + 1);
 * lib/namespace/conflict.ts: 'lastUpdateTime', then generation, then content). The shipper is
 * a model of lib/xdr/shipper.ts: one entry per record, coalesced, the record's current version
 * read when its turn comes (its tombstone if it is gone), a record in at most one batch in
 * flight, a batch retried after a timeout without an answer.
 *
 * Faults: each cluster's clock is skewed by up to ±5 s and steps back or forward now and then;
 * messages between clusters are delayed (1..300 ms), lost (3 %), delivered twice (5 %, the
 * second copy up to 1.5 s later: a retry while the first was still being applied) and
 * reordered; links between two clusters are cut for 0.5..4 s at a time.
 *
 * Checks, once writes and faults stop and every queue drains:
 * - `drained`: nothing left to ship within 60 simulated seconds;
 * - `identical`: every cluster holds the same records (generation, time and content);
 * - `winner`: each record is the greatest of its acknowledged versions by the conflict order
 *   (the one every cluster must keep), or absent when that is a removal;
 * - `causality`: no acknowledged write that causally follows the winner (by vector clocks:
 *   made where the winner, or something after it, had arrived) exists: an update that
 *   follows another is never lost, whatever the skew;
 * - `conflicts`: every record with a write lost to a concurrent one had a conflict counted.
 */
import type { LocalResult, LocalStore, RecordVersion } from '../lib/cluster/local-store';
import { SeededRandom } from '../lib/cluster/seams';
import { type Clock, HybridClock } from '../lib/clock';
import { PARTITION_COUNT } from '../lib/constants';
import { compareVersions, tieWins, versionWins } from '../lib/namespace/conflict';
import { nextGeneration, nextLastUpdateMs } from '../lib/namespace/semantics';
import { XdrStore, xdrApplyOperation } from '../lib/xdr/store';
import { digestOf } from './store';

export interface XdrScenarioOptions {
  seed: number;
  /** 2 (default) or 3 clusters. */
  clusters?: number;
  /** Simulated ms of writes and faults (default 20,000). */
  faultMs?: number;
  /** Keys the clients write (default 24: small, so that writes collide). */
  keys?: number;
}

export interface XdrCheck {
  name: string;
  passed: boolean;
  detail: string;
}

export interface XdrScenarioResult {
  seed: number;
  passed: boolean;
  checks: XdrCheck[];
  writes: number;
  /** Conflicts counted by the receiving sides. */
  conflicts: number;
  /** Acknowledged writes lost to a concurrent write (not in the winner's causal past). */
  concurrentLosses: number;
  skewsMs: number[];
  faults: Record<string, number>;
  simulatedMs: number;
}

const NS = 'test';
const START_MS = 1_700_000_000_000;
const SHIP_TIMEOUT_MS = 1_000;
const BATCH_RECORDS = 8;
const BATCHES_IN_FLIGHT = 4;
const DRAIN_WITHIN_MS = 60_000;

/** A discrete-event queue of simulated time; handlers run one at a time, awaited. */
class Events {
  now = START_MS;
  private seq = 0;
  private readonly queue: { at: number; seq: number; run: () => unknown }[] = [];

  at(delayMs: number, run: () => unknown): void {
    const event = { at: this.now + Math.max(0, delayMs), seq: this.seq++, run };
    let low = 0;
    let high = this.queue.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      const other = this.queue[mid]!;
      if (other.at < event.at || (other.at === event.at && other.seq < event.seq)) low = mid + 1;
      else high = mid;
    }
    this.queue.splice(low, 0, event);
  }

  /** Runs events until none is left before `untilMs` or `stop()` holds. */
  async run(untilMs: number, stop: () => boolean = () => false): Promise<void> {
    while (this.queue.length > 0 && this.queue[0]!.at <= untilMs && !stop()) {
      const event = this.queue.shift()!;
      this.now = event.at;
      await event.run();
    }
    if (this.now < untilMs && !stop()) this.now = untilMs;
  }
}

/** The namespace as far as XDR sees it: live records only (a removal is an absence), the namespaces' write and conflict rules. */
class MemoryRecords implements LocalStore {
  readonly records = new Map<string, RecordVersion>();

  constructor(private readonly clock: Clock, private readonly physical: Clock) {}

  namespaceNames(): string[] {
    return [NS];
  }

  async executeLocal(request: Parameters<LocalStore['executeLocal']>[0]): Promise<LocalResult> {
    if (request.kind !== 'record') throw new Error('only record requests');
    const hex = request.digest.toString('hex');
    const current = this.records.get(hex);
    const operation = request.operation as { sim: 'put'; bins: Record<string, unknown> } | { sim: 'remove' };
    if (operation.sim === 'remove') {
      if (current === undefined) return { value: false, writes: [] };
      this.records.delete(hex);
      // As lib/db-cluster.ts stamps a removal: the wall clock, past the copy removed.
      const tombstone: RecordVersion = { digest: request.digest, gen: current.gen + 1, voidTime: 0, lastUpdateMs: Math.max(this.physical.nowMs(), current.lastUpdateMs + 1), setName: 's', tombstone: true, payload: undefined };
      return { value: true, writes: [{ ns: NS, version: tombstone }] };
    }
    const before = current === undefined ? { exists: false, gen: 0, voidTime: 0, lastUpdateMs: 0 } : { exists: true, gen: current.gen, voidTime: 0, lastUpdateMs: current.lastUpdateMs };
    const version: RecordVersion = {
      digest: request.digest,
      gen: nextGeneration(before.gen),
      voidTime: 0,
      lastUpdateMs: nextLastUpdateMs(before, this.clock.nowMs()),
      setName: 's',
      tombstone: false,
      payload: Buffer.from(JSON.stringify(operation.bins)),
    };
    this.records.set(hex, version);
    return { value: true, writes: [{ ns: NS, version }] };
  }

  async readRecordVersion(_ns: string, digest: Buffer): Promise<RecordVersion | undefined> {
    return this.records.get(digest.toString('hex'));
  }

  /** As memory-namespace.ts applyNow: replaces the local copy if the version wins; a removal of nothing applies. */
  async applyRecordVersion(_ns: string, version: RecordVersion): Promise<'applied' | 'stale'> {
    const hex = version.digest.toString('hex');
    const current = this.records.get(hex);
    if (current !== undefined) {
      const order = compareVersions(version, current, 'lastUpdateTime');
      if (order < 0 || (order === 0 && !tieWins(version, current))) return 'stale';
    }
    if (version.tombstone) this.records.delete(hex);
    else this.records.set(hex, version);
    return 'applied';
  }

  async *iteratePartition(): AsyncIterable<RecordVersion> {}

  async dropPartition(): Promise<number> {
    return 0;
  }

  partitionCounts(): ArrayLike<number> {
    return new Array<number>(PARTITION_COUNT).fill(0);
  }
}

interface Write {
  id: number;
  cluster: number;
  key: number;
  version: RecordVersion;
  /** Vector clock: writes of each cluster this one follows (its own included). */
  vc: number[];
}

interface Entry {
  tombstone: RecordVersion | undefined;
}

interface Cluster {
  index: number;
  name: string;
  skewMs: number;
  clock: HybridClock;
  records: MemoryRecords;
  store: XdrStore;
  vc: number[];
  /** Shippers by destination index. */
  shippers: Map<number, Shipper>;
}

/** A model of lib/xdr/shipper.ts from one cluster to another. */
class Shipper {
  readonly pending = new Map<string, Entry>();
  readonly inFlight = new Set<string>();
  batches = 0;

  constructor(private readonly sim: XdrSimulation, private readonly from: Cluster, private readonly to: Cluster) {}

  note(version: RecordVersion): void {
    const hex = version.digest.toString('hex');
    const entry = this.pending.get(hex);
    if (entry === undefined) this.pending.set(hex, { tombstone: version.tombstone ? version : undefined });
    else if (version.tombstone) entry.tombstone = version;
    this.sim.events.at(0, () => this.pump());
  }

  holds(hex: string): boolean {
    return this.pending.has(hex) || this.inFlight.has(hex);
  }

  pump(): void {
    while (this.batches < BATCHES_IN_FLIGHT) {
      const batch: { hex: string; entry: Entry; version: RecordVersion }[] = [];
      for (const [hex, entry] of this.pending) {
        if (this.inFlight.has(hex)) continue;
        const version = this.from.records.records.get(hex) ?? entry.tombstone;
        this.pending.delete(hex);
        if (version === undefined) continue;
        batch.push({ hex, entry, version });
        if (batch.length >= BATCH_RECORDS) break;
      }
      if (batch.length === 0) return;
      this.send(batch);
    }
  }

  private send(batch: { hex: string; entry: Entry; version: RecordVersion }[]): void {
    this.batches++;
    for (const item of batch) this.inFlight.add(item.hex);
    let settled = false;
    const settle = (acknowledged: boolean) => {
      if (settled) return;
      settled = true;
      this.batches--;
      for (const item of batch) {
        this.inFlight.delete(item.hex);
        // Not acknowledged: back in the queue (a newer write meanwhile is already there).
        if (!acknowledged && !this.pending.has(item.hex)) this.pending.set(item.hex, item.entry);
      }
      this.pump();
    };
    const versions = batch.map((item) => item.version);
    this.sim.transmit(this.from.index, this.to.index, async () => {
      await this.sim.receive(this.to, this.from, versions);
      this.sim.transmit(this.to.index, this.from.index, () => settle(true));
    });
    this.sim.events.at(SHIP_TIMEOUT_MS, () => settle(false));
  }
}

export class XdrSimulation {
  readonly events = new Events();
  readonly random: SeededRandom;
  readonly clusters: Cluster[] = [];
  readonly writes: Write[] = [];
  private readonly writeOf = new Map<string, Write>();
  readonly conflictsPerKey = new Map<string, number>();
  conflicts = 0;
  readonly faults: Record<string, number> = { lost: 0, duplicated: 0, cut: 0, clockSteps: 0 };
  /** Links cut until a time: "from>to" → ms. */
  private readonly cutUntil = new Map<string, number>();
  faulty = true;

  constructor(private readonly options: Required<XdrScenarioOptions>) {
    this.random = new SeededRandom(options.seed);
    for (let i = 0; i < options.clusters; i++) this.clusters.push(this.makeCluster(i));
    for (const from of this.clusters) for (const to of this.clusters) if (from !== to) from.shippers.set(to.index, new Shipper(this, from, to));
  }

  private makeCluster(index: number): Cluster {
    const skewMs = this.random.nextInt(10_001) - 5_000;
    const cluster = { index, name: `dc${index + 1}`, skewMs } as Cluster;
    const physical: Clock = { nowMs: () => Math.floor(this.events.now + cluster.skewMs) };
    cluster.clock = new HybridClock(physical);
    cluster.records = new MemoryRecords(cluster.clock, physical);
    cluster.store = new XdrStore(cluster.records, cluster.clock);
    cluster.vc = new Array<number>(this.options.clusters).fill(0);
    cluster.shippers = new Map();
    cluster.store.observer = (writes, shippedFrom) => {
      for (const [to, shipper] of cluster.shippers) if (this.clusters[to]!.name !== shippedFrom) for (const write of writes) shipper.note(write.version);
    };
    cluster.store.unshipped = (clusterName, _ns, digest) => [...cluster.shippers.entries()].some(([to, shipper]) => this.clusters[to]!.name === clusterName && shipper.holds(digest.toString('hex')));
    return cluster;
  }

  /** Sends a message from one cluster to another through the faults: delayed, maybe lost, maybe twice. */
  transmit(from: number, to: number, deliver: () => unknown): void {
    if (this.faulty && (this.events.now < (this.cutUntil.get(`${from}>${to}`) ?? 0) || this.random.nextFloat() < 0.03)) {
      this.faults.lost!++;
      return;
    }
    this.events.at(1 + this.random.nextInt(300), deliver);
    if (this.faulty && this.random.nextFloat() < 0.05) {
      this.faults.duplicated!++;
      this.events.at(1 + this.random.nextInt(1_500), deliver);
    }
  }

  /** A ship message arriving: each version applied by the destination's store, as lib/xdr/xdr.ts receive() does. */
  async receive(at: Cluster, from: Cluster, versions: RecordVersion[]): Promise<void> {
    for (const version of versions) {
      const result = await at.store.executeLocal({ kind: 'record', ns: NS, digest: version.digest, operation: xdrApplyOperation(from.name, version) });
      const outcome = result.value as string;
      const write = this.writeOf.get(versionKey(version));
      if (write !== undefined) for (let i = 0; i < at.vc.length; i++) at.vc[i] = Math.max(at.vc[i]!, write.vc[i]!);
      if (outcome.startsWith('conflict')) {
        this.conflicts++;
        const hex = version.digest.toString('hex');
        this.conflictsPerKey.set(hex, (this.conflictsPerKey.get(hex) ?? 0) + 1);
      }
    }
  }

  async clientWrite(cluster: Cluster): Promise<void> {
    const key = this.random.nextInt(this.options.keys);
    const digest = digestOf(`k${key}`);
    const remove = this.random.nextFloat() < 0.2;
    const id = this.writes.length;
    const operation = remove ? { sim: 'remove' } : { sim: 'put', bins: { v: id, from: cluster.name } };
    const result = await cluster.store.executeLocal({ kind: 'record', ns: NS, digest, operation });
    if (result.writes.length === 0) return;
    cluster.vc[cluster.index]!++;
    const write: Write = { id, cluster: cluster.index, key, version: result.writes[0]!.version, vc: [...cluster.vc] };
    this.writes.push(write);
    this.writeOf.set(versionKey(write.version), write);
  }

  private schedule(): void {
    const endMs = START_MS + this.options.faultMs;
    const writeLoop = () => {
      if (this.events.now >= endMs) return;
      this.events.at(5 + this.random.nextInt(60), async () => {
        await this.clientWrite(this.clusters[this.random.nextInt(this.clusters.length)]!);
        writeLoop();
      });
    };
    writeLoop();
    const faultLoop = () => {
      this.events.at(200 + this.random.nextInt(1_500), () => {
        if (this.events.now >= endMs) return;
        if (this.random.nextFloat() < 0.5) {
          const a = this.random.nextInt(this.clusters.length);
          const b = (a + 1 + this.random.nextInt(this.clusters.length - 1)) % this.clusters.length;
          const until = this.events.now + 500 + this.random.nextInt(3_500);
          this.cutUntil.set(`${a}>${b}`, until);
          this.cutUntil.set(`${b}>${a}`, until);
          this.faults.cut!++;
        } else {
          // A wall-clock step: back up to 2 s, or forward up to 1 s.
          this.clusters[this.random.nextInt(this.clusters.length)]!.skewMs += this.random.nextInt(3_001) - 2_000;
          this.faults.clockSteps!++;
        }
        faultLoop();
      });
    };
    faultLoop();
  }

  private queued(): boolean {
    return this.clusters.some((cluster) => [...cluster.shippers.values()].some((shipper) => shipper.pending.size > 0 || shipper.inFlight.size > 0));
  }

  async run(): Promise<XdrScenarioResult> {
    this.schedule();
    await this.events.run(START_MS + this.options.faultMs);
    this.faulty = false;
    this.cutUntil.clear();
    await this.events.run(START_MS + this.options.faultMs + DRAIN_WITHIN_MS, () => !this.queued() && this.events.now > START_MS + this.options.faultMs + 2 * SHIP_TIMEOUT_MS);
    const drained = !this.queued();
    return this.check(drained);
  }

  private check(drained: boolean): XdrScenarioResult {
    const checks: XdrCheck[] = [{ name: 'drained', passed: drained, detail: drained ? 'every queue empty' : 'records still queued after 60 s' }];
    const differing: string[] = [];
    const wrongWinner: string[] = [];
    const causal: string[] = [];
    const uncounted: string[] = [];
    let concurrentLosses = 0;
    for (let key = 0; key < this.options.keys; key++) {
      const hex = digestOf(`k${key}`).toString('hex');
      const states = this.clusters.map((cluster) => cluster.records.records.get(hex));
      const describe = (v: RecordVersion | undefined) => (v === undefined ? 'absent' : `gen ${v.gen} lut ${v.lastUpdateMs} ${v.payload!.toString()}`);
      if (new Set(states.map(describe)).size > 1) differing.push(`k${key}: ${states.map(describe).join(' | ')}`);
      const writes = this.writes.filter((write) => write.key === key);
      if (writes.length === 0) continue;
      const winner = writes.reduce((best, write) => (versionWins(write.version, best.version, 'lastUpdateTime') ? write : best));
      const expected = winner.version.tombstone ? 'absent' : describe(winner.version);
      if (describe(states[0]) !== expected) wrongWinner.push(`k${key}: holds ${describe(states[0])}, the greatest version is write ${winner.id} (${expected})`);
      for (const write of writes) {
        if (write === winner) continue;
        if (write.vc[winner.cluster]! >= winner.vc[winner.cluster]!) causal.push(`k${key}: write ${write.id} at dc${write.cluster + 1} followed write ${winner.id} at dc${winner.cluster + 1} and lost to it`);
        else if (winner.vc[write.cluster]! < write.vc[write.cluster]!) concurrentLosses++;
      }
      const lostConcurrently = writes.some((write) => write !== winner && winner.vc[write.cluster]! < write.vc[write.cluster]! && write.vc[winner.cluster]! < winner.vc[winner.cluster]!);
      if (lostConcurrently && (this.conflictsPerKey.get(hex) ?? 0) === 0) uncounted.push(`k${key}`);
    }
    const report = (name: string, problems: string[], ok: string) => checks.push({ name, passed: problems.length === 0, detail: problems.length === 0 ? ok : `${problems.length}: ${problems.slice(0, 3).join('; ')}` });
    report('identical', differing, 'every record the same on every cluster');
    report('winner', wrongWinner, 'each record is its greatest acknowledged version');
    report('causality', causal, 'no write that followed the winner was lost');
    report('conflicts', uncounted, 'every record with a concurrent loss had a conflict counted');
    return {
      seed: this.options.seed,
      passed: checks.every((check) => check.passed),
      checks,
      writes: this.writes.length,
      conflicts: this.conflicts,
      concurrentLosses,
      skewsMs: this.clusters.map((cluster) => cluster.skewMs),
      faults: this.faults,
      simulatedMs: this.events.now - START_MS,
    };
  }
}

function versionKey(version: RecordVersion): string {
  return `${version.digest.toString('hex')}:${version.gen}:${version.lastUpdateMs}:${version.tombstone ? 't' : version.payload!.toString()}`;
}

/** Runs the `xdr` scenario for one seed. */
export async function runXdrScenario(options: XdrScenarioOptions): Promise<XdrScenarioResult> {
  const resolved = { seed: options.seed, clusters: options.clusters ?? 2, faultMs: options.faultMs ?? 20_000, keys: options.keys ?? 24 };
  if (resolved.clusters < 2 || resolved.clusters > 3) throw new RangeError('clusters: 2 or 3');
  return new XdrSimulation(resolved).run();
}
