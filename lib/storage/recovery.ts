/**
 * Recovery from an index checkpoint (docs/storage.md, "Restart after a crash"): after a crash,
 * a kill or a reboot, a device namespace loads the index its last checkpoint saved
 * (index-file.ts) and replays only the blocks written since, with the cold start's
 * newest-copy rules, instead of scanning every device. It is used only when every check below
 * holds; otherwise the caller gets the reason (for its log line) and runs the full cold start.
 *
 * Validation, in order (nothing is changed before the first six pass):
 *  1. the file is whole: magic, version, length, the CRC-32C of its lead and of its facts (the
 *     image's pieces are checked as they load, step 5);
 *  2. it belongs to these devices: signature, device count, block counts;
 *  3. it was taken by the run that last had the devices open: its open stamp is the one every
 *     device header carries (a file from an older run, or devices restored from a copy, fail);
 *  4. the devices' block headers (read again, all of them) agree with its block tables: a block
 *     either keeps the sequence it had at the checkpoint, or was freed since (sequence 0), or
 *     was reused since (a sequence at or above the checkpoint sequence, since sequences only
 *     grow); anything else means the devices have another history;
 *  5. the image loads (read straight into the index's segments on worker threads): every
 *     piece's CRC-32C, its numbers in bounds, every bucket and chain link inside it, as many
 *     live entries as its head says;
 *  6. the index is without data (dataInMemory namespaces keep the full cold start).
 * Then: every entry whose block was freed or reused since the checkpoint is removed (its
 * record was moved into a newer block, which the replay reads, or was gone already); the
 * blocks at or above the checkpoint sequence are scanned newest first, and each digest's
 * newest copy there replaces the image's entry (a live copy), removes it (a tombstone, kept in
 * the tombstone table), or removes it and is kept as a shadow (expired or truncated); every
 * truncate marker is applied to the index; live bytes start from what the loaded entries and
 * the kept tombstones hold (counted while the image loads) and follow every change.
 */
import { TRUNCATE_SLOTS_PER_STEP } from '../constants';
import type { NativePrimaryIndex } from '../native/addon';
import { ENTRY_EXISTED, ENTRY_ID, ENTRY_LOCATION_HIGH, ENTRY_LOCATION_LOW, EX_DIGEST, type Exchange, FLAG_HAS_KEY } from '../native/exchange';
import { coldStartScan, type ColdStartRecord } from './cold-start';
import { nextTurn } from './event-loop';
import { locationBlock, locationDevice, locationSize } from './format';
import { type CheckpointFile, readCheckpointFile } from './index-file';
import type { StoreState } from './store-state';
import { scanOf } from './store-start';
import type { StateFileIo, Tombstone } from './warm-state';

/** What recovery needs of the namespace: its fresh, empty index and its set table. */
export interface RecoveryTarget {
  index: NativePrimaryIndex;
  exchange: Exchange;
  /** The checkpoint's set names (by id) become the namespace's set table. */
  adoptSets(names: string[]): void;
  /** The id of a set name, assigned on first use (replayed records may bring new sets). */
  setIdFor(name: string): number;
  /** The id of a set name, or undefined when no record has it. */
  setIdOf(name: string): number | undefined;
}

export interface RecoveryReport {
  /** Entries the checkpoint's image held. */
  checkpointEntries: number;
  /** Entries removed because their block was freed or reused since the checkpoint. */
  staleEntries: number;
  /** Blocks at or above the checkpoint sequence, read and replayed. */
  blocksReplayed: number;
  /** Newest copies replayed (live, tombstones and shadows). */
  recordsReplayed: number;
  /** Entries the truncate markers removed. */
  truncated: number;
  /** Bytes of the checkpoint file, and of the tail read. */
  fileBytes: number;
  bytesReplayed: number;
  /** The checkpoint's age at the start (ms, by the namespace's clock). */
  checkpointAgeMs: number;
  ms: number;
  /**
   * Where the time went (ms), one after the other: reading and checking the file, reading
   * every block header, loading the image (dropping stale entries, counting live bytes), then
   * applying the tail (and the truncate markers). The tail's reads (tailReadMs: the scan's
   * reading and parsing) overlap the load. Before recovery (the namespace fills them in):
   * opening the devices (their headers read and written), and attaching and dropping the
   * killed run's shared-memory index.
   */
  phases: { fileMs: number; headersMs: number; loadMs: number; replayMs: number; tailReadMs: number; devicesMs?: number; segmentsMs?: number };
}

