/**
 * cmpRegex's matcher (lib/model/exp/regex.ts): POSIX basic and extended syntax as glibc's
 * regcomp reads it in the C locale (Aerospike's server), its flags, the patterns it refuses,
 * its bounds, and a differential run against JS RegExp over random small patterns in the
 * subset where the two agree.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, RegexFlags, ShoalError, exp } from '../lib/index';
import {
  REGEX_MATCH_STEPS_MAX,
  REGEX_NESTING_MAX,
  REGEX_PATTERN_BYTES_MAX,
  REGEX_REPEAT_COUNT_MAX,
  REGEX_STATES_MAX,
} from '../lib/constants';
import { fromUser } from '../lib/model/cdt/convert';
import { UNKNOWN, compileExpression, type ExpRecord } from '../lib/model/exp/compile';
import { compilePosixRegex } from '../lib/model/exp/regex';
import { seededFloats } from './helpers/random';
import { cpuNowMs } from './helpers/cpu-time';

const { EXTENDED, ICASE, NEWLINE, NOSUB } = RegexFlags;

function matches(pattern: string, text: string, flags: number = EXTENDED): boolean | undefined {
  return compilePosixRegex(pattern, flags).matches(text);
}

function refusal(pattern: string, flags: number = EXTENDED): string {
  try {
    compilePosixRegex(pattern, flags);
  } catch (error) {
    expect(error).toBeInstanceOf(ShoalError);
    expect((error as ShoalError).code).toBe(ErrorCode.INVALID_ARGUMENT);
    return (error as Error).message;
  }
  throw new Error(`/${pattern}/ compiled`);
}

describe('extended syntax', () => {
  it('literals, dot, repetitions, alternation and groups; the search is unanchored', () => {
    expect(matches('b', 'abc')).toBe(true);
    expect(matches('a.c', 'xabcx')).toBe(true);
    expect(matches('^ab*c$', 'ac')).toBe(true);
    expect(matches('^ab+c$', 'ac')).toBe(false);
    expect(matches('^ab?c$', 'abbc')).toBe(false);
    expect(matches('^(ab|cd)+$', 'abcdab')).toBe(true);
    expect(matches('^(ab|cd)+$', 'abca')).toBe(false);
    expect(matches('^a{2,3}$', 'aaa')).toBe(true);
    expect(matches('^a{2,3}$', 'aaaa')).toBe(false);
    expect(matches('^a{2}$', 'aa')).toBe(true);
    expect(matches('^a{2,}$', 'aaaaaaa')).toBe(true);
    expect(matches('^a{,2}$', 'aaa')).toBe(false);
    expect(matches('^(a|)$', '')).toBe(true);
    expect(matches('^()$', '')).toBe(true);
    expect(matches('a**', 'b')).toBe(true);
    // glibc reads an unmatched ) as itself.
    expect(matches('a)', 'xa)')).toBe(true);
    expect(matches('a^b', 'a^b')).toBe(false);
  });

  it('bracket expressions: ranges, negation, classes, a leading ], collating elements', () => {
    expect(matches('^[a-c]+$', 'abcab')).toBe(true);
    expect(matches('[^a-c]', 'abc')).toBe(false);
    expect(matches('^[]a]+$', ']a]')).toBe(true);
    expect(matches('^[^]a]$', ']')).toBe(false);
    expect(matches('^[a-]+$', 'a-a')).toBe(true);
    expect(matches('^[[:alpha:]]+[[:digit:]]+$', 'abc123')).toBe(true);
    expect(matches('^[[:space:]]$', '\t')).toBe(true);
    expect(matches('^[[:upper:][:punct:]]+$', 'AB!?')).toBe(true);
    expect(matches('^[[:xdigit:]]+$', '0fF9')).toBe(true);
    expect(matches('^[[:xdigit:]]+$', 'g')).toBe(false);
    expect(matches('^[[.-.]x]+$', '-x-')).toBe(true);
    expect(matches('^[[=e=]]$', 'e')).toBe(true);
    // A backslash in a bracket is itself.
    expect(matches('^[\\]$', '\\')).toBe(true);
  });

  it("glibc's escapes: word and space classes, word boundaries, text ends; any other escaped byte is itself", () => {
    expect(matches('\\bcat\\b', 'a cat sat')).toBe(true);
    expect(matches('\\bcat\\b', 'concatenate')).toBe(false);
    expect(matches('\\Bcat\\B', 'concatenate')).toBe(true);
    expect(matches('\\<sat\\>', 'a cat sat')).toBe(true);
    expect(matches('^\\w+\\s\\W$', 'ab_1 !')).toBe(true);
    expect(matches('\\S', '  \t')).toBe(false);
    expect(matches('\\`a', 'ba\na', EXTENDED | NEWLINE)).toBe(false);
    expect(matches("a\\'", 'a\nb', EXTENDED | NEWLINE)).toBe(false);
    expect(matches('a\\.b', 'a.b')).toBe(true);
    expect(matches('a\\.b', 'axb')).toBe(false);
  });
});

describe('basic syntax (no EXTENDED flag, as regcomp reads it)', () => {
  it('groups, intervals and alternation are backslashed; + ? | ( ) { } are themselves', () => {
    expect(matches('^a+$', 'a+', 0)).toBe(true);
    expect(matches('^a+$', 'aa', 0)).toBe(false);
    expect(matches('^a\\+$', 'aa', 0)).toBe(true);
    expect(matches('^a\\?b$', 'b', 0)).toBe(true);
    expect(matches('^\\(ab\\)*c$', 'ababc', 0)).toBe(true);
    expect(matches('^a\\{2\\}$', 'aa', 0)).toBe(true);
    expect(matches('^[a-c-]$', '-', 0)).toBe(true);
    expect(matches('^a{2}$', 'a{2}', 0)).toBe(true);
    expect(matches('^\\(a\\|b\\)$', 'b', 0)).toBe(true);
    expect(matches('(a|b)', '(a|b)', 0)).toBe(true);
    expect(matches('(a|b)', 'a', 0)).toBe(false);
  });

  it('* first is itself, and ^ and $ are anchors only at the ends of a branch', () => {
    expect(matches('*a', 'x*a', 0)).toBe(true);
    expect(matches('^*a', '*a', 0)).toBe(true);
    expect(matches('\\(*a\\)', '*a', 0)).toBe(true);
    expect(matches('a^b', 'a^b', 0)).toBe(true);
    expect(matches('a$b', 'a$b', 0)).toBe(true);
    expect(matches('^a$', 'a', 0)).toBe(true);
    expect(matches('\\(^a$\\)', 'a', 0)).toBe(true);
    // After an anchor too, a repetition operator is itself.
    expect(matches('a\\>*', 'a*', 0)).toBe(true);
    expect(matches('a\\>*', 'a', 0)).toBe(false);
  });

  it("stacks \\+ and \\? as glibc does, and refuses * or \\{ after a repetition", () => {
    expect(matches('^a*\\?$', 'aa', 0)).toBe(true);
    expect(matches('^a\\+\\?$', '', 0)).toBe(true);
    expect(refusal('a**', 0)).toMatch(/repetition of a repetition/);
    expect(refusal('a\\+*', 0)).toMatch(/repetition of a repetition/);
    expect(refusal('a*\\{2\\}', 0)).toMatch(/repetition of a repetition/);
    expect(matches('^(a{2}){3}$', 'aaaaaa')).toBe(true);
    expect(matches('^a{2}{3}$', 'aaaaaa')).toBe(true);
  });
});

describe('flags', () => {
  it('ICASE folds ASCII letters in literals, ranges, classes and negations', () => {
    expect(matches('^HeLLo$', 'hello', EXTENDED | ICASE)).toBe(true);
    expect(matches('^[A-C]+$', 'abc', EXTENDED | ICASE)).toBe(true);
    expect(matches('[A-c]', '_', EXTENDED | ICASE)).toBe(false);
    expect(matches('[a-~]', '[', EXTENDED | ICASE)).toBe(true);
    expect(matches('^[[:upper:]]+$', 'abc', EXTENDED | ICASE)).toBe(true);
    expect(matches('[^a]', 'A', EXTENDED | ICASE)).toBe(false);
    expect(matches('^hello$', 'HELLO', EXTENDED)).toBe(false);
    // glibc leaves an escaped letter unfolded and compares in uppercase: \\c matches nothing, \\C both cases.
    expect(matches('\\c', 'cC', EXTENDED | ICASE)).toBe(false);
    expect(matches('\\C', 'c', EXTENDED | ICASE)).toBe(true);
    expect(matches('\\c', 'c', EXTENDED)).toBe(true);
  });

  it('NEWLINE: . and [^...] do not match a newline, ^ and $ match at one', () => {
    expect(matches('^b', 'a\nb')).toBe(false);
    expect(matches('^b', 'a\nb', EXTENDED | NEWLINE)).toBe(true);
    expect(matches('a$', 'a\nb')).toBe(false);
    expect(matches('a$', 'a\nb', EXTENDED | NEWLINE)).toBe(true);
    expect(matches('a.b', 'a\nb')).toBe(true);
    expect(matches('a.b', 'a\nb', EXTENDED | NEWLINE)).toBe(false);
    expect(matches('a[^x]b', 'a\nb', EXTENDED | NEWLINE)).toBe(false);
  });

  it("NOSUB changes nothing; the flags are glibc's values, the Node client's Aerospike.regex", () => {
    expect(matches('^a+$', 'aaa', EXTENDED | NOSUB)).toBe(true);
    expect(RegexFlags).toMatchObject({ BASIC: 0, EXTENDED: 1, ICASE: 2, NEWLINE: 4, NOSUB: 8 });
    expect(refusal('a', 16)).toMatch(/flags/);
    expect(refusal('a', -1)).toMatch(/flags/);
  });
});

describe('the text is bytes, as in the C locale', () => {
  it('. is one byte of UTF-8, a multibyte literal matches its bytes, and the text ends at NUL', () => {
    expect(matches('^.$', 'é')).toBe(false);
    expect(matches('^..$', 'é')).toBe(true);
    expect(matches('^café$', 'café')).toBe(true);
    expect(matches('cd', 'ab\u0000cd')).toBe(false);
    expect(matches('^ab$', 'ab\u0000cd')).toBe(true);
  });
});

describe('refusals', () => {
  it('patterns regcomp refuses are INVALID_ARGUMENT with the reason', () => {
    expect(refusal('(')).toMatch(/unmatched \(/);
    expect(refusal('\\(', 0)).toMatch(/unmatched \\\(/);
    expect(refusal('a\\)', 0)).toMatch(/unmatched \\\)/);
    expect(refusal('*a')).toMatch(/nothing to repeat/);
    expect(refusal('a|+')).toMatch(/nothing to repeat/);
    expect(refusal('^*')).toMatch(/anchor/);
    expect(refusal('a{')).toMatch(/not closed|without a count/);
    expect(refusal('a{x}')).toMatch(/without a count/);
    expect(refusal('a{3,2}')).toMatch(/greater/);
    expect(refusal('\\{2\\}', 0)).toMatch(/nothing to repeat/);
    expect(refusal('[b-a]')).toMatch(/range/);
    expect(refusal('[a-c-e]')).toMatch(/range from where another range ends/);
    expect(refusal('[[:alpha:]-z]')).toMatch(/range from a character class/);
    expect(refusal('[[=a=]-c]')).toMatch(/equivalence class/);
    // Under ICASE glibc takes a range's ends in uppercase.
    expect(refusal('[_-z]', EXTENDED | ICASE)).toMatch(/range/);
    expect(refusal('[a')).toMatch(/unmatched \[/);
    expect(refusal('[[:nope:]]')).toMatch(/unknown character class/);
    expect(refusal('[[.ab.]]')).toMatch(/collating/);
    expect(refusal('a\\')).toMatch(/trailing backslash/);
    expect(refusal('a\u0000b')).toMatch(/NUL/);
  });

  it('back-references are refused in both syntaxes (NP-hard to match; POSIX has them in basic syntax only)', () => {
    expect(refusal('(a)\\1')).toMatch(/back-references/);
    expect(refusal('\\(a\\)\\1', 0)).toMatch(/back-references/);
  });

  it('size bounds: pattern bytes, nesting, repetition counts and expanded NFA states', () => {
    expect(() => compilePosixRegex('a'.repeat(REGEX_PATTERN_BYTES_MAX), EXTENDED)).not.toThrow();
    expect(refusal('a'.repeat(REGEX_PATTERN_BYTES_MAX + 1))).toMatch(/at most/);
    expect(() => compilePosixRegex(`${'('.repeat(REGEX_NESTING_MAX)}a${')'.repeat(REGEX_NESTING_MAX)}`, EXTENDED)).not.toThrow();
    expect(refusal(`${'('.repeat(REGEX_NESTING_MAX + 1)}a${')'.repeat(REGEX_NESTING_MAX + 1)}`)).toMatch(/nest/);
    expect(refusal(`a${'*'.repeat(REGEX_NESTING_MAX + 1)}`)).toMatch(/stack/);
    expect(refusal(`a{${REGEX_REPEAT_COUNT_MAX + 1}}`)).toMatch(/count/);
    const started = cpuNowMs();
    expect(refusal('a{1000}{1000}')).toMatch(/NFA states/);
    expect(refusal('(((a{32767}){32767}){32767}){32767}')).toMatch(/NFA states/);
    expect(cpuNowMs() - started).toBeLessThan(100);
    expect(() => compilePosixRegex(`a{${REGEX_STATES_MAX - 1}}`, EXTENDED)).not.toThrow();
    expect(refusal(`a{${REGEX_STATES_MAX}}`)).toMatch(/NFA states/);
  });

  it('an evaluation past REGEX_MATCH_STEPS_MAX is UNKNOWN, in bounded time', () => {
    // 600 live states per byte: the budget runs out after a few thousand bytes.
    const regex = compilePosixRegex('[a-z]{0,300}x', EXTENDED);
    const started = cpuNowMs();
    expect(regex.matches('a'.repeat(1 << 20))).toBeUndefined();
    expect(cpuNowMs() - started).toBeLessThan(1000);
    expect(regex.matches(`${'a'.repeat(1_000)}x`)).toBe(true);
    expect(REGEX_MATCH_STEPS_MAX / 600).toBeLessThan(1 << 20);
    const expression = compileExpression(exp.cmpRegex(EXTENDED, '[a-z]{0,300}x', exp.binStr('text')).toBytes(), false);
    const text = fromUser('a'.repeat(1 << 20), 'text', false);
    expect(expression.evaluate({ bin: () => text } as unknown as ExpRecord, 0)).toBe(UNKNOWN);
  });

  it('a 1 MB text is searched to its end: a lazy DFA makes it one lookup a byte', () => {
    const text = `${'xy'.repeat(500_000)}needle`;
    const started = cpuNowMs();
    expect(matches('needle$', text)).toBe(true);
    expect(matches('(foo|bar|needle)$', text)).toBe(true);
    expect(matches('x[^y]', text)).toBe(false);
    expect(matches('^x(yx)*yneedle$', text)).toBe(true);
    expect(matches('.*foo', text)).toBe(false);
    expect(matches('\\bneedle\\b', text)).toBe(false);
    expect(matches('y\\<needle\\>', text, EXTENDED)).toBe(false);
    expect(matches('yneedle\\>', text, EXTENDED)).toBe(true);
    expect(cpuNowMs() - started).toBeLessThan(5_000);
  });

  it('a pattern whose DFA does not fit its cache goes on on the NFA, with the same answers', () => {
    // The 13th byte from the end is an a: 2^13 DFA states, far more than REGEX_DFA_CACHE_BYTES holds.
    const pattern = '(a|b)*a(a|b){12}$';
    const regex = compilePosixRegex(pattern, EXTENDED);
    const reference = new RegExp(pattern);
    const random = seededFloats(13);
    for (let round = 0; round < 20; round++) {
      const text = Array.from({ length: 3_000 }, () => (random() < 0.5 ? 'a' : 'b')).join('');
      expect(regex.matches(text), `round ${round}`).toBe(reference.test(text));
    }
  });
});

/** A random pattern printed three ways: extended syntax, basic syntax, and JS RegExp source. */
interface Printed {
  extended: string;
  basic: string;
  js: string;
}

