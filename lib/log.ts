/**
 * open()'s `log`: a function of one string (as before), or a leveled logger object of pino's
 * shape (`logger.warn(fields, message)`; bunyan and winston's child loggers accept the same
 * call). Shoal's messages become structured records: the component and the namespace a
 * message is about go in fields, and the cluster's own fields (peer ids, cluster keys,
 * counts) are passed as they are, bigints as strings (docs/operations.md, "Logging").
 */
import type { Logger } from './cluster/index';

/** The logger object shape open() accepts (pino's). debug and info are optional. */
export interface LeveledLogger {
  error(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  info?(fields: Record<string, unknown>, message: string): void;
  debug?(fields: Record<string, unknown>, message: string): void;
}

export type LogOption = ((message: string) => void) | LeveledLogger;

/** What the Db's parts log through: plain messages (namespaces, service, metrics) and the cluster's leveled logger. */
export interface ResolvedLog {
  log: (message: string) => void;
  clusterLogger: Logger;
}

// "namespace cache: ...", "service: ...", "metrics: ..." name where a plain message comes from.
const SOURCE_PATTERN = /^(namespace) ([A-Za-z0-9_-]+): |^(service|metrics): /;

/**
 * Resolves the `log` option.
 * @throws TypeError when it is neither a function nor an object with `warn` and `error` methods.
 */
export function resolveLog(option: unknown): ResolvedLog {
  if (option === undefined) return fromFunction((message) => console.warn(`shoal: ${message}`));
  if (typeof option === 'function') return fromFunction(option as (message: string) => void);
  const logger = option as Partial<LeveledLogger> | null;
  if (logger === null || typeof logger !== 'object' || typeof logger.warn !== 'function' || typeof logger.error !== 'function') {
    throw new TypeError('log must be a function (message) => void, or a logger with warn(fields, message) and error(fields, message) methods (pino\'s shape)');
  }
  return fromLogger(logger as LeveledLogger);
}

function fromFunction(log: (message: string) => void): ResolvedLog {
  // Cluster lines keep their old form: "cluster warn: message {fields}"; debug and info are dropped.
  const write = (level: string) => (message: string, fields?: Record<string, unknown>) =>
    log(`cluster ${level}: ${message}${fields === undefined ? '' : ` ${JSON.stringify(fields, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`}`);
  return { log, clusterLogger: { debug: () => undefined, info: () => undefined, warn: write('warn'), error: write('error') } };
}

function fromLogger(logger: LeveledLogger): ResolvedLog {
  const call = (level: keyof LeveledLogger, fields: Record<string, unknown>, message: string) => {
    const method = logger[level] as ((fields: Record<string, unknown>, message: string) => void) | undefined;
    if (method !== undefined) method.call(logger, fields, message);
  };
  // Plain messages are Shoal's operational warnings (why a start was cold, a repaired device).
  const log = (message: string) => {
    const source = SOURCE_PATTERN.exec(message);
    if (source === null) return call('warn', { component: 'shoal' }, message);
    const fields = source[1] !== undefined ? { component: 'namespace', namespace: source[2] } : { component: source[3] };
    call('warn', fields, message.slice(source[0].length));
  };
  const cluster = (level: 'debug' | 'info' | 'warn' | 'error') => (message: string, fields?: Record<string, unknown>) =>
    call(level, { component: 'cluster', ...plainFields(fields) }, message);
  return { log, clusterLogger: { debug: cluster('debug'), info: cluster('info'), warn: cluster('warn'), error: cluster('error') } };
}

/** Fields with bigints as strings (JSON loggers cannot write a bigint). */
function plainFields(fields: Record<string, unknown> | undefined): Record<string, unknown> {
  if (fields === undefined) return {};
  const plain: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(fields)) plain[name] = typeof value === 'bigint' ? String(value) : value;
  return plain;
}
