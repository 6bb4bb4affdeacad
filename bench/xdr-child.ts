/**
 * One one-node cluster of the XDR bench (bench/xdr.ts), driven over IPC:
 * { id, op, ... } -> { id, ok, value | error }. Ops: batchPut, steady (a write rate for a
 * time), addDestination, waitForShipped, state, close.
 */
import { open } from '../lib/index';

async function main(): Promise<void> {
  const [clusterName, dataDir] = process.argv.slice(2);
  const db = await open({
    dataDir: dataDir!,
    sharedMemoryIndex: false,
    namespaces: [{ name: 'bench', conflictResolution: 'lastUpdateTime', storage: { type: 'memory', maxBytes: 1 << 30 } }],
    cluster: { nodeId: clusterName!, clusterName: clusterName!, listen: { host: '127.0.0.1', port: 0 }, seeds: [] },
    log: (message) => process.stderr.write(`[${clusterName}] ${message}\n`),
  });
  const entries = (from: number, count: number) =>
    Array.from({ length: count }, (_, i) => ({ key: { ns: 'bench', set: 's', key: from + i }, bins: { v: from + i, name: `user-${from + i}`, city: 'Lisbon' } }));
  const ops: Record<string, (command: any) => Promise<unknown>> = {
    batchPut: async (c) => {
      for (let at = 0; at < c.count; at += 10_000) await db.batchPut(entries(c.from + at, Math.min(10_000, c.count - at)));
      return null;
    },
    // c.rate records/s for c.seconds, in batches every 20 ms; returns the lag figures polled each 500 ms.
    steady: async (c) => {
      const perTick = Math.max(1, Math.round(c.rate / 50));
      const polls: { p50: number; p99: number; lagMs: number }[] = [];
      const started = performance.now();
      let written = 0;
      let nextPoll = started + 500;
      while (performance.now() - started < c.seconds * 1000) {
        const due = Math.floor(((performance.now() - started) / 1000) * c.rate);
        if (due > written) {
          const count = Math.min(due - written, perTick * 5);
          await db.batchPut(entries(c.from + written, count));
          written += count;
        }
        if (performance.now() >= nextPoll) {
          const state = db.xdr!.state().destinations.dst!;
          polls.push({ p50: state.lagP50Ms, p99: state.lagP99Ms, lagMs: state.lagMs });
          nextPoll += 500;
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return { written, seconds: (performance.now() - started) / 1000, polls };
    },
    addDestination: async (c) => db.xdr!.addDestination(c.destination),
    waitForShipped: async (c) => db.xdr!.waitForShipped({ timeoutMs: c.timeoutMs }),
    state: async () => db.xdr!.state(),
    objects: async () => db.stats().namespaces.bench!.objects,
    close: async () => {
      await db.close({ dropIndex: true });
      setImmediate(() => process.exit(0));
      return null;
    },
  };
  process.on('message', async (command: { id: number; op: string }) => {
    try {
      process.send!({ id: command.id, ok: true, value: await ops[command.op]!(command) });
    } catch (error) {
      process.send!({ id: command.id, ok: false, error: String(error) });
    }
  });
  process.send!({ ready: true, address: db.cluster!.address });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
