/**
 * Loads the native addon and describes what it exports. Loading fails with an Error that
 * says how to build it when no binary for this platform exists.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Options for a PrimaryIndex; see docs/native-boundary.md and docs/index.md. */
export interface PrimaryIndexOptions {
  /** Base name of the POSIX shared-memory segments, e.g. "/shoal-1a2b3c4d5e6f7a8b-users". */
  name: string;
  /** true: POSIX shared memory (survives the process); false: private anonymous memory. */
  shared: boolean;
  /** The namespace's exchange buffer. */
  exchange: Buffer;
  /** Keep record payloads in a memory arena (memory namespaces, dataInMemory). */
  withData: boolean;
  /** The exact file mode of the shared segments it creates (0o600 to 0o777, owner read and write); default 0o600. */
  fileMode?: number;
}

export interface PrimaryIndexHeader {
  formatVersion: number;
  clean: boolean;
  signatureHigh: number;
  signatureLow: number;
  entries: number;
  createdMs: number;
}

export interface PrimaryIndexStats {
  entries: number;
  entryBytes: number;
  bucketCount: number;
  bucketBytes: number;
  sideTableBytes: number;
  dataBytes: number;
  arenaBytes: number;
}

/** The native primary index (native/primary_index.h). One thread at a time. */
export interface NativePrimaryIndex {
  /** 0 = created new, 1 = attached to existing segments, -1 = segments exist but are incompatible (left untouched). */
  open(attach: boolean): number;
  header(): PrimaryIndexHeader;
  setSignature(high: number, low: number): void;
  markClean(clean: boolean): void;
  writeMeta(meta: Buffer): void;
  readMeta(): Buffer;
  /** Key fields -> digest in the exchange; returns the partition id. */
  computeDigest(): number;
  /** Digest (or key, with READ_FROM_KEY) -> ENTRY (+ DATA with READ_COPY_DATA); data length, or -1 if absent. */
  read(options: number): number;
  /** Loads ENTRY (and DATA with READ_COPY_DATA) of a live entry id; data length or -1. */
  readEntry(entryId: number, options: number): number;
  /** Inserts or updates the entry for the exchange digest from ENTRY; fills PREVIOUS; returns the entry id. */
  upsert(options: number): number;
  /**
   * batchPut's first crossing: digests (unless given), repeated digests and index lookups for
   * `count` slots of a batch buffer (lib/native/exchange.ts BATCH_*). Changes nothing; returns count.
   * @throws RangeError for a malformed slot (nothing is looked up).
   */
  lookupBatch(batch: Buffer, count: number): number;
  /**
   * batchPut's second crossing: for every slot whose action is not BATCH_SKIP, the storage
   * record into blocks[slot block] (BATCH_WRITE_RECORD), then the index entry (with the payload
   * when storeData). Returns how many slots reached the index (BATCH_DONE marks them).
   * @throws RangeError/TypeError for a malformed slot or block (nothing written); Error code OUT_OF_SPACE.
   */
  writeBatch(batch: Buffer, count: number, blocks: Buffer[], storeData: boolean): number;
  /** Removes the entry for the exchange digest; fills PREVIOUS; returns 1 if it existed. */
  remove(): number;
  removeEntry(entryId: number): number;
  /**
   * Writes up to maxRecords scan records into DATA from entry id cursor on; returns how many; ENTRY.entryId = next cursor (0 when done).
   * setId -1 = every set. maxRecords is clamped to what DATA holds, and one call visits at most 65536 slots, so a call may
   * return 0 records before the scan is done: loop until the cursor is 0, not until a call returns 0.
   */
  scan(cursor: number, maxRecords: number, setId: number, usePartitionFilter: boolean): number;
  /**
   * Removes up to maxRemovals least recently used entries while dataBytes > targetDataBytes; returns how many.
   * targetDataBytes < 0 removes by count alone. Throws TypeError on an index opened without withData (no LRU list).
   */
  evictLru(targetDataBytes: number, maxRemovals: number): number;
  /**
   * Removes entries that expire soonest (void time != 0) while dataBytes > targetDataBytes, at most maxRemovals; returns how many.
   * targetDataBytes < 0 removes by count alone (device namespaces, whose index holds no data). O(entries): three passes.
   */
  evictSoonestExpiring(targetDataBytes: number, maxRemovals: number, nowSeconds: number, locations?: Uint32Array): number;
  /** Visits up to maxSlots slots from cursor, removing entries with 0 < void time <= now; ENTRY.entryId = next cursor (0 when done). Returns removed count. */
  sweepExpired(nowSeconds: number, cursor: number, maxSlots: number, locations?: Uint32Array): number;
  /**
   * Visits up to maxSlots slots, removing entries of setId (-1: all) with last-update < beforeMs; ENTRY.entryId = next cursor.
   * Bulk removals given `locations` write the (low, high) location of each entry they remove there, two elements each, and
   * stop early (the cursor says where to go on) rather than remove more than it holds.
   */
  truncate(setId: number, beforeMs: number, cursor: number, maxSlots: number, locations?: Uint32Array): number;
  /** Adds one to counts[setId] for each live entry of up to maxSlots slots from cursor (counts: 4,096 elements); returns the next cursor, 0 when done. */
  countBySet(counts: Float64Array, cursor: number, maxSlots: number): number;
  count(): number;
  stats(): PrimaryIndexStats;
  /** Unmaps; with drop, also unlinks every segment. Idempotent. */
  close(drop: boolean): void;
  /** Tests and debugging: walks every structure (O(entries)); returns the first broken invariant, or '' if none. */
  verify(): string;
  /**
   * The cold-start batch insert (native/primary_index.cc, PrimaryIndexWrap::InsertWinners):
   * `count` winner rows of the cold scan, their variable parts, the set ids by set position.
   * Returns how many entries it added. Absent from an addon built before it (the namespace
   * falls back to one upsert per record).
   */
  insertWinners?(winners: Buffer, variable: Buffer, count: number, setIds: Uint32Array, storeData: boolean): number;
  /**
   * The index checkpoint's image (native/index_image.cc; docs/storage.md, "Restart after a
   * crash"), written to the open file `fd` at `offset` by a worker thread while the index stays
   * in use; its structure is the index's at this call. Resolves to the CRC-32C of every piece
   * (u32 little-endian), the image's bytes and its piece count. `pieceDelayUs` (tests) slows
   * the worker down: it sleeps that long after each piece, or, with `pauseAtBytes`, after
   * copying that many bytes of each piece (an in-place update never lands in that gap).
   * @throws TypeError with data or with an image under way; rejects with IO_ERROR when a
   * write fails or the index closes first.
   */
  writeImage(fd: number, offset: number, pieceDelayUs: number, pauseAtBytes?: number): Promise<ImageWritten>;
  /** The image being written: [pieces written, pieces], or null. */
  imageProgress(): [number, number] | null;
  /**
   * Loads an image written by writeImage from the open file `fd` into this freshly created,
   * empty index on a worker thread (the index must not be used meanwhile), each piece checked
   * against `crcs`; removes the entries whose (device, block) has kept[device * stride + block]
   * === 0 and adds the others' bytes to live[...]. Resolves to the refusal ('' when loaded;
   * the index must then be reopened), whether a checksum failed, and the stale entries removed.
   */
  loadImageFile(fd: number, offset: number, bytes: number, crcs: Uint32Array, kept: Uint8Array, devices: number, stride: number, live: Float64Array): Promise<{ refusal: string; damaged: boolean; stale: number; bytesRead: number }>;
}

