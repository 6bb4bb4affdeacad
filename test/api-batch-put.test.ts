/**
 * db.batchPut through the batched write path (lib/namespace/batch-put.ts), on a memory
 * namespace and on device namespaces (with and without dataInMemory): every entry's result
 * equals what individual puts in the same order give, on random mixes of new and existing
 * records, repeated keys, policies, generations, removals and stored keys; per-entry errors
 * leave the other entries alone; a durable batch survives SIGKILL; batches survive reopening
 * warm and cold; and the native side refuses a malformed batch buffer without crashing.
 * SHOAL_BATCH_SEED replays the random workloads.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Db, ErrorCode, ShoalError, open } from '../lib/index';
import type { BatchPutEntry } from '../lib/db';
import type { NamespaceOptions } from '../lib/options';
import type { WriteResult } from '../lib/namespace/namespace';
import { addon } from '../lib/native/addon';
import {
  BATCH_ACTION,
  BATCH_BLOCK,
  BATCH_DIGEST,
  BATCH_DUPLICATE,
  BATCH_KEY_LENGTH,
  BATCH_KEY_TYPE,
  BATCH_PREVIOUS_EXISTED,
  BATCH_SET_LENGTH,
  BATCH_SLOT_BYTES,
  BATCH_STATUS,
  BATCH_VARIABLE_OFFSET,
  BATCH_WRITE_INDEX,
  BATCH_WRITE_RECORD,
  EX_DIGEST,
  EXCHANGE_HEADER_BYTES,
} from '../lib/native/exchange';
import { track, useDbCleanup } from './helpers/db';
import { tempDir } from './helpers/temp';
import { seededFloats } from './helpers/random';

useDbCleanup(['cache', 'users', 'mem']);

const seed = Number(process.env.SHOAL_BATCH_SEED ?? Date.now() % 1_000_000);

type Kind = 'memory' | 'device' | 'deviceInMemory' | 'twoDevices';
const KINDS: Kind[] = ['memory', 'device', 'deviceInMemory', 'twoDevices'];

function namespaceOf(kind: Kind, name: string): NamespaceOptions {
  if (kind === 'memory') return { name, storage: { type: 'memory', maxBytes: 64 << 20 } } as NamespaceOptions;
  const paths = kind === 'twoDevices' ? [`${name}-a.dat`, `${name}-b.dat`] : [`${name}.dat`];
  return {
    name,
    storage: { type: 'device', paths, sizeBytes: 32 << 20, writeBlockBytes: 128 << 10, dataInMemory: kind === 'deviceInMemory' },
    maxRecordBytes: 16 << 10,
  } as NamespaceOptions;
}

async function openKind(kind: Kind, dataDir = tempDir()): Promise<Db> {
  return track(await open({ dataDir, namespaces: [namespaceOf(kind, 'users')], log: () => undefined }));
}

type Outcome = WriteResult | ShoalError;

function describeOutcome(outcome: Outcome): string {
  return outcome instanceof ShoalError ? outcome.code : `gen ${outcome.gen} ttl ${outcome.ttl === -1 ? -1 : 'n'}`;
}

/** A random batch over a small key pool: repeats, policies, generations, nulls, stored keys, digests. */
function randomEntries(random: () => number, count: number, digests: Map<string, Buffer>): BatchPutEntry[] {
  const policies = [undefined, undefined, 'upsert', 'create', 'update', 'replace', 'createOrReplace'] as const;
  const entries: BatchPutEntry[] = [];
  for (let i = 0; i < count; i++) {
    const name = `k${Math.floor(random() * 40)}`;
    const digest = digests.get(name);
    const key = digest !== undefined && random() < 0.15 ? { ns: 'users', set: 'people', digest } : { ns: 'users', set: 'people', key: name };
    const bins: Record<string, unknown> = {};
    const binCount = 1 + Math.floor(random() * 3);
    for (let b = 0; b < binCount; b++) bins[`b${Math.floor(random() * 4)}`] = random() < 0.1 ? null : Math.floor(random() * 1000);
    const opts: Record<string, unknown> = {};
    const exists = policies[Math.floor(random() * policies.length)];
    if (exists !== undefined) opts.exists = exists;
    if (random() < 0.15) opts.generation = Math.floor(random() * 3);
    if (random() < 0.25) opts.ttl = [1000, -1, -2, 0][Math.floor(random() * 4)];
    if (random() < 0.2) opts.storeKey = true;
    if (random() < 0.1) opts.durable = true;
    entries.push({ key, bins: bins as never, opts: Object.keys(opts).length > 0 ? (opts as never) : undefined });
  }
  return entries;
}

