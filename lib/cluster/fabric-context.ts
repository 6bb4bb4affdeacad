/**
 * What the fabric's parts share (fabric.ts wires them): the options, the counters, the
 * rate-limited refusal logs, the handshake keys and transport, this node's addresses and the
 * addresses learned of peers. The outbound links (fabric-outbound.ts) and the inbound ones
 * (fabric-inbound.ts) each keep their own connections.
 */
import {
  ACK_DELAY_INTERVALS,
  AUTH_FAILURE_LOG_LIMIT,
  AUTH_FAILURE_LOG_WINDOW_MS,
  MAX_CLUSTER_NODES,
  PROTOCOL_VERSION_CURRENT,
  PROTOCOL_VERSION_MIN_SUPPORTED,
} from './constants';
import type { ClusterSecrets, HandshakeKeys } from './auth';
import type { Connection, Network, NetworkOptions, TlsSettings, WireMessage } from './network';
import { FRAME_AUTHENTICATION_FAILED, isAddress } from './network';
import type { Runtime } from './seams';
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

export class FabricContext {
  advertised = '';
  /** Addresses found to be this node itself (a seed list may include it). */
  readonly selfAddresses = new Set<string>();
  readonly nodeAddresses = new Map<string, string>();
  keys: HandshakeKeys | undefined;
  /** What every listen and connect asks of the network: TLS with certificates, or plain TCP. */
  transport: NetworkOptions = {};
  stopped = false;
  readonly refusals: LogLimiter;
  readonly failedDials: LogLimiter;
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

  constructor(readonly options: FabricOptions) {
    this.protocolVersion = options.protocolVersion ?? PROTOCOL_VERSION_CURRENT;
    this.minProtocolVersion = options.minProtocolVersion ?? PROTOCOL_VERSION_MIN_SUPPORTED;
    const { logger, clock } = options.runtime;
    this.refusals = new LogLimiter(logger, clock, AUTH_FAILURE_LOG_LIMIT, AUTH_FAILURE_LOG_WINDOW_MS);
    this.failedDials = new LogLimiter(logger, clock, AUTH_FAILURE_LOG_LIMIT, AUTH_FAILURE_LOG_WINDOW_MS);
  }

  /** Whether connections run over TLS (`cluster.tls`), so every handshake must be bound to its TLS session. */
  get overTls(): boolean {
    return this.transport.tls !== undefined;
  }

  /** How long an acceptor waits before acknowledging the frames received (one ack covers them all). */
  get ackDelayMs(): number {
    return this.options.reconnectIntervalMs * ACK_DELAY_INTERVALS;
  }

  /** Records where `nodeId` listens (learned from an authenticated peer). Ignores an address that is not "host:port". */
  learnAddress(nodeId: string, address: string): void {
    if (nodeId === this.options.nodeId || this.selfAddresses.has(address) || !isAddress(address)) return;
    const previous = this.nodeAddresses.get(nodeId);
    if (previous === address) return;
    if (previous === undefined && this.nodeAddresses.size >= MAX_CLUSTER_NODES) return;
    this.nodeAddresses.set(nodeId, address);
  }

  /** A TLS handshake failed: not a certificate of the cluster's CA (or not speaking TLS at all). */
  onTlsFailure(remote: string, reason: string): void {
    this.counters.authenticationFailures++;
    this.refusals.warn(`cluster: TLS handshake with ${remote} failed: ${reason} (not a certificate of the cluster CA, or not TLS?)`);
  }

  /** Counts and logs (rate-limited) a connection closed on a frame whose tag failed: whoever is on the path can cause one. */
  noteForgery(connection: Connection, reason: string): void {
    if (reason !== FRAME_AUTHENTICATION_FAILED) return;
    this.counters.forgedFrames++;
    this.counters.authenticationFailures++;
    this.refusals.warn(`cluster: closed the connection with ${connection.remoteAddress}: a frame failed authentication (altered, forged, replayed, reordered, dropped or from another connection)`);
  }
}
