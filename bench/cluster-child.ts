/**
 * One cluster node of the cluster batchPut bench (bench/cluster.ts), driven over IPC:
 * { id, op: 'state' | 'batchPut' | 'objects' | 'load' | 'lag' | 'close', ... } -> { id, ok, value | error }.
 * Also the Shoal side of the cluster throughput bench (bench/cluster-throughput.ts): `load`.
 */
import { PerformanceObserver, constants as perfConstants, monitorEventLoopDelay } from 'node:perf_hooks';
import { open, type Db } from '../lib/index';

const loopDelay = monitorEventLoopDelay({ resolution: 10 });
/** Bench entries made per turn of the event loop. */
const ENTRIES_PER_SLICE = 5_000;
loopDelay.enable();
let cpuMark = process.cpuUsage();
/** Garbage collections since the last `lag`: young-generation (scavenge) and the others, and their time. */
const collections = { young: 0, other: 0, ms: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = (entry as { detail?: { kind?: number } }).detail?.kind;
    if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) collections.young++;
    else collections.other++;
    collections.ms += entry.duration;
  }
}).observe({ entryTypes: ['gc'] });

/**
 * `inFlight` workers issuing puts or gets of random keys below `keys` for `durationMs`.
 * Returns the operations completed, the errors and the latency percentiles in µs.
 */
async function load(db: Db, kind: 'put' | 'get', inFlight: number, durationMs: number, keys: number) {
  const latenciesUs: number[] = [];
  let errors = 0;
  const end = performance.now() + durationMs;
  const worker = async () => {
    while (performance.now() < end) {
      const i = Math.floor(Math.random() * keys);
      const key = { ns: 'bench', set: 's', key: i };
      const started = performance.now();
      try {
        if (kind === 'put') await db.put(key, { v: i, name: `user-${i}`, city: 'Lisbon' });
        else await db.get(key);
        latenciesUs.push((performance.now() - started) * 1000);
      } catch {
        errors++;
      }
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  const seconds = (performance.now() - started) / 1000;
  latenciesUs.sort((a, b) => a - b);
  const at = (q: number) => latenciesUs[Math.min(latenciesUs.length - 1, Math.floor(q * latenciesUs.length))] ?? 0;
  return { opsPerSecond: latenciesUs.length / seconds, errors, p50Us: at(0.5), p99Us: at(0.99) };
}

async function main(): Promise<void> {
  const [nodeId, dataDir, seed] = process.argv.slice(2);
  const db = await open({
    dataDir: dataDir!,
    sharedMemoryIndex: false,
    namespaces: [{ name: 'bench', storage: { type: 'memory', maxBytes: 1 << 30 } }],
    cluster: { nodeId: nodeId!, listen: { host: '127.0.0.1', port: 0 }, seeds: seed ? [seed] : [] },
    log: (message) => process.stderr.write(`[${nodeId}] ${message}\n`),
  });
  process.on('message', async (command: { id: number; op: string; from?: number; count?: number; kind?: 'put' | 'get'; inFlight?: number; durationMs?: number; keys?: number }) => {
    try {
      let value: unknown = null;
      if (command.op === 'state') value = { ...db.cluster!.state(), settled: await db.cluster!.waitForMigrations({ timeoutMs: 0 }).then(() => true, () => false) };
      else if (command.op === 'lag') {
        // The CPU this process used since the last `lag` (user + system): a figure the other
        // processes on a shared machine do not inflate, as they do wall-clock rates.
        const cpu = process.cpuUsage(cpuMark);
        cpuMark = process.cpuUsage();
        value = { maxMs: loopDelay.max / 1e6, cpuMs: (cpu.user + cpu.system) / 1000, gc: { ...collections } };
        loopDelay.reset();
        collections.young = collections.other = collections.ms = 0;
      } else if (command.op === 'batchPut') {
        const from = command.from!;
        // Built in slices, yielding between them: the longest event-loop delay this process
        // reports is then the library's, not the time the bench took to make 100,000 objects.
        const entries: { key: { ns: string; set: string; key: number }; bins: { v: number; name: string; city: string } }[] = [];
        for (let i = 0; i < command.count!; i++) {
          if (i > 0 && i % ENTRIES_PER_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
          entries.push({ key: { ns: 'bench', set: 's', key: from + i }, bins: { v: from + i, name: `user-${from + i}`, city: 'Lisbon' } });
        }
        const started = performance.now();
        const results = await db.batchPut(entries);
        value = { ms: performance.now() - started, failed: results.filter((r) => r instanceof Error).length };
      } else if (command.op === 'objects') {
        value = db.stats().namespaces.bench!.objects;
      } else if (command.op === 'load') {
        value = await load(db, command.kind!, command.inFlight!, command.durationMs!, command.keys!);
      } else if (command.op === 'close') {
        await db.close({ dropIndex: true });
        setImmediate(() => process.exit(0));
      }
      process.send!({ id: command.id, ok: true, value });
    } catch (error) {
      process.send!({ id: command.id, ok: false, error: String(error) });
    }
  });
  process.send!({ ready: true, address: db.cluster!.address });
}

main().catch((error: unknown) => {
  process.stderr.write(`bench cluster node failed: ${String(error)}\n`);
  process.exit(1);
});
