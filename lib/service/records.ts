/**
 * Single-record commands of AS_MSG (docs/protocol.md, "Records"): read (all bins, some bins,
 * header only), write, delete, touch and operate, each mapped onto the Db's public API, which
 * validates everything it is given exactly as it validates an application's calls. A filter
 * expression (field 43) becomes the calls' opts.filter.
 *
 * Ops go through one table from op code to handler (OP_HANDLERS). A handler turns a wire op
 * into a Shoal operation (list and map ops and expressions through dialect.ts); op codes
 * without a handler (bit and HLL ops) are answered UNSUPPORTED_FEATURE. Supporting one is one
 * entry in the table.
 */
import type { ServedDb } from './served-db';
import type { BinValue, Bins } from '../model/bins';
import type { Key } from '../model/key';
import { digestOf } from '../model/digest';
import type { ReadOptions, ShoalRecord, WriteResult } from '../namespace/namespace';
import type { KeyedOperation } from '../namespace/operate';
import { op as operation, type Operation, type RemoveOptions, type WriteOptions } from '../namespace/semantics';
import { ErrorCode, ShoalError } from '../errors';
import { ByteWriter } from './byte-writer';
import { ParticleType, decodeParticle, writeParticle } from './particles';
import { cdtPayloadFromWire, expressionFromWire, expressionOpFromWire } from './dialect';
import { OperationArgs } from '../model/cdt/args';
import { specOf } from '../model/cdt/execute';
import { Expression } from '../model/exp/expression';
import { ResultCode } from './result-codes';
import {
  DIGEST_BYTES,
  FieldType,
  Info1,
  Info2,
  Info3,
  Message,
  MessageOp,
  OpCode,
  RequestError,
  beginOp,
  endOp,
  voidTimeOf,
  writeMessageHeader,
} from './wire';

/** What the record commands need from the service. */
export interface RecordContext {
  readonly db: ServedDb;
  /** Whether a namespace of this name exists. */
  hasNamespace(ns: string): boolean;
  /** Whether reads of this namespace may use db.getSync (memory data, not cluster mode). */
  servesSync(ns: string): boolean;
  /** Applies the record UDF a message names (udf.ts). */
  applyUdf(message: Message, key: Key, filter: Expression | undefined): Promise<RecordReply>;
}

/** A record's state as a reply reports it. */
export interface RecordReply {
  resultCode: number;
  generation: number;
  /** Seconds left, or -1 for never expires (ignored when the record is absent). */
  ttl: number;
  /** Result bins in reply order; a name may repeat. */
  bins: [string, BinValue][];
}

/**
 * How an op becomes a Shoal operation. `read` ops change nothing (list and map reads and
 * expression reads too); the others write the record. Every op's result comes back in order
 * (records.ts executeOperate), a nil one only with respond-all-ops.
 */
interface OpHandler {
  kind: 'read' | 'write' | 'touch' | 'delete';
  toOperation(op: MessageOp): Operation;
}

/** Ops need a bin name, except touch and delete. */
function binName(op: MessageOp): string {
  if (op.name.length === 0) throw new RequestError(ResultCode.PARAMETER_ERROR, `op ${op.op} needs a bin name`);
  return op.name;
}

function opValue(op: MessageOp): BinValue {
  return decodeParticle(op.particleType, op.source, op.valueStart, op.valueEnd);
}

