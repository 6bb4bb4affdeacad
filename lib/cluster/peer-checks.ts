/**
 * The data plane trusts nothing a peer sends (docs/cluster.md, "What a node accepts from a
 * peer"). These are the field checks every data-plane message goes through before it touches
 * local data, and the rate-limited log of what was refused. The checks are the public API's
 * where a field has one (digest length, set name length, generation range); the rest are the
 * wire format's own (partition range, record version shape, payload size).
 */
import { GENERATION_MAX, SET_NAME_MAX_BYTES } from '../constants';
import { partitionIdOf } from '../model/key';
import { MAX_RECORD_PAYLOAD_BYTES, PARTITION_COUNT, REFUSAL_LOG_INTERVAL_MS, REFUSAL_LOG_LINES_PER_INTERVAL } from './constants';
import type { RecordVersion } from './local-store';
import type { Clock, Logger } from './seams';

/** Digests are RIPEMD-160 (20 bytes), as Aerospike's. */
export const DIGEST_BYTES = 20;
/** Latest last-update time a version may carry: the largest a JavaScript Date holds (ms). */
export const LAST_UPDATE_MS_MAX = 8.64e15;
/** Largest void time (Unix seconds, u32). */
const VOID_TIME_MAX = 0xffff_ffff;

/** `bytes` as a Buffer (msgpack decodes binary data as Buffers already: no copy then). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
}

/** Whether `value` is a 20-byte digest. */
export function isDigest(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === DIGEST_BYTES;
}

/** Whether `value` is a partition id (0..4095). */
export function isPartition(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) < PARTITION_COUNT;
}

/** Partition id of a digest (lib/model/key.ts partitionIdOf: the one formula). */
export function partitionOf(digest: Uint8Array): number {
  return partitionIdOf(digest);
}

/**
 * A record version from the wire, checked field by field and copied into plain Buffers;
 * returns why it is refused instead when a field is out of bounds. With `partition`, the
 * digest must belong to it.
 */
export function parseVersion(value: unknown, partition?: number): RecordVersion | string {
  if (value === null || typeof value !== 'object') return 'a record version is not an object';
  const v = value as Partial<Record<keyof RecordVersion, unknown>>;
  if (!isDigest(v.digest)) return 'a record version has no 20-byte digest';
  if (partition !== undefined && partitionOf(v.digest) !== partition) return `a record version of partition ${partitionOf(v.digest)} came as partition ${partition}`;
  if (!Number.isInteger(v.gen) || (v.gen as number) < 1 || (v.gen as number) > GENERATION_MAX) return `a record version has generation ${String(v.gen)}, not 1..${GENERATION_MAX}`;
  const voidTime = v.voidTime ?? 0;
  if (!Number.isInteger(voidTime) || (voidTime as number) < 0 || (voidTime as number) > VOID_TIME_MAX) return `a record version has void time ${String(voidTime)}`;
  if (typeof v.lastUpdateMs !== 'number' || !Number.isFinite(v.lastUpdateMs) || v.lastUpdateMs < 0 || v.lastUpdateMs > LAST_UPDATE_MS_MAX) {
    return `a record version has last-update time ${String(v.lastUpdateMs)}`;
  }
  const setName = v.setName ?? '';
  if (typeof setName !== 'string' || Buffer.byteLength(setName) > SET_NAME_MAX_BYTES) return 'a record version has a set name that is not a string of at most 63 bytes';
  if (v.tombstone !== undefined && typeof v.tombstone !== 'boolean') return 'a record version has a tombstone flag that is not a boolean';
  const tombstone = v.tombstone === true;
  const payload = v.payload ?? undefined;
  if (tombstone) {
    if (payload !== undefined) return 'a tombstone version carries a payload';
  } else if (!(payload instanceof Uint8Array) || payload.length === 0 || payload.length > MAX_RECORD_PAYLOAD_BYTES) {
    return `a record version has no payload of 1..${MAX_RECORD_PAYLOAD_BYTES} bytes`;
  }
  return {
    digest: asBuffer(v.digest),
    gen: v.gen as number,
    voidTime: voidTime as number,
    lastUpdateMs: v.lastUpdateMs,
    setName,
    tombstone,
    payload: payload === undefined ? undefined : asBuffer(payload as Uint8Array),
  };
}