/** Every record of the namespace, by digest: bins, generation, stored key. */
async function contents(db: Db): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const record of db.scan('users')) {
    out.set(Buffer.from(record.key.digest!).toString('hex'), JSON.stringify({ bins: record.bins, gen: record.gen, key: record.key.key ?? null }));
  }
  return out;
}

describe(`batchPut gives what individual puts give (seed ${seed})`, () => {
  for (const kind of KINDS) {
    it(`${kind}: random batches of new and existing records, results and contents`, async () => {
      const random = seededFloats(seed + kind.length);
      let batched = await openKind(kind);
      const single = await openKind(kind);
      const digests = new Map<string, Buffer>();
      for (let round = 0; round < 12; round++) {
        const entries = randomEntries(random, 1 + Math.floor(random() * 120), digests);
        const expected: Outcome[] = [];
        for (const entry of entries) {
          try {
            expected.push(await single.put(entry.key, entry.bins, entry.opts));
          } catch (error) {
            expected.push(error as ShoalError);
          }
        }
        const results = await batched.batchPut(entries);
        expect(results.map(describeOutcome), `round ${round}`).toEqual(expected.map(describeOutcome));
        for (const [i, result] of results.entries()) {
          const wanted = expected[i]!;
          if (!(result instanceof ShoalError) && !(wanted instanceof ShoalError)) expect(Math.abs(result.ttl - wanted.ttl)).toBeLessThanOrEqual(1);
        }
        for await (const record of batched.scan('users')) {
          if (record.key.key !== undefined) digests.set(String(record.key.key), Buffer.from(record.key.digest!));
        }
        if (kind !== 'memory' && round % 4 === 3) {
          // Reopen the batched side: its records are then read from the device (merges wait for reads).
          const dataDir = batched.dataDir;
          await batched.close();
          batched = await openKind(kind, dataDir);
        }
      }
      expect(await contents(batched)).toEqual(await contents(single));
      expect(batched.stats().namespaces.users!.objects).toBe(single.stats().namespaces.users!.objects);
    });
  }
});

