/**
 * The simulator's LocalStore: an in-memory record store with a model of what a device
 * namespace keeps across a crash, and the storage faults the fault schedule injects.
 *
 * - Records are { bins } objects; payloads are their JSON. Conflict rule: the namespaces'
 *   own (lib/namespace/conflict.ts, rule 'generation'): generation, then last-update time,
 *   then content on a full tie.
 * - Durability ('device'): like Shoal's write path without `durable`, a write is acknowledged
 *   once it is in the open write block, and reaches the device when the block is flushed
 *   (every `flushIntervalMs`, Shoal's flushMaxMs). A process crash loses what was not
 *   flushed; the block being written at the crash may be torn, which per-record checksums
 *   detect on the cold scan, so a torn record is simply absent (the previous durable version,
 *   if any, is what the scan finds). Dropping a partition removes index entries only, so the
 *   dropped records come back on a cold start, as they would from a device.
 *   ('memory'): nothing survives a cold start.
 * - Warm restart keeps the live state exactly (the shared-memory index survived); cold
 *   restart rebuilds it from the durable image (see `recoverCold`).
 * - A failed write latches the store (`failWrites`): later writes fail at once with
 *   IO_ERROR and nothing changes; reads go on. A restart clears it.
 * - Invariant monitor: a record's generation never goes backwards while this store holds it;
 *   a violation is recorded in `generationViolations` (a checker reads it).
 * - Truncate (lib/cluster/truncation.ts): a cut removes the live records it covers and is
 *   kept across restarts (for 'device', as Shoal's device headers keep it; a cold start
 *   drops what it covers); versions it covers are refused from then on. Unlike the Db, the
 *   store does not wait for its clock to pass the cut (the simulated clocks do not lag).
 */
import { createHash } from 'node:crypto';
import { versionWins } from '../lib/namespace/conflict';
import { PARTITION_COUNT } from '../lib/constants';
import { partitionIdOf } from '../lib/model/key';
import type { ClusterRequest, ClusterTruncateCut, LocalResult, LocalStore, RecordVersion } from '../lib/cluster/local-store';
import type { Clock, Timers } from '../lib/cluster/seams';

export type SimOperation =
  | { call: 'put'; bins: Record<string, unknown> }
  | { call: 'get' }
  | { call: 'remove' }
  | { call: 'scan' }
  /** Compare-and-set register: applies only if the live generation is `expectGen` (0: absent); appends `token` to bin `tokens`. */
  | { call: 'cas'; expectGen: number; token: string }
  /** Unconditional append of `token` to bin `tokens` (like Aerospike's append or an incr: applying it twice shows). */
  | { call: 'append'; token: string };

/** 20-byte digest of a user key (SHA-1, as the tests' keys). */
export function digestOf(key: string): Buffer {
  return createHash('sha1').update(key).digest();
}

/** Partition id of a digest: lib/model/key.ts partitionIdOf, the formula written once. */
export function partitionOfDigest(digest: Uint8Array): number {
  return partitionIdOf(digest);
}

export interface SimStoreOptions {
  namespaces?: string[];
  /** 'device' keeps flushed writes across a cold restart; 'memory' keeps nothing. Default 'device'. */
  durability?: 'device' | 'memory';
  /** Flush period of the open write block (ms); needs `timers`. Default 1000. */
  flushIntervalMs?: number;
  /** Timers of the host the store runs on (flushes stop when the host crashes). */
  timers?: Timers;
  /** Called after every local write a request made (the simulator's history of executed writes). */
  onWrite?: (ns: string, version: RecordVersion) => void;
  /** Called when a read request executes here, with what it found (the read-your-writes checker). */
  onRead?: (ns: string, digest: Buffer, found: RecordVersion | undefined) => void;
  /**
   * Slow transfers (the long-migration workload): reading a partition for a migration pauses
   * this long after every `partitionReadBatch` records, as a device read would (needs `timers`).
   */
  partitionReadDelayMs?: number;
  partitionReadBatch?: number;
}

/** One write not yet flushed, or one flushed in the last flush (with the durable version it replaced). */
interface DurableChange {
  ns: string;
  hex: string;
  version: RecordVersion;
  previous: RecordVersion | undefined;
}


