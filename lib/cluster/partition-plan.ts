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
  mergeSources: readonly string[];
  /** Owners the acting master must send its (merged) copy to. */
  fillTargets: readonly string[];
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
  const sorted = [...members].sort();
  return planOne(partitionId, owners, new PlanInputs(sorted, sorted.map(info)), new PlanScratch(sorted.length));
}

/**
 * Plans every partition at once (what a node does after each view's exchange): the same
 * rules as planPartition, without per-partition closures or maps. `infos` is keyed by member
 * id and must hold every member.
 */
export function planPartitions(
  owners: readonly (readonly string[])[],
  members: readonly string[],
  infos: ReadonlyMap<string, MemberPartitionInfo>,
): PartitionPlan[] {
  const sorted = [...members].sort();
  const inputs = new PlanInputs(sorted, sorted.map((id) => infos.get(id)!));
  const scratch = new PlanScratch(sorted.length);
  const plans: PartitionPlan[] = new Array(owners.length);
  // A plan depends only on the owner list and, per member, (synced, has data, lineage): most
  // partitions share their inputs with many others, so equal inputs share one plan object
  // (plans are never mutated). The key packs those inputs into a safe integer when they fit.
  const lineageBits = Math.max(1, Math.ceil(Math.log2(inputs.epochs.length + 1)));
  const memberBits = 2 + lineageBits;
  const keyable = sorted.length * memberBits + OWNER_LIST_KEY_BITS <= 52;
  const ownerListIds = new Map<readonly string[], number>();
  const cache = new Map<number, PartitionPlan>();
  for (let p = 0; p < owners.length; p++) {
    let ownerListId = ownerListIds.get(owners[p]);
    if (ownerListId === undefined && ownerListIds.size < 1 << OWNER_LIST_KEY_BITS) ownerListIds.set(owners[p], (ownerListId = ownerListIds.size));
    if (!keyable || ownerListId === undefined) {
      plans[p] = planOne(p, owners[p], inputs, scratch);
      continue;
    }
    const key = inputKey(p, ownerListId, inputs, memberBits);
    let plan = cache.get(key);
    if (plan === undefined) cache.set(key, (plan = planOne(p, owners[p], inputs, scratch)));
    plans[p] = plan;
  }
  return plans;
}

/** Bits of the plan-sharing key that number distinct owner lists. */
const OWNER_LIST_KEY_BITS = 12;

/** Packs partition `p`'s planning inputs (owner list id; per member synced, has data, lineage id) into one integer. */
function inputKey(p: number, ownerListId: number, inputs: PlanInputs, memberBits: number): number {
  const byte = p >> 3;
  const mask = 1 << (p & 7);
  let key = ownerListId;
  let scale = 2 ** OWNER_LIST_KEY_BITS;
  for (let m = 0; m < inputs.reports.length; m++) {
    const report = inputs.reports[m];
    const synced = (report.synced[byte] & mask) !== 0 ? 1 : 0;
    const hasData = (report.hasData[byte] & mask) !== 0 ? 2 : 0;
    const lineage = synced === 1 ? (inputs.lineageIds[m][report.lineageIndex[p]] ?? inputs.emptyLineage) : 0;
    key += (synced + hasData + lineage * 4) * scale;
    scale *= 2 ** memberBits;
  }
  return key;
}

/**
 * The members' reports with every lineage string replaced by a small integer, the same for
 * equal strings across members, and each lineage's epoch parsed once: the per-partition loop
 * then compares integers.
 */
class PlanInputs {
  /** Per member (same order as `members`): lineage id of each entry of its report's lineage table. */
  readonly lineageIds: Int32Array[];
  /** Epoch of each lineage id. */
  readonly epochs: number[] = [];
  /** Lineage id of '' (a report's index past its table reads as ''). */
  readonly emptyLineage: number;
  constructor(readonly members: readonly string[], readonly reports: readonly MemberPartitionInfo[]) {
    const ids = new Map<string, number>();
    const idOf = (lineage: string): number => {
      let id = ids.get(lineage);
      if (id === undefined) {
        id = ids.size;
        ids.set(lineage, id);
        this.epochs.push(lineageEpoch(lineage));
      }
      return id;
    };
    this.emptyLineage = idOf('');
    this.lineageIds = reports.map((report) => Int32Array.from(report.lineages, idOf));
  }
}

/** Reused per-partition working arrays (members in preference order and their reports). */
class PlanScratch {
  readonly ordered: string[];
  readonly reports: MemberPartitionInfo[];
  readonly reportLineageIds: Int32Array[];
  readonly lineages: number[];
  readonly group: number[];
  constructor(size: number) {
    this.ordered = new Array(size);
    this.reports = new Array(size);
    this.reportLineageIds = new Array(size);
    this.lineages = new Array(size).fill(0);
    this.group = new Array(size).fill(0);
  }
}