/** The op table: op code to handler. */
export const OP_HANDLERS: ReadonlyMap<number, OpHandler> = new Map<number, OpHandler>([
  [OpCode.READ, { kind: 'read', toOperation: (op) => operation.read(binName(op)) }],
  [OpCode.WRITE, { kind: 'write', toOperation: (op) => operation.write(binName(op), opValue(op)) }],
  [
    OpCode.INCR,
    {
      kind: 'write',
      toOperation: (op) => {
        const amount = opValue(op);
        if (typeof amount !== 'number' && typeof amount !== 'bigint') throw new RequestError(ResultCode.PARAMETER_ERROR, 'incr needs an integer or double value');
        return operation.incr(binName(op), amount);
      },
    },
  ],
  [OpCode.APPEND, { kind: 'write', toOperation: (op) => operation.append(binName(op), concatenationValue(op)) }],
  [OpCode.PREPEND, { kind: 'write', toOperation: (op) => operation.prepend(binName(op), concatenationValue(op)) }],
  [OpCode.TOUCH, { kind: 'touch', toOperation: () => operation.touch() }],
  [OpCode.DELETE, { kind: 'delete', toOperation: () => operation.delete() }],
  [OpCode.CDT_READ, { kind: 'read', toOperation: (op) => cdtOperation(op, false) }],
  [OpCode.CDT_MODIFY, { kind: 'write', toOperation: (op) => cdtOperation(op, true) }],
  [OpCode.EXP_READ, { kind: 'read', toOperation: (op) => expOperation(op, false) }],
  [OpCode.EXP_MODIFY, { kind: 'write', toOperation: (op) => expOperation(op, true) }],
]);

/**
 * A list or map op (3 reads, 4 modifies): its MessagePack payload in Shoal's dialect.
 * @throws RequestError PARAMETER_ERROR for a malformed payload, or a read sent as a modify
 *   (and the other way round), as the server refuses them.
 */
function cdtOperation(op: MessageOp, modify: boolean): Operation {
  const payload = cdtPayloadFromWire(op.source, op.valueStart, op.valueEnd);
  let spec: { modify: boolean; name: string };
  try {
    spec = specOf(new OperationArgs(payload));
  } catch (error) {
    throw new RequestError(ResultCode.PARAMETER_ERROR, (error as Error).message);
  }
  if (spec.modify !== modify) throw new RequestError(ResultCode.PARAMETER_ERROR, `${spec.name} is a ${spec.modify ? 'modify' : 'read'} operation, sent as a CDT ${modify ? 'modify' : 'read'} op`);
  return { op: 'cdt', bin: binName(op), payload };
}

/** An expression op (7 reads into a named result, 8 writes a bin): `[expression, flags]`. */
function expOperation(op: MessageOp, modify: boolean): Operation {
  const { expression, flags } = expressionOpFromWire(op.source, op.valueStart, op.valueEnd);
  return modify ? { op: 'expWrite', bin: binName(op), expression, flags } : { op: 'expRead', name: binName(op), expression, flags };
}

function concatenationValue(op: MessageOp): string | Buffer {
  const value = opValue(op);
  if (typeof value !== 'string' && !Buffer.isBuffer(value)) throw new RequestError(ResultCode.INCOMPATIBLE_TYPE, `op ${op.op} needs a string or blob value`);
  return value;
}

/** Names of the op codes Shoal does not support yet, for error messages. */
const UNSUPPORTED_OPS: ReadonlyMap<number, string> = new Map([
  [OpCode.BIT_READ, 'bitwise reads'],
  [OpCode.BIT_MODIFY, 'bitwise operations'],
  [OpCode.HLL_READ, 'HyperLogLog reads'],
  [OpCode.HLL_MODIFY, 'HyperLogLog operations'],
]);

/** The handler of an op. @throws RequestError UNSUPPORTED_FEATURE or PARAMETER_ERROR. */
function handlerOf(op: MessageOp): OpHandler {
  const handler = OP_HANDLERS.get(op.op);
  if (handler !== undefined) return handler;
  const name = UNSUPPORTED_OPS.get(op.op);
  if (name !== undefined) throw new RequestError(ResultCode.UNSUPPORTED_FEATURE, `Shoal does not support ${name} yet`);
  throw new RequestError(ResultCode.PARAMETER_ERROR, `unknown op code ${op.op}`);
}

