/**
 * Expression operations of operate(): op.exp.read evaluates an expression on the record as the
 * operations before it left it and returns the value under a name of the caller's choice;
 * op.exp.write stores the value in a bin. Aerospike's semantics (the server's expop.c): an
 * expression that cannot be evaluated for the record (UNKNOWN) is OP_NOT_APPLICABLE unless
 * EVAL_NO_FAIL is set (then the read returns nothing and the write does nothing); a write
 * honours CREATE_ONLY (the bin must not exist: BIN_EXISTS, 6, otherwise), UPDATE_ONLY (the bin
 * must exist: BIN_NOT_FOUND, 17), POLICY_NO_FAIL (a
 * refused write does nothing), and deletes the bin for a nil value only with ALLOW_DELETE.
 */
import { invalidArgument } from '../../errors';
import { describe } from '../key';
import { CdtMap, CdtValue, MAP_KEY_VALUE_ORDERED, copyValue } from '../cdt/value';
import { CompiledExpression, UNKNOWN, compileExpression } from './compile';
import { Expression } from './expression';

/** Flags of op.exp.write (Aerospike's as_exp_write_flags). */
export const ExpWriteFlags = {
  DEFAULT: 0,
  /** Only create the bin: BIN_EXISTS when it exists. */
  CREATE_ONLY: 1,
  /** Only replace the bin: BIN_NOT_FOUND when it does not exist. */
  UPDATE_ONLY: 2,
  /** A nil value removes the bin (otherwise OP_NOT_APPLICABLE). */
  ALLOW_DELETE: 4,
  /** A write CREATE_ONLY or UPDATE_ONLY refuses does nothing instead of failing. */
  POLICY_NO_FAIL: 8,
  /** An expression that cannot be evaluated does nothing instead of failing. */
  EVAL_NO_FAIL: 16,
} as const;

/** Flags of op.exp.read (Aerospike's as_exp_read_flags). */
export const ExpReadFlags = {
  DEFAULT: 0,
  /** An expression that cannot be evaluated returns nothing instead of failing. */
  EVAL_NO_FAIL: 16,
} as const;

const WRITE_FLAGS_ALL = 0x1f;
const READ_FLAGS_ALL = ExpReadFlags.EVAL_NO_FAIL;

/** An expression operation as data: the expression's encoded bytes (Expression.toBytes()). */
export type ExpOperation =
  | { op: 'expRead'; name: string; expression: Uint8Array; flags: number }
  | { op: 'expWrite'; bin: string; expression: Uint8Array; flags: number };

/** The builders: op.exp.read and op.exp.write. */
export const expOperations = {
  /** Evaluates `expression` and returns its value in the result under `name` (any name; no bin is read or written). */
  read: (name: string, expression: Expression, flags: number = ExpReadFlags.DEFAULT): ExpOperation => ({ op: 'expRead', name, expression: bytesOf(expression), flags }),
  /** Evaluates `expression` and writes its value to `bin`. */
  write: (bin: string, expression: Expression, flags: number = ExpWriteFlags.DEFAULT): ExpOperation => ({ op: 'expWrite', bin, expression: bytesOf(expression), flags }),
};

function bytesOf(expression: Expression): Uint8Array {
  if (!(expression instanceof Expression)) throw invalidArgument(`an expression operation needs an expression built with exp.*, not ${describe(expression)}`);
  return expression.toBytes();
}

const compiled = new WeakMap<Uint8Array, CompiledExpression>();

/**
 * The compiled form of an expression operation's bytes, compiled once per bytes object (an
 * Expression hands out the same bytes each time, so reusing an operation compiles nothing).
 * @throws ShoalError INVALID_ARGUMENT for a malformed expression or a type error.
 */
export function compileOperation(expression: Uint8Array): CompiledExpression {
  let result = compiled.get(expression);
  if (result === undefined) {
    result = compileExpression(Buffer.isBuffer(expression) ? expression : Buffer.from(expression.buffer, expression.byteOffset, expression.byteLength), false);
    compiled.set(expression, result);
  }
  return result;
}

/**
 * Checks an expression operation's fields and compiles its expression.
 * @throws ShoalError INVALID_ARGUMENT naming the operation.
 */
export function checkExpOperation(operation: { op: string; expression?: unknown; flags?: unknown }, index: number): void {
  if (!(operation.expression instanceof Uint8Array) || operation.expression.length === 0) {
    throw invalidArgument(`operation ${index} (${operation.op}): the expression must be built with exp.*`);
  }
  const all = operation.op === 'expWrite' ? WRITE_FLAGS_ALL : READ_FLAGS_ALL;
  if (typeof operation.flags !== 'number' || !Number.isInteger(operation.flags) || operation.flags < 0 || (operation.flags & ~all) !== 0) {
    throw invalidArgument(`operation ${index} (${operation.op}): flags must be a combination of ${operation.op === 'expWrite' ? 'ExpWriteFlags' : 'ExpReadFlags'}`);
  }
  compileOperation(operation.expression);
}

/** The value to store for an expression's result: collections copied, so no two bins share one. */
export function storedCopy(value: CdtValue): CdtValue {
  const copy = copyValue(value);
  // A KEY_VALUE result's MAP_PRESERVE_ORDER is not a stored order: only the order bits are kept.
  if (copy instanceof CdtMap) copy.flags &= MAP_KEY_VALUE_ORDERED;
  return copy;
}

export { UNKNOWN };
