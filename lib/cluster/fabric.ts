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
 */
import {
  ACK_DELAY_INTERVALS,
  ADMIN_IDLE_TIMEOUT_MS,
  AUTH_FAILURE_LOG_LIMIT,
  AUTH_FAILURE_LOG_WINDOW_MS,
  HANDSHAKE_NONCE_BYTES,
  HANDSHAKE_TIMEOUT_MS,
  MAX_ADMIN_FRAME_BYTES,
  MAX_CLUSTER_NAME_BYTES,
  MAX_CLUSTER_NODES,
  MAX_FRAME_BYTES,
  MAX_HANDSHAKE_QUEUE_BYTES,
  MAX_UNAUTHENTICATED_CONNECTIONS,
  MAX_UNAUTHENTICATED_PER_HOST,
  NODE_CLAIM_LIVE_INTERVALS,
  PROTOCOL_VERSION_CURRENT,
  PROTOCOL_VERSION_MIN_SUPPORTED,
  RETIRED_CONNECTION_GRACE_MS,
} from './constants';
import type { ClusterSecrets, HandshakeKeys, HelloIdentity } from './auth';
import { acceptorProof, ConnectorHandshake, handshakeTranscript, matchConnectorProof, randomNonce, wireBytes } from './auth';
import type { HelloLink } from './auth';
import { encodeBody } from './frame';
import { sessionKeys } from './frame-auth';
import type { Connection, Listener, Network, NetworkOptions, TlsSettings, WireMessage } from './network';
import { FRAME_AUTHENTICATION_FAILED, isAddress, isNodeId, parseAddress } from './network';
import type { Runtime, TimerHandle } from './seams';
import { LogLimiter } from './seams';

export interface FabricOptions {
  nodeId: string;
  clusterName: string;
  network: Network;
  runtime: Runtime;
  /** Minimum time between two connection attempts to one address (ms). */
  reconnectIntervalMs: number;
  /**
   * A connection whose sends go unacknowledged, or that hears nothing, for longer than this
   * is stalled and closed (ms; the heartbeat timeout).
   */
  stallTimeoutMs: number;
  /** The cluster secret(s); without them connections are not authenticated (loopback only unless `insecure`). */
  secrets?: ClusterSecrets;
  /** TLS for every connection, certificates verified both ways. */
  tls?: TlsSettings;
  /** Allows listening beyond loopback without a secret (a warning is logged at every start). */
  insecure?: boolean;
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
  address: string;
  /** Random id of this link, sent in its hello; a successor names it in `replaces`. */
  linkId: string;
  connection: Connection;
  handshake: ConnectorHandshake;
  ready: boolean;
  openedMs: number;
  remoteNodeId: string | undefined;
  /** The acceptor acknowledges frames (stall detection is on). */
  acknowledged: boolean;
  /** Encoded messages waiting for the handshake, their bytes, and when the oldest was queued. */
  queue: Buffer[];
  queuedBytes: number;
  queuedSinceMs: number;
  /** When the link was retired (replaced after a stall, kept for what it carries), if it was. */
  retiredAtMs: number | undefined;
  framesSent: number;
  framesAcknowledged: number;
  /**
   * Since when the link has waited: the later of the first send not acknowledged yet and the
   * last acknowledgement that advanced. (On the simulated network frames can be lost, so the
   * count may never catch up; progress is what shows the peer is reading.)
   */
  waitingSinceMs: number;
}

interface InboundLink {
  connection: Connection;
  host: string;
  acceptedMs: number;
  lastReceivedMs: number;
  state: 'hello' | 'proof' | 'ready';
  handshakeTimer: TimerHandle;
  peerNodeId: string | undefined;
  admin: boolean;
  identity: HelloIdentity | undefined;
  negotiated: number;
  transcript: Buffer | undefined;
  /** The connector asked for acknowledgements of the frames it sends. */
  acknowledge: boolean;
  /** The connector's id of this link, and of the link it replaces (hello fields `link`, `replaces`). */
  linkId: string | undefined;
  replaces: string | undefined;
  framesReceived: number;
  ackTimer: TimerHandle | undefined;
}

