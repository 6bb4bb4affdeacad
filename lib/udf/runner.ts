/**
 * Runs UDF calls in a worker thread (worker.ts), so the Db's event loop never waits for Lua:
 * calls queue here (at most UDF_QUEUE_MAX); up to UDF_WORKER_PIPELINE of them are sent ahead,
 * so the worker goes from one to the next without waiting for this thread. The worker runs
 * them in order, one at a time: a call it does not answer within UDF_WORKER_DEADLINE_MS of
 * the previous answer ends the worker, and is answered "UDF Execution Timeout"; a worker that
 * dies answers its current call with the reason. Calls sent behind it had not started: they
 * go to the next worker, which gets the registered sources first.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ErrorCode, ShoalError } from '../errors';
import type { BinValue } from '../model/bins';
import { UDF_QUEUE_MAX, UDF_WORKER_DEADLINE_MS, UDF_WORKER_HEAP_MB, UDF_WORKER_PIPELINE } from './constants';
import type { UdfCall, UdfCheck, UdfOutcome } from './engine';

/** The messages the worker takes. */
export type WorkerRequest =
  | { id: number; type: 'sources'; sources: [string, string][] }
  | { id: number; type: 'check'; name: string; source: string }
  | { id: number; type: 'apply'; call: UdfCall };

type Job = { request: WorkerRequest; resolve(result: UdfCheck | UdfOutcome): void; timeoutResult: UdfCheck | UdfOutcome };

/** How long a new worker may take to load the Lua build before its first call fails. */
const WORKER_START_TIMEOUT_MS = 30_000;

/** The source the worker is started from: the compiled worker.js, or worker.ts through tsx (tests). */
function workerEntry(): { source: string; eval: boolean } {
  const file = path.join(__dirname, path.basename(__filename).endsWith('.ts') ? 'worker.ts' : 'worker.js');
  if (file.endsWith('.js')) return { source: file, eval: false };
  return { source: `require(${JSON.stringify(require.resolve('tsx/cjs/api'))}).register(); require(${JSON.stringify(file)});`, eval: true };
}

export class UdfRunner {
  private worker: Worker | undefined;
  private ready = false;
  private readonly queue: Job[] = [];
  /** Calls sent to the worker and not yet answered, oldest (the one running) first. */
  private readonly sent: Job[] = [];
  /** The deadline of the oldest sent call. */
  private timer: NodeJS.Timeout | undefined;
  private sources: [string, string][] = [];
  private nextId = 1;
  private closed = false;
  /** Workers ended for a call past its deadline, and workers that died. */
  readonly counters = { deadlines: 0, crashes: 0, calls: 0 };

  constructor(private readonly log: (message: string) => void) {}

  /** Replaces the registered modules' sources (the worker closes its states). */
  setSources(sources: [string, string][]): void {
    this.sources = sources;
    this.enqueue({ id: this.nextId++, type: 'sources', sources }, () => undefined, { ok: true });
  }

  /** Compiles a module and runs its top level in a throwaway state. */
  check(name: string, source: string): Promise<UdfCheck> {
    return new Promise((resolve, reject) => {
      this.submit({ id: this.nextId++, type: 'check', name, source }, resolve as (result: UdfCheck | UdfOutcome) => void, { ok: false, line: 0, message: 'UDF Execution Timeout' }, reject);
    });
  }

  /**
   * Runs a call.
   * @throws ShoalError KEY_BUSY when UDF_QUEUE_MAX calls are waiting; NOT_OPEN after close().
   */
  apply(call: UdfCall): Promise<UdfOutcome> {
    return new Promise((resolve, reject) => {
      this.submit({ id: this.nextId++, type: 'apply', call }, (result) => resolve(revive(result) as UdfOutcome), { ok: false, message: 'UDF Execution Timeout' }, reject);
    });
  }

