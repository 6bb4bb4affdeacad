/**
 * What cluster security costs (issue 13's targets): put and get latency through one proxy hop
 * (the client on node A, the key mastered on node B, so each call crosses the fabric to B and
 * back, and a put also replicates to A) on three two-node clusters in one run:
 * unauthenticated, with cluster.secret (challenge-response handshake, then plain TCP with a
 * tag on every frame, lib/cluster/frame-auth.ts), and with cluster.secret plus cluster.tls
 * (TLS 1.3, frames not tagged again). Targets: the secret alone costs at most 10 % at p50,
 * TLS at most 30 %.
 *
 * Each node is a child process (bench/cluster-security-child.ts) embedding the whole Db.
 * Rounds are short and alternate between the clusters (in a rotating order), so a change in
 * machine load falls on all three alike; the verdict is on the p50 of all samples pooled, and
 * the median over rounds of each round's p50 ratio is printed beside it (a round's ratio
 * compares measurements taken seconds apart, so it is the less disturbed by load that comes
 * and goes). Besides latency it reports the CPU time both nodes spent per operation, which a
 * busy machine disturbs far less than latency. Then the transport alone: a 150-byte message
 * echoed over loopback (both ends in this process) on plain TCP in frames, TCP in tagged
 * frames (the addon's tags and node:crypto's), TLS-PSK (the secret's transport before the
 * tags) and TLS with certificates (the TLS ones without frames around the message), CPU time per round trip, the median of BENCH_SECURITY_ROUNDS interleaved runs;
 * and the cost of one tag alone. BENCH_SECURITY_OPS (default 500) operations of each kind per
 * round, BENCH_SECURITY_ROUNDS (default 20) rounds. The TLS certificates are the test ones
 * (test/fixtures/tls).
 */
import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import * as tls from 'node:tls';
import { FRAME_HEADER_BYTES, FRAME_TAG_BYTES } from '../lib/cluster/constants';
import { frameOf } from '../lib/cluster/frame';
import { frameMac, nativeFrameMacs } from '../lib/cluster/frame-auth';

const OPS = Number(process.env.BENCH_SECURITY_OPS ?? 500);
const ROUNDS = Number(process.env.BENCH_SECURITY_ROUNDS ?? 20);
const SECRET = 'benchmark cluster secret 0123456789';
const TLS_DIRECTORY = path.join(__dirname, '..', '..', 'test', 'fixtures', 'tls');

class BenchNode {
  private readonly child: ChildProcess;
  private nextId = 0;
  private readonly waiting = new Map<number, (reply: { ok: boolean; value?: unknown; message?: string }) => void>();
  readonly ready: Promise<string>;

  constructor(config: Record<string, unknown>) {
    this.child = spawn(process.execPath, [path.join(__dirname, 'cluster-security-child.js'), JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'inherit'] });
    let resolveReady: (address: string) => void = () => {};
    this.ready = new Promise((resolve, reject) => {
      resolveReady = resolve;
      this.child.once('exit', (code) => reject(new Error(`bench node exited with ${code}`)));
    });
    readline.createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const message = JSON.parse(line) as { ready?: boolean; address?: string; id?: number; ok: boolean };
      if (message.ready === true) resolveReady(message.address!);
      else this.waiting.get(message.id!)?.(message);
    });
  }

  async command<T>(op: string, fields: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    const reply = await new Promise<{ ok: boolean; value?: unknown; message?: string }>((resolve) => {
      this.waiting.set(id, resolve);
      this.child.stdin!.write(`${JSON.stringify({ id, op, ...fields })}\n`);
    });
    this.waiting.delete(id);
    if (!reply.ok) throw new Error(`bench node ${op}: ${reply.message}`);
    return reply.value as T;
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

interface Mode {
  name: string;
  cluster: Record<string, unknown>;
  nodes: BenchNode[];
  put: number[];
  get: number[];
  /** Each round's p50 (µs), per operation. */
  rounds: { put: number[]; get: number[] };
  /** CPU µs both nodes spent on all the puts, and on all the gets. */
  cpu: { put: number; get: number };
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 0.5);
}

