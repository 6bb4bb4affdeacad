/**
 * `npm run bench -- protocol`: the official Aerospike Node client against a Shoal node
 * (`shoal serve` in its own process, a memory namespace), put and get at 1 and 64 commands in
 * flight, beside the embedded API (db.put / db.get in this process) in the same run (issue 14's
 * targets: ≥ 100,000 gets/s at 64 in flight over the protocol, and a protocol p50 at most 2×
 * the embedded API's). BENCH_PROTOCOL_NAMESPACE=device measures a device namespace instead.
 *
 * Each measurement is a closed loop: `inflight` workers each issue a command, wait for its
 * reply and issue the next, for BENCH_TIME_MS; latency is each command's round trip.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { open } from '../lib/index';
import type { NamespaceOptions } from '../lib/options';

const TIME_MS = Number(process.env.BENCH_TIME_MS ?? 3000);
const KEYS = 10_000;
const INFLIGHT = [1, 64];

export interface LoopResult {
  opsPerSecond: number;
  p50Us: number;
  p99Us: number;
}

/** Runs `command` in a closed loop with `inflight` workers for `durationMs`. */
export async function closedLoop(inflight: number, durationMs: number, command: (i: number) => Promise<unknown>): Promise<LoopResult> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const end = started + durationMs;
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (performance.now() < end) {
        const at = performance.now();
        await command(next++ % KEYS);
        latencies.push(performance.now() - at);
      }
    }),
  );
  const elapsedS = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => (latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0) * 1000;
  return { opsPerSecond: latencies.length / elapsedS, p50Us: at(0.5), p99Us: at(0.99) };
}

function namespaceOptions(): NamespaceOptions {
  if (process.env.BENCH_PROTOCOL_NAMESPACE === 'device') {
    return { name: 'test', storage: { type: 'device', paths: ['test.dat'], sizeBytes: 256 << 20 } };
  }
  return { name: 'test', storage: { type: 'memory', maxBytes: 512 << 20 } };
}

/** CPU time (user + system, µs) a process has used, from /proc (Linux). */
function cpuMicros(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/**
 * The machine's floor: a Node echo server (a child process) answering 64-byte requests over
 * loopback TCP, `connections` clients in this process each waiting for its reply before the
 * next (the shape of Aerospike client traffic: one command per connection at a time).
 */
async function echoFloor(connections: number): Promise<{ roundTripsPerSecond: number; serverCpuUs: number }> {
  const script = "const net=require('net');const s=net.createServer(c=>{c.setNoDelay(true);c.on('data',d=>c.write(Buffer.from(d)))});s.listen(0,'127.0.0.1',()=>console.log(s.address().port))";
  const child: ChildProcess = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => child.stdout!.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
  const net = await import('node:net');
  let trips = 0;
  const cpuBefore = cpuMicros(child.pid!);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: connections }, () => new Promise<void>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.setNoDelay(true);
        socket.write(Buffer.alloc(64));
      });
      socket.on('data', () => {
        trips++;
        if (performance.now() - started < TIME_MS) socket.write(Buffer.alloc(64));
        else socket.end(resolve);
      });
    })),
  );
  const elapsedS = (performance.now() - started) / 1000;
  const serverCpuUs = (cpuMicros(child.pid!) - cpuBefore) / trips;
  child.kill();
  return { roundTripsPerSecond: trips / elapsedS, serverCpuUs };
}

