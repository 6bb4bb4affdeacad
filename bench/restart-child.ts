/**
 * The restart benchmark's second process (bench/restart.ts). argv: dataDir records mode.
 *  - open: opens the data, reports how it started, checks a sample of records, closes cleanly
 *    (leaving the index in shared memory and a last index checkpoint);
 *  - kill: opens, overwrites `BENCH_RESTART_TAIL` records, takes an index checkpoint, overwrites
 *    as many again (the tail the next start replays), then SIGKILLs itself;
 *  - writes: opens, then BENCH_RESTART_ROUNDS (odd: the first and the last without) rounds of
 *    awaited overwrites (256 in flight) of BENCH_RESTART_ROUND_MS each, alternately without and
 *    with an index checkpoint taken during the round; reports puts/s per round and the longest
 *    event-loop delay seen in it, then SIGKILLs itself (nothing to close). After each batch of
 *    256 the loop yields to the event loop (setImmediate): non-durable puts resolve without
 *    waiting for I/O, so an awaited loop without that yield runs batch after batch in one
 *    event-loop turn and starves timers by itself (measured: 448 ms of event-loop delay with no
 *    batch over 49 ms), which is the loop's doing, not the store's.
 * Reports one JSON line.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { open } from '../lib/index';
import { restartNamespaces, restartValue } from './restart';

const TAIL = Number(process.env.BENCH_RESTART_TAIL ?? 20_000);
const ROUND_MS = Number(process.env.BENCH_RESTART_ROUND_MS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_RESTART_ROUNDS ?? 11);

interface Store {
  checkpointNow(): Promise<boolean>;
  stats(): { lastCheckpointMs: number; lastCheckpointCaptureMs: number };
  checkpoints: { stats: { lastJsPieces: number; lastJsWaits: number; lastJsWaitMaxMs: number } };
}

async function main(): Promise<void> {
  const [dataDir, recordsText, mode] = process.argv.slice(2);
  const records = Number(recordsText);
  const started = performance.now();
  const db = await open({ dataDir: dataDir!, namespaces: restartNamespaces(records), log: () => undefined });
  const wallMs = performance.now() - started;
  const stats = db.stats().namespaces.bench!;
  const report: Record<string, unknown> = { startMode: stats.startMode, startMs: stats.startMs, objects: stats.objects, wallMs, recovery: stats.recovery };
  // The namespace (a RecordCore) → its DeviceRecords → the DeviceStore.
  const store = (db as unknown as { namespaces: Map<string, { store: { store: Store } }> }).namespaces.get('bench')!.store.store;
  let next = 0;
  const overwrite = async (count: number) => {
    for (let done = 0; done < count; done += 256) {
      const writes: Promise<unknown>[] = [];
      for (let i = 0; i < 256; i++) {
        const key = (next++ * 7919) % records;
        writes.push(db.put({ ns: 'bench', set: 'users', key }, restartValue(key)));
      }
      await Promise.all(writes);
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  if (mode === 'open') {
    for (let i = 0; i < records; i += Math.max(1, Math.floor(records / 1000))) {
      const record = await db.get({ ns: 'bench', set: 'users', key: i });
      if (record?.bins.name !== `user-${i}`) throw new Error(`record ${i} is missing or wrong after a ${stats.startMode} start`);
    }
    await db.close();
  } else if (mode === 'kill') {
    await overwrite(TAIL);
    await store.checkpointNow();
    report.checkpointMs = store.stats().lastCheckpointMs;
    report.checkpointCaptureMs = store.stats().lastCheckpointCaptureMs;
    await overwrite(TAIL);
    process.stdout.write(`${JSON.stringify(report)}\n`);
    process.kill(process.pid, 'SIGKILL');
  } else if (mode === 'writes') {
    const rounds: { checkpoint: boolean; putsPerSecond: number; checkpointMs?: number; maxLoopDelayMs: number; p99LoopDelayMs: number; jsWaits?: number; jsWaitMaxMs?: number; jsPieces?: number }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const checkpoint = round % 2 === 1;
      const delay = monitorEventLoopDelay({ resolution: 5 });
      delay.enable();
      const begin = performance.now();
      let written = 0;
      let taken: Promise<boolean> | undefined;
      while (performance.now() - begin < ROUND_MS) {
        if (checkpoint && taken === undefined && performance.now() - begin > ROUND_MS / 4) taken = store.checkpointNow();
        await overwrite(256);
        written += 256;
      }
      if (taken !== undefined) await taken;
      const putsPerSecond = written / ((performance.now() - begin) / 1000);
      delay.disable();
      const image = checkpoint ? store.checkpoints.stats : undefined;
      rounds.push({ checkpoint, putsPerSecond, checkpointMs: checkpoint ? store.stats().lastCheckpointMs : undefined, maxLoopDelayMs: delay.max / 1e6, p99LoopDelayMs: delay.percentile(99) / 1e6, jsWaits: image?.lastJsWaits, jsWaitMaxMs: image?.lastJsWaitMaxMs, jsPieces: image?.lastJsPieces });
    }
    report.rounds = rounds;
    report.deviceFreePct = db.stats().namespaces.bench!.deviceFreePct;
    process.stdout.write(`${JSON.stringify(report)}\n`);
    process.kill(process.pid, 'SIGKILL');
  }
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
