/**
 * open() options: their types, defaults and validation. Everything a namespace needs is
 * resolved here once, so the namespaces never see a missing or malformed option.
 */
import * as path from 'node:path';
import {
  HIGH_WATER_MEMORY_PCT_DEFAULT,
  MAX_RECORD_BYTES_DEFAULT,
  MAX_RECORD_BYTES_MIN,
  MEMORY_MAX_BYTES_MIN,
  DEVICE_WRITE_BLOCKS_MIN,
  NAMESPACE_NAME_MAX_BYTES,
  STOP_WRITES_PCT_DEFAULT,
  TTL_MAX_SECONDS,
  WRITE_BLOCK_BYTES_DEFAULT,
  WRITE_BLOCK_BYTES_MAX,
  WRITE_BLOCK_BYTES_MIN,
} from './constants';
import { formatBytes, invalidArgument } from './errors';
import { describe } from './model/key';
import { checkOptionNames } from './option-names';
import { resolveFileMode } from './storage/file-mode';
import type { ClusterOptions } from './cluster/cluster';
import type { NamespaceConfig, ResolvedDeviceOptions } from './namespace/config';
import { ResolvedServiceOptions, ServiceOptions, resolveServiceOptions } from './service/options';

export type { NamespaceConfig, ResolvedDeviceOptions } from './namespace/config';
import type { XdrOptions } from './xdr/options';

export interface MemoryStorageOptions {
  type: 'memory';
  /** Bound on the namespace's index and data bytes. */
  maxBytes: number;
}

export interface DeviceStorageOptions {
  type: 'device';
  /** Files (relative to dataDir, or absolute) or raw block device paths. */
  paths: string[];
  /** Size of each file Shoal creates (ignored for block devices, which use their size). */
  sizeBytes: number;
  directIo?: 'auto' | 'required' | 'off';
  /**
   * Device reads on a pool of native threads ('threads') or through io_uring ('io_uring',
   * falling back to the threads where the kernel refuses it). Default: the SHOAL_IO_ENGINE
   * environment variable, else 'threads' (docs/storage.md, "I/O engines").
   */
  ioEngine?: 'threads' | 'io_uring';
  /** Acknowledge every write only once it is on the device. */
  commitToDevice?: boolean;
  /** Keep bins in memory too (cache plus persistence); enables getSync. */
  dataInMemory?: boolean;
  writeBlockBytes?: number;
  flushMaxMs?: number;
  defragLwmPct?: number;
  /**
   * Open devices that would be refused as damaged by rebuilding what their write blocks still
   * say: a lost header, a truncated file's size, a blank replacement device (docs/storage.md,
   * "What a damaged device gets"). Never writes over a file that is not a Shoal device.
   */
  repairDevices?: boolean;
}

export interface EvictOptions {
  /** 'lru' (default for memory namespaces), 'ttl' (soonest expiry first), or 'none'. */
  policy: 'lru' | 'ttl' | 'none';
  /** Eviction starts above this percent of maxBytes. */
  highWaterPct?: number;
  /** Writes fail with OUT_OF_SPACE above this percent of maxBytes. */
  stopWritesPct?: number;
}

export interface NamespaceOptions {
  name: string;
  storage: MemoryStorageOptions | DeviceStorageOptions;
  /** Seconds; 0 or -1: never expire (the default). */
  defaultTtl?: number;
  evict?: EvictOptions;
  /** Largest encoded record, bytes. */
  maxRecordBytes?: number;
  /** Store user keys with records by default (a put's storeKey overrides). */
  storeKey?: boolean;
  /** Cluster mode: how duplicate copies resolve. */
  conflictResolution?: 'generation' | 'lastUpdateTime';
  /** Seconds between background expiry sweeps (0 disables). */
  nsupPeriodSeconds?: number;
}

/** Cluster mode options (docs/cluster.md). */
export type OpenClusterOptions = Omit<ClusterOptions, 'nodeId'> & {
  /** Default: generated on first start and persisted in dataDir. */
  nodeId?: string;
};

