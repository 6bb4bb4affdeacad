/**
 * Expressions as data: a tree of nodes that encodes to Aerospike's expression format (a
 * MessagePack array per operation, [code, arg...]; literals as themselves, lists quoted). The
 * encoded form is what compiles (compile.ts) and what crosses the cluster's frames.
 */
import { OPERATION_PAYLOAD_BYTES_MAX } from '../../constants';
import { invalidArgument } from '../../errors';
import { encodeCdtValue } from '../bin-encoder';
import type { CdtValue } from '../cdt/value';

/** A float literal: encoded as float64 even when it has no fraction (2.0 stays a float). */
export class FloatLiteral {
  constructor(readonly value: number) {}
}

/** A list or map literal, or a context path: encoded as the value itself (lists behind QUOTE by the builder). */
export class ValueLiteral {
  constructor(readonly value: CdtValue) {}
}

/**
 * An expression already in its encoded form, written as it is (a secondary index's expression,
 * sent by a client, inside the expression a query builds around it). Its bytes are checked when
 * the whole is compiled.
 */
export class EncodedNode {
  constructor(readonly bytes: Buffer) {}
}

export type ExpNode = number | bigint | string | boolean | null | Uint8Array | FloatLiteral | ValueLiteral | EncodedNode | ExpNode[];

/**
 * A filter expression built with exp.*: pass it as opts.filter. `type` is its value type
 * (ExpType), or -1 when only evaluation tells.
 */
export class Expression {
  /** The encoded form, made once. */
  private encoded: Buffer | undefined;

  constructor(
    readonly node: ExpNode,
    readonly type: number,
  ) {}

  /**
   * An expression already encoded (a filter an Aerospike client sent, in Shoal's form): it
   * compiles once however many records it is evaluated on. Its bytes are checked when it is
   * compiled.
   */
  static fromBytes(bytes: Buffer): Expression {
    const expression = new Expression(null, -1);
    expression.encoded = bytes;
    return expression;
  }

  /** Aerospike's expression bytes for this expression. */
  toBytes(): Buffer {
    this.encoded ??= encodeExpression(this.node);
    return this.encoded;
  }
}

let buffer = Buffer.allocUnsafe(1024);
let position = 0;

function room(bytes: number): void {
  if (position + bytes <= buffer.length) return;
  if (position + bytes > OPERATION_PAYLOAD_BYTES_MAX) throw invalidArgument(`an expression encodes to more than ${OPERATION_PAYLOAD_BYTES_MAX} bytes`);
  const grown = Buffer.allocUnsafe(Math.min(Math.max(buffer.length * 2, position + bytes), OPERATION_PAYLOAD_BYTES_MAX));
  buffer.copy(grown, 0, 0, position);
  buffer = grown;
}

/** Encodes an expression tree. */
export function encodeExpression(node: ExpNode): Buffer {
  position = 0;
  write(node);
  return Buffer.from(buffer.subarray(0, position));
}

function write(node: ExpNode): void {
  if (Array.isArray(node)) {
    writeHeader(node.length);
    for (const child of node) write(child);
  } else if (typeof node === 'number') {
    writeInteger(BigInt(node));
  } else if (typeof node === 'bigint') {
    writeInteger(node);
  } else if (node instanceof EncodedNode) {
    room(node.bytes.length);
    node.bytes.copy(buffer, position);
    position += node.bytes.length;
  } else if (node instanceof FloatLiteral) {
    room(9);
    buffer[position] = 0xcb;
    buffer.writeDoubleBE(node.value, position + 1);
    position += 9;
  } else {
    writeValue(node instanceof ValueLiteral ? node.value : (node as CdtValue));
  }
}

function writeHeader(count: number): void {
  room(5);
  if (count < 16) buffer[position++] = 0x90 | count;
  else if (count < 0x10000) {
    buffer[position] = 0xdc;
    buffer.writeUInt16BE(count, position + 1);
    position += 3;
  } else {
    buffer[position] = 0xdd;
    buffer.writeUInt32BE(count, position + 1);
    position += 5;
  }
}

/** An integer in its smallest MessagePack form, int64 past 32 bits (never float64: an integer stays one). */
function writeInteger(value: bigint): void {
  room(9);
  if (value >= -32n && value <= 127n) {
    buffer[position++] = Number(value) & 0xff;
  } else if (value >= -(2n ** 31n) && value < 2n ** 31n) {
    buffer[position] = 0xd2;
    buffer.writeInt32BE(Number(value), position + 1);
    position += 5;
  } else {
    buffer[position] = 0xd3;
    buffer.writeBigInt64BE(value, position + 1);
    position += 9;
  }
}

/** Strings, bytes, booleans, nil, lists and maps: as the collection engine encodes them. */
function writeValue(value: CdtValue): void {
  for (;;) {
    const end = encodeCdtValue(buffer, position, buffer.length, value, true);
    if (end >= 0) {
      position = end;
      return;
    }
    room(buffer.length);
  }
}
