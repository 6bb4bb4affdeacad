/**
 * Crash test of the storage engine with real processes: a child writes under load (durable
 * and non-durable puts and removes) and is killed with SIGKILL at random points, including
 * during its start-up (cold start, defrag). After every kill the devices are reopened here and
 * checked: every write acknowledged durable is there with its value (or a newer one), every
 * durably removed key stays removed (or was written again), every value served is intact, and
 * nothing that was recovered once goes back to an older state. Seeded: SHOAL_CRASH_SEED replays.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { KvHarness } from '../lib/storage/kv-harness';

const KILLS = 24;
const TIME_BUDGET_MS = 75_000;
const CHILD = path.join(__dirname, 'fixtures', 'storage-crash-child.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-crash-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

type Operation = 'put' | 'del';
interface KeyModel {
  /** The state that must not be lost: last durable ack, or what a previous recovery found. */
  floor: { kind: Operation; version: number } | undefined;
  issued: Map<number, Operation>;
  /** The key's recent history, for failure messages. */
  history: string[];
}

let seed = Number(process.env.SHOAL_CRASH_SEED ?? Date.now() % 1_000_000);
function random(): number {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
}

function expectedValue(key: string, version: number): Buffer {
  const length = 40 + ((version * 7919) % 560);
  return Buffer.concat([Buffer.from(`${key}|${version}|`), Buffer.alloc(length, version % 251)]);
}

interface ChildRun {
  ready: boolean;
  fatal: string | undefined;
}

function runChild(runId: number, model: Map<string, KeyModel>, killAfterReadyMs: number, killEarlyMs: number | undefined): Promise<ChildRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CHILD, dir, String(runId), String(Math.floor(random() * 1e9))], { stdio: ['ignore', 'pipe', 'pipe'] });
    const run: ChildRun = { ready: false, fatal: undefined };
    let pending = '';
    let stderr = '';
    const kill = () => child.kill('SIGKILL');
    if (killEarlyMs !== undefined) setTimeout(kill, killEarlyMs);
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        const [tag, key, versionText] = line.split(' ');
        const version = Number(versionText);
        if (tag === 'READY') {
          run.ready = true;
          if (killEarlyMs === undefined) setTimeout(kill, killAfterReadyMs);
          continue;
        }
        if (tag === 'FATAL' || tag === 'E') {
          run.fatal = line;
          continue;
        }
        let entry = model.get(key!);
        if (entry === undefined) model.set(key!, (entry = { floor: undefined, issued: new Map(), history: [] }));
        entry.history.push(`${runId}:${line}`);
        if (entry.history.length > 12) entry.history.shift();
        if (tag === 'I') entry.issued.set(version, 'put');
        else if (tag === 'X') entry.issued.set(version, 'del');
        else if (tag === 'A' || tag === 'R') {
          const kind: Operation = tag === 'A' ? 'put' : 'del';
          if (entry.floor === undefined || entry.floor.version < version) entry.floor = { kind, version };
        }
      }
    });
    child.on('exit', () => {
      if (run.fatal === undefined && stderr.trim().length > 0 && !run.ready) run.fatal = stderr;
      resolve(run);
    });
  });
}

async function verify(model: Map<string, KeyModel>): Promise<{ present: number; checked: number }> {
  const harness = await KvHarness.open({ namespace: 'crash', dataDir: dir, paths: ['crash.dat'], sizeBytes: 16 << 20, writeBlockBytes: 128 << 10 });
  let present = 0;
  try {
    expect(harness.report!.corrupt, 'torn writes are skipped, not counted as lost data').toBeGreaterThanOrEqual(0);
    for (const [key, entry] of model) {
      const record = await harness.get(key);
      const floor = entry.floor;
      if (record === undefined) {
        if (floor?.kind === 'put') {
          const laterRemove = [...entry.issued].some(([version, kind]) => kind === 'del' && version > floor.version);
          expect(laterRemove, `${key}: durable put ${floor.version} lost; history ${entry.history.join(', ')}`).toBe(true);
        }
        const maxIssued = Math.max(0, ...entry.issued.keys(), floor?.version ?? 0);
        entry.floor = { kind: 'del', version: maxIssued };
        entry.history.push('recovered absent');
        continue;
      }
      present++;
      const text = record.payload.toString('latin1', 0, 40).split('|');
      const version = Number(text[1]);
      expect(text[0], `${key}: value belongs to another key`).toBe(key);
      expect(record.payload.equals(expectedValue(key, version)), `${key}: value ${version} is damaged`).toBe(true);
      expect(entry.issued.get(version) === 'put' || floor?.version === version, `${key}: version ${version} was never written`).toBe(true);
      if (floor !== undefined) {
        if (floor.kind === 'put') expect(version, `${key}: older than durable put ${floor.version}`).toBeGreaterThanOrEqual(floor.version);
        else expect(version, `${key}: removed at ${floor.version} but ${version} came back`).toBeGreaterThan(floor.version);
      }
      entry.floor = { kind: 'put', version };
      entry.history.push(`recovered ${version}`);
    }
  } finally {
    await harness.close();
  }
  return { present, checked: model.size };
}

it(`keeps every durable write across ${KILLS} SIGKILLs of a writing process`, async () => {
  const startSeed = seed;
  const model = new Map<string, KeyModel>();
  const started = Date.now();
  let kills = 0;
  let durableAcks = 0;
  for (let run = 1; run <= KILLS && Date.now() - started < TIME_BUDGET_MS; run++) {
    const early = random() < 0.2 ? Math.floor(random() * 250) : undefined;
    const result = await runChild(run, model, 30 + Math.floor(random() * 400), early);
    expect(result.fatal, `child failed (seed ${startSeed})`).toBeUndefined();
    kills++;
    const { present } = await verify(model);
    durableAcks = [...model.values()].filter((entry) => entry.floor !== undefined).length;
    expect(present).toBeGreaterThanOrEqual(0);
  }
  console.log(`crash test: ${kills} kills in ${Date.now() - started} ms, ${model.size} keys tracked, ${durableAcks} with a floor, seed ${startSeed}`);
  expect(kills).toBeGreaterThanOrEqual(20);
}, 120_000);
