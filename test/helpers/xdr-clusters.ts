/**
 * Shoal clusters as child processes for the XDR tests (test/fixtures/xdr-child.js): each node
 * a real process with its own data directory and a device namespace, on loopback, port 0 at
 * first start and the same port at a restart (so the other cluster's seeds stay valid).
 * `killAll` SIGKILLs every child; the caller's afterEach runs it, and removes the directories.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CommandChannel, type Reply } from './command-channel';

const repo = path.resolve(__dirname, '..', '..');
const children = new Set<XdrNode>();
const directories: string[] = [];

export interface XdrNodeOptions {
  xdr?: { destinations: unknown[] };
  conflictResolution?: 'generation' | 'lastUpdateTime';
  /** The device namespace acknowledges writes only once on its device. */
  commitToDevice?: boolean;
}

export class XdrNode {
  private child!: ChildProcess;
  /** The command channel of the running (or last) process; undefined before the first start. */
  private channel: CommandChannel | undefined;
  address = '';
  stderr = '';
  exited = true;
  ready!: Promise<void>;

  constructor(readonly nodeId: string, readonly clusterName: string, readonly dataDir: string, private seeds: string[], private options: XdrNodeOptions) {
    children.add(this);
  }

  /** Starts the process (again, on its previous port once it had one); resolves when it listens. */
  start(): Promise<void> {
    const port = this.address === '' ? 0 : Number(this.address.slice(this.address.lastIndexOf(':') + 1));
    const args = [path.join(repo, 'test', 'fixtures', 'xdr-child.js'), this.dataDir, this.nodeId, this.clusterName, this.seeds.join(','), String(port), JSON.stringify(this.options)];
    this.child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = false;
    const child = this.child;
    child.stderr!.on('data', (chunk: Buffer) => (this.stderr = (this.stderr + chunk.toString()).slice(-20_000)));
    child.on('exit', () => {
      if (this.child === child) this.exited = true;
    });
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.nodeId} not ready in 30 s: ${this.stderr}`)), 30_000);
      child.on('exit', () => {
        clearTimeout(timer);
        reject(new Error(`${this.nodeId} exited before ready: ${this.stderr}`));
      });
      this.channel = new CommandChannel(child, this.nodeId, (address) => {
        this.address = address;
        clearTimeout(timer);
        resolve();
      });
    });
    this.ready.catch(() => undefined);
    return this.ready;
  }

  /** Sends a command; resolves with its reply (ok: false on an error, an exit or a timeout). */
  command(op: string, fields: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<Reply> {
    if (this.channel === undefined) return Promise.resolve({ id: -1, ok: false, code: 'CHILD_EXITED', message: `${this.nodeId} never started` });
    return this.channel.command(op, fields, timeoutMs);
  }

  /** command() that throws on an error reply. */
  async value<T>(op: string, fields: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    const reply = await this.command(op, fields, timeoutMs);
    if (!reply.ok) throw new Error(`${this.nodeId} ${op}: ${reply.code} ${reply.message}\n${this.stderr.slice(-3000)}`);
    return reply.value as T;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.exited) this.child.kill(signal);
  }

  /** Resolves once the process has exited (after kill or close). */
  async exit(): Promise<void> {
    if (this.exited) return;
    await new Promise((resolve) => this.child.once('exit', resolve));
  }

  /** A graceful stop: db.close(), then the process exits. */
  async stop(): Promise<void> {
    await this.command('close', {}, 20_000);
    await Promise.race([this.exit(), new Promise((resolve) => setTimeout(resolve, 10_000))]);
    this.kill();
    await this.exit();
  }
}

export type XdrCluster = XdrNode[];

/** Starts a cluster of `size` nodes named `<name>-<i>` (cluster name `name`), each with `options`; resolves once all agree and migrations are done. */
export async function startXdrCluster(name: string, size: number, options: XdrNodeOptions = {}): Promise<XdrCluster> {
  const first = new XdrNode(`${name}-1`, name, directory(name), [], options);
  await first.start();
  const rest = Array.from({ length: size - 1 }, (_, i) => new XdrNode(`${name}-${i + 2}`, name, directory(name), [first.address], options));
  await Promise.all(rest.map((node) => node.start()));
  const cluster = [first, ...rest];
  await settled(cluster);
  return cluster;
}

/** Waits (bounded) until every running node of the cluster sees all of them and has no migrations left. */
export async function settled(cluster: XdrCluster, timeoutMs = 60_000): Promise<void> {
  const live = cluster.filter((node) => !node.exited);
  const ok = await eventually(async () => {
    const sizes = await Promise.all(live.map((node) => node.value<number>('settled')));
    return sizes.every((size) => size === live.length);
  }, timeoutMs);
  if (!ok) throw new Error(`cluster ${cluster[0]!.clusterName} did not settle within ${timeoutMs} ms`);
}

/** The destination option naming a cluster's running nodes as seeds. */
export function destinationOf(cluster: XdrCluster, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: cluster[0]!.clusterName, clusterName: cluster[0]!.clusterName, seeds: cluster.map((node) => node.address), namespaces: ['test'], ...extra };
}

/** Waits on every running node until what it queued before the call has shipped. */
export async function waitForShipped(cluster: XdrCluster, timeoutMs = 120_000): Promise<void> {
  await Promise.all(cluster.filter((node) => !node.exited).map((node) => node.value('waitForShipped', { timeoutMs }, timeoutMs + 5_000)));
}

/** Every record of the cluster's namespace, as [key, bins, gen] sorted by key (read through its first running node). */
export async function dump(cluster: XdrCluster): Promise<[string, Record<string, unknown>, number][]> {
  return cluster.find((node) => !node.exited)!.value('dump', {}, 120_000);
}

/** Polls `predicate` every 100 ms until it holds or `timeoutMs` passes; returns whether it held. */
export async function eventually(predicate: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate().catch(() => false)) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return predicate().catch(() => false);
}

/** SIGKILLs every child and removes every data directory (the test file's afterEach). */
export async function killAll(): Promise<void> {
  for (const node of children) node.kill();
  await Promise.all([...children].map((node) => node.exit()));
  children.clear();
  for (const dir of directories.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

function directory(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `shoal-xdr-${name}-`));
  directories.push(dir);
  return dir;
}
