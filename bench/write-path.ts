/**
 * The device write path under sustained load (issue 12's targets), `npm run bench -- write-path`:
 *   (a) peak RSS of a tight loop of awaited puts (1,000 in flight) writing BENCH_WRITE_RECORDS
 *       (default 4M) records of ~540 bytes, ~2.2 GB, to a device namespace: target ≤ 1.2 GB,
 *       most of it the index (in a child process of its own: write-path-child.ts);
 *   (b) insert throughput with individual awaited puts (BENCH_IN_FLIGHT, default 256, in
 *       flight; 1M keys, ~100-byte bins as in bench/storage.ts) against lmdb in the same run,
 *       with the same puts awaited the same way, and lmdb's batched async put (an await every
 *       10,000) beside it, alternating for BENCH_WRITE_ROUNDS rounds (default 3): target ≥ 1.0×
 *       the better lmdb median; the RSS growth of Shoal's runs is reported (memory bounded).
 * Figures move with the machine's load: compare the ratios of one run.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { open } from '../lib/index';

const RECORDS = Number(process.env.BENCH_WRITE_RECORDS ?? 4_000_000);
const VALUE_BYTES = 450;
const LOOP_IN_FLIGHT = 1000;
const RSS_TARGET_BYTES = 1.2e9;
const KEYS = Number(process.env.BENCH_KEYS ?? 1_000_000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 256);
const ROUNDS = Number(process.env.BENCH_WRITE_ROUNDS ?? 3);
const BATCH = 10_000;
const MB = 1e6;

function keyName(i: number): string {
  return `user:${i}`;
}

function valueOf(i: number): { name: string; visits: number; pad: string } {
  return { name: `user-${i}`, visits: i % 1000, pad: 'x'.repeat(72) };
}

function print(name: string, opsPerSecond: number, note = ''): void {
  process.stdout.write(`  ${name.padEnd(52)} ${Math.round(opsPerSecond).toLocaleString('en-US').padStart(12)} ops/s${note ? `   ${note}` : ''}\n`);
}

/** (a): the loop in a child process; returns whether peak RSS stayed within the target. */
function peakRss(dir: string): boolean {
  const dataDir = path.join(dir, 'loop');
  fs.mkdirSync(dataDir);
  process.stdout.write(`\n(a) ${RECORDS.toLocaleString('en-US')} awaited puts (${LOOP_IN_FLIGHT} in flight) of ~${VALUE_BYTES + 90} bytes to a device namespace, in a child process\n`);
  const child = spawnSync(process.execPath, [path.join(__dirname, 'write-path-child.js'), dataDir, String(RECORDS), String(VALUE_BYTES), String(LOOP_IN_FLIGHT)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  fs.rmSync(dataDir, { recursive: true, force: true });
  if (child.status !== 0) throw new Error(`write-path child failed: ${child.stderr}`);
  const lines = child.stdout.trim().split('\n');
  const result = JSON.parse(lines[lines.length - 1]!) as { bytesWritten: number; ms: number; hwmRssBytes: number; peakRssBytes: number; shmemRssBytes: number; indexBytes: number };
  const met = result.hwmRssBytes <= RSS_TARGET_BYTES;
  process.stdout.write(
    `  wrote ${(result.bytesWritten / MB).toFixed(0)} MB in ${(result.ms / 1000).toFixed(1)} s (${Math.round(RECORDS / (result.ms / 1000)).toLocaleString('en-US')} puts/s)\n` +
      `  peak RSS ${(result.hwmRssBytes / MB).toFixed(0)} MB (target ≤ ${RSS_TARGET_BYTES / MB}) ${met ? 'MET' : 'NOT MET'}; of it the index in shared memory ${(result.shmemRssBytes / MB).toFixed(0)} MB ` +
      `(${(result.indexBytes / MB).toFixed(0)} MB of entries)\n`,
  );
  return met;
}

async function shoalAwaitedPuts(dir: string, keys: number, rssGrowth: number[] = []): Promise<{ opsPerSecond: number; rssGrowthBytes: number }> {
  const dataDir = path.join(dir, 'shoal');
  fs.mkdirSync(dataDir);
  const db = await open({ dataDir, sharedMemoryIndex: false, namespaces: [{ name: 'bench', storage: { type: 'device', paths: ['bench.dat'], sizeBytes: 1 << 30 } }], log: () => undefined });
  try {
    const before = process.memoryUsage.rss();
    let peak = before;
    let next = 0;
    const started = performance.now();
    const worker = async (): Promise<void> => {
      while (next < keys) {
        const i = next++;
        await db.put({ ns: 'bench', set: 's', key: keyName(i) }, valueOf(i));
        if (i % 65_536 === 0) peak = Math.max(peak, process.memoryUsage.rss());
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    // Everything on the device, as lmdb's figures include its commits.
    await db.put({ ns: 'bench', set: 's', key: keyName(0) }, valueOf(0), { durable: true });
    const ms = performance.now() - started;
    rssGrowth.push(peak - before);
    return { opsPerSecond: (keys * 1000) / ms, rssGrowthBytes: peak - before };
  } finally {
    await db.close({ dropIndex: true });
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

interface LmdbDatabase {
  put(key: string, value: unknown): Promise<boolean>;
  flushed: Promise<void>;
  close(): Promise<void>;
}

async function lmdbPuts(dir: string, awaitedEach: boolean, keys: number): Promise<number | undefined> {
  let lmdb: { open(options: object): LmdbDatabase };
  try {
    lmdb = require('lmdb') as typeof lmdb;
  } catch {
    process.stdout.write('  (lmdb is not installed: npm install --no-save lmdb to compare against it)\n');
    return undefined;
  }
  const location = path.join(dir, awaitedEach ? 'lmdb-awaited' : 'lmdb-batched');
  const db = lmdb.open({ path: location, mapSize: 4 << 30 });
  try {
    const started = performance.now();
    if (awaitedEach) {
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < keys) {
          const i = next++;
          await db.put(keyName(i), valueOf(i));
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    } else {
      let last: Promise<boolean> | undefined;
      for (let i = 0; i < keys; i++) {
        last = db.put(keyName(i), valueOf(i));
        if (i % BATCH === BATCH - 1) await last;
      }
      await last;
    }
    await db.flushed;
    return (keys * 1000) / (performance.now() - started);
  } finally {
    await db.close();
    fs.rmSync(location, { recursive: true, force: true });
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/**
 * (b): returns whether Shoal's awaited puts reached the better lmdb figure. The three runs
 * alternate for ROUNDS rounds (which goes first rotates) and the medians are compared, so that
 * a change in the machine's load falls on all three alike.
 */
async function awaitedPuts(dir: string): Promise<boolean> {
  process.stdout.write(`\n(b) ${KEYS.toLocaleString('en-US')} inserts, ~100-byte bins, individual awaited puts (${IN_FLIGHT} in flight), ${ROUNDS} alternating rounds, medians\n`);
  // Each warmed first (JIT, file system) with a tenth of the keys, untimed.
  const warm = Math.ceil(KEYS / 10);
  await shoalAwaitedPuts(dir, warm);
  await lmdbPuts(dir, true, warm);
  await lmdbPuts(dir, false, warm);
  const rssGrowth: number[] = [];
  const runs: [string, () => Promise<number | undefined>][] = [
    ['shoal', async () => (await shoalAwaitedPuts(dir, KEYS, rssGrowth)).opsPerSecond],
    ['lmdb awaited', () => lmdbPuts(dir, true, KEYS)],
    ['lmdb batched', () => lmdbPuts(dir, false, KEYS)],
  ];
  const figures = new Map<string, number[]>(runs.map(([name]) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < runs.length; k++) {
      const [name, run] = runs[(round + k) % runs.length]!;
      const opsPerSecond = await run();
      if (opsPerSecond !== undefined) figures.get(name)!.push(opsPerSecond);
    }
  }
  const figure = (name: string): number | undefined => (figures.get(name)!.length === 0 ? undefined : median(figures.get(name)!));
  const each = (name: string) => figures.get(name)!.map((value) => Math.round(value).toLocaleString('en-US')).join(', ');
  const shoal = figure('shoal')!;
  const lmdbAwaited = figure('lmdb awaited');
  const lmdbBatched = figure('lmdb batched');
  print(`shoal db.put, awaited (${IN_FLIGHT} in flight)`, shoal, `RSS grew at most ${(Math.max(...rssGrowth) / MB).toFixed(0)} MB; rounds ${each('shoal')}`);
  if (lmdbAwaited !== undefined) print(`lmdb put, awaited (${IN_FLIGHT} in flight)`, lmdbAwaited, `rounds ${each('lmdb awaited')}`);
  if (lmdbBatched !== undefined) print(`lmdb batched async put (an await every ${BATCH.toLocaleString('en-US')})`, lmdbBatched, `rounds ${each('lmdb batched')}`);
  const peer = Math.max(lmdbAwaited ?? 0, lmdbBatched ?? 0);
  if (peer === 0) return false;
  const ratio = shoal / peer;
  const met = ratio >= 1.0;
  process.stdout.write(`  shoal awaited puts: ${ratio.toFixed(2)}× the better lmdb figure (target ≥ 1.0×) ${met ? 'MET' : 'NOT MET'}`);
  if (lmdbAwaited !== undefined) process.stdout.write(`; ${(shoal / lmdbAwaited).toFixed(2)}× lmdb's awaited puts`);
  if (lmdbBatched !== undefined) process.stdout.write(`; ${(shoal / lmdbBatched).toFixed(2)}× lmdb's batched puts`);
  process.stdout.write('\n');
  return met;
}

export async function runWritePathBench(): Promise<boolean> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-write-'));
  process.stdout.write(`\nwrite path: data in ${dir}\n`);
  try {
    const throughput = await awaitedPuts(dir);
    const memory = peakRss(dir);
    return throughput && memory;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
