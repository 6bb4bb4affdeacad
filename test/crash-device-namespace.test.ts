/**
 * Crash test through the public API: a child process open()s a device namespace and puts,
 * batchPuts and removes under load (durable and not, upserts that read the device), and is killed with
 * SIGKILL at random points, including during its start. After each kill the parent open()s the
 * same data ('recovered' from the child's last index checkpoint and the blocks written since,
 * or 'cold' when it was killed before its first checkpoint: the shared-memory index of a
 * killed process is never attached),
 * checks every key against what the child acknowledged, and closes cleanly, so the next child
 * starts warm. Seeded: SHOAL_CRASH_SEED replays.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { open } from '../lib/index';
import { addon } from '../lib/native/addon';
import { segmentBaseName } from '../lib/namespace/index-segments';
import { checkKey, type Model, runChild, SeededRandom } from './fixtures/storage-crash-model';

// scripts/crash-loop.js (npm run crash-loop) runs this test for much longer through these two.
const KILLS = Number(process.env.SHOAL_CRASH_KILLS ?? 22);
const TIME_BUDGET_MS = Number(process.env.SHOAL_CRASH_BUDGET_MS ?? 80_000);
const CHILD = path.join(__dirname, 'fixtures', 'storage-crash-api-child.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-crash-api-'));
afterAll(() => {
  addon().unlinkIndexSegments(segmentBaseName(dir, 'users'));
  fs.rmSync(dir, { recursive: true, force: true });
});

const random = new SeededRandom(Number(process.env.SHOAL_CRASH_SEED ?? Date.now() % 1_000_000));

async function verify(model: Model): Promise<string> {
  const db = await open({
    dataDir: dir,
    sharedMemoryIndex: true,
    namespaces: [{ name: 'users', storage: { type: 'device', paths: ['users.dat'], sizeBytes: 16 << 20, writeBlockBytes: 128 << 10 }, maxRecordBytes: 64 << 10 }],
    log: () => undefined,
  });
  const startMode = db.stats().namespaces.users!.startMode;
  try {
    for (const [name, entry] of model) {
      const record = await db.get({ ns: 'users', set: 'crash', key: name });
      if (record === undefined) {
        checkKey(name, entry, undefined);
        continue;
      }
      const version = record.bins.v as number;
      expect(record.bins.pad, `${name}: value ${version} is damaged`).toBe('p'.repeat(version % 400));
      checkKey(name, entry, version);
    }
  } finally {
    await db.close();
  }
  return startMode;
}

it(`keeps every durable write through open()/put()/remove() across ${KILLS} SIGKILLs`, async () => {
  const seed = random.seed;
  console.log(`crash test (public API): seed ${seed} (SHOAL_CRASH_SEED replays)`);
  const model: Model = new Map();
  const started = Date.now();
  const modes = new Map<string, number>();
  let kills = 0;
  let checkpointed = 0;
  for (let run = 1; run <= KILLS && Date.now() - started < TIME_BUDGET_MS; run++) {
    const early = random.next() < 0.2 ? Math.floor(random.next() * 300) : undefined;
    const result = await runChild(CHILD, [dir, String(run), String(Math.floor(random.next() * 1e9))], model, run, 40 + Math.floor(random.next() * 400), early);
    expect(result.fatal, `child failed (seed ${seed})`).toBeUndefined();
    kills++;
    const mode = await verify(model);
    modes.set(mode, (modes.get(mode) ?? 0) + 1);
    // Killed before it opened anything, the child leaves the last clean close behind: warm is
    // right. Killed after, its shared-memory index is never trusted: its last index checkpoint
    // and the blocks since give 'recovered'; before its first checkpoint, 'cold'.
    if (result.ready) expect(mode, 'a killed process must never leave an index that is attached').not.toBe('warm');
    if (result.checkpointed) expect(mode, 'a killed process that checkpointed its index restarts from it').toBe('recovered');
    if (result.checkpointed) checkpointed++;
  }
  console.log(`crash test (public API): ${kills} kills in ${Date.now() - started} ms, ${model.size} keys, start modes ${JSON.stringify([...modes])}, seed ${seed}`);
  expect(kills).toBeGreaterThanOrEqual(Math.min(20, KILLS));
  // A child killed 40-440 ms after its start has often written its first checkpoint (at once
  // after the start; on a loaded machine its fsyncs take longer): at least one must have.
  expect(checkpointed, 'children that lived long enough to checkpoint').toBeGreaterThan(0);
  expect(modes.get('recovered') ?? 0).toBeGreaterThanOrEqual(checkpointed);
}, TIME_BUDGET_MS + 40_000);
