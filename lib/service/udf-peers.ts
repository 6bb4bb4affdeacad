/**
 * Module registration reaching every node of a cluster (docs/protocol.md, "User-defined
 * functions", cluster mode): the node that takes `udf-put` or `udf-remove` applies it, then
 * sends it to every peer's service listener as `shoal-udf-put` / `shoal-udf-remove` (applied
 * there without being sent on), over the info protocol, and waits for each answer, so the
 * client's registration job, which polls every node's `udf-list`, sees the module everywhere.
 * A peer that does not answer in UDF_PEER_TIMEOUT_MS is logged; the client's job then waits
 * for it, as it waits for an Aerospike node that has not yet applied the metadata.
 */
import * as net from 'node:net';
import { FrameType, PROTO_HEADER_BYTES, PROTO_VERSION } from './wire';

/** How long a peer may take to answer a forwarded registration. */
export const UDF_PEER_TIMEOUT_MS = 10_000;
/** The largest answer read from a peer (an `ok` or `error=…` line). */
const PEER_REPLY_BYTES_MAX = 64 << 10;

/**
 * Sends one info command to `address` ("host:port" or "[v6]:port") and resolves to its value.
 * @throws Error when the peer cannot be reached, closes, answers too much or times out.
 */
export function sendInfo(address: string, command: string, timeoutMs = UDF_PEER_TIMEOUT_MS): Promise<string> {
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const port = Number(address.slice(at + 1));
  const body = Buffer.from(`${command}\n`);
  const header = Buffer.alloc(PROTO_HEADER_BYTES);
  header[0] = PROTO_VERSION;
  header[1] = FrameType.INFO;
  header.writeUIntBE(body.length, 2, 6);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let reply = Buffer.alloc(0);
    const fail = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    socket.setTimeout(timeoutMs, () => fail(new Error(`no answer in ${timeoutMs} ms`)));
    socket.on('connect', () => socket.write(Buffer.concat([header, body])));
    socket.on('error', fail);
    socket.on('close', () => reject(new Error('the connection closed before the answer')));
    socket.on('data', (chunk: Buffer) => {
      reply = Buffer.concat([reply, chunk]);
      if (reply.length > PROTO_HEADER_BYTES + PEER_REPLY_BYTES_MAX) return fail(new Error('the answer is too long'));
      if (reply.length < PROTO_HEADER_BYTES || reply.length < PROTO_HEADER_BYTES + reply.readUIntBE(2, 6)) return;
      socket.destroy();
      const line = reply.subarray(PROTO_HEADER_BYTES, PROTO_HEADER_BYTES + reply.readUIntBE(2, 6)).toString('utf8');
      const tab = line.indexOf('\t');
      resolve((tab < 0 ? line : line.slice(tab + 1)).replace(/\n$/, ''));
    });
  });
}

/**
 * Forwards a registration command to every peer. Resolves once each answered or failed; a
 * failure is logged, never thrown (the local registration stands).
 */
export async function forwardToPeers(peers: readonly string[], command: string, log: (message: string) => void): Promise<void> {
  await Promise.all(
    peers.map(async (address) => {
      try {
        const answer = await sendInfo(address, command);
        if (answer !== 'ok') log(`udf: peer ${address} refused ${command.slice(0, command.indexOf(':'))}: ${answer.slice(0, 200)}`);
      } catch (error) {
        log(`udf: peer ${address} did not take ${command.slice(0, command.indexOf(':'))}: ${(error as Error).message}`);
      }
    }),
  );
}
