/**
 * The fabric's outbound connections (docs/cluster.md, "Handshake", "Connections that heal"):
 * one link per peer address, opened on the first send, whose messages wait until the
 * handshake completes (a link closed before then hands them to the next one); acknowledged
 * frames, and a stalled link retired and replaced while it drains what it carries.
 */
import { HANDSHAKE_TIMEOUT_MS, MAX_CLUSTER_NODES, MAX_HANDSHAKE_QUEUE_BYTES, RETIRED_CONNECTION_GRACE_MS } from './constants';
import type { HelloIdentity } from './auth';
import { ConnectorHandshake } from './auth';
import { encodeBody } from './frame';
import type { Connection, WireMessage } from './network';

import type { FabricContext } from './fabric-context';

export interface OutboundLink {
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


export class OutboundLinks {
  private readonly outbound = new Map<string, OutboundLink>();
  /** Stalled links replaced by fresh ones, kept open until what they carry is acknowledged (or RETIRED_CONNECTION_GRACE_MS). */
  private readonly retired = new Set<OutboundLink>();
  /** Messages of links closed before their handshake completed, handed to the next link to the same address. */
  private readonly carried = new Map<string, { queue: Buffer[]; bytes: number; sinceMs: number }>();
  /** Per address, the id of the retired link the next one replaces (until one completes its handshake). */
  private readonly replacing = new Map<string, string>();
  private readonly lastAttemptMs = new Map<string, number>();

  constructor(private readonly context: FabricContext) {}

  /** Links open now and links retired. */
  get counts(): { outbound: number; retired: number } {
    return { outbound: this.outbound.size, retired: this.retired.size };
  }

  /**
   * Sends to whatever node listens at `address`, connecting if needed (Fabric.sendToAddress).
   * @throws RangeError if the message exceeds the frame limit (a programming error).
   */
  send(address: string, message: WireMessage): boolean {
    let link = this.outbound.get(address);
    if (link === undefined || link.connection.closed) {
      link = this.open(address);
      if (link === undefined) return false;
    }
    const body = encodeBody(message);
    this.context.counters.messagesOut++;
    if (!link.ready) {
      if (link.queuedBytes + body.length > MAX_HANDSHAKE_QUEUE_BYTES) return false;
      if (link.queue.length === 0) link.queuedSinceMs = this.context.options.runtime.clock.nowMs();
      link.queue.push(body);
      link.queuedBytes += body.length;
      return true;
    }
    return this.transmit(link, body);
  }

