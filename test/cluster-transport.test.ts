import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AdminClient } from '../lib/cluster/admin-client';
import { ClusterNode } from '../lib/cluster/cluster';
import { MAX_FRAME_BYTES, PROTOCOL_VERSION_CURRENT } from '../lib/cluster/constants';
import { decodeBody, encodeFrame, FrameDecoder, FrameError } from '../lib/cluster/frame';
import type { WireMessage } from '../lib/cluster/network';
import { MemoryLogger, realRuntime } from '../lib/cluster/seams';
import { TcpNetwork } from '../lib/cluster/tcp-network';

const started: ClusterNode[] = [];
const sockets: net.Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(started.splice(0).map((node) => node.stop()));
});

async function startNode(nodeId: string, seeds: string[] = [], extra: Record<string, unknown> = {}): Promise<{ node: ClusterNode; logger: MemoryLogger }> {
  const logger = new MemoryLogger();
  const node = new ClusterNode(
    { nodeId, listen: { host: '127.0.0.1', port: 0 }, seeds, heartbeatIntervalMs: 50, heartbeatTimeout: 10, ...extra },
    { runtime: realRuntime(logger), network: new TcpNetwork(logger) },
  );
  started.push(node);
  await node.start();
  return { node, logger };
}

/** Connects a raw socket, writes `bytes`, and resolves with everything received until the server closes it. */
function rawExchange(address: string, bytes: Buffer, timeoutMs = 5_000): Promise<{ closed: boolean; received: Buffer }> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    sockets.push(socket);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ closed: false, received: Buffer.concat(chunks) });
    }, timeoutMs);
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ closed: true, received: Buffer.concat(chunks) });
    });
  });
}

function hello(overrides: Partial<WireMessage> = {}): WireMessage {
  return {
    type: 'hello',
    protocolVersion: PROTOCOL_VERSION_CURRENT,
    minProtocolVersion: PROTOCOL_VERSION_CURRENT,
    nodeId: 'probe',
    clusterName: 'shoal',
    address: '127.0.0.1:1',
    ...overrides,
  };
}

function decodeAll(bytes: Buffer): WireMessage[] {
  return new FrameDecoder().push(bytes);
}

/** A valid hello on a fresh connection still gets an ack: the server is still accepting. */
async function expectStillAccepting(address: string): Promise<void> {
  const result = await new Promise<WireMessage[]>((resolve) => {
    const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
    const socket = net.connect({ host, port });
    sockets.push(socket);
    const decoder = new FrameDecoder();
    socket.on('connect', () => socket.write(encodeFrame(hello())));
    socket.on('data', (chunk) => {
      const messages = decoder.push(chunk);
      if (messages.length > 0) {
        socket.destroy();
        resolve(messages);
      }
    });
  });
  expect(result[0].type).toBe('hello-ack');
}

describe('frame codec', () => {
  it('round-trips messages split across arbitrary chunks', () => {
    const messages: WireMessage[] = [
      { type: 'a', n: 1, buffer: Buffer.from([1, 2, 3]), big: 2n ** 60n },
      { type: 'b', nested: { list: [1, 'x', null] } },
    ];
    const bytes = Buffer.concat(messages.map(encodeFrame));
    const decoder = new FrameDecoder();
    const out: WireMessage[] = [];
    for (let i = 0; i < bytes.length; i += 3) out.push(...decoder.push(bytes.subarray(i, i + 3)));
    expect(out).toHaveLength(2);
    expect(out[0].n).toBe(1);
    expect(Buffer.from(out[0].buffer as Uint8Array)).toEqual(Buffer.from([1, 2, 3]));
    expect(out[0].big).toBe(2n ** 60n);
    expect(out[1].nested).toEqual({ list: [1, 'x', null] });
  });

  it('rejects oversized, empty, undecodable and non-message frames', () => {
    const oversized = Buffer.alloc(4);
    oversized.writeUInt32BE(MAX_FRAME_BYTES + 1);
    expect(() => new FrameDecoder().push(oversized)).toThrow(FrameError);
    expect(() => new FrameDecoder().push(Buffer.alloc(4))).toThrow(FrameError);
    expect(() => decodeBody(Buffer.from([0xc1]))).toThrow(FrameError);
    expect(() => decodeBody(Buffer.from([0x05]))).toThrow(FrameError);
    expect(() => decodeBody(Buffer.from([0x81, 0xa1, 0x78, 0x01]))).toThrow(FrameError); // {x:1}, no type
  });
});

