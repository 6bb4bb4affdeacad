/**
 * The two device I/O engines side by side (docs/native-boundary.md, "I/O engines"): random
 * 4 KiB reads through NativeDevice with 64 in flight, io_uring and the thread pool alternating
 * for BENCH_IO_ROUNDS rounds (default 3) of BENCH_IO_MS each (default 3000), reporting reads/s
 * this process's CPU per read (user + system, all threads) and the JS thread's own CPU per
 * read (its schedstat), the figures that decide how much CPU is left for the JS thread. BENCH_IO_FILE names an existing file to read (e.g. fio's test file); by default a
 * 256 MiB file is written in the OS temp directory first (a fresh fallocated file has unwritten
 * extents, which the file system answers without touching the disk).
 *
 *
 * Then the same for `db.get` from a device namespace (BENCH_KEYS records, default 1M, ~100-byte
 * bins as in the storage bench, no data in memory), 64 in flight, the Db reopened (warm) for
 * each round with SHOAL_IO_ENGINE set to the engine.
 *
 *   npm run bench -- io-engine
 *   BENCH_IO_FILE=/work/fio/f BENCH_IO_ROUNDS=5 npm run bench -- io-engine
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Db } from '../lib/db';
import { segmentBaseName } from '../lib/namespace/index-segments';
import { addon } from '../lib/native/addon';
import { open } from '../lib/index';
import { NativeDevice, type IoEngineMode } from '../lib/storage/native-device';

const ROUNDS = Number(process.env.BENCH_IO_ROUNDS ?? 3);
const ROUND_MS = Number(process.env.BENCH_IO_MS ?? 3000);
const CONCURRENCY = 64;
const FILE_BYTES = 256 << 20;
/** Reads stay in the first 1 GiB of the file (and skip its first 64 KiB). */
const MAX_SPAN_BYTES = 1 << 30;

interface RoundResult {
  readsPerSecond: number;
  cpuMicrosecondsPerRead: number;
  jsThreadMicrosecondsPerRead: number;
}

/** CPU time of the JS (main) thread so far, ns, from its schedstat (least moved by other jobs). */
function jsThreadCpuNs(): number {
  return Number(fs.readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]);
}

async function writeFile(file: string): Promise<void> {
  const device = new NativeDevice({ path: file, sizeBytes: FILE_BYTES, create: true, directIo: 'auto' });
  try {
    const block = Buffer.alloc(1 << 20);
    for (let offset = 0; offset < FILE_BYTES; offset += block.length) {
      block.fill(offset >>> 20);
      await device.write(offset, block, 0, block.length, false);
    }
    await device.sync();
  } finally {
    device.close();
  }
}

/**
 * Runs `operation` from `concurrency` loops until `ms` have passed; returns how many completed
 * and the wall, process-CPU and JS-thread time they took. The storage bench uses it too.
 */
export async function timedLoops(concurrency: number, ms: number, operation: () => Promise<void>): Promise<{ done: number; ms: number; cpuMicroseconds: number; jsThreadNs: number }> {
  let done = 0;
  const cpuBefore = process.cpuUsage();
  const jsBefore = jsThreadCpuNs();
  const started = performance.now();
  const deadline = started + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        await operation();
        done++;
      }
    }),
  );
  const cpu = process.cpuUsage(cpuBefore);
  return { done, ms: performance.now() - started, cpuMicroseconds: cpu.user + cpu.system, jsThreadNs: jsThreadCpuNs() - jsBefore };
}

/** Random 4 KiB reads of `device` past its first 64 KiB and within `spanBytes`, from `concurrency` loops for `ms`. */
export function rawReads(device: NativeDevice, spanBytes: number, concurrency: number, ms: number): ReturnType<typeof timedLoops> {
  const pages = Math.floor((Math.min(device.sizeBytes, spanBytes) - 65536) / 4096);
  let next = 0;
  return timedLoops(concurrency, ms, async () => {
    await device.read(65536 + ((next++ * 7919) % pages) * 4096, 4096);
  });
}

function roundResult(loops: Awaited<ReturnType<typeof timedLoops>>): RoundResult {
  return {
    readsPerSecond: (loops.done * 1000) / loops.ms,
    cpuMicrosecondsPerRead: loops.cpuMicroseconds / loops.done,
    jsThreadMicrosecondsPerRead: loops.jsThreadNs / 1000 / loops.done,
  };
}

async function readRound(file: string, mode: IoEngineMode): Promise<RoundResult> {
  const device = new NativeDevice({ path: file, sizeBytes: 0, create: false, directIo: 'auto', ioEngine: mode });
  if (device.ioEngine !== mode) process.stdout.write(`  (asked for ${mode}, got ${device.ioEngine}: errno ${device.native.info().ioUringErrno})\n`);
  try {
    return roundResult(await rawReads(device, MAX_SPAN_BYTES, CONCURRENCY, ROUND_MS));
  } finally {
    device.close();
  }
}

