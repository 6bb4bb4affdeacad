/**
 * One application process of the cutover example (examples/cutover.ts): a node of the old or
 * the new cluster, embedding Shoal, with the application's clients running inside it. Driven
 * by its parent over IPC; messages in: { id, op, ... }; replies: { id, ok, value | error }.
 *
 * argv: nodeId clusterName dataDir seed clockSkewMs
 * clockSkewMs moves this process's wall clock (Date.now, which the namespaces stamp writes
 * by) that far from the real one: the two clusters of the example run with clocks seconds apart.
 */
import { open, type Db } from '../lib/index';

const [nodeId, clusterName, dataDir, seed, skewText] = process.argv.slice(2);
const clockSkewMs = Number(skewText ?? 0);
if (clockSkewMs !== 0) {
  const realNow = Date.now.bind(Date);
  Date.now = () => realNow() + clockSkewMs;
}

/** The namespace every process uses. */
const NS = 'app';

interface ClientState {
  /** The client's next write number (carried from process to process as the client moves). */
  seq: number;
  /** Each key's last acknowledged outcome: the value `n` written, or null when removed. */
  acked: Record<string, number | null>;
  errors: string[];
  writes: number;
}

interface ClientSpec extends ClientState {
  id: number;
  /** Keys only this client writes (`c<id>-<k>`), and keys every client writes (`shared-<k>`). */
  ownKeys: number;
  sharedKeys: number;
  pauseMs: number;
}

interface Command {
  id: number;
  op: string;
  [field: string]: unknown;
}

let db: Db;
const clients = new Map<number, { running: boolean; done: Promise<void>; state: ClientState }>();

const key = (k: string) => ({ ns: NS, set: 'app', key: k });

/**
 * A client of the application: writes its own keys and the shared keys in turn (every 7th
 * write of an own key removes it instead), until stopped. Its acknowledged outcomes travel
 * with it when it moves.
 */
function startClient(spec: ClientSpec): void {
  const state: ClientState = { seq: spec.seq, acked: { ...spec.acked }, errors: [...spec.errors], writes: spec.writes };
  const entry = { running: true, done: Promise.resolve(), state };
  entry.done = (async () => {
    while (entry.running) {
      const n = state.seq++;
      const shared = n % 2 === 1;
      const k = shared ? `shared-${(n >> 1) % spec.sharedKeys}` : `c${spec.id}-${(n >> 1) % spec.ownKeys}`;
      try {
        if (!shared && n % 7 === 6) {
          await db.remove(key(k));
          state.acked[k] = null;
        } else {
          await db.put(key(k), { client: spec.id, n, cluster: clusterName! });
          state.acked[k] = n;
        }
        state.writes++;
      } catch (error) {
        state.errors.push(`${k}: ${(error as Error).message}`);
      }
      await new Promise((resolve) => setTimeout(resolve, spec.pauseMs));
    }
  })();
  clients.set(spec.id, entry);
}

async function stopClient(id: number): Promise<ClientState> {
  const entry = clients.get(id);
  if (entry === undefined) throw new Error(`no client ${id} on ${nodeId}`);
  entry.running = false;
  await entry.done;
  clients.delete(id);
  return entry.state;
}

/** Every record, sorted by key: [key, bins, gen]. */
async function dump(): Promise<[string, Record<string, unknown>, number][]> {
  const records: [string, Record<string, unknown>, number][] = [];
  for await (const record of db.scan(NS)) records.push([String(record.key.key), record.bins, record.gen]);
  return records.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

async function preload(count: number): Promise<number> {
  const entries = Array.from({ length: count }, (_, i) => ({ key: key(`base-${i}`), bins: { i, payload: 'x'.repeat(100) } }));
  let failed = 0;
  for (let start = 0; start < entries.length; start += 2_000) {
    for (const result of await db.batchPut(entries.slice(start, start + 2_000))) if (result instanceof Error) failed++;
  }
  return failed;
}

async function handle(command: Command): Promise<unknown> {
  switch (command.op) {
    case 'preload':
      return preload(command.count as number);
    case 'startClient':
      startClient(command.spec as ClientSpec);
      return null;
    case 'stopClient':
      return stopClient(command.clientId as number);
    case 'get': {
      const record = await db.get(key(command.key as string));
      return record === undefined ? null : record.bins;
    }
    case 'dump':
      return dump();
    case 'cluster':
      return db.cluster!.state();
    case 'xdrState':
      return db.xdr!.state();
    case 'addDestination':
      db.xdr!.addDestination(command.destination as never);
      return null;
    case 'removeDestination':
      db.xdr!.removeDestination(command.name as string);
      return null;
    case 'waitForShipped':
      await db.xdr!.waitForShipped({ timeoutMs: command.timeoutMs as number });
      return null;
    case 'quiesce':
      db.cluster!.quiesce();
      return null;
    case 'recluster':
      db.cluster!.recluster();
      return null;
    case 'close':
      await db.close({ dropIndex: true });
      setImmediate(() => process.exit(0));
      return null;
    default:
      throw new Error(`unknown op ${command.op}`);
  }
}

async function main(): Promise<void> {
  db = await open({
    dataDir: dataDir!,
    handleSignals: false,
    sharedMemoryIndex: false,
    namespaces: [{ name: NS, storeKey: true, conflictResolution: 'lastUpdateTime', storage: { type: 'memory', maxBytes: 256 << 20 } }],
    cluster: { nodeId: nodeId!, clusterName: clusterName!, listen: { host: '127.0.0.1', port: 0 }, seeds: seed ? [seed] : [], heartbeatIntervalMs: 100 },
    log: (message) => process.stderr.write(`[${nodeId}] ${message}\n`),
  });
  process.on('message', (command: Command) => {
    handle(command).then(
      (value) => process.send!({ id: command.id, ok: true, value }),
      (error: Error) => process.send!({ id: command.id, ok: false, error: `${error.name}: ${error.message}` }),
    );
  });
  // The parent's end: a parent that dies leaves no process behind.
  process.on('disconnect', () => process.exit(1));
  process.send!({ ready: true, address: db.cluster!.address });
}

main().catch((error: unknown) => {
  process.stderr.write(`cutover node ${nodeId} failed: ${String(error)}\n`);
  process.exit(1);
});