describe('TCP transport on 127.0.0.1', () => {
  it('closes a connection that sends garbage, logs it, and keeps accepting', async () => {
    const { node, logger } = await startNode('t1');
    const garbage = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n' + 'x'.repeat(100));
    const result = await rawExchange(node.address, garbage);
    expect(result.closed).toBe(true);
    expect(logger.entries.some((e) => e.level === 'warn' && e.message.includes('closing connection'))).toBe(true);
    await expectStillAccepting(node.address);
  });

  it('closes a connection whose length prefix exceeds MAX_FRAME_BYTES without allocating it', async () => {
    const { node, logger } = await startNode('t2');
    const prefix = Buffer.alloc(8);
    prefix.writeUInt32BE(0xffffffff, 0);
    const result = await rawExchange(node.address, prefix);
    expect(result.closed).toBe(true);
    expect(logger.entries.some((e) => e.message.includes('exceeds MAX_FRAME_BYTES'))).toBe(true);
    await expectStillAccepting(node.address);
  });

  it('refuses an unknown protocol version with a clear reason', async () => {
    const { node, logger } = await startNode('t3');
    const result = await rawExchange(node.address, encodeFrame(hello({ protocolVersion: 99, minProtocolVersion: 99 })));
    expect(result.closed).toBe(true);
    const replies = decodeAll(result.received);
    expect(replies[0]?.type).toBe('hello-reject');
    expect(String(replies[0]?.reason)).toMatch(/unsupported protocol version 99/);
    expect(logger.entries.some((e) => e.message.includes('unsupported protocol version 99'))).toBe(true);
    await expectStillAccepting(node.address);
  });

  it('interoperates with a newer node whose minimum version we still speak', async () => {
    const { node } = await startNode('t4');
    const result = await rawExchange(node.address, encodeFrame(hello({ protocolVersion: PROTOCOL_VERSION_CURRENT + 1 })), 300);
    const replies = decodeAll(result.received);
    expect(replies[0]?.type).toBe('hello-ack');
    expect(replies[0]?.protocolVersion).toBe(PROTOCOL_VERSION_CURRENT);
  });

  it('refuses a hello from another cluster name and messages before the handshake', async () => {
    const { node } = await startNode('t5');
    const other = await rawExchange(node.address, encodeFrame(hello({ clusterName: 'other' })));
    expect(decodeAll(other.received)[0]?.type).toBe('hello-reject');
    const early = await rawExchange(node.address, encodeFrame({ type: 'heartbeat', address: 'x:1', adjacency: [], clusterKey: 'k' }));
    expect(early.closed).toBe(true);
  });

  it('3 nodes form a cluster over TCP from one seed and stay formed while garbage hits a fabric port', async () => {
    const a = await startNode('a');
    const b = await startNode('b', [a.node.address]);
    const c = await startNode('c', [a.node.address]);
    const nodes = [a.node, b.node, c.node];
    const agreed = () => nodes.every((n) => n.view.succession.join() === 'c,b,a' && n.view.clusterKey === a.node.view.clusterKey);
    const deadline = Date.now() + 10_000;
    while (!agreed() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(agreed()).toBe(true);
    const key = a.node.view.clusterKey;
    for (let i = 0; i < 20; i++) {
      const junk = Buffer.alloc(64 + i * 37);
      for (let j = 0; j < junk.length; j++) junk[j] = (j * 131 + i * 7) & 0xff;
      await rawExchange(b.node.address, junk, 200);
    }
    await new Promise((r) => setTimeout(r, 600));
    expect(agreed()).toBe(true);
    expect(a.node.view.clusterKey).toBe(key);
  });

  it('rolling upgrade: a node speaking the next protocol version joins; one that only speaks an unknown version is refused', async () => {
    const a = await startNode('u1');
    const newer = await startNode('u2', [a.node.address], { protocolVersion: PROTOCOL_VERSION_CURRENT + 1, minProtocolVersion: PROTOCOL_VERSION_CURRENT });
    const future = await startNode('u9', [a.node.address], { protocolVersion: 99, minProtocolVersion: 99 });
    const deadline = Date.now() + 5_000;
    const joined = () => a.node.view.succession.join() === 'u2,u1' && newer.node.view.clusterKey === a.node.view.clusterKey;
    while (!joined() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(joined()).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(a.node.view.succession).not.toContain('u9');
    expect(future.node.view.succession).toEqual(['u9']);
    expect(a.logger.entries.some((e) => e.message.includes('unsupported protocol version 99'))).toBe(true);
    expect(future.logger.entries.some((e) => e.message.includes('refused our handshake'))).toBe(true);
  });

  it('admin connections (the operator CLI): state, quiesce, recluster, answered on the same connection', async () => {
    const a = await startNode('ad1');
    const b = await startNode('ad2', [a.node.address]);
    const deadline = Date.now() + 5_000;
    while (a.node.view.succession.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const client = await AdminClient.connect(b.node.address);
    try {
      const state = (await client.request('admin-state')) as { nodeId: string; succession: string[]; address: string };
      expect(state.nodeId).toBe('ad2');
      expect(state.succession).toEqual(['ad2', 'ad1']);
      await client.request('admin-quiesce');
      await client.request('admin-recluster');
      const until = Date.now() + 5_000;
      while (!a.node.view.quiesced.includes('ad2') && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      expect(a.node.view.quiesced).toEqual(['ad2']);
      expect(a.node.state().partitions.master).toBe(4096);
    } finally {
      client.close();
    }
    await expect(AdminClient.connect(b.node.address, { clusterName: 'other' })).rejects.toThrow(/does not match/);
  });

  it('refuses a second node with the same node id, and a wildcard listen address without advertise', async () => {
    const a = await startNode('dup');
    const b = await startNode('dup', [a.node.address]);
    await new Promise((r) => setTimeout(r, 300));
    expect(a.logger.entries.some((e) => e.message.includes('every node needs its own id'))).toBe(true);
    expect(a.node.view.succession).toEqual(['dup']);
    expect(b.node.view.succession).toEqual(['dup']);
    expect(() => new ClusterNode({ nodeId: 'w', listen: { host: '0.0.0.0', port: 0 } }, { runtime: realRuntime(new MemoryLogger()), network: new TcpNetwork(new MemoryLogger()) })).toThrow(/advertise/);
  });

  it('lag guard with a real busy-wait: a stalled process evicts nobody', async () => {
    const a = await startNode('la');
    const b = await startNode('lb', [a.node.address]);
    const agreed = () => a.node.view.succession.join() === 'lb,la' && b.node.view.clusterKey === a.node.view.clusterKey;
    const deadline = Date.now() + 10_000;
    while (!agreed() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(agreed()).toBe(true);
    const key = a.node.view.clusterKey;
    const stallUntil = Date.now() + 1_000; // twice the 500 ms timeout (50 ms x 10)
    while (Date.now() < stallUntil) {
      // busy wait: both nodes of this process are stalled
    }
    await new Promise((r) => setTimeout(r, 600));
    expect(a.node.view.clusterKey).toBe(key);
    expect(a.node.heartbeat.lag.stalls + b.node.heartbeat.lag.stalls).toBeGreaterThanOrEqual(2);
  });
});
