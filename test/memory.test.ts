// The wasm32 memory limit: models whose runtime layout does not fit 4 GiB are rejected before
// any weight is placed, with the sizes in the message. And the arena's zeroing of reused memory.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { readTokenizerBin } from "../src/formats/tokenizer-bin.js";
import { createModel } from "../src/model.js";
import type { LlamaConfig, ModelFile } from "../src/types.js";
import { loadKernelModule } from "./wasm-harness.js";

const TOKENIZER = fileURLToPath(new URL("../../shared/models/tok512.bin", import.meta.url));

/** Returns a model file with a config and no tensors: enough for the budget check, which runs first. */
function configOnly(source: string, config: Partial<LlamaConfig>): ModelFile {
  return {
    source,
    format: "gguf",
    config: {
      architecture: "llama", dim: 4096, hidden_dim: 11008, n_layers: 32, n_heads: 32, n_kv_heads: 32,
      vocab_size: 32000, seq_len: 4096, norm_eps: 1e-5, rope_theta: 10000, activation: "silu", gated: true, ...config,
    },
    tensors: new Map(),
    vocab: readTokenizerBin(readFileSync(TOKENIZER), TOKENIZER, 512),
    metadata: new Map(),
  };
}

describe("memory budget", () => {
  it("rejects a 7B-shaped model in int8", async () => {
    await expect(createModel(configOnly("llama-7b.gguf", {}), { precision: "int8", contextLength: 512 })).rejects.toThrow(
      "loadModel: llama-7b.gguf: wasm memory needed is 7.45 GiB (weights 6.92 GiB, KV cache and decode state 512.3 MiB for 512 positions, prefill and other buffers 21.5 MiB), " +
      "expected at most 4 GiB, the wasm32 limit; use a smaller contextLength or a smaller model");
  });

  it("rejects a 1B-shaped model in f32 but not its budget in int8", async () => {
    const shape = { dim: 2048, hidden_dim: 8192, n_layers: 16, n_heads: 32, n_kv_heads: 8, vocab_size: 128256, seq_len: 131072 };
    await expect(createModel(configOnly("llama-1b.gguf", shape), { precision: "f32", contextLength: 2048 })).rejects.toThrow(
      "loadModel: llama-1b.gguf: wasm memory needed is 4.77 GiB (weights 4.60 GiB, KV cache and decode state 128.8 MiB for 2048 positions, prefill and other buffers 39.8 MiB), " +
      'expected at most 4 GiB, the wasm32 limit; use precision "int8" or a smaller contextLength');
    // int8 passes the budget and then fails on the first missing tensor, which proves the order of the checks
    await expect(createModel(configOnly("llama-1b.gguf", shape), { precision: "int8", contextLength: 2048 })).rejects.toThrow(
      "loadModel: llama-1b.gguf: tensor token_embd.weight is missing, expected it in a llama model");
  });
});

describe("arena", () => {
  it("zeroes reused and fresh memory", async () => {
    const m = await loadKernelModule("exact");
    const first = m.exports.alloc(4096) >>> 0;
    new Uint8Array(m.exports.memory.buffer, first, 4096).fill(0xab);
    m.exports.allocReset();
    // reuses the written bytes, then runs past them into memory never written
    const second = m.exports.alloc(8192) >>> 0;
    expect(second).toBe(first);
    const bytes = new Uint8Array(m.exports.memory.buffer, second, 8192);
    expect(bytes.every((byte) => byte === 0)).toBe(true);
    // a second allocation above the first also starts zeroed
    bytes.fill(0xcd);
    m.exports.allocReset();
    m.exports.alloc(64);
    const third = m.exports.alloc(8192) >>> 0;
    expect(new Uint8Array(m.exports.memory.buffer, third, 8192).every((byte) => byte === 0)).toBe(true);
  });
});
