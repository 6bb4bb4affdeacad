/**
 * Named bounds and defaults of cluster mode, kept in one place (STYLE.md: every queue, buffer,
 * batch and loop has a named bound). Relations between them are checked at the bottom of this
 * module, at load time, so a bad edit fails immediately instead of at run time.
 */
import { HYBRID_CLOCK_MAX_LEAD_MS } from '../clock';

/** Wire protocol version this build speaks. Bumped on any incompatible message change. */
export const PROTOCOL_VERSION_CURRENT = 3;
/** Oldest protocol version this build still interoperates with (rolling upgrade window). */
export const PROTOCOL_VERSION_MIN_SUPPORTED = 3;

/** Largest frame body accepted or sent (bytes). A larger length prefix closes the connection. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** Bytes of the length prefix in front of each frame body (u32 big-endian). */
export const FRAME_HEADER_BYTES = 4;
/**
 * Bytes of the tag at the end of every frame after the handshake on a connection
 * authenticated by the secret alone: HMAC-SHA-256 truncated to 128 bits (RFC 4868).
 */
export const FRAME_TAG_BYTES = 16;
/** Outbound bytes buffered on one connection before it is considered stuck and closed. */
export const MAX_CONNECTION_BUFFERED_BYTES = 64 * 1024 * 1024;
/** A connection that has not completed its handshake within this time is closed. */
export const HANDSHAKE_TIMEOUT_MS = 5_000;
/** Most cluster nodes a node tracks (known addresses and peers). */
export const MAX_CLUSTER_NODES = 128;
/** Longest node id (UTF-8 bytes). */
export const MAX_NODE_ID_BYTES = 64;
/** Longest cluster name (UTF-8 bytes). */
export const MAX_CLUSTER_NAME_BYTES = 64;
/** Longest cluster key a peer may advertise (ours are 16 hex characters). */
export const MAX_CLUSTER_KEY_LENGTH = 64;
/** Largest migrationsRemaining a peer may advertise (partitions to send or receive, over every namespace). */
export const MAX_MIGRATIONS_REMAINING = 2 ** 31 - 1;

/**
 * Largest frame accepted before a connection has authenticated (hellos, challenges, proofs are
 * a few hundred bytes), so an unauthenticated peer can make this node hold at most this much.
 */
export const MAX_HANDSHAKE_FRAME_BYTES = 4 * 1024;
/** Largest frame accepted on an admin connection after its handshake (the CLI's requests are tiny). */
export const MAX_ADMIN_FRAME_BYTES = 64 * 1024;
/**
 * Bytes all connections of one listener may hold in incomplete inbound frames together. A
 * connection whose partial frame would take the total past it is closed (each one alone may
 * hold up to MAX_FRAME_BYTES).
 */
export const MAX_INBOUND_PENDING_BYTES = 64 * 1024 * 1024;
/** Inbound connections a node holds at once (the listener refuses more). */
export const MAX_INBOUND_CONNECTIONS = 512;
/** Inbound connections still in their handshake, in all; the oldest is closed to admit a new one. */
export const MAX_UNAUTHENTICATED_CONNECTIONS = 64;
/**
 * Inbound connections still in their handshake from one remote host; the oldest is closed to
 * admit a new one. Room for every node of a cluster on one machine connecting at once.
 */
export const MAX_UNAUTHENTICATED_PER_HOST = 32;
/** An authenticated admin connection that sends nothing for this long is closed (ms). */
export const ADMIN_IDLE_TIMEOUT_MS = 60_000;
/**
 * Messages waiting on one outbound link for its handshake to complete, in encoded bytes;
 * beyond it a send fails (returns false) like a message lost on the network.
 */
