/**
 * The meaning of each single-record operation, as pure functions over the record's current
 * state. Memory and device namespaces both call these, so exists policies, generation
 * checks, TTLs and operate() behave identically whatever stores the bytes.
 */
import { GENERATION_MAX, TTL_DONT_UPDATE, TTL_MAX_SECONDS, TTL_NEVER_EXPIRE } from '../constants';
import { ErrorCode, ShoalError, invalidArgument } from '../errors';
import { Bins } from '../model/bins';
import { type Filter, checkFilter } from './filter';
import { describe } from '../model/key';
import { checkOptionNames } from '../option-names';

const WRITE_OPTION_NAMES: ReadonlySet<string> = new Set(['ttl', 'exists', 'generation', 'durable', 'storeKey', 'filter']);
const REMOVE_OPTION_NAMES: ReadonlySet<string> = new Set(['generation', 'durable', 'filter']);

export type ExistsPolicy = 'upsert' | 'create' | 'update' | 'replace' | 'createOrReplace';

export interface WriteOptions {
  ttl?: number;
  exists?: ExistsPolicy;
  generation?: number;
  durable?: boolean;
  storeKey?: boolean;
  /** Write only if this exp.* expression is true for the existing record (else FILTERED_OUT). */
  filter?: Filter;
}

export interface RemoveOptions {
  generation?: number;
  durable?: boolean;
  /** Remove only if this exp.* expression is true for the record (else FILTERED_OUT). */
  filter?: Filter;
}

/** The state of a record before an operation. `exists` is false for absent or expired records. */
export interface Current {
  exists: boolean;
  gen: number;
  voidTime: number;
  lastUpdateMs: number;
}

const EXISTS_POLICIES: ReadonlySet<string> = new Set(['upsert', 'create', 'update', 'replace', 'createOrReplace']);

/**
 * Checks write options.
 * @throws TypeError / ShoalError INVALID_ARGUMENT for unknown policies or bad numbers.
 */
export function checkWriteOptions(options: unknown): asserts options is WriteOptions | undefined {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object') throw new TypeError('write options must be an object');
  checkOptionNames(options, WRITE_OPTION_NAMES, 'write options');
  const o = options as WriteOptions;
  if (o.ttl !== undefined) checkTtl(o.ttl);
  if (o.exists !== undefined && typeof o.exists !== 'string') throw new TypeError(`exists must be one of ${[...EXISTS_POLICIES].join(', ')}, not ${describe(o.exists)}`);
  if (o.exists !== undefined && !EXISTS_POLICIES.has(o.exists)) {
    throw invalidArgument(`exists must be one of ${[...EXISTS_POLICIES].join(', ')}, not ${String(o.exists)}`);
  }
  if (o.generation !== undefined) checkGeneration(o.generation);
  if (o.durable !== undefined && typeof o.durable !== 'boolean') throw new TypeError('durable must be a boolean');
  if (o.storeKey !== undefined && typeof o.storeKey !== 'boolean') throw new TypeError('storeKey must be a boolean');
  checkFilter(o.filter);
}

export function checkRemoveOptions(options: unknown): asserts options is RemoveOptions | undefined {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object') throw new TypeError('remove options must be an object');
  checkOptionNames(options, REMOVE_OPTION_NAMES, 'remove options');
  const o = options as RemoveOptions;
  if (o.generation !== undefined) checkGeneration(o.generation);
  if (o.durable !== undefined && typeof o.durable !== 'boolean') throw new TypeError('durable must be a boolean');
  checkFilter(o.filter);
}

export function checkTtl(ttl: unknown): asserts ttl is number {
  if (typeof ttl !== 'number') throw new TypeError(`ttl must be an integer number of seconds, not ${describe(ttl)}`);
  if (!Number.isInteger(ttl)) throw invalidArgument(`ttl must be an integer number of seconds, not ${describe(ttl)}`);
  if (ttl < TTL_DONT_UPDATE || ttl > TTL_MAX_SECONDS) {
    throw invalidArgument(`ttl ${ttl} is out of range: use -2 (keep), -1 (never expire), 0 (namespace default) or 1..${TTL_MAX_SECONDS}`);
  }
}

