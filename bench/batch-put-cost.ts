/**
 * batchPut's cost per record, made robust to a busy machine: db.batchPut alone over
 * BENCH_KEYS records (default 300,000) in calls of 10,000 into a fresh device namespace,
 * repeated BENCH_ROUNDS times (default 5); for each clock the best round is the figure (load
 * only ever adds time). Each call's entries are built just before it, as storage.ts does, but
 * outside the clocks, so the figure is Shoal's own cost; storage.ts's bulk insert adds building
 * them (~0.25 µs a record) and the final durable flush. Three clocks, in ns per record:
 *   - wall: what a caller waits;
 *   - cpu: process.cpuUsage, every thread of the process (the I/O pool's block copies and
 *     writes, V8's concurrent GC), so it can exceed the wall time;
 *   - JS thread: the JS thread's own on-CPU time (Linux: /proc/self/task/<pid>/schedstat),
 *     the figure least moved by other jobs on the machine, since time spent waiting for a
 *     core is not counted (NaN elsewhere).
 *
 *   npm run build && node --expose-gc dist/bench/batch-put-cost.js
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { open } from '../lib/index';
import type { BatchPutEntry } from '../lib/db';

const KEYS = Number(process.env.BENCH_KEYS ?? 300_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const BATCH = 10_000;

function entriesFor(from: number, to: number): BatchPutEntry[] {
  const entries: BatchPutEntry[] = [];
  for (let i = from; i < to; i++) {
    entries.push({ key: { ns: 'bench', set: 's', key: `user:${i}` }, bins: { name: `user-${i}`, visits: i % 1000, pad: 'x'.repeat(72) } });
  }
  return entries;
}

/** The JS thread's on-CPU nanoseconds so far (Linux), or NaN where /proc does not say. */
function jsThreadCpuNs(): number {
  try {
    return Number(fs.readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return Number.NaN;
  }
}

async function round(dir: string): Promise<{ wallNs: number; cpuNs: number; threadNs: number }> {
  const db = await open({
    dataDir: dir,
    sharedMemoryIndex: false,
    namespaces: [{ name: 'bench', storage: { type: 'device', paths: ['bench.dat'], sizeBytes: 1 << 30, dataInMemory: false } }],
    log: () => undefined,
  });
  (globalThis as { gc?: () => void }).gc?.();
  let wallNs = 0;
  let cpuNs = 0;
  let threadNs = 0;
  for (let from = 0; from < KEYS; from += BATCH) {
    // Built per call as storage.ts does (they die young), but outside the clocks.
    const entries = entriesFor(from, Math.min(KEYS, from + BATCH));
    const cpu = process.cpuUsage();
    const thread = jsThreadCpuNs();
    const started = process.hrtime.bigint();
    const results = await db.batchPut(entries);
    wallNs += Number(process.hrtime.bigint() - started);
    threadNs += jsThreadCpuNs() - thread;
    const used = process.cpuUsage(cpu);
    cpuNs += (used.user + used.system) * 1000;
    for (const result of results) if (result instanceof Error) throw result;
  }
  await db.close({ dropIndex: true });
  return { wallNs, cpuNs, threadNs };
}

async function main(): Promise<void> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-batch-cost-'));
  let bestWall = Infinity;
  let bestCpu = Infinity;
  let bestThread = Infinity;
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const dir = path.join(base, `round-${r}`);
      fs.mkdirSync(dir);
      const { wallNs, cpuNs, threadNs } = await round(dir);
      fs.rmSync(dir, { recursive: true, force: true });
      bestWall = Math.min(bestWall, wallNs / KEYS);
      bestCpu = Math.min(bestCpu, cpuNs / KEYS);
      bestThread = Math.min(bestThread, threadNs / KEYS);
      process.stdout.write(`round ${r + 1}: wall ${(wallNs / KEYS).toFixed(0)} ns/record, cpu ${(cpuNs / KEYS).toFixed(0)}, JS thread ${(threadNs / KEYS).toFixed(0)}\n`);
    }
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
  process.stdout.write(`batchPut ${KEYS.toLocaleString('en-US')} records, best of ${ROUNDS}: wall ${bestWall.toFixed(0)} ns/record, cpu ${bestCpu.toFixed(0)}, JS thread ${bestThread.toFixed(0)}\n`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
