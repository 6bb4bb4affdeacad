/**
 * The record rules both namespaces apply, written once: what a put makes of the stored bins,
 * the payload a write stores, the metadata of a record's next version, and what operate
 * returns. The record core (record-core.ts) applies them for both stores, which differ only in
 * where the current record's payload comes from and where the new version goes (the index's
 * memory, or a DeviceStore); every decision about the record itself is made here, in
 * semantics.ts or in the core.
 */
import type { NamespaceConfig } from './config';
import { Bins, decodePayloadBins, encodePayload, recordTooBig, storedBinsCoveredBy } from '../model/bins';
import type { Key } from '../model/key';
import { EX_DATA, EX_KEY, EX_KEY_LENGTH, EX_KEY_TYPE, Exchange } from '../native/exchange';
import { ErrorCode, ShoalError } from '../errors';
import type { ShoalRecord, WriteResult } from './namespace';
import type { OperateOutcome } from './operate';
import {
  Current,
  Operation,
  WriteOptions,
  containsNull,
  hasBins,
  mergeBins,
  nextGeneration,
  nextLastUpdateMs,
  operationsWrite,
  ttlOf,
  voidTimeFor,
} from './semantics';

/** The stored payload of the current record: `length` bytes of `buffer` from `offset`. */
export interface StoredPayload {
  buffer: Buffer;
  offset: number;
  length: number;
}

/**
 * The bins a put leaves: the given bins merged over the stored ones (a null removes a bin), or
 * undefined when none are left (the put removes the record). A put that names every stored
 * bin replaces them all without decoding the stored record.
 */
export function binsAfterPut(stored: StoredPayload | undefined, bins: Bins, merges: boolean): Bins | undefined {
  const covered = !merges || stored === undefined || storedBinsCoveredBy(stored.buffer, stored.offset, stored.length, bins);
  const existing = covered ? undefined : decodePayloadBins(stored.buffer, stored.offset, stored.length);
  const result = existing === undefined && !containsNull(bins) ? bins : mergeBins(existing, bins);
  return hasBins(result) ? result : undefined;
}

/**
 * Encodes `bins` (and the user key, when it is stored) into the exchange's data area for the
 * record whose key the exchange holds. Returns the payload length and whether the key is in it.
 * @throws ShoalError RECORD_TOO_BIG above the namespace's maxRecordBytes.
 */
export function encodeForWrite(exchange: Exchange, config: NamespaceConfig, key: Key, bins: Bins, options: WriteOptions | undefined): { length: number; storeKey: boolean } {
  const storeKey = (options?.storeKey ?? config.storeKey) && key.key !== undefined && key.key !== null;
  const keyBytes = storeKey ? exchange.buffer.subarray(EX_KEY, EX_KEY + exchange.buffer.readUInt32LE(EX_KEY_LENGTH)) : undefined;
  const length = encodePayload(exchange.buffer, EX_DATA, config.maxRecordBytes, bins, exchange.u8[EX_KEY_TYPE]!, keyBytes);
  if (length < 0) throw recordTooBig(bins, keyBytes?.length ?? 0, config.maxRecordBytes, config.name);
  return { length, storeKey };
}

/** The metadata of a record's next version (a write or a touch at `nowMs`), and what the caller is told. */
export interface NextVersion {
  gen: number;
  voidTime: number;
  lastUpdateMs: number;
  result: WriteResult;
}

/** The next version of `current` written at `nowMs` with `ttl` (undefined: the namespace's default). */
export function nextVersion(current: Current, ttl: number | undefined, defaultTtl: number, nowMs: number): NextVersion {
  const nowSeconds = Math.floor(nowMs / 1000);
  const gen = nextGeneration(current.exists ? current.gen : 0);
  const voidTime = voidTimeFor(ttl, defaultTtl, current, nowSeconds);
  return { gen, voidTime, lastUpdateMs: nextLastUpdateMs(current, nowMs), result: { gen, ttl: ttlOf(voidTime, nowSeconds) } };
}

/**
 * Before operate runs: a record must exist unless an operation writes. Returns whether any
 * operation writes (then the filter, and then the write policy, are checked by the caller in
 * that order, as for a put).
 * @throws ShoalError RECORD_NOT_FOUND.
 */
export function operateWrites(current: Current, operations: readonly Operation[]): boolean {
  const writes = operationsWrite(operations);
  if (!current.exists && !writes) throw new ShoalError(ErrorCode.RECORD_NOT_FOUND, 'operate: record not found');
  return writes;
}

/** What operate returns when its operations wrote nothing: the reads, with the record as it is. */
export function operateReadResult(key: Key, outcome: OperateOutcome, current: Current, nowSeconds: number): ShoalRecord {
  return { key, bins: outcome.reads, gen: current.gen, ttl: ttlOf(current.voidTime, nowSeconds) };
}

/** What operate returns when its operations removed the record (no bin left). */
export function operateRemovedResult(key: Key, outcome: OperateOutcome): ShoalRecord {
  return { key, bins: outcome.reads, gen: 0, ttl: -1 };
}

/** What operate returns when its operations wrote the record's next version. */
export function operateWrittenResult(key: Key, outcome: OperateOutcome, written: WriteResult): ShoalRecord {
  return { key, bins: outcome.reads, gen: written.gen, ttl: written.ttl };
}
