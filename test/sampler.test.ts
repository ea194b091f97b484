import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { DormantError, OptionError } from "../src/errors.js";
import { Rng } from "../src/rng.js";
import { Sampler, argmax, validateSamplerOptions, type SamplerOptions } from "../src/sampler.js";

const logitsPath = fileURLToPath(new URL("../../shared/reference/logits/once_upon_a_time_16x512.f32", import.meta.url));
const logitsBytes = readFileSync(logitsPath);
/** 16 rows of real stories260K logits, [16][512] float32. */
const rows = Array.from({ length: 16 }, (_, row) => new Float32Array(logitsBytes.buffer.slice(logitsBytes.byteOffset + row * 2048, logitsBytes.byteOffset + (row + 1) * 2048)));

/**
 * Ids picked by a C program with the sampling functions of llama2.c run.c (sample, softmax,
 * sample_topp, sample_mult, random_f32), built with gcc 12.2 and glibc 2.36. Draw d uses
 * rows[d % 16], and each line is one sampler.
 */
const runC: { temperature: number; topP: number; seed: number; ids: number[] }[] = [
  { temperature: 1.0, topP: 0.9, seed: 133742, ids: [403, 407, 261, 378, 432, 383, 286, 261, 376, 268, 315, 421, 395, 317, 426, 338, 403, 407, 261, 378, 432, 383, 286, 261, 268, 298, 315, 421, 395, 317, 426, 338, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 403, 407, 261, 378, 432, 383, 286, 261, 268, 298, 315, 421, 395, 317, 426, 338] },
  { temperature: 3.0, topP: 0.9, seed: 133742, ids: [328, 395, 447, 323, 383, 329, 334, 261, 259, 322, 425, 421, 443, 368, 265, 338, 403, 383, 453, 378, 432, 322, 404, 272, 337, 298, 315, 412, 393, 301, 426, 395, 403, 413, 404, 378, 267, 282, 318, 311, 376, 298, 268, 421, 395, 317, 329, 321, 385, 281, 286, 471, 432, 318, 405, 261, 404, 410, 315, 306, 395, 392, 381, 432] },
  { temperature: 8.0, topP: 0.9, seed: 5, ids: [441, 352, 293, 471, 443, 365, 401, 439, 372, 386, 467, 276, 266, 317, 276, 466, 165, 304, 462, 317, 370, 262, 349, 383, 335, 341, 279, 480, 273, 116, 302, 446, 385, 407, 356, 150, 426, 321, 449, 398, 488, 273, 256, 395, 399, 286, 128, 440, 449, 419, 457, 345, 296, 287, 384, 480, 270, 365, 344, 44, 401, 421, 432, 335] },
  { temperature: 8.0, topP: 1.0, seed: 5, ids: [262, 370, 356, 321, 192, 269, 129, 259, 383, 437, 407, 223, 395, 28, 349, 253, 457, 435, 447, 332, 323, 275, 293, 242, 371, 392, 361, 425, 285, 511, 376, 311, 20, 20, 448, 442, 120, 280, 399, 338, 445, 349, 484, 379, 289, 267, 493, 347, 482, 336, 425, 389, 358, 407, 223, 390, 264, 329, 404, 508, 263, 301, 144, 213] },
  { temperature: 5.0, topP: 0.5, seed: 12345, ids: [321, 334, 261, 324, 432, 261, 274, 350, 401, 262, 277, 412, 395, 317, 381, 342, 403, 357, 263, 378, 331, 335, 278, 352, 281, 263, 395, 421, 280, 320, 426, 317, 385, 407, 261, 337, 268, 353, 268, 393, 318, 318, 315, 412, 417, 263, 418, 346, 291, 282, 312, 300, 383, 270, 298, 272, 374, 261, 325, 421, 417, 392, 426, 385] },
  { temperature: 2.0, topP: 0.95, seed: 99, ids: [403, 373, 358, 378, 432, 261, 286, 261, 270, 298, 315, 421, 395, 317, 397, 385, 317, 407, 261, 378, 432, 383, 286, 397, 268, 298, 347, 421, 395, 405, 426, 338, 403, 407, 261, 378, 348, 383, 382, 261, 398, 268, 315, 421, 392, 392, 404, 405, 403, 407, 297, 378, 432, 322, 382, 261, 419, 298, 315, 421, 273, 317, 279, 338] },
];

