/**
 * Info commands sent to a peer's service listener, as a client sends them: one TCP connection
 * per command, a LOGIN admin frame first when the service has users (with this node's first
 * user and its credential: the nodes of a cluster share their users), then the info frame, and
 * its answer. Secondary index definitions (sindex.ts) and UDF modules (udf.ts) travel this way.
 * Every step is bounded in time and size; a peer that does not answer in time is given up.
 */
import * as net from 'node:net';
import { SERVICE_INFO_REQUEST_BYTES_MAX, SINDEX_PEER_TIMEOUT_MS } from './constants';
import { FrameType, PROTO_HEADER_BYTES, PROTO_VERSION } from './wire';

/** A user name and its credential (bcrypt of the password, security.ts), for a LOGIN. */
export interface PeerLogin {
  user: string;
  credential: Buffer;
}

const ADMIN_HEADER_BYTES = 16;
const LOGIN_COMMAND = 20;
const FIELD_USER = 0;
const FIELD_CREDENTIAL = 3;

function frame(type: number, body: Buffer): Buffer {
  const header = Buffer.alloc(PROTO_HEADER_BYTES);
  header.writeUInt32BE(((PROTO_VERSION << 24) | (type << 16)) >>> 0, 0);
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

function loginFrame(login: PeerLogin): Buffer {
  const header = Buffer.alloc(ADMIN_HEADER_BYTES);
  header[2] = LOGIN_COMMAND;
  header[3] = 2;
  const field = (id: number, value: Buffer) => {
    const head = Buffer.alloc(5);
    head.writeUInt32BE(value.length + 1, 0);
    head[4] = id;
    return Buffer.concat([head, value]);
  };
  return frame(FrameType.ADMIN, Buffer.concat([header, field(FIELD_USER, Buffer.from(login.user, 'utf8')), field(FIELD_CREDENTIAL, login.credential)]));
}

/** Reads whole frames off a socket, one at a time. */
class FrameReader {
  private buffered = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private ended: Error | undefined;

  constructor(socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.wake?.();
    });
    socket.on('close', () => {
      this.ended ??= new Error('the peer closed the connection');
      this.wake?.();
    });
    socket.on('error', (error) => {
      this.ended = error;
      this.wake?.();
    });
  }

  /** The next frame's body. @throws Error when the peer closes, errs, or sends a frame too large. */
  async next(): Promise<Buffer> {
    for (;;) {
      if (this.buffered.length >= PROTO_HEADER_BYTES) {
        const size = this.buffered.readUInt16BE(2) * 4294967296 + this.buffered.readUInt32BE(4);
        if (size > SERVICE_INFO_REQUEST_BYTES_MAX) throw new Error(`a peer's reply of ${size} bytes is too large`);
        if (this.buffered.length >= PROTO_HEADER_BYTES + size) {
          const body = this.buffered.subarray(PROTO_HEADER_BYTES, PROTO_HEADER_BYTES + size);
          this.buffered = this.buffered.subarray(PROTO_HEADER_BYTES + size);
          return body;
        }
      }
      if (this.ended !== undefined) throw this.ended;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

/**
 * Sends one info command to a peer at `address` ("host:port", IPv6 in brackets) and resolves to
 * its answer (what follows the tab), `ERROR:…` included.
 * @throws Error when the peer cannot be reached, refuses the login, or is silent for `timeoutMs`.
 */
export async function peerInfo(address: string, command: string, login: PeerLogin | undefined, timeoutMs = SINDEX_PEER_TIMEOUT_MS): Promise<string> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = Number(address.slice(colon + 1));
  const socket = net.connect({ host, port });
  const timer = setTimeout(() => socket.destroy(new Error(`no answer from peer ${address} in ${timeoutMs} ms`)), timeoutMs);
  try {
    const reader = new FrameReader(socket);
    if (login !== undefined) {
      socket.write(loginFrame(login));
      const reply = await reader.next();
      if (reply.length < ADMIN_HEADER_BYTES || reply[1] !== 0) throw new Error(`peer ${address} refused the login (${reply[1]})`);
    }
    socket.write(frame(FrameType.INFO, Buffer.from(`${command}\n`, 'utf8')));
    const text = (await reader.next()).toString('utf8');
    const tab = text.indexOf('\t');
    return (tab < 0 ? text : text.slice(tab + 1)).replace(/\n$/, '');
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}
