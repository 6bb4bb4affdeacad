/**
 * operate(): the operations a call applies to one record, in order, as one atomic change.
 *
 * The record's bins are read lazily from its payload: each bin stays its stored bytes until an
 * operation needs its value, and bins no operation wrote are copied to the new payload as they
 * were, without decoding. A list or map operation decodes its bin into the collection engine's
 * values (lib/model/cdt) and leaves it there for the next one. Each kind of operation is one
 * entry of OPERATIONS.
 */
import { ErrorCode, ShoalError, invalidArgument } from '../errors';
import { OPERATION_PAYLOAD_BYTES_MAX, PAYLOAD_FORMAT_EXTENDED, PAYLOAD_HEADER_BYTES } from '../constants';
import { Bins, BinValue, checkBinName, checkBinValue, packr } from '../model/bins';
import { OperationArgs } from '../model/cdt/args';
import { CdtOperation, list, map } from '../model/cdt/builders';
import { fromUser } from '../model/cdt/convert';
import { STORED, decodeCdt, decodeUser, endOfLast, lastContainerCount, readContainerHeader, skipValue } from '../model/cdt/decode';
import { executeCdt, specOf } from '../model/cdt/execute';
import { fastWrite, output as fastArena, resetFastArena } from '../model/cdt/fast';
import { CdtValue, ENCODED_ENTRIES, EncodedEntries, EncodedValue, toUser } from '../model/cdt/value';
import { describe, type KeyValue } from '../model/key';
import { decodePayloadKey } from '../model/bins';
import type { ExpRecord } from '../model/exp/compile';
import { ExpOperation, ExpReadFlags, ExpWriteFlags, UNKNOWN, checkExpOperation, compileOperation, expOperations, storedCopy } from '../model/exp/operation';
import { type FilterSource, storedRecordBytes } from './filter';

export type Operation =
  | { op: 'read'; bin: string }
  | { op: 'write'; bin: string; value: BinValue }
  | { op: 'incr'; bin: string; value: number | bigint }
  | { op: 'append'; bin: string; value: string | Buffer }
  | { op: 'prepend'; bin: string; value: string | Buffer }
  | { op: 'touch' }
  | { op: 'delete' }
  | CdtOperation
  | ExpOperation;

/**
 * An operation may carry `resultKey`: the key its result takes in operate()'s returned bins
 * instead of the bin name (the Aerospike listener gives each op its own key, so two results
 * for one bin both come back, in order).
 */
type Keyed = { resultKey?: string };
/** An operation with its result's key (see Keyed). */
export type KeyedOperation = Operation & Keyed;

/** Operation builders for db.operate(); op.list and op.map build list and map operations. */
export const op = {
  read: (bin: string): Operation => ({ op: 'read', bin }),
  write: (bin: string, value: BinValue): Operation => ({ op: 'write', bin, value }),
  incr: (bin: string, value: number | bigint): Operation => ({ op: 'incr', bin, value }),
  append: (bin: string, value: string | Buffer): Operation => ({ op: 'append', bin, value }),
  prepend: (bin: string, value: string | Buffer): Operation => ({ op: 'prepend', bin, value }),
  touch: (): Operation => ({ op: 'touch' }),
  delete: (): Operation => ({ op: 'delete' }),
  list,
  map,
  /** Expression operations: op.exp.read(name, expression, flags), op.exp.write(bin, expression, flags). */
  exp: expOperations,
};

/**
 * Checks an operations list.
 * @throws TypeError for a non-array; ShoalError INVALID_ARGUMENT naming the bad operation.
 */
export function checkOperations(operations: unknown): asserts operations is Operation[] {
  if (!Array.isArray(operations)) throw new TypeError('operations must be an array built with op.*()');
  if (operations.length === 0) throw invalidArgument('operations must not be empty');
  operations.forEach((operation: Operation, index: number) => {
    if (operation === null || typeof operation !== 'object') throw invalidArgument(`operation ${index} is not an op.*() value`);
    const resultKey = (operation as Keyed).resultKey;
    if (resultKey !== undefined && typeof resultKey !== 'string') throw invalidArgument(`operation ${index}: resultKey must be a string`);
    kindOf(operation, index).check(operation as never, index);
  });
}