describe('batchPut checks bins as it encodes them, with the errors a put gives', () => {
  /** Bins a put refuses (some with a second fault after the first), and one with a bin written as null. */
  const badBins: [string, unknown][] = [
    ['a null nested in a list and a map (a value: written)', { a: 1, b: [1, { c: null }] }],
    ['NaN', { a: 'x', b: Number.NaN }],
    ['nested infinity', { a: { b: [Number.POSITIVE_INFINITY] } }],
    ['bigint past int64', { a: 2n ** 63n }],
    ['a Date', { a: new Date(0) }],
    ['a Set nested (a Map is storable, a Set is not)', { a: [new Set()] }],
    ['a function', { a: () => 1 }],
    ['undefined', { a: undefined }],
    ['empty name', { '': 1 }],
    ['16-byte name', { abcdefghijklmnop: 1 }],
    ['15 characters, 16 bytes', { ['é' + 'a'.repeat(14)]: 1 }],
    ['no bins', {}],
    ['too deep', { a: JSON.parse('['.repeat(70) + ']'.repeat(70)) }],
    ['a bad bin after a good long one', { pad: 'y'.repeat(100), x: Number.NaN }],
    ['a bad name after a null', { a: null, '': 2 }],
    ['a bad value after a record too big', { a: 'x'.repeat(20 << 10), b: Number.NaN }],
    ['bins not an object', 'bins'],
    ['bins an array', [1]],
    ['bad bins and bad options', { a: Number.NaN }],
    ['bad bins and a key too long', { a: Number.NaN }],
    ['a null (removes a bin: written per record)', { a: null, b: 1 }],
  ];
  const good = { fine: 'yes', n: 7 };

  for (const kind of ['memory', 'device'] as Kind[]) {
    it(`${kind}: a bad entry deep in a large batch fails alone, as its put does`, async () => {
      const db = await openKind(kind);
      const entries: BatchPutEntry[] = [];
      const bad = new Map<number, string>();
      for (let i = 0; i < 20_000; i++) {
        const which = i % 900 === 450 ? ((i / 900) | 0) % badBins.length : -1;
        if (which < 0) {
          entries.push({ key: { ns: 'users', set: 's', key: i }, bins: good });
          continue;
        }
        const [name, bins] = badBins[which]!;
        bad.set(i, name);
        const key = name.includes('key too long') ? 'k'.repeat(5000) : i;
        const opts = name.includes('bad options') ? ({ ttl: 'soon' } as never) : undefined;
        entries.push({ key: { ns: 'users', set: 's', key }, bins: bins as never, opts });
      }
      expect(new Set(bad.values()).size).toBe(badBins.length);
      const results = await db.batchPut(entries);
      for (const [i, name] of bad) {
        const entry = entries[i]!;
        let expected: unknown;
        try {
          expected = await db.put(entry.key, entry.bins, entry.opts);
        } catch (error) {
          expected = error;
        }
        const result = results[i];
        if (expected instanceof Error) {
          expect(result, name).toBeInstanceOf(ShoalError);
          expect((result as ShoalError).code, name).toBe((expected as ShoalError).code ?? ErrorCode.INVALID_ARGUMENT);
          expect((result as ShoalError).message, name).toContain(expected.message);
        } else {
          expect(result, name).not.toBeInstanceOf(Error);
        }
      }
      const written = results.filter((result) => !(result instanceof Error)).length;
      // A getter that throws fails its entry alone, named as the Db names it.
      const thrown = (await db.batchPut([
        { key: { ns: 'users', set: 's', key: 'g' }, bins: { a: 1 } },
        {
          key: { ns: 'users', set: 's', key: 'h' },
          bins: Object.defineProperty({ a: 1 }, 'b', { enumerable: true, get: () => { throw new Error('boom'); } }) as never,
        },
      ]))[1];
      expect(thrown).toBeInstanceOf(ShoalError);
      expect((thrown as ShoalError).code).toBe(ErrorCode.INVALID_ARGUMENT);
      expect((thrown as ShoalError).message).toBe('entries[1]: boom');
      const nulls = [...bad.values()].filter((name) => name.startsWith('a null')).length;
      expect(written).toBe(20_000 - bad.size + nulls); // the null ones are written (a removal per record; a nested nil as a value)
      expect(await db.get({ ns: 'users', set: 's', key: 19_999 })).toMatchObject({ bins: good, gen: 1 });
    });
  }
});

