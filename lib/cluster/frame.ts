/**
 * Wire frames: a u32 big-endian body length, then a msgpackr body that decodes to a plain
 * object with a string `type` (docs/cluster.md, "Frames"). The decoder is incremental and
 * reports the first protocol violation as a FrameError; the caller closes the connection.
 *
 * On a connection authenticated by the cluster secret (without TLS) every frame after the
 * handshake is sealed: its body is followed by a sequence number and an HMAC-SHA-256 tag under
 * a key of that connection and direction (FrameSealer), so a frame cannot be forged, altered,
 * replayed, reordered or moved to another connection.
 */
import { createHmac, timingSafeEqual, type KeyObject } from 'node:crypto';
import { Packr } from 'msgpackr';
import { FRAME_HEADER_BYTES, FRAME_SEQUENCE_BYTES, FRAME_TAG_BYTES, MAX_FRAME_BYTES } from './constants';
import type { WireMessage } from './network';

/** Plain msgpack: no record extension, no structure sharing, so frames are self-contained. */
const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'bigint' } as ConstructorParameters<typeof Packr>[0]);

/** Bytes a sealed frame adds to its body. */
export const FRAME_SEAL_BYTES = FRAME_SEQUENCE_BYTES + FRAME_TAG_BYTES;
/** Largest message body: a sealed frame of it still fits MAX_FRAME_BYTES. */
export const MAX_BODY_BYTES = MAX_FRAME_BYTES - FRAME_SEAL_BYTES;

/** A protocol violation found while decoding; the connection must be closed. */
export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

/** Encodes one message body. Throws RangeError if it exceeds MAX_BODY_BYTES (MAX_FRAME_BYTES less the seal). */
export function encodeBody(message: WireMessage): Buffer {
  const body = packr.pack(message);
  if (body.length > MAX_BODY_BYTES) {
    throw new RangeError(`cluster: message "${message.type}" is ${body.length} bytes, over MAX_FRAME_BYTES (${MAX_FRAME_BYTES}) less the ${FRAME_SEAL_BYTES}-byte seal`);
  }
  return body;
}

