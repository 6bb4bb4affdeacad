/**
 * Cluster nodes on loopback TCP inside the test process (ClusterNode over TcpNetwork with the
 * in-memory store double), and raw peers that speak the wire protocol by hand: what an
 * outsider on the network can do. Every node and socket is closed by `closeAll`, which the
 * test files call in afterEach.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { ClusterSecrets, ConnectorHandshake } from '../../lib/cluster/auth';
import type { ClusterOptions } from '../../lib/cluster/cluster';
import { ClusterNode } from '../../lib/cluster/cluster';
import { PROTOCOL_VERSION_CURRENT, PROTOCOL_VERSION_MIN_SUPPORTED } from '../../lib/cluster/constants';
import { encodeFrame, FrameDecoder } from '../../lib/cluster/frame';
import type { Connection, TlsSettings, WireMessage } from '../../lib/cluster/network';
import { cryptoRandom, MemoryLogger, realClock, realRuntime, silentLogger } from '../../lib/cluster/seams';
import { digestOf, SimStore } from '../../sim/store';
import { TcpNetwork } from '../../lib/cluster/tcp-network';

export interface TcpNode {
  node: ClusterNode;
  logger: MemoryLogger;
  store: SimStore;
}

const nodes: ClusterNode[] = [];
const sockets: net.Socket[] = [];
const connections: Connection[] = [];
const servers: net.Server[] = [];

/** Stops every node, socket and server the helpers made. */
export async function closeAll(): Promise<void> {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const connection of connections.splice(0)) connection.close('test done');
  for (const server of servers.splice(0)) server.close();
  await Promise.all(nodes.splice(0).map((node) => node.stop()));
}

/** Starts a node on 127.0.0.1 (heartbeat 50 ms x 10 unless `extra` says otherwise). */
export async function startTcpNode(nodeId: string, seeds: string[] = [], extra: Partial<ClusterOptions> = {}): Promise<TcpNode> {
  const logger = new MemoryLogger();
  const store = new SimStore(realClock, { durability: 'memory' });
  const node = new ClusterNode(
    { nodeId, listen: { host: '127.0.0.1', port: 0 }, seeds, heartbeatIntervalMs: 50, heartbeatTimeout: 10, ...extra },
    { runtime: realRuntime(logger), network: new TcpNetwork(logger), store, requestTimeoutMs: 3_000 },
  );
  nodes.push(node);
  await node.start();
  return { node, logger, store };
}

