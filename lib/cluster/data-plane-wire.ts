/**
 * The wire checks and shapes the data plane's roles share (docs/cluster.md, "Trust", "Errors
 * that tell the truth"): the message types it handles, the outcome of one attempt at a request
 * (Step), checks of untrusted fields a peer sends (request partitions and ids, errors, partition
 * holdings, settle notices), and errors as they cross the wire.
 */
import { endianness } from 'node:os';
import { ErrorCode, ShoalError } from '../errors';
import { PARTITION_COUNT } from './constants';
import type { RecordVersion, WireError } from './local-store';
import type { WireMessage } from './network';
import type { MemberPartitionInfo } from './partition-plan';
import { isDigest, isPartition, partitionOf } from './peer-checks';


/**
 * One attempt at a request: its outcome, or why it must be routed again. `retry` is
 * 'not-master' or 'not-sent' (it did not run there), 'left' (its master left the cluster: it
 * may have run) or 'timeout' (no answer by the deadline: it may have run).
 */
export type Step = {
  value?: unknown;
  error?: WireError;
  retry?: 'not-master' | 'not-sent' | 'left' | 'timeout' | 'unknown';
  tooLarge?: boolean;
  /** With retry 'left': the first attempt's reply, still awaited (a stalled master that wakes may yet answer). */
  first?: Promise<Step>;
};


/** Message types the data plane handles. */
export const DATA_MESSAGE_TYPES = [
  'partition-info',
  'request',
  'response',
  'batch-request',
  'batch-response',
  'replicate',
  'replicate-ack',
  'duplicate-read',
  'duplicate-versions',
  'migrate-offer',
  'migrate-batch',
  'migrate-ack',
  'partition-settled',
  'partition-settled-ack',
] as const;

/** Replies: matched to the call that sent the request (PendingCalls). */
export const REPLY_TYPES: ReadonlySet<string> = new Set(['response', 'batch-response', 'replicate-ack', 'duplicate-versions', 'migrate-ack']);

/** Longest request id accepted from a peer (node id, incarnation, counter). */
const REQUEST_ID_MAX_LENGTH = 160;

/** One attempt's outcome from the reply to a forwarded request (or what ended the wait for it). */
export function replyStep(reply: WireMessage): Step {
  if (reply.type === 'response') {
    if (reply.tooLarge === true) return { tooLarge: true };
    if (reply.retry === 'unknown') return { retry: 'unknown' };
    if (reply.retry !== undefined) return { retry: 'not-master' };
    return { value: reply.value, error: parseWireError(reply.error) };
  }
  if (reply.type === 'not-sent') return { retry: 'not-sent' };
  if (reply.type === 'target-left' || reply.type === 'local-stop') return { retry: 'left' };
  return { retry: 'timeout' };
}

/** The partitions a (possibly forwarded, so untrusted) request addresses; undefined if malformed. */
export function requestPartitions(request: unknown): number[] | undefined {
  if (request === null || typeof request !== 'object') return undefined;
  const r = request as { kind?: unknown; ns?: unknown; digest?: unknown; partitions?: unknown };
  if (typeof r.ns !== 'string') return undefined;
  if (r.kind === 'record' && isDigest(r.digest)) return [partitionOf(r.digest)];
  if (r.kind === 'scan' && Array.isArray(r.partitions) && r.partitions.length > 0 && r.partitions.length <= PARTITION_COUNT) {
    return r.partitions.every(isPartition) ? (r.partitions as number[]) : undefined;
  }
  return undefined;
}

export function isRequestId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= REQUEST_ID_MAX_LENGTH;
}

/** An error from the wire (untrusted): its code if known, else CLUSTER_ERROR. */
export function parseWireError(value: unknown): WireError | undefined {
  if (value === undefined || value === null) return undefined;
  const error = value as { code?: unknown; message?: unknown };
  const code = ShoalError.isCode(error.code) ? error.code : ErrorCode.CLUSTER_ERROR;
  return { code, message: typeof error.message === 'string' ? error.message : 'cluster: a peer reported an error without a message' };
}

/** The TIMEOUT error of a write whose outcome is unknown. */
export function inDoubtError(partition: number | undefined, why: string): WireError {
  const where = partition === undefined ? '' : ` to partition ${partition}`;
  return { code: ErrorCode.TIMEOUT, message: `cluster: the write${where} is in doubt (it may or may not have been applied): ${why}` };
}

export function timeoutMessage(partition: number, write: boolean, stopped: boolean): string {
  if (stopped) return `cluster: this node stopped before partition ${partition} answered${write ? '; the write may or may not have been applied (in doubt)' : ''}`;
  if (write) return `cluster: the write to partition ${partition} was not confirmed in time (cluster re-forming or partition moving); it may or may not have been applied (in doubt)`;
  return `cluster: partition ${partition} did not answer in time (cluster re-forming or partition moving); retry the operation`;
}

/** 32-bit FNV-1a of a version's content (tombstone flag, then payload bytes), carried in migration offers. */
export function versionFingerprint(version: RecordVersion): number {
  let hash = version.tombstone ? 0x01000193 : 0x811c9dc5;
  const payload = version.payload;
  if (payload !== undefined && payload !== null) {
    for (let i = 0; i < payload.length; i++) hash = Math.imul(hash ^ payload[i], 0x01000193);
  }
  return hash >>> 0;
}

/** The partitions of a settle notice or its acknowledgement (valid ids only). */
export function settledPartitions(message: WireMessage): number[] {
  const list = Array.isArray(message.partitions) ? (message.partitions as unknown[]) : [message.partition];
  return list.filter(isPartition);
}

export function parseInfo(message: WireMessage): MemberPartitionInfo | undefined {
  const { synced, hasData, lineages, lineageIndex } = message;
  const bitmapBytes = PARTITION_COUNT / 8;
  if (!(synced instanceof Uint8Array) || synced.length !== bitmapBytes) return undefined;
  if (!(hasData instanceof Uint8Array) || hasData.length !== bitmapBytes) return undefined;
  if (!Array.isArray(lineages) || lineages.length > PARTITION_COUNT || !lineages.every((l) => typeof l === 'string' && l.length <= 4096)) return undefined;
  if (!(lineageIndex instanceof Uint8Array) || lineageIndex.length !== PARTITION_COUNT * 2) return undefined;
  const index = new Uint16Array(PARTITION_COUNT);
  if (LITTLE_ENDIAN) new Uint8Array(index.buffer).set(lineageIndex);
  else {
    const bytes = Buffer.from(lineageIndex);
    for (let p = 0; p < PARTITION_COUNT; p++) index[p] = bytes.readUInt16LE(p * 2);
  }
  return { synced: Uint8Array.from(synced), hasData: Uint8Array.from(hasData), lineages: lineages as string[], lineageIndex: index };
}

/** lineageIndex travels as little-endian u16s (the byte order of the sender's Uint16Array on the platforms Node supports). */
const LITTLE_ENDIAN = endianness() === 'LE';

export function toWireError(error: unknown): WireError {
  const code = (error as { code?: unknown })?.code;
  return {
    code: typeof code === 'string' ? code : ErrorCode.CLUSTER_ERROR,
    message: (error as Error)?.message ?? String(error),
  };
}

export function unwrap(outcome: { value?: unknown; error?: WireError }): unknown {
  if (outcome.error !== undefined) {
    const code = ShoalError.isCode(outcome.error.code) ? outcome.error.code : ErrorCode.CLUSTER_ERROR;
    throw new ShoalError(code, outcome.error.message);
  }
  return outcome.value;
}
