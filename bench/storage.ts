/**
 * Device namespaces vs lmdb, classic-level and better-sqlite3 on the same records: 1M keys,
 * ~100-byte bins, data on this machine's disk (issue 3's targets):
 *   bulk insert (db.batchPut, 10,000 entries a call) ≥ 1.0× lmdb's batched async put (the
 *   same 1M records through single db.put calls is reported too, for comparison);
 *   random get with dataInMemory ≥ 1.0× lmdb's get;
 *   random async get from the device (no data in memory) ≥ 50,000 reads/s;
 *   many concurrent durable puts ≥ 5× lmdb's putSync;
 *   cold start scan ≥ 300 MB/s.
 * Shoal is driven through its public API (open, put, get, getSync). The peers are optional
 * devDependencies; a missing one is reported and skipped. BENCH_KEYS overrides the key count;
 * SHOAL_IO_ENGINE=io_uring runs device reads through io_uring instead of the thread pool.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { open } from '../lib/index';
import type { Db } from '../lib/db';
import { NativeDevice } from '../lib/storage/native-device';
import { rawReads } from './io-engine';

const KEYS = Number(process.env.BENCH_KEYS ?? 1_000_000);
const GETS = Math.min(KEYS, 300_000);
const DEVICE_READ_MS = 3000;
const DURABLE_MS = 3000;
const SYNC_PEER_MS = 2000;
const CONCURRENCY = 64;
const DURABLE_CONCURRENCY = 256;
const BATCH = 10_000;
/** Puts made (untimed, into scratch stores) before each system's timed bulk insert, so both are measured warm. */
const WARMUP_PUTS = Math.min(KEYS, 100_000);

interface Result {
  name: string;
  opsPerSecond: number;
  note?: string;
}

const results: Result[] = [];

function report(name: string, ops: number, ms: number, note?: string): Result {
  const result = { name, opsPerSecond: (ops * 1000) / ms, note };
  results.push(result);
  process.stdout.write(`  ${name.padEnd(44)} ${Math.round(result.opsPerSecond).toLocaleString('en-US').padStart(12)} ops/s${note ? `   ${note}` : ''}\n`);
  return result;
}

function ratio(label: string, ours: Result | undefined, peer: Result | undefined, target: number): boolean {
  if (ours === undefined || peer === undefined) {
    process.stdout.write(`  ${label}: not measured (peer missing)\n`);
    return false;
  }
  const value = ours.opsPerSecond / peer.opsPerSecond;
  const met = value >= target;
  process.stdout.write(`  ${label}: ${value.toFixed(2)}× ${peer.name} (target ≥ ${target}×) ${met ? 'MET' : 'NOT MET'}\n`);
  return met;
}

function keyName(i: number): string {
  return `user:${i}`;
}

function valueOf(i: number): { name: string; visits: number; pad: string } {
  return { name: `user-${i}`, visits: i % 1000, pad: 'x'.repeat(72) };
}

/** A fixed random permutation of key indexes, so every system reads the same keys. */
function randomIndexes(count: number): Uint32Array {
  const out = new Uint32Array(count);
  let state = 12345;
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    out[i] = state % KEYS;
  }
  return out;
}

function optional<T>(name: string): T | undefined {
  try {
    return require(name) as T;
  } catch {
    process.stdout.write(`  (${name} is not installed: npm install --no-save ${name} to compare against it)\n`);
    return undefined;
  }
}

async function openShoal(dataDir: string, dataInMemory: boolean, sharedMemoryIndex = true): Promise<Db> {
  return open({
    dataDir,
    sharedMemoryIndex,
    namespaces: [{ name: 'bench', storage: { type: 'device', paths: ['bench.dat'], sizeBytes: 1 << 30, dataInMemory } }],
    log: () => undefined,
  });
}

/** Inserts every key with `write` (batchPut or put), then one durable put: the figure covers getting it all onto the device. */
async function shoalBulkInsert(db: Db, label: string, write: (db: Db, count: number) => Promise<void>): Promise<Result> {
  const started = performance.now();
  await write(db, KEYS);
  // Everything on the device: a durable write waits for every earlier block write and syncs.
  await db.put({ ns: 'bench', set: 's', key: keyName(0) }, valueOf(0), { durable: true });
  return report(label, KEYS, performance.now() - started);
}

/** db.batchPut in batches of BATCH entries (lmdb gets the same batch size). */
async function shoalBatchPuts(db: Db, count: number): Promise<void> {
  for (let from = 0; from < count; from += BATCH) {
    const entries = [];
    for (let i = from; i < Math.min(count, from + BATCH); i++) entries.push({ key: { ns: 'bench', set: 's', key: keyName(i) }, bins: valueOf(i) });
    const results = await db.batchPut(entries);
    for (const result of results) if (result instanceof Error) throw result;
  }
}

