/**
 * The JSON-lines command channel of a test child process (test/fixtures/cluster-node-child.js,
 * cluster-db-child.js, xdr-child.js): a command `{ id, op, ...fields }` per line on its stdin,
 * one reply line `{ id, ok, value | code, message }` per command on its stdout, and a line
 * `{ event: 'ready', address }` once the child listens.
 */
import type { ChildProcess } from 'node:child_process';
import * as readline from 'node:readline';

export interface Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  code?: string;
  message?: string;
}

export class CommandChannel {
  private nextId = 0;
  private readonly waiting = new Map<number, (reply: Reply) => void>();
  private closed = false;

  /**
   * Reads `child`'s stdout from now on: `onReady(address)` at its ready line, each reply to the
   * command that waits for it. When the child exits, every command waiting gets CHILD_EXITED.
   */
  constructor(
    private readonly child: ChildProcess,
    private readonly name: string,
    onReady: (address: string) => void,
  ) {
    const exited = (): void => {
      this.closed = true;
      for (const resolve of this.waiting.values()) resolve({ id: -1, ok: false, code: 'CHILD_EXITED', message: `${name} exited` });
      this.waiting.clear();
    };
    child.on('exit', exited);
    // A command written after a kill and before the exit event gets EPIPE on the child's stdin:
    // the child is gone, as on exit (unhandled, the error would fail the whole run).
    child.stdin!.on('error', exited);
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      let message: Reply & { event?: string; address?: string };
      try {
        message = JSON.parse(line);
      } catch {
        return;
      }
      if (message.event === 'ready') {
        onReady(message.address!);
        return;
      }
      const resolve = this.waiting.get(message.id);
      this.waiting.delete(message.id);
      resolve?.(message);
    });
  }

  /** Sends a command; resolves with its reply (ok: false on an error reply, an exit or a timeout); never rejects. */
  command(op: string, fields: Record<string, unknown>, timeoutMs: number): Promise<Reply> {
    if (this.closed) return Promise.resolve({ id: -1, ok: false, code: 'CHILD_EXITED', message: `${this.name} exited` });
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve({ id, ok: false, code: 'TEST_TIMEOUT', message: `${op} got no reply in ${timeoutMs} ms` });
      }, timeoutMs);
      this.waiting.set(id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.child.stdin!.write(`${JSON.stringify({ id, op, ...fields })}\n`);
    });
  }
}
