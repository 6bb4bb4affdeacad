/**
 * Cluster mode entry points for the Db (docs/cluster.md). The Db builds a LocalStore over its
 * namespaces and calls startCluster; the returned ClusterNode is `db.cluster`.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ClusterOptions } from './cluster';
import { ClusterNode } from './cluster';
import type { LocalStore } from './local-store';
import type { Logger } from './seams';
import { consoleLogger, realRuntime } from './seams';
import { DEFAULT_FILE_MODE } from '../storage/constants';
import { TcpNetwork } from './tcp-network';

export { ClusterNode, resolveClusterOptions } from './cluster';
export { Cluster } from './cluster-api';
export { AdminClient } from './admin-client';
export type { AdminRequest } from './admin-client';
export type { AdminState, ClusterOptions, ClusterState, ResolvedClusterOptions } from './cluster';
export type { ClusterRequest, LocalResult, LocalStore, RecordVersion, WireError } from './local-store';
export { partitionOf } from './data-plane';
export type { Logger } from './seams';
export type { TlsSettings } from './network';

/** File in dataDir holding the generated node id. */
export const NODE_ID_FILE = 'cluster-node-id';

/**
 * The node id persisted in `dataDir`, created (16 random hex characters, a file of mode
 * `fileMode`) on first use.
 * @throws Error if dataDir cannot be read or written.
 */
export function loadOrCreateNodeId(dataDir: string, fileMode = DEFAULT_FILE_MODE): string {
  const file = path.join(dataDir, NODE_ID_FILE);
  try {
    const existing = fs.readFileSync(file, 'utf8').trim();
    if (existing.length > 0) return existing;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const nodeId = crypto.randomBytes(8).toString('hex');
  fs.mkdirSync(dataDir, { recursive: true });
  // Exactly fileMode whatever the umask, like every file the Db creates (docs/storage.md, "Files and modes").
  fs.writeFileSync(file, `${nodeId}\n`, { mode: fileMode });
  fs.chmodSync(file, fileMode);
  return nodeId;
}

/**
 * Starts a cluster node over real TCP with real timers. `options.nodeId` may be omitted when
 * `dataDir` is given (a generated id is persisted there).
 * @throws TypeError/RangeError for bad options; the listen error if the port is taken.
 */
export async function startCluster(
  options: Omit<ClusterOptions, 'nodeId'> & { nodeId?: string },
  store: LocalStore,
  settings: { dataDir?: string; fileMode?: number; logger?: Logger; requestTimeoutMs?: number; describe?: () => unknown } = {},
): Promise<ClusterNode> {
  let nodeId = options.nodeId;
  if (nodeId === undefined) {
    if (settings.dataDir === undefined) throw new TypeError('cluster.nodeId is required without a dataDir');
    nodeId = loadOrCreateNodeId(settings.dataDir, settings.fileMode);
  }
  const logger = settings.logger ?? consoleLogger(nodeId, 'warn');
  const node = new ClusterNode(
    { ...options, nodeId },
    { runtime: realRuntime(logger), network: new TcpNetwork(logger), store, requestTimeoutMs: settings.requestTimeoutMs, describe: settings.describe },
  );
  await node.start();
  return node;
}