  /** Ends the worker; waiting calls fail with NOT_OPEN. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    clearTimeout(this.timer);
    const pending = [...this.sent.splice(0), ...this.queue.splice(0)];
    for (const job of pending) job.resolve(job.request.type === 'apply' ? { ok: false, message: 'the node is closing' } : { ok: false, line: 0, message: 'the node is closing' });
    if (worker !== undefined) await worker.terminate();
  }

  private submit(request: WorkerRequest, resolve: (result: UdfCheck | UdfOutcome) => void, timeoutResult: UdfCheck | UdfOutcome, reject: (error: Error) => void): void {
    if (this.closed) return reject(new ShoalError(ErrorCode.NOT_OPEN, 'the UDF runner is closed'));
    if (this.queue.length >= UDF_QUEUE_MAX) return reject(new ShoalError(ErrorCode.KEY_BUSY, `${UDF_QUEUE_MAX} UDF calls are already waiting; retry`));
    this.enqueue(request, resolve, timeoutResult);
  }

  private enqueue(request: WorkerRequest, resolve: (result: UdfCheck | UdfOutcome) => void, timeoutResult: UdfCheck | UdfOutcome): void {
    if (this.closed) return;
    // A newer source list replaces one still waiting.
    if (request.type === 'sources') {
      const waiting = this.queue.findIndex((job) => job.request.type === 'sources');
      if (waiting >= 0) this.queue.splice(waiting, 1);
    }
    this.queue.push({ request, resolve, timeoutResult });
    this.pump();
  }

  /** Sends waiting jobs while fewer than UDF_WORKER_PIPELINE are out; starts a worker when there is none. */
  private pump(): void {
    while (this.queue.length > 0 && !this.closed && this.sent.length < UDF_WORKER_PIPELINE) {
      if (this.worker === undefined) return this.start();
      if (!this.ready) return;
      const job = this.queue.shift()!;
      this.worker.postMessage(job.request);
      // Sources need no answer: the worker reads its messages in order.
      if (job.request.type === 'sources') {
        job.resolve({ ok: true });
        continue;
      }
      if (job.request.type === 'apply') this.counters.calls++;
      this.sent.push(job);
      if (this.sent.length === 1) this.armDeadline();
    }
  }

  /** The oldest sent call has UDF_WORKER_DEADLINE_MS from now (it starts when the one before it answered). */
  private armDeadline(): void {
    clearTimeout(this.timer);
    this.timer = this.sent.length === 0 ? undefined : setTimeout(() => this.deadlinePassed(), UDF_WORKER_DEADLINE_MS);
  }

  /** Calls sent to a worker that is gone and had not started: back to the front of the queue. */
  private resend(): void {
    const waiting = this.sent.splice(0);
    this.queue.unshift(...waiting);
  }

  private start(): void {
    const entry = workerEntry();
    const worker = new Worker(entry.source, { eval: entry.eval, resourceLimits: { maxOldGenerationSizeMb: UDF_WORKER_HEAP_MB } });
    worker.unref();
    this.worker = worker;
    this.ready = false;
    const startTimer = setTimeout(() => this.stop(worker, 'did not start in time'), WORKER_START_TIMEOUT_MS);
    startTimer.unref();
    worker.on('message', (message: { type?: string; id?: number; result?: UdfCheck | UdfOutcome }) => {
      if (worker !== this.worker) return;
      if (message.type === 'ready') {
        clearTimeout(startTimer);
        this.ready = true;
        worker.postMessage({ id: this.nextId++, type: 'sources', sources: this.sources });
        return this.pump();
      }
      if (this.sent.length === 0 || this.sent[0]!.request.id !== message.id) return;
      const job = this.sent.shift()!;
      this.armDeadline();
      job.resolve(message.result!);
      this.pump();
    });
    worker.on('error', (error) => this.stop(worker, error.message));
    worker.on('exit', (code) => this.stop(worker, `exited with code ${code}`));
  }

  private deadlinePassed(): void {
    this.counters.deadlines++;
    this.log(`udf: a call ran past ${UDF_WORKER_DEADLINE_MS} ms; the UDF worker is restarted`);
    const worker = this.worker;
    this.worker = undefined;
    if (worker !== undefined) void worker.terminate();
    const job = this.sent.shift();
    this.resend();
    clearTimeout(this.timer);
    job?.resolve(job.timeoutResult);
    this.pump();
  }

  /** A worker that died: its current call fails with the reason; the next call starts another. */
  private stop(worker: Worker, reason: string): void {
    if (worker !== this.worker) return;
    this.worker = undefined;
    void worker.terminate();
    if (this.closed) return;
    this.counters.crashes++;
    this.log(`udf: the UDF worker stopped (${reason}); the next call starts a new one`);
    clearTimeout(this.timer);
    const job = this.sent.shift();
    this.resend();
    if (job !== undefined) {
      const message = `the UDF worker stopped: ${reason}`;
      job.resolve(job.request.type === 'apply' ? { ok: false, message } : { ok: false, line: 0, message });
    }
    this.pump();
  }
}

/** Buffers come back from the worker as Uint8Arrays (structured clone): Shoal's values use Buffer. */
function revive(result: UdfCheck | UdfOutcome): UdfCheck | UdfOutcome {
  if (!('value' in result)) return result;
  return { ...result, value: reviveValue(result.value), changes: result.changes.map(([name, value]) => [name, reviveValue(value)]) };
}

function reviveValue(value: BinValue): BinValue {
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (Array.isArray(value)) return value.map(reviveValue);
  if (value instanceof Map) return new Map([...value].map(([key, entry]) => [key instanceof Uint8Array ? Buffer.from(key) : key, reviveValue(entry)]));
  if (value !== null && typeof value === 'object') {
    // No prototype: a key named __proto__ is a key like any other.
    const object: Record<string, BinValue> = Object.create(null);
    for (const name of Object.keys(value)) object[name] = reviveValue((value as Record<string, BinValue>)[name]!);
    return object;
  }
  return value;
}
