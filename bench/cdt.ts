/**
 * List and map operations against the read-modify-write of the whole bin (issue 15's targets):
 * op.list.append on a 1,000-element list and op.map.increment on a 1,000-key key-ordered map,
 * each ≥ 5× the get + change + put of the same bin, measured in the same run. And memory per
 * operation, which must not grow with the collection (bench/cdt-memory-child.ts, in a child with
 * a young generation large enough that no collection runs during the count).
 *
 * Each task rotates over RECORDS records; a list that has grown by RESET_AFTER appends is put back
 * to its 1,000 elements between timed calls, so every call sees 1,000 to 1,000 + RESET_AFTER.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Db, MapOrder, op, open, type Bins } from '../lib/index';
import { find, figures, printFigures, printRatio, type Figure } from './report';

const SIZE = 1_000;
const RECORDS = 64;
const RESET_AFTER = 100;
const TIME_MS = Number(process.env.BENCH_TIME_MS ?? 1500);

const listOf = (size: number) => Array.from({ length: size }, (_, i) => (i * 7919) % 100_000);
const mapKeys = (size: number) => Array.from({ length: size }, (_, i) => `key-${String(i).padStart(5, '0')}`);

type Kind = 'memory' | 'device';

async function openKind(kind: Kind, dataDir: string): Promise<Db> {
  const storage = kind === 'memory' ? { type: 'memory', maxBytes: 1 << 30 } : { type: 'device', paths: ['bench.dat'], sizeBytes: 1 << 30 };
  return open({ dataDir, namespaces: [{ name: 'bench', storage, maxRecordBytes: 1 << 20 } as never], log: () => undefined });
}

interface Records {
  keys: { ns: string; set: string; key: number }[];
  appended: number[];
}

async function setUp(db: Db, set: string, bins: () => Bins, orderedMap: boolean): Promise<Records> {
  const keys = Array.from({ length: RECORDS }, (_, key) => ({ ns: 'bench', set, key }));
  for (const key of keys) {
    await db.put(key, bins());
    if (orderedMap) await db.operate(key, [op.map.setOrder('m', MapOrder.KEY_ORDERED)]);
  }
  return { keys, appended: keys.map(() => 0) };
}

export async function runCdtBench(): Promise<boolean> {
  let met = true;
  for (const kind of ['memory', 'device'] as Kind[]) {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `shoal-bench-cdt-${kind}-`));
    const db = await openKind(kind, dataDir);
    try {
      const results = await timeTasks(db);
      printFigures(`list and map operations, ${kind} namespace (${SIZE.toLocaleString('en-US')} elements; machine shared with other work: compare ratios)`, results);
      const list = printRatio('op.list.append vs get + push + put', find(results, 'op.list.append'), find(results, 'list get + push + put'), 5);
      const map = printRatio('op.map.increment vs get + increment + put (same ordered map)', find(results, 'op.map.increment'), find(results, 'ordered map get + increment + put'), 5);
      printRatio('op.map.increment vs get + increment + put (a plain-object bin)', find(results, 'op.map.increment'), find(results, 'plain object get + increment + put'), 5);
      if (kind === 'memory') met = met && list && map;
    } finally {
      await db.close({ dropIndex: true });
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }
  return memoryPerOperation() && met;
}

async function timeTasks(db: Db): Promise<Figure[]> {
  const keys = mapKeys(SIZE);
  const lists = await setUp(db, 'list', () => ({ l: listOf(SIZE) }), false);
  const lists2 = await setUp(db, 'list2', () => ({ l: listOf(SIZE) }), false);
  const ordered = await setUp(db, 'ordered', () => ({ m: Object.fromEntries(keys.map((k, i) => [k, i])) }), true);
  const ordered2 = await setUp(db, 'ordered2', () => ({ m: Object.fromEntries(keys.map((k, i) => [k, i])) }), true);
  const plain = await setUp(db, 'plain', () => ({ m: Object.fromEntries(keys.map((k, i) => [k, i])) }), false);
  let turn = 0;
  let sink: unknown;
  const { Bench } = await import('tinybench');
  const bench = new Bench({ time: TIME_MS, warmupTime: 300 });

  /** The next record of a set, reset (untimed) when its list has grown by RESET_AFTER. */
  const nextList = async (records: Records): Promise<number> => {
    const r = turn++ % RECORDS;
    if (records.appended[r]! >= RESET_AFTER) {
      await db.put(records.keys[r]!, { l: listOf(SIZE) });
      records.appended[r] = 0;
    }
    records.appended[r]!++;
    return r;
  };
  bench
    .add('op.list.append', async () => {
      const r = await nextList(lists);
      const start = bench.now();
      sink = await db.operate(lists.keys[r]!, [op.list.append('l', turn)]);
      return { overriddenDuration: bench.now() - start };
    })
    .add('list get + push + put', async () => {
      const r = await nextList(lists2);
      const start = bench.now();
      const record = await db.get(lists2.keys[r]!);
      (record!.bins.l as number[]).push(turn);
      sink = await db.put(lists2.keys[r]!, { l: record!.bins.l });
      return { overriddenDuration: bench.now() - start };
    })
    .add('op.map.increment', async () => {
      sink = await db.operate(ordered.keys[turn++ % RECORDS]!, [op.map.increment('m', keys[(turn * 7) % SIZE]!, 1)]);
    })
    .add('ordered map get + increment + put', async () => {
      const key = ordered2.keys[turn++ % RECORDS]!;
      const record = await db.get(key);
      const map = record!.bins.m as Record<string, number>;
      map[keys[(turn * 7) % SIZE]!]! += 1;
      sink = await db.put(key, { m: map });
    })
    .add('plain object get + increment + put', async () => {
      const key = plain.keys[turn++ % RECORDS]!;
      const record = await db.get(key);
      const map = record!.bins.m as Record<string, number>;
      map[keys[(turn * 7) % SIZE]!]! += 1;
      sink = await db.put(key, { m: map });
    });
  await bench.run();
  void sink;
  return figures(bench);
}

/** Bytes allocated per operation at 1,000 and 10,000 elements, measured in a child (bench/cdt-memory-child.ts). */
function memoryPerOperation(): boolean {
  const child = path.join(__dirname, 'cdt-memory-child.js');
  const output = execFileSync(process.execPath, ['--expose-gc', '--min-semi-space-size=256', '--max-semi-space-size=256', child], { encoding: 'utf8', timeout: 300_000 });
  const rows = JSON.parse(output) as { task: string; size: number; bytesPerOp: number; collections: number }[];
  process.stdout.write('\nheap allocated per operation (memory namespace; no collection ran during a count unless noted)\n');
  for (const row of rows) {
    process.stdout.write(`  ${row.task.padEnd(34)} ${row.size.toLocaleString('en-US').padStart(7)} elements  ${Math.round(row.bytesPerOp).toLocaleString('en-US').padStart(9)} B/op${row.collections > 0 ? `  (${row.collections} collections: a lower bound)` : ''}\n`);
  }
  let met = true;
  for (const task of ['op.list.append', 'op.map.increment']) {
    const small = rows.find((row) => row.task === task && row.size === 1_000)!;
    const large = rows.find((row) => row.task === task && row.size === 10_000)!;
    const ratio = large.bytesPerOp / small.bytesPerOp;
    const ok = ratio < 1.5 && small.collections === 0 && large.collections === 0;
    process.stdout.write(`  ${task}: ${ratio.toFixed(2)}× the bytes at 10× the elements (target: independent of size, < 1.5×) ${ok ? 'MET' : 'NOT MET'}\n`);
    met = met && ok;
  }
  return met;
}
