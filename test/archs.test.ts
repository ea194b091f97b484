// Forward pass of the llama.cpp architecture fixtures: Llama-3 style (GQA, rope base 5e5,
// separate or tied output) and Qwen2 style (Q/K/V biases, NEOX rope), against llama.cpp's logits.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { evaluate } from "../src/eval/perplexity.js";
import { readModelFile } from "../src/formats/index.js";
import { createModel, loadModel } from "../src/model.js";
import { calibrate } from "../src/sparsity/calibrate.js";

const ARCHS = fileURLToPath(new URL("../../shared/fixtures/archs/", import.meta.url));

/** Largest allowed |Δ| per logit of the f32 path against llama.cpp's F32 logits. */
const F32_LOGIT_TOLERANCE = 1e-4;
/** Greedy tokens are compared while llama.cpp's top-1/top-2 margin is at least this. */
const GREEDY_MARGIN = 1e-2;

interface Fixture {
  greedy: { prompt_tokens: number[]; generated_tokens: number[]; top1_minus_top2_logit: number[] };
}

const inputs: Record<string, number[]> = {
  llama3_style: [2046, 791, 272, 391, 275, 278, 315, 435],
  llama3_style_tied: [2046, 791, 272, 391, 275, 278, 315, 435],
  qwen2_style: [2046, 785, 272, 391, 275, 278, 315, 434],
};

describe.each(Object.keys(inputs))("%s", (name) => {
  const path = `${ARCHS}${name}.gguf`;
  const fixture = JSON.parse(readFileSync(`${ARCHS}${name}.json`, "utf8")) as Fixture;

  it("f32 logits match llama.cpp within 1e-4", async () => {
    const model = await loadModel(path, { precision: "f32", contextLength: 256 });
    const bytes = readFileSync(`${ARCHS}${name}.logits.f32`);
    const expected = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    const rows = model.logits(inputs[name]);
    const vocab = model.config.vocab_size;
    for (let pos = 0; pos < rows.length; pos++) {
      let max = 0;
      for (let j = 0; j < vocab; j++) max = Math.max(max, Math.abs(rows[pos][j] - expected[pos * vocab + j]));
      expect(max, `row ${pos}`).toBeLessThanOrEqual(F32_LOGIT_TOLERANCE);
    }
  });

  it("greedy tokens match while the margin is at least 1e-2", async () => {
    const model = await loadModel(path, { precision: "f32", contextLength: 256 });
    const { prompt_tokens: prompt, generated_tokens: generated, top1_minus_top2_logit: margins } = fixture.greedy;
    const comparable = margins.findIndex((margin) => margin < GREEDY_MARGIN);
    const count = comparable === -1 ? generated.length : comparable;
    const iterator = model.generate(prompt, { temperature: 0, maxTokens: generated.length, stopAtEos: false });
    let next = await iterator.next();
    while (!next.done) next = await iterator.next();
    expect(next.value.tokens.slice(prompt.length, prompt.length + count)).toEqual(generated.slice(0, count));
  });
});

describe("architecture errors", () => {
  it("unknown architecture is rejected by name", async () => {
    const bytes = Uint8Array.from(readFileSync(`${ARCHS}llama3_style.gguf`));
    const at = Buffer.from(bytes).indexOf(Buffer.from("general.architecture")) + "general.architecture".length + 4 + 8;
    bytes.set(new TextEncoder().encode("gemma"), at);
    await expect(loadModel(bytes)).rejects.toThrow(
      'loadModel: <bytes>: metadata general.architecture is "gemma", expected "llama" or "qwen2" (this architecture is not supported)');
  });
});

describe("sparsity on the llama.cpp fixtures", () => {
  const text = readFileSync(fileURLToPath(new URL("../../shared/data/tinystories-valid-sample.txt", import.meta.url)), "utf8").slice(0, 30_000);

  it.each(["llama3_style", "qwen2_style"])("%s calibrates, keeps all exactly and runs predicted", async (name) => {
    const path = `${ARCHS}${name}.gguf`;
    const file = readModelFile(readFileSync(path), path);
    const dense = await createModel(file, { sparsity: null, contextLength: 256 });
    const zero = await calibrate(dense, file, text, { sparsity: 0, maxTokens: 2000 });
    const keepAll = await createModel(file, { sparsity: zero, contextLength: 256 });
    const ids = inputs[name];
    const expected = dense.logits(ids);
    const actual = keepAll.logits(ids);
    for (let pos = 0; pos < ids.length; pos++) expect(Array.from(actual[pos]), `row ${pos}`).toEqual(Array.from(expected[pos]));

    const half = await calibrate(dense, file, text, { sparsity: 0.5, maxTokens: 2000 });
    const sparse = await createModel(file, { sparsity: half, contextLength: 256 });
    expect(sparse.mode).toBe("predicted");
    const result = await evaluate(sparse, text, { maxTokens: 1000 });
    expect(Number.isFinite(result.perplexity)).toBe(true);
    const kept = sparse.layerStats().map((layer) => layer.keptFraction);
    for (const fraction of kept) expect(fraction).toBeLessThan(0.7);
  });
});
