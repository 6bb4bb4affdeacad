#!/usr/bin/env node
/**
 * The long randomized crash loop (opt-in, not part of `npm test`): runs the public-API crash
 * test (test/crash-device-namespace.test.ts) with many more SIGKILLs, each at a random moment
 * of a child writing, removing and checkpointing, and checks after every kill that each durable
 * acknowledgement is there, nothing removed came back, and that a child which checkpointed
 * restarts 'recovered'. Then the restart-recovery attack cases (kills during a checkpoint,
 * defragmentation and a truncate) once more.
 *
 *   npm run build && npm run crash-loop                      # 400 kills, at most 20 minutes
 *   SHOAL_CRASH_KILLS=2000 SHOAL_CRASH_BUDGET_MS=3600000 npm run crash-loop
 *   SHOAL_CRASH_SEED=123 npm run crash-loop                  # replays a seed the loop printed
 *
 * Exits with vitest's status.
 */
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const env = {
  ...process.env,
  SHOAL_CRASH_KILLS: process.env.SHOAL_CRASH_KILLS ?? '400',
  SHOAL_CRASH_BUDGET_MS: process.env.SHOAL_CRASH_BUDGET_MS ?? String(20 * 60_000),
};
console.log(`crash loop: up to ${env.SHOAL_CRASH_KILLS} kills within ${Math.round(Number(env.SHOAL_CRASH_BUDGET_MS) / 1000)} s`);
const vitest = path.join(root, 'node_modules', '.bin', 'vitest');
const run = spawnSync(vitest, ['run', 'test/crash-device-namespace.test.ts', 'test/restart-recovery.test.ts'], { cwd: root, env, stdio: 'inherit' });
process.exit(run.status ?? 1);
