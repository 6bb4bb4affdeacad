/**
 * Restart after a crash from the index checkpoint (docs/storage.md, "Restart after a crash"):
 * child processes are killed with SIGKILL during a checkpoint, during defragmentation and
 * after a truncate's marker, and the parent's open() must start 'recovered' with every durable
 * acknowledgement there and nothing removed back; a torn, damaged or stale index checkpoint
 * file must give a cold start that says why; after a "reboot" (the shared-memory segments
 * removed) the file alone gives 'recovered'; close({ dropIndex: true }) leaves nothing to
 * recover from. Real processes, real files; segments and directories are removed afterwards.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Db, open } from '../lib/index';
import { checkKey, type Model, runChild } from './fixtures/storage-crash-model';
import { cleanupTempDirs, dropSegments, tempDir } from './helpers/temp';

const CHILD = path.join(__dirname, 'fixtures', 'recovery-child.js');
// Only the checkpoints the child asks for (and the one at its start): the test knows which exist.
process.env.SHOAL_CHECKPOINT_MS = '3600000';
afterAll(() => cleanupTempDirs(['disk']));

function openDb(dir: string, logs: string[] = []): Promise<Db> {
  return open({
    dataDir: dir,
    sharedMemoryIndex: true,
    namespaces: [{ name: 'disk', storage: { type: 'device', paths: ['disk.dat'], sizeBytes: 24 << 20, writeBlockBytes: 128 << 10, flushMaxMs: 20 }, maxRecordBytes: 64 << 10 }],
    log: (line) => logs.push(line),
  });
}

/** Runs the child's scenario to its SIGKILL; fails on a child error. */
async function runScenario(dir: string, run: number, scenario: string, model: Model): Promise<void> {
  const result = await runChild(CHILD, [dir, String(run), String(1000 + run * 7919), scenario], model, run, 60_000, undefined);
  expect(result.fatal, `child ${scenario}`).toBeUndefined();
  expect(result.checkpointed, `child ${scenario} wrote a checkpoint`).toBe(true);
}

/** Opens, checks every key of the model (set "r", or the key's own set prefix), and returns the start mode; leaves the Db open. */
async function verify(dir: string, model: Model, logs: string[] = []): Promise<{ db: Db; mode: string }> {
  const db = await openDb(dir, logs);
  for (const [name, entry] of model) {
    const set = name.startsWith('gone') ? 'gone' : name.startsWith('kept') ? 'kept' : 'r';
    const record = await db.get({ ns: 'disk', set, key: name.slice(set === 'r' ? 0 : set.length) });
    if (record === undefined) {
      checkKey(name, entry, undefined);
      continue;
    }
    const version = record.bins.v as number;
    expect(record.bins.pad, `${name}: value ${version} is damaged`).toBe('p'.repeat(version % 300));
    checkKey(name, entry, version);
  }
  return { db, mode: db.stats().namespaces.disk!.startMode };
}

describe('restart from the index checkpoint after SIGKILL', () => {
  it('a kill during a checkpoint: recovered, every durable write there, nothing removed back', async () => {
    for (let round = 0; round < 3; round++) {
      const dir = tempDir('shoal-recovery-');
      const model: Model = new Map();
      await runScenario(dir, 1, 'checkpoint', model);
      const { db, mode } = await verify(dir, model);
      expect(mode).toBe('recovered');
      const recovery = db.stats().namespaces.disk!.recovery as { blocksReplayed: number; ms: number };
      expect(recovery.blocksReplayed).toBeGreaterThan(0);
      await db.close();
      dropSegments(dir, ['disk']);
    }
  }, 60_000);

  it('a kill during defragmentation, or after its freed blocks were written again: recovered and right', async () => {
    for (let round = 0; round < 4; round++) {
      const dir = tempDir('shoal-recovery-');
      const model: Model = new Map();
      await runScenario(dir, 1 + round, 'defrag', model);
      const { db, mode } = await verify(dir, model);
      expect(mode).toBe('recovered');
      await db.close();
      dropSegments(dir, ['disk']);
    }
  }, 90_000);

  it('a kill after a truncate marker, with a checkpoint whose image predates the index walk: the set stays truncated', async () => {
    const dir = tempDir('shoal-recovery-');
    const model: Model = new Map();
    await runScenario(dir, 1, 'truncate', model);
    const db = await openDb(dir);
    expect(db.stats().namespaces.disk!.startMode).toBe('recovered');
    for (let i = 0; i < 2000; i++) expect(await db.get({ ns: 'disk', set: 'gone', key: `k${i}` }), `gone k${i}`).toBeUndefined();
    for (let i = 0; i < 1000; i++) expect((await db.get({ ns: 'disk', set: 'kept', key: `k${i}` }))?.bins.v, `kept k${i}`).toBeDefined();
    expect(db.stats().namespaces.disk!.objects).toBe(1000);
    await db.close();
    dropSegments(dir, ['disk']);
  }, 60_000);
});