/** A hello that passed the checks needing no identity. */
interface Hello {
  identity: HelloIdentity;
  /** Its link fields, as hashed into the transcript. */
  link: HelloLink;
  nonce: Buffer | undefined;
  negotiated: number;
}

/** Longest link id a hello may carry. */
const MAX_LINK_ID_LENGTH = 32;

export class Fabric {
  private listener: Listener | undefined;
  private advertised = '';
  private readonly outbound = new Map<string, OutboundLink>();
  /** Stalled links replaced by fresh ones, kept open until what they carry is acknowledged (or RETIRED_CONNECTION_GRACE_MS). */
  private readonly retired = new Set<OutboundLink>();
  /** Messages of links closed before their handshake completed, handed to the next link to the same address. */
  private readonly carried = new Map<string, { queue: Buffer[]; bytes: number; sinceMs: number }>();
  /** Per address, the id of the retired link the next one replaces (until one completes its handshake). */
  private readonly replacing = new Map<string, string>();
  private readonly lastAttemptMs = new Map<string, number>();
  private readonly inbound = new Set<InboundLink>();
  /** The inbound connection holding each peer's node id. */
  private readonly claims = new Map<string, InboundLink>();
  private readonly nodeAddresses = new Map<string, string>();
  /** Addresses found to be this node itself (a seed list may include it). */
  private readonly selfAddresses = new Set<string>();
  private handler: FabricHandler = () => {};
  private adminHandler: AdminHandler | undefined;
  private keys: HandshakeKeys | undefined;
  /** What every listen and connect asks of the network: TLS with certificates, or plain TCP. */
  private transport: NetworkOptions = {};
  private stopped = false;
  private readonly refusals: LogLimiter;
  private readonly failedDials: LogLimiter;
  readonly protocolVersion: number;
  readonly minProtocolVersion: number;
  /** Counters for stats and tests. */
  readonly counters = {
    rejectedHandshakes: 0,
    authenticationFailures: 0,
    protocolViolations: 0,
    messagesIn: 0,
    messagesOut: 0,
    /** Connections still in their handshake closed to admit newer ones (per-host and total caps). */
    evictedHandshakes: 0,
    /** Outbound connections closed because their sends went unacknowledged (replaced at the next send). */
    stalledConnections: 0,
    /** Inbound connections closed because they went silent. */
    silentConnections: 0,
    /** Connections closed on a frame whose tag failed (also counted in authenticationFailures). */
    forgedFrames: 0,
  };

  constructor(private readonly options: FabricOptions) {
    this.protocolVersion = options.protocolVersion ?? PROTOCOL_VERSION_CURRENT;
    this.minProtocolVersion = options.minProtocolVersion ?? PROTOCOL_VERSION_MIN_SUPPORTED;
    const { logger, clock } = options.runtime;
    this.refusals = new LogLimiter(logger, clock, AUTH_FAILURE_LOG_LIMIT, AUTH_FAILURE_LOG_WINDOW_MS);
    this.failedDials = new LogLimiter(logger, clock, AUTH_FAILURE_LOG_LIMIT, AUTH_FAILURE_LOG_WINDOW_MS);
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  /** The address peers reach this node at. */
  get address(): string {
    return this.advertised;
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
    this.keys = await this.options.secrets?.keys();
    this.transport = { tls: this.options.tls, onTlsFailure: (remote, reason) => this.onTlsFailure(remote, reason) };
    this.listener = await this.options.network.listen(listenAddress, (connection) => this.accept(connection), this.transport);
    this.advertised = advertise ?? this.listener.address;
    this.selfAddresses.add(this.advertised);
    return this.listener.address;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const link of this.outbound.values()) link.connection.close('node stopping');
    for (const link of this.retired) link.connection.close('node stopping');
    for (const link of this.inbound) link.connection.close('node stopping');
    this.outbound.clear();
    this.retired.clear();
    this.carried.clear();
    this.replacing.clear();
    this.inbound.clear();
    this.claims.clear();
    await this.listener?.close();
  }

