/**
 * The network seam: message-level connections between nodes. The production implementation
 * (tcp-network.ts) frames messages onto TCP; the simulated one (simulation.ts) passes them in
 * memory with configurable loss, delay and partitions. Both encode every message with the same
 * frame codec, so a message that would not survive the wire does not survive the simulation.
 *
 * Contract for both: handlers run on the owning node's event loop (or simulated host), never
 * synchronously inside send(); a closed connection never delivers again; close is idempotent.
 */

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

export interface Connection {
  /** "host:port" of the remote end, for logs. */
  readonly remoteAddress: string;
  readonly closed: boolean;
  /** Installs the handlers. Messages that arrive before this call are queued. */
  setHandlers(handlers: ConnectionHandlers): void;
  /**
   * Queues a message. Returns false (and sends nothing) if the connection is closed.
   * Throws RangeError if the encoded message exceeds MAX_FRAME_BYTES (a programming error).
   */
  send(message: WireMessage): boolean;
  /** Closes the connection; `reason` is reported to the local onClose handler. */
  close(reason: string): void;
}

export interface Listener {
  /** The bound address ("host:port"); with port 0 this is the ephemeral port chosen. */
  readonly address: string;
  close(): Promise<void>;
}

export interface Network {
  /** Starts accepting connections at "host:port". Rejects if the address is taken. */
  listen(address: string, onConnection: (connection: Connection) => void): Promise<Listener>;
  /** Opens a connection to "host:port". Failure to connect is reported through onClose. */
  connect(address: string): Connection;
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