/** Whether an operation writes the record (a list or map read does not). */
export function operationWrites(operation: Operation): boolean {
  if (operation.op === 'read' || operation.op === 'expRead') return false;
  if (operation.op !== 'cdt') return true;
  return specOf(new OperationArgs(operation.payload)).modify;
}

/** Whether any of the operations writes. */
export function operationsWrite(operations: readonly Operation[]): boolean {
  return operations.some(operationWrites);
}

export interface OperateOutcome {
  /**
   * The bins to store, or undefined when the record ends with none (deleted). Values the
   * operations did not touch are EncodedValues over a buffer the next applyOperations reuses:
   * encode them (encodePayload) before calling it again.
   */
  bins: Bins | undefined;
  /** Whether anything was written (otherwise the record is left untouched). */
  writes: boolean;
  /** What the read operations (and list and map operations) returned, by bin name. */
  reads: Bins;
}

/**
 * Applies operations in order to the record whose payload is payload[offset, offset + length)
 * (undefined: the record does not exist). `record` gives expression operations the stored
 * record's metadata (called only when one asks; absent for a record being created).
 * @throws ShoalError BIN_TYPE when an operation meets a bin of another type; the list and
 *   map operations' errors (OP_NOT_APPLICABLE, ELEMENT_EXISTS, ELEMENT_NOT_FOUND,
 *   INVALID_ARGUMENT), each naming the operation. Nothing is changed when it throws.
 */
export function applyOperations(payload: Buffer | undefined, offset: number, length: number, operations: readonly Operation[], record?: () => FilterSource): OperateOutcome {
  const working = new WorkingBins(payload, offset, length, record);
  const reads: Bins = {};
  let writes = false;
  for (let index = 0; index < operations.length; index++) {
    const operation = operations[index]!;
    const kind = kindOf(operation, index);
    try {
      if (kind.apply(working, operation as never, reads)) writes = true;
    } catch (error) {
      throw namedError(error, index, operation);
    }
  }
  return { bins: writes ? working.result() : undefined, writes, reads };
}

/**
 * The entry of an operation's kind.
 * @throws ShoalError INVALID_ARGUMENT for an op that is none of them.
 */
function kindOf(operation: Operation, index: number): OperationKind<Operation> {
  const name = (operation as { op?: unknown }).op;
  if (typeof name !== 'string' || !Object.prototype.hasOwnProperty.call(OPERATIONS, name)) {
    throw invalidArgument(`operation ${index} has unknown op ${String(name)}`);
  }
  return OPERATIONS[name as Operation['op']] as OperationKind<Operation>;
}

function namedError(error: unknown, index: number, operation: Operation): unknown {
  if (!(error instanceof ShoalError) || operation.op !== 'cdt') return error;
  let name = 'cdt';
  try {
    name = specOf(new OperationArgs(operation.payload)).name;
  } catch {
    // The payload itself is what is wrong: the message says so.
  }
  return new ShoalError(error.code, `operation ${index} (${name}): ${error.message}`, { cause: error });
}

// ---------------------------------------------------------------------------------------
// The record's bins while operations run

/** A bin: its stored bytes (RAW), a value an operation wrote (USER), or a collection-engine value (CDT). */
const RAW = 0;
const USER = 1;
const CDT = 2;

interface Slot {
  kind: typeof RAW | typeof USER | typeof CDT;
  /** RAW (and a CDT value not yet changed): the buffer its bytes are in, [start, end). */
  source: Buffer;
  /** Whether those bytes may hold what only payload format 2 carries. */
  extended: boolean;
  start: number;
  end: number;
  value: unknown;
  /** For CDT: whether it differs from the stored bytes (else the bytes are written back as they were). */
  dirty: boolean;
}

/** The payload's bins, copied here once per operate (the namespace then encodes the new payload where the old one was). */
let scratch = Buffer.allocUnsafe(4096);

