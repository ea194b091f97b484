// Weights that are NaN or infinite are rejected at load with the tensor's name, in every
// placement path: f32, quantized at load, Q8_0 from the file, and FFN bundles. Finite weights so
// large that the activations overflow give non-finite logits, which eval rejects.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { convertToGGUF } from "../src/convert.js";
import { DormantError, FormatError } from "../src/errors.js";
import { evaluate } from "../src/eval/perplexity.js";
import { readModelFile } from "../src/formats/index.js";
import { loadModel, type LoadOptions } from "../src/model.js";
import { firstNonFinite } from "../src/placement.js";
import { writeSparsityGGUF } from "../src/sparsity/format.js";
import { GGMLType } from "../src/types.js";

const GGUF = fileURLToPath(new URL("../../shared/models/stories260K.gguf", import.meta.url));

/** Returns a copy of the file's bytes and the bytes of one of its tensors inside that copy. */
function copyWithTensor(bytes: Uint8Array, name: string): { file: Uint8Array; tensor: Uint8Array; type: GGMLType } {
  const file = bytes.slice();
  const tensor = readModelFile(file, "copy.gguf").tensors.get(name);
  if (!tensor) throw new Error(`test setup: tensor ${name} not found`);
  return { file, tensor: tensor.data, type: tensor.type };
}

describe("firstNonFinite", () => {
  it.each([
    [[], -1],
    [[0, -1.5, 3e38], -1],
    [[1, Number.NaN, 2], 1],
    [[Number.POSITIVE_INFINITY], 0],
    [[1, 2, Number.NEGATIVE_INFINITY], 2],
  ])("%j gives %i", (values, expected) => {
    expect(firstNonFinite(new Float32Array(values))).toBe(expected);
  });
});

describe("non-finite weights", () => {
  const original = new Uint8Array(readFileSync(GGUF));

  it.each<[string, LoadOptions]>([
    ["f32", { precision: "f32" }],
    ["int8", { precision: "int8" }],
    ["int8 bundles", { precision: "int8", bundles: true }],
  ])("F32 file, %s, names the tensor", async (_name, options) => {
    const { file, tensor, type } = copyWithTensor(original, "blk.4.ffn_up.weight");
    expect(type).toBe(GGMLType.F32);
    const values = new Float32Array(tensor.buffer, tensor.byteOffset, tensor.byteLength / 4);
    values.fill(Number.NaN, 10, 13);

    const load = loadModel(file, options);
    await expect(load).rejects.toThrow(FormatError);
    await expect(load).rejects.toThrow(
      "tensor blk.4.ffn_up.weight has 3 non-finite values (the first, at index 10, is NaN), expected finite numbers",
    );
  });

  it("F32 norm vector with infinity", async () => {
    const { file, tensor } = copyWithTensor(original, "blk.0.attn_norm.weight");
    new Float32Array(tensor.buffer, tensor.byteOffset, tensor.byteLength / 4)[5] = Number.NEGATIVE_INFINITY;

    await expect(loadModel(file)).rejects.toThrow(
      "tensor blk.0.attn_norm.weight has 1 non-finite value (the first, at index 5, is -Infinity)",
    );
  });

  it.each<[string, LoadOptions]>([
    ["int8", { precision: "int8" }],
    ["int8 bundles", { precision: "int8", bundles: true }],
  ])("Q8_0 file, infinite scale, %s", async (_name, options) => {
    const q8 = convertToGGUF(readModelFile(original, GGUF), { type: "q8_0" });
    const { file, tensor, type } = copyWithTensor(q8, "blk.2.ffn_gate.weight");
    expect(type).toBe(GGMLType.Q8_0);
    // the f16 scale of the second 34-byte block: 0x7c00 is +infinity
    new DataView(tensor.buffer, tensor.byteOffset).setUint16(34, 0x7c00, true);

    await expect(loadModel(file, options)).rejects.toThrow(
      "tensor blk.2.ffn_gate.weight has 1 non-finite block scale (the first, at index",
    );
  });

  it("predictor with NaN", async () => {
    const model = readModelFile(original.slice(), GGUF);
    const { dim, hidden_dim, n_layers } = model.config;
    const rank = 8;
    const layers = Array.from({ length: n_layers }, () => 0);
    const predictorUp = layers.map(() => new Float32Array(hidden_dim * rank).fill(0.01));
    predictorUp[1][7] = Number.NaN;
    const bytes = writeSparsityGGUF(model, {
      version: 1, sparsity: 0.5, rank, recall: 0.99, activation: "silu",
      thresholds: new Float32Array(n_layers).fill(0.01), cutoffs: new Float32Array(n_layers).fill(0.005),
      predictorDown: layers.map(() => new Float32Array(rank * dim).fill(0.02)), predictorUp,
    }, { type: "f32" });

    await expect(loadModel(bytes)).rejects.toThrow(
      "tensor blk.1.ffn_pred_up.weight has 1 non-finite value (the first, at index 7, is NaN)",
    );
  });

  it("unchanged file loads", async () => {
    const model = await loadModel(original.slice());
    expect(model.config.n_layers).toBeGreaterThan(0);
    model.dispose();
  });
});

describe("non-finite logits", () => {
  it("eval rejects overflowing activations", async () => {
    const { file, tensor } = copyWithTensor(new Uint8Array(readFileSync(GGUF)), "blk.0.ffn_norm.weight");
    new Float32Array(tensor.buffer, tensor.byteOffset, tensor.byteLength / 4).fill(3e38);
    const model = await loadModel(file, { precision: "f32" });

    const run = evaluate(model, "Once upon a time, there was a little girl.");
    await expect(run).rejects.toThrow(DormantError);
    await expect(run).rejects.toThrow(/logits at scored position 0 are not finite \(their log-sum-exp is NaN\), expected finite logits/);
    model.dispose();
  });

  it("generate stops with an error", async () => {
    const { file, tensor } = copyWithTensor(new Uint8Array(readFileSync(GGUF)), "blk.0.ffn_norm.weight");
    new Float32Array(tensor.buffer, tensor.byteOffset, tensor.byteLength / 4).fill(3e38);
    const model = await loadModel(file, { precision: "f32" });

    const pieces = model.generate("Once upon a time", { maxTokens: 4, temperature: 0 });
    await expect(pieces.next()).rejects.toThrow("expected finite logits (activations overflowed in the model)");
    model.dispose();
  });
});
