/**
 * What the info protocol tells smart clients about the cluster (docs/protocol.md, "Cluster
 * mode"): this node's protocol name, the partitions it serves (the `replicas` bitmaps and their
 * `partition-generation`), and its peers' service addresses (`peers-clear-std` and its
 * `peers-generation`). Without cluster mode the node serves every partition and has no peers.
 *
 * The bitmaps come from the cluster's own routing: a node claims a partition as master when it
 * is the partition's acting master (the node holding the complete data while it migrates), or
 * when that master has no service listener clients can reach (this node forwards), and as
 * replica i when it is the map's i-th owner. They are rebuilt at most every
 * SERVICE_PARTITION_MAP_REFRESH_MS; the generation moves whenever they change, which is how a
 * client learns to re-read them.
 */
import * as crypto from 'node:crypto';
import { PARTITION_COUNT } from '../constants';
import { SERVICE_ADDRESS_MAX_BYTES, SERVICE_PARTITION_MAP_REFRESH_MS } from './constants';

/** The cluster as the topology reads it (a ClusterNode satisfies it). */
export interface ClusterSource {
  readonly nodeId: string;
  readonly view: { readonly succession: readonly string[] };
  readonly partitionMap: { readonly owners: readonly (readonly string[])[]; readonly replicationFactor: number };
  readonly heartbeat: { peer(nodeId: string): { alive: boolean; service?: unknown } | undefined };
  masterOf(partitionId: number): string;
}

/** Characters of a protocol node name (the Aerospike client keeps 19). */
const NODE_NAME_CHARS = 16;
/** Bytes of a partition bitmap: one bit per partition. */
const BITMAP_BYTES = PARTITION_COUNT / 8;

/**
 * The protocol name of a node: 16 upper-case hex characters of SHA-256 over its cluster node
 * id, so every node computes every peer's name, names survive restarts, and they look like the
 * hex node ids Aerospike clients and tools expect.
 */
export function protocolNodeName(nodeId: string): string {
  return crypto.createHash('sha256').update(nodeId).digest('hex').slice(0, NODE_NAME_CHARS).toUpperCase();
}

/**
 * A peer's advertised service address, if it is a plausible "host:port".
 * Heartbeats are not trusted to carry well-formed values.
 */
export function validServiceAddress(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > SERVICE_ADDRESS_MAX_BYTES || !SERVICE_ADDRESS_PATTERN.test(value)) return undefined;
  const port = Number(value.slice(value.lastIndexOf(':') + 1));
  return port > 0 && port <= 65535 ? value : undefined;
}

/** A host name or IPv4 address, or an IPv6 address in brackets, then a port. */
const SERVICE_ADDRESS_PATTERN = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):[0-9]{1,5}$/;

interface MapSnapshot {
  generation: number;
  replicas: string;
  builtAtMs: number;
}

export class Topology {
  readonly nodeName: string;
  private map: MapSnapshot = { generation: 0, replicas: '', builtAtMs: -Infinity };
  private peersGeneration = 0;
  private peersValue = '';

  constructor(
    private readonly options: {
      /** The cluster node id (cluster mode) or the persisted node id of a standalone node. */
      nodeId: string;
      namespaces: readonly string[];
      /** "host:port" clients reach this node's service at. */
      address: string;
      cluster: ClusterSource | undefined;
    },
  ) {
    this.nodeName = protocolNodeName(options.nodeId);
  }

  get address(): string {
    return this.options.address;
  }

  /** `{ generation, replicas }`: the info answers `partition-generation` and `replicas`, consistent with each other. */
  partitions(): { generation: number; replicas: string } {
    const now = performance.now();
    if (now - this.map.builtAtMs >= SERVICE_PARTITION_MAP_REFRESH_MS) {
      const replicas = this.buildReplicas();
      const generation = replicas === this.map.replicas ? this.map.generation : this.map.generation + 1;
      this.map = { generation, replicas, builtAtMs: now };
    }
    return this.map;
  }

  /** `ns:0,<count>,<bitmap>...;...` (regime 0: AP), one bitmap per replica index, master first. */
  private buildReplicas(): string {
    const cluster = this.options.cluster;
    let columns: string[];
    if (cluster === undefined) {
      columns = [Buffer.alloc(BITMAP_BYTES, 0xff).toString('base64')];
    } else {
      const self = cluster.nodeId;
      const owners = cluster.partitionMap.owners;
      const count = Math.max(1, cluster.partitionMap.replicationFactor);
      const bitmaps = Array.from({ length: count }, () => Buffer.alloc(BITMAP_BYTES));
      // Nodes clients can reach: a partition mastered by a member without a listener is
      // claimed by this node too (it forwards such requests), so no partition is unreachable.
      const reachable = new Set([self, ...this.peerList().map((peer) => peer.id)]);
      for (let partition = 0; partition < PARTITION_COUNT; partition++) {
        const bit = 0x80 >> (partition & 7);
        const master = cluster.masterOf(partition);
        if (master === self || !reachable.has(master)) bitmaps[0]![partition >> 3]! |= bit;
        const list = owners[partition] ?? [];
        for (let index = 1; index < count && index < list.length; index++) {
          if (list[index] === self) bitmaps[index]![partition >> 3]! |= bit;
        }
      }
      columns = bitmaps.map((bitmap) => bitmap.toString('base64'));
    }
    return this.options.namespaces.map((ns) => `${ns}:0,${columns.length},${columns.join(',')}`).join(';');
  }

  /** The peers this node advertises: members of its view with a valid service address, by name. */
  private peerList(): { id: string; name: string; address: string }[] {
    const cluster = this.options.cluster;
    if (cluster === undefined) return [];
    const peers: { id: string; name: string; address: string }[] = [];
    for (const id of cluster.view.succession) {
      if (id === cluster.nodeId) continue;
      const peer = cluster.heartbeat.peer(id);
      const address = peer?.alive === true ? validServiceAddress(peer.service) : undefined;
      if (address !== undefined) peers.push({ id, name: protocolNodeName(id), address });
    }
    return peers.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** `{ generation, peers }`: the info answers `peers-generation` and `peers-clear-std`. */
  peers(): { generation: number; peers: string } {
    const list = this.peerList()
      .map((peer) => `[${peer.name},,[${peer.address}]]`)
      .join(',');
    if (list !== this.peersValue || this.peersGeneration === 0) {
      this.peersValue = list;
      this.peersGeneration++;
    }
    return { generation: this.peersGeneration, peers: `${this.peersGeneration},,[${list}]` };
  }

  /** The legacy `services` answer: peers' addresses separated by ';'. */
  services(): string {
    return this.peerList()
      .map((peer) => peer.address)
      .join(';');
  }
}
