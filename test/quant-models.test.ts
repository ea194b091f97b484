// Quantized GGUFs of the Llama-3-style fixture against llama.cpp's logits. dormant dequantizes
// the weights exactly and computes in f32 without llama.cpp's activation quantization, so the
// tolerances are those of exact math: 0.03 for n_embd 64 (F16, Q8_0, Q4_0), 0.15 for K-quants.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { loadModel } from "../src/model.js";

const QUANTS = fileURLToPath(new URL("../../shared/fixtures/quants/", import.meta.url));

interface Reference {
  logits: { tokens: number[]; shape: number[] };
  greedy: { prompt_tokens: number[]; generated_tokens: number[]; top1_minus_top2_logit: number[] };
}

const cases: Array<[string, number]> = [
  ["llama3_style.F16", 0.03],
  ["llama3_style.Q8_0", 0.03],
  ["llama3_style.Q4_0", 0.03],
  ["llama3_style_256.Q4_K_M", 0.15],
];

describe.each(cases)("%s", (name, tolerance) => {
  const reference = JSON.parse(readFileSync(`${QUANTS}${name}.json`, "utf8")) as Reference;

  it(`f32 logits within ${tolerance} of llama.cpp`, async () => {
    const model = await loadModel(`${QUANTS}${name}.gguf`, { precision: "f32", contextLength: 64 });
    const bytes = readFileSync(`${QUANTS}${name}.logits.f32`);
    const expected = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    const rows = model.logits(reference.logits.tokens);
    const vocab = model.config.vocab_size;
    for (let pos = 0; pos < rows.length; pos++) {
      let max = 0;
      for (let j = 0; j < vocab; j++) max = Math.max(max, Math.abs(rows[pos][j] - expected[pos * vocab + j]));
      expect(max, `row ${pos}`).toBeLessThanOrEqual(tolerance);
    }
  });

  it("greedy tokens match while the margin exceeds the tolerance", async () => {
    const model = await loadModel(`${QUANTS}${name}.gguf`, { precision: "f32", contextLength: 64 });
    const { prompt_tokens: prompt, generated_tokens: generated, top1_minus_top2_logit: margins } = reference.greedy;
    const firstClose = margins.findIndex((margin) => margin < 2 * tolerance);
    const count = firstClose === -1 ? generated.length : firstClose;
    const iterator = model.generate(prompt, { temperature: 0, maxTokens: generated.length, stopAtEos: false });
    let next = await iterator.next();
    while (!next.done) next = await iterator.next();
    expect(next.value.tokens.slice(prompt.length, prompt.length + count)).toEqual(generated.slice(0, count));
  });
});
