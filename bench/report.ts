/**
 * Printing benchmark results: ops/s per task and ratios against named peers.
 */
import type { Bench } from 'tinybench' with { 'resolution-mode': 'import' };

export interface Figure {
  name: string;
  opsPerSecond: number;
  p50Us?: number;
  p99Us?: number;
}

/** ops/s (mean throughput) and latency percentiles of every task in a finished Bench. */
export function figures(bench: Bench): Figure[] {
  return bench.tasks.map((task) => {
    const result = task.result as unknown as {
      throughput?: { mean: number };
      latency?: { p50?: number; p99?: number };
      error?: unknown;
    };
    if (result?.error !== undefined) throw result.error;
    return {
      name: task.name,
      opsPerSecond: result?.throughput?.mean ?? 0,
      p50Us: result?.latency?.p50 !== undefined ? result.latency.p50 * 1000 : undefined,
      p99Us: result?.latency?.p99 !== undefined ? result.latency.p99 * 1000 : undefined,
    };
  });
}

export function printFigures(title: string, list: Figure[]): void {
  process.stdout.write(`\n${title}\n`);
  const width = Math.max(...list.map((f) => f.name.length));
  for (const figure of list) {
    const latency =
      figure.p50Us !== undefined ? `   p50 ${figure.p50Us.toFixed(2)} µs   p99 ${(figure.p99Us ?? 0).toFixed(2)} µs` : '';
    process.stdout.write(`  ${figure.name.padEnd(width)}  ${Math.round(figure.opsPerSecond).toLocaleString('en-US').padStart(12)} ops/s${latency}\n`);
  }
}

/** Prints "a / b = ratio (target ≥ t)" and returns whether the target was met. */
export function printRatio(label: string, ours: Figure, peer: Figure, target: number): boolean {
  const ratio = ours.opsPerSecond / peer.opsPerSecond;
  const met = ratio >= target;
  process.stdout.write(`  ${label}: ${ratio.toFixed(2)}× ${peer.name} (target ≥ ${target}×) ${met ? 'MET' : 'NOT MET'}\n`);
  return met;
}

export function find(list: Figure[], name: string): Figure {
  const figure = list.find((f) => f.name === name);
  if (figure === undefined) throw new Error(`no benchmark figure named ${name}`);
  return figure;
}
