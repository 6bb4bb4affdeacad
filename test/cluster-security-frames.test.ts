/**
 * Issue 13, "authenticate every later frame of the connection": with the secret alone the
 * fabric runs on plain TCP and every frame after the handshake carries a tag (frame-auth.ts).
 * An attacker on the path (a real TCP proxy between two nodes, test/helpers/frame-proxy.ts)
 * flips a byte in a frame, replays one, drops one, reorders two, or splices one from another
 * connection: each is rejected, the connection closes, the failure is counted and logged, and
 * nothing of it is applied. On the code before (TLS-PSK) the same attacks failed in TLS (these
 * are regression tests for that); with the tags switched off (`authenticateFrames` a no-op)
 * every one of them fails. Plus the tags themselves: native and node:crypto agree, and each
 * direction and connection has its own keys.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createHmac, randomBytes } from 'node:crypto';
import { ClusterSecrets, ConnectorHandshake } from '../lib/cluster/auth';
import { FRAME_HEADER_BYTES, FRAME_TAG_BYTES, PROTOCOL_VERSION_CURRENT, PROTOCOL_VERSION_MIN_SUPPORTED } from '../lib/cluster/constants';
import { partitionOf } from '../lib/cluster/data-plane';
import { encodeBody, frameOf } from '../lib/cluster/frame';
import { frameMac, nativeFrameMacs, sessionKeys } from '../lib/cluster/frame-auth';
import { cryptoRandom, silentLogger } from '../lib/cluster/seams';
import { TcpNetwork } from '../lib/cluster/tcp-network';
import { AdminClient } from '../lib/cluster/admin-client';
import { digestOf } from '../sim/store';
import { FrameProxy, type ProxiedFrame } from './helpers/frame-proxy';
import { agree, closeAll, get, put, sleep, startTcpNode, until, warnings, type TcpNode } from './helpers/tcp-cluster';

const SECRET = 'frames are tagged, not encrypted';

const proxies: FrameProxy[] = [];
afterEach(async () => {
  for (const proxy of proxies.splice(0)) proxy.close();
  await closeAll();
});

/**
 * Node f-a behind a proxy (it advertises the proxy's address, so every connection to it
 * crosses the proxy), and `others` nodes that join through it. All share SECRET.
 */
async function proxiedCluster(others = 1): Promise<{ proxy: FrameProxy; a: TcpNode; nodes: TcpNode[] }> {
  const proxy = await FrameProxy.start();
  proxies.push(proxy);
  const a = await startTcpNode('f-a', [], { secret: SECRET, advertise: proxy.address });
  proxy.target = a.node.fabric.boundAddress;
  const nodes = [a];
  for (let i = 0; i < others; i++) nodes.push(await startTcpNode(`f-${String.fromCharCode(98 + i)}`, [proxy.address], { secret: SECRET }));
  const ids = nodes.map((node) => node.node.nodeId);
  expect(await until(() => agree(nodes.map((node) => node.node), ids), 10_000)).toBe(true);
  return { proxy, a, nodes };
}

/** A key whose partition f-a masters, so a put on another node crosses the proxy as a request. */
function keyMasteredBy(a: TcpNode, prefix: string): string {
  for (let i = 0; ; i++) {
    const key = `${prefix}${i}`;
    if (a.node.partitionMap.owners[partitionOf(digestOf(key))]![0] === 'f-a') return key;
  }
}

/** Whether a frame is a request towards f-a whose bytes contain `marker`. */
function requestWith(frame: ProxiedFrame, marker: string): boolean {
  return frame.direction === 'toTarget' && frame.type === 'request' && frame.frame.includes(marker);
}

/** What every attack must leave: the failure counted and logged on f-a, the connection it came on closed. */
async function expectRejected(a: TcpNode, proxy: FrameProxy, connection: number, forgedBefore: number): Promise<void> {
  expect(await until(() => a.node.fabric.counters.forgedFrames > forgedBefore, 5_000), 'f-a counted a forged frame').toBe(true);
  expect(await until(() => proxy.relays[connection]!.closed, 5_000), 'the connection was closed').toBe(true);
  expect(warnings(a.logger).some((m) => m.includes('a frame failed authentication'))).toBe(true);
}

