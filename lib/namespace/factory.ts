/**
 * Creates the namespace object that a resolved config asks for.
 */
import type { DbConfig, NamespaceConfig } from '../options';
import { MemoryNamespace } from './memory-namespace';
import type { Namespace } from './namespace';
import { ErrorCode, ShoalError } from '../errors';

/**
 * Opens one namespace.
 * @throws ShoalError LOCKED, IO_ERROR, CORRUPTION from the namespace's start.
 */
export async function openNamespace(config: NamespaceConfig, db: DbConfig, log: (message: string) => void): Promise<Namespace> {
  if (config.kind === 'memory') return new MemoryNamespace(config, db, log);
  throw new ShoalError(
    ErrorCode.INVALID_ARGUMENT,
    `namespace ${config.name}: device namespaces are not available in this build yet (storage engine pending); use storage: { type: 'memory' }`,
  );
}