describe('batchPut across namespaces', () => {
  it('entries of two namespaces, interleaved with bad ones, get what individual puts give', async () => {
    const open2 = async () =>
      track(await open({ dataDir: tempDir(), namespaces: [namespaceOf('device', 'users'), namespaceOf('memory', 'mem')], log: () => undefined }));
    const batched = await open2();
    const single = await open2();
    const random = seededFloats(seed + 7);
    const entries: BatchPutEntry[] = [null as never, { key: { ns: 'nope', key: 1 }, bins: { a: 1 } }];
    for (let i = 0; i < 3000; i++) {
      const ns = random() < 0.5 ? 'users' : 'mem';
      const roll = random();
      const key = { ns, set: 's', key: `k${Math.floor(random() * 500)}` };
      if (roll < 0.02) entries.push({ key: { ns: 'nope', key: i }, bins: { a: i } });
      else if (roll < 0.04) entries.push({ key, bins: { a: Number.NaN } });
      else if (roll < 0.06) entries.push({ key, bins: { a: i }, opts: { exists: 'create' } });
      else if (roll < 0.08) entries.push({ key, bins: { a: null, b: i } as never });
      else entries.push({ key, bins: { a: i, ns } });
    }
    const expected: string[] = [];
    for (const entry of entries) {
      try {
        if (entry === null) throw new Error('null entry');
        expected.push(describeOutcome(await single.put(entry.key, entry.bins, entry.opts)));
      } catch (error) {
        expected.push(error instanceof ShoalError ? error.code : 'TypeError');
      }
    }
    const results = await batched.batchPut(entries);
    // A put's TypeError is a batch entry's INVALID_ARGUMENT with that TypeError as its cause.
    const described = results.map((result) => (result instanceof ShoalError && result.cause instanceof TypeError ? 'TypeError' : describeOutcome(result)));
    expect(described).toEqual(expected);
    for (const ns of ['users', 'mem']) {
      const records = async (db: Db) => {
        const out = new Map<string, unknown>();
        for await (const record of db.scan(ns)) out.set(Buffer.from(record.key.digest!).toString('hex'), { bins: record.bins, gen: record.gen });
        return out;
      };
      expect(await records(batched), ns).toEqual(await records(single));
    }
  });
});

describe('batchPut entries fail one by one', () => {
  for (const kind of KINDS) {
    it(`${kind}: a bad key, a record too big, a generation mismatch and an existing record leave the rest written`, async () => {
      const db = await openKind(kind);
      await db.put({ ns: 'users', set: 'people', key: 'old' }, { a: 1 });
      const results = await db.batchPut([
        { key: { ns: 'users', set: 'people', key: 'n1' }, bins: { a: 1 } },
        { key: { ns: 'users', set: 'people', key: 1.5 }, bins: { a: 1 } },
        { key: { ns: 'users', set: 'people', key: 'big' }, bins: { a: 'x'.repeat(kind === 'memory' ? 2 << 20 : 20 << 10) } },
        { key: { ns: 'users', set: 'people', key: 'old' }, bins: { a: 2 }, opts: { generation: 7 } },
        { key: { ns: 'users', set: 'people', key: 'old' }, bins: { a: 3 }, opts: { exists: 'create' } },
        { key: { ns: 'users', set: 'p'.repeat(64), key: 'x' }, bins: { a: 1 } },
        { key: { ns: 'users', set: 'people', key: 'n2' }, bins: { a: 2 }, opts: { exists: 'update' } },
        { key: { ns: 'users', set: 'people', key: 'n3' }, bins: { a: 3 } },
        { key: { ns: 'users', set: 'people', key: 'old' }, bins: { b: 4 }, opts: { generation: 1 } },
      ]);
      expect(results.map(describeOutcome)).toEqual([
        'gen 1 ttl -1',
        ErrorCode.INVALID_ARGUMENT,
        ErrorCode.RECORD_TOO_BIG,
        ErrorCode.GENERATION_MISMATCH,
        ErrorCode.RECORD_EXISTS,
        ErrorCode.INVALID_ARGUMENT,
        ErrorCode.RECORD_NOT_FOUND,
        'gen 1 ttl -1',
        'gen 2 ttl -1',
      ]);
      expect((await db.get({ ns: 'users', set: 'people', key: 'n1' }))!.bins).toEqual({ a: 1 });
      expect((await db.get({ ns: 'users', set: 'people', key: 'n3' }))!.bins).toEqual({ a: 3 });
      expect(await db.get({ ns: 'users', set: 'people', key: 'big' })).toBeUndefined();
      expect(await db.get({ ns: 'users', set: 'people', key: 'n2' })).toBeUndefined();
      expect(await db.get({ ns: 'users', set: 'people', key: 'old' })).toMatchObject({ bins: { a: 1, b: 4 }, gen: 2 });
      expect(db.stats().namespaces.users!.objects).toBe(3);
    });
  }

  it('memory: a batch past the high-water mark evicts as single puts would, and never refuses', async () => {
    const db = track(await open({
      dataDir: tempDir(),
      namespaces: [{ name: 'users', storage: { type: 'memory', maxBytes: 4 << 20 }, evict: { policy: 'lru' } } as NamespaceOptions],
      log: () => undefined,
    }));
    for (let round = 0; round < 5; round++) {
      const results = await db.batchPut(Array.from({ length: 10_000 }, (_, i) => ({ key: { ns: 'users', key: round * 10_000 + i }, bins: { pad: 'e'.repeat(200) } })));
      for (const result of results) expect(result).toEqual({ gen: 1, ttl: -1 });
    }
    const stats = db.stats().namespaces.users!;
    expect(stats.evicted).toBeGreaterThan(0);
    expect(stats.objects + stats.evicted).toBe(50_000);
    expect(stats.memoryUsedBytes).toBeLessThanOrEqual(4 << 20);
    expect((await db.get({ ns: 'users', key: 49_999 }))!.bins.pad).toBe('e'.repeat(200));
  });

  it('a batch larger than one native call (and one write block) lands whole, in order', async () => {
    const db = await openKind('device');
    const entries = Array.from({ length: 40_000 }, (_, i) => ({ key: { ns: 'users', set: 's', key: i % 30_000 }, bins: { i, pad: 'p'.repeat(i % 50) } }));
    const results = await db.batchPut(entries);
    results.forEach((result, i) => expect(result, `entry ${i}`).toEqual({ gen: i < 30_000 ? 1 : 2, ttl: -1 }));
    expect(db.stats().namespaces.users!.objects).toBe(30_000);
    expect((await db.get({ ns: 'users', set: 's', key: 5 }))!.bins).toEqual({ i: 30_005, pad: 'p'.repeat(30_005 % 50) });
    expect((await db.get({ ns: 'users', set: 's', key: 29_999 }))!.bins).toEqual({ i: 29_999, pad: 'p'.repeat(29_999 % 50) });
  });
});

