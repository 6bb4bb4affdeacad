/** Named bounds of backup files (docs/backup.md). */

/** Bytes read from a backup file at a time. */
export const ASBACKUP_READ_CHUNK_BYTES = 256 * 1024;
/** Longest line of a backup file outside length-prefixed values (names, numbers, digests). */
export const ASBACKUP_LINE_MAX_BYTES = 64 * 1024;
/** Largest length-prefixed value (a string, blob, map or list bin, base64 included) a reader takes. */
export const ASBACKUP_VALUE_MAX_BYTES = 16 * 1024 * 1024;
/** Records a writer encodes before it writes them to the file. */
export const ASBACKUP_WRITE_BATCH_RECORDS = 1_024;
