/**
 * The record core's walks over the index (record-core.ts): scans, the versions of a partition
 * for migration, and the digests of a partition to drop. Each takes a bounded batch of entries
 * at a time (IndexWalk), keeps the live ones with their payload (from the index, or the
 * post-write cache; else read from the device afterwards, the batch's reads at once), and
 * leaves the event loop free between batches.
 */
import { ErrorCode, ShoalError } from '../errors';
import { nowSecondsOf } from '../clock';
import { decodePayloadBins, decodePayloadKey } from '../model/bins';
import type { Key } from '../model/key';
import {
  ENTRY_FLAGS,
  ENTRY_LAST_UPDATE_MS,
  EX_DATA,
  EX_DIGEST,
  FLAG_HAS_KEY,
  FLAG_TOMBSTONE,
  READ_COPY_DATA,
  SCAN_ENTRY_ID,
  SCAN_FLAGS,
  SCAN_GENERATION,
  SCAN_LOCATION_HIGH,
  SCAN_LOCATION_LOW,
  SCAN_RECORD_BYTES,
  SCAN_SET_ID,
  SCAN_VOID_TIME,
} from '../native/exchange';
import { type Filter, passesFilter } from './filter';
import { IndexWalk } from './index-scan';
import type { RecordVersion, ScanOptions, ShoalRecord } from './namespace';
import { partitionFilter } from './partition-filter';
import { type RecordIndex, type RecordStore, filterSourceOf } from './record-store';
import { recordOf } from './record-view';
import { isExpired } from './semantics';

/** A live entry of a walk batch, with its payload when it was in memory (copied). */
interface ScanEntry {
  digest: Buffer;
  gen: number;
  voidTime: number;
  setId: number;
  low: number;
  high: number;
  lastUpdateMs: number;
  flags: number;
  payload: Buffer | undefined;
}

/** The live entries of a walk (set id ≥ 0 or every set -1, partition filter), batch by batch. */
async function* liveBatches(records: RecordIndex, store: RecordStore, setId: number, filter: Uint8Array | undefined): AsyncIterable<ScanEntry[]> {
  const { index, exchange } = records;
  const inIndex = store.payloadInIndex;
  for (const walk = new IndexWalk(index, exchange, setId, filter); !walk.done && !records.closed; ) {
    const batch = walk.nextCopy();
    const nowSeconds = nowSecondsOf(records.clock);
    const entries: ScanEntry[] = [];
    for (let at = 0; at < batch.length; at += SCAN_RECORD_BYTES) {
      const voidTime = batch.readUInt32LE(at + SCAN_VOID_TIME);
      if ((batch.readUInt32LE(at + SCAN_FLAGS) & FLAG_TOMBSTONE) !== 0 || isExpired(voidTime, nowSeconds)) continue;
      // Metadata and (in memory) the payload, now, before anything can change the entry.
      const length = index.readEntry(batch.readUInt32LE(at + SCAN_ENTRY_ID), inIndex ? READ_COPY_DATA : 0);
      if (length < 0 || exchange.buffer.compare(batch, at, at + 20, EX_DIGEST, EX_DIGEST + 20) !== 0) continue;
      const low = batch.readUInt32LE(at + SCAN_LOCATION_LOW);
      const high = batch.readUInt32LE(at + SCAN_LOCATION_HIGH);
      const view = inIndex ? exchange.buffer.subarray(EX_DATA, EX_DATA + length) : store.cachedPayload(low, high);
      entries.push({
        digest: batch.subarray(at, at + 20),
        gen: batch.readUInt32LE(at + SCAN_GENERATION),
        voidTime,
        setId: batch.readUInt32LE(at + SCAN_SET_ID),
        low,
        high,
        lastUpdateMs: exchange.entryF64(ENTRY_LAST_UPDATE_MS),
        flags: exchange.entryU32(ENTRY_FLAGS),
        payload: view === undefined ? undefined : Buffer.from(view),
      });
    }
    yield entries;
  }
}

/** An entry's payload: in hand, or read from the device (a record that fails its checksum is logged and skipped). */
async function payloadOf(records: RecordIndex, store: RecordStore, entry: ScanEntry): Promise<Buffer | undefined> {
  if (entry.payload !== undefined) return entry.payload;
  try {
    return await store.readPayload(entry.digest, entry);
  } catch (error) {
    if ((error as ShoalError).code === ErrorCode.CORRUPTION) {
      records.log(`namespace ${records.config.name}: scan skipped a record that fails its checksum`);
      return undefined;
    }
    throw error;
  }
}

function scanRecord(records: RecordIndex, store: RecordStore, entry: ScanEntry, payload: Buffer, expression: Filter | undefined): ShoalRecord | undefined {
  if (expression !== undefined && !passesFilter(expression, filterSourceOf(records, store, entry, payload, 0, payload.length, entry.digest))) return undefined;
  const key: Key = { ns: records.config.name, set: records.sets.nameOf(entry.setId), digest: entry.digest };
  if ((entry.flags & FLAG_HAS_KEY) !== 0) {
    const stored = decodePayloadKey(payload, 0);
    if (stored !== undefined) key.key = stored;
  }
  return recordOf(key, decodePayloadBins(payload, 0, payload.length), entry.gen, entry.voidTime, nowSecondsOf(records.clock), undefined);
}

/**
 * The records of a set (undefined: every set) that pass options' partitions and filter.
 * checkOpen runs when the walk starts.
 */
export async function* scanRecords(records: RecordIndex, store: RecordStore, set: string | undefined, options: ScanOptions | undefined, checkOpen: () => void): AsyncIterable<ShoalRecord> {
  checkOpen();
  const setId = set === undefined ? -1 : records.sets.idOf(set);
  if (setId === undefined) return;
  const expression = options?.filter;
  for await (const batch of liveBatches(records, store, setId, partitionFilter(options?.partitions))) {
    let pending = false;
    const found = batch.map((entry) => {
      if (entry.payload !== undefined) return scanRecord(records, store, entry, entry.payload, expression);
      pending = true;
      return payloadOf(records, store, entry).then((payload) => (payload === undefined ? undefined : scanRecord(records, store, entry, payload, expression)));
    });
    const done = pending ? await Promise.all(found) : (found as (ShoalRecord | undefined)[]);
    for (const record of done) if (record !== undefined) yield record;
  }
}

/** Every live record version of one partition (migration). */
export async function* walkVersions(records: RecordIndex, store: RecordStore, partitionId: number): AsyncIterable<RecordVersion> {
  for await (const batch of liveBatches(records, store, -1, partitionFilter([partitionId]))) {
    const payloads = await Promise.all(batch.map((entry) => payloadOf(records, store, entry)));
    for (const [i, entry] of batch.entries()) {
      const payload = payloads[i];
      if (payload === undefined) continue;
      yield { digest: Buffer.from(entry.digest), gen: entry.gen, voidTime: entry.voidTime, lastUpdateMs: entry.lastUpdateMs, setName: records.sets.nameOf(entry.setId), tombstone: false, payload };
    }
  }
}

/** The digests of one partition's live records (copied), for dropPartition. */
export async function partitionDigests(records: RecordIndex, store: RecordStore, partitionId: number): Promise<Buffer[]> {
  const digests: Buffer[] = [];
  for await (const batch of liveBatches(records, store, -1, partitionFilter([partitionId]))) for (const entry of batch) digests.push(Buffer.from(entry.digest));
  return digests;
}
