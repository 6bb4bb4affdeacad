/**
 * Malformed frames over raw sockets against a served node: wrong versions and types, sizes
 * past the limit, frames cut off, AS_MSGs whose fields and ops overrun, unknown ops, broken
 * batches and scans, seeded random bytes and bit flips of valid requests. Each is answered with
 * a result code or closes its connection; afterwards the process is alive, serves clients and
 * every record written before is intact.
 */
import * as net from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import Aerospike from 'aerospike';
import { digestOf } from '../lib/index';
import { ByteWriter } from '../lib/service/byte-writer';
import { FieldType, FrameType, Info1, Info2, OpCode, beginFrame, beginOp, endFrame, endOp, writeField, writeMessageHeader, writeStringField } from '../lib/service/wire';
import { cleanupTempDirs } from './helpers/temp';
import { seededBytes, seededFloats } from './helpers/random';
import { ServedNode, clientConfig, serveNode, stopNode } from './helpers/service-server';

let node: ServedNode;
let client: Aerospike.Client;
const RECORDS = 200;

beforeAll(async () => {
  node = await serveNode();
  client = await Aerospike.connect(clientConfig(node));
  for (let i = 0; i < RECORDS; i++) await client.put(new Aerospike.Key('test', 'fuzz', i), { i, s: `value-${i}` });
}, 60_000);

afterAll(async () => {
  await client?.close();
  if (node !== undefined) await stopNode(node);
  cleanupTempDirs();
});

/** A frame of `type` around `body`, with the size it really has unless `claimedSize` says otherwise. */
function frame(type: number, body: Buffer, claimedSize = body.length, version = 2): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(((version << 24) | (type << 16) | Math.floor(claimedSize / 4294967296)) >>> 0, 0);
  header.writeUInt32BE(claimedSize >>> 0, 4);
  return Buffer.concat([header, body]);
}

/**
 * A single-record request: a write of bin v (an integer 1, unless `value` says otherwise)
 * or a get of key `key`.
 */
function request(key: number, write: boolean, opCode: number = OpCode.WRITE, value?: Buffer): Buffer {
  const writer = new ByteWriter();
  const start = beginFrame(writer);
  writeMessageHeader(writer, { info1: write ? 0 : Info1.READ | Info1.GET_ALL, info2: write ? Info2.WRITE : 0, resultCode: 0, fieldCount: 3, opCount: write ? 1 : 0 });
  writeStringField(writer, FieldType.NAMESPACE, 'test');
  writeStringField(writer, FieldType.SET, 'fuzz-target');
  writeField(writer, FieldType.DIGEST, digestOf('fuzz-target', key));
  if (write) {
    const at = beginOp(writer, opCode, 1, 'v');
    if (value === undefined) writer.int64(1);
    else writer.bytes(value);
    endOp(writer, at);
  }
  endFrame(writer, start, FrameType.MESSAGE);
  return writer.copyFrom(0);
}

/** An AS_MSG body: header with these counts, then `rest`. */
function message(fieldCount: number, opCount: number, rest: Buffer, info1: number = Info1.READ): Buffer {
  const writer = new ByteWriter();
  writeMessageHeader(writer, { info1, resultCode: 0, fieldCount, opCount });
  writer.bytes(rest);
  return writer.copyFrom(0);
}

/** Sends `pieces` on a fresh connection, 5 ms apart; resolves to the reply bytes (empty if none in waitMs). */
function sendInPieces(pieces: Buffer[], waitMs = 1000): Promise<Buffer> {
  return new Promise((resolve) => {
    const socket = net.connect(node.port, node.host);
    let reply = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(reply);
    }, waitMs);
    socket.on('data', (chunk: Buffer) => (reply = Buffer.concat([reply, chunk])));
    socket.on('error', () => undefined);
    socket.on('connect', async () => {
      for (const piece of pieces) {
        socket.write(piece);
        await new Promise((wait) => setTimeout(wait, 5));
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(reply);
    });
  });
}

/**
 * Sends `bytes` on a fresh connection and resolves to what happened: 'closed' (the server
 * closed it), 'answered' (a reply came) or 'open' (nothing within waitMs).
 */
