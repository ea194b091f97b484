// Sparse FFN over neuron bundles on stories260K, whose hidden_dim 172 leaves the last neuron block
// partial. Keeping every neuron must give the dense int8 logits bit for bit, and the neuron
// counters must follow τ and the candidate cutoff.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { readModelFile } from "../src/formats/index.js";
import { createModel, loadModel, type Model, type RuntimeSparsity } from "../src/model.js";
import { findBitMismatch } from "./q8-cases.js";
import { randomF32, seededRandom } from "./wasm-harness.js";

const GGUF = fileURLToPath(new URL("../../shared/models/stories260K.gguf", import.meta.url));
const TEXT = "Once upon a time, there was a little girl named Lily. She liked to play in the park with her dog.";
const POSITIONS = 16;
/** Rank of the random predictor: one block of 32 and a partial one, so rank_pad (64) differs from rank. */
const RANK = 40;

function expectSameLogits(actual: Float32Array[], expected: Float32Array[], label: string): void {
  expect(actual.length, `${label}: rows`).toBe(expected.length);
  for (let pos = 0; pos < expected.length; pos++) {
    expect(findBitMismatch(actual[pos], expected[pos]), `${label}: position ${pos}`).toBeUndefined();
  }
}

/** Returns a random predictor of rank RANK with the given per-layer thresholds and cutoffs. */
function randomSparsity(model: Model, threshold: number, cutoff: number): RuntimeSparsity {
  const { dim, hidden_dim, n_layers } = model.config;
  const random = seededRandom(42);
  return {
    rank: RANK,
    thresholds: new Float32Array(n_layers).fill(threshold),
    cutoffs: new Float32Array(n_layers).fill(cutoff),
    predictorDown: Array.from({ length: n_layers }, () => randomF32(random, RANK * dim, 0.2)),
    predictorUp: Array.from({ length: n_layers }, () => randomF32(random, hidden_dim * RANK, 0.2)),
  };
}

describe("sparse FFN on stories260K", () => {
  let dense: Model;
  let ids: number[];
  let expected: Float32Array[];

  beforeAll(async () => {
    dense = await loadModel(GGUF, { sparsity: null });
    ids = dense.tokenize(TEXT).slice(0, POSITIONS);
    expected = dense.logits(ids);
  });

  it("tokenizes enough positions", () => {
    expect(ids.length).toBe(POSITIONS);
  });

  it("keep-all equals dense", async () => {
    const bundled = await loadModel(GGUF, { bundles: true });
    expect(bundled.mode).toBe("dense");
    expectSameLogits(bundled.logits(ids), expected, "dense mode over bundles");

    bundled.setMode("oracle");
    bundled.setThresholds(new Array(bundled.config.n_layers).fill(0));
    bundled.resetStats();
    expectSameLogits(bundled.logits(ids), expected, "oracle mode, τ = 0");
    for (const [l, layer] of bundled.layerStats().entries()) {
      expect(layer.tokens, `layer ${l} tokens`).toBe(POSITIONS);
      expect(layer.candidateFraction, `layer ${l} candidates`).toBe(1);
    }
  });

  it("keep-all equals dense in predicted mode", async () => {
    const file = readModelFile(readFileSync(GGUF), GGUF);
    const predicted = await createModel(file, { sparsity: randomSparsity(dense, 0, 0) });
    expect(predicted.mode).toBe("predicted");
    predicted.resetStats();
    expectSameLogits(predicted.logits(ids), expected, "predicted mode, τ = 0, cutoff 0");
    for (const [l, layer] of predicted.layerStats().entries()) {
      expect(layer.candidateFraction, `layer ${l} candidates`).toBe(1);
    }
  });

  it("oracle with higher τ keeps fewer neurons", async () => {
    const bundled = await loadModel(GGUF, { bundles: true });
    bundled.setMode("oracle");
    const n_layers = bundled.config.n_layers;
    let previous = Array.from({ length: n_layers }, () => 1.0001);
    for (const threshold of [0, 0.05, 0.2, 1e9]) {
      bundled.setThresholds(new Array(n_layers).fill(threshold));
      bundled.resetStats();
      const logits = bundled.logits(ids);
      const layers = bundled.layerStats();
      for (const [l, layer] of layers.entries()) {
        expect(layer.candidateFraction, `τ ${threshold} layer ${l} candidates`).toBe(1);
        expect(layer.keptFraction, `τ ${threshold} layer ${l} kept`).toBeLessThan(previous[l]);
      }
      previous = layers.map((layer) => layer.keptFraction);
      if (threshold === 0) continue;
      expect(findBitMismatch(logits[POSITIONS - 1], expected[POSITIONS - 1]), `τ ${threshold} changes the logits`).toBeDefined();
    }
    for (const [l, kept] of previous.entries()) expect(kept, `layer ${l} kept with τ = 1e9`).toBe(0);
  });

  it("predicted with a higher cutoff has fewer candidates", async () => {
    const file = readModelFile(readFileSync(GGUF), GGUF);
    const predicted = await createModel(file, { sparsity: randomSparsity(dense, 0, 0) });
    const n_layers = predicted.config.n_layers;
    let previous = Array.from({ length: n_layers }, () => 1.0001);
    for (const cutoff of [0, 0.1, 0.5, 1e9]) {
      predicted.setThresholds(new Array(n_layers).fill(0), new Array(n_layers).fill(cutoff));
      predicted.resetStats();
      predicted.logits(ids);
      const layers = predicted.layerStats();
      for (const [l, layer] of layers.entries()) {
        expect(layer.candidateFraction, `cutoff ${cutoff} layer ${l}`).toBeLessThan(previous[l]);
        expect(layer.keptFraction, `cutoff ${cutoff} layer ${l} kept ≤ candidates`).toBeLessThanOrEqual(layer.candidateFraction);
      }
      previous = layers.map((layer) => layer.candidateFraction);
    }
    for (const [l, candidates] of previous.entries()) expect(candidates, `layer ${l} with cutoff 1e9`).toBe(0);
  });
});
