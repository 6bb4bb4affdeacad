/**
 * Memory namespace vs lru-cache and a Map, on the same keys and values (issue 2's targets:
 * getSync ≥ 0.7× lru-cache get, put ≥ 0.5× lru-cache set).
 *
 * The peers hold msgpackr-encoded values, as Shoal does, so a peer get is lookup + decode and
 * a peer set is encode + insert. An lru-cache holding the objects themselves (no encoding,
 * no copy) is measured too, as the ceiling.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LRUCache } from 'lru-cache';
import { Packr } from 'msgpackr';
import { open } from '../lib/index';
import { find, figures, printFigures, printRatio } from './report';

const KEYS = 100_000;
const TIME_MS = Number(process.env.BENCH_TIME_MS ?? 1500);

function valueOf(i: number) {
  return { name: `user-${i}`, visits: i % 1000, active: i % 3 === 0, tags: ['a', 'b'] };
}

export async function runMemoryBench(): Promise<boolean> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-memory-'));
  const db = await open({
    dataDir,
    namespaces: [{ name: 'cache', storage: { type: 'memory', maxBytes: 1 << 30 }, evict: { policy: 'lru' } }],
  });
  const packr = new Packr({ useRecords: false });
  const lru = new LRUCache<string, Buffer>({ max: KEYS * 2 });
  const lruObjects = new LRUCache<string, object>({ max: KEYS * 2 });
  const map = new Map<string, Buffer>();
  const names = Array.from({ length: KEYS }, (_, i) => `user:${i}`);
  const keys = names.map((key) => ({ ns: 'cache', set: 'bench', key }));
  const values = names.map((_, i) => valueOf(i));
  for (let i = 0; i < KEYS; i++) {
    await db.put(keys[i]!, values[i]!);
    lru.set(names[i]!, packr.pack(values[i]));
    lruObjects.set(names[i]!, values[i]!);
    map.set(names[i]!, packr.pack(values[i]));
  }
  let i = 0;
  const next = () => (i = (i + 7919) % KEYS);
  let sink: unknown;
  const { Bench } = await import('tinybench');
  const bench = new Bench({ time: TIME_MS, warmupTime: 300 });
  bench
    .add('shoal getSync', () => {
      sink = db.getSync(keys[next()]!);
    })
    .add('shoal get (await)', async () => {
      sink = await db.get(keys[next()]!);
    })
    .add('shoal put (await)', async () => {
      const n = next();
      await db.put(keys[n]!, values[n]!);
    })
    .add('lru-cache get+unpack', () => {
      sink = packr.unpack(lru.get(names[next()]!)!);
    })
    .add('lru-cache pack+set', () => {
      const n = next();
      lru.set(names[n]!, packr.pack(values[n]));
    })
    .add('Map get+unpack', () => {
      sink = packr.unpack(map.get(names[next()]!)!);
    })
    .add('Map pack+set', () => {
      const n = next();
      map.set(names[n]!, packr.pack(values[n]));
    })
    .add('lru-cache get (objects, no encoding)', () => {
      sink = lruObjects.get(names[next()]!);
    })
    .add('lru-cache set (objects, no encoding)', () => {
      const n = next();
      lruObjects.set(names[n]!, values[n]!);
    });
  await bench.run();
  void sink;
  const list = figures(bench);
  printFigures(`Memory namespace vs peers (${KEYS.toLocaleString('en-US')} keys, ~60-byte values)`, list);
  const getMet = printRatio('getSync', find(list, 'shoal getSync'), find(list, 'lru-cache get+unpack'), 0.7);
  const putMet = printRatio('put', find(list, 'shoal put (await)'), find(list, 'lru-cache pack+set'), 0.5);
  printRatio('getSync vs object lru-cache (ceiling, informational)', find(list, 'shoal getSync'), find(list, 'lru-cache get (objects, no encoding)'), 0);
  await db.close({ dropIndex: true });
  fs.rmSync(dataDir, { recursive: true, force: true });
  return getMet && putMet;
}