const HEADERS_ONLY = Number.MAX_SAFE_INTEGER;

/** The namespace's log line for a recovery (its report) or for the reason there was none; `why` is why it did not start warm. */
export function recoveryLogLine(outcome: RecoveryReport | string, why: string): string {
  if (typeof outcome === 'string') return `no recovery from the index checkpoint: ${outcome}`;
  return (
    `recovered from the index checkpoint (${why}): ${outcome.checkpointEntries} entries loaded, ${outcome.staleEntries} stale ones dropped, ` +
    `${outcome.blocksReplayed} blocks replayed (${(outcome.bytesReplayed / 1e6).toFixed(1)} MB, ${outcome.recordsReplayed} records), in ${outcome.ms.toFixed(0)} ms`
  );
}

/**
 * Recovers the store's block tables and tombstones and the target's index from the checkpoint
 * file. Returns the report, or the reason it could not (the store's tables and the index are
 * then as they were: empty; the caller reopens the index before its cold start).
 * @param headerStamp the open stamp every device header carried at open, or undefined when they differ
 * Never throws: any failure is a reason.
 */
export async function recoverFromCheckpoint(state: StoreState, io: StateFileIo, file: string, headerStamp: { high: number; low: number } | undefined, target: RecoveryTarget): Promise<RecoveryReport | string> {
  const started = performance.now();
  const read = await readCheckpointFile(io, file);
  if (typeof read === 'string') return read;
  try {
    const fileMs = performance.now() - started;
    const refusal = checkAgainstDevices(state, read, headerStamp);
    if (refusal !== undefined) return refusal;
    const outcome = await replay(state, read, target, fileMs);
    if (typeof outcome === 'string') {
      reset(state);
      return outcome;
    }
    outcome.ms = performance.now() - started;
    return outcome;
  } catch (error) {
    // A device that cannot be read fails the cold start the same way; anything else (a set
    // table full, the index out of memory) is one more reason to fall back to it.
    reset(state);
    return `its recovery from the index checkpoint failed (${(error as Error).message})`;
  } finally {
    await read.handle.close().catch(() => undefined);
  }
}

/** Checks 2 and 3 (the file's identity), before any device is read. */
function checkAgainstDevices(state: StoreState, read: CheckpointFile, headerStamp: { high: number; low: number } | undefined): string | undefined {
  const facts = read.facts;
  if (facts.signatureHigh !== state.signatureHigh || facts.signatureLow !== state.signatureLow) return 'its index checkpoint file belongs to other devices (another signature)';
  if (facts.sequences.length !== state.devices.length || facts.sequences.some((table, device) => table.length !== state.devices[device]!.blockCount)) {
    return 'its index checkpoint file describes another device geometry';
  }
  if (headerStamp === undefined) return 'its devices were last opened in different runs (their open stamps differ)';
  if (facts.stamp.high !== headerStamp.high || facts.stamp.low !== headerStamp.low) {
    return 'its index checkpoint file was taken by an earlier run than the one that last had the devices open (their open stamps differ)';
  }
  if (!(facts.checkpointSequence >= 1 && facts.checkpointSequence <= facts.nextSequence)) return 'its index checkpoint file is damaged (sequences)';
  return undefined;
}

