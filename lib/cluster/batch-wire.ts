/**
 * Batches on the wire (docs/cluster.md, "Batches"): the replication of a batch's versions as
 * one packed buffer, the grouping of those versions per replica, and the outcomes a
 * batch-response carries.
 *
 * A packed version list (the `packed` field of a replicate message) is one Buffer:
 *
 *   u32 count, then per version:
 *   20-byte digest, u32 generation, u32 void time, f64 last-update ms, u8 flags (1: tombstone),
 *   u8 set name length, set name (UTF-8), u32 payload length, payload
 *
 * all little-endian. It replaces a msgpack list of seven values per version: packing is a few
 * copies, and unpacking checks every field exactly as parseVersion (peer-checks.ts) does.
 */
import { GENERATION_MAX, SET_NAME_MAX_BYTES } from '../constants';
import { BATCH_REQUEST_MAX_BYTES, MAX_RECORD_PAYLOAD_BYTES, REPLICATION_BATCH_RECORDS } from './constants';
import type { BatchItemOutcome, RecordVersion, WireError } from './local-store';
import type { WireMessage } from './network';
import { DIGEST_BYTES, LAST_UPDATE_MS_MAX } from './peer-checks';

/** A batch item's outcome at one attempt (`retry`: route it again, it did not run there). */
export type BatchStep = BatchItemOutcome | { retry: true };

const FLAG_TOMBSTONE = 1;
/** Fixed bytes per packed version besides its set name and payload. */
const VERSION_FIXED_BYTES = DIGEST_BYTES + 4 + 4 + 8 + 1 + 1 + 4;

/** The versions as one packed buffer (see above). */
export function packVersions(versions: readonly RecordVersion[]): Buffer {
  let bytes = 4;
  const setNames: Buffer[] = new Array(versions.length);
  for (let i = 0; i < versions.length; i++) {
    const version = versions[i]!;
    // Versions of a batch usually share a set: its bytes are encoded once.
    setNames[i] = i > 0 && version.setName === versions[i - 1]!.setName ? setNames[i - 1]! : Buffer.from(version.setName, 'utf8');
    bytes += VERSION_FIXED_BYTES + setNames[i]!.length + (version.tombstone ? 0 : (version.payload?.length ?? 0));
  }
  const packed = Buffer.allocUnsafe(bytes);
  packed.writeUInt32LE(versions.length, 0);
  let at = 4;
  for (let i = 0; i < versions.length; i++) {
    const version = versions[i]!;
    copyDigest(version.digest, packed, at);
    at += DIGEST_BYTES;
    packed.writeUInt32LE(version.gen, at);
    packed.writeUInt32LE(version.voidTime, at + 4);
    packed.writeDoubleLE(version.lastUpdateMs, at + 8);
    packed[at + 16] = version.tombstone ? FLAG_TOMBSTONE : 0;
    const setName = setNames[i]!;
    packed[at + 17] = setName.length;
    at += 18;
    packed.set(setName, at);
    at += setName.length;
    const payload = version.tombstone ? undefined : version.payload;
    packed.writeUInt32LE(payload?.length ?? 0, at);
    at += 4;
    if (payload !== undefined) {
      packed.set(payload, at);
      at += payload.length;
    }
  }
  return packed;
}

/**
 * The versions of a packed list (from a peer: untrusted), each field checked as parseVersion
 * checks it; the payloads are views of `value`, not copies. Returns why the list is refused
 * instead when it is malformed, longer than `maxVersions`, or holds a version out of bounds.
 */
