/**
 * Cluster-mode batchPut (issue 12's target: at least 200,000 entries/s on 2 and 3 nodes, with
 * the longest event-loop gap). Each node is a child process (bench/cluster-child.ts) on
 * loopback with a memory namespace; node 1 runs batchPut of BENCH_CLUSTER_BATCH entries
 * (default 100,000, ~60-byte bins) BENCH_CLUSTER_ROUNDS times (default 3) after a warm-up,
 * and every node reports its longest event-loop delay over the rounds. A one-node Db in this
 * process runs the same batches first, as the same-run reference.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { open } from '../lib/index';
import { formCluster } from './cluster-nodes';

const BATCH = Number(process.env.BENCH_CLUSTER_BATCH ?? 100_000);
const ROUNDS = Number(process.env.BENCH_CLUSTER_ROUNDS ?? 3);
const TARGET_ENTRIES_PER_SECOND = 200_000;

function entries(from: number) {
  return Array.from({ length: BATCH }, (_, i) => ({ key: { ns: 'bench', set: 's', key: from + i }, bins: { v: from + i, name: `user-${from + i}`, city: 'Lisbon' } }));
}

/** The one-node rate of the same batches, in this process. */
async function singleNode(dir: string): Promise<{ best: number; cpuUsPerEntry: number }> {
  const db = await open({ dataDir: path.join(dir, 'single'), sharedMemoryIndex: false, namespaces: [{ name: 'bench', storage: { type: 'memory', maxBytes: 1 << 30 } }] });
  await db.batchPut(entries(0));
  let best = 0;
  let cpuUs = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    const batch = entries(round * BATCH);
    const cpu = process.cpuUsage();
    const started = performance.now();
    await db.batchPut(batch);
    best = Math.max(best, BATCH / ((performance.now() - started) / 1000));
    const used = process.cpuUsage(cpu);
    cpuUs += used.user + used.system;
  }
  await db.close({ dropIndex: true });
  return { best, cpuUsPerEntry: cpuUs / (ROUNDS * BATCH) };
}

async function cluster(size: number, dir: string): Promise<{ best: number; median: number; failed: number; lag: number[]; cpuUsPerEntry: number; copies: number; expectedCopies: number; gc: { young: number; other: number; ms: number }; coordinatorCpuMs: number }> {
  const nodes = await formCluster(size, dir, String(size));
  try {
    await nodes[0]!.call('batchPut', { from: 0, count: BATCH });
    await Promise.all(nodes.map((node) => node.call('lag')));
    const rates: number[] = [];
    let failed = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      const outcome = await nodes[0]!.call('batchPut', { from: round * BATCH, count: BATCH });
      rates.push(BATCH / (outcome.ms / 1000));
      failed += outcome.failed;
    }
    const marks = await Promise.all(nodes.map((node) => node.call('lag')));
    const lag = marks.map((l) => l.maxMs);
    // The coordinator's garbage collections over the rounds: their count follows what it
    // allocates (a young collection per filled young generation), whatever the machine's load.
    const gc = marks[0]!.gc as { young: number; other: number; ms: number };
    const coordinatorCpuMs = marks[0]!.cpuMs as number;
    // RF 2: every acknowledged entry is on two nodes (master and replica), so the copies add up.
    const copies = (await Promise.all(nodes.map((node) => node.call('objects')))).reduce((sum: number, n: number) => sum + n, 0);
    const expectedCopies = 2 * (ROUNDS + 1) * BATCH;
    // CPU of every node over the rounds, per entry written.
    const cpuUsPerEntry = (marks.reduce((sum, mark) => sum + mark.cpuMs, 0) * 1000) / (ROUNDS * BATCH);
    rates.sort((a, b) => a - b);
    return { best: rates[rates.length - 1]!, median: rates[rates.length >> 1]!, failed, lag, cpuUsPerEntry, copies, expectedCopies, gc, coordinatorCpuMs };
  } finally {
    // A profiled child writes its profile only when it exits on its own.
    if (process.env.BENCH_CPU_PROFILE_DIR !== undefined) {
      const exited = nodes.map((node) => new Promise((resolve) => node.process.once('exit', resolve)));
      for (const node of nodes) void node.call('close');
      await Promise.race([Promise.all(exited), new Promise((resolve) => setTimeout(resolve, 20_000))]);
    }
    for (const node of nodes) node.process.kill('SIGKILL');
  }
}

export async function runClusterBench(): Promise<boolean> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-cluster-'));
  let met = true;
  try {
    process.stdout.write(`\ncluster-mode batchPut: ${ROUNDS} rounds of ${BATCH.toLocaleString('en-US')} entries from node 1 (loopback, memory namespaces, RF 2)\n`);
    const reference = await singleNode(dir);
    const single = reference.best;
    process.stdout.write(`  one node (same batches, reference)   ${Math.round(single).toLocaleString('en-US').padStart(10)} entries/s, ${reference.cpuUsPerEntry.toFixed(1)} µs CPU per entry\n`);
    for (const size of [2, 3]) {
      const result = await cluster(size, dir);
      const ok = result.best >= TARGET_ENTRIES_PER_SECOND && result.failed === 0 && result.copies === result.expectedCopies;
      met &&= ok;
      process.stdout.write(
        `  ${size} nodes: best ${Math.round(result.best).toLocaleString('en-US')} entries/s, median ${Math.round(result.median).toLocaleString('en-US')} (${(result.best / single).toFixed(2)}× one node), ${result.failed} failed, longest event-loop delay ${result.lag.map((ms) => ms.toFixed(0)).join(' / ')} ms, ${result.cpuUsPerEntry.toFixed(1)} µs CPU per entry over all nodes (node 1: ${((result.coordinatorCpuMs * 1000) / (ROUNDS * BATCH)).toFixed(1)} µs, ${Math.round((result.gc.young * 100_000) / (ROUNDS * BATCH))} young + ${Math.round((result.gc.other * 100_000) / (ROUNDS * BATCH))} other collections per 100,000 entries, GC pauses ${((100 * result.gc.ms) / result.coordinatorCpuMs).toFixed(0)}% of its CPU time), ${result.copies.toLocaleString('en-US')} of ${result.expectedCopies.toLocaleString('en-US')} copies stored (target ≥ ${TARGET_ENTRIES_PER_SECOND.toLocaleString('en-US')}/s) ${ok ? 'MET' : 'NOT MET'}\n`,
      );
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return met;
}

if (require.main === module) void runClusterBench();
