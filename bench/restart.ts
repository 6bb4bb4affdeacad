/**
 * Warm restart vs cold start (issue 4's targets: warm open under 1 s for 10M records, at
 * least 20× faster than a cold start, at most 64 bytes of index per record).
 *
 * Writes BENCH_RESTART_RECORDS records (default 10M, ~100-byte bins) to a device namespace,
 * closes cleanly, then opens the same data in a new process twice: once warm (attaching to
 * the shared-memory index) and once cold (after the index segments are removed, so the
 * devices are scanned). Index bytes per record are measured from the blocks the index's
 * segments occupy in /dev/shm.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { open, type NamespaceOptions } from '../lib/index';
import { segmentBaseName } from '../lib/namespace/index-segments';
import { addon } from '../lib/native/addon';

const RECORDS = Number(process.env.BENCH_RESTART_RECORDS ?? 10_000_000);
const IN_FLIGHT = 2048;

export function restartNamespaces(records: number): NamespaceOptions[] {
  const sizeBytes = Math.max(256 << 20, Math.ceil((records * 220) / (1 << 20)) * (1 << 20));  // not << 20: past 2 GiB it overflows to negative
  return [{ name: 'bench', storage: { type: 'device', paths: ['bench.dat'], sizeBytes } }];
}

function value(i: number) {
  return { name: `user-${i}`, email: `user${i}@example.com`, visits: i % 977, city: 'Lisbon', tags: ['a', 'b', 'c'] };
}

/** Bytes the namespace's index segments occupy in /dev/shm (allocated blocks, not sizes). */
function indexSegmentBytes(dataDir: string): number {
  const base = segmentBaseName(dataDir, 'bench').slice(1);
  let bytes = 0;
  for (const name of fs.readdirSync('/dev/shm')) {
    if (name.startsWith(`${base}.`)) bytes += fs.statSync(path.join('/dev/shm', name)).blocks * 512;
  }
  return bytes;
}

function openInChild(dataDir: string): { startMode: string; startMs: number; objects: number; wallMs: number } {
  const child = spawnSync(process.execPath, [path.join(__dirname, 'restart-child.js'), dataDir, String(RECORDS)], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (child.status !== 0) throw new Error(`restart child failed: ${child.stderr}`);
  const lines = child.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!);
}

export async function runRestartBench(): Promise<boolean> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-restart-'));
  process.stdout.write(`\nWarm restart vs cold start: writing ${RECORDS.toLocaleString('en-US')} records...\n`);
  try {
    const db = await open({ dataDir, namespaces: restartNamespaces(RECORDS), log: () => undefined });
    const started = performance.now();
    for (let base = 0; base < RECORDS; base += IN_FLIGHT) {
      const writes: Promise<unknown>[] = [];
      for (let i = base; i < Math.min(RECORDS, base + IN_FLIGHT); i++) writes.push(db.put({ ns: 'bench', set: 'users', key: i }, value(i)));
      await Promise.all(writes);
    }
    const writeMs = performance.now() - started;
    const indexBytes = indexSegmentBytes(dataDir);
    await db.close();
    process.stdout.write(`  wrote in ${(writeMs / 1000).toFixed(1)} s (${Math.round(RECORDS / (writeMs / 1000)).toLocaleString('en-US')} puts/s)\n`);

    const warm = openInChild(dataDir);
    addon().unlinkIndexSegments(segmentBaseName(dataDir, 'bench'));
    const cold = openInChild(dataDir);
    const perRecord = indexBytes / RECORDS;
    const speedup = cold.startMs / warm.startMs;
    process.stdout.write(`  warm open (new process): ${warm.startMode}, ${warm.startMs.toFixed(1)} ms, ${warm.objects.toLocaleString('en-US')} records\n`);
    process.stdout.write(`  cold open (new process): ${cold.startMode}, ${cold.startMs.toFixed(1)} ms, ${cold.objects.toLocaleString('en-US')} records\n`);
    process.stdout.write(`  index in /dev/shm: ${(indexBytes / (1 << 20)).toFixed(1)} MiB = ${perRecord.toFixed(1)} bytes per record\n`);
    const warmMet = warm.startMode === 'warm' && warm.startMs < 1000;
    const speedMet = speedup >= 20;
    const bytesMet = perRecord <= 64;
    process.stdout.write(`  warm open < 1 s: ${warmMet ? 'MET' : 'NOT MET'}\n`);
    process.stdout.write(`  warm ${speedup.toFixed(0)}× faster than cold (target ≥ 20×): ${speedMet ? 'MET' : 'NOT MET'}\n`);
    process.stdout.write(`  index bytes per record ≤ 64: ${bytesMet ? 'MET' : 'NOT MET'}\n`);
    return warmMet && speedMet && bytesMet && warm.objects === RECORDS && cold.objects === RECORDS;
  } finally {
    addon().unlinkIndexSegments(segmentBaseName(dataDir, 'bench'));
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
