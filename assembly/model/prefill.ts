// Prefill: a block of up to PREFILL_BLOCK prompt tokens through every layer at once. Matrices
// run as matrix × block (matmat_q8.ts), so each weight is read from memory once per block.
// Attention runs per token over positions 0..pos, which is the causal mask.
// Every operation is the one forward() performs for a single token, in the same order, so a
// block gives bit-identical logits and KV cache to feeding its tokens one by one.

import { arenaAlloc } from "../memory";
import { activateInPlace } from "../kernels/activation";
import { matmatQ8, matmatScratchBytes, setMatmatRelaxed, setMatmatScratch } from "../kernels/matmat_q8";
import { parallelAttention, parallelMatmatF32, parallelMatmatQ8, parallelMatvecQ8 } from "../threads";
import { addF32, rmsnorm } from "../kernels/ops";
import { quantizeQ8 } from "../kernels/quantize";
import {
  activation, dim, dim_pad, gated, head_size, hidden_dim, hidden_pad, int8, kv_dim, n_heads, n_kv_heads,
  n_layers, norm_eps, seq_len, vocab_size,
} from "./config";
import { addBias, embedInto, rope } from "./forward";
import { countNeurons, hasBundles, sparseFfn } from "./sparse";
import { att, key_cache, logits, value_cache, xb } from "./state";
import {
  SLOT_ATTN_K, SLOT_ATTN_K_BIAS, SLOT_ATTN_NORM, SLOT_ATTN_OUTPUT, SLOT_ATTN_Q, SLOT_ATTN_Q_BIAS,
  SLOT_ATTN_V, SLOT_ATTN_V_BIAS, SLOT_FFN_DOWN, SLOT_FFN_GATE, SLOT_FFN_NORM, SLOT_FFN_UP,
  SLOT_OUTPUT, SLOT_OUTPUT_NORM, weightData, weightScales,
} from "./weights";

/**
 * Tokens per prefill block. A block reads and transposes each weight once, so larger blocks
 * spread that over more tokens. A 128-token prompt on the stories110M shape ran at 316 tokens/s
 * with 16, 335 with 32, 347 with 64 and 351 with 128 (Node 20, one thread, 2026-12-05). 64 keeps
 * the block buffers under 1 MB there; the all-token logits buffer is 64 × vocab_size f32.
 */
export const PREFILL_BLOCK: i32 = 64;

let tokens: usize = 0;   // (PREFILL_BLOCK) i32, filled by the host
let bx: usize = 0;       // (PREFILL_BLOCK, dim_pad) f32, residual streams
let bxb: usize = 0;      // (PREFILL_BLOCK, dim_pad) f32, normed inputs / attention outputs
let bxb2: usize = 0;     // (PREFILL_BLOCK, dim_pad) f32, projection outputs
let bq: usize = 0;       // (PREFILL_BLOCK, dim) f32, queries
let bhb: usize = 0;      // (PREFILL_BLOCK, hidden_pad) f32
let bhb2: usize = 0;     // (PREFILL_BLOCK, hidden_pad) f32
let bxq: usize = 0;      // (PREFILL_BLOCK, widest) i8, quantized inputs
let bxs: usize = 0;      // (PREFILL_BLOCK, widest / 32) f32
let blogits: usize = 0;  // (PREFILL_BLOCK, vocab_size) f32, logits of every token when requested
let widest: i32 = 0;

/** Bytes allocPrefill() takes. */
export function prefillBytes(): u64 {
  const w = <u64>max(dim_pad, hidden_pad);
  const b = <u64>PREFILL_BLOCK;
  return b * 4 + b * (3 * <u64>dim_pad + <u64>dim + 2 * <u64>hidden_pad + w / 32 + <u64>vocab_size) * 4 + b * w + 11 * 64 +
    <u64>matmatScratchBytes(<i32>w, PREFILL_BLOCK) + 64;
}

