/**
 * How collections are stored (docs/record-payload.md): plain bins keep payload format 1, byte
 * for byte what msgpackr writes; ordered lists and maps and maps with keys that are not strings
 * make format 2, stored sorted with their order flags, which survive every restart, puts that
 * merge other bins, and a read-modify-write of the value. A payload Shoal cannot read is
 * CORRUPTION, never a misread.
 */
import { describe, expect, it } from 'vitest';
import { Db, ErrorCode, ListOrder, MapOrder, ReturnType, op } from '../lib/index';
import { digestOf } from '../lib/model/digest';
import { decodePayloadBins, encodePayload, packr } from '../lib/model/bins';
import type { Namespace } from '../lib/namespace/namespace';
import { CdtKind, cdtKey, openCdtDb } from './helpers/cdt';
import { useDbCleanup } from './helpers/db';
import { tempDir } from './helpers/temp';

useDbCleanup(['cdt']);

/** The stored payload of a record (format byte first), through the namespace's replication hook. */
async function payloadOf(db: Db, key: ReturnType<typeof cdtKey>): Promise<Buffer> {
  const ns = (db as unknown as { namespaces: Map<string, Namespace> }).namespaces.get('cdt')!;
  const version = await ns.readVersion(digestOf(key.set, key.key));
  return version!.payload!;
}

describe('payload formats', () => {
  it('plain bins are format 1, the bytes msgpackr writes; ordered collections and non-string keys are format 2', () => {
    const target = Buffer.alloc(4096);
    const plain = { s: 'x', n: [1, 2.5, 'y', { z: [true, null] }], o: { a: 1 } };
    let length = encodePayload(target, 0, target.length, plain as never, 0, undefined);
    expect(target[0]).toBe(1);
    expect(target.subarray(4, length).equals(packr.pack(plain))).toBe(true);
    expect(decodePayloadBins(target, 0, length)).toEqual(plain);

    length = encodePayload(target, 0, target.length, { m: new Map([[1, 'a']]) } as never, 0, undefined);
    expect(target[0]).toBe(2);
    expect(decodePayloadBins(target, 0, length)).toEqual({ m: new Map([[1, 'a']]) });
  });

  it('an unknown format, or a format-2 payload cut short, is CORRUPTION', () => {
    const target = Buffer.alloc(256);
    const length = encodePayload(target, 0, target.length, { m: new Map([[1, 'a']]) } as never, 0, undefined);
    expect(() => decodePayloadBins(target, 0, length - 1)).toThrow(expect.objectContaining({ code: ErrorCode.CORRUPTION }));
    target[0] = 3;
    expect(() => decodePayloadBins(target, 0, length)).toThrow(expect.objectContaining({ code: ErrorCode.CORRUPTION }));
  });

  for (const kind of ['memory', 'device'] as CdtKind[]) {
    it(`${kind}: records written before ordered collections read and change as before`, async () => {
      const db = await openCdtDb(kind);
      const key = cdtKey('old');
      await db.put(key, { list: [3, 1], map: { b: 1, a: 2 }, n: 1 });
      await db.operate(key, [op.list.append('list', 2), op.map.put('map', 'c', 3), op.incr('n', 1)]);
      expect((await payloadOf(db, key))[0]).toBe(1);
      expect((await db.get(key))!.bins).toEqual({ list: [3, 1, 2], map: { b: 1, a: 2, c: 3 }, n: 2 });
    });

    it(`${kind}: an ordered list is stored sorted with its flags (ext c7 00 01), format 2`, async () => {
      const db = await openCdtDb(kind);
      const key = cdtKey('ordered');
      await db.operate(key, [op.list.appendItems('l', [3, 1, 2], { order: ListOrder.ORDERED })]);
      const payload = await payloadOf(db, key);
      expect(payload[0]).toBe(2);
      // bins map {l: [ext(flags 1), 1, 2, 3]}
      expect(payload.subarray(4).toString('hex')).toBe('81a16c94c70001010203');
    });
  }
});

describe('order flags survive', () => {
  async function ordered(db: Db, key: ReturnType<typeof cdtKey>): Promise<void> {
    await db.operate(key, [
      op.list.appendItems('l', [5, 1, 3], { order: ListOrder.ORDERED }),
      op.map.putItems('m', { c: 1, a: 2 }, { order: MapOrder.KEY_ORDERED }),
    ]);
  }

  async function expectOrdered(db: Db, key: ReturnType<typeof cdtKey>): Promise<void> {
    const result = await db.operate(key, [op.list.append('l', 2), op.read('l')]);
    expect(result.bins.l).toEqual([1, 2, 3, 5]);
    await db.operate(key, [op.map.put('m', 'b', 3)]);
    expect(Object.keys((await db.get(key))!.bins.m as object)).toEqual(['a', 'b', 'c']);
  }

  for (const kind of ['memory', 'device', 'deviceInMemory'] as CdtKind[]) {
    it(`${kind}: a restart`, async () => {
      const dataDir = tempDir();
      let db = await openCdtDb(kind, dataDir);
      const key = cdtKey('restart');
      await ordered(db, key);
      await db.close();
      db = await openCdtDb(kind, dataDir);
      await expectOrdered(db, key);
    });
  }

  it('device: a cold start (the index rebuilt from the device)', async () => {
    const dataDir = tempDir();
    let db = await openCdtDb('device', dataDir);
    const key = cdtKey('cold');
    await ordered(db, key);
    await db.close({ dropIndex: true });
    db = await openCdtDb('device', dataDir);
    expect(db.stats().namespaces.cdt!.startMode).toBe('cold');
    await expectOrdered(db, key);
  });

  for (const kind of ['memory', 'device'] as CdtKind[]) {
    it(`${kind}: a put that merges other bins, and a put of the value read back after editing it`, async () => {
      const db = await openCdtDb(kind);
      const key = cdtKey('merge');
      await ordered(db, key);
      await db.put(key, { other: 1 });
      await expectOrdered(db, key);
      // Read, edit as a plain array (unsorted), write back: stored sorted again, still ordered.
      const list = (await db.get(key))!.bins.l as number[];
      list.push(0);
      await db.put(key, { l: list });
      expect((await db.operate(key, [op.list.getByIndex('l', 0), op.list.getByRank('l', 0, ReturnType.INDEX)])).bins.l).toBe(0);
      expect((await db.get(key))!.bins.l).toEqual([0, 1, 2, 3, 5]);
      // A fresh array written over it is an unordered list.
      await db.put(key, { l: [9, 8] });
      expect((await db.operate(key, [op.list.append('l', 7), op.read('l')])).bins.l).toEqual([9, 8, 7]);
    });
  }
});