export interface OpenOptions {
  dataDir?: string;
  namespaces: NamespaceOptions[];
  sharedMemoryIndex?: boolean;
  /**
   * The mode of the files Shoal creates (devices, lock and state files, shared-memory
   * segments), e.g. 0o640 for a group that backs them up; default 0o600. Directories it creates
   * get the matching search bits (0o700, 0o750). Existing files keep their modes.
   */
  fileMode?: number;
  cluster?: OpenClusterOptions;
  /** The Aerospike service listener (docs/protocol.md). */
  service?: ServiceOptions;
  /** Cross-cluster shipping (docs/xdr.md); resolved by lib/xdr/options.ts. */
  xdr?: XdrOptions;
  /** Prometheus metrics and the status page over HTTP (docs/operations.md, "Metrics"). */
  metrics?: MetricsOptions;
}

export interface MetricsOptions {
  /** Serve `GET /metrics` (Prometheus text) and `GET /` (the status page) here; port 0 picks a free port. */
  listen?: { host: string; port: number };
}

export interface DbConfig {
  dataDir: string;
  sharedMemoryIndex: boolean;
  /** The exact mode of the files Shoal creates (resolveFileMode). */
  fileMode: number;
  namespaces: NamespaceConfig[];
  cluster: OpenClusterOptions | undefined;
  service: ResolvedServiceOptions | undefined;
  /** Where the metrics listener binds; undefined: no listener (db.metrics() still works). */
  metricsListen: { host: string; port: number } | undefined;
}

const NAME_PATTERN = /^[A-Za-z0-9_-]+$/;

// The option names each level knows (lib/option-names.ts). open()'s own `log` and
// `handleSignals` are read by open() itself, after these checks.
const OPEN_OPTION_NAMES: ReadonlySet<string> = new Set(['dataDir', 'namespaces', 'sharedMemoryIndex', 'fileMode', 'cluster', 'service', 'metrics', 'xdr', 'log', 'handleSignals']);
const NAMESPACE_OPTION_NAMES: ReadonlySet<string> = new Set(['name', 'storage', 'defaultTtl', 'evict', 'maxRecordBytes', 'storeKey', 'conflictResolution', 'nsupPeriodSeconds']);
const MEMORY_STORAGE_OPTION_NAMES: ReadonlySet<string> = new Set(['type', 'maxBytes']);
const DEVICE_STORAGE_OPTION_NAMES: ReadonlySet<string> = new Set([
  'type', 'paths', 'sizeBytes', 'directIo', 'ioEngine', 'commitToDevice', 'dataInMemory', 'writeBlockBytes', 'flushMaxMs', 'defragLwmPct', 'repairDevices',
]);
const EVICT_OPTION_NAMES: ReadonlySet<string> = new Set(['policy', 'highWaterPct', 'stopWritesPct']);
const CLUSTER_OPTION_NAMES: ReadonlySet<string> = new Set([
  'nodeId', 'listen', 'advertise', 'seeds', 'clusterName', 'heartbeatIntervalMs', 'heartbeatTimeout', 'replicationFactor',
  'protocolVersion', 'minProtocolVersion', 'secret', 'acceptSecrets', 'tls', 'insecure',
]);
const LISTEN_OPTION_NAMES: ReadonlySet<string> = new Set(['host', 'port']);
const TLS_OPTION_NAMES: ReadonlySet<string> = new Set(['key', 'cert', 'ca']);
const METRICS_OPTION_NAMES: ReadonlySet<string> = new Set(['listen']);
/** Namespace options given at the top level: the error says where they go. */
const NAMESPACE_OPTIONS_ELSEWHERE: ReadonlyMap<string, string> = new Map(
  [...NAMESPACE_OPTION_NAMES, ...MEMORY_STORAGE_OPTION_NAMES, ...DEVICE_STORAGE_OPTION_NAMES].map((name) => [
    name,
    NAMESPACE_OPTION_NAMES.has(name) ? `namespaces[i].${name}` : `namespaces[i].storage.${name}`,
  ]),
);

/**
 * Resolves open() options.
 * @throws TypeError or ShoalError INVALID_ARGUMENT naming the offending option.
 */
