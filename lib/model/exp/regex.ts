/**
 * cmpRegex's matcher: POSIX regular expressions as Aerospike's server runs them (it hands the
 * pattern and the flags to glibc's regcomp and asks regexec whether the text matches), in
 * time linear in the text.
 *
 * Why not JS RegExp: it backtracks, so a pattern such as `^(a+)+$` takes 2^n steps on n a's
 * and a mismatch, and any Aerospike client can send one; a few dozen bytes would block the
 * event loop for seconds. Here the pattern is compiled to a Thompson NFA and run over the text
 * with a set of live states (each state at most once per text byte), so a match costs at most
 * text bytes × NFA states, and both factors are bounded (lib/constants.ts, REGEX_*). The sets
 * met are cached as the states of a lazy DFA (PosixRegex.matches), so most patterns cost one
 * table lookup a byte.
 *
 * The dialect is glibc's in the C locale, which is the server's: bytes, not characters (a
 * UTF-8 text is matched byte by byte; `.` is one byte), ASCII case folding and classes.
 * - Flags are regcomp's bits: EXTENDED (1) selects extended syntax, else basic (`\(` `\)`
 *   `\{m,n\}` `\|` `\+` `\?`, `*` literal at the start, `^`/`$` anchors only at the ends);
 *   ICASE (2); NEWLINE (4): `.` and `[^...]` do not match a newline, `^`/`$` also match after
 *   and before one; NOSUB (8) changes nothing for a yes/no match.
 * - Literals, `.`, bracket expressions (ranges, negation, `[:alpha:]` and the other classes,
 *   `[=c=]`, `[.c.]`), `*` `+` `?` `{m}` `{m,}` `{,n}` `{m,n}`, alternation, groups, anchors,
 *   and glibc's `\w \W \s \S \b \B \< \> \` \'`; a backslash before any other byte is that byte.
 * - Back-references (`\1`..`\9`, in glibc's two syntaxes) are refused: matching them is
 *   NP-hard, so no linear-time matcher takes them. The text ends at its first NUL byte, as
 *   for regexec.
 * - glibc's choices where POSIX leaves one are followed (scripts/regex-against-glibc.ts
 *   compares the two), but one: see docs/protocol.md, "Regular expressions".
 */
import { REGEX_DFA_CACHE_BYTES, REGEX_MATCH_STEPS_MAX, REGEX_PATTERN_BYTES_MAX, REGEX_STATES_MAX } from '../../constants';
import { invalidArgument } from '../../errors';
import { RegexFlags } from './codes';
import { Assertion, type ByteSet, KNOWN_FLAGS, NEWLINE_BYTE, PatternParser, type RegexNode, isWordByte, stateCount } from './regex-syntax';

/**
 * Compiles `pattern` under regcomp `flags` (RegexFlags bits).
 * Returns a matcher whose `matches(text)` is whether the pattern matches anywhere in the text,
 * or undefined when deciding would take more than REGEX_MATCH_STEPS_MAX steps.
 * Throws INVALID_ARGUMENT for a pattern regcomp refuses, a back-reference, a NUL byte, unknown
 * flag bits, or a pattern past REGEX_PATTERN_BYTES_MAX, REGEX_NESTING_MAX or REGEX_STATES_MAX.
 */
export function compilePosixRegex(pattern: string, flags: number): PosixRegex {
  if (!Number.isInteger(flags) || flags < 0 || (flags & ~KNOWN_FLAGS) !== 0) {
    throw invalidArgument(`cmpRegex flags must be regcomp's EXTENDED (1), ICASE (2), NEWLINE (4) and NOSUB (8), not ${flags}`);
  }
  const bytes = Buffer.from(pattern, 'utf8');
  if (bytes.length > REGEX_PATTERN_BYTES_MAX) throw invalidArgument(`a cmpRegex pattern is at most ${REGEX_PATTERN_BYTES_MAX} bytes, not ${bytes.length}`);
  if (bytes.includes(0)) throw invalidArgument('a cmpRegex pattern cannot hold a NUL byte');
  const root = new PatternParser(bytes, flags).parse();
  const states = stateCount(root) + 1;
  if (states > REGEX_STATES_MAX) {
    throw invalidArgument(`cmpRegex pattern /${pattern.slice(0, 64)}/ needs ${states} NFA states once its repetitions are expanded; at most ${REGEX_STATES_MAX}`);
  }
  return new PosixRegex(root, states, (flags & RegexFlags.NEWLINE) !== 0);
}

