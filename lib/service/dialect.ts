/**
 * Aerospike's MessagePack dialect into Shoal's (docs/protocol.md, "Values"): the one place
 * where the wire's list and map bytes, CDT operation payloads and filter expressions become
 * the plain MessagePack that Shoal stores and its collection engine (lib/model/cdt) and
 * expression compiler (lib/model/exp) read. The other direction, Shoal values into the
 * dialect, is particles.ts packValue.
 *
 * Inside lists, maps, CDT payloads and expression values, Aerospike sends a string or blob as
 * a msgpack str (or bin) item whose first byte is a particle type: 3 string, 4 blob, 23
 * GeoJSON, 7-12 language-specific blobs (the C client's as_msgpack.c pack_string/pack_bytes).
 * Shoal stores a string as a plain str and bytes as a bin item, so the rewrite drops that byte:
 * strings (and GeoJSON text) become str items, the other types bin items. An empty item
 * (no type byte) is an empty blob, as the C client reads it. Everything else is copied as it
 * is, except:
 * - an unsigned 64-bit integer (0xcf) becomes its signed twin (0xd3), Aerospike's int64; in
 *   values and CDT payloads, a 64-bit integer a JS number holds exactly (beyond 32 bits, within
 *   2^53) is written as Shoal writes that number, a float64 with no fraction, which Shoal reads
 *   as that integer (bigints stay for the others; expressions keep the integer form, where a
 *   float64 literal is a float);
 * - a list or map order-flags header (an ext element first in the container) is written as
 *   ext8 of length 0 (`c7 00 flags`), the form Shoal stores;
 * - WILDCARD and INF (ext type 0xff holding 0 or 1) are kept where comparison values may
 *   appear (CDT arguments, expressions) and refused in stored values.
 *
 * Expressions (the server's exp.c, the C client's as_exp.c) mix both kinds of strings: bin
 * names, variable names and regular expressions are raw str items, literal values carry the
 * particle-type byte. expressionFromWire knows which argument of which op is raw.
 *
 * Malformed input (cut off, a bad tag, a string that is not UTF-8, nesting deeper than the
 * bound) is a RequestError PARAMETER_ERROR; the rewrite never reads past `end`.
 */
import { isUtf8 } from 'node:buffer';
import { BIN_VALUE_DEPTH_MAX, EXPRESSION_DEPTH_MAX } from '../constants';
import { ExpCode } from '../model/exp/codes';
import { ByteWriter } from './byte-writer';
import { ParticleType } from './particle-type';
import { ResultCode } from './result-codes';
import { RequestError } from './wire';

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Ext type of WILDCARD and INF, and their one data byte. */
const SPECIAL_EXT_TYPE = 0xff;
/** The CDT payload marker of an operation with a context: [0xff, [ctx...], [code, args...]]. */
const CONTEXT_MARKER = 0xff;
/**
 * Levels a CDT payload may add above its values: [0xff, [ctx...], [code, value]] puts a value
 * three levels down. The collection engine bounds the values themselves.
 */
const PAYLOAD_LEVELS = 3;

function malformed(message: string): RequestError {
  return new RequestError(ResultCode.PARAMETER_ERROR, message);
}

/**
 * A stored value (a list or map particle of a bin write) in Shoal's MessagePack.
 * @throws RequestError PARAMETER_ERROR when it is malformed, holds WILDCARD or INF, or nests
 *   deeper than BIN_VALUE_DEPTH_MAX.
 */
export function valueFromWire(source: Buffer, start: number, end: number): Buffer {
  const rewriter = new Rewriter(source, start, end, false, BIN_VALUE_DEPTH_MAX, true);
  rewriter.value(0);
  return rewriter.finish('value');
}

/**
 * A CDT operation payload (`[code, args...]` or `[0xff, [ctx...], [code, args...]]`, op codes 3
 * and 4) in Shoal's MessagePack, the payload of a `{ op: 'cdt' }` operation.
 * @throws RequestError PARAMETER_ERROR when it is malformed or nests too deep.
 */
export function cdtPayloadFromWire(source: Buffer, start: number, end: number): Buffer {
  const rewriter = new Rewriter(source, start, end, true, BIN_VALUE_DEPTH_MAX + PAYLOAD_LEVELS, true);
  rewriter.value(0);
  return rewriter.finish('list or map operation');
}

/**
 * A filter expression (field 43, and the expression of an expression op) in Shoal's form, the
 * bytes lib/model/exp compiles.
 * @throws RequestError PARAMETER_ERROR when it is malformed or nests deeper than EXPRESSION_DEPTH_MAX.
 */