export const MAX_HANDSHAKE_QUEUE_BYTES = 16 * 1024 * 1024;
/** Shortest cluster secret accepted (characters of a string, bytes of a Buffer). */
export const MIN_SECRET_LENGTH = 16;
/** Longest cluster secret accepted (bytes). */
export const MAX_SECRET_BYTES = 1024;
/** Secrets a node accepts besides its own during a roll (cluster.acceptSecrets). */
export const MAX_ACCEPTED_SECRETS = 4;
/** Bytes of each handshake nonce. */
export const HANDSHAKE_NONCE_BYTES = 32;
/** Failed handshakes and malformed frames from peers logged per window (the rest are counted and summarised). */
export const AUTH_FAILURE_LOG_LIMIT = 100;
/** The window of AUTH_FAILURE_LOG_LIMIT (ms). */
export const AUTH_FAILURE_LOG_WINDOW_MS = 60_000;
/**
 * A new connection claiming a node id is refused while that id's current inbound connection
 * received a frame within this many heartbeat intervals (a live peer sends one every
 * interval); past it the old connection is closed and the new one takes the id.
 */
export const NODE_CLAIM_LIVE_INTERVALS = 2;
/**
 * A stalled outbound connection replaced by a fresh one stays open this long (ms), sending
 * nothing more, so what it already carries can still arrive (a peer whose event loop stalled
 * answers it late rather than never); it closes sooner once all of it is acknowledged. The
 * default request timeout: nothing sent on it is waited for longer.
 */
export const RETIRED_CONNECTION_GRACE_MS = 5_000;
/**
 * The receiver of an outbound connection acknowledges the frames it received at most this
 * many heartbeat intervals after the first unacknowledged one arrived (about one small frame
 * per interval per connection, next to the heartbeats).
 */
export const ACK_DELAY_INTERVALS = 1;

/** Default heartbeat interval (ms), docs/cluster.md. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 150;
/** Default number of missed intervals before a peer is declared dead, docs/cluster.md. */
export const DEFAULT_HEARTBEAT_TIMEOUT = 10;
/** Smallest heartbeat interval accepted (ms). */
export const MIN_HEARTBEAT_INTERVAL_MS = 5;
/** Smallest heartbeat timeout (intervals) accepted. */
export const MIN_HEARTBEAT_TIMEOUT = 3;
/**
 * A tick that fires later than this many intervals after it was due counts as an event-loop
 * stall of this node, and the stall is not held against peers (the lag guard).
 */
export const LAG_GUARD_TOLERANCE_INTERVALS = 0.5;
/** A discovered (non-seed) address of a dead peer is retried for this many timeouts, then forgotten. */
export const FORGET_DEAD_PEER_AFTER_TIMEOUTS = 40;

/** Ticks the computed clique must stay the same before the principal proposes it. */
export const MEMBERSHIP_STABLE_TICKS = 2;
/** A membership round not completed within this many heartbeat intervals is abandoned. */
export const MEMBERSHIP_ROUND_TIMEOUT_INTERVALS = 6;
/** Ticks a member may advertise a stale cluster key (a missed commit, a restart) before the principal re-forms. */
export const MEMBERSHIP_KEY_MISMATCH_TICKS = 4;
/** Heartbeat timeouts a stable clique must disagree with this node's view before it leaves the view (orphan fallback). */
export const MEMBERSHIP_ORPHAN_TIMEOUTS = 3;
/** How many ticks the principal re-sends a commit to members that have not acknowledged it. */
export const MEMBERSHIP_COMMIT_RETRY_TICKS = 20;

/** Partitions per namespace (Aerospike's 4096): lib/constants.ts, the one definition. */
export { PARTITION_COUNT } from '../constants';
/** Default replication factor, capped by cluster size. */
export const DEFAULT_REPLICATION_FACTOR = 2;
/** Largest replication factor accepted. */
export const MAX_REPLICATION_FACTOR = 8;
/**
 * Balancing slack: the balancing pass moves master roles until no node masters more than
 * ceil(partitions / active nodes) partitions. The property test holds max/mean <= 1.10.
 */
export const MASTER_BALANCE_MAX_PASSES = 8;

/** Default time a forwarded or replicated request may take before it fails with TIMEOUT (ms). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;
/** Most requests in flight from one node to peers (routing + replication) before new ones fail. */
export const MAX_PENDING_REQUESTS = 100_000;
/** One replication attempt waits this long for its acknowledgement before re-sending (ms). */
export const REPLICATION_ATTEMPT_TIMEOUT_MS = 500;
/**
 * Most attempts to route one request while its partition moves or the cluster re-forms. The
 * request's deadline ends the attempts first in practice: with the back-off below, 5 s hold
 * about 25 attempts.
 */
