/**
 * The modes of what Shoal creates (docs/storage.md, "Files and modes"): files get exactly
 * `fileMode` (0o600 unless open() says otherwise), whatever the process's umask; directories
 * get the same bits plus search (x) wherever there is read. What exists already keeps its mode.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArgument } from '../errors';
import { DEFAULT_FILE_MODE } from './constants';

/**
 * open()'s fileMode, checked: an integer from 0o600 to 0o666 that keeps owner read and write
 * and sets no execute bit. Returns DEFAULT_FILE_MODE for undefined.
 * @throws ShoalError INVALID_ARGUMENT naming the option.
 */
export function resolveFileMode(value: unknown): number {
  if (value === undefined) return DEFAULT_FILE_MODE;
  if (typeof value !== 'number') throw new TypeError(`fileMode must be a file mode such as 0o600 or 0o640, not ${JSON.stringify(value)}`);
  if (!Number.isInteger(value) || value < 0 || value > 0o777) {
    throw invalidArgument(`fileMode must be a file mode such as 0o600 or 0o640, not ${JSON.stringify(value)}`);
  }
  if ((value & 0o600) !== 0o600 || (value & 0o111) !== 0) {
    throw invalidArgument(`fileMode 0o${value.toString(8)} must give its owner read and write (0o600) and no one execute (Shoal's files are data)`);
  }
  return value;
}

/** The mode of a directory holding files of `fileMode`: each read bit gains its search bit (0o640 -> 0o750). */
export function directoryMode(fileMode: number): number {
  return fileMode | ((fileMode & 0o444) >> 2);
}

/**
 * Creates `dir` and the missing directories above it, each with exactly directoryMode(fileMode).
 * Returns whether `dir` was created now.
 * @throws Error from the file system (the caller wraps it).
 */
export function makeDirectory(dir: string, fileMode: number): boolean {
  if (fs.existsSync(dir)) return false;
  makeDirectory(path.dirname(dir), fileMode);
  try {
    fs.mkdirSync(dir, { mode: directoryMode(fileMode) });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  fs.chmodSync(dir, directoryMode(fileMode));
  return true;
}

/**
 * Writes `bytes` to `file` so that a crash leaves either the old file or the new one: a
 * temporary file of exactly `fileMode`, fsynced, renamed over `file`. `bytes` may come in parts.
 * @throws Error from the file system.
 */
export async function writeFileAtomically(file: string, bytes: Buffer | readonly Buffer[], fileMode: number): Promise<void> {
  const temporary = `${file}.tmp`;
  await fs.promises.rm(temporary, { force: true });
  const handle = await fs.promises.open(temporary, 'wx', fileMode);
  try {
    await handle.chmod(fileMode);
    if (Buffer.isBuffer(bytes)) await handle.writeFile(bytes);
    else {
      for (const part of bytes) {
        for (let at = 0; at < part.length; ) at += (await handle.write(part, at, part.length - at)).bytesWritten;
      }
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.promises.rename(temporary, file);
}

/**
 * Like writeFileAtomically, with the bytes written by `fill` into the open temporary file (at
 * positions of its choosing): exactly `fileMode`, fsynced, renamed over `file`. A failure
 * leaves `file` as it was (the temporary file is removed).
 * @throws fill's error, or Error from the file system.
 */
export async function replaceFileWith(file: string, fileMode: number, fill: (handle: fs.promises.FileHandle) => Promise<void>): Promise<void> {
  const temporary = `${file}.tmp`;
  await fs.promises.rm(temporary, { force: true });
  const handle = await fs.promises.open(temporary, 'wx', fileMode);
  try {
    await handle.chmod(fileMode);
    await fill(handle);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await fs.promises.rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  await fs.promises.rename(temporary, file);
}