describe('frames after the handshake, secret alone, through a proxy on the path', () => {
  it('every frame after the handshake is tagged, and the cluster works through the proxy', async () => {
    const { proxy, a, nodes } = await proxiedCluster();
    const key = keyMasteredBy(a, 'plain');
    await put(nodes[1]!.node, key, 'through the proxy');
    expect((await get(nodes[1]!.node, key))?.bins.v).toBe('through the proxy');
    const toTarget = proxy.frames.filter((frame) => frame.direction === 'toTarget' && frame.connection === 0);
    expect(toTarget.slice(0, 2).map((frame) => [frame.type, frame.tagged])).toEqual([['hello', false], ['hello-proof', false]]);
    expect(toTarget.length).toBeGreaterThan(5);
    expect(toTarget.slice(2).every((frame) => frame.tagged)).toBe(true);
    expect(toTarget.some((frame) => frame.type === 'request')).toBe(true);
    const toClient = proxy.frames.filter((frame) => frame.direction === 'toClient' && frame.connection === 0);
    expect(toClient.slice(0, 2).map((frame) => frame.type)).toEqual(['hello-challenge', 'hello-ack']);
    expect(toClient.slice(2).every((frame) => frame.tagged)).toBe(true);
    expect(a.node.fabric.counters.forgedFrames).toBe(0);
  });

  it('a byte flipped in a frame: rejected, the connection closed, nothing of it applied', async () => {
    const { proxy, a, nodes } = await proxiedCluster();
    const key = keyMasteredBy(a, 'flip');
    const forged = a.node.fabric.counters.forgedFrames;
    let flipped: ProxiedFrame | undefined;
    proxy.onFrame = (frame) => {
      if (flipped !== undefined || !requestWith(frame, 'value-ONE')) return [frame.frame];
      flipped = frame;
      const altered = Buffer.from(frame.frame);
      altered[altered.indexOf('value-ONE') + 6] = 'T'.charCodeAt(0); // "value-TNE"
      return [altered];
    };
    await put(nodes[1]!.node, key, 'value-ONE').catch(() => undefined);
    expect(flipped).toBeDefined();
    await expectRejected(a, proxy, flipped!.connection, forged);
    // The altered put never landed; the put may have been retried, intact, on a new connection.
    const stored = await get(a.node, key);
    expect(stored === undefined || stored.bins.v === 'value-ONE').toBe(true);
    expect(await until(() => agree([a.node, nodes[1]!.node], ['f-a', 'f-b']), 10_000)).toBe(true);
  });

  it('a recorded frame replayed later: rejected, the record keeps its newer value', async () => {
    const { proxy, a, nodes } = await proxiedCluster();
    const key = keyMasteredBy(a, 'replay');
    await put(nodes[1]!.node, key, 'replay-first');
    const recorded = proxy.frames.find((frame) => requestWith(frame, 'replay-first'))!;
    expect(recorded).toBeDefined();
    await put(nodes[1]!.node, key, 'replay-second');
    const forged = a.node.fabric.counters.forgedFrames;
    proxy.inject(recorded.connection, 'toTarget', recorded.frame);
    await expectRejected(a, proxy, recorded.connection, forged);
    await sleep(100);
    expect((await get(a.node, key))?.bins.v).toBe('replay-second');
  });

  it('a dropped frame is detected at the next one; two frames swapped are detected at the first out of place', async () => {
    const { proxy, a } = await proxiedCluster();
    // Drop one frame of the live connection (a heartbeat, an ack...): the next frame's sequence number is off by one.
    let forged = a.node.fabric.counters.forgedFrames;
    let dropped: ProxiedFrame | undefined;
    proxy.onFrame = (frame) => {
      if (dropped === undefined && frame.direction === 'toTarget' && frame.tagged) {
        dropped = frame;
        return [];
      }
      return [frame.frame];
    };
    await expectRejected(a, proxy, await until(() => dropped !== undefined, 5_000).then(() => dropped!.connection), forged);

    // Hold one frame back and send it after the next: the first frame out of place fails.
    forged = a.node.fabric.counters.forgedFrames;
    let held: ProxiedFrame | undefined;
    let swapped: ProxiedFrame | undefined;
    proxy.onFrame = (frame) => {
      if (frame.direction !== 'toTarget' || !frame.tagged || frame.connection === dropped!.connection || swapped !== undefined) return [frame.frame];
      if (held === undefined) {
        held = frame;
        return [];
      }
      swapped = frame;
      return [frame.frame, held.frame];
    };
    expect(await until(() => swapped !== undefined, 5_000)).toBe(true);
    await expectRejected(a, proxy, swapped!.connection, forged);
  });

  it('a frame spliced from another connection, even at its own sequence number there, is rejected', async () => {
    const { proxy, a, nodes } = await proxiedCluster(2);
    const connectionOf = (nodeId: string) => proxy.frames.find((frame) => frame.type === 'hello' && frame.frame.includes(nodeId))!.connection;
    const [b, c] = [connectionOf('f-b'), connectionOf('f-c')];
    const forged = a.node.fabric.counters.forgedFrames;
    // f-b's next frame whose position f-c's connection has reached too is replaced by f-c's frame at that position:
    // the same sequence number, a valid tag, but under f-c's connection keys.
    let spliced: ProxiedFrame | undefined;
    proxy.onFrame = (frame) => {
      if (spliced !== undefined || frame.connection !== b || frame.direction !== 'toTarget' || !frame.tagged) return [frame.frame];
      const twin = proxy.frames.find((other) => other.connection === c && other.direction === 'toTarget' && other.index === frame.index);
      if (twin === undefined) return [frame.frame];
      spliced = twin;
      return [twin.frame];
    };
    expect(await until(() => spliced !== undefined, 5_000)).toBe(true);
    await expectRejected(a, proxy, b, forged);
    expect(proxy.relays[c]!.closed).toBe(false);
    expect(await until(() => agree(nodes.map((node) => node.node), ['f-a', 'f-b', 'f-c']), 10_000)).toBe(true);
  });

  it('an admin connection\'s frames are tagged too: an altered request is rejected and answered by nothing', async () => {
    const { proxy, a } = await proxiedCluster();
    const admin = await AdminClient.connect(proxy.address, { secret: SECRET });
    expect(((await admin.request('admin-state')) as { nodeId: string }).nodeId).toBe('f-a');
    const forged = a.node.fabric.counters.forgedFrames;
    proxy.onFrame = (frame) => {
      if (frame.direction !== 'toTarget' || frame.type !== 'admin-quiesce') return [frame.frame];
      const altered = Buffer.from(frame.frame);
      altered[altered.length - 1] ^= 1; // the tag's last byte
      return [altered];
    };
    await expect(admin.request('admin-quiesce')).rejects.toThrow(/closed/);
    expect(await until(() => a.node.fabric.counters.forgedFrames > forged, 5_000)).toBe(true);
    expect(a.node.quiesced).toBe(false);
    admin.close();
  });

  it('a hello-ack altered on the path (its acknowledges flag) fails the acceptor\'s proof', async () => {
    const { proxy } = await proxiedCluster();
    proxy.onFrame = (frame) => {
      if (frame.direction !== 'toClient' || frame.type !== 'hello-ack') return [frame.frame];
      const body = frame.frame.subarray(FRAME_HEADER_BYTES);
      const message = require('msgpackr').unpack(body);
      return [frameOf(encodeBody({ ...message, acknowledges: !message.acknowledges }))];
    };
    const keys = await new ClusterSecrets(SECRET).keys();
    const connection = new TcpNetwork(silentLogger).connect(proxy.address);
    const identity = { protocolVersion: PROTOCOL_VERSION_CURRENT, minProtocolVersion: PROTOCOL_VERSION_MIN_SUPPORTED, nodeId: 'f-z', clusterName: 'shoal', address: '127.0.0.1:9', role: 'node' as const };
    const handshake = new ConnectorHandshake(connection, identity, keys, cryptoRandom, false, { acknowledge: true, link: 'l1' });
    const outcome = await new Promise((resolve) => {
      connection.setHandlers({ onMessage: (message) => { const result = handshake.onMessage(message); if (result.kind !== 'pending') resolve(result); }, onClose: (reason) => resolve({ kind: 'closed', reason }) });
      handshake.start();
    });
    connection.close('test done');
    expect(outcome).toMatchObject({ kind: 'failed', reason: 'it failed to prove the cluster secret' });
  });

  it('a hello whose link fields are altered on the path (replaces, acknowledge) fails the connector\'s proof', async () => {
    const { proxy, a } = await proxiedCluster();
    proxy.onFrame = (frame) => {
      if (frame.direction !== 'toTarget' || frame.type !== 'hello' || !frame.frame.includes('f-z')) return [frame.frame];
      const message = require('msgpackr').unpack(frame.frame.subarray(FRAME_HEADER_BYTES));
      return [frameOf(encodeBody({ ...message, replaces: 'someone-elses-link', acknowledge: false }))];
    };
    const keys = await new ClusterSecrets(SECRET).keys();
    const connection = new TcpNetwork(silentLogger).connect(proxy.address);
    const identity = { protocolVersion: PROTOCOL_VERSION_CURRENT, minProtocolVersion: PROTOCOL_VERSION_MIN_SUPPORTED, nodeId: 'f-z', clusterName: 'shoal', address: '127.0.0.1:9', role: 'node' as const };
    const handshake = new ConnectorHandshake(connection, identity, keys, cryptoRandom, false, { acknowledge: true, link: 'l2' });
    const outcome = await new Promise((resolve) => {
      connection.setHandlers({ onMessage: (message) => { const result = handshake.onMessage(message); if (result.kind !== 'pending') resolve(result); }, onClose: (reason) => resolve({ kind: 'closed', reason }) });
      handshake.start();
    });
    connection.close('test done');
    expect(outcome).toMatchObject({ kind: 'failed', refused: true, reason: 'refused: authentication failed' });
    expect(warnings(a.logger).some((m) => m.includes('wrong cluster secret') && m.includes('"f-z"'))).toBe(true);
  });
});

