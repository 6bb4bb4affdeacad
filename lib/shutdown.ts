/**
 * Clean shutdown on SIGTERM and SIGINT: every Db opened with handleSignals (the default) is
 * closed (marking its shared-memory index clean, so the next start is warm), then the signal's
 * default action proceeds unless the application listens for the signal itself. The handlers
 * are installed while such a Db is open, and only then: a Db opened with handleSignals: false
 * leaves signals to the application, which closes it after draining its own work.
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

/** Registers an open Db for clean shutdown, installing the signal handlers if they are not yet installed. */
export function registerForShutdown(db: Closable): void {
  open.add(db);
  if (installed) return;
  for (const signal of SIGNALS) process.on(signal, onSignal);
  installed = true;
}

/** Forgets a Db (registered or not); the handlers go when no registered Db is left. */
export function unregisterForShutdown(db: Closable): void {
  open.delete(db);
  if (open.size === 0) uninstall();
}
