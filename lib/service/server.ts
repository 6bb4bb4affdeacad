/**
 * The Aerospike service listener (docs/protocol.md): `open({ service })`
 * starts one per Db, on its own port. It accepts client connections (connection.ts) and
 * routes their frames: info requests to info.ts, logins to security.ts, AS_MSG to the
 * single-record (records.ts), batch (batch.ts) and scan (scan.ts) commands, which run on the
 * Db's public API. In cluster mode a request for a partition another node masters is
 * forwarded by the Db, as any embedded call is.
 */
import * as net from 'node:net';
import type { Cluster } from '../cluster/cluster-api';
import type { NamespaceConfig } from '../namespace/config';
import { executeBatch } from './batch';
import { ByteBudget, Connection, FrameHandler } from './connection';
import { SERVICE_BUFFERED_BYTES_MAX, SERVICE_CONNECTIONS_MAX, SERVICE_INFO_REQUEST_BYTES_MAX, SERVICE_LOG_INTERVAL_MS, SERVICE_LOG_LINES_PER_INTERVAL, SINDEX_PEER_TIMEOUT_MS, UDF_PEER_TIMEOUT_MS } from './constants';
import { InfoContext, answerInfo } from './info';
import { SecondaryIndexes } from './sindex';
import { peerInfo } from './peer-info';
import { BackgroundJobs } from './background';
import { RecordContext, RecordReply, executeRecord, writeRecordMessage } from './records';
import { ResultCode, resultCodeOf } from './result-codes';
import { executeScan, isScan } from './scan';
import { ResolvedServiceOptions, isLoopbackHost } from './options';
import type { ServedDb } from './served-db';
import { Security } from './security';
import { ClusterSource, Topology } from './topology';
import { UdfService } from './udf';
import { FrameType, Info1, Info3, Message, ProtocolError, beginFrame, endFrame, parseMessage } from './wire';

/** What the service needs of the Db besides its public methods (passed by open()). */
export interface ServiceInternals {
  namespaces: readonly NamespaceConfig[];
  /** The cluster node in cluster mode (its routing, map and peers), and its public facade. */
  clusterNode: (ClusterSource & { advertiseService(value: unknown): void; readonly options: { clusterName: string; replicationFactor: number }; readonly dataPlane?: { counters: { forwarded: number; executedAsMaster: number } } }) | undefined;
  cluster: Cluster | undefined;
  /** This node's id when not in cluster mode (persisted in dataDir). */
  nodeId: string;
  /** Where registered UDF modules persist (`<dataDir>/udf`), and the mode of their files. */
  udfDirectory?: string;
  fileMode?: number;
  /** A namespace's sets and the records each holds on this node (the `sets` info). */
  setObjects(ns: string): Promise<Map<string, number>>;
  log(message: string): void;
}

/** The listener's figures, in `db.service.stats()` and the info command `statistics`. */
export interface ServiceStats {
  connections: number;
  connectionsOpened: number;
  connectionsClosed: number;
  connectionsRefused: number;
  infoRequests: number;
  recordRequests: number;
  batchRequests: number;
  scanRequests: number;
  /** Requests answered with a result code other than OK and KEY_NOT_FOUND. */
  requestErrors: number;
  /** Connections closed for input that is not Aerospike's protocol. */
  malformedFrames: number;
  loginFailures: number;
  /** Bytes of frames being read (the SERVICE_BUFFERED_BYTES_MAX budget in use). */
  bufferedBytes: number;
  /** Reply bytes written but not yet taken by slow clients' sockets (scans stop producing while theirs waits). */
  queuedReplyBytes: number;
}

/** Log lines about bad input, at most SERVICE_LOG_LINES_PER_INTERVAL per interval. */
class RateLimitedLog {
  private windowStartMs = 0;
  private lines = 0;
  private dropped = 0;

  constructor(private readonly log: (message: string) => void) {}

  write(message: string): void {
    const now = Date.now();
    if (now - this.windowStartMs >= SERVICE_LOG_INTERVAL_MS) {
      if (this.dropped > 0) this.log(`service: ${this.dropped} more such lines were not logged`);
      this.windowStartMs = now;
      this.lines = 0;
      this.dropped = 0;
    }
    if (this.lines++ < SERVICE_LOG_LINES_PER_INTERVAL) this.log(message);
    else this.dropped++;
  }
}

