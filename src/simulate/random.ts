/**
 * Seeded pseudo-random numbers for the vLLM simulator, so that a seed and a
 * sequence of `advance` calls always produce the same workload.
 *
 * @module
 */

/**
 * Deterministic random source: xoshiro128** seeded through splitmix32.
 * Not suitable for anything security related.
 */
export class SeededRandom {
  #state: Uint32Array;
  #spareNormal: number | undefined;

  /** Creates a generator; equal seeds give equal sequences. */
  constructor(seed: number) {
    let mix = Math.trunc(seed) >>> 0;
    const nextMixed = (): number => {
      mix = (mix + 0x9e3779b9) >>> 0;
      let z = mix;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#state = new Uint32Array([
      nextMixed(),
      nextMixed(),
      nextMixed(),
      nextMixed(),
    ]);
  }

  /** Returns the next unsigned 32-bit integer. */
  nextUint32(): number {
    const s = this.#state;
    const s0 = s[0]!;
    const s1 = s[1]!;
    const result = Math.imul(rotateLeft(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    s[2] = s[2]! ^ s0;
    s[3] = s[3]! ^ s1;
    s[1] = s1 ^ s[2]!;
    s[0] = s0 ^ s[3]!;
    s[2] = s[2]! ^ t;
    s[3] = rotateLeft(s[3]!, 11);
    return result;
  }

  /** Returns a uniform number in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Returns an integer uniformly drawn from [min, max], both inclusive. */
  integer(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** Returns true with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** Draws from an exponential distribution with the given mean. */
  exponential(mean: number): number {
    return -mean * Math.log(1 - this.next());
  }

  /** Draws from the standard normal distribution (Box-Muller). */
  normal(): number {
    if (this.#spareNormal !== undefined) {
      const spare = this.#spareNormal;
      this.#spareNormal = undefined;
      return spare;
    }
    const radius = Math.sqrt(-2 * Math.log(1 - this.next()));
    const angle = 2 * Math.PI * this.next();
    this.#spareNormal = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  }

  /** Draws from a log-normal distribution given its median and the sigma of its logarithm. */
  logNormal(median: number, sigma: number): number {
    return median * Math.exp(sigma * this.normal());
  }

  /** Picks one value; each entry's chance is its weight over the sum of weights. */
  weighted<T>(entries: readonly (readonly [T, number])[]): T {
    const total = entries.reduce((sum, [, weight]) => sum + weight, 0);
    let remaining = this.next() * total;
    for (const [value, weight] of entries) {
      remaining -= weight;
      if (remaining < 0) {
        return value;
      }
    }
    const last = entries[entries.length - 1];
    if (last === undefined) {
      throw new RangeError("Cannot pick from an empty list of weighted values");
    }
    return last[0];
  }
}

function rotateLeft(value: number, bits: number): number {
  return ((value << bits) | (value >>> (32 - bits))) >>> 0;
}
