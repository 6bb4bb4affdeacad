/**
 * Seeded fault runs of the cluster simulator (sim/): after faults stop the cluster
 * must converge to one view, finish migrations, and pass every checker: acknowledged unique
 * keys on all RF owners, owners identical record by record, no compare-and-set write lost
 * beyond what docs/cluster.md admits, generations never backwards on a node. Also: a seed
 * replays event for event, and the checkers catch the faults they exist for.
 *
 * A failing seed replays exactly with the command its assertion message prints, e.g.
 *   npm run simulate -- --seed 45 --ticks 0 --scenario split
 * Other seeds: SHOAL_FULL_SEEDS=1,2,3 (SHOAL_SEEDS, SHOAL_CRASH_SEEDS) npx vitest run test/cluster-faults.test.ts
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { RecordVersion } from '../lib/cluster/local-store';
import type { ScenarioName, ScenarioResult } from '../sim/scenarios';
import { runScenario } from '../sim/scenarios';
import { SimStore } from '../sim/store';
import { DuplicateResolution } from '../lib/cluster/duplicate-resolution';
import { RequestMemory } from '../lib/cluster/request-memory';

const seedsFrom = (variable: string, fallback: number[]) => process.env[variable]?.split(',').map(Number) ?? fallback;

function replay(scenario: ScenarioName, seed: number, ticks: number): string {
  return `npm run simulate -- --seed ${seed} --ticks ${ticks} --scenario ${scenario}`;
}

function expectPassed(result: ScenarioResult, ticks: number): void {
  const failed = result.checks.filter((check) => !check.passed).map((check) => `${check.name}: ${check.detail}`);
  expect(failed, `seed ${result.seed} failed; replay: ${replay(result.scenario, result.seed, ticks)}`).toEqual([]);
  expect(result.passed).toBe(true);
}

describe('determinism', () => {
  it('the same seed replays the same run exactly (events, messages byte for byte, acknowledgements)', async () => {
    const seed = 4242;
    const first = await runScenario('full', { seed, faultMs: 15_000, traceMessages: true });
    const second = await runScenario('full', { seed, faultMs: 15_000, traceMessages: true });
    const command = `${replay('full', seed, 15_000)} --trace-messages`;
    expect(second.events, `replay: ${command}`).toBe(first.events);
    expect(second.trace, `replay: ${command}`).toBe(first.trace);
    expect(second.acknowledged).toBe(first.acknowledged);
    expect(second.registerWrites).toBe(first.registerWrites);
    // The run did something worth replaying: writes and faults.
    expect(first.acknowledged).toBeGreaterThan(50);
    expect(Object.keys(first.faults).length).toBeGreaterThan(2);
    // A different seed gives a different run.
    const other = await runScenario('full', { seed: seed + 1, faultMs: 15_000, traceMessages: true });
    expect(other.trace).not.toBe(first.trace);
  });
});

// The whole fault schedule: loss, delay, duplication, reordering, splits, one-way blocks,
// pauses, clock steps, crashes with warm and cold (torn) restarts, failing stores; unique keys
// and compare-and-set registers. 20 s of faults per seed.
describe('full fault schedule (5 nodes)', () => {
  // 21: a write whose master left with it, retried while no view was agreed, was answered
  // PARTITION_UNAVAILABLE (a definite "not applied") though the master had applied it; it is
  // in doubt (TIMEOUT). One of 11 such seeds in 1..1000 at 20 s of faults.
  for (const seed of seedsFrom('SHOAL_FULL_SEEDS', [1, 2, 3, 5, 9, 13, 21])) {
    it(`seed ${seed}: converges and every checker passes`, async () => {
      const result = await runScenario('full', { seed, faultMs: 20_000 });
      console.log(`full seed ${seed}: ${result.acknowledged} keys + ${result.registerWrites} CAS acknowledged, faults ${JSON.stringify(result.faults)}, ${result.admittedLosses} admitted CAS losses`);
      expectPassed(result, 20_000);
    });
  }
});

// Seeds of the long run (npm run simulate:long), 60 s of faults each. 115 and 178: a connection to a
// restarted node's dead predecessor, whose close was lost in a split, stayed half-open for ever (the simulated
// machine never answered with a reset), so the restarted node stayed a one-node cluster (simulator fixed).
// 140 (replication timed out, copies diverged under one lineage) is in cluster-replication-timeout.test.ts.
describe('long-run regression seeds (full schedule, 60 s of faults)', () => {
  for (const seed of seedsFrom('SHOAL_LONG_SEEDS', [115, 178])) {
    it(`seed ${seed}: converges and every checker passes`, async () => {
      expectPassed(await runScenario('full', { seed, faultMs: 60_000 }), 60_000);
    });
  }
});

// Crash seed 1099: a node that left a view (orphan fallback) re-adopted it from a member's heartbeat, ran a
// second exchange for it and planned differently from the others: a write stayed on one copy (fixed).
describe('seeded fault runs with duplication, reordering and a crash (5 nodes)', () => {
  for (const seed of seedsFrom('SHOAL_CRASH_SEEDS', [1, 1099])) {
    it(`seed ${seed}: survivors converge and keep every acknowledged write`, async () => {
      expectPassed(await runScenario('crash', { seed }), 0);
    });
  }
});

// 24, 34, 38, 39: members planned from different holdings (fixed: one snapshot per view).
// 45: an acknowledged write lost when a view changed with its replication in flight (fixed).
// 114: a lost answer to a holdings broadcast was never repeated; migrations waited forever (fixed).
describe('seeded fault runs (5 nodes)', () => {
  for (const seed of seedsFrom('SHOAL_SEEDS', [24, 34, 45, 114])) {
    it(`seed ${seed}: converges and keeps every acknowledged write`, async () => {
      expectPassed(await runScenario('split', { seed }), 0);
    });
  }
});

// Found by the checkers of issue 21 on the old data plane (467fb3c). Full seed 6 (20 s): a
// replica took a replication from a master outside its view (a paused node still acting in the
// view its peers had left) after its view's plans were made, so it held a version the new
// master it filled lacked; a read through the new master hid the write (read-your-writes).
// Migrate seeds 1 and 2: a duplicated request ran twice (an append applied twice; a
// compare-and-set whose duplicate failed answered GENERATION_MISMATCH first although the write
// was applied), and writes whose master left were sent again to the new master.
describe('issue 21 regression seeds', () => {
  for (const seed of seedsFrom('SHOAL_RYW_SEEDS', [6])) {
    it(`full seed ${seed} (20 s of faults): converges and every checker passes`, async () => {
      expectPassed(await runScenario('full', { seed, faultMs: 20_000 }), 20_000);
    });
  }
  for (const seed of seedsFrom('SHOAL_MIGRATE_SEEDS', [1])) {
    it(`long-migration seed ${seed}: no client error, no hidden read, every write once`, async () => {
      const result = await runScenario('migrate', { seed });
      console.log(`migrate seed ${seed}: ${result.acknowledged} keys + ${result.registerWrites} CAS and appends acknowledged, faults ${JSON.stringify(result.faults)}`);
      expectPassed(result, 0);
    });
  }
});

describe('the checkers catch what they exist for', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('replicas that acknowledge without storing: acknowledged writes missing, replicas differ', async () => {
    const original = SimStore.prototype.applyRecordVersion;
    let calls = 0;
    vi.spyOn(SimStore.prototype, 'applyRecordVersion').mockImplementation(async function (this: SimStore, ns: string, version: RecordVersion) {
      if (++calls % 3 === 0) return 'applied';
      return original.call(this, ns, version);
    });
    const result = await runScenario('split', { seed: 24 });
    const failed = result.checks.filter((check) => !check.passed).map((check) => check.name);
    expect(failed).toContain('acknowledged-writes-on-rf-owners');
    expect(failed).toContain('replicas-identical');
  });

  it('an acting master that serves without reading its pending merge sources: a hidden read', async () => {
    vi.spyOn(DuplicateResolution.prototype, 'resolveDuplicates').mockResolvedValue(undefined);
    // Seed 39: of full seeds 1-40 (20 s of faults), the one whose run meets the case since the
    // authenticated fabric changed every seed's timing; the run is deterministic.
    const result = await runScenario('full', { seed: 39, faultMs: 20_000 });
    expect(result.checks.filter((check) => !check.passed).map((check) => check.name)).toContain('read-your-writes');
  });

  it('a master that forgets the requests it ran: duplicates run twice, a definite error for an applied write', async () => {
    vi.spyOn(RequestMemory.prototype, 'lookup').mockReturnValue(undefined);
    const failed = new Set<string>();
    for (const check of (await runScenario('full', { seed: 5, faultMs: 20_000 })).checks) if (!check.passed) failed.add(check.name);
    expect(failed).toContain('definite-errors-not-applied');
    expect(failed).toContain('writes-applied-at-most-once');
  });

  it('a conflict rule that prefers the lower generation: CAS writes lost with no divergent view, generations go backwards', async () => {
    vi.spyOn(SimStore.prototype, 'applyRecordVersion').mockImplementation(async function (this: SimStore, ns: string, version: RecordVersion) {
      const current = this.data.get(ns)!.get(version.digest.toString('hex'));
      if (current !== undefined && version.gen > current.gen) return 'stale';
      (this as unknown as { store(ns: string, hex: string, version: RecordVersion): void }).store(ns, version.digest.toString('hex'), version);
      return 'applied';
    });
    const result = await runScenario('full', { seed: 2, faultMs: 10_000 });
    const failed = result.checks.filter((check) => !check.passed).map((check) => check.name);
    expect(failed).toContain('generations-monotonic');
    expect(failed).toContain('registers-no-unadmitted-loss');
  });
});
