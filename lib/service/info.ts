/**
 * The info protocol (docs/protocol.md, "Info commands"): a request is command lines, each
 * answered as `<line>\t<value>\n` in Aerospike's formats; a command Shoal does not know, or
 * one that fails, is answered `ERROR:<code>:<message>`, which clients report as an error.
 * A command's name ends at its first '/', ':' or ';' (a '/' after a ':' is part of the
 * parameters: set names may hold '/'). An empty request answers a summary.
 */
import type { ServedDb } from './served-db';
import type { Cluster } from '../cluster/cluster-api';
import type { NamespaceConfig } from '../namespace/config';
import { resultCodeOf, ResultCode } from './result-codes';
import type { Topology } from './topology';
import type { UdfService } from './udf';
import { SINDEX_INFO_COMMANDS, type SecondaryIndexes } from './sindex';
import type { BackgroundJobs } from './background';

/** The Aerospike server version whose protocol Shoal speaks: clients pick features by it. */
export const SERVER_BUILD = '7.0.0.0';
/** What `edition` answers (a client enables enterprise-only behaviour when it says "Enterprise"). */
export const SERVER_EDITION = 'Shoal';
/**
 * Feature tokens: those of Aerospike's `features` that Shoal implements (cdt-list and cdt-map:
 * list and map operations, op codes 3 and 4; geo: GeoJSON values and geospatial queries; udf:
 * record UDFs). blob-bits is absent, so clients and test suites leave that feature alone. Filter
 * expressions have no token: clients gate them on the build (5.2+).
 */
export const SERVER_FEATURES = ['batch-any', 'batch-index', 'cdt-list', 'cdt-map', 'float', 'geo', 'peers', 'pipelining', 'pquery', 'pscans', 'replicas', 'truncate-namespace', 'udf'];

/** What the info commands need from the service. */
export interface InfoContext {
  readonly db: ServedDb;
  readonly topology: Topology;
  readonly namespaces: ReadonlyMap<string, NamespaceConfig>;
  /** This node's secondary index definitions (sindex.ts) and background jobs (background.ts). */
  readonly indexes: SecondaryIndexes;
  readonly jobs: BackgroundJobs;
  readonly cluster: Cluster | undefined;
  readonly clusterName: string;
  /** The node's UDF modules (udf.ts). */
  readonly udf: UdfService;
  /** The copies of each partition (1 without cluster mode). */
  replicationFactor(): number;
  /** The service's own figures (connections, commands), for `statistics`. */
  serviceStatistics(): Record<string, number | string | boolean>;
  /** A namespace's sets and the records each holds on this node. */
  setObjects(ns: string): Promise<Map<string, number>>;
  log(message: string): void;
}

/** An info command failure, answered `ERROR:<code>:<message>`. */
export class InfoError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

type Handler = (params: string, context: InfoContext) => string | Promise<string>;

/** `key=value;key=value` parameters of a command. */
function parameters(params: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const part of params.split(';')) {
    if (part.length === 0) continue;
    const at = part.indexOf('=');
    if (at < 0) map.set(part, '');
    else map.set(part.slice(0, at), part.slice(at + 1));
  }
  return map;
}

function pairs(values: Record<string, string | number | boolean>, separator = ';'): string {
  return Object.entries(values)
    .map(([name, value]) => `${name}=${value}`)
    .join(separator);
}

function namespaceNamed(context: InfoContext, name: string | undefined): NamespaceConfig {
  if (name === undefined || name.length === 0) throw new InfoError(ResultCode.PARAMETER_ERROR, 'missing namespace');
  const config = context.namespaces.get(name);
  if (config === undefined) throw new InfoError(ResultCode.NAMESPACE_NOT_FOUND, `namespace ${name} not found`);
  return config;
}

/** A namespace's configuration, named as Aerospike names its settings. */
function namespaceConfig(context: InfoContext, config: NamespaceConfig): Record<string, string | number | boolean> {
  return {
    'replication-factor': context.replicationFactor(),
    'default-ttl': config.defaultTtl < 0 ? 0 : config.defaultTtl,
    'nsup-period': config.nsupPeriodMs / 1000,
    // Shoal never returns an expired record, whether or not the sweep runs.
    'allow-ttl-without-nsup': true,
    'storage-engine': config.kind,
    'max-record-size': config.maxRecordBytes,
    'conflict-resolution-policy': config.conflictResolution === 'generation' ? 'generation' : 'last-update-time',
    'evict-policy': config.evictPolicy,
    'evict-used-pct': config.highWaterPct,
    'stop-writes-used-pct': config.stopWritesPct,
    'strong-consistency': false,
    'single-bin': false,
  };
}