/** db.put for every key, BATCH of them in flight at a time (not awaited one by one). */
async function shoalPuts(db: Db, count: number): Promise<void> {
  let pending: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    pending.push(db.put({ ns: 'bench', set: 's', key: keyName(i) }, valueOf(i)));
    if (pending.length >= BATCH) {
      await Promise.all(pending);
      pending = [];
    }
  }
  await Promise.all(pending);
}

async function shoalBench(dir: string): Promise<Record<string, Result>> {
  const out: Record<string, Result> = {};
  const indexes = randomIndexes(GETS);
  const warmDir = path.join(dir, 'shoal-warmup');
  fs.mkdirSync(warmDir);
  let db = await openShoal(warmDir, false, false);
  await shoalPuts(db, WARMUP_PUTS);
  await db.close({ dropIndex: true });
  db = await openShoal(warmDir, false, false);
  await shoalBatchPuts(db, WARMUP_PUTS);
  await db.close({ dropIndex: true });
  const putDir = path.join(dir, 'shoal-device-put');
  fs.mkdirSync(putDir);
  db = await openShoal(putDir, false, false);
  out.insertPut = await shoalBulkInsert(db, 'shoal bulk insert (put, no await each)', shoalPuts);
  await db.close({ dropIndex: true });
  fs.rmSync(putDir, { recursive: true, force: true });
  const deviceDir = path.join(dir, 'shoal-device');
  fs.mkdirSync(deviceDir);
  db = await openShoal(deviceDir, false);
  out.insert = await shoalBulkInsert(db, `shoal bulk insert (batchPut of ${BATCH.toLocaleString('en-US')})`, shoalBatchPuts);
  await db.close();
  db = await openShoal(deviceDir, false);
  out.deviceGet = await shoalDeviceReads(db, engineInUse(dir));
  out.durable = await shoalDurable(db);
  await db.close({ dropIndex: true });
  out.rawDevice = await rawDeviceReads(path.join(deviceDir, 'bench.dat'));
  out.coldStart = await shoalColdStart(deviceDir);

  const memoryDir = path.join(dir, 'shoal-memory');
  fs.mkdirSync(memoryDir);
  db = await openShoal(memoryDir, true);
  out.insertInMemory = await shoalBulkInsert(db, `shoal bulk insert, dataInMemory (batchPut of ${BATCH.toLocaleString('en-US')})`, shoalBatchPuts);
  let sink = 0;
  const started = performance.now();
  for (let i = 0; i < GETS; i++) sink += db.getSync({ ns: 'bench', set: 's', key: keyName(indexes[i]!) }) === undefined ? 0 : 1;
  out.memoryGet = report('shoal getSync, dataInMemory (random)', GETS, performance.now() - started);
  if (sink !== GETS) throw new Error(`shoal getSync found ${sink} of ${GETS}`);
  await db.close({ dropIndex: true });
  return out;
}

/**
 * The I/O engine a device opened now gets (the Db's devices are chosen the same way: the
 * threads, or io_uring with SHOAL_IO_ENGINE=io_uring where the kernel allows it), from a 1 MiB
 * scratch file in dir.
 */
function engineInUse(dir: string): string {
  const file = path.join(dir, 'engine-probe.dat');
  const device = new NativeDevice({ path: file, sizeBytes: 1 << 20, create: true, directIo: 'auto' });
  const engine = device.ioEngine;
  device.close();
  fs.rmSync(file, { force: true });
  return engine;
}