class WorkingBins {
  private readonly slots = new Map<string, Slot>();
  private source: Buffer = scratch;
  /** Whether the stored payload is format 2 (its bins may hold order flags). */
  private extended = false;
  /**
   * Bins are read from the payload only as far as an operation needs: the first not yet read
   * starts at scanAt, `remaining` of them end at binsEnd. The last one needs no skipping (it
   * ends where the payload does), and those never reached are copied out as one run.
   */
  private scanAt = 0;
  private remaining = 0;
  private binsEnd = 0;

  constructor(
    payload: Buffer | undefined,
    offset: number,
    length: number,
    /** The stored record's metadata, for expression operations. */
    private readonly metadataOf: (() => FilterSource) | undefined,
  ) {
    resetFastArena();
    if (payload === undefined) return;
    const binsAt = offset + PAYLOAD_HEADER_BYTES + payload.readUInt16LE(offset + 2);
    const bytes = offset + length - binsAt;
    if (scratch.length < bytes) scratch = Buffer.allocUnsafe(Math.min(Math.max(bytes, scratch.length * 2), OPERATION_PAYLOAD_BYTES_MAX));
    payload.copy(scratch, 0, binsAt, offset + length);
    this.source = scratch;
    this.extended = payload[offset] === PAYLOAD_FORMAT_EXTENDED;
    if (readContainerHeader(this.source, 0, bytes, STORED) !== 'map') throw new ShoalError(ErrorCode.CORRUPTION, 'record payload bins are not a map');
    this.remaining = lastContainerCount();
    this.scanAt = endOfLast();
    this.binsEnd = bytes;
  }

  private recordMetadata: FilterSource | undefined;

  /** The stored record's metadata (undefined for a record being created). */
  get metadata(): FilterSource | undefined {
    if (this.recordMetadata === undefined && this.metadataOf !== undefined) this.recordMetadata = this.metadataOf();
    return this.recordMetadata;
  }

  /** Reads stored bins until `bin` (all of them when it is not there). */
  private scanTo(bin: string | undefined): Slot | undefined {
    while (this.remaining > 0) {
      const name = decodeCdt(this.source, this.scanAt, this.binsEnd, STORED);
      if (typeof name !== 'string') throw new ShoalError(ErrorCode.CORRUPTION, 'record payload has a bin name that is not a string');
      const start = endOfLast();
      const end = this.remaining === 1 ? this.binsEnd : skipValue(this.source, start, this.binsEnd, STORED);
      this.scanAt = end;
      this.remaining--;
      const slot: Slot = { kind: RAW, source: this.source, extended: this.extended, start, end, value: undefined, dirty: false };
      this.slots.set(name, slot);
      if (name === bin) return slot;
    }
    return undefined;
  }

  private slot(bin: string): Slot | undefined {
    return this.slots.get(bin) ?? this.scanTo(bin);
  }

  /** The bin's value as users see it, or undefined when it is missing. */
  userValue(bin: string): BinValue | undefined {
    const slot = this.slot(bin);
    if (slot === undefined) return undefined;
    if (slot.kind === USER) return slot.value as BinValue;
    if (slot.kind === CDT) return toUser(slot.value as CdtValue) as BinValue;
    if (!slot.extended) return packr.unpack(slot.source, { start: slot.start, end: slot.end } as never) as BinValue;
    return decodeUser(slot.source, slot.start, slot.end) as BinValue;
  }

  /** The bin's value for the collection engine, or undefined when it is missing. */
  cdtValue(bin: string): CdtValue | undefined {
    const slot = this.slot(bin);
    if (slot === undefined) return undefined;
    if (slot.kind === CDT) return slot.value as CdtValue;
    const stored = slot.kind === RAW;
    const value = stored ? decodeCdt(slot.source, slot.start, slot.end, STORED) : fromUser(slot.value, `bin "${bin}"`, false);
    // Kept decoded for the next operation on the bin; a stored bin is written back as its bytes unless it changes.
    slot.kind = CDT;
    slot.value = value;
    slot.dirty = !stored;
    return value;
  }

  setUser(bin: string, value: BinValue): void {
    this.set(bin, { kind: USER, source: this.source, extended: false, start: 0, end: 0, value, dirty: true });
  }

