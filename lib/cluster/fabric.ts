/**
 * The fabric: node-to-node messaging over a Network, with a handshake on every connection
 * (docs/cluster.md, "Handshake"). Each node sends on its own outbound connection to a peer's
 * advertised address and receives on the connections peers opened to it, so a message's
 * sender is the node id authenticated by that connection's handshake.
 *
 * Never throws out of a network event: protocol violations close the connection and log one line.
 */
import {
  HANDSHAKE_TIMEOUT_MS,
  MAX_CLUSTER_NAME_BYTES,
  MAX_CLUSTER_NODES,
  MAX_NODE_ID_BYTES,
  PROTOCOL_VERSION_CURRENT,
  PROTOCOL_VERSION_MIN_SUPPORTED,
} from './constants';
import type { Connection, Listener, Network, WireMessage } from './network';
import type { Runtime } from './seams';

export interface FabricOptions {
  nodeId: string;
  clusterName: string;
  network: Network;
  runtime: Runtime;
  /** Minimum time between two connection attempts to one address (ms). */
  reconnectIntervalMs: number;
  /** Overrides for rolling-upgrade tests: the versions this node claims to speak. */
  protocolVersion?: number;
  minProtocolVersion?: number;
}

/** Handler of an authenticated message from node `from`. */
export type FabricHandler = (from: string, message: WireMessage) => void;

/**
 * Handler of a message on an admin connection (the operator CLI): `reply` answers on that
 * same connection, since an admin client does not listen.
 */
export type AdminHandler = (message: WireMessage, reply: (message: WireMessage) => void) => void;

interface OutboundLink {
  connection: Connection;
  ready: boolean;
  remoteNodeId: string | undefined;
}

export class Fabric {
  private listener: Listener | undefined;
  private advertised = '';
  private readonly outbound = new Map<string, OutboundLink>();
  private readonly lastAttemptMs = new Map<string, number>();
  private readonly inbound = new Set<Connection>();
  private readonly nodeAddresses = new Map<string, string>();
  /** Addresses found to be this node itself (a seed list may include it). */
  private readonly selfAddresses = new Set<string>();
  private handler: FabricHandler = () => {};
  private adminHandler: AdminHandler | undefined;
  private stopped = false;
  readonly protocolVersion: number;
  readonly minProtocolVersion: number;
  /** Counters for stats and tests. */
  readonly counters = { rejectedHandshakes: 0, protocolViolations: 0, messagesIn: 0, messagesOut: 0 };

  constructor(private readonly options: FabricOptions) {
    this.protocolVersion = options.protocolVersion ?? PROTOCOL_VERSION_CURRENT;
    this.minProtocolVersion = options.minProtocolVersion ?? PROTOCOL_VERSION_MIN_SUPPORTED;
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  /** The address peers reach this node at. */
  get address(): string {
    return this.advertised;
  }

  setHandler(handler: FabricHandler): void {
    this.handler = handler;
  }

  /** Accepts admin connections (hello with role "admin") and routes their messages here. */
  setAdminHandler(handler: AdminHandler): void {
    this.adminHandler = handler;
  }

  /** Starts listening; returns the bound address. `advertise` overrides the address peers are told. */
  async start(listenAddress: string, advertise?: string): Promise<string> {
    this.listener = await this.options.network.listen(listenAddress, (connection) => this.accept(connection));
    this.advertised = advertise ?? this.listener.address;
    this.selfAddresses.add(this.advertised);
    return this.listener.address;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const link of this.outbound.values()) link.connection.close('node stopping');
    for (const connection of this.inbound) connection.close('node stopping');
    this.outbound.clear();
    this.inbound.clear();
    await this.listener?.close();
  }

  isSelfAddress(address: string): boolean {
    return this.selfAddresses.has(address);
  }

  addressOf(nodeId: string): string | undefined {
    return this.nodeAddresses.get(nodeId);
  }