function checkGeneration(generation: unknown): void {
  if (typeof generation !== 'number') throw new TypeError(`generation must be an integer from 0 to ${GENERATION_MAX}, not ${describe(generation)}`);
  if (!Number.isInteger(generation) || generation < 0 || generation > GENERATION_MAX) {
    throw invalidArgument(`generation must be an integer from 0 to ${GENERATION_MAX}, not ${describe(generation)}`);
  }
}

/** The generation after a write: +1, wrapping from the maximum back to 1. */
export function nextGeneration(gen: number): number {
  return gen >= GENERATION_MAX ? 1 : gen + 1;
}

/**
 * The void time (Unix seconds, 0 = never) that a write with `ttl` gives a record.
 * `defaultTtl` is the namespace's (0 or -1: never expire).
 */
export function voidTimeFor(ttl: number | undefined, defaultTtl: number, current: Current, nowSeconds: number): number {
  let seconds = ttl ?? 0;
  if (seconds === TTL_DONT_UPDATE) {
    if (current.exists) return current.voidTime;
    seconds = 0;
  }
  if (seconds === 0) seconds = defaultTtl;
  if (seconds <= 0 || seconds === TTL_NEVER_EXPIRE) return 0;
  return nowSeconds + seconds;
}

/** A record's TTL as read: seconds left, or -1 for never. */
export function ttlOf(voidTime: number, nowSeconds: number): number {
  return voidTime === 0 ? -1 : Math.max(1, voidTime - nowSeconds);
}

/** Whether a record with this void time has expired. */
export function isExpired(voidTime: number, nowSeconds: number): boolean {
  return voidTime !== 0 && voidTime <= nowSeconds;
}

/** A last-update time that moves forward even when the clock does not. */
export function nextLastUpdateMs(current: Current, nowMs: number): number {
  return current.exists && current.lastUpdateMs >= nowMs ? current.lastUpdateMs + 1 : nowMs;
}

/**
 * Applies exists/generation policies of a put.
 * @throws ShoalError RECORD_EXISTS, RECORD_NOT_FOUND or GENERATION_MISMATCH.
 */
export function checkPutPolicy(current: Current, options: WriteOptions | undefined): void {
  const exists = options?.exists ?? 'upsert';
  if (current.exists) {
    if (exists === 'create') throw new ShoalError(ErrorCode.RECORD_EXISTS, 'record already exists (exists: "create")');
  } else if (exists === 'update' || exists === 'replace') {
    throw new ShoalError(ErrorCode.RECORD_NOT_FOUND, `record not found (exists: "${exists}" needs an existing record)`);
  }
  checkGenerationMatch(current, options?.generation);
}

export function checkGenerationMatch(current: Current, generation: number | undefined): void {
  if (generation === undefined) return;
  const actual = current.exists ? current.gen : 0;
  if (actual !== generation) {
    throw new ShoalError(ErrorCode.GENERATION_MISMATCH, `generation is ${actual}, not the expected ${generation}`);
  }
}

/** Whether a put merges into the existing bins (upsert, update) or replaces them. */
export function putMerges(options: WriteOptions | undefined): boolean {
  const exists = options?.exists ?? 'upsert';
  return exists === 'upsert' || exists === 'update';
}

/**
 * The bins a put leaves: `incoming` merged over `existing` (or replacing it), with bins
 * written as null removed. An empty result means the record is deleted.
 */
export function mergeBins(existing: Bins | undefined, incoming: Bins): Bins {
  const result: Bins = existing === undefined ? {} : existing;
  for (const name in incoming) {
    const value = incoming[name]!;
    if (value === null) delete result[name];
    else result[name] = value;
  }
  return result;
}

/** Whether a write's bins remove any bin (a bin written as null). */
export function containsNull(bins: Bins): boolean {
  for (const name in bins) if (bins[name] === null) return true;
  return false;
}

export function hasBins(bins: Bins): boolean {
  for (const _ in bins) return true;
  return false;
}

// ---------------------------------------------------------------------------------------
// operate() lives in operate.ts; its API is re-exported here for the namespaces and the Db.

export { applyOperations, checkOperations, op, operationWrites, operationsWrite } from './operate';
export type { OperateOutcome, Operation } from './operate';