describe('frame tags', () => {
  const key = randomBytes(32);

  /** A frame of `body` with room for its tag. */
  const frameFor = (body: Buffer) => frameOf(body, FRAME_TAG_BYTES);

  it('the addon computes them (HMAC-SHA-256 of the OpenSSL Node links), and they equal node:crypto\'s', () => {
    expect(nativeFrameMacs()).toBe(true);
    const native = frameMac(key);
    const crypto = frameMac(key, 'crypto');
    for (let i = 0; i < 5; i++) {
      const body = randomBytes(1 + i * 100);
      const [one, two] = [frameFor(body), frameFor(body)];
      native.seal(one);
      crypto.seal(two);
      expect(one.equals(two)).toBe(true);
      // The tag by its definition: HMAC(key, u64 BE sequence | the frame without its tag), 16 bytes.
      const sequence = Buffer.alloc(8);
      sequence.writeUInt32BE(i, 4);
      const expected = createHmac('sha256', key).update(sequence).update(one.subarray(0, one.length - FRAME_TAG_BYTES)).digest().subarray(0, FRAME_TAG_BYTES);
      expect(one.subarray(one.length - FRAME_TAG_BYTES).equals(expected)).toBe(true);
    }
    expect(native.sequence).toBe(5);
  });

  it('several frames back to back are sealed in one call, each under its own sequence number', () => {
    for (const implementation of ['native', 'crypto'] as const) {
      const bodies = [randomBytes(10), randomBytes(300), randomBytes(1)];
      const batch = Buffer.concat(bodies.map(frameFor));
      frameMac(key, implementation).seal(batch);
      const checker = frameMac(key, implementation === 'native' ? 'crypto' : 'native');
      let offset = 0;
      for (const body of bodies) {
        const length = FRAME_HEADER_BYTES + body.length + FRAME_TAG_BYTES;
        expect(checker.verify(batch.subarray(offset, offset + length))).toBe(true);
        offset += length;
      }
      expect(() => frameMac(key, implementation).seal(batch.subarray(0, batch.length - 1))).toThrow(RangeError);
    }
  });

  it('verify refuses an altered frame, a replay, a frame out of order and a frame under another key; constant time, no throw on short input', () => {
    for (const implementation of ['native', 'crypto'] as const) {
      const sealer = frameMac(key, implementation);
      const frames = [0, 1, 2].map(() => frameFor(randomBytes(40)));
      for (const frame of frames) sealer.seal(frame);
      const altered = Buffer.from(frames[0]!);
      altered[FRAME_HEADER_BYTES + 3] ^= 0x20;
      expect(frameMac(key, implementation).verify(altered)).toBe(false);
      expect(frameMac(key, implementation).verify(frames[1]!)).toBe(false); // out of order (or after a drop)
      expect(frameMac(randomBytes(32), implementation).verify(frames[0]!)).toBe(false);
      const checker = frameMac(key, implementation);
      expect(checker.verify(frames[0]!)).toBe(true);
      expect(checker.verify(frames[0]!)).toBe(false); // replayed
      expect(checker.verify(frames[1]!)).toBe(true);
      expect(checker.verify(Buffer.alloc(3))).toBe(false);
      expect(checker.sequence).toBe(2);
    }
    expect(() => frameMac(Buffer.alloc(4))).toThrow(RangeError);
  });

  it('session keys: one per direction, the same at both ends, another on every connection', () => {
    const transcript = randomBytes(32);
    const connector = sessionKeys(key, transcript, 'connector');
    const acceptor = sessionKeys(key, transcript, 'acceptor');
    expect(connector.send.equals(acceptor.receive) && connector.receive.equals(acceptor.send)).toBe(true);
    expect(connector.send.equals(connector.receive)).toBe(false);
    expect(sessionKeys(key, randomBytes(32), 'connector').send.equals(connector.send)).toBe(false);
    expect(connector.send.length).toBe(32);
  });
});
