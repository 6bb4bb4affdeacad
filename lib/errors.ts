/**
 * One error class for everything Shoal reports. `code` is stable and safe to switch on;
 * `status` is Aerospike's numeric result code where one exists; messages may change.
 */

export const ErrorCode = {
  RECORD_NOT_FOUND: 'RECORD_NOT_FOUND',
  GENERATION_MISMATCH: 'GENERATION_MISMATCH',
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  RECORD_EXISTS: 'RECORD_EXISTS',
  OUT_OF_SPACE: 'OUT_OF_SPACE',
  TIMEOUT: 'TIMEOUT',
  PARTITION_UNAVAILABLE: 'PARTITION_UNAVAILABLE',
  BIN_TYPE: 'BIN_TYPE',
  RECORD_TOO_BIG: 'RECORD_TOO_BIG',
  KEY_BUSY: 'KEY_BUSY',
  /** An expression write with CREATE_ONLY found the bin there. */
  BIN_EXISTS: 'BIN_EXISTS',
  /** An expression write with UPDATE_ONLY found no bin. */
  BIN_NOT_FOUND: 'BIN_NOT_FOUND',
  /** A list or map operation's element is not there (map update-only put, for one). */
  ELEMENT_NOT_FOUND: 'ELEMENT_NOT_FOUND',
  /** A list or map operation's element is already there (add-unique append, create-only put). */
  ELEMENT_EXISTS: 'ELEMENT_EXISTS',
  /** A list or map operation cannot apply: an index out of range, a context path that leads nowhere, a sorted list insert. */
  OP_NOT_APPLICABLE: 'OP_NOT_APPLICABLE',
  /** The record exists but the call's filter expression is false for it. */
  FILTERED_OUT: 'FILTERED_OUT',
  NOT_OPEN: 'NOT_OPEN',
  LOCKED: 'LOCKED',
  IO_ERROR: 'IO_ERROR',
  CORRUPTION: 'CORRUPTION',
  CLUSTER_ERROR: 'CLUSTER_ERROR',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Aerospike's result codes for the codes that have one. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  RECORD_NOT_FOUND: 2,
  GENERATION_MISMATCH: 3,
  INVALID_ARGUMENT: 4,
  RECORD_EXISTS: 5,
  OUT_OF_SPACE: 8,
  TIMEOUT: 9,
  PARTITION_UNAVAILABLE: 11,
  BIN_TYPE: 12,
  RECORD_TOO_BIG: 13,
  KEY_BUSY: 14,
  BIN_EXISTS: 6,
  BIN_NOT_FOUND: 17,
  ELEMENT_NOT_FOUND: 23,
  ELEMENT_EXISTS: 24,
  OP_NOT_APPLICABLE: 26,
  FILTERED_OUT: 27,
};

const CODES = new Set<string>(Object.values(ErrorCode));

export class ShoalError extends Error {
  /** Stable string code; see ErrorCode. */
  readonly code: ErrorCode;
  /** Aerospike's numeric result code, or undefined where Aerospike has none. */
  readonly status: number | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ShoalError';
    this.code = code;
    this.status = STATUS[code];
  }

  /** Whether a value is a code this version knows (codes arriving over the wire are checked). */
  static isCode(value: unknown): value is ErrorCode {
    return typeof value === 'string' && CODES.has(value);
  }
}

/** INVALID_ARGUMENT with a message that names the argument. */
export function invalidArgument(message: string): ShoalError {
  return new ShoalError(ErrorCode.INVALID_ARGUMENT, message);
}

/**
 * Wraps an error raised by the native addon or the OS: errors that already carry a known code
 * keep it, everything else becomes IO_ERROR.
 */
export function fromNativeError(error: unknown, context: string): ShoalError {
  if (error instanceof ShoalError) return error;
  const code = (error as { code?: unknown } | undefined)?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (ShoalError.isCode(code)) return new ShoalError(code, `${context}: ${message}`, { cause: error });
  if (code === 'ENOSPC') return new ShoalError(ErrorCode.OUT_OF_SPACE, `${context}: ${message}`, { cause: error });
  return new ShoalError(ErrorCode.IO_ERROR, `${context}: ${message}`, { cause: error });
}

const BYTE_UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/**
 * A byte count as messages print it: "512 bytes", "8 MiB", or "1.5 MiB (1572864 bytes)" when
 * the unit rounds it, so a value just past a limit never reads the same as the limit.
 */
export function formatBytes(bytes: number): string {
  if (!Number.isSafeInteger(bytes) || Math.abs(bytes) < 1024) return bytes === 1 ? '1 byte' : `${bytes} bytes`;
  let value = bytes;
  let unit = -1;
  while (Math.abs(value) >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  if (Number.isInteger(value)) return `${value} ${BYTE_UNITS[unit]}`;
  return `${Number(value.toFixed(2))} ${BYTE_UNITS[unit]} (${bytes} bytes)`;
}