function send(bytes: Buffer, waitMs = 300): Promise<'closed' | 'answered' | 'open'> {
  return new Promise((resolve) => {
    const socket = net.connect(node.port, node.host);
    let settled = false;
    const finish = (outcome: 'closed' | 'answered' | 'open') => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish('open'), waitMs);
    socket.on('data', () => finish('answered'));
    socket.on('close', () => finish('closed'));
    socket.on('error', () => finish('closed'));
    socket.on('connect', () => socket.write(bytes));
  });
}

it('closes connections that send what is not Aerospike framing, and stays up', async () => {
  const digest = digestOf('fuzz-target', 1);
  const field = (type: number, value: Buffer) => {
    const bytes = Buffer.alloc(5 + value.length);
    bytes.writeUInt32BE(value.length + 1);
    bytes[4] = type;
    value.copy(bytes, 5);
    return bytes;
  };
  const cases: [string, Buffer, 'closed' | 'answered'][] = [
    ['proto version 3', frame(FrameType.INFO, Buffer.from('status\n'), undefined, 3), 'closed'],
    ['proto type 9', frame(9, Buffer.from('x')), 'closed'],
    ['a 1 TiB frame', frame(FrameType.MESSAGE, Buffer.alloc(0), 2 ** 40), 'closed'],
    ['a 64 MiB frame', frame(FrameType.MESSAGE, Buffer.alloc(0), 64 << 20), 'closed'],
    ['an AS_MSG shorter than its header', frame(FrameType.MESSAGE, Buffer.alloc(10)), 'closed'],
    ['header size 30', frame(FrameType.MESSAGE, Buffer.concat([Buffer.from([30]), Buffer.alloc(21)])), 'closed'],
    ['a field overrunning the frame', frame(FrameType.MESSAGE, message(1, 0, Buffer.from([0, 0, 1, 0, 0, 1, 2]))), 'closed'],
    ['a zero-size field', frame(FrameType.MESSAGE, message(1, 0, Buffer.from([0, 0, 0, 0, 0]))), 'closed'],
    ['more fields than bytes', frame(FrameType.MESSAGE, message(65535, 0, Buffer.alloc(0))), 'closed'],
    ['an op overrunning the frame', frame(FrameType.MESSAGE, message(0, 1, Buffer.from([0, 0, 0, 200, 1, 1, 0, 1, 0x61]))), 'closed'],
    ['an op name longer than the op', frame(FrameType.MESSAGE, message(0, 1, Buffer.from([0, 0, 0, 5, 1, 1, 0, 40, 0x61]))), 'closed'],
    ['an unknown op code', request(1, true, 99), 'answered'],
    ['a CDT op', request(1, true, OpCode.CDT_MODIFY), 'answered'],
    ['a write of a 7-byte integer', request(1, true, OpCode.WRITE, Buffer.alloc(7)), 'answered'],
    ['no namespace', frame(FrameType.MESSAGE, message(1, 0, field(FieldType.DIGEST, digest))), 'answered'],
    ['a 19-byte digest', frame(FrameType.MESSAGE, message(2, 0, Buffer.concat([field(FieldType.NAMESPACE, Buffer.from('test')), field(FieldType.DIGEST, digest.subarray(1))]))), 'answered'],
    ['an unknown namespace', frame(FrameType.MESSAGE, message(2, 0, Buffer.concat([field(FieldType.NAMESPACE, Buffer.from('nope')), field(FieldType.DIGEST, digest)]))), 'answered'],
    ['a batch of 4 billion rows', frame(FrameType.MESSAGE, message(1, 0, field(FieldType.BATCH_INDEX, Buffer.from([0xff, 0xff, 0xff, 0xff, 0])), Info1.BATCH)), 'closed'],
    ['a batch row cut off', frame(FrameType.MESSAGE, message(1, 0, field(FieldType.BATCH_INDEX, Buffer.concat([Buffer.from([0, 0, 0, 2, 0, 0, 0, 0, 0]), digest])), Info1.BATCH)), 'closed'],
    ['a batch whose first row repeats', frame(FrameType.MESSAGE, message(1, 0, field(FieldType.BATCH_INDEX, Buffer.concat([Buffer.from([0, 0, 0, 1, 0, 0, 0, 0, 0]), digest, Buffer.from([1])])), Info1.BATCH)), 'closed'],
    ['a scan with an odd partition list', frame(FrameType.MESSAGE, message(2, 0, Buffer.concat([field(FieldType.NAMESPACE, Buffer.from('test')), field(FieldType.PARTITION_IDS, Buffer.from([1, 2, 3]))]))), 'answered'],
    ['a scan of partition 9999', frame(FrameType.MESSAGE, message(2, 0, Buffer.concat([field(FieldType.NAMESPACE, Buffer.from('test')), field(FieldType.PARTITION_IDS, Buffer.from([0x0f, 0x27]))]))), 'answered'],
    ['an admin message shorter than its header', frame(FrameType.ADMIN, Buffer.alloc(4)), 'closed'],
    ['an admin field overrunning', frame(FrameType.ADMIN, Buffer.concat([Buffer.from([0, 0, 20, 1]), Buffer.alloc(12), Buffer.from([0, 0, 1, 0, 0])])), 'closed'],
    ['a compressed request', frame(FrameType.COMPRESSED, Buffer.alloc(16)), 'answered'],
    ['a 2 MiB info request', frame(FrameType.INFO, Buffer.alloc(2 << 20, 0x61)), 'closed'],
    ['an info request of binary bytes', frame(FrameType.INFO, Buffer.concat([seededBytes(200, 7), Buffer.from('\n')])), 'answered'],
  ];
  for (const [name, bytes, expected] of cases) expect(await send(bytes), name).toBe(expected);
  // A frame cut off mid-body, then the connection closed by the client: nothing to answer.
  expect(await send(request(2, true).subarray(0, 20), 200)).toBe('open');
  expect(node.child.exitCode).toBeNull();
}, 120_000);