/** Whether a message is a record UDF call (it names a module or a function). */
function isUdfCall(message: Message): boolean {
  return message.fields.has(FieldType.UDF_FUNCTION) || message.fields.has(FieldType.UDF_PACKAGE);
}

/** The UDF fields: a single-record or batch-row apply (udf.ts); in a scan, a background UDF, which Shoal does not run. */
const UDF_FIELDS: ReadonlyMap<number, string> = new Map([
  [FieldType.UDF_PACKAGE, 'background UDFs on scans and queries'],
  [FieldType.UDF_FUNCTION, 'background UDFs on scans and queries'],
  [FieldType.UDF_ARGUMENTS, 'background UDFs on scans and queries'],
  [FieldType.UDF_OP, 'background UDFs on scans and queries'],
]);

/** Fields that ask for something Shoal does not do; their requests are refused, never half-served. */
const UNSUPPORTED_FIELDS: ReadonlyMap<number, string> = new Map([
  [FieldType.TXN_ID, 'multi-record transactions'],
  [FieldType.TXN_DEADLINE, 'multi-record transactions'],
  [FieldType.RECORD_VERSION, 'multi-record transactions'],
  [FieldType.INDEX_NAME, 'secondary-index queries'],
  [FieldType.INDEX_RANGE, 'secondary-index queries'],
  [FieldType.INDEX_CONTEXT, 'secondary-index queries'],
  [FieldType.INDEX_EXPRESSION, 'secondary-index queries'],
  [FieldType.INDEX_TYPE, 'secondary-index queries'],
]);

/**
 * @throws RequestError UNSUPPORTED_FEATURE when the fields ask for an unsupported feature (UDF
 *   fields too, unless `udf`: a record apply).
 */
export function refuseUnsupportedFields(fields: Map<number, Buffer>, udf = false): void {
  for (const type of fields.keys()) {
    const name = UNSUPPORTED_FIELDS.get(type) ?? (udf ? undefined : UDF_FIELDS.get(type));
    if (name !== undefined) throw new RequestError(ResultCode.UNSUPPORTED_FEATURE, `Shoal does not support ${name}`);
  }
}

/**
 * The Shoal key of a record request: namespace, set and digest, or the user key when the
 * client sent it (then it is stored with the record, and must hash to the digest sent).
 * @throws RequestError NAMESPACE_NOT_FOUND or PARAMETER_ERROR.
 */
export function keyOf(context: RecordContext, fields: Map<number, Buffer>): Key {
  const nsField = fields.get(FieldType.NAMESPACE);
  if (nsField === undefined || nsField.length === 0) throw new RequestError(ResultCode.PARAMETER_ERROR, 'the request has no namespace');
  const ns = nsField.toString('utf8');
  if (!context.hasNamespace(ns)) throw new RequestError(ResultCode.NAMESPACE_NOT_FOUND, `namespace ${JSON.stringify(ns)} is not on this node`);
  const setField = fields.get(FieldType.SET);
  const set = setField === undefined || setField.length === 0 ? undefined : setField.toString('utf8');
  const digest = fields.get(FieldType.DIGEST);
  if (digest !== undefined && digest.length !== DIGEST_BYTES) throw new RequestError(ResultCode.PARAMETER_ERROR, `a digest has ${digest.length} bytes, not ${DIGEST_BYTES}`);
  const keyField = fields.get(FieldType.KEY);
  if (keyField === undefined) {
    if (digest === undefined) throw new RequestError(ResultCode.PARAMETER_ERROR, 'the request has neither a key nor a digest');
    return { ns, set, digest };
  }
  const key: Key = { ns, set, key: userKey(keyField) };
  if (digest !== undefined && !digestOf(set, key.key!).equals(digest)) {
    throw new RequestError(ResultCode.PARAMETER_ERROR, 'the key field does not hash to the digest sent with it');
  }
  return key;
}

