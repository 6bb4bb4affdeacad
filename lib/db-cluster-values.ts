/**
 * Bin values across the cluster's msgpack frames. The frames decode maps as plain objects,
 * which a Map bin value (integer or Buffer keys) cannot survive, so bins that hold one (or an
 * ordered collection's flags) travel as Shoal's own payload bytes instead: a put's bins, an
 * op.write value, the bins of a record returned by get, operate or scan. Bins without them go
 * as plain data, as before, so the frames of records older versions can read do not change.
 */
import { PAYLOAD_FORMAT_EXTENDED } from './constants';
import { invalidArgument } from './errors';
import { Bins, BinValue, decodePayloadBins, encodePayload } from './model/bins';
import type { ShoalRecord } from './namespace/namespace';
import type { Operation } from './namespace/semantics';
import { Expression } from './model/exp/expression';

let scratch = Buffer.allocUnsafe(64 << 10);

/**
 * The payload of `bins` when it is format 2 (a Map or order flags somewhere), else undefined.
 * Bins too big for any record are left as they are (the master refuses them).
 */
function extendedPayload(bins: Bins): Buffer | undefined {
  for (;;) {
    const length = encodePayload(scratch, 0, scratch.length, bins, 0, undefined);
    if (length >= 0) return scratch[0] === PAYLOAD_FORMAT_EXTENDED ? Buffer.from(scratch.subarray(0, length)) : undefined;
    if (scratch.length >= 16 << 20) return undefined;
    scratch = Buffer.allocUnsafe(scratch.length * 4);
  }
}

function decoded(payload: unknown, what: string): Bins {
  if (!Buffer.isBuffer(payload) && !(payload instanceof Uint8Array)) throw invalidArgument(`malformed cluster request: ${what} is not a payload`);
  const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  return decodePayloadBins(bytes, 0, bytes.length);
}

interface WireCall {
  method: string;
  bins?: Bins;
  binsPayload?: Buffer;
  ops?: Operation[];
  writePayloads?: Record<number, Buffer>;
}

/** Options with their filter expression as its encoded bytes (an Expression instance does not survive a frame). */
export function optionsToWire<T>(options: T): T {
  const filter = (options as { filter?: unknown } | undefined)?.filter;
  return filter instanceof Expression ? { ...options, filter: filter.toBytes() } : options;
}

/** A single-record call as it goes into a frame. */
export function callToWire<T extends { method: string }>(call: T): T {
  const opts = (call as { opts?: unknown }).opts;
  if (opts !== undefined) call = { ...call, opts: optionsToWire(opts) };
  const wire = call as unknown as WireCall;
  if (wire.method === 'put' && wire.bins !== undefined) {
    const payload = extendedPayload(wire.bins);
    if (payload !== undefined) {
      const { bins: _bins, ...rest } = wire;
      return { ...rest, binsPayload: payload } as unknown as T;
    }
  }
  if (wire.method === 'operate' && Array.isArray(wire.ops)) {
    let writePayloads: Record<number, Buffer> | undefined;
    const ops = wire.ops.map((operation, index) => {
      if (operation.op !== 'write' || operation.value === null || typeof operation.value !== 'object') return operation;
      const payload = extendedPayload({ [operation.bin]: operation.value });
      if (payload === undefined) return operation;
      (writePayloads ??= {})[index] = payload;
      return { op: 'write', bin: operation.bin, value: null };
    });
    if (writePayloads !== undefined) return { ...call, ops, writePayloads };
  }
  return call;
}

/**
 * A single-record call as the master gets it from a frame.
 * @throws ShoalError INVALID_ARGUMENT for encoded parts that are malformed.
 */
export function callFromWire<T>(call: T): T {
  const wire = call as unknown as WireCall;
  if (wire === null || typeof wire !== 'object') return call;
  if (wire.binsPayload !== undefined) {
    const { binsPayload, ...rest } = wire;
    return { ...rest, bins: decoded(binsPayload, 'bins') } as unknown as T;
  }
  if (wire.writePayloads !== undefined && Array.isArray(wire.ops)) {
    const payloads = wire.writePayloads;
    if (payloads === null || typeof payloads !== 'object') throw invalidArgument('malformed cluster request: writePayloads');
    const ops = wire.ops.map((operation, index) => {
      const payload = payloads[index];
      if (payload === undefined || operation === null || typeof operation !== 'object' || operation.op !== 'write') return operation;
      const bins = decoded(payload, `operation ${index}`);
      return { op: 'write', bin: operation.bin, value: bins[operation.bin] as BinValue };
    });
    const { writePayloads: _payloads, ...rest } = wire;
    return { ...rest, ops } as unknown as T;
  }
  return call;
}

/** A record (get, operate, scan result) as it goes into a frame. */
export function recordToWire<T>(record: T): T {
  const value = record as unknown as ShoalRecord | undefined;
  if (value === undefined || value === null || typeof value !== 'object' || value.bins === undefined) return record;
  const payload = extendedPayload(value.bins);
  if (payload === undefined) return record;
  const { bins: _bins, ...rest } = value;
  return { ...rest, binsPayload: payload } as unknown as T;
}

/** A record as the Db gets it back from the cluster. */
export function recordFromWire<T>(record: T): T {
  const value = record as unknown as { binsPayload?: unknown } | undefined;
  if (value === undefined || value === null || typeof value !== 'object' || value.binsPayload === undefined) return record;
  const { binsPayload, ...rest } = value as { binsPayload: unknown } & Record<string, unknown>;
  return { ...rest, bins: decoded(binsPayload, 'record bins') } as unknown as T;
}
