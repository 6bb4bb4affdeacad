/**
 * The syntax half of cmpRegex's matcher (regex.ts): POSIX basic and extended patterns, as
 * glibc's regcomp reads them in the C locale, parsed by recursive descent into a tree of
 * RegexNodes, with the NFA size the tree will need counted before anything is built.
 */
import { REGEX_NESTING_MAX, REGEX_REPEAT_COUNT_MAX } from '../../constants';
import { invalidArgument } from '../../errors';
import { RegexFlags } from './codes';

export const KNOWN_FLAGS = RegexFlags.EXTENDED | RegexFlags.ICASE | RegexFlags.NEWLINE | RegexFlags.NOSUB;

export const Assertion = {
  LINE_START: 0,
  LINE_END: 1,
  TEXT_START: 2,
  TEXT_END: 3,
  WORD_BOUNDARY: 4,
  NOT_WORD_BOUNDARY: 5,
  WORD_START: 6,
  WORD_END: 7,
} as const;

/** A byte set: 256 entries, 1 for a member. */
export type ByteSet = Uint8Array;

export type RegexNode =
  | { kind: 'set'; members: ByteSet }
  | { kind: 'assert'; assertion: number }
  | { kind: 'concat'; items: RegexNode[] }
  | { kind: 'alternation'; branches: RegexNode[] }
  | { kind: 'repeat'; item: RegexNode; min: number; max: number };

export const NEWLINE_BYTE = 0x0a;
const BACKSLASH = 0x5c;

function syntaxError(bytes: Uint8Array, at: number, problem: string): Error {
  const shown = Buffer.from(bytes.subarray(0, 64)).toString('utf8');
  return invalidArgument(`cmpRegex pattern /${shown}/ does not compile: ${problem} at byte ${at}`);
}

/** Recursive descent over the pattern's bytes in either syntax, to a tree of RegexNodes. */
export class PatternParser {
  private at = 0;
  private depth = 0;
  private readonly extended: boolean;
  private readonly ignoreCase: boolean;
  private readonly newline: boolean;

  constructor(
    private readonly bytes: Uint8Array,
    flags: number,
  ) {
    this.extended = (flags & RegexFlags.EXTENDED) !== 0;
    this.ignoreCase = (flags & RegexFlags.ICASE) !== 0;
    this.newline = (flags & RegexFlags.NEWLINE) !== 0;
  }

  /** The whole pattern (the top level never stops early: atGroupClose needs an open group). */
  parse(): RegexNode {
    return this.alternation();
  }

  private error(problem: string): Error {
    return syntaxError(this.bytes, this.at, problem);
  }

  private peek(offset = 0): number {
    return this.at + offset < this.bytes.length ? this.bytes[this.at + offset]! : -1;
  }

  /** Whether a two-byte basic-syntax operator (`\(`, `\|`, ...) starts here. */
  private backslashed(byte: number): boolean {
    return this.peek() === BACKSLASH && this.peek(1) === byte;
  }

  /** Whether the operator written `byte` in extended syntax and backslash `byte` in basic (`|`, `)`, `}`) is here. */
  private atOperator(byte: number): boolean {
    return this.extended ? this.peek() === byte : this.backslashed(byte);
  }

  /** Steps over the operator atOperator found. */
  private skipOperator(): void {
    this.at += this.extended ? 1 : 2;
  }

  private atAlternation(): boolean {
    return this.atOperator(0x7c);
  }

  private atGroupClose(): boolean {
    return this.depth > 0 && this.atOperator(0x29);
  }

  private alternation(): RegexNode {
    const branches = [this.branch()];
    while (this.atAlternation()) {
      this.skipOperator();
      branches.push(this.branch());
    }
    return branches.length === 1 ? branches[0]! : { kind: 'alternation', branches };
  }

  private branch(): RegexNode {
    const items: RegexNode[] = [];
    const start = this.at;
    // In basic syntax a repetition operator first in a branch or after an anchor is itself (glibc).
    let repetitionIsLiteral = true;
    while (this.at < this.bytes.length && !this.atAlternation() && !this.atGroupClose()) {
      const bare = this.at;
      const item = this.atom(start, repetitionIsLiteral);
      // An anchor written bare (`^`, `\<`), not a group holding one: extended syntax refuses its repetition.
      const anchor = item.kind === 'assert' && this.at - bare <= 2;
      repetitionIsLiteral = anchor;
      items.push(anchor && !this.extended ? item : this.repetitions(item, anchor));
    }
    return items.length === 1 ? items[0]! : { kind: 'concat', items };
  }

