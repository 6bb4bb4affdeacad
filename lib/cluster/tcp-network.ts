/**
 * Production Network: TCP via node:net, or TLS 1.3 via node:tls with certificates verified
 * both ways, one frame per message (frame.ts); on a connection protected by the secret alone,
 * every frame after the handshake is tagged and checked (frame-auth.ts). The frames sent in
 * one turn of the event loop leave in one write (the socket is corked until the next tick).
 * A protocol violation or socket error closes that connection, is logged once, and is never
 * thrown out of an event handler.
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
  FRAME_HEADER_BYTES,
  FRAME_TAG_BYTES,
  HANDSHAKE_TIMEOUT_MS,
  MAX_CONNECTION_BUFFERED_BYTES,
  MAX_HANDSHAKE_FRAME_BYTES,
  MAX_INBOUND_CONNECTIONS,
  MAX_INBOUND_PENDING_BYTES,
  MAX_UNAUTHENTICATED_CONNECTIONS,
  MAX_UNAUTHENTICATED_PER_HOST,
} from './constants';
import { decodeBody, encodeBody, FrameDecoder, frameOf } from './frame';
import type { FrameKeys, FrameMac } from './frame-auth';
import { frameMac } from './frame-auth';
import type { Connection, ConnectionHandlers, Listener, Network, NetworkOptions, TlsSettings, WireMessage } from './network';
import { FRAME_AUTHENTICATION_FAILED, HandlerSlot, isLoopbackHost, parseAddress } from './network';
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

/**
 * Sockets of a TLS listener still in their TLS handshake, per remote host: past
 * MAX_UNAUTHENTICATED_PER_HOST from one host or MAX_UNAUTHENTICATED_CONNECTIONS in all, the
 * oldest is destroyed to admit a new one (so idle connections cannot lock peers out). The
 * fabric applies the same caps to connections past TLS that have not completed the cluster
 * handshake.
 */
class TlsHandshakes {
  /** Remote "address:port" -> socket, in arrival order. */
  private readonly pending = new Map<string, net.Socket>();
  evicted = 0;

  admit(socket: net.Socket): void {
    const host = socket.remoteAddress ?? '';
    const key = `${host}:${socket.remotePort}`;
    let fromHost = 0;
    let oldestFromHost: string | undefined;
    for (const [other, pendingSocket] of this.pending) {
      if (pendingSocket.remoteAddress !== host) continue;
      fromHost++;
      oldestFromHost ??= other;
    }
    const evict = fromHost >= MAX_UNAUTHENTICATED_PER_HOST ? oldestFromHost : this.pending.size >= MAX_UNAUTHENTICATED_CONNECTIONS ? this.pending.keys().next().value : undefined;
    if (evict !== undefined) {
      this.evicted++;
      this.pending.get(evict)!.destroy();
      this.pending.delete(evict);
    }
    this.pending.set(key, socket);
    socket.once('close', () => {
      if (this.pending.get(key) === socket) this.pending.delete(key);
    });
  }

  /** The TLS handshake of the connection from `remote` ("address:port") completed. */
  done(remote: string): void {
    this.pending.delete(remote);
  }
}

class TcpConnection implements Connection {
  closed = false;
  /** The handlers, and the whole frames (and a close) received before they were set. */
  private readonly slot = new HandlerSlot();
  private readonly decoder = new FrameDecoder(MAX_HANDSHAKE_FRAME_BYTES);
  private exported: Buffer | undefined;
  /** Set once frames are authenticated: tags what is sent, checks what is received. */
  private sealer: FrameMac | undefined;
  private checker: FrameMac | undefined;
  /** The socket is corked until the next tick, so the frames of this turn leave in one write. */
  private corked = false;

  constructor(
    private readonly socket: net.Socket,
    readonly remoteAddress: string,
    readonly remoteHost: string,
    private readonly logger: Logger,
    private readonly budget: InboundBudget | undefined,
    /** Where protocol violations are logged: a listener's rate-limited log (anyone can send garbage), or the logger. */
    private readonly violations: Pick<Logger, 'warn'> = logger,
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
    this.slot.install(
      handlers,
      (frame) => this.deliver(frame),
      () => this.closed,
      (reason) => this.notifyClose(reason),
    );
  }

  send(message: WireMessage): boolean {
    if (this.closed) return false;
    return this.sendBody(encodeBody(message));
  }

  sendBody(body: Buffer): boolean {
    if (this.closed) return false;
    const frame = frameOf(body, this.sealer === undefined ? 0 : FRAME_TAG_BYTES);
    if (this.socket.writableLength + frame.length > MAX_CONNECTION_BUFFERED_BYTES) {
      this.close(`outbound buffer over ${MAX_CONNECTION_BUFFERED_BYTES} bytes (peer not reading)`);
      return false;
    }
    this.sealer?.seal(frame);
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(frame);
    return true;
  }

