/**
 * Cluster throughput against Redis Cluster (issue 18): a 3-node Shoal cluster (child
 * processes, memory namespaces, RF 2, each node's own load with BENCH_CLUSTER_IN_FLIGHT
 * requests in flight, default 256) against a Redis Cluster of 3 masters and 3 replicas
 * driven by ioredis from 3 client processes with the same concurrency each. Puts first (random
 * keys below BENCH_CLUSTER_KEYS, default 100,000), then gets, BENCH_TIME_MS each (default
 * 5,000). Without redis-server on PATH the Redis rows are skipped with a message
 * (`apt-get install redis-server`). Targets: at least 2.5× issue 18's measured 39k puts/s and
 * 102k gets/s, and ahead of Redis Cluster. On one machine both clusters share its cores with
 * their clients.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { type BenchNode, formCluster } from './cluster-nodes';
import { redisAvailable, startRedisCluster } from './redis-cluster';

const run = promisify(execFile);
const IN_FLIGHT = Number(process.env.BENCH_CLUSTER_IN_FLIGHT ?? 256);
const KEYS = Number(process.env.BENCH_CLUSTER_KEYS ?? 100_000);
const DURATION_MS = Number(process.env.BENCH_TIME_MS ?? 5_000);
const NODES = 3;
/** Issue 18's figures for main before it (3 nodes, RF 2, 256 in flight per node), and its factor. */
const BASELINE = { put: 39_000, get: 102_000 };
const TARGET_FACTOR = 2.5;

type Kind = 'put' | 'get';
interface LoadResult {
  opsPerSecond: number;
  errors: number;
  p50Us: number;
  p99Us: number;
}

/** Sums the rates of the processes' loads; latencies are the worst process's. */
function combine(results: LoadResult[]): LoadResult {
  return {
    opsPerSecond: results.reduce((sum, r) => sum + r.opsPerSecond, 0),
    errors: results.reduce((sum, r) => sum + r.errors, 0),
    p50Us: Math.max(...results.map((r) => r.p50Us)),
    p99Us: Math.max(...results.map((r) => r.p99Us)),
  };
}

async function shoalLoad(nodes: BenchNode[], kind: Kind): Promise<LoadResult> {
  return combine(await Promise.all(nodes.map((node) => node.call('load', { kind, inFlight: IN_FLIGHT, durationMs: DURATION_MS, keys: KEYS }))));
}

async function redisLoad(port: number, kind: Kind): Promise<LoadResult> {
  const child = path.join(__dirname, 'redis-load-child.js');
  const outputs = await Promise.all(
    Array.from({ length: NODES }, () => run(process.execPath, [child, String(port), kind, String(IN_FLIGHT), String(DURATION_MS), String(KEYS)], { timeout: DURATION_MS + 60_000 })),
  );
  return combine(outputs.map((output) => JSON.parse(output.stdout) as LoadResult));
}

function row(label: string, result: LoadResult): string {
  const rate = Math.round(result.opsPerSecond).toLocaleString('en-US').padStart(9);
  return `  ${label.padEnd(26)} ${rate}/s  p50 ${(result.p50Us / 1000).toFixed(2)} ms  p99 ${(result.p99Us / 1000).toFixed(2)} ms  ${result.errors} errors\n`;
}

export async function runClusterThroughputBench(): Promise<boolean> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-throughput-'));
  const shoal: Partial<Record<Kind, LoadResult>> = {};
  const redis: Partial<Record<Kind, LoadResult>> = {};
  let met = true;
  try {
    process.stdout.write(`\ncluster throughput: ${NODES} nodes, RF 2, ${IN_FLIGHT} in flight per node, ${KEYS.toLocaleString('en-US')} keys, ${DURATION_MS} ms per phase (loopback, ${os.cpus().length} cores shared by servers and clients)\n`);
    const nodes = await formCluster(NODES, dir, 'throughput');
    try {
      for (const kind of ['put', 'get'] as const) shoal[kind] = await shoalLoad(nodes, kind);
    } finally {
      for (const node of nodes) node.process.kill('SIGKILL');
    }
    if (redisAvailable()) {
      const cluster = await startRedisCluster(fs.mkdtempSync(path.join(dir, 'redis-')));
      try {
        for (const kind of ['put', 'get'] as const) redis[kind] = await redisLoad(cluster.ports[0]!, kind);
      } finally {
        cluster.stop();
      }
    } else {
      process.stdout.write('  Redis Cluster: skipped, redis-server is not on PATH (apt-get install redis-server)\n');
    }
    for (const kind of ['put', 'get'] as const) {
      const ours = shoal[kind]!;
      const theirs = redis[kind];
      process.stdout.write(row(`Shoal ${kind}s`, ours));
      if (theirs !== undefined) process.stdout.write(row(`Redis Cluster ${kind === 'put' ? 'SET' : 'GET'}s`, theirs));
      const target = BASELINE[kind] * TARGET_FACTOR;
      const ahead = theirs === undefined || ours.opsPerSecond > theirs.opsPerSecond;
      const ok = ours.opsPerSecond >= target && ahead && ours.errors === 0;
      met &&= ok;
      const ratio = theirs === undefined ? '' : `, ${(ours.opsPerSecond / theirs.opsPerSecond).toFixed(2)}× Redis Cluster`;
      process.stdout.write(`  ${kind}s: ${(ours.opsPerSecond / BASELINE[kind]).toFixed(2)}× issue 18's ${BASELINE[kind].toLocaleString('en-US')}/s${ratio} (target ≥ ${TARGET_FACTOR}× and ahead) ${ok ? 'MET' : 'NOT MET'}\n`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return met;
}

if (require.main === module) void runClusterThroughputBench();
