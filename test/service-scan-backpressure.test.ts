/**
 * Scans stream with backpressure: a client that stops reading holds the scan at about one
 * reply chunk of queued bytes (the kernel's socket buffers aside), not the namespace; once it
 * reads again it gets every record, and the stream ends with the LAST flag.
 */
import * as net from 'node:net';
import { expect, it } from 'vitest';
import { ByteWriter } from '../lib/service/byte-writer';
import { SERVICE_REPLY_CHUNK_BYTES } from '../lib/service/constants';
import { FieldType, FrameType, Info1, Info3, beginFrame, endFrame, parseMessage, readProtoHeader, writeMessageHeader, writeStringField } from '../lib/service/wire';
import { open } from '../lib/index';
import { tempDir } from './helpers/temp';
import { track, useDbCleanup } from './helpers/db';

useDbCleanup(['test']);

it('holds a scan for a client that does not read, and delivers every record once it does', async () => {
  const db = track(await open({ dataDir: tempDir(), namespaces: [{ name: 'test', storage: { type: 'memory', maxBytes: 256 << 20 } }], service: { listen: { host: '127.0.0.1', port: 0 } }, log: () => undefined }));
  const records = 4000;
  const pad = 'x'.repeat(4096);
  await db.batchPut(Array.from({ length: records }, (_, i) => ({ key: { ns: 'test', set: 'big', key: i }, bins: { i, pad } })));
  const writer = new ByteWriter();
  const start = beginFrame(writer);
  writeMessageHeader(writer, { info1: Info1.READ, info3: Info3.PARTITION_DONE, resultCode: 0, fieldCount: 2 });
  writeStringField(writer, FieldType.NAMESPACE, 'test');
  writeStringField(writer, FieldType.SET, 'big');
  endFrame(writer, start, FrameType.MESSAGE);
  const socket = net.connect(db.service!.address.port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.pause();
  socket.write(writer.copyFrom(0));
  // The client reads nothing for a while: the server must stop producing.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const queued = db.service!.stats().queuedReplyBytes;
  expect(queued).toBeLessThanOrEqual(SERVICE_REPLY_CHUNK_BYTES * 2);
  // Now read it all.
  let buffered = Buffer.alloc(0);
  let seen = 0;
  let last = false;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`scan did not finish: ${seen} records`)), 30_000);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 8) {
        const { size } = readProtoHeader(buffered, 0);
        if (buffered.length < 8 + size) break;
        const body = buffered.subarray(8, 8 + size);
        for (let at = 0; at < body.length; ) {
          const message = parseMessage(body, at, body.length);
          if ((message.info3 & Info3.LAST) !== 0) last = true;
          else seen++;
          at = message.end;
        }
        buffered = buffered.subarray(8 + size);
      }
      if (last) {
        clearTimeout(timer);
        resolve();
      }
    });
    socket.resume();
  });
  socket.destroy();
  expect(seen).toBe(records);
  expect(records * pad.length).toBeGreaterThan(SERVICE_REPLY_CHUNK_BYTES * 20);
  console.log(`scan of ${records} records (${(records * pad.length) >> 20} MiB): ${queued} reply bytes queued while the client did not read`);
}, 60_000);
