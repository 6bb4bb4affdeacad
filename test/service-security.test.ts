/**
 * service.users: the official client logs in with Aerospike's bcrypt credential and uses
 * session tokens on its later connections; a wrong password, no credentials, or a raw request
 * before login are refused. And the safe default: a listener reachable beyond loopback without
 * users refuses to start unless `insecure: true` says so (then it warns).
 */
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Aerospike from 'aerospike';
import { ErrorCode, open } from '../lib/index';
import { ByteWriter } from '../lib/service/byte-writer';
import { CREDENTIAL_SALT, credentialsOf } from '../lib/service/security';
import { FieldType, FrameType, Info1, beginFrame, endFrame, writeField, writeMessageHeader, writeStringField } from '../lib/service/wire';
import { digestOf } from '../lib/index';
import { cleanupTempDirs, tempDir } from './helpers/temp';
import { ServedNode, serveNode, stopNode } from './helpers/service-server';

let node: ServedNode;
const users = [
  { user: 'ada', password: 'correct horse battery' },
  { user: 'bob', password: 'another-secret' },
];

beforeAll(async () => {
  node = await serveNode({ service: { users } });
}, 60_000);

afterAll(async () => {
  if (node !== undefined) await stopNode(node);
  cleanupTempDirs();
});

function connect(user?: string, password?: string): Promise<Aerospike.Client> {
  // Generous timeouts: each new connection logs in first, and the machine may be loaded.
  const policies = { read: { totalTimeout: 10_000 }, write: { totalTimeout: 10_000 }, batch: { totalTimeout: 10_000 } };
  return Aerospike.connect({ hosts: [{ addr: node.host, port: node.port }], user, password, log: { level: Aerospike.log.OFF }, connTimeoutMs: 5000, policies } as Aerospike.ConfigOptions);
}

describe('login', () => {
  it('lets a configured user log in, on every connection the client opens', async () => {
    const client = await connect('ada', 'correct horse battery');
    try {
      // 40 commands at once: the client opens several connections, each authenticating with the session token.
      // allSettled: a failure must not leave commands in flight when the client closes.
      const puts = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => client.put(new Aerospike.Key('test', 'secure', i), { i })));
      expect(puts.filter((put) => put.status === 'rejected')).toEqual([]);
      const records = await client.batchRead(Array.from({ length: 40 }, (_, i) => ({ key: new Aerospike.Key('test', 'secure', i), readAllBins: true })));
      expect(records.map((r) => r.record.bins.i)).toEqual(Array.from({ length: 40 }, (_, i) => i));
      const stats = client.stats();
      expect(stats.nodes[0]!.asyncConnections.opened).toBeGreaterThan(1);
    } finally {
      await client.close();
    }
  });

  it('refuses a wrong password, an unknown user, and a client without credentials', async () => {
    await expect(connect('ada', 'wrong password')).rejects.toThrow();
    await expect(connect('eve', 'correct horse battery')).rejects.toThrow();
    await expect(connect()).rejects.toThrow();
  });

  it('answers a request sent before login with NOT_AUTHENTICATED and closes the connection', async () => {
    const writer = new ByteWriter();
    const start = beginFrame(writer);
    writeMessageHeader(writer, { info1: Info1.READ | Info1.GET_ALL, resultCode: 0, fieldCount: 3 });
    writeStringField(writer, FieldType.NAMESPACE, 'test');
    writeStringField(writer, FieldType.SET, 'secure');
    writeField(writer, FieldType.DIGEST, digestOf('secure', 1));
    endFrame(writer, start, FrameType.MESSAGE);
    const reply = await new Promise<{ bytes: Buffer; closed: boolean }>((resolve) => {
      const socket = net.connect(node.port, node.host, () => socket.write(writer.copyFrom(0)));
      let bytes = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => (bytes = Buffer.concat([bytes, chunk])));
      socket.on('close', () => resolve({ bytes, closed: true }));
      setTimeout(() => resolve({ bytes, closed: false }), 3000);
    });
    expect(reply.closed).toBe(true);
    // proto header (8), then the AS_MSG header: result code at byte 5.
    expect(reply.bytes[8 + 5]).toBe(80);
  });
});

describe('credentials', () => {
  it('are bcrypt with the constant salt, hashed off the event loop', async () => {
    let longestGapMs = 0;
    const started = performance.now();
    let last = started;
    const ticker = setInterval(() => {
      const now = performance.now();
      longestGapMs = Math.max(longestGapMs, now - last);
      last = now;
    }, 5);
    const hashes = await credentialsOf(['secret', 'another secret', 'a third']);
    const elapsedMs = performance.now() - started;
    clearInterval(ticker);
    expect(hashes[0]).toBe('$2a$10$7EqJtq98hPqEX7fNZaFWoOu7NRZ0i7m5NbgPBEsHTCoJzZDEKQRb.');
    for (const hash of hashes) expect(hash.startsWith(CREDENTIAL_SALT)).toBe(true);
    expect(new Set(hashes).size).toBe(3);
    // Hashed on this thread, the loop would stall for all of it (three bcrypts); a shared,
    // loaded machine may still delay a tick, so the bound is relative.
    expect(longestGapMs).toBeLessThan(elapsedMs / 2);
  });
});

describe('the safe default', () => {
  it('refuses to listen beyond loopback without users, unless insecure: true', async () => {
    const namespaces = [{ name: 'test', storage: { type: 'memory' as const, maxBytes: 1 << 20 } }];
    const refused = await open({ dataDir: tempDir(), sharedMemoryIndex: false, namespaces, service: { listen: { host: '0.0.0.0', port: 0 }, advertise: '127.0.0.1:3000' }, log: () => undefined }).catch((error: unknown) => error);
    expect((refused as { code?: string }).code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect((refused as Error).message).toMatch(/service.users/);
    const lines: string[] = [];
    const db = await open({ dataDir: tempDir(), sharedMemoryIndex: false, namespaces, service: { listen: { host: '0.0.0.0', port: 0 }, advertise: '127.0.0.1:3000', insecure: true }, log: (line) => lines.push(line) });
    try {
      expect(db.service!.address.port).toBeGreaterThan(0);
      expect(lines.join('\n')).toMatch(/WARNING listening on 0\.0\.0\.0.*without users/);
    } finally {
      await db.close();
    }
    await expect(open({ dataDir: tempDir(), namespaces, service: { listen: { host: '127.0.0.1', port: 0 }, users: [{ user: 'x', password: '' }] } })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    await expect(open({ dataDir: tempDir(), namespaces, service: { listen: { host: '127.0.0.1', port: 0 }, extra: 1 } as never })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
  });
});
