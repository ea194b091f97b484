import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { FormatError, OptionError } from "../src/errors.js";
import { splitDocuments } from "../src/eval/perplexity.js";
import { readModelFile } from "../src/formats/index.js";
import { createModel, type Model } from "../src/model.js";
import { tensorToF32 } from "../src/quant.js";
import {
  calibrate, collectActivations, cutoffForRecall, defaultRank, fitPredictor, fitSparsity, measureSparsity,
  thresholdForSparsity, type ActivationStatistics, type CalibrationProgress,
} from "../src/sparsity/calibrate.js";
import { readSparsity, writeSparsityGGUF, type SparsityData } from "../src/sparsity/format.js";
import type { ModelFile } from "../src/types.js";

const GGUF_PATH = fileURLToPath(new URL("../../shared/models/stories260K.gguf", import.meta.url));
const TEXT_PATH = fileURLToPath(new URL("../../shared/data/tinystories-valid-sample.txt", import.meta.url));
/** Tokens per half: about a third of each half, enough for quantiles to ±0.5% and a stable C. */
const TOKENS = 12000;

/** Rejoins stories into the corpus form that splitDocuments reads. */
function corpus(stories: string[]): string {
  return stories.map((story) => `${story}\n<|endoftext|>\n`).join("");
}

/** Returns deterministic values in [0, 1) from a linear congruential sequence. */
function pseudoRandom(length: number, seed: number): Float32Array {
  const values = new Float32Array(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    values[i] = state / 2 ** 32;
  }
  return values;
}

describe("defaultRank", () => {
  it("gives 8 for stories260K", () => {
    // 0.08 · 3 · 64 · 172 / (64 + 172) = 11.2, rounded down to a multiple of 4.
    expect(defaultRank(64, 172, true)).toBe(8);
  });

  it("scales with the model", () => {
    expect(defaultRank(288, 768, true)).toBe(48);
    expect(defaultRank(768, 2048, true)).toBe(132);
    expect(defaultRank(2048, 8192, true)).toBe(392);
  });

  it("is cheaper for non-gated FFNs", () => {
    expect(defaultRank(288, 768, false)).toBe(32);
  });

  it("stays within [4, dim]", () => {
    expect(defaultRank(16, 32, true)).toBe(4);
    expect(defaultRank(2, 8, true)).toBe(2);
  });
});

describe("thresholdForSparsity", () => {
  const values = pseudoRandom(10001, 3);
  const sorted = values.slice().sort();

  for (const sparsity of [0.01, 0.25, 0.5, 0.9, 0.99]) {
    it(`matches a sort at S = ${sparsity}`, () => {
      expect(thresholdForSparsity(values, sparsity)).toBe(sorted[Math.floor(sparsity * values.length)]);
    });
  }

  it("gives 0 at S = 0", () => {
    expect(thresholdForSparsity(values, 0)).toBe(0);
  });

  it("counts ReLU zeros as dormant", () => {
    // 60% exact zeros: at S = 0.5 the threshold is 0, at S = 0.8 it is above every zero.
    const relu = pseudoRandom(1000, 4).map((value, i) => (i % 5 < 3 ? 0 : value + 0.001));
    expect(thresholdForSparsity(relu, 0.5)).toBe(0);
    const threshold = thresholdForSparsity(relu, 0.8);
    expect(relu.filter((value) => value < threshold).length).toBe(800);
  });

  it("handles constant values", () => {
    expect(thresholdForSparsity(new Float32Array(5000).fill(0.25), 0.5)).toBe(0.25);
  });
});

describe("cutoffForRecall", () => {
  /** Finds the largest cutoff that reaches the recall by trying every score. */
  function bruteForce(scores: Float32Array, masses: Float32Array, recall: number): number {
    const total = masses.reduce((sum, mass) => sum + mass, 0);
    let best = 0;
    for (const candidate of scores) {
      let mass = 0;
      for (let i = 0; i < scores.length; i++) if (scores[i] >= candidate) mass += masses[i];
      if (mass >= recall * total && candidate > best) best = candidate;
    }
    return best;
  }

  for (const recall of [0.5, 0.9, 0.99, 1]) {
    it(`matches a brute force at recall ${recall}`, () => {
      const masses = pseudoRandom(2000, 5);
      const noise = pseudoRandom(2000, 6);
      const scores = masses.map((mass, i) => mass + 0.3 * noise[i]);
      expect(cutoffForRecall(scores, masses, recall)).toBe(bruteForce(scores, masses, recall));
    });
  }

  it("matches a brute force with ties", () => {
    const masses = pseudoRandom(500, 7);
    const scores = pseudoRandom(500, 8).map((value) => Math.round(value * 10) / 10);
    expect(cutoffForRecall(scores, masses, 0.95)).toBe(bruteForce(scores, masses, 0.95));
  });

  it("gives 0 without mass", () => {
    expect(cutoffForRecall(new Float32Array([0.5, 0.7]), new Float32Array(2), 0.99)).toBe(0);
    expect(cutoffForRecall(new Float32Array(0), new Float32Array(0), 0.99)).toBe(0);
  });
});

