/**
 * One cluster node of the cluster batchPut bench (bench/cluster.ts), driven over IPC:
 * { id, op: 'state' | 'batchPut' | 'lag' | 'close', ... } -> { id, ok, value | error }.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { open } from '../lib/index';

const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

async function main(): Promise<void> {
  const [nodeId, dataDir, seed] = process.argv.slice(2);
  const db = await open({
    dataDir: dataDir!,
    sharedMemoryIndex: false,
    namespaces: [{ name: 'bench', storage: { type: 'memory', maxBytes: 1 << 30 } }],
    cluster: { nodeId: nodeId!, listen: { host: '127.0.0.1', port: 0 }, seeds: seed ? [seed] : [] },
    log: (message) => process.stderr.write(`[${nodeId}] ${message}\n`),
  });
  process.on('message', async (command: { id: number; op: string; from?: number; count?: number }) => {
    try {
      let value: unknown = null;
      if (command.op === 'state') value = { ...db.cluster!.state(), settled: await db.cluster!.waitForMigrations({ timeoutMs: 0 }).then(() => true, () => false) };
      else if (command.op === 'lag') {
        value = { maxMs: loopDelay.max / 1e6 };
        loopDelay.reset();
      } else if (command.op === 'batchPut') {
        const from = command.from!;
        const entries = Array.from({ length: command.count! }, (_, i) => ({ key: { ns: 'bench', set: 's', key: from + i }, bins: { v: from + i, name: `user-${from + i}`, city: 'Lisbon' } }));
        const started = performance.now();
        const results = await db.batchPut(entries);
        value = { ms: performance.now() - started, failed: results.filter((r) => r instanceof Error).length };
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