export class Service implements FrameHandler {
  private readonly connections = new Set<Connection>();
  private readonly budget = new ByteBudget(SERVICE_BUFFERED_BYTES_MAX);
  private readonly badInput: RateLimitedLog;
  private readonly counts = { connectionsOpened: 0, connectionsClosed: 0, connectionsRefused: 0, infoRequests: 0, recordRequests: 0, batchRequests: 0, scanRequests: 0, requestErrors: 0, malformedFrames: 0, loginFailures: 0 };
  private readonly records: RecordContext;
  private readonly info: InfoContext;
  private readonly sweep: NodeJS.Timeout;
  private listening: { host: string; port: number };
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly server: net.Server,
    private readonly security: Security,
    readonly topology: Topology,
    db: ServedDb,
    private readonly internals: ServiceInternals,
    address: { host: string; port: number },
    private readonly udf: UdfService,
  ) {
    this.listening = address;
    this.badInput = new RateLimitedLog(internals.log);
    const namespaces = new Map(internals.namespaces.map((ns) => [ns.name, ns]));
    const sync = new Set(internals.clusterNode === undefined ? internals.namespaces.filter((ns) => ns.kind === 'memory' || ns.device?.dataInMemory === true).map((ns) => ns.name) : []);
    const indexes = new SecondaryIndexes(new Set(namespaces.keys()), internals.clusterNode === undefined ? undefined : (command) => this.toPeers(command));
    const jobs = new BackgroundJobs(internals.log);
    this.records = { db, hasNamespace: (ns) => namespaces.has(ns), servesSync: (ns) => sync.has(ns), applyUdf: (message, key, filter) => udf.apply(db, message, key, filter), indexes, jobs };
    const clusterNode = internals.clusterNode;
    this.info = {
      db,
      topology,
      namespaces,
      indexes,
      jobs,
      cluster: internals.cluster,
      clusterName: clusterNode?.options.clusterName ?? 'shoal',
      udf,
      replicationFactor: () => clusterNode?.partitionMap.replicationFactor ?? 1,
      serviceStatistics: () => this.statistics(),
      setObjects: internals.setObjects,
      log: internals.log,
    };
    server.on('connection', (socket) => this.accept(socket));
    this.sweep = setInterval(() => this.closeTimedOut(), 1000).unref();
  }

  /** Sends an info command to every peer's listener (peer-info.ts, logged in when the service has users); a peer that fails is logged, not waited for past `timeoutMs`. */
  private async toPeers(command: string, timeoutMs = SINDEX_PEER_TIMEOUT_MS): Promise<void> {
    const addresses = this.topology.services().split(';').filter((address) => address.length > 0);
    const login = this.security.peerLogin();
    await Promise.all(
      addresses.map(async (address) => {
        try {
          const answer = await peerInfo(address, command, login, timeoutMs);
          if (answer.startsWith('ERROR')) this.internals.log(`service: peer ${address} answered ${answer} to ${command.slice(0, command.indexOf(':'))}`);
        } catch (error) {
          this.internals.log(`service: could not send ${command.slice(0, command.indexOf(':'))} to peer ${address}: ${(error as Error).message}`);
        }
      }),
    );
  }

  /**
   * Starts the listener.
   * @throws the listen error (the port is taken, the address is not local).
   */
  static async start(db: ServedDb, options: ResolvedServiceOptions, internals: ServiceInternals): Promise<Service> {
    if (!isLoopbackHost(options.host) && options.users === undefined) {
      internals.log(`service: WARNING listening on ${options.host}:${options.port} without users (service.insecure): every client that reaches it can read and write every record`);
    }
    const security = await Security.create(options.users);
    const server = net.createServer({ noDelay: true });
    server.maxConnections = SERVICE_CONNECTIONS_MAX;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: options.host, port: options.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const bound = server.address() as net.AddressInfo;
    const address = { host: options.host, port: bound.port };
    const advertised = options.advertise ?? `${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
    const topology = new Topology({
      nodeId: internals.clusterNode?.nodeId ?? internals.nodeId,
      namespaces: internals.namespaces.map((ns) => ns.name),
      address: advertised,
      cluster: internals.clusterNode,
    });
    internals.clusterNode?.advertiseService(advertised);
    // Registrations reach the peers as index definitions do (toPeers), once the service exists.
    let service: Service | undefined;
    const toPeers = (command: string): Promise<void> => (internals.clusterNode === undefined ? Promise.resolve() : service!.toPeers(command, UDF_PEER_TIMEOUT_MS));
    const udf = UdfService.open(internals.udfDirectory, internals.fileMode ?? 0o600, toPeers, internals.log);
    service = new Service(server, security, topology, db, internals, address, udf);
    return service;
  }

  /** `{ host, port }` the listener is bound to. */
  get address(): { host: string; port: number } {
    return { ...this.listening };
  }

  /** The listener's figures (ServiceStats). */
  stats(): ServiceStats {
    let queuedReplyBytes = 0;
    for (const connection of this.connections) queuedReplyBytes += connection.socket.writableLength;
    return { connections: this.connections.size, ...this.counts, bufferedBytes: this.budget.usedBytes, queuedReplyBytes };
  }

  private statistics(): Record<string, number | string | boolean> {
    const s = this.stats();
    const counters = this.internals.clusterNode?.dataPlane?.counters;
    return {
      client_connections: s.connections,
      client_connections_opened: s.connectionsOpened,
      client_connections_closed: s.connectionsClosed,
      client_connections_refused: s.connectionsRefused,
      connections_max: SERVICE_CONNECTIONS_MAX,
      info_requests: s.infoRequests,
      record_requests: s.recordRequests,
      batch_requests: s.batchRequests,
      scan_requests: s.scanRequests,
      request_errors: s.requestErrors,
      malformed_frames: s.malformedFrames,
      login_failures: s.loginFailures,
      buffered_bytes: s.bufferedBytes,
      queued_reply_bytes: s.queuedReplyBytes,
      // Cluster mode: requests this node forwarded to another master, and requests it ran as master.
      cluster_requests_forwarded: counters?.forwarded ?? 0,
      cluster_requests_executed_as_master: counters?.executedAsMaster ?? 0,
      // Record UDFs: calls run, workers ended for a call past its deadline, workers that died.
      udf_calls: this.udf.runner.counters.calls,
      udf_worker_deadlines: this.udf.runner.counters.deadlines,
      udf_worker_crashes: this.udf.runner.counters.crashes,
    };
  }

  /** Stops listening and closes every connection. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.sweep);
      this.internals.clusterNode?.advertiseService(undefined);
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      for (const connection of [...this.connections]) connection.close(undefined);
      await closed;
      await this.udf.close();
    })();
    return this.closing;
  }

  private accept(socket: net.Socket): void {
    if (this.closing !== undefined || this.connections.size >= SERVICE_CONNECTIONS_MAX) {
      this.counts.connectionsRefused++;
      this.badInput.write(`service: refused a connection from ${socket.remoteAddress}: ${this.connections.size} connections are open (the limit is ${SERVICE_CONNECTIONS_MAX})`);
      socket.destroy();
      return;
    }
    this.counts.connectionsOpened++;
    this.connections.add(new Connection(socket, this, this.budget, !this.security.enabled));
  }

  connectionClosed(connection: Connection, reason: string | undefined): void {
    if (!this.connections.delete(connection)) return;
    this.counts.connectionsClosed++;
    if (reason !== undefined) {
      this.counts.malformedFrames++;
      this.badInput.write(`service: closed the connection from ${connection.socket.remoteAddress}:${connection.socket.remotePort}: ${reason}`);
    }
  }

  private closeTimedOut(): void {
    const now = Date.now();
    for (const connection of this.connections) if (connection.frameTimedOut(now)) connection.close('a frame did not arrive in time');
  }

  handleFrame(connection: Connection, type: number, body: Buffer): void | Promise<void> {
    switch (type) {
      case FrameType.MESSAGE:
        if (!connection.authenticated) return this.refuseUnauthenticated(connection, FrameType.MESSAGE);
        return this.handleMessage(connection, body);
      case FrameType.INFO:
        if (!connection.authenticated) return this.refuseUnauthenticated(connection, FrameType.INFO);
        return this.handleInfo(connection, body);
      case FrameType.ADMIN:
        return this.handleAdmin(connection, body);
      default:
        // Compressed requests: the Community server's answer, ENTERPRISE_ONLY.
        this.replyResult(connection, ResultCode.ENTERPRISE_ONLY, true);
        return undefined;
    }
  }

  private async handleInfo(connection: Connection, body: Buffer): Promise<void> {
    this.counts.infoRequests++;
    if (body.length > SERVICE_INFO_REQUEST_BYTES_MAX) throw new ProtocolError(`an info request of ${body.length} bytes; the limit is ${SERVICE_INFO_REQUEST_BYTES_MAX}`);
    const reply = await answerInfo(body.toString('utf8'), this.info);
    const writer = connection.writer;
    const start = beginFrame(writer);
    writer.utf8(reply);
    endFrame(writer, start, FrameType.INFO);
    await connection.flush();
  }

  private async handleAdmin(connection: Connection, body: Buffer): Promise<void> {
    const authenticated = this.security.handle(body, connection.writer);
    await connection.flush();
    if (authenticated) connection.authenticated = true;
    else {
      this.counts.loginFailures++;
      this.badInput.write(`service: a login from ${connection.socket.remoteAddress} failed`);
      connection.close(undefined);
    }
  }

  private async refuseUnauthenticated(connection: Connection, type: number): Promise<void> {
    this.counts.loginFailures++;
    const writer = connection.writer;
    if (type === FrameType.INFO) {
      const start = beginFrame(writer);
      writer.utf8(`ERROR:${ResultCode.NOT_AUTHENTICATED}:not authenticated\n`);
      endFrame(writer, start, FrameType.INFO);
      await connection.flush();
    } else await this.replyResult(connection, ResultCode.NOT_AUTHENTICATED, true);
    connection.close(undefined);
  }

  /** A reply of a result code alone (flagged LAST, for commands that stream). */
  private replyResult(connection: Connection, resultCode: number, last: boolean): Promise<void> | undefined {
    const writer = connection.writer;
    const start = beginFrame(writer);
    writeRecordMessage(writer, { resultCode, generation: 0, ttl: -1, bins: [] }, 0, { info3: last ? Info3.LAST : 0 });
    endFrame(writer, start, FrameType.MESSAGE);
    return connection.flush();
  }

  private handleMessage(connection: Connection, body: Buffer): void | Promise<void> {
    const message = parseMessage(body, 0, body.length);
    if ((message.info1 & Info1.BATCH) !== 0) {
      this.counts.batchRequests++;
      return this.stream(connection, message, executeBatch);
    }
    if (isScan(message)) {
      this.counts.scanRequests++;
      return this.stream(connection, message, executeScan);
    }
    this.counts.recordRequests++;
    let reply: RecordReply | Promise<RecordReply>;
    try {
      reply = executeRecord(this.records, message);
    } catch (error) {
      return this.replyError(connection, error, false);
    }
    if (reply instanceof Promise) return reply.then((value) => this.replyRecord(connection, value), (error: unknown) => this.replyError(connection, error, false));
    return this.replyRecord(connection, reply);
  }

  private replyRecord(connection: Connection, reply: RecordReply): Promise<void> | undefined {
    if (reply.resultCode !== ResultCode.OK && reply.resultCode !== ResultCode.KEY_NOT_FOUND) this.counts.requestErrors++;
    const writer = connection.writer;
    const start = beginFrame(writer);
    writeRecordMessage(writer, reply, Math.floor(Date.now() / 1000));
    endFrame(writer, start, FrameType.MESSAGE);
    return connection.flush();
  }

  private replyError(connection: Connection, error: unknown, last: boolean): Promise<void> | undefined {
    if (error instanceof ProtocolError) throw error;
    const resultCode = resultCodeOf(error);
    if (resultCode === ResultCode.SERVER_ERROR) this.internals.log(`service: a request failed: ${(error as Error).stack ?? String(error)}`);
    this.counts.requestErrors++;
    return this.replyResult(connection, resultCode, last);
  }

  /** Runs a batch or a scan, whose replies go out in frames as they are produced. */
  private async stream(
    connection: Connection,
    message: Message,
    run: (context: RecordContext, message: Message, writer: Connection['writer'], send: (last: boolean) => Promise<void>, isOpen: () => boolean) => Promise<void>,
  ): Promise<void> {
    const writer = connection.writer;
    let start = beginFrame(writer);
    let sentAny = false;
    const send = async (last: boolean) => {
      endFrame(writer, start, FrameType.MESSAGE);
      sentAny = true;
      await connection.flush();
      if (!last) start = beginFrame(writer);
    };
    try {
      await run(this.records, message, writer, send, () => connection.isOpen);
    } catch (error) {
      if (error instanceof ProtocolError) throw error;
      // Nothing is half-sent when a request is refused before its first frame; afterwards the
      // stream cannot be ended cleanly, so the connection is closed.
      if (sentAny) {
        connection.close(undefined);
        this.internals.log(`service: a streaming request failed: ${(error as Error).message}`);
        return;
      }
      writer.reset();
      await this.replyError(connection, error, true);
    }
  }
}