/**
 * What PrimaryIndex.writeImage wrote: every piece's CRC-32C (u32 little-endian), the image's
 * bytes and pieces, and the JS thread's part: the pieces it wrote itself (before a structural
 * change), how often it waited for the worker's copy of a piece, the longest wait and all of
 * them (µs).
 */
export interface ImageWritten {
  crcs: Buffer;
  bytes: number;
  pieces: number;
  jsPieces: number;
  jsWaits: number;
  jsWaitMaxUs: number;
  jsWaitTotalUs: number;
}

/**
 * HMAC-SHA-256 tags of one direction of a cluster connection (native/frame_mac.h): the OpenSSL
 * that the Node binary links, as node:crypto uses it.
 */
export interface NativeFrameMac {
  /** Tags each frame laid back to back in `frames` in place (its last FRAME_TAG_BYTES), one sequence number each. @throws RangeError if the lengths do not add up. */
  seal(frames: Buffer): void;
  /** Whether one whole received frame carries the tag of the next sequence number (constant time); counts up only if so. */
  verify(frame: Buffer): boolean;
  /** Frames sealed or verified so far. */
  readonly sequence: number;
}

export interface NativeAddon {
  ripemd160(data: Uint8Array): Buffer;
  /** The digests of many messages: message i is messages[ends[i - 1], ends[i]); digest i goes to digests[20 i, 20 i + 20). */
  ripemd160Many(messages: Uint8Array, ends: Uint32Array, digests: Uint8Array): void;
  /** CRC32C continuing from seed (the CRC of the preceding bytes; 0 to start). */
  crc32c(data: Uint8Array, seed?: number): number;
  /** Tests: the table-driven CRC32C path, to compare with the SSE4.2 one. */
  crc32cPortable(data: Uint8Array, seed?: number): number;
  /** Whether crc32c() uses the SSE4.2 instruction on this CPU. */
  crc32cHardware: boolean;
  /** Opens (creating) a lock file and takes an exclusive flock; returns the fd. Throws code LOCKED if held. */
  /** Opens (creating with exactly `mode`, default 0o600) and exclusively flocks a file; returns its descriptor. @throws LOCKED, IO_ERROR. */
  lockFile(path: string, mode?: number): number;
  unlockFile(fd: number): void;
  PrimaryIndex: new (options: PrimaryIndexOptions) => NativePrimaryIndex;
  /** Absent from an addon built before it. @throws RangeError for a key outside 16..64 bytes, Error if OpenSSL is unavailable. */
  FrameMac?: new (key: Buffer) => NativeFrameMac;
  /** Whether this Node binary exports the OpenSSL functions FrameMac needs. */
  frameMacAvailable?: boolean;
  /** Unlinks every segment of an index base name; returns how many were removed. */
  unlinkIndexSegments(name: string): number;
  // The storage engine's block device is described in lib/storage/native-device.ts.
  BlockDevice: new (...args: never[]) => unknown;
}