export function expressionFromWire(source: Buffer, start: number, end: number): Buffer {
  const rewriter = new Rewriter(source, start, end, true, EXPRESSION_DEPTH_MAX + BIN_VALUE_DEPTH_MAX, false);
  rewriter.expression(0);
  return rewriter.finish('expression');
}

/**
 * An expression op's value (op codes 7 and 8): a list `[expression, flags?]`.
 * @throws RequestError PARAMETER_ERROR when it is not that, or the expression is malformed.
 */
export function expressionOpFromWire(source: Buffer, start: number, end: number): { expression: Buffer; flags: number } {
  const rewriter = new Rewriter(source, start, end, true, EXPRESSION_DEPTH_MAX + BIN_VALUE_DEPTH_MAX, false);
  const count = rewriter.arrayCount();
  if (count === undefined || count < 1 || count > 2) throw malformed('an expression op value must be a list [expression, flags]');
  const expressionStart = rewriter.output.length;
  rewriter.expression(0);
  const expression = Buffer.from(rewriter.output.buffer.subarray(expressionStart, rewriter.output.length));
  let flags = 0;
  if (count === 2) {
    const flagsStart = rewriter.output.length;
    rewriter.value(0);
    const tag = rewriter.output.buffer[flagsStart]!;
    if (tag <= 0x7f) flags = tag;
    else if (tag === 0xcc) flags = rewriter.output.buffer[flagsStart + 1]!;
    else if (tag === 0xcd) flags = rewriter.output.buffer.readUInt16BE(flagsStart + 1);
    else if (tag === 0xce) flags = rewriter.output.buffer.readUInt32BE(flagsStart + 1);
    else throw malformed('expression op flags must be a small unsigned integer');
  }
  rewriter.finish('expression op');
  return { expression, flags };
}

/** Args of an op that are raw strings (names), by expression op code: which argument positions. */
function isRawArgument(code: number, position: number, count: number): boolean {
  switch (code) {
    case ExpCode.BIN:
      return position === 2;
    case ExpCode.BIN_TYPE:
    case ExpCode.VAR:
      return position === 1;
    case ExpCode.CMP_REGEX:
      return position === 2;
    case ExpCode.LET:
      // [LET, name, value, name, value, ..., body]
      return position % 2 === 1 && position < count - 1;
    default:
      return false;
  }
}

class Rewriter {
  readonly output = new ByteWriter(256);
  private at: number;

  constructor(
    private readonly source: Buffer,
    start: number,
    private readonly end: number,
    private readonly specials: boolean,
    private readonly depthMax: number,
    /** Whether 64-bit integers a JS number holds exactly are written as Shoal writes numbers (float64). */
    private readonly integersAsNumbers: boolean,
  ) {
    this.at = start;
  }

  /** The rewritten bytes. @throws RequestError when input is left over. */
  finish(what: string): Buffer {
    if (this.at !== this.end) throw malformed(`a ${what} has ${this.end - this.at} bytes after its end`);
    return Buffer.from(this.output.buffer.subarray(0, this.output.length));
  }

  private need(bytes: number): void {
    if (this.end - this.at < bytes) throw malformed('a list, map or expression value is cut off');
  }

  private copy(bytes: number): void {
    this.need(bytes);
    this.output.bytes(this.source.subarray(this.at, this.at + bytes));
    this.at += bytes;
  }

  private checkDepth(depth: number): void {
    if (depth > this.depthMax) throw malformed(`values nest deeper than ${this.depthMax} levels`);
  }

  /** If an array header is next, copies it and returns its count; else undefined (nothing consumed). */
  arrayCount(): number | undefined {
    this.need(1);
    const tag = this.source[this.at]!;
    let count: number;
    if ((tag & 0xf0) === 0x90) {
      count = tag & 0x0f;
      this.copy(1);
    } else if (tag === 0xdc) {
      this.need(3);
      count = this.source.readUInt16BE(this.at + 1);
      this.copy(3);
    } else if (tag === 0xdd) {
      this.need(5);
      count = this.source.readUInt32BE(this.at + 1);
      this.copy(5);
    } else return undefined;
    if (count > this.end - this.at) throw malformed(`a list claims ${count} items in ${this.end - this.at} bytes`);
    return count;
  }

