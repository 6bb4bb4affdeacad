/**
 * Production Network: TCP via node:net, or TLS via node:tls (certificates verified both ways),
 * one frame per message (frame.ts). A protocol violation or socket error closes that
 * connection, is logged once, and is never thrown out of an event handler.
 *
 * Bounds (docs/cluster.md, "Security"): a listener holds at most MAX_INBOUND_CONNECTIONS
 * connections; a connection accepts frames of at most MAX_HANDSHAKE_FRAME_BYTES until the
 * fabric raises its limit after authentication; all inbound connections of a listener hold at
 * most MAX_INBOUND_PENDING_BYTES in incomplete frames together.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import {
  AUTH_FAILURE_LOG_LIMIT,
  AUTH_FAILURE_LOG_WINDOW_MS,
  HANDSHAKE_TIMEOUT_MS,
  MAX_CONNECTION_BUFFERED_BYTES,
  MAX_HANDSHAKE_FRAME_BYTES,
  MAX_INBOUND_CONNECTIONS,
  MAX_INBOUND_PENDING_BYTES,
} from './constants';
import { decodeBody, encodeBody, FrameDecoder, frameOf, type FrameSealer } from './frame';
import type { Connection, ConnectionHandlers, Listener, Network, NetworkOptions, TlsSettings, WireMessage } from './network';
import { isLoopbackHost, parseAddress } from './network';
import type { Logger } from './seams';
import { LogLimiter, realClock } from './seams';

/** Label of the keying material a TLS connection exports for the cluster handshake (RFC 5705). */
const TLS_EXPORTER_LABEL = 'EXPORTER-shoal-cluster-handshake';
const TLS_EXPORTER_BYTES = 32;

/**
 * Bytes held in incomplete inbound frames by the connections of one listener. A connection
 * whose share would take the total past the limit is closed (docs/cluster.md, "Security").
 */
class InboundBudget {
  private totalBytes = 0;
  private readonly held = new Map<TcpConnection, number>();

  constructor(readonly limitBytes: number) {}

  get bytes(): number {
    return this.totalBytes;
  }

  /** Records that `connection` now holds `bytes`; returns false if that is over the limit (nothing recorded). */
  update(connection: TcpConnection, bytes: number): boolean {
    const previous = this.held.get(connection) ?? 0;
    if (bytes > previous && this.totalBytes - previous + bytes > this.limitBytes) return false;
    this.totalBytes += bytes - previous;
    if (bytes === 0) this.held.delete(connection);
    else this.held.set(connection, bytes);
    return true;
  }

  release(connection: TcpConnection): void {
    this.update(connection, 0);
  }
}

class TcpConnection implements Connection {
  closed = false;
  readonly delivery = 'stream';
  private handlers: ConnectionHandlers | undefined;
  private pending: Buffer[] = [];
  private closeReason: string | undefined;
  private readonly decoder = new FrameDecoder(MAX_HANDSHAKE_FRAME_BYTES);
  private sealer: FrameSealer | undefined;
  private exported: Buffer | undefined;

  constructor(
    private readonly socket: net.Socket,
    readonly remoteAddress: string,
    readonly remoteHost: string,
    private readonly logger: Logger,
    private readonly budget: InboundBudget | undefined,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error: Error) => this.close(`socket error: ${error.message}`));
    socket.on('close', () => this.close('closed by peer'));
  }

  get tlsBinding(): Buffer | undefined {
    if (this.exported === undefined && this.socket instanceof tls.TLSSocket && this.socket.encrypted === true) {
      try {
        this.exported = this.socket.exportKeyingMaterial(TLS_EXPORTER_BYTES, TLS_EXPORTER_LABEL, Buffer.alloc(0));
      } catch {
        return undefined; // the TLS handshake is not done yet
      }
    }
    return this.exported;
  }

  setHandlers(handlers: ConnectionHandlers): void {
    this.handlers = handlers;
    const queued = this.pending;
    this.pending = [];
    for (const body of queued) {
      if (this.closed) break;
      this.deliver(body);
    }
    if (this.closed && this.closeReason !== undefined) this.notifyClose(this.closeReason);
  }

  send(message: WireMessage): boolean {
    if (this.closed) return false;
    return this.sendBody(encodeBody(message));
  }

  sendBody(body: Buffer): boolean {
    if (this.closed) return false;
    const frame = this.sealer === undefined ? frameOf(body) : this.sealer.sealFrame(body);
    if (this.socket.writableLength + frame.length > MAX_CONNECTION_BUFFERED_BYTES) {
      this.close(`outbound buffer over ${MAX_CONNECTION_BUFFERED_BYTES} bytes (peer not reading)`);
      return false;
    }
    this.socket.write(frame);
    return true;
  }

  setMaxFrameBytes(bytes: number): void {
    this.decoder.maxFrameBytes = bytes;
  }

  seal(sealer: FrameSealer): void {
    this.sealer = sealer;
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    this.budget?.release(this);
    // end() flushes what was queued (e.g. a handshake rejection); destroy() follows regardless.
    this.socket.end();
    const socket = this.socket;
    setTimeout(() => socket.destroy(), 1_000).unref();
    if (this.handlers !== undefined) this.notifyClose(reason);
  }

  private notifyClose(reason: string): void {
    const handlers = this.handlers;
    this.closeReason = undefined;
    try {
      handlers?.onClose(reason);
    } catch (error) {
      this.logger.error('cluster: connection close handler threw', { remote: this.remoteAddress, error: String(error) });
    }
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.decoder.append(chunk);
    for (;;) {
      let body: Buffer | undefined;
      try {
        body = this.decoder.next();
      } catch (error) {
        this.violation((error as Error).message);
        return;
      }
      if (body === undefined) break;
      if (this.handlers === undefined) this.pending.push(body);
      else this.deliver(body);
      if (this.closed) return;
    }
    if (this.budget !== undefined && !this.budget.update(this, this.decoder.pendingBytes)) {
      this.logger.warn(`cluster: closing connection with ${this.remoteAddress}: incomplete frames of all connections would exceed ${this.budget.limitBytes} bytes`);
      this.close('inbound buffer limit');
    }
  }

  private violation(reason: string): void {
    this.logger.warn(`cluster: closing connection with ${this.remoteAddress}: ${reason}`);
    this.close(`protocol violation: ${reason}`);
  }

  private deliver(frameBody: Buffer): void {
    let message: WireMessage;
    try {
      const body = this.sealer === undefined ? frameBody : this.sealer.open(frameBody)!;
      message = decodeBody(body);
    } catch (error) {
      this.violation((error as Error).message);
      return;
    }
    try {
      this.handlers!.onMessage(message);
    } catch (error) {
      this.logger.error(`cluster: closing connection with ${this.remoteAddress}: message handler threw`, {
        type: message.type,
        error: String((error as Error)?.stack ?? error),
      });
      this.close('message handler failed');
    }
  }
}