it('reads frames whatever pieces they arrive in, an empty one included', async () => {
  // An empty info request (the summary) whose header comes in two pieces.
  const empty = frame(FrameType.INFO, Buffer.alloc(0));
  const summary = await sendInPieces([empty.subarray(0, 3), empty.subarray(3)]);
  expect(summary.subarray(8).toString()).toMatch(/\nbuild\t7\.0\.0\.0\n/);
  // A put cut into single bytes, then a get in the same write as the put's last byte.
  const put = request(5, true);
  const pieces = [...put.subarray(0, put.length - 1)].map((byte) => Buffer.from([byte]));
  pieces.push(Buffer.concat([put.subarray(put.length - 1), request(5, false)]));
  const replies = await sendInPieces(pieces, 5000);
  // Two replies: the put's (result 0) and the get's, with bin v = 1.
  expect(replies[8 + 5]).toBe(0);
  const second = 8 + replies.readUInt32BE(4);
  expect(replies[second + 8 + 5]).toBe(0);
  expect(replies.readUInt16BE(second + 8 + 20)).toBe(1);
}, 60_000);

it('survives seeded random bytes and bit flips of valid requests', async () => {
  const random = seededFloats(14);
  const valid = [request(3, true), request(3, false), frame(FrameType.INFO, Buffer.from('status\nnamespaces\n'))];
  for (let round = 0; round < 300; round++) {
    let bytes: Buffer;
    if (round % 3 === 0) {
      // A valid frame header, then random bytes.
      const body = seededBytes(1 + Math.floor(random() * 400), round + 1);
      bytes = frame(1 + Math.floor(random() * 4), body);
    } else {
      bytes = Buffer.from(valid[round % valid.length]!);
      const flips = 1 + Math.floor(random() * 4);
      for (let i = 0; i < flips; i++) bytes[8 + Math.floor(random() * (bytes.length - 8))]! ^= 1 << Math.floor(random() * 8);
    }
    await send(bytes, 150);
  }
  expect(node.child.exitCode).toBeNull();
}, 180_000);

it('serves clients afterwards, with every record intact, and counted what it refused', async () => {
  expect(node.child.exitCode).toBeNull();
  const records = await client.batchRead(Array.from({ length: RECORDS }, (_, i) => ({ key: new Aerospike.Key('test', 'fuzz', i), readAllBins: true })));
  expect(records.map((r) => r.record.bins)).toEqual(Array.from({ length: RECORDS }, (_, i) => ({ i, s: `value-${i}` })));
  await client.put(new Aerospike.Key('test', 'fuzz', 'after'), { ok: true });
  expect((await client.get(new Aerospike.Key('test', 'fuzz', 'after'))).bins).toEqual({ ok: true });
  const stats = Aerospike.info.parse(await client.infoAny('statistics')).statistics as Record<string, number>;
  expect(stats.malformed_frames).toBeGreaterThan(20);
  expect(node.stderr()).toMatch(/closed the connection from/);
}, 60_000);