  /** If a map header is next, copies it and returns its count; else undefined. */
  private mapCount(): number | undefined {
    const tag = this.source[this.at]!;
    let count: number;
    if ((tag & 0xf0) === 0x80) {
      count = tag & 0x0f;
      this.copy(1);
    } else if (tag === 0xde) {
      this.need(3);
      count = this.source.readUInt16BE(this.at + 1);
      this.copy(3);
    } else if (tag === 0xdf) {
      this.need(5);
      count = this.source.readUInt32BE(this.at + 1);
      this.copy(5);
    } else return undefined;
    if (count * 2 > this.end - this.at) throw malformed(`a map claims ${count} entries in ${this.end - this.at} bytes`);
    return count;
  }

  /** One value, `depth` levels down. */
  value(depth: number): void {
    this.checkDepth(depth);
    this.need(1);
    const tag = this.source[this.at]!;
    if (tag <= 0x7f || tag >= 0xe0 || tag === 0xc0 || tag === 0xc2 || tag === 0xc3) return this.copy(1);
    if ((tag & 0xe0) === 0xa0) return this.item(1, tag & 0x1f);
    const list = this.arrayCount();
    if (list !== undefined) return this.items(list, depth, false);
    const map = this.mapCount();
    if (map !== undefined) return this.items(map, depth, true);
    this.scalar(tag);
  }

  /** Every tag other than fixints, fixstr, nil, booleans and containers. */
  private scalar(tag: number): void {
    switch (tag) {
      case 0xcc:
      case 0xd0:
        return this.copy(2);
      case 0xcd:
      case 0xd1:
        return this.copy(3);
      case 0xce:
      case 0xd2:
      case 0xca:
        return this.copy(5);
      case 0xcb:
        return this.copy(9);
      case 0xd3:
      case 0xcf:
        return this.integer64();
      case 0xd9:
      case 0xc4:
        this.need(2);
        return this.item(2, this.source[this.at + 1]!);
      case 0xda:
      case 0xc5:
        this.need(3);
        return this.item(3, this.source.readUInt16BE(this.at + 1));
      case 0xdb:
      case 0xc6:
        this.need(5);
        return this.item(5, this.source.readUInt32BE(this.at + 1));
      default:
        if (this.special()) return;
        throw malformed(`MessagePack tag 0x${tag.toString(16)} is not a value Shoal reads here`);
    }
  }

  /**
   * A 64-bit integer (Aerospike's int64: an unsigned one is read as its signed twin), as int64,
   * or as a float64 of the same value when integersAsNumbers and a JS number holds it exactly.
   */
  private integer64(): void {
    this.need(9);
    const value = this.source.readBigInt64BE(this.at + 1);
    this.at += 9;
    if (this.integersAsNumbers && value >= -MAX_SAFE && value <= MAX_SAFE) {
      this.output.u8(0xcb);
      this.output.f64(Number(value));
    } else {
      this.output.u8(0xd3);
      this.output.i64(value);
    }
  }

  /** A str or bin item of `size` bytes after a `header`-byte header: particle type, then the bytes. */
  private item(header: number, size: number): void {
    this.need(header + size);
    const start = this.at + header;
    this.at = start + size;
    if (size === 0) {
      this.binHeader(0);
      return;
    }
    const type = this.source[start]!;
    const bytes = this.source.subarray(start + 1, start + size);
    if (type === ParticleType.STRING || type === ParticleType.GEOJSON) {
      if (!isAscii(bytes) && !isUtf8(bytes)) throw malformed('a string value is not valid UTF-8');
      this.output.msgpackStrHeader(bytes.length);
    } else this.binHeader(bytes.length);
    this.output.bytes(bytes);
  }

  private binHeader(size: number): void {
    const writer = this.output;
    if (size < 0x100) {
      writer.u8(0xc4);
      writer.u8(size);
    } else if (size < 0x10000) {
      writer.u8(0xc5);
      writer.u16(size);
    } else {
      writer.u8(0xc6);
      writer.u32(size);
    }
  }

  /** The elements (map: key/value pairs) of a container whose header was copied. */
  private items(count: number, depth: number, map: boolean): void {
    if (count > 0 && this.orderHeader()) {
      count--;
      if (map) this.value(depth + 1);
    }
    const values = map ? count * 2 : count;
    for (let i = 0; i < values; i++) this.value(depth + 1);
  }

