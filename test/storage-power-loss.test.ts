/**
 * Power loss, in process: the fault backend keeps every write in memory until fdatasync and
 * "loses power" (drops what was never synced, fails everything after) at a random point of a
 * random workload of durable and non-durable puts and removes, with defrag running. After each
 * loss the devices are reopened and every durable acknowledgement must be there, nothing
 * removed may come back, nothing damaged may be served. A SIGKILL cannot test this (the page
 * cache survives a killed process); this is what group commit has to get right.
 * Seeded: SHOAL_POWER_SEED replays.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { KvHarness } from '../sim/kv-harness';
import { checkKey, type Model, SeededRandom } from './fixtures/storage-crash-model';

const ROUNDS = 20;
const KEYS = 300;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-power-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const random = new SeededRandom(Number(process.env.SHOAL_POWER_SEED ?? Date.now() % 1_000_000));
const options = { namespace: 'power', dataDir: dir, paths: ['power.dat'], sizeBytes: 4 << 20, writeBlockBytes: 128 << 10, flushMaxMs: 5 };

function valueOf(key: string, version: number): Buffer {
  return Buffer.concat([Buffer.from(`${key}|${version}|`), Buffer.alloc(50 + (version % 700), version % 251)]);
}

function note(model: Model, key: string, line: string, version: number, kind: 'put' | 'del' | 'ackPut' | 'ackDel'): void {
  let entry = model.get(key);
  if (entry === undefined) model.set(key, (entry = { floor: undefined, issued: new Map(), history: [] }));
  entry.history.push(line);
  if (entry.history.length > 12) entry.history.shift();
  if (kind === 'put' || kind === 'del') entry.issued.set(version, kind);
  else if (entry.floor === undefined || entry.floor.version < version) entry.floor = { kind: kind === 'ackPut' ? 'put' : 'del', version };
}

async function round(model: Model, round: number): Promise<void> {
  const store = await KvHarness.open({ ...options, faults: true });
  store.store.injectFaults({ holdUnsynced: true, maxWriteDelayUs: 2000 });
  const operations = 200 + Math.floor(random.next() * 3000);
  const pending: Promise<unknown>[] = [];
  let version = round * 1_000_000;
  for (let index = 0; index < operations; index++) {
    const key = `k${Math.floor(random.next() * KEYS)}`;
    const durable = random.next() < 0.5;
    version++;
    const current = version;
    try {
      if (random.next() < 0.85) {
        note(model, key, `${round}:I ${current}`, current, 'put');
        const done = store.put(key, valueOf(key, current), { durable });
        if (done) pending.push(done.then(() => note(model, key, `${round}:A ${current}`, current, 'ackPut'), () => undefined));
      } else {
        note(model, key, `${round}:X ${current}`, current, 'del');
        const { done } = store.remove(key, { durable });
        if (done) pending.push(done.then(() => note(model, key, `${round}:R ${current}`, current, 'ackDel'), () => undefined));
      }
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code !== 'OUT_OF_SPACE' && code !== 'IO_ERROR') throw error;
    }
    if (index % 64 === 63) await new Promise((resolve) => setImmediate(resolve));
    if (index % 256 === 255) await store.store.defragNow().catch(() => undefined);
  }
  // Power goes at some point while the last writes are in flight.
  await new Promise((resolve) => setTimeout(resolve, Math.floor(random.next() * 8)));
  store.store.faultDevices()[0]!.fault('die');
  await Promise.allSettled(pending);
  await store.close().catch(() => undefined);
}

async function verify(model: Model): Promise<void> {
  const store = await KvHarness.open(options);
  try {
    for (const [key, entry] of model) {
      const record = await store.get(key);
      if (record === undefined) {
        checkKey(key, entry, undefined);
        continue;
      }
      const version = Number(record.payload.toString('latin1', 0, 32).split('|')[1]);
      expect(record.payload.equals(valueOf(key, version)), `${key}: value ${version} is damaged`).toBe(true);
      checkKey(key, entry, version);
    }
  } finally {
    await store.close();
  }
}

it(`keeps every durable write across ${ROUNDS} power losses at random points`, async () => {
  const seed = random.seed;
  console.log(`power-loss test: seed ${seed} (SHOAL_POWER_SEED replays)`);
  const model: Model = new Map();
  for (let index = 1; index <= ROUNDS; index++) {
    await round(model, index);
    await verify(model);
  }
  console.log(`power-loss test: ${ROUNDS} losses, ${model.size} keys, seed ${seed}`);
}, 120_000);
