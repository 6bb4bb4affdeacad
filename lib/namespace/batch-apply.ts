/**
 * A replica's batch of record versions (cluster replication, docs/cluster.md "Replication")
 * applied through batchPut's native calls (batch-put.ts): one lookupBatch and one writeBatch
 * per BATCH_PUT_SLOTS_PER_CALL versions, instead of an index read and an index write per
 * version. The conflict rule is applyVersion's (record-core.ts):
 *
 *   - no local copy, or the incoming version wins by generation and last-update time (by the
 *     namespace's conflict rule): it is written, with its own generation, void time, last-update
 *     time and set, its payload as it came;
 *   - the local copy wins: nothing is written (stale);
 *   - everything else takes the per-record path (applyVersion's own body) after the batch's
 *     writes: a full tie (the content decides), a tombstone, a digest given twice in one call,
 *     a record an operation in flight holds, a payload over maxRecordBytes, writes the memory
 *     budget does not admit at once (eviction runs between them there).
 *
 * The versions' order does not change the outcome: a version replaces a copy only if it wins.
 */
import { BATCH_PUT_SLOTS_PER_CALL, INDEX_ENTRY_BYTES, INDEX_SIDE_ENTRY_BYTES } from '../constants';
import { ErrorCode, ShoalError } from '../errors';
import type { NativePrimaryIndex } from '../native/addon';
import {
  BATCH_ACTION,
  BATCH_DATA_LENGTH,
  BATCH_DIGEST,
  BATCH_DONE,
  BATCH_DUPLICATE,
  BATCH_EXISTS,
  BATCH_FLAGS,
  BATCH_GENERATION,
  BATCH_LAST_UPDATE_MS,
  BATCH_LOCATION_HIGH,
  BATCH_LOCATION_LOW,
  BATCH_PAYLOAD_LENGTH,
  BATCH_SET_ID,
  BATCH_SKIP,
  BATCH_SLOT_BYTES,
  BATCH_STATUS,
  BATCH_VOID_TIME,
  BATCH_WRITE_INDEX,
  FLAG_HAS_KEY,
} from '../native/exchange';
import type { WriteGate } from '../storage/write-gate';
import type { BatchHost, PutBatch } from './batch-put';
import type { NamespaceConfig } from './config';
import { compareVersions } from './conflict';
import type { MaybePromise, RecordVersion } from './namespace';

/** What a namespace lends the version applier: batchPut's host (BatchHost), with applyVersion's body for the per-record path. */
export interface ApplyHost extends Pick<BatchHost, 'config' | 'setIdFor' | 'busy' | 'admits' | 'store' | 'gate'> {
  /** The per-record path: applyVersion's body, past the write gate (the applier holds it). */
  apply(version: RecordVersion): MaybePromise<boolean>;
}

/** PutBatch.perRecord's mark of a slot decided to be written here (0: stale, 1: the per-record path). */
const DECIDED_WRITE = 2;
/** Memory a new record costs besides its payload (the memory namespace's accounting). */
const ENTRY_OVERHEAD_BYTES = INDEX_ENTRY_BYTES + INDEX_SIDE_ENTRY_BYTES;

/**
 * Applies `versions` (checked by the cluster) by the conflict rule; resolves to whether each
 * won. Holds the namespace's write gate from its first native call to its last, like a batchPut.
 * @throws ShoalError when a write fails (the caller does not acknowledge the replication).
 */
export async function applyVersions(host: ApplyHost, index: NativePrimaryIndex, batch: PutBatch, versions: readonly RecordVersion[]): Promise<boolean[]> {
  const won: boolean[] = new Array(versions.length).fill(false);
  const entry = host.gate.hold();
  if (entry !== undefined) await entry;
  try {
    const perRecord: number[] = [];
    for (let from = 0; from < versions.length; ) {
      if (from > 0) await host.gate.between();
      from = await applyCall(host, index, batch, versions, from, won, perRecord);
    }
    for (const position of perRecord) {
      const applied = host.apply(versions[position]!);
      won[position] = applied instanceof Promise ? await applied : applied;
    }
  } finally {
    host.gate.leave();
  }
  return won;
}

