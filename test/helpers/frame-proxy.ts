/**
 * A TCP proxy on the path between cluster nodes, as an attacker on the network would sit: it
 * relays bytes both ways, cuts the stream into frames (u32 length, then that many bytes) and
 * lets a test alter, drop, hold, duplicate or inject frames. Frames of connections protected
 * by the secret alone travel in clear (tagged, not encrypted), so it can also read their types.
 * Closed by `close()`; every socket is destroyed.
 */
import * as net from 'node:net';
import { FRAME_HEADER_BYTES, FRAME_TAG_BYTES } from '../../lib/cluster/constants';
import { decodeBody } from '../../lib/cluster/frame';

/** toTarget: from the connecting node to the node behind the proxy; toClient: the other way. */
export type Direction = 'toTarget' | 'toClient';

export interface ProxiedFrame {
  /** Which relayed connection (0, 1, ... in order of arrival). */
  connection: number;
  direction: Direction;
  /** Position of the frame in its direction of its connection. */
  index: number;
  /** The whole frame: length prefix, body and (once authenticated) tag. */
  frame: Buffer;
  /** The message type: of the body as it is, or of the body without a tag; undefined if neither decodes. */
  type: string | undefined;
  /** Whether the type came from the body without its last FRAME_TAG_BYTES (a tagged frame). */
  tagged: boolean;
}

interface Relay {
  client: net.Socket;
  target: net.Socket;
  closed: boolean;
  counts: Record<Direction, number>;
}

function typeOf(body: Buffer): string | undefined {
  try {
    return decodeBody(body).type;
  } catch {
    return undefined;
  }
}

export class FrameProxy {
  /** Where nodes connect ("127.0.0.1:port"). */
  address = '';
  /** Where the proxy relays to; set before anyone connects. */
  target = '';
  /** What to forward for each frame, in order: [] drops it. Default: forward it unchanged. */
  onFrame: (frame: ProxiedFrame) => Buffer[] = (frame) => [frame.frame];
  /** Every frame seen, as it arrived (before onFrame). */
  readonly frames: ProxiedFrame[] = [];
  readonly relays: Relay[] = [];
  private readonly server: net.Server;

  private constructor() {
    this.server = net.createServer((client) => this.relay(client));
  }

  static async start(): Promise<FrameProxy> {
    const proxy = new FrameProxy();
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', () => resolve()));
    proxy.address = `127.0.0.1:${(proxy.server.address() as net.AddressInfo).port}`;
    return proxy;
  }

  /** Writes raw bytes into one direction of a relayed connection. */
  inject(connection: number, direction: Direction, bytes: Buffer): void {
    const relay = this.relays[connection]!;
    (direction === 'toTarget' ? relay.target : relay.client).write(bytes);
  }

  close(): void {
    for (const relay of this.relays) {
      relay.client.destroy();
      relay.target.destroy();
    }
    this.server.close();
  }

  private relay(client: net.Socket): void {
    const index = this.target.lastIndexOf(':');
    const target = net.connect({ host: this.target.slice(0, index), port: Number(this.target.slice(index + 1)) });
    const relay: Relay = { client, target, closed: false, counts: { toTarget: 0, toClient: 0 } };
    const connection = this.relays.push(relay) - 1;
    const closeBoth = () => {
      relay.closed = true;
      client.destroy();
      target.destroy();
    };
    for (const socket of [client, target]) {
      socket.setNoDelay(true);
      socket.on('error', closeBoth);
      socket.on('close', closeBoth);
    }
    this.pipe(client, target, connection, 'toTarget', relay);
    this.pipe(target, client, connection, 'toClient', relay);
  }

  private pipe(from: net.Socket, to: net.Socket, connection: number, direction: Direction, relay: Relay): void {
    let buffered = Buffer.alloc(0);
    from.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= FRAME_HEADER_BYTES) {
        const total = FRAME_HEADER_BYTES + buffered.readUInt32BE(0);
        if (buffered.length < total) break;
        const frame = Buffer.from(buffered.subarray(0, total));
        buffered = buffered.subarray(total);
        const body = frame.subarray(FRAME_HEADER_BYTES);
        const plain = typeOf(body);
        const stripped = plain === undefined && body.length > FRAME_TAG_BYTES ? typeOf(body.subarray(0, body.length - FRAME_TAG_BYTES)) : undefined;
        const seen: ProxiedFrame = { connection, direction, index: relay.counts[direction]++, frame, type: plain ?? stripped, tagged: stripped !== undefined };
        this.frames.push(seen);
        for (const out of this.onFrame(seen)) to.write(out);
      }
    });
  }
}