async function shoalDeviceReads(db: Db, engine: string): Promise<Result> {
  const indexes = randomIndexes(GETS);
  let next = 0;
  let done = 0;
  let missing = 0;
  const deadline = performance.now() + DEVICE_READ_MS;
  const started = performance.now();
  const worker = async () => {
    while (performance.now() < deadline) {
      const record = await db.get({ ns: 'bench', set: 's', key: keyName(indexes[next++ % GETS]!) });
      if (record === undefined) missing++;
      done++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  if (missing > 0) throw new Error(`shoal device get: ${missing} records missing`);
  const stats = db.stats().namespaces.bench!;
  return report(`shoal get from device (${CONCURRENCY} in flight)`, done, performance.now() - started, `directIo ${stats.directIo}, ${engine}`);
}

async function shoalDurable(db: Db): Promise<Result> {
  let done = 0;
  let next = 0;
  const deadline = performance.now() + DURABLE_MS;
  const started = performance.now();
  const worker = async () => {
    while (performance.now() < deadline) {
      const i = next++ % KEYS;
      await db.put({ ns: 'bench', set: 's', key: keyName(i) }, valueOf(i), { durable: true, exists: 'replace' });
      done++;
    }
  };
  await Promise.all(Array.from({ length: DURABLE_CONCURRENCY }, worker));
  return report(`shoal durable put (${DURABLE_CONCURRENCY} concurrent)`, done, performance.now() - started);
}

/**
 * The device's own random 4 KiB read rate through the engine's I/O pool (no index, no record
 * checks, no decoding), over the part of the file the records occupy: the ceiling for the
 * device-read figure, measured in the same run.
 */
async function rawDeviceReads(file: string): Promise<Result> {
  const device = new NativeDevice({ path: file, sizeBytes: 0, create: false, directIo: 'auto' });
  try {
    const loops = await rawReads(device, 200 << 20, CONCURRENCY, DEVICE_READ_MS);
    return report(`device random 4 KiB reads, raw (${CONCURRENCY} in flight)`, loops.done, loops.ms, `ceiling for the figure above, ${device.ioEngine}`);
  } finally {
    device.close();
  }
}

async function shoalColdStart(deviceDir: string): Promise<Result> {
  const started = performance.now();
  const db = await openShoal(deviceDir, false);
  const ms = performance.now() - started;
  const stats = db.stats().namespaces.bench!;
  const cold = stats.coldStart as { bytesScanned: number; ms: number; scanMs: number; indexMs: number; records: number; megabytesPerSecond: number } | undefined;
  await db.close({ dropIndex: true });
  if (stats.startMode !== 'cold' || cold === undefined) throw new Error(`expected a cold start, got ${stats.startMode}`);
  const megabytes = cold.bytesScanned / 1e6;
  const scanMBps = megabytes / (cold.scanMs / 1000);
  process.stdout.write(
    `  shoal cold start: ${cold.records.toLocaleString('en-US')} records, ${megabytes.toFixed(0)} MB: device scan (read, CRC, newest copy) ${cold.scanMs.toFixed(0)} ms ` +
      `= ${scanMBps.toFixed(0)} MB/s; index rebuild ${cold.indexMs.toFixed(0)} ms; whole cold start ${cold.ms.toFixed(0)} ms = ${cold.megabytesPerSecond.toFixed(0)} MB/s; ` +
      `open() ${ms.toFixed(0)} ms\n`,
  );
  return { name: 'shoal cold start MB/s', opsPerSecond: scanMBps };
}

interface LmdbDatabase {
  put(key: string, value: unknown): Promise<boolean>;
  putSync(key: string, value: unknown): boolean;
  get(key: string): unknown;
  flushed: Promise<void>;
  close(): Promise<void>;
}

async function lmdbBench(dir: string): Promise<Record<string, Result>> {
  const lmdb = optional<{ open(options: object): LmdbDatabase }>('lmdb');
  if (lmdb === undefined) return {};
  const out: Record<string, Result> = {};
  const warm = lmdb.open({ path: path.join(dir, 'lmdb-warmup'), mapSize: 1 << 30 });
  for (let i = 0; i < WARMUP_PUTS; i++) {
    const written = warm.put(keyName(i), valueOf(i));
    if (i % BATCH === BATCH - 1) await written;
  }
  await warm.flushed;
  await warm.close();
  let db = lmdb.open({ path: path.join(dir, 'lmdb'), mapSize: 4 << 30 });
  let started = performance.now();
  let last: Promise<boolean> | undefined;
  for (let i = 0; i < KEYS; i++) {
    last = db.put(keyName(i), valueOf(i));
    if (i % BATCH === BATCH - 1) await last;
  }
  await last;
  await db.flushed;
  out.insert = report('lmdb batched async put', KEYS, performance.now() - started);
  const indexes = randomIndexes(GETS);
  let sink = 0;
  started = performance.now();
  for (let i = 0; i < GETS; i++) sink += db.get(keyName(indexes[i]!)) === undefined ? 0 : 1;
  out.get = report('lmdb get (random)', GETS, performance.now() - started);
  if (sink !== GETS) throw new Error('lmdb get missed keys');
  await db.close();
  db = lmdb.open({ path: path.join(dir, 'lmdb') });
  let done = 0;
  started = performance.now();
  while (performance.now() - started < SYNC_PEER_MS) {
    db.putSync(keyName(done % KEYS), valueOf(done));
    done++;
  }
  out.putSync = report('lmdb putSync (one sync per put)', done, performance.now() - started);
  await db.close();
  return out;
}

interface LevelDatabase {
  open(): Promise<void>;
  batch(operations: { type: 'put'; key: string; value: string }[]): Promise<void>;
  get(key: string): Promise<string | undefined>;
  close(): Promise<void>;
}

async function levelBench(dir: string): Promise<Record<string, Result>> {
  const level = optional<{ ClassicLevel: new (location: string, options: object) => LevelDatabase }>('classic-level');
  if (level === undefined) return {};
  const out: Record<string, Result> = {};
  const db = new level.ClassicLevel(path.join(dir, 'level'), { valueEncoding: 'json' });
  await db.open();
  let started = performance.now();
  for (let i = 0; i < KEYS; i += BATCH) {
    const operations = [];
    for (let j = i; j < Math.min(KEYS, i + BATCH); j++) operations.push({ type: 'put' as const, key: keyName(j), value: valueOf(j) as unknown as string });
    await db.batch(operations);
  }
  out.insert = report('classic-level batch put', KEYS, performance.now() - started);
  const indexes = randomIndexes(GETS);
  started = performance.now();
  let next = 0;
  const deadline = performance.now() + DEVICE_READ_MS;
  let done = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < deadline) {
        await db.get(keyName(indexes[next++ % GETS]!));
        done++;
      }
    }),
  );
  out.get = report(`classic-level get (${CONCURRENCY} in flight)`, done, performance.now() - started);
  await db.close();
  return out;
}

