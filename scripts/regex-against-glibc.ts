/**
 * `npm run regex-glibc`: compares cmpRegex's matcher (lib/model/exp/regex.ts) with glibc's own
 * regcomp/regexec, the functions Aerospike's server calls, on random patterns and texts.
 * glibc is reached through python3's ctypes in the C locale (the server's), so this needs
 * python3 and glibc; it is an opt-in check, not part of `npm test`.
 *
 *   --seed N      first seed (default 1); --rounds N patterns a seed (default 6,000)
 *   --seeds N     seeds to run (default 3)
 *
 * Every seed runs two alphabets of pattern pieces: operators and escapes, and bracket
 * expressions. Prints, for each, how many (pattern, text) pairs agree, patterns both refuse,
 * and every disagreement. glibc's one known difference is left out of the verdict and counted
 * apart: without NEWLINE it lets a `^` inside the pattern match after a newline the same match
 * consumed (`.^a` matches "x\na"), and a `$` before one it goes on to consume (docs/protocol.md,
 * "Regular expressions"). Exits 1 on any other disagreement, 2 when python3 cannot be run.
 */
import { spawnSync } from 'node:child_process';
import { SeededRandom } from '../lib/cluster/seams';
import { compilePosixRegex } from '../lib/model/exp/regex';

const OPERATOR_PIECES = ['a', 'b', 'A', '.', '*', '+', '?', '|', '(', ')', '^', '$', '[ab]', '[^a]', '[a-c]', '[[:alpha:]]', '[[:digit:]]', '[]a]', '{2}', '{1,2}', '{,2}', '{2,}', '\\(', '\\)', '\\|', '\\{2\\}', '\\+', '\\?', '\\w', '\\W', '\\s', '\\b', '\\B', '\\<', '\\>', '\\.', '\\*', '0', ' ', '-', '[a-]', '[[:upper:]]', '\\`', "\\'"];
const BRACKET_PIECES = ['a', 'c', 'C', '_', '.', '*', '+', '?', '|', '(', ')', '^', '$', '[A-c]', '[[:lower:]]', '[^[:alpha:]]', '[a-c-e]', '[[.a.]-c]', '[[=a=]b]', '[[:alpha:]-z]', 'é', '[é]', '\\n', '\\1', '[\\]', '[a\\]b]', '[[:punct:]]', '[[:space:][:digit:]]', '[^]]', '[]-a]', '[--/]', '{0}', '{0,0}', '{1}', '\\', '[[:nope:]]', '[z-a]', '[[.-.]]', '[[:alpha:]', '[a', '\\w+', '\\s*', '[_-z]', '[a-~]'];
const TEXT_PIECES = ['a', 'b', 'A', 'B', '0', 'c', 'C', '_', 'é', 'z', '\\', '/', ' ', '\n', '.', '*', '+', '(', ')', '|', '{', '}', '^', '$', '-', ']', '['];

/** Reads cases as JSON on stdin, answers per case null (regcomp refused) or regexec's answers. */
const GLIBC = `
import ctypes, json, locale, sys
locale.setlocale(locale.LC_ALL, 'C')
libc = ctypes.CDLL('libc.so.6')
out = []
for case in json.loads(sys.stdin.read()):
    compiled = ctypes.create_string_buffer(1024)
    if libc.regcomp(compiled, case['pattern'].encode(), case['flags']) != 0:
        out.append(None)
        continue
    out.append([libc.regexec(compiled, text.encode(), 0, None, 0) == 0 for text in case['texts']])
    libc.regfree(compiled)
print(json.dumps(out))
`;

interface Case {
  pattern: string;
  flags: number;
  texts: string[];
}

function cases(seed: number, rounds: number, pieces: string[]): Case[] {
  const source = new SeededRandom(seed);
  const random = () => source.nextFloat();
  const pick = (from: string[]) => from[Math.floor(random() * from.length)]!;
  return Array.from({ length: rounds }, () => ({
    pattern: Array.from({ length: 1 + Math.floor(random() * 6) }, () => pick(pieces)).join(''),
    // EXTENDED, ICASE and NEWLINE in every combination.
    flags: Math.floor(random() * 8),
    texts: Array.from({ length: 4 }, () => Array.from({ length: Math.floor(random() * 7) }, () => pick(TEXT_PIECES)).join('')),
  }));
}

/** Whether a difference may be glibc's mid-pattern anchor at a newline (see the header). */
function isMidPatternAnchor(testCase: Case, text: string): boolean {
  const { pattern, flags } = testCase;
  const midAnchor = pattern.indexOf('^', 1) > 0 || pattern.slice(0, -1).includes('$');
  return (flags & 4) === 0 && text.includes('\n') && midAnchor;
}

function compare(testCase: Case, glibc: boolean[] | null, tally: Map<string, number>, differences: string[]): void {
  const count = (what: string) => tally.set(what, (tally.get(what) ?? 0) + 1);
  let regex;
  try {
    regex = compilePosixRegex(testCase.pattern, testCase.flags);
  } catch (error) {
    if (glibc === null) {
      count('both refuse');
      return;
    }
    // glibc takes back-references; Shoal refuses them by design (they cannot be matched in linear time).
    if (/\\[1-9]/.test(testCase.pattern) && /back-references/.test((error as Error).message)) {
      count('back-reference, refused by Shoal by design');
      return;
    }
    count('Shoal refuses, glibc accepts');
    differences.push(`refused by Shoal only: /${testCase.pattern}/ flags ${testCase.flags}: ${(error as Error).message}`);
    return;
  }
  if (glibc === null) {
    count('glibc refuses, Shoal accepts');
    differences.push(`refused by glibc only: /${testCase.pattern}/ flags ${testCase.flags}`);
    return;
  }
  testCase.texts.forEach((text, i) => {
    const shoal = regex.matches(text);
    if (shoal === glibc[i]) {
      count('agree');
      return;
    }
    if (isMidPatternAnchor(testCase, text)) {
      count("glibc's mid-pattern anchor at a newline");
      return;
    }
    count('differ');
    differences.push(`/${testCase.pattern}/ flags ${testCase.flags} on ${JSON.stringify(text)}: glibc ${glibc[i]}, Shoal ${shoal}`);
  });
}

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isInteger(value) || value < 1) {
    console.error(`${name} needs a positive integer`);
    process.exit(2);
  }
  return value;
}

function main(): void {
  const first = option('--seed', 1);
  const rounds = option('--rounds', 6_000);
  const seeds = option('--seeds', 3);
  let failed = false;
  for (let seed = first; seed < first + seeds; seed++) {
    for (const [name, pieces] of [['operators', OPERATOR_PIECES], ['brackets', BRACKET_PIECES]] as const) {
      const batch = cases(seed, rounds, pieces);
      const run = spawnSync('python3', ['-c', GLIBC], { input: JSON.stringify(batch), encoding: 'utf8', maxBuffer: 64 << 20 });
      if (run.status !== 0) {
        console.error(`python3 failed: ${run.error?.message ?? run.stderr}`);
        process.exit(2);
      }
      const answers = JSON.parse(run.stdout) as (boolean[] | null)[];
      const tally = new Map<string, number>();
      const differences: string[] = [];
      batch.forEach((testCase, i) => compare(testCase, answers[i]!, tally, differences));
      console.log(`seed ${seed} ${name}: ${[...tally].map(([what, n]) => `${what} ${n}`).join(', ')}`);
      for (const difference of differences) console.log(`  ${difference}`);
      failed ||= differences.length > 0;
    }
  }
  process.exit(failed ? 1 : 0);
}

main();
