/**
 * Lifecycle: handleSignals: false leaves SIGTERM and SIGINT to the application (an HTTP service
 * draining its requests must not find its Db closed under it), and `await using` closes a Db.
 */
import * as http from 'node:http';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode, ShoalError, open } from '../lib/index';
import { startNode, waitForOutput } from './helpers/child';
import { track, useDbCleanup } from './helpers/db';
import { tempDir } from './helpers/temp';

useDbCleanup(['cache', 'app']);

const CHILD = path.join(__dirname, 'fixtures', 'http-shutdown-child.js');

function memoryOptions(dataDir: string, handleSignals?: boolean) {
  return {
    dataDir,
    namespaces: [{ name: 'cache', storage: { type: 'memory' as const, maxBytes: 1 << 20 } }],
    log: () => undefined,
    ...(handleSignals === undefined ? {} : { handleSignals }),
  };
}

describe('handleSignals', () => {
  it('false installs no signal handler; the default installs one while the Db is open', async () => {
    const before = { term: process.listenerCount('SIGTERM'), int: process.listenerCount('SIGINT') };
    const quiet = track(await open(memoryOptions(tempDir(), false)));
    expect(process.listenerCount('SIGTERM')).toBe(before.term);
    expect(process.listenerCount('SIGINT')).toBe(before.int);
    const handled = track(await open(memoryOptions(tempDir())));
    expect(process.listenerCount('SIGTERM')).toBe(before.term + 1);
    expect(process.listenerCount('SIGINT')).toBe(before.int + 1);
    await handled.close();
    expect(process.listenerCount('SIGTERM')).toBe(before.term);
    await quiet.close();
    expect(process.listenerCount('SIGTERM')).toBe(before.term);
  });

  it('must be a boolean', async () => {
    await expect(open({ ...memoryOptions(tempDir()), handleSignals: 'no' as never })).rejects.toThrow(TypeError);
  });

  interface Drained {
    /** The in-flight request's response, or the error it failed with. */
    response: { status: number; body: string } | Error;
    exit: { code: number | null; signal: NodeJS.Signals | null };
    listeners: number;
    dataDir: string;
  }

  /** Starts the HTTP service, sends one request, SIGTERMs the service while that request is in flight. */
  async function drainUnderSigterm(handleSignals: boolean): Promise<Drained> {
    const dataDir = tempDir();
    const child = startNode(CHILD, [dataDir, String(handleSignals)]);
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exit = new Promise<Drained['exit']>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    await waitForOutput(child, 'listening', 20_000);
    const [, port, listeners] = /listening (\d+) signal-listeners (\d+)/.exec(output)!;
    const agent = new http.Agent({ keepAlive: true });
    const response = new Promise<Drained['response']>((resolve) => {
      http
        .get({ host: '127.0.0.1', port: Number(port), path: '/last-write', agent }, (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        })
        .on('error', resolve);
    });
    await waitForOutput(child, 'request /last-write', 20_000);
    child.kill('SIGTERM');
    const result = { response: await response, exit: await exit, listeners: Number(listeners), dataDir };
    agent.destroy();
    return result;
  }

  it('false: an HTTP service draining on SIGTERM makes its last write, then closes the Db', async () => {
    const { response, exit, listeners, dataDir } = await drainUnderSigterm(false);
    expect(listeners).toBe(1); // the service's own
    expect(response).toEqual({ status: 200, body: 'stored' });
    // The service ended by itself once its request was done and its Db closed...
    expect(exit).toEqual({ code: 0, signal: null });
    // ...cleanly: the next open is warm and has the last write.
    const db = track(await open({ dataDir, namespaces: [{ name: 'app', storage: { type: 'memory', maxBytes: 16 << 20 } }], log: () => undefined }));
    expect(db.stats().namespaces.app!.startMode).toBe('warm');
    expect((await db.get({ ns: 'app', key: '/last-write' }))?.bins).toEqual({ done: true });
  });

  it('default: Shoal closes the Db at SIGTERM, under the draining service', async () => {
    const { response, exit, listeners } = await drainUnderSigterm(true);
    expect(listeners).toBe(2);
    // The service used process.once, so once Shoal has closed the Db no listener is left and
    // Shoal re-raises the signal: the request dies with the process (or, had the write come
    // first, it would have got NOT_OPEN). Either way the last write is lost.
    if (response instanceof Error) expect(exit.signal).toBe('SIGTERM');
    else expect(response).toEqual({ status: 500, body: ErrorCode.NOT_OPEN });
  });
});

describe('Symbol.asyncDispose', () => {
  it('is defined where the runtime has the symbol (Node 20.4+)', () => {
    expect(typeof Symbol.asyncDispose).toBe('symbol');
  });

  it('`await using` closes the Db at the end of the scope', async () => {
    let escaped: Awaited<ReturnType<typeof open>> | undefined;
    {
      await using db = track(await open(memoryOptions(tempDir(), false)));
      await db.put({ ns: 'cache', key: 'k' }, { a: 1 });
      escaped = db;
    }
    const error = await escaped.get({ ns: 'cache', key: 'k' }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ShoalError);
    expect((error as ShoalError).code).toBe(ErrorCode.NOT_OPEN);
  });
});
