/**
 * Messages a user reads when a size is wrong: option bounds and RECORD_TOO_BIG name their
 * sizes in KiB/MiB (exact bytes too where the unit rounds), and RECORD_TOO_BIG names the
 * record's size and the namespace's maxRecordBytes.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, ShoalError, open } from '../lib/index';
import { formatBytes } from '../lib/errors';
import type { NamespaceOptions } from '../lib/options';
import { track, useDbCleanup } from './helpers/db';
import { tempDir } from './helpers/temp';

useDbCleanup(['small', 'disk']);

/** The error open() rejects with for one namespace's options. */
async function openError(namespace: NamespaceOptions): Promise<ShoalError> {
  const error = await open({ dataDir: tempDir(), namespaces: [namespace], log: () => undefined }).then(
    (db) => {
      track(db);
      throw new Error('open succeeded');
    },
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ShoalError);
  expect((error as ShoalError).code).toBe(ErrorCode.INVALID_ARGUMENT);
  return error as ShoalError;
}

describe('formatBytes', () => {
  it('prints units, with exact bytes where the unit rounds', () => {
    expect(formatBytes(1)).toBe('1 byte');
    expect(formatBytes(1023)).toBe('1023 bytes');
    expect(formatBytes(128 << 10)).toBe('128 KiB');
    expect(formatBytes(1 << 20)).toBe('1 MiB');
    expect(formatBytes((1 << 20) + 1)).toBe('1 MiB (1048577 bytes)');
    expect(formatBytes(1.5 * (1 << 20))).toBe('1.5 MiB (1572864 bytes)');
    expect(formatBytes(2 ** 40)).toBe('1 TiB');
  });
});

describe('option bounds', () => {
  it('memory maxBytes: at least 1 MiB', async () => {
    const error = await openError({ name: 'small', storage: { type: 'memory', maxBytes: 5 } });
    expect(error.message).toBe('namespaces[0].storage.maxBytes must be at least 1 MiB, not 5 bytes');
  });

  it('device sizeBytes: at least eight write blocks', async () => {
    const error = await openError({ name: 'disk', storage: { type: 'device', paths: ['disk.dat'], sizeBytes: 1 << 20 } });
    expect(error.message).toBe('namespaces[0].storage.sizeBytes must be at least 8 MiB, not 1 MiB');
  });

  it('writeBlockBytes and maxRecordBytes', async () => {
    const block = await openError({ name: 'disk', storage: { type: 'device', paths: ['disk.dat'], sizeBytes: 64 << 20, writeBlockBytes: 100_000 } });
    expect(block.message).toBe('namespaces[0].storage.writeBlockBytes must be from 128 KiB to 8 MiB, not 97.66 KiB (100000 bytes)');
    const record = await openError({ name: 'disk', maxRecordBytes: 4 << 20, storage: { type: 'device', paths: ['disk.dat'], sizeBytes: 64 << 20 } });
    expect(record.message).toBe('namespaces[0].maxRecordBytes (4 MiB) exceeds the write block size (1 MiB)');
    const tiny = await openError({ name: 'small', maxRecordBytes: 100, storage: { type: 'memory', maxBytes: 1 << 20 } });
    expect(tiny.message).toBe('namespaces[0].maxRecordBytes must be from 8 KiB to 8 MiB, not 100 bytes');
  });
});

describe('RECORD_TOO_BIG', () => {
  // A 9,000-character string bin named "big": a 4-byte payload header, a 1-byte map header,
  // the 4-byte name and a 3-byte str16 header before the 9,000 bytes (docs/record-payload.md).
  const bins = { big: 'x'.repeat(9000) };
  const expected = 'record of 8.8 KiB (9012 bytes) exceeds maxRecordBytes (8 KiB) of namespace';

  it('names the size and the limit: memory namespace, put and batchPut', async () => {
    const db = track(
      await open({
        dataDir: tempDir(),
        namespaces: [{ name: 'small', maxRecordBytes: 8 << 10, storage: { type: 'memory', maxBytes: 1 << 20 } }],
        log: () => undefined,
      }),
    );
    const key = { ns: 'small', key: 'k' };
    const error = await db.put(key, bins).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: ErrorCode.RECORD_TOO_BIG, message: `${expected} small` });
    const [result] = await db.batchPut([{ key, bins }]);
    expect(result).toMatchObject({ code: ErrorCode.RECORD_TOO_BIG, message: `${expected} small` });
    // A stored key counts too: 1 more byte.
    const withKey = await db.put(key, bins, { storeKey: true }).catch((caught: unknown) => caught);
    expect((withKey as ShoalError).message).toContain('(9013 bytes)');
  });

  it('names the size and the limit: device namespace', async () => {
    const db = track(
      await open({
        dataDir: tempDir(),
        sharedMemoryIndex: false,
        namespaces: [{ name: 'disk', maxRecordBytes: 8 << 10, storage: { type: 'device', paths: ['disk.dat'], sizeBytes: 8 << 20, directIo: 'off' } }],
        log: () => undefined,
      }),
    );
    const error = await db.put({ ns: 'disk', key: 'k' }, bins).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: ErrorCode.RECORD_TOO_BIG, message: `${expected} disk` });
  });
});