describe("calibrate on stories260K", () => {
  let file: ModelFile;
  let model: Model;
  let calibrationText: string;
  let heldOutText: string;
  let calibration: ActivationStatistics;
  let heldOut: ActivationStatistics;
  const fitted = new Map<number, SparsityData>();

  beforeAll(async () => {
    file = readModelFile(new Uint8Array(readFileSync(GGUF_PATH)), GGUF_PATH);
    model = await createModel(file);
    const stories = splitDocuments(readFileSync(TEXT_PATH, "utf8"));
    const half = Math.floor(stories.length / 2);
    calibrationText = corpus(stories.slice(0, half));
    heldOutText = corpus(stories.slice(half));
    calibration = await collectActivations(model, calibrationText, { maxTokens: TOKENS });
    heldOut = await collectActivations(model, heldOutText, { maxTokens: TOKENS });
    for (const sparsity of [0.25, 0.5, 0.75]) fitted.set(sparsity, await fitSparsity(calibration, file, { sparsity }));
  }, 60_000);

  it("collects every token", () => {
    expect(calibration.tokens).toBe(TOKENS);
    expect(calibration.layers).toHaveLength(5);
    expect(calibration.layers[0].magnitudes.length).toBe(calibration.samples * 172);
  });

  it("raises thresholds with S", () => {
    const [low, middle, high] = [0.25, 0.5, 0.75].map((sparsity) => fitted.get(sparsity)!.thresholds);
    for (let l = 0; l < 5; l++) {
      expect(low[l]).toBeGreaterThan(0);
      expect(middle[l]).toBeGreaterThan(low[l]);
      expect(high[l]).toBeGreaterThan(middle[l]);
    }
  });

  it("hits S = 0.5 on the calibration text", () => {
    const data = fitted.get(0.5)!;
    calibration.layers.forEach((layer, l) => {
      const below = layer.magnitudes.filter((magnitude) => magnitude < data.thresholds[l]).length;
      expect(Math.abs(below / layer.magnitudes.length - 0.5)).toBeLessThan(0.01);
    });
  });

  it("reaches the recall on the calibration text", () => {
    for (const layer of measureSparsity(calibration, fitted.get(0.5)!)) expect(layer.recall).toBeGreaterThanOrEqual(0.99);
  });

  it("keeps recall and sparsity on held-out text", () => {
    // Measured with 12000 tokens: recall 0.9895 to 0.9901 per layer, sparsity 0.4966 to 0.4998.
    for (const layer of measureSparsity(heldOut, fitted.get(0.5)!)) {
      expect(layer.recall).toBeGreaterThanOrEqual(0.98);
      expect(Math.abs(layer.sparsity - 0.5)).toBeLessThan(0.02);
    }
  });

  it("reproduces the gate at full rank", () => {
    const { dim, hidden_dim } = calibration;
    for (let l = 0; l < 5; l++) {
      const weights = tensorToF32(file.tensors.get(`blk.${l}.ffn_gate.weight`)!);
      const { down, up } = fitPredictor(weights, calibration.layers[l].inputProducts, calibration.tokens, dim, hidden_dim, dim);
      let error = 0;
      let norm = 0;
      for (let t = 0; t < 200; t++) {
        const x = calibration.layers[l].inputs.subarray(t * dim, (t + 1) * dim);
        const z = Array.from({ length: dim }, (_, k) => x.reduce((sum, value, i) => sum + down[k * dim + i] * value, 0));
        for (let j = 0; j < hidden_dim; j++) {
          const exact = x.reduce((sum, value, i) => sum + weights[j * dim + i] * value, 0);
          const predicted = z.reduce((sum, value, k) => sum + up[j * dim + k] * value, 0);
          error += (predicted - exact) ** 2;
          norm += exact ** 2;
        }
      }
      expect(Math.sqrt(error / norm)).toBeLessThan(1e-5);
    }
  });

  it("is deterministic", async () => {
    const again = await fitSparsity(calibration, file, { sparsity: 0.5 });
    expect(again).toEqual(fitted.get(0.5));
  });

  it("survives the file round trip", () => {
    const data = fitted.get(0.5)!;
    const written = readModelFile(writeSparsityGGUF(file, data, { type: "q8_0" }), "calibrated.gguf");
    const read = readSparsity(written)!;
    expect(read.thresholds).toEqual(data.thresholds);
    expect(read.cutoffs).toEqual(data.cutoffs);
    // The runtime quantizes P_down to Q8_0 either way, so the recall is the same.
    const before = measureSparsity(heldOut, data);
    const after = measureSparsity(heldOut, read);
    after.forEach((layer, l) => expect(layer.recall).toBeCloseTo(before[l].recall, 6));
  });

  it("gives zero thresholds and cutoffs at S = 0", async () => {
    const phases = new Set<string>();
    let last: CalibrationProgress | undefined;
    const data = await calibrate(model, file, calibrationText, {
      sparsity: 0, maxTokens: 256, onProgress: (progress) => { phases.add(progress.phase); last = progress; },
    });
    expect(data.thresholds).toEqual(new Float32Array(5));
    expect(data.cutoffs).toEqual(new Float32Array(5));
    expect(data.rank).toBe(8);
    expect(data.recall).toBe(0.99);
    expect(data.activation).toBe("silu");
    expect(data.predictorDown[0].length).toBe(8 * 64);
    expect(data.predictorUp[0].length).toBe(172 * 8);
    expect([...phases]).toEqual(["collect", "fit"]);
    expect(last).toEqual({ phase: "fit", loaded: 5, total: 5 });
  });

  it("stops on abort", async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(calibrate(model, file, calibrationText, { sparsity: 0.5, maxTokens: 256, signal: controller.signal })).rejects.toThrow(/abort/i);
  });

  const optionCases: Array<[string, Record<string, unknown>, string]> = [
    ["sparsity above 0.99", { sparsity: 1.2 }, "calibrate: option sparsity is 1.2, expected a number in [0, 0.99]"],
    ["negative sparsity", { sparsity: -0.1 }, "calibrate: option sparsity is -0.1, expected a number in [0, 0.99]"],
    ["NaN sparsity", { sparsity: NaN }, "calibrate: option sparsity is NaN, expected a number in [0, 0.99]"],
    ["rank 0", { sparsity: 0.5, rank: 0 }, "calibrate: option rank is 0, expected an integer in [1, 64] (dim = 64)"],
    ["rank above dim", { sparsity: 0.5, rank: 65 }, "calibrate: option rank is 65, expected an integer in [1, 64] (dim = 64)"],
    ["fractional rank", { sparsity: 0.5, rank: 2.5 }, "calibrate: option rank is 2.5, expected an integer in [1, 64] (dim = 64)"],
    ["recall 0", { sparsity: 0.5, recall: 0 }, "calibrate: option recall is 0, expected a number in (0, 1]"],
    ["recall above 1", { sparsity: 0.5, recall: 1.5 }, "calibrate: option recall is 1.5, expected a number in (0, 1]"],
    ["maxTokens below the minimum", { sparsity: 0.5, maxTokens: 100 },
      "calibrate: option maxTokens is 100, expected an integer ≥ 256 (the fewest calibration tokens, max(4·dim, 256) for dim = 64)"],
  ];
  for (const [name, options, message] of optionCases) {
    it(`rejects ${name}`, async () => {
      const run = calibrate(model, file, calibrationText, options as { sparsity: number });
      await expect(run).rejects.toThrow(OptionError);
      await expect(calibrate(model, file, calibrationText, options as { sparsity: number })).rejects.toThrow(message);
    });
  }

  it("rejects a short text", async () => {
    const text = "Once upon a time, there was a cat.\n<|endoftext|>\nThe cat sat on a mat.\n<|endoftext|>\n";
    const run = () => calibrate(model, file, text, { sparsity: 0.5, source: "short.txt" });
    await expect(run()).rejects.toThrow(FormatError);
    await expect(run()).rejects.toThrow(/^calibrate: short\.txt: calibration tokens is \d+, expected at least 256 = max\(4·dim, 256\) for dim = 64 \(the text has 2 documents; use a longer calibration text\)$/);
  });

  it("rejects a file of another model", async () => {
    const other = { ...file, source: "other.gguf", config: { ...file.config, hidden_dim: 100 } };
    await expect(calibrate(model, other, calibrationText, { sparsity: 0.5 })).rejects.toThrow(
      "calibrate: other.gguf: hidden_dim is 100, expected 172, the model's value (pass the file that the model was loaded from)",
    );
  });
});
