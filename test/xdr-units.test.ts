/**
 * XDR's pieces on their own (docs/xdr.md): the positions file and the removal journal against
 * damage a crash or a careless hand can do, the `xdr` option's checks, and a destination node
 * fed hostile ship messages over a real admin connection (it refuses them and stays up).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AdminClient } from '../lib/cluster/admin-client';
import { packVersions } from '../lib/cluster/batch-wire';
import { versionsToWire } from '../lib/cluster/peer-checks';
import { PARTITION_COUNT } from '../lib/constants';
import type { Db } from '../lib/db';
import { open } from '../lib/open';
import { digestOf } from '../lib/model/digest';
import { decodePositions, encodePositions, loadPositions, positionsPath, savePositions } from '../lib/xdr/positions';
import { RecordMap } from '../lib/xdr/record-map';
import { RemovalJournal } from '../lib/xdr/removals';
import { cleanupTempDirs, tempDir } from './helpers/temp';

const dbs: Db[] = [];
afterEach(async () => {
  await Promise.all(dbs.splice(0).map((db) => db.close().catch(() => undefined)));
  cleanupTempDirs();
});

/** A packed list with its count field replaced. */
function withCount(packed: Buffer, count: number): Buffer {
  const copy = Buffer.from(packed);
  copy.writeUInt32LE(count, 0);
  return copy;
}

/** A packed list with one byte replaced. */
function withByte(packed: Buffer, at: number, value: number): Buffer {
  const copy = Buffer.from(packed);
  copy[at] = value;
  return copy;
}

function tombstone(key: string, lastUpdateMs: number) {
  return { digest: digestOf('s', key), gen: 3, voidTime: 0, lastUpdateMs, setName: 's', tombstone: true, payload: undefined };
}

describe('RecordMap (the shipper queue)', () => {
  it('tells apart records that share a bucket (same first 30 bits), in any namespace, through set, get, delete and iteration', () => {
    // Four digests alike in their first four bytes but for the two top bits of byte 3 (outside the 30-bit bucket), and after them.
    const digest = (tail: number, top = 0) => Buffer.from([1, 2, 3, 4 | (top << 6), ...new Array(15).fill(0), tail]);
    const map = new RecordMap<{ ns: string; digest: Buffer; n: number }>();
    const entries = [
      { ns: 'a', digest: digest(1), n: 1 },
      { ns: 'a', digest: digest(2), n: 2 },
      { ns: 'b', digest: digest(1), n: 3 },
      { ns: 'a', digest: digest(1, 3), n: 4 },
      { ns: 'a', digest: Buffer.from([9, ...new Array(19).fill(0)]), n: 5 },
    ];
    for (const entry of entries) map.set(entry);
    expect(map.size).toBe(5);
    for (const entry of entries) expect(map.get(entry.ns, Buffer.from(entry.digest))?.n).toBe(entry.n);
    expect(map.get('c', digest(1))).toBeUndefined();
    expect(map.get('a', digest(3))).toBeUndefined();
    // Replacing keeps the count.
    map.set({ ns: 'a', digest: digest(2), n: 20 });
    expect(map.size).toBe(5);
    expect(map.get('a', digest(2))?.n).toBe(20);
    expect([...map.values()].map((e) => e.n).sort((x, y) => x - y)).toEqual([1, 3, 4, 5, 20]);
    // Deleting while iterating: every value is visited once.
    const visited: number[] = [];
    for (const entry of map.values()) {
      visited.push(entry.n);
      expect(map.delete(entry.ns, entry.digest)?.n).toBe(entry.n);
    }
    expect(visited.sort((x, y) => x - y)).toEqual([1, 3, 4, 5, 20]);
    expect(map.size).toBe(0);
    expect(map.first()).toBeUndefined();
    expect(map.delete('a', digest(1))).toBeUndefined();
  });
});

