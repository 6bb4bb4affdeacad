/**
 * The operator's admin requests for XDR and backups (docs/xdr.md, "CLI"; docs/backup.md), on
 * the admin connection the CLI opens to any node (`npx shoal xdr ...`, `npx shoal backup`,
 * `npx shoal restore`):
 *
 *   admin-xdr-state   {}                                    → db.xdr.state()
 *   admin-xdr-add     { destination, cluster? }             → { nodes: { <address>: 'ok' | error } }
 *   admin-xdr-remove  { name, cluster? }                    → { nodes: ... }
 *   admin-xdr-wait    { timeoutMs, cluster? }               → { shipped: true }
 *   admin-backup-scan { ns, set, partition, after, maxBytes } → { versions, more }
 *   admin-restore     { ns, policy, versions }              → { restored, skipped, expired }
 *
 * `cluster: true` applies the request on every member (each node ships what it masters, so a
 * destination is configured on all of them). A backup scan is answered by the partition's
 * master (another node forwards it there).
 */
import type { RecordVersion } from '../cluster/local-store';
import type { WireMessage } from '../cluster/network';
import { parseWireVersions, versionsToWire } from '../cluster/peer-checks';
import { PARTITION_COUNT } from '../constants';
import { ErrorCode, ShoalError, invalidArgument } from '../errors';
import { BACKUP_SCAN_MAX_BYTES, BACKUP_SCAN_MAX_RECORDS, XDR_RECEIVE_VERSIONS_MAX } from './constants';
import type { ClusterNode } from '../cluster/cluster';
import type { XdrDestinationOptions } from './options';
import { RESTORE_POLICIES, RestoreOutcome, RestorePolicy, XdrStore, restoreOperation } from './store';

/** What these requests need of `db.xdr` (lib/xdr/xdr.ts passes itself). */
export interface OperatorXdr {
  readonly host: { store: XdrStore; clusterNode: ClusterNode };
  state(): unknown;
  addDestination(options: XdrDestinationOptions): void;
  removeDestination(name: string): void;
  peerAddresses(): string[];
  requestPeer(address: string, type: string, fields: Record<string, unknown>): Promise<unknown>;
}

const DIGEST_BYTES = 20;

/** Answers an operator request; returns false for a message that is none of them. */
export function onOperatorAdmin(xdr: OperatorXdr, message: WireMessage, answer: (work: Promise<unknown>) => void): boolean {
  switch (message.type) {
    case 'admin-xdr-state':
      answer(Promise.resolve(xdr.state()));
      return true;
    case 'admin-xdr-add':
      answer(onEveryMember(xdr, message, () => xdr.addDestination(message.destination as never)));
      return true;
    case 'admin-xdr-remove':
      answer(onEveryMember(xdr, message, () => xdr.removeDestination(message.name as string)));
      return true;
    case 'admin-backup-scan':
      answer(backupScan(xdr, message));
      return true;
    case 'admin-restore':
      answer(restore(xdr, message));
      return true;
    default:
      return false;
  }
}

/** Runs `apply` here, and with `cluster: true` forwards the message (without it) to every other member. */
async function onEveryMember(xdr: OperatorXdr, message: WireMessage, apply: () => void): Promise<{ nodes: Record<string, string> }> {
  const nodes: Record<string, string> = {};
  const here = xdr.host.clusterNode.address;
  try {
    apply();
    nodes[here] = 'ok';
  } catch (error) {
    if (message.cluster !== true) throw error;
    nodes[here] = (error as Error).message;
  }
  if (message.cluster === true) {
    const { id: _id, type, cluster: _cluster, ...fields } = message;
    await Promise.all(
      xdr.peerAddresses().map(async (address) => {
        try {
          await xdr.requestPeer(address, type as string, fields);
          nodes[address] = 'ok';
        } catch (error) {
          nodes[address] = (error as Error).message;
        }
      }),
    );
  }
  return { nodes };
}

/**
 * One page of a partition's live records, in digest order after `after`, up to maxBytes of
 * payload (at least one record), from the partition's master.
 * @throws ShoalError INVALID_ARGUMENT for a malformed request; CLUSTER_ERROR when the master cannot be reached.
 */
