/**
 * Creates the namespace object that a resolved config asks for.
 */
import type { DbConfig, NamespaceConfig } from '../options';
import { DeviceNamespace } from './device-namespace';
import { MemoryNamespace } from './memory-namespace';
import type { Namespace } from './namespace';

/**
 * Opens one namespace: a memory namespace at once, a device namespace after its warm
 * attach or cold start.
 * @throws ShoalError LOCKED, IO_ERROR, CORRUPTION from the namespace's start.
 */
export async function openNamespace(config: NamespaceConfig, db: DbConfig, log: (message: string) => void): Promise<Namespace> {
  if (config.kind === 'memory') return new MemoryNamespace(config, db, log);
  return DeviceNamespace.open(config, db, log);
}