/** Options of node:tls shared by both ends: TLS 1.3, the cluster's CA only. */
function tlsContextOptions(settings: TlsSettings): tls.SecureContextOptions {
  return { key: settings.key, cert: settings.cert, ca: settings.ca, minVersion: 'TLSv1.3' };
}

/** Real TCP (or TLS) network. */
export class TcpNetwork implements Network {
  private readonly tlsFailures: LogLimiter;

  constructor(private readonly logger: Logger) {
    this.tlsFailures = new LogLimiter(logger, realClock, AUTH_FAILURE_LOG_LIMIT, AUTH_FAILURE_LOG_WINDOW_MS);
  }

  reachableFromOtherMachines(host: string): boolean {
    return !isLoopbackHost(host);
  }

  listen(address: string, onConnection: (connection: Connection) => void, options: NetworkOptions = {}): Promise<Listener> {
    const { host, port } = parseAddress(address);
    const budget = new InboundBudget(MAX_INBOUND_PENDING_BYTES);
    const accept = (socket: net.Socket) => {
      const remote = `${socket.remoteAddress}:${socket.remotePort}`;
      const connection = new TcpConnection(socket, remote, socket.remoteAddress ?? '', this.logger, budget);
      try {
        onConnection(connection);
      } catch (error) {
        this.logger.error('cluster: connection handler threw', { remote, error: String(error) });
        connection.close('connection handler failed');
      }
    };
    let server: net.Server;
    if (options.tls === undefined) {
      server = net.createServer(accept);
    } else {
      // Only peers with a certificate from the cluster's CA get past the TLS handshake.
      server = tls.createServer({ ...tlsContextOptions(options.tls), requestCert: true, rejectUnauthorized: true, handshakeTimeout: HANDSHAKE_TIMEOUT_MS }, accept);
      server.on('tlsClientError', (error: Error, socket: tls.TLSSocket) => {
        this.tlsFailures.warn(`cluster: TLS handshake from ${socket.remoteAddress}:${socket.remotePort} failed: ${error.message}`);
      });
    }
    server.maxConnections = MAX_INBOUND_CONNECTIONS;
    server.on('error', (error) => this.logger.error('cluster: listener error', { address, error: error.message }));
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        const bound = server.address() as net.AddressInfo;
        const boundHost = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
        resolve({
          address: `${boundHost}:${bound.port}`,
          close: () => new Promise<void>((done) => server.close(() => done())),
        });
      });
    });
  }

  connect(address: string, options: NetworkOptions = {}): Connection {
    const { host, port } = parseAddress(address);
    if (options.tls === undefined) return new TcpConnection(net.connect({ host, port }), address, host, this.logger, undefined);
    // The peer's certificate must chain to the cluster's CA. Its name is not checked: nodes
    // dial addresses (often IPs) they learned from each other, and the CA is the cluster's own.
    const socket = tls.connect({ host, port, ...tlsContextOptions(options.tls), checkServerIdentity: () => undefined });
    socket.on('error', (error: Error & { code?: string }) => {
      if (error.code !== undefined && /CERT|SSL|TLS|ERR_SSL|SELF_SIGNED|UNABLE_TO/.test(error.code)) {
        this.tlsFailures.warn(`cluster: TLS handshake with ${address} failed: ${error.message}`);
      }
    });
    return new TcpConnection(socket, address, host, this.logger, undefined);
  }
}