describe('batchPut and restarts', () => {
  for (const mode of ['warm', 'cold'] as const) {
    it(`device batches are there after a ${mode} restart`, async () => {
      const dataDir = tempDir();
      const db = await openKind('device', dataDir);
      await db.batchPut(Array.from({ length: 3000 }, (_, i) => ({ key: { ns: 'users', set: 's', key: `k${i}` }, bins: { i } })));
      await db.batchPut(Array.from({ length: 1000 }, (_, i) => ({ key: { ns: 'users', set: 's', key: `k${i}` }, bins: { i: -i }, opts: { exists: 'replace' as const } })));
      await db.remove({ ns: 'users', set: 's', key: 'k5' });
      await db.close({ dropIndex: mode === 'cold' });
      const again = await openKind('device', dataDir);
      expect(again.stats().namespaces.users!.startMode).toBe(mode);
      expect(again.stats().namespaces.users!.objects).toBe(2999);
      expect((await again.get({ ns: 'users', set: 's', key: 'k7' }))).toMatchObject({ bins: { i: -7 }, gen: 2 });
      expect((await again.get({ ns: 'users', set: 's', key: 'k2500' }))).toMatchObject({ bins: { i: 2500 }, gen: 1 });
      expect(await again.get({ ns: 'users', set: 's', key: 'k5' })).toBeUndefined();
    });
  }

  it('a durable batch is on the device when it resolves: it survives SIGKILL right after', async () => {
    const dataDir = tempDir();
    const child = path.join(__dirname, 'fixtures', 'batch-put-durable-child.js');
    const acknowledged = await new Promise<number>((resolve, reject) => {
      const writer = spawn(process.execPath, [child, dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      let stderr = '';
      let count = 0;
      writer.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      writer.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const match = /ACK (\d+)\n/.exec(output);
        if (match !== null && count === 0) {
          count = Number(match[1]);
          writer.kill('SIGKILL');
        }
      });
      // Resolve once it is gone: its device lock is released only then.
      writer.on('exit', (code, signal) => {
        if (signal === 'SIGKILL') resolve(count);
        else reject(new Error(`child exited with ${code}: ${stderr}`));
      });
    });
    expect(acknowledged).toBe(5000);
    const db = await openKind('device', dataDir);
    // Never the killed process's index: its last index checkpoint and the blocks since, or a scan.
    expect(['recovered', 'cold']).toContain(db.stats().namespaces.users!.startMode);
    for (let i = 0; i < 5000; i++) {
      const record = await db.get({ ns: 'users', set: 's', key: i });
      expect(record?.bins, `key ${i}`).toEqual({ i, pad: 'q'.repeat(i % 90) });
    }
  });
});