  /** Records where `nodeId` listens (learned from heartbeats). */
  learnAddress(nodeId: string, address: string): void {
    if (nodeId === this.options.nodeId || this.selfAddresses.has(address)) return;
    const previous = this.nodeAddresses.get(nodeId);
    if (previous === address) return;
    if (previous === undefined && this.nodeAddresses.size >= MAX_CLUSTER_NODES) return;
    this.nodeAddresses.set(nodeId, address);
  }

  /** Sends to a node by id. Returns false if its address is unknown or no connection is possible now. */
  sendToNode(nodeId: string, message: WireMessage): boolean {
    if (nodeId === this.options.nodeId) {
      // Local delivery goes through the same handler, asynchronously, like a real message.
      this.options.runtime.timers.setTimeout(() => this.dispatch(nodeId, message), 0);
      return true;
    }
    const address = this.nodeAddresses.get(nodeId);
    if (address === undefined) return false;
    return this.sendToAddress(address, message);
  }

  /** Sends to whatever node listens at `address`, connecting if needed. */
  sendToAddress(address: string, message: WireMessage): boolean {
    if (this.stopped || this.selfAddresses.has(address)) return false;
    let link = this.outbound.get(address);
    if (link === undefined || link.connection.closed) {
      link = this.open(address);
      if (link === undefined) return false;
    }
    this.counters.messagesOut++;
    return link.connection.send(message);
  }

  private open(address: string): OutboundLink | undefined {
    const now = this.options.runtime.clock.nowMs();
    const last = this.lastAttemptMs.get(address);
    if (last !== undefined && now - last < this.options.reconnectIntervalMs && now >= last) return undefined;
    this.lastAttemptMs.set(address, now);
    let connection: Connection;
    try {
      connection = this.options.network.connect(address);
    } catch (error) {
      this.options.runtime.logger.warn(`cluster: cannot connect to ${address}: ${(error as Error).message}`);
      return undefined;
    }
    const link: OutboundLink = { connection, ready: false, remoteNodeId: undefined };
    this.outbound.set(address, link);
    connection.setHandlers({
      onMessage: (message) => this.onOutboundMessage(address, link, message),
      onClose: () => {
        if (this.outbound.get(address) === link) this.outbound.delete(address);
      },
    });
    connection.send({
      type: 'hello',
      protocolVersion: this.protocolVersion,
      minProtocolVersion: this.minProtocolVersion,
      nodeId: this.options.nodeId,
      clusterName: this.options.clusterName,
      address: this.advertised,
    });
    return link;
  }

  private onOutboundMessage(address: string, link: OutboundLink, message: WireMessage): void {
    const logger = this.options.runtime.logger;
    if (message.type === 'hello-ack' && !link.ready) {
      const nodeId = message.nodeId;
      if (!isNodeId(nodeId)) {
        link.connection.close('bad hello-ack');
        return;
      }
      link.ready = true;
      link.remoteNodeId = nodeId;
      if (nodeId === this.options.nodeId) {
        this.selfAddresses.add(address);
        link.connection.close('connected to self');
        return;
      }
      return;
    }
    if (message.type === 'hello-reject') {
      logger.warn(`cluster: ${address} refused our handshake: ${String(message.reason)}`);
      link.connection.close('handshake refused');
      return;
    }
    this.counters.protocolViolations++;
    logger.warn(`cluster: closing connection to ${address}: unexpected message "${message.type}" on an outbound connection`);
    link.connection.close('protocol violation');
  }