  /** The ext element at `at`: its data size and where the data starts, or undefined when it is no ext. */
  private ext(): { type: number; dataAt: number; size: number } | undefined {
    this.need(1);
    const tag = this.source[this.at]!;
    let size: number;
    let header: number;
    if (tag >= 0xd4 && tag <= 0xd8) {
      size = 1 << (tag - 0xd4);
      header = 1;
    } else if (tag === 0xc7) {
      this.need(2);
      size = this.source[this.at + 1]!;
      header = 2;
    } else if (tag === 0xc8) {
      this.need(3);
      size = this.source.readUInt16BE(this.at + 1);
      header = 3;
    } else if (tag === 0xc9) {
      this.need(5);
      size = this.source.readUInt32BE(this.at + 1);
      header = 5;
    } else return undefined;
    this.need(header + 1 + size);
    return { type: this.source[this.at + header]!, dataAt: this.at + header + 1, size };
  }

  /** A WILDCARD or INF at `at`, written as fixext1; returns whether there was one. */
  private special(): boolean {
    const ext = this.ext();
    if (ext === undefined || ext.type !== SPECIAL_EXT_TYPE || ext.size !== 1 || this.source[ext.dataAt]! > 1) return false;
    if (!this.specials) throw malformed('WILDCARD and INF are comparison values, not storable ones');
    this.output.u8(0xd4);
    this.output.u8(SPECIAL_EXT_TYPE);
    this.output.u8(this.source[ext.dataAt]!);
    this.at = ext.dataAt + 1;
    return true;
  }

  /** An order-flags header at `at` (an ext that is not WILDCARD or INF), written as `c7 00 flags`; returns whether there was one. */
  private orderHeader(): boolean {
    const ext = this.ext();
    if (ext === undefined || (ext.type === SPECIAL_EXT_TYPE && ext.size === 1)) return false;
    this.output.u8(0xc7);
    this.output.u8(0);
    this.output.u8(ext.type);
    this.at = ext.dataAt + ext.size;
    return true;
  }

  /** One expression: an array is an operation, anything else a literal value. */
  expression(depth: number): void {
    this.checkDepth(depth);
    const count = this.arrayCount();
    if (count === undefined) return this.value(depth);
    if (count === 0) return;
    const code = this.integer();
    for (let position = 1; position < count; position++) {
      if (isRawArgument(code, position, count)) this.raw(depth + 1);
      else if (code === ExpCode.QUOTE && position === 1) this.value(depth + 1);
      else if (code === ExpCode.CALL && position === 3) this.callOperation(depth + 1);
      else this.expression(depth + 1);
    }
  }

  /** A raw string (a name): copied as it is. Anything else is rewritten as a value, for the compiler to refuse. */
  private raw(depth: number): void {
    this.need(1);
    const tag = this.source[this.at]!;
    let header: number;
    let size: number;
    if ((tag & 0xe0) === 0xa0) {
      header = 1;
      size = tag & 0x1f;
    } else if (tag === 0xd9) {
      this.need(2);
      header = 2;
      size = this.source[this.at + 1]!;
    } else if (tag === 0xda) {
      this.need(3);
      header = 3;
      size = this.source.readUInt16BE(this.at + 1);
    } else return this.value(depth);
    this.need(header + size);
    const bytes = this.source.subarray(this.at + header, this.at + header + size);
    if (!isAscii(bytes) && !isUtf8(bytes)) throw malformed('a name in an expression is not valid UTF-8');
    this.copy(header + size);
  }

  /** An integer literal (an op code), copied; -1 when the element is no integer (it is copied as a value, for the compiler to refuse). */
  private integer(): number {
    this.need(1);
    const tag = this.source[this.at]!;
    const start = this.output.length;
    this.value(0);
    const written = this.output.buffer;
    if (tag <= 0x7f) return tag;
    if (tag >= 0xe0) return tag - 0x100;
    if (tag === 0xcc) return written[start + 1]!;
    if (tag === 0xcd) return written.readUInt16BE(start + 1);
    if (tag === 0xd0) return written.readInt8(start + 1);
    return -1;
  }

  /** A CALL's list or map operation: `[code, expression...]` or `[0xff, context, operation]`. */
  private callOperation(depth: number): void {
    this.checkDepth(depth);
    const count = this.arrayCount();
    if (count === undefined) return this.value(depth);
    if (count === 0) return;
    const code = this.integer();
    if (code === CONTEXT_MARKER && count === 3) {
      this.value(depth + 1);
      this.callOperation(depth + 1);
      return;
    }
    for (let position = 1; position < count; position++) this.expression(depth + 1);
  }
}

function isAscii(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i]! > 0x7f) return false;
  return true;
}
