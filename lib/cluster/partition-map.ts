/**
 * The partition map (docs/cluster.md, "Partition map"): a pure function of the succession
 * list, the quiesced set and the replication factor, so every node computes the identical map
 * with no messages.
 *
 * 1. Rendezvous hashing: each partition's node order is the nodes sorted by a hash of
 *    (node id, partition id), highest first; quiesced nodes go last. The first
 *    `replicationFactor` nodes hold copies: a membership change moves only the copies of the
 *    partitions whose top nodes changed, close to the minimum 1/N.
 * 2. Master balancing: pure rendezvous leaves master counts uneven (at N = 8 about +-4%
 *    standard deviation, so max/mean often exceeds 1.10). A deterministic pass swaps the master
 *    with one of the partition's own replicas when the master holds more than
 *    ceil(partitions / active nodes) masters and the replica fewer. A swap within the copy
 *    set moves no data, only the role, so movement stays at the rendezvous minimum.
 */
import { MASTER_BALANCE_MAX_PASSES, PARTITION_COUNT } from './constants';

export interface PartitionMapInput {
  /** Cluster members (any order; the map does not depend on it). */
  succession: readonly string[];
  /** Members that are quiesced: they sort last in every partition. */
  quiesced: readonly string[];
  replicationFactor: number;
  /** Partition count; only tests change it. */
  partitionCount?: number;
}

export interface PartitionMap {
  /** Per partition: the nodes holding a copy, master first (length = effective RF). */
  readonly owners: readonly (readonly string[])[];
  readonly replicationFactor: number;
  readonly nodes: readonly string[];
}

/** 32-bit FNV-1a of a string's UTF-16 code units, then a murmur3 finalizer. */
export function hashNodeId(nodeId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < nodeId.length; i++) {
    hash ^= nodeId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return finalize(hash);
}

function finalize(value: number): number {
  let h = value >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Rendezvous score of a node (given its id hash) for a partition. */
export function rendezvousScore(nodeHash: number, partitionId: number): number {
  return finalize(nodeHash ^ finalize(Math.imul(partitionId + 1, 0x9e3779b1)));
}

/**
 * Computes the partition map. Throws RangeError on an empty succession or a replication
 * factor below 1. Deterministic: the same input gives the same map on every node.
 */
export function computePartitionMap(input: PartitionMapInput): PartitionMap {
  const key = `${input.partitionCount ?? PARTITION_COUNT}|${input.replicationFactor}|${[...input.succession].sort().join(',')}|${[...input.quiesced].sort().join(',')}`;
  const cached = recentMaps.get(key);
  if (cached !== undefined) return cached;
  const map = buildPartitionMap(input);
  // The map is a pure function of its input, and views often flap between the same member
  // sets (a node isolated and back), so the last few maps are kept. Maps are never mutated.
  if (recentMaps.size >= RECENT_MAPS_KEPT) recentMaps.delete(recentMaps.keys().next().value!);
  recentMaps.set(key, map);
  return map;
}

/** How many recently computed partition maps are kept (each about 4096 small arrays). */
const RECENT_MAPS_KEPT = 8;
const recentMaps = new Map<string, PartitionMap>();

/** computePartitionMap without the cache (for tests that must compare fresh computations). */
export function buildPartitionMap(input: PartitionMapInput): PartitionMap {
  const partitionCount = input.partitionCount ?? PARTITION_COUNT;
  if (input.succession.length === 0) throw new RangeError('partition map: empty succession list');
  if (!(input.replicationFactor >= 1)) throw new RangeError('partition map: replication factor must be >= 1');
  const nodes = [...new Set(input.succession)].sort();
  let quiesced = new Set(input.quiesced.filter((id) => nodes.includes(id)));
  // If every node is quiesced, quiesce means nothing: someone must own the data.
  if (quiesced.size === nodes.length) quiesced = new Set();
  const replicationFactor = Math.min(input.replicationFactor, nodes.length);
  const hashes = nodes.map(hashNodeId);
  const owners: string[][] = new Array(partitionCount);
  const order = nodes.map((_, index) => index);
  const scores = new Array<number>(nodes.length);
  for (let partition = 0; partition < partitionCount; partition++) {
    for (let i = 0; i < nodes.length; i++) scores[i] = rendezvousScore(hashes[i], partition);
    order.sort((a, b) => {
      const qa = quiesced.has(nodes[a]) ? 1 : 0;
      const qb = quiesced.has(nodes[b]) ? 1 : 0;
      if (qa !== qb) return qa - qb;
      if (scores[a] !== scores[b]) return scores[b] - scores[a];
      return nodes[a] < nodes[b] ? -1 : 1;
    });
    owners[partition] = order.slice(0, replicationFactor).map((index) => nodes[index]);
  }
  balanceMasters(owners, nodes.filter((id) => !quiesced.has(id)), partitionCount);
  // Partitions with the same owners in the same order share one (never mutated) list: a map
  // holds a few dozen distinct lists, and the planner recognises equal ones by identity.
  const shared = new Map<string, string[]>();
  for (let partition = 0; partition < partitionCount; partition++) {
    const key = owners[partition].join('\u0000');
    const list = shared.get(key);
    if (list === undefined) shared.set(key, owners[partition]);
    else owners[partition] = list;
  }
  return { owners, replicationFactor, nodes };
}

/** Swaps master and replica roles within copy sets until no active node exceeds the cap. */
function balanceMasters(owners: string[][], activeNodes: string[], partitionCount: number): void {
  if (activeNodes.length < 2 || owners[0].length < 2) return;
  const cap = Math.ceil(partitionCount / activeNodes.length);
  const counts = new Map<string, number>(activeNodes.map((id) => [id, 0]));
  for (const list of owners) counts.set(list[0], (counts.get(list[0]) ?? 0) + 1);
  for (let pass = 0; pass < MASTER_BALANCE_MAX_PASSES; pass++) {
    let moved = false;
    for (let partition = 0; partition < partitionCount; partition++) {
      const list = owners[partition];
      const master = list[0];
      if (counts.get(master)! <= cap) continue;
      // Hand the master role to the first replica (in rendezvous order) below the cap.
      for (let k = 1; k < list.length; k++) {
        const candidate = counts.get(list[k]);
        if (candidate === undefined || candidate >= cap) continue;
        [list[0], list[k]] = [list[k], list[0]];
        counts.set(master, counts.get(master)! - 1);
        counts.set(list[0], candidate + 1);
        moved = true;
        break;
      }
    }
    if (!moved) break;
  }
}

/** Master partition counts per node. */
export function masterCounts(map: PartitionMap): Map<string, number> {
  const counts = new Map<string, number>(map.nodes.map((id) => [id, 0]));
  for (const list of map.owners) counts.set(list[0], counts.get(list[0])! + 1);
  return counts;
}

/** Copies in `next` that `previous` did not have on that node, as a fraction of all copies in `next`. */
export function copiesMovedFraction(previous: PartitionMap, next: PartitionMap): number {
  let moved = 0;
  let total = 0;
  for (let partition = 0; partition < next.owners.length; partition++) {
    const before = new Set(previous.owners[partition]);
    for (const node of next.owners[partition]) {
      total++;
      if (!before.has(node)) moved++;
    }
  }
  return total === 0 ? 0 : moved / total;
}
