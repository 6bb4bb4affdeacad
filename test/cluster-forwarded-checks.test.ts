/**
 * Forwarded requests are checked on the master with the public API's rules (issue 13): two
 * Dbs in cluster mode on loopback TCP and a third member that sends forwarded requests, batch
 * requests and replications of its own making. Before, the master ran forwarded calls without
 * the Db's checks: a key with a 2-byte digest was written, array bins were stored as an
 * object, a key was written under another record's digest (so on the wrong node), and a
 * replicated payload was stored without being decoded.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startCluster } from '../lib/cluster/index';
import type { ClusterNode } from '../lib/cluster/cluster';
import type { WireMessage } from '../lib/cluster/network';
import { versionsToWire } from '../lib/cluster/peer-checks';
import { packBatchItems, packVersions, parseBatchSteps } from '../lib/cluster/batch-wire';
import { PutItemEncoder } from '../lib/db-batch-wire';
import { MemoryLogger, realClock } from '../lib/cluster/seams';
import { SimStore } from '../sim/store';
import { digestOfKey } from '../lib/db-cluster';
import { open, type Db } from '../lib/index';
import { cleanupTempDirs, tempDir } from './helpers/temp';

const opened: Db[] = [];
const nodes: ClusterNode[] = [];

afterEach(async () => {
  for (const node of nodes.splice(0)) await node.stop();
  for (const db of opened.splice(0)) await db.close({ dropIndex: true }).catch(() => undefined);
});

afterAll(() => cleanupTempDirs(['test']));

async function openMember(nodeId: string, seeds: string[]): Promise<Db> {
  const db = await open({
    dataDir: tempDir(`forwarded-${nodeId}`),
    sharedMemoryIndex: false,
    namespaces: [{ name: 'test', storage: { type: 'memory', maxBytes: 64 << 20 } }],
    cluster: { nodeId, listen: { host: '127.0.0.1', port: 0 }, seeds, heartbeatIntervalMs: 50, heartbeatTimeout: 10 },
    log: () => undefined,
  });
  opened.push(db);
  return db;
}

async function until(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Two Dbs and an intruder member; `ask(to, message)` sends from the intruder and resolves with the reply. */
async function setUp() {
  const a = await openMember('a', []);
  const b = await openMember('b', [a.cluster!.address]);
  const logger = new MemoryLogger(1000);
  const intruder = await startCluster({ nodeId: 'evil', listen: { host: '127.0.0.1', port: 0 }, seeds: [a.cluster!.address], heartbeatIntervalMs: 50, heartbeatTimeout: 10 }, new SimStore(realClock, { durability: 'memory' }), { logger });
  nodes.push(intruder);
  await until(() => [a, b].every((db) => db.cluster!.state().succession.length === 3 && db.cluster!.state().migrationsRemaining === 0));
  const replies = new Map<string, (message: WireMessage) => void>();
  const handle = intruder.dataPlane!.handle.bind(intruder.dataPlane);
  intruder.dataPlane!.handle = (from, message) => {
    const waiter = replies.get(message.id as string);
    if (waiter !== undefined) waiter(message);
    else handle(from, message);
  };
  let next = 0;
  const ask = (to: string, message: WireMessage) =>
    new Promise<WireMessage>((resolve) => {
      const id = `probe${next++}`;
      replies.set(id, resolve);
      intruder.fabric.sendToNode(to, { ...message, id });
      setTimeout(() => resolve({ type: 'no-reply' }), 2_000).unref();
    });
  return { a, b, intruder, ask };
}

/** A key of set "s" whose partition node `a` serves, and another one. */
function keysServedBy(db: Db, count: number): { ns: string; set: string; key: string }[] {
  const found: { ns: string; set: string; key: string }[] = [];
  const node = (db as unknown as { clusterNode: ClusterNode }).clusterNode;
  for (let i = 0; found.length < count; i++) {
    const key = { ns: 'test', set: 's', key: `k${i}` };
    const digest = digestOfKey(key);
    if (node.masterOf((digest[0]! | (digest[1]! << 8)) & 4095) === db.cluster!.nodeId) found.push(key);
  }
  return found;
}

