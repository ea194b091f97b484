// SwiGLU, ReGLU, ReLU and GELU FFNs through the dense and the sparse path.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { convertToGGUF } from "../src/convert.js";
import { evaluate } from "../src/eval/perplexity.js";
import { readModelFile } from "../src/formats/index.js";
import { createModel } from "../src/model.js";
import { calibrate } from "../src/sparsity/calibrate.js";
import { syntheticModel, type SyntheticShape } from "./helpers/synthetic.js";

const TEXT = fileURLToPath(new URL("../../shared/data/tinystories-valid-sample.txt", import.meta.url));
const text = readFileSync(TEXT, "utf8").slice(0, 40_000);

const base = { dim: 64, hidden_dim: 160, n_layers: 2, n_heads: 4, n_kv_heads: 2 };
const variants: Array<[string, SyntheticShape]> = [
  ["SwiGLU", { ...base, activation: "silu", gated: true }],
  ["ReGLU", { ...base, activation: "relu", gated: true }],
  ["ReLU", { ...base, activation: "relu", gated: false }],
  ["GELU", { ...base, activation: "gelu", gated: false }],
];
const ids = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315];

/** Cosine similarity of two logit rows. */
function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let normA = 0;
  let normB = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    normA += a[i] * a[i];
    normB += b[i] * b[i];
  }
  return dot / Math.sqrt(normA * normB);
}

describe.each(variants)("%s FFN", (name, shape) => {
  const file = syntheticModel(shape, 3);

  it("survives a GGUF round trip", () => {
    const bytes = convertToGGUF(file, { type: "f32" });
    const read = readModelFile(bytes, `${name}.gguf`);
    expect(read.config.activation).toBe(shape.activation);
    expect(read.config.gated).toBe(shape.gated);
  });

  it("int8 logits follow f32 logits", async () => {
    const f32 = (await createModel(file, { precision: "f32" })).logits(ids);
    const int8 = (await createModel(file, { precision: "int8" })).logits(ids);
    for (let pos = 0; pos < ids.length; pos++) expect(cosine(f32[pos], int8[pos]), `row ${pos}`).toBeGreaterThan(0.995);
  });

  it("keep-all through bundles equals the dense matrices", async () => {
    const dense = (await createModel(file, { sparsity: null })).logits(ids);
    const bundled = await createModel(file, { bundles: true });
    bundled.setMode("oracle");
    bundled.setThresholds(new Float32Array(shape.n_layers));
    const sparse = bundled.logits(ids);
    for (let pos = 0; pos < ids.length; pos++) expect(Array.from(sparse[pos]), `row ${pos}`).toEqual(Array.from(dense[pos]));
  });

  it("calibrates and runs predicted mode at S = 0.5", async () => {
    const model = await createModel(file, { sparsity: null });
    const data = await calibrate(model, file, text, { sparsity: 0.5 });
    const sparse = await createModel(file, { sparsity: data });
    expect(sparse.mode).toBe("predicted");
    const result = await evaluate(sparse, text, { maxTokens: 1500 });
    expect(Number.isFinite(result.perplexity)).toBe(true);
    for (const layer of sparse.layerStats()) {
      expect(layer.keptFraction).toBeGreaterThan(0.35);
      expect(layer.keptFraction).toBeLessThan(0.6);
    }
  });
});

describe("ReLU natural zeros", () => {
  it("count as dormant without any threshold", async () => {
    const file = syntheticModel({ ...base, activation: "relu", gated: false }, 5);
    const model = await createModel(file, { bundles: true });
    model.resetStats();
    model.logits(ids);
    for (const layer of model.layerStats()) {
      // random pre-activations are positive about half of the time
      expect(layer.keptFraction).toBeGreaterThan(0.3);
      expect(layer.keptFraction).toBeLessThan(0.7);
    }
  });

  it("gguf activation key with a bad value is rejected", async () => {
    const file = syntheticModel({ ...base, activation: "relu", gated: false }, 5);
    const bytes = convertToGGUF(file, { type: "f32" });
    // key, then the value type (u32) and the string length (u64), then the string
    const key = new TextEncoder().encode("dormant.ffn_activation");
    const at = Buffer.from(bytes).indexOf(Buffer.from(key)) + key.length + 4 + 8;
    bytes.set(new TextEncoder().encode("tanh"), at);
    expect(() => readModelFile(bytes, "bad.gguf")).toThrow(
      'loadModel: bad.gguf: metadata dormant.ffn_activation is "tanh", expected "silu", "relu" or "gelu"');
  });
});