  private accept(connection: Connection): void {
    if (this.stopped) {
      connection.close('node stopping');
      return;
    }
    const logger = this.options.runtime.logger;
    const timers = this.options.runtime.timers;
    this.inbound.add(connection);
    let peerNodeId: string | undefined;
    let admin = false;
    const handshakeTimer = timers.setTimeout(() => {
      if (peerNodeId === undefined && !connection.closed) {
        logger.warn(`cluster: closing connection from ${connection.remoteAddress}: no handshake within ${HANDSHAKE_TIMEOUT_MS} ms`);
        connection.close('handshake timeout');
      }
    }, HANDSHAKE_TIMEOUT_MS);
    connection.setHandlers({
      onMessage: (message) => {
        if (peerNodeId !== undefined) {
          this.counters.messagesIn++;
          if (admin) this.dispatchAdmin(connection, message);
          else this.dispatch(peerNodeId, message);
          return;
        }
        const verdict = this.checkHello(message);
        if (typeof verdict === 'string') {
          this.counters.rejectedHandshakes++;
          logger.warn(`cluster: refusing connection from ${connection.remoteAddress}: ${verdict}`);
          connection.send({ type: 'hello-reject', reason: verdict });
          connection.close('handshake refused');
          return;
        }
        peerNodeId = verdict.nodeId;
        admin = verdict.admin;
        timers.clearTimeout(handshakeTimer);
        if (!admin) this.learnAddress(verdict.nodeId, verdict.address);
        connection.send({ type: 'hello-ack', nodeId: this.options.nodeId, protocolVersion: verdict.protocolVersion });
      },
      onClose: () => {
        timers.clearTimeout(handshakeTimer);
        this.inbound.delete(connection);
      },
    });
  }

  /** Validates a hello; returns the peer's identity and the negotiated version, or why it is refused. */
  private checkHello(message: WireMessage): { nodeId: string; address: string; protocolVersion: number; admin: boolean } | string {
    if (message.type !== 'hello') return `expected a hello, got "${message.type}"`;
    const { protocolVersion, minProtocolVersion, nodeId, clusterName, address } = message;
    if (!Number.isInteger(protocolVersion) || !Number.isInteger(minProtocolVersion)) return 'hello without protocol versions';
    const theirs = protocolVersion as number;
    const theirMin = minProtocolVersion as number;
    const negotiated = Math.min(theirs, this.protocolVersion);
    if (negotiated < Math.max(theirMin, this.minProtocolVersion) || theirMin > theirs) {
      return `unsupported protocol version ${theirs} (minimum ${theirMin}); this node speaks ${this.minProtocolVersion}..${this.protocolVersion}`;
    }
    if (!isNodeId(nodeId)) return 'hello with an invalid node id';
    if (typeof clusterName !== 'string' || Buffer.byteLength(clusterName) > MAX_CLUSTER_NAME_BYTES) return 'hello with an invalid cluster name';
    if (clusterName !== this.options.clusterName) {
      return `cluster name "${clusterName}" does not match this node's "${this.options.clusterName}"`;
    }
    if (nodeId === this.options.nodeId && address !== this.advertised) {
      return `node id "${nodeId}" is already this node's (at ${this.advertised}); every node needs its own id`;
    }
    const admin = message.role === 'admin';
    if (admin && this.adminHandler === undefined) return 'this node accepts no admin connections';
    if (!admin && (typeof address !== 'string' || address.length > 300)) return 'hello with an invalid address';
    return { nodeId, address: admin ? '' : (address as string), protocolVersion: negotiated, admin };
  }

  private dispatchAdmin(connection: Connection, message: WireMessage): void {
    if (this.stopped) return;
    try {
      this.adminHandler!(message, (reply) => {
        if (!connection.closed) connection.send(reply);
      });
    } catch (error) {
      this.options.runtime.logger.error(`cluster: admin handler of "${message.type}" threw`, { error: String((error as Error)?.stack ?? error) });
    }
  }

  private dispatch(from: string, message: WireMessage): void {
    if (this.stopped) return;
    try {
      this.handler(from, message);
    } catch (error) {
      this.options.runtime.logger.error(`cluster: handler of "${message.type}" from ${from} threw`, {
        error: String((error as Error)?.stack ?? error),
      });
    }
  }
}

/** Whether `value` is a valid node id: a non-empty string of at most MAX_NODE_ID_BYTES bytes. */
export function isNodeId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && Buffer.byteLength(value) <= MAX_NODE_ID_BYTES;
}
