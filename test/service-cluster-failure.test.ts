/**
 * kill -9 of a Shoal node under an official-client write load: every write the client saw
 * acknowledged is read back afterwards from the surviving nodes (replication factor 2: a write
 * is acknowledged once master and replica applied it), and the client routes to the survivors
 * once they publish the new partition map. The client runs in a child process of its own
 * (test/fixtures/protocol-write-load.js).
 */
import * as path from 'node:path';
import * as readline from 'node:readline';
import { afterAll, expect, it } from 'vitest';
import Aerospike from 'aerospike';
import { ChildProcess, spawn } from 'node:child_process';
import { cleanupTempDirs } from './helpers/temp';
import { ServedNode, clientConfig, stopNode } from './helpers/service-server';
import { serveCluster, waitForSettled } from './helpers/service-cluster';

let nodes: ServedNode[] = [];
let client: Aerospike.Client | undefined;
let load: ChildProcess | undefined;

afterAll(async () => {
  load?.kill('SIGKILL');
  await Promise.all(nodes.map((node) => stopNode(node)));
  cleanupTempDirs();
});

it('loses no acknowledged write when a node is killed with SIGKILL under load', async () => {
  nodes = await serveCluster(3);
  client = await Aerospike.connect(clientConfig(nodes[0]!));
  try {
    await waitForSettled(client, nodes, 3);
  } finally {
    client.close();
  }
  load = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'protocol-write-load.js'), nodes[0]!.host, String(nodes[0]!.port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: load.stdout! });
  const events: Record<string, unknown>[] = [];
  const waitFor = (event: string, timeoutMs: number) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the load did not report ${event} in ${timeoutMs} ms`)), timeoutMs);
      const check = () => {
        const found = events.find((e) => e.event === event);
        if (found !== undefined) {
          clearTimeout(timer);
          resolve(found);
        } else setTimeout(check, 50);
      };
      check();
    });
  lines.on('line', (line) => events.push(JSON.parse(line) as Record<string, unknown>));
  await waitFor('loading', 60_000);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const victim = nodes[1]!;
  victim.child.kill('SIGKILL');
  await victim.exited;
  load.stdin!.write('mark kill\n');
  await new Promise((resolve) => setTimeout(resolve, 6000));
  load.stdin!.write('stop\n');
  const done = (await waitFor('done', 120_000)) as { acknowledged: number; marks: { kill: number }; failed: number; lost: string[] };
  console.log(`kill -9 under load: ${done.acknowledged} writes acknowledged (${done.marks.kill} before the kill), ${done.failed} failed or timed out, ${done.lost.length} acknowledged writes lost`);
  expect(done.marks.kill).toBeGreaterThan(100);
  expect(done.acknowledged).toBeGreaterThan(done.marks.kill);
  expect(done.lost).toEqual([]);
}, 240_000);
