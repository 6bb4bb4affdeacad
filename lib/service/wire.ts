/**
 * Aerospike's wire format (docs/protocol.md, "Framing"): the 8-byte proto header, the 22-byte
 * AS_MSG header, fields and ops; their codes; and the parsing and writing of messages.
 * Sources of the layout: the Aerospike C client's as_proto.h and as_command.h.
 */
import { ByteWriter } from './byte-writer';
import type { Expression } from '../model/exp/expression';

export const PROTO_VERSION = 2;
export const PROTO_HEADER_BYTES = 8;
/** Proto frame types. */
export const FrameType = { INFO: 1, ADMIN: 2, MESSAGE: 3, COMPRESSED: 4 } as const;

export const MESSAGE_HEADER_BYTES = 22;
const FIELD_HEADER_BYTES = 5;
const OP_HEADER_BYTES = 8;

/** info1 bits. */
export const Info1 = { READ: 0x01, GET_ALL: 0x02, SHORT_QUERY: 0x04, BATCH: 0x08, XDR: 0x10, NO_BIN_DATA: 0x20, READ_MODE_AP_ALL: 0x40, COMPRESS_RESPONSE: 0x80 } as const;
/** info2 bits. */
export const Info2 = { WRITE: 0x01, DELETE: 0x02, GENERATION: 0x04, GENERATION_GT: 0x08, DURABLE_DELETE: 0x10, CREATE_ONLY: 0x20, RELAX_AP_LONG_QUERY: 0x40, RESPOND_ALL_OPS: 0x80 } as const;
/** info3 bits. */
export const Info3 = { LAST: 0x01, COMMIT_MASTER: 0x02, PARTITION_DONE: 0x04, UPDATE_ONLY: 0x08, CREATE_OR_REPLACE: 0x10, REPLACE_ONLY: 0x20, SC_READ_TYPE: 0x40, SC_READ_RELAX: 0x80 } as const;

/** Field types. */
export const FieldType = {
  NAMESPACE: 0,
  SET: 1,
  KEY: 2,
  RECORD_VERSION: 3,
  DIGEST: 4,
  TXN_ID: 5,
  TXN_DEADLINE: 6,
  TASK_ID: 7,
  SOCKET_TIMEOUT: 9,
  RECORDS_PER_SECOND: 10,
  PARTITION_IDS: 11,
  DIGESTS: 12,
  MAX_RECORDS: 13,
  BVAL_ARRAY: 15,
  INDEX_NAME: 21,
  INDEX_RANGE: 22,
  INDEX_CONTEXT: 23,
  INDEX_EXPRESSION: 24,
  INDEX_TYPE: 26,
  UDF_PACKAGE: 30,
  UDF_FUNCTION: 31,
  UDF_ARGUMENTS: 32,
  UDF_OP: 33,
  QUERY_BINS: 40,
  BATCH_INDEX: 41,
  BATCH_INDEX_WITH_SET: 42,
  FILTER: 43,
} as const;

/** Op codes. */
export const OpCode = {
  READ: 1,
  WRITE: 2,
  CDT_READ: 3,
  CDT_MODIFY: 4,
  INCR: 5,
  EXP_READ: 7,
  EXP_MODIFY: 8,
  APPEND: 9,
  PREPEND: 10,
  TOUCH: 11,
  BIT_READ: 12,
  BIT_MODIFY: 13,
  DELETE: 14,
  HLL_READ: 15,
  HLL_MODIFY: 16,
} as const;

export const DIGEST_BYTES = 20;

