/**
 * The operator CLI's answers around a rebalance, against live nodes with the CLI as a child
 * process: wait-migrations run just after a node joined waits for that rebalance (no false
 * "settled"), the progress bar is drawn only on a terminal and counts the whole cluster,
 * `state` shows a quiesce waiting for a recluster, --help exits 0, and --json is versioned.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { open, type Db } from '../lib/index';
import { runNode } from './helpers/child';
import { cleanupTempDirs, tempDir } from './helpers/temp';

const CLI = path.join(__dirname, '..', 'dist', 'bin', 'shoal.js');
const dbs: Db[] = [];

afterAll(async () => {
  for (const db of dbs) await db.close({ dropIndex: true }).catch(() => undefined);
  cleanupTempDirs(['cache']);
});

async function startNode(nodeId: string, seeds: string[], heartbeatIntervalMs: number): Promise<Db> {
  const db = await open({
    dataDir: tempDir(),
    namespaces: [{ name: 'cache', storage: { type: 'memory', maxBytes: 32 << 20 } }],
    cluster: { nodeId, listen: { host: '127.0.0.1', port: 0 }, seeds, heartbeatIntervalMs },
    log: () => undefined,
  });
  dbs.push(db);
  return db;
}

function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runNode(CLI, args, 30_000);
}

async function until(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface StateJson {
  schemaVersion: number;
  command: string;
  nodeId: string;
  clusterKey: string;
  succession: string[];
  settled: boolean;
  clusterMigrationsRemaining: number;
  pending: { joining: string[]; leaving: string[]; quiesce: string[]; quiesceUndo: string[] };
  namespaces: Record<string, Record<string, unknown>>;
}

describe('shoal CLI around a rebalance', () => {
  it('--help and COMMAND --help exit 0; usage errors still exit 2', async () => {
    const help = await cli('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/usage: shoal <state\|stats/);
    for (const command of ['state', 'wait-migrations', 'quiesce', 'serve']) {
      const own = await cli(command, '--help');
      expect(own.code, command).toBe(0);
      expect(own.stdout, command).toContain(`usage: shoal ${command}`);
    }
    expect((await cli('wait-migrations', '--help')).stdout).toMatch(/--size N/);
    expect((await cli('explode', '127.0.0.1:1')).code).toBe(2);
    expect((await cli('state', '127.0.0.1:1', '--size', '3')).code).toBe(2);
  });

  it('wait-migrations run right after a node joined waits for that rebalance, asked of an old member or of the new node', async () => {
    // A slow heartbeat, so the join takes longer than the CLI takes to start.
    const interval = 1000;
    const a = await startNode('rb-a', [], interval);
    const b = await startNode('rb-b', [a.cluster!.address], interval);
    await until(() => a.stats().clusterSize === 2 && b.stats().clusterSize === 2, 'two nodes');
    for (let i = 0; i < 300; i++) await a.put({ ns: 'cache', key: i }, { i });
    await a.cluster!.waitForMigrations({ timeoutMs: 15_000 });

    const c = await startNode('rb-c', [a.cluster!.address], interval);
    const [fromOld, fromNew] = await Promise.all([
      cli('wait-migrations', a.cluster!.address, '--json', '--timeout-ms', '25000'),
      cli('wait-migrations', c.cluster!.address, '--json', '--timeout-ms', '25000'),
    ]);
    expect(fromOld.code, fromOld.stderr).toBe(0);
    expect(fromNew.code, fromNew.stderr).toBe(0);
    const old = JSON.parse(fromOld.stdout) as StateJson;
    const fresh = JSON.parse(fromNew.stdout) as StateJson;
    // What each CLI saw when it declared the cluster settled: the three-node view, nothing left.
    for (const seen of [old, fresh]) {
      expect(seen.succession.sort()).toEqual(['rb-a', 'rb-b', 'rb-c']);
      expect(seen.schemaVersion).toBe(1);
      expect(seen.command).toBe('wait-migrations');
      expect(seen.settled).toBe(true);
      expect(seen.clusterMigrationsRemaining).toBe(0);
    }
    expect(old.clusterKey).toBe(fresh.clusterKey);
    expect(a.cluster!.state().clusterKey).toBe(old.clusterKey);
    for (const db of [a, b, c]) expect(db.stats().migratePartitionsRemaining).toBe(0);
    // Every record still readable from the new node after the rebalance.
    expect((await c.batchGet(Array.from({ length: 300 }, (_, i) => ({ ns: 'cache', key: i })))).every((r) => r !== undefined)).toBe(true);

    // --size waits for members that are not there yet, and fails at its timeout naming them.
    const short = await cli('wait-migrations', a.cluster!.address, '--size', '4', '--timeout-ms', '1500');
    expect(short.code).toBe(1);
    expect(short.stderr).toMatch(/still running after 1500 ms .*size 3/);
  });

  it('state shows a quiesce waiting for the recluster; --json once per cluster field; the bar is drawn only on a TTY', async () => {
    const a = await startNode('q-a', [], 100);
    const b = await startNode('q-b', [a.cluster!.address], 100);
    await until(() => a.stats().clusterSize === 2 && b.stats().clusterSize === 2, 'two nodes');
    for (let i = 0; i < 100; i++) await a.put({ ns: 'cache', key: i }, { i });
    await a.cluster!.waitForMigrations({ timeoutMs: 15_000 });

    const quiesce = await cli('quiesce', b.cluster!.address);
    expect(quiesce.code, quiesce.stderr).toBe(0);
    expect(quiesce.stdout).toMatch(/pending\s+quiesce q-b \(at the next recluster\)/);
    const text = await cli('state', b.cluster!.address);
    expect(text.stdout).toMatch(/pending\s+quiesce q-b/);
    expect(text.stdout).toMatch(/quiesced\s+\(none\)/);
    const json = JSON.parse((await cli('state', b.cluster!.address, '--json')).stdout) as StateJson;
    expect(json.schemaVersion).toBe(1);
    expect(json.pending.quiesce).toEqual(['q-b']);
    expect(json.settled).toBe(false);
    // The other node hears the flag in b's heartbeats and says so too.
    const fromA = JSON.parse((await cli('state', a.cluster!.address, '--json')).stdout) as StateJson;
    expect(fromA.pending.quiesce).toEqual(['q-b']);
    // Cluster fields are printed once, not inside each namespace.
    expect(json.namespaces.cache!.objects).toBe(100);
    expect(json.namespaces.cache).not.toHaveProperty('clusterKey');
    expect(json.namespaces.cache).not.toHaveProperty('clusterSize');
    const stats = JSON.parse((await cli('stats', a.cluster!.address, '--json')).stdout) as StateJson;
    expect(stats).toMatchObject({ schemaVersion: 1, command: 'stats', nodeId: 'q-a' });
    expect(stats.namespaces.cache).not.toHaveProperty('migratePartitionsRemaining');

    // Piped: no bar. On a terminal (util-linux script(1) gives the CLI a pty): the bar.
    expect((await cli('recluster', b.cluster!.address)).code).toBe(0);
    const piped = await cli('wait-migrations', a.cluster!.address, '--timeout-ms', '15000');
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stderr).toBe('');
    expect(piped.stdout).toMatch(/wait-migrations: cluster settled/);
    expect(piped.stdout).toMatch(/quiesced\s+q-b/);
    expect(piped.stdout).toMatch(/pending\s+\(none\)/);
    const onTty = await new Promise<string>((resolve, reject) => {
      const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} wait-migrations ${a.cluster!.address} --timeout-ms 15000`;
      execFile('script', ['-qfec', command, '/dev/null'], { timeout: 30_000 }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
    });
    expect(onTty).toMatch(/\[#{30}\] 0 partitions left in the cluster \(size 2\)/);
    expect(onTty).toMatch(/wait-migrations: cluster settled/);
  });
});