  setCdt(bin: string, value: CdtValue): void {
    this.set(bin, { kind: CDT, source: this.source, extended: false, start: 0, end: 0, value, dirty: true });
  }

  /**
   * A list or map write done on the bin's stored bytes (fast.ts), when the bin is still its bytes
   * and the write has a byte-level form; returns its result, or undefined (run it the general way).
   */
  fastWrite(bin: string, args: OperationArgs): CdtValue | undefined {
    const slot = this.slot(bin);
    if (slot === undefined || slot.kind !== RAW) return undefined;
    const written = fastWrite(slot.source, slot.start, slot.end, args);
    if (written === undefined) return undefined;
    slot.source = fastArenaBuffer();
    slot.start = written.start;
    slot.end = written.end;
    slot.extended = slot.extended || written.extended;
    return written.result;
  }

  private set(bin: string, slot: Slot): void {
    const current = this.slot(bin);
    if (current === undefined) this.slots.set(bin, slot);
    else Object.assign(current, slot);
  }

  remove(bin: string): void {
    if (this.slot(bin) !== undefined) this.slots.delete(bin);
  }

  clear(): void {
    this.slots.clear();
    this.remaining = 0;
  }

  /** The bins to store, undefined when none are left. */
  result(): Bins | undefined {
    if (this.slots.size === 0 && this.remaining === 0) return undefined;
    const bins: Record<string, unknown> = {};
    for (const [name, slot] of this.slots) {
      if (slot.kind === USER) bins[name] = slot.value;
      else if (slot.kind === CDT && slot.dirty) bins[name] = slot.value;
      else bins[name] = new EncodedValue(slot.source, slot.start, slot.end, slot.extended);
    }
    if (this.remaining > 0) {
      (bins as { [ENCODED_ENTRIES]?: EncodedEntries })[ENCODED_ENTRIES] = new EncodedEntries(this.source, this.scanAt, this.binsEnd, this.remaining, this.extended);
    }
    return bins as Bins;
  }
}

/**
 * The record as an expression operation sees it: the bins as the operations before it left
 * them, and the stored record's metadata (a record being created has none: no expiry, no set,
 * no key, size 0).
 */
class WorkingRecord implements ExpRecord {
  constructor(private readonly working: WorkingBins) {}

  bin(name: string): CdtValue | undefined {
    return this.working.cdtValue(name);
  }
  get voidTime(): number {
    return this.working.metadata?.voidTime ?? 0;
  }
  get lastUpdateMs(): number {
    return this.working.metadata?.lastUpdateMs ?? 0;
  }
  get setName(): string {
    return this.working.metadata?.setName ?? '';
  }
  get key(): KeyValue | undefined {
    const source = this.working.metadata;
    if (source === undefined || source.payload[source.offset + 1] === 0) return undefined;
    return decodePayloadKey(source.payload, source.offset);
  }
  get digest(): Uint8Array {
    return this.working.metadata?.digest ?? NO_DIGEST;
  }
  get recordBytes(): number {
    const source = this.working.metadata;
    return source === undefined ? 0 : storedRecordBytes(source);
  }
  get onDevice(): boolean {
    return this.working.metadata?.onDevice ?? false;
  }
  get inMemory(): boolean {
    return this.working.metadata?.inMemory ?? true;
  }
}

const NO_DIGEST = new Uint8Array(20);

/** The fast writes' arena (it may have grown during the write). */
function fastArenaBuffer(): Buffer {
  return fastArena;
}

// ---------------------------------------------------------------------------------------
// The operations, one entry per kind: check (at the Db) and apply (returns whether it writes)

interface OperationKind<T extends Operation> {
  check(operation: T, index: number): void;
  apply(working: WorkingBins, operation: T, reads: Bins): boolean;
}

type Kinds = { [K in Operation['op']]: OperationKind<Extract<Operation, { op: K }> & Keyed> };

function checkBin(operation: { bin?: unknown }, index: number): void {
  if (typeof operation.bin !== 'string') throw invalidArgument(`operation ${index}: the bin name must be a string, not ${describe(operation.bin)}`);
  checkBinName(operation.bin);
}