/** A key field: particle type, then the value. */
function userKey(field: Buffer): string | number | bigint | Buffer {
  if (field.length < 1) throw new RequestError(ResultCode.PARAMETER_ERROR, 'an empty key field');
  const type = field[0]!;
  if (type !== ParticleType.INTEGER && type !== ParticleType.STRING && type !== ParticleType.BLOB) {
    throw new RequestError(ResultCode.PARAMETER_ERROR, `keys are integers, strings or blobs, not particle type ${type}`);
  }
  return decodeParticle(type, field, 1, field.length) as string | number | bigint | Buffer;
}

/** A header TTL (u32; 0xFFFFFFFF never, 0xFFFFFFFE keep) as Shoal's ttl option (-1, -2). */
export function ttlOption(recordTtl: number): number {
  return recordTtl > 0x7fffffff ? recordTtl - 4294967296 : recordTtl;
}

/** The exists policy a write's header asks for. */
function existsPolicy(message: Message): WriteOptions['exists'] {
  if ((message.info2 & Info2.CREATE_ONLY) !== 0) return 'create';
  if ((message.info3 & Info3.UPDATE_ONLY) !== 0) return 'update';
  if ((message.info3 & Info3.REPLACE_ONLY) !== 0) return 'replace';
  if ((message.info3 & Info3.CREATE_OR_REPLACE) !== 0) return 'createOrReplace';
  return undefined;
}

/** Write options from a write's header. Generation-greater is applied by withGenerationGreater. */
function writeOptions(message: Message, key: Key, filter: Expression | undefined): WriteOptions {
  const options: WriteOptions = { ttl: ttlOption(message.recordTtl) };
  if (filter !== undefined) options.filter = filter;
  const exists = existsPolicy(message);
  if (exists !== undefined) options.exists = exists;
  if ((message.info2 & Info2.GENERATION) !== 0) options.generation = message.generation;
  if (key.key !== undefined) options.storeKey = true;
  return options;
}

const NOT_FOUND: RecordReply = { resultCode: ResultCode.KEY_NOT_FOUND, generation: 0, ttl: -1, bins: [] };

function found(record: { gen: number; ttl: number }, bins: [string, BinValue][]): RecordReply {
  return { resultCode: ResultCode.OK, generation: record.gen, ttl: record.ttl, bins };
}

function allBins(record: ShoalRecord): [string, BinValue][] {
  return Object.entries(record.bins);
}

/**
 * The filter expression a request carries (field 43), in Shoal's form: compiled once, when
 * the Db first evaluates it, however many records it meets.
 * @throws RequestError PARAMETER_ERROR when it is malformed MessagePack.
 */
export function filterOf(fields: Map<number, Buffer>): Expression | undefined {
  const field = fields.get(FieldType.FILTER);
  if (field === undefined || field.length === 0) return undefined;
  return Expression.fromBytes(expressionFromWire(field, 0, field.length));
}

/** The filter a request carries, or the one it inherits (a batch row without its own: the batch's). */
function requestFilter(message: Message): Expression | undefined {
  return message.filter ?? filterOf(message.fields);
}

/**
 * Executes a single-record request. Resolves (or returns, when it could answer without
 * waiting) the reply; errors of the Db are thrown for the caller to map to result codes.
 * @throws RequestError for requests Shoal refuses; the Db's ShoalError, TypeError or RangeError.
 */
export function executeRecord(context: RecordContext, message: Message): RecordReply | Promise<RecordReply> {
  const udf = isUdfCall(message);
  refuseUnsupportedFields(message.fields, udf);
  const key = keyOf(context, message.fields);
  const filter = requestFilter(message);
  if (udf) return context.applyUdf(message, key, filter);
  if ((message.info2 & Info2.WRITE) !== 0) return executeWrite(context, message, key, filter);
  if ((message.info1 & Info1.READ) !== 0) return executeRead(context, message, key, filter);
  throw new RequestError(ResultCode.PARAMETER_ERROR, 'the request neither reads nor writes');
}

