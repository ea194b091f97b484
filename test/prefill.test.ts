// Prefill in blocks: the matrix × block kernel against its reference, and block prefill against
// token-by-token decode on stories260K.

import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { loadModel, type LoadOptions } from "../src/model.js";
import { interleaveQ8Rows } from "../src/layout.js";
import { loadKernelModule, padToBlock, randomF32, randomQuants, seededRandom } from "./wasm-harness.js";

const GGUF = fileURLToPath(new URL("../../shared/models/stories260K.gguf", import.meta.url));

interface MatmatExports {
  matmatQ8(out: number, wq: number, ws: number, xq: number, xs: number, rows: number, cols: number, n: number, xStride: number, outStride: number): void;
  matmatQ8Ref(out: number, wq: number, ws: number, xq: number, xs: number, rows: number, cols: number, n: number, xStride: number, outStride: number): void;
}

describe("matmatQ8", () => {
  const lengths = [1, 15, 16, 17, 31, 33, 172, 4096];
  const cases = lengths.flatMap((length) => [1, 5].map((rows) => [length, rows] as const));

  it.each(cases)("length %i, %i rows, matches reference bit for bit", async (length, rows) => {
    const m = await loadKernelModule("exact");
    m.exports.allocReset();
    const kernels = m.exports as unknown as MatmatExports;
    const cols = padToBlock(length);
    const n = 3;
    const xStride = cols + 32;
    const random = seededRandom(length * 31 + rows);
    const runtime = interleaveQ8Rows(randomQuants(random, rows * cols), randomF32(random, rows * (cols / 32), 0.02), rows, cols);
    const wq = m.putI8(runtime.quants.length, runtime.quants);
    const ws = m.putF32(runtime.scales.length, runtime.scales);
    const xq = m.putI8(n * xStride, randomQuants(random, n * xStride));
    const xs = m.putF32(n * (xStride / 32), randomF32(random, n * (xStride / 32), 0.1));
    const outStride = rows + 3;
    const expected = m.putF32(n * outStride);
    const actual = m.putF32(n * outStride);
    kernels.matmatQ8Ref(expected, wq, ws, xq, xs, rows, cols, n, xStride, outStride);
    kernels.matmatQ8(actual, wq, ws, xq, xs, rows, cols, n, xStride, outStride);
    const a = new Uint32Array(m.exports.memory.buffer, expected, n * outStride);
    const b = new Uint32Array(m.exports.memory.buffer, actual, n * outStride);
    expect(Array.from(b)).toEqual(Array.from(a));
  });
});

describe("block prefill", () => {
  const text = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.";
  const settings: Array<[string, LoadOptions]> = [
    ["f32", { precision: "f32" }],
    ["int8", { precision: "int8" }],
    ["int8 bundles", { precision: "int8", bundles: true }],
  ];

  it.each(settings)("%s logits equal token-by-token decode", async (_name, options) => {
    const model = await loadModel(GGUF, options);
    const ids = model.tokenize(`${text} ${text} ${text} ${text}`);
    expect(ids.length).toBeGreaterThan(128);
    const blocked = model.logits(ids);
    for (let pos = 0; pos < ids.length; pos++) {
      const stepped = model.step(ids[pos], pos);
      expect(Array.from(blocked[pos]), `row ${pos}`).toEqual(Array.from(stepped));
    }
  });

  // blocks before the last compute no logits, so the lengths cover 1, 2 and 3 blocks of 64, whole or not
  it("returns the last token's logits as decode does, for prompts of 1 to 3 blocks", async () => {
    const model = await loadModel(GGUF);
    const ids = model.tokenize(`${text} ${text} ${text} ${text}`);
    expect(ids.length).toBeGreaterThan(129);
    for (const length of [1, 63, 64, 65, 128, 129, ids.length]) {
      const prompt = ids.slice(0, length);
      const prefilled = Array.from(model.prefill(prompt));
      let stepped: Float32Array = new Float32Array();
      for (let pos = 0; pos < length; pos++) stepped = model.step(prompt[pos], pos);
      expect(prefilled, `${length} tokens`).toEqual(Array.from(stepped));
    }
  });

  it("leaves the KV cache as decode would", async () => {
    const model = await loadModel(GGUF);
    const ids = model.tokenize(text);
    const afterPrefill = model.prefill(ids).slice();
    const next = afterPrefill.indexOf(Math.max(...afterPrefill));
    const continued = model.step(next, ids.length).slice();
    for (let pos = 0; pos < ids.length; pos++) model.step(ids[pos], pos);
    expect(Array.from(model.step(next, ids.length))).toEqual(Array.from(continued));
  });
});
