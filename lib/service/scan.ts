/**
 * Partition scans (docs/protocol.md, "Scans"): an AS_MSG without a digest, listing partition
 * ids (field 11) and partitions to resume after a digest (field 12). Records stream back as
 * AS_MSGs carrying namespace, set, digest (and the key, when stored) fields and the bins; the
 * stream ends with a message flagged LAST.
 *
 * Each partition is sent in digest order, so a client that resumes a partition after the last
 * digest it received (after a lost connection, or at a max-records limit) misses nothing and
 * gets nothing twice. Partitions are read from the Db a group at a time, the group sized so it
 * holds about SERVICE_SCAN_GROUP_RECORDS records; replies wait for the socket to drain
 * (backpressure), so a slow client holds one group, not the namespace.
 */
import type { BinValue } from '../model/bins';
import type { Key } from '../model/key';
import { partitionIdOf } from '../model/key';
import type { ShoalRecord } from '../namespace/namespace';
import { PARTITION_COUNT } from '../constants';
import { ByteWriter } from './byte-writer';
import { SERVICE_RECORD_TESTS_PER_YIELD, SERVICE_REPLY_CHUNK_BYTES, SERVICE_SCAN_GROUP_RECORDS } from './constants';
import { ParticleType, writeParticle } from './particles';
import { OP_HANDLERS, RecordContext, filterOf, refuseUnsupportedFields, ttlOption, writeRecordMessage } from './records';
import type { Operation } from '../namespace/semantics';
import type { Expression } from '../model/exp/expression';
import { QUERY_FIELDS, querySelection } from './query';
import { groupsOf } from './background';
import { ResultCode } from './result-codes';
import { DIGEST_BYTES, FieldType, Info1, Info2, Info3, Message, OpCode, RequestError, writeField, writeStringField } from './wire';

/** What a scan asks for, from its fields. */
interface ScanRequest {
  ns: string;
  set: string | undefined;
  /** Partitions in the order asked; a resumed partition starts after its digest. */
  partitions: number[];
  resumeAfter: Map<number, Buffer>;
  /** Records to send at most (0: all). */
  maxRecords: number;
  recordsPerSecond: number;
  bins: string[] | undefined;
  headerOnly: boolean;
  /** A filter expression (field 43), and for a secondary-index query what the index selects (query.ts): records it is false for are not sent. */
  filter: Expression | undefined;
  /** For some queries, a test of each record read (query.ts). */
  accept: ((record: ShoalRecord) => boolean) | undefined;
}

/**
 * The scan a message asks for.
 * @throws RequestError NAMESPACE_NOT_FOUND, PARAMETER_ERROR or UNSUPPORTED_FEATURE.
 */
function scanRequest(context: RecordContext, message: Message, background: boolean): ScanRequest {
  // A query's index fields are served here (query.ts); a record request carrying them is refused.
  refuseUnsupportedFields(new Map([...message.fields].filter(([type]) => !QUERY_FIELDS.has(type))));
  if (!background && (message.info1 & Info1.READ) === 0) throw new RequestError(ResultCode.PARAMETER_ERROR, 'a scan must read');
  const nsField = message.fields.get(FieldType.NAMESPACE);
  if (nsField === undefined || nsField.length === 0) throw new RequestError(ResultCode.PARAMETER_ERROR, 'a scan without a namespace');
  const ns = nsField.toString('utf8');
  if (!context.hasNamespace(ns)) throw new RequestError(ResultCode.NAMESPACE_NOT_FOUND, `namespace ${JSON.stringify(ns)} is not on this node`);
  const setField = message.fields.get(FieldType.SET);
  const set = setField === undefined || setField.length === 0 ? undefined : setField.toString('utf8');
  const partitions: number[] = [];
  const seen = new Set<number>();
  const add = (partition: number) => {
    if (!seen.has(partition)) {
      seen.add(partition);
      partitions.push(partition);
    }
  };
  const ids = message.fields.get(FieldType.PARTITION_IDS);
  if (ids !== undefined) {
    if (ids.length % 2 !== 0) throw new RequestError(ResultCode.PARAMETER_ERROR, 'a partition-id field of odd length');
    for (let at = 0; at < ids.length; at += 2) {
      const id = ids.readUInt16LE(at);
      if (id >= PARTITION_COUNT) throw new RequestError(ResultCode.PARAMETER_ERROR, `partition id ${id} is not below ${PARTITION_COUNT}`);
      add(id);
    }
  }
  const resumeAfter = new Map<number, Buffer>();
  const digests = message.fields.get(FieldType.DIGESTS);
  if (digests !== undefined) {
    if (digests.length % DIGEST_BYTES !== 0) throw new RequestError(ResultCode.PARAMETER_ERROR, 'a digest-array field is not whole digests');
    for (let at = 0; at < digests.length; at += DIGEST_BYTES) {
      const digest = digests.subarray(at, at + DIGEST_BYTES);
      const partition = partitionIdOf(digest);
      resumeAfter.set(partition, digest);
      add(partition);
    }
  }
  if (ids === undefined && digests === undefined) for (let p = 0; p < PARTITION_COUNT; p++) add(p);
  const max = message.fields.get(FieldType.MAX_RECORDS);
  const rps = message.fields.get(FieldType.RECORDS_PER_SECOND);
  const headerOnly = (message.info1 & Info1.NO_BIN_DATA) !== 0;
  const readOps = message.ops.filter((op) => op.op === OpCode.READ && op.name.length > 0);
  if (!background && readOps.length !== message.ops.length) throw new RequestError(ResultCode.UNSUPPORTED_FEATURE, 'Shoal scans take bin names only, not operations');
  return {
    ns,
    set,
    partitions,
    resumeAfter,
    maxRecords: max !== undefined && max.length === 8 ? Number(max.readBigUInt64BE(0)) : 0,
    recordsPerSecond: rps !== undefined && rps.length === 4 ? rps.readUInt32BE(0) : 0,
    bins: readOps.length > 0 && !headerOnly ? readOps.map((op) => op.name) : undefined,
    headerOnly,
    ...querySelection(context.indexes, ns, set, message, filterOf(message.fields)),
  };
}