describe('forwarded requests are checked as the public API checks its arguments', () => {
  it('a key with a 2-byte digest, array bins, or a key under another key\'s digest: INVALID_ARGUMENT, nothing written', async () => {
    const { a, ask } = await setUp();
    const [target, other] = keysServedBy(a, 2);
    const digest = digestOfKey(target!);
    const request = (operation: unknown) => ({ type: 'request', request: { kind: 'record', ns: 'test', digest, operation } });
    const replies = [
      await ask('a', request({ method: 'put', key: { ns: 'test', digest: Buffer.from([1, 2]) }, bins: { v: 1 } })),
      await ask('a', request({ method: 'put', key: target, bins: [1, 2, 3] })),
      await ask('a', request({ method: 'put', key: other, bins: { v: 'elsewhere' } })),
      await ask('a', request({ method: 'put', key: target, bins: { v: 1 }, opts: { generation: -4 } })),
      await ask('a', request({ method: 'operate', key: target, ops: [{ op: 'incr', bin: 'n', value: 'one' }] })),
      await ask('a', request({ method: 'drop-everything', key: target })),
    ];
    for (const reply of replies) expect(reply).toMatchObject({ type: 'response', error: { code: 'INVALID_ARGUMENT' } });
    expect(await a.get(target!)).toBeUndefined();
    expect(await a.get(other!)).toBeUndefined();
    expect(a.stats().namespaces.test!.objects).toBe(0);
    // The same request, well formed, is executed.
    expect(await ask('a', request({ method: 'put', key: target, bins: { v: 1 } }))).toMatchObject({ type: 'response', value: { gen: 1 } });
    expect((await a.get(target!))?.bins).toEqual({ v: 1 });
  });

  it('a batch request checks every item: the malformed ones fail alone', async () => {
    const { a, ask } = await setUp();
    const keys = keysServedBy(a, 4);
    const digests = keys.map(digestOfKey);
    const operations = [
      { method: 'put', key: keys[0], bins: { v: 0 } },
      { method: 'put', key: keys[1], bins: [1, 2] },
      { method: 'put', key: keys[3], bins: { v: 'under the wrong digest' } },
      { method: 'put', key: keys[3], bins: { v: 3 }, opts: { ttl: 'soon' } },
    ];
    const reply = await ask('a', { type: 'batch-request', ns: 'test', digests, operations });
    expect(reply.type).toBe('batch-response');
    const errors = reply.errors as unknown[];
    const failed = new Map<number, string>();
    for (let at = 0; at < errors.length; at += 3) failed.set(errors[at] as number, errors[at + 1] as string);
    expect([...failed]).toEqual([[1, 'INVALID_ARGUMENT'], [2, 'INVALID_ARGUMENT'], [3, 'INVALID_ARGUMENT']]);
    expect((await a.get(keys[0]!))?.bins).toEqual({ v: 0 });
    for (const key of keys.slice(1)) expect(await a.get(key)).toBeUndefined();
  });

  it('a batch request of binary put items checks every item: the malformed ones fail alone', async () => {
    const { a, ask } = await setUp();
    const keys = keysServedBy(a, 5);
    const digests = keys.map(digestOfKey);
    const encoder = new PutItemEncoder();
    const good = encoder.encode(keys[0]!, { v: 0 }, { ttl: 100 })!;
    const truncated = encoder.encode(keys[1]!, { v: 1 }, undefined)!.subarray(0, 9);
    const wrongDigest = encoder.encode(keys[3]!, { v: 'under the wrong digest' }, undefined)!;
    const badOptions = Buffer.from(encoder.encode(keys[3]!, { v: 3 }, undefined)!);
    badOptions[1] = 0x80;
    const garbageBins = Buffer.from(encoder.encode(keys[4]!, { v: 4 }, undefined)!);
    garbageBins.fill(0xc1, garbageBins.length - 3);
    const operations = [good, truncated, wrongDigest, badOptions, garbageBins];
    const reply = await ask('a', { type: 'batch-request', ns: 'test', digests: [digests[0], digests[1], digests[2], digests[3], digests[4]], operations });
    expect(reply.type).toBe('batch-response');
    const errors = reply.errors as unknown[];
    const failed = new Map<number, string>();
    for (let at = 0; at < errors.length; at += 3) failed.set(errors[at] as number, errors[at + 1] as string);
    expect([...failed]).toEqual([[1, 'INVALID_ARGUMENT'], [2, 'INVALID_ARGUMENT'], [3, 'INVALID_ARGUMENT'], [4, 'INVALID_ARGUMENT']]);
    // Put results come packed (f64 generation, f64 ttl per item).
    expect(parseBatchSteps(reply, 5, (error) => error as never)![0]).toEqual({ value: { gen: 1, ttl: expect.any(Number) } });
    const record = await a.get(keys[0]!);
    expect(record?.bins).toEqual({ v: 0 });
    expect(record?.ttl).toBeGreaterThan(90);
    for (const key of keys.slice(1)) expect(await a.get(key)).toBeUndefined();
  });

  it('a packed batch request is bounds-checked: a malformed one is refused whole, a hostile item fails alone', async () => {
    const { a, ask } = await setUp();
    const keys = keysServedBy(a, 3);
    const digests = keys.map(digestOfKey);
    const encoder = new PutItemEncoder();
    const good = encoder.encode(keys[0]!, { v: 0 }, undefined)!;
    // Bins the walk refuses and the decoder too: a bin's value is an unused tag.
    const hostile = Buffer.from(encoder.encode(keys[1]!, { v: 1 }, undefined)!);
    hostile[hostile.length - 1] = 0xc1;
    // A NaN bin: the walk does not vouch for it, the decoder reads it, the batch path refuses it.
    const proto = Buffer.concat([encoder.encode(keys[2]!, { v: 2 }, undefined)!.subarray(0, -4), Buffer.from([0x81, 0xa1, 0x76, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0])]);
    const packed = packBatchItems(digests, [good, hostile, proto])!;
    const cutShort = await ask('a', { type: 'batch-request', ns: 'test', packedDigests: packed.digests, packedItems: packed.items.subarray(0, packed.items.length - 1) });
    expect(cutShort).toMatchObject({ type: 'batch-response', values: [], errors: [] });
    const both = await ask('a', { type: 'batch-request', ns: 'test', packedDigests: packed.digests, packedItems: packed.items, digests, operations: [good, hostile, proto] });
    expect(both).toMatchObject({ type: 'batch-response', values: [] });
    for (const key of keys) expect(await a.get(key)).toBeUndefined();
    const reply = await ask('a', { type: 'batch-request', ns: 'test', packedDigests: packed.digests, packedItems: packed.items });
    const steps = parseBatchSteps(reply, 3, (error) => error as never)!;
    expect(steps[0]).toEqual({ value: { gen: 1, ttl: expect.any(Number) } });
    expect(steps.slice(1).map((step) => ('error' in step ? step.error.code : step))).toEqual(['INVALID_ARGUMENT', 'INVALID_ARGUMENT']);
    expect((await a.get(keys[0]!))?.bins).toEqual({ v: 0 });
    for (const key of keys.slice(1)) expect(await a.get(key)).toBeUndefined();
  });

  it('a packed replication that is malformed or does not decode as records is refused', async () => {
    const { a, intruder, ask } = await setUp();
    const map = intruder.partitionMap;
    let key = { ns: 'test', set: 's', key: '' };
    for (let i = 0; ; i++) {
      key = { ns: 'test', set: 's', key: `p${i}` };
      const digest = digestOfKey(key);
      const owners = map.owners[(digest[0]! | (digest[1]! << 8)) & 4095]!;
      if (owners[0] === 'evil' && owners.includes('a')) break;
    }
    const digest = digestOfKey(key);
    const clusterKey = intruder.view.clusterKey;
    const garbage = { digest, gen: 2, voidTime: 0, lastUpdateMs: Date.now(), setName: 's', tombstone: false, payload: Buffer.from([1, 0, 0, 0, 0x93, 1, 2, 3]) };
    const packed = packVersions([garbage]);
    expect(await ask('a', { type: 'replicate', clusterKey, ns: 'test', packed })).toEqual({ type: 'no-reply' });
    expect(await ask('a', { type: 'replicate', clusterKey, ns: 'test', packed: packed.subarray(0, packed.length - 1) })).toEqual({ type: 'no-reply' });
    expect(await ask('a', { type: 'replicate', clusterKey, ns: 'test', packed: 'not bytes' })).toEqual({ type: 'no-reply' });
    expect(a.stats().namespaces.test!.objects).toBe(0);
    // The same list with a real record is applied: the refusals above were for the bytes.
    const real = { ...garbage, payload: Buffer.from([1, 0, 0, 0, 0x81, 0xa1, 0x76, 0x07]) };
    expect(await ask('a', { type: 'replicate', clusterKey, ns: 'test', packed: packVersions([real]) })).toMatchObject({ type: 'replicate-ack' });
    expect(a.stats().namespaces.test!.objects).toBe(1);
  });

  it('a replicated payload that does not decode as a record is refused', async () => {
    const { a, b, intruder, ask } = await setUp();
    // A partition the intruder serves and `a` owns: only the payload can be wrong.
    const map = intruder.partitionMap;
    let key = { ns: 'test', set: 's', key: '' };
    for (let i = 0; ; i++) {
      key = { ns: 'test', set: 's', key: `r${i}` };
      const digest = digestOfKey(key);
      const owners = map.owners[(digest[0]! | (digest[1]! << 8)) & 4095]!;
      if (owners[0] === 'evil' && owners.includes('a')) break;
    }
    const digest = digestOfKey(key);
    const clusterKey = intruder.view.clusterKey;
    const garbage = { digest, gen: 2, voidTime: 0, lastUpdateMs: Date.now(), setName: 's', tombstone: false, payload: Buffer.from([1, 0, 0, 0, 0x93, 1, 2, 3]) };
    const notDecodable = { ...garbage, payload: Buffer.from([9, 9, 9, 9, 9]) };
    expect(await ask('a', { type: 'replicate', clusterKey, ns: 'test', versions: versionsToWire([garbage]) })).toEqual({ type: 'no-reply' });
    expect(await ask('a', { type: 'replicate', clusterKey, ns: 'test', versions: versionsToWire([notDecodable]) })).toEqual({ type: 'no-reply' });
    expect(a.stats().namespaces.test!.objects).toBe(0);
    void b;
  });
});
