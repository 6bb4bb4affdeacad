/**
 * Migration planning (docs/cluster.md, "Migrations"): after every new cluster view, members
 * exchange what they hold per partition, and each computes the same plan for every partition
 * from the same inputs: who acts as master until the partition has moved, who must merge
 * their copy into it first, and which new owners it must fill.
 *
 * A node's copy of a partition is "synced" when it was a complete owner copy at the end of
 * some view; its "lineage" is that view's cluster key. Two synced copies of the same lineage
 * are identical (every write of that view was replicated to every owner), so only copies of
 * differing lineages (split brain, a returning node) need merging.
 */
import { PARTITION_COUNT } from './constants';

/** What one member reports about its copies, for one view. */
export interface MemberPartitionInfo {
  /** Bit p set: this member's copy of partition p is synced. */
  synced: Uint8Array;
  /** Bit p set: this member has at least one record of partition p. */
  hasData: Uint8Array;
  /** Lineage of partition p = lineages[lineageIndex[p]] (meaningful where synced). */
  lineages: string[];
  lineageIndex: Uint16Array;
}

export interface PartitionPlan {
  /** Serves the partition (reads, writes) until it has settled on its new owners. */
  actingMaster: string;
  /** Final owners, master first (from the partition map). */
  owners: readonly string[];
  /** Members whose copy differs in lineage: they send it to the acting master first. */
  mergeSources: string[];
  /** Owners the acting master must send its (merged) copy to. */
  fillTargets: string[];
  /** True when nothing has to move: the owners hold identical synced copies. */
  settled: boolean;
}

/** A lineage names the view a copy was complete in: "<epoch>/<cluster key>". */
export function lineageOf(epoch: number, clusterKey: string): string {
  return `${epoch}/${clusterKey}`;
}

export function lineageEpoch(lineage: string): number {
  const epoch = Number(lineage.slice(0, lineage.indexOf('/')));
  return Number.isSafeInteger(epoch) ? epoch : -1;
}

function compareRanks(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

export function bitIsSet(bits: Uint8Array, index: number): boolean {
  return (bits[index >> 3] & (1 << (index & 7))) !== 0;
}

export function setBit(bits: Uint8Array, index: number, value: boolean): void {
  if (value) bits[index >> 3] |= 1 << (index & 7);
  else bits[index >> 3] &= ~(1 << (index & 7));
}

export function emptyBitmap(partitionCount = PARTITION_COUNT): Uint8Array {
  return new Uint8Array(Math.ceil(partitionCount / 8));
}

/**
 * Plans one partition. `members`: the view's succession; `info(id)`: each member's report.
 * Deterministic: depends only on its arguments.
 */
export function planPartition(
  partitionId: number,
  owners: readonly string[],
  members: readonly string[],
  info: (nodeId: string) => MemberPartitionInfo,
): PartitionPlan {
  const ownerSet = new Set(owners);
  // Candidates in preference order: owners in map order, then other members by id.
  const ordered = [...owners, ...[...members].filter((id) => !ownerSet.has(id)).sort()];
  const lineageOf = (id: string): string => {
    const report = info(id);
    return report.lineages[report.lineageIndex[partitionId]] ?? '';
  };
  const holders = ordered.filter((id) => bitIsSet(info(id).synced, partitionId));
  const hasData = (id: string): boolean => bitIsSet(info(id).hasData, partitionId);
  if (holders.length === 0) {
    // No complete copy survives: the new master collects whatever pieces exist.
    const actingMaster = owners[0];
    const mergeSources = ordered.filter((id) => id !== actingMaster && hasData(id));
    const fillTargets = mergeSources.length > 0 ? owners.filter((id) => id !== actingMaster) : [];
    return { actingMaster, owners, mergeSources, fillTargets, settled: mergeSources.length === 0 };
  }
  // Group synced copies by lineage; the acting master comes from the best group: one that
  // holds data, then the largest, then the one whose first holder comes first in preference.
  const groups = new Map<string, string[]>();
  for (const id of holders) {
    const key = lineageOf(id);
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [id]);
    else group.push(id);
  }
  // Rank: holds data, newest epoch, most holders, earliest in preference order.
  const rank = (key: string, group: string[]): number[] => [group.some(hasData) ? 1 : 0, lineageEpoch(key), group.length, -ordered.indexOf(group[0])];
  let best: string[] | undefined;
  let bestRank: number[] = [];
  for (const [key, group] of groups) {
    const r = rank(key, group);
    if (best === undefined || compareRanks(r, bestRank) > 0) {
      best = group;
      bestRank = r;
    }
  }
  const actingMaster = best![0];
  const lineage = lineageOf(actingMaster);
  const mergeSources: string[] = [];
  for (const [key, group] of groups) {
    if (key === lineage) continue;
    const source = group.find(hasData);
    if (source !== undefined) mergeSources.push(source);
  }
  const fillTargets = owners.filter(
    (id) => id !== actingMaster && (mergeSources.length > 0 || !bitIsSet(info(id).synced, partitionId) || lineageOf(id) !== lineage),
  );
  const settled = actingMaster === owners[0] && mergeSources.length === 0 && fillTargets.length === 0;
  return { actingMaster, owners, mergeSources, fillTargets, settled };
}