const StateKind = { SET: 0, SPLIT: 1, ASSERT: 2, MATCH: 3 } as const;

/** DFA row entries besides a next state + 1 (0: not computed yet). */
const DFA_MATCHED = -1;
const DFA_FULL = -2;
/** Assertions that look at the byte after the position, so a DFA move depends on its class. */
const LOOKS_AHEAD: ReadonlySet<number> = new Set([
  Assertion.LINE_END,
  Assertion.TEXT_END,
  Assertion.WORD_BOUNDARY,
  Assertion.NOT_WORD_BOUNDARY,
  Assertion.WORD_START,
  Assertion.WORD_END,
]);

/**
 * A compiled pattern: a Thompson NFA in typed arrays. A SET state consumes one byte of its set
 * (row `argument` of `setTable`) and goes to `next`; SPLIT goes to `next` and `alternative`
 * without consuming; ASSERT goes to `next` when its assertion holds between the previous byte
 * and the next; MATCH is the end.
 */
export class PosixRegex {
  private readonly kinds: Uint8Array;
  private readonly next: Int32Array;
  private readonly alternative: Int32Array;
  private readonly argument: Int32Array;
  /** The distinct byte sets, one setTable row each: `[ab]{19999}` has 19,999 states and one row. */
  private readonly sets: ByteSet[] = [];
  private readonly rowOfSet = new Map<ByteSet, number>();
  private readonly rowOfMembers = new Map<string, number>();
  private readonly setTable: Uint8Array;
  private readonly start: number;
  /** The bytes a match can start with, or undefined when one can be empty (then no byte is skipped). */
  private readonly startBytes: ByteSet | undefined;
  private count = 0;
  // Scratch for one evaluation, reused: matching is synchronous, so never shared by two.
  private current: Int32Array;
  private upcoming: Int32Array;
  private readonly stack: Int32Array;
  private readonly marks: Uint32Array;
  private generation = 0;
  private steps = 0;
  // The lazy DFA's cache (matches): per state its NFA set and its row of moves, byte × context.
  private readonly dfaSets: Int32Array[] = [];
  private readonly dfaRows: Int32Array[] = [];
  private readonly dfaIds = new Map<string, number>();
  private dfaBytes = 0;
  private liveAfterTransition = 0;
  /** The DFA state at the text's start, by the first byte's context, as row entries are. */
  private readonly startStates = new Int32Array(4);
  /** 4 byte classes (end, newline, word, other) when an assertion looks ahead, else 1. */
  private readonly contexts: number;

  /** Not for callers: compilePosixRegex counts and bounds the `capacity` (stateCount + 1) first. */
  constructor(
    root: RegexNode,
    capacity: number,
    private readonly newline: boolean,
  ) {
    this.kinds = new Uint8Array(capacity);
    this.next = new Int32Array(capacity);
    this.alternative = new Int32Array(capacity);
    this.argument = new Int32Array(capacity);
    const match = this.add(StateKind.MATCH, -1);
    this.start = this.build(root, match);
    this.setTable = new Uint8Array(this.sets.length * 256);
    this.sets.forEach((members, row) => this.setTable.set(members, row * 256));
    this.current = new Int32Array(capacity);
    this.upcoming = new Int32Array(capacity);
    this.stack = new Int32Array(capacity);
    this.marks = new Uint32Array(capacity);
    this.startBytes = this.firstBytes();
    let looksAhead = false;
    for (let state = 0; state < this.count; state++) {
      if (this.kinds[state] === StateKind.ASSERT && LOOKS_AHEAD.has(this.argument[state]!)) looksAhead = true;
    }
    this.contexts = looksAhead ? 4 : 1;
  }