async function replay(state: StoreState, read: CheckpointFile, target: RecoveryTarget, fileMs: number): Promise<RecoveryReport | string> {
  const { facts, image } = read;
  const since = facts.checkpointSequence;
  let mark = performance.now();
  const lap = () => {
    const now = performance.now();
    const ms = now - mark;
    mark = now;
    return ms;
  };
  // Check 4: every block header, against the checkpoint's tables.
  await scanFrom(state, HEADERS_ONLY, () => undefined);
  const devices = state.devices.length;
  const stride = Math.max(...state.devices.map((device) => device.blockCount));
  const kept = new Uint8Array(stride * devices);
  let blocksReplayed = 0;
  for (const [deviceIndex, device] of state.devices.entries()) {
    const then = facts.sequences[deviceIndex]!;
    for (let block = 0; block < device.blockCount; block++) {
      const now = device.sequences[block]!;
      const before = then[block]!;
      if (now !== 0 && now === before) kept[deviceIndex * stride + block] = 1;
      else if (now !== 0 && now < since) return `its devices do not match its index checkpoint file (device ${deviceIndex} block ${block} has sequence ${now}, the checkpoint knew ${before})`;
      if (now >= since) blocksReplayed++;
    }
  }
  const headersMs = lap();
  // Check 5, the image (loadImage), and meanwhile the tail's reads: the scan of the blocks at
  // or above S starts now, on its own threads, but hands nothing over before the image is
  // loaded and its live bytes counted (or refused: then nothing is applied). Both are awaited
  // whatever happens, so no read outlives this call.
  const apply = new TailApplier(state, target);
  let loadedMs = 0;
  const loading = loadImage(state, read, target, kept, stride).then(
    (outcome) => {
      loadedMs = lap();
      return outcome;
    },
    (error: unknown) => error as Error,
  );
  const loadedWell = loading.then((outcome) => typeof outcome === 'object' && !(outcome instanceof Error));
  const scanning = scanFrom(state, since, (record) => apply.record(record), loadedWell);
  const [loaded, scanOutcome] = await Promise.all([loading, scanning.then((value) => ({ value }), (error: unknown) => ({ error }))]);
  if (loaded instanceof Error) throw loaded;
  if (typeof loaded === 'string') return loaded;
  if ('error' in scanOutcome) throw scanOutcome.error;
  const report = scanOutcome.value;
  const { staleEntries, checkpointEntries } = loaded;
  const truncated = await applyTruncates(state, target);
  let maxSequence = facts.nextSequence - 1;
  for (const device of state.devices) for (const sequence of device.sequences) maxSequence = Math.max(maxSequence, sequence);
  state.nextSequence = maxSequence + 1;
  return {
    checkpointEntries,
    staleEntries,
    blocksReplayed,
    recordsReplayed: apply.replayed,
    truncated,
    fileBytes: read.fileBytes,
    bytesReplayed: report.bytesScanned,
    checkpointAgeMs: Math.max(0, state.now() - facts.takenMs),
    ms: 0,
    phases: { fileMs, headersMs, loadMs: loadedMs, replayMs: lap(), tailReadMs: report.scanMs },
  };
}

/**
 * Check 5: the image, read straight into the index (on worker threads), each piece checked;
 * the entries of blocks freed or reused since are removed, the others' bytes counted, with the
 * kept tombstones', into the block tables. Returns what it loaded, else the refusal.
 */
async function loadImage(state: StoreState, read: CheckpointFile, target: RecoveryTarget, kept: Uint8Array, stride: number): Promise<string | { staleEntries: number; checkpointEntries: number }> {
  const { facts, image } = read;
  const devices = state.devices.length;
  const live = new Float64Array(stride * devices);
  const loaded = await target.index.loadImageFile(read.handle.fd, image.offset, image.bytes, image.crcs, kept, devices, stride, live);
  if (loaded.refusal !== '') {
    if (loaded.damaged) return `its index checkpoint file is damaged (${loaded.refusal})`;
    if (loaded.refusal.startsWith('torn')) return `its index checkpoint file is torn (${loaded.refusal})`;
    return `its index checkpoint file's image was refused (${loaded.refusal})`;
  }
  target.adoptSets(facts.setNames);
  // Live bytes: what the loaded entries hold (their fields may be newer than the tables of the
  // checkpoint's moment: the image is copied while writes go on), plus the kept tombstones.
  const keptAt = (high: number) => kept[locationDevice(high) * stride + locationBlock(high)] === 1;
  state.tombstones = new Map<string, Tombstone>();
  for (const [key, tombstone] of facts.tombstones) {
    if (!keptAt(tombstone.high)) continue;
    state.tombstones.set(key, tombstone);
    live[locationDevice(tombstone.high) * stride + locationBlock(tombstone.high)] += locationSize(tombstone.low, tombstone.high);
  }
  state.liveTotal = 0;
  for (const [deviceIndex, device] of state.devices.entries()) {
    for (let block = 0; block < device.blockCount; block++) {
      device.live[block] = live[deviceIndex * stride + block]!;
      state.liveTotal += device.live[block]!;
    }
  }
  return { staleEntries: loaded.stale, checkpointEntries: target.index.count() + loaded.stale };
}

