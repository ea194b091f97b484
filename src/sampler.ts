/**
 * Picks the next token from logits. The steps run in this order:
 *
 *   repetition penalty → greedy (temperature 0) → temperature → top-k → softmax → min-p → top-p → draw
 *
 * With only temperature and topP set, the arithmetic is llama2.c run.c's `sample()` in float32
 * (Math.fround at every step, as the C code rounds), with one `random_f32` coin per token, so
 * `run -t 1.0 -p 0.9 -s 133742` picks the same ids from the same logits.
 * NOTE: Math.exp rounded to float32 and glibc's expf can differ by one ulp, which changes a
 * pick only when the coin falls within that ulp of a CDF step.
 */

import { DormantError, optionMismatch } from "./errors.js";
import { checkOptionKeys, describeValue } from "./options.js";
import { Rng } from "./rng.js";

const fround = Math.fround;

export interface SamplerOptions {
  /** Softmax temperature, where 0 picks the argmax. Default 0.8. */
  temperature?: number;
  /** Number of most likely tokens to keep, 0 for all. Default 0. */
  topK?: number;
  /** Nucleus sampling threshold: draw from the smallest set whose probability exceeds topP. Default 0.9. */
  topP?: number;
  /** Fraction of the max probability below which tokens are dropped, 0 for none. Default 0. */
  minP?: number;
  /** CTRL-style penalty on ids in the recent history, 1 for none. Default 1. */
  repetitionPenalty?: number;
  /** Number of latest history ids that the penalty applies to. Default 64. */
  repetitionWindow?: number;
  /** PRNG seed. Default: Date.now(). */
  seed?: number | bigint;
}

/** Keys of SamplerOptions for the unknown-key check. tsc rejects a list that differs from the interface. */
export const SAMPLER_OPTION_KEYS = {
  temperature: true, topK: true, topP: true, minP: true, repetitionPenalty: true, repetitionWindow: true, seed: true,
} as const satisfies Record<keyof SamplerOptions, true>;

export type ValidSamplerOptions = Required<SamplerOptions>;

/** Checks every option and fills in the defaults. Throws an OptionError that names the invalid option. */
export function validateSamplerOptions(options: SamplerOptions = {}, where = "generate"): ValidSamplerOptions {
  const fail = (name: string, value: unknown, expected: string): never =>
    optionMismatch(where, { source: `option ${name}`, field: name, actual: describeValue(value), expected });
  const number = (name: keyof SamplerOptions, fallback: number, ok: (v: number) => boolean, expected: string): number => {
    const value: unknown = options[name];
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !ok(value)) fail(name, value, expected);
    return value as number;
  };

  const temperature = number("temperature", 0.8, (v) => Number.isFinite(v) && v >= 0, "a finite number ≥ 0 (0 = greedy)");
  const topK = number("topK", 0, (v) => Number.isInteger(v) && v >= 0, "an integer ≥ 0 (0 = off)");
  const topP = number("topP", 0.9, (v) => v > 0 && v <= 1, "a number in (0, 1]");
  const minP = number("minP", 0, (v) => v >= 0 && v < 1, "a number in [0, 1) (0 = off)");
  const repetitionPenalty = number(
    "repetitionPenalty", 1, (v) => Number.isFinite(v) && v > 0, "a finite number > 0 (1 = off)",
  );
  const repetitionWindow = number("repetitionWindow", 64, (v) => Number.isInteger(v) && v >= 0, "an integer ≥ 0");

  let seed: number | bigint = Date.now();
  const rawSeed: unknown = options.seed;
  if (typeof rawSeed === "bigint") {
    if (rawSeed < 0n || rawSeed >= 1n << 64n) fail("seed", rawSeed, "an integer in [0, 2^64)");
    seed = rawSeed;
  } else if (rawSeed !== undefined) {
    if (typeof rawSeed !== "number" || !Number.isSafeInteger(rawSeed) || rawSeed < 0) {
      fail("seed", rawSeed, "an integer in [0, 2^53) or a bigint in [0, 2^64)");
    }
    seed = rawSeed as number;
  }
  return { temperature, topK, topP, minP, repetitionPenalty, repetitionWindow, seed };
}

export class Sampler {
  readonly options: ValidSamplerOptions;
  readonly vocabSize: number;
  readonly #rng: Rng;
  /** Scratch copy of the logits; the caller's array is never written. */
  readonly #probs: Float32Array;

  /** Creates a sampler for logits of `vocabSize` entries and validates the options. */
  constructor(options: SamplerOptions, vocabSize: number) {
    checkOptionKeys("Sampler", options, SAMPLER_OPTION_KEYS);
    this.options = validateSamplerOptions(options, "Sampler");
    if (!Number.isInteger(vocabSize) || vocabSize < 1) {
      optionMismatch("Sampler", { source: "argument vocabSize", field: "vocabSize", actual: describeValue(vocabSize), expected: "an integer ≥ 1" });
    }
    this.vocabSize = vocabSize;
    this.#rng = new Rng(this.options.seed);
    this.#probs = new Float32Array(vocabSize);
  }

  /** Returns the next token id for `logits`. `history` contains the ids so far, for the penalty. */
  sample(logits: ArrayLike<number>, history: ArrayLike<number> = []): number {
    const n = this.vocabSize;
    if (logits.length !== n) {
      optionMismatch("Sampler.sample", {
        source: "argument logits", field: "length", actual: String(logits.length), expected: `${n} (vocab_size)`,
      });
    }
    const { temperature, topK, topP, minP, repetitionPenalty, repetitionWindow } = this.options;
    const x = this.#probs;
    x.set(logits);

    if (repetitionPenalty !== 1 && repetitionWindow > 0) {
      applyRepetitionPenalty(x, history, repetitionPenalty, repetitionWindow);
    }
    if (temperature === 0) return requireFinite(x, argmax(x));
    const t = fround(temperature);
    for (let i = 0; i < n; i++) x[i] = x[i] / t;
    if (topK > 0 && topK < n) keepTopK(x, topK);
    softmax(x);
    const coin = this.#rng.randomF32();
    if (minP > 0) applyMinP(x, minP);
    return requireFinite(x, topP < 1 ? sampleTopP(x, topP, coin) : sampleMult(x, coin));
  }
}