describe('positions file', () => {
  it('round-trips, and a damaged file is kept aside and means "ship everything again", never a later position', () => {
    const dir = tempDir();
    const file = positionsPath(dir, 'dc2');
    const values = new Float64Array(PARTITION_COUNT).map((_, p) => 1_700_000_000_000 + p);
    savePositions(file, new Map([['test', values]]), 0o600);
    const logs: string[] = [];
    expect(loadPositions(file, (m) => logs.push(m))!.get('test')).toEqual(values);
    // One flipped byte: the checksum refuses it.
    const bytes = fs.readFileSync(file);
    bytes[100] ^= 0xff;
    fs.writeFileSync(file, bytes);
    const loaded = loadPositions(file, (m) => logs.push(m));
    expect(loaded!.size).toBe(0);
    expect(fs.existsSync(`${file}.unreadable`)).toBe(true);
    expect(logs.join('\n')).toMatch(/checksum does not match/);
    expect(decodePositions(encodePositions(new Map([['test', values]])).subarray(0, 50))).toMatch(/not a Shoal XDR positions file|checksum/);
    expect(loadPositions(path.join(dir, 'none.positions'), () => undefined)).toBeUndefined();
  });
});

describe('removal journal', () => {
  it('keeps removals across a reopen and drops a torn last entry (a kill mid-append) without losing the others', () => {
    const dir = tempDir();
    const logs: string[] = [];
    const journal = new RemovalJournal(dir, 0o600, (m) => logs.push(m));
    for (let i = 0; i < 50; i++) journal.append('test', tombstone(`k${i}`, 1000 + i));
    journal.close();
    const file = path.join(dir, 'xdr', 'removals.journal');
    fs.appendFileSync(file, Buffer.from([60, 0, 0, 0, 1, 2, 3]));
    const reopened = new RemovalJournal(dir, 0o600, (m) => logs.push(m));
    expect(logs.join('\n')).toMatch(/torn entry/);
    let count = 0;
    for (let p = 0; p < PARTITION_COUNT; p++) count += reopened.removalsSince('test', p, 0).length;
    expect(count).toBe(50);
    const one = tombstone('k7', 1007);
    const partition = (one.digest[0]! | (one.digest[1]! << 8)) & (PARTITION_COUNT - 1);
    expect(reopened.removalsSince('test', partition, 1007).some((v) => v.digest.equals(one.digest) && v.gen === 3)).toBe(true);
    expect(reopened.removalsSince('test', partition, 1008).some((v) => v.digest.equals(one.digest))).toBe(false);
    // Appends after the repair read back too.
    reopened.append('test', tombstone('after', 5000));
    reopened.close();
    const third = new RemovalJournal(dir, 0o600, () => undefined);
    count = 0;
    for (let p = 0; p < PARTITION_COUNT; p++) count += third.removalsSince('test', p, 0).length;
    expect(count).toBe(51);
    third.close();
  });
});

function clusterOptions(dataDir: string, clusterName: string, xdr?: unknown) {
  return {
    dataDir,
    sharedMemoryIndex: false,
    handleSignals: false,
    log: () => undefined,
    namespaces: [{ name: 'test', storage: { type: 'memory' as const, maxBytes: 64 << 20 } }],
    cluster: { clusterName, listen: { host: '127.0.0.1', port: 0 }, seeds: [], heartbeatIntervalMs: 50, heartbeatTimeout: 10 },
    xdr: xdr as never,
  };
}

