// Hyperparameters of the loaded model and the derived sizes the forward pass uses.
// Set once by modelInit(); the forward pass reads them as plain globals.

export let dim: i32 = 0;
export let hidden_dim: i32 = 0;
export let n_layers: i32 = 0;
export let n_heads: i32 = 0;
export let n_kv_heads: i32 = 0;
export let vocab_size: i32 = 0;
export let seq_len: i32 = 0;
export let norm_eps: f32 = 1e-5;
export let rope_theta: f32 = 10000.0;

export let head_size: i32 = 0;
export let kv_dim: i32 = 0;
/** Query heads per key/value head (grouped-query attention). */
export let kv_mul: i32 = 1;

/** Row lengths rounded up to whole blocks of 32, the int8 runtime layout. */
export let dim_pad: i32 = 0;
export let hidden_pad: i32 = 0;

/** 1 when matrices are int8 blocks (Q8_0-style), 0 when they are f32. */
export let int8: i32 = 1;

/** FFN activation kind (kernels/activation.ts) and whether the FFN is gated (act(gate) · up). */
export let activation: i32 = 0;
export let gated: bool = true;

/** RoPE pairing: 0 adjacent pairs (llama.cpp's NORM), 1 halves (NEOX). */
export let rope_neox: i32 = 0;

/** Position multiplier of linear RoPE scaling (1 / factor); 1 without scaling. */
export let rope_freq_scale: f32 = 1;

export function setRope(neox: i32, freqScale: f32): void {
  rope_neox = neox;
  rope_freq_scale = freqScale;
}

export function setActivation(kind: i32, isGated: i32): void {
  activation = kind;
  gated = isGated != 0;
}

/** Rounds n up to a multiple of 32, the int8 block size. */
export function pad32(n: i32): i32 {
  return (n + 31) & ~31;
}

export function setConfig(
  dimValue: i32, hiddenDim: i32, nLayers: i32, nHeads: i32, nKvHeads: i32,
  vocabSize: i32, seqLen: i32, eps: f32, theta: f32, useInt8: i32,
): void {
  dim = dimValue;
  hidden_dim = hiddenDim;
  n_layers = nLayers;
  n_heads = nHeads;
  n_kv_heads = nKvHeads;
  vocab_size = vocabSize;
  seq_len = seqLen;
  norm_eps = eps;
  rope_theta = theta;
  head_size = dimValue / nHeads;
  kv_dim = (dimValue * nKvHeads) / nHeads;
  kv_mul = nHeads / nKvHeads;
  dim_pad = pad32(dimValue);
  hidden_pad = pad32(hiddenDim);
  int8 = useInt8;
}
