/**
 * Filter expression numbers, Aerospike's own (the C client's as_exp.h, the server's exp.c), so
 * the wire protocol carries expressions 1:1.
 */

/** Value types of expressions (Aerospike's as_exp_type). */
export const ExpType = {
  NIL: 0,
  BOOL: 1,
  INT: 2,
  STR: 3,
  LIST: 4,
  MAP: 5,
  BLOB: 6,
  FLOAT: 7,
  GEOJSON: 8,
  HLL: 9,
} as const;

/** Expression op codes. */
export const ExpCode = {
  /** An expression whose value is always UNKNOWN (a filter with it is false; an expression op with it fails unless EVAL_NO_FAIL). */
  UNKNOWN: 0,
  CMP_EQ: 1,
  CMP_NE: 2,
  CMP_GT: 3,
  CMP_GE: 4,
  CMP_LT: 5,
  CMP_LE: 6,
  CMP_REGEX: 7,
  CMP_GEO: 8,
  IN_LIST: 9,
  AND: 16,
  OR: 17,
  NOT: 18,
  EXCLUSIVE: 19,
  ADD: 20,
  SUB: 21,
  MUL: 22,
  DIV: 23,
  POW: 24,
  LOG: 25,
  MOD: 26,
  ABS: 27,
  FLOOR: 28,
  CEIL: 29,
  TO_INT: 30,
  TO_FLOAT: 31,
  INT_AND: 32,
  INT_OR: 33,
  INT_XOR: 34,
  INT_NOT: 35,
  INT_LSHIFT: 36,
  INT_RSHIFT: 37,
  INT_ARSHIFT: 38,
  INT_COUNT: 39,
  INT_LSCAN: 40,
  INT_RSCAN: 41,
  MIN: 50,
  MAX: 51,
  DIGEST_MODULO: 64,
  DEVICE_SIZE: 65,
  LAST_UPDATE: 66,
  SINCE_UPDATE: 67,
  VOID_TIME: 68,
  TTL: 69,
  SET_NAME: 70,
  KEY_EXIST: 71,
  IS_TOMBSTONE: 72,
  MEMORY_SIZE: 73,
  RECORD_SIZE: 74,
  KEY: 80,
  BIN: 81,
  BIN_TYPE: 82,
  COND: 123,
  VAR: 124,
  LET: 125,
  QUOTE: 126,
  CALL: 127,
} as const;

/** The system call of a CALL expression: a list or map read (CDT); MODIFY_LOCAL marks a modify. */
export const SYS_CALL_CDT = 0;
export const SYS_FLAG_MODIFY_LOCAL = 0x40;

/** Aerospike's particle types, what binType() returns (0: the bin does not exist). */
export const ParticleType = {
  NULL: 0,
  INTEGER: 1,
  FLOAT: 2,
  STRING: 3,
  BLOB: 4,
  BOOL: 17,
  MAP: 19,
  LIST: 20,
} as const;

/**
 * cmpRegex flags: regcomp's bits with glibc's values, which Aerospike's server passes to regcomp
 * unchanged (and the Node client's Aerospike.regex names). NONE (BASIC) is POSIX basic syntax,
 * EXTENDED extended syntax; NEWLINE makes `.` and `[^...]` skip newlines and `^`/`$` match at
 * them; NOSUB changes nothing for a yes/no match (regex.ts).
 */
export const RegexFlags = { NONE: 0, BASIC: 0, EXTENDED: 1, ICASE: 2, NEWLINE: 4, NOSUB: 8 } as const;

/** The static type of a value known only at run time (a bin, a variable, a list/map read): any ExpType. */
export const ANY = -1;
