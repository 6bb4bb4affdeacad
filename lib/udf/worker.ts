/**
 * The UDF worker thread (runner.ts starts it): owns the Lua engine (engine.ts) and answers the
 * runner's messages in order, one at a time. Nothing a module does reaches the Db's thread:
 * the worker's own deadline ends it when a call never returns.
 *
 * Messages in: `{ id, type: 'sources', sources }`, `{ id, type: 'check', name, source }`,
 * `{ id, type: 'apply', call }`. Out: `{ type: 'ready' }` once the engine is loaded, then
 * `{ id, result }` for each check and apply.
 */
import { parentPort } from 'node:worker_threads';
import { UdfEngine } from './engine';
import type { WorkerRequest } from './runner';

const port = parentPort!;

async function main(): Promise<void> {
  const engine = await UdfEngine.create();
  port.on('message', (request: WorkerRequest) => {
    if (request.type === 'sources') engine.setSources(request.sources);
    else if (request.type === 'check') port.postMessage({ id: request.id, result: engine.check(request.name, request.source) });
    else port.postMessage({ id: request.id, result: engine.apply(request.call) });
  });
  port.postMessage({ type: 'ready' });
}

void main();