const KEYS = Number(process.env.BENCH_KEYS ?? 1_000_000);

function openDb(dataDir: string, mode: IoEngineMode): Promise<Db> {
  const saved = process.env.SHOAL_IO_ENGINE;
  process.env.SHOAL_IO_ENGINE = mode;
  try {
    return open({ dataDir, namespaces: [{ name: 'bench', storage: { type: 'device', paths: ['bench.dat'], sizeBytes: 1 << 30 } }], log: () => undefined });
  } finally {
    if (saved === undefined) delete process.env.SHOAL_IO_ENGINE;
    else process.env.SHOAL_IO_ENGINE = saved;
  }
}

async function loadRecords(dataDir: string): Promise<void> {
  const db = await openDb(dataDir, 'threads');
  for (let from = 0; from < KEYS; from += 10_000) {
    const entries = [];
    for (let i = from; i < Math.min(KEYS, from + 10_000); i++) entries.push({ key: { ns: 'bench', set: 's', key: `user:${i}` }, bins: { name: `user-${i}`, visits: i % 1000, pad: 'x'.repeat(72) } });
    await db.batchPut(entries);
  }
  await db.put({ ns: 'bench', set: 's', key: 'user:0' }, { name: 'user-0', visits: 0, pad: 'x'.repeat(72) }, { durable: true });
  await db.close();
}

async function getRound(dataDir: string, mode: IoEngineMode): Promise<RoundResult> {
  const db = await openDb(dataDir, mode);
  let state = 12345;
  let missing = 0;
  try {
    const loops = await timedLoops(CONCURRENCY, ROUND_MS, async () => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      if ((await db.get({ ns: 'bench', set: 's', key: `user:${state % KEYS}` })) === undefined) missing++;
    });
    if (missing > 0) throw new Error(`io-engine bench: ${missing} records missing`);
    return roundResult(loops);
  } finally {
    await db.close();
  }
}

function summary(label: string, rounds: RoundResult[]): string {
  const rates = rounds.map((round) => Math.round(round.readsPerSecond));
  const cpu = rounds.map((round) => round.cpuMicrosecondsPerRead.toFixed(1));
  const js = rounds.map((round) => round.jsThreadMicrosecondsPerRead.toFixed(1));
  return `  ${label.padEnd(9)} reads/s ${rates.map((rate) => rate.toLocaleString('en-US')).join(', ')}   CPU µs/read ${cpu.join(', ')}   JS thread µs/read ${js.join(', ')}`;
}

export async function runIoEngineBench(): Promise<boolean> {
  let file = process.env.BENCH_IO_FILE;
  let dir: string | undefined;
  if (file === undefined) {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-io-'));
    file = path.join(dir, 'reads.dat');
    await writeFile(file);
  }
  process.stdout.write(`\nI/O engines: random 4 KiB reads, ${CONCURRENCY} in flight, ${ROUNDS} × ${ROUND_MS} ms each, ${file}; load average ${os.loadavg().map((load) => load.toFixed(2)).join(' ')}\n`);
  const byEngine: Record<IoEngineMode, RoundResult[]> = { io_uring: [], threads: [] };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      byEngine.io_uring.push(await readRound(file, 'io_uring'));
      byEngine.threads.push(await readRound(file, 'threads'));
    }
  } finally {
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`${summary('io_uring', byEngine.io_uring)}\n${summary('threads', byEngine.threads)}\n`);
  process.stdout.write(`  load average after: ${os.loadavg().map((load) => load.toFixed(2)).join(' ')}\n`);

  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-io-get-'));
  const gets: Record<IoEngineMode, RoundResult[]> = { io_uring: [], threads: [] };
  try {
    await loadRecords(dataDir);
    process.stdout.write(`db.get from the device, ${KEYS.toLocaleString('en-US')} records, ${CONCURRENCY} in flight; load average ${os.loadavg().map((load) => load.toFixed(2)).join(' ')}\n`);
    for (let round = 0; round < ROUNDS; round++) {
      gets.io_uring.push(await getRound(dataDir, 'io_uring'));
      gets.threads.push(await getRound(dataDir, 'threads'));
    }
  } finally {
    // Each round closes for a warm restart; the last leaves the index in shared memory.
    addon().unlinkIndexSegments(segmentBaseName(dataDir, 'bench'));
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  process.stdout.write(`${summary('io_uring', gets.io_uring).replace('reads/s', 'gets/s').replace(/\/read/g, '/get')}\n`);
  process.stdout.write(`${summary('threads', gets.threads).replace('reads/s', 'gets/s').replace(/\/read/g, '/get')}\n`);
  process.stdout.write(`  load average after: ${os.loadavg().map((load) => load.toFixed(2)).join(' ')}\n`);
  return true;
}