/**
 * The write operations of a background job.
 * @throws RequestError PARAMETER_ERROR for a read op or an op without a handler (as the server
 *   refuses reads in background operations), UNSUPPORTED_FEATURE for no ops at all.
 */
function backgroundOperations(message: Message): Operation[] {
  if (message.ops.length === 0) throw new RequestError(ResultCode.UNSUPPORTED_FEATURE, 'Shoal does not support background scans or queries without operations');
  return message.ops.map((op) => {
    const handler = OP_HANDLERS.get(op.op);
    if (handler === undefined) throw new RequestError(ResultCode.PARAMETER_ERROR, `op ${op.op} cannot run in a background job`);
    if (handler.kind === 'read') throw new RequestError(ResultCode.PARAMETER_ERROR, 'background operations must be writes');
    return handler.toOperation(op);
  });
}

/** The task id the client chose (field 7, u64), as a decimal string. @throws RequestError PARAMETER_ERROR without one. */
function taskIdOf(message: Message): string {
  const field = message.fields.get(FieldType.TASK_ID);
  if (field === undefined || field.length !== 8) throw new RequestError(ResultCode.PARAMETER_ERROR, 'a background job needs an 8-byte task id');
  return field.readBigUInt64BE(0).toString();
}

/** Whether a message is a scan: it names no record and is not a batch. */
export function isScan(message: Message): boolean {
  return !message.fields.has(FieldType.DIGEST) && !message.fields.has(FieldType.KEY) && (message.info1 & Info1.BATCH) === 0;
}

/** Partitions per Db read: about SERVICE_SCAN_GROUP_RECORDS records' worth. */
function groupSize(context: RecordContext, ns: string): number {
  const objects = context.db.stats().namespaces[ns]?.objects ?? 0;
  return Math.max(1, Math.min(PARTITION_COUNT, Math.floor((SERVICE_SCAN_GROUP_RECORDS * PARTITION_COUNT) / Math.max(1, objects))));
}

function digestOfRecord(key: Key): Buffer {
  const digest = key.digest!;
  return Buffer.isBuffer(digest) ? digest : Buffer.from(digest);
}

/**
 * Streams a scan's records through `send` (called when the writer holds a reply chunk, and
 * at the end; it resolves once the socket can take more). Stops early when the connection
 * closes (`isOpen`).
 * @throws RequestError for a scan Shoal refuses.
 */
