// Builds Llama-shaped models with random weights in memory, for throughput benchmarks only.
// Weights are uniform in ±0.05 from a seeded generator, so runs are repeatable. The vocabulary
// is byte tokens, "▁", the printable ASCII characters and placeholder pieces, which is enough
// for dormant's and llama.cpp's tokenizers to load it and to round-trip plain text.

/** Model shapes of the TinyStories series and a 1B-class Llama, as benchmarks use them. */
export const SHAPES = {
  stories15M: { dim: 288, hidden_dim: 768, n_layers: 6, n_heads: 6, n_kv_heads: 6, vocab_size: 32000, seq_len: 256 },
  stories110M: { dim: 768, hidden_dim: 2048, n_layers: 12, n_heads: 12, n_kv_heads: 12, vocab_size: 32000, seq_len: 1024 },
};

/** Returns a float generator in [-scale, scale) from a 32-bit xorshift state. */
function uniform(seed, scale) {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return ((state / 4294967296) * 2 - 1) * scale;
  };
}

function f32Tensor(name, dims, random) {
  const count = dims.reduce((a, b) => a * b, 1);
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = random();
  return { name, dims, type: 0, data: new Uint8Array(values.buffer) };
}

function onesTensor(name, length) {
  const values = new Float32Array(length).fill(1);
  return { name, dims: [length], type: 0, data: new Uint8Array(values.buffer) };
}

function syntheticVocab(size) {
  const tokens = [];
  const types = new Int32Array(size);
  tokens.push("<unk>", "<s>", "</s>");
  types.set([2, 3, 3]);
  for (let b = 0; b < 256; b++) {
    types[tokens.length] = 6;
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  }
  // "▁" and the printable ASCII characters let llama.cpp's tokenizer round-trip plain text.
  // With byte tokens alone, llama.cpp decodes the space marker to its three UTF-8 bytes.
  for (const piece of ["▁", ...Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i))]) {
    types[tokens.length] = 1;
    tokens.push(piece);
  }
  while (tokens.length < size) {
    types[tokens.length] = 1;
    tokens.push(`▁w${tokens.length}`);
  }
  return {
    model: "llama", tokens, scores: new Float32Array(size), types,
    bos_id: 1, eos_id: 2, unk_id: 0, add_bos: true, add_space_prefix: true,
  };
}

/** Returns a ModelFile of the given shape with random f32 weights and a tied classifier. */
export function syntheticModel(name, shape, seed = 1) {
  const random = uniform(seed, 0.05);
  const { dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size } = shape;
  const kvDim = (dim / n_heads) * n_kv_heads;
  const tensors = new Map();
  const add = (tensor) => tensors.set(tensor.name, tensor);
  add(f32Tensor("token_embd.weight", [dim, vocab_size], random));
  add(onesTensor("output_norm.weight", dim));
  for (let l = 0; l < n_layers; l++) {
    add(onesTensor(`blk.${l}.attn_norm.weight`, dim));
    add(onesTensor(`blk.${l}.ffn_norm.weight`, dim));
    add(f32Tensor(`blk.${l}.attn_q.weight`, [dim, dim], random));
    add(f32Tensor(`blk.${l}.attn_k.weight`, [dim, kvDim], random));
    add(f32Tensor(`blk.${l}.attn_v.weight`, [dim, kvDim], random));
    add(f32Tensor(`blk.${l}.attn_output.weight`, [dim, dim], random));
    add(f32Tensor(`blk.${l}.ffn_gate.weight`, [dim, hidden_dim], random));
    add(f32Tensor(`blk.${l}.ffn_up.weight`, [dim, hidden_dim], random));
    add(f32Tensor(`blk.${l}.ffn_down.weight`, [hidden_dim, dim], random));
  }
  return {
    source: `synthetic ${name}`,
    format: "gguf",
    config: { architecture: "llama", ...shape, norm_eps: 1e-5, rope_theta: 10000, activation: "silu" },
    tensors,
    vocab: syntheticVocab(vocab_size),
    metadata: new Map(),
  };
}