export function resolveOptions(options: unknown): DbConfig {
  if (options === null || typeof options !== 'object') throw new TypeError('open() needs an options object with namespaces');
  checkOptionNames(options, OPEN_OPTION_NAMES, 'open() options', NAMESPACE_OPTIONS_ELSEWHERE);
  const o = options as OpenOptions;
  const dataDir = o.dataDir ?? './shoal-data';
  if (typeof dataDir !== 'string' || dataDir.length === 0) throw new TypeError('dataDir must be a non-empty string');
  const sharedMemoryIndex = o.sharedMemoryIndex ?? true;
  if (typeof sharedMemoryIndex !== 'boolean') throw new TypeError('sharedMemoryIndex must be a boolean');
  const fileMode = resolveFileMode(o.fileMode);
  if (!Array.isArray(o.namespaces) || o.namespaces.length === 0) throw new TypeError('namespaces must be a non-empty array');
  const seen = new Set<string>();
  const namespaces = o.namespaces.map((ns, index) => {
    const config = resolveNamespace(ns, index, path.resolve(dataDir));
    if (seen.has(config.name)) throw invalidArgument(`namespace "${config.name}" is configured twice`);
    seen.add(config.name);
    return config;
  });
  if (o.cluster !== undefined) checkClusterShape(o.cluster);
  const service = o.service === undefined ? undefined : resolveServiceOptions(o.service);
  const metricsListen = o.metrics === undefined ? undefined : resolveMetricsOptions(o.metrics);
  return { dataDir: path.resolve(dataDir), sharedMemoryIndex, fileMode, namespaces, cluster: o.cluster, service, metricsListen };
}

/**
 * The names and JavaScript types of the cluster options; their values are checked when the
 * cluster starts (resolveClusterOptions, whose RangeErrors open() turns into INVALID_ARGUMENT).
 */
function checkClusterShape(cluster: unknown): void {
  if (cluster === null || typeof cluster !== 'object') throw new TypeError('cluster must be an object (docs/cluster.md)');
  checkOptionNames(cluster, CLUSTER_OPTION_NAMES, 'cluster');
  const c = cluster as OpenClusterOptions;
  if (c.listen !== null && typeof c.listen === 'object') checkOptionNames(c.listen, LISTEN_OPTION_NAMES, 'cluster.listen');
  if (c.tls !== null && typeof c.tls === 'object') checkOptionNames(c.tls, TLS_OPTION_NAMES, 'cluster.tls');
  for (const name of ['heartbeatIntervalMs', 'heartbeatTimeout', 'replicationFactor', 'protocolVersion', 'minProtocolVersion'] as const) {
    if (c[name] !== undefined && typeof c[name] !== 'number') throw new TypeError(`cluster.${name} must be a number, not ${describe(c[name])}`);
  }
  for (const name of ['nodeId', 'advertise', 'clusterName'] as const) {
    if (c[name] !== undefined && typeof c[name] !== 'string') throw new TypeError(`cluster.${name} must be a string, not ${describe(c[name])}`);
  }
}

/**
 * Checks `metrics` options.
 * @returns the listen address, or undefined when none is asked for.
 * @throws TypeError for values of the wrong type; ShoalError INVALID_ARGUMENT for unknown names or a port outside 0..65535.
 */
function resolveMetricsOptions(metrics: unknown): { host: string; port: number } | undefined {
  if (metrics === null || typeof metrics !== 'object') throw new TypeError('metrics must be { listen?: { host, port } }');
  checkOptionNames(metrics, METRICS_OPTION_NAMES, 'metrics');
  const listen = (metrics as MetricsOptions).listen;
  if (listen === undefined) return undefined;
  if (listen === null || typeof listen !== 'object') throw new TypeError('metrics.listen must be { host: string, port: number }');
  checkOptionNames(listen, LISTEN_OPTION_NAMES, 'metrics.listen');
  if (typeof listen.host !== 'string') throw new TypeError(`metrics.listen.host must be a string, not ${describe(listen.host)}`);
  return { host: listen.host, port: integer(listen.port, 'metrics.listen.port', 0, 65_535) };
}

