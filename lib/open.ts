/**
 * open(): resolves the options, opens every namespace, starts cluster mode and the service
 * listener when asked, and hands back the Db (lib/db.ts). Whatever it opened is closed again
 * when a later step fails.
 */
import * as path from 'node:path';
import { ErrorCode, ShoalError, invalidArgument } from './errors';
import { Db } from './db';
import { DbLocalStore } from './db-cluster';
import { ClusterNode, loadOrCreateNodeId, startCluster } from './cluster/index';
import { HybridClock } from './clock';
import { openNamespace } from './namespace/factory';
import type { Namespace } from './namespace/namespace';
import { DbConfig, OpenOptions, resolveOptions } from './options';
import { Service } from './service/server';
import { registerForShutdown } from './shutdown';
import { makeDirectory } from './storage/file-mode';
import { resolveLog, type LogOption } from './log';
import { DbMetrics } from './metrics';
import { MetricsServer } from './metrics-server';
import { Xdr, XdrStore, checkNotSelf, resolveXdrOptions } from './xdr/index';

export interface OpenOptionsWithLog extends OpenOptions {
  /**
   * Where Shoal writes operational messages (cold-start reasons, dropped peers): a function of
   * one string, or a leveled logger of pino's shape (`warn(fields, message)`, lib/log.ts);
   * default console.warn.
   */
  log?: LogOption;
  /**
   * Close this Db on SIGTERM and SIGINT (lib/shutdown.ts); default true. false installs no
   * signal handler: the application drains its own work, then calls close() (README, "Shutdown").
   */
  handleSignals?: boolean;
}

/**
 * Opens (creating if needed) a database.
 * @throws TypeError or ShoalError INVALID_ARGUMENT for bad options; LOCKED when another Db
 *   holds one of the namespaces; IO_ERROR or CORRUPTION from storage.
 */
export async function open(options: OpenOptionsWithLog): Promise<Db> {
  const config = resolveOptions(options);
  const { log, clusterLogger } = resolveLog(options.log);
  const handleSignals = options.handleSignals ?? true;
  if (typeof handleSignals !== 'boolean') throw new TypeError('handleSignals must be a boolean');
  const xdrDestinations = options.xdr === undefined ? [] : resolveXdrOptions(options.xdr, config.namespaces.map((ns) => ns.name));
  if (options.xdr !== undefined && config.cluster === undefined) {
    throw invalidArgument('xdr needs cluster mode (a one-node cluster will do): give open() `cluster` options too (docs/xdr.md)');
  }
  try {
    makeDirectory(config.dataDir, config.fileMode);
  } catch (error) {
    throw new ShoalError(ErrorCode.IO_ERROR, `cannot create dataDir ${config.dataDir}: ${(error as Error).message}`, { cause: error });
  }
  // Every write is stamped by one hybrid logical clock per Db, which the versions it receives
  // from peers and other clusters advance (lib/clock.ts, docs/xdr.md "Hybrid logical clock").
  const clock = new HybridClock();
  const namespaces = new Map<string, Namespace>();
  try {
    for (const nsConfig of config.namespaces) namespaces.set(nsConfig.name, await openNamespace(nsConfig, config, log, clock));
  } catch (error) {
    await Promise.all([...namespaces.values()].map((ns) => ns.close(false).catch(() => undefined)));
    throw error;
  }
  let cluster: ClusterNode | undefined;
  let db: Db | undefined;
  // In cluster mode every node can be an XDR destination: its store applies shipped versions (docs/xdr.md).
  const store = new XdrStore(new DbLocalStore(namespaces), clock);
  if (config.cluster !== undefined) {
    try {
      for (const destination of xdrDestinations) checkNotSelf(destination, config.cluster.clusterName ?? 'shoal');
      cluster = await startCluster(config.cluster, store, {
        dataDir: config.dataDir,
        fileMode: config.fileMode,
        logger: clusterLogger,
        // What the operator CLI shows besides the cluster state.
        describe: () => (db === undefined ? undefined : db.stats()),
      });
    } catch (error) {
      await Promise.all([...namespaces.values()].map((ns) => ns.close(false).catch(() => undefined)));
      if (error instanceof ShoalError) throw error;
      if (error instanceof TypeError) throw error;
      // The cluster's checks of option values throw RangeError; the rule of docs/api.md makes
      // a value of the right type that cannot be used INVALID_ARGUMENT.
      if (error instanceof RangeError) throw new ShoalError(ErrorCode.INVALID_ARGUMENT, error.message, { cause: error });
      throw new ShoalError(ErrorCode.CLUSTER_ERROR, `cluster mode could not start: ${(error as Error).message}`, { cause: error });
    }
  }
  const metrics = new DbMetrics(options.metrics !== undefined);
  const xdr = cluster === undefined ? undefined : new Xdr({ store, clusterNode: cluster, dataDir: config.dataDir, fileMode: config.fileMode, log }, xdrDestinations);
  db = new Db(config, namespaces, cluster, metrics, xdr, clock);
  metrics.instrument(db);
  if (cluster !== undefined) metrics.watchCluster(cluster);
  if (config.service !== undefined) await startService(db, config, namespaces, cluster, log);
  if (config.metricsListen !== undefined) await startMetricsListener(db, config.metricsListen, log);
  if (handleSignals) registerForShutdown(db);
  return db;
}

/** Starts the Aerospike service listener of a Db just opened; closes the Db if it cannot start. */
async function startService(db: Db, config: DbConfig, namespaces: Map<string, Namespace>, cluster: ClusterNode | undefined, log: (message: string) => void): Promise<void> {
  try {
    const service = await Service.start(db, config.service!, {
      namespaces: config.namespaces,
      clusterNode: cluster,
      cluster: db.cluster,
      nodeId: cluster?.nodeId ?? loadOrCreateNodeId(config.dataDir, config.fileMode),
      udfDirectory: path.join(config.dataDir, 'udf'),
      fileMode: config.fileMode,
      setObjects: (ns) => namespaces.get(ns)!.setObjects(),
      log,
    });
    db.attachService(service);
  } catch (error) {
    await db.close().catch(() => undefined);
    if (error instanceof ShoalError || error instanceof TypeError || error instanceof RangeError) throw error;
    throw new ShoalError(ErrorCode.IO_ERROR, `the service listener could not start: ${(error as Error).message}`, { cause: error });
  }
}

/** Starts the metrics listener of a Db just opened; closes the Db if it cannot start. */
async function startMetricsListener(db: Db, listen: { host: string; port: number }, log: (message: string) => void): Promise<void> {
  try {
    db.attachMetricsListener(await MetricsServer.start({ metrics: () => db.metrics(), status: () => db.status() }, listen, log));
  } catch (error) {
    await db.close().catch(() => undefined);
    throw new ShoalError(ErrorCode.IO_ERROR, `the metrics listener could not start on ${listen.host}:${listen.port}: ${(error as Error).message}`, { cause: error });
  }
}