describe('the sliced checkpoint image (copied while writes go on)', () => {
  it('a kill during a sliced copy, after one taken under overwrites, removes and inserts: recovered, 0 durable writes lost, 0 removes back', async () => {
    for (let round = 0; round < 3; round++) {
      const dir = tempDir('shoal-recovery-');
      const model: Model = new Map();
      process.env.SHOAL_TEST_CHECKPOINT_PIECE_DELAY_US = '20000';
      try {
        await runScenario(dir, 1 + round, 'slicedCopy', model);
      } finally {
        delete process.env.SHOAL_TEST_CHECKPOINT_PIECE_DELAY_US;
      }
      const progress = JSON.parse(fs.readFileSync(path.join(dir, 'midcopy'), 'utf8')) as { first: [number, number] | null; second: [number, number] | null };
      // Both copies were seen part-way: the first with writes going on, the second at the kill.
      expect(progress.first, 'the first copy was seen part-way').not.toBeNull();
      expect(progress.second, 'the kill came during the second copy').not.toBeNull();
      expect(progress.second![0]).toBeLessThan(progress.second![1]);
      const logs: string[] = [];
      const { db, mode } = await verify(dir, model, logs);
      expect(mode, logs.join('\n')).toBe('recovered');
      // No phantom or doubled entry: the index holds exactly the keys found.
      let present = 0;
      for (const name of model.keys()) if ((await db.get({ ns: 'disk', set: 'r', key: name })) !== undefined) present++;
      expect(db.stats().namespaces.disk!.objects).toBe(present);
      const recovery = db.stats().namespaces.disk!.recovery as { blocksReplayed: number; recordsReplayed: number };
      expect(recovery.recordsReplayed).toBeGreaterThan(0);
      await db.close();
      dropSegments(dir, ['disk']);
    }
  }, 120_000);
});

describe('the index checkpoint file is never trusted blindly', () => {
  /** A child that checkpointed and died, so that only the file (or a scan) can bring the data back. */
  async function killed(scenario = 'keepFile'): Promise<{ dir: string; model: Model }> {
    const dir = tempDir('shoal-recovery-');
    const model: Model = new Map();
    await runScenario(dir, 1, scenario, model);
    return { dir, model };
  }

  it('a torn file (cut short) gives a cold start that says why', async () => {
    const { dir, model } = await killed();
    const file = path.join(dir, 'disk.index-checkpoint');
    fs.truncateSync(file, fs.statSync(file).size - 4096);
    const logs: string[] = [];
    const { db, mode } = await verify(dir, model, logs);
    expect(mode).toBe('cold');
    expect(logs.join('\n')).toMatch(/index checkpoint file is torn/);
    await db.close();
  }, 30_000);

  it('a bit flipped in its index image gives a cold start that says why', async () => {
    const { dir, model } = await killed();
    const file = path.join(dir, 'disk.index-checkpoint');
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 5000] ^= 0x10;
    fs.writeFileSync(file, bytes);
    const logs: string[] = [];
    const { db, mode } = await verify(dir, model, logs);
    expect(mode).toBe('cold');
    expect(logs.join('\n')).toMatch(/index checkpoint file is damaged/);
    await db.close();
  }, 30_000);

  it('a stale file from an older run gives a cold start that says why; the current one gives recovered', async () => {
    const { dir, model } = await killed();
    const kept = path.join(dir, 'disk.index-checkpoint.kept');
    // Run 1's own file: recovered (the positive control).
    let { db, mode } = await verify(dir, model);
    expect(mode).toBe('recovered');
    await db.close();
    // Run 2 starts warm, removes and writes, checkpoints, dies; then run 1's file is put back.
    await runScenario(dir, 2, 'churnAndDie', model);
    fs.copyFileSync(kept, path.join(dir, 'disk.index-checkpoint'));
    const logs: string[] = [];
    ({ db, mode } = await verify(dir, model, logs));
    expect(mode).toBe('cold');
    expect(logs.join('\n')).toMatch(/index checkpoint file was taken by an earlier run/);
    await db.close();
  }, 40_000);

  it('after a "reboot" (no shared memory) the file gives recovered, after a kill and after a clean close; dropIndex leaves nothing', async () => {
    const { dir, model } = await killed('churnAndDie');
    dropSegments(dir, ['disk']);
    let { db, mode } = await verify(dir, model);
    expect(mode).toBe('recovered');
    await db.close();
    dropSegments(dir, ['disk']);
    ({ db, mode } = await verify(dir, model));
    expect(mode).toBe('recovered');
    await db.close({ dropIndex: true });
    expect(fs.existsSync(path.join(dir, 'disk.index-checkpoint'))).toBe(false);
    ({ db, mode } = await verify(dir, model));
    expect(mode).toBe('cold');
    await db.close();
  }, 40_000);
});