/** Fields per version in a wire list (see versionsToWire). */
const WIRE_VERSION_FIELDS = 7;

/**
 * Record versions as they travel in replication, migration and duplicate-resolution messages:
 * one flat list, seven fields per version (digest, generation, void time, last-update ms, set
 * name, tombstone flag, payload or null). Cheaper to encode and decode than one map per version.
 */
export function versionsToWire(versions: readonly RecordVersion[]): unknown[] {
  const wire: unknown[] = new Array(versions.length * WIRE_VERSION_FIELDS);
  let at = 0;
  for (const v of versions) {
    wire[at++] = v.digest;
    wire[at++] = v.gen;
    wire[at++] = v.voidTime;
    wire[at++] = v.lastUpdateMs;
    wire[at++] = v.setName;
    wire[at++] = v.tombstone;
    wire[at++] = v.payload ?? null;
  }
  return wire;
}

/**
 * The versions of a wire list (versionsToWire), each checked by parseVersion; returns why the
 * list is refused instead when it is malformed, longer than `maxVersions`, or holds a version
 * out of bounds (or, with `partition`, of another partition).
 */
export function parseWireVersions(value: unknown, maxVersions: number, partition?: number): RecordVersion[] | string {
  if (!Array.isArray(value) || value.length % WIRE_VERSION_FIELDS !== 0) return 'no list of record versions';
  if (value.length / WIRE_VERSION_FIELDS > maxVersions) return `more than ${maxVersions} record versions in one message`;
  const versions: RecordVersion[] = new Array(value.length / WIRE_VERSION_FIELDS);
  for (let i = 0, at = 0; at < value.length; i++, at += WIRE_VERSION_FIELDS) {
    const version = parseVersion(
      { digest: value[at], gen: value[at + 1], voidTime: value[at + 2], lastUpdateMs: value[at + 3], setName: value[at + 4], tombstone: value[at + 5], payload: value[at + 6] },
      partition,
    );
    if (typeof version === 'string') return version;
    versions[i] = version;
  }
  return versions;
}

/**
 * Logs refused peer messages, at most REFUSAL_LOG_LINES_PER_INTERVAL lines per kind per
 * REFUSAL_LOG_INTERVAL_MS; the rest are counted and reported with the next line of that kind.
 * A peer that floods the data plane with bad messages cannot flood the log.
 */
export class RefusalLog {
  private readonly kinds = new Map<string, { windowStartMs: number; lines: number; suppressed: number }>();
  /** Refusals by kind since the node started (stats, tests). */
  readonly counts = new Map<string, number>();

  constructor(private readonly clock: Clock, private readonly logger: Logger) {}

  /**
   * Records a refusal of `kind` (one of a fixed set of names: never a string a peer chose) from `from`, with `detail` saying what was wrong. `level`
   * 'info' is for refusals a view change produces on its own (a peer still in an older view),
   * 'warn' for messages no correct peer sends.
   */
  refuse(kind: string, from: string, detail: string, level: 'warn' | 'info' = 'warn'): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    const now = this.clock.nowMs();
    const bucket = `${level}:${kind}`;
    let state = this.kinds.get(bucket);
    if (state === undefined || now - state.windowStartMs >= REFUSAL_LOG_INTERVAL_MS) {
      const suppressed = state?.suppressed ?? 0;
      state = { windowStartMs: now, lines: 0, suppressed: 0 };
      this.kinds.set(bucket, state);
      if (suppressed > 0) this.logger[level](`cluster: ${suppressed} more ${kind} refusals in the last ${REFUSAL_LOG_INTERVAL_MS} ms were not logged`);
    }
    if (state.lines >= REFUSAL_LOG_LINES_PER_INTERVAL) {
      state.suppressed++;
      return;
    }
    state.lines++;
    this.logger[level](`cluster: refused ${kind} from ${from}: ${detail}`);
  }

  /** Total refusals of every kind. */
  get total(): number {
    let sum = 0;
    for (const count of this.counts.values()) sum += count;
    return sum;
  }
}