/** Starts `shoal serve` (dist/) in a temp folder; resolves to its port, pid and a stop function. */
export async function serve(): Promise<{ port: number; pid: number; stop: () => Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-protocol-'));
  const config = path.join(dir, 'serve.json');
  fs.writeFileSync(config, JSON.stringify({ dataDir: dir, sharedMemoryIndex: false, namespaces: [namespaceOptions()], service: { listen: { host: '127.0.0.1', port: 0 } } }));
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'bin', 'shoal.js'), 'serve', config], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((text) => text.startsWith('{"event":"ready"'));
      if (line !== undefined) resolve((JSON.parse(line) as { service: { port: number } }).service.port);
    });
    child.once('exit', (code) => reject(new Error(`shoal serve exited (${code})`)));
  });
  return {
    port,
    pid: child.pid!,
    stop: async () => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function bins(i: number) {
  return { name: `user-${i}`, visits: i % 1000, active: i % 3 === 0 };
}

export function print(name: string, result: LoopResult): void {
  process.stdout.write(`  ${name.padEnd(34)} ${Math.round(result.opsPerSecond).toLocaleString('en-US').padStart(10)} ops/s   p50 ${result.p50Us.toFixed(1).padStart(8)} µs   p99 ${result.p99Us.toFixed(1).padStart(8)} µs\n`);
}

export async function runProtocolBench(): Promise<boolean> {
  // Loaded here: the client's native module is a devDependency, needed by this suite only.
  const Aerospike = (await import('aerospike')).default;
  const results = new Map<string, LoopResult>();
  const serverCpu = new Map<string, number>();
  // The client's own CPU (this process: the official client's C core and its threads, and the loop).
  const clientCpu = new Map<string, number>();
  const server = await serve();
  const client = await Aerospike.connect({ hosts: [{ addr: '127.0.0.1', port: server.port }], log: { level: Aerospike.log.OFF }, maxConnsPerNode: 300 });
  try {
    const keys = Array.from({ length: KEYS }, (_, i) => new Aerospike.Key('test', 'bench', `user:${i}`));
    for (let i = 0; i < KEYS; i += 64) await Promise.all(keys.slice(i, i + 64).map((key, j) => client.put(key, bins(i + j))));
    const write = new Aerospike.WritePolicy({ totalTimeout: 10_000 });
    const read = new Aerospike.ReadPolicy({ totalTimeout: 10_000 });
    for (const inflight of INFLIGHT) {
      for (const kind of ['put', 'get'] as const) {
        const cpuBefore = cpuMicros(server.pid);
        const clientCpuBefore = cpuMicros(process.pid);
        const result = await closedLoop(inflight, TIME_MS, (i) => (kind === 'put' ? client.put(keys[i]!, bins(i), {}, write) : client.get(keys[i]!, read)));
        const commands = result.opsPerSecond * (TIME_MS / 1000);
        results.set(`protocol ${kind} ${inflight}`, result);
        serverCpu.set(`${kind} ${inflight}`, (cpuMicros(server.pid) - cpuBefore) / commands);
        clientCpu.set(`${kind} ${inflight}`, (cpuMicros(process.pid) - clientCpuBefore) / commands);
      }
    }
  } finally {
    await client.close();
    await server.stop();
  }
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-protocol-embedded-'));
  const db = await open({ dataDir, sharedMemoryIndex: false, namespaces: [namespaceOptions()] });
  try {
    const keys = Array.from({ length: KEYS }, (_, i) => ({ ns: 'test', set: 'bench', key: `user:${i}` }));
    for (let i = 0; i < KEYS; i++) await db.put(keys[i]!, bins(i));
    for (const inflight of INFLIGHT) {
      results.set(`embedded put ${inflight}`, await closedLoop(inflight, TIME_MS, (i) => db.put(keys[i]!, bins(i))));
      results.set(`embedded get ${inflight}`, await closedLoop(inflight, TIME_MS, (i) => db.get(keys[i]!)));
    }
  } finally {
    await db.close({ dropIndex: true });
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  process.stdout.write(`\nprotocol: the official client (aerospike 6.7) against shoal serve, vs the embedded API (${process.env.BENCH_PROTOCOL_NAMESPACE === 'device' ? 'device' : 'memory'} namespace, ${os.cpus().length} cores, load average ${os.loadavg()[0]!.toFixed(1)})\n`);
  for (const inflight of INFLIGHT) {
    for (const kind of ['put', 'get']) {
      print(`protocol ${kind}, ${inflight} in flight`, results.get(`protocol ${kind} ${inflight}`)!);
      print(`embedded ${kind}, ${inflight} in flight`, results.get(`embedded ${kind} ${inflight}`)!);
    }
  }
  for (const [name, us] of serverCpu) process.stdout.write(`  server CPU per protocol ${name} in flight: ${us.toFixed(1)} µs (one core: at most ${Math.round(1e6 / us).toLocaleString('en-US')}/s)\n`);
  // The machine's ceiling for this loop: client and server share its cores.
  for (const [name, us] of clientCpu) {
    const both = us + serverCpu.get(name)!;
    process.stdout.write(`  client CPU per protocol ${name} in flight: ${us.toFixed(1)} µs; client + server ${both.toFixed(1)} µs, so ${os.cpus().length} cores give at most ${Math.round((os.cpus().length * 1e6) / both).toLocaleString('en-US')}/s\n`);
  }
  const floor = await echoFloor(64);
  process.stdout.write(`  floor: a Node echo server over loopback, 64 connections: ${Math.round(floor.roundTripsPerSecond).toLocaleString('en-US')} round trips/s, ${floor.serverCpuUs.toFixed(1)} µs server CPU each\n`);
  const gets = results.get('protocol get 64')!.opsPerSecond;
  const throughputMet = gets >= 100_000;
  process.stdout.write(`  target: protocol gets at 64 in flight >= 100,000/s: ${Math.round(gets).toLocaleString('en-US')} ${throughputMet ? 'MET' : 'NOT MET'}\n`);
  let latencyMet = true;
  for (const inflight of INFLIGHT) {
    for (const kind of ['put', 'get']) {
      const ratio = results.get(`protocol ${kind} ${inflight}`)!.p50Us / results.get(`embedded ${kind} ${inflight}`)!.p50Us;
      const met = ratio <= 2;
      latencyMet &&= met;
      process.stdout.write(`  target: protocol ${kind} p50 <= 2x embedded at ${inflight} in flight: ${ratio.toFixed(1)}x ${met ? 'MET' : 'NOT MET'}\n`);
    }
  }
  return throughputMet && latencyMet;
}
