/**
 * Aerospike's asbackup text format, version 3.1 (docs/backup.md): Shoal writes a namespace
 * into a file asrestore can load into an Aerospike cluster, and reads such files (written by
 * asbackup or by Shoal) back into a Db. The format's facts come from Aerospike's public
 * aerospike-tools-backup sources (src/enc_text.c, src/dec_text.c, include/encode.h):
 *
 *   Version 3.1\n
 *   # namespace <ns>\n                 then "# first-file\n" in the first file of a backup
 *   per record:
 *   + k I <int> | + k D <double> | + k S <bytes> <string> | + k B <base64 length> <base64>\n   (optional: the user key)
 *   + n <ns>\n + d <base64 digest>\n [+ s <set>\n] + g <generation>\n + t <expiry>\n + b <bin count>\n
 *   per bin:
 *   - N <name> | - Z <name> T|F | - I <name> <int> | - D <name> <double> | - S <name> <bytes> <string>
 *   | - G <name> <bytes> <geojson> | - B|M|L <name> <base64 length> <base64>\n   (blob, map, list as
 *   Aerospike MessagePack; "B!" etc. carry raw bytes instead of base64, "compact" files)
 *
 * Names (namespace, set, bin) escape backslash, space and line feed with a backslash. The
 * expiry is a void time in seconds since 2010-01-01 UTC (Aerospike's epoch), 0 for never.
 */
import * as fs from 'node:fs';
import { ErrorCode, ShoalError } from '../errors';
import type { BinValue, Bins } from '../model/bins';
import type { KeyValue } from '../model/key';
import { ByteWriter } from '../service/byte-writer';
import { ParticleType, decodeParticle, writeParticle } from '../service/particles';
import { ASBACKUP_LINE_MAX_BYTES, ASBACKUP_READ_CHUNK_BYTES, ASBACKUP_VALUE_MAX_BYTES } from './constants';

/** Seconds from the Unix epoch to Aerospike's (2010-01-01T00:00:00Z). */
const AEROSPIKE_EPOCH_SECONDS = 1_262_304_000;

/** One record as an asbackup file holds it. */
export interface AsbackupRecord {
  ns: string;
  digest: Buffer;
  set: string;
  /** The user key, when the record stored it. */
  key: KeyValue | undefined;
  gen: number;
  /** Seconds left, -1 for never (relative to `nowMs` when read). */
  ttl: number;
  bins: Bins;
}

/** The file's header: version, namespace, and first-file marker. */
export function asbackupHeader(ns: string, firstFile = true): Buffer {
  return Buffer.from(`Version 3.1\n# namespace ${escapeName(ns)}\n${firstFile ? '# first-file\n' : ''}`);
}

/**
 * One record's lines.
 * @throws ShoalError INVALID_ARGUMENT for a value the format cannot carry (none of Shoal's).
 */
export function encodeAsbackupRecord(record: AsbackupRecord, nowMs = Date.now()): Buffer {
  const parts: Buffer[] = [];
  const text = (line: string) => parts.push(Buffer.from(line));
  if (record.key !== undefined) parts.push(encodeKey(record.key));
  text(`+ n ${escapeName(record.ns)}\n+ d ${record.digest.toString('base64')}\n`);
  if (record.set !== '') text(`+ s ${escapeName(record.set)}\n`);
  const expiry = record.ttl < 0 ? 0 : Math.floor(nowMs / 1000) - AEROSPIKE_EPOCH_SECONDS + record.ttl;
  const names = Object.keys(record.bins);
  text(`+ g ${record.gen}\n+ t ${expiry}\n+ b ${names.length}\n`);
  for (const name of names) parts.push(encodeBin(escapeName(name), record.bins[name]!));
  return Buffer.concat(parts);
}

function encodeKey(key: KeyValue): Buffer {
  if (typeof key === 'string') return sized('+ k S', Buffer.from(key));
  if (typeof key === 'bigint' || Number.isSafeInteger(key)) return Buffer.from(`+ k I ${String(key)}\n`);
  if (typeof key === 'number') return Buffer.from(`+ k D ${formatDouble(key)}\n`);
  return sized('+ k B', Buffer.from(Buffer.from(key).toString('base64')));
}

