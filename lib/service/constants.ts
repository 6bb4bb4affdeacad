/**
 * The bounds of the Aerospike service listener (docs/protocol.md, "Limits"), in one place, with
 * the relations between them checked below. Names end in their unit.
 */
import { MAX_RECORD_BYTES_DEFAULT, WRITE_BLOCK_BYTES_MAX } from '../constants';

/** Client connections open at once; one more is closed as soon as it is accepted. */
export const SERVICE_CONNECTIONS_MAX = 2048;
/**
 * The largest proto frame body a client may send (Aerospike's own limit is 128 MiB). A record
 * is at most WRITE_BLOCK_BYTES_MAX, so this leaves room for one such record and its framing,
 * or a batch of many smaller ones.
 */
export const SERVICE_FRAME_BYTES_MAX = 32 << 20;
/**
 * Bytes all connections together may hold in frames being assembled. A frame above
 * SERVICE_SMALL_FRAME_BYTES reserves its size here before it is read; when the budget is
 * spent, its connection stops reading until others finish.
 */
export const SERVICE_BUFFERED_BYTES_MAX = 256 << 20;
/** Frames up to this size are read without a reservation (bounded by connections × this). */
export const SERVICE_SMALL_FRAME_BYTES = 64 << 10;
/** A frame whose bytes do not all arrive within this time closes its connection. */
export const SERVICE_FRAME_TIMEOUT_MS = 30_000;
/** Complete frames a connection may have waiting behind the one being served before it stops reading. */
export const SERVICE_PIPELINED_FRAMES_MAX = 64;
/** Info request bodies are at most this long (a UDF module is the largest thing sent by info). */
export const SERVICE_INFO_REQUEST_BYTES_MAX = 1 << 20;
/** Commands in one info request. */
export const SERVICE_INFO_COMMANDS_MAX = 256;
/** Rows in one batch request (Aerospike's batch-max-requests default is 5000; clients split per node). */
export const SERVICE_BATCH_ROWS_MAX = 100_000;
/** Batch rows executed at once; the rest wait, so a huge batch cannot flood the Db. */
export const SERVICE_BATCH_CONCURRENCY = 256;
/** Bytes of batch replies gathered before they are written as one proto frame. */
export const SERVICE_REPLY_CHUNK_BYTES = 128 << 10;
/**
 * A partition scan reads about this many records per group of partitions (the group size is
 * chosen from the namespace's object count), so a scan holds a bounded number of records.
 */
export const SERVICE_SCAN_GROUP_RECORDS = 16_384;
/** Log lines about bad input are rate limited to this many per interval. */
export const SERVICE_LOG_LINES_PER_INTERVAL = 10;
export const SERVICE_LOG_INTERVAL_MS = 10_000;
/** Login sessions last this long (Aerospike's session-ttl default is one day). */
export const SERVICE_SESSION_TTL_SECONDS = 24 * 3600;
/** Session tokens kept at once (oldest dropped first; a client with a dropped token logs in again). */
export const SERVICE_SESSIONS_MAX = 100_000;
/** Users in `service.users`. */
export const SERVICE_USERS_MAX = 1024;
/** The partition map the info protocol publishes is rebuilt at most this often. */
export const SERVICE_PARTITION_MAP_REFRESH_MS = 100;
/** A peer's advertised service address is at most this long. */
export const SERVICE_ADDRESS_MAX_BYTES = 300;

/**
 * Records a query tests in JS (query.ts `accept`: GeoJSON in lists and maps), or a background job
 * writes, between two yields to the event loop.
 */
export const SERVICE_RECORD_TESTS_PER_YIELD = 256;
/** Background scans and queries (background.ts) running at once; one more is refused (KEY_BUSY). */
export const SERVICE_BACKGROUND_JOBS_RUNNING_MAX = 4;
/** Finished background jobs kept for query-show (the server's query-max-done default). */
export const SERVICE_BACKGROUND_JOBS_KEPT = 100;
/**
 * Secondary indexes (docs/protocol.md, "Secondary indexes"), Aerospike's own bounds (the
 * server's datamodel.h and sindex.h): indexes per namespace, and the lengths of an index's
 * name, bin name and set name, and of its expression and context as base64 text.
 */
export const SINDEX_PER_NAMESPACE_MAX = 256;
export const SINDEX_NAME_BYTES_MAX = 63;
export const SINDEX_BIN_NAME_BYTES_MAX = 15;
export const SINDEX_SET_NAME_BYTES_MAX = 63;
export const SINDEX_EXPRESSION_BASE64_BYTES_MAX = 16 * 1024 - 1;
export const SINDEX_CONTEXT_BASE64_BYTES_MAX = 2047;
/** A query's string or blob is shorter than this (longer values are not indexed, so never match). */
export const SINDEX_KEY_BYTES_MAX = 2048;
/** How long a peer has to answer an index definition this node sends it (sindex.ts, peer-info.ts). */
export const SINDEX_PEER_TIMEOUT_MS = 2000;
/** How long a peer may take to answer a forwarded UDF registration (it compiles the module in its worker first). */
export const UDF_PEER_TIMEOUT_MS = 10_000;
/** A query's GeoJSON region or point is shorter than this. */
export const SINDEX_GEOJSON_BYTES_MAX = 1 << 20;

function check(condition: boolean, relation: string): void {
  if (!condition) throw new Error(`shoal service constants: broken relation: ${relation}`);
}

check(SERVICE_FRAME_BYTES_MAX >= WRITE_BLOCK_BYTES_MAX + (1 << 20), 'a frame carries the largest record and its framing');
check(SERVICE_FRAME_BYTES_MAX >= MAX_RECORD_BYTES_DEFAULT * 4, 'a frame carries a few default-sized records');
check(SERVICE_BUFFERED_BYTES_MAX >= SERVICE_FRAME_BYTES_MAX * 2, 'two of the largest frames can be read at once');
check(SERVICE_SMALL_FRAME_BYTES < SERVICE_FRAME_BYTES_MAX, 'small frames are smaller than the largest');
check(SERVICE_INFO_REQUEST_BYTES_MAX <= SERVICE_FRAME_BYTES_MAX, 'an info request fits a frame');
check(SERVICE_REPLY_CHUNK_BYTES < SERVICE_FRAME_BYTES_MAX, 'a reply chunk is a frame');
check(SINDEX_EXPRESSION_BASE64_BYTES_MAX < SERVICE_INFO_REQUEST_BYTES_MAX, 'an index expression fits an info request');
