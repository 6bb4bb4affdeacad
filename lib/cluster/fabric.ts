/**
 * The fabric: node-to-node messaging over a Network, with a handshake on every connection
 * (docs/cluster.md, "Handshake" and "Security"). Each node sends on its own outbound
 * connection to a peer's advertised address and receives on the connections peers opened to
 * it, so a message's sender is the node id authenticated by that connection's handshake.
 *
 * With a cluster secret, a connection proves the secret both ways (auth.ts) before anything
 * else is accepted or sent; then TLS (`cluster.tls`) or a tag on every frame (frame-auth.ts)
 * protects the rest. A node id is held by one inbound
 * connection at a time. Connections are bounded in number, in frame size until authenticated,
 * and in what queues on them; a connection that stalls (nothing acknowledged, or nothing heard,
 * for a heartbeat timeout) is closed, and its link is replaced at the next send.
 *
 * Never throws out of a network event: protocol violations close the connection and log one line.
 *
 * This file is the fabric's face and its message dispatch; the connections are in
 * fabric-outbound.ts (the links this node opens) and fabric-inbound.ts (the ones peers open,
 * and their handshake), over what they share (fabric-context.ts).
 */
import { FabricContext, type AdminHandler, type FabricHandler, type FabricOptions } from './fabric-context';
import { InboundLinks } from './fabric-inbound';
import { OutboundLinks } from './fabric-outbound';
import type { Connection, Listener, WireMessage } from './network';
import { parseAddress } from './network';

export type { AdminHandler, FabricHandler, FabricOptions } from './fabric-context';

export class Fabric {
  private listener: Listener | undefined;
  private readonly context: FabricContext;
  private readonly outbound: OutboundLinks;
  private readonly inbound: InboundLinks;
  private handler: FabricHandler = () => {};
  private adminHandler: AdminHandler | undefined;
  readonly protocolVersion: number;
  readonly minProtocolVersion: number;
  /** Counters for stats and tests. */
  readonly counters: FabricContext['counters'];