/** Prefixes a body with its length: the bytes that go on the wire. */
export function frameOf(body: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Encodes one message into a frame. Throws RangeError if the body exceeds MAX_BODY_BYTES.
 */
export function encodeFrame(message: WireMessage): Buffer {
  return frameOf(encodeBody(message));
}

/** Decodes one frame body; throws FrameError if it is not a message object. */
export function decodeBody(body: Buffer): WireMessage {
  let value: unknown;
  try {
    value = packr.unpack(body);
  } catch (error) {
    throw new FrameError(`undecodable frame body (${(error as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Buffer.isBuffer(value)) {
    throw new FrameError('frame body is not a message object');
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string' || type.length === 0 || type.length > 64) {
    throw new FrameError('frame body has no message type');
  }
  return value as WireMessage;
}

/**
 * Incremental decoder: feed it chunks, it returns complete frame bodies (or messages). After
 * it throws once, the stream is unusable (the connection must be closed).
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  /** Largest frame body this stream accepts now; raised once the connection is authenticated. */
  maxFrameBytes: number;

  constructor(maxFrameBytes = MAX_FRAME_BYTES) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Bytes held for frames not complete yet. */
  get pendingBytes(): number {
    return this.bufferedBytes;
  }

  /** Returns the messages completed by this chunk; throws FrameError on a violation. */
  push(chunk: Buffer): WireMessage[] {
    this.append(chunk);
    const messages: WireMessage[] = [];
    for (let body = this.next(); body !== undefined; body = this.next()) messages.push(decodeBody(body));
    return messages;
  }

  /** Adds received bytes; take the frames they complete with next(). */
  append(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
  }

  /**
   * The next complete frame body, or undefined until more bytes arrive. One at a time, so a
   * frame's length is checked against the limit in force once the frames before it were
   * handled (a hello that authenticates raises it).
   * @throws FrameError for an empty frame or a length over the limit.
   */
  next(): Buffer | undefined {
    if (this.bufferedBytes < FRAME_HEADER_BYTES) return undefined;
    const bodyBytes = this.peek(FRAME_HEADER_BYTES).readUInt32BE(0);
    if (bodyBytes === 0) throw new FrameError('empty frame');
    if (bodyBytes > MAX_FRAME_BYTES) throw new FrameError(`frame length ${bodyBytes} exceeds MAX_FRAME_BYTES (${MAX_FRAME_BYTES})`);
    if (bodyBytes > this.maxFrameBytes) throw new FrameError(`frame length ${bodyBytes} exceeds the ${this.maxFrameBytes}-byte limit of this connection at this stage`);
    if (this.bufferedBytes < FRAME_HEADER_BYTES + bodyBytes) return undefined;
    return this.take(FRAME_HEADER_BYTES + bodyBytes).subarray(FRAME_HEADER_BYTES);
  }

  private peek(bytes: number): Buffer {
    if (this.chunks[0].length < bytes) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0].subarray(0, bytes);
  }

  private take(bytes: number): Buffer {
    if (this.chunks[0].length < bytes) this.chunks = [Buffer.concat(this.chunks)];
    const head = this.chunks[0];
    const taken = head.subarray(0, bytes);
    if (head.length === bytes) this.chunks.shift();
    else this.chunks[0] = head.subarray(bytes);
    this.bufferedBytes -= bytes;
    return taken;
  }
}

/**
 * Seals and opens the frames of one authenticated connection (docs/cluster.md, "Security").
 * A sealed body is `body | u64 sequence | tag`, the tag the first FRAME_TAG_BYTES of
 * HMAC-SHA-256(direction key, body | sequence). Each direction has its own key, derived from
 * the handshake, so a frame is valid only on its connection, in its direction, at its place.
 *
 * `ordering: 'stream'` (TCP) accepts only the next sequence number: a missing, repeated or
 * reordered frame is an attack and closes the connection. `'datagram'` (the simulated network,
 * which drops, duplicates and reorders on purpose) accepts any number above the last one and
 * ignores older ones; a bad tag is still a violation.
 */
export class FrameSealer {
  private sendSequence = 0;
  private receiveSequence = -1;

  constructor(private readonly sendKey: KeyObject, private readonly receiveKey: KeyObject, private readonly ordering: 'stream' | 'datagram') {}

  /** The sealed body of `body`. */
  seal(body: Buffer): Buffer {
    return this.sealFrame(body).subarray(FRAME_HEADER_BYTES);
  }

  /** The whole frame (length prefix, body, sequence, tag) of `body`, built in one buffer. */
  sealFrame(body: Buffer): Buffer {
    const sealedBytes = body.length + FRAME_SEAL_BYTES;
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + sealedBytes);
    frame.writeUInt32BE(sealedBytes, 0);
    body.copy(frame, FRAME_HEADER_BYTES);
    const sequenceEnd = FRAME_HEADER_BYTES + body.length + FRAME_SEQUENCE_BYTES;
    writeSequence(frame, sequenceEnd - FRAME_SEQUENCE_BYTES, this.sendSequence++);
    tag(this.sendKey, frame.subarray(FRAME_HEADER_BYTES, sequenceEnd)).copy(frame, sequenceEnd, 0, FRAME_TAG_BYTES);
    return frame;
  }

  /**
   * The body inside `sealed`, or undefined for an old frame on a datagram connection.
   * @throws FrameError for a bad tag, a short frame or (stream) an unexpected sequence number.
   */
  open(sealed: Buffer): Buffer | undefined {
    if (sealed.length <= FRAME_SEAL_BYTES) throw new FrameError('sealed frame too short');
    const sequenceEnd = sealed.length - FRAME_TAG_BYTES;
    const expected = tag(this.receiveKey, sealed.subarray(0, sequenceEnd));
    if (!timingSafeEqual(expected.subarray(0, FRAME_TAG_BYTES), sealed.subarray(sequenceEnd))) throw new FrameError('frame authentication failed');
    const sequence = readSequence(sealed, sequenceEnd - FRAME_SEQUENCE_BYTES);
    if (this.ordering === 'stream' ? sequence !== this.receiveSequence + 1 : sequence <= this.receiveSequence) {
      if (this.ordering === 'datagram') return undefined;
      throw new FrameError(`frame out of sequence (${sequence} after ${this.receiveSequence})`);
    }
    this.receiveSequence = sequence;
    return sealed.subarray(0, sequenceEnd - FRAME_SEQUENCE_BYTES);
  }
}

/** HMAC-SHA-256 of `bytes` (body and sequence, contiguous: one update). */
function tag(key: KeyObject, bytes: Buffer): Buffer {
  return createHmac('sha256', key).update(bytes).digest();
}

/** Sequence numbers are u64 on the wire; a connection sends fewer than 2^53 frames, so a Number holds them exactly. */
function writeSequence(buffer: Buffer, offset: number, sequence: number): void {
  buffer.writeUInt32BE(Math.floor(sequence / 2 ** 32), offset);
  buffer.writeUInt32BE(sequence % 2 ** 32, offset + 4);
}

function readSequence(buffer: Buffer, offset: number): number {
  return buffer.readUInt32BE(offset) * 2 ** 32 + buffer.readUInt32BE(offset + 4);
}
