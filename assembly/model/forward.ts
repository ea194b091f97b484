// One decoder step of a Llama-style model: the token at `pos` goes in, logits come out,
// and the key and value of `pos` are left in the KV cache for later positions.

import { quantizeQ8 } from "../kernels/quantize";
import { matvecQ8, setMatvecRelaxed } from "../kernels/matvec_q8";
import {
  addF32, dequantizeRowQ8, rmsnorm, ropeAdjacent, ropeHalves, ropeScaled, softmax,
} from "../kernels/ops";
import { activateInPlace } from "../kernels/activation";
import { attentionScores, attentionValues } from "../kernels/attention";
import {
  activation, dim, dim_pad, gated, head_size, hidden_dim, hidden_pad, int8, kv_dim, kv_mul, n_heads,
  n_kv_heads, n_layers, norm_eps, rope_freq_scale, rope_neox, rope_theta, seq_len, vocab_size,
} from "./config";
import { countNeurons, hasBundles, predictOnly, sparseFfn } from "./sparse";
import { parallelAttention, parallelMatmatF32, parallelMatvecQ8, parallelMatvecQ8Set } from "../threads";
import {
  att, hb, hb2, key_cache, logits, q, value_cache, x, xb, xb2, xq, xs,
} from "./state";
import {
  SLOT_ATTN_K, SLOT_ATTN_K_BIAS, SLOT_ATTN_NORM, SLOT_ATTN_OUTPUT, SLOT_ATTN_Q, SLOT_ATTN_Q_BIAS,
  SLOT_ATTN_V, SLOT_ATTN_V_BIAS, SLOT_FFN_DOWN, SLOT_ROPE_FREQS,
  SLOT_FFN_GATE, SLOT_FFN_NORM, SLOT_FFN_UP, SLOT_OUTPUT, SLOT_OUTPUT_NORM, SLOT_TOKEN_EMBD,
  weightData, weightScales,
} from "./weights";

/**
 * Multiplies matrix (slot, layer) of shape (rows, cols) by the activation `input`.
 * In int8 mode the caller has already quantized `input` into xq/xs, so one quantization
 * serves every matrix that reads the same vector (Q, K and V share one).
 */
function matmul(out: usize, input: usize, slot: i32, layer: i32, rows: i32, cols: i32): void {
  if (int8) {
    parallelMatvecQ8(out, weightData(slot, layer), weightScales(slot, layer), xq, xs, rows, (cols + 31) & ~31);
  } else {
    parallelMatmatF32(out, weightData(slot, layer), input, rows, cols, 1, 0, 0);
  }
}

/** Quantizes `input` (padded length n) into xq/xs when the model runs int8. */
function prepare(input: usize, n: i32): void {
  if (int8) quantizeQ8(xq, xs, input, n);
}

/** Adds the bias vector of (slot, layer) to out when the model has one (Qwen2's Q/K/V biases). */
export function addBias(out: usize, slot: i32, layer: i32, n: i32): void {
  const bias = weightData(slot, layer);
  if (bias != 0) addF32(out, bias, n);
}

/**
 * Rotates headCount heads of vec for position pos with the model's RoPE: the unscaled kernels
 * when the model has no scaling (so llama2.c's f32 steps are kept exactly), else ropeScaled.
 */
export function rope(vec: usize, headCount: i32, pos: i32): void {
  const factors = weightData(SLOT_ROPE_FREQS, 0);
  if (factors != 0 || rope_freq_scale != 1) {
    ropeScaled(vec, headCount, head_size, pos, rope_theta, rope_neox, rope_freq_scale, factors);
  } else if (rope_neox) {
    ropeHalves(vec, headCount, head_size, pos, rope_theta);
  } else {
    ropeAdjacent(vec, headCount, head_size, pos, rope_theta);
  }
}

/** Copies the embedding row of `token` into out (dim_pad f32). */
export function embedInto(out: usize, token: i32): void {
  const data = weightData(SLOT_TOKEN_EMBD, 0);
  if (int8) {
    // writes dim_pad values; the padding quants are zero, so out stays zero past dim
    dequantizeRowQ8(out, data, weightScales(SLOT_TOKEN_EMBD, 0), token, dim_pad);
  } else {
    memory.copy(out, data + ((<usize>token * <usize>dim) << 2), <usize>dim << 2);
  }
}