describe('the native batch calls refuse malformed buffers', () => {
  it('lookupBatch and writeBatch throw RangeError/TypeError and change nothing', () => {
    const exchange = Buffer.alloc(EXCHANGE_HEADER_BYTES + 64 * 1024);
    const index = new (addon().PrimaryIndex)({ name: `/shoal-batchtest-${process.pid}`, shared: false, exchange, withData: true });
    index.open(false);
    try {
      const batch = Buffer.alloc(4 * BATCH_SLOT_BYTES + 256);
      const slot = (i: number, field: number) => i * BATCH_SLOT_BYTES + field;
      const wellFormed = () => {
        batch.fill(0, 0, 4 * BATCH_SLOT_BYTES);
        for (let i = 0; i < 4; i++) {
          batch[slot(i, BATCH_KEY_TYPE)] = 3;
          batch.writeUInt16LE(1, slot(i, BATCH_KEY_LENGTH));
          batch.writeUInt32LE(4 * BATCH_SLOT_BYTES + i, slot(i, BATCH_VARIABLE_OFFSET));
          batch[4 * BATCH_SLOT_BYTES + i] = 97 + i;
        }
      };
      wellFormed();
      expect(index.lookupBatch(batch, 4)).toBe(4);
      expect(() => index.lookupBatch(batch, 7)).toThrow(RangeError);
      expect(() => index.lookupBatch(batch, -1)).toThrow(RangeError);
      expect(() => index.lookupBatch('x' as never, 1)).toThrow(TypeError);
      batch.writeUInt32LE(0xffffff00, slot(2, BATCH_VARIABLE_OFFSET));
      expect(() => index.lookupBatch(batch, 4)).toThrow(/slot 2/);
      wellFormed();
      batch[slot(1, BATCH_SET_LENGTH)] = 200;
      expect(() => index.lookupBatch(batch, 4)).toThrow(/slot 1/);
      wellFormed();
      batch[slot(3, BATCH_KEY_TYPE)] = 9;
      expect(() => index.lookupBatch(batch, 4)).toThrow(/slot 3/);
      wellFormed();
      index.lookupBatch(batch, 4);
      batch.writeUInt32LE(BATCH_WRITE_INDEX, slot(0, BATCH_ACTION));
      batch.writeUInt32LE(7, slot(1, BATCH_ACTION));
      expect(() => index.writeBatch(batch, 4, [], true)).toThrow(/slot 1/);
      batch.writeUInt32LE(BATCH_WRITE_RECORD, slot(1, BATCH_ACTION));
      batch.writeUInt32LE(3, slot(1, BATCH_BLOCK));
      expect(() => index.writeBatch(batch, 4, [], false)).toThrow(/slot 1/);
      expect(() => index.writeBatch(batch, 4, [Buffer.alloc(4096)], false)).toThrow(/block header/);
      expect(() => index.writeBatch(batch, 4, 'x' as never, false)).toThrow(TypeError);
      expect(index.count()).toBe(0);
      expect(index.verify()).toBe('');
      batch.writeUInt32LE(0, slot(1, BATCH_ACTION));
      expect(index.writeBatch(batch, 4, [], true)).toBe(1);
      expect(index.count()).toBe(1);
      expect(index.verify()).toBe('');
    } finally {
      index.close(true);
    }
  });
});

