/**
 * Frame authentication on connections protected by the cluster secret alone (docs/cluster.md,
 * "Security", "Frame authentication"). Once the challenge-response has proved the secret both
 * ways, every later frame carries a tag:
 *
 *   u32 big-endian length L | body (L - 16 bytes) | tag = HMAC-SHA-256(key of this direction, u64 BE sequence | length | body), first 16 bytes
 *
 * The keys are derived from the key the handshake proved and its transcript (both nonces, the
 * hello's fields and node ids), one per direction, so a frame is valid only on its connection,
 * in its direction, at its position: an altered, forged, replayed, reordered, dropped or
 * spliced frame makes the receiver's check fail, and the connection closes. The sequence
 * numbers are implicit (each end counts), so nothing is added to the wire but the tag.
 *
 * The tags are computed by the addon (native/frame_mac.h) with the OpenSSL that the Node binary
 * links (about 1 µs per frame), else by node:crypto's createHmac (several µs: an object per call).
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { addon } from '../native/addon';
import { FRAME_HEADER_BYTES, FRAME_TAG_BYTES } from './constants';

/** The two keys of one end of a connection. */
export interface FrameKeys {
  /** Tags the frames this end sends. */
  send: Buffer;
  /** Checks the frames this end receives. */
  receive: Buffer;
}

const SESSION_KEY_BYTES = 32;
const CONNECTOR_TO_ACCEPTOR = 'shoal cluster frames, connector to acceptor';
const ACCEPTOR_TO_CONNECTOR = 'shoal cluster frames, acceptor to connector';

/**
 * The frame keys of one end: HKDF-SHA-256 (RFC 5869) of the key the handshake proved, salted
 * with its transcript, one key per direction.
 */
export function sessionKeys(key: Buffer, transcript: Buffer, end: 'connector' | 'acceptor'): FrameKeys {
  const derive = (label: string) => Buffer.from(hkdfSync('sha256', key, transcript, label, SESSION_KEY_BYTES));
  const toAcceptor = derive(CONNECTOR_TO_ACCEPTOR);
  const toConnector = derive(ACCEPTOR_TO_CONNECTOR);
  return end === 'connector' ? { send: toAcceptor, receive: toConnector } : { send: toConnector, receive: toAcceptor };
}

/** One direction of one connection: tags frames or checks them, counting their sequence numbers. */
export interface FrameMac {
  /**
   * Writes the tag of each frame laid back to back in `frames` (its last FRAME_TAG_BYTES, left
   * free by the caller), in place.
   * @throws RangeError if the frames' lengths do not add up to the buffer.
   */
  seal(frames: Buffer): void;
  /** Whether a whole received frame carries the tag of the next sequence number; constant time. */
  verify(frame: Buffer): boolean;
  /** Frames sealed or verified so far. */
  readonly sequence: number;
}

let nativeFrameMac: (new (key: Buffer) => FrameMac) | null | undefined;

/** The addon's FrameMac, or null when the addon or this Node binary lacks it. */
function nativeImplementation(): (new (key: Buffer) => FrameMac) | null {
  if (nativeFrameMac === undefined) {
    try {
      const loaded = addon();
      nativeFrameMac = loaded.frameMacAvailable === true && loaded.FrameMac !== undefined ? loaded.FrameMac : null;
    } catch {
      nativeFrameMac = null;
    }
  }
  return nativeFrameMac;
}

/** Whether tags are computed natively (else by node:crypto's createHmac). */
export function nativeFrameMacs(): boolean {
  return nativeImplementation() !== null;
}

/** A FrameMac under `key`: the addon's, else one on node:crypto (`implementation: 'crypto'` forces that one, for tests). */
export function frameMac(key: Buffer, implementation: 'native' | 'crypto' = 'native'): FrameMac {
  const Native = implementation === 'native' ? nativeImplementation() : null;
  return Native === null ? new CryptoFrameMac(key) : new Native(key);
}

/** The same tags with node:crypto's createHmac. */
class CryptoFrameMac implements FrameMac {
  sequence = 0;
  private readonly number = Buffer.alloc(8);

  constructor(private readonly key: Buffer) {}

  seal(frames: Buffer): void {
    for (let offset = 0; offset < frames.length; ) {
      if (frames.length - offset < FRAME_HEADER_BYTES) throw new RangeError('FrameMac.seal: a frame header is cut short');
      const length = frames.readUInt32BE(offset);
      const end = offset + FRAME_HEADER_BYTES + length;
      if (length < FRAME_TAG_BYTES || end > frames.length) throw new RangeError('FrameMac.seal: a frame\'s length does not fit the buffer');
      this.tag(frames.subarray(offset, end - FRAME_TAG_BYTES)).copy(frames, end - FRAME_TAG_BYTES, 0, FRAME_TAG_BYTES);
      this.sequence++;
      offset = end;
    }
  }

  verify(frame: Buffer): boolean {
    if (frame.length < FRAME_HEADER_BYTES + FRAME_TAG_BYTES) return false;
    const covered = frame.length - FRAME_TAG_BYTES;
    const valid = timingSafeEqual(this.tag(frame.subarray(0, covered)).subarray(0, FRAME_TAG_BYTES), frame.subarray(covered));
    if (valid) this.sequence++;
    return valid;
  }

  private tag(covered: Buffer): Buffer {
    this.number.writeUInt32BE(Math.floor(this.sequence / 2 ** 32), 0);
    this.number.writeUInt32BE(this.sequence >>> 0, 4);
    return createHmac('sha256', this.key).update(this.number).update(covered).digest();
  }
}