function storeError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

export class SimStore implements LocalStore {
  readonly data = new Map<string, Map<string, RecordVersion>>();
  /** Per namespace: per partition, the digests (hex) stored; and counts per partition. */
  private readonly partitions = new Map<string, Map<number, Set<string>>>();
  private readonly counts = new Map<string, number[]>();
  /** What a cold start finds on the device, per namespace (device durability only). */
  private readonly durable = new Map<string, Map<string, RecordVersion>>();
  private unflushed: DurableChange[] = [];
  private lastFlush: DurableChange[] = [];
  private flushTimer: unknown;
  /** Truncate cuts applied (one per namespace and set, the latest). */
  private cuts: ClusterTruncateCut[] = [];
  /** Versions applied by replication/migration, counted for tests. */
  applied = 0;
  /** Set by failWrites(): every write fails with IO_ERROR until a restart. */
  failed = false;
  /** Generation regressions seen on this store ("<hex> <old> -> <new>"). */
  readonly generationViolations: string[] = [];
  readonly options: Required<Omit<SimStoreOptions, 'timers' | 'onWrite' | 'onRead'>> & Pick<SimStoreOptions, 'timers' | 'onWrite' | 'onRead'>;

  constructor(private readonly clock: Clock, options: SimStoreOptions | string[] = {}) {
    const resolved = Array.isArray(options) ? { namespaces: options } : options;
    this.options = { namespaces: ['test'], durability: 'device', flushIntervalMs: 1000, partitionReadDelayMs: 0, partitionReadBatch: 16, ...resolved };
    for (const ns of this.options.namespaces) {
      this.data.set(ns, new Map());
      this.durable.set(ns, new Map());
      this.partitions.set(ns, new Map());
      this.counts.set(ns, new Array<number>(PARTITION_COUNT).fill(0));
    }
    const timers = this.options.timers;
    if (timers !== undefined && this.options.durability === 'device') {
      this.flushTimer = timers.setInterval(() => this.flush(), this.options.flushIntervalMs);
    }
  }

  /** Writes the open block to the device: unflushed writes become durable. */
  flush(): void {
    if (this.options.durability !== 'device' || this.unflushed.length === 0) return;
    for (const change of this.unflushed) {
      const image = this.durable.get(change.ns)!;
      change.previous = image.get(change.hex);
      image.set(change.hex, change.version);
    }
    this.lastFlush = this.unflushed;
    this.unflushed = [];
  }

  /** Latches the store into the failed state (a write or sync failed): writes fail with IO_ERROR. */
  failWrites(): void {
    this.failed = true;
  }

  /**
   * The store a cold restart of this node finds: for 'device', the durable image, with the
   * last flush torn after `tornAfter` of its records if given (the rest of that flush never
   * reached the device); for 'memory', nothing. The returned store runs on `timers`.
   */
  recoverCold(clock: Clock, timers: Timers | undefined, tornAfter?: number): SimStore {
    if (this.flushTimer !== undefined) this.options.timers?.clearInterval(this.flushTimer);
    if (tornAfter !== undefined && this.options.durability === 'device') {
      const torn = this.lastFlush.slice(Math.max(0, tornAfter));
      for (let i = torn.length - 1; i >= 0; i--) {
        const change = torn[i];
        const image = this.durable.get(change.ns)!;
        if (change.previous === undefined) image.delete(change.hex);
        else image.set(change.hex, change.previous);
      }
    }
    const recovered = new SimStore(clock, { ...this.options, timers });
    if (this.options.durability === 'device') {
      recovered.cuts = this.cuts.map((cut) => ({ ...cut }));
      for (const [ns, image] of this.durable) {
        for (const [hex, version] of image) {
          if (recovered.truncated(ns, version)) continue;
          recovered.durable.get(ns)!.set(hex, version);
          recovered.store(ns, hex, version, true);
        }
      }
    }
    return recovered;
  }