/** Copies the embedding row of `token` into the residual stream x. */
function embed(token: i32): void {
  embedInto(x, token);
}

/**
 * Scaled dot-product attention of head h over positions 0..pos: reads the query at qBase,
 * writes the head's output at outBase, and uses scoreBase (seq_len f32) as scratch.
 */
export function attendHeadAt(h: i32, pos: i32, layerCache: usize, qBase: usize, outBase: usize, scoreBase: usize): void {
  const qh = qBase + (<usize>(h * head_size) << 2);
  const scores = scoreBase;
  const kvOffset = <usize>((h / kv_mul) * head_size) << 2;
  const scale: f32 = 1.0 / Mathf.sqrt(<f32>head_size);

  attentionScores(scores, qh, key_cache + layerCache + kvOffset, kv_dim, pos + 1, head_size, scale);
  softmax(scores, pos + 1);
  attentionValues(outBase + (<usize>(h * head_size) << 2), scores, value_cache + layerCache + kvOffset, kv_dim, pos + 1, head_size);
}

/**
 * Trace buffer for calibration, 0 when off: (n_layers, dim + hidden_dim) f32 holding per layer
 * the FFN input after its RMSNorm, then the gate pre-activations.
 */
let trace: usize = 0;

export function setTrace(pointer: usize): void {
  trace = pointer;
}

/** Runs the FFN of layer l on xb (already normed) and leaves its output in xb2. */
function ffn(l: i32): void {
  const traceInput = trace != 0 ? trace + (<usize>(l * (dim + hidden_dim)) << 2) : 0;
  const traceGate = trace != 0 ? traceInput + (<usize>dim << 2) : 0;
  if (traceInput != 0) memory.copy(traceInput, xb, <usize>dim << 2);
  prepare(xb, dim_pad);

  // neuron-major bundles: predictor, candidates, threshold, kept neurons only
  if (int8 && hasBundles(l)) {
    sparseFfn(l, xq, xs, xb2, traceGate);
    return;
  }

  // dense: down(act(gate x) * up x), or down(act(up x)) for non-gated FFNs (registered as gate)
  if (int8 && gated) {
    // one barrier for both matrices
    parallelMatvecQ8Set(2, xq, xs, dim_pad,
      hb, weightData(SLOT_FFN_GATE, l), weightScales(SLOT_FFN_GATE, l), hidden_dim,
      hb2, weightData(SLOT_FFN_UP, l), weightScales(SLOT_FFN_UP, l), hidden_dim,
      0, 0, 0, 0);
  } else {
    matmul(hb, xb, SLOT_FFN_GATE, l, hidden_dim, dim);
    if (gated) matmul(hb2, xb, SLOT_FFN_UP, l, hidden_dim, dim);
  }
  if (traceGate != 0) memory.copy(traceGate, hb, <usize>hidden_dim << 2);
  activateInPlace(hb, gated ? hb2 : 0, hidden_dim, activation);
  countNeurons(l, hidden_dim, hidden_dim);
  prepare(hb, hidden_pad);
  matmul(xb2, hb, SLOT_FFN_DOWN, l, dim, hidden_dim);
}

/** Runs the FFN of layer l `repeats` times on `input` (dim f32); benchmarks time it. */
export function ffnRepeat(l: i32, input: usize, repeats: i32): void {
  for (let r = 0; r < repeats; r++) {
    memory.copy(xb, input, <usize>dim << 2);
    ffn(l);
  }
}

/** Runs the predictor of layer l `repeats` times on `input` (dim f32, already normed); benchmarks time it. */
export function predictorRepeat(l: i32, input: usize, repeats: i32): void {
  memory.copy(xb, input, <usize>dim << 2);
  prepare(xb, dim_pad);
  for (let r = 0; r < repeats; r++) predictOnly(l, xq, xs);
}