export function unpackVersions(value: unknown, maxVersions: number): RecordVersion[] | string {
  if (!(value instanceof Uint8Array) || value.length < 4) return 'no packed list of record versions';
  const bytes = Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.length);
  const count = bytes.readUInt32LE(0);
  if (count > maxVersions) return `more than ${maxVersions} record versions in one message`;
  if (count * VERSION_FIXED_BYTES > bytes.length - 4) return 'a packed list of record versions shorter than its count';
  const versions: RecordVersion[] = new Array(count);
  let at = 4;
  let lastSet = '';
  let lastSetAt = -1;
  for (let i = 0; i < count; i++) {
    if (at + VERSION_FIXED_BYTES > bytes.length) return 'a packed record version runs past the end of its list';
    const digest = bytes.subarray(at, at + DIGEST_BYTES);
    at += DIGEST_BYTES;
    const gen = bytes.readUInt32LE(at);
    const voidTime = bytes.readUInt32LE(at + 4);
    const lastUpdateMs = bytes.readDoubleLE(at + 8);
    const flags = bytes[at + 16]!;
    const setLength = bytes[at + 17]!;
    at += 18;
    if (gen < 1 || gen > GENERATION_MAX) return `a record version has generation ${gen}, not 1..${GENERATION_MAX}`;
    if (!Number.isFinite(lastUpdateMs) || lastUpdateMs < 0 || lastUpdateMs > LAST_UPDATE_MS_MAX) return `a record version has last-update time ${lastUpdateMs}`;
    if ((flags & ~FLAG_TOMBSTONE) !== 0) return 'a record version has unknown flags';
    if (setLength > SET_NAME_MAX_BYTES || at + setLength + 4 > bytes.length) return 'a record version has a set name that is not a string of at most 63 bytes';
    // Versions of a batch usually share a set: the last one's name is reused when the bytes match.
    let setName: string;
    if (setLength === 0) setName = '';
    else if (lastSetAt >= 0 && bytes[lastSetAt - 1] === setLength && bytesEqual(bytes, lastSetAt, bytes, at, setLength)) setName = lastSet;
    else {
      setName = bytes.toString('utf8', at, at + setLength);
      if (Buffer.byteLength(setName) !== setLength) return 'a record version has a set name that is not UTF-8';
      lastSet = setName;
      lastSetAt = at;
    }
    at += setLength;
    const payloadLength = bytes.readUInt32LE(at);
    at += 4;
    const tombstone = flags === FLAG_TOMBSTONE;
    if (tombstone) {
      if (payloadLength !== 0) return 'a tombstone version carries a payload';
    } else if (payloadLength === 0 || payloadLength > MAX_RECORD_PAYLOAD_BYTES) {
      return `a record version has no payload of 1..${MAX_RECORD_PAYLOAD_BYTES} bytes`;
    }
    if (at + payloadLength > bytes.length) return 'a packed record version runs past the end of its list';
    const payload = tombstone ? undefined : bytes.subarray(at, at + payloadLength);
    at += payloadLength;
    versions[i] = { digest, gen, voidTime, lastUpdateMs, setName, tombstone, payload };
  }
  if (at !== bytes.length) return 'a packed list of record versions has bytes past its last version';
  return versions;
}

/** Replication batches to one replica: the versions to send and the batch items waiting for them. */
export interface ReplicationBatch {
  versions: RecordVersion[];
  items: number[];
  bytes: number;
}

/**
 * Adds a version (of batch item `item`) to the replication batches for `target`, starting a
 * new batch past REPLICATION_BATCH_RECORDS versions or BATCH_REQUEST_MAX_BYTES.
 */
export function addToReplicationBatch(byTarget: Map<string, ReplicationBatch[]>, target: string, version: RecordVersion, item: number): void {
  let batches = byTarget.get(target);
  if (batches === undefined) byTarget.set(target, (batches = []));
  let last = batches[batches.length - 1];
  const bytes = (version.payload?.length ?? 0) + 64;
  if (last === undefined || last.versions.length >= REPLICATION_BATCH_RECORDS || last.bytes + bytes > BATCH_REQUEST_MAX_BYTES) {
    batches.push((last = { versions: [], items: [], bytes: 0 }));
  }
  last.versions.push(version);
  last.items.push(item);
  last.bytes += bytes;
}

