/**
 * Shoal cluster nodes as child processes (bench/cluster-child.ts) for the cluster benches:
 * started on loopback, driven over IPC, formed into one settled cluster.
 */
import { ChildProcess, fork } from 'node:child_process';
import * as path from 'node:path';

export interface BenchNode {
  process: ChildProcess;
  address: string;
  call(op: string, fields?: Record<string, unknown>): Promise<any>;
}

/** Starts node `name` with its data in `dataDir`, joining `seed` if given. Resolves once it listens. */
export function startNode(name: string, dataDir: string, seed: string | undefined): Promise<BenchNode> {
  return startChild('cluster-child.js', [name, dataDir, seed ?? '']);
}

/**
 * Forks the bench child `script` (a file beside this one) with `args`; resolves once it sends
 * `{ ready, address }`. Its IPC protocol: `{ id, op, ... }` answered by `{ id, ok, value | error }`.
 */
export function startChild(script: string, args: string[]): Promise<BenchNode> {
  // BENCH_CPU_PROFILE_DIR: each child writes a V8 CPU profile there when it exits (node --cpu-prof).
  const profileDir = process.env.BENCH_CPU_PROFILE_DIR;
  const execArgv = profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${args[0]}-${Date.now()}.cpuprofile`];
  const child = fork(path.join(__dirname, script), args, { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv });
  const waiting = new Map<number, (reply: any) => void>();
  let next = 0;
  return new Promise((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`${args[0]} exited with ${code}`)));
    child.on('message', (message: any) => {
      if (message.ready) {
        resolve({
          process: child,
          address: message.address,
          call: (op, fields = {}) =>
            new Promise((done, fail) => {
              const id = next++;
              waiting.set(id, (reply) => (reply.ok ? done(reply.value) : fail(new Error(reply.error))));
              child.send({ id, op, ...fields });
            }),
        });
        return;
      }
      waiting.get(message.id)?.(message);
      waiting.delete(message.id);
    });
  });
}

/**
 * Starts `size` nodes (directories `${dir}/${prefix}-N`), the first one the others' seed, and
 * waits up to 60 s until all agree on the view and no migration is left. The caller kills
 * the returned nodes' processes.
 * @throws Error if the cluster does not form in time (the nodes started are killed).
 */
export async function formCluster(size: number, dir: string, prefix: string): Promise<BenchNode[]> {
  const nodes: BenchNode[] = [];
  try {
    nodes.push(await startNode('b1', path.join(dir, `${prefix}-1`), undefined));
    for (let i = 2; i <= size; i++) nodes.push(await startNode(`b${i}`, path.join(dir, `${prefix}-${i}`), nodes[0]!.address));
    const deadline = Date.now() + 60_000;
    for (;;) {
      const states = await Promise.all(nodes.map((node) => node.call('state')));
      if (states.every((s) => s.succession.length === size && s.settled)) return nodes;
      if (Date.now() > deadline) throw new Error(`the ${size}-node cluster did not form`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } catch (error) {
    for (const node of nodes) node.process.kill('SIGKILL');
    throw error;
  }
}