  isSelfAddress(address: string): boolean {
    return this.selfAddresses.has(address);
  }

  addressOf(nodeId: string): string | undefined {
    return this.nodeAddresses.get(nodeId);
  }

  /** Records where `nodeId` listens (learned from an authenticated peer). Ignores an address that is not "host:port". */
  learnAddress(nodeId: string, address: string): void {
    if (nodeId === this.options.nodeId || this.selfAddresses.has(address) || !isAddress(address)) return;
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

  /**
   * Sends to whatever node listens at `address`, connecting if needed. Until the connection's
   * handshake completes, messages wait on the link (at most MAX_HANDSHAKE_QUEUE_BYTES): nothing
   * reaches a peer before it has proved itself.
   * @throws RangeError if the message exceeds the frame limit (a programming error).
   */
  sendToAddress(address: string, message: WireMessage): boolean {
    if (this.stopped || this.selfAddresses.has(address)) return false;
    let link = this.outbound.get(address);
    if (link === undefined || link.connection.closed) {
      link = this.open(address);
      if (link === undefined) return false;
    }
    const body = encodeBody(message);
    this.counters.messagesOut++;
    if (!link.ready) {
      if (link.queuedBytes + body.length > MAX_HANDSHAKE_QUEUE_BYTES) return false;
      if (link.queue.length === 0) link.queuedSinceMs = this.options.runtime.clock.nowMs();
      link.queue.push(body);
      link.queuedBytes += body.length;
      return true;
    }
    return this.transmit(link, body);
  }

  /** Connection figures, for stats and tests. */
  connectionCounts(): { inbound: number; unauthenticated: number; outbound: number; retired: number } {
    let unauthenticated = 0;
    for (const link of this.inbound) if (link.state !== 'ready') unauthenticated++;
    return { inbound: this.inbound.size, unauthenticated, outbound: this.outbound.size, retired: this.retired.size };
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
    const stallMs = this.options.stallTimeoutMs;
    const handshakeMs = Math.min(stallMs, HANDSHAKE_TIMEOUT_MS);
    for (const link of [...this.outbound.values()]) {
      if (!link.ready) {
        if (now - link.openedMs > handshakeMs) link.connection.close(`handshake not done within ${handshakeMs} ms`);
        continue;
      }
      if (link.acknowledged && link.framesSent > link.framesAcknowledged && now - link.waitingSinceMs > stallMs) {
        this.counters.stalledConnections++;
        this.options.runtime.logger.info(
          `cluster: connection to ${link.remoteNodeId} at ${link.address} stalled (${link.framesSent - link.framesAcknowledged} frames unacknowledged, no progress for ${Math.round(now - link.waitingSinceMs)} ms); replacing it`,
        );
        this.outbound.delete(link.address);
        link.retiredAtMs = now;
        this.retired.add(link);
        this.replacing.set(link.address, link.linkId);
        if (this.replacing.size > MAX_CLUSTER_NODES) this.replacing.delete(this.replacing.keys().next().value!);
      }
    }
    for (const link of this.retired) {
      if (now - link.retiredAtMs! > RETIRED_CONNECTION_GRACE_MS) link.connection.close('replaced after a stall');
    }
    for (const link of this.inbound) {
      if (link.state !== 'ready') continue;
      const idleMs = link.admin ? ADMIN_IDLE_TIMEOUT_MS : stallMs;
      if (now - link.lastReceivedMs > idleMs) {
        this.counters.silentConnections++;
        this.options.runtime.logger.info(`cluster: closing connection from ${link.peerNodeId} (${link.connection.remoteAddress}): silent for ${Math.round(now - link.lastReceivedMs)} ms`);
        link.connection.close('silent');
      }
    }
  }

  /**
   * This node's event loop was stalled for `stallMs` (the heartbeat's lag guard): what peers
   * sent meanwhile is still unread, so no connection is blamed for that time.
   */
  forgiveStall(stallMs: number): void {
    const now = this.options.runtime.clock.nowMs();
    const shift = (ms: number) => Math.min(now, ms + stallMs);
    for (const link of [...this.outbound.values(), ...this.retired]) {
      link.openedMs = shift(link.openedMs);
      link.waitingSinceMs = shift(link.waitingSinceMs);
      if (link.retiredAtMs !== undefined) link.retiredAtMs = shift(link.retiredAtMs);
    }
    for (const link of this.inbound) link.lastReceivedMs = shift(link.lastReceivedMs);
  }

  private transmit(link: OutboundLink, body: Buffer): boolean {
    if (!link.connection.sendBody(body)) return false;
    if (link.framesSent === link.framesAcknowledged) link.waitingSinceMs = this.options.runtime.clock.nowMs();
    link.framesSent++;
    return true;
  }

  private get ackDelayMs(): number {
    return this.options.reconnectIntervalMs * ACK_DELAY_INTERVALS;
  }

  private open(address: string): OutboundLink | undefined {
    const now = this.options.runtime.clock.nowMs();
    const last = this.lastAttemptMs.get(address);
    if (last !== undefined && now - last < this.options.reconnectIntervalMs && now >= last) return undefined;
    this.lastAttemptMs.set(address, now);
    if (this.lastAttemptMs.size > 4 * MAX_CLUSTER_NODES) this.lastAttemptMs.delete(this.lastAttemptMs.keys().next().value!);
    let connection: Connection;
    try {
      connection = this.options.network.connect(address, this.transport);
    } catch (error) {
      this.options.runtime.logger.warn(`cluster: cannot connect to ${address}: ${(error as Error).message}`);
      return undefined;
    }
    const identity: HelloIdentity = {
      protocolVersion: this.protocolVersion,
      minProtocolVersion: this.minProtocolVersion,
      nodeId: this.options.nodeId,
      clusterName: this.options.clusterName,
      address: this.advertised,
      role: 'node',
    };
    const random = this.options.runtime.random;
    const linkId = random.nextUint32().toString(16).padStart(8, '0') + random.nextUint32().toString(16).padStart(8, '0');
    const replaces = this.replacing.get(address);
    const handshake = new ConnectorHandshake(connection, identity, this.keys, this.options.runtime.random, this.overTls, { acknowledge: true, link: linkId, replaces });
    const link: OutboundLink = {
      address,
      linkId,
      connection,
      handshake,
      ready: false,
      openedMs: now,
      remoteNodeId: undefined,
      acknowledged: false,
      queue: [],
      queuedBytes: 0,
      queuedSinceMs: now,
      retiredAtMs: undefined,
      framesSent: 0,
      framesAcknowledged: 0,
      waitingSinceMs: now,
    };
    const carried = this.carried.get(address);
    this.carried.delete(address);
    if (carried !== undefined && now - carried.sinceMs <= 2 * this.options.stallTimeoutMs) {
      link.queue = carried.queue;
      link.queuedBytes = carried.bytes;
      link.queuedSinceMs = carried.sinceMs;
    }
    this.outbound.set(address, link);
    connection.setHandlers({
      onMessage: (message) => this.onOutboundMessage(link, message),
      onClose: (reason) => {
        this.noteForgery(connection, reason);
        if (this.outbound.get(address) === link) this.outbound.delete(address);
        this.retired.delete(link);
        // Messages still waiting for a handshake that will not come go to the next link (a
        // handshake that timed out, a claim refused while the peer's old connection was live).
        if (!link.ready && link.queue.length > 0 && !this.stopped) {
          this.carried.set(address, { queue: link.queue, bytes: link.queuedBytes, sinceMs: link.queuedSinceMs });
          if (this.carried.size > MAX_CLUSTER_NODES) this.carried.delete(this.carried.keys().next().value!);
        }
        link.queue = [];
        // A peer that speaks only TLS (it has certificates) drops a plain hello unanswered.
        if (!link.ready && reason === 'closed by peer' && !this.overTls) {
          this.failedDials.warn(`cluster: ${address} closed the connection during the handshake: it may require the cluster secret or TLS (is cluster.secret set here?)`);
        }
      },
    });
    handshake.start();
    return link;
  }

  private onOutboundMessage(link: OutboundLink, message: WireMessage): void {
    if (link.ready) {
      if (message.type === 'ack') {
        this.onAck(link, message);
        return;
      }
      this.counters.protocolViolations++;
      this.options.runtime.logger.warn(`cluster: closing connection to ${link.address}: unexpected message "${message.type}" on an outbound connection`);
      link.connection.close('protocol violation');
      return;
    }
    const outcome = link.handshake.onMessage(message);
    if (outcome.kind === 'pending') return;
    if (outcome.kind === 'failed') {
      if (outcome.refused) this.failedDials.warn(`cluster: ${link.address} refused our handshake: ${outcome.reason.replace(/^refused: /, '')}`);
      else this.failedDials.warn(`cluster: handshake with ${link.address} failed: ${outcome.reason}`);
      link.connection.close('handshake failed');
      return;
    }
    link.remoteNodeId = outcome.nodeId;
    if (outcome.nodeId === this.options.nodeId) {
      this.selfAddresses.add(link.address);
      link.connection.close('connected to self');
      return;
    }
    link.ready = true;
    link.acknowledged = outcome.acknowledges;
    this.replacing.delete(link.address);
    const queued = link.queue;
    link.queue = [];
    link.queuedBytes = 0;
    for (const body of queued) if (!this.transmit(link, body)) break;
  }

  private onAck(link: OutboundLink, message: WireMessage): void {
    const frames = message.frames;
    if (!Number.isSafeInteger(frames) || (frames as number) < 0) {
      this.counters.protocolViolations++;
      this.options.runtime.logger.warn(`cluster: closing connection to ${link.address}: malformed acknowledgement`);
      link.connection.close('protocol violation');
      return;
    }
    // More than sent only if the network duplicated frames (the simulator does); fewer forever if it lost some.
    const acknowledged = Math.min(frames as number, link.framesSent);
    if (acknowledged <= link.framesAcknowledged) return;
    link.framesAcknowledged = acknowledged;
    link.waitingSinceMs = this.options.runtime.clock.nowMs();
    // A retired link is done once everything it carried arrived.
    if (link.retiredAtMs !== undefined && link.framesAcknowledged >= link.framesSent) link.connection.close('replaced after a stall; all it carried arrived');
  }

  private accept(connection: Connection): void {
    if (this.stopped) {
      connection.close('node stopping');
      return;
    }
    const now = this.options.runtime.clock.nowMs();
    const host = connection.remoteHost;
    this.admitHandshake(host);
    const link: InboundLink = {
      connection,
      host,
      acceptedMs: now,
      lastReceivedMs: now,
      state: 'hello',
      handshakeTimer: undefined,
      peerNodeId: undefined,
      admin: false,
      identity: undefined,
      negotiated: 0,
      transcript: undefined,
      acknowledge: false,
      linkId: undefined,
      replaces: undefined,
      framesReceived: 0,
      ackTimer: undefined,
    };
    this.inbound.add(link);
    const timers = this.options.runtime.timers;
    link.handshakeTimer = timers.setTimeout(() => {
      if (link.state !== 'ready' && !connection.closed) {
        this.refusals.warn(`cluster: closing connection from ${connection.remoteAddress}: no handshake within ${HANDSHAKE_TIMEOUT_MS} ms`);
        connection.close('handshake timeout');
      }
    }, HANDSHAKE_TIMEOUT_MS);
    connection.setHandlers({
      onMessage: (message) => this.onInboundMessage(link, message),
      onClose: (reason) => {
        this.noteForgery(connection, reason);
        timers.clearTimeout(link.handshakeTimer);
        if (link.ackTimer !== undefined) timers.clearTimeout(link.ackTimer);
        this.inbound.delete(link);
        if (link.peerNodeId !== undefined && this.claims.get(link.peerNodeId) === link) this.claims.delete(link.peerNodeId);
      },
    });
  }

  /**
   * Makes room for one more connection in its handshake from `host`: past the per-host or
   * total cap, the oldest such connection is closed. (Refusing the newest instead would let
   * a few idle connections lock every peer out.)
   */
  private admitHandshake(host: string): void {
    let fromHost = 0;
    let total = 0;
    let oldestFromHost: InboundLink | undefined;
    let oldest: InboundLink | undefined;
    for (const link of this.inbound) {
      if (link.state === 'ready') continue;
      total++;
      oldest ??= link;
      if (link.host === host) {
        fromHost++;
        oldestFromHost ??= link;
      }
    }
    const evict = fromHost >= MAX_UNAUTHENTICATED_PER_HOST ? oldestFromHost : total >= MAX_UNAUTHENTICATED_CONNECTIONS ? oldest : undefined;
    if (evict === undefined) return;
    this.counters.evictedHandshakes++;
    this.refusals.warn(`cluster: closing connection from ${evict.connection.remoteAddress}: too many connections in their handshake${fromHost >= MAX_UNAUTHENTICATED_PER_HOST ? ` from ${host}` : ''}`);
    evict.connection.close('too many handshakes');
  }

  private onInboundMessage(link: InboundLink, message: WireMessage): void {
    link.lastReceivedMs = this.options.runtime.clock.nowMs();
    if (link.state === 'ready') {
      this.counters.messagesIn++;
      if (link.admin) {
        this.dispatchAdmin(link.connection, message);
        return;
      }
      link.framesReceived++;
      if (link.acknowledge) this.scheduleAck(link);
      this.dispatch(link.peerNodeId!, message);
      return;
    }
    if (link.state === 'hello') this.onHello(link, message);
    else this.onProof(link, message);
  }

  private scheduleAck(link: InboundLink): void {
    if (link.ackTimer !== undefined) return;
    link.ackTimer = this.options.runtime.timers.setTimeout(() => {
      link.ackTimer = undefined;
      if (!link.connection.closed) link.connection.send({ type: 'ack', frames: link.framesReceived });
    }, this.ackDelayMs);
  }

  private onHello(link: InboundLink, message: WireMessage): void {
    const hello = this.checkHello(message);
    if (typeof hello === 'string') {
      this.refuse(link, hello, hello);
      return;
    }
    link.identity = hello.identity;
    link.negotiated = hello.negotiated;
    link.acknowledge = hello.link.acknowledge === true && hello.identity.role === 'node';
    link.linkId = hello.link.link;
    link.replaces = hello.link.replaces;
    if (this.keys === undefined) {
      if (hello.nonce !== undefined) {
        this.refuse(link, 'the peer offers a cluster secret, and this node has none (set the same cluster.secret on every node)', 'authentication is not configured on this node');
        return;
      }
      this.admit(link, undefined);
      return;
    }
    if (hello.nonce === undefined) {
      this.refuse(link, 'the peer did not authenticate (is cluster.secret set there?)', 'this node requires the cluster secret', true);
      return;
    }
    const binding = link.connection.tlsBinding;
    if (this.overTls && binding === undefined) {
      this.refuse(link, 'no TLS session to bind the handshake to', 'authentication failed', true);
      return;
    }
    const nonce = randomNonce(this.options.runtime.random);
    link.transcript = handshakeTranscript(hello.identity, hello.link, hello.nonce, nonce, hello.negotiated, binding);
    link.state = 'proof';
    link.connection.send({ type: 'hello-challenge', nonce, protocolVersion: hello.negotiated });
  }

  private onProof(link: InboundLink, message: WireMessage): void {
    if (message.type !== 'hello-proof') {
      this.refuse(link, `expected a hello-proof, got ${JSON.stringify(message.type)}`, 'authentication failed', true);
      return;
    }
    const key = matchConnectorProof(this.keys!, link.transcript!, message.proofs);
    if (key === undefined) {
      this.refuse(link, `authentication failed (wrong cluster secret) for a hello claiming node id ${JSON.stringify(link.identity!.nodeId)}`, 'authentication failed', true);
      return;
    }
    this.admit(link, key);
  }

  /**
   * The checks that need the peer's identity, then the hello-ack. With a secret the peer has
   * proved it by now, so refusals may say why; without one they still never reveal this
   * node's configuration (its cluster name, its address).
   */
  private admit(link: InboundLink, key: Buffer | undefined): void {
    const identity = link.identity!;
    const { connection } = link;
    const admin = identity.role === 'admin';
    if (identity.clusterName !== this.options.clusterName) {
      this.refuse(link, `cluster name "${identity.clusterName}" does not match this node's "${this.options.clusterName}"`, 'cluster name does not match');
      return;
    }
    if (identity.nodeId === this.options.nodeId && identity.address !== this.advertised) {
      this.refuse(link, `node id "${identity.nodeId}" is already this node's (at ${this.advertised}); every node needs its own id`, 'that node id is this node\'s own; every node needs its own id');
      return;
    }
    if (admin && this.adminHandler === undefined) {
      this.refuse(link, 'an admin connection, and this node accepts none', 'this node accepts no admin connections');
      return;
    }
    if (!admin && identity.nodeId !== this.options.nodeId && !this.claim(link, identity.nodeId)) return;
    this.options.runtime.timers.clearTimeout(link.handshakeTimer);
    link.state = 'ready';
    link.peerNodeId = identity.nodeId;
    link.admin = admin;
    connection.setMaxFrameBytes(admin ? MAX_ADMIN_FRAME_BYTES : MAX_FRAME_BYTES);
    if (!admin) this.learnAddress(identity.nodeId, identity.address);
    const ack: WireMessage = { type: 'hello-ack', nodeId: this.options.nodeId, protocolVersion: link.negotiated, acknowledges: link.acknowledge };
    if (key !== undefined) ack.proof = acceptorProof(key, link.transcript!, this.options.nodeId, link.acknowledge);
    connection.send(ack);
    // The proof was the connector's last frame without a tag, and the ack ours.
    if (key !== undefined && !this.overTls) connection.authenticateFrames(sessionKeys(key, link.transcript!, 'acceptor'));
  }

  /** Whether connections run over TLS (`cluster.tls`), so every handshake must be bound to its TLS session. */
  private get overTls(): boolean {
    return this.transport.tls !== undefined;
  }

  /** A TLS handshake failed: not a certificate of the cluster's CA (or not speaking TLS at all). */
  private onTlsFailure(remote: string, reason: string): void {
    this.counters.authenticationFailures++;
    this.refusals.warn(`cluster: TLS handshake with ${remote} failed: ${reason} (not a certificate of the cluster CA, or not TLS?)`);
  }

  /** Counts and logs (rate-limited) a connection closed on a frame whose tag failed: whoever is on the path can cause one. */
  private noteForgery(connection: Connection, reason: string): void {
    if (reason !== FRAME_AUTHENTICATION_FAILED) return;
    this.counters.forgedFrames++;
    this.counters.authenticationFailures++;
    this.refusals.warn(`cluster: closed the connection with ${connection.remoteAddress}: a frame failed authentication (altered, forged, replayed, reordered, dropped or from another connection)`);
  }

  /**
   * One inbound connection per node id: a second claim is refused while the first one is live
   * (heard from within NODE_CLAIM_LIVE_INTERVALS heartbeat intervals; a peer heartbeats every
   * interval); a quiet one is closed and the new one takes the id (the peer restarted, or its
   * old connection died). A connection that names the holder's link as the one it replaces
   * (the peer retired it after a stall) takes the id at once, and the old one drains what it
   * still carries until it goes silent: only the peer that opened the holder knows its link
   * id. Returns whether `link` holds the id now.
   */
  private claim(link: InboundLink, nodeId: string): boolean {
    const holder = this.claims.get(nodeId);
    if (holder !== undefined && holder !== link && !holder.connection.closed) {
      const replacing = link.replaces !== undefined && link.replaces === holder.linkId;
      const now = this.options.runtime.clock.nowMs();
      if (!replacing && now - holder.lastReceivedMs < this.options.reconnectIntervalMs * NODE_CLAIM_LIVE_INTERVALS) {
        this.refuse(link, `node id "${nodeId}" is already connected from ${holder.connection.remoteAddress}`, 'that node id is already connected');
        return false;
      }
      if (!replacing) holder.connection.close('replaced by a newer connection from the same node id');
    }
    this.claims.set(nodeId, link);
    return true;
  }

  private refuse(link: InboundLink, logged: string, told: string, authentication = false): void {
    this.counters.rejectedHandshakes++;
    if (authentication) this.counters.authenticationFailures++;
    this.refusals.warn(`cluster: refusing connection from ${link.connection.remoteAddress}: ${logged}`);
    link.connection.send({ type: 'hello-reject', reason: told });
    link.connection.close('handshake refused');
  }

  /** Validates a hello's form and version; returns what it says, or why it is refused (nothing about this node but its protocol versions). */
  private checkHello(message: WireMessage): Hello | string {
    if (message.type !== 'hello') return `expected a hello, got ${JSON.stringify(message.type)}`;
    const { protocolVersion, minProtocolVersion, nodeId, clusterName, address, role } = message;
    if (!Number.isInteger(protocolVersion) || !Number.isInteger(minProtocolVersion)) return 'hello without protocol versions';
    const theirs = protocolVersion as number;
    const theirMin = minProtocolVersion as number;
    const negotiated = Math.min(theirs, this.protocolVersion);
    if (negotiated < Math.max(theirMin, this.minProtocolVersion) || theirMin > theirs) {
      return `unsupported protocol version ${theirs} (minimum ${theirMin}); this node speaks ${this.minProtocolVersion}..${this.protocolVersion}`;
    }
    if (!isNodeId(nodeId)) return 'hello with an invalid node id';
    if (typeof clusterName !== 'string' || Buffer.byteLength(clusterName) > MAX_CLUSTER_NAME_BYTES) return 'hello with an invalid cluster name';
    if (role !== undefined && role !== 'admin') return 'hello with an invalid role';
    const admin = role === 'admin';
    if (!admin && (typeof address !== 'string' || !isAddress(address))) return 'hello with an invalid address';
    let nonce: Buffer | undefined;
    if (message.nonce !== undefined) {
      nonce = wireBytes(message.nonce, HANDSHAKE_NONCE_BYTES);
      if (nonce === undefined) return 'hello with an invalid nonce';
    }
    const identity: HelloIdentity = {
      protocolVersion: theirs,
      minProtocolVersion: theirMin,
      nodeId,
      clusterName,
      address: admin ? '' : (address as string),
      role: admin ? 'admin' : 'node',
    };
    const linkField = (value: unknown) => (typeof value === 'string' && value.length > 0 && value.length <= MAX_LINK_ID_LENGTH ? value : undefined);
    return { identity, nonce, negotiated, link: { acknowledge: message.acknowledge === true, link: linkField(message.link), replaces: linkField(message.replaces) } };
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
