/**
 * Every bound Shoal keeps, in one place, with the relations between them checked below.
 * Names end in their unit.
 */

/** Digest length: RIPEMD-160. */
export const DIGEST_BYTES = 20;
/** Partitions in the key space (Aerospike's figure). */
export const PARTITION_COUNT = 4096;
/** A bin name is at most this many UTF-8 bytes (Aerospike's limit). */
export const BIN_NAME_MAX_BYTES = 15;
/** A set name is at most this many UTF-8 bytes (Aerospike's limit). */
export const SET_NAME_MAX_BYTES = 63;
/** Sets per namespace: the index entry keeps a 12-bit set id, 0 meaning no set. */
export const SET_COUNT_MAX = 4095;
/** A namespace name is at most this many UTF-8 bytes (Aerospike's limit). */
export const NAMESPACE_NAME_MAX_BYTES = 31;
/** A user key (string or bytes) is at most this many bytes (the exchange buffer's key field). */
export const KEY_MAX_BYTES = 4096;
/** Bins per record. */
export const BINS_PER_RECORD_MAX = 32_767;
/** Nesting depth of list and map bin values. */
export const BIN_VALUE_DEPTH_MAX = 64;
/** Keys in one batchGet or batchPut call. */
export const BATCH_KEYS_MAX = 100_000;

/**
 * batchPut's native crossings: slots per lookupBatch/writeBatch call, and the bytes of set
 * names, keys and payloads one call carries at least (more when maxRecordBytes needs it: one
 * record of the largest size always fits). A bigger batch is cut into several calls, with an
 * event-loop turn between two (docs/storage.md, "No long stalls"): 4,096 entries take 5-15 ms
 * of JS time on the development VM, where 16,384 took up to 60 ms.
 */
export const BATCH_PUT_SLOTS_PER_CALL = 4_096;
export const BATCH_PUT_VARIABLE_BYTES_MIN = 4 << 20;

/** A list or map operation's encoded arguments (a record is never bigger than a write block). */
export const OPERATION_PAYLOAD_BYTES_MAX = 8 << 20;
/** Nesting of a filter expression's operations (deeper ones are refused before they reach the evaluator's stack). */
export const EXPRESSION_DEPTH_MAX = 128;
/** A cmpRegex pattern's length in UTF-8 bytes (Aerospike sets none; this keeps parsing and the NFA small). */
export const REGEX_PATTERN_BYTES_MAX = 4_096;
/** Groups and stacked repetitions (`((a*)+){2}`) nested in a cmpRegex pattern: the parser and the NFA builder recurse this deep. */
export const REGEX_NESTING_MAX = 64;
/** The largest count in a {m,n} repetition (glibc's RE_DUP_MAX, which Aerospike's regcomp applies). */
export const REGEX_REPEAT_COUNT_MAX = 0x7fff;
/**
 * States of a cmpRegex NFA once bounded repetitions are expanded ({m,n} copies its operand
 * n times): `a{1000}{1000}` would be a million states and is refused instead of built.
 */
export const REGEX_STATES_MAX = 20_000;
/**
 * NFA state visits one cmpRegex evaluation may make (about text bytes times live states; the
 * lookups of its DFA cache are not counted, each is one byte's move). Past it the match is
 * UNKNOWN for that record (a filter treats it as false), so one evaluation stays within about
 * 50 ms of event-loop time.
 */
export const REGEX_MATCH_STEPS_MAX = 4_000_000;
/**
 * Bytes of one compiled cmpRegex's DFA cache (its state sets and their 1 or 4 KiB rows of
 * moves): 64 to 256 states. Past it the rest of a text runs on the NFA, under the step budget.
 */
export const REGEX_DFA_CACHE_BYTES = 256 << 10;
/** Levels of a list or map operation's context path (deeper values cannot exist: BIN_VALUE_DEPTH_MAX). */
export const CONTEXT_LEVELS_MAX = 64;

/** Default and bounds of a record's encoded size. */
export const MAX_RECORD_BYTES_DEFAULT = 1 << 20;
export const MAX_RECORD_BYTES_MIN = 8 << 10;
/** Device write blocks. */
export const WRITE_BLOCK_BYTES_DEFAULT = 1 << 20;
export const WRITE_BLOCK_BYTES_MIN = 1 << 17;
export const WRITE_BLOCK_BYTES_MAX = 8 << 20;
/** The smallest device file Shoal creates, in write blocks (sizeBytes >= 8 MiB at the default 1 MiB blocks). */
export const DEVICE_WRITE_BLOCKS_MIN = 8;
/** The smallest memory namespace (storage.maxBytes). */
export const MEMORY_MAX_BYTES_MIN = 1 << 20;

