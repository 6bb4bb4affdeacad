/**
 * Runs one list or map operation on a bin's value: parses its payload, follows its context
 * path, checks the element's type, applies the operation (list.ts, map.ts) and returns the
 * bin's new value and the result. Nothing outside the value it is given changes, so an
 * operate() that fails part way leaves the stored record as it was.
 */
import { ErrorCode, ShoalError } from '../../errors';
import { OperationArgs } from './args';
import { ContextPath } from './context';
import { LIST_OPERATIONS, Outcome } from './list';
import { MAP_OPERATIONS } from './map';
import { parameterError } from './select';
import { CdtList, CdtMap, CdtValue } from './value';

interface OperationSpec {
  name: string;
  modify: boolean;
  isMap: boolean;
  run: (target: never, args: OperationArgs) => Outcome;
}

const OPERATIONS = new Map<number, OperationSpec>();
for (const [code, spec] of LIST_OPERATIONS) OPERATIONS.set(code, { ...spec, isMap: false, run: spec.run as OperationSpec['run'] });
for (const [code, spec] of MAP_OPERATIONS) OPERATIONS.set(code, { ...spec, isMap: true, run: spec.run as OperationSpec['run'] });

/**
 * The operation a payload holds.
 * @throws ShoalError INVALID_ARGUMENT for a malformed payload or an unknown op code.
 */
export function specOf(args: OperationArgs): OperationSpec {
  const spec = OPERATIONS.get(args.code);
  if (spec === undefined) throw parameterError(`unknown list/map op code ${args.code}`);
  return spec;
}

export interface Execution {
  /** The bin's value after the operation (the same object when it changed in place). */
  value: CdtValue | undefined;
  /** Whether the bin's value changed. */
  changed: boolean;
  /** The operation's result; undefined when it returns nothing. */
  result: CdtValue | undefined;
}

/**
 * Applies the operation in `args` to `bin` (undefined: the bin is missing). `bin` may be
 * changed in place.
 * @throws ShoalError BIN_TYPE when the bin or element is not the list or map the operation
 *   needs, OP_NOT_APPLICABLE / ELEMENT_EXISTS / ELEMENT_NOT_FOUND as Aerospike gives them,
 *   INVALID_ARGUMENT for malformed arguments.
 */
export function executeCdt(bin: CdtValue | undefined, args: OperationArgs): Execution {
  const spec = specOf(args);
  if (args.context.length === 0) {
    checkType(bin, spec, 'bin');
    const outcome = spec.run(bin as never, args);
    return { value: outcome.created ?? bin, changed: outcome.changed, result: outcome.result };
  }
  if (bin !== undefined && !(bin instanceof CdtList) && !(bin instanceof CdtMap)) {
    throw parameterError(`a context path needs a list or map bin; the bin holds ${describeValue(bin)}`);
  }
  // A read of a missing bin is nil, whatever the path.
  if (bin === undefined && !spec.modify) return { value: undefined, changed: false, result: null };
  const path = new ContextPath(bin, args.context, spec.modify);
  checkType(path.target, spec, 'element the context selects');
  const outcome = spec.run(path.target as never, args);
  if (outcome.created !== undefined) return { value: path.attach(outcome.created), changed: true, result: outcome.result };
  if (outcome.changed) return { value: path.changed(), changed: true, result: outcome.result };
  return { value: bin, changed: false, result: outcome.result };
}

function checkType(target: CdtValue | undefined, spec: OperationSpec, what: string): void {
  if (target === undefined) return;
  if (spec.isMap ? target instanceof CdtMap : target instanceof CdtList) return;
  throw new ShoalError(ErrorCode.BIN_TYPE, `${spec.name} needs a ${spec.isMap ? 'map' : 'list'}; the ${what} holds ${describeValue(target)}`);
}

function describeValue(value: CdtValue): string {
  if (value instanceof CdtList) return 'a list';
  if (value instanceof CdtMap) return 'a map';
  if (value instanceof Uint8Array) return 'bytes';
  return value === null ? 'nil' : `a ${typeof value}`;
}
