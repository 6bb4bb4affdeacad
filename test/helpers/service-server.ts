/**
 * Shoal servers for protocol tests: `shoal serve` child processes (dist/bin/shoal.js, built
 * by the global setup) with a memory namespace "test", on loopback ports picked by the OS.
 * The official Aerospike client blocks its process's event loop while it connects, so the
 * server must live in another process. Children are killed when the test file ends.
 */
import type { ChildProcess } from 'node:child_process';
import Aerospike from 'aerospike';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startNode } from './child';
import { tempDir } from './temp';

const repo = path.resolve(__dirname, '..', '..');
export const SHOAL_CLI = path.join(repo, 'dist', 'bin', 'shoal.js');

export interface ServedNode {
  child: ChildProcess;
  host: string;
  port: number;
  /** The node's protocol name (what `node` answers). */
  node: string;
  /** The cluster fabric address in cluster mode. */
  cluster: string | null;
  dataDir: string;
  stderr(): string;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
}

export interface ServeConfig {
  dataDir?: string;
  namespaces?: unknown[];
  service?: Record<string, unknown>;
  cluster?: Record<string, unknown>;
}

/** Starts `shoal serve` with `config` (defaults: a 256 MiB memory namespace "test", loopback). */
export async function serveNode(config: ServeConfig = {}, timeoutMs = 30_000): Promise<ServedNode> {
  const dataDir = config.dataDir ?? tempDir('shoal-serve-');
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, `serve-${process.pid}-${Date.now()}.json`);
  const full = {
    dataDir,
    sharedMemoryIndex: false,
    namespaces: config.namespaces ?? [{ name: 'test', storage: { type: 'memory', maxBytes: 256 << 20 } }],
    service: { listen: { host: '127.0.0.1', port: 0 }, ...config.service },
    ...(config.cluster === undefined ? {} : { cluster: config.cluster }),
  };
  fs.writeFileSync(file, JSON.stringify(full));
  const child = startNode(SHOAL_CLI, ['serve', file]);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-50_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = await new Promise<{ service: { host: string; port: number }; node: string; cluster: string | null }>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`shoal serve not ready in ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((text) => text.startsWith('{"event":"ready"'));
      if (line !== undefined) {
        clearTimeout(timer);
        resolve(JSON.parse(line));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`shoal serve exited (${code}) before ready: ${stderr}`));
    });
  });
  return { child, host: ready.service.host, port: ready.service.port, node: ready.node, cluster: ready.cluster, dataDir, stderr: () => stderr, exited };
}

/** Stops a served node with SIGTERM (a clean close) and waits for it, SIGKILL after timeoutMs. */
export async function stopNode(node: ServedNode, timeoutMs = 10_000): Promise<void> {
  if (node.child.exitCode !== null || node.child.signalCode !== null) return;
  node.child.kill('SIGTERM');
  const timer = setTimeout(() => node.child.kill('SIGKILL'), timeoutMs);
  await node.exited;
  clearTimeout(timer);
}

/**
 * Client options for tests: the node as the seed, logging off, and timeouts of 10 s instead
 * of the client's 1 s defaults, since the machine running the tests may be heavily loaded.
 */
export function clientConfig(node: { host: string; port: number }, extra: Record<string, unknown> = {}): Aerospike.ConfigOptions {
  const total = { totalTimeout: 10_000 };
  return {
    hosts: [{ addr: node.host, port: node.port }],
    log: { level: Aerospike.log.OFF },
    policies: {
      info: new Aerospike.InfoPolicy({ timeout: 10_000 }),
      read: new Aerospike.ReadPolicy(total),
      write: new Aerospike.WritePolicy(total),
      remove: new Aerospike.RemovePolicy(total),
      operate: new Aerospike.OperatePolicy(total),
      batch: new Aerospike.BatchPolicy(total),
      scan: new Aerospike.ScanPolicy({ totalTimeout: 30_000 }),
      query: new Aerospike.QueryPolicy({ totalTimeout: 30_000 }),
      apply: new Aerospike.ApplyPolicy(total),
    },
    ...extra,
  } as Aerospike.ConfigOptions;
}

/**
 * Waits for every command, then throws the first failure: the client must never be closed with
 * commands in flight (its native part can take the process down), as Promise.all would leave them.
 */
export async function settled(commands: Promise<unknown>[]): Promise<void> {
  const outcomes = await Promise.allSettled(commands);
  const failed = outcomes.find((outcome) => outcome.status === 'rejected');
  if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
}

/** The result code a command ends with: 0 (OK) when it succeeds, else the code of the client's error. */
export async function codeOf(promise: Promise<unknown>): Promise<number> {
  try {
    await promise;
    return Aerospike.status.OK;
  } catch (error) {
    return (error as { code: number }).code;
  }
}
