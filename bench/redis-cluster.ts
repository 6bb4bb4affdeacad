/**
 * A Redis Cluster of Debian's redis-server on loopback, the peer of the cluster throughput
 * bench: 3 masters and 3 replicas (`redis-cli --cluster create --cluster-replicas 1`), no
 * persistence, each server its own process. Redis replicates asynchronously, so an
 * acknowledged write there waits for no replica, unlike Shoal's RF 2.
 */
import { ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Whether redis-server and redis-cli are on PATH (`apt-get install redis-server`). */
export function redisAvailable(): boolean {
  return ['redis-server', 'redis-cli'].every((tool) => spawnSync(tool, ['--version'], { stdio: 'ignore' }).status === 0);
}

export interface RedisCluster {
  ports: number[];
  stop(): void;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** `count` ports whose cluster-bus ports (port + 10000) are free too. */
async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let port = 21000 + Math.floor(Math.random() * 8000); ports.length < count && port < 55000; port++) {
    if ((await portFree(port)) && (await portFree(port + 10000))) ports.push(port);
  }
  if (ports.length < count) throw new Error('no free ports for the Redis Cluster');
  return ports;
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`Redis Cluster: ${what} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Starts six servers with their files in `dir` and joins them into one cluster of 3 masters
 * and 3 replicas. Resolves when every slot is served and the cluster state is ok.
 * @throws Error if a server does not start or the cluster does not form in 30 s (the servers are stopped).
 */
export async function startRedisCluster(dir: string): Promise<RedisCluster> {
  const ports = await freePorts(6);
  const servers: ChildProcess[] = [];
  const stop = () => {
    for (const server of servers) server.kill('SIGKILL');
  };
  try {
    for (const port of ports) {
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, `nodes-${port}.conf`)];
      args.push('--dir', dir, '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--daemonize', 'no');
      servers.push(spawn('redis-server', args, { stdio: 'ignore' }));
    }
    for (const port of ports) await waitFor(async () => (await run('redis-cli', ['-p', String(port), 'ping'])).stdout.includes('PONG'), 10_000, `server ${port} did not start`);
    await run('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '1', '--cluster-yes']);
    for (const port of ports) {
      await waitFor(async () => (await run('redis-cli', ['-p', String(port), 'cluster', 'info'])).stdout.includes('cluster_state:ok'), 30_000, `server ${port} did not see the cluster ok`);
    }
    return { ports, stop };
  } catch (error) {
    stop();
    throw error;
  }
}
