/**
 * The seams through which cluster code reaches time, timers, randomness and logging
 * (STYLE.md, LevelDB's Env). Production uses the real implementations below; tests and the
 * simulator (sim/simulation.ts) substitute deterministic ones, so the same code paths run under a
 * seeded scheduler and a failing seed replays exactly.
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../clock';

export type { Clock } from '../clock';

/** Opaque handle of a scheduled timer. */
export type TimerHandle = unknown;

/** Timer scheduling. Callbacks must not throw; implementations log and swallow if they do. */
export interface Timers {
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  setInterval(callback: () => void, intervalMs: number): TimerHandle;
  clearInterval(handle: TimerHandle): void;
  /**
   * Runs `callback` once the work already due has had its turn (Node's setImmediate: after the
   * I/O events of this loop iteration). Background work yields with it so client requests and
   * heartbeats that already arrived go first. Optional: setTimeout(callback, 0) stands in.
   */
  setImmediate?(callback: () => void): void;
}

/** A source of randomness. */
export interface Random {
  /** Uniform in [0, 1). */
  nextFloat(): number;
  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number;
  /** `count` uniform random bytes (nonces); sources without it are read 32 bits at a time. */
  nextBytes?(count: number): Buffer;
}

/** Structured log sink. Fields are plain data. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** The seams a cluster node needs, bundled. */
export interface Runtime {
  clock: Clock;
  timers: Timers;
  random: Random;
  logger: Logger;
}

/**
 * Monotonic milliseconds on the Unix-epoch scale (timeOrigin + performance.now()): a wall-clock
 * step (NTP, an operator) can neither make peers look silent nor hide a dead one. Cluster code
 * uses time only for intervals and deadlines, never for record timestamps.
 */
export const realClock: Clock = { nowMs: () => performance.timeOrigin + performance.now() };

/** Real timers; unref'd so a cluster never keeps a process alive on its own. */
export const realTimers: Timers = {
  setTimeout(callback, delayMs) {
    const handle = setTimeout(callback, delayMs);
    handle.unref();
    return handle;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
  setInterval(callback, intervalMs) {
    const handle = setInterval(callback, intervalMs);
    handle.unref();
    return handle;
  },
  clearInterval(handle) {
    clearInterval(handle as NodeJS.Timeout);
  },
  setImmediate(callback) {
    setImmediate(callback).unref();
  },
};

/** Cryptographically random source, for production cluster keys. */
export const cryptoRandom: Random = {
  nextFloat: () => randomBytes(4).readUInt32BE(0) / 2 ** 32,
  nextUint32: () => randomBytes(4).readUInt32BE(0),
  nextBytes: (count) => randomBytes(count),
};

/**
 * Seeded PRNG (sfc32 seeded through splitmix32), for deterministic tests and simulation.
 * The same seed yields the same sequence on every platform.
 */
export class SeededRandom implements Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let state = seed >>> 0;
    const next = (): number => {
      state = (state + 0x9e3779b9) >>> 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  nextUint32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  nextFloat(): number {
    return this.nextUint32() / 2 ** 32;
  }

  /** Uniform integer in [0, bound). */
  nextInt(bound: number): number {
    return Math.floor(this.nextFloat() * bound);
  }
}

/** Logger that discards everything. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** Logger writing one line per entry to stderr, prefixed with a tag (e.g. the node id). */
export function consoleLogger(tag: string, minLevel: 'debug' | 'info' | 'warn' | 'error' = 'info'): Logger {
  const order = { debug: 0, info: 1, warn: 2, error: 3 } as const;
  const write = (level: keyof typeof order) => (message: string, fields?: Record<string, unknown>) => {
    if (order[level] < order[minLevel]) return;
    const suffix = fields === undefined ? '' : ` ${safeStringify(fields)}`;
    process.stderr.write(`[shoal cluster ${tag}] ${level}: ${message}${suffix}\n`);
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

/** One captured log entry. */
export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  fields?: Record<string, unknown>;
}

/** Logger that keeps entries in memory (bounded), for tests that assert on log lines. */
export class MemoryLogger implements Logger {
  readonly entries: LogEntry[] = [];
  constructor(private readonly maxEntries = 10_000, private readonly forward?: Logger) {}
  private push(level: LogEntry['level'], message: string, fields?: Record<string, unknown>): void {
    if (this.entries.length >= this.maxEntries) this.entries.shift();
    this.entries.push({ level, message, fields });
    this.forward?.[level](message, fields);
  }
  debug(message: string, fields?: Record<string, unknown>): void { this.push('debug', message, fields); }
  info(message: string, fields?: Record<string, unknown>): void { this.push('info', message, fields); }
  warn(message: string, fields?: Record<string, unknown>): void { this.push('warn', message, fields); }
  error(message: string, fields?: Record<string, unknown>): void { this.push('error', message, fields); }
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value, (_key, v) => (typeof v === 'bigint' ? v.toString() : v));
  } catch {
    return '[unserializable]';
  }
}

/** The production runtime. */
export function realRuntime(logger: Logger): Runtime {
  return { clock: realClock, timers: realTimers, random: cryptoRandom, logger };
}

/**
 * Logs at most `limit` warnings per `windowMs`; the rest are counted and summarised in one
 * line when the next window opens. For events an outsider can cause at will (failed
 * handshakes), so a flood of them cannot flood the log.
 */
export class LogLimiter {
  private windowStartMs = -Infinity;
  private logged = 0;
  private suppressed = 0;

  constructor(private readonly logger: Logger, private readonly clock: Clock, private readonly limit: number, private readonly windowMs: number) {}

  warn(message: string, fields?: Record<string, unknown>): void {
    const now = this.clock.nowMs();
    if (now - this.windowStartMs >= this.windowMs || now < this.windowStartMs) {
      if (this.suppressed > 0) this.logger.warn(`cluster: ${this.suppressed} more such warnings in the last ${Math.round((now - this.windowStartMs) / 1000)} s were not logged`);
      this.windowStartMs = now;
      this.logged = 0;
      this.suppressed = 0;
    }
    if (this.logged < this.limit) {
      this.logged++;
      this.logger.warn(message, fields);
    } else {
      this.suppressed++;
    }
  }
}
