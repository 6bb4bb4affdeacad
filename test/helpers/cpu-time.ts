/**
 * CPU time for bounds in tests: what a call costs this process, which other processes' load
 * does not stretch as it stretches wall time (the suite runs beside other test files on two
 * cores). A bound on it still fails where the work itself grows (an exponential backtrack, a
 * budget that is not enforced).
 */

/** Milliseconds of CPU (user + system) this process has used so far. */
export function cpuNowMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

