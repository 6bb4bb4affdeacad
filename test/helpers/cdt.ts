/** Databases for the list/map (CDT) tests: one namespace "cdt" of the kind asked for. */
import { Db, ShoalError, open } from '../../lib/index';
import type { NamespaceOptions } from '../../lib/options';
import { track } from './db';
import { tempDir } from './temp';

export type CdtKind = 'memory' | 'device' | 'deviceInMemory';
export const CDT_KINDS: CdtKind[] = ['memory', 'device'];

export function cdtNamespace(kind: CdtKind): NamespaceOptions {
  if (kind === 'memory') return { name: 'cdt', storage: { type: 'memory', maxBytes: 64 << 20 } } as NamespaceOptions;
  return {
    name: 'cdt',
    storage: { type: 'device', paths: ['cdt.dat'], sizeBytes: 32 << 20, writeBlockBytes: 128 << 10, dataInMemory: kind === 'deviceInMemory' },
    maxRecordBytes: 64 << 10,
  } as NamespaceOptions;
}

export async function openCdtDb(kind: CdtKind, dataDir = tempDir()): Promise<Db> {
  return track(await open({ dataDir, namespaces: [cdtNamespace(kind)], log: () => undefined }));
}

/** The error code a promise rejects with, or 'ok'. */
export async function outcomeOf<T>(promise: Promise<T>): Promise<string | T> {
  try {
    return await promise;
  } catch (error) {
    if (error instanceof ShoalError) return error.code;
    throw error;
  }
}

export const cdtKey = (key: string | number) => ({ ns: 'cdt', set: 't', key });

import { expect } from 'vitest';
import type { Bins, Operation } from '../../lib/index';

/** A record, operations on it, and what they must give: the result bins and the stored bins, or an error (the record then unchanged). */
export interface Scenario {
  name: string;
  bins: Bins | undefined;
  ops: Operation[];
  result?: Bins;
  record?: Bins;
  error?: string;
}

/** Runs each scenario on its own record of `db`. */
export async function runScenarios(db: Db, scenarios: readonly Scenario[]): Promise<void> {
  for (const [i, scenario] of scenarios.entries()) {
    const key = cdtKey(`scenario-${i}`);
    if (scenario.bins !== undefined) await db.put(key, scenario.bins);
    const before = await db.get(key);
    const outcome = await outcomeOf(db.operate(key, scenario.ops));
    const after = await db.get(key);
    if (scenario.error !== undefined) {
      expect(outcome, scenario.name).toBe(scenario.error);
      expect(after, `${scenario.name}: the record is unchanged`).toEqual(before);
      continue;
    }
    expect(typeof outcome, `${scenario.name}: ${String(outcome)}`).toBe('object');
    if (scenario.result !== undefined) expect((outcome as { bins: Bins }).bins, scenario.name).toEqual(scenario.result);
    if (scenario.record !== undefined) expect(after?.bins, `${scenario.name}: stored`).toEqual(scenario.record);
  }
}