/** Allocates the block buffers. Returns 0 when over budget. */
export function allocPrefill(): i32 {
  widest = max(dim_pad, hidden_pad);
  const b = <u64>PREFILL_BLOCK;
  tokens = arenaAlloc(b * 4);
  bx = arenaAlloc(b * <u64>dim_pad * 4);
  bxb = arenaAlloc(b * <u64>dim_pad * 4);
  bxb2 = arenaAlloc(b * <u64>dim_pad * 4);
  bq = arenaAlloc(b * <u64>dim * 4);
  bhb = arenaAlloc(b * <u64>hidden_pad * 4);
  bhb2 = arenaAlloc(b * <u64>hidden_pad * 4);
  bxq = arenaAlloc(b * <u64>widest);
  bxs = arenaAlloc(b * <u64>(widest >> 5) * 4);
  blogits = arenaAlloc(b * <u64>vocab_size * 4);
  // this instance's matmatQ8 scratch; worker instances need their own
  const matmatBytes = matmatScratchBytes(widest, PREFILL_BLOCK);
  const matmatScratch = arenaAlloc(<u64>matmatBytes);
  setMatmatScratch(matmatScratch, matmatBytes);
  return tokens != 0 && bx != 0 && bxb != 0 && bxb2 != 0 && bq != 0 && bhb != 0 && bhb2 != 0 &&
    bxq != 0 && bxs != 0 && blogits != 0 && matmatScratch != 0 ? 1 : 0;
}

/** Pointer to the block's token ids, (PREFILL_BLOCK) i32. */
export function prefillTokens(): usize {
  return tokens;
}

@inline function row(base: usize, t: i32, stride: i32): usize {
  return base + ((<usize>t * <usize>stride) << 2);
}

/** Quantizes rows 0..n-1 of `input` (stride f32 each, first `length` used) into bxq/bxs. */
function prepareBlock(input: usize, stride: i32, length: i32, n: i32): void {
  if (!int8) return;
  for (let t = 0; t < n; t++) {
    quantizeQ8(bxq + <usize>t * <usize>widest, bxs + ((<usize>t * <usize>(widest >> 5)) << 2), row(input, t, stride), length);
  }
}

/** Multiplies matrix (slot, layer) of shape (rows, cols) by rows 0..n-1 of input into out. */
function matmulBlock(out: usize, outStride: i32, input: usize, inputStride: i32, slot: i32, layer: i32, rows: i32, cols: i32, n: i32): void {
  if (int8) {
    parallelMatmatQ8(out, weightData(slot, layer), weightScales(slot, layer), bxq, bxs, rows, (cols + 31) & ~31, n, widest, outStride);
  } else {
    parallelMatmatF32(out, weightData(slot, layer), input, rows, cols, n, inputStride, outStride);
  }
}

/** forwardBlock's `logits` argument: the last token's logits, every token's, or none. */
export const LOGITS_LAST: i32 = 0;
export const LOGITS_ALL: i32 = 1;
export const LOGITS_NONE: i32 = 2;

/**
 * Runs the n tokens at prefillTokens() at positions pos0..pos0+n-1 and returns a pointer to the
 * logits: of the last token (vocab_size f32, LOGITS_LAST), of every token ((n, vocab_size),
 * LOGITS_ALL), or 0 with LOGITS_NONE. A prompt's blocks before its last need no logits, and the
 * classifier is the largest matrix of a small model (a fifth of stories110M's weights).
 */