  /** The same live state on a restarted process (shared-memory index survived: warm restart). */
  recoverWarm(clock: Clock, timers: Timers | undefined): SimStore {
    if (this.flushTimer !== undefined) this.options.timers?.clearInterval(this.flushTimer);
    const recovered = new SimStore(clock, { ...this.options, timers });
    recovered.cuts = this.cuts.map((cut) => ({ ...cut }));
    for (const [ns, records] of this.data) for (const [hex, version] of records) recovered.store(ns, hex, version, true);
    for (const [ns, image] of this.durable) for (const [hex, version] of image) recovered.durable.get(ns)!.set(hex, version);
    // The open block of the crashed process is lost with it, but its records are in the
    // surviving index: they reach the device with the next flush.
    recovered.unflushed = this.unflushed.map((change) => ({ ...change }));
    return recovered;
  }

  /** Number of writes not yet flushed (for the fault schedule's reports). */
  get unflushedCount(): number {
    return this.unflushed.length;
  }

  /** Number of records in the last flush (the most a torn flush can lose). */
  get lastFlushCount(): number {
    return this.lastFlush.length;
  }

  private store(ns: string, hex: string, version: RecordVersion, recovering = false): void {
    const records = this.records(ns);
    const current = records.get(hex);
    if (current === undefined) {
      const partition = partitionOfDigest(version.digest);
      let set = this.partitions.get(ns)!.get(partition);
      if (set === undefined) this.partitions.get(ns)!.set(partition, (set = new Set()));
      set.add(hex);
      this.counts.get(ns)![partition]++;
    } else if (version.gen < current.gen) {
      this.generationViolations.push(`${ns}/${hex} gen ${current.gen} -> ${version.gen}`);
    }
    records.set(hex, version);
    if (!recovering && this.options.durability === 'device') this.unflushed.push({ ns, hex, version, previous: undefined });
  }

  namespaceNames(): string[] {
    return [...this.data.keys()];
  }

  private records(ns: string): Map<string, RecordVersion> {
    const records = this.data.get(ns);
    if (records === undefined) throw storeError('INVALID_ARGUMENT', `unknown namespace ${ns}`);
    return records;
  }

  private checkWritable(): void {
    if (this.failed) throw storeError('IO_ERROR', 'simulated device failure: the store is latched failed; restart the node');
  }

  async executeLocal(request: ClusterRequest): Promise<LocalResult> {
    const operation = request.operation as SimOperation;
    const records = this.records(request.ns);
    if (request.kind === 'scan') {
      const value: unknown[] = [];
      const wanted = new Set(request.partitions);
      for (const version of records.values()) {
        if (!version.tombstone && wanted.has(partitionOfDigest(version.digest))) value.push(JSON.parse(version.payload!.toString()));
      }
      return { value, writes: [] };
    }
    const hex = request.digest.toString('hex');
    const current = records.get(hex);
    const live = current !== undefined && !current.tombstone ? current : undefined;
    const bins = (): Record<string, unknown> => (live === undefined ? {} : JSON.parse(live.payload!.toString()));
    switch (operation.call) {
      case 'get':
        this.options.onRead?.(request.ns, request.digest, live);
        return { value: live === undefined ? undefined : { bins: bins(), gen: live.gen }, writes: [] };
      case 'put':
        return this.write(request.ns, request.digest, current, { ...bins(), ...operation.bins });
      case 'cas': {
        const liveGen = live?.gen ?? 0;
        if (liveGen !== operation.expectGen) throw storeError('GENERATION_MISMATCH', `generation is ${liveGen}, expected ${operation.expectGen}`);
        const previous = bins();
        const tokens = Array.isArray(previous.tokens) ? (previous.tokens as string[]) : [];
        return this.write(request.ns, request.digest, current, { tokens: [...tokens, operation.token] });
      }
      case 'append': {
        const previous = bins();
        const tokens = Array.isArray(previous.tokens) ? (previous.tokens as string[]) : [];
        return this.write(request.ns, request.digest, current, { tokens: [...tokens, operation.token] });
      }
      case 'remove': {
        if (live === undefined) return { value: false, writes: [] };
        this.checkWritable();
        const version: RecordVersion = { ...live, gen: live.gen + 1, lastUpdateMs: Math.max(this.clock.nowMs(), live.lastUpdateMs + 1), tombstone: true, payload: undefined };
        this.store(request.ns, hex, version);
        this.options.onWrite?.(request.ns, version);
        return { value: true, writes: [{ ns: request.ns, version }] };
      }
      default:
        throw storeError('INVALID_ARGUMENT', 'unknown operation');
    }
  }

