/**
 * Child process of bench/cdt.ts: heap bytes allocated per list append and map increment (and per
 * read-modify-write of the bin) at 1,000 and 10,000 elements. Run with --expose-gc and a young
 * generation large enough that no collection runs while a task is counted
 * (--min-semi-space-size=256 --max-semi-space-size=256): the heap then only grows, and its growth over N calls is what
 * they allocated. Collections during a count are counted and reported. Prints JSON rows.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { MapOrder, op, open } from '../lib/index';

const CALLS = 300;
const gc = (globalThis as { gc?: () => void }).gc!;

let collections = 0;
new PerformanceObserver((list) => (collections += list.getEntries().length)).observe({ entryTypes: ['gc'] });

async function main(): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-cdt-memory-'));
  const db = await open({ dataDir, namespaces: [{ name: 'bench', storage: { type: 'memory', maxBytes: 1 << 30 }, maxRecordBytes: 1 << 20 } as never], log: () => undefined });
  const rows: { task: string; size: number; bytesPerOp: number; collections: number }[] = [];
  for (const size of [1_000, 10_000]) {
    const list = { ns: 'bench', set: 'l', key: size };
    const map = { ns: 'bench', set: 'm', key: size };
    const keys = Array.from({ length: size }, (_, i) => `key-${String(i).padStart(5, '0')}`);
    await db.put(list, { l: Array.from({ length: size }, (_, i) => i) });
    await db.put(map, { m: Object.fromEntries(keys.map((k, i) => [k, i])) });
    await db.operate(map, [op.map.setOrder('m', MapOrder.KEY_ORDERED)]);
    const tasks: [string, (i: number) => Promise<unknown>][] = [
      ['op.list.append', (i) => db.operate(list, [op.list.append('l', i)])],
      ['op.map.increment', (i) => db.operate(map, [op.map.increment('m', keys[(i * 7) % size]!, 1)])],
      ['list get + push + put', async (i) => {
        const record = await db.get(list);
        (record!.bins.l as number[]).push(i);
        return db.put(list, { l: record!.bins.l });
      }],
      ['ordered map get + increment + put', async (i) => {
        const record = await db.get(map);
        (record!.bins.m as Record<string, number>)[keys[(i * 7) % size]!]! += 1;
        return db.put(map, { m: record!.bins.m });
      }],
    ];
    for (const [task, call] of tasks) {
      for (let i = 0; i < 50; i++) await call(i); // warm up (compiled code, grown buffers)
      // The operation objects are built inside the count: they are part of what a call costs.
      gc();
      // Let the forced collection's gc entry arrive before counting.
      for (let tick = 0; tick < 3; tick++) await new Promise((resolve) => setImmediate(resolve));
      const before = collections;
      const start = process.memoryUsage().heapUsed;
      for (let i = 0; i < CALLS; i++) await call(i);
      const used = process.memoryUsage().heapUsed - start;
      for (let tick = 0; tick < 3; tick++) await new Promise((resolve) => setImmediate(resolve)); // gc entries arrive asynchronously
      rows.push({ task, size, bytesPerOp: used / CALLS, collections: collections - before });
    }
  }
  await db.close({ dropIndex: true });
  fs.rmSync(dataDir, { recursive: true, force: true });
  process.stdout.write(JSON.stringify(rows));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
