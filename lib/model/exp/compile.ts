/**
 * Compiles an expression (Aerospike's encoded form, expression.ts) once into a tree of
 * closures with static types, and evaluates it per record without parsing again. Types are
 * checked at compile time as Aerospike's server checks them (a comparison of an integer with a
 * string is refused); at run time a value of another type, a missing bin or a failed list/map
 * read is UNKNOWN, which a filter treats as false.
 *
 * The compiler's parts: parse.ts (bytes into nodes), typing.ts (types, values, scope and the
 * shared checks), operators.ts (the table of op codes: comparisons, logic, arithmetic,
 * metadata) and special-forms.ts (bins, keys, cond/let/var, regex, geo, list/map calls).
 */
import { OPERATION_PAYLOAD_BYTES_MAX } from '../../constants';
import { invalidArgument } from '../../errors';
import { CdtSpecial } from '../cdt/value';
import { ANY, ExpType } from './codes';
import { Expression } from './expression';
import { COMPILERS } from './operators';
import { Parser, type Node } from './parse';
import { constant, Scope, type Compiled, type ExpRecord, type Run, type Value } from './typing';

export { UNKNOWN, type ExpRecord } from './typing';

/** A compiled expression: evaluate it with evaluate() or matches(). */
export class CompiledExpression {
  constructor(
    readonly type: number,
    private readonly root: Run,
    private readonly varCount: number,
  ) {}

  /** The expression's value for a record, or UNKNOWN. */
  evaluate(record: ExpRecord, nowMs = Date.now()): Value {
    return this.root({ record, vars: new Array(this.varCount), nowMs });
  }

  /** Whether a filter passes: its value is true (false and UNKNOWN filter the record out). */
  matches(record: ExpRecord, nowMs = Date.now()): boolean {
    return this.evaluate(record, nowMs) === true;
  }
}

const compiledFilters = new WeakMap<Expression, CompiledExpression>();

/**
 * Compiles a filter (an exp.* Expression, or its encoded bytes as a peer sends them); an
 * Expression is compiled once and the result kept with it.
 * @throws ShoalError INVALID_ARGUMENT for a malformed expression, a type error, or one whose value is not a boolean.
 */
export function compileFilter(filter: Expression | Uint8Array): CompiledExpression {
  if (filter instanceof Expression) {
    let compiled = compiledFilters.get(filter);
    if (compiled === undefined) {
      compiled = compileExpression(filter.toBytes(), true);
      compiledFilters.set(filter, compiled);
    }
    return compiled;
  }
  if (!(filter instanceof Uint8Array)) throw new TypeError('filter must be an expression built with exp.*');
  return compileExpression(Buffer.isBuffer(filter) ? filter : Buffer.from(filter), true);
}

/** How many expressions this process compiled (a test checks a scan compiles its filter once). */
export const compilations = { count: 0 };

/**
 * Compiles encoded expression bytes.
 * @throws ShoalError INVALID_ARGUMENT as compileFilter.
 */
export function compileExpression(bytes: Buffer, boolean: boolean): CompiledExpression {
  compilations.count++;
  if (bytes.length === 0 || bytes.length > OPERATION_PAYLOAD_BYTES_MAX) throw invalidArgument('an expression must be 1 byte to 8 MiB');
  const parser = new Parser(bytes);
  const tree = parser.parse(0);
  if (parser.at !== bytes.length) throw invalidArgument(`an expression has ${bytes.length - parser.at} bytes after its end`);
  const scope = new Scope(compile);
  const compiled = compile(tree, scope);
  if (boolean && compiled.type !== ExpType.BOOL && compiled.type !== ANY) throw invalidArgument('a filter expression must have a boolean value');
  return new CompiledExpression(compiled.type, compiled.run, scope.size);
}


function compile(node: Node, scope: Scope): Compiled {
  if (node.kind === 'literal') {
    if (node.value instanceof CdtSpecial) return { type: ANY, run: () => node.value, constant: { value: node.value } };
    return { ...constant(node.value), type: node.type };
  }
  const compiler = COMPILERS.get(node.code);
  if (compiler === undefined) throw invalidArgument(`unknown or unsupported expression op code ${node.code}`);
  return compiler(node.args, scope);
}