/** One native call's worth of versions from `from` on; returns where the next call starts. */
async function applyCall(host: ApplyHost, index: NativePrimaryIndex, batch: PutBatch, versions: readonly RecordVersion[], from: number, won: boolean[], perRecord: number[]): Promise<number> {
  batch.reset();
  const maxRecordBytes = host.config.maxRecordBytes;
  let at = from;
  for (; at < versions.length && batch.count < BATCH_PUT_SLOTS_PER_CALL && batch.hasRoom(); at++) {
    const version = versions[at]!;
    const payload = version.payload;
    if (version.tombstone || payload === undefined || payload.length > maxRecordBytes) perRecord.push(at);
    else batch.addVersion(version.digest, version.setName, payload, at);
  }
  if (batch.count === 0) return at;
  index.lookupBatch(batch.buffer, batch.count);
  const rule = host.config.conflictResolution;
  let writes = 0;
  let growthBytes = 0;
  for (let i = 0; i < batch.count; i++) {
    const slot = i * BATCH_SLOT_BYTES;
    const position = batch.positions[i]!;
    const version = versions[position]!;
    const status = batch.u32At(slot + BATCH_STATUS);
    if (status === BATCH_DUPLICATE || host.busy(batch.buffer, slot + BATCH_DIGEST)) {
      batch.perRecord[i] = 1;
      continue;
    }
    const exists = status === BATCH_EXISTS;
    if (exists) {
      const order = compareVersions(version, { gen: batch.u32At(slot + BATCH_GENERATION), lastUpdateMs: batch.f64At(slot + BATCH_LAST_UPDATE_MS) }, rule);
      if (order < 0) continue;
      // A full tie: the content decides (conflict.ts tieWins), on the per-record path.
      if (order === 0) {
        batch.perRecord[i] = 1;
        continue;
      }
    }
    let setId: number;
    try {
      setId = host.setIdFor(batch.sets[i]);
    } catch {
      // The per-record path meets the same error and reports it.
      batch.perRecord[i] = 1;
      continue;
    }
    const payloadLength = batch.u32At(slot + BATCH_PAYLOAD_LENGTH);
    batch.setU32(slot + BATCH_GENERATION, version.gen);
    batch.setU32(slot + BATCH_VOID_TIME, version.voidTime);
    batch.setU32(slot + BATCH_SET_ID, setId);
    batch.setU32(slot + BATCH_FLAGS, version.payload![1] !== 0 ? FLAG_HAS_KEY : 0);
    batch.setF64(slot + BATCH_LAST_UPDATE_MS, version.lastUpdateMs);
    batch.setU32(slot + BATCH_LOCATION_LOW, 0);
    batch.setU32(slot + BATCH_LOCATION_HIGH, 0);
    batch.setU32(slot + BATCH_ACTION, BATCH_WRITE_INDEX);
    batch.perRecord[i] = DECIDED_WRITE;
    writes++;
    growthBytes += payloadLength + (exists ? -batch.u32At(slot + BATCH_DATA_LENGTH) : ENTRY_OVERHEAD_BYTES);
  }
  if (writes > 0 && !host.admits(growthBytes)) {
    // Eviction would run between these writes: each takes the per-record path instead.
    for (let i = 0; i < batch.count; i++) {
      if (batch.perRecord[i] !== DECIDED_WRITE) continue;
      batch.setU32(i * BATCH_SLOT_BYTES + BATCH_ACTION, BATCH_SKIP);
      batch.perRecord[i] = 1;
    }
    writes = 0;
  }
  batch.durable = false;
  const stored = writes > 0 ? host.store(batch) : undefined;
  let failure: ShoalError | undefined;
  for (let i = 0; i < batch.count; i++) {
    const slot = i * BATCH_SLOT_BYTES;
    const position = batch.positions[i]!;
    if (batch.perRecord[i] === 1) {
      perRecord.push(position);
      continue;
    }
    // Neither per-record nor decided to write: the local copy won.
    if (batch.perRecord[i] !== DECIDED_WRITE) continue;
    // Refused by the store: its error is the slot's outcome (forEachWritten).
    if (batch.u32At(slot + BATCH_ACTION) === BATCH_SKIP || batch.u32At(slot + BATCH_DONE) !== 1) {
      const outcome = batch.outcomes[i];
      failure ??= outcome instanceof ShoalError ? outcome : new ShoalError(ErrorCode.CLUSTER_ERROR, 'a replicated record version was not written');
    } else won[position] = true;
  }
  batch.reset();
  const landed = stored === undefined ? undefined : await stored;
  if (failure !== undefined || landed !== undefined) throw failure ?? landed;
  return at;
}