interface SqliteDatabase {
  pragma(statement: string): unknown;
  exec(sql: string): void;
  prepare(sql: string): { run(...args: unknown[]): unknown; get(...args: unknown[]): unknown };
  transaction<T extends (...args: never[]) => unknown>(fn: T): T;
  close(): void;
}

async function sqliteBench(dir: string): Promise<Record<string, Result>> {
  const Sqlite = optional<new (file: string) => SqliteDatabase>('better-sqlite3');
  if (Sqlite === undefined) return {};
  const out: Record<string, Result> = {};
  const db = new Sqlite(path.join(dir, 'sqlite.db'));
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)');
  const insert = db.prepare('INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)');
  const select = db.prepare('SELECT v FROM kv WHERE k = ?');
  const batch = db.transaction((from: number, to: number) => {
    for (let j = from; j < to; j++) insert.run(keyName(j), JSON.stringify(valueOf(j)));
  });
  let started = performance.now();
  for (let i = 0; i < KEYS; i += BATCH) batch(i as never, Math.min(KEYS, i + BATCH) as never);
  out.insert = report('better-sqlite3 batched insert (WAL)', KEYS, performance.now() - started);
  const indexes = randomIndexes(GETS);
  started = performance.now();
  for (let i = 0; i < GETS; i++) JSON.parse((select.get(keyName(indexes[i]!)) as { v: string }).v);
  out.get = report('better-sqlite3 get (random)', GETS, performance.now() - started);
  db.close();
  return out;
}

export async function runStorageBench(): Promise<boolean> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-storage-'));
  process.stdout.write(`\nstorage: ${KEYS.toLocaleString('en-US')} keys, ~100-byte bins, data in ${dir}\n`);
  try {
    const shoal = await shoalBench(dir);
    const lmdb = await lmdbBench(dir);
    await levelBench(dir);
    await sqliteBench(dir);
    process.stdout.write('\n');
    const met = [
      ratio('bulk insert (batchPut)', shoal.insert, lmdb.insert, 1.0),
      ratio('random get, dataInMemory', shoal.memoryGet, lmdb.get, 1.0),
      shoal.deviceGet !== undefined && shoal.deviceGet.opsPerSecond >= 50_000,
      ratio(`durable puts (${DURABLE_CONCURRENCY} concurrent)`, shoal.durable, lmdb.putSync, 5.0),
      shoal.coldStart !== undefined && shoal.coldStart.opsPerSecond >= 300,
    ];
    ratio('bulk insert with single puts (informational)', shoal.insertPut, lmdb.insert, 0);
    process.stdout.write(`  random get from device: ${Math.round(shoal.deviceGet?.opsPerSecond ?? 0).toLocaleString('en-US')} reads/s (target ≥ 50,000) ${met[2] ? 'MET' : 'NOT MET'}\n`);
    process.stdout.write(`  cold start scan: ${Math.round(shoal.coldStart?.opsPerSecond ?? 0)} MB/s (target ≥ 300) ${met[4] ? 'MET' : 'NOT MET'}\n`);
    return met.every(Boolean);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  runStorageBench().then(
    (met) => process.stdout.write(`\nstorage targets ${met ? 'all MET' : 'not all met'}\n`),
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
