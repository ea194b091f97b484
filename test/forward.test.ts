import { readFileSync } from "node:fs";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { convertToGGUF } from "../src/convert.js";
import { evaluate } from "../src/eval/perplexity.js";
import { readModelFile } from "../src/formats/index.js";
import { loadModel, type Model } from "../src/model.js";

const shared = (path: string): string => fileURLToPath(new URL(`../../shared/${path}`, import.meta.url));
const BIN = shared("models/stories260K.bin");
const TOKENIZER = shared("models/tok512.bin");
const GGUF = shared("models/stories260K.gguf");

/** Largest allowed |Δ| per logit against llama2.c's fp32 logits. */
const F32_LOGIT_TOLERANCE = 1e-4;

const referenceLogits = (): Float32Array[] => {
  const bytes = readFileSync(shared("reference/logits/once_upon_a_time_16x512.f32"));
  const all = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return Array.from({ length: 16 }, (_, row) => all.subarray(row * 512, (row + 1) * 512));
};
const positions = JSON.parse(readFileSync(shared("reference/logits/once_upon_a_time_16x512.positions.json"), "utf8")).positions as
  Array<{ pos: number; input_token: number; argmax: number }>;
const greedy = JSON.parse(readFileSync(shared("reference/greedy/token_ids.json"), "utf8")).prompts as
  Record<string, { token_ids_pos0_to_256: number[]; prompt_tokens_with_bos: number; "first_row_margin_below_1e-2": number }>;

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

async function greedyIds(model: Model, prompt: string, steps: number): Promise<number[]> {
  const iterator = model.generate(prompt, { temperature: 0, steps });
  for (;;) {
    const next = await iterator.next();
    if (next.done) return next.value.tokens;
  }
}

describe("f32 forward pass", () => {
  let fromBin: Model;
  let fromGguf: Model;
  let fromConverted: Model;

  beforeAll(async () => {
    fromBin = await loadModel(BIN, { precision: "f32", tokenizer: TOKENIZER });
    fromGguf = await loadModel(GGUF, { precision: "f32" });
    const directory = mkdtempSync(join(tmpdir(), "dormant-forward-"));
    const converted = join(directory, "converted.gguf");
    const file = readModelFile(readFileSync(BIN), BIN, { bytes: readFileSync(TOKENIZER), source: TOKENIZER });
    writeFileSync(converted, convertToGGUF(file, { type: "f32" }));
    fromConverted = await loadModel(converted, { precision: "f32" });
  });

  it("logits match llama2.c within 1e-4", () => {
    const inputs = positions.map((row) => row.input_token);
    const expected = referenceLogits();
    const rows = fromBin.logits(inputs);
    for (let pos = 0; pos < 16; pos++) {
      expect(maxAbsDiff(rows[pos], expected[pos]), `row ${pos}`).toBeLessThanOrEqual(F32_LOGIT_TOLERANCE);
      expect(rows[pos].indexOf(Math.max(...rows[pos])), `argmax of row ${pos}`).toBe(positions[pos].argmax);
    }
  });

  it("bin, gguf and converted gguf agree bit for bit", () => {
    const inputs = positions.map((row) => row.input_token);
    const a = fromBin.logits(inputs);
    const b = fromGguf.logits(inputs);
    const c = fromConverted.logits(inputs);
    for (let pos = 0; pos < inputs.length; pos++) {
      expect(Array.from(b[pos]), `gguf row ${pos}`).toEqual(Array.from(a[pos]));
      expect(Array.from(c[pos]), `converted row ${pos}`).toEqual(Array.from(a[pos]));
    }
  });

  for (const [name, prompt] of [["01_empty", ""], ["02_once_upon_a_time", "Once upon a time"]] as const) {
    it(`greedy ids match for ${name}`, async () => {
      const reference = greedy[name];
      // Compare up to and including the first row whose top-1/top-2 gap is below 1e-2.
      const comparable = reference["first_row_margin_below_1e-2"] + 1;
      for (const model of [fromBin, fromGguf, fromConverted]) {
        const ids = await greedyIds(model, prompt, 256);
        expect(ids.slice(0, comparable)).toEqual(reference.token_ids_pos0_to_256.slice(0, comparable));
      }
    });
  }
});

describe("int8 forward pass", () => {
  const text = readFileSync(shared("data/tinystories-valid-sample.txt"), "utf8");

  it("perplexity within 1% of f32 and top-1 agreement at least 98%", async () => {
    const int8 = await loadModel(GGUF, { precision: "int8" });
    const f32 = await loadModel(GGUF, { precision: "f32" });
    const result = await evaluate(int8, text, { reference: f32 });
    const ratio = result.perplexity / result.referencePerplexity!;
    expect(result.tokens).toBeGreaterThan(10_000);
    expect(Math.abs(ratio - 1)).toBeLessThanOrEqual(0.01);
    expect(result.top1Agreement).toBeGreaterThanOrEqual(0.98);
  });

  it("converted q8_0 gguf gives the same int8 logits as quantizing at load", async () => {
    const file = readModelFile(readFileSync(BIN), BIN, { bytes: readFileSync(TOKENIZER), source: TOKENIZER });
    const directory = mkdtempSync(join(tmpdir(), "dormant-forward-"));
    const q8 = join(directory, "q8.gguf");
    writeFileSync(q8, convertToGGUF(file, { type: "q8_0" }));
    const fromQ8 = await loadModel(q8, { precision: "int8" });
    const fromF32 = await loadModel(GGUF, { precision: "int8" });
    const inputs = positions.map((row) => row.input_token);
    const a = fromQ8.logits(inputs);
    const b = fromF32.logits(inputs);
    for (let pos = 0; pos < inputs.length; pos++) expect(Array.from(a[pos]), `row ${pos}`).toEqual(Array.from(b[pos]));
  });
});
