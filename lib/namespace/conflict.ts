/**
 * How two copies of one record resolve (cluster replication, migration, split-brain heal):
 * by generation then last-update time (Aerospike's default), or by last-update time then
 * generation.
 *
 * Two views of a split cluster can each write a version with the same generation in the same
 * millisecond (or with a wall clock behind the record's last update). Such a full tie is broken
 * by content, so that every copy picks the same winner wherever it is resolved: a removal wins
 * over data, then the payload whose bytes compare greater. Equal content keeps the local copy.
 */
export interface VersionOrder {
  gen: number;
  lastUpdateMs: number;
}

export interface VersionContent {
  tombstone: boolean;
  /** The stored payload; absent for a removal. */
  payload?: Buffer;
}

export type ConflictRule = 'generation' | 'lastUpdateTime';

/** > 0 when `incoming` is newer by the rule, < 0 when older, 0 on a full tie of both fields. */
export function compareVersions(incoming: VersionOrder, local: VersionOrder, rule: ConflictRule): number {
  const gen = incoming.gen - local.gen;
  const time = incoming.lastUpdateMs - local.lastUpdateMs;
  if (rule === 'generation') return gen !== 0 ? gen : time;
  return time !== 0 ? time : gen;
}

/** Whether `incoming` replaces `local` after a full tie of generation and last-update time. */
export function tieWins(incoming: VersionContent, local: VersionContent): boolean {
  if (incoming.tombstone !== local.tombstone) return incoming.tombstone;
  return Buffer.compare(incoming.payload ?? NO_PAYLOAD, local.payload ?? NO_PAYLOAD) > 0;
}

/** Whether `incoming` should replace `local`, both with their content. */
export function versionWins(incoming: VersionOrder & VersionContent, local: VersionOrder & VersionContent, rule: ConflictRule): boolean {
  const order = compareVersions(incoming, local, rule);
  return order !== 0 ? order > 0 : tieWins(incoming, local);
}

const NO_PAYLOAD = Buffer.alloc(0);
