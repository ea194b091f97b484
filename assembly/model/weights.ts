// Weight views: a table of pointers into the arena, filled by the host after it places
// each tensor. Every matrix is (rows, cols) row-major, rows = outputs.
//
//   f32 matrix:  data  (rows, cols) f32                      scales unused (0)
//   int8 matrix: data  (rows, pad32(cols)) i8, zero-padded    scales (rows, pad32(cols)/32) f32
//   norm vector: data  (n) f32
//
// Table layout: (SLOT_COUNT, n_layers, 2) u32 = data pointer, scales pointer.
// Global tensors (embedding, classifier, final norm) use layer 0.

import { arenaAlloc } from "../memory";
import { n_layers } from "./config";

export const SLOT_TOKEN_EMBD: i32 = 0;  // (vocab_size, dim)
export const SLOT_OUTPUT: i32 = 1;      // (vocab_size, dim); tied models point at token_embd
export const SLOT_OUTPUT_NORM: i32 = 2; // (dim)
export const SLOT_ATTN_NORM: i32 = 3;   // (dim) per layer
export const SLOT_ATTN_Q: i32 = 4;      // (n_heads * head_size, dim)
export const SLOT_ATTN_K: i32 = 5;      // (kv_dim, dim)
export const SLOT_ATTN_V: i32 = 6;      // (kv_dim, dim)
export const SLOT_ATTN_OUTPUT: i32 = 7; // (dim, n_heads * head_size)
export const SLOT_FFN_NORM: i32 = 8;    // (dim)
export const SLOT_FFN_GATE: i32 = 9;    // (hidden_dim, dim), llama2.c w1
export const SLOT_FFN_UP: i32 = 10;     // (hidden_dim, dim), llama2.c w3
export const SLOT_FFN_DOWN: i32 = 11;   // (dim, hidden_dim), llama2.c w2
export const SLOT_ATTN_Q_BIAS: i32 = 12; // (n_heads * head_size) f32, 0 when the model has none
export const SLOT_ATTN_K_BIAS: i32 = 13; // (kv_dim) f32
export const SLOT_ATTN_V_BIAS: i32 = 14; // (kv_dim) f32
export const SLOT_ROPE_FREQS: i32 = 15;  // (head_size / 2) f32 frequency factors, 0 when the model has none
export const SLOT_COUNT: i32 = 16;

let table: usize = 0;

/** Allocates the pointer table for the configured layer count. Returns 0 when out of budget. */
export function allocWeightTable(): i32 {
  table = arenaAlloc(<u64>(SLOT_COUNT * n_layers * 2 * 4));
  return table != 0 ? 1 : 0;
}

export function setWeight(slot: i32, layer: i32, data: usize, scales: usize): void {
  const at = table + <usize>(((slot * n_layers + layer) * 2) << 2);
  store<u32>(at, <u32>data);
  store<u32>(at + 4, <u32>scales);
}

@inline export function weightData(slot: i32, layer: i32): usize {
  return <usize>load<u32>(table + <usize>(((slot * n_layers + layer) * 2) << 2));
}

@inline export function weightScales(slot: i32, layer: i32): usize {
  return <usize>load<u32>(table + <usize>((((slot * n_layers + layer) * 2) + 1) << 2));
}
