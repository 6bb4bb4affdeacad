/**
 * How two copies of one record resolve (cluster replication, migration, split-brain heal):
 * by generation then last-update time (Aerospike's default), or by last-update time then
 * generation. Ties keep the local copy.
 */
export interface VersionOrder {
  gen: number;
  lastUpdateMs: number;
}

/** Whether `incoming` should replace `local`. */
export function versionWins(incoming: VersionOrder, local: VersionOrder, rule: 'generation' | 'lastUpdateTime'): boolean {
  if (rule === 'generation') {
    if (incoming.gen !== local.gen) return incoming.gen > local.gen;
    return incoming.lastUpdateMs > local.lastUpdateMs;
  }
  if (incoming.lastUpdateMs !== local.lastUpdateMs) return incoming.lastUpdateMs > local.lastUpdateMs;
  return incoming.gen > local.gen;
}
