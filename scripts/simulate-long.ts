/**
 * `npm run simulate:long`: the long simulation run. Runs many seeds of a fault scenario
 * (default: seeds 1..1000 of `full`, 60 simulated seconds of faults each) on worker processes
 * (default: one per core), each worker taking the next seed as it finishes one.
 *
 *   --seeds A..B      seeds to run (or a list: 1,5,9); default 1..1000
 *   --ticks T         simulated ms of faults per seed, at least (default 60000)
 *   --scenario S      full, split or crash (default full)
 *   --workers N       worker processes (default: available cores)
 *   --out FILE        also write one JSON line per seed (results and trace digests) to FILE
 *
 * Prints progress, every failing seed with its failed checks and the command that replays
 * it, and at the end the totals: seeds passed, simulated seconds, wall seconds, rate.
 * Exits 1 if any seed failed, 2 on bad arguments, 3 if a worker died.
 */
import { fork } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { ScenarioName, ScenarioResult } from '../sim/scenarios';
import { runScenario, SCENARIO_NAMES } from '../sim/scenarios';
import { parseInteger, parseSeeds } from './sim-arguments';

interface LongArguments {
  seeds: number[];
  ticks: number;
  scenario: ScenarioName;
  workers: number;
  out: string | undefined;
}

type WorkerReply = { seed: number; result: ScenarioResult; wallSeconds: number } | { seed: number; error: string };

function parseArguments(argv: string[]): LongArguments {
  const parsed: LongArguments = { seeds: parseSeeds('1..1000'), ticks: 60_000, scenario: 'full', workers: availableParallelism(), out: undefined };
  for (let index = 0; index < argv.length; index += 2) {
    const [flag, value] = [argv[index], argv[index + 1]];
    if (value === undefined) throw new Error(`${flag}: missing value`);
    const integer = (): number => parseInteger(flag, value);
    if (flag === '--seeds') parsed.seeds = parseSeeds(value);
    else if (flag === '--ticks') parsed.ticks = integer();
    else if (flag === '--workers') parsed.workers = Math.max(1, integer());
    else if (flag === '--out') parsed.out = value;
    else if (flag === '--scenario') {
      if (!(SCENARIO_NAMES as readonly string[]).includes(value)) throw new Error(`--scenario ${value}: expected ${SCENARIO_NAMES.join(', ')}`);
      parsed.scenario = value as ScenarioName;
    } else throw new Error(`unknown argument ${flag}`);
  }
  return parsed;
}

/** Worker: runs each seed it is sent and replies with the result. */
function worker(): void {
  process.on('message', (message: { seed: number; ticks: number; scenario: ScenarioName }) => {
    const started = performance.now();
    runScenario(message.scenario, { seed: message.seed, faultMs: message.ticks }).then(
      (result) => process.send!({ seed: message.seed, result, wallSeconds: (performance.now() - started) / 1000 }),
      (error: unknown) => process.send!({ seed: message.seed, error: String((error as Error)?.stack ?? error) }),
    );
  });
}

async function main(): Promise<number> {
  let options: LongArguments;
  try {
    options = parseArguments(process.argv.slice(2));
  } catch (error) {
    console.error(`simulate:long: ${(error as Error).message}`);
    return 2;
  }
  const replay = (seed: number) => `npm run simulate -- --seed ${seed} --ticks ${options.ticks} --scenario ${options.scenario}`;
  const out = options.out === undefined ? undefined : createWriteStream(options.out);
  const queue = [...options.seeds];
  const failed: number[] = [];
  let done = 0;
  let simulatedSeconds = 0;
  let workerDied = false;
  const started = performance.now();
  console.log(`simulate:long: ${options.seeds.length} seeds of ${options.scenario}, ${options.ticks / 1000} simulated s of faults each, ${options.workers} workers`);
  const runWorker = () =>
    new Promise<void>((resolve) => {
      const child = fork(__filename, [], { env: { ...process.env, SHOAL_SIMULATE_WORKER: '1' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const next = () => {
        const seed = queue.shift();
        if (seed === undefined) {
          child.disconnect();
          return;
        }
        child.send({ seed, ticks: options.ticks, scenario: options.scenario });
      };
      child.on('message', (reply: WorkerReply) => {
        done++;
        if ('error' in reply) {
          failed.push(reply.seed);
          console.log(`seed ${reply.seed}: HARNESS ERROR ${reply.error.split('\n')[0]}\n  replay: ${replay(reply.seed)}`);
        } else {
          const { result } = reply;
          simulatedSeconds += result.simulatedMs / 1000;
          out?.write(`${JSON.stringify({ wallSeconds: reply.wallSeconds, ...result })}\n`);
          if (!result.passed) {
            failed.push(reply.seed);
            const problems = result.checks.filter((check) => !check.passed).map((check) => `${check.name}: ${check.detail}`);
            console.log(`seed ${reply.seed}: FAIL\n  ${problems.join('\n  ')}\n  replay: ${replay(reply.seed)}`);
          }
        }
        if (done % 50 === 0) {
          const wall = (performance.now() - started) / 1000;
          console.log(`  ${done}/${options.seeds.length} seeds, ${failed.length} failed, ${wall.toFixed(0)} wall s, ${(simulatedSeconds / wall).toFixed(0)} sim s/wall s`);
        }
        next();
      });
      child.on('exit', (code) => {
        if (code !== 0 && code !== null) workerDied = true;
        resolve();
      });
      next();
    });
  await Promise.all(Array.from({ length: Math.min(options.workers, options.seeds.length) }, runWorker));
  out?.end();
  const wallSeconds = (performance.now() - started) / 1000;
  console.log(
    `${done - failed.length}/${options.seeds.length} seeds passed; ${simulatedSeconds.toFixed(0)} simulated s in ${wallSeconds.toFixed(1)} wall s ` +
      `(${(simulatedSeconds / wallSeconds).toFixed(1)} sim s/wall s over ${options.workers} workers)`,
  );
  if (failed.length > 0) console.log(`failed seeds: ${failed.sort((a, b) => a - b).join(',')}`);
  if (workerDied || done < options.seeds.length) return 3;
  return failed.length > 0 ? 1 : 0;
}

if (process.env.SHOAL_SIMULATE_WORKER === '1') worker();
else
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      console.error('simulate:long: harness error', error);
      process.exitCode = 3;
    },
  );