const ATOMS: Array<(newline: boolean) => Printed> = [
  () => ({ extended: 'a', basic: 'a', js: 'a' }),
  () => ({ extended: 'b', basic: 'b', js: 'b' }),
  () => ({ extended: 'B', basic: 'B', js: 'B' }),
  () => ({ extended: '.', basic: '.', js: '.' }),
  () => ({ extended: '[ab]', basic: '[ab]', js: '[ab]' }),
  () => ({ extended: '[a-c]', basic: '[a-c]', js: '[a-c]' }),
  (newline) => ({ extended: '[^a]', basic: '[^a]', js: newline ? '[^a\\n]' : '[^a]' }),
  () => ({ extended: '[[:digit:]]', basic: '[[:digit:]]', js: '[0-9]' }),
  () => ({ extended: '\\.', basic: '\\.', js: '\\.' }),
];

class PatternGenerator {
  constructor(
    private readonly random: () => number,
    private readonly newline: boolean,
  ) {}

  private pick(count: number): number {
    return Math.floor(this.random() * count);
  }

  alternation(depth: number): Printed {
    const branches = Array.from({ length: 1 + this.pick(3) }, () => this.branch(depth));
    return {
      extended: branches.map((b) => b.extended).join('|'),
      basic: branches.map((b) => b.basic).join('\\|'),
      js: branches.map((b) => b.js).join('|'),
    };
  }