const OPERATIONS: Kinds = {
  read: {
    check: checkBin,
    apply(working, operation, reads) {
      const value = working.userValue(operation.bin);
      if (value !== undefined) reads[resultKeyOf(operation)] = value;
      return false;
    },
  },
  write: {
    check(operation, index) {
      checkBin(operation, index);
      if (operation.value !== null) checkBinValue(operation.value, operation.bin, 0);
    },
    apply(working, operation) {
      if (operation.value === null) working.remove(operation.bin);
      else working.setUser(operation.bin, operation.value);
      return true;
    },
  },
  incr: {
    check(operation, index) {
      checkBin(operation, index);
      if (!(typeof operation.value === 'bigint' || (typeof operation.value === 'number' && Number.isFinite(operation.value)))) {
        throw invalidArgument(`operation ${index} (incr): the amount must be a finite number or a bigint`);
      }
      checkBinValue(operation.value, operation.bin, 0);
    },
    apply(working, operation) {
      working.setUser(operation.bin, increment(working.userValue(operation.bin), operation.value, operation.bin));
      return true;
    },
  },
  append: {
    check: checkConcatenation,
    apply: (working, operation) => applyConcatenation(working, operation.bin, operation.value, true),
  },
  prepend: {
    check: checkConcatenation,
    apply: (working, operation) => applyConcatenation(working, operation.bin, operation.value, false),
  },
  touch: {
    check: () => undefined,
    apply: () => true,
  },
  delete: {
    check: () => undefined,
    apply(working) {
      working.clear();
      return true;
    },
  },
  cdt: {
    check(operation, index) {
      checkBin(operation, index);
      if (!(operation.payload instanceof Uint8Array) || operation.payload.length === 0 || operation.payload.length > OPERATION_PAYLOAD_BYTES_MAX) {
        throw invalidArgument(`operation ${index}: a list or map operation must be built with op.list.* or op.map.*`);
      }
    },
    apply(working, operation, reads) {
      const payload = Buffer.isBuffer(operation.payload) ? operation.payload : Buffer.from(operation.payload);
      const args = new OperationArgs(payload);
      const spec = specOf(args);
      const fast = spec.modify ? working.fastWrite(operation.bin, args) : undefined;
      if (fast !== undefined) {
        reads[resultKeyOf(operation)] = toUser(fast) as BinValue;
        return true;
      }
      const execution = executeCdt(working.cdtValue(operation.bin), args);
      if (execution.changed && execution.value !== undefined) working.setCdt(operation.bin, execution.value);
      if (execution.result !== undefined) reads[resultKeyOf(operation)] = toUser(execution.result) as BinValue;
      return spec.modify;
    },
  },
  expRead: {
    check(operation, index) {
      if (typeof operation.name !== 'string' || operation.name.length === 0) throw invalidArgument(`operation ${index} (expRead): the result name must be a non-empty string`);
      checkExpOperation(operation, index);
    },
    apply(working, operation, reads) {
      const value = evaluate(working, operation.expression, operation.flags);
      if (value !== undefined && value !== null) reads[operation.resultKey ?? operation.name] = toUser(value) as BinValue;
      return false;
    },
  },
  expWrite: {
    check(operation, index) {
      checkBin(operation, index);
      checkExpOperation(operation, index);
    },
    apply(working, operation) {
      const flags = operation.flags;
      const exists = working.cdtValue(operation.bin) !== undefined;
      const refused = exists ? (flags & ExpWriteFlags.CREATE_ONLY) !== 0 : (flags & ExpWriteFlags.UPDATE_ONLY) !== 0;
      if (refused) {
        if ((flags & ExpWriteFlags.POLICY_NO_FAIL) !== 0) return false;
        if (exists) throw new ShoalError(ErrorCode.BIN_EXISTS, `bin "${operation.bin}" exists and the write is CREATE_ONLY`);
        throw new ShoalError(ErrorCode.BIN_NOT_FOUND, `bin "${operation.bin}" does not exist and the write is UPDATE_ONLY`);
      }
      const value = evaluate(working, operation.expression, flags);
      if (value === undefined) return false;
      if (value !== null) {
        working.setCdt(operation.bin, storedCopy(value));
        return true;
      }
      if (!exists) return false;
      if ((flags & ExpWriteFlags.ALLOW_DELETE) === 0) {
        if ((flags & ExpWriteFlags.POLICY_NO_FAIL) !== 0) return false;
        throw new ShoalError(ErrorCode.OP_NOT_APPLICABLE, `the expression's value is nil, which would delete bin "${operation.bin}" (ALLOW_DELETE is not set)`);
      }
      working.remove(operation.bin);
      return true;
    },
  },
};