function executeRead(context: RecordContext, message: Message, key: Key, filter: Expression | undefined): RecordReply | Promise<RecordReply> {
  const headerOnly = (message.info1 & Info1.NO_BIN_DATA) !== 0;
  const ops = message.ops;
  if (headerOnly || ops.length === 0 || ops.every((op) => op.op === OpCode.READ)) {
    let names: string[] | undefined;
    if (headerOnly) names = [];
    else if ((message.info1 & Info1.GET_ALL) === 0 && ops.length > 0) names = ops.map(binName);
    const options: ReadOptions | undefined = names === undefined && filter === undefined ? undefined : { bins: names, filter };
    if (context.servesSync(key.ns)) return readReply(context.db.getSync(key, options), names);
    return context.db.get(key, options).then((record) => readReply(record, names));
  }
  return executeOperate(context, message, key, filter);
}

function readReply(record: ShoalRecord | undefined, names: string[] | undefined): RecordReply {
  if (record === undefined) return NOT_FOUND;
  if (names === undefined) return found(record, allBins(record));
  const bins: [string, BinValue][] = [];
  for (const name of names) {
    const value = record.bins[name];
    if (value !== undefined) bins.push([name, value]);
  }
  return found(record, bins);
}

async function executeWrite(context: RecordContext, message: Message, key: Key, filter: Expression | undefined): Promise<RecordReply> {
  const db = context.db;
  if ((message.info2 & Info2.DELETE) !== 0) {
    // Every Shoal delete is durable (it never comes back), so durable-delete asks for nothing more.
    const options: RemoveOptions = { filter };
    if ((message.info2 & Info2.GENERATION) !== 0) options.generation = message.generation;
    const removed = await withGenerationGreater(db, message, key, options, () => db.remove(key, options));
    return removed ? { resultCode: ResultCode.OK, generation: 0, ttl: -1, bins: [] } : NOT_FOUND;
  }
  const ops = message.ops;
  if (ops.length === 0) throw new RequestError(ResultCode.PARAMETER_ERROR, 'a write without ops');
  const options = writeOptions(message, key, filter);
  const respondAll = (message.info2 & Info2.RESPOND_ALL_OPS) !== 0;
  if (ops.every((op) => op.op === OpCode.WRITE)) {
    // No prototype: a bin named __proto__ is a bin like any other.
    const bins: Bins = Object.create(null);
    for (const op of ops) bins[binName(op)] = opValue(op);
    const written = await withGenerationGreater(db, message, key, options, () => db.put(key, bins, options));
    return writtenReply(written, respondAll ? ops.map((op): [string, BinValue] => [op.name, null]) : []);
  }
  if (ops.length === 1 && ops[0]!.op === OpCode.TOUCH && options.generation === undefined && (message.info2 & Info2.GENERATION_GT) === 0) {
    // A lone touch of a missing record is KEY_NOT_FOUND, as in Aerospike (operate would create nothing and succeed).
    if (filter === undefined) return writtenReply(await db.touch(key, options.ttl), []);
    // With a filter, as an operate (which filters): a record it found has a generation above 0.
    const touched = await db.operate(key, [operation.touch()], options);
    return touched.gen === 0 ? NOT_FOUND : found(touched, []);
  }
  return executeOperate(context, message, key, filter);
}

function writtenReply(written: WriteResult, bins: [string, BinValue][]): RecordReply {
  return { resultCode: ResultCode.OK, generation: written.gen, ttl: written.ttl, bins };
}

/**
 * An operate: every op becomes a Shoal operation keyed by its position (resultKey), so each
 * op's result comes back in order, even several for one bin; an op that returns nothing is
 * answered with a nil bin when the client asked for every op's result (respond-all-ops, which
 * clients set for list, map and expression ops), as Aerospike answers.
 */
