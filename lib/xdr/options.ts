/**
 * The `xdr` option of open() (docs/xdr.md): the destinations this node ships to. Validated
 * here once, so the shipper never sees a malformed destination.
 */
import { invalidArgument } from '../errors';
import { checkOptionNames } from '../option-names';
import type { TlsSettings } from '../cluster/network';
import { XDR_DESTINATIONS_MAX, XDR_NAME_MAX_BYTES, XDR_SEEDS_MAX } from './constants';

export interface XdrDestinationOptions {
  /** The destination's name in state(), events and the CLI (letters, digits, '_', '-'). */
  name: string;
  /** Fabric addresses (`cluster.listen`, "host:port") of any nodes of the destination cluster. */
  seeds: string[];
  /** The namespaces shipped there (each must exist here and there). */
  namespaces: string[];
  /**
   * 'all': the first time this node ships there it first ships every record it masters (a
   * full initial sync), then the stream. 'none' (default): only writes made from then on.
   */
  rewind?: 'all' | 'none';
  /** The destination's `cluster.clusterName`; default 'shoal'. */
  clusterName?: string;
  /** The destination's cluster secret, if it has one (docs/cluster.md, "Security"). */
  secret?: string | Buffer;
  /** The destination's TLS material, if it runs `cluster.tls`. */
  tls?: TlsSettings;
}

export interface XdrOptions {
  destinations: XdrDestinationOptions[];
}

/** A destination with every default filled in. */
export interface XdrDestinationConfig {
  name: string;
  seeds: string[];
  namespaces: string[];
  rewind: 'all' | 'none';
  clusterName: string;
  secret: string | Buffer | undefined;
  tls: TlsSettings | undefined;
}

const NAME_PATTERN = /^[A-Za-z0-9_-]+$/;
const XDR_OPTION_NAMES: ReadonlySet<string> = new Set(['destinations']);
const DESTINATION_OPTION_NAMES: ReadonlySet<string> = new Set(['name', 'seeds', 'namespaces', 'rewind', 'clusterName', 'secret', 'tls']);
const ADDRESS_PATTERN = /^[^\s:]+:\d{1,5}$/;

/**
 * Checks the `xdr` option against this Db's namespaces.
 * @throws TypeError for values of the wrong type; ShoalError INVALID_ARGUMENT naming the bad field.
 */
export function resolveXdrOptions(options: unknown, namespaces: readonly string[]): XdrDestinationConfig[] {
  if (options === null || typeof options !== 'object') throw new TypeError('xdr must be { destinations: [...] }');
  checkOptionNames(options, XDR_OPTION_NAMES, 'xdr');
  const destinations = (options as XdrOptions).destinations;
  if (!Array.isArray(destinations)) throw new TypeError('xdr.destinations must be an array');
  if (destinations.length > XDR_DESTINATIONS_MAX) throw invalidArgument(`xdr.destinations holds ${destinations.length}; at most ${XDR_DESTINATIONS_MAX}`);
  const names = new Set<string>();
  return destinations.map((destination, index) => {
    const config = resolveXdrDestination(destination, `xdr.destinations[${index}]`, namespaces);
    if (names.has(config.name)) throw invalidArgument(`xdr destination "${config.name}" is configured twice`);
    names.add(config.name);
    return config;
  });
}

/**
 * One destination (also what `db.xdr.addDestination` takes).
 * @throws TypeError or ShoalError INVALID_ARGUMENT naming the bad field under `where`.
 */
export function resolveXdrDestination(destination: unknown, where: string, namespaces: readonly string[]): XdrDestinationConfig {
  if (destination === null || typeof destination !== 'object') throw new TypeError(`${where} must be { name, seeds, namespaces }`);
  checkOptionNames(destination, DESTINATION_OPTION_NAMES, where);
  const d = destination as XdrDestinationOptions;
  if (typeof d.name !== 'string' || !NAME_PATTERN.test(d.name) || Buffer.byteLength(d.name) > XDR_NAME_MAX_BYTES) {
    throw invalidArgument(`${where}.name must be 1-${XDR_NAME_MAX_BYTES} letters, digits, '_' or '-', not ${JSON.stringify(d.name)}`);
  }
  if (!Array.isArray(d.seeds) || d.seeds.length === 0 || d.seeds.length > XDR_SEEDS_MAX) throw invalidArgument(`${where}.seeds must be 1..${XDR_SEEDS_MAX} "host:port" addresses`);
  for (const seed of d.seeds) {
    if (typeof seed !== 'string' || !ADDRESS_PATTERN.test(seed) || Number(seed.slice(seed.lastIndexOf(':') + 1)) > 65_535) {
      throw invalidArgument(`${where}.seeds holds ${JSON.stringify(seed)}; a seed is "host:port"`);
    }
  }
  if (!Array.isArray(d.namespaces) || d.namespaces.length === 0) throw invalidArgument(`${where}.namespaces must be a non-empty array of namespace names`);
  for (const ns of d.namespaces) {
    if (!namespaces.includes(ns)) throw invalidArgument(`${where}.namespaces names ${JSON.stringify(ns)}, which this database does not have`);
  }
  const rewind = d.rewind ?? 'none';
  if (rewind !== 'all' && rewind !== 'none') throw invalidArgument(`${where}.rewind must be 'all' or 'none'`);
  const clusterName = d.clusterName ?? 'shoal';
  if (typeof clusterName !== 'string' || clusterName.length === 0) throw new TypeError(`${where}.clusterName must be a non-empty string`);
  if (d.secret !== undefined && typeof d.secret !== 'string' && !Buffer.isBuffer(d.secret)) throw new TypeError(`${where}.secret must be a string or a Buffer`);
  if (d.tls !== undefined && (d.tls === null || typeof d.tls !== 'object')) throw new TypeError(`${where}.tls must be { key, cert, ca }`);
  return { name: d.name, seeds: [...d.seeds], namespaces: [...new Set(d.namespaces)], rewind, clusterName, secret: d.secret, tls: d.tls };
}
