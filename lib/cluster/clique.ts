/**
 * Clique computation (docs/cluster.md, "Who may form a cluster"): the largest set of nodes,
 * found greedily and deterministically, in which every pair hears each other. Only such a
 * set may form a cluster, so a node that sees only part of the cluster is excluded.
 */

/** Compares node ids for succession order: descending (the principal, the highest id, first). */
export function compareNodeIdsDescending(a: string, b: string): number {
  return a < b ? 1 : a > b ? -1 : 0;
}

/**
 * Returns the clique containing `selfId`, sorted descending (principal first).
 *
 * `selfHears`: peers this node hears from. `heardBy(x)`: peers that node x reported hearing
 * from (undefined when unknown). Candidates are this node and the peers it hears; while some
 * pair does not hear each other both ways, the candidate with the fewest mutual links is
 * removed (ties: a node outside `incumbents`, the current view, then the lowest id), never
 * this node itself. A healthy member is thus not evicted while a newcomer is still being
 * discovered: views disagree, rounds are refused, and the newcomer waits until it is
 * mutually connected to everyone. Every node given the same inputs
 * computes the same result.
 */
export function computeClique(
  selfId: string,
  selfHears: ReadonlySet<string>,
  heardBy: (nodeId: string) => ReadonlySet<string> | undefined,
  incumbents: ReadonlySet<string> = new Set(),
): string[] {
  const hears = (x: string): ReadonlySet<string> | undefined => (x === selfId ? selfHears : heardBy(x));
  const members = new Set<string>([selfId, ...selfHears]);
  const mutual = (x: string, y: string): boolean => hears(x)?.has(y) === true && hears(y)?.has(x) === true;
  for (;;) {
    let worst: string | undefined;
    let worstDegree = Infinity;
    let complete = true;
    const ordered = [...members].sort();
    for (const x of ordered) {
      let degree = 0;
      for (const y of ordered) if (x !== y && mutual(x, y)) degree++;
      if (degree < members.size - 1) complete = false;
      // Ties: remove a newcomer before a member of the current view, then the lowest id.
      const better = worst === undefined || degree < worstDegree || (degree === worstDegree && incumbents.has(worst) && !incumbents.has(x));
      if (x !== selfId && better) {
        worst = x;
        worstDegree = degree;
      }
    }
    if (complete || worst === undefined) break;
    members.delete(worst);
  }
  return [...members].sort(compareNodeIdsDescending);
}

/** Whether two node lists hold the same ids (order ignored). */
export function sameMembers(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((x) => set.has(x));
}
