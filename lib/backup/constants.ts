/** Named bounds of backup files (docs/backup.md). */

/** Bytes read from a backup file at a time. */
export const ASBACKUP_READ_CHUNK_BYTES = 256 * 1024;
/** Longest line of a backup file outside length-prefixed values (names, numbers, digests). */
export const ASBACKUP_LINE_MAX_BYTES = 64 * 1024;
/** Largest length-prefixed value (a string, blob, map or list bin, base64 included) a reader takes. */
export const ASBACKUP_VALUE_MAX_BYTES = 16 * 1024 * 1024;
/** Records a writer encodes before it writes them to the file. */
export const ASBACKUP_WRITE_BATCH_RECORDS = 1_024;

/** Bytes read from a Shoal backup file at a time. */
export const SHOAL_BACKUP_READ_CHUNK_BYTES = 1024 * 1024;
/** Largest section of a Shoal backup file a reader takes (a page of records, BACKUP_SCAN_MAX_BYTES of payload, is well below). */
export const SHOAL_BACKUP_SECTION_MAX_BYTES = 16 * 1024 * 1024;
/** Partitions a backup asks for at once (their pages are written in partition order). */
export const BACKUP_PARTITIONS_IN_FLIGHT = 8;
/** Partitions between two fsyncs of a backup file being written (what a crash can make a resume redo). */
export const BACKUP_SYNC_EVERY_PARTITIONS = 256;
/** Restore requests awaiting their answer at once. */
export const RESTORE_BATCHES_IN_FLIGHT = 4;
