/**
 * The registered UDF modules of a node (docs/protocol.md, "User-defined functions"): name,
 * Lua source and hash, kept in memory and persisted one file per module in `<dataDir>/udf/`,
 * so they survive a restart as Aerospike's system metadata keeps them. A file is written to a
 * temporary name, synced and renamed, so a crash leaves the old module or the new one.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ErrorCode, ShoalError } from '../errors';
import { UDF_MODULE_BYTES_MAX, UDF_MODULE_NAME_BYTES_MAX, UDF_MODULES_MAX } from './constants';

export interface UdfModule {
  /** The file name, with its extension (`udf.lua`). */
  name: string;
  source: string;
  /** SHA-1 of the source, hex: what `udf-list` reports. */
  hash: string;
}

const TEMPORARY_SUFFIX = '.tmp';

/**
 * Checks a module file name: a base name with an extension, printable ASCII without the info
 * protocol's separators.
 * @throws ShoalError INVALID_ARGUMENT naming the problem.
 */
export function checkModuleName(name: string): void {
  if (name.length === 0 || Buffer.byteLength(name) > UDF_MODULE_NAME_BYTES_MAX) throw new ShoalError(ErrorCode.INVALID_ARGUMENT, `a UDF module name has 1 to ${UDF_MODULE_NAME_BYTES_MAX} bytes`);
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name) || name.endsWith(TEMPORARY_SUFFIX)) throw new ShoalError(ErrorCode.INVALID_ARGUMENT, `UDF module name ${JSON.stringify(name)} must be letters, digits, '_', '-' and '.'`);
  const dot = name.indexOf('.');
  if (dot <= 0 || dot === name.length - 1) throw new ShoalError(ErrorCode.INVALID_ARGUMENT, `UDF module name ${JSON.stringify(name)} needs an extension (udf.lua)`);
}

export class UdfRegistry {
  private readonly modules = new Map<string, UdfModule>();

  /** `directory`: where modules persist (undefined: memory only). */
  private constructor(private readonly directory: string | undefined, private readonly fileMode: number) {}

  /**
   * Opens the registry, reading the modules persisted in `directory`. A file that cannot be
   * read or is not a valid module is left where it is and logged, never removed.
   */
  static open(directory: string | undefined, fileMode: number, log: (message: string) => void): UdfRegistry {
    const registry = new UdfRegistry(directory, fileMode);
    if (directory === undefined || !fs.existsSync(directory)) return registry;
    for (const name of fs.readdirSync(directory).sort()) {
      if (name.endsWith(TEMPORARY_SUFFIX)) continue;
      try {
        checkModuleName(name);
        const bytes = fs.readFileSync(path.join(directory, name));
        if (bytes.length > UDF_MODULE_BYTES_MAX) throw new Error(`${bytes.length} bytes, above ${UDF_MODULE_BYTES_MAX}`);
        if (registry.modules.size >= UDF_MODULES_MAX) throw new Error(`more than ${UDF_MODULES_MAX} modules`);
        registry.remember(name, bytes.toString('utf8'));
      } catch (error) {
        log(`udf: module file ${path.join(directory, name)} was not loaded: ${(error as Error).message}`);
      }
    }
    return registry;
  }

  get(name: string): UdfModule | undefined {
    return this.modules.get(name);
  }

  list(): UdfModule[] {
    return [...this.modules.values()];
  }

  /** Every module's name and source, for the engine. */
  sources(): [string, string][] {
    return this.list().map((module) => [module.name, module.source]);
  }

  /**
   * Registers (or replaces) a module, persisted before it resolves.
   * @throws ShoalError INVALID_ARGUMENT for a bad name or size, OUT_OF_SPACE past UDF_MODULES_MAX,
   *   IO_ERROR when the file cannot be written.
   */
  async put(name: string, source: string): Promise<UdfModule> {
    checkModuleName(name);
    if (Buffer.byteLength(source) > UDF_MODULE_BYTES_MAX) throw new ShoalError(ErrorCode.INVALID_ARGUMENT, `a UDF module has at most ${UDF_MODULE_BYTES_MAX} bytes`);
    if (!this.modules.has(name) && this.modules.size >= UDF_MODULES_MAX) throw new ShoalError(ErrorCode.OUT_OF_SPACE, `${UDF_MODULES_MAX} UDF modules are registered; remove one first`);
    if (this.directory !== undefined) await this.persist(name, source);
    return this.remember(name, source);
  }

  /** Removes a module; returns whether it was registered. @throws ShoalError IO_ERROR. */
  async remove(name: string): Promise<boolean> {
    if (!this.modules.has(name)) return false;
    if (this.directory !== undefined) {
      try {
        await fs.promises.rm(path.join(this.directory, name), { force: true });
      } catch (error) {
        throw new ShoalError(ErrorCode.IO_ERROR, `UDF module ${name} could not be removed: ${(error as Error).message}`, { cause: error });
      }
    }
    this.modules.delete(name);
    return true;
  }

  private remember(name: string, source: string): UdfModule {
    const module = { name, source, hash: createHash('sha1').update(source).digest('hex') };
    this.modules.set(name, module);
    return module;
  }

  private async persist(name: string, source: string): Promise<void> {
    const directory = this.directory!;
    const temporary = path.join(directory, name + TEMPORARY_SUFFIX);
    try {
      await fs.promises.mkdir(directory, { recursive: true, mode: 0o700 });
      const file = await fs.promises.open(temporary, 'w', this.fileMode);
      try {
        await file.writeFile(source);
        await file.sync();
      } finally {
        await file.close();
      }
      await fs.promises.rename(temporary, path.join(directory, name));
      const folder = await fs.promises.open(directory, 'r');
      try {
        await folder.sync();
      } finally {
        await folder.close();
      }
    } catch (error) {
      await fs.promises.rm(temporary, { force: true });
      throw new ShoalError(ErrorCode.IO_ERROR, `UDF module ${name} could not be written: ${(error as Error).message}`, { cause: error });
    }
  }
}