  /** One atom; `branchStart` is where its branch began (basic syntax reads `^` by position). */
  private atom(branchStart: number, repetitionIsLiteral: boolean): RegexNode {
    const byte = this.bytes[this.at]!;
    if (this.repetitionLength() > 0) {
      // Extended syntax refuses a repetition of nothing (REG_BADRPT), basic a \{ there; basic reads * \+ \? as themselves.
      if (this.extended || !repetitionIsLiteral || this.backslashed(0x7b)) throw this.error('a repetition operator with nothing to repeat');
      this.at += byte === BACKSLASH ? 2 : 1;
      return this.literal(byte === BACKSLASH ? this.bytes[this.at - 1]! : byte);
    }
    this.at++;
    if (byte === 0x2e) return { kind: 'set', members: this.anyByte() };
    if (byte === 0x5b) return this.bracket();
    if (byte === 0x5e && (this.extended || this.at - 1 === branchStart)) return { kind: 'assert', assertion: Assertion.LINE_START };
    if (byte === 0x24 && (this.extended || this.atBasicEnd())) return { kind: 'assert', assertion: Assertion.LINE_END };
    if (byte === 0x28 && this.extended) return this.group();
    if (byte === BACKSLASH) return this.escape();
    return this.literal(byte);
  }

  /** In basic syntax `$` is an anchor only last in a branch (before the end, `\)` or `\|`). */
  private atBasicEnd(): boolean {
    return this.at === this.bytes.length || this.backslashed(0x29) || this.backslashed(0x7c);
  }

  private group(): RegexNode {
    if (this.depth >= REGEX_NESTING_MAX) throw this.error(`groups nest deeper than ${REGEX_NESTING_MAX}`);
    this.depth++;
    const inner = this.alternation();
    const closed = this.atGroupClose();
    this.depth--;
    if (!closed) throw this.error(this.extended ? 'an unmatched (' : 'an unmatched \\(');
    this.skipOperator();
    return inner;
  }

  private escape(): RegexNode {
    const byte = this.peek();
    if (byte === -1) throw this.error('a trailing backslash');
    this.at++;
    if (byte >= 0x31 && byte <= 0x39) throw this.error('back-references (\\1 to \\9) are not supported');
    if (!this.extended && byte === 0x28) return this.group();
    // Extended syntax reads an unmatched ) as itself (glibc's RE_UNMATCHED_RIGHT_PAREN_ORD); basic refuses \).
    if (!this.extended && byte === 0x29) throw this.error('an unmatched \\)');
    const shorthand = SHORTHAND_CLASSES.get(byte);
    if (shorthand !== undefined) return { kind: 'set', members: shorthand };
    const assertion = ESCAPE_ASSERTIONS.get(byte);
    if (assertion !== undefined) return { kind: 'assert', assertion };
    // glibc folds the text to uppercase under ICASE but leaves an escaped byte as written: `\c` then matches nothing.
    if (this.ignoreCase && isLower(byte)) return { kind: 'set', members: new Uint8Array(256) };
    return this.literal(byte);
  }

  private literal(byte: number): RegexNode {
    const members = new Uint8Array(256);
    members[byte] = 1;
    return { kind: 'set', members: this.folded(members) };
  }

  private anyByte(): ByteSet {
    return this.withoutUnmatchable(new Uint8Array(256).fill(1));
  }

  /** `.` and a negated bracket never match NUL (the text ends there), nor a newline under NEWLINE. */
  private withoutUnmatchable(members: ByteSet): ByteSet {
    members[0] = 0;
    if (this.newline) members[NEWLINE_BYTE] = 0;
    return members;
  }

  /** Under ICASE a set holds both cases of each ASCII letter it holds. */
  private folded(members: ByteSet): ByteSet {
    if (!this.ignoreCase) return members;
    for (let byte = 0x41; byte <= 0x5a; byte++) {
      if (members[byte] === 1 || members[byte + 0x20] === 1) members[byte] = members[byte + 0x20] = 1;
    }
    return members;
  }

  /** The byte length of a repetition operator here (`*`, `+`, `?`, `{`, or basic `\+` `\?` `\{`), 0 if none. */
  private repetitionLength(): number {
    const byte = this.peek();
    if (byte === 0x2a) return 1;
    if (this.extended) return byte === 0x2b || byte === 0x3f || byte === 0x7b ? 1 : 0;
    return this.backslashed(0x2b) || this.backslashed(0x3f) || this.backslashed(0x7b) ? 2 : 0;
  }