  private branch(depth: number): Printed {
    const parts: Printed[] = [];
    if (this.pick(5) === 0) parts.push({ extended: '^', basic: '^', js: '^' });
    for (let i = this.pick(4); i > 0; i--) parts.push(this.quantified(this.atom(depth)));
    if (this.pick(5) === 0) parts.push({ extended: '$', basic: '$', js: '$' });
    return {
      extended: parts.map((p) => p.extended).join(''),
      basic: parts.map((p) => p.basic).join(''),
      js: parts.map((p) => p.js).join(''),
    };
  }

  private atom(depth: number): Printed {
    if (depth < 2 && this.pick(4) === 0) {
      const inner = this.alternation(depth + 1);
      return { extended: `(${inner.extended})`, basic: `\\(${inner.basic}\\)`, js: `(${inner.js})` };
    }
    return ATOMS[this.pick(ATOMS.length)]!(this.newline);
  }

  private quantified(atom: Printed): Printed {
    const low = this.pick(3);
    const high = low + this.pick(3);
    const choices: Array<[string, string, string]> = [
      ['', '', ''],
      ['', '', ''],
      ['*', '*', '*'],
      ['+', '\\+', '+'],
      ['?', '\\?', '?'],
      [`{${low}}`, `\\{${low}\\}`, `{${low}}`],
      [`{${low},}`, `\\{${low},\\}`, `{${low},}`],
      [`{${low},${high}}`, `\\{${low},${high}\\}`, `{${low},${high}}`],
    ];
    const [extended, basic, js] = choices[this.pick(choices.length)]!;
    return { extended: atom.extended + extended, basic: atom.basic + basic, js: atom.js + js };
  }
}

