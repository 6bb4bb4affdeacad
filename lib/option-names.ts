/**
 * Unknown option names. A misspelt option would otherwise be ignored silently (a `defaltTtl`
 * leaves records that never expire), so every options object Shoal takes is checked against
 * the names it knows, and the error names the closest one.
 */
import { invalidArgument } from './errors';

/**
 * Checks that every own enumerable property of `options` is one of `names`.
 * `where` names the object in the message ("namespaces[0].storage"); `elsewhere` maps names
 * valid at another level to where they belong, so that `open({ defaultTtl })` says where to
 * put it.
 * @throws ShoalError INVALID_ARGUMENT naming the first unknown property and the closest valid name.
 */
export function checkOptionNames(options: object, names: ReadonlySet<string>, where: string, elsewhere?: ReadonlyMap<string, string>): void {
  const unknown = firstUnknownName(options, names);
  if (unknown !== undefined) throw unknownOption(unknown, names, where, elsewhere);
}

/**
 * checkOptionNames for element `index` of the array `where` names ("entries[7]"). The name is
 * built only for the error: a batch checks every entry, and a string per entry costs a
 * batchPut about a tenth of its speed.
 */
export function checkElementOptionNames(options: object, names: ReadonlySet<string>, where: string, index: number): void {
  const unknown = firstUnknownName(options, names);
  if (unknown !== undefined) throw unknownOption(unknown, names, `${where}[${index}]`, undefined);
}

function firstUnknownName(options: object, names: ReadonlySet<string>): string | undefined {
  for (const name in options) {
    if (!names.has(name) && Object.prototype.hasOwnProperty.call(options, name)) return name;
  }
  return undefined;
}

function unknownOption(name: string, names: ReadonlySet<string>, where: string, elsewhere: ReadonlyMap<string, string> | undefined): Error {
  const shown = JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}...` : name);
  const moved = elsewhere?.get(name);
  if (moved !== undefined) return invalidArgument(`${where} has unknown option ${shown}: it belongs in ${moved}`);
  const closest = closestName(name, [...names]);
  const hint = closest !== undefined ? `did you mean "${closest}"?` : `the options are ${[...names].map((n) => `"${n}"`).join(', ')}`;
  return invalidArgument(`${where} has unknown option ${shown}; ${hint}`);
}

/**
 * The valid name nearest to `name` by edit distance (case-insensitive, a swap of neighbours
 * counting one), or undefined when none is within a third of the name's length (at least 2).
 */
export function closestName(name: string, names: readonly string[]): string | undefined {
  const wanted = name.toLowerCase();
  const limit = Math.max(2, Math.floor(wanted.length / 3));
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const candidate of names) {
    const distance = editDistance(wanted, candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Damerau-Levenshtein distance (optimal string alignment); names are short, so O(n*m) is fine. */
function editDistance(a: string, b: string): number {
  if (a.length > 200 || b.length > 200) return Math.max(a.length, b.length);
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let distance = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) distance = Math.min(distance, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = distance;
    }
  }
  return rows[a.length]![b.length]!;
}