function resolveNamespace(ns: NamespaceOptions, index: number, dataDir: string): NamespaceConfig {
  const where = `namespaces[${index}]`;
  if (ns === null || typeof ns !== 'object') throw new TypeError(`${where} must be an object`);
  checkOptionNames(ns, NAMESPACE_OPTION_NAMES, where);
  if (typeof ns.name !== 'string') throw new TypeError(`${where}.name must be a string, not ${describe(ns.name)}`);
  if (!NAME_PATTERN.test(ns.name) || ns.name.length > NAMESPACE_NAME_MAX_BYTES) {
    throw invalidArgument(`${where}.name must be 1-${NAMESPACE_NAME_MAX_BYTES} letters, digits, '_' or '-', not ${JSON.stringify(ns.name)}`);
  }
  const storage = ns.storage;
  if (storage === null || typeof storage !== 'object') throw new TypeError(`${where}.storage must be { type: 'memory' | 'device', ... }`);
  if (typeof storage.type !== 'string') throw new TypeError(`${where}.storage.type must be 'memory' or 'device', not ${describe((storage as { type?: unknown }).type)}`);
  if (storage.type === 'memory' || storage.type === 'device') {
    checkOptionNames(storage, storage.type === 'memory' ? MEMORY_STORAGE_OPTION_NAMES : DEVICE_STORAGE_OPTION_NAMES, `${where}.storage (type '${storage.type}')`);
  }
  const defaultTtl = integer(ns.defaultTtl ?? 0, `${where}.defaultTtl`, -1, TTL_MAX_SECONDS);
  const maxRecordBytes = byteCount(ns.maxRecordBytes ?? MAX_RECORD_BYTES_DEFAULT, `${where}.maxRecordBytes`, MAX_RECORD_BYTES_MIN, WRITE_BLOCK_BYTES_MAX);
  const evict = ns.evict ?? { policy: storage.type === 'memory' ? 'lru' : 'none' };
  if (evict === null || typeof evict !== 'object') throw new TypeError(`${where}.evict must be { policy, highWaterPct?, stopWritesPct? }`);
  checkOptionNames(evict, EVICT_OPTION_NAMES, `${where}.evict`);
  const policy = oneOf(evict.policy, `${where}.evict.policy`, ['lru', 'ttl', 'none'] as const);
  const highWaterPct = integer(evict.highWaterPct ?? HIGH_WATER_MEMORY_PCT_DEFAULT, `${where}.evict.highWaterPct`, 1, 100);
  const stopWritesPct = integer(evict.stopWritesPct ?? STOP_WRITES_PCT_DEFAULT, `${where}.evict.stopWritesPct`, 1, 100);
  const storeKey = ns.storeKey ?? false;
  if (typeof storeKey !== 'boolean') throw new TypeError(`${where}.storeKey must be a boolean`);
  const conflictResolution = oneOf(ns.conflictResolution ?? 'generation', `${where}.conflictResolution`, ['generation', 'lastUpdateTime'] as const);
  const nsupPeriodMs = integer(ns.nsupPeriodSeconds ?? 1, `${where}.nsupPeriodSeconds`, 0, 86_400) * 1000;
  const common = {
    name: ns.name,
    defaultTtl,
    evictPolicy: policy,
    highWaterPct,
    stopWritesPct,
    maxRecordBytes,
    storeKey,
    conflictResolution,
    nsupPeriodMs,
  };
  if (storage.type === 'memory') {
    const maxBytes = byteCount(storage.maxBytes, `${where}.storage.maxBytes`, MEMORY_MAX_BYTES_MIN, Number.MAX_SAFE_INTEGER);
    return { ...common, kind: 'memory', maxBytes, device: undefined };
  }
  if (storage.type !== 'device') throw invalidArgument(`${where}.storage.type must be 'memory' or 'device', not ${JSON.stringify((storage as { type?: unknown }).type)}`);
  return { ...common, kind: 'device', maxBytes: 0, device: resolveDevice(storage, where, dataDir, maxRecordBytes) };
}