  /** The outbound half of Fabric.sweep: handshakes that take too long, stalled links retired, retired links past their grace. */
  sweep(now: number): void {
    const stallMs = this.context.options.stallTimeoutMs;
    const handshakeMs = Math.min(stallMs, HANDSHAKE_TIMEOUT_MS);
    for (const link of [...this.outbound.values()]) {
      if (!link.ready) {
        if (now - link.openedMs > handshakeMs) link.connection.close(`handshake not done within ${handshakeMs} ms`);
        continue;
      }
      if (link.acknowledged && link.framesSent > link.framesAcknowledged && now - link.waitingSinceMs > stallMs) {
        this.context.counters.stalledConnections++;
        this.context.options.runtime.logger.info(
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
  }

  /** Moves every link's clocks forward by a stall of this node's event loop (Fabric.forgiveStall). */
  forgiveStall(shift: (ms: number) => number): void {
    for (const link of [...this.outbound.values(), ...this.retired]) {
      link.openedMs = shift(link.openedMs);
      link.waitingSinceMs = shift(link.waitingSinceMs);
      if (link.retiredAtMs !== undefined) link.retiredAtMs = shift(link.retiredAtMs);
    }
  }

  closeAll(reason: string): void {
    for (const link of this.outbound.values()) link.connection.close(reason);
    for (const link of this.retired) link.connection.close(reason);
    this.outbound.clear();
    this.retired.clear();
    this.carried.clear();
    this.replacing.clear();
  }

  transmit(link: OutboundLink, body: Buffer): boolean {
    if (!link.connection.sendBody(body)) return false;
    if (link.framesSent === link.framesAcknowledged) link.waitingSinceMs = this.context.options.runtime.clock.nowMs();
    link.framesSent++;
    return true;
  }

  open(address: string): OutboundLink | undefined {
    const now = this.context.options.runtime.clock.nowMs();
    const last = this.lastAttemptMs.get(address);
    if (last !== undefined && now - last < this.context.options.reconnectIntervalMs && now >= last) return undefined;
    this.lastAttemptMs.set(address, now);
    if (this.lastAttemptMs.size > 4 * MAX_CLUSTER_NODES) this.lastAttemptMs.delete(this.lastAttemptMs.keys().next().value!);
    let connection: Connection;
    try {
      connection = this.context.options.network.connect(address, this.context.transport);
    } catch (error) {
      this.context.options.runtime.logger.warn(`cluster: cannot connect to ${address}: ${(error as Error).message}`);
      return undefined;
    }
    const identity: HelloIdentity = {
      protocolVersion: this.context.protocolVersion,
      minProtocolVersion: this.context.minProtocolVersion,
      nodeId: this.context.options.nodeId,
      clusterName: this.context.options.clusterName,
      address: this.context.advertised,
      role: 'node',
    };
    const random = this.context.options.runtime.random;
    const linkId = random.nextUint32().toString(16).padStart(8, '0') + random.nextUint32().toString(16).padStart(8, '0');
    const replaces = this.replacing.get(address);
    const handshake = new ConnectorHandshake(connection, identity, this.context.keys, this.context.options.runtime.random, this.context.overTls, { acknowledge: true, link: linkId, replaces });
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
    if (carried !== undefined && now - carried.sinceMs <= 2 * this.context.options.stallTimeoutMs) {
      link.queue = carried.queue;
      link.queuedBytes = carried.bytes;
      link.queuedSinceMs = carried.sinceMs;
    }
    this.outbound.set(address, link);
    connection.setHandlers({
      onMessage: (message) => this.onOutboundMessage(link, message),
      onClose: (reason) => {
        this.context.noteForgery(connection, reason);
        if (this.outbound.get(address) === link) this.outbound.delete(address);
        this.retired.delete(link);
        // Messages still waiting for a handshake that will not come go to the next link (a
        // handshake that timed out, a claim refused while the peer's old connection was live).
        if (!link.ready && link.queue.length > 0 && !this.context.stopped) {
          this.carried.set(address, { queue: link.queue, bytes: link.queuedBytes, sinceMs: link.queuedSinceMs });
          if (this.carried.size > MAX_CLUSTER_NODES) this.carried.delete(this.carried.keys().next().value!);
        }
        link.queue = [];
        // A peer that speaks only TLS (it has certificates) drops a plain hello unanswered.
        if (!link.ready && reason === 'closed by peer' && !this.context.overTls) {
          this.context.failedDials.warn(`cluster: ${address} closed the connection during the handshake: it may require the cluster secret or TLS (is cluster.secret set here?)`);
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
      this.context.counters.protocolViolations++;
      this.context.options.runtime.logger.warn(`cluster: closing connection to ${link.address}: unexpected message "${message.type}" on an outbound connection`);
      link.connection.close('protocol violation');
      return;
    }
    const outcome = link.handshake.onMessage(message);
    if (outcome.kind === 'pending') return;
    if (outcome.kind === 'failed') {
      if (outcome.refused) this.context.failedDials.warn(`cluster: ${link.address} refused our handshake: ${outcome.reason.replace(/^refused: /, '')}`);
      else this.context.failedDials.warn(`cluster: handshake with ${link.address} failed: ${outcome.reason}`);
      link.connection.close('handshake failed');
      return;
    }
    link.remoteNodeId = outcome.nodeId;
    if (outcome.nodeId === this.context.options.nodeId) {
      this.context.selfAddresses.add(link.address);
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
      this.context.counters.protocolViolations++;
      this.context.options.runtime.logger.warn(`cluster: closing connection to ${link.address}: malformed acknowledgement`);
      link.connection.close('protocol violation');
      return;
    }
    // More than sent only if the network duplicated frames (the simulator does); fewer forever if it lost some.
    const acknowledged = Math.min(frames as number, link.framesSent);
    if (acknowledged <= link.framesAcknowledged) return;
    link.framesAcknowledged = acknowledged;
    link.waitingSinceMs = this.context.options.runtime.clock.nowMs();
    // A retired link is done once everything it carried arrived.
    if (link.retiredAtMs !== undefined && link.framesAcknowledged >= link.framesSent) link.connection.close('replaced after a stall; all it carried arrived');
  }
}