/** TTLs, seconds. */
export const TTL_NAMESPACE_DEFAULT = 0;
export const TTL_NEVER_EXPIRE = -1;
export const TTL_DONT_UPDATE = -2;
/** Aerospike caps TTLs at 10 years. */
export const TTL_MAX_SECONDS = 10 * 365 * 24 * 3600;

/** Generation counter: wraps from its maximum back to 1, never 0 (0 means "no record"). */
export const GENERATION_MAX = 0xffff_ffff;

/** Memory namespaces: defaults of the eviction marks, percent of maxBytes. */
export const HIGH_WATER_MEMORY_PCT_DEFAULT = 90;
export const STOP_WRITES_PCT_DEFAULT = 95;
/** Entries removed by one eviction or expiry step, so no step blocks the event loop long. */
export const EVICTION_BATCH_MAX = 256;
/**
 * Memory namespaces with evict policy 'ttl': choosing the soonest-expiring records walks the
 * whole index, so one walk evicts at least this fraction of the records (as Aerospike's
 * evict-tenths-pct, whose default is 5, i.e. 0.5 %), and that walk serves the writes of many
 * puts instead of one. At most MEMORY_TTL_EVICTION_BATCH_MAX a walk.
 */
export const MEMORY_TTL_EVICTION_FRACTION = 0.005;
export const MEMORY_TTL_EVICTION_BATCH_MAX = 65_536;
export const EXPIRY_SWEEP_SLOTS_PER_STEP = 16_384;
export const EXPIRY_SWEEP_INTERVAL_MS_DEFAULT = 1_000;
/** Scan: records fetched from the index per native call. */
export const SCAN_BATCH_RECORDS = 128;
/** Truncate: slots visited per step (a few ms of removals), with an event-loop turn between steps. */
export const TRUNCATE_SLOTS_PER_STEP = 16_384;
/** Per-set object counts (the protocol's `sets` info): slots visited per step, about 1 ms, with an event-loop turn between steps. */
export const SET_COUNT_SLOTS_PER_STEP = 1 << 19;

/** Bytes of index memory per entry (48-byte entry) and per in-memory side-table entry. */
export const INDEX_ENTRY_BYTES = 48;
export const INDEX_SIDE_ENTRY_BYTES = 16;

/** Payload header: format byte, key type, key length (u16). */
export const PAYLOAD_HEADER_BYTES = 4;
export const PAYLOAD_FORMAT_VERSION = 1;
/** Payload format of records whose bins hold order flags or maps with keys that are not strings (docs/record-payload.md). */
export const PAYLOAD_FORMAT_EXTENDED = 2;

function check(condition: boolean, relation: string): void {
  if (!condition) throw new Error(`shoal constants: broken relation: ${relation}`);
}

check(MAX_RECORD_BYTES_DEFAULT <= WRITE_BLOCK_BYTES_DEFAULT, 'default record size fits a default write block');
check(WRITE_BLOCK_BYTES_MIN % 4096 === 0 && WRITE_BLOCK_BYTES_MAX % 4096 === 0, 'write blocks are 4 KiB aligned');
check(KEY_MAX_BYTES + PAYLOAD_HEADER_BYTES < MAX_RECORD_BYTES_MIN, 'a stored key always fits in a record');
check(SET_COUNT_MAX < 1 << 12, 'set ids fit 12 bits');
check(HIGH_WATER_MEMORY_PCT_DEFAULT < STOP_WRITES_PCT_DEFAULT, 'eviction starts before writes stop');
check(SCAN_BATCH_RECORDS * 64 <= MAX_RECORD_BYTES_MIN, 'a scan batch fits the smallest exchange data region');
check(BATCH_PUT_SLOTS_PER_CALL <= 65_536, 'a batchPut call fits the native slot limit');
check(OPERATION_PAYLOAD_BYTES_MAX >= WRITE_BLOCK_BYTES_MAX, 'an operation can carry a value as big as the biggest record');
check(CONTEXT_LEVELS_MAX >= BIN_VALUE_DEPTH_MAX, 'a context path can reach the deepest value');

/** Upper bounds of the operation latency histogram buckets (lib/metrics.ts), seconds: 5 µs to 2.5 s. */
export const METRICS_LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];
/**
 * One call in this many (a power of two) is timed into the latency histogram; every call is
 * counted. Reading the clock twice costs about as much as a memory getSync on a loaded
 * machine (bench/metrics.ts), so timing each call would break the 5% budget of issue 17.
 */
export const METRICS_LATENCY_SAMPLE_EVERY = 16;
/** Error codes kept apart per operation in the metrics; others are counted as "other" (bounds the label set). */
export const METRICS_ERROR_CODES_MAX = 32;
/** Connections the metrics listener serves at once; more are refused (it serves operators, not clients). */
export const METRICS_CONNECTIONS_MAX = 32;
/** A metrics request must arrive within this long, or the socket is closed. */
export const METRICS_REQUEST_TIMEOUT_MS = 10_000;