/** Runs the final norm and the classifier `repeats` times on the residual stream x; benchmarks time it. */
export function classifierRepeat(repeats: i32): void {
  for (let r = 0; r < repeats; r++) {
    rmsnorm(xb, x, weightData(SLOT_OUTPUT_NORM, 0), dim, norm_eps);
    prepare(xb, dim_pad);
    matmul(logits, xb, SLOT_OUTPUT, 0, vocab_size, dim);
  }
}

/** Runs attention of every head of layer l at position pos `repeats` times on the current q; benchmarks time it. */
export function attentionRepeat(l: i32, pos: i32, repeats: i32): void {
  const layerCache = (<usize>l * <usize>seq_len * <usize>kv_dim) << 2;
  for (let r = 0; r < repeats; r++) parallelAttention(pos, layerCache, q, 0, xb, 0, 1, att);
}

/** Runs one position through every layer and returns a pointer to the logits (vocab_size f32). */
export function forward(token: i32, pos: i32): usize {
  embed(token);

  for (let l = 0; l < n_layers; l++) {
    // attention rmsnorm
    rmsnorm(xb, x, weightData(SLOT_ATTN_NORM, l), dim, norm_eps);

    // qkv: the new key and value go straight into the cache row of this position
    const layerCache = (<usize>l * <usize>seq_len * <usize>kv_dim) << 2;
    const k = key_cache + layerCache + (<usize>(pos * kv_dim) << 2);
    const v = value_cache + layerCache + (<usize>(pos * kv_dim) << 2);
    prepare(xb, dim_pad);
    if (int8) {
      // one barrier for the three matrices
      parallelMatvecQ8Set(3, xq, xs, dim_pad,
        q, weightData(SLOT_ATTN_Q, l), weightScales(SLOT_ATTN_Q, l), dim,
        k, weightData(SLOT_ATTN_K, l), weightScales(SLOT_ATTN_K, l), kv_dim,
        v, weightData(SLOT_ATTN_V, l), weightScales(SLOT_ATTN_V, l), kv_dim);
    } else {
      matmul(q, xb, SLOT_ATTN_Q, l, dim, dim);
      matmul(k, xb, SLOT_ATTN_K, l, kv_dim, dim);
      matmul(v, xb, SLOT_ATTN_V, l, kv_dim, dim);
    }
    addBias(q, SLOT_ATTN_Q_BIAS, l, dim);
    addBias(k, SLOT_ATTN_K_BIAS, l, kv_dim);
    addBias(v, SLOT_ATTN_V_BIAS, l, kv_dim);

    // rope: adjacent pairs (llama2.c, GGUF "llama") or halves (NEOX, GGUF "qwen2")
    rope(q, n_heads, pos);
    rope(k, n_kv_heads, pos);

    // grouped-query attention, heads split across threads
    parallelAttention(pos, layerCache, q, 0, xb, 0, 1, att);

    // output projection and residual
    prepare(xb, dim_pad);
    matmul(xb2, xb, SLOT_ATTN_OUTPUT, l, dim, dim);
    addF32(x, xb2, dim);

    // ffn rmsnorm
    rmsnorm(xb, x, weightData(SLOT_FFN_NORM, l), dim, norm_eps);

    // ffn, dense or sparse
    ffn(l);

    // residual
    addF32(x, xb2, dim);
  }

  // final rmsnorm and classifier
  rmsnorm(xb, x, weightData(SLOT_OUTPUT_NORM, 0), dim, norm_eps);
  prepare(xb, dim_pad);
  matmul(logits, xb, SLOT_OUTPUT, 0, vocab_size, dim);
  return logits;
}

/**
 * Runs matvecQ8 on layer 0's query matrix `repeats` times on one thread with the relaxed (1) or
 * exact (0) dot, and leaves that choice set. The host times both to pick one.
 */
export function matvecProbe(relaxed: i32, repeats: i32): void {
  setMatvecRelaxed(relaxed);
  const weights = weightData(SLOT_ATTN_Q, 0);
  if (!int8 || weights == 0) return;
  for (let r = 0; r < repeats; r++) matvecQ8(q, weights, weightScales(SLOT_ATTN_Q, 0), xq, xs, dim, dim_pad);
}