  constructor(private readonly options: FabricOptions) {
    const context = new FabricContext(options);
    this.context = context;
    this.protocolVersion = context.protocolVersion;
    this.minProtocolVersion = context.minProtocolVersion;
    this.counters = context.counters;
    this.outbound = new OutboundLinks(context);
    this.inbound = new InboundLinks(
      context,
      (from, message) => this.dispatch(from, message),
      (connection, message) => this.dispatchAdmin(connection, message),
      () => this.adminHandler !== undefined,
    );
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  /** The address peers reach this node at. */
  get address(): string {
    return this.context.advertised;
  }

  /** The address this node is bound to (with `advertise`, peers are told another). */
  get boundAddress(): string {
    return this.listener?.address ?? '';
  }

  /** Whether connections are authenticated by a cluster secret. */
  get authenticated(): boolean {
    return this.options.secrets !== undefined;
  }

  setHandler(handler: FabricHandler): void {
    this.handler = handler;
  }

  /** Accepts admin connections (hello with role "admin") and routes their messages here. */
  setAdminHandler(handler: AdminHandler): void {
    this.adminHandler = handler;
  }

  /**
   * Derives the handshake keys, then starts listening; returns the bound address.
   * `advertise` overrides the address peers are told.
   * @throws Error if the listen host is reachable from other machines and there is no
   *   secret (unless `insecure`), or the listen address is unavailable.
   */
  async start(listenAddress: string, advertise?: string): Promise<string> {
    const host = parseAddress(listenAddress).host;
    const exposed = this.options.network.reachableFromOtherMachines?.(host) === true;
    if (exposed && this.options.secrets === undefined) {
      if (this.options.insecure !== true) {
        throw new Error(
          `cluster: refusing to listen on ${listenAddress} without cluster.secret: anyone who can reach that address could join the cluster, ` +
            'read and write every record and command it. Set cluster.secret (the same on every node), listen on loopback, ' +
            'or set cluster.insecure: true on a network you fully control',
        );
      }
      this.options.runtime.logger.warn(
        `cluster: listening on ${listenAddress} WITHOUT authentication (cluster.insecure): anyone who can reach it can join, read, write and command the cluster`,
      );
    }
    this.context.keys = await this.options.secrets?.keys();
    this.context.transport = { tls: this.options.tls, onTlsFailure: (remote, reason) => this.context.onTlsFailure(remote, reason) };
    this.listener = await this.options.network.listen(listenAddress, (connection) => this.inbound.accept(connection), this.context.transport);
    this.context.advertised = advertise ?? this.listener.address;
    this.context.selfAddresses.add(this.context.advertised);
    return this.listener.address;
  }

  async stop(): Promise<void> {
    this.context.stopped = true;
    this.outbound.closeAll('node stopping');
    this.inbound.closeAll('node stopping');
    await this.listener?.close();
  }

  isSelfAddress(address: string): boolean {
    return this.context.selfAddresses.has(address);
  }

  addressOf(nodeId: string): string | undefined {
    return this.context.nodeAddresses.get(nodeId);
  }

  /** Records where `nodeId` listens (learned from an authenticated peer). Ignores an address that is not "host:port". */
  learnAddress(nodeId: string, address: string): void {
    this.context.learnAddress(nodeId, address);
  }

  /** Sends to a node by id. Returns false if its address is unknown or no connection is possible now. */
  sendToNode(nodeId: string, message: WireMessage): boolean {
    if (nodeId === this.options.nodeId) {
      // Local delivery goes through the same handler, asynchronously, like a real message.
      this.options.runtime.timers.setTimeout(() => this.dispatch(nodeId, message), 0);
      return true;
    }
    const address = this.context.nodeAddresses.get(nodeId);
    if (address === undefined) return false;
    return this.sendToAddress(address, message);
  }

  /**
   * Sends to whatever node listens at `address`, connecting if needed. Until the connection's
   * handshake completes, messages wait on the link (at most MAX_HANDSHAKE_QUEUE_BYTES): nothing
   * reaches a peer before it has proved itself.
   * @throws RangeError if the message exceeds the frame limit (a programming error).
   */
  sendToAddress(address: string, message: WireMessage): boolean {
    if (this.context.stopped || this.context.selfAddresses.has(address)) return false;
    return this.outbound.send(address, message);
  }

  /** Connection figures, for stats and tests. */
  connectionCounts(): { inbound: number; unauthenticated: number; outbound: number; retired: number } {
    return { ...this.inbound.counts, ...this.outbound.counts };
  }

  /**
   * Replaces stalled connections (docs/cluster.md, "Connections that heal"). An outbound link
   * whose frames go unacknowledged with no progress for the stall timeout is retired: the next
   * send opens a fresh one, and the old one stays open, sending nothing more, until what it
   * carries is acknowledged or RETIRED_CONNECTION_GRACE_MS passes (a peer that was only slow,
   * its event loop stalled, still gets and answers what was sent). An outbound link whose
   * handshake is not done within the stall timeout is closed, its waiting messages handed to
   * the next link. An inbound connection that heard nothing for the stall timeout (admin:
   * ADMIN_IDLE_TIMEOUT_MS) is closed. Called every heartbeat tick.
   */
  sweep(): void {
    const now = this.options.runtime.clock.nowMs();
    this.outbound.sweep(now);
    this.inbound.sweep(now);
  }

  /**
   * This node's event loop was stalled for `stallMs` (the heartbeat's lag guard): what peers
   * sent meanwhile is still unread, so no connection is blamed for that time.
   */
  forgiveStall(stallMs: number): void {
    const now = this.options.runtime.clock.nowMs();
    const shift = (ms: number) => Math.min(now, ms + stallMs);
    this.outbound.forgiveStall(shift);
    this.inbound.forgiveStall(shift);
  }

  private dispatchAdmin(connection: Connection, message: WireMessage): void {
    if (this.context.stopped) return;
    try {
      this.adminHandler!(message, (reply) => {
        if (!connection.closed) connection.send(reply);
      });
    } catch (error) {
      this.options.runtime.logger.error(`cluster: admin handler of "${message.type}" threw`, { error: String((error as Error)?.stack ?? error) });
    }
  }

  private dispatch(from: string, message: WireMessage): void {
    if (this.context.stopped) return;
    try {
      this.handler(from, message);
    } catch (error) {
      this.options.runtime.logger.error(`cluster: handler of "${message.type}" from ${from} threw`, {
        error: String((error as Error)?.stack ?? error),
      });
    }
  }
}