  private repetitions(item: RegexNode, anchor: boolean): RegexNode {
    let stacked = 0;
    for (let length = this.repetitionLength(); length > 0; length = this.repetitionLength()) {
      if (anchor) throw this.error('a repetition of an anchor');
      const operator = this.bytes[this.at + length - 1]!;
      // Basic syntax refuses * or \{ after a repetition (glibc, which stacks its \+ and \?); extended stacks them all.
      if (stacked > 0 && !this.extended && (operator === 0x2a || operator === 0x7b)) throw this.error('a repetition of a repetition');
      if (++stacked + this.depth > REGEX_NESTING_MAX) throw this.error(`repetitions stack deeper than ${REGEX_NESTING_MAX}`);
      this.at += length;
      if (operator === 0x2a) item = { kind: 'repeat', item, min: 0, max: Infinity };
      else if (operator === 0x2b) item = { kind: 'repeat', item, min: 1, max: Infinity };
      else if (operator === 0x3f) item = { kind: 'repeat', item, min: 0, max: 1 };
      else item = { kind: 'repeat', item, ...this.interval() };
    }
    return item;
  }

  /** `{m}`, `{m,}`, `{,n}` or `{m,n}` after its `{`, through its `}` (basic: `\}`). */
  private interval(): { min: number; max: number } {
    const min = this.count();
    let max = min ?? 0;
    const comma = this.peek() === 0x2c;
    if (comma) {
      this.at++;
      max = this.count() ?? Infinity;
    }
    if (min === undefined && (!comma || max === Infinity)) throw this.error('a {m,n} repetition without a count');
    if (!this.atOperator(0x7d)) throw this.error('a {m,n} repetition that is not closed');
    this.skipOperator();
    if ((min ?? 0) > max) throw this.error('a {m,n} repetition with m greater than n');
    return { min: min ?? 0, max };
  }

  private count(): number | undefined {
    const start = this.at;
    let value = 0;
    while (this.peek() >= 0x30 && this.peek() <= 0x39) {
      value = value * 10 + (this.bytes[this.at++]! - 0x30);
      if (value > REGEX_REPEAT_COUNT_MAX) throw this.error(`a repetition count above ${REGEX_REPEAT_COUNT_MAX}`);
    }
    return this.at === start ? undefined : value;
  }

  /** A bracket expression after its `[`: members, ranges, [:class:], [=c=], [.c.]; `^` first negates. */
  private bracket(): RegexNode {
    const negated = this.peek() === 0x5e;
    if (negated) this.at++;
    const members = new Uint8Array(256);
    for (let first = true; ; first = false) {
      if (this.at >= this.bytes.length) throw this.error('an unmatched [');
      if (this.peek() === 0x5d && !first) break;
      if (this.atOpener(0x3a)) {
        this.characterClass(members);
        if (this.atRangeDash()) throw this.error('a range from a character class');
        continue;
      }
      const fromEquivalence = this.atOpener(0x3d);
      const low = this.bracketByte();
      if (!this.atRangeDash()) {
        members[low] = 1;
        continue;
      }
      this.at++;
      const toEquivalence = this.atOpener(0x3d);
      const high = this.bracketByte();
      if (fromEquivalence || toEquivalence) throw this.error('a range from or to an equivalence class');
      this.addRange(members, low, high);
      if (this.atRangeDash()) throw this.error('a range from where another range ends');
    }
    this.at++;
    this.folded(members);
    if (negated) {
      for (let byte = 0; byte < 256; byte++) members[byte] ^= 1;
      this.withoutUnmatchable(members);
    }
    return { kind: 'set', members };
  }

  /** Whether `[` and `opener` (`:`, `=` or `.`) start here. */
  private atOpener(opener: number): boolean {
    return this.peek() === 0x5b && this.peek(1) === opener;
  }

  /** Whether a `-` here makes a range: not one just before the closing `]`. */
  private atRangeDash(): boolean {
    return this.peek() === 0x2d && this.peek(1) !== 0x5d && this.peek(1) !== -1;
  }

  /** A range low..high; under ICASE its ends are uppercase first (`[_-z]` is refused, `[a-~]` holds `[`), as in glibc. */
  private addRange(members: ByteSet, low: number, high: number): void {
    const from = this.ignoreCase && isLower(low) ? low - 0x20 : low;
    const to = this.ignoreCase && isLower(high) ? high - 0x20 : high;
    if (to < from) throw this.error('a range whose end is before its start');
    members.fill(1, from, to + 1);
  }

