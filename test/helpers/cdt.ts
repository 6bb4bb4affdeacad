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
