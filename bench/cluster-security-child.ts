/**
 * One node of the cluster-security benchmark (bench/cluster-security.ts): a Db in cluster mode
 * with one memory namespace, configured from argv[2] (JSON: nodeId, dataDir, seeds, and the
 * security options). Prints `{ ready, address }`, then answers JSON-line commands on stdin:
 * `{ op: 'state' }`, `{ op: 'cpu' }` (this process's CPU time so far, µs) and
 * `{ op: 'measure', count, operation }`, which times `count` sequential puts of fresh keys
 * another node masters (one proxy hop each), or gets of the keys last put, and answers the
 * latencies in µs.
 */
import * as readline from 'node:readline';
import type { ClusterNode } from '../lib/cluster/index';
import { partitionOf } from '../lib/cluster/index';
import { digestOfKey } from '../lib/db-cluster';
import { open } from '../lib/index';

interface Config {
  nodeId: string;
  dataDir: string;
  seeds: string[];
  cluster: Record<string, unknown>;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2]!) as Config;
  const db = await open({
    dataDir: config.dataDir,
    sharedMemoryIndex: false,
    namespaces: [{ name: 'bench', storage: { type: 'memory', maxBytes: 256 << 20 } }],
    cluster: { nodeId: config.nodeId, listen: { host: '127.0.0.1', port: 0 }, seeds: config.seeds, ...config.cluster },
    log: () => undefined,
  });
  // The benchmark needs to know which keys another node masters: the Db's node, not its public facade.
  const node = (db as unknown as { clusterNode: ClusterNode }).clusterNode;
  let next = 0;
  let lastKeys: { ns: string; set: string; key: string }[] = [];
  const remoteKeys = (count: number) => {
    const keys: { ns: string; set: string; key: string }[] = [];
    while (keys.length < count) {
      const key = { ns: 'bench', set: 's', key: `${config.nodeId}-${next++}` };
      if (node.masterOf(partitionOf(digestOfKey(key))) !== config.nodeId) keys.push(key);
    }
    return keys;
  };
  const commands: Record<string, (command: Record<string, unknown>) => Promise<unknown>> = {
    state: async () => ({ ...db.cluster!.state(), settled: node.migrationsSettledClusterWide() }),
    cpu: async () => {
      const usage = process.cpuUsage();
      return usage.user + usage.system;
    },
    measure: async (command) => {
      if (command.operation === 'put') lastKeys = remoteKeys(command.count as number);
      const latencies: number[] = [];
      for (const key of lastKeys) {
        const started = process.hrtime.bigint();
        if (command.operation === 'put') await db.put(key, { v: 1, text: 'a value of about sixty bytes, as a small record has' });
        else await db.get(key);
        latencies.push(Number(process.hrtime.bigint() - started) / 1e3);
      }
      return latencies;
    },
    close: async () => {
      await db.close();
      setTimeout(() => process.exit(0), 20);
    },
  };
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    const command = JSON.parse(line) as { id: number; op: string };
    commands[command.op]!(command).then(
      (value) => process.stdout.write(`${JSON.stringify({ id: command.id, ok: true, value })}\n`),
      (error: Error) => process.stdout.write(`${JSON.stringify({ id: command.id, ok: false, message: error.message })}\n`),
    );
  });
  process.stdin.on('end', () => process.exit(0));
  process.stdout.write(`${JSON.stringify({ ready: true, address: db.cluster!.address })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`cluster-security bench child failed: ${(error as Error).stack}\n`);
  process.exit(1);
});
