/** Seeded floats in [0, 1) for randomized tests, from the simulator's generator, so a seed replays. */
import { SeededRandom } from '../../lib/cluster/seams';

export function seededFloats(seed: number): () => number {
  const source = new SeededRandom(seed);
  return () => source.nextFloat();
}

/** `length` bytes from an xorshift32 stream seeded with `seed` (the same seed, the same bytes). */
export function seededBytes(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafeSlow(length);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = state & 0xff;
  }
  return out;
}
