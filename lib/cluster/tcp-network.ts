/**
 * Production Network: TCP via node:net, one frame per message (frame.ts). A protocol
 * violation or socket error closes that connection, is logged once, and is never thrown out of
 * an event handler.
 */
import * as net from 'node:net';
import { MAX_CONNECTION_BUFFERED_BYTES } from './constants';
import { encodeFrame, FrameDecoder } from './frame';
import type { Connection, ConnectionHandlers, Listener, Network, WireMessage } from './network';
import { parseAddress } from './network';
import type { Logger } from './seams';

class TcpConnection implements Connection {
  closed = false;
  private handlers: ConnectionHandlers | undefined;
  private pending: WireMessage[] = [];
  private closeReason: string | undefined;
  private readonly decoder = new FrameDecoder();

  constructor(private readonly socket: net.Socket, readonly remoteAddress: string, private readonly logger: Logger) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error: Error) => this.close(`socket error: ${error.message}`));
    socket.on('close', () => this.close('closed by peer'));
  }

  setHandlers(handlers: ConnectionHandlers): void {
    this.handlers = handlers;
    const queued = this.pending;
    this.pending = [];
    for (const message of queued) this.deliver(message);
    if (this.closed && this.closeReason !== undefined) this.notifyClose(this.closeReason);
  }

  send(message: WireMessage): boolean {
    if (this.closed) return false;
    const frame = encodeFrame(message);
    if (this.socket.writableLength + frame.length > MAX_CONNECTION_BUFFERED_BYTES) {
      this.close(`outbound buffer over ${MAX_CONNECTION_BUFFERED_BYTES} bytes (peer not reading)`);
      return false;
    }
    this.socket.write(frame);
    return true;
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
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
    let messages: WireMessage[];
    try {
      messages = this.decoder.push(chunk);
    } catch (error) {
      this.logger.warn(`cluster: closing connection with ${this.remoteAddress}: ${(error as Error).message}`);
      this.close(`protocol violation: ${(error as Error).message}`);
      return;
    }
    for (const message of messages) {
      if (this.closed) return;
      if (this.handlers === undefined) this.pending.push(message);
      else this.deliver(message);
    }
  }

  private deliver(message: WireMessage): void {
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

/** Real TCP network. */
export class TcpNetwork implements Network {
  constructor(private readonly logger: Logger) {}

  listen(address: string, onConnection: (connection: Connection) => void): Promise<Listener> {
    const { host, port } = parseAddress(address);
    const server = net.createServer((socket) => {
      const remote = `${socket.remoteAddress}:${socket.remotePort}`;
      const connection = new TcpConnection(socket, remote, this.logger);
      try {
        onConnection(connection);
      } catch (error) {
        this.logger.error('cluster: connection handler threw', { remote, error: String(error) });
        connection.close('connection handler failed');
      }
    });
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

  connect(address: string): Connection {
    const { host, port } = parseAddress(address);
    const socket = net.connect({ host, port });
    return new TcpConnection(socket, address, this.logger);
  }
}