async function backupScan(xdr: OperatorXdr, message: WireMessage): Promise<{ versions: unknown[]; more: boolean }> {
  const { ns, set, partition, after, maxBytes } = message;
  if (typeof ns !== 'string' || !xdr.host.store.namespaceNames().includes(ns)) throw invalidArgument(`backup scan of namespace ${JSON.stringify(ns)}, which this cluster does not have`);
  if (set !== null && set !== undefined && typeof set !== 'string') throw invalidArgument('backup scan: set must be a string or null');
  if (!Number.isInteger(partition) || (partition as number) < 0 || (partition as number) >= PARTITION_COUNT) throw invalidArgument('backup scan: partition out of range');
  if (after !== null && after !== undefined && !(after instanceof Uint8Array && after.length === DIGEST_BYTES)) throw invalidArgument('backup scan: after must be a 20-byte digest or null');
  const limit = Number.isInteger(maxBytes) && (maxBytes as number) > 0 ? Math.min(maxBytes as number, BACKUP_SCAN_MAX_BYTES) : BACKUP_SCAN_MAX_BYTES;
  const node = xdr.host.clusterNode;
  const master = node.masterOf(partition as number);
  if (master !== node.nodeId) {
    const address = node.heartbeat.peer(master)?.address;
    if (address === undefined) throw new ShoalError(ErrorCode.CLUSTER_ERROR, `backup scan: the master of partition ${String(partition)} (${master}) is not reachable from here`);
    const { id: _id, type: _type, ...fields } = message;
    return (await xdr.requestPeer(address, 'admin-backup-scan', fields)) as { versions: unknown[]; more: boolean };
  }
  const nowSeconds = Math.floor(Date.now() / 1000);
  const versions: RecordVersion[] = [];
  for await (const version of xdr.host.store.iteratePartition(ns, partition as number)) {
    if (version.tombstone || (version.voidTime !== 0 && version.voidTime <= nowSeconds)) continue;
    if (typeof set === 'string' && version.setName !== set) continue;
    if (after instanceof Uint8Array && Buffer.compare(version.digest, after) <= 0) continue;
    versions.push(version);
  }
  versions.sort((a, b) => Buffer.compare(a.digest, b.digest));
  let bytes = 0;
  let count = 0;
  while (count < versions.length && count < BACKUP_SCAN_MAX_RECORDS && (count === 0 || bytes + (versions[count]!.payload?.length ?? 0) <= limit)) bytes += versions[count++]!.payload?.length ?? 0;
  return { versions: versionsToWire(versions.slice(0, count)), more: count < versions.length };
}

/**
 * Restores a batch of versions from a backup file, each on its partition's master by the policy.
 * @throws ShoalError INVALID_ARGUMENT for a malformed request; the first item's error when any failed.
 */
async function restore(xdr: OperatorXdr, message: WireMessage): Promise<Record<RestoreOutcome, number>> {
  const { ns, policy } = message;
  if (typeof ns !== 'string' || !xdr.host.store.namespaceNames().includes(ns)) throw invalidArgument(`restore into namespace ${JSON.stringify(ns)}, which this cluster does not have`);
  if (!RESTORE_POLICIES.includes(policy as RestorePolicy)) throw invalidArgument(`restore policy must be one of ${RESTORE_POLICIES.join(', ')}`);
  const versions = parseWireVersions(message.versions, XDR_RECEIVE_VERSIONS_MAX);
  if (typeof versions === 'string') throw invalidArgument(`malformed restore: ${versions}`);
  const outcomes = await xdr.host.clusterNode.executeBatch(ns, versions.map((v) => v.digest), versions.map((v) => restoreOperation(policy as RestorePolicy, v)), false);
  const counts: Record<RestoreOutcome, number> = { restored: 0, skipped: 0, expired: 0 };
  for (const outcome of outcomes) {
    if ('error' in outcome) throw new ShoalError(ShoalError.isCode(outcome.error.code) ? outcome.error.code : ErrorCode.CLUSTER_ERROR, outcome.error.message);
    counts[outcome.value as RestoreOutcome]++;
  }
  return counts;
}
