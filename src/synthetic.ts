/**
 * Llama-shaped models with random Q8_0 weights, generated in memory for throughput benchmarks:
 * the shapes of the TinyStories series and of Llama-3.2-1B. Weights are seeded, so runs repeat.
 */

import { GGMLType, TokenType, type LlamaConfig, type ModelFile, type TensorData, type Vocab } from "./types.js";

export interface SyntheticShape {
  dim: number;
  hidden_dim: number;
  n_layers: number;
  n_heads: number;
  n_kv_heads: number;
  vocab_size: number;
  seq_len: number;
}

/** Shapes the benchmarks use, by name. */
export const SYNTHETIC_SHAPES: Record<string, SyntheticShape> = {
  stories15M: { dim: 288, hidden_dim: 768, n_layers: 6, n_heads: 6, n_kv_heads: 6, vocab_size: 32000, seq_len: 256 },
  stories110M: { dim: 768, hidden_dim: 2048, n_layers: 12, n_heads: 12, n_kv_heads: 12, vocab_size: 32000, seq_len: 1024 },
  "llama-1b": { dim: 2048, hidden_dim: 8192, n_layers: 16, n_heads: 32, n_kv_heads: 8, vocab_size: 128256, seq_len: 2048 },
};

/** f16 bits of the block scale of every block, about 0.00098, so activations stay in range. */
const SCALE_F16 = 0x1400;

/** Returns a generator that fills byte arrays from a seeded xorshift32 stream. */
function randomBytes(seed: number): (bytes: Uint8Array) => void {
  let state = seed >>> 0 || 1;
  return (bytes) => {
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2);
    for (let i = 0; i < words.length; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      words[i] = state;
    }
  };
}

function q8Tensor(name: string, cols: number, rows: number, fill: (bytes: Uint8Array) => void): TensorData {
  const blocks = (cols / 32) * rows;
  const data = new Uint8Array(blocks * 34);
  fill(data);
  const view = new DataView(data.buffer);
  for (let b = 0; b < blocks; b++) view.setUint16(b * 34, SCALE_F16, true);
  return { name, dims: [cols, rows], type: GGMLType.Q8_0, data };
}

function onesTensor(name: string, length: number): TensorData {
  return { name, dims: [length], type: GGMLType.F32, data: new Uint8Array(new Float32Array(length).fill(1).buffer) };
}

/** Builds a SentencePiece-style vocabulary of byte tokens and placeholder pieces, enough to load and sample. */
function syntheticVocab(size: number): Vocab {
  const tokens = ["<unk>", "<s>", "</s>"];
  const types = new Int32Array(size);
  types.set([TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL]);
  for (let b = 0; b < 256; b++) {
    types[tokens.length] = TokenType.BYTE;
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  }
  while (tokens.length < size) {
    types[tokens.length] = TokenType.NORMAL;
    tokens.push(`▁w${tokens.length}`);
  }
  return {
    model: "llama", tokens, scores: new Float32Array(size), types,
    bos_id: 1, eos_id: 2, unk_id: 0, add_bos: true, add_space_prefix: true,
  };
}

/** Returns a model file of `shape` with random Q8_0 matrices, norms of one and a tied classifier. */
export function syntheticModel(name: string, shape: SyntheticShape, seed = 1): ModelFile {
  const fill = randomBytes(seed);
  const { dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size } = shape;
  const kvDim = (dim / n_heads) * n_kv_heads;
  const tensors = new Map<string, TensorData>();
  const add = (tensor: TensorData): void => {
    tensors.set(tensor.name, tensor);
  };
  add(q8Tensor("token_embd.weight", dim, vocab_size, fill));
  add(onesTensor("output_norm.weight", dim));
  for (let l = 0; l < n_layers; l++) {
    add(onesTensor(`blk.${l}.attn_norm.weight`, dim));
    add(onesTensor(`blk.${l}.ffn_norm.weight`, dim));
    add(q8Tensor(`blk.${l}.attn_q.weight`, dim, dim, fill));
    add(q8Tensor(`blk.${l}.attn_k.weight`, dim, kvDim, fill));
    add(q8Tensor(`blk.${l}.attn_v.weight`, dim, kvDim, fill));
    add(q8Tensor(`blk.${l}.attn_output.weight`, dim, dim, fill));
    add(q8Tensor(`blk.${l}.ffn_gate.weight`, dim, hidden_dim, fill));
    add(q8Tensor(`blk.${l}.ffn_up.weight`, dim, hidden_dim, fill));
    add(q8Tensor(`blk.${l}.ffn_down.weight`, hidden_dim, dim, fill));
  }
  const config: LlamaConfig = {
    architecture: "llama", ...shape, norm_eps: 1e-5, rope_theta: 10000, activation: "silu", gated: true, rope_type: "norm",
  };
  return { source: `synthetic ${name}`, format: "gguf", config, tensors, vocab: syntheticVocab(vocab_size), metadata: new Map() };
}
