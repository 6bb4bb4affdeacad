/**
 * Background scans and queries with write operations (docs/protocol.md, "Background jobs"): the
 * client's `query.operate(ops)` and `scan.operate(ops)`, an AS_MSG shaped like a scan or a query
 * with info2 WRITE and write ops. The request is answered at once (one message flagged LAST, as
 * the server answers a job it started); the job then applies the ops to every record the scan
 * or query selects, one record at a time through `db.operate` (a record removed meanwhile is
 * left alone, never created), and `query-show:trid=<task id>` reports it in the server's format
 * until SERVICE_BACKGROUND_JOBS_KEPT later jobs have finished.
 */
import type { Operation } from '../namespace/semantics';
import type { ShoalRecord } from '../namespace/namespace';
import type { Expression } from '../model/exp/expression';
import { SERVICE_BACKGROUND_JOBS_KEPT, SERVICE_BACKGROUND_JOBS_RUNNING_MAX, SERVICE_RECORD_TESTS_PER_YIELD } from './constants';
import type { ServedDb } from './served-db';
import { ResultCode } from './result-codes';
import { RequestError } from './wire';

/** What a background job runs on, from the scan or query it is shaped like (scan.ts). */
export interface BackgroundRequest {
  ns: string;
  set: string | undefined;
  partitions: number[];
  filter: Expression | undefined;
  accept: ((record: ShoalRecord) => boolean) | undefined;
  recordsPerSecond: number;
}

interface Job {
  id: string;
  ns: string;
  set: string | undefined;
  done: boolean;
  startedMs: number;
  finishedMs: number;
  succeeded: number;
  failed: number;
  partitionsDone: number;
  partitions: number;
}

/** The background jobs of one service: the running ones and the last finished ones. */
export class BackgroundJobs {
  private readonly jobs = new Map<string, Job>();
  private running = 0;

  /** @param log where a job that stops on an error is reported. */
  constructor(private readonly log: (message: string) => void) {}

  /**
   * Starts a job, to run after this returns: `operations` on every record `request` selects,
   * with the write option `ttl`.
   * @param id the task id the client chose (field 7), as a decimal string.
   * @param groups the request's partitions in groups, each read from the Db at once.
   * @throws RequestError KEY_BUSY when SERVICE_BACKGROUND_JOBS_RUNNING_MAX jobs are running.
   */
  start(db: ServedDb, id: string, request: BackgroundRequest, groups: number[][], operations: Operation[], ttl: number): void {
    if (this.running >= SERVICE_BACKGROUND_JOBS_RUNNING_MAX) throw new RequestError(ResultCode.KEY_BUSY, `${SERVICE_BACKGROUND_JOBS_RUNNING_MAX} background jobs are running`);
    const job: Job = { id, ns: request.ns, set: request.set, done: false, startedMs: Date.now(), finishedMs: 0, succeeded: 0, failed: 0, partitionsDone: 0, partitions: request.partitions.length };
    this.jobs.delete(id);
    this.jobs.set(id, job);
    this.running++;
    this.run(db, request, groups, operations, ttl, job)
      .catch((error: unknown) => this.log(`service: background job ${id} stopped: ${(error as Error).message}`))
      .finally(() => {
        job.done = true;
        job.finishedMs = Date.now();
        this.running--;
        this.evictFinished();
      });
  }

  private async run(db: ServedDb, request: BackgroundRequest, groups: number[][], operations: Operation[], ttl: number, job: Job): Promise<void> {
    for (const group of groups) {
      const records: ShoalRecord[] = [];
      let tested = 0;
      for await (const record of db.scan(request.ns, request.set, { partitions: group, filter: request.filter })) {
        if (request.accept !== undefined && ++tested % SERVICE_RECORD_TESTS_PER_YIELD === 0) await new Promise((resolve) => setImmediate(resolve));
        if (request.accept === undefined || request.accept(record)) records.push(record);
      }
      for (const record of records) {
        try {
          await db.operate(record.key, operations, { ttl, exists: 'update' });
          job.succeeded++;
        } catch {
          // Removed since it was read, or refused (a type mismatch): counted, as the server counts failures.
          job.failed++;
        }
        // A memory namespace's operate may finish without giving the event loop a turn: give it one now and then.
        if ((job.succeeded + job.failed) % SERVICE_RECORD_TESTS_PER_YIELD === 0) await new Promise((resolve) => setImmediate(resolve));
        await throttle(request.recordsPerSecond, job);
      }
      job.partitionsDone += group.length;
    }
  }

  private evictFinished(): void {
    const finished = [...this.jobs.values()].filter((job) => job.done);
    for (const job of finished.slice(0, Math.max(0, finished.length - SERVICE_BACKGROUND_JOBS_KEPT))) this.jobs.delete(job.id);
  }

  /**
   * `query-show:trid=<id>` (or `id=`, server 8.1; also `scan-show`): the job in the server's
   * format, `trid=…:ns=…:status=done(ok):job-progress=…:recs-succeeded=…:recs-failed=…`.
   * @throws RequestError KEY_NOT_FOUND (2) for a job this node does not know, which clients take as done.
   */
  show(values: ReadonlyMap<string, string>): string {
    const id = values.get('trid') ?? values.get('id');
    if (id === undefined || !/^[0-9]{1,20}$/.test(id)) throw new RequestError(ResultCode.PARAMETER_ERROR, "missing or bad 'trid'");
    const job = this.jobs.get(BigInt(id).toString());
    if (job === undefined) throw new RequestError(ResultCode.KEY_NOT_FOUND, 'job not found');
    const progress = job.done ? 100 : (job.partitionsDone * 100) / Math.max(1, job.partitions);
    const now = Date.now();
    return [
      `trid=${job.id}`,
      `ns=${job.ns}`,
      ...(job.set === undefined ? [] : [`set=${job.set}`]),
      `status=${job.done ? 'done' : 'active'}(ok)`,
      `job-progress=${progress.toFixed(2)}`,
      `run-time=${(job.done ? job.finishedMs : now) - job.startedMs}`,
      `time-since-done=${job.done ? now - job.finishedMs : 0}`,
      `recs-succeeded=${job.succeeded}`,
      `recs-failed=${job.failed}`,
    ].join(':');
  }
}

/** Sleeps as long as a job limited to `recordsPerSecond` is ahead of its rate. */
async function throttle(recordsPerSecond: number, job: Job): Promise<void> {
  if (recordsPerSecond <= 0) return;
  const aheadMs = ((job.succeeded + job.failed) * 1000) / recordsPerSecond - (Date.now() - job.startedMs);
  if (aheadMs > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(aheadMs, 1000)));
}

/** Partitions in groups of `size`. */
export function groupsOf(partitions: number[], size: number): number[][] {
  const groups: number[][] = [];
  for (let start = 0; start < partitions.length; start += size) groups.push(partitions.slice(start, start + size));
  return groups;
}