function namespaceStatistics(context: InfoContext, config: NamespaceConfig): Record<string, string | number | boolean> {
  const stats = context.db.stats().namespaces[config.name]!;
  return {
    ns_cluster_size: context.db.stats().clusterSize,
    objects: stats.objects,
    tombstones: stats.tombstones,
    master_objects: stats.masterObjects,
    prole_objects: stats.replicaObjects,
    evicted_objects: stats.evicted,
    expired_objects: stats.expired,
    data_used_bytes: stats.dataUsedBytes,
    index_used_bytes: stats.indexUsedBytes,
    memory_used_bytes: stats.memoryUsedBytes,
    device_used_bytes: stats.deviceUsedBytes,
    device_free_pct: stats.deviceFreePct,
    migrate_partitions_remaining: context.db.stats().migratePartitionsRemaining,
  };
}

/**
 * `truncate` and `truncate-namespace`: `namespace=N[;set=S][;lut=<ns since the Unix epoch>]`.
 * Answers once the truncate finished, or after TRUNCATE_ANSWER_WAIT_MS, whichever is first
 * (it goes on: by then the cut lies in the past, so no write the client makes after the
 * answer is taken for a truncated one), as Aerospike answers a truncate it has started.
 */
async function truncate(params: string, context: InfoContext, withSet: boolean): Promise<string> {
  const values = parameters(params);
  const ns = values.get('namespace') ?? values.get('ns');
  namespaceNamed(context, ns);
  const set = values.get('set');
  if (withSet && (set === undefined || set.length === 0)) throw new InfoError(ResultCode.PARAMETER_ERROR, 'missing set');
  if (!withSet && set !== undefined) throw new InfoError(ResultCode.PARAMETER_ERROR, 'unexpected set name');
  const lut = values.get('lut');
  let before: number | undefined;
  if (lut !== undefined) {
    if (!/^[0-9]{1,20}$/.test(lut)) throw new InfoError(ResultCode.PARAMETER_ERROR, 'bad lut');
    before = Number(BigInt(lut) / 1_000_000n);
  }
  const running = context.db.truncate(ns!, withSet ? set : undefined, before === undefined ? undefined : { before });
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<'waiting'>((resolve) => (timer = setTimeout(() => resolve('waiting'), TRUNCATE_ANSWER_WAIT_MS)));
  try {
    if ((await Promise.race([running, waited])) === 'waiting') {
      running.catch((error: unknown) => context.log(`service: truncate of ${ns}${set === undefined ? '' : `/${set}`} failed after it was answered: ${(error as Error).message}`));
    }
  } catch (error) {
    throw new InfoError(resultCodeOf(error), (error as Error).message);
  } finally {
    clearTimeout(timer);
  }
  return 'ok';
}

/** How long a truncate answer waits for the truncate to finish (see truncate()). */
const TRUNCATE_ANSWER_WAIT_MS = 250;

/**
 * `sets[/ns[/set]]`: per set, `ns=N:set=S:objects=...;` with the records this node holds
 * (masters and replicas, as the server counts them), for every set a record was ever written
 * to. The server's other per-set fields are left out rather than answered with made-up values.
 */
async function sets(params: string, context: InfoContext): Promise<string> {
  const [ns, set] = params.split('/');
  if (ns !== undefined && ns.length > 0 && !context.namespaces.has(ns)) return 'ns_type=unknown';
  const names = ns !== undefined && ns.length > 0 ? [ns] : [...context.namespaces.keys()];
  let out = '';
  for (const name of names) {
    for (const [setName, objects] of await context.setObjects(name)) {
      if (set === undefined || set.length === 0 || setName === set) out += `ns=${name}:set=${setName}:objects=${objects};`;
    }
  }
  return out;
}

function getConfig(params: string, context: InfoContext): string {
  const values = parameters(params);
  const scope = values.get('context') ?? 'service';
  if (scope === 'namespace') return pairs(namespaceConfig(context, namespaceNamed(context, values.get('id') ?? values.get('namespace'))));
  if (scope === 'service') return pairs({ 'cluster-name': context.clusterName, 'proto-fd-max': context.serviceStatistics().connections_max as number });
  throw new InfoError(ResultCode.PARAMETER_ERROR, `unknown context ${scope}`);
}

function statistics(context: InfoContext): string {
  const stats = context.db.stats();
  const cluster = context.cluster?.state();
  return pairs({
    cluster_size: stats.clusterSize,
    cluster_key: stats.clusterKey.length === 0 ? '0' : stats.clusterKey,
    cluster_integrity: true,
    cluster_is_member: true,
    cluster_principal: cluster === undefined ? context.topology.nodeName : cluster.principal,
    migrate_partitions_remaining: stats.migratePartitionsRemaining,
    uptime: Math.floor(process.uptime()),
    ...context.serviceStatistics(),
  });
}

