/**
 * Named bounds and defaults of cross-cluster shipping (XDR, docs/xdr.md), in one place, with
 * their relations checked at load time (STYLE.md).
 */

import { MAX_ADMIN_FRAME_BYTES } from '../cluster/constants';

/** Records waiting to ship to one destination (coalesced per record) before partitions fall back to a re-scan. */
export const XDR_PENDING_RECORDS_MAX = 200_000;
/** Records per ship message. */
export const XDR_BATCH_RECORDS = 1_024;
/**
 * Encoded bytes of record versions per ship message. Ship messages travel on an admin
 * connection of the destination's fabric, whose frames are at most MAX_ADMIN_FRAME_BYTES
 * (64 KiB): a record larger than this cannot ship and is counted in `tooLarge`.
 */
export const XDR_BATCH_MAX_BYTES = 56 * 1024;
/** Ship messages awaiting their answer at once, per destination. */
export const XDR_BATCHES_IN_FLIGHT = 4;
/** Time a ship message may wait for its answer before the connection is dropped and the batch retried. */
export const XDR_SHIP_TIMEOUT_MS = 10_000;
/** First delay before reconnecting to a destination that is down; doubles at each failure. */
export const XDR_RETRY_MIN_MS = 100;
/** Longest delay between reconnection attempts. */
export const XDR_RETRY_MAX_MS = 2_000;
/**
 * How far behind "now" a partition's shipping position stays when nothing of it is pending:
 * a write is stamped with its last-update time a moment before XDR sees it, and the position
 * must never pass a write that has not been queued yet.
 */
export const XDR_CLOCK_MARGIN_MS = 2_000;
/** Time between two durable saves of the shipping positions. */
export const XDR_POSITION_SAVE_INTERVAL_MS = 200;
/** Time between two polls of the cluster's peers for their shipping positions (takeover floors). */
export const XDR_PEER_POLL_INTERVAL_MS = 500;
/** Time between two checks of which partitions this node masters (besides cluster 'change' events). */
export const XDR_OWNERSHIP_CHECK_INTERVAL_MS = 500;
/** Records a re-scan queues before it yields to the event loop. */
export const XDR_SCAN_SLICE_RECORDS = 512;
/** A re-scan starts only while the pending records are below this (so shipping keeps pace). */
export const XDR_SCAN_START_PENDING_MAX = XDR_PENDING_RECORDS_MAX / 2;
/** Most destinations one node ships to. */
export const XDR_DESTINATIONS_MAX = 16;
/** Longest destination name (UTF-8 bytes). */
export const XDR_NAME_MAX_BYTES = 64;
/** Versions a receiver takes in one ship message (a sender sends at most XDR_BATCH_RECORDS). */
export const XDR_RECEIVE_VERSIONS_MAX = 1_024;
/** Removals applied from other clusters that a destination node remembers (so an older version shipped late cannot undo one). */
export const XDR_RECENT_REMOVALS_MAX = 200_000;
/** Seeds per destination. */
export const XDR_SEEDS_MAX = 64;
/** Samples of shipping lag kept for lagMs (the newest). */
export const XDR_LAG_SAMPLES = 1_024;

function check(condition: boolean, message: string): void {
  if (!condition) throw new Error(`lib/xdr/constants.ts: ${message}`);
}

check(XDR_BATCH_RECORDS <= XDR_RECEIVE_VERSIONS_MAX, 'a receiver takes every batch a sender sends');
check(XDR_BATCH_MAX_BYTES + 4 * 1024 <= MAX_ADMIN_FRAME_BYTES, 'a ship message fits an admin frame (MAX_ADMIN_FRAME_BYTES)');
check(XDR_RETRY_MIN_MS < XDR_RETRY_MAX_MS, 'the backoff grows');
check(XDR_SCAN_START_PENDING_MAX + XDR_SCAN_SLICE_RECORDS < XDR_PENDING_RECORDS_MAX, 'a scan slice fits the pending bound');

/** Size past which the removal journal is rewritten without the removals every destination has passed. */
export const XDR_REMOVAL_JOURNAL_COMPACT_BYTES = 8 * 1024 * 1024;
/** Removals the journal keeps (in memory and on disk); past it the oldest are dropped and their partitions re-synced in full. */
export const XDR_REMOVALS_KEPT_MAX = 500_000;

/** Payload bytes one backup scan reply carries at most (replies to the operator's client may exceed the admin frame bound; requests may not). */
export const BACKUP_SCAN_MAX_BYTES = 1024 * 1024;
/** Payload bytes per part of a record too large for one ship message (lib/xdr/large-records.ts). */
export const XDR_PART_BYTES = 48 * 1024;
/** Large-record transfers a receiving node keeps parts of at once. */
export const XDR_PART_TRANSFERS_MAX = 8;
/** Time after which a large-record transfer without a new part is dropped (the sender retries the record). */
export const XDR_PART_TRANSFER_IDLE_MS = 60_000;
/** Longest a receiving node holds a shipped truncate whose cut is ahead of its clock (lib/xdr/truncates.ts). */
export const XDR_TRUNCATE_WAIT_MAX_MS = 8_000;
check(XDR_PART_BYTES + 4 * 1024 <= MAX_ADMIN_FRAME_BYTES, 'a part fits an admin frame');
check(XDR_TRUNCATE_WAIT_MAX_MS < XDR_SHIP_TIMEOUT_MS, 'a held truncate answers before the sender gives up on it');

/** Records one backup scan reply carries at most. */
export const BACKUP_SCAN_MAX_RECORDS = 20_000;
