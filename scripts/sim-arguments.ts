/** Argument parsing shared by `npm run simulate` and `npm run simulate:long`. */

/** Parses `--seeds 1..50` or `--seeds 1,5,9`; throws on anything else. */
export function parseSeeds(text: string): number[] {
  const range = /^(\d+)\.\.(\d+)$/.exec(text);
  if (range !== null) {
    const [from, to] = [Number(range[1]), Number(range[2])];
    if (to < from) throw new Error(`--seeds ${text}: the range is empty`);
    return Array.from({ length: to - from + 1 }, (_, index) => from + index);
  }
  if (!/^\d+(,\d+)*$/.test(text)) throw new Error(`--seeds ${text}: expected A..B or a comma-separated list`);
  return text.split(',').map(Number);
}

/** The value of `flag` as a non-negative integer; throws naming both otherwise. */
export function parseInteger(flag: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new Error(`${flag} ${value}: expected a non-negative integer`);
  return Number(value);
}