const HANDLERS = new Map<string, Handler>([
  ['node', (_, c) => c.topology.nodeName],
  ['build', () => SERVER_BUILD],
  ['features', () => SERVER_FEATURES.join(';')],
  ['edition', () => SERVER_EDITION],
  ['version', () => `${SERVER_EDITION} build ${SERVER_BUILD}`],
  ['release', () => pairs({ edition: SERVER_EDITION, version: SERVER_BUILD, arch: process.arch, os: process.platform })],
  ['status', () => 'ok'],
  ['cluster-name', (_, c) => c.clusterName],
  ['partition-generation', (_, c) => String(c.topology.partitions().generation)],
  ['replicas', (_, c) => c.topology.partitions().replicas],
  ['peers-generation', (_, c) => String(c.topology.peers().generation)],
  ['peers-clear-std', (_, c) => c.topology.peers().peers],
  ['peers-clear-alt', (_, c) => c.topology.peers().peers],
  ['service', (_, c) => c.topology.address],
  ['service-clear-std', (_, c) => c.topology.address],
  ['service-clear-alt', (_, c) => c.topology.address],
  ['services', (_, c) => c.topology.services()],
  ['services-alumni', () => ''],
  ['namespaces', (_, c) => [...c.namespaces.keys()].join(';')],
  [
    'namespace',
    (params, c) => {
      const config = c.namespaces.get(params);
      if (config === undefined) return 'type=unknown';
      return pairs({ ...namespaceStatistics(c, config), ...namespaceConfig(c, config) });
    },
  ],
  ['sets', (params, c) => sets(params, c)],
  ['get-config', (params, c) => getConfig(params, c)],
  ['statistics', (_, c) => statistics(c)],
  ['truncate', (params, c) => truncate(params, c, true)],
  ['truncate-namespace', (params, c) => truncate(params, c, false)],
  [
    'quiesce',
    (_, c) => {
      c.cluster?.quiesce();
      return 'ok';
    },
  ],
  [
    'quiesce-undo',
    (_, c) => {
      c.cluster?.quiesceUndo();
      return 'ok';
    },
  ],
  [
    'recluster',
    (_, c) => {
      // Any Shoal node forwards a recluster to the principal, so no node ignores it.
      c.cluster?.recluster();
      return 'ok';
    },
  ],
  ['user-agent-set', () => 'ok'],
  // UDF modules: udf.ts.
  ['udf-list', (_, c) => c.udf.list()],
  ['udf-get', (params, c) => c.udf.get(params)],
  ['udf-put', (params, c) => c.udf.register('udf-put', params, true)],
  ['udf-remove', (params, c) => c.udf.register('udf-remove', params, true)],
  ['shoal-udf-put', (params, c) => c.udf.register('udf-put', params, false)],
  ['shoal-udf-remove', (params, c) => c.udf.register('udf-remove', params, false)],
  // Background jobs (background.ts) and secondary indexes (sindex.ts).
  ['query-show', (params, c) => c.jobs.show(parameters(params))],
  ['scan-show', (params, c) => c.jobs.show(parameters(params))],
  ...[...SINDEX_INFO_COMMANDS].map(([name, run]): [string, Handler] => [name, (params, c) => run(c.indexes, params, parameters(params))]),
]);

function unsupported(feature: string): never {
  throw new InfoError(ResultCode.UNSUPPORTED_FEATURE, `Shoal does not support ${feature}`);
}

/** Commands the summary (an empty request) answers, in Aerospike's order. */
const SUMMARY = ['features', 'node', 'edition', 'build', 'version', 'statistics', 'services', 'partition-generation'];

/** The name and parameters of a command line. */
export function splitCommand(line: string): { name: string; params: string } {
  let at = line.indexOf('/');
  const colon = line.indexOf(':');
  const semicolon = line.indexOf(';');
  if (at < 0 || (colon >= 0 && colon < at)) at = colon;
  if (at < 0 || (semicolon >= 0 && semicolon < at)) at = semicolon;
  return at < 0 ? { name: line, params: '' } : { name: line.slice(0, at), params: line.slice(at + 1) };
}

async function answer(line: string, context: InfoContext): Promise<string> {
  const { name, params } = splitCommand(line);
  const handler = HANDLERS.get(name);
  if (handler === undefined) return `ERROR:${ResultCode.PARAMETER_ERROR}:unrecognized command`;
  try {
    return await handler(params, context);
  } catch (error) {
    if (error instanceof InfoError) return `ERROR:${error.code}:${error.message}`;
    return `ERROR:${resultCodeOf(error)}:${(error as Error).message}`;
  }
}

/**
 * Answers an info request body: each complete line (ended by '\n') is one command. Resolves to
 * the reply body. Never rejects: a failing command is answered with Aerospike's error form.
 */
export async function answerInfo(body: string, context: InfoContext): Promise<string> {
  const lines = body.split('\n');
  // Text after the last newline is not a complete command (Aerospike ignores it too).
  lines.pop();
  if (lines.length === 0) {
    const parts = await Promise.all(SUMMARY.map(async (name) => `${name}\t${await answer(name, context)}\n`));
    return parts.join('');
  }
  let reply = '';
  for (const line of lines) reply += `${line}\t${await answer(line, context)}\n`;
  return reply;
}
