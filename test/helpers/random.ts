/** Seeded floats in [0, 1) for randomized tests, from the simulator's generator, so a seed replays. */
import { SeededRandom } from '../../lib/cluster/seams';

export function seededFloats(seed: number): () => number {
  const source = new SeededRandom(seed);
  return () => source.nextFloat();
}
