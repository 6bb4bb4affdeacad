/**
 * opts.filter: a filter expression (exp.*) evaluated on the record an operation finds, at one
 * point per kind of operation, the same for both namespaces: a get, put, remove or operate of a
 * record the filter is false for gives FILTERED_OUT (Aerospike's 27) and changes nothing; a scan
 * skips it; a batchGet returns undefined for it. A write to a record that does not exist is not
 * filtered (there is nothing to evaluate), as in Aerospike. The filter is compiled once per
 * call (an Expression keeps its compiled form) and reads only the bins it names.
 */
import { ErrorCode, ShoalError } from '../errors';
import { PAYLOAD_HEADER_BYTES } from '../constants';
import { STORED, decodeCdt, endOfLast, lastContainerCount, readContainerHeader, skipValue } from '../model/cdt/decode';
import type { CdtValue } from '../model/cdt/value';
import { decodePayloadKey } from '../model/bins';
import { recordBytes } from '../storage/format';
import { compileFilter, type ExpRecord } from '../model/exp/compile';
import { Expression } from '../model/exp/expression';
import type { KeyValue } from '../model/key';

/** What opts.filter holds: an exp.* expression, or its encoded bytes (as a peer forwards it). */
export type Filter = Expression | Uint8Array;

/**
 * Checks opts.filter and compiles it (kept with the Expression, so the namespaces' evaluation
 * compiles nothing).
 * @throws TypeError when it is not an expression; ShoalError INVALID_ARGUMENT when it does not compile or is not a boolean.
 */
export function checkFilter(filter: unknown): void {
  if (filter === undefined) return;
  if (!(filter instanceof Expression) && !(filter instanceof Uint8Array)) throw new TypeError('opts.filter must be an expression built with exp.*');
  compileFilter(filter);
}

/** The record a filter is evaluated on: its payload and metadata. */
export interface FilterSource {
  payload: Buffer;
  offset: number;
  length: number;
  voidTime: number;
  lastUpdateMs: number;
  setName: string;
  digest: Uint8Array;
  onDevice: boolean;
  inMemory: boolean;
}

/**
 * A record's size as recordSize() reports it: the bytes it takes in the device format
 * (docs/storage-format.md: header, set name, payload, checksum, padding), for memory
 * namespaces too, so that, as in Aerospike, it counts the record's overhead and not only its bins.
 */
export function storedRecordBytes(source: FilterSource): number {
  return recordBytes(Buffer.byteLength(source.setName, 'utf8'), 0, source.length);
}

/** Whether the record passes the filter (no filter: it does). */
export function passesFilter(filter: Filter | undefined, source: FilterSource): boolean {
  if (filter === undefined) return true;
  return compileFilter(filter).matches(new PayloadRecord(source));
}

/**
 * @throws ShoalError FILTERED_OUT when the record does not pass the filter.
 */
export function requireFilter(filter: Filter | undefined, source: FilterSource): void {
  if (!passesFilter(filter, source)) throw filteredOut();
}

export function filteredOut(): ShoalError {
  return new ShoalError(ErrorCode.FILTERED_OUT, 'the record exists but the filter expression is false for it');
}

/** A record as an expression reads it: bins decoded from the payload when the expression names them. */
class PayloadRecord implements ExpRecord {
  private bins: Map<string, CdtValue> | undefined;

  constructor(private readonly source: FilterSource) {}

  get voidTime(): number {
    return this.source.voidTime;
  }
  get lastUpdateMs(): number {
    return this.source.lastUpdateMs;
  }
  get setName(): string {
    return this.source.setName;
  }
  get digest(): Uint8Array {
    return this.source.digest;
  }
  get recordBytes(): number {
    return storedRecordBytes(this.source);
  }
  get onDevice(): boolean {
    return this.source.onDevice;
  }
  get inMemory(): boolean {
    return this.source.inMemory;
  }
  get key(): KeyValue | undefined {
    return this.source.payload[this.source.offset + 1] === 0 ? undefined : decodePayloadKey(this.source.payload, this.source.offset);
  }

  /** A bin's value, decoded the first time the expression reads it (other bins are skipped over, not decoded). */
  bin(name: string): CdtValue | undefined {
    this.bins ??= new Map();
    if (this.bins.has(name)) return this.bins.get(name);
    const { payload, offset, length } = this.source;
    const end = offset + length;
    let value: CdtValue | undefined;
    let at = offset + PAYLOAD_HEADER_BYTES + payload.readUInt16LE(offset + 2);
    if (readContainerHeader(payload, at, end, STORED) === 'map') {
      const count = lastContainerCount();
      at = endOfLast();
      for (let i = 0; i < count && value === undefined; i++) {
        const binName = decodeCdt(payload, at, end, STORED);
        const start = endOfLast();
        at = skipValue(payload, start, end, STORED);
        if (binName === name) value = decodeCdt(payload, start, at, STORED);
      }
    }
    this.bins.set(name, value as CdtValue);
    return value;
  }
}
