/**
 * The metrics listener (open()'s `metrics: { listen }`): `GET /metrics` serves db.metrics() in
 * Prometheus text format, `GET /` a status page an operator leaves open, and
 * `GET /status.json` the figures the page redraws from every 2 s (docs/operations.md, "Status page").
 * It serves operators: connections and request time are bounded, and it never writes data.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { METRICS_CONNECTIONS_MAX, METRICS_REQUEST_TIMEOUT_MS } from './constants';
import { STATUS_PAGE_HTML } from './status-page';

/** What the listener asks of its Db. */
export interface MetricsSource {
  metrics(): Promise<string>;
  status(): unknown;
}

export class MetricsServer {
  private constructor(
    private readonly server: http.Server,
    /** Where it listens (port 0 resolved). */
    readonly address: { host: string; port: number },
  ) {}

  /**
   * Starts listening.
   * @throws Error (EADDRINUSE and the like) when the address cannot be bound.
   */
  static async start(source: MetricsSource, listen: { host: string; port: number }, log: (message: string) => void): Promise<MetricsServer> {
    const server = http.createServer((request, response) => void handle(source, request, response, log));
    server.maxConnections = METRICS_CONNECTIONS_MAX;
    server.requestTimeout = METRICS_REQUEST_TIMEOUT_MS;
    server.headersTimeout = METRICS_REQUEST_TIMEOUT_MS;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listen.port, listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const bound = server.address() as AddressInfo;
    return new MetricsServer(server, { host: listen.host, port: bound.port });
  }

  /** Stops listening and closes open connections. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

async function handle(source: MetricsSource, request: http.IncomingMessage, response: http.ServerResponse, log: (message: string) => void): Promise<void> {
  const path = (request.url ?? '/').split('?')[0];
  if (request.method !== 'GET' && request.method !== 'HEAD') return send(response, 405, 'text/plain', 'only GET\n', { allow: 'GET, HEAD' });
  try {
    if (path === '/metrics') return send(response, 200, 'text/plain; version=0.0.4; charset=utf-8', await source.metrics());
    if (path === '/status.json') return send(response, 200, 'application/json', JSON.stringify(source.status()));
    if (path === '/' || path === '/index.html') return send(response, 200, 'text/html; charset=utf-8', STATUS_PAGE_HTML);
    return send(response, 404, 'text/plain', 'not found: try /metrics or /\n');
  } catch (error) {
    log(`metrics: ${path} failed: ${(error as Error).message}`);
    return send(response, 503, 'text/plain', `unavailable: ${(error as Error).message}\n`);
  }
}

function send(response: http.ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...headers });
  response.end(response.req.method === 'HEAD' ? undefined : body);
}
