/**
 * One application process embedding a Shoal cluster node, driven by its parent over IPC
 * (examples/replace-cluster.ts). Messages in: { id, op, ... }; replies: { id, ok, value | error }.
 */
import { open, type Db } from '../lib/index';

interface Command {
  id: number;
  op: 'put' | 'get' | 'state' | 'quiesce' | 'recluster' | 'wait' | 'load' | 'stop-load' | 'close';
  [field: string]: unknown;
}

let db: Db;
let loading = false;
const load = { acknowledged: [] as number[], errors: [] as string[] };

async function startLoad(from: number, count: number): Promise<void> {
  loading = true;
  for (let i = 0; loading; i = (i + 1) % count) {
    const key = from + i;
    try {
      await db.put({ ns: 'app', set: 'load', key }, { key, at: Date.now() });
      load.acknowledged.push(key);
      const record = await db.get({ ns: 'app', set: 'load', key });
      if (record?.bins.key !== key) load.errors.push(`read-back of ${key} returned ${JSON.stringify(record?.bins)}`);
    } catch (error) {
      load.errors.push(`${key}: ${(error as Error).message}`);
    }
    if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function handle(command: Command): Promise<unknown> {
  switch (command.op) {
    case 'put':
      for (let key = command.from as number; key < (command.to as number); key++) {
        await db.put({ ns: 'app', set: 'base', key }, { key, payload: 'x'.repeat(100) });
      }
      return null;
    case 'get': {
      let missing = 0;
      for (let key = command.from as number; key < (command.to as number); key++) {
        const record = await db.get({ ns: 'app', set: 'base', key });
        if (record?.bins.key !== key) missing++;
      }
      const loadMissing: number[] = [];
      for (const key of (command.loadKeys as number[]) ?? []) {
        if ((await db.get({ ns: 'app', set: 'load', key })) === undefined) loadMissing.push(key);
      }
      return { missing, loadMissing };
    }
    case 'state':
      return { state: db.cluster!.state(), stats: db.stats() };
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
      void startLoad(command.from as number, command.count as number);
      return null;
    case 'stop-load':
      loading = false;
      await new Promise((resolve) => setTimeout(resolve, 50));
      return { acknowledged: [...new Set(load.acknowledged)], errors: load.errors };
    case 'close':
      await db.close({ dropIndex: true });
      setImmediate(() => process.exit(0));
      return null;
  }
}

async function main(): Promise<void> {
  const [nodeId, dataDir, seed] = process.argv.slice(2);
  db = await open({
    dataDir: dataDir!,
    namespaces: [{ name: 'app', storage: { type: 'memory', maxBytes: 256 << 20 } }],
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
