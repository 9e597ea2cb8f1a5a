import { createHash, randomInt } from 'node:crypto';

/** A source of uniform random integers. */
export interface Random {
  /** A uniform integer in [0, bound). */
  int(bound: number): number;
}

/** Unpredictable randomness from the operating system. */
export const systemRandom: Random = { int: (bound) => randomInt(bound) };

/**
 * A reproducible generator: the same seed string always yields the same sequence.
 * SHA-256 of the seed initialises sfc32; integers are drawn by rejection so that no value of
 * [0, bound) is favoured.
 * @example seededRandom('agent-007').int(1000)
 */
export const seededRandom = (seed: string): Random => {
  const digest = createHash('sha256').update(seed).digest();
  let a = digest.readUInt32LE(0);
  let b = digest.readUInt32LE(4);
  let c = digest.readUInt32LE(8);
  let d = digest.readUInt32LE(12);
  const next32 = () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 12; i++) next32();
  return {
    int(bound) {
      if (!Number.isInteger(bound) || bound < 1 || bound > 2 ** 32) {
        throw new RangeError(`bound must be an integer from 1 to 2^32, got ${bound}`);
      }
      const limit = 2 ** 32 - (2 ** 32 % bound);
      for (;;) {
        const value = next32();
        if (value < limit) return value % bound;
      }
    },
  };
};