/**
 * Returns `id` when x[id], the chosen logit or probability, is finite. Every comparison with NaN
 * is false, so with NaN logits sampling would pick token 0 again and again, without an error.
 */
function requireFinite(x: Float32Array, id: number): number {
  if (Number.isFinite(x[id])) return id;
  throw new DormantError(
    `Sampler.sample: argument logits: the chosen token's value is ${x[id]}, expected finite logits (activations overflowed in the model)`,
    { source: "argument logits", field: "logits", actual: String(x[id]), expected: "finite" },
  );
}

/** Returns the index of the largest value, the lowest index on ties (run.c sample_argmax). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Divides positive logits of recently seen ids by the penalty and multiplies negative ones (CTRL). */
function applyRepetitionPenalty(x: Float32Array, history: ArrayLike<number>, penalty: number, window: number): void {
  const seen = new Set<number>();
  for (let i = Math.max(0, history.length - window); i < history.length; i++) {
    const id = history[i];
    if (!Number.isInteger(id) || id < 0 || id >= x.length) {
      optionMismatch("Sampler.sample", {
        source: "argument history", field: `token ${i}`, actual: String(id), expected: `an integer in [0, ${x.length - 1}]`,
      });
    }
    if (seen.has(id)) continue;
    seen.add(id);
    x[id] = x[id] > 0 ? x[id] / penalty : x[id] * penalty;
  }
}

/** Sets all but the k largest logits to -Infinity; ties at the cut keep the lowest ids. */
function keepTopK(x: Float32Array, k: number): void {
  const sorted = x.slice().sort();
  const threshold = sorted[x.length - k];
  let above = 0;
  for (let i = 0; i < x.length; i++) if (x[i] > threshold) above++;
  let tiesLeft = k - above;
  for (let i = 0; i < x.length; i++) {
    if (x[i] > threshold) continue;
    if (x[i] === threshold && tiesLeft > 0) tiesLeft--;
    else x[i] = -Infinity;
  }
}

/** Turns logits into probabilities in place, in float32 as run.c's softmax. */
function softmax(x: Float32Array): void {
  let max = x[0];
  for (let i = 1; i < x.length; i++) if (x[i] > max) max = x[i];
  if (max === Infinity) {
    // A tiny temperature can overflow float32, and then the infinite logits share all the mass.
    let count = 0;
    for (let i = 0; i < x.length; i++) if (x[i] === Infinity) count++;
    for (let i = 0; i < x.length; i++) x[i] = x[i] === Infinity ? 1 / count : 0;
    return;
  }
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    x[i] = Math.exp(fround(x[i] - max));
    sum = fround(sum + x[i]);
  }
  for (let i = 0; i < x.length; i++) x[i] = x[i] / sum;
}

/** Zeroes probabilities below minP times the largest and renormalizes the rest. */
function applyMinP(p: Float32Array, minP: number): void {
  let max = 0;
  for (let i = 0; i < p.length; i++) if (p[i] > max) max = p[i];
  const threshold = fround(fround(minP) * max);
  let sum = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] < threshold) p[i] = 0;
    else sum = fround(sum + p[i]);
  }
  for (let i = 0; i < p.length; i++) p[i] = p[i] / sum;
}

/** Draws by inverse CDF over all ids (run.c sample_mult); `coin` is in [0, 1). */
function sampleMult(p: Float32Array, coin: number): number {
  let cdf = 0;
  let last = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === 0) continue;
    cdf = fround(cdf + p[i]);
    if (coin < cdf) return i;
    last = i;
  }
  // Rounding left the total just below the coin. run.c returns n - 1 here, but top-k or
  // min-p may have removed that id, so take the last id still allowed.
  return last;
}

/**
 * Draws from the smallest set of most likely ids whose probability exceeds topP
 * (run.c sample_topp). Ids below (1 - topP) / (n - 1) cannot be in that set, so they are
 * dropped before sorting, as run.c does.
 */
function sampleTopP(p: Float32Array, topP: number, coin: number): number {
  const n = p.length;
  if (n === 1) return 0;
  const tp = fround(topP);
  const cutoff = fround(fround(1 - tp) / (n - 1));
  const candidates: number[] = [];
  for (let i = 0; i < n; i++) if (p[i] >= cutoff) candidates.push(i);
  // A topP below 1/n can leave nothing above the cutoff, where run.c reads out of bounds.
  if (candidates.length === 0) return argmax(p);
  // Array.prototype.sort is stable, so equal probabilities keep id order. The qsort of
  // glibc 2.36 (a merge sort) gives the same order.
  candidates.sort((a, b) => p[b] - p[a]);

  let cumulative = 0;
  let lastIndex = candidates.length - 1;
  for (let i = 0; i < candidates.length; i++) {
    cumulative = fround(cumulative + p[candidates[i]]);
    if (cumulative > tp) {
      lastIndex = i;
      break;
    }
  }
  const r = fround(coin * cumulative);
  let cdf = 0;
  for (let i = 0; i <= lastIndex; i++) {
    cdf = fround(cdf + p[candidates[i]]);
    if (r < cdf) return candidates[i];
  }
  return candidates[lastIndex];
}
