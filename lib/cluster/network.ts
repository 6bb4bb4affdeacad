/**
 * The network seam: message-level connections between nodes. The production implementation
 * (tcp-network.ts) frames messages onto TCP; the simulated one (sim/simulation.ts) passes them in
 * memory with configurable loss, delay and partitions. Both encode every message with the same
 * frame codec, so a message that would not survive the wire does not survive the simulation.
 *
 * Contract for both: handlers run on the owning node's event loop (or simulated host), never
 * synchronously inside send(); a closed connection never delivers again; close is idempotent.
 */

import { MAX_NODE_ID_BYTES } from './constants';
import type { FrameKeys } from './frame-auth';

/** The close reason of a connection that received a frame whose tag is wrong (altered, replayed, reordered, dropped or spliced). */
export const FRAME_AUTHENTICATION_FAILED = 'frame authentication failed';

/** A decoded wire message: a plain object with a string `type`. */
export interface WireMessage {
  type: string;
  [field: string]: unknown;
}

export interface ConnectionHandlers {
  onMessage(message: WireMessage): void;
  /** Called once, when the connection closes for any reason (local close, remote close, error). */
  onClose(reason: string): void;
}

/**
 * What a connection receives before its handlers are set (Connection.setHandlers: messages
 * that arrive before it are queued), kept alike by the real connection (tcp-network.ts) and
 * the simulated one (sim/simulation.ts): the frames in order, then a close. A connection
 * checks `handlers` itself on every frame, so a frame costs no closure.
 */
export class HandlerSlot {
  handlers: ConnectionHandlers | undefined;
  private frames: Buffer[] = [];
  private closeReason: string | undefined;

  /** Keeps a frame that arrived before the handlers. */
  hold(frame: Buffer): void {
    this.frames.push(frame);
  }

  /** Keeps the reason of a close that came before the handlers. */
  holdClose(reason: string): void {
    this.closeReason = reason;
  }

  /**
   * Installs `handlers`, then hands each held frame to `deliver` in order until `isClosed()`,
   * then a held close to `notifyClose` (once).
   */
  install(handlers: ConnectionHandlers, deliver: (frame: Buffer) => void, isClosed: () => boolean, notifyClose: (reason: string) => void): void {
    this.handlers = handlers;
    const held = this.frames;
    this.frames = [];
    for (const frame of held) {
      if (isClosed()) break;
      deliver(frame);
    }
    const reason = this.closeReason;
    if (reason === undefined) return;
    this.closeReason = undefined;
    notifyClose(reason);
  }
}

export interface Connection {
  /** "host:port" of the remote end, for logs. */
  readonly remoteAddress: string;
  /** The remote host alone (per-host limits on connections in their handshake). */
  readonly remoteHost: string;
  readonly closed: boolean;
  /**
   * Over TLS (`cluster.tls`): keying material exported from this TLS session (RFC 5705), which the cluster
   * handshake binds its proofs to, so they are valid on this TLS connection only. Undefined
   * without TLS (and until the TLS handshake is done).
   */
  readonly tlsBinding: Buffer | undefined;
  /** Installs the handlers. Messages that arrive before this call are queued. */
  setHandlers(handlers: ConnectionHandlers): void;
  /**
   * Queues a message. Returns false (and sends nothing) if the connection is closed.
   * Throws RangeError if the encoded message exceeds MAX_BODY_BYTES (a programming error).
   */
  send(message: WireMessage): boolean;
  /** Queues a message already encoded with encodeBody (frame.ts). Returns false if closed. */
  sendBody(body: Buffer): boolean;
  /**
   * From now on, tag every frame sent and require a valid tag on every frame received
   * (frame-auth.ts): a frame that fails closes the connection with the reason
   * FRAME_AUTHENTICATION_FAILED. Used on connections protected by the cluster secret alone;
   * called at once after the last frame of the handshake is sent or handled.
   */
  authenticateFrames(keys: FrameKeys): void;
  /**
   * Largest frame accepted from the peer from now on (default MAX_HANDSHAKE_FRAME_BYTES: a
   * connection is trusted with big frames only once authenticated).
   */
  setMaxFrameBytes(bytes: number): void;
  /** Closes the connection; `reason` is reported to the local onClose handler. */
  close(reason: string): void;
}

/** TLS material of cluster connections (PEM), as given in `cluster.tls`. */
export interface TlsSettings {
  key: string | Buffer;
  cert: string | Buffer;
  ca: string | Buffer | (string | Buffer)[];
}

export interface Listener {
  /** The bound address ("host:port"); with port 0 this is the ephemeral port chosen. */
  readonly address: string;
  close(): Promise<void>;
}

/** Per-call options of a Network. */
export interface NetworkOptions {
  /** Run the connection over TLS 1.3 with these certificates, verified both ways. */
  tls?: TlsSettings;
  /** Called when a connection's TLS handshake fails (a peer without a certificate of the CA, or not speaking TLS). */
  onTlsFailure?: (remoteAddress: string, reason: string) => void;
}

export interface Network {
  /** Starts accepting connections at "host:port". Rejects if the address is taken. */
  listen(address: string, onConnection: (connection: Connection) => void, options?: NetworkOptions): Promise<Listener>;
  /** Opens a connection to "host:port". Failure to connect is reported through onClose. */
  connect(address: string, options?: NetworkOptions): Connection;
  /**
   * Whether a listener at `host` can be reached from other machines. Networks that only exist
   * inside this process (the simulator's) leave it out: nobody outside can reach them.
   */
  reachableFromOtherMachines?(host: string): boolean;
}

/** Splits "host:port"; throws RangeError for anything else. */
export function parseAddress(address: string): { host: string; port: number } {
  const index = address.lastIndexOf(':');
  const host = index > 0 ? address.slice(0, index) : '';
  const port = Number(address.slice(index + 1));
  if (host.length === 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`cluster: "${address}" is not a "host:port" address`);
  }
  return { host: host.replace(/^\[(.*)\]$/, '$1'), port };
}

/** Whether `host` (a listen host) is a loopback address: 127.0.0.0/8, ::1 or "localhost". */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (bare === 'localhost' || bare === '::1' || bare === '0:0:0:0:0:0:0:1') return true;
  if (bare.startsWith('::ffff:')) return isLoopbackHost(bare.slice(7));
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare);
}

/** The host part of "host:port" (without brackets); the whole string if it has no port. */
export function hostOf(address: string): string {
  const index = address.lastIndexOf(':');
  const host = index > 0 ? address.slice(0, index) : address;
  return host.replace(/^\[(.*)\]$/, '$1');
}

/** Whether `value` is a valid node id: a non-empty string of at most MAX_NODE_ID_BYTES bytes. */
export function isNodeId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && Buffer.byteLength(value) <= MAX_NODE_ID_BYTES;
}

/** Longest "host:port" accepted from a peer. */
const MAX_ADDRESS_LENGTH = 300;

/** Whether `value` is a "host:port" address a peer may give (bounded length, parseable). */
export function isAddress(value: unknown): value is string {
  if (typeof value !== 'string' || value.length > MAX_ADDRESS_LENGTH) return false;
  try {
    parseAddress(value);
    return true;
  } catch {
    return false;
  }
}