/**
 * A batch request's items packed (the `digests` and `items` fields of a batch-request, when
 * every item is a binary put item): `digests` one Buffer of 20 bytes per item, `items` one
 * Buffer of (u32 little-endian length, item bytes) per item, in order. Two buffers instead of
 * two msgpack lists of hundreds of small ones. Undefined when an item is not binary (the
 * lists go as they are).
 */
export function packBatchItems(digests: readonly Uint8Array[], operations: readonly unknown[]): { digests: Buffer; items: Buffer } | undefined {
  let bytes = 0;
  for (const operation of operations) {
    if (!(operation instanceof Uint8Array)) return undefined;
    bytes += 4 + operation.length;
  }
  const packedDigests = Buffer.allocUnsafe(digests.length * DIGEST_BYTES);
  for (let i = 0; i < digests.length; i++) copyDigest(digests[i]!, packedDigests, i * DIGEST_BYTES);
  const items = Buffer.allocUnsafe(bytes);
  let at = 0;
  for (const operation of operations as Uint8Array[]) {
    items.writeUInt32LE(operation.length, at);
    items.set(operation, at + 4);
    at += 4 + operation.length;
  }
  return { digests: packedDigests, items };
}

/**
 * The digests and items of a packed batch request (from a peer: untrusted), as views of its
 * buffers; why it is refused instead when it is malformed: not two buffers, digests not a
 * whole number of 20 bytes, more than `maxItems`, an item that runs past the end or is
 * empty, bytes past the last item.
 */
export function unpackBatchItems(packedDigests: unknown, packedItems: unknown, maxItems: number): { digests: Buffer[]; operations: Buffer[] } | string {
  if (!(packedDigests instanceof Uint8Array) || !(packedItems instanceof Uint8Array)) return 'a packed batch request without its two buffers';
  if (packedDigests.length % DIGEST_BYTES !== 0) return 'packed digests that are not a whole number of 20 bytes';
  const count = packedDigests.length / DIGEST_BYTES;
  if (count > maxItems) return `more than ${maxItems} items in one batch request`;
  const digestBytes = asBuffer(packedDigests);
  const itemBytes = asBuffer(packedItems);
  const digests: Buffer[] = new Array(count);
  const operations: Buffer[] = new Array(count);
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 4 > itemBytes.length) return 'a packed batch item runs past the end of its request';
    const length = itemBytes.readUInt32LE(at);
    at += 4;
    if (length === 0 || length > itemBytes.length - at) return 'a packed batch item runs past the end of its request';
    digests[i] = digestBytes.subarray(i * DIGEST_BYTES, i * DIGEST_BYTES + DIGEST_BYTES);
    operations[i] = itemBytes.subarray(at, at + length);
    at += length;
  }
  if (at !== itemBytes.length) return 'a packed batch request has bytes past its last item';
  return { digests, operations };
}

/**
 * Whether a[aAt, aAt + length) and b[bAt, bAt + length) hold the same bytes. A loop: for the
 * short runs a batch compares per item (set names, digests) it costs less than Buffer#compare,
 * a call into C++ each time.
 */
export function bytesEqual(a: Uint8Array, aAt: number, b: Uint8Array, bAt: number, length: number): boolean {
  for (let i = 0; i < length; i++) if (a[aAt + i] !== b[bAt + i]) return false;
  return true;
}

