/**
 * Raw AS_MSG requests for protocol tests that must control the bytes a client sends (CDT
 * payloads and expressions a client would never send, several ops on one bin) and read every
 * op of the reply, which the official client folds into one value per bin. Requests go over
 * one TCP connection, in order, to a served node (test/helpers/service-server.ts).
 */
import * as net from 'node:net';
import { digestOf } from '../../lib/index';
import { ByteWriter } from '../../lib/service/byte-writer';
import { decodeParticle } from '../../lib/service/particles';
import { FieldType, FrameType, Info1, Info2, PROTO_HEADER_BYTES, beginFrame, beginOp, endFrame, endOp, parseMessage, writeField, writeMessageHeader, writeStringField } from '../../lib/service/wire';

export interface RawOp {
  op: number;
  name: string;
  /** The particle type byte (default 4, what clients send for CDT and expression ops). */
  particleType?: number;
  value?: Buffer;
}

export interface RawRequest {
  set: string;
  key: string | number;
  info1?: number;
  info2?: number;
  ops: RawOp[];
  /** Extra fields (a filter expression: [FieldType.FILTER, bytes]). */
  fields?: [number, Buffer][];
}

export interface RawReply {
  resultCode: number;
  generation: number;
  ops: { name: string; particleType: number; value: unknown; bytes: Buffer }[];
}

/** The frame of a single-record request in namespace "test". */
export function rawRequest(request: RawRequest): Buffer {
  const writer = new ByteWriter();
  const start = beginFrame(writer);
  const fields = request.fields ?? [];
  const writes = request.ops.some((op) => op.op !== 1 && op.op !== 3 && op.op !== 7);
  writeMessageHeader(writer, {
    info1: request.info1 ?? (writes ? 0 : Info1.READ),
    info2: request.info2 ?? (writes ? Info2.WRITE | Info2.RESPOND_ALL_OPS : 0),
    resultCode: 0,
    fieldCount: 3 + fields.length,
    opCount: request.ops.length,
  });
  writeStringField(writer, FieldType.NAMESPACE, 'test');
  writeStringField(writer, FieldType.SET, request.set);
  writeField(writer, FieldType.DIGEST, digestOf(request.set, request.key));
  for (const [type, value] of fields) writeField(writer, type, value);
  for (const op of request.ops) {
    const at = beginOp(writer, op.op, op.particleType ?? 4, op.name);
    if (op.value !== undefined) writer.bytes(op.value);
    endOp(writer, at);
  }
  endFrame(writer, start, FrameType.MESSAGE);
  return writer.copyFrom(0);
}

/** One connection to a served node: sends frames and reads one reply frame per request. */
export class RawConnection {
  private readonly socket: net.Socket;
  private buffered = Buffer.alloc(0);
  private waiting: (() => void) | undefined;
  private closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.waiting?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiting?.();
    });
    socket.on('error', () => undefined);
  }

  static open(port: number, host = '127.0.0.1'): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, host, () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends a request and resolves to its reply; rejects when the server closes the connection or is silent for timeoutMs. */
  async send(request: RawRequest | Buffer, timeoutMs = 10_000): Promise<RawReply> {
    this.socket.write(Buffer.isBuffer(request) ? request : rawRequest(request));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.buffered.length >= PROTO_HEADER_BYTES) {
        const size = this.buffered.readUInt32BE(4) + (this.buffered.readUInt16BE(2) * 4294967296);
        if (this.buffered.length >= PROTO_HEADER_BYTES + size) {
          const body = this.buffered.subarray(PROTO_HEADER_BYTES, PROTO_HEADER_BYTES + size);
          this.buffered = this.buffered.subarray(PROTO_HEADER_BYTES + size);
          return parseReply(body);
        }
      }
      if (this.closed) throw new Error('the server closed the connection');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply in ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiting = () => {
          clearTimeout(timer);
          this.waiting = undefined;
          resolve();
        };
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

function parseReply(body: Buffer): RawReply {
  const message = parseMessage(body, 0, body.length);
  return {
    resultCode: message.resultCode,
    generation: message.generation,
    ops: message.ops.map((op) => ({
      name: op.name,
      particleType: op.particleType,
      value: decodeParticle(op.particleType, op.source, op.valueStart, op.valueEnd),
      bytes: Buffer.from(op.source.subarray(op.valueStart, op.valueEnd)),
    })),
  };
}

/** MessagePack in Aerospike's dialect, for payloads written by hand: strings with their particle-type byte. */
export const mp = {
  array: (...items: Buffer[]) => Buffer.concat([header(items.length, 0x90, 0xdc), ...items]),
  map: (...entries: Buffer[]) => Buffer.concat([header(entries.length / 2, 0x80, 0xde), ...entries]),
  int: (value: number) => {
    if (value >= 0 && value < 0x80) return Buffer.from([value]);
    if (value < 0 && value >= -32) return Buffer.from([0x100 + value]);
    const bytes = Buffer.alloc(9);
    bytes[0] = 0xd3;
    bytes.writeBigInt64BE(BigInt(value), 1);
    return bytes;
  },
  str: (value: string) => prefixed(3, Buffer.from(value, 'utf8')),
  blob: (value: Buffer) => prefixed(4, value),
  /** A str item without the particle-type byte (names inside expressions). */
  raw: (value: string) => {
    const bytes = Buffer.from(value, 'utf8');
    return Buffer.concat([Buffer.from([0xa0 | bytes.length]), bytes]);
  },
  nil: () => Buffer.from([0xc0]),
  bool: (value: boolean) => Buffer.from([value ? 0xc3 : 0xc2]),
  inf: () => Buffer.from([0xd4, 0xff, 0x01]),
  wildcard: () => Buffer.from([0xd4, 0xff, 0x00]),
};

function header(count: number, fix: number, sixteen: number): Buffer {
  if (count < 16) return Buffer.from([fix | count]);
  const bytes = Buffer.alloc(3);
  bytes[0] = sixteen;
  bytes.writeUInt16BE(count, 1);
  return bytes;
}

function prefixed(type: number, bytes: Buffer): Buffer {
  const size = bytes.length + 1;
  const head = size < 32 ? Buffer.from([0xa0 | size]) : size < 256 ? Buffer.from([0xd9, size]) : Buffer.from([0xda, size >> 8, size & 0xff]);
  return Buffer.concat([head, Buffer.from([type]), bytes]);
}
