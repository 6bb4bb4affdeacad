/**
 * Creates the namespace object that a resolved config asks for.
 */
import { type Clock, wallClock } from '../clock';
import type { DataDirConfig, NamespaceConfig } from './config';
import { DeviceNamespace } from './device-namespace';
import { MemoryNamespace } from './memory-namespace';
import type { Namespace } from './namespace';

/**
 * Opens one namespace: a memory namespace at once, a device namespace after its warm
 * attach or cold start.
 * @throws ShoalError LOCKED, IO_ERROR, CORRUPTION from the namespace's start.
 */
export async function openNamespace(config: NamespaceConfig, db: DataDirConfig, log: (message: string) => void, clock: Clock = wallClock): Promise<Namespace> {
  if (config.kind === 'memory') return new MemoryNamespace(config, db, log, clock);
  return DeviceNamespace.open(config, db, log, clock);
}