function encodeBin(name: string, value: BinValue): Buffer {
  if (value === null) return Buffer.from(`- N ${name}\n`);
  if (typeof value === 'boolean') return Buffer.from(`- Z ${name} ${value ? 'T' : 'F'}\n`);
  if (typeof value === 'bigint' || (typeof value === 'number' && Number.isSafeInteger(value))) return Buffer.from(`- I ${name} ${String(value)}\n`);
  if (typeof value === 'number') return Buffer.from(`- D ${name} ${formatDouble(value)}\n`);
  if (typeof value === 'string') return sized(`- S ${name}`, Buffer.from(value));
  if (value instanceof Uint8Array) return sized(`- B ${name}`, Buffer.from(Buffer.from(value).toString('base64')));
  // Lists and maps: their Aerospike MessagePack, as the service protocol carries them.
  const writer = new ByteWriter(256);
  const type = writeParticle(writer, value);
  return sized(`- ${type === ParticleType.LIST ? 'L' : 'M'} ${name}`, Buffer.from(writer.copyFrom(0).toString('base64')));
}

/** "<prefix> <length> <bytes>\n". */
function sized(prefix: string, bytes: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${prefix} ${bytes.length} `), bytes, Buffer.from('\n')]);
}

/** A double with 17 significant digits, as asbackup writes it (reads back exactly); finite values only. */
function formatDouble(value: number): string {
  if (!Number.isFinite(value)) throw new ShoalError(ErrorCode.INVALID_ARGUMENT, `asbackup cannot carry the double ${value}`);
  return value.toPrecision(17);
}

/** Escapes backslash, space and line feed with a backslash (asbackup's escape_space). */
export function escapeName(name: string): string {
  return name.replace(/[\\ \n]/g, (ch) => `\\${ch}`);
}

function unescapeName(text: string): string {
  return text.replace(/\\(.)/gs, '$1');
}

/**
 * Reads an asbackup file record by record (streamed: at most one line or one value in memory
 * beyond the read chunk).
 * @throws ShoalError CORRUPTION naming the line for anything the format does not allow; IO_ERROR when the file cannot be read.
 */
export async function* readAsbackup(file: string, nowMs = Date.now()): AsyncIterable<AsbackupRecord> {
  const source = await LineSource.open(file);
  try {
    const version = await source.line();
    if (version !== 'Version 3.1' && version !== 'Version 3.0') throw source.error(`not an asbackup file: it starts with ${JSON.stringify(version?.slice(0, 40))}`);
    for (;;) {
      const ch = await source.peek();
      if (ch === undefined) return;
      if (ch === '#' || ch === '*') {
        // Meta lines (namespace, first-file) and global lines (secondary indexes, UDF files) carry no records.
        await source.line();
        continue;
      }
      if (ch !== '+') throw source.error(`a line starts with ${JSON.stringify(ch)}, not "+", "#" or "*"`);
      yield await readRecord(source, nowMs);
    }
  } finally {
    await source.close();
  }
}

async function readRecord(source: LineSource, nowMs: number): Promise<AsbackupRecord> {
  let key: AsbackupRecord['key'];
  let field = await source.token('+ ');
  if (field === 'k') {
    key = await readKey(source);
    field = await source.token('+ ');
  }
  if (field !== 'n') throw source.error(`expected "+ n", found "+ ${field}"`);
  const ns = unescapeName(await source.rest());
  if (await source.token('+ ') !== 'd') throw source.error('expected "+ d"');
  const digest = Buffer.from(await source.rest(), 'base64');
  if (digest.length !== 20) throw source.error(`a digest of ${digest.length} bytes, not 20`);
  field = await source.token('+ ');
  let set = '';
  if (field === 's') {
    set = unescapeName(await source.rest());
    field = await source.token('+ ');
  }
  if (field !== 'g') throw source.error(`expected "+ g", found "+ ${field}"`);
  const gen = integerIn(source, await source.rest(), 0, 0xffff, 'generation');
  if (await source.token('+ ') !== 't') throw source.error('expected "+ t"');
  const expiry = integerIn(source, await source.rest(), 0, 0xffff_ffff, 'expiry');
  const ttl = expiry === 0 ? -1 : Math.max(1, expiry + AEROSPIKE_EPOCH_SECONDS - Math.floor(nowMs / 1000));
  if (await source.token('+ ') !== 'b') throw source.error('expected "+ b"');
  const count = integerIn(source, await source.rest(), 0, 32_767, 'bin count');
  const bins: Bins = {};
  for (let i = 0; i < count; i++) {
    const [name, value] = await readBin(source);
    bins[name] = value;
  }
  return { ns, digest, set, key, gen, ttl, bins };
}

async function readKey(source: LineSource): Promise<AsbackupRecord['key']> {
  const type = await source.word();
  switch (type) {
    case 'I':
      return int64(source, await source.rest());
    case 'D':
      return double(source, await source.rest());
    case 'S':
      return (await source.sized()).toString('utf8');
    case 'X':
    case 'B':
      return Buffer.from((await source.sized()).toString('latin1'), 'base64');
    case 'B!':
      return source.sized();
    default:
      throw source.error(`unknown key type ${JSON.stringify(type)}`);
  }
}

async function readBin(source: LineSource): Promise<[string, BinValue]> {
  if (await source.token('- ') === undefined) throw source.error('expected a bin line "- "');
  const type = source.lastToken!;
  const name = unescapeName(await source.escapedWord());
  switch (type) {
    case 'N':
      await source.endOfLine();
      return [name, null];
    case 'Z': {
      const flag = await source.rest();
      if (flag !== 'T' && flag !== 'F') throw source.error(`a boolean is ${JSON.stringify(flag)}, not T or F`);
      return [name, flag === 'T'];
    }
    case 'I':
      return [name, int64(source, await source.rest())];
    case 'D':
      return [name, double(source, await source.rest())];
    case 'S':
    case 'G':
      return [name, (await source.sized()).toString('utf8')];
    case 'X':
      return [name, Buffer.from((await source.sized()).toString('latin1'), 'base64').toString('utf8')];
    default: {
      const compact = type.endsWith('!');
      const label = compact ? type.slice(0, -1) : type;
      if (label.length !== 1 || !'BJCPRHEYML'.includes(label)) throw source.error(`unknown bin type ${JSON.stringify(type)}`);
      const raw = await source.sized();
      const bytes = compact ? raw : Buffer.from(raw.toString('latin1'), 'base64');
      if (label === 'Y') throw source.error(`bin ${name} holds a HyperLogLog, which Shoal does not store`);
      if (label !== 'M' && label !== 'L') return [name, bytes];
      try {
        return [name, decodeParticle(label === 'M' ? ParticleType.MAP : ParticleType.LIST, bytes, 0, bytes.length)];
      } catch (error) {
        throw source.error(`bin ${name}: its ${label === 'M' ? 'map' : 'list'} does not decode: ${(error as Error).message}`);
      }
    }
  }
}

function integerIn(source: LineSource, text: string, min: number, max: number, what: string): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) throw source.error(`${what} ${JSON.stringify(text.slice(0, 30))} is not an integer in ${min}..${max}`);
  return Number(text);
}

function int64(source: LineSource, text: string): number | bigint {
  if (!/^-?\d{1,19}$/.test(text)) throw source.error(`${JSON.stringify(text.slice(0, 30))} is not a 64-bit integer`);
  const value = BigInt(text);
  if (value < -(2n ** 63n) || value >= 2n ** 63n) throw source.error(`${text} is outside the 64-bit range`);
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

function double(source: LineSource, text: string): number {
  const value = Number(text);
  if (text.length === 0 || !Number.isFinite(value)) throw source.error(`${JSON.stringify(text.slice(0, 30))} is not a finite double`);
  return value;
}

/** A file read a chunk at a time, by lines, words and length-prefixed values. */
class LineSource {
  private buffer = Buffer.alloc(0);
  private at = 0;
  private lineNumber = 1;
  private ended = false;
  lastToken: string | undefined;

  private constructor(private readonly handle: fs.promises.FileHandle, private readonly file: string) {}

  static async open(file: string): Promise<LineSource> {
    try {
      return new LineSource(await fs.promises.open(file, 'r'), file);
    } catch (error) {
      throw new ShoalError(ErrorCode.IO_ERROR, `cannot read ${file}: ${(error as Error).message}`, { cause: error });
    }
  }

  close(): Promise<void> {
    return this.handle.close();
  }

  error(message: string): ShoalError {
    return new ShoalError(ErrorCode.CORRUPTION, `${this.file} line ${this.lineNumber}: ${message}`);
  }

  /** Makes at least `bytes` bytes available after the cursor (fewer only at the end of the file). */
  private async fill(bytes: number): Promise<void> {
    while (this.buffer.length - this.at < bytes && !this.ended) {
      const chunk = Buffer.alloc(ASBACKUP_READ_CHUNK_BYTES);
      const { bytesRead } = await this.handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) this.ended = true;
      this.buffer = Buffer.concat([this.buffer.subarray(this.at), chunk.subarray(0, bytesRead)]);
      this.at = 0;
    }
  }

  async peek(): Promise<string | undefined> {
    await this.fill(1);
    return this.at < this.buffer.length ? String.fromCharCode(this.buffer[this.at]!) : undefined;
  }

  /** The rest of the line (without its line feed); undefined at the end of the file. */
  async line(): Promise<string | undefined> {
    for (;;) {
      const end = this.buffer.indexOf(10, this.at);
      if (end >= 0) {
        const text = this.buffer.toString('utf8', this.at, end);
        this.at = end + 1;
        this.lineNumber++;
        return text;
      }
      if (this.buffer.length - this.at > ASBACKUP_LINE_MAX_BYTES) throw this.error(`a line longer than ${ASBACKUP_LINE_MAX_BYTES} bytes`);
      if (this.ended) {
        if (this.at === this.buffer.length) return undefined;
        throw this.error('the file ends inside a line');
      }
      await this.fill(this.buffer.length - this.at + 1);
    }
  }

  /** The rest of the current line, which must exist. */
  async rest(): Promise<string> {
    const text = await this.line();
    if (text === undefined) throw this.error('the file ends inside a record');
    return text;
  }

  /** Expects `prefix` ("+ " or "- ") and returns the field letter(s) up to the next space. */
  async token(prefix: string): Promise<string | undefined> {
    await this.fill(prefix.length);
    if (this.buffer.toString('latin1', this.at, this.at + prefix.length) !== prefix) throw this.error(`expected ${JSON.stringify(prefix)}`);
    this.at += prefix.length;
    this.lastToken = await this.word();
    return this.lastToken;
  }

  /** Characters up to the next space (consumed) or line feed (left). */
  async word(): Promise<string> {
    for (let length = 0; ; length++) {
      await this.fill(length + 1);
      const ch = this.buffer[this.at + length];
      if (ch === undefined) throw this.error('the file ends inside a record');
      if (ch === 32 || ch === 10) {
        const text = this.buffer.toString('utf8', this.at, this.at + length);
        this.at += length + (ch === 32 ? 1 : 0);
        return text;
      }
      if (length > ASBACKUP_LINE_MAX_BYTES) throw this.error('a field longer than a line may be');
    }
  }

  /** A name up to an unescaped space or line feed (escapes kept for unescapeName). */
  async escapedWord(): Promise<string> {
    for (let length = 0; ; length++) {
      await this.fill(length + 2);
      const ch = this.buffer[this.at + length];
      if (ch === undefined) throw this.error('the file ends inside a record');
      if (ch === 92) {
        length++;
        continue;
      }
      if (ch === 32 || ch === 10) {
        const text = this.buffer.toString('utf8', this.at, this.at + length);
        this.at += length + (ch === 32 ? 1 : 0);
        return text;
      }
      if (length > ASBACKUP_LINE_MAX_BYTES) throw this.error('a name longer than a line may be');
    }
  }

  async endOfLine(): Promise<void> {
    const rest = await this.rest();
    if (rest !== '') throw this.error(`unexpected ${JSON.stringify(rest.slice(0, 30))} at the end of a line`);
  }

  /** "<length> <bytes>\n": the bytes (which may hold line feeds). */
  async sized(): Promise<Buffer> {
    const length = integerIn(this, await this.word(), 0, ASBACKUP_VALUE_MAX_BYTES, 'value length');
    await this.fill(length + 1);
    if (this.buffer.length - this.at < length + 1) throw this.error('the file ends inside a value');
    const bytes = Buffer.from(this.buffer.subarray(this.at, this.at + length));
    if (this.buffer[this.at + length] !== 10) throw this.error('a value is not followed by a line feed');
    for (const byte of bytes) if (byte === 10) this.lineNumber++;
    this.at += length + 1;
    this.lineNumber++;
    return bytes;
  }
}