describe('differential: the same answers as JS RegExp where the two dialects agree', () => {
  it('random small patterns, both syntaxes, with and without ICASE and NEWLINE', () => {
    const random = seededFloats(15);
    const alphabet = 'abB0.\n';
    let compared = 0;
    let matched = 0;
    for (let round = 0; round < 1_500; round++) {
      const ignoreCase = random() < 0.3;
      const newline = random() < 0.3;
      const printed = new PatternGenerator(random, newline).alternation(0);
      // Without NEWLINE, . matches a newline in POSIX: JS needs its s flag for that.
      const js = new RegExp(printed.js, `${ignoreCase ? 'i' : ''}${newline ? 'm' : 's'}`);
      const flags = (ignoreCase ? ICASE : 0) | (newline ? NEWLINE : 0);
      const extended = compilePosixRegex(printed.extended, flags | EXTENDED);
      const basic = compilePosixRegex(printed.basic, flags);
      for (let t = 0; t < 6; t++) {
        const text = Array.from({ length: Math.floor(random() * 8) }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
        const expected = js.test(text);
        const context = `/${printed.extended}/ flags ${flags} on ${JSON.stringify(text)}`;
        expect(extended.matches(text), context).toBe(expected);
        expect(basic.matches(text), `basic /${printed.basic}/ flags ${flags} on ${JSON.stringify(text)}`).toBe(expected);
        compared++;
        if (expected) matched++;
      }
    }
    // Both answers occur often enough for the comparison to mean something.
    expect(compared).toBe(9_000);
    expect(matched).toBeGreaterThan(compared / 5);
    expect(matched).toBeLessThan((compared * 4) / 5);
  });
});