  private add(kind: number, next: number, alternative = -1, argument = -1): number {
    const state = this.count++;
    this.kinds[state] = kind;
    this.next[state] = next;
    this.alternative[state] = alternative;
    this.argument[state] = argument;
    return state;
  }

  /** Compiles `node` to states that continue to `out`; returns its first state. */
  private build(node: RegexNode, out: number): number {
    switch (node.kind) {
      case 'set':
        return this.add(StateKind.SET, out, -1, this.rowOf(node.members) * 256);
      case 'assert':
        return this.add(StateKind.ASSERT, out, -1, node.assertion);
      case 'concat':
        return node.items.reduceRight((continuation, item) => this.build(item, continuation), out);
      case 'alternation': {
        const starts = node.branches.map((branch) => this.build(branch, out));
        return starts.reduceRight((rest, first) => this.add(StateKind.SPLIT, first, rest));
      }
      case 'repeat':
        return this.buildRepeat(node, out);
    }
  }

  private rowOf(members: ByteSet): number {
    let row = this.rowOfSet.get(members);
    if (row !== undefined) return row;
    const key = Buffer.from(members.buffer, members.byteOffset, members.length).toString('latin1');
    row = this.rowOfMembers.get(key) ?? this.sets.push(members) - 1;
    this.rowOfMembers.set(key, row);
    this.rowOfSet.set(members, row);
    return row;
  }

  /** x{m,n} is m copies of x then n - m optional ones, each leading to the next; x{m,} ends in a loop. */
  private buildRepeat(node: Extract<RegexNode, { kind: 'repeat' }>, out: number): number {
    let first = out;
    if (node.max === Infinity) {
      first = this.add(StateKind.SPLIT, -1, out);
      this.next[first] = this.build(node.item, first);
    } else {
      for (let i = node.min; i < node.max; i++) first = this.add(StateKind.SPLIT, this.build(node.item, first), out);
    }
    for (let i = 0; i < node.min; i++) first = this.build(node.item, first);
    return first;
  }

  /** The union of the sets reachable from the start without a byte, taking every assertion as holding; undefined if MATCH is. */
  private firstBytes(): ByteSet | undefined {
    const members = new Uint8Array(256);
    const seen = new Uint8Array(this.count);
    const rowsSeen = new Set<number>();
    const pending = [this.start];
    seen[this.start] = 1;
    const visit = (target: number) => {
      if (seen[target] === 0) pending.push(target);
      seen[target] = 1;
    };
    while (pending.length > 0) {
      const state = pending.pop()!;
      const kind = this.kinds[state]!;
      if (kind === StateKind.MATCH) return undefined;
      if (kind === StateKind.SET) {
        const row = this.argument[state]!;
        if (rowsSeen.has(row)) continue;
        rowsSeen.add(row);
        for (let byte = 0; byte < 256; byte++) members[byte] |= this.setTable[row + byte]!;
        continue;
      }
      visit(this.next[state]!);
      if (kind === StateKind.SPLIT) visit(this.alternative[state]!);
    }
    return members;
  }