export function forwardBlock(n: i32, pos0: i32, logitsMode: i32): usize {
  for (let t = 0; t < n; t++) embedInto(row(bx, t, dim_pad), load<i32>(tokens + (<usize>t << 2)));

  for (let l = 0; l < n_layers; l++) {
    // attention rmsnorm
    for (let t = 0; t < n; t++) rmsnorm(row(bxb, t, dim_pad), row(bx, t, dim_pad), weightData(SLOT_ATTN_NORM, l), dim, norm_eps);

    // qkv: keys and values of the block go straight into consecutive cache rows
    const layerCache = (<usize>l * <usize>seq_len * <usize>kv_dim) << 2;
    const k0 = key_cache + layerCache + (<usize>(pos0 * kv_dim) << 2);
    const v0 = value_cache + layerCache + (<usize>(pos0 * kv_dim) << 2);
    prepareBlock(bxb, dim_pad, dim_pad, n);
    matmulBlock(bq, dim, bxb, dim_pad, SLOT_ATTN_Q, l, dim, dim, n);
    matmulBlock(k0, kv_dim, bxb, dim_pad, SLOT_ATTN_K, l, kv_dim, dim, n);
    matmulBlock(v0, kv_dim, bxb, dim_pad, SLOT_ATTN_V, l, kv_dim, dim, n);

    for (let t = 0; t < n; t++) {
      const qt = row(bq, t, dim);
      const kt = row(k0, t, kv_dim);
      addBias(qt, SLOT_ATTN_Q_BIAS, l, dim);
      addBias(kt, SLOT_ATTN_K_BIAS, l, kv_dim);
      addBias(row(v0, t, kv_dim), SLOT_ATTN_V_BIAS, l, kv_dim);
      rope(qt, n_heads, pos0 + t);
      rope(kt, n_kv_heads, pos0 + t);
    }

    // causal attention: token t attends to positions 0..pos0+t
    parallelAttention(pos0, layerCache, bq, dim, bxb, dim_pad, n, att);

    // output projection and residual
    prepareBlock(bxb, dim_pad, dim_pad, n);
    matmulBlock(bxb2, dim_pad, bxb, dim_pad, SLOT_ATTN_OUTPUT, l, dim, dim, n);
    for (let t = 0; t < n; t++) addF32(row(bx, t, dim_pad), row(bxb2, t, dim_pad), dim);

    // ffn rmsnorm and ffn
    for (let t = 0; t < n; t++) rmsnorm(row(bxb, t, dim_pad), row(bx, t, dim_pad), weightData(SLOT_FFN_NORM, l), dim, norm_eps);
    prepareBlock(bxb, dim_pad, dim_pad, n);
    if (int8 && hasBundles(l)) {
      for (let t = 0; t < n; t++) {
        sparseFfn(l, bxq + <usize>t * <usize>widest, bxs + ((<usize>t * <usize>(widest >> 5)) << 2), row(bxb2, t, dim_pad), 0);
      }
    } else {
      matmulBlock(bhb, hidden_pad, bxb, dim_pad, SLOT_FFN_GATE, l, hidden_dim, dim, n);
      if (gated) matmulBlock(bhb2, hidden_pad, bxb, dim_pad, SLOT_FFN_UP, l, hidden_dim, dim, n);
      for (let t = 0; t < n; t++) {
        activateInPlace(row(bhb, t, hidden_pad), gated ? row(bhb2, t, hidden_pad) : 0, hidden_dim, activation);
        countNeurons(l, hidden_dim, hidden_dim);
      }
      prepareBlock(bhb, hidden_pad, hidden_pad, n);
      matmulBlock(bxb2, dim_pad, bhb, hidden_pad, SLOT_FFN_DOWN, l, dim, hidden_dim, n);
    }

    // residual
    for (let t = 0; t < n; t++) addF32(row(bx, t, dim_pad), row(bxb2, t, dim_pad), dim);
  }

  // final rmsnorm and classifier, for the last token, for all of them or for none
  if (logitsMode == LOGITS_NONE) return 0;
  const allLogits = logitsMode == LOGITS_ALL;
  const first = allLogits ? 0 : n - 1;
  for (let t = first; t < n; t++) {
    rmsnorm(xb, row(bx, t, dim_pad), weightData(SLOT_OUTPUT_NORM, 0), dim, norm_eps);
    const out = allLogits ? row(blogits, t, vocab_size) : logits;
    if (int8) {
      quantizeQ8(bxq, bxs, xb, dim_pad);
      parallelMatvecQ8(out, weightData(SLOT_OUTPUT, 0), weightScales(SLOT_OUTPUT, 0), bxq, bxs, vocab_size, dim_pad);
    } else {
      parallelMatmatF32(out, weightData(SLOT_OUTPUT, 0), xb, vocab_size, dim, 1, 0, 0);
    }
  }
  return allLogits ? blogits : logits;
}

/**
 * Runs the blocked int8 kernel on layer 0's query matrix for a full block `repeats` times, with
 * the relaxed (1) or exact (0) dot, and leaves that choice set. The host times both to pick one.
 */
export function prefillProbe(relaxed: i32, repeats: i32): void {
  setMatmatRelaxed(relaxed);
  const weights = weightData(SLOT_ATTN_Q, 0);
  if (!int8 || weights == 0) return;
  for (let r = 0; r < repeats; r++) {
    matmatQ8(bq, weights, weightScales(SLOT_ATTN_Q, 0), bxq, bxs, dim, dim_pad, PREFILL_BLOCK, widest, dim);
  }
}