/** A scan of the blocks at or above `since` (HEADERS_ONLY: headers only), every newest copy to onRecord. */
function scanFrom(state: StoreState, since: number, onRecord: (record: ColdStartRecord) => void, deliverAfter?: Promise<boolean>) {
  return coldStartScan({
    ...scanOf(state),
    withPayload: false,
    minSequence: since,
    deliverAfter,
    onRecord,
  });
}

/** Applies each tail winner to the index, the tombstone table and the live bytes. */
class TailApplier {
  replayed = 0;

  constructor(
    private readonly state: StoreState,
    private readonly target: RecoveryTarget,
  ) {}

  record(record: ColdStartRecord): void {
    this.replayed++;
    const { exchange, index } = this.target;
    const hides = record.tombstone || record.expiredShadow;
    // The digest as a string only when the tombstone table is involved (most tail records are live).
    const tombstones = this.state.tombstones;
    const key = hides || tombstones.size > 0 ? record.digest.toString('latin1') : '';
    record.copyDigest(exchange.u8, EX_DIGEST);
    const tombstone = key === '' ? undefined : tombstones.get(key);
    if (tombstone !== undefined) {
      tombstones.delete(key);
      this.subtract(tombstone.low, tombstone.high);
    }
    if (hides) {
      if (index.remove() === 1) this.subtract(exchange.previousU32(ENTRY_LOCATION_LOW), exchange.previousU32(ENTRY_LOCATION_HIGH));
      tombstones.set(key, { low: record.locationLow, high: record.locationHigh, origin: record.originSequence });
    } else {
      const setId = record.setLength === 0 ? 0 : this.target.setIdFor(record.setName);
      exchange.writeEntryFields(record.generation, record.voidTime, setId, record.payloadHasKey ? FLAG_HAS_KEY : 0, record.lastUpdateMs, 0);
      exchange.setEntryU32(ENTRY_LOCATION_LOW, record.locationLow);
      exchange.setEntryU32(ENTRY_LOCATION_HIGH, record.locationHigh);
      index.upsert(0);
      if (exchange.previousU32(ENTRY_EXISTED) === 1) this.subtract(exchange.previousU32(ENTRY_LOCATION_LOW), exchange.previousU32(ENTRY_LOCATION_HIGH));
    }
    this.state.account(record.locationLow, record.locationHigh);
  }

  private subtract(low: number, high: number): void {
    subtractLive(this.state, low, high);
  }
}

function subtractLive(state: StoreState, low: number, high: number): void {
  const device = state.devices[locationDevice(high)];
  if (device === undefined) return;
  const block = locationBlock(high);
  const size = Math.min(locationSize(low, high), device.live[block]!);
  device.live[block] = device.live[block]! - size;
  state.liveTotal -= size;
}

/** Every truncate marker in force, applied to the loaded index (the image may predate some, or a truncate's walk may have been cut short). */
async function applyTruncates(state: StoreState, target: RecoveryTarget): Promise<number> {
  const locations = new Uint32Array(2 * TRUNCATE_SLOTS_PER_STEP);
  let removed = 0;
  for (const marker of state.truncates) {
    const setId = marker.set === undefined ? -1 : target.setIdOf(marker.set);
    if (setId === undefined) continue;
    let cursor = 1;
    while (cursor !== 0) {
      const count = target.index.truncate(setId, marker.beforeMs, cursor, TRUNCATE_SLOTS_PER_STEP, locations);
      for (let at = 0; at < count; at++) subtractLive(state, locations[2 * at]!, locations[2 * at + 1]!);
      removed += count;
      cursor = target.exchange.entryU32(ENTRY_ID);
      if (cursor !== 0) await nextTurn();
    }
  }
  return removed;
}

/** Back to the state of a store before its start (the cold start fills it from scratch). */
function reset(state: StoreState): void {
  state.tombstones = new Map();
  state.liveTotal = 0;
  for (const device of state.devices) {
    device.live.fill(0);
    device.sequences.fill(0);
  }
}
