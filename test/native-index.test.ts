/**
 * The native primary index (native/primary_index.h) over real POSIX shared memory: lookups
 * against a JS Map, growth by stages and linear hashing, the free list, the record arena, LRU
 * and TTL eviction, bounded sweeps, scans, warm attach from another process, and input checks.
 */
import { fork } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { addon, addonPath, type NativePrimaryIndex } from '../lib/native/addon';
import {
  ENTRY_DATA_LENGTH,
  ENTRY_EXISTED,
  ENTRY_FLAGS,
  ENTRY_GENERATION,
  ENTRY_ID,
  ENTRY_LAST_UPDATE_MS,
  ENTRY_LOCATION_HIGH,
  ENTRY_LOCATION_LOW,
  ENTRY_PARTITION_ID,
  ENTRY_SET_ID,
  ENTRY_VOID_TIME,
  EX_DATA,
  EX_ENTRY,
  EX_PARTITION_FILTER,
  Exchange,
  READ_COPY_DATA,
  READ_TOUCH_LRU,
  SCAN_DATA_LENGTH,
  SCAN_ENTRY_ID,
  SCAN_GENERATION,
  SCAN_PARTITION_ID,
  SCAN_RECORD_BYTES,
  SCAN_SET_ID,
  UPSERT_KEEP_DATA,
  UPSERT_STORE_DATA,
} from '../lib/native/exchange';

const native = addon();
type Index = NativePrimaryIndex;

