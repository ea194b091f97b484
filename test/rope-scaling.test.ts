// RoPE scaling: linear scaling from metadata and per-pair frequency factors (rope_freqs.weight).

import { describe, expect, it } from "vitest";
import { convertToGGUF } from "../src/convert.js";
import { metadataEntries, parseGGUF, writeGGUF, GGUFValueType } from "../src/gguf.js";
import { readModelFile } from "../src/formats/index.js";
import { createModel } from "../src/model.js";
import { GGMLType, type ModelFile } from "../src/types.js";
import { syntheticModel } from "./helpers/synthetic.js";

const shape = { dim: 64, hidden_dim: 96, n_layers: 2, n_heads: 4, n_kv_heads: 2, activation: "silu" as const, gated: true };
const ids = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267];
/** head_size 16 rotates 8 pairs. */
const PAIRS = 8;

function withFactors(file: ModelFile, factor: number): ModelFile {
  const values = new Float32Array(PAIRS).fill(factor);
  const tensors = new Map(file.tensors);
  tensors.set("rope_freqs.weight", { name: "rope_freqs.weight", dims: [PAIRS], type: GGMLType.F32, data: new Uint8Array(values.buffer) });
  return { ...file, tensors };
}

function maxDifference(a: Float32Array[], b: Float32Array[]): number {
  let max = 0;
  for (let pos = 0; pos < a.length; pos++) for (let j = 0; j < a[pos].length; j++) max = Math.max(max, Math.abs(a[pos][j] - b[pos][j]));
  return max;
}

describe("rope scaling", () => {
  const file = syntheticModel(shape, 9);

  it("frequency factors of one change nothing", async () => {
    const plain = (await createModel(file, { precision: "f32" })).logits(ids);
    const ones = (await createModel(withFactors(file, 1), { precision: "f32" })).logits(ids);
    expect(maxDifference(plain, ones)).toBe(0);
  });

  it("factors of two equal linear scaling by two", async () => {
    const linear = (await createModel({ ...file, config: { ...file.config, rope_scaling_factor: 2 } }, { precision: "f32" })).logits(ids);
    const factors = (await createModel(withFactors(file, 2), { precision: "f32" })).logits(ids);
    const plain = (await createModel(file, { precision: "f32" })).logits(ids);
    expect(maxDifference(linear, factors)).toBeLessThan(1e-5);
    // and the scaling does change the logits after position 0
    expect(maxDifference(linear, plain)).toBeGreaterThan(1e-3);
  });

  it("reads linear scaling from GGUF metadata", () => {
    const gguf = parseGGUF(convertToGGUF(file, { type: "f32" }), "scaled.gguf");
    const metadata = metadataEntries(gguf.metadata);
    metadata.push({ key: "llama.rope.scaling.type", type: GGUFValueType.STRING, value: "linear" });
    metadata.push({ key: "llama.rope.scaling.factor", type: GGUFValueType.FLOAT32, value: 4 });
    const read = readModelFile(writeGGUF({ metadata, tensors: [...gguf.tensors.values()] }), "scaled.gguf");
    expect(read.config.rope_scaling_factor).toBe(4);
  });

  it("rejects an unsupported scaling type", () => {
    const gguf = parseGGUF(convertToGGUF(file, { type: "f32" }), "yarn.gguf");
    const metadata = metadataEntries(gguf.metadata);
    metadata.push({ key: "llama.rope.scaling.type", type: GGUFValueType.STRING, value: "yarn" });
    expect(() => readModelFile(writeGGUF({ metadata, tensors: [...gguf.tensors.values()] }), "yarn.gguf")).toThrow(
      'loadModel: yarn.gguf: metadata llama.rope.scaling.type is "yarn", expected "none" or "linear" (this RoPE scaling is not supported)');
  });

  it("rejects frequency factors of the wrong length", () => {
    const bad = withFactors(file, 1);
    bad.tensors.set("rope_freqs.weight", { name: "rope_freqs.weight", dims: [5], type: GGMLType.F32, data: new Uint8Array(20) });
    expect(() => readModelFile(convertToGGUF(bad, { type: "f32" }), "freqs.gguf")).toThrow(
      "loadModel: freqs.gguf: tensor rope_freqs.weight shape is [5], expected [8] from head_size / 2 = 8");
  });
});