/**
 * Candidates in preference order: owners in map order, then the other members by id. A copy
 * is grouped with the synced copies of the same lineage; the acting master comes from the best
 * group: one that holds data, then the newest epoch, then the most holders, then the group whose
 * first holder comes first in preference.
 */
function planOne(
  partitionId: number,
  owners: readonly string[],
  inputs: PlanInputs,
  scratch: PlanScratch,
): PartitionPlan {
  const { ordered, reports, reportLineageIds, lineages, group } = scratch;
  const sortedMembers = inputs.members;
  let count = 0;
  for (const owner of owners) {
    const index = sortedMembers.indexOf(owner);
    ordered[count] = owner;
    reports[count] = inputs.reports[index];
    reportLineageIds[count] = inputs.lineageIds[index];
    count++;
  }
  for (let i = 0; i < sortedMembers.length; i++) {
    if (owners.includes(sortedMembers[i])) continue;
    ordered[count] = sortedMembers[i];
    reports[count] = inputs.reports[i];
    reportLineageIds[count] = inputs.lineageIds[i];
    count++;
  }
  const byte = partitionId >> 3;
  const mask = 1 << (partitionId & 7);
  let holders = 0;
  for (let i = 0; i < count; i++) {
    const report = reports[i];
    if ((report.synced[byte] & mask) === 0) {
      group[i] = -1;
      continue;
    }
    holders++;
    lineages[i] = reportLineageIds[i][report.lineageIndex[partitionId]] ?? inputs.emptyLineage;
    // Group leader: the first holder (in preference order) of the same lineage.
    let leader = i;
    for (let j = 0; j < i; j++) {
      if (group[j] === j && lineages[j] === lineages[i]) {
        leader = j;
        break;
      }
    }
    group[i] = leader;
  }
  if (holders === 0) {
    // No complete copy survives: the new master collects whatever pieces exist.
    const actingMaster = owners[0];
    let mergeSources: string[] | undefined;
    for (let i = 0; i < count; i++) {
      if (ordered[i] !== actingMaster && (reports[i].hasData[byte] & mask) !== 0) (mergeSources ??= []).push(ordered[i]);
    }
    if (mergeSources === undefined) return { actingMaster, owners, mergeSources: NONE, fillTargets: NONE, settled: true };
    return { actingMaster, owners, mergeSources, fillTargets: owners.filter((id) => id !== actingMaster), settled: false };
  }
  // Rank of a group, compared in order: holds data, newest epoch, most holders, earliest leader.
  let best = -1;
  let bestData = 0;
  let bestEpoch = 0;
  let bestSize = 0;
  for (let leader = 0; leader < count; leader++) {
    if (group[leader] !== leader) continue;
    let size = 0;
    let data = 0;
    for (let i = leader; i < count; i++) {
      if (group[i] !== leader) continue;
      size++;
      if ((reports[i].hasData[byte] & mask) !== 0) data = 1;
    }
    const epoch = inputs.epochs[lineages[leader]];
    let better: boolean;
    if (best === -1) better = true;
    else if (data !== bestData) better = data > bestData;
    else if (epoch !== bestEpoch) better = epoch > bestEpoch;
    else better = size > bestSize;
    if (better) {
      best = leader;
      bestData = data;
      bestEpoch = epoch;
      bestSize = size;
    }
  }
  const actingMaster = ordered[best];
  const lineage = lineages[best];
  let mergeSources: string[] | undefined;
  for (let leader = 0; leader < count; leader++) {
    if (group[leader] !== leader || leader === best) continue;
    for (let i = leader; i < count; i++) {
      if (group[i] === leader && (reports[i].hasData[byte] & mask) !== 0) {
        (mergeSources ??= []).push(ordered[i]);
        break;
      }
    }
  }
  // Every copy with data that is not synced is merged too: a piece may hold acknowledged
  // writes no synced copy has (it received every write of a view in which the partition
  // never settled), and it is dropped after settle.
  for (let i = 0; i < count; i++) {
    if (group[i] === -1 && (reports[i].hasData[byte] & mask) !== 0) (mergeSources ??= []).push(ordered[i]);
  }
  let fillTargets: string[] | undefined;
  for (let k = 0; k < owners.length; k++) {
    // Owners come first in `ordered`, so owner k is candidate k.
    if (owners[k] === actingMaster) continue;
    if (mergeSources !== undefined || group[k] === -1 || lineages[k] !== lineage) (fillTargets ??= []).push(owners[k]);
  }
  const settled = actingMaster === owners[0] && mergeSources === undefined && fillTargets === undefined;
  return { actingMaster, owners, mergeSources: mergeSources ?? NONE, fillTargets: fillTargets ?? NONE, settled };
}

/** The shared empty list of plans with no merge sources or no fill targets (never mutated). */
const NONE: readonly string[] = Object.freeze([]);
