/**
 * Cross-cluster shipping (docs/xdr.md; issue 20's targets: at least 50,000 records/s shipped
 * per node on loopback, p99 lag at most 1 s at half that load). Two one-node clusters, each a
 * child process (bench/xdr-child.ts) with a memory namespace:
 *
 * - burst: the source batchPuts BENCH_XDR_RECORDS (default 100,000) records while shipping;
 *   records/s from the first write until waitForShipped resolves;
 * - steady: the source writes BENCH_XDR_RATE records/s (default 25,000) for BENCH_XDR_SECONDS
 *   (default 10); the shipper's lag p50/p99 (write seen to applied at the destination) polled
 *   every 500 ms;
 * - rewind: a second destination added with rewind 'all' to a source holding the records;
 *   records/s until it has them all.
 *
 * As the reference of the same run, the source's own batchPut rate with no destination.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type BenchNode, startChild } from './cluster-nodes';

const RECORDS = Number(process.env.BENCH_XDR_RECORDS ?? 100_000);
const RATE = Number(process.env.BENCH_XDR_RATE ?? 25_000);
const SECONDS = Number(process.env.BENCH_XDR_SECONDS ?? 10);
const TARGET_RECORDS_PER_SECOND = 50_000;
const TARGET_P99_LAG_MS = 1_000;

type Node = BenchNode;

function startNode(name: string, dataDir: string): Promise<Node> {
  return startChild('xdr-child.js', [name, dataDir]);
}

const destination = (name: string, node: Node, rewind: 'all' | 'none') => ({ name, clusterName: name, seeds: [node.address], namespaces: ['bench'], rewind });

export async function runXdrBench(): Promise<boolean> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-xdr-'));
  const nodes: Node[] = [];
  try {
    const source = await startNode('src', path.join(dir, 'src'));
    nodes.push(source);
    const dst = await startNode('dst', path.join(dir, 'dst'));
    nodes.push(dst);
    const rewound = await startNode('rewound', path.join(dir, 'rewound'));
    nodes.push(rewound);
    process.stdout.write(`\nxdr (one-node clusters on loopback; ${os.cpus().length} cores, shared with whatever else runs: compare with the reference line)\n`);
    let started = performance.now();
    await source.call('batchPut', { from: 10_000_000, count: RECORDS });
    const referenceRate = RECORDS / ((performance.now() - started) / 1000);
    process.stdout.write(`  reference: batchPut with no destination        ${Math.round(referenceRate).toLocaleString('en-US').padStart(9)} records/s\n`);
    await source.call('addDestination', { destination: destination('dst', dst, 'none') });
    started = performance.now();
    await source.call('batchPut', { from: 0, count: RECORDS });
    await source.call('waitForShipped', { timeoutMs: 600_000 });
    const burstRate = RECORDS / ((performance.now() - started) / 1000);
    process.stdout.write(`  burst: ${RECORDS.toLocaleString('en-US')} records written and shipped  ${Math.round(burstRate).toLocaleString('en-US').padStart(9)} records/s (${(burstRate / referenceRate).toFixed(2)} of the reference) ${burstRate >= TARGET_RECORDS_PER_SECOND ? 'MET' : 'NOT MET'} (target ${TARGET_RECORDS_PER_SECOND.toLocaleString('en-US')})\n`);
    const steady = await source.call('steady', { from: 1_000_000, rate: RATE, seconds: SECONDS });
    await source.call('waitForShipped', { timeoutMs: 600_000 });
    const p50 = Math.max(...steady.polls.map((p: { p50: number }) => p.p50));
    const p99 = Math.max(...steady.polls.map((p: { p99: number }) => p.p99));
    process.stdout.write(`  steady: ${Math.round(steady.written / steady.seconds).toLocaleString('en-US')} records/s for ${steady.seconds.toFixed(1)} s: lag p50 ${p50} ms, p99 ${p99} ms (worst of ${steady.polls.length} polls) ${p99 <= TARGET_P99_LAG_MS ? 'MET' : 'NOT MET'} (target p99 <= ${TARGET_P99_LAG_MS} ms at ${RATE.toLocaleString('en-US')}/s)\n`);
    const held = await source.call('objects');
    started = performance.now();
    await source.call('addDestination', { destination: destination('rewound', rewound, 'all') });
    await source.call('waitForShipped', { timeoutMs: 600_000 });
    const rewindRate = held / ((performance.now() - started) / 1000);
    const copied = await rewound.call('objects');
    process.stdout.write(`  rewind: ${held.toLocaleString('en-US')} records to a new destination  ${Math.round(rewindRate).toLocaleString('en-US').padStart(9)} records/s (it holds ${copied.toLocaleString('en-US')})\n`);
    return burstRate >= TARGET_RECORDS_PER_SECOND && p99 <= TARGET_P99_LAG_MS && copied === held;
  } finally {
    // With BENCH_CPU_PROFILE_DIR a child writes its profile only when it exits by itself.
    if (process.env.BENCH_CPU_PROFILE_DIR !== undefined) await Promise.all(nodes.map((node) => Promise.race([node.call('close').catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 10_000))])));
    for (const node of nodes) node.process.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