function resolveDevice(storage: DeviceStorageOptions, where: string, dataDir: string, maxRecordBytes: number): ResolvedDeviceOptions {
  if (!Array.isArray(storage.paths) || !storage.paths.every((p) => typeof p === 'string')) {
    throw new TypeError(`${where}.storage.paths must be an array of file or device paths (strings)`);
  }
  if (storage.paths.length === 0 || storage.paths.some((p) => p.length === 0)) {
    throw invalidArgument(`${where}.storage.paths must be a non-empty array of file or device paths`);
  }
  if (storage.paths.length > 64) throw invalidArgument(`${where}.storage.paths: at most 64 devices`);
  const writeBlockBytes = byteCount(storage.writeBlockBytes ?? WRITE_BLOCK_BYTES_DEFAULT, `${where}.storage.writeBlockBytes`, WRITE_BLOCK_BYTES_MIN, WRITE_BLOCK_BYTES_MAX);
  if ((writeBlockBytes & (writeBlockBytes - 1)) !== 0) throw invalidArgument(`${where}.storage.writeBlockBytes must be a power of two`);
  if (maxRecordBytes > writeBlockBytes) throw invalidArgument(`${where}.maxRecordBytes (${formatBytes(maxRecordBytes)}) exceeds the write block size (${formatBytes(writeBlockBytes)})`);
  const sizeBytes = byteCount(storage.sizeBytes, `${where}.storage.sizeBytes`, writeBlockBytes * DEVICE_WRITE_BLOCKS_MIN, Number.MAX_SAFE_INTEGER);
  const directIo = oneOf(storage.directIo ?? 'auto', `${where}.storage.directIo`, ['auto', 'required', 'off'] as const);
  const ioEngine = storage.ioEngine === undefined ? undefined : oneOf(storage.ioEngine, `${where}.storage.ioEngine`, ['threads', 'io_uring'] as const);
  for (const flag of ['commitToDevice', 'dataInMemory', 'repairDevices'] as const) {
    if (storage[flag] !== undefined && typeof storage[flag] !== 'boolean') throw new TypeError(`${where}.storage.${flag} must be a boolean`);
  }
  return {
    paths: storage.paths.map((p) => path.resolve(dataDir, p)),
    sizeBytes,
    directIo,
    ioEngine,
    commitToDevice: storage.commitToDevice ?? false,
    dataInMemory: storage.dataInMemory ?? false,
    writeBlockBytes,
    flushMaxMs: integer(storage.flushMaxMs ?? 1000, `${where}.storage.flushMaxMs`, 1, 60_000),
    defragLwmPct: integer(storage.defragLwmPct ?? 50, `${where}.storage.defragLwmPct`, 1, 99),
    repairDevices: storage.repairDevices ?? false,
  };
}

/**
 * A string option that must be one of `values`.
 * @throws TypeError when it is not a string; ShoalError INVALID_ARGUMENT when it is another string.
 */
function oneOf<T extends string>(value: unknown, name: string, values: readonly T[]): T {
  const listed = values.map((v) => `'${v}'`).join(', ');
  if (typeof value !== 'string') throw new TypeError(`${name} must be one of ${listed}, not ${describe(value)}`);
  if (!(values as readonly string[]).includes(value)) throw invalidArgument(`${name} must be one of ${listed}, not ${JSON.stringify(value)}`);
  return value as T;
}

// Numbers follow the rule of docs/api.md ("Errors for wrong arguments"): not a number is a
// TypeError; a fraction, or a number out of range, is INVALID_ARGUMENT.
function integer(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be an integer, not ${describe(value)}`);
  if (!Number.isInteger(value)) throw invalidArgument(`${name} must be an integer, not ${describe(value)}`);
  if (value < min || value > max) throw invalidArgument(`${name} must be from ${min} to ${max}, not ${value}`);
  return value;
}

/** integer() for a size in bytes: the bounds and the value are printed in KiB, MiB or GiB. */
function byteCount(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be an integer number of bytes, not ${describe(value)}`);
  if (!Number.isInteger(value)) throw invalidArgument(`${name} must be an integer number of bytes, not ${describe(value)}`);
  if (value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `at least ${formatBytes(min)}` : `from ${formatBytes(min)} to ${formatBytes(max)}`;
    throw invalidArgument(`${name} must be ${range}, not ${formatBytes(value)}`);
  }
  return value;
}
