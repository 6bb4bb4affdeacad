/**
 * The operator CLI against a live two-node cluster: state and stats as text and JSON,
 * quiesce + recluster + wait-migrations, and clear failures for bad input.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { open, type Db } from '../lib/index';
import { runNode } from './helpers/child';
import { testTls, testTlsFiles } from './helpers/tcp-cluster';
import { cleanupTempDirs, tempDir } from './helpers/temp';

const CLI = path.join(__dirname, '..', 'dist', 'bin', 'shoal.js');
const dbs: Db[] = [];

afterAll(async () => {
  for (const db of dbs) await db.close({ dropIndex: true }).catch(() => undefined);
  cleanupTempDirs(['cache']);
});

async function startNode(nodeId: string, seeds: string[], security: { secret?: string; tls?: ReturnType<typeof testTls> } = {}): Promise<Db> {
  const db = await open({
    dataDir: tempDir(),
    namespaces: [{ name: 'cache', storage: { type: 'memory', maxBytes: 32 << 20 } }],
    cluster: { nodeId, listen: { host: '127.0.0.1', port: 0 }, seeds, heartbeatIntervalMs: 100, ...security },
    log: () => undefined,
  });
  dbs.push(db);
  return db;
}

async function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runNode(CLI, args, 20_000);
}

describe('npx shoal', () => {
  it('shows state and stats, quiesces, reclusters and waits for migrations', async () => {
    const first = await startNode('cli-a', []);
    const second = await startNode('cli-b', [first.cluster!.address]);
    const deadline = Date.now() + 10_000;
    while (first.stats().clusterSize !== 2 || second.stats().clusterSize !== 2) {
      if (Date.now() > deadline) throw new Error('the two nodes did not form a cluster');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (let i = 0; i < 200; i++) await first.put({ ns: 'cache', key: i }, { i });

    const waited = await cli('wait-migrations', first.cluster!.address, '--json', '--timeout-ms', '15000');
    expect(waited.code, waited.stderr).toBe(0);

    const text = await cli('state', second.cluster!.address);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/cluster key\s+[0-9a-f]+/);
    expect(text.stdout).toMatch(/succession\s+cli-b, cli-a/);
    expect(text.stdout).toMatch(/namespace cache: objects 200/);

    const json = await cli('state', first.cluster!.address, '--json');
    const state = JSON.parse(json.stdout) as { nodeId: string; succession: string[]; partitions: { master: number; replica: number } };
    expect(state.nodeId).toBe('cli-a');
    expect(state.succession.sort()).toEqual(['cli-a', 'cli-b']);
    expect(state.partitions.master + state.partitions.replica).toBe(4096);

    const stats = JSON.parse((await cli('stats', first.cluster!.address, '--json')).stdout) as {
      namespaces: { cache: { objects: number; masterObjects: number } };
    };
    expect(stats.namespaces.cache.objects).toBe(200);

    expect((await cli('quiesce', second.cluster!.address)).code).toBe(0);
    expect((await cli('recluster', second.cluster!.address)).code).toBe(0);
    // The rebalance is a membership round: wait for the view that lists the quiesced node.
    const rebalanced = Date.now() + 10_000;
    while (!second.cluster!.state().quiesced.includes('cli-b')) {
      if (Date.now() > rebalanced) throw new Error('recluster did not adopt the quiesce flag');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect((await cli('wait-migrations', second.cluster!.address, '--timeout-ms', '15000')).code).toBe(0);
    const after = JSON.parse((await cli('state', second.cluster!.address, '--json')).stdout) as {
      quiesced: string[];
      partitions: { master: number };
    };
    expect(after.quiesced).toEqual(['cli-b']);
    expect(after.partitions.master).toBe(0);
    expect(second.cluster!.state().partitions.master).toBe(0);

    expect((await cli('quiesce-undo', second.cluster!.address)).code).toBe(0);
    expect((await cli('recluster', second.cluster!.address)).code).toBe(0);
    const undone = Date.now() + 10_000;
    while (second.cluster!.state().quiesced.length > 0) {
      if (Date.now() > undone) throw new Error('quiesce-undo did not take effect at the next rebalance');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  it('fails clearly: usage errors exit 2, an unreachable node exits 1', async () => {
    const usage = await cli('explode', '127.0.0.1:1');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/unknown command explode/);
    expect((await cli('state', 'not-an-address')).code).toBe(2);
    const unreachable = await cli('state', '127.0.0.1:9');
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/cannot reach 127\.0\.0\.1:9/);
  });

  it('against a node with a secret: without it, or with another, fails clearly and prints no state; --secret-file or SHOAL_CLUSTER_SECRET gets the state', async () => {
    const secret = 'operator cli test secret 0123';
    const dir = tempDir();
    const secretFile = path.join(dir, 'secret');
    fs.writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
    const wrongFile = path.join(dir, 'wrong');
    fs.writeFileSync(wrongFile, 'not the secret of this cluster', { mode: 0o600 });
    const secured = await startNode('cli-s', [], { secret });
    const address = secured.cluster!.address;

    const without = await cli('state', address, '--json');
    expect(without.code).not.toBe(0);
    expect(without.stdout).toBe('');
    expect(without.stderr).toMatch(/requires the cluster secret: pass --secret-file FILE or set SHOAL_CLUSTER_SECRET/);
    for (const command of ['stats', 'quiesce', 'recluster']) {
      const refused = await cli(command, address);
      expect(refused.code, command).toBe(1);
      expect(refused.stdout, command).toBe('');
    }
    expect(secured.cluster!.state().quiesced).toEqual([]);
    const wrong = await cli('state', address, '--json', '--secret-file', wrongFile);
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toBe('');
    expect(wrong.stderr).toMatch(/did not accept this secret/);

    const withFile = await cli('state', address, '--json', '--secret-file', secretFile);
    expect(withFile.code, withFile.stderr).toBe(0);
    expect((JSON.parse(withFile.stdout) as { nodeId: string }).nodeId).toBe('cli-s');
    process.env.SHOAL_CLUSTER_SECRET = secret;
    try {
      const withEnvironment = await cli('state', address, '--json');
      expect(withEnvironment.code, withEnvironment.stderr).toBe(0);
      expect((JSON.parse(withEnvironment.stdout) as { nodeId: string }).nodeId).toBe('cli-s');
    } finally {
      delete process.env.SHOAL_CLUSTER_SECRET;
    }

    // TLS: the secret alone gets nothing; the CA, a certificate and the secret get the state.
    const tlsNode = await startNode('cli-t', [], { secret, tls: testTls() });
    const tlsAddress = tlsNode.cluster!.address;
    const plain = await cli('state', tlsAddress, '--json', '--secret-file', secretFile, '--timeout-ms', '3000');
    expect(plain.code).toBe(1);
    expect(plain.stdout).toBe('');
    const overTls = await cli('state', tlsAddress, '--json', '--secret-file', secretFile, '--tls-ca', testTlsFiles.ca, '--tls-cert', testTlsFiles.cert, '--tls-key', testTlsFiles.key);
    expect(overTls.code, overTls.stderr).toBe(0);
    expect((JSON.parse(overTls.stdout) as { nodeId: string }).nodeId).toBe('cli-t');
    const partial = await cli('state', tlsAddress, '--tls-ca', testTlsFiles.ca);
    expect(partial.code).toBe(2);
    expect(partial.stderr).toMatch(/all three of --tls-ca, --tls-cert and --tls-key/);
  });
});
