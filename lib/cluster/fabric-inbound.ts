/**
 * The fabric's inbound connections (docs/cluster.md, "Handshake" and "Security"): the
 * connections peers (and admin clients) open to this node, bounded while in their handshake;
 * the hello, the proof of the cluster secret and the checks of the peer's identity; one
 * inbound connection per node id; acknowledgements of the frames received; then every
 * message handed on with the node id its handshake authenticated.
 */
import {
  ADMIN_IDLE_TIMEOUT_MS,
  HANDSHAKE_NONCE_BYTES,
  HANDSHAKE_TIMEOUT_MS,
  MAX_ADMIN_FRAME_BYTES,
  MAX_CLUSTER_NAME_BYTES,
  MAX_FRAME_BYTES,
  MAX_UNAUTHENTICATED_CONNECTIONS,
  MAX_UNAUTHENTICATED_PER_HOST,
  NODE_CLAIM_LIVE_INTERVALS,
} from './constants';
import type { HelloIdentity } from './auth';
import { acceptorProof, handshakeTranscript, matchConnectorProof, randomNonce, wireBytes } from './auth';
import type { HelloLink } from './auth';
import { sessionKeys } from './frame-auth';
import type { Connection, WireMessage } from './network';
import { isAddress, isNodeId } from './network';
import type { TimerHandle } from './seams';

import type { FabricContext, FabricHandler } from './fabric-context';

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

export class InboundLinks {
  private readonly inbound = new Set<InboundLink>();
  /** The inbound connection holding each peer's node id. */
  private readonly claims = new Map<string, InboundLink>();

  /**
   * @param deliver hands on a message of an authenticated peer.
   * @param deliverAdmin hands on a message of an admin connection.
   * @param acceptsAdmin whether admin connections are accepted (an admin handler is set).
   */
  constructor(
    private readonly context: FabricContext,
    private readonly deliver: FabricHandler,
    private readonly deliverAdmin: (connection: Connection, message: WireMessage) => void,
    private readonly acceptsAdmin: () => boolean,
  ) {}

  /** Connections from peers, and how many of them are still in their handshake. */
  get counts(): { inbound: number; unauthenticated: number } {
    let unauthenticated = 0;
    for (const link of this.inbound) if (link.state !== 'ready') unauthenticated++;
    return { inbound: this.inbound.size, unauthenticated };
  }

  /** The inbound half of Fabric.sweep: a ready connection that heard nothing for the stall timeout (admin: ADMIN_IDLE_TIMEOUT_MS) is closed. */
  sweep(now: number): void {
    const stallMs = this.context.options.stallTimeoutMs;
    for (const link of this.inbound) {
      if (link.state !== 'ready') continue;
      const idleMs = link.admin ? ADMIN_IDLE_TIMEOUT_MS : stallMs;
      if (now - link.lastReceivedMs > idleMs) {
        this.context.counters.silentConnections++;
        this.context.options.runtime.logger.info(`cluster: closing connection from ${link.peerNodeId} (${link.connection.remoteAddress}): silent for ${Math.round(now - link.lastReceivedMs)} ms`);
        link.connection.close('silent');
      }
    }
  }

  forgiveStall(shift: (ms: number) => number): void {
    for (const link of this.inbound) link.lastReceivedMs = shift(link.lastReceivedMs);
  }

  closeAll(reason: string): void {
    for (const link of this.inbound) link.connection.close(reason);
    this.inbound.clear();
    this.claims.clear();
  }