let loaded: NativeAddon | undefined;

/**
 * node-gyp-build's resolver: the package's own build (build/Release, made by `npm install` from
 * source or `npx node-gyp rebuild`) when there is one, else the prebuilt binary for this
 * platform in prebuilds/<platform>-<arch>/ (made by `npm run prebuildify`, shipped in the
 * tarball). It has no type declarations of its own.
 */
const nodeGypBuild = require('node-gyp-build/node-gyp-build.js') as { path(root: string): string };

/** The package root: this file is lib/native/addon.ts in a checkout, dist/lib/native/addon.js once compiled. */
function packageRoot(): string {
  const fromSource = path.join(__dirname, '..', '..');
  return fs.existsSync(path.join(fromSource, 'package.json')) ? fromSource : path.join(fromSource, '..');
}

/**
 * Returns the path of the addon binary this process loads (child processes in tests load the same one).
 * @throws Error when neither a local build nor a prebuilt binary for this platform exists.
 */
export function addonPath(): string {
  return nodeGypBuild.path(packageRoot());
}

/**
 * Returns the addon, loading it on first use.
 * @throws Error with a build hint when neither a local build nor a prebuilt binary for this
 *   platform exists, or when the one found does not load.
 */
export function addon(): NativeAddon {
  if (loaded !== undefined) return loaded;
  try {
    loaded = require(addonPath()) as NativeAddon;
    return loaded;
  } catch (error) {
    throw new Error(
      `shoal: no native addon loads here (${process.platform}-${process.arch}, Node ${process.versions.node}). ` +
        'Prebuilt binaries ship for linux-x64 with glibc; elsewhere the addon is built from source when the ' +
        'install script runs: `npm rebuild shoal` with g++, make and python3 available ' +
        `(an install with --ignore-scripts skips that build). Looked in ${packageRoot()}.`,
      { cause: error },
    );
  }
}