  /**
   * Whether the pattern matches anywhere in `text` (up to its first NUL), as regexec answers;
   * undefined when that takes more than REGEX_MATCH_STEPS_MAX state visits.
   *
   * Runs the lazy DFA: each set of live NFA states met becomes a DFA state whose transitions are
   * computed by the NFA on first use and then looked up, so a pattern whose sets recur (most do)
   * costs one lookup a byte, and the cache carries over to the next text (a scan's records).
   * When the cache is full (REGEX_DFA_CACHE_BYTES) the rest of the text runs on the NFA alone.
   */
  matches(text: string): boolean | undefined {
    let bytes = Buffer.from(text, 'utf8');
    const nul = bytes.indexOf(0);
    if (nul >= 0) bytes = bytes.subarray(0, nul);
    this.steps = 0;
    const context = this.contextAt(bytes, 0);
    let start = this.startStates[context]!;
    if (start === 0) {
      this.beginGeneration();
      const live = this.close(this.start, bytes, 0, this.current, 0);
      if (live < 0) start = DFA_MATCHED;
      else {
        const state = this.intern(live);
        if (state < 0) return this.simulate(bytes, 0, live);
        start = state + 1;
      }
      this.startStates[context] = start;
    }
    if (start === DFA_MATCHED) return true;
    let state = start - 1;
    const { dfaRows, contexts } = this;
    for (let at = 0; at < bytes.length; at++) {
      const row = dfaRows[state]!;
      const slot = contexts === 1 ? bytes[at]! : bytes[at]! * contexts + this.contextAt(bytes, at + 1);
      let target = row[slot]!;
      if (target === 0) {
        target = this.transition(state, bytes, at);
        if (target === DFA_FULL) return this.simulate(bytes, at + 1, this.liveAfterTransition);
        row[slot] = target;
        if (this.steps > REGEX_MATCH_STEPS_MAX) return undefined;
      }
      if (target === DFA_MATCHED) return true;
      state = target - 1;
    }
    return false;
  }

  /** The class of the byte at `at` that assertions can tell apart: 0 when none looks at the next byte. */
  private contextAt(bytes: Uint8Array, at: number): number {
    if (this.contexts === 1) return 0;
    if (at >= bytes.length) return 0;
    const byte = bytes[at]!;
    return byte === NEWLINE_BYTE ? 1 : isWordByte(byte) ? 2 : 3;
  }

  /**
   * Computes DFA state `state`'s move past bytes[at] on the NFA: a row entry (DFA_MATCHED, or
   * the next state + 1), or DFA_FULL when the next state does not fit in the cache; then its
   * set is left in `current` (liveAfterTransition entries).
   */
  private transition(state: number, bytes: Uint8Array, at: number): number {
    const set = this.dfaSets[state]!;
    this.current.set(set);
    let live = this.consume(bytes, at, set.length);
    if (live >= 0) live = this.close(this.start, bytes, at + 1, this.current, live);
    if (live < 0) return DFA_MATCHED;
    const next = this.intern(live);
    this.liveAfterTransition = live;
    return next < 0 ? DFA_FULL : next + 1;
  }

  /** The DFA state of the first `live` entries of `current`, made if new; -1 when the cache is full. */
  private intern(live: number): number {
    const set = this.current.slice(0, live).sort();
    let key = '';
    for (let i = 0; i < live; i += 8_192) key += String.fromCharCode(...set.subarray(i, i + 8_192));
    const known = this.dfaIds.get(key);
    if (known !== undefined) return known;
    const bytes = set.byteLength + 256 * this.contexts * 4 + key.length * 2;
    if (this.dfaBytes + bytes > REGEX_DFA_CACHE_BYTES) return -1;
    this.dfaBytes += bytes;
    this.dfaSets.push(set);
    this.dfaRows.push(new Int32Array(256 * this.contexts));
    this.dfaIds.set(key, this.dfaSets.length - 1);
    return this.dfaSets.length - 1;
  }

  /**
   * The NFA alone from position `at`, where the first `live` entries of `current` are the live
   * states (the new attempt at `at` among them).
   */
  private simulate(bytes: Uint8Array, at: number, live: number): boolean | undefined {
    for (;;) {
      if (at === bytes.length) return false;
      live = this.consume(bytes, at, live);
      if (live < 0) return true;
      if (this.steps > REGEX_MATCH_STEPS_MAX) return undefined;
      at++;
      // With no attempt under way, bytes no match can start with are skipped (at no cost in steps).
      if (live === 0 && this.startBytes !== undefined && at < bytes.length && this.startBytes[bytes[at]!] === 0) {
        while (at < bytes.length && this.startBytes[bytes[at]!] === 0) at++;
        this.beginGeneration();
      }
      // A new attempt starts at every position: the search is unanchored unless the pattern says otherwise.
      live = this.close(this.start, bytes, at, this.current, live);
      if (live < 0) return true;
    }
  }