  accept(connection: Connection): void {
    if (this.context.stopped) {
      connection.close('node stopping');
      return;
    }
    const now = this.context.options.runtime.clock.nowMs();
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
    const timers = this.context.options.runtime.timers;
    link.handshakeTimer = timers.setTimeout(() => {
      if (link.state !== 'ready' && !connection.closed) {
        this.context.refusals.warn(`cluster: closing connection from ${connection.remoteAddress}: no handshake within ${HANDSHAKE_TIMEOUT_MS} ms`);
        connection.close('handshake timeout');
      }
    }, HANDSHAKE_TIMEOUT_MS);
    connection.setHandlers({
      onMessage: (message) => this.onInboundMessage(link, message),
      onClose: (reason) => {
        this.context.noteForgery(connection, reason);
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
    this.context.counters.evictedHandshakes++;
    this.context.refusals.warn(`cluster: closing connection from ${evict.connection.remoteAddress}: too many connections in their handshake${fromHost >= MAX_UNAUTHENTICATED_PER_HOST ? ` from ${host}` : ''}`);
    evict.connection.close('too many handshakes');
  }

  private onInboundMessage(link: InboundLink, message: WireMessage): void {
    link.lastReceivedMs = this.context.options.runtime.clock.nowMs();
    if (link.state === 'ready') {
      this.context.counters.messagesIn++;
      if (link.admin) {
        this.deliverAdmin(link.connection, message);
        return;
      }
      link.framesReceived++;
      if (link.acknowledge) this.scheduleAck(link);
      this.deliver(link.peerNodeId!, message);
      return;
    }
    if (link.state === 'hello') this.onHello(link, message);
    else this.onProof(link, message);
  }

  private scheduleAck(link: InboundLink): void {
    if (link.ackTimer !== undefined) return;
    link.ackTimer = this.context.options.runtime.timers.setTimeout(() => {
      link.ackTimer = undefined;
      if (!link.connection.closed) link.connection.send({ type: 'ack', frames: link.framesReceived });
    }, this.context.ackDelayMs);
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
    if (this.context.keys === undefined) {
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
    if (this.context.overTls && binding === undefined) {
      this.refuse(link, 'no TLS session to bind the handshake to', 'authentication failed', true);
      return;
    }
    const nonce = randomNonce(this.context.options.runtime.random);
    link.transcript = handshakeTranscript(hello.identity, hello.link, hello.nonce, nonce, hello.negotiated, binding);
    link.state = 'proof';
    link.connection.send({ type: 'hello-challenge', nonce, protocolVersion: hello.negotiated });
  }

  private onProof(link: InboundLink, message: WireMessage): void {
    if (message.type !== 'hello-proof') {
      this.refuse(link, `expected a hello-proof, got ${JSON.stringify(message.type)}`, 'authentication failed', true);
      return;
    }
    const key = matchConnectorProof(this.context.keys!, link.transcript!, message.proofs);
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
    if (identity.clusterName !== this.context.options.clusterName) {
      this.refuse(link, `cluster name "${identity.clusterName}" does not match this node's "${this.context.options.clusterName}"`, 'cluster name does not match');
      return;
    }
    if (identity.nodeId === this.context.options.nodeId && identity.address !== this.context.advertised) {
      this.refuse(link, `node id "${identity.nodeId}" is already this node's (at ${this.context.advertised}); every node needs its own id`, 'that node id is this node\'s own; every node needs its own id');
      return;
    }
    if (admin && !this.acceptsAdmin()) {
      this.refuse(link, 'an admin connection, and this node accepts none', 'this node accepts no admin connections');
      return;
    }
    if (!admin && identity.nodeId !== this.context.options.nodeId && !this.claim(link, identity.nodeId)) return;
    this.context.options.runtime.timers.clearTimeout(link.handshakeTimer);
    link.state = 'ready';
    link.peerNodeId = identity.nodeId;
    link.admin = admin;
    connection.setMaxFrameBytes(admin ? MAX_ADMIN_FRAME_BYTES : MAX_FRAME_BYTES);
    if (!admin) this.context.learnAddress(identity.nodeId, identity.address);
    const ack: WireMessage = { type: 'hello-ack', nodeId: this.context.options.nodeId, protocolVersion: link.negotiated, acknowledges: link.acknowledge };
    if (key !== undefined) ack.proof = acceptorProof(key, link.transcript!, this.context.options.nodeId, link.acknowledge);
    connection.send(ack);
    // The proof was the connector's last frame without a tag, and the ack ours.
    if (key !== undefined && !this.context.overTls) connection.authenticateFrames(sessionKeys(key, link.transcript!, 'acceptor'));
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
      const now = this.context.options.runtime.clock.nowMs();
      if (!replacing && now - holder.lastReceivedMs < this.context.options.reconnectIntervalMs * NODE_CLAIM_LIVE_INTERVALS) {
        this.refuse(link, `node id "${nodeId}" is already connected from ${holder.connection.remoteAddress}`, 'that node id is already connected');
        return false;
      }
      if (!replacing) holder.connection.close('replaced by a newer connection from the same node id');
    }
    this.claims.set(nodeId, link);
    return true;
  }

  private refuse(link: InboundLink, logged: string, told: string, authentication = false): void {
    this.context.counters.rejectedHandshakes++;
    if (authentication) this.context.counters.authenticationFailures++;
    this.context.refusals.warn(`cluster: refusing connection from ${link.connection.remoteAddress}: ${logged}`);
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
    const negotiated = Math.min(theirs, this.context.protocolVersion);
    if (negotiated < Math.max(theirMin, this.context.minProtocolVersion) || theirMin > theirs) {
      return `unsupported protocol version ${theirs} (minimum ${theirMin}); this node speaks ${this.context.minProtocolVersion}..${this.context.protocolVersion}`;
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
}