describe('the xdr option', () => {
  it('refuses malformed destinations with errors that name the field', async () => {
    const dir = tempDir();
    const destination = { name: 'dc2', seeds: ['127.0.0.1:7201'], namespaces: ['test'], clusterName: 'dc2' };
    const cases: [unknown, RegExp][] = [
      [{ destinations: 'dc2' }, /xdr.destinations must be an array/],
      [{ destinations: [{ ...destination, name: 'a b' }] }, /name must be/],
      [{ destinations: [{ ...destination, seeds: [] }] }, /seeds must be/],
      [{ destinations: [{ ...destination, seeds: ['nohost'] }] }, /a seed is "host:port"/],
      [{ destinations: [{ ...destination, namespaces: ['other'] }] }, /which this database does not have/],
      [{ destinations: [{ ...destination, rewind: 'some' }] }, /rewind must be/],
      [{ destinations: [destination, destination] }, /configured twice/],
      [{ destinations: [{ ...destination, clusterName: 'dc1' }] }, /this cluster's own/],
    ];
    for (const [xdr, message] of cases) await expect(open(clusterOptions(dir, 'dc1', xdr))).rejects.toThrow(message);
    // Without cluster mode.
    await expect(open({ ...clusterOptions(dir, 'dc1', { destinations: [destination] }), cluster: undefined })).rejects.toThrow(/xdr needs cluster mode/);
  });
});

describe('a destination fed hostile ship messages', () => {
  it('refuses each with an error reply, applies nothing, and keeps serving', async () => {
    const db = await open(clusterOptions(tempDir(), 'dc2'));
    dbs.push(db);
    const client = await AdminClient.connect(db.cluster!.address, { clusterName: 'dc2' });
    const good = { digest: digestOf('s', 'k'), gen: 1, voidTime: 0, lastUpdateMs: Date.now(), setName: 's', tombstone: false, payload: Buffer.from([0, 0, 0, 0, 0x80]) };
    const hostile: [Record<string, unknown>, RegExp][] = [
      [{ ns: 'test', versions: versionsToWire([good]) }, /no source cluster name/],
      [{ source: 'dc1', ns: 'nope', versions: [] }, /does not have/],
      [{ source: 'dc1', ns: 'test', versions: 'x' }, /no list of record versions/],
      [{ source: 'dc1', ns: 'test', versions: [1, 2, 3] }, /no list of record versions/],
      [{ source: 'dc1', ns: 'test', versions: versionsToWire([{ ...good, digest: Buffer.alloc(3) }]) }, /20-byte digest/],
      [{ source: 'dc1', ns: 'test', versions: versionsToWire([{ ...good, gen: 0 }]) }, /generation/],
      [{ source: 'dc1', ns: 'test', versions: versionsToWire([{ ...good, payload: Buffer.from('garbage that is no payload') }]) }, /payload/],
      [{ source: 'dc1', ns: 'test', versions: new Array(7 * 2000).fill(0) }, /more than 1024 record versions/],
      // The packed form shippers send (lib/cluster/batch-wire.ts), forged.
      [{ source: 'dc1', ns: 'test', packed: 'x' }, /no packed list/],
      [{ source: 'dc1', ns: 'test', packed: Buffer.alloc(2) }, /no packed list/],
      [{ source: 'dc1', ns: 'test', packed: withCount(packVersions([good]), 2000) }, /more than 1024 record versions/],
      [{ source: 'dc1', ns: 'test', packed: withCount(packVersions([good]), 3) }, /shorter than its count/],
      [{ source: 'dc1', ns: 'test', packed: packVersions([good]).subarray(0, 30) }, /runs past the end|shorter than its count/],
      [{ source: 'dc1', ns: 'test', packed: Buffer.concat([packVersions([good]), Buffer.alloc(5)]) }, /bytes past its last version/],
      [{ source: 'dc1', ns: 'test', packed: packVersions([{ ...good, gen: 0 }]) }, /generation/],
      [{ source: 'dc1', ns: 'test', packed: packVersions([{ ...good, lastUpdateMs: -5 }]) }, /last-update time/],
      [{ source: 'dc1', ns: 'test', packed: withByte(packVersions([good]), 4 + 20 + 16, 1) }, /tombstone version carries a payload/],
      [{ source: 'dc1', ns: 'test', packed: withByte(packVersions([good]), 4 + 20 + 16, 0x80) }, /unknown flags/],
      [{ source: 'dc1', ns: 'test', packed: withByte(packVersions([good]), 4 + 20 + 17, 200) }, /set name/],
      [{ source: 'dc1', ns: 'test', packed: packVersions([{ ...good, payload: Buffer.from('garbage that is no payload') }]) }, /payload/],
    ];
    for (const [fields, message] of hostile) await expect(client.request('admin-xdr-ship', fields)).rejects.toThrow(message);
    client.close();
    expect(db.stats().namespaces.test!.objects).toBe(0);
    await db.put({ ns: 'test', set: 's', key: 'still' }, { up: 1 });
    expect((await db.get({ ns: 'test', set: 's', key: 'still' }))?.bins).toEqual({ up: 1 });
  });
});