  authenticateFrames(keys: FrameKeys): void {
    this.sealer = frameMac(keys.send);
    this.checker = frameMac(keys.receive);
    this.decoder.tagBytes = FRAME_TAG_BYTES;
  }

  setMaxFrameBytes(bytes: number): void {
    this.decoder.maxFrameBytes = bytes;
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.budget?.release(this);
    // end() flushes what was queued (e.g. a handshake rejection); destroy() follows regardless.
    this.socket.end();
    const socket = this.socket;
    setTimeout(() => socket.destroy(), 1_000).unref();
    if (this.slot.handlers !== undefined) this.notifyClose(reason);
    else this.slot.holdClose(reason);
  }

  private notifyClose(reason: string): void {
    const handlers = this.slot.handlers;
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
      let frame: Buffer | undefined;
      try {
        frame = this.decoder.nextFrame();
      } catch (error) {
        this.violation((error as Error).message);
        return;
      }
      if (frame === undefined) break;
      if (this.slot.handlers === undefined) this.slot.hold(frame);
      else this.deliver(frame);
      if (this.closed) return;
    }
    if (this.budget !== undefined && !this.budget.update(this, this.decoder.pendingBytes)) {
      this.violations.warn(`cluster: closing connection with ${this.remoteAddress}: incomplete frames of all connections would exceed ${this.budget.limitBytes} bytes`);
      this.close('inbound buffer limit');
    }
  }

  private violation(reason: string): void {
    this.violations.warn(`cluster: closing connection with ${this.remoteAddress}: ${reason}`);
    this.close(`protocol violation: ${reason}`);
  }

  /** Checks a whole frame's tag (once frames are authenticated), then decodes and hands on its message. */
  private deliver(frame: Buffer): void {
    let body = frame.subarray(FRAME_HEADER_BYTES);
    if (this.checker !== undefined) {
      // The fabric counts and logs this close (rate-limited): whoever is on the path can cause it.
      if (!this.checker.verify(frame)) {
        this.close(FRAME_AUTHENTICATION_FAILED);
        return;
      }
      body = body.subarray(0, body.length - FRAME_TAG_BYTES);
    }
    let message: WireMessage;
    try {
      message = decodeBody(body);
    } catch (error) {
      this.violation((error as Error).message);
      return;
    }
    try {
      this.slot.handlers!.onMessage(message);
    } catch (error) {
      this.logger.error(`cluster: closing connection with ${this.remoteAddress}: message handler threw`, {
        type: message.type,
        error: String((error as Error)?.stack ?? error),
      });
      this.close('message handler failed');
    }
  }
}

/** Options of node:tls shared by both ends with certificates: TLS 1.3, the cluster's CA only. */
function tlsContextOptions(settings: TlsSettings): tls.SecureContextOptions {
  return { key: settings.key, cert: settings.cert, ca: settings.ca, minVersion: 'TLSv1.3' };
}

/** Real TCP (or TLS) network. */
export class TcpNetwork implements Network {
  constructor(private readonly logger: Logger) {}

  reachableFromOtherMachines(host: string): boolean {
    return !isLoopbackHost(host);
  }

  listen(address: string, onConnection: (connection: Connection) => void, options: NetworkOptions = {}): Promise<Listener> {
    const { host, port } = parseAddress(address);
    const budget = new InboundBudget(MAX_INBOUND_PENDING_BYTES);
    const handshakes = new TlsHandshakes();
    const violations = new LogLimiter(this.logger, realClock, AUTH_FAILURE_LOG_LIMIT, AUTH_FAILURE_LOG_WINDOW_MS);
    const accept = (socket: net.Socket) => {
      const remote = `${socket.remoteAddress}:${socket.remotePort}`;
      handshakes.done(remote);
      const connection = new TcpConnection(socket, remote, socket.remoteAddress ?? '', this.logger, budget, violations);
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
      server.on('connection', (socket: net.Socket) => handshakes.admit(socket));
      server.on('tlsClientError', (error: Error, socket: tls.TLSSocket) => options.onTlsFailure?.(`${socket.remoteAddress}:${socket.remotePort}`, error.message));
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
    let secured = false;
    socket.once('secureConnect', () => (secured = true));
    socket.on('error', (error: Error & { code?: string }) => {
      // A peer that is down is not a failed handshake.
      if (!secured && !['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT'].includes(error.code ?? '')) options.onTlsFailure?.(address, error.message);
    });
    return new TcpConnection(socket, address, host, this.logger, undefined);
  }
}
