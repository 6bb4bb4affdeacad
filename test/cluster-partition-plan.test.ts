/**
 * Migration planning: planPartitions (the allocation-free planner every node runs after each
 * view's exchange) against a straightforward reference of the same rules (the planner as it
 * was first written), on random holdings: synced or not, with or without data, shared or
 * distinct lineages, for 2..6 members and RF 1..3. Every member must compute the same plan.
 */
import { describe, expect, it } from 'vitest';
import type { MemberPartitionInfo, PartitionPlan } from '../lib/cluster/partition-plan';
import { bitIsSet, lineageEpoch, planPartitions, setBit } from '../lib/cluster/partition-plan';
import { buildPartitionMap } from '../lib/cluster/partition-map';
import { SeededRandom } from '../lib/cluster/seams';

const PARTITIONS = 512;

function compareRanks(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

function referencePlan(
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
  // Pieces (copies with data that are not synced) are merged too (long-run seed 509).
  for (const id of ordered) if (!holders.includes(id) && hasData(id)) mergeSources.push(id);
  const fillTargets = owners.filter(
    (id) => id !== actingMaster && (mergeSources.length > 0 || !bitIsSet(info(id).synced, partitionId) || lineageOf(id) !== lineage),
  );
  const settled = actingMaster === owners[0] && mergeSources.length === 0 && fillTargets.length === 0;
  return { actingMaster, owners, mergeSources, fillTargets, settled };
}


function randomInfo(random: SeededRandom, lineagePool: string[]): MemberPartitionInfo {
  const synced = new Uint8Array(PARTITIONS / 8);
  const hasData = new Uint8Array(PARTITIONS / 8);
  const lineageIndex = new Uint16Array(PARTITIONS);
  for (let p = 0; p < PARTITIONS; p++) {
    setBit(synced, p, random.nextInt(3) > 0);
    setBit(hasData, p, random.nextInt(2) > 0);
    lineageIndex[p] = random.nextInt(lineagePool.length);
  }
  return { synced, hasData, lineages: lineagePool, lineageIndex };
}

describe('partition planning', () => {
  it('planPartitions matches the reference rules on random holdings', () => {
    const random = new SeededRandom(77);
    let merges = 0;
    let settled = 0;
    for (let trial = 0; trial < 40; trial++) {
      const members = Array.from({ length: 2 + random.nextInt(5) }, (_, i) => `m${random.nextInt(1000)}-${i}`);
      const lineagePool = ['', '3/aa', '5/bb', '5/cc', '7/dd'].slice(0, 1 + random.nextInt(5));
      const infos = new Map(members.map((id) => [id, randomInfo(random, lineagePool)]));
      const map = buildPartitionMap({ succession: members, quiesced: [], replicationFactor: 1 + random.nextInt(3), partitionCount: PARTITIONS });
      const plans = planPartitions(map.owners, members, infos);
      const reordered = planPartitions(map.owners, [...members].reverse(), infos);
      for (let p = 0; p < PARTITIONS; p++) {
        const expected = referencePlan(p, map.owners[p], members, (id) => infos.get(id)!);
        const normalize = (plan: PartitionPlan) => ({ ...plan, owners: [...plan.owners], mergeSources: [...plan.mergeSources], fillTargets: [...plan.fillTargets] });
        expect(normalize(plans[p])).toEqual(normalize(expected));
        expect(normalize(reordered[p])).toEqual(normalize(expected));
        merges += expected.mergeSources.length;
        if (expected.settled) settled++;
      }
    }
    // The random holdings exercise every branch: merges, fills and settled partitions.
    expect(merges).toBeGreaterThan(1000);
    expect(settled).toBeGreaterThan(100);
  });
});
