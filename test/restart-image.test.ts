/**
 * The sliced index image (native/index_image.cc; docs/storage.md, "Restart after a crash"):
 * an image written by its worker thread while the JS thread removes, inserts and updates
 * entries must load into a fresh index with exactly the structure of the moment it started:
 * every entry live then is there (with its fields of then, or of an update made during the
 * copy), nothing inserted or removed later shows, every chain is whole (verify()); the loader
 * drops the entries of blocks not kept and counts the others' bytes per block; a damaged piece
 * or a torn file is refused; no entry is copied half-updated. Real files and private index
 * memory; cleaned up afterwards.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { addon, type NativePrimaryIndex } from '../lib/native/addon';
import { ENTRY_GENERATION, ENTRY_LAST_UPDATE_MS, ENTRY_LOCATION_HIGH, ENTRY_LOCATION_LOW, Exchange } from '../lib/native/exchange';
import { locationBlock, locationHigh, locationLow, locationSize } from '../lib/storage/format';
import { cleanupTempDirs, tempDir } from './helpers/temp';

const native = addon();
const OFFSET = 4096;
const BLOCKS = 32;
const STALE_BLOCK = 31; // not kept: its entries must be dropped
const indexes: NativePrimaryIndex[] = [];
afterAll(() => {
  for (const index of indexes) index.close(true);
  cleanupTempDirs([]);
});

class Index {
  readonly exchange = new Exchange(1 << 16);
  readonly index: NativePrimaryIndex;
  constructor(shared = false) {
    this.index = new native.PrimaryIndex({ name: `/shoal-image-${process.pid}-${crypto.randomBytes(4).toString('hex')}`, shared, exchange: this.exchange.buffer, withData: false });
    this.index.open(false);
    indexes.push(this.index);
  }
  put(digest: Buffer, generation: number, block: number): void {
    const e = this.exchange;
    e.setDigest(digest);
    e.setEntryU32(ENTRY_GENERATION, generation);
    e.setEntryF64(ENTRY_LAST_UPDATE_MS, 1_700_000_000_000);
    e.setEntryU32(ENTRY_LOCATION_LOW, locationLow(16 * (generation % 1000), 128));
    e.setEntryU32(ENTRY_LOCATION_HIGH, locationHigh(0, block, 128));
    this.index.upsert(0);
  }
  get(digest: Buffer): { generation: number; high: number; low: number } | undefined {
    this.exchange.setDigest(digest);
    if (this.index.read(0) < 0) return undefined;
    return { generation: this.exchange.entryU32(ENTRY_GENERATION), high: this.exchange.entryU32(ENTRY_LOCATION_HIGH), low: this.exchange.entryU32(ENTRY_LOCATION_LOW) };
  }
  remove(digest: Buffer): void {
    this.exchange.setDigest(digest);
    this.index.remove();
  }
}

function digest(i: number): Buffer {
  return crypto.createHash('sha1').update(`key-${i}`).digest();
}

async function load(file: string, crcs: Uint32Array, bytes: number, shared = false): Promise<{ target: Index; outcome: Awaited<ReturnType<NativePrimaryIndex['loadImageFile']>>; live: Float64Array }> {
  const target = new Index(shared);
  const kept = new Uint8Array(BLOCKS).fill(1);
  kept[STALE_BLOCK] = 0;
  const live = new Float64Array(BLOCKS);
  const handle = await fs.promises.open(file, 'r');
  try {
    const outcome = await target.index.loadImageFile(handle.fd, OFFSET, bytes, crcs, kept, 1, BLOCKS, live);
    return { target, outcome, live };
  } finally {
    await handle.close();
  }
}

describe('the sliced index image', () => {
  it('keeps the structure of its start while the JS thread removes, inserts and updates during the copy', async () => {
    const dir = tempDir('shoal-image-');
    const file = path.join(dir, 'image');
    const source = new Index();
    const count = 60_000;
    // At the start: `count` entries, generation 1, blocks 0..31 (block 31 is the stale one).
    for (let i = 0; i < count; i++) source.put(digest(i), 1, i % BLOCKS);
    const atStart = source.index.count();
    const handle = await fs.promises.open(file, 'w');
    const removed = new Set<number>();
    const updated = new Map<number, number>();
    let inserted = count;
    let written: { crcs: Buffer; bytes: number; pieces: number };
    try {
      let done = false;
      // 2 ms a piece: ~80 pieces, so the copy spans ~160 ms of the changes below.
      const writing = source.index.writeImage(handle.fd, OFFSET, 2000).finally(() => (done = true));
      expect(source.index.imageProgress()).not.toBeNull();
      let turns = 0;
      let sawPartWay = false;
      while (!done) {
        for (let n = 0; n < 20; n++) {
          const pick = Math.floor(Math.random() * count);
          const what = Math.random();
          if (what < 0.3 && !removed.has(pick)) {
            source.remove(digest(pick));
            removed.add(pick);
          } else if (what < 0.6) {
            source.put(digest(inserted++), 7, 3); // new keys: slots from the free list and past the end, bucket heads
          } else if (!removed.has(pick)) {
            const generation = 2 + (updated.get(pick) ?? 0);
            source.put(digest(pick), generation, 5); // in place
            updated.set(pick, generation - 1);
          }
        }
        const progress = source.index.imageProgress();
        if (progress !== null && progress[0] > 0 && progress[0] < progress[1]) sawPartWay = true;
        turns++;
        await new Promise((resolve) => setTimeout(resolve, 1)); // the worker copies meanwhile
      }
      written = await writing;
      expect(sawPartWay, 'changes were made while the copy was part-way').toBe(true);
      expect(turns).toBeGreaterThan(5);
    } finally {
      await handle.close();
    }
    expect(source.index.imageProgress()).toBeNull();
    expect(source.index.verify()).toBe('');
    expect(removed.size).toBeGreaterThan(20);
    const crcs = new Uint32Array(written.crcs.buffer.slice(written.crcs.byteOffset, written.crcs.byteOffset + written.crcs.length));
    expect(crcs.length).toBe(written.pieces);

    const { target, outcome, live } = await load(file, crcs, written.bytes);
    expect(outcome.refusal).toBe('');
    expect(target.index.verify()).toBe('');
    // The stale block's entries are dropped, but for those whose copy caught an update (moved to block 5).
    const inStale = Math.ceil((count - STALE_BLOCK) / BLOCKS);
    const updatedInStale = [...updated.keys()].filter((i) => i % BLOCKS === STALE_BLOCK).length;
    expect(outcome.stale).toBeLessThanOrEqual(inStale);
    expect(outcome.stale).toBeGreaterThanOrEqual(inStale - updatedInStale);
    expect(target.index.count()).toBe(atStart - outcome.stale);
    const counted = new Float64Array(BLOCKS);
    for (let i = 0; i < count; i++) {
      const entry = target.get(digest(i));
      if (i % BLOCKS === STALE_BLOCK && !updated.has(i)) {
        expect(entry, `key ${i} of the stale block`).toBeUndefined();
        continue;
      }
      if (i % BLOCKS === STALE_BLOCK && entry === undefined) continue; // its copy may predate the update
      // Every entry live at the start is there, removed during the copy or not.
      expect(entry, `key ${i}`).toBeDefined();
      // Its fields are those of the start or of an update made during the copy.
      if (entry!.generation === 1) expect(locationBlock(entry!.high)).toBe(i % BLOCKS);
      else expect(updated.has(i) && locationBlock(entry!.high) === 5, `key ${i}: generation ${entry!.generation}`).toBe(true);
      counted[locationBlock(entry!.high)] += locationSize(entry!.low, entry!.high);
    }
    // Nothing inserted during the copy is there.
    for (let i = count; i < inserted; i++) expect(target.get(digest(i)), `new key ${i}`).toBeUndefined();
    expect(Array.from(live)).toEqual(Array.from(counted));
  }, 60_000);

  it('never copies an entry half-updated: an in-place update waits for the copy of its piece', async () => {
    // The worker copies each piece in two parts, 40 bytes into entry slot 512 (its location:
    // generation, void time and last update before the pause, the location after), and sleeps
    // 3 ms between them, while the JS thread rewrites slot 512 of every piece in place with a
    // new generation and a location derived from it. An update landing in the pause would give
    // the image the old generation with the new location (the unguarded copy did, in nearly
    // every piece).
    const dir = tempDir('shoal-image-');
    const file = path.join(dir, 'image');
    const source = new Index();
    const pieces = 16;
    const slot = 512;
    for (let i = 0; i < pieces * 1024; i++) source.put(digest(i), 1, 2); // digest i has entry id i + 1
    const hammered = Array.from({ length: pieces }, (_, piece) => piece * 1024 + slot - 1);
    const handle = await fs.promises.open(file, 'w');
    let written: Awaited<ReturnType<NativePrimaryIndex['writeImage']>>;
    let generation = 1;
    try {
      let done = false;
      const writing = source.index.writeImage(handle.fd, OFFSET, 3000, slot * 48 + 40).finally(() => (done = true));
      while (!done) {
        for (const i of hammered) source.put(digest(i), ++generation, 2);
        await new Promise((resolve) => setImmediate(resolve));
      }
      written = await writing;
    } finally {
      await handle.close();
    }
    expect(generation, 'updates made during the copy').toBeGreaterThan(10 * pieces);
    expect(written.jsWaits, 'updates that waited for the copy of their piece').toBeGreaterThan(0);
    expect(written.jsWaitMaxUs).toBeGreaterThan(1000); // a wait spans the worker's 3 ms pause
    expect(written.jsPieces).toBe(0); // no structural change: the JS thread wrote no piece itself
    const crcs = new Uint32Array(written.crcs.buffer.slice(written.crcs.byteOffset, written.crcs.byteOffset + written.crcs.length));
    const { target, outcome } = await load(file, crcs, written.bytes);
    expect(outcome.refusal).toBe('');
    const torn: string[] = [];
    for (const i of hammered) {
      const entry = target.get(digest(i))!;
      if (entry.low !== locationLow(16 * (entry.generation % 1000), 128)) torn.push(`key ${i}: generation ${entry.generation}, location low ${entry.low}`);
    }
    expect(torn, 'entries copied half-updated').toEqual([]);
  }, 60_000);

  it('loads into shared memory across segment stages (written through the segment files) exactly what it holds', async () => {
    // 200,000 entries span entry stages 0-1 (64 Ki, 128 Ki) and more than one bucket stage:
    // a run of pieces must never cross from one stage's file into the next.
    const dir = tempDir('shoal-image-');
    const file = path.join(dir, 'image');
    const source = new Index();
    const count = 200_000;
    for (let i = 0; i < count; i++) source.put(digest(i), 1 + (i % 7), i % 8);
    for (let i = 0; i < count; i += 5) source.remove(digest(i)); // free slots inside the image
    const handle = await fs.promises.open(file, 'w');
    const written = await source.index.writeImage(handle.fd, OFFSET, 0).finally(() => handle.close());
    const crcs = new Uint32Array(written.crcs.buffer.slice(written.crcs.byteOffset, written.crcs.byteOffset + written.crcs.length));
    const { target, outcome } = await load(file, crcs, written.bytes, true);
    expect(outcome.refusal).toBe('');
    expect(target.index.verify()).toBe('');
    expect(target.index.count()).toBe(source.index.count());
    for (let i = 0; i < count; i++) {
      const entry = target.get(digest(i));
      if (i % 5 === 0) expect(entry, `removed key ${i}`).toBeUndefined();
      else expect(entry?.generation, `key ${i}`).toBe(1 + (i % 7));
    }
    target.put(digest(count), 9, 1); // and it goes on growing
    expect(target.get(digest(count))?.generation).toBe(9);
    expect(target.index.verify()).toBe('');
  }, 60_000);

  it('refuses a damaged piece and a torn file', async () => {
    const dir = tempDir('shoal-image-');
    const file = path.join(dir, 'image');
    const source = new Index();
    for (let i = 0; i < 5000; i++) source.put(digest(i), 1, i % 8);
    const handle = await fs.promises.open(file, 'w');
    const written = await source.index.writeImage(handle.fd, OFFSET, 0).finally(() => handle.close());
    const crcs = new Uint32Array(written.crcs.buffer.slice(written.crcs.byteOffset, written.crcs.byteOffset + written.crcs.length));
    expect((await load(file, crcs, written.bytes)).outcome.refusal).toBe('');
    const bytes = fs.readFileSync(file);
    bytes[OFFSET + 104 + 48 * 3000 + 7] ^= 0x04; // inside entry 3000's piece
    fs.writeFileSync(file, bytes);
    const damaged = (await load(file, crcs, written.bytes)).outcome;
    expect(damaged.damaged).toBe(true);
    expect(damaged.refusal).toMatch(/checksum of piece 3 /);
    bytes[OFFSET + 104 + 48 * 3000 + 7] ^= 0x04;
    fs.writeFileSync(file, bytes.subarray(0, OFFSET + written.bytes - 100));
    const torn = (await load(file, crcs, written.bytes)).outcome;
    expect(torn.refusal).toMatch(/^torn/);
    expect(() => source.index.writeImage(-1 as never, OFFSET, 0)).toThrow(RangeError);
  }, 30_000);
});