  private write(ns: string, digest: Buffer, current: RecordVersion | undefined, bins: Record<string, unknown>): LocalResult {
    this.checkWritable();
    const version: RecordVersion = {
      digest: Buffer.from(digest),
      gen: (current?.gen ?? 0) + 1,
      voidTime: 0,
      lastUpdateMs: Math.max(this.clock.nowMs(), (current?.lastUpdateMs ?? 0) + 1),
      setName: '',
      tombstone: false,
      payload: Buffer.from(JSON.stringify(bins)),
    };
    this.store(ns, digest.toString('hex'), version);
    this.options.onWrite?.(ns, version);
    return { value: { gen: version.gen }, writes: [{ ns, version }] };
  }

  async readRecordVersion(ns: string, digest: Buffer): Promise<RecordVersion | undefined> {
    return this.records(ns).get(digest.toString('hex'));
  }

  async applyRecordVersion(ns: string, version: RecordVersion): Promise<'applied' | 'stale'> {
    const records = this.records(ns);
    const hex = version.digest.toString('hex');
    const current = records.get(hex);
    if (this.truncated(ns, version)) return 'stale';
    if (current !== undefined && !versionWins(version, current, 'generation')) return 'stale';
    this.checkWritable();
    this.store(ns, hex, version);
    this.applied++;
    return 'applied';
  }

  async *iteratePartition(ns: string, partitionId: number): AsyncIterable<RecordVersion> {
    const records = this.records(ns);
    const { partitionReadDelayMs, partitionReadBatch, timers } = this.options;
    let read = 0;
    for (const hex of [...(this.partitions.get(ns)!.get(partitionId) ?? [])]) {
      if (partitionReadDelayMs > 0 && timers !== undefined && ++read % partitionReadBatch === 0) {
        await new Promise<void>((resolve) => timers.setTimeout(resolve, partitionReadDelayMs));
      }
      const version = records.get(hex);
      if (version !== undefined) yield version;
    }
  }

  async dropPartition(ns: string, partitionId: number): Promise<number> {
    const records = this.records(ns);
    const set = this.partitions.get(ns)!.get(partitionId);
    if (set === undefined) return 0;
    for (const hex of set) records.delete(hex);
    this.partitions.get(ns)!.delete(partitionId);
    this.counts.get(ns)![partitionId] = 0;
    return set.size;
  }

  truncateCuts(): ClusterTruncateCut[] {
    return this.cuts.map((cut) => ({ ...cut }));
  }

  async applyTruncate(cut: ClusterTruncateCut): Promise<number> {
    const records = this.records(cut.ns);
    const known = this.cuts.find((k) => k.ns === cut.ns && k.set === cut.set);
    if (known !== undefined) known.beforeMs = Math.max(known.beforeMs, cut.beforeMs);
    else this.cuts.push({ ...cut });
    let removed = 0;
    for (const [hex, version] of [...records]) {
      if (!this.truncated(cut.ns, version)) continue;
      if (!version.tombstone) removed++;
      records.delete(hex);
      const partition = partitionOfDigest(version.digest);
      this.partitions.get(cut.ns)!.get(partition)?.delete(hex);
      this.counts.get(cut.ns)![partition]--;
    }
    return removed;
  }

  /** Whether a cut applied here covers `version`. */
  private truncated(ns: string, version: RecordVersion): boolean {
    return this.cuts.some((cut) => cut.ns === ns && version.lastUpdateMs < cut.beforeMs && (cut.set === null || cut.set === version.setName));
  }

  partitionCounts(ns: string): number[] {
    this.records(ns);
    return this.counts.get(ns)!;
  }

  /** Live (non-tombstone) records of a namespace. */
  liveCount(ns = 'test'): number {
    let count = 0;
    for (const version of this.records(ns).values()) if (!version.tombstone) count++;
    return count;
  }

  /** Stops the flush timer (the node stopped cleanly: a clean close flushes first). */
  close(): void {
    this.flush();
    if (this.flushTimer !== undefined) this.options.timers?.clearInterval(this.flushTimer);
    this.flushTimer = undefined;
  }
}
