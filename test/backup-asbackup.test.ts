/**
 * Aerospike's asbackup text format (docs/backup.md): a file written by Shoal reads back equal
 * to the records it was written from, and restores into another Db equal record by record; a
 * file in the format as asbackup writes it (escaped names, a compact blob, a value holding a
 * line feed) reads as its values; damaged files are refused with the line, never half-loaded
 * silently.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readAsbackup, restoreAsbackup, writeAsbackup } from '../lib/backup/index';
import type { AsbackupRecord } from '../lib/backup/index';
import type { Db } from '../lib/db';
import { open } from '../lib/open';
import { digestOf } from '../lib/model/digest';
import { cleanupTempDirs, tempDir } from './helpers/temp';

const dbs: Db[] = [];
afterEach(async () => {
  await Promise.all(dbs.splice(0).map((db) => db.close().catch(() => undefined)));
  cleanupTempDirs();
});

async function memoryDb(): Promise<Db> {
  const db = await open({ dataDir: tempDir(), sharedMemoryIndex: false, handleSignals: false, namespaces: [{ name: 'test', storage: { type: 'memory', maxBytes: 64 << 20 } }] });
  dbs.push(db);
  return db;
}

async function collect(file: string): Promise<AsbackupRecord[]> {
  const records: AsbackupRecord[] = [];
  for await (const record of readAsbackup(file)) records.push(record);
  return records;
}

const hex = (record: { digest: Buffer }) => record.digest.toString('hex');

describe('asbackup round trip', () => {
  it('a file Shoal writes reads back equal to the original records and restores into another Db identically', async () => {
    const db = await memoryDb();
    const values = [
      { s: 'plain', u: 'ünïcødé ✓ line\nfeed and spaces', empty: '' },
      { i: 42, neg: -7, big: 2n ** 62n, min: -(2n ** 63n), d: 3.141592653589793, tiny: 5e-324, t: true, f: false },
      { blob: Buffer.from([0, 1, 2, 10, 255]), emptyBlob: Buffer.alloc(0) },
      { list: [1, 'two', [3, null, 4.5], { k: 'v' }, Buffer.from('x')], map: { a: 1, b: [true, false], c: { deep: 'yes' } } },
      { intMap: new Map<number, string>([[1, 'one'], [2, 'two']]), 'bin name': 'spaced' },
    ];
    const keys = ['a key with spaces', 17, Buffer.from([9, 8, 7]), 'k3', -5];
    for (let i = 0; i < 200; i++) {
      const key = i < keys.length ? keys[i]! : `k-${i}`;
      await db.put({ ns: 'test', set: i % 3 === 0 ? '' : 'set b', key }, values[i % values.length]!, { storeKey: i % 4 !== 3, ttl: i % 5 === 0 ? 3600 : -1 });
    }
    const file = path.join(tempDir(), 'test.asb');
    const written = await writeAsbackup(db, 'test', file);
    expect(written.records).toBe(200);
    expect(fs.existsSync(`${file}.tmp`)).toBe(false);
    const original = new Map<string, { bins: unknown; gen: number; ttl: number; key: unknown; set: string }>();
    for await (const record of db.scan('test')) {
      const digest = record.key.digest !== undefined ? Buffer.from(record.key.digest) : digestOf(record.key.set, record.key.key!);
      original.set(digest.toString('hex'), { bins: record.bins, gen: record.gen, ttl: record.ttl, key: record.key.key, set: record.key.set ?? '' });
    }
    const read = await collect(file);
    expect(read.length).toBe(200);
    for (const record of read) {
      const source = original.get(hex(record))!;
      expect(source).toBeDefined();
      expect(record.ns).toBe('test');
      expect(record.set).toBe(source.set);
      expect(record.bins).toEqual(source.bins);
      expect(record.gen).toBe(source.gen);
      expect(record.key).toEqual(source.key);
      if (source.ttl === -1) expect(record.ttl).toBe(-1);
      else expect(Math.abs(record.ttl - source.ttl)).toBeLessThanOrEqual(2);
    }
    // Restored into a fresh Db: the same records.
    const copy = await memoryDb();
    expect(await restoreAsbackup(copy, file)).toEqual({ records: 200, skipped: 0 });
    for (const record of read) {
      const back = await copy.get({ ns: 'test', set: record.set, digest: record.digest });
      expect(back?.bins).toEqual(original.get(hex(record))!.bins);
    }
    // Restoring again with skipExisting leaves them.
    expect(await restoreAsbackup(copy, file, { policy: 'skipExisting' })).toEqual({ records: 0, skipped: 200 });
  });

  it('reads the format as asbackup writes it: escaped names, compact and base64 blobs, a key line, a value with a line feed', async () => {
    const digest = digestOf('my set', 'user 1').toString('base64');
    const text = [
      'Version 3.1',
      '# namespace test',
      '# first-file',
      '+ k S 6 user 1',
      '+ n test',
      `+ d ${digest}`,
      '+ s my\\ set',
      '+ g 7',
      '+ t 0',
      '+ b 6',
      '- I n -12',
      '- D x 0.10000000000000001',
      '- S bin\\ one 5 a\nb c',
      '- B! raw 3 \u0001\u0002\u0003',
      `- B b64 4 ${Buffer.from([250, 251, 252]).toString('base64')}`,
      '- N gone',
      '',
    ].join('\n');
    const file = path.join(tempDir(), 'hand.asb');
    fs.writeFileSync(file, text, 'latin1');
    const [record] = await collect(file);
    expect(record!.set).toBe('my set');
    expect(record!.key).toBe('user 1');
    expect(record!.gen).toBe(7);
    expect(record!.ttl).toBe(-1);
    expect(record!.digest.toString('base64')).toBe(digest);
    expect(record!.bins).toEqual({ n: -12, x: 0.1, 'bin one': 'a\nb c', raw: Buffer.from([1, 2, 3]), b64: Buffer.from([250, 251, 252]), gone: null });
  });

  it('refuses damaged files with the line, and loads nothing past the damage', async () => {
    const dir = tempDir();
    const good = ['Version 3.1', '# namespace test', '+ n test', `+ d ${digestOf('', 'a').toString('base64')}`, '+ g 1', '+ t 0', '+ b 1', '- I v 1', ''];
    const cases: [string, RegExp][] = [
      ['not a backup\n', /not an asbackup file/],
      [good.slice(0, 6).join('\n'), /ends inside a (record|line)|expected/],
      [good.join('\n').replace('+ d ', '+ d AAAA'), /digest of \d+ bytes/],
      [good.join('\n').replace('- I v 1', '- I v 1x'), /not a 64-bit integer/],
      [good.join('\n').replace('- I v 1', '- S v 99 short'), /ends inside a value/],
      [good.join('\n').replace('- I v 1', '- Q v 1'), /unknown bin type/],
      [good.join('\n').replace('+ g 1', '+ g 70000'), /generation/],
      [good.join('\n').replace('- I v 1', `- M v 4 ${Buffer.from([0xc1]).toString('base64')}`), /does not decode/],
    ];
    for (const [text, message] of cases) {
      const file = path.join(dir, 'bad.asb');
      fs.writeFileSync(file, text);
      await expect(collect(file)).rejects.toThrow(message);
      await expect(collect(file)).rejects.toMatchObject({ code: 'CORRUPTION' });
    }
    await expect(collect(path.join(dir, 'missing.asb'))).rejects.toMatchObject({ code: 'IO_ERROR' });
  });
});