async function startPair(mode: Mode, dataDir: string): Promise<void> {
  const a = new BenchNode({ nodeId: `${mode.name}-a`, dataDir: path.join(dataDir, `${mode.name}-a`), seeds: [], cluster: mode.cluster });
  mode.nodes.push(a);
  const address = await a.ready;
  const b = new BenchNode({ nodeId: `${mode.name}-b`, dataDir: path.join(dataDir, `${mode.name}-b`), seeds: [address], cluster: mode.cluster });
  mode.nodes.push(b);
  await b.ready;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const states = await Promise.all(mode.nodes.map((node) => node.command<{ succession: string[]; settled: boolean }>('state')));
    if (states.every((state) => state.succession.length === 2 && state.settled)) return;
    if (Date.now() > deadline) throw new Error(`${mode.name}: the two nodes did not form a cluster`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function runClusterSecurityBench(): Promise<boolean> {
  const tls = { key: fs.readFileSync(path.join(TLS_DIRECTORY, 'node.key'), 'utf8'), cert: fs.readFileSync(path.join(TLS_DIRECTORY, 'node.pem'), 'utf8'), ca: fs.readFileSync(path.join(TLS_DIRECTORY, 'ca.pem'), 'utf8') };
  const modes: Mode[] = [
    { name: 'unauthenticated', cluster: {}, nodes: [], put: [], get: [], rounds: { put: [], get: [] }, cpu: { put: 0, get: 0 } },
    { name: 'secret', cluster: { secret: SECRET }, nodes: [], put: [], get: [], rounds: { put: [], get: [] }, cpu: { put: 0, get: 0 } },
    { name: 'secret+tls', cluster: { secret: SECRET, tls }, nodes: [], put: [], get: [], rounds: { put: [], get: [] }, cpu: { put: 0, get: 0 } },
  ];
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-security-'));
  process.stdout.write(`\nCluster security cost: put and get through one proxy hop, 2 nodes per cluster, ${ROUNDS} rounds x ${OPS} operations of each\n`);
  try {
    for (const mode of modes) await startPair(mode, dataDir);
    const cpu = async (mode: Mode) => (await Promise.all(mode.nodes.map((node) => node.command<number>('cpu')))).reduce((a, b) => a + b, 0);
    // A warm-up round on each, not counted (JIT, first connections).
    for (const mode of modes) for (const operation of ['put', 'get']) await mode.nodes[0]!.command('measure', { count: Math.min(OPS, 500), operation });
    for (let round = 0; round < ROUNDS; round++) {
      // Every order of the three in turn, so none always runs first or last.
      const order = [...modes.slice(round % modes.length), ...modes.slice(0, round % modes.length)];
      for (const mode of round % 6 < 3 ? order : order.reverse()) {
        for (const operation of ['put', 'get'] as const) {
          const before = await cpu(mode);
          const samples = await mode.nodes[0]!.command<number[]>('measure', { count: OPS, operation });
          mode.cpu[operation] += (await cpu(mode)) - before;
          mode[operation].push(...samples);
          mode.rounds[operation].push(median(samples));
        }
      }
    }
    const base = modes[0]!;
    const summary = (samples: number[]) => {
      const sorted = [...samples].sort((x, y) => x - y);
      return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) };
    };
    let met = true;
    const targets: Record<string, number> = { secret: 1.1, 'secret+tls': 1.3 };
    for (const operation of ['put', 'get'] as const) {
      const reference = summary(base[operation]);
      for (const mode of modes) {
        const figures = summary(mode[operation]);
        const ratio = figures.p50 / reference.p50;
        const cpuPerOperation = mode.cpu[operation] / mode[operation].length;
        const cpuRatio = cpuPerOperation / (base.cpu[operation] / base[operation].length);
        const roundRatio = median(mode.rounds[operation].map((p50, round) => p50 / base.rounds[operation][round]!));
        const target = targets[mode.name];
        const verdict = target === undefined ? '' : ratio <= target ? `   MET (target <= ${target.toFixed(2)})` : `   NOT MET (target <= ${target.toFixed(2)})`;
        if (target !== undefined && ratio > target) met = false;
        process.stdout.write(
          `  ${operation} ${mode.name.padEnd(16)} p50 ${figures.p50.toFixed(1).padStart(7)} µs   p99 ${figures.p99.toFixed(1).padStart(8)} µs   ` +
            `cpu ${cpuPerOperation.toFixed(1).padStart(6)} µs/op   p50 x${ratio.toFixed(3)} (rounds x${roundRatio.toFixed(3)})  p99 x${(figures.p99 / reference.p99).toFixed(3)}  cpu x${cpuRatio.toFixed(3)}${verdict}\n`,
        );
      }
    }
    await transportEcho(tls);
    tagCost();
    return met;
  } finally {
    for (const mode of modes) for (const node of mode.nodes) node.kill();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** A socket pair's two ends: a listener started with `server`, a client made by `client` once it listens. */
interface Transport {
  name: string;
  server(onSocket: (socket: net.Socket) => void): net.Server;
  client(port: number): net.Socket;
  ready: 'connect' | 'secureConnect';
  /** Frames tagged and checked at both ends, as the fabric does with the secret alone. */
  tags?: 'native' | 'crypto';
}

/**
 * One end's frame handling, as the fabric's connections do it: a frame around each message
 * body (tagged with `tags`, else only its length in front; TLS transports send bare bodies),
 * and the body of the frame a received chunk completes (its tag checked). Loopback delivers a
 * 170-byte frame in one chunk nearly always; partial chunks are gathered.
 */
function frameEnd(transport: Transport, key: Buffer, peerKey: Buffer) {
  const tags = transport.tags;
  const framed = transport.ready === 'connect';
  const sealer = tags === undefined ? undefined : frameMac(key, tags);
  const checker = tags === undefined ? undefined : frameMac(peerKey, tags);
  const tagBytes = tags === undefined ? 0 : FRAME_TAG_BYTES;
  let pending: Buffer = Buffer.alloc(0);
  return {
    frame(body: Buffer): Buffer {
      if (!framed) return body;
      const frame = frameOf(body, tagBytes);
      sealer?.seal(frame);
      return frame;
    },
    /** The body of the frame this chunk completes, or undefined. */
    receive(chunk: Buffer): Buffer | undefined {
      if (!framed) return chunk;
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      if (pending.length < FRAME_HEADER_BYTES || pending.length < FRAME_HEADER_BYTES + pending.readUInt32BE(0)) return undefined;
      const frame = pending;
      pending = Buffer.alloc(0);
      if (checker !== undefined && !checker.verify(frame)) throw new Error('echo: a frame failed its tag');
      return frame.subarray(FRAME_HEADER_BYTES, frame.length - tagBytes);
    },
  };
}

/** CPU µs (both ends) per round trip of a 150-byte frame on `transport`, over `count` round trips. */
async function echoCpu(transport: Transport, count: number): Promise<number> {
  const [toServer, toClient] = [randomBytes(32), randomBytes(32)];
  const server = transport.server((socket) => {
    socket.setNoDelay(true);
    const end = frameEnd(transport, toClient, toServer);
    socket.on('data', (chunk) => {
      const body = end.receive(chunk);
      if (body !== undefined) socket.write(end.frame(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const client = transport.client((server.address() as net.AddressInfo).port);
  client.setNoDelay(true);
  await new Promise((resolve) => client.once(transport.ready, resolve));
  const body = randomBytes(150);
  const end = frameEnd(transport, toServer, toClient);
  let answered: () => void = () => {};
  client.on('data', (chunk) => {
    if (end.receive(chunk) !== undefined) answered();
  });
  const roundTrip = () => new Promise<void>((resolve) => {
    answered = resolve;
    client.write(end.frame(body));
  });
  for (let i = 0; i < 1_000; i++) await roundTrip();
  const before = process.cpuUsage();
  for (let i = 0; i < count; i++) await roundTrip();
  const used = process.cpuUsage(before);
  client.destroy();
  server.close();
  return (used.user + used.system) / count;
}

async function transportEcho(certificates: { key: string; cert: string; ca: string }): Promise<void> {
  const psk = randomBytes(32);
  const pskOptions = { ciphers: 'ECDHE-PSK-CHACHA20-POLY1305', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' } as const;
  const transports: Transport[] = [
    { name: 'tcp', server: (onSocket) => net.createServer(onSocket), client: (port) => net.connect(port, '127.0.0.1'), ready: 'connect' },
    { name: 'tcp + tags (secret)', server: (onSocket) => net.createServer(onSocket), client: (port) => net.connect(port, '127.0.0.1'), ready: 'connect', tags: 'native' },
    { name: 'tcp + tags, node:crypto', server: (onSocket) => net.createServer(onSocket), client: (port) => net.connect(port, '127.0.0.1'), ready: 'connect', tags: 'crypto' },
    {
      name: 'tls-psk (before tags)',
      server: (onSocket) => tls.createServer({ ...pskOptions, pskIdentityHint: 'k', pskCallback: () => psk }, onSocket),
      client: (port) => tls.connect({ port, host: '127.0.0.1', ...pskOptions, pskCallback: () => ({ psk, identity: 'k' }), checkServerIdentity: () => undefined }),
      ready: 'secureConnect',
    },
    {
      name: 'tls 1.3 (certificates)',
      server: (onSocket) => tls.createServer({ ...certificates, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, onSocket),
      client: (port) => tls.connect({ port, host: '127.0.0.1', ...certificates, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined }),
      ready: 'secureConnect',
    },
  ];
  const runs = new Map<string, number[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const transport of transports) {
      const list = runs.get(transport.name) ?? [];
      list.push(await echoCpu(transport, 10 * OPS));
      runs.set(transport.name, list);
    }
  }
  const base = median(runs.get('tcp')!);
  process.stdout.write(`\nTransport alone: a 150-byte frame echoed over loopback, CPU per round trip (both ends), median of ${ROUNDS} runs of ${10 * OPS}\n`);
  for (const [name, values] of runs) {
    const value = median(values);
    process.stdout.write(`  ${name.padEnd(24)} ${value.toFixed(1).padStart(6)} µs   x${(value / base).toFixed(3)}   +${(value - base).toFixed(1)} µs\n`);
  }
}

/**
 * The cost of one tag on a 170-byte frame (a 150-byte body), sealing and checking, the addon's
 * and node:crypto's. Checking costs the same whether the tag matches or not (the whole HMAC,
 * then a constant-time comparison), so the same frame is checked over and over.
 */
function tagCost(): void {
  const frames = 200_000;
  process.stdout.write(`\nOne tag (HMAC-SHA-256-128) on a 150-byte frame body, ${frames} frames; tags computed natively here: ${nativeFrameMacs()}\n`);
  for (const implementation of ['native', 'crypto'] as const) {
    const key = randomBytes(32);
    const frame = frameOf(randomBytes(150), FRAME_TAG_BYTES);
    const sealer = frameMac(key, implementation);
    const checker = frameMac(key, implementation);
    let started = process.hrtime.bigint();
    for (let i = 0; i < frames; i++) sealer.seal(frame);
    const sealNs = Number(process.hrtime.bigint() - started) / frames;
    started = process.hrtime.bigint();
    for (let i = 0; i < frames; i++) checker.verify(frame);
    const checkNs = Number(process.hrtime.bigint() - started) / frames;
    process.stdout.write(`  ${implementation.padEnd(7)} seal ${(sealNs / 1e3).toFixed(2)} µs   check ${(checkNs / 1e3).toFixed(2)} µs\n`);
  }
}
