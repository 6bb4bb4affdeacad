/**
 * Clean shutdown on SIGTERM and SIGINT: every open Db is closed (marking its shared-memory
 * index clean, so the next start is warm), then the signal's default action proceeds unless
 * the application listens for the signal itself.
 */

interface Closable {
  close(): Promise<void>;
}

const open = new Set<Closable>();
const SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];
let installed = false;

function onSignal(signal: NodeJS.Signals): void {
  const closing = [...open].map((db) => db.close().catch(() => undefined));
  void Promise.all(closing).then(() => {
    uninstall();
    // Our handler was the only one: re-raise so the process ends as it would have.
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  });
}

function uninstall(): void {
  if (!installed) return;
  for (const signal of SIGNALS) process.removeListener(signal, onSignal);
  installed = false;
}

/** Registers an open Db for clean shutdown. */
export function registerForShutdown(db: Closable): void {
  open.add(db);
  if (installed) return;
  for (const signal of SIGNALS) process.on(signal, onSignal);
  installed = true;
}

export function unregisterForShutdown(db: Closable): void {
  open.delete(db);
  if (open.size === 0) uninstall();
}
