/**
 * List and map operations in cluster mode: operate() is forwarded whole to the partition's
 * master over the fabric's msgpack frames, so the operations (payloads with Maps of integer and
 * Buffer keys, contexts, INF / WILDCARD) must arrive intact, and replicas get the result. Two
 * Dbs in this process on real loopback TCP.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Db, ErrorCode, ExpType, ExpWriteFlags, MapOrder, ReturnType, cdt, exp, op, open, type Operation } from '../lib/index';
import { digestOf, partitionOf } from '../lib/model/digest';
import { cleanupTempDirs, tempDir } from './helpers/temp';

const started: Db[] = [];

afterAll(async () => {
  for (const db of started) await db.close({ dropIndex: true }).catch(() => undefined);
  cleanupTempDirs(['cdt']);
});

async function startNode(nodeId: string, seeds: string[]): Promise<Db> {
  const db = await open({
    dataDir: tempDir(),
    namespaces: [{ name: 'cdt', storage: { type: 'device', paths: ['cdt.dat'], sizeBytes: 32 << 20 } }],
    cluster: { nodeId, listen: { host: '127.0.0.1', port: 0 }, seeds, heartbeatIntervalMs: 100 },
    log: () => undefined,
  });
  started.push(db);
  return db;
}

async function settled(dbs: Db[], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (dbs.some((db) => db.stats().clusterSize !== dbs.length)) {
    if (Date.now() > deadline) throw new Error(`no cluster of ${dbs.length} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await Promise.all(dbs.map((db) => db.cluster!.waitForMigrations({ timeoutMs: Math.max(1, deadline - Date.now()) })));
}

describe('list and map operations in a 2-node cluster', () => {
  it('forwarded operations arrive intact and their results replicate', async () => {
    const a = await startNode('cdt-a', []);
    const b = await startNode('cdt-b', [a.cluster!.address]);
    await settled([a, b]);
    // Keys through both nodes: about half are forwarded to the other node, their master.
    const keys = Array.from({ length: 16 }, (_, i) => ({ ns: 'cdt', set: 's', key: `k${i}` }));
    expect(new Set(keys.map((key) => partitionOf(digestOf(key.set, key.key)))).size).toBe(keys.length);
    for (const [i, key] of keys.entries()) {
      const via = i % 2 === 0 ? a : b;
      const result = await via.operate(key, [
        op.map.putItems('m', new Map<unknown, unknown>([[1, 'one'], [Buffer.from('b'), 2], ['s', [1, 2]]]), { order: MapOrder.KEY_ORDERED }),
        op.list.append('m', 3, { ctx: [cdt.mapKey('s')] }),
        op.list.getByValueRange('m', 2, cdt.INF, ReturnType.VALUE, { ctx: [cdt.mapKey('s')] }),
      ]);
      expect(result.bins.m).toEqual([2, 3]);
      expect(result.key).toEqual(key);
      const wildcard = await via.operate(key, [op.map.getByValue('m', [1, cdt.WILDCARD], ReturnType.KEY)]);
      expect(wildcard.bins.m).toEqual(['s']);
      await expect(via.operate(key, [op.list.append('m', 1)])).rejects.toMatchObject({ code: ErrorCode.BIN_TYPE });
    }
    for (const db of [a, b]) {
      for (const key of keys) {
        expect((await db.get(key))!.bins.m).toEqual(new Map<unknown, unknown>([[1, 'one'], ['s', [1, 2, 3]], [Buffer.from('b'), 2]]));
      }
    }
    // Map bins written by put and op.write through either node, and read back by a scan.
    for (const [i, key] of keys.entries()) {
      const via = i % 2 === 0 ? b : a;
      await via.put(key, { p: new Map([[i, Buffer.from([i])]]) } as never);
      await via.operate(key, [op.write('w', new Map([[Buffer.from('k'), i]]) as never)]);
    }
    const scanned = new Map<string, unknown>();
    for await (const record of a.scan('cdt')) scanned.set(String(record.bins.w instanceof Map ? [...record.bins.w.values()][0] : ''), record.bins.p);
    for (const i of keys.keys()) expect(scanned.get(String(i))).toEqual(new Map([[i, Buffer.from([i])]]));
    // Filters cross too: as bytes in the forwarded call's options and in scan requests.
    const hasOne = exp.eq(exp.maps.getByKey(exp.binMap('m'), 1, ExpType.STR), 'one');
    const never = exp.eq(exp.binInt('nope'), 1);
    for (const [i, key] of keys.entries()) {
      const via = i % 2 === 0 ? b : a;
      expect((await via.get(key, { filter: hasOne }))?.bins.m).toBeInstanceOf(Map);
      await expect(via.get(key, { filter: never })).rejects.toMatchObject({ code: ErrorCode.FILTERED_OUT });
      await expect(via.operate(key, [op.map.put('m', 2, 'two')], { filter: never })).rejects.toMatchObject({ code: ErrorCode.FILTERED_OUT });
    }
    // Expression operations and result keys (the Aerospike listener's per-op results) cross as data.
    for (const [i, key] of keys.entries()) {
      const via = i % 2 === 0 ? a : b;
      const result = await via.operate(key, [
        { ...op.exp.write('e', exp.add(exp.binInt('w2'), 1), ExpWriteFlags.EVAL_NO_FAIL), resultKey: '0' },
        { ...op.exp.read('size', exp.maps.size(exp.binMap('m'))), resultKey: '1' },
        { ...op.map.size('m'), resultKey: '2' },
      ] as unknown as Operation[]);
      expect(result.bins).toEqual({ '1': 3, '2': 3 });
    }
    let filtered = 0;
    for await (const record of b.scan('cdt', undefined, { filter: exp.eq(exp.binInt('nope'), 1) })) filtered += record ? 1 : 0;
    expect(filtered).toBe(0);
    let matched = 0;
    for await (const record of b.scan('cdt', undefined, { filter: hasOne })) matched += record.bins.m instanceof Map ? 1 : 0;
    expect(matched).toBe(keys.length);
    // Both copies are there: the replica got the result of the operations.
    const objects = (db: Db) => db.stats().namespaces.cdt!.objects;
    expect(objects(a) + objects(b)).toBe(2 * keys.length);
  });
});