/** Asserts that `run` throws an OptionError with exactly `message`. */
function expectOptionError(run: () => unknown, message: string): void {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(OptionError);
  expect((caught as Error).message).toBe(message);
}

/** Returns how often each id is drawn in `draws` samples, as fractions. */
function frequencies(sampler: Sampler, logits: Float32Array, draws: number): number[] {
  const counts = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < draws; i++) counts[sampler.sample(logits)]++;
  return counts.map((count) => count / draws);
}

function softmax(logits: ArrayLike<number>, temperature = 1): number[] {
  const scaled = Array.from(logits, (x) => x / temperature);
  const max = Math.max(...scaled);
  const exps = scaled.map((x) => Math.exp(x - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((x) => x / sum);
}

describe("Rng", () => {
  // Values printed by llama2.c's random_u32 and random_f32, compiled with gcc.
  it("xorshift64* u32", () => {
    const cases: [number | bigint, number[]][] = [
      [133742, [3033531262, 2674377904, 2312864567, 2287415643]],
      [1, [1206177355, 2882512552, 3117485455, 1303648416]],
      [42, [1456360119, 3359763283, 3393612768, 4054632243]],
      [0xffffffffffffffffn, [4180462053, 2415166680, 879531507, 3310800028]],
    ];
    for (const [seed, expected] of cases) {
      const rng = new Rng(seed);
      expect(expected.map(() => rng.randomU32())).toEqual(expected);
    }
  });

  it("xorshift64* f32", () => {
    const rng = new Rng(133742);
    const expected = [0.706299007, 0.622677088, 0.538505733, 0.532580435].map(Math.fround);
    expect(expected.map(() => rng.randomF32())).toEqual(expected);
  });

  it("seed 0 is not stuck", () => {
    const rng = new Rng(0);
    expect([rng.randomU32(), rng.randomU32()]).toEqual([226735074, 1422150777]);
  });

  it("number and bigint seeds agree", () => {
    const a = new Rng(123456789);
    const b = new Rng(123456789n);
    for (let i = 0; i < 10; i++) expect(a.randomU32()).toBe(b.randomU32());
  });
});

describe("validateSamplerOptions", () => {
  it("defaults", () => {
    const before = Date.now();
    const options = validateSamplerOptions();
    expect(options).toMatchObject({ temperature: 0.8, topK: 0, topP: 0.9, minP: 0, repetitionPenalty: 1, repetitionWindow: 64 });
    expect(options.seed).toBeGreaterThanOrEqual(before);
    expect(options.seed).toBeLessThanOrEqual(Date.now());
  });

  it("keeps valid values", () => {
    const options = validateSamplerOptions({ temperature: 0, topK: 40, topP: 1, minP: 0.05, repetitionPenalty: 1.1, repetitionWindow: 0, seed: 7n });
    expect(options).toEqual({ temperature: 0, topK: 40, topP: 1, minP: 0.05, repetitionPenalty: 1.1, repetitionWindow: 0, seed: 7n });
  });

  const bad: [SamplerOptions, string][] = [
    [{ temperature: -0.1 }, "option temperature is -0.1, expected a finite number ≥ 0 (0 = greedy)"],
    [{ temperature: Infinity }, "option temperature is Infinity, expected a finite number ≥ 0 (0 = greedy)"],
    [{ temperature: "hot" as unknown as number }, 'option temperature is "hot" (a string), expected a finite number ≥ 0 (0 = greedy)'],
    [{ topK: 1.5 }, "option topK is 1.5, expected an integer ≥ 0 (0 = off)"],
    [{ topK: -1 }, "option topK is -1, expected an integer ≥ 0 (0 = off)"],
    [{ topP: 1.5 }, "option topP is 1.5, expected a number in (0, 1]"],
    [{ topP: 0 }, "option topP is 0, expected a number in (0, 1]"],
    [{ topP: NaN }, "option topP is NaN, expected a number in (0, 1]"],
    [{ minP: 1 }, "option minP is 1, expected a number in [0, 1) (0 = off)"],
    [{ minP: -0.01 }, "option minP is -0.01, expected a number in [0, 1) (0 = off)"],
    [{ repetitionPenalty: 0 }, "option repetitionPenalty is 0, expected a finite number > 0 (1 = off)"],
    [{ repetitionPenalty: Infinity }, "option repetitionPenalty is Infinity, expected a finite number > 0 (1 = off)"],
    [{ repetitionWindow: 2.5 }, "option repetitionWindow is 2.5, expected an integer ≥ 0"],
    [{ repetitionWindow: null as unknown as number }, "option repetitionWindow is null, expected an integer ≥ 0"],
    [{ seed: -1 }, "option seed is -1, expected an integer in [0, 2^53) or a bigint in [0, 2^64)"],
    [{ seed: 1.5 }, "option seed is 1.5, expected an integer in [0, 2^53) or a bigint in [0, 2^64)"],
    [{ seed: 2 ** 53 }, "option seed is 9007199254740992, expected an integer in [0, 2^53) or a bigint in [0, 2^64)"],
    [{ seed: "7" as unknown as number }, 'option seed is "7" (a string), expected an integer in [0, 2^53) or a bigint in [0, 2^64)'],
    [{ seed: -1n }, "option seed is -1n, expected an integer in [0, 2^64)"],
    [{ seed: 2n ** 64n }, "option seed is 18446744073709551616n, expected an integer in [0, 2^64)"],
  ];
  for (const [options, message] of bad) {
    const [name, value] = Object.entries(options)[0];
    it(`${name} ${typeof value === "bigint" ? `${value}n` : typeof value === "string" ? `"${value}"` : String(value)}`, () => {
      expectOptionError(() => validateSamplerOptions(options), `generate: ${message}`);
    });
  }

  it("where names the caller", () => {
    expectOptionError(() => validateSamplerOptions({ topP: 2 }, "chat"), "chat: option topP is 2, expected a number in (0, 1]");
    expectOptionError(() => new Sampler({ topK: -2 }, 512), "Sampler: option topK is -2, expected an integer ≥ 0 (0 = off)");
  });

  it("Sampler rejects unknown keys", () => {
    expectOptionError(
      () => new Sampler({ topp: 0.5 } as SamplerOptions, 512),
      "Sampler: option topp is not known, expected one of: temperature, topK, topP, minP, repetitionPenalty, repetitionWindow, seed (did you mean topP?)",
    );
  });

  it("Sampler vocabSize string quoted", () => {
    expectOptionError(() => new Sampler({}, "512" as unknown as number), 'Sampler: argument vocabSize: vocabSize is "512" (a string), expected an integer ≥ 1');
  });
});

describe("Sampler", () => {
  it("greedy picks argmax", () => {
    const sampler = new Sampler({ temperature: 0, seed: 1 }, 512);
    for (const row of rows) expect(sampler.sample(row)).toBe(argmax(row));
    expect(new Sampler({ temperature: 0 }, 4).sample(Float32Array.of(1, 5, 5, 2))).toBe(1);
  });

  it("non-finite logits throw", () => {
    const nan = new Float32Array(4).fill(Number.NaN);
    const message = "Sampler.sample: argument logits: the chosen token's value is NaN, expected finite logits";
    for (const options of [{ temperature: 0 }, { temperature: 1, seed: 3 }, { temperature: 1, topP: 0.9, seed: 3 }]) {
      const sampler = new Sampler(options, 4);
      expect(() => sampler.sample(nan), JSON.stringify(options)).toThrow(DormantError);
      expect(() => sampler.sample(nan), JSON.stringify(options)).toThrow(message);
    }
    expect(() => new Sampler({ temperature: 0 }, 3).sample(Float32Array.of(1, Number.POSITIVE_INFINITY, 2))).toThrow("value is Infinity");
  });

  it("matches llama2.c run.c", () => {
    for (const { temperature, topP, seed, ids } of runC) {
      const sampler = new Sampler({ temperature, topP, seed }, 512);
      expect(ids.map((_, d) => sampler.sample(rows[d % 16]))).toEqual(ids);
    }
  });

  it("top-k 1 equals greedy", () => {
    for (const temperature of [0.5, 1, 3]) {
      const sampler = new Sampler({ temperature, topK: 1, topP: 0.9, seed: 3 }, 512);
      for (const row of rows) expect(sampler.sample(row)).toBe(argmax(row));
    }
  });

  it("frequencies follow softmax", () => {
    const logits = Float32Array.of(1, 2, 0.5, -1, 3, 0);
    for (const temperature of [1, 0.5, 2]) {
      const sampler = new Sampler({ temperature, topP: 1, seed: 2024 }, logits.length);
      const seen = frequencies(sampler, logits, 40_000);
      softmax(logits, temperature).forEach((p, id) => expect(Math.abs(seen[id] - p)).toBeLessThan(0.01));
    }
  });

  it("top-k keeps the k largest", () => {
    const logits = Float32Array.of(1, 2, 0.5, -1, 3, 0);
    const seen = frequencies(new Sampler({ temperature: 1, topK: 2, topP: 1, seed: 11 }, 6), logits, 20_000);
    const [p1, p4] = softmax([2, 3]);
    expect(seen.filter((_, id) => id !== 1 && id !== 4).every((f) => f === 0)).toBe(true);
    expect(Math.abs(seen[1] - p1)).toBeLessThan(0.01);
    expect(Math.abs(seen[4] - p4)).toBeLessThan(0.01);
  });

  it("top-k ties keep lowest ids", () => {
    const logits = Float32Array.of(0, 1, 1, 1, 0);
    const seen = frequencies(new Sampler({ temperature: 1, topK: 2, topP: 1, seed: 5 }, 5), logits, 4_000);
    expect(seen[3]).toBe(0);
    expect(seen[1] + seen[2]).toBe(1);
  });

  it("top-p drops the tail", () => {
    // Probabilities 0.5, 0.3, 0.15, 0.05: topP 0.7 keeps the first two (0.8 > 0.7).
    const logits = Float32Array.from([0.5, 0.3, 0.15, 0.05], Math.log);
    const seen = frequencies(new Sampler({ temperature: 1, topP: 0.7, seed: 8 }, 4), logits, 20_000);
    expect(seen[2] + seen[3]).toBe(0);
    expect(Math.abs(seen[0] - 0.5 / 0.8)).toBeLessThan(0.01);
  });

  it("min-p excludes low tokens", () => {
    // Probabilities 0.5, 0.3, 0.15, 0.05; minP 0.4 drops those below 0.2.
    const logits = Float32Array.from([0.5, 0.3, 0.15, 0.05], Math.log);
    const seen = frequencies(new Sampler({ temperature: 1, topP: 1, minP: 0.4, seed: 9 }, 4), logits, 20_000);
    expect(seen[2] + seen[3]).toBe(0);
    expect(Math.abs(seen[0] - 0.5 / 0.8)).toBeLessThan(0.01);
  });

  it("repetition penalty lowers repeated ids", () => {
    const logits = Float32Array.of(0, 3, 2.5, -1, -1.2);
    const greedy = new Sampler({ temperature: 0, repetitionPenalty: 2 }, 5);
    expect(greedy.sample(logits)).toBe(1);
    expect(greedy.sample(logits, [1])).toBe(2);
    expect(greedy.sample(logits, [1, 1, 1])).toBe(2);
    // Negative logits are multiplied: -1 × 2 = -2 falls below -1.2.
    const onlyNegative = Float32Array.of(-5, -1, -1.2);
    expect(new Sampler({ temperature: 0, repetitionPenalty: 2 }, 3).sample(onlyNegative, [1])).toBe(2);
    // An id older than the window is not penalized.
    const windowed = new Sampler({ temperature: 0, repetitionPenalty: 2, repetitionWindow: 2 }, 5);
    expect(windowed.sample(logits, [1, 0, 3])).toBe(1);
    expect(windowed.sample(logits, [0, 1, 3])).toBe(2);
  });

  it("penalty lowers frequency", () => {
    const logits = Float32Array.of(1, 1, 1);
    const sampler = new Sampler({ temperature: 1, topP: 1, repetitionPenalty: 3, seed: 4 }, 3);
    let hits = 0;
    for (let i = 0; i < 9_000; i++) if (sampler.sample(logits, [0]) === 0) hits++;
    // exp(1/3) / (exp(1/3) + 2e) ≈ 0.197 instead of 1/3.
    expect(Math.abs(hits / 9_000 - Math.exp(1 / 3) / (Math.exp(1 / 3) + 2 * Math.E))).toBeLessThan(0.015);
  });

  it("determinism for a seed", () => {
    const options: SamplerOptions = { temperature: 2, topP: 0.95, topK: 50, minP: 0.01, repetitionPenalty: 1.2, seed: 77 };
    const run = (seed: number): number[] => {
      const sampler = new Sampler({ ...options, seed }, 512);
      const history: number[] = [];
      for (let d = 0; d < 100; d++) history.push(sampler.sample(rows[d % 16], history));
      return history;
    };
    expect(run(77)).toEqual(run(77));
    expect(run(77)).not.toEqual(run(78));
  });

  it("input logits untouched", () => {
    const logits = rows[3].slice();
    const sampler = new Sampler({ temperature: 0.7, topK: 20, topP: 0.8, minP: 0.05, repetitionPenalty: 1.3, seed: 1 }, 512);
    for (let i = 0; i < 10; i++) sampler.sample(logits, [403, 407, 261]);
    expect(logits).toEqual(rows[3]);
  });

  it("tiny topP falls back to argmax", () => {
    const flat = new Float32Array(512);
    flat[200] = 1e-3;
    expect(new Sampler({ temperature: 1, topP: 1e-6, seed: 3 }, 512).sample(flat)).toBe(200);
  });

  it("tiny temperature overflow", () => {
    // 0.5 / 1e-40 overflows float32 to Infinity; the others become -Infinity.
    const sampler = new Sampler({ temperature: 1e-40, topP: 0.9, seed: 3 }, 4);
    expect(sampler.sample(Float32Array.of(-0.1, 0.5, -0.2, -3))).toBe(1);
  });

  it("logits length", () => {
    expectOptionError(
      () => new Sampler({ seed: 1 }, 512).sample(new Float32Array(10)),
      "Sampler.sample: argument logits: length is 10, expected 512 (vocab_size)",
    );
  });

  it("history id", () => {
    expectOptionError(
      () => new Sampler({ repetitionPenalty: 1.1, seed: 1 }, 512).sample(rows[0], [3, 900]),
      "Sampler.sample: argument history: token 1 is 900, expected an integer in [0, 511]",
    );
  });

  it("vocabSize", () => {
    expectOptionError(() => new Sampler({ seed: 1 }, 0), "Sampler: argument vocabSize: vocabSize is 0, expected an integer ≥ 1");
  });
});
