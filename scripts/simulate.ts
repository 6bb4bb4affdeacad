/**
 * `npm run simulate -- --seed N --ticks T`: runs the seeded fault scenarios of
 * sim/scenarios.ts (the schedules and checkers test/cluster-faults.test.ts runs).
 *
 *   --seed N          one seed (default 1)
 *   --seeds A..B      every seed from A to B inclusive (or a list: 1,5,9)
 *   --ticks T         simulated ms of faults per scenario, at least (default 0: 20 s for full,
 *                     one episode for split and crash)
 *   --nodes N         cluster size (default 5)
 *   --scenario S      full, split, crash, a comma-separated list, or all (default full); or xdr:
 *                     two clusters active-active under cross-cluster faults and clock skew
 *                     (sim/xdr-simulation.ts; --clusters 3 for a full mesh of three), which
 *                     prints each seed's conflicts and the conflict rate over all seeds
 *   --trace-messages  hash every message's bytes into the trace digest too
 *   --json            one JSON object per seed instead of text
 *
 * Prints per seed pass/fail, simulated seconds, wall seconds, simulated seconds per wall
 * second and the trace digest (equal digests: identical runs); a failing seed prints which
 * checkers failed and the command that replays it. Exits 1 if any seed fails, 2 on bad arguments.
 */
import type { ScenarioName, ScenarioResult } from '../sim/scenarios';
import { runScenario, SCENARIO_NAMES } from '../sim/scenarios';
import { parseInteger, parseSeeds } from './sim-arguments';
import { runXdrScenario } from '../sim/xdr-simulation';

interface Arguments {
  seeds: number[];
  ticks: number;
  nodes: number;
  scenarios: ScenarioName[];
  json: boolean;
  traceMessages: boolean;
  /** --scenario xdr: the cross-cluster scenario instead (with --clusters). */
  xdr: boolean;
  clusters: number;
}

function parseArguments(argv: string[]): Arguments {
  const parsed: Arguments = { seeds: [1], ticks: 0, nodes: 5, scenarios: ['full'], json: false, traceMessages: false, xdr: false, clusters: 2 };
  for (let index = 0; index < argv.length; index++) {
    const flag = argv[index];
    if (flag === '--json') {
      parsed.json = true;
      continue;
    }
    if (flag === '--trace-messages') {
      parsed.traceMessages = true;
      continue;
    }
    const value = argv[++index];
    if (value === undefined) throw new Error(`${flag}: missing value`);
    const integer = (): number => parseInteger(flag, value);
    if (flag === '--seed') parsed.seeds = [integer()];
    else if (flag === '--seeds') parsed.seeds = parseSeeds(value);
    else if (flag === '--ticks') parsed.ticks = integer();
    else if (flag === '--nodes') parsed.nodes = integer();
    else if (flag === '--clusters') parsed.clusters = integer();
    else if (flag === '--scenario' && value === 'xdr') parsed.xdr = true;
    else if (flag === '--scenario') {
      const names = value === 'all' ? [...SCENARIO_NAMES] : value.split(',');
      for (const name of names) {
        if (!(SCENARIO_NAMES as readonly string[]).includes(name)) throw new Error(`--scenario ${value}: expected ${SCENARIO_NAMES.join(', ')}, a comma-separated list of them, or all`);
      }
      parsed.scenarios = names as ScenarioName[];
    } else throw new Error(`unknown argument ${flag}`);
  }
  if (parsed.nodes < 3) throw new Error('--nodes: at least 3 (the scenarios split the cluster and crash a node)');
  return parsed;
}

/** The command that replays `seed` exactly (same scenarios, ticks and cluster size). */
export function replayCommand(seed: number, options: { ticks: number; nodes: number; scenarios: readonly ScenarioName[]; traceMessages?: boolean }): string {
  let command = `npm run simulate -- --seed ${seed} --ticks ${options.ticks}`;
  if (options.nodes !== 5) command += ` --nodes ${options.nodes}`;
  command += ` --scenario ${options.scenarios.join(',')}`;
  if (options.traceMessages === true) command += ' --trace-messages';
  return command;
}

function describeProblem(result: ScenarioResult): string {
  return result.checks.filter((check) => !check.passed).map((check) => `${result.scenario} ${check.name}: ${check.detail}`).join('\n  ');
}

