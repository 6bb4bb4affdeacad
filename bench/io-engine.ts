/**
 * The two device I/O engines side by side (docs/native-boundary.md, "I/O engines"): random
 * 4 KiB reads through NativeDevice with 64 in flight, io_uring and the thread pool alternating
 * for BENCH_IO_ROUNDS rounds (default 3) of BENCH_IO_MS each (default 3000), reporting reads/s
 * and this process's CPU per read (user + system, all threads), the figure the JS thread pays
 * for. BENCH_IO_FILE names an existing file to read (e.g. fio's test file); by default a
 * 256 MiB file is written in the OS temp directory first (a fresh fallocated file has unwritten
 * extents, which the file system answers without touching the disk).
 *
 *   npm run bench -- io-engine
 *   BENCH_IO_FILE=/work/fio/f BENCH_IO_ROUNDS=5 npm run bench -- io-engine
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
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

async function readRound(file: string, mode: IoEngineMode): Promise<RoundResult> {
  const device = new NativeDevice({ path: file, sizeBytes: 0, create: false, directIo: 'auto', ioEngine: mode });
  const expected = mode === 'threads' ? 'threads' : 'io_uring';
  if (device.ioEngine !== expected) process.stdout.write(`  (asked for ${mode}, got ${device.ioEngine}: errno ${device.native.info().ioUringErrno})\n`);
  const pages = Math.floor((Math.min(device.sizeBytes, MAX_SPAN_BYTES) - 65536) / 4096);
  let next = 0;
  let done = 0;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const deadline = started + ROUND_MS;
  try {
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (performance.now() < deadline) {
          await device.read(65536 + ((next++ * 7919) % pages) * 4096, 4096);
          done++;
        }
      }),
    );
  } finally {
    device.close();
  }
  const ms = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  return { readsPerSecond: (done * 1000) / ms, cpuMicrosecondsPerRead: (cpu.user + cpu.system) / done };
}

function summary(label: string, rounds: RoundResult[]): string {
  const rates = rounds.map((round) => Math.round(round.readsPerSecond));
  const cpu = rounds.map((round) => round.cpuMicrosecondsPerRead.toFixed(1));
  return `  ${label.padEnd(9)} reads/s ${rates.map((rate) => rate.toLocaleString('en-US')).join(', ')}   CPU µs/read ${cpu.join(', ')}`;
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
  const byEngine: Record<IoEngineMode, RoundResult[]> = { auto: [], threads: [] };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      byEngine.auto.push(await readRound(file, 'auto'));
      byEngine.threads.push(await readRound(file, 'threads'));
    }
  } finally {
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`${summary('io_uring', byEngine.auto)}\n${summary('threads', byEngine.threads)}\n`);
  process.stdout.write(`  load average after: ${os.loadavg().map((load) => load.toFixed(2)).join(' ')}\n`);
  return true;
}
