// Run state: activations of the current position, the KV cache and quantization scratch.
// All buffers come from the arena, zero-filled, so the padding lanes past dim and
// hidden_dim stay zero and quantize to zero.

import { arenaAlloc } from "../memory";
import { dim, dim_pad, hidden_pad, kv_dim, n_heads, n_layers, seq_len, vocab_size } from "./config";

export let x: usize = 0;           // (dim_pad) f32, the residual stream
export let xb: usize = 0;          // (dim_pad) f32, normed input of a block / attention output
export let xb2: usize = 0;         // (dim_pad) f32, output of a projection before the residual add
export let hb: usize = 0;          // (hidden_pad) f32, gate activations, then act(gate) * up
export let hb2: usize = 0;         // (hidden_pad) f32, up projection
export let q: usize = 0;           // (dim) f32, query of the current position
export let att: usize = 0;         // (n_heads, seq_len) f32, attention scores
export let logits: usize = 0;      // (vocab_size) f32
export let key_cache: usize = 0;   // (n_layers, seq_len, kv_dim) f32
export let value_cache: usize = 0; // (n_layers, seq_len, kv_dim) f32
export let xq: usize = 0;          // (max(dim_pad, hidden_pad)) i8, quantized activations
export let xs: usize = 0;          // (max(dim_pad, hidden_pad) / 32) f32, their block scales

/** Points this instance at the KV cache another instance allocated (a worker thread's module). */
export function adoptCaches(keys: usize, values: usize): void {
  key_cache = keys;
  value_cache = values;
}

/** Bytes allocStates() will take, so the host can budget before placing weights. */
export function stateBytes(): u64 {
  const widest = <u64>max(dim_pad, hidden_pad);
  const floats: u64 =
    3 * <u64>dim_pad + 2 * <u64>hidden_pad + <u64>dim +
    <u64>n_heads * <u64>seq_len + <u64>vocab_size +
    2 * <u64>n_layers * <u64>seq_len * <u64>kv_dim + widest / 32;
  // 12 buffers, each rounded up to the arena's 64-byte alignment.
  return floats * 4 + widest + 12 * 64;
}

function allocF32(count: i32): usize {
  return arenaAlloc(<u64>count << 2);
}

/** Allocates every run-state buffer. Returns 0 when the arena budget is exceeded. */
export function allocStates(): i32 {
  const widest = max(dim_pad, hidden_pad);
  x = allocF32(dim_pad);
  xb = allocF32(dim_pad);
  xb2 = allocF32(dim_pad);
  hb = allocF32(hidden_pad);
  hb2 = allocF32(hidden_pad);
  q = allocF32(dim);
  att = allocF32(n_heads * seq_len);
  logits = allocF32(vocab_size);
  const cacheBytes = (<u64>n_layers * <u64>seq_len * <u64>kv_dim) << 2;
  key_cache = arenaAlloc(cacheBytes);
  value_cache = arenaAlloc(cacheBytes);
  xq = arenaAlloc(<u64>widest);
  xs = allocF32(widest / 32);
  const ok = x != 0 && xb != 0 && xb2 != 0 && hb != 0 && hb2 != 0 && q != 0 && att != 0 &&
    logits != 0 && key_cache != 0 && value_cache != 0 && xq != 0 && xs != 0;
  return ok ? 1 : 0;
}
