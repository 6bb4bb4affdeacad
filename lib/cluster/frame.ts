/**
 * Wire frames: a u32 big-endian body length, then a msgpackr body that decodes to a plain
 * object with a string `type` (docs/cluster.md, "Frames"); on a connection whose frames are
 * authenticated, the length also counts the tag that ends the frame (frame-auth.ts). The
 * decoder is incremental and reports the first protocol violation as a FrameError; the caller
 * closes the connection.
 */
import { Packr } from 'msgpackr';
import { FRAME_HEADER_BYTES, MAX_FRAME_BYTES } from './constants';
import type { WireMessage } from './network';

/** Plain msgpack: no record extension, no structure sharing, so frames are self-contained. */
const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'bigint' } as ConstructorParameters<typeof Packr>[0]);

/** A protocol violation found while decoding; the connection must be closed. */
export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

/** Encodes one message body. Throws RangeError if it exceeds MAX_FRAME_BYTES. */
export function encodeBody(message: WireMessage): Buffer {
  const body = packr.pack(message);
  if (body.length > MAX_FRAME_BYTES) {
    throw new RangeError(`cluster: message "${message.type}" is ${body.length} bytes, over MAX_FRAME_BYTES (${MAX_FRAME_BYTES})`);
  }
  return body;
}

/**
 * Prefixes a body with its length: the bytes that go on the wire. With `tagBytes`, the frame
 * ends with that many bytes left for a tag (uninitialised), and its length counts them.
 */
export function frameOf(body: Buffer, tagBytes = 0): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length + tagBytes);
  frame.writeUInt32BE(body.length + tagBytes, 0);
  body.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Encodes one message into a frame. Throws RangeError if the body exceeds MAX_FRAME_BYTES.
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
  /** Bytes of the tag ending every frame from now on (0 until frames are authenticated); the length limits do not count them. */
  tagBytes = 0;

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
    return this.nextFrame()?.subarray(FRAME_HEADER_BYTES);
  }

  /** As next(), but the whole frame: its length prefix, body and tag (what a frame's tag covers). */
  nextFrame(): Buffer | undefined {
    if (this.bufferedBytes < FRAME_HEADER_BYTES) return undefined;
    const length = this.peek(FRAME_HEADER_BYTES).readUInt32BE(0);
    if (length <= this.tagBytes) throw new FrameError(this.tagBytes === 0 ? 'empty frame' : 'frame shorter than its tag');
    const bodyBytes = length - this.tagBytes;
    if (bodyBytes > MAX_FRAME_BYTES) throw new FrameError(`frame length ${bodyBytes} exceeds MAX_FRAME_BYTES (${MAX_FRAME_BYTES})`);
    if (bodyBytes > this.maxFrameBytes) throw new FrameError(`frame length ${bodyBytes} exceeds the ${this.maxFrameBytes}-byte limit of this connection at this stage`);
    if (this.bufferedBytes < FRAME_HEADER_BYTES + length) return undefined;
    return this.take(FRAME_HEADER_BYTES + length);
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
