/**
 * Creates the namespace object that a resolved config asks for: the record core over a memory
 * store or a device store.
 */
import { type Clock, wallClock } from '../clock';
import type { DataDirConfig, NamespaceConfig } from './config';
import { openDeviceNamespace } from './device-records';
import { openMemoryNamespace } from './memory-store';
import type { Namespace } from './namespace';

/**
 * Opens one namespace: a memory namespace at once, a device namespace after its warm
 * attach or cold start.
 * @throws ShoalError LOCKED, IO_ERROR, CORRUPTION from the namespace's start.
 */
export async function openNamespace(config: NamespaceConfig, db: DataDirConfig, log: (message: string) => void, clock: Clock = wallClock): Promise<Namespace> {
  if (config.kind === 'memory') return openMemoryNamespace(config, db, log, clock);
  return openDeviceNamespace(config, db, log, clock);
}