export const MAX_FORWARD_ATTEMPTS = 100;
/** Delay before the first re-route of a request; each later attempt waits one more of these (ms). */
export const FORWARD_RETRY_DELAY_MS = 50;
/** Longest wait between two attempts to route one request (ms). */
export const FORWARD_RETRY_MAX_DELAY_MS = 250;
/**
 * Write requests whose outcome a node remembers (by request id), so a duplicate or a re-send
 * of an executed write is answered with its first result instead of running again (docs/cluster.md,
 * "Errors"). Each node remembers the writes it executed and those it applied as a replica.
 */
export const REMEMBERED_REQUESTS_MAX = 50_000;
/** How long an executed write's outcome is remembered, as a multiple of the request timeout. */
export const REMEMBERED_REQUEST_TIMEOUTS = 2;
/** Largest result (msgpack bytes) remembered with a request id; a larger one is remembered as "executed, in doubt". */
export const REMEMBERED_RESULT_MAX_BYTES = 256;
/** One attempt to read a record's copy from a merge source (duplicate resolution) waits this long before re-sending (ms). */
export const DUPLICATE_READ_ATTEMPT_TIMEOUT_MS = 500;
/** Requests of one batch call sent to a master in one message (batchPut in cluster mode). */
export const BATCH_REQUEST_RECORDS = 512;
/** Bytes of bins per batch request message, roughly (kept well under MAX_FRAME_BYTES). */
export const BATCH_REQUEST_MAX_BYTES = 2 * 1024 * 1024;
/** Batch request messages of one batch call in flight at once, over all masters. */
export const BATCH_REQUESTS_IN_FLIGHT = 4;
/** Record versions per replication batch message (a master replicating a batch request). */
export const REPLICATION_BATCH_RECORDS = 512;
/**
 * Most work a data-plane loop does before it yields to the event loop (records looked at,
 * requests encoded, partitions dropped): client traffic and heartbeats get their turn within
 * a few milliseconds of every slice (docs/cluster.md, "Event loop").
 */
export const DATA_PLANE_SLICE_RECORDS = 2_048;
/** Refused peer messages logged per interval, per kind of refusal; the rest are counted. */
export const REFUSAL_LOG_LINES_PER_INTERVAL = 5;
/** The interval of the refusal log's rate limit (ms). */
export const REFUSAL_LOG_INTERVAL_MS = 10_000;

/**
 * Settle notices of partitions that finish migrating within this window go out in one message
 * per member (ms). The new master starts serving at most this much later.
 */
export const SETTLE_NOTICE_BATCH_MS = 20;
/** Partitions migrating at once per node. */
export const MIGRATION_CONCURRENCY = 4;
/** Retries of one partition migration before it waits for the next cluster change. */
export const MIGRATION_MAX_RETRIES = 5;
/** Pause before a migration job that exhausted its retries is queued again (same view only). */
export const MIGRATION_REQUEUE_DELAY_MS = 1_000;
/** Record versions per migration batch message. */
export const MIGRATION_BATCH_RECORDS = 256;
/** Bytes of record payloads per migration batch message (kept well under MAX_FRAME_BYTES). */
export const MIGRATION_BATCH_MAX_BYTES = 4 * 1024 * 1024;
/** Largest record payload shipped in replication or migration (matches the 1 MiB default record limit, with room for larger write blocks). */
export const MAX_RECORD_PAYLOAD_BYTES = 8 * 1024 * 1024;

/** Truncate cuts a heartbeat lists at most (the newest); a node with more applies older ones only by broadcast. */
export const MAX_HEARTBEAT_CUTS = 256;
/** Applied truncate cuts remembered with what each removed (so a cut heard twice is applied once). */
export const MAX_REMEMBERED_CUTS = 64;
/**
 * How far nodes' wall clocks may disagree (ms): the clock agreement a cluster assumes between
 * its nodes (NTP keeps them far closer).
 */