const SHM = '/dev/shm';
const prefix = `shoal-test-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
const opened: { index: Index; name: string }[] = [];
let counter = 0;

function uniqueName(): string {
  return `/${prefix}-${counter++}`;
}

function segmentsOf(name: string): string[] {
  return fs.readdirSync(SHM).filter((file) => file.startsWith(`${name.slice(1)}.`));
}

/** A seeded PRNG (mulberry32) so a failure replays. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An index plus typed helpers over its exchange. */
class Harness {
  readonly exchange: Exchange;
  readonly index: Index;

  constructor(
    readonly name: string,
    readonly withData: boolean,
    dataCapacity = 1 << 20,
    shared = true,
  ) {
    this.exchange = new Exchange(dataCapacity);
    this.index = new native.PrimaryIndex({ name, shared, exchange: this.exchange.buffer, withData }) as Index;
    opened.push({ index: this.index, name });
  }

  setDigest(digest: Uint8Array): void {
    this.exchange.setDigest(digest);
  }

  /** Fills ENTRY and upserts; returns the entry id. */
  put(digest: Uint8Array, fields: Partial<Fields> = {}, payload?: Uint8Array, options?: number): number {
    this.setDigest(digest);
    const e = this.exchange;
    e.setEntryU32(ENTRY_GENERATION, fields.generation ?? 1);
    e.setEntryU32(ENTRY_VOID_TIME, fields.voidTime ?? 0);
    e.setEntryU32(ENTRY_SET_ID, fields.setId ?? 0);
    e.setEntryU32(ENTRY_FLAGS, fields.flags ?? 0);
    e.setEntryF64(ENTRY_LAST_UPDATE_MS, fields.lastUpdateMs ?? 1_700_000_000_000);
    e.setEntryU32(ENTRY_LOCATION_LOW, fields.locationLow ?? 0);
    e.setEntryU32(ENTRY_LOCATION_HIGH, fields.locationHigh ?? 0);
    if (payload !== undefined) {
      e.u8.set(payload, EX_DATA);
      e.setEntryU32(ENTRY_DATA_LENGTH, payload.length);
    }
    return this.index.upsert(options ?? (payload !== undefined ? UPSERT_STORE_DATA : 0));
  }

  /** Reads by digest; returns ENTRY fields (and the payload with READ_COPY_DATA) or undefined. */
  get(digest: Uint8Array, options = 0): (Fields & { entryId: number; dataLength: number; partitionId: number; payload?: Buffer }) | undefined {
    this.setDigest(digest);
    const length = this.index.read(options);
    if (length < 0) return undefined;
    return {
      ...this.entryFields(),
      payload: options & READ_COPY_DATA ? Buffer.from(this.exchange.buffer.subarray(EX_DATA, EX_DATA + length)) : undefined,
    };
  }

  entryFields(): Fields & { entryId: number; dataLength: number; partitionId: number } {
    const e = this.exchange;
    return {
      generation: e.entryU32(ENTRY_GENERATION),
      voidTime: e.entryU32(ENTRY_VOID_TIME),
      setId: e.entryU32(ENTRY_SET_ID),
      flags: e.entryU32(ENTRY_FLAGS),
      lastUpdateMs: e.entryF64(ENTRY_LAST_UPDATE_MS),
      locationLow: e.entryU32(ENTRY_LOCATION_LOW),
      locationHigh: e.entryU32(ENTRY_LOCATION_HIGH),
      entryId: e.entryU32(ENTRY_ID),
      dataLength: e.entryU32(ENTRY_DATA_LENGTH),
      partitionId: e.entryU32(ENTRY_PARTITION_ID),
    };
  }

  remove(digest: Uint8Array): number {
    this.setDigest(digest);
    return this.index.remove();
  }

  /** Runs a bounded slice operation until its cursor returns to 0. */
  slices(step: (cursor: number) => number): number {
    let cursor = 0;
    let total = 0;
    let calls = 0;
    do {
      total += step(cursor);
      cursor = this.exchange.entryU32(ENTRY_ID);
      calls++;
    } while (cursor !== 0);
    expect(calls).toBeGreaterThan(0);
    return total;
  }
}

interface Fields {
  generation: number;
  voidTime: number;
  setId: number;
  flags: number;
  lastUpdateMs: number;
  locationLow: number;
  locationHigh: number;
}

function digests(count: number, seed: number): Buffer[] {
  const random = prng(seed);
  const all: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const digest = Buffer.alloc(20);
    for (let j = 0; j < 20; j += 4) digest.writeUInt32LE((random() * 2 ** 32) >>> 0, j);
    all.push(digest);
  }
  return all;
}

function payloadFor(i: number, length: number): Buffer {
  return Buffer.alloc(length, (i + length) % 251);
}

afterEach(() => {
  for (const { index, name } of opened.splice(0)) {
    try {
      index.close(true);
    } catch {
      // already failing; the unlink below still cleans up
    }
    native.unlinkIndexSegments(name);
  }
});

afterAll(() => {
  const left = fs.readdirSync(SHM).filter((file) => file.startsWith(prefix));
  for (const file of left) fs.rmSync(path.join(SHM, file), { force: true });
  expect(left).toEqual([]);
});

describe('primary index lookups', () => {
  it('matches a JS Map over one million random digests: insert, update, remove, find', () => {
    const h = new Harness(uniqueName(), false);
    expect(h.index.open(true)).toBe(0);
    const count = 1_000_000;
    const all = digests(count, 11);
    const expected = new Map<number, number>();
    for (let i = 0; i < count; i++) {
      h.put(all[i]!, { generation: i, locationLow: i, locationHigh: i & 0xffff });
      if (h.exchange.previousU32(ENTRY_EXISTED) !== 0) throw new Error(`digest ${i} existed before its insert`);
      expected.set(i, i);
    }
    const random = prng(12);
    for (let round = 0; round < 300_000; round++) {
      const i = (random() * count) | 0;
      if (random() < 0.5) {
        const existed = expected.has(i);
        const removed = h.remove(all[i]!);
        const previousOk = !existed || h.exchange.previousU32(ENTRY_GENERATION) === expected.get(i);
        if (removed !== (existed ? 1 : 0) || h.exchange.previousU32(ENTRY_EXISTED) !== removed || !previousOk) {
          throw new Error(`remove of digest ${i}: existed ${existed}, removed ${removed}`);
        }
        expected.delete(i);
      } else {
        const generation = (random() * 2 ** 32) >>> 0;
        const existed = expected.has(i);
        h.put(all[i]!, { generation, locationLow: i, locationHigh: i & 0xffff });
        if (h.exchange.previousU32(ENTRY_EXISTED) !== (existed ? 1 : 0)) throw new Error(`upsert of ${i}: existed ${existed}`);
        expected.set(i, generation);
      }
    }
    expect(h.index.count()).toBe(expected.size);
    let found = 0;
    for (let i = 0; i < count; i++) {
      const entry = h.get(all[i]!);
      const generation = expected.get(i);
      if (generation === undefined) {
        if (entry !== undefined) throw new Error(`digest ${i} was removed but is found`);
        continue;
      }
      if (entry === undefined || entry.generation !== generation || entry.locationLow !== i || entry.locationHigh !== (i & 0xffff)) {
        throw new Error(`digest ${i}: expected generation ${generation}, got ${JSON.stringify(entry)}`);
      }
      found++;
    }
    expect(found).toBe(expected.size);
    expect(h.index.verify()).toBe('');
  });

  it('round-trips every entry field, including 48-bit last-update times and 64-bit locations', () => {
    const h = new Harness(uniqueName(), false);
    h.index.open(false);
    const [digest] = digests(1, 3);
    const fields: Fields = {
      generation: 0xffffffff,
      voidTime: 0xfffffffe,
      setId: 4095,
      flags: 15,
      lastUpdateMs: 2 ** 48 - 2,
      locationLow: 0xdeadbeef,
      locationHigh: 0xcafebabe,
    };
    const id = h.put(digest!, fields);
    expect(id).toBeGreaterThanOrEqual(1);
    const entry = h.get(digest!)!;
    expect(entry).toMatchObject({ ...fields, entryId: id, dataLength: 0 });
    expect(entry.partitionId).toBe((digest![0]! | (digest![1]! << 8)) & 0x0fff);
    expect(h.index.readEntry(id, 0)).toBe(0);
    expect(h.exchange.digestCopy().equals(digest!)).toBe(true);
  });

  it('grows across several entry and bucket stages by linear hashing, without moving entries', () => {
    const h = new Harness(uniqueName(), false);
    h.index.open(false);
    const count = 600_000; // stages of 64 Ki, 128 Ki, 256 Ki, 512 Ki entries
    const all = digests(count, 21);
    const ids: number[] = [];
    let previousBuckets = h.index.stats().bucketCount;
    for (let i = 0; i < count; i++) {
      ids.push(h.put(all[i]!, { generation: i }));
      if (i % 50_000 === 0) {
        const { bucketCount } = h.index.stats();
        expect(bucketCount).toBeGreaterThanOrEqual(previousBuckets);
        previousBuckets = bucketCount;
      }
    }
    const stats = h.index.stats();
    expect(stats.entries).toBe(count);
    expect(stats.bucketCount).toBeGreaterThanOrEqual(count); // load kept at one entry per bucket
    expect(stats.bucketCount).toBeLessThan(count + 4096 + 2);
    expect(stats.entryBytes).toBe((count + 1) * 48);
    const segments = segmentsOf(h.name);
    for (const stage of ['e0', 'e1', 'e2', 'e3', 'b0', 'b1', 'b2', 'b3', 'h']) expect(segments).toContain(`${h.name.slice(1)}.${stage}`);
    for (let i = 0; i < count; i += 7) expect(h.get(all[i]!)?.entryId).toBe(ids[i]);
    expect(h.index.verify()).toBe('');
  });

  it('reuses freed slots from the free list before growing', () => {
    const h = new Harness(uniqueName(), false);
    h.index.open(false);
    const all = digests(300, 31);
    const ids = all.slice(0, 200).map((digest) => h.put(digest));
    expect(Math.max(...ids)).toBe(200);
    const freed = new Set(ids.filter((_, i) => i % 2 === 0));
    all.slice(0, 200).forEach((digest, i) => {
      if (i % 2 === 0) expect(h.index.removeEntry(ids[i]!)).toBe(1);
    });
    expect(h.index.count()).toBe(100);
    const reused = all.slice(200, 300).map((digest) => h.put(digest));
    for (const id of reused) expect(freed.has(id)).toBe(true);
    expect(h.index.stats().entryBytes).toBe(201 * 48);
    expect(h.index.readEntry(ids[1]!, 0)).toBe(0);
    expect(h.index.removeEntry(ids[1]!)).toBe(1);
    expect(h.exchange.previousU32(ENTRY_PARTITION_ID)).toBe((all[1]![0]! | (all[1]![1]! << 8)) & 0x0fff);
    expect(h.exchange.previousU32(ENTRY_ID)).toBe(ids[1]);
    expect(h.index.readEntry(ids[1]!, 0)).toBe(-1);
    expect(h.index.removeEntry(ids[1]!)).toBe(0);
    expect(h.index.verify()).toBe('');
  });
});

describe('record arena', () => {
  it('round-trips payloads of many sizes and returns dataBytes to 0 once all are removed', () => {
    const h = new Harness(uniqueName(), true, 3 << 20);
    h.index.open(false);
    const random = prng(41);
    const sizes = [0, 1, 7, 8, 15, 16, 17, 1000, 1016, 1017, 1024, 4096, 65_536, 1 << 20, (2 << 20) + 3];
    for (let i = 0; i < 3000; i++) sizes.push(random() < 0.9 ? (random() * 5000) | 0 : (random() * 300_000) | 0);
    const all = digests(sizes.length, 42);
    sizes.forEach((size, i) => h.put(all[i]!, { generation: i }, payloadFor(i, size)));
    expect(h.index.stats().dataBytes).toBeGreaterThan(sizes.reduce((a, b) => a + b, 0));
    // Every payload reads back intact, twice over after resizing half of them.
    const check = () =>
      sizes.forEach((size, i) => {
        const entry = h.get(all[i]!, READ_COPY_DATA)!;
        expect(entry.dataLength).toBe(size);
        if (!entry.payload!.equals(payloadFor(i, size))) throw new Error(`payload ${i} (${size} bytes) differs`);
      });
    check();
    sizes.forEach((size, i) => {
      if (i % 2 === 0) return;
      sizes[i] = (size * 3 + 5) % 70_000;
      h.put(all[i]!, {}, payloadFor(i, sizes[i]!));
      expect(h.exchange.previousU32(ENTRY_DATA_LENGTH)).toBe(size);
    });
    check();
    expect(h.index.verify()).toBe('');
    const stats = h.index.stats();
    expect(stats.arenaBytes).toBeGreaterThanOrEqual(stats.dataBytes);
    all.forEach((digest, i) => {
      expect(h.remove(digest)).toBe(1);
      expect(h.exchange.previousU32(ENTRY_DATA_LENGTH)).toBe(sizes[i]);
    });
    expect(h.index.stats().dataBytes).toBe(0);
    expect(h.index.stats().arenaBytes).toBe(stats.arenaBytes); // chunks go to free lists, not back
    expect(h.index.verify()).toBe('');
  });

  it('keeps the payload with UPSERT_KEEP_DATA and drops it with neither flag', () => {
    const h = new Harness(uniqueName(), true);
    h.index.open(false);
    const [digest] = digests(1, 43);
    h.put(digest!, { generation: 1 }, payloadFor(1, 300));
    h.put(digest!, { generation: 2 }, undefined, UPSERT_KEEP_DATA);
    expect(h.get(digest!, READ_COPY_DATA)).toMatchObject({ generation: 2, dataLength: 300, payload: payloadFor(1, 300) });
    h.put(digest!, { generation: 3 }, undefined, 0);
    expect(h.get(digest!, READ_COPY_DATA)).toMatchObject({ generation: 3, dataLength: 0 });
    expect(h.index.stats().dataBytes).toBe(0);
  });

  it('refuses a payload longer than DATA, and data on an index without withData', () => {
    const h = new Harness(uniqueName(), true, 4096);
    h.index.open(false);
    const [digest] = digests(1, 44);
    h.setDigest(digest!);
    h.exchange.setEntryU32(ENTRY_DATA_LENGTH, 4097);
    expect(() => h.index.upsert(UPSERT_STORE_DATA)).toThrow(RangeError);
    expect(h.index.count()).toBe(0);
    const plain = new Harness(uniqueName(), false);
    plain.index.open(false);
    plain.setDigest(digest!);
    plain.exchange.setEntryU32(ENTRY_DATA_LENGTH, 1);
    expect(() => plain.index.upsert(UPSERT_STORE_DATA)).toThrow(TypeError);
  });
});

describe('eviction', () => {
  it('evicts least recently used first; reads with READ_TOUCH_LRU and upserts refresh an entry', () => {
    const h = new Harness(uniqueName(), true);
    h.index.open(false);
    const all = digests(10, 51);
    all.forEach((digest, i) => h.put(digest, { generation: i }, payloadFor(i, 100)));
    h.get(all[0]!, READ_TOUCH_LRU); // 0 is now most recent
    h.get(all[1]!, 0); // no touch: 1 stays least recent
    h.put(all[2]!, { generation: 99 }, payloadFor(2, 100)); // an upsert touches
    expect(h.index.evictLru(-1, 3)).toBe(3);
    expect(h.exchange.entryU32(ENTRY_DATA_LENGTH)).toBe(300); // freed payload bytes
    const left = all.map((digest, i) => (h.get(digest) ? i : -1)).filter((i) => i >= 0);
    expect(left).toEqual([0, 2, 5, 6, 7, 8, 9]);
    // By bytes: stop as soon as dataBytes is at or under the target.
    const perEntry = h.index.stats().dataBytes / 7;
    expect(h.index.evictLru(perEntry * 4, 100)).toBe(3);
    expect(all.map((digest, i) => (h.get(digest) ? i : -1)).filter((i) => i >= 0)).toEqual([0, 2, 8, 9]);
    expect(h.index.evictLru(0, 100)).toBe(4);
    expect(h.index.count()).toBe(0);
    expect(h.index.verify()).toBe('');
  });

  it('evicts soonest-expiring first and never entries that never expire', () => {
    const h = new Harness(uniqueName(), true);
    h.index.open(false);
    const now = 1_800_000_000;
    const random = prng(52);
    const count = 2000;
    const all = digests(count, 53);
    const voidTimes = all.map((digest, i) => {
      const voidTime = i % 4 === 0 ? 0 : now + 1 + ((random() * 1_000_000) | 0); // wide range: bins wider than 1 s
      h.put(digest, { voidTime }, payloadFor(i, 50));
      return voidTime;
    });
    const expiring = voidTimes.filter((v) => v !== 0).sort((a, b) => a - b);
    expect(h.index.evictSoonestExpiring(-1, 100, now)).toBe(100);
    const survivors = voidTimes.filter((_, i) => h.get(all[i]!) !== undefined);
    const removed = expiring.slice(0, 100);
    expect(survivors.filter((v) => v !== 0).sort((a, b) => a - b)).toEqual(expiring.slice(100));
    expect(survivors.filter((v) => v === 0)).toHaveLength(count / 4);
    expect(removed).toHaveLength(100);
    // Ask for everything: all expiring entries go, never-expiring ones stay.
    expect(h.index.evictSoonestExpiring(0, 1_000_000, now)).toBe(expiring.length - 100);
    expect(h.index.count()).toBe(count / 4);
    expect(h.index.evictSoonestExpiring(0, 1_000_000, now)).toBe(0);
    expect(h.index.count()).toBe(count / 4);
    expect(h.index.verify()).toBe('');
  });

  it('evicts by bytes toward a target when expiring entries carry payloads', () => {
    const h = new Harness(uniqueName(), true);
    h.index.open(false);
    const all = digests(100, 54);
    all.forEach((digest, i) => h.put(digest, { voidTime: 1000 + i }, payloadFor(i, 1000)));
    const before = h.index.stats().dataBytes;
    const removed = h.index.evictSoonestExpiring(before / 2, 1000, 500);
    expect(h.index.stats().dataBytes).toBeLessThanOrEqual(before / 2);
    expect(removed).toBe(50);
    expect(h.exchange.entryU32(ENTRY_DATA_LENGTH)).toBe(50 * 1000);
    for (let i = 0; i < 100; i++) expect(h.get(all[i]!) !== undefined).toBe(i >= 50);
  });
});

describe('bounded slices', () => {
  it('sweepExpired removes only entries with 0 < void time <= now, in slices', () => {
    const h = new Harness(uniqueName(), true);
    h.index.open(false);
    const now = 1_800_000_000;
    const all = digests(5000, 61);
    const voidTimes = all.map((digest, i) => {
      const voidTime = [0, now - 10, now, now + 1][i % 4]!;
      h.put(digest, { voidTime }, payloadFor(i, 10));
      return voidTime;
    });
    let freed = 0;
    const removed = h.slices((cursor) => {
      const count = h.index.sweepExpired(now, cursor, 97);
      freed += h.exchange.entryU32(ENTRY_DATA_LENGTH);
      return count;
    });
    expect(removed).toBe(2500);
    expect(freed).toBe(2500 * 10);
    all.forEach((digest, i) => expect(h.get(digest) !== undefined).toBe(voidTimes[i] === 0 || voidTimes[i]! > now));
    expect(h.index.verify()).toBe('');
  });

  it('truncate removes entries of one set (or all) last updated before a time, in slices', () => {
    const h = new Harness(uniqueName(), false);
    h.index.open(false);
    const all = digests(3000, 62);
    all.forEach((digest, i) => h.put(digest, { setId: i % 3, lastUpdateMs: 1000 + i }));
    expect(h.slices((cursor) => h.index.truncate(1, 2000, cursor, 50))).toBe(333); // set 1, i < 1000
    all.forEach((digest, i) => expect(h.get(digest) !== undefined).toBe(!(i % 3 === 1 && i < 1000)));
    expect(h.slices((cursor) => h.index.truncate(-1, 3500, cursor, 1000))).toBe(2500 - 333);
    expect(h.index.count()).toBe(500);
    expect(h.index.verify()).toBe('');
  });

  it('scan with set and partition filters returns each entry that lives throughout exactly once', () => {
    const h = new Harness(uniqueName(), true, 64 * 10);
    h.index.open(false);
    const all = digests(4000, 63);
    all.slice(0, 3000).forEach((digest, i) => h.put(digest, { setId: 1 + (i % 2), generation: i }, payloadFor(i, i % 5)));
    const filter = h.exchange.u8.subarray(EX_PARTITION_FILTER, EX_PARTITION_FILTER + 512);
    const partitions = new Set<number>();
    for (let p = 0; p < 4096; p += 3) {
      partitions.add(p);
      filter[p >> 3]! |= 1 << (p & 7);
    }
    const partitionOf = (digest: Buffer) => (digest[0]! | (digest[1]! << 8)) & 0x0fff;
    const seen = new Map<string, number>();
    let churn = 3000;
    h.slices((cursor) => {
      const written = h.index.scan(cursor, 10, 2, true);
      for (let r = 0; r < written; r++) {
        const record = EX_DATA + r * SCAN_RECORD_BYTES;
        const digest = h.exchange.buffer.subarray(record, record + 20).toString('hex');
        seen.set(digest, (seen.get(digest) ?? 0) + 1);
        expect(h.exchange.buffer.readUInt32LE(record + SCAN_SET_ID)).toBe(2);
        expect(partitions.has(h.exchange.buffer.readUInt32LE(record + SCAN_PARTITION_ID))).toBe(true);
        const generation = h.exchange.buffer.readUInt32LE(record + SCAN_GENERATION);
        expect(h.exchange.buffer.readUInt32LE(record + SCAN_DATA_LENGTH)).toBe(generation < 3000 ? generation % 5 : 0);
        expect(h.exchange.buffer.readUInt32LE(record + SCAN_ENTRY_ID)).toBeGreaterThan(0);
      }
      // Churn between slices: remove set-1 entries (which the scan skips) and insert new set-2
      // entries, which may reuse the freed slots ahead of or behind the cursor.
      // The exchange is only valid until the next call: keep the cursor across the churn.
      const next = h.exchange.entryU32(ENTRY_ID);
      if (churn < 4000) {
        h.remove(all[(churn - 3000) * 2]!);
        h.put(all[churn]!, { setId: 2, generation: 100_000 + churn++ });
      }
      h.exchange.setEntryU32(ENTRY_ID, next);
      return written;
    });
    const expected = all.slice(0, 3000).filter((digest, i) => i % 2 === 1 && partitions.has(partitionOf(digest)));
    for (const digest of expected) expect(seen.get(digest.toString('hex'))).toBe(1);
    for (const count of seen.values()) expect(count).toBe(1);
    // Without filters every entry (set -1 = all sets) shows up once.
    let total = 0;
    h.slices((cursor) => {
      total += h.index.scan(cursor, 1000, -1, false);
      return 0;
    });
    expect(total).toBe(h.index.count());
  });
});

describe('warm attach and the header', () => {
  it('a separate process attaches to the shared segments and finds every entry and payload', async () => {
    const name = uniqueName();
    const h = new Harness(name, true);
    expect(h.index.open(true)).toBe(0);
    const all = digests(20_000, 71);
    const payloadBytes = all.map((_, i) => (i * 37) % 3000);
    all.forEach((digest, i) => h.put(digest, { generation: i + 1 }, payloadFor(i, payloadBytes[i]!)));
    h.index.writeMeta(Buffer.from('{"namespace":"cache"}'));
    h.index.setSignature(0x12345678, 0x9abcdef0);
    h.index.markClean(true);
    h.index.close(false);
    const addonFile = process.env.SHOAL_TEST_ADDON ?? addonPath();
    const child = fork(path.join(__dirname, 'fixtures', 'native-index-attach-child.js'), [addonFile, name, '1'], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const result = await new Promise<Record<string, unknown>>((resolve, reject) => {
      child.once('message', (message) => resolve(message as Record<string, unknown>));
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`child exited with ${code} before replying`)));
      child.send({ digests: all.map((digest) => digest.toString('hex')), payloadBytes });
    });
    expect(result).toMatchObject({
      open: 1,
      count: 20_000,
      found: 20_000,
      payloadsOk: 20_000,
      meta: '{"namespace":"cache"}',
      signature: [0x12345678, 0x9abcdef0],
      clean: true,
      verify: '',
    });
    // This process attaches again too, and the segments are still all there.
    const again = new Harness(name, true);
    expect(again.index.open(true)).toBe(1);
    expect(again.index.header()).toMatchObject({ formatVersion: 1, entries: 20_000, clean: true });
    expect(again.index.stats().dataBytes).toBeGreaterThan(0);
    again.index.close(true);
    expect(segmentsOf(name)).toEqual([]);
  });

  it('returns -1 for an incompatible header and leaves it alone', () => {
    const name = uniqueName();
    const h = new Harness(name, false);
    h.index.open(true);
    const [digest] = digests(1, 72);
    h.put(digest!);
    h.index.close(false);
    const withData = new Harness(name, true);
    expect(withData.index.open(true)).toBe(-1); // layout differs: no side table
    const plain = new Harness(name, false);
    expect(plain.index.open(true)).toBe(1);
    expect(plain.get(digest!)).toBeDefined();
    plain.index.close(false);
    // A damaged magic number is incompatible too.
    const headerPath = path.join(SHM, `${name.slice(1)}.h`);
    const fd = fs.openSync(headerPath, 'r+');
    fs.writeSync(fd, Buffer.from('garbage!'), 0, 8, 0);
    fs.closeSync(fd);
    const damaged = new Harness(name, false);
    expect(damaged.index.open(true)).toBe(-1);
    expect(fs.existsSync(headerPath)).toBe(true);
    // JS then drops it and opens fresh.
    damaged.index.close(true);
    expect(segmentsOf(name)).toEqual([]);
    expect(damaged.index.open(true)).toBe(0);
    expect(damaged.index.count()).toBe(0);
  });

  it('attach=false replaces existing segments; private memory leaves nothing in /dev/shm', () => {
    const name = uniqueName();
    const h = new Harness(name, false);
    h.index.open(true);
    h.put(digests(1, 73)[0]!);
    h.index.close(false);
    const fresh = new Harness(name, false);
    expect(fresh.index.open(false)).toBe(0);
    expect(fresh.index.count()).toBe(0);
    fresh.index.close(true);
    const privateName = uniqueName();
    const privateIndex = new Harness(privateName, true, 1 << 16, false);
    expect(privateIndex.index.open(true)).toBe(0);
    privateIndex.put(digests(1, 74)[0]!, {}, payloadFor(0, 100));
    expect(privateIndex.index.count()).toBe(1);
    expect(segmentsOf(privateName)).toEqual([]);
    privateIndex.index.close(true);
  });

  it('round-trips the meta blob and header fields, and refuses an oversized blob', () => {
    const h = new Harness(uniqueName(), false);
    h.index.open(false);
    expect(h.index.readMeta().length).toBe(0);
    const meta = crypto.randomBytes(256 * 1024);
    h.index.writeMeta(meta);
    expect(h.index.readMeta().equals(meta)).toBe(true);
    expect(() => h.index.writeMeta(Buffer.alloc(256 * 1024 + 1))).toThrow(RangeError);
    expect(h.index.readMeta().equals(meta)).toBe(true);
    const header = h.index.header();
    expect(header).toMatchObject({ formatVersion: 1, clean: false, signatureHigh: 0, signatureLow: 0, entries: 0 });
    expect(Math.abs(header.createdMs - Date.now())).toBeLessThan(60_000);
    h.index.markClean(true);
    h.index.setSignature(1, 2);
    expect(h.index.header()).toMatchObject({ clean: true, signatureHigh: 1, signatureLow: 2 });
  });
});

describe('bad input throws, never crashes', () => {
  it('validates constructor options', () => {
    const exchange = new Exchange(4096).buffer;
    const make = (options: Record<string, unknown>) => () =>
      new native.PrimaryIndex({ name: uniqueName(), shared: true, exchange, withData: false, ...options } as never);
    expect(make({ name: 'no-slash' })).toThrow(TypeError);
    expect(make({ name: '/a/b' })).toThrow(TypeError);
    expect(make({ name: `/${'x'.repeat(300)}` })).toThrow(TypeError);
    expect(make({ name: 42 })).toThrow(TypeError);
    expect(make({ shared: 'yes' })).toThrow(TypeError);
    expect(make({ exchange: 'not a buffer' })).toThrow(TypeError);
    expect(make({ exchange: Buffer.alloc(100) })).toThrow(RangeError);
    expect(() => new native.PrimaryIndex(undefined as never)).toThrow(TypeError);
    expect(() => native.unlinkIndexSegments('bad')).toThrow(TypeError);
  });

  it('refuses calls before open with code NOT_OPEN', () => {
    const h = new Harness(uniqueName(), false);
    expect(() => h.index.read(0)).toThrow(expect.objectContaining({ code: 'NOT_OPEN' }));
    expect(() => h.index.count()).toThrow(expect.objectContaining({ code: 'NOT_OPEN' }));
    h.index.open(false);
    expect(() => h.index.open(false)).toThrow(Error);
    h.index.close(false);
    h.index.close(false); // idempotent
    expect(() => h.index.upsert(0)).toThrow(expect.objectContaining({ code: 'NOT_OPEN' }));
  });

  it('validates arguments and ENTRY fields', () => {
    const h = new Harness(uniqueName(), false);
    h.index.open(false);
    const [digest] = digests(1, 81);
    const id = h.put(digest!);
    expect(() => h.index.read('x' as never)).toThrow(TypeError);
    expect(() => h.index.read(NaN)).toThrow(RangeError);
    expect(() => h.index.read(64)).toThrow(RangeError);
    expect(() => h.index.read(-1)).toThrow(RangeError);
    expect(() => h.index.readEntry(0, 0)).toThrow(RangeError);
    expect(() => h.index.readEntry(id + 1, 0)).toThrow(RangeError);
    expect(() => h.index.readEntry(2 ** 40, 0)).toThrow(RangeError);
    expect(() => h.index.removeEntry(1.5)).toThrow(RangeError);
    expect(() => h.index.upsert(3)).toThrow(RangeError);
    expect(() => h.put(digest!, { setId: 4096 })).toThrow(RangeError);
    expect(() => h.put(digest!, { flags: 16 })).toThrow(RangeError);
    expect(() => h.put(digest!, { lastUpdateMs: -1 })).toThrow(RangeError);
    expect(() => h.put(digest!, { lastUpdateMs: NaN })).toThrow(RangeError);
    expect(() => h.put(digest!, { lastUpdateMs: 2 ** 48 })).toThrow(RangeError);
    expect(() => h.index.scan(0, 0, -1, false)).toThrow(RangeError);
    expect(() => h.index.scan(0, 10, 4096, false)).toThrow(RangeError);
    expect(() => h.index.scan(0, 10, -2, false)).toThrow(RangeError);
    expect(() => h.index.sweepExpired(0, 0, 0)).toThrow(RangeError);
    expect(() => h.index.truncate(0, NaN, 0, 10)).toThrow(RangeError);
    expect(() => h.index.evictLru(0, 10)).toThrow(TypeError); // no LRU list without data
    expect(() => h.index.writeMeta('meta' as never)).toThrow(TypeError);
    expect(() => h.index.setSignature(-1, 0)).toThrow(RangeError);
    expect(() => h.index.markClean(1 as never)).toThrow(TypeError);
    // The failed calls changed nothing.
    expect(h.index.count()).toBe(1);
    expect(h.get(digest!)?.entryId).toBe(id);
    expect(h.index.verify()).toBe('');
  });
});