  /** One byte in a bracket: itself (a backslash too), or a one-byte `[.c.]` or `[=c=]`. */
  private bracketByte(): number {
    const opener = this.peek(1);
    if (this.atOpener(0x2e) || this.atOpener(0x3d)) {
      const end = this.closing(opener);
      if (end !== this.at + 3) throw this.error('a collating element of more than one byte');
      const byte = this.bytes[this.at + 2]!;
      this.at = end + 2;
      return byte;
    }
    return this.bytes[this.at++]!;
  }

  private characterClass(members: ByteSet): void {
    const end = this.closing(0x3a);
    const name = Buffer.from(this.bytes.subarray(this.at + 2, end)).toString('latin1');
    const test = CHARACTER_CLASSES.get(name);
    if (test === undefined) throw this.error(`an unknown character class [:${name}:]`);
    for (let byte = 0; byte < 256; byte++) if (test(byte)) members[byte] = 1;
    this.at = end + 2;
  }

  /** Where `delimiter]` closes the `[delimiter` opened here. */
  private closing(delimiter: number): number {
    for (let i = this.at + 2; i + 1 < this.bytes.length; i++) {
      if (this.bytes[i] === delimiter && this.bytes[i + 1] === 0x5d) return i;
    }
    throw this.error('an unterminated [: [. or [= in a bracket');
  }
}

const isUpper = (byte: number): boolean => byte >= 0x41 && byte <= 0x5a;
const isLower = (byte: number): boolean => byte >= 0x61 && byte <= 0x7a;
const isDigit = (byte: number): boolean => byte >= 0x30 && byte <= 0x39;
const isAlpha = (byte: number): boolean => isUpper(byte) || isLower(byte);
const isSpace = (byte: number): boolean => byte === 0x20 || (byte >= 0x09 && byte <= 0x0d);
const isGraph = (byte: number): boolean => byte > 0x20 && byte < 0x7f;
export const isWordByte = (byte: number): boolean => isAlpha(byte) || isDigit(byte) || byte === 0x5f;

/** POSIX classes in the C locale (ASCII). */
const CHARACTER_CLASSES = new Map<string, (byte: number) => boolean>([
  ['alpha', isAlpha],
  ['digit', isDigit],
  ['alnum', (byte) => isAlpha(byte) || isDigit(byte)],
  ['upper', isUpper],
  ['lower', isLower],
  ['space', isSpace],
  ['blank', (byte) => byte === 0x20 || byte === 0x09],
  ['punct', (byte) => isGraph(byte) && !isAlpha(byte) && !isDigit(byte)],
  ['print', (byte) => byte >= 0x20 && byte < 0x7f],
  ['graph', isGraph],
  ['cntrl', (byte) => byte < 0x20 || byte === 0x7f],
  ['xdigit', (byte) => isDigit(byte) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66)],
]);

function byteSet(test: (byte: number) => boolean): ByteSet {
  const members = new Uint8Array(256);
  for (let byte = 1; byte < 256; byte++) members[byte] = test(byte) ? 1 : 0;
  return members;
}

/** glibc's `\w \W \s \S`. */
const SHORTHAND_CLASSES = new Map<number, ByteSet>([
  [0x77, byteSet(isWordByte)],
  [0x57, byteSet((byte) => !isWordByte(byte))],
  [0x73, byteSet(isSpace)],
  [0x53, byteSet((byte) => !isSpace(byte))],
]);

/** glibc's `\b \B \< \> \` \'`. */
const ESCAPE_ASSERTIONS = new Map<number, number>([
  [0x62, Assertion.WORD_BOUNDARY],
  [0x42, Assertion.NOT_WORD_BOUNDARY],
  [0x3c, Assertion.WORD_START],
  [0x3e, Assertion.WORD_END],
  [0x60, Assertion.TEXT_START],
  [0x27, Assertion.TEXT_END],
]);

/** The NFA states a node compiles to (PosixRegex.build), counted before anything is built. */
export function stateCount(node: RegexNode): number {
  switch (node.kind) {
    case 'set':
    case 'assert':
      return 1;
    case 'concat':
      return node.items.reduce((sum, item) => sum + stateCount(item), 0);
    case 'alternation':
      return node.branches.reduce((sum, branch) => sum + stateCount(branch), node.branches.length - 1);
    case 'repeat': {
      const item = stateCount(node.item);
      return node.max === Infinity ? item * (node.min + 1) + 1 : item * node.max + (node.max - node.min);
    }
  }
}

