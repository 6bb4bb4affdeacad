/**
 * Crash test of the storage engine with real processes: a child writes under load (durable
 * and non-durable puts and removes) and is killed with SIGKILL at random points, including
 * during its start-up (cold start, defrag). After every kill the devices are reopened here and
 * checked: every write acknowledged durable is there with its value (or a newer one), every
 * durably removed key stays removed (or was written again), every value served is intact, and
 * nothing that was recovered once goes back to an older state. Seeded: SHOAL_CRASH_SEED replays.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { KvHarness } from '../sim/kv-harness';
import { checkKey, type Model, runChild, SeededRandom } from './fixtures/storage-crash-model';

const KILLS = 24;
const TIME_BUDGET_MS = 75_000;
const CHILD = path.join(__dirname, 'fixtures', 'storage-crash-child.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-crash-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const random = new SeededRandom(Number(process.env.SHOAL_CRASH_SEED ?? Date.now() % 1_000_000));

function expectedValue(key: string, version: number): Buffer {
  const length = 40 + ((version * 7919) % 560);
  return Buffer.concat([Buffer.from(`${key}|${version}|`), Buffer.alloc(length, version % 251)]);
}

async function verify(model: Model): Promise<{ corrupt: number; blocks: number }> {
  const harness = await KvHarness.open({ namespace: 'crash', dataDir: dir, paths: ['crash.dat'], sizeBytes: 16 << 20, writeBlockBytes: 128 << 10 });
  try {
    for (const [key, entry] of model) {
      const record = await harness.get(key);
      if (record === undefined) {
        checkKey(key, entry, undefined);
        continue;
      }
      const text = record.payload.toString('latin1', 0, 40).split('|');
      const version = Number(text[1]);
      expect(text[0], `${key}: value belongs to another key`).toBe(key);
      expect(record.payload.equals(expectedValue(key, version)), `${key}: value ${version} is damaged`).toBe(true);
      checkKey(key, entry, version);
    }
    return { corrupt: harness.report!.corrupt, blocks: harness.report!.validBlocks };
  } finally {
    await harness.close();
  }
}

it(`keeps every durable write across ${KILLS} SIGKILLs of a writing process`, async () => {
  const seed = random.seed;
  console.log(`crash test: seed ${seed} (SHOAL_CRASH_SEED replays)`);
  const model: Model = new Map();
  const started = Date.now();
  let kills = 0;
  let corrupt = 0;
  for (let run = 1; run <= KILLS && Date.now() - started < TIME_BUDGET_MS; run++) {
    const early = random.next() < 0.2 ? Math.floor(random.next() * 250) : undefined;
    const result = await runChild(CHILD, [dir, String(run), String(Math.floor(random.next() * 1e9))], model, run, 30 + Math.floor(random.next() * 400), early);
    expect(result.fatal, `child failed (seed ${seed})`).toBeUndefined();
    kills++;
    corrupt += (await verify(model)).corrupt;
  }
  console.log(`crash test: ${kills} kills in ${Date.now() - started} ms, ${model.size} keys tracked, ${corrupt} torn records skipped, seed ${seed}`);
  expect(kills).toBeGreaterThanOrEqual(20);
}, 120_000);
