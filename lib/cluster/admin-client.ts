/**
 * Client side of the admin protocol, for the operator CLI (`npx shoal`): connects to any
 * node's fabric port with an admin hello and sends requests answered on the same connection.
 * Against a node with a cluster secret it must hold the secret (both ends prove it before any
 * request is sent, and every later frame is tagged with keys derived from it); against a node
 * with `cluster.tls` it needs the cluster's CA, a certificate signed by it, and the secret.
 */
import { ClusterSecrets, ConnectorHandshake } from './auth';
import { MAX_FRAME_BYTES, PROTOCOL_VERSION_CURRENT, PROTOCOL_VERSION_MIN_SUPPORTED } from './constants';
import type { Connection, Network, TlsSettings, WireMessage } from './network';
import { cryptoRandom, silentLogger } from './seams';
import { TcpNetwork } from './tcp-network';

export type AdminRequest =
  | 'admin-state'
  | 'admin-quiesce'
  | 'admin-quiesce-undo'
  | 'admin-recluster'
  | 'admin-xdr-ship'
  | 'admin-xdr-floor'
  | 'admin-xdr-wait'
  | 'admin-xdr-part'
  | 'admin-xdr-truncate'
  // The operator's XDR and backup requests (lib/xdr/admin.ts).
  | 'admin-xdr-state'
  | 'admin-xdr-add'
  | 'admin-xdr-remove'
  | 'admin-backup-scan'
  | 'admin-restore';

export interface AdminConnectOptions {
  clusterName?: string;
  /** The cluster secret (string of at least 16 characters, or a Buffer), if the cluster has one. */
  secret?: string | Buffer;
  /** The secrets as a node holds them (cluster peers polling each other, lib/xdr/); instead of `secret`. */
  secrets?: ClusterSecrets;
  /** TLS material, if the cluster runs TLS. */
  tls?: TlsSettings;
  timeoutMs?: number;
  network?: Network;
}

export class AdminClient {
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  private closedReason: string | undefined;

  private constructor(private readonly connection: Connection, private readonly timeoutMs: number) {}

  /**
   * Connects and completes the handshake.
   * @throws TypeError for a malformed secret; Error if the node refuses (wrong cluster name,
   *   version or secret), requires a secret this client does not have, fails to prove its
   *   own, or does not answer in time.
   */
  static async connect(address: string, options: AdminConnectOptions = {}): Promise<AdminClient> {
    const secrets = options.secrets ?? (options.secret === undefined ? undefined : new ClusterSecrets(options.secret));
    const keys = secrets === undefined ? undefined : await secrets.keys();
    const network = options.network ?? new TcpNetwork(silentLogger);
    const timeoutMs = options.timeoutMs ?? 5_000;
    let tlsFailure: string | undefined;
    const connection = network.connect(address, { tls: options.tls, onTlsFailure: (_remote, reason) => (tlsFailure = reason) });
    const client = new AdminClient(connection, timeoutMs);
    const handshake = new ConnectorHandshake(
      connection,
      {
        protocolVersion: PROTOCOL_VERSION_CURRENT,
        minProtocolVersion: PROTOCOL_VERSION_MIN_SUPPORTED,
        nodeId: `admin-${cryptoRandom.nextBytes!(4).toString('hex')}`,
        clusterName: options.clusterName ?? 'shoal',
        address: '',
        role: 'admin',
      },
      keys,
      cryptoRandom,
      options.tls !== undefined,
    );
    return new Promise((resolve, reject) => {
      let handshaken = false;
      const timer = setTimeout(() => {
        connection.close('admin handshake timeout');
        reject(new Error(`no answer from ${address} within ${timeoutMs} ms`));
      }, timeoutMs);
      connection.setHandlers({
        onMessage: (message) => {
          if (handshaken) {
            client.onReply(message);
            return;
          }
          const outcome = handshake.onMessage(message);
          if (outcome.kind === 'pending') return;
          clearTimeout(timer);
          if (outcome.kind === 'failed') {
            reject(new Error(`${address} ${outcome.refused ? 'refused the admin connection' : 'handshake failed'}: ${outcome.reason.replace(/^refused: /, '')}`));
            connection.close('refused');
            return;
          }
          handshaken = true;
          connection.setMaxFrameBytes(MAX_FRAME_BYTES);
          resolve(client);
        },
        onClose: (reason) => {
          clearTimeout(timer);
          client.onClose(reason);
          if (handshaken) return;
          if (tlsFailure !== undefined) reject(new Error(`TLS handshake with ${address} failed: ${tlsFailure}`));
          else if (/^closed by peer|ECONNRESET|protocol violation/.test(reason) && keys === undefined && options.tls === undefined) {
            // A node with certificates speaks only TLS: it drops a plain hello unanswered.
            reject(new Error(`${address} closed the connection without answering the handshake: it requires the cluster secret (or TLS certificates)`));
          } else reject(new Error(`cannot reach ${address}: ${reason}`));
        },
      });
      handshake.start();
    });
  }

  /**
   * Sends one request (with `fields` besides its type and id); resolves with its value.
   * Rejects on an error reply, a timeout or a closed connection.
   */
  request(type: AdminRequest, fields: Record<string, unknown> = {}): Promise<unknown> {
    if (this.closedReason !== undefined) return Promise.reject(new Error(`admin connection closed: ${this.closedReason}`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${type}: no answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      this.connection.send({ ...fields, type, id });
    });
  }

  close(): void {
    this.connection.close('admin client done');
  }

  /** Whether the connection has closed (every later request rejects). */
  get closed(): boolean {
    return this.closedReason !== undefined;
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
