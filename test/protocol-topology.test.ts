/**
 * What a node publishes to smart clients (lib/service/topology.ts), from a cluster stand-in:
 * protocol names, the replicas bitmaps (acting masters, replicas; partitions of members
 * without a listener claimed too), partition-generation moving exactly when they change, and
 * peers-clear-std with only well-formed advertised addresses.
 */
import { describe, expect, it } from 'vitest';
import { PARTITION_COUNT } from '../lib/constants';
import { ClusterSource, Topology, protocolNodeName, validServiceAddress } from '../lib/service/topology';

function bitmaps(replicas: string, ns = 'test'): Buffer[] {
  const entry = replicas.split(';').find((part) => part.startsWith(`${ns}:`))!;
  const [regime, count, ...maps] = entry.slice(ns.length + 1).split(',');
  expect(regime).toBe('0');
  expect(maps.length).toBe(Number(count));
  return maps.map((b64) => {
    expect(b64.length).toBe(684);
    return Buffer.from(b64, 'base64');
  });
}

const isSet = (bitmap: Buffer, partition: number) => (bitmap[partition >> 3]! & (0x80 >> (partition & 7))) !== 0;

/** A three-member cluster: owners rotate a, b, c by partition; `acting` overrides masters. */
function cluster(self: string, services: Record<string, unknown>, acting = new Map<number, string>()): ClusterSource & { acting: Map<number, string> } {
  const members = ['a', 'b', 'c'];
  const owners = Array.from({ length: PARTITION_COUNT }, (_, p) => [members[p % 3]!, members[(p + 1) % 3]!]);
  return {
    nodeId: self,
    acting,
    view: { succession: members },
    partitionMap: { owners, replicationFactor: 2 },
    heartbeat: { peer: (id: string) => (id in services ? { alive: true, service: services[id] } : undefined) },
    masterOf(partition: number) {
      return acting.get(partition) ?? owners[partition]![0]!;
    },
  };
}

describe('node names', () => {
  it('are 16 upper-case hex characters, stable, different per node id', () => {
    expect(protocolNodeName('a')).toMatch(/^[0-9A-F]{16}$/);
    expect(protocolNodeName('a')).toBe(protocolNodeName('a'));
    expect(protocolNodeName('a')).not.toBe(protocolNodeName('b'));
  });
});

describe('replicas', () => {
  it('claim every partition on a standalone node', () => {
    const topology = new Topology({ nodeId: 'x', namespaces: ['test', 'other'], address: '127.0.0.1:3000', cluster: undefined });
    const { generation, replicas } = topology.partitions();
    expect(generation).toBe(1);
    expect(bitmaps(replicas)).toEqual([Buffer.alloc(512, 0xff)]);
    expect(bitmaps(replicas, 'other')).toEqual([Buffer.alloc(512, 0xff)]);
  });

  it('claim acting masters and map replicas; the generation moves when they change', async () => {
    const source = cluster('a', { b: '127.0.0.1:3001', c: '127.0.0.1:3002' });
    const topology = new Topology({ nodeId: 'a', namespaces: ['test'], address: '127.0.0.1:3000', cluster: source });
    const first = topology.partitions();
    const [master, replica] = bitmaps(first.replicas);
    for (let p = 0; p < PARTITION_COUNT; p++) {
      expect(isSet(master!, p), `master ${p}`).toBe(p % 3 === 0);
      expect(isSet(replica!, p), `replica ${p}`).toBe(p % 3 === 2);
    }
    // Unchanged: the generation stays.
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(topology.partitions().generation).toBe(first.generation);
    // Partition 1 is served by a while it migrates to b.
    source.acting.set(1, 'a');
    await new Promise((resolve) => setTimeout(resolve, 120));
    const second = topology.partitions();
    expect(second.generation).toBe(first.generation + 1);
    expect(isSet(bitmaps(second.replicas)[0]!, 1)).toBe(true);
  });

  it('claim the partitions of members without a reachable listener', () => {
    const topology = new Topology({ nodeId: 'a', namespaces: ['test'], address: '127.0.0.1:3000', cluster: cluster('a', { b: '127.0.0.1:3001', c: 'not an address' }) });
    const [master] = bitmaps(topology.partitions().replicas);
    for (let p = 0; p < PARTITION_COUNT; p++) expect(isSet(master!, p), `partition ${p}`).toBe(p % 3 !== 1);
  });
});

describe('peers', () => {
  it('list the other members with valid addresses, and move their generation on change', () => {
    const services: Record<string, unknown> = { b: '127.0.0.1:3001', c: { evil: true } };
    const topology = new Topology({ nodeId: 'a', namespaces: ['test'], address: '127.0.0.1:3000', cluster: cluster('a', services) });
    const first = topology.peers();
    expect(first.peers).toBe(`${first.generation},,[[${protocolNodeName('b')},,[127.0.0.1:3001]]]`);
    expect(topology.peers().generation).toBe(first.generation);
    services.c = '[::1]:3002';
    const second = topology.peers();
    expect(second.generation).toBe(first.generation + 1);
    expect(second.peers).toContain(`[${protocolNodeName('c')},,[[::1]:3002]]`);
    const byName = [['b', '127.0.0.1:3001'], ['c', '[::1]:3002']].sort((x, y) => (protocolNodeName(x[0]!) < protocolNodeName(y[0]!) ? -1 : 1));
    expect(topology.services()).toBe(byName.map(([, address]) => address).join(';'));
  });

  it('accept only host:port addresses from heartbeats', () => {
    for (const good of ['127.0.0.1:3000', 'node-1.example:3000', '[fe80::1]:3000']) expect(validServiceAddress(good)).toBe(good);
    for (const bad of [undefined, 7, '', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:70000', 'a,b:1', 'a]:1', 'a b:1', 'x'.repeat(400) + ':1', '[::1]]:1']) {
      expect(validServiceAddress(bad), String(bad)).toBeUndefined();
    }
  });
});
