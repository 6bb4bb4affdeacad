/**
 * Client side of the admin protocol, for the operator CLI (`npx shoal`): connects to any
 * node's fabric port with an admin hello and sends requests answered on the same connection.
 */
import { randomBytes } from 'node:crypto';
import { PROTOCOL_VERSION_CURRENT, PROTOCOL_VERSION_MIN_SUPPORTED } from './constants';
import type { Connection, Network, WireMessage } from './network';
import { silentLogger } from './seams';
import { TcpNetwork } from './tcp-network';

export type AdminRequest = 'admin-state' | 'admin-quiesce' | 'admin-quiesce-undo' | 'admin-recluster';

export class AdminClient {
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  private closedReason: string | undefined;

  private constructor(private readonly connection: Connection, private readonly timeoutMs: number) {}

  /**
   * Connects and completes the handshake.
   * @throws Error if the node refuses (wrong cluster name, version) or does not answer in time.
   */
  static connect(address: string, options: { clusterName?: string; timeoutMs?: number; network?: Network } = {}): Promise<AdminClient> {
    const network = options.network ?? new TcpNetwork(silentLogger);
    const timeoutMs = options.timeoutMs ?? 5_000;
    const connection = network.connect(address);
    const client = new AdminClient(connection, timeoutMs);
    return new Promise((resolve, reject) => {
      let handshaken = false;
      const timer = setTimeout(() => {
        connection.close('admin handshake timeout');
        reject(new Error(`no answer from ${address} within ${timeoutMs} ms`));
      }, timeoutMs);
      connection.setHandlers({
        onMessage: (message) => {
          if (!handshaken) {
            clearTimeout(timer);
            if (message.type === 'hello-ack') {
              handshaken = true;
              resolve(client);
            } else {
              reject(new Error(`${address} refused the admin connection: ${String(message.reason ?? message.type)}`));
              connection.close('refused');
            }
            return;
          }
          client.onReply(message);
        },
        onClose: (reason) => {
          clearTimeout(timer);
          client.onClose(reason);
          if (!handshaken) reject(new Error(`cannot reach ${address}: ${reason}`));
        },
      });
      connection.send({
        type: 'hello',
        role: 'admin',
        protocolVersion: PROTOCOL_VERSION_CURRENT,
        minProtocolVersion: PROTOCOL_VERSION_MIN_SUPPORTED,
        nodeId: `admin-${randomBytes(4).toString('hex')}`,
        clusterName: options.clusterName ?? 'shoal',
      });
    });
  }

  /** Sends one request; resolves with its value. Rejects on an error reply, a timeout or a closed connection. */
  request(type: AdminRequest): Promise<unknown> {
    if (this.closedReason !== undefined) return Promise.reject(new Error(`admin connection closed: ${this.closedReason}`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${type}: no answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      this.connection.send({ type, id });
    });
  }

  close(): void {
    this.connection.close('admin client done');
  }

  private onReply(message: WireMessage): void {
    const waiter = this.waiting.get(message.id as number);
    if (waiter === undefined) return;
    this.waiting.delete(message.id as number);
    clearTimeout(waiter.timer);
    if (message.ok === true) waiter.resolve(message.value);
    else waiter.reject(new Error(String((message.error as { message?: string } | undefined)?.message ?? 'admin request failed')));
  }

  private onClose(reason: string): void {
    this.closedReason = reason;
    for (const waiter of this.waiting.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error(`admin connection closed: ${reason}`));
    }
    this.waiting.clear();
  }
}
