// A Llama-3.2-1B-shaped model (dim 2048, hidden 8192, 16 layers, 32 heads, 8 KV heads, vocab
// 128256) with random Q8_0 weights: load time, wasm memory and int8 decode tokens/s.
//
//   npm run build && node --max-old-space-size=8192 bench/large.mjs [--tokens 8] [--runs 3]

import os from "node:os";
import { createModel } from "../dist/index.js";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(args[at + 1]);
};
const tokens = option("tokens", 8);
const runs = option("runs", 3);
const SHAPE = { dim: 2048, hidden_dim: 8192, n_layers: 16, n_heads: 32, n_kv_heads: 8, vocab_size: 128256, seq_len: 2048 };
/** f16 bits of the block scale used for every block: about 0.00098. */
const SCALE_F16 = 0x1400;

let state = 0x9e3779b9;
/** Fills bytes with xorshift32 output, four bytes per step. */
function fillRandom(bytes) {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2);
  for (let i = 0; i < words.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    words[i] = state;
  }
}

/** A Q8_0 tensor of GGUF dims [cols, rows]: 34-byte blocks of an f16 scale and 32 int8 quants. */
function q8Tensor(name, cols, rows) {
  const blocks = (cols / 32) * rows;
  const data = new Uint8Array(blocks * 34);
  fillRandom(data);
  const view = new DataView(data.buffer);
  for (let b = 0; b < blocks; b++) view.setUint16(b * 34, SCALE_F16, true);
  return { name, dims: [cols, rows], type: 8, data };
}

function onesTensor(name, length) {
  return { name, dims: [length], type: 0, data: new Uint8Array(new Float32Array(length).fill(1).buffer) };
}

function vocab(size) {
  const tokens = ["<unk>", "<s>", "</s>"];
  const types = new Int32Array(size);
  types.set([2, 3, 3]);
  for (let b = 0; b < 256; b++) {
    types[tokens.length] = 6;
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  }
  while (tokens.length < size) {
    types[tokens.length] = 1;
    tokens.push(`▁w${tokens.length}`);
  }
  return { model: "llama", tokens, scores: new Float32Array(size), types, bos_id: 1, eos_id: 2, unk_id: 0, add_bos: true, add_space_prefix: true };
}

const { dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size } = SHAPE;
const kvDim = (dim / n_heads) * n_kv_heads;
const generateStarted = performance.now();
const tensors = new Map();
const add = (tensor) => tensors.set(tensor.name, tensor);
add(q8Tensor("token_embd.weight", dim, vocab_size));
add(onesTensor("output_norm.weight", dim));
for (let l = 0; l < n_layers; l++) {
  add(onesTensor(`blk.${l}.attn_norm.weight`, dim));
  add(onesTensor(`blk.${l}.ffn_norm.weight`, dim));
  add(q8Tensor(`blk.${l}.attn_q.weight`, dim, dim));
  add(q8Tensor(`blk.${l}.attn_k.weight`, dim, kvDim));
  add(q8Tensor(`blk.${l}.attn_v.weight`, dim, kvDim));
  add(q8Tensor(`blk.${l}.attn_output.weight`, dim, dim));
  add(q8Tensor(`blk.${l}.ffn_gate.weight`, dim, hidden_dim));
  add(q8Tensor(`blk.${l}.ffn_up.weight`, dim, hidden_dim));
  add(q8Tensor(`blk.${l}.ffn_down.weight`, hidden_dim, dim));
}
const parameters = [...tensors.values()].reduce((sum, t) => sum + t.dims.reduce((a, b) => a * b, 1), 0);
const generateMs = performance.now() - generateStarted;

const file = {
  source: "synthetic llama-1b", format: "gguf",
  config: { architecture: "llama", ...SHAPE, norm_eps: 1e-5, rope_theta: 500000, activation: "silu" },
  tensors, vocab: vocab(vocab_size), metadata: new Map(),
};
const loadStarted = performance.now();
const model = await createModel(file, { precision: "int8", contextLength: 256, sparsity: null });
const loadMs = performance.now() - loadStarted;
const memory = model.stats().memoryBytes;

const speeds = [];
for (let run = 0; run <= runs; run++) {
  const iterator = model.generate([1], { maxTokens: tokens, temperature: 0, stopAtEos: false });
  let next;
  do next = await iterator.next(); while (!next.done);
  if (run > 0) speeds.push(next.value.tokensPerSecond);
}
speeds.sort((a, b) => a - b);

console.log(`# 1B-shaped model, int8, one thread: ${os.cpus()[0].model}, Node ${process.version}`);
console.log(`parameters          ${(parameters / 1e9).toFixed(3)} B`);
console.log(`random weights made ${(generateMs / 1000).toFixed(1)} s (not part of loading)`);
console.log(`load (place int8)   ${(loadMs / 1000).toFixed(1)} s`);
console.log(`wasm memory used    ${(memory / 1024 ** 3).toFixed(2)} GiB (KV cache for 256 positions)`);
console.log(`decode              ${speeds[speeds.length >> 1].toFixed(2)} tokens/s (median of ${runs} runs x ${tokens} tokens)`);