async function main(): Promise<number> {
  let options: Arguments;
  try {
    options = parseArguments(process.argv.slice(2));
  } catch (error) {
    console.error(`simulate: ${(error as Error).message}`);
    return 2;
  }
  if (options.xdr) return simulateXdr(options);
  const failed: number[] = [];
  let totalSimulatedMs = 0;
  const batchStarted = performance.now();
  for (const seed of options.seeds) {
    const started = performance.now();
    const results: ScenarioResult[] = [];
    for (const scenario of options.scenarios) {
      results.push(await runScenario(scenario, { seed, nodeCount: options.nodes, faultMs: options.ticks, traceMessages: options.traceMessages }));
    }
    const wallSeconds = (performance.now() - started) / 1000;
    const simulatedSeconds = results.reduce((sum, result) => sum + result.simulatedMs, 0) / 1000;
    totalSimulatedMs += simulatedSeconds * 1000;
    const passed = results.every((result) => result.passed);
    if (!passed) failed.push(seed);
    const rate = simulatedSeconds / wallSeconds;
    if (options.json) {
      console.log(JSON.stringify({ seed, passed, simulatedSeconds, wallSeconds, simulatedSecondsPerWallSecond: rate, replay: passed ? undefined : replayCommand(seed, options), scenarios: results }));
      continue;
    }
    const acknowledged = results.map((result) => `${result.scenario} ${result.acknowledged}+${result.registerWrites} acked, trace ${result.trace}`).join(', ');
    console.log(`seed ${seed}: ${passed ? 'pass' : 'FAIL'}  ${simulatedSeconds.toFixed(1)} sim s  ${wallSeconds.toFixed(2)} wall s  ${rate.toFixed(1)} sim s/wall s  (${acknowledged})`);
    if (!passed) {
      for (const result of results.filter((r) => !r.passed)) console.log(`  ${describeProblem(result)}`);
      console.log(`  replay: ${replayCommand(seed, options)}`);
    }
  }
  const batchWallSeconds = (performance.now() - batchStarted) / 1000;
  const summary = `${options.seeds.length - failed.length}/${options.seeds.length} seeds passed, ${(totalSimulatedMs / 1000).toFixed(1)} sim s in ${batchWallSeconds.toFixed(1)} wall s (${(totalSimulatedMs / 1000 / batchWallSeconds).toFixed(1)} sim s/wall s)`;
  if (options.json) console.log(JSON.stringify({ summary: true, seeds: options.seeds.length, failed, simulatedSeconds: totalSimulatedMs / 1000, wallSeconds: batchWallSeconds }));
  else {
    console.log(summary);
    if (failed.length > 0) console.log(`failed seeds: ${failed.join(',')}`);
  }
  return failed.length > 0 ? 1 : 0;
}

/** --scenario xdr: each seed's verdict and conflicts, then the pass count and the conflict rate. */
async function simulateXdr(options: Arguments): Promise<number> {
  const failed: number[] = [];
  let writes = 0;
  let conflicts = 0;
  let losses = 0;
  const started = performance.now();
  for (const seed of options.seeds) {
    const result = await runXdrScenario({ seed, clusters: options.clusters, faultMs: options.ticks === 0 ? undefined : options.ticks });
    writes += result.writes;
    conflicts += result.conflicts;
    losses += result.concurrentLosses;
    if (!result.passed) failed.push(seed);
    if (options.json) {
      console.log(JSON.stringify(result));
      continue;
    }
    console.log(`seed ${seed}: ${result.passed ? 'pass' : 'FAIL'}  ${result.writes} writes, ${result.conflicts} conflicts counted, ${result.concurrentLosses} lost to concurrent writes; skews ${result.skewsMs.join('/')} ms; faults ${Object.entries(result.faults).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    for (const check of result.checks.filter((c) => !c.passed)) console.log(`  xdr ${check.name}: ${check.detail}`);
    if (!result.passed) console.log(`  replay: npm run simulate -- --scenario xdr --seed ${seed}${options.clusters === 2 ? '' : ` --clusters ${options.clusters}`}${options.ticks === 0 ? '' : ` --ticks ${options.ticks}`}`);
  }
  const rate = writes === 0 ? 0 : conflicts / writes;
  const summary = `${options.seeds.length - failed.length}/${options.seeds.length} seeds passed (xdr, ${options.clusters} clusters) in ${((performance.now() - started) / 1000).toFixed(1)} wall s; ${writes} writes, ${conflicts} conflicts counted (conflict rate ${(rate * 100).toFixed(2)} %), ${losses} writes lost to concurrent writes (${((losses / Math.max(1, writes)) * 100).toFixed(2)} %)`;
  if (options.json) console.log(JSON.stringify({ summary: true, seeds: options.seeds.length, failed, writes, conflicts, conflictRate: rate, concurrentLosses: losses }));
  else {
    console.log(summary);
    if (failed.length > 0) console.log(`failed seeds: ${failed.join(',')}`);
  }
  return failed.length > 0 ? 1 : 0;
}

if (require.main === module) main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error('simulate: harness error', error);
    process.exitCode = 3;
  },
);
