/**
 * Aerospike result codes (the server's proto.h) and the one mapping from Shoal's errors to
 * them (docs/protocol.md, "Result codes").
 */
import { ErrorCode, ShoalError } from '../errors';
import { RequestError } from './wire';

export const ResultCode = {
  OK: 0,
  SERVER_ERROR: 1,
  KEY_NOT_FOUND: 2,
  GENERATION_ERROR: 3,
  PARAMETER_ERROR: 4,
  KEY_EXISTS: 5,
  BIN_EXISTS: 6,
  OUT_OF_SPACE: 8,
  TIMEOUT: 9,
  UNAVAILABLE: 11,
  INCOMPATIBLE_TYPE: 12,
  RECORD_TOO_BIG: 13,
  KEY_BUSY: 14,
  UNSUPPORTED_FEATURE: 16,
  BIN_NOT_FOUND: 17,
  NAMESPACE_NOT_FOUND: 20,
  ELEMENT_NOT_FOUND: 23,
  ELEMENT_EXISTS: 24,
  FORBIDDEN: 22,
  ENTERPRISE_ONLY: 25,
  OP_NOT_APPLICABLE: 26,
  FILTERED_OUT: 27,
  SECURITY_NOT_ENABLED: 52,
  SECURITY_SCHEME_NOT_SUPPORTED: 53,
  INVALID_COMMAND: 54,
  INVALID_FIELD: 55,
  INVALID_USER: 60,
  INVALID_PASSWORD: 62,
  INVALID_CREDENTIAL: 65,
  EXPIRED_SESSION: 66,
  NOT_AUTHENTICATED: 80,
  UDF_ERROR: 100,
  INDEX_FOUND: 200,
  INDEX_NOT_FOUND: 201,
  INDEX_MAX_COUNT: 206,
} as const;

/**
 * Result codes of the ShoalErrors that have no Aerospike status of their own: a closing Db
 * is unavailable (the client retries another node); storage and cluster failures are server
 * errors.
 */
const RESULT_OF_CODE: Partial<Record<ErrorCode, number>> = {
  NOT_OPEN: ResultCode.UNAVAILABLE,
  LOCKED: ResultCode.SERVER_ERROR,
  IO_ERROR: ResultCode.SERVER_ERROR,
  CORRUPTION: ResultCode.SERVER_ERROR,
  CLUSTER_ERROR: ResultCode.SERVER_ERROR,
};

/**
 * The result code an error is answered with: a ShoalError's Aerospike status (RECORD_NOT_FOUND 2,
 * GENERATION_MISMATCH 3, INVALID_ARGUMENT 4, RECORD_EXISTS 5, OUT_OF_SPACE 8, TIMEOUT 9,
 * PARTITION_UNAVAILABLE 11, BIN_TYPE 12, RECORD_TOO_BIG 13, KEY_BUSY 14, ELEMENT_NOT_FOUND 23,
 * ELEMENT_EXISTS 24, OP_NOT_APPLICABLE 26, FILTERED_OUT 27), the table above for
 * the others, PARAMETER_ERROR for TypeError and RangeError (arguments the Db refused), and
 * SERVER_ERROR for anything else.
 */
export function resultCodeOf(error: unknown): number {
  if (error instanceof RequestError) return error.resultCode;
  if (error instanceof ShoalError) return error.status ?? RESULT_OF_CODE[error.code] ?? ResultCode.SERVER_ERROR;
  if (error instanceof TypeError || error instanceof RangeError) return ResultCode.PARAMETER_ERROR;
  return ResultCode.SERVER_ERROR;
}
