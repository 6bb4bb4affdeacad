/**
 * How long the JS thread goes without the event loop turning: a 1 ms timer notes the wall time
 * and the JS thread's own CPU time (from /proc/self/task/<pid>/schedstat) at every turn. The
 * CPU gap counts only the time the thread itself ran, so it does not grow when other processes
 * take the cores; the wall gap is reported beside it, and so is the garbage collectors' share
 * of the longest CPU gap (pauses V8 takes for the whole heap, the test's own objects included).
 */
import * as fs from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

export interface StallReport {
  /** Longest stretch of JS-thread CPU time between two turns of the event loop, ms. */
  cpuGapMs: number;
  /** Garbage-collection pauses (wall time) within that stretch, ms. */
  gcInGapMs: number;
  /** Longest wall-clock stretch between two turns, ms. */
  wallGapMs: number;
  turns: number;
}

function threadCpuNs(): number {
  const text = fs.readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8');
  return Number(text.slice(0, text.indexOf(' ')));
}

/** A full garbage collection now, so the garbage the test made before the work is not collected during it. */
function collectGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

/** Runs `work` while probing; resolves to its result and the longest gaps seen. */
export async function probeStalls<T>(work: () => Promise<T>): Promise<{ result: T; stalls: StallReport }> {
  collectGarbage();
  const pauses: { start: number; end: number }[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) pauses.push({ start: entry.startTime, end: entry.startTime + entry.duration });
  });
  observer.observe({ entryTypes: ['gc'] });
  let lastWall = performance.now();
  let lastCpu = threadCpuNs();
  let longest = { start: 0, end: 0 };
  const stalls: StallReport = { cpuGapMs: 0, gcInGapMs: 0, wallGapMs: 0, turns: 0 };
  const tick = (): void => {
    const wall = performance.now();
    const cpu = threadCpuNs();
    stalls.wallGapMs = Math.max(stalls.wallGapMs, wall - lastWall);
    if ((cpu - lastCpu) / 1e6 > stalls.cpuGapMs) {
      stalls.cpuGapMs = (cpu - lastCpu) / 1e6;
      longest = { start: lastWall, end: wall };
    }
    stalls.turns++;
    lastWall = wall;
    lastCpu = cpu;
  };
  const timer = setInterval(tick, 1);
  try {
    const result = await work();
    tick();
    // GC entries are delivered after the fact: one more turn lets the observer hear of the last ones.
    await new Promise((resolve) => setTimeout(resolve, 5));
    for (const pause of pauses) stalls.gcInGapMs += Math.max(0, Math.min(pause.end, longest.end) - Math.max(pause.start, longest.start));
    return { result, stalls };
  } finally {
    clearInterval(timer);
    observer.disconnect();
  }
}
