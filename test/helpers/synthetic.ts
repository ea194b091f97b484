// Small Llama-shaped models with seeded random weights, for tests of paths that no shared model
// covers (activation functions, non-gated FFNs). The vocabulary is stories260K's.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { readTokenizerBin } from "../../src/formats/tokenizer-bin.js";
import { GGMLType, type LlamaConfig, type ModelFile, type TensorData } from "../../src/types.js";

const TOKENIZER = fileURLToPath(new URL("../../../shared/models/tok512.bin", import.meta.url));

export interface SyntheticShape {
  dim: number;
  hidden_dim: number;
  n_layers: number;
  n_heads: number;
  n_kv_heads: number;
  activation: LlamaConfig["activation"];
  gated: boolean;
  /** Context length (default 128). */
  seq_len?: number;
}

function uniform(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return (state / 4294967296) * 2 - 1;
  };
}

/** Returns a model file of `shape` with weights uniform in ±scale and norms of one. */
export function syntheticModel(shape: SyntheticShape, seed = 1, scale = 0.2): ModelFile {
  const random = uniform(seed);
  const vocab = readTokenizerBin(readFileSync(TOKENIZER), TOKENIZER, 512);
  const tensors = new Map<string, TensorData>();
  const add = (name: string, dims: number[], fill: () => number): void => {
    const values = Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, fill);
    tensors.set(name, { name, dims, type: GGMLType.F32, data: new Uint8Array(values.buffer) });
  };
  const weight = () => random() * scale;
  const one = () => 1;
  const { dim, hidden_dim, n_layers, n_heads, n_kv_heads } = shape;
  const kvDim = (dim / n_heads) * n_kv_heads;
  add("token_embd.weight", [dim, 512], () => random());
  add("output_norm.weight", [dim], one);
  for (let l = 0; l < n_layers; l++) {
    add(`blk.${l}.attn_norm.weight`, [dim], one);
    add(`blk.${l}.ffn_norm.weight`, [dim], one);
    add(`blk.${l}.attn_q.weight`, [dim, dim], weight);
    add(`blk.${l}.attn_k.weight`, [dim, kvDim], weight);
    add(`blk.${l}.attn_v.weight`, [dim, kvDim], weight);
    add(`blk.${l}.attn_output.weight`, [dim, dim], weight);
    if (shape.gated) add(`blk.${l}.ffn_gate.weight`, [dim, hidden_dim], weight);
    add(`blk.${l}.ffn_up.weight`, [dim, hidden_dim], weight);
    add(`blk.${l}.ffn_down.weight`, [hidden_dim, dim], weight);
  }
  return {
    source: `synthetic ${shape.activation}${shape.gated ? " gated" : ""}`,
    format: "gguf",
    config: {
      architecture: "llama", dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size: 512, seq_len: shape.seq_len ?? 128,
      norm_eps: 1e-5, rope_theta: 10000, activation: shape.activation, gated: shape.gated,
    },
    tensors,
    vocab,
    metadata: new Map(),
  };
}
