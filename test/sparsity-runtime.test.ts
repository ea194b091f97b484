// Calibrated sparsity end to end on stories260K: calibrate on the first half of the TinyStories
// sample, run on the second half.

import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { evaluate, splitDocuments } from "../src/eval/perplexity.js";
import { readModelFile } from "../src/formats/index.js";
import { createModel, loadModel } from "../src/model.js";
import { calibrate } from "../src/sparsity/calibrate.js";
import { writeSparsityGGUF } from "../src/sparsity/format.js";

const GGUF = fileURLToPath(new URL("../../shared/models/stories260K.gguf", import.meta.url));
const TEXT = fileURLToPath(new URL("../../shared/data/tinystories-valid-sample.txt", import.meta.url));
const directory = mkdtempSync(join(tmpdir(), "dormant-sparsity-"));

/** Largest allowed distance, in fraction points, between the measured kept fraction and 1 − S. */
const KEPT_FRACTION_TOLERANCE = 0.03;
/** Tokens of the evaluation half scored per check; enough for stable fractions. */
const EVAL_TOKENS = 8000;

const documents = splitDocuments(readFileSync(TEXT, "utf8"));
const half = Math.floor(documents.length / 2);
const calibrationText = documents.slice(0, half).join("\n<|endoftext|>\n");
const evaluationText = documents.slice(half).join("\n<|endoftext|>\n");

/** Calibrates stories260K at sparsity S and returns the path of the written GGUF. */
async function calibratedFile(sparsity: number): Promise<string> {
  const file = readModelFile(readFileSync(GGUF), GGUF);
  const model = await createModel(file, { sparsity: null });
  const data = await calibrate(model, file, calibrationText, { sparsity });
  const path = join(directory, `stories260K.s${sparsity}.gguf`);
  writeFileSync(path, writeSparsityGGUF(file, data));
  return path;
}

describe("calibrated sparsity on stories260K", () => {
  const files = new Map<number, string>();

  beforeAll(async () => {
    for (const sparsity of [0, 0.5, 0.7]) files.set(sparsity, await calibratedFile(sparsity));
  }, 300_000);

  it("S = 0 reproduces dense int8 logits bit for bit", async () => {
    const dense = await loadModel(GGUF, { sparsity: null });
    const sparse = await loadModel(files.get(0)!);
    expect(sparse.mode).toBe("predicted");
    const ids = dense.tokenize("Once upon a time, there was a little girl named Lily. She loved to play outside.");
    const expected = dense.logits(ids);
    const actual = sparse.logits(ids);
    for (let pos = 0; pos < ids.length; pos++) {
      expect(Array.from(actual[pos]), `row ${pos}`).toEqual(Array.from(expected[pos]));
    }
    for (const layer of sparse.layerStats()) expect(layer.candidateFraction).toBe(1);
  });

  for (const sparsity of [0.5, 0.7]) {
    it(`kept fraction on held-out text near ${(1 - sparsity).toFixed(1)}`, async () => {
      const model = await loadModel(files.get(sparsity)!);
      model.setMode("oracle");
      await evaluate(model, evaluationText, { maxTokens: EVAL_TOKENS });
      const layers = model.layerStats();
      for (const [l, layer] of layers.entries()) {
        expect(Math.abs(layer.keptFraction - (1 - sparsity)), `layer ${l} kept ${layer.keptFraction}`).toBeLessThanOrEqual(KEPT_FRACTION_TOLERANCE);
      }
      const overall = layers.reduce((sum, layer) => sum + layer.keptFraction, 0) / layers.length;
      expect(Math.abs(overall - (1 - sparsity))).toBeLessThanOrEqual(KEPT_FRACTION_TOLERANCE);
    });
  }

  it("predicted mode keeps fewer candidates than neurons and reads fewer FFN bytes", async () => {
    const model = await loadModel(files.get(0.5)!);
    await evaluate(model, evaluationText, { maxTokens: 2000 });
    const predicted = model.layerStats();
    model.setMode("dense");
    await evaluate(model, evaluationText, { maxTokens: 2000 });
    const dense = model.layerStats();
    for (let l = 0; l < predicted.length; l++) {
      expect(predicted[l].candidateFraction).toBeLessThan(1);
      expect(predicted[l].ffnBytesPerToken).toBeLessThan(dense[l].ffnBytesPerToken);
    }
  });

  it("mode errors name the mode and what the model supports", async () => {
    const dense = await loadModel(GGUF, { sparsity: null });
    expect(() => dense.setMode("oracle")).toThrow(
      'setMode: option mode is "oracle", expected "dense" for a model without sparsity data (run dormant calibrate first)');
    const sparse = await loadModel(files.get(0.5)!);
    expect(() => sparse.setMode("fast" as never)).toThrow('setMode: option mode is "fast", expected "dense", "oracle" or "predicted"');
    await expect(loadModel(files.get(0.5)!, { precision: "f32" })).rejects.toThrow(
      'loadModel: option precision is "f32", expected "int8" for a model with sparsity data or bundles');
  });
});