/** Copies a digest (DIGEST_BYTES: the callers' digests are checked or computed) into target at `at`: a loop, no view of it. */
function copyDigest(digest: Uint8Array, target: Uint8Array, at: number): void {
  for (let i = 0; i < DIGEST_BYTES; i++) target[at + i] = digest[i]!;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** Bytes per item of a batch-response's packed put results: f64 generation, f64 ttl. */
const WRITE_RESULT_BYTES = 16;

/** Whether a step's value is a put's [generation, ttl] (writeResultToWire, lib/db-batch-wire.ts). */
function isWriteResultPair(value: unknown): value is [number, number] {
  return Array.isArray(value) && value.length === 2 && typeof value[0] === 'number' && typeof value[1] === 'number';
}

/**
 * Batch outcomes as a batch-response carries them: `values` (one per item, in order), then the
 * exceptions: `errors` as flat (index, code, message) triples and `retry` as item indexes.
 * When every value is a put's [generation, ttl], they travel instead as `writes`, one Buffer
 * of WRITE_RESULT_BYTES per item (f64 generation, f64 ttl, little-endian; zeros for an item
 * that failed or is retried), not a msgpack list of pairs; parseBatchSteps reads them as
 * { gen, ttl } objects.
 */
export function encodeBatchSteps(steps: readonly BatchStep[]): { values?: unknown[]; writes?: Buffer; errors: unknown[]; retry: number[] } {
  const errors: unknown[] = [];
  const retry: number[] = [];
  let pairs = steps.length > 0;
  for (const step of steps) {
    if ('value' in step && !isWriteResultPair(step.value)) {
      pairs = false;
      break;
    }
  }
  if (pairs) {
    const writes = Buffer.alloc(steps.length * WRITE_RESULT_BYTES);
    steps.forEach((step, i) => {
      if ('retry' in step) retry.push(i);
      else if ('error' in step) errors.push(i, step.error.code, step.error.message);
      else {
        const [gen, ttl] = step.value as [number, number];
        writes.writeDoubleLE(gen, i * WRITE_RESULT_BYTES);
        writes.writeDoubleLE(ttl, i * WRITE_RESULT_BYTES + 8);
      }
    });
    return { writes, errors, retry };
  }
  const values: unknown[] = new Array(steps.length);
  steps.forEach((step, i) => {
    if ('retry' in step) retry.push(i);
    else if ('error' in step) errors.push(i, step.error.code, step.error.message);
    else values[i] = step.value;
  });
  return { values, errors, retry };
}

/**
 * The steps of a batch-response's values, each { value }: its `values` list, or its packed
 * `writes`, each as the { gen, ttl } a put resolves to (batchPut's result for the item, made
 * once here: no pair to convert later); undefined when neither holds `count`.
 */
function replySteps(reply: WireMessage, count: number): BatchStep[] | undefined {
  const { values, writes } = reply;
  if (writes === undefined) return Array.isArray(values) && values.length === count ? values.map((value) => ({ value })) : undefined;
  if (values !== undefined || !(writes instanceof Uint8Array) || writes.length !== count * WRITE_RESULT_BYTES) return undefined;
  const bytes = asBuffer(writes);
  const steps: BatchStep[] = new Array(count);
  for (let i = 0; i < count; i++) steps[i] = { value: { gen: bytes.readDoubleLE(i * WRITE_RESULT_BYTES), ttl: bytes.readDoubleLE(i * WRITE_RESULT_BYTES + 8) } };
  return steps;
}

/**
 * The outcomes of a batch-response (untrusted); undefined when it is not one for `count`
 * items. `parseError` reads an error's code and message.
 */
export function parseBatchSteps(reply: WireMessage, count: number, parseError: (value: unknown) => WireError): BatchStep[] | undefined {
  const { errors, retry } = reply;
  if (!Array.isArray(errors) || errors.length % 3 !== 0 || !Array.isArray(retry)) return undefined;
  const steps = replySteps(reply, count);
  if (steps === undefined) return undefined;
  for (let at = 0; at < errors.length; at += 3) {
    const index = errors[at];
    if (!Number.isInteger(index) || index < 0 || index >= count) return undefined;
    steps[index] = { error: parseError({ code: errors[at + 1], message: errors[at + 2] }) };
  }
  for (const index of retry) {
    if (!Number.isInteger(index) || index < 0 || index >= count) return undefined;
    steps[index] = { retry: true };
  }
  return steps;
}
