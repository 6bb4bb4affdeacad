/**
 * A growable byte buffer for building replies: wire messages (wire.ts) and msgpack values
 * (particles.ts) write into one, then the bytes go to the socket in one write. One writer is
 * reused per connection, so building a reply allocates nothing once it has grown to size.
 */

export class ByteWriter {
  buffer: Buffer;
  length = 0;

  constructor(initialBytes = 4096) {
    this.buffer = Buffer.allocUnsafe(initialBytes);
  }

  /** Makes room for `bytes` more bytes. */
  ensure(bytes: number): void {
    const needed = this.length + bytes;
    if (needed <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < needed) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  reset(): void {
    this.length = 0;
  }

  u8(value: number): void {
    this.ensure(1);
    this.buffer[this.length++] = value;
  }

  u16(value: number): void {
    this.ensure(2);
    this.buffer.writeUInt16BE(value, this.length);
    this.length += 2;
  }

  u32(value: number): void {
    this.ensure(4);
    this.buffer.writeUInt32BE(value >>> 0, this.length);
    this.length += 4;
  }

  i64(value: bigint): void {
    this.ensure(8);
    this.buffer.writeBigInt64BE(value, this.length);
    this.length += 8;
  }

  /** A safe integer as a big-endian int64. */
  int64(value: number): void {
    this.ensure(8);
    const high = Math.floor(value / 4294967296);
    this.buffer.writeInt32BE(high, this.length);
    this.buffer.writeUInt32BE(value - high * 4294967296, this.length + 4);
    this.length += 8;
  }

  f64(value: number): void {
    this.ensure(8);
    this.buffer.writeDoubleBE(value, this.length);
    this.length += 8;
  }

  bytes(source: Uint8Array): void {
    this.ensure(source.length);
    this.buffer.set(source, this.length);
    this.length += source.length;
  }

  /** Writes a string as UTF-8; returns its byte length. */
  utf8(text: string): number {
    // A UTF-8 encoding is at most 3 bytes per UTF-16 unit.
    this.ensure(text.length * 3);
    const written = this.buffer.write(text, this.length, 'utf8');
    this.length += written;
    return written;
  }

  /** Writes a MessagePack str header for `size` bytes (fixstr, str 8, 16 or 32). */
  msgpackStrHeader(size: number): void {
    if (size < 32) this.u8(0xa0 | size);
    else if (size < 0x100) {
      this.u8(0xd9);
      this.u8(size);
    } else if (size < 0x10000) {
      this.u8(0xda);
      this.u16(size);
    } else {
      this.u8(0xdb);
      this.u32(size);
    }
  }

  /** Writes a u32 at an earlier position (a size known only once what follows is written). */
  patchU32(position: number, value: number): void {
    this.buffer.writeUInt32BE(value >>> 0, position);
  }

  /** A copy of the bytes written since `start`. */
  copyFrom(start: number): Buffer {
    return Buffer.from(this.buffer.subarray(start, this.length));
  }
}