/** Where an operation's result goes in the returned bins. */
function resultKeyOf(operation: { bin: string } & Keyed): string {
  return operation.resultKey ?? operation.bin;
}

/**
 * An expression operation's value, or undefined when it cannot be evaluated and EVAL_NO_FAIL
 * says to carry on.
 * @throws ShoalError OP_NOT_APPLICABLE when it cannot be evaluated (UNKNOWN).
 */
function evaluate(working: WorkingBins, expression: Uint8Array, flags: number): CdtValue | undefined {
  const value = compileOperation(expression).evaluate(new WorkingRecord(working));
  if (value !== UNKNOWN) return value as CdtValue;
  if ((flags & ExpReadFlags.EVAL_NO_FAIL) !== 0) return undefined;
  throw new ShoalError(ErrorCode.OP_NOT_APPLICABLE, 'the expression cannot be evaluated for this record');
}

function checkConcatenation(operation: { op: string; bin: string; value: unknown }, index: number): void {
  checkBin(operation, index);
  if (typeof operation.value !== 'string' && !(operation.value instanceof Uint8Array)) {
    throw invalidArgument(`operation ${index} (${operation.op}): the value must be a string or a Buffer`);
  }
}

function applyConcatenation(working: WorkingBins, bin: string, value: string | Buffer, append: boolean): boolean {
  working.setUser(bin, concatenate(working.userValue(bin), value, bin, append));
  return true;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function increment(current: BinValue | undefined, amount: number | bigint, bin: string): BinValue {
  if (current === undefined) return amount;
  if (typeof current === 'number' && typeof amount === 'number') {
    const sum = current + amount;
    if (Number.isInteger(current) && Number.isInteger(amount) && !Number.isSafeInteger(sum)) {
      return checkInt64(BigInt(current) + BigInt(amount), bin);
    }
    return sum;
  }
  if (typeof current === 'bigint' || typeof amount === 'bigint') {
    if ((typeof current === 'number' && !Number.isInteger(current)) || (typeof amount === 'number' && !Number.isInteger(amount))) {
      throw new ShoalError(ErrorCode.BIN_TYPE, `bin "${bin}": cannot add a fractional number and a bigint`);
    }
    if (typeof current !== 'number' && typeof current !== 'bigint') {
      throw new ShoalError(ErrorCode.BIN_TYPE, `bin "${bin}" holds ${describe(current)}; incr needs a number`);
    }
    return checkInt64(BigInt(current) + BigInt(amount), bin);
  }
  throw new ShoalError(ErrorCode.BIN_TYPE, `bin "${bin}" holds ${describe(current)}; incr needs a number`);
}

function checkInt64(value: bigint, bin: string): bigint {
  if (value < INT64_MIN || value > INT64_MAX) throw new ShoalError(ErrorCode.BIN_TYPE, `bin "${bin}": incr overflows int64`);
  return value;
}

function concatenate(current: BinValue | undefined, value: string | Buffer, bin: string, append: boolean): BinValue {
  if (current === undefined) return value;
  if (typeof current === 'string' && typeof value === 'string') return append ? current + value : value + current;
  if (current instanceof Uint8Array && value instanceof Uint8Array) {
    return append ? Buffer.concat([current, value]) : Buffer.concat([value, current]);
  }
  throw new ShoalError(ErrorCode.BIN_TYPE, `bin "${bin}" holds ${describe(current)}; ${append ? 'append' : 'prepend'} needs the same type as its value`);
}
