/**
 * The `xdr` simulator scenario (sim/xdr-simulation.ts; `npm run simulate -- --scenario xdr`):
 * clusters shipping to each other under cross-cluster faults and clock skew, through Shoal's
 * own XdrStore and hybrid clock, then the convergence, causality and conflict checkers. A short
 * run of seeds here; 200 seeds of each shape pass (docs/xdr.md, "Simulation").
 */
import { describe, expect, it } from 'vitest';
import { runXdrScenario } from '../sim/xdr-simulation';

describe('xdr simulator scenario', () => {
  it('two clusters active-active: 20 seeds converge, no causal loss, every concurrent loss counted', async () => {
    for (let seed = 1; seed <= 20; seed++) {
      const result = await runXdrScenario({ seed });
      expect(result.checks.filter((check) => !check.passed), `seed ${seed}`).toEqual([]);
      expect(result.writes).toBeGreaterThan(300);
      expect(result.faults.lost! + result.faults.duplicated! + result.faults.cut!).toBeGreaterThan(0);
    }
  }, 60_000);

  it('three clusters in a full mesh (versions forwarded): 10 seeds converge', async () => {
    for (let seed = 1; seed <= 10; seed++) {
      const result = await runXdrScenario({ seed, clusters: 3 });
      expect(result.checks.filter((check) => !check.passed), `seed ${seed}`).toEqual([]);
    }
  }, 60_000);

  it('a seed replays exactly', async () => {
    const [a, b] = [await runXdrScenario({ seed: 77 }), await runXdrScenario({ seed: 77 })];
    expect(b).toEqual(a);
  });
});
