/**
 * What a namespace is opened with: its options resolved once by lib/options.ts (every default
 * filled in), and the Db-wide settings it reads. Kept here, below lib/options.ts, so the
 * namespace layer depends on nothing above it.
 */

/** A namespace's options with every default filled in. */
export interface NamespaceConfig {
  name: string;
  kind: 'memory' | 'device';
  maxBytes: number;
  defaultTtl: number;
  evictPolicy: 'lru' | 'ttl' | 'none';
  highWaterPct: number;
  stopWritesPct: number;
  maxRecordBytes: number;
  storeKey: boolean;
  conflictResolution: 'generation' | 'lastUpdateTime';
  nsupPeriodMs: number;
  device: ResolvedDeviceOptions | undefined;
}

export interface ResolvedDeviceOptions {
  paths: string[];
  sizeBytes: number;
  directIo: 'auto' | 'required' | 'off';
  /** undefined: the SHOAL_IO_ENGINE environment variable, else 'threads'. */
  ioEngine: 'threads' | 'io_uring' | undefined;
  commitToDevice: boolean;
  dataInMemory: boolean;
  writeBlockBytes: number;
  flushMaxMs: number;
  defragLwmPct: number;
  repairDevices: boolean;
}

/** The Db-wide settings a namespace reads (lib/options.ts DbConfig has them all). */
export interface DataDirConfig {
  dataDir: string;
  sharedMemoryIndex: boolean;
  /** The exact mode of the files Shoal creates (resolveFileMode). */
  fileMode: number;
}
