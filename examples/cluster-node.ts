/**
 * One application process embedding a Shoal cluster node, driven by its parent over IPC
 * (examples/replace-cluster.ts). Messages in: { id, op, ... }; replies: { id, ok, value | error }.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { open, type Db } from '../lib/index';

interface Command {
  id: number;
  op: 'put' | 'get' | 'state' | 'lag' | 'quiesce' | 'recluster' | 'wait' | 'load' | 'stop-load' | 'close';
  [field: string]: unknown;
}

/** Records per batchPut or batchGet call while loading or verifying the data set. */
const BATCH_RECORDS = 10_000;

let db: Db;
let loading = false;
let loadDone: Promise<void> = Promise.resolve();
const load = { acknowledged: [] as number[], errors: [] as string[], hidden: [] as string[] };
/** This process's event-loop delay, sampled every 10 ms; the parent reads and resets it per phase. */
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

/** A client: writes `count` keys round and round, reading each back at once (read-your-writes). */
async function startLoad(from: number, count: number): Promise<void> {
  loading = true;
  for (let i = 0; loading; i = (i + 1) % count) {
    const key = from + i;
    try {
      await db.put({ ns: 'app', set: 'load', key }, { key, at: Date.now() });
      load.acknowledged.push(key);
      const record = await db.get({ ns: 'app', set: 'load', key });
      if (record?.bins.key !== key) load.hidden.push(`read-back of ${key} returned ${JSON.stringify(record?.bins)}`);
    } catch (error) {
      load.errors.push(`${key}: ${(error as Error).message}`);
    }
    if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Writes records from..to (exclusive) with batchPut; resolves to how many failed (with the first errors). */
async function putRange(from: number, to: number): Promise<{ failed: number; errors: string[] }> {
  let failed = 0;
  const errors: string[] = [];
  for (let start = from; start < to; start += BATCH_RECORDS) {
    const end = Math.min(to, start + BATCH_RECORDS);
    const entries = Array.from({ length: end - start }, (_, k) => ({ key: { ns: 'app', set: 'base', key: start + k }, bins: { key: start + k, payload: 'x'.repeat(100) } }));
    for (const result of await db.batchPut(entries)) {
      if (!(result instanceof Error)) continue;
      failed++;
      if (errors.length < 5) errors.push(result.message);
    }
  }
  return { failed, errors };
}

/** Reads records from..to back with batchGet and the load keys one by one; counts what is missing. */
async function verify(from: number, to: number, loadKeys: number[]): Promise<{ missing: number; loadMissing: number[] }> {
  let missing = 0;
  for (let start = from; start < to; start += BATCH_RECORDS) {
    const end = Math.min(to, start + BATCH_RECORDS);
    const records = await db.batchGet(Array.from({ length: end - start }, (_, k) => ({ ns: 'app', set: 'base', key: start + k })));
    records.forEach((record, k) => {
      if (record?.bins.key !== start + k) missing++;
    });
  }
  const loadMissing: number[] = [];
  for (let start = 0; start < loadKeys.length; start += BATCH_RECORDS) {
    const keys = loadKeys.slice(start, start + BATCH_RECORDS);
    const records = await db.batchGet(keys.map((key) => ({ ns: 'app', set: 'load', key })));
    records.forEach((record, k) => {
      if (record === undefined) loadMissing.push(keys[k]!);
    });
  }
  return { missing, loadMissing };
}

async function handle(command: Command): Promise<unknown> {
  switch (command.op) {
    case 'put':
      return putRange(command.from as number, command.to as number);
    case 'get':
      return verify(command.from as number, command.to as number, (command.loadKeys as number[]) ?? []);
    case 'state':
      return { state: db.cluster!.state(), stats: db.stats() };
    case 'lag': {
      const maxMs = loopDelay.max / 1e6;
      loopDelay.reset();
      return { maxMs };
    }
    case 'quiesce':
      db.cluster!.quiesce();
      return null;
    case 'recluster':
      db.cluster!.recluster();
      return null;
    case 'wait':
      await db.cluster!.waitForMigrations({ timeoutMs: command.timeoutMs as number });
      return null;
    case 'load':
      loadDone = startLoad(command.from as number, command.count as number);
      return null;
    case 'stop-load':
      loading = false;
      await loadDone;
      return { acknowledged: [...new Set(load.acknowledged)], errors: load.errors, hidden: load.hidden };
    case 'close':
      await db.close({ dropIndex: true });
      setImmediate(() => process.exit(0));
      return null;
  }
}

async function main(): Promise<void> {
  const [nodeId, dataDir, seed, memoryMiB] = process.argv.slice(2);
  db = await open({
    dataDir: dataDir!,
    namespaces: [{ name: 'app', storage: { type: 'memory', maxBytes: Number(memoryMiB || 256) << 20 } }],
    cluster: { nodeId: nodeId!, listen: { host: '127.0.0.1', port: 0 }, seeds: seed ? [seed] : [], heartbeatIntervalMs: 100 },
    log: (message) => process.stderr.write(`[${nodeId}] ${message}\n`),
  });
  process.on('message', (command: Command) => {
    handle(command).then(
      (value) => process.send!({ id: command.id, ok: true, value }),
      (error: Error) => process.send!({ id: command.id, ok: false, error: `${error.name}: ${error.message}` }),
    );
  });
  process.send!({ ready: true, address: db.cluster!.address });
}

main().catch((error: unknown) => {
  process.stderr.write(`cluster node failed: ${String(error)}\n`);
  process.exit(1);
});