async function executeOperate(context: RecordContext, message: Message, key: Key, filter: Expression | undefined): Promise<RecordReply> {
  const handlers = message.ops.map(handlerOf);
  const operations = message.ops.map((op, index): KeyedOperation => ({ ...handlers[index]!.toOperation(op), resultKey: String(index) }));
  const writes = handlers.some((handler) => handler.kind !== 'read');
  const options: WriteOptions = writes ? writeOptions(message, key, filter) : { filter };
  const getAll = (message.info1 & Info1.GET_ALL) !== 0;
  if (getAll && writes) throw new RequestError(ResultCode.UNSUPPORTED_FEATURE, 'Shoal does not support reading all bins in an operate that writes');
  if (getAll) {
    const record = await context.db.get(key, { filter });
    return record === undefined ? NOT_FOUND : found(record, allBins(record));
  }
  const record = await withGenerationGreater(context.db, message, key, options, () => context.db.operate(key, operations, options));
  const respondAll = (message.info2 & Info2.RESPOND_ALL_OPS) !== 0;
  const bins: [string, BinValue][] = [];
  message.ops.forEach((op, index) => {
    const value = record.bins[String(index)];
    if (value !== undefined) bins.push([op.name, value]);
    else if (respondAll && handlers[index]!.kind !== 'touch') bins.push([op.name, null]);
  });
  return found(record, bins);
}

/** Attempts of a generation-greater write before it gives up with KEY_BUSY (others kept writing). */
const GENERATION_GREATER_ATTEMPTS = 16;

/**
 * Runs a write under Aerospike's generation-greater policy (write only if the request's
 * generation is above the record's), as a compare-and-set on the Db's generation-equal check:
 * read the generation, write expecting it, and start again if another write came between.
 * Without the policy, runs the write as it is.
 * @throws ShoalError GENERATION_MISMATCH when the record's generation is not below the request's.
 */
async function withGenerationGreater<T>(db: ServedDb, message: Message, key: Key, options: WriteOptions | RemoveOptions, write: () => Promise<T>): Promise<T> {
  if ((message.info2 & Info2.GENERATION_GT) === 0) return write();
  for (let attempt = 0; attempt < GENERATION_GREATER_ATTEMPTS; attempt++) {
    const current = await db.get(key, { bins: [] });
    const generation = current?.gen ?? 0;
    if (message.generation <= generation) throw new ShoalError(ErrorCode.GENERATION_MISMATCH, `generation is ${generation}, not below the request's ${message.generation}`);
    options.generation = generation;
    try {
      return await write();
    } catch (error) {
      if (!(error instanceof ShoalError && error.code === ErrorCode.GENERATION_MISMATCH)) throw error;
    }
  }
  throw new ShoalError(ErrorCode.KEY_BUSY, 'the record kept changing under a generation-greater write; retry');
}

/**
 * Writes a record reply as one AS_MSG (no proto header): header, then `fields` (already
 * encoded, for batch and scan replies), then one op per result bin.
 */
export function writeRecordMessage(
  writer: ByteWriter,
  reply: RecordReply,
  nowSeconds: number,
  extra: { info3?: number; transactionTtl?: number; fieldCount?: number; writeFields?: (writer: ByteWriter) => void } = {},
): void {
  const ok = reply.resultCode === ResultCode.OK;
  writeMessageHeader(writer, {
    info3: extra.info3,
    resultCode: reply.resultCode,
    generation: ok ? reply.generation : 0,
    recordTtl: ok ? voidTimeOf(reply.ttl, nowSeconds) : 0,
    transactionTtl: extra.transactionTtl,
    fieldCount: extra.fieldCount,
    opCount: reply.bins.length,
  });
  extra.writeFields?.(writer);
  for (const [name, value] of reply.bins) {
    const sizeAt = beginOp(writer, OpCode.READ, 0, name);
    // Written before the particle type is known; writeParticle may move writer.buffer.
    const particleType = writeParticle(writer, value);
    writer.buffer[sizeAt + 5] = particleType;
    endOp(writer, sizeAt);
  }
}
