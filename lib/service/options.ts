/**
 * `open({ service })`: the listener's options and their validation (lib/options.ts calls
 * resolveServiceOptions once; the listener itself is server.ts).
 */
import { invalidArgument } from '../errors';
import { ServiceUser, checkUsers } from './security';
import { checkOptionNames } from '../option-names';

/** `open({ service })` (docs/protocol.md). */
export interface ServiceOptions {
  /** Where clients connect; port 0 picks a free port (see db.service.address). */
  listen: { host: string; port: number };
  /** The "host:port" clients and peers should use, when not the listen address (required for a wildcard host). */
  advertise?: string;
  /** When given, clients must log in as one of these users (Aerospike's login, bcrypt credential). */
  users?: ServiceUser[];
  /** Allow listening beyond loopback without users (logged as a warning). */
  insecure?: boolean;
}

export interface ResolvedServiceOptions {
  host: string;
  port: number;
  advertise: string | undefined;
  users: ServiceUser[] | undefined;
  insecure: boolean;
}

const OPTION_NAMES: ReadonlySet<string> = new Set(['listen', 'advertise', 'users', 'insecure']);
const LISTEN_OPTION_NAMES: ReadonlySet<string> = new Set(['host', 'port']);
const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '[::]', '']);

/** Whether a listen host is reachable only from this machine. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Checks `service` options. Listening beyond loopback without users is refused unless
 * `insecure: true` says so, as the cluster refuses to listen beyond loopback without a secret.
 * @throws TypeError or ShoalError INVALID_ARGUMENT naming the option.
 */
export function resolveServiceOptions(options: unknown): ResolvedServiceOptions {
  if (options === null || typeof options !== 'object') throw new TypeError('service must be { listen: { host, port }, users?, advertise?, insecure? }');
  checkOptionNames(options, OPTION_NAMES, 'service');
  const o = options as ServiceOptions;
  const listen = o.listen;
  if (listen === null || typeof listen !== 'object' || typeof listen.host !== 'string' || !Number.isInteger(listen.port) || listen.port < 0 || listen.port > 65535) {
    throw new TypeError('service.listen must be { host: string, port: integer 0..65535 }');
  }
  checkOptionNames(listen, LISTEN_OPTION_NAMES, 'service.listen');
  if (o.advertise !== undefined && (typeof o.advertise !== 'string' || !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):[0-9]{1,5}$/.test(o.advertise))) {
    throw invalidArgument('service.advertise must be a "host:port" string');
  }
  if (o.advertise === undefined && WILDCARD_HOSTS.has(listen.host)) {
    throw invalidArgument(`service.listen.host ${JSON.stringify(listen.host)} is a wildcard: set service.advertise to the "host:port" clients should connect to`);
  }
  if (o.insecure !== undefined && typeof o.insecure !== 'boolean') throw new TypeError('service.insecure must be a boolean');
  checkUsers(o.users);
  const insecure = o.insecure === true;
  if (!isLoopbackHost(listen.host) && o.users === undefined && !insecure) {
    throw invalidArgument(
      `service.listen.host ${listen.host} is reachable from other machines and service.users is not set: every client would get full access. Set service.users, or set service.insecure: true to accept that`,
    );
  }
  return { host: listen.host, port: listen.port, advertise: o.advertise, users: o.users, insecure };
}