export const MAX_TRUNCATE_CLOCK_LEAD_MS = 1_000;

/**
 * How far a truncate cut may be ahead of this node's wall clock (ms): the clock agreement
 * above plus the lead a hybrid clock may take over its wall clock (lib/clock.ts), since a cut
 * of "now" is taken past the members' write clocks (lib/cluster/truncation.ts).
 */
export const MAX_TRUNCATE_CUT_LEAD_MS = MAX_TRUNCATE_CLOCK_LEAD_MS + HYBRID_CLOCK_MAX_LEAD_MS;

function check(condition: boolean, relation: string): void {
  if (!condition) throw new Error(`cluster constants: broken relation: ${relation}`);
}

check(PROTOCOL_VERSION_MIN_SUPPORTED <= PROTOCOL_VERSION_CURRENT, 'PROTOCOL_VERSION_MIN_SUPPORTED <= PROTOCOL_VERSION_CURRENT');
check(MAX_FRAME_BYTES < 2 ** 32, 'MAX_FRAME_BYTES fits the u32 length prefix');
check(MIGRATION_BATCH_MAX_BYTES + MAX_RECORD_PAYLOAD_BYTES + 64 * 1024 <= MAX_FRAME_BYTES,
  'a migration batch (which may overshoot by one record) plus overhead fits one frame');
check(MAX_CONNECTION_BUFFERED_BYTES >= 2 * MAX_FRAME_BYTES, 'a connection can buffer two full frames');
check(MAX_HANDSHAKE_FRAME_BYTES < MAX_ADMIN_FRAME_BYTES && MAX_ADMIN_FRAME_BYTES < MAX_FRAME_BYTES, 'frame limits grow with trust');
check(MAX_INBOUND_PENDING_BYTES >= 2 * MAX_FRAME_BYTES, 'two peers can each send a full frame at once');
check(MAX_UNAUTHENTICATED_PER_HOST <= MAX_UNAUTHENTICATED_CONNECTIONS && MAX_UNAUTHENTICATED_CONNECTIONS < MAX_INBOUND_CONNECTIONS,
  'handshakes in progress leave room for authenticated connections');
check(MAX_INBOUND_CONNECTIONS >= 2 * MAX_CLUSTER_NODES, 'every peer can connect, with room for admin clients');
check(ACK_DELAY_INTERVALS < DEFAULT_HEARTBEAT_TIMEOUT && NODE_CLAIM_LIVE_INTERVALS < DEFAULT_HEARTBEAT_TIMEOUT,
  'acknowledgements and claims act well within a heartbeat timeout');
check(DEFAULT_REPLICATION_FACTOR <= MAX_REPLICATION_FACTOR, 'DEFAULT_REPLICATION_FACTOR <= MAX_REPLICATION_FACTOR');
check(MEMBERSHIP_ROUND_TIMEOUT_INTERVALS < DEFAULT_HEARTBEAT_TIMEOUT, 'a membership round ends before a peer is declared dead');
check(MIGRATION_BATCH_RECORDS > 0 && MIGRATION_CONCURRENCY > 0, 'migration bounds are positive');
check(SETTLE_NOTICE_BATCH_MS < FORWARD_RETRY_DELAY_MS, 'a settle notice waits less than a forwarded request backs off');
check(FORWARD_RETRY_DELAY_MS <= FORWARD_RETRY_MAX_DELAY_MS, 'FORWARD_RETRY_DELAY_MS <= FORWARD_RETRY_MAX_DELAY_MS');
check(REMEMBERED_REQUEST_TIMEOUTS >= 2, 'an executed write is remembered for longer than its caller waits, with room for a re-send');
check(BATCH_REQUEST_MAX_BYTES + MAX_RECORD_PAYLOAD_BYTES + 64 * 1024 <= MAX_FRAME_BYTES, 'a batch request (which may overshoot by one record) fits one frame');
check(REPLICATION_BATCH_RECORDS >= BATCH_REQUEST_RECORDS, 'one batch request replicates in one message per replica (bytes permitting)');