/** Input that cannot be read as Aerospike's protocol: the connection is closed. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

/** A well-formed request that is answered with an Aerospike result code. */
export class RequestError extends Error {
  override readonly name = 'RequestError';
  constructor(
    readonly resultCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** One op of a message: its code, particle type, bin name and the value's byte range in `source`. */
export interface MessageOp {
  op: number;
  particleType: number;
  name: string;
  source: Buffer;
  valueStart: number;
  valueEnd: number;
}

/** A parsed AS_MSG. Field values are views of the frame, valid while it is being served. */
export interface Message {
  info1: number;
  info2: number;
  info3: number;
  info4: number;
  resultCode: number;
  generation: number;
  recordTtl: number;
  transactionTtlMs: number;
  /** Field values by field type. */
  fields: Map<number, Buffer>;
  ops: MessageOp[];
  /** The offset just past the message in its frame. */
  end: number;
  /** A batch row without a filter field of its own: the batch's filter expression (records.ts filterOf). */
  filter?: Expression;
}

/** The proto header at `offset`: version, type and body size. */
export function readProtoHeader(source: Buffer, offset: number): { version: number; type: number; size: number } {
  const high = source.readUInt32BE(offset);
  return { version: high >>> 24, type: (high >>> 16) & 0xff, size: (high & 0xffff) * 4294967296 + source.readUInt32BE(offset + 4) };
}

/**
 * Parses the AS_MSG at `start` of `source`, reading no further than `end`.
 * @throws ProtocolError for a header, field or op that does not fit or is malformed.
 */
export function parseMessage(source: Buffer, start: number, end: number): Message {
  if (end - start < MESSAGE_HEADER_BYTES) throw new ProtocolError(`AS_MSG of ${end - start} bytes is shorter than its ${MESSAGE_HEADER_BYTES}-byte header`);
  if (source[start] !== MESSAGE_HEADER_BYTES) throw new ProtocolError(`AS_MSG header size ${source[start]} is not ${MESSAGE_HEADER_BYTES}`);
  const { fields, ops, end: bodyEnd } = parseFieldsAndOps(source, start + MESSAGE_HEADER_BYTES, end, source.readUInt16BE(start + 18), source.readUInt16BE(start + 20));
  return {
    info1: source[start + 1]!,
    info2: source[start + 2]!,
    info3: source[start + 3]!,
    info4: source[start + 4]!,
    resultCode: source[start + 5]!,
    generation: source.readUInt32BE(start + 6),
    recordTtl: source.readUInt32BE(start + 10),
    transactionTtlMs: source.readUInt32BE(start + 14),
    fields,
    ops,
    end: bodyEnd,
  };
}

/**
 * Parses `fieldCount` fields then `opCount` ops from `at`, reading no further than `end`
 * (the body of an AS_MSG, or of a batch row).
 * @throws ProtocolError for a field or op that does not fit or is malformed.
 */
export function parseFieldsAndOps(source: Buffer, at: number, end: number, fieldCount: number, opCount: number): { fields: Map<number, Buffer>; ops: MessageOp[]; end: number } {
  const fields = new Map<number, Buffer>();
  for (let i = 0; i < fieldCount; i++) {
    if (end - at < FIELD_HEADER_BYTES) throw new ProtocolError(`field ${i} of ${fieldCount} is cut off`);
    const size = source.readUInt32BE(at);
    if (size < 1 || size > end - at - 4) throw new ProtocolError(`field ${i} claims ${size} bytes; ${end - at - 4} remain`);
    fields.set(source[at + 4]!, source.subarray(at + FIELD_HEADER_BYTES, at + 4 + size));
    at += 4 + size;
  }
  const ops: MessageOp[] = new Array(opCount);
  for (let i = 0; i < opCount; i++) {
    if (end - at < OP_HEADER_BYTES) throw new ProtocolError(`op ${i} of ${opCount} is cut off`);
    const size = source.readUInt32BE(at);
    const nameBytes = source[at + 7]!;
    if (size < 4 + nameBytes || size > end - at - 4) throw new ProtocolError(`op ${i} claims ${size} bytes with a ${nameBytes}-byte name; ${end - at - 4} remain`);
    const nameStart = at + OP_HEADER_BYTES;
    ops[i] = {
      op: source[at + 4]!,
      particleType: source[at + 5]!,
      name: nameBytes === 0 ? '' : source.toString('utf8', nameStart, nameStart + nameBytes),
      source,
      valueStart: nameStart + nameBytes,
      valueEnd: at + 4 + size,
    };
    at += 4 + size;
  }
  return { fields, ops, end: at };
}

/** Starts a proto frame in `writer`; returns its start for endFrame. */
export function beginFrame(writer: ByteWriter): number {
  const start = writer.length;
  writer.ensure(PROTO_HEADER_BYTES);
  writer.length += PROTO_HEADER_BYTES;
  return start;
}

/** Writes the proto header of the frame begun at `start`, now that its body is written. */
export function endFrame(writer: ByteWriter, start: number, type: number): void {
  const size = writer.length - start - PROTO_HEADER_BYTES;
  writer.buffer.writeUInt32BE(((PROTO_VERSION << 24) | (type << 16) | Math.floor(size / 4294967296)) >>> 0, start);
  writer.buffer.writeUInt32BE(size >>> 0, start + 4);
}

export interface ReplyHeader {
  info1?: number;
  info2?: number;
  info3?: number;
  resultCode: number;
  generation?: number;
  recordTtl?: number;
  transactionTtl?: number;
  fieldCount?: number;
  opCount?: number;
}

/** Writes a 22-byte AS_MSG header. */
export function writeMessageHeader(writer: ByteWriter, header: ReplyHeader): void {
  writer.ensure(MESSAGE_HEADER_BYTES);
  const b = writer.buffer;
  const at = writer.length;
  b[at] = MESSAGE_HEADER_BYTES;
  b[at + 1] = header.info1 ?? 0;
  b[at + 2] = header.info2 ?? 0;
  b[at + 3] = header.info3 ?? 0;
  b[at + 4] = 0;
  b[at + 5] = header.resultCode;
  b.writeUInt32BE((header.generation ?? 0) >>> 0, at + 6);
  b.writeUInt32BE((header.recordTtl ?? 0) >>> 0, at + 10);
  b.writeUInt32BE((header.transactionTtl ?? 0) >>> 0, at + 14);
  b.writeUInt16BE(header.fieldCount ?? 0, at + 18);
  b.writeUInt16BE(header.opCount ?? 0, at + 20);
  writer.length += MESSAGE_HEADER_BYTES;
}

/** Writes a field holding `value`. */
export function writeField(writer: ByteWriter, type: number, value: Uint8Array): void {
  writer.u32(value.length + 1);
  writer.u8(type);
  writer.bytes(value);
}

/** Writes a field holding a string as UTF-8. */
export function writeStringField(writer: ByteWriter, type: number, value: string): void {
  const sizeAt = writer.length;
  writer.u32(0);
  writer.u8(type);
  writer.patchU32(sizeAt, writer.utf8(value) + 1);
}

/**
 * Starts an op of a reply: writes its header and bin name, and returns the position of its
 * size, for endOp once the value is written.
 */
export function beginOp(writer: ByteWriter, op: number, particleType: number, name: string): number {
  const sizeAt = writer.length;
  writer.ensure(OP_HEADER_BYTES);
  writer.length += 4;
  writer.u8(op);
  writer.u8(particleType);
  writer.u8(0);
  const nameAt = writer.length;
  writer.length += 1;
  const nameBytes = writer.utf8(name);
  writer.buffer[nameAt] = nameBytes;
  return sizeAt;
}

/** Completes the op begun at `sizeAt`. */
export function endOp(writer: ByteWriter, sizeAt: number): void {
  writer.patchU32(sizeAt, writer.length - sizeAt - 4);
}

/** Seconds between the Unix epoch and Aerospike's (2010-01-01 00:00:00 UTC). */
export const CITRUSLEAF_EPOCH_SECONDS = 1_262_304_000;

/** The void time a reply carries for a record `ttl` seconds from expiry (-1: never, 0 in the reply). */
export function voidTimeOf(ttl: number, nowSeconds: number): number {
  if (ttl < 0) return 0;
  return nowSeconds - CITRUSLEAF_EPOCH_SECONDS + ttl;
}