export async function executeScan(
  context: RecordContext,
  message: Message,
  writer: ByteWriter,
  send: (last: boolean) => Promise<void>,
  isOpen: () => boolean,
): Promise<void> {
  // A background scan or query (write ops) is answered once its job has started (background.ts).
  const background = (message.info2 & Info2.WRITE) !== 0;
  const request = scanRequest(context, message, background);
  const size = groupSize(context, request.ns);
  if (background) {
    context.jobs.start(context.db, taskIdOf(message), request, groupsOf(request.partitions, size), backgroundOperations(message), ttlOption(message.recordTtl));
    writeRecordMessage(writer, { resultCode: ResultCode.OK, generation: 0, ttl: -1, bins: [] }, 0, { info3: Info3.LAST });
    await send(true);
    return;
  }
  let sent = 0;
  let tested = 0;
  const startedMs = Date.now();
  for (let start = 0; start < request.partitions.length && isOpen(); start += size) {
    if (request.maxRecords > 0 && sent >= request.maxRecords) break;
    const group = request.partitions.slice(start, start + size);
    const byPartition = new Map<number, ShoalRecord[]>(group.map((p) => [p, []]));
    for await (const record of context.db.scan(request.ns, request.set, { partitions: group, filter: request.filter })) {
      byPartition.get(partitionIdOf(digestOfRecord(record.key)))?.push(record);
    }
    for (const partition of group) {
      const records = byPartition.get(partition)!.sort((a, b) => Buffer.compare(digestOfRecord(a.key), digestOfRecord(b.key)));
      const after = request.resumeAfter.get(partition);
      const nowSeconds = Math.floor(Date.now() / 1000);
      for (const record of records) {
        const digest = digestOfRecord(record.key);
        if (after !== undefined && Buffer.compare(digest, after) <= 0) continue;
        if (request.accept !== undefined) {
          // The per-record test parses GeoJSON: yield now and then, so a group never holds the event loop long.
          if (++tested % SERVICE_RECORD_TESTS_PER_YIELD === 0) await new Promise((resolve) => setImmediate(resolve));
          if (!request.accept(record)) continue;
        }
        if (request.maxRecords > 0 && sent >= request.maxRecords) break;
        writeScanRecord(writer, request, record, digest, nowSeconds);
        sent++;
        if (writer.length >= SERVICE_REPLY_CHUNK_BYTES) {
          await send(false);
          if (!isOpen()) return;
          await throttle(request.recordsPerSecond, sent, startedMs);
        }
      }
    }
  }
  writeRecordMessage(writer, { resultCode: ResultCode.OK, generation: 0, ttl: -1, bins: [] }, 0, { info3: Info3.LAST });
  await send(true);
}

/** Sleeps as long as a scan limited to `recordsPerSecond` is ahead of its rate. */
async function throttle(recordsPerSecond: number, sent: number, startedMs: number): Promise<void> {
  if (recordsPerSecond <= 0) return;
  const aheadMs = (sent * 1000) / recordsPerSecond - (Date.now() - startedMs);
  if (aheadMs > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(aheadMs, 1000)));
}

function writeScanRecord(writer: ByteWriter, request: ScanRequest, record: ShoalRecord, digest: Buffer, nowSeconds: number): void {
  const key = record.key;
  const bins: [string, BinValue][] = [];
  if (!request.headerOnly) {
    if (request.bins === undefined) for (const name in record.bins) bins.push([name, record.bins[name]!]);
    else for (const name of request.bins) if (record.bins[name] !== undefined) bins.push([name, record.bins[name]!]);
  }
  const set = key.set ?? '';
  const hasKey = key.key !== undefined && key.key !== null;
  writeRecordMessage(
    writer,
    { resultCode: ResultCode.OK, generation: record.gen, ttl: record.ttl, bins },
    nowSeconds,
    {
      fieldCount: 2 + (set.length > 0 ? 1 : 0) + (hasKey ? 1 : 0),
      writeFields: (w) => {
        writeStringField(w, FieldType.NAMESPACE, request.ns);
        if (set.length > 0) writeStringField(w, FieldType.SET, set);
        writeField(w, FieldType.DIGEST, digest);
        if (hasKey) writeKeyField(w, key.key!);
      },
    },
  );
}

/** A key field: particle type byte, then the key's value. */
function writeKeyField(writer: ByteWriter, value: NonNullable<Key['key']>): void {
  const sizeAt = writer.length;
  writer.u32(0);
  writer.u8(FieldType.KEY);
  const typeAt = writer.length;
  writer.u8(0);
  const keyValue = typeof value === 'number' && Number.isSafeInteger(value) ? value : value instanceof Uint8Array && !Buffer.isBuffer(value) ? Buffer.from(value) : value;
  const particleType = writeParticle(writer, keyValue as BinValue);
  writer.buffer[typeAt] = particleType;
  if (particleType !== ParticleType.INTEGER && particleType !== ParticleType.STRING && particleType !== ParticleType.BLOB) {
    throw new RequestError(ResultCode.SERVER_ERROR, 'a stored key of an unexpected type');
  }
  writer.patchU32(sizeAt, writer.length - sizeAt - 4);
}