  /** Moves the `live` states in `current` past bytes[at] into `upcoming`, then swaps the two; returns the new live count (-1: matched). */
  private consume(bytes: Uint8Array, at: number, live: number): number {
    const byte = bytes[at]!;
    const { current, upcoming, setTable, argument, next, kinds, marks } = this;
    this.beginGeneration();
    let count = 0;
    for (let i = 0; i < live; i++) {
      const state = current[i]!;
      if (setTable[argument[state]! + byte] === 0) continue;
      const target = next[state]!;
      if (kinds[target] !== StateKind.SET) {
        count = this.close(target, bytes, at + 1, upcoming, count);
        if (count < 0) return -1;
      } else if (marks[target] !== this.generation) {
        // The common case, one byte after another, without the closure's stack.
        marks[target] = this.generation;
        upcoming[count++] = target;
      }
    }
    this.steps += live;
    this.current = upcoming;
    this.upcoming = current;
    return count;
  }

  private beginGeneration(): void {
    if (++this.generation === 0xffff_ffff) {
      this.marks.fill(0);
      this.generation = 1;
    }
  }

  /**
   * Adds `state` and every state reachable from it without consuming a byte (at position `at`)
   * to `list` after its first `count` entries; only SET states are kept. Returns the new count,
   * or -1 when MATCH is reachable.
   */
  private close(state: number, bytes: Uint8Array, at: number, list: Int32Array, count: number): number {
    const { stack, marks, generation } = this;
    if (marks[state] === generation) return count;
    marks[state] = generation;
    stack[0] = state;
    let top = 1;
    while (top > 0) {
      const visiting = stack[--top]!;
      this.steps++;
      const kind = this.kinds[visiting]!;
      if (kind === StateKind.MATCH) return -1;
      if (kind === StateKind.SET) {
        list[count++] = visiting;
        continue;
      }
      if (kind === StateKind.ASSERT && !this.holds(this.argument[visiting]!, bytes, at)) continue;
      const next = this.next[visiting]!;
      if (marks[next] !== generation) {
        marks[next] = generation;
        stack[top++] = next;
      }
      const alternative = this.alternative[visiting]!;
      if (kind === StateKind.SPLIT && marks[alternative] !== generation) {
        marks[alternative] = generation;
        stack[top++] = alternative;
      }
    }
    return count;
  }

  /** Whether an assertion holds between bytes[at - 1] and bytes[at] (-1 past either end). */
  private holds(assertion: number, bytes: Uint8Array, at: number): boolean {
    const before = at > 0 ? bytes[at - 1]! : -1;
    const after = at < bytes.length ? bytes[at]! : -1;
    switch (assertion) {
      case Assertion.LINE_START:
        return before === -1 || (this.newline && before === NEWLINE_BYTE);
      case Assertion.LINE_END:
        return after === -1 || (this.newline && after === NEWLINE_BYTE);
      case Assertion.TEXT_START:
        return before === -1;
      case Assertion.TEXT_END:
        return after === -1;
      default: {
        const wordBefore = before !== -1 && isWordByte(before);
        const wordAfter = after !== -1 && isWordByte(after);
        if (assertion === Assertion.WORD_BOUNDARY) return wordBefore !== wordAfter;
        if (assertion === Assertion.NOT_WORD_BOUNDARY) return wordBefore === wordAfter;
        return assertion === Assertion.WORD_START ? !wordBefore && wordAfter : wordBefore && !wordAfter;
      }
    }
  }
}