/** Polls `predicate` every 20 ms; resolves whether it held within `timeoutMs`. */
export async function until(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether every node's view has exactly `ids` as members, under one cluster key. */
export function agree(members: ClusterNode[], ids: string[]): boolean {
  const expected = [...ids].sort().join(',');
  return members.every((n) => [...n.view.succession].sort().join(',') === expected && n.view.clusterKey === members[0]!.view.clusterKey);
}

export const put = (node: ClusterNode, key: string, value: unknown) =>
  node.execute({ kind: 'record', ns: 'test', digest: digestOf(key), operation: { call: 'put', bins: { v: value } } });
export const get = (node: ClusterNode, key: string) =>
  node.execute({ kind: 'record', ns: 'test', digest: digestOf(key), operation: { call: 'get' } }) as Promise<{ bins: { v: unknown } } | undefined>;

/** Records (live versions) a store holds. */
export function recordCount(store: SimStore): number {
  let count = 0;
  for (const version of store.data.get('test')!.values()) if (!version.tombstone) count++;
  return count;
}

/** Log messages at warn level or above. */
export function warnings(logger: MemoryLogger): string[] {
  return logger.entries.filter((e) => e.level === 'warn' || e.level === 'error').map((e) => e.message);
}

function hostPort(address: string): { host: string; port: number } {
  const index = address.lastIndexOf(':');
  return { host: address.slice(0, index), port: Number(address.slice(index + 1)) };
}

/** A raw TCP peer (or, with `tlsSettings`, a TLS peer with those certificates): writes whatever bytes it is told and decodes whatever frames come back. */
export class RawPeer {
  readonly socket: net.Socket;
  readonly received: WireMessage[] = [];
  bytesReceived = 0;
  closed = false;
  /** The TCP connection was set up (the kernel accepted it; the node may not have yet). */
  established = false;
  readonly connected: Promise<void>;
  private readonly decoder = new FrameDecoder();

  constructor(address: string, tlsSettings?: TlsSettings) {
    const { host, port } = hostPort(address);
    this.socket =
      tlsSettings === undefined
        ? net.connect({ host, port })
        : tls.connect({ host, port, key: tlsSettings.key, cert: tlsSettings.cert, ca: tlsSettings.ca, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined });
    sockets.push(this.socket);
    const ready = tlsSettings === undefined ? 'connect' : 'secureConnect';
    this.connected = new Promise((resolve) => this.socket.once(ready, () => resolve()));
    this.socket.once(ready, () => (this.established = true));
    this.socket.on('data', (chunk: Buffer) => {
      this.bytesReceived += chunk.length;
      try {
        this.received.push(...this.decoder.push(chunk));
      } catch {
        // not frames (TLS, say): counted in bytesReceived only
      }
    });
    this.socket.on('error', () => {});
    this.socket.on('close', () => (this.closed = true));
  }

  send(message: WireMessage): void {
    this.socket.write(encodeFrame(message));
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  types(): string[] {
    return this.received.map((m) => m.type);
  }
}

/** A hello as a node (or, with role 'admin', the CLI) sends it, with overrides. */
export function helloMessage(overrides: Partial<WireMessage> = {}): WireMessage {
  return {
    type: 'hello',
    protocolVersion: PROTOCOL_VERSION_CURRENT,
    minProtocolVersion: PROTOCOL_VERSION_MIN_SUPPORTED,
    nodeId: 'probe',
    clusterName: 'shoal',
    address: '127.0.0.1:1',
    ...overrides,
  };
}

/**
 * A peer that completes the real handshake (as node `nodeId`, proving `secret` if given) and
 * then sends whatever it is told on the authenticated, sealed connection. Resolves once ready;
 * rejects with the handshake's failure.
 */
export async function authenticatedPeer(
  address: string,
  options: { nodeId: string; secret?: string | Buffer; tls?: TlsSettings; advertise?: string; clusterName?: string },
): Promise<{ connection: Connection; received: WireMessage[] }> {
  const keys = options.secret === undefined ? undefined : await new ClusterSecrets(options.secret).keys();
  const connection = new TcpNetwork(silentLogger).connect(address, { tls: options.tls });
  connections.push(connection);
  const handshake = new ConnectorHandshake(
    connection,
    {
      protocolVersion: PROTOCOL_VERSION_CURRENT,
      minProtocolVersion: PROTOCOL_VERSION_MIN_SUPPORTED,
      nodeId: options.nodeId,
      clusterName: options.clusterName ?? 'shoal',
      address: options.advertise ?? '127.0.0.1:9',
      role: 'node',
    },
    keys,
    cryptoRandom,
    options.tls !== undefined,
  );
  const received: WireMessage[] = [];
  await new Promise<void>((resolve, reject) => {
    let ready = false;
    connection.setHandlers({
      onMessage: (message) => {
        if (ready) {
          received.push(message);
          return;
        }
        const outcome = handshake.onMessage(message);
        if (outcome.kind === 'ready') {
          ready = true;
          resolve();
        } else if (outcome.kind === 'failed') reject(new Error(outcome.reason));
      },
      onClose: (reason) => {
        if (!ready) reject(new Error(`closed: ${reason}`));
      },
    });
    handshake.start();
  });
  return { connection, received };
}

/**
 * A TCP listener that records every frame sent to it and answers each hello with a plain
 * hello-ack (what a node without a secret would answer); `bytes` counts everything received,
 * frames or not (a TLS ClientHello, say).
 */
export async function fakeNode(nodeId: string): Promise<{ address: string; received: WireMessage[]; connections: number; bytes: number }> {
  const state = { address: '', received: [] as WireMessage[], connections: 0, bytes: 0 };
  const server = net.createServer((socket) => {
    state.connections++;
    sockets.push(socket);
    const decoder = new FrameDecoder();
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      state.bytes += chunk.length;
      let messages: WireMessage[] = [];
      try {
        messages = decoder.push(chunk);
      } catch {
        socket.destroy();
      }
      for (const message of messages) {
        state.received.push(message);
        if (message.type === 'hello') socket.write(encodeFrame({ type: 'hello-ack', nodeId, protocolVersion: PROTOCOL_VERSION_CURRENT, acknowledges: false }));
      }
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  state.address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return state;
}

const tlsDirectory = path.join(__dirname, '..', 'fixtures', 'tls');

/** The test certificates (test/fixtures/tls/make.sh): `cluster` is signed by the cluster CA, `stranger` by another CA. */
export function testTls(which: 'cluster' | 'stranger' = 'cluster'): TlsSettings {
  const read = (name: string) => fs.readFileSync(path.join(tlsDirectory, name), 'utf8');
  return which === 'cluster'
    ? { ca: read('ca.pem'), cert: read('node.pem'), key: read('node.key') }
    : { ca: read('other-ca.pem'), cert: read('stranger.pem'), key: read('stranger.key') };
}

/** Files of the test certificates, for the CLI's --tls-* options. */
export const testTlsFiles = {
  ca: path.join(tlsDirectory, 'ca.pem'),
  cert: path.join(tlsDirectory, 'node.pem'),
  key: path.join(tlsDirectory, 'node.key'),
};