describe('writeBatch inserts the keys lookupBatch found absent without searching again', () => {
  /** An index with data and a batch of `keys` (one-letter string keys, no set), looked up. */
  function lookedUp(keys: string) {
    const exchange = Buffer.alloc(EXCHANGE_HEADER_BYTES + 64 * 1024);
    const index = new (addon().PrimaryIndex)({ name: `/shoal-batchhint-${process.pid}`, shared: false, exchange, withData: true });
    index.open(false);
    const count = keys.length;
    const batch = Buffer.alloc(count * BATCH_SLOT_BYTES + 256);
    const slot = (i: number, field: number) => i * BATCH_SLOT_BYTES + field;
    for (let i = 0; i < count; i++) {
      batch[slot(i, BATCH_KEY_TYPE)] = 3;
      batch.writeUInt16LE(1, slot(i, BATCH_KEY_LENGTH));
      batch.writeUInt32LE(count * BATCH_SLOT_BYTES + i, slot(i, BATCH_VARIABLE_OFFSET));
      batch[count * BATCH_SLOT_BYTES + i] = keys.charCodeAt(i);
    }
    index.lookupBatch(batch, count);
    const write = (...slots: number[]) => {
      for (const i of slots) batch.writeUInt32LE(BATCH_WRITE_INDEX, slot(i, BATCH_ACTION));
      return index.writeBatch(batch, count, [], true);
    };
    const existed = (i: number) => batch.readUInt32LE(slot(i, BATCH_PREVIOUS_EXISTED)) === 1;
    return { index, exchange, batch, slot, write, existed };
  }

  it('a repeated key written twice (which batchPut never does) becomes one entry', () => {
    const { index, batch, slot, write, existed } = lookedUp('abca');
    try {
      expect(batch.readUInt32LE(slot(3, BATCH_STATUS))).toBe(BATCH_DUPLICATE);
      expect(write(0, 1, 2, 3)).toBe(4);
      expect([0, 1, 2, 3].map(existed)).toEqual([false, false, false, true]);
      expect(index.count()).toBe(3);
      expect(index.verify()).toBe('');
    } finally {
      index.close(true);
    }
  });

  it('a slot whose digest changed after the lookup is searched for', () => {
    const { index, batch, slot, write, existed } = lookedUp('abc');
    try {
      // Slot 1 now names slot 2's record: slot 1 inserts it, slot 2 must find it.
      batch.copy(batch, slot(1, BATCH_DIGEST), slot(2, BATCH_DIGEST), slot(2, BATCH_DIGEST) + 20);
      expect(write(0, 1, 2)).toBe(3);
      expect([0, 1, 2].map(existed)).toEqual([false, false, true]);
      expect(index.count()).toBe(2);
      expect(index.verify()).toBe('');
    } finally {
      index.close(true);
    }
  });

  it('a key inserted between the lookup and the write is updated, not inserted again', () => {
    const { index, exchange, batch, slot, write, existed } = lookedUp('abc');
    try {
      batch.copy(exchange, EX_DIGEST, slot(1, BATCH_DIGEST), slot(1, BATCH_DIGEST) + 20);
      index.upsert(0);
      expect(index.count()).toBe(1);
      expect(write(0, 1, 2)).toBe(3);
      expect([0, 1, 2].map(existed)).toEqual([false, true, false]);
      expect(index.count()).toBe(3);
      expect(index.verify()).toBe('');
      // A second writeBatch of the same lookup finds the records the first one inserted.
      expect(write(0, 1, 2)).toBe(3);
      expect([0, 1, 2].map(existed)).toEqual([true, true, true]);
      expect(index.count()).toBe(3);
      expect(index.verify()).toBe('');
    } finally {
      index.close(true);
    }
  });
});
