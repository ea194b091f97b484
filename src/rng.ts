/**
 * Seeded PRNG: the xorshift64* generator of llama2.c run.c (`random_u32`, `random_f32`), so
 * a seed above 0 gives the same coins as `run -s SEED`. It runs once per token, so BigInt is
 * fast enough and keeps the 64-bit arithmetic plain.
 */

const MASK64 = (1n << 64n) - 1n;
const MULTIPLIER = 0x2545f4914f6cdd1dn;

/** Replacement for state 0, the one state that xorshift never leaves (every draw would be 0). */
const ZERO_SEED_STATE = 0x9e3779b97f4a7c15n;

export class Rng {
  #state: bigint;

  /** Creates a generator. The seed is taken modulo 2^64, and seed 0 uses a fixed nonzero state. */
  constructor(seed: number | bigint) {
    const state = BigInt(seed) & MASK64;
    this.#state = state === 0n ? ZERO_SEED_STATE : state;
  }

  /** Returns the next 32-bit unsigned integer. */
  randomU32(): number {
    let state = this.#state;
    state ^= state >> 12n;
    state = (state ^ (state << 25n)) & MASK64;
    state ^= state >> 27n;
    this.#state = state;
    return Number(((state * MULTIPLIER) & MASK64) >> 32n);
  }

  /** Returns a float in [0, 1) with 24 random bits, exactly representable as float32. */
  randomF32(): number {
    return (this.randomU32() >>> 8) / 16777216;
  }
}
