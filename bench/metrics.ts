/**
 * The cost of open()'s `metrics` option (issue 17: at most 5%): the memory bench's Shoal calls
 * (getSync, get, put) and the storage bench's (device put and get, 64 in flight; batchPut of
 * 10,000), with and without the counting wrappers, alternating every few calls so that both see
 * the same machine load. One Db serves both sides: `metrics: {}` installs the wrappers as own
 * properties of the Db (lib/metrics.ts), and removing them leaves exactly the Db that open()
 * gives without the option. Two Dbs would differ in more than metrics: their device files, page
 * cache and background flushes, which an A/A run of two metric-less Dbs showed to swing device
 * figures by 2x on this shared machine. Figures are medians of the rounds; the ratio is
 * with / without. BENCH_ROUNDS and BENCH_ROUND_MS override the defaults; BENCH_METRICS_SAME=1
 * leaves the wrappers off on both sides (an A/A run: the method's own spread).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { open } from '../lib/index';
import type { Db } from '../lib/db';

const KEYS = 100_000;
const DEVICE_KEYS = 200_000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 400);
const CONCURRENCY = 64;
const BATCH = 10_000;
const TARGET_RATIO = 0.95;

function valueOf(i: number) {
  return { name: `user-${i}`, visits: i % 1000, active: i % 3 === 0, tags: ['a', 'b'] };
}

async function openDb(): Promise<{ db: Db; dataDir: string }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-metrics-'));
  const db = await open({
    dataDir,
    namespaces: [
      { name: 'cache', storage: { type: 'memory', maxBytes: 1 << 30 } },
      { name: 'disk', storage: { type: 'device', paths: ['disk.dat'], sizeBytes: 1 << 30 } },
    ],
    metrics: {},
    log: () => undefined,
    handleSignals: false,
  });
  return { db, dataDir };
}

type Task = (db: Db, next: () => number) => Promise<number> | number;
/** A task's name, its body, and how many calls make one turn on a side (about the same time for each task). */
type TaskEntry = [string, Task, number];

/** Puts the counting wrappers on the Db (on) or takes them off (off, the Db without `metrics`). */
function switchMetrics(db: Db, wrappers: Map<string, unknown>, on: boolean): void {
  for (const [name, wrapper] of wrappers) {
    if (on) (db as unknown as Record<string, unknown>)[name] = wrapper;
    else delete (db as unknown as Record<string, unknown>)[name];
  }
}

/**
 * Runs `task` for ROUND_MS, switching the metrics on and off every `callsPerTurn` calls (which goes first
 * alternates too), so that load from other processes falls on both alike. Returns operations
 * per second over the time spent in each state.
 */
async function measurePair(db: Db, wrappers: Map<string, unknown>, task: Task, callsPerTurn: number): Promise<{ off: number; on: number }> {
  let i = 0;
  const next = () => (i = (i + 7919) % KEYS);
  const spent = { off: 0, on: 0 };
  const operations = { off: 0, on: 0 };
  const start = performance.now();
  for (let turn = 0; performance.now() - start < ROUND_MS; turn++) {
    for (const side of turn % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
      switchMetrics(db, wrappers, side === 'on');
      const begin = performance.now();
      for (let k = 0; k < callsPerTurn; k++) {
        const done = task(db, next);
        operations[side] += typeof done === 'number' ? done : await done;
      }
      spent[side] += performance.now() - begin;
    }
  }
  switchMetrics(db, wrappers, true);
  return { off: (operations.off * 1000) / spent.off, on: (operations.on * 1000) / spent.on };
}

const memoryKeys = Array.from({ length: KEYS }, (_, i) => ({ ns: 'cache', set: 'bench', key: `user:${i}` }));
const deviceKeys = Array.from({ length: DEVICE_KEYS }, (_, i) => ({ ns: 'disk', set: 'bench', key: `user:${i}` }));
const values = Array.from({ length: KEYS }, (_, i) => valueOf(i));
let sink: unknown;

const TASKS: TaskEntry[] = [
  ['memory getSync', (db, next) => ((sink = db.getSync(memoryKeys[next()]!)), 1), 256],
  ['memory get (await)', async (db, next) => ((sink = await db.get(memoryKeys[next()]!)), 1), 128],
  ['memory put (await)', async (db, next) => {
    const n = next();
    await db.put(memoryKeys[n]!, values[n]!);
    return 1;
  }, 128],
  ['device put, 64 in flight', async (db, next) => {
    await Promise.all(Array.from({ length: CONCURRENCY }, () => {
      const n = next();
      return db.put(deviceKeys[n]!, values[n % KEYS]!);
    }));
    return CONCURRENCY;
  }, 4],
  ['device get, 64 in flight', async (db, next) => {
    sink = await Promise.all(Array.from({ length: CONCURRENCY }, () => db.get(deviceKeys[next()]!)));
    return CONCURRENCY;
  }, 4],
  ['device batchPut of 10,000', async (db, next) => {
    const start = next();
    await db.batchPut(Array.from({ length: BATCH }, (_, k) => ({ key: deviceKeys[(start + k) % DEVICE_KEYS]!, bins: values[(start + k) % KEYS]! })));
    return BATCH;
  }, 1],
];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export async function runMetricsBench(): Promise<boolean> {
  const { db, dataDir } = await openDb();
  const wrappers = new Map(Object.entries(db).filter(([, value]) => typeof value === 'function'));
  if (wrappers.size === 0) throw new Error('metrics: {} installed no wrappers on the Db');
  for (let i = 0; i < KEYS; i += BATCH) await db.batchPut(memoryKeys.slice(i, i + BATCH).map((key, k) => ({ key, bins: values[i + k]! })));
  for (let i = 0; i < DEVICE_KEYS; i += BATCH) await db.batchPut(deviceKeys.slice(i, i + BATCH).map((key, k) => ({ key, bins: values[(i + k) % KEYS]! })));
  const figures = new Map<string, { on: number[]; off: number[] }>(TASKS.map(([name]) => [name, { on: [], off: [] }]));
  // Warm both up once, then measure in rounds.
  for (const [, task, calls] of TASKS) await measurePair(db, process.env.BENCH_METRICS_SAME === '1' ? new Map() : wrappers, task, calls);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, task, calls] of TASKS) {
      const result = await measurePair(db, process.env.BENCH_METRICS_SAME === '1' ? new Map() : wrappers, task, calls);
      figures.get(name)!.off.push(result.off);
      figures.get(name)!.on.push(result.on);
    }
  }
  void sink;
  process.stdout.write(`\nmetrics on vs off (${ROUNDS} rounds of ${ROUND_MS} ms each, medians; ratio = on / off, target >= ${TARGET_RATIO})\n`);
  let met = true;
  for (const [name, { on: withMetrics, off: without }] of figures) {
    const ratio = median(withMetrics) / median(without);
    met &&= ratio >= TARGET_RATIO;
    const format = (n: number) => Math.round(n).toLocaleString('en-US').padStart(11);
    process.stdout.write(`  ${name.padEnd(28)} off ${format(median(without))}/s   on ${format(median(withMetrics))}/s   ratio ${ratio.toFixed(3)} ${ratio >= TARGET_RATIO ? 'MET' : 'NOT MET'}\n`);
  }
  await db.close({ dropIndex: true });
  fs.rmSync(dataDir, { recursive: true, force: true });
  return met;
}
