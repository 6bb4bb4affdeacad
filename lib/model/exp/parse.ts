/**
 * Parsing an expression: its MessagePack form (expression.ts) into nodes, an array an
 * operation and anything else a literal, with each literal's static type (compile.ts
 * compiles the nodes).
 */
import { EXPRESSION_DEPTH_MAX } from '../../constants';
import { invalidArgument } from '../../errors';
import { CTX_MARKER } from '../cdt/codes';
import { ARGUMENT, decodeCdt, skipValue } from '../cdt/decode';
import { CdtList, CdtMap, CdtValue } from '../cdt/value';
import { ANY, ExpCode, ExpType } from './codes';

export type Node = { kind: 'op'; code: number; args: Node[] } | { kind: 'literal'; type: number; value: unknown };

export class Parser {
  at = 0;
  constructor(private readonly bytes: Buffer) {}

  parse(depth: number): Node {
    if (depth > EXPRESSION_DEPTH_MAX) throw invalidArgument(`an expression nests deeper than ${EXPRESSION_DEPTH_MAX} levels`);
    if (this.at >= this.bytes.length) throw invalidArgument('an expression is cut short');
    const tag = this.bytes[this.at]!;
    if ((tag & 0xf0) === 0x90 || tag === 0xdc || tag === 0xdd) return this.operation(depth);
    if (tag === 0xca || tag === 0xcb) return { kind: 'literal', type: ExpType.FLOAT, value: this.value() };
    const value = this.value();
    return { kind: 'literal', type: typeOfValue(value), value };
  }

  /** A literal at `at`, decoded (maps and lists as collection values). */
  value(): CdtValue {
    const value = decodeCdt(this.bytes, this.at, this.bytes.length, ARGUMENT);
    this.at = endAfter(this.bytes, this.at);
    return value;
  }

  private operation(depth: number): Node {
    const count = this.arrayHeader();
    if (count === 0) throw invalidArgument('an expression operation needs an op code');
    const code = this.value();
    if (typeof code !== 'number' || !Number.isInteger(code)) throw invalidArgument('an expression operation must start with its op code');
    const args: Node[] = [];
    for (let i = 1; i < count; i++) {
      // QUOTE's argument and CALL's list/map operation are values, not expressions.
      if ((code === ExpCode.QUOTE && i === 1) || (code === ExpCode.CALL && i === 3)) {
        if (code === ExpCode.CALL) args.push(this.callOperation(depth));
        else args.push({ kind: 'literal', type: ANY, value: this.value() });
      } else {
        args.push(this.parse(depth + 1));
      }
    }
    return { kind: 'op', code, args };
  }

  /** A CALL's [code, arg...] or [0xff, context, [code, arg...]]: arguments are expressions, the context a value. */
  private callOperation(depth: number): Node {
    const count = this.arrayHeader();
    const first = this.value();
    if (first === CTX_MARKER && count === 3) {
      const context = this.value();
      const inner = this.callOperation(depth);
      if (inner.kind !== 'op') throw invalidArgument('malformed list/map operation in a CALL');
      return { kind: 'op', code: -1, args: [{ kind: 'literal', type: ANY, value: context }, inner] };
    }
    if (typeof first !== 'number' || !Number.isInteger(first)) throw invalidArgument('a CALL needs a list/map op code');
    const args: Node[] = [];
    for (let i = 1; i < count; i++) args.push(this.parse(depth + 1));
    return { kind: 'op', code: first, args };
  }

  private arrayHeader(): number {
    const bytes = this.bytes;
    const tag = bytes[this.at]!;
    if ((tag & 0xf0) === 0x90) {
      this.at += 1;
      return tag & 0x0f;
    }
    if (tag === 0xdc && this.at + 3 <= bytes.length) {
      this.at += 3;
      return bytes.readUInt16BE(this.at - 2);
    }
    if (tag === 0xdd && this.at + 5 <= bytes.length) {
      this.at += 5;
      return bytes.readUInt32BE(this.at - 4);
    }
    throw invalidArgument('malformed expression: an array was expected');
  }
}


function endAfter(bytes: Buffer, at: number): number {
  return skipValue(bytes, at, bytes.length, ARGUMENT);
}

/** The expression type of a literal value. */
export function typeOfValue(value: CdtValue): number {
  if (value === null) return ExpType.NIL;
  switch (typeof value) {
    case 'boolean':
      return ExpType.BOOL;
    case 'string':
      return ExpType.STR;
    case 'number':
      return Number.isInteger(value) ? ExpType.INT : ExpType.FLOAT;
    case 'bigint':
      return ExpType.INT;
    default:
      if (value instanceof Uint8Array) return ExpType.BLOB;
      if (value instanceof CdtList) return ExpType.LIST;
      if (value instanceof CdtMap) return ExpType.MAP;
      return ANY;
  }
}

