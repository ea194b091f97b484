// Sparse FFN over neuron-major bundles: predictor → candidates → exact gate rows for the
// candidates → threshold τ_l → up rows and down columns only for the kept neurons.
//
// Bundle of neuron j (stride bundleStride bytes, a multiple of 64), int8 in blocks of 32:
//
//   | gate row j (dim_pad i8) | up row j (dim_pad i8) | down column j (dim_pad i8) |
//   | gate scales (dim_pad/32 f32) | up scales (dim_pad/32 f32) | padding |
//
// One active neuron is one contiguous read. The scales of the down columns are shared by the 32
// neurons of a block (they come from the rows of the down matrix, quantized along hidden_dim):
//
//   downScales  (hidden_pad / 32, dim_pad) f32: scale of output i for neuron block b
//
// Predictor of a layer: z = P_down · x (P_down int8, rank × dim_pad, runtime layout of
// matvec_q8.ts), ĝ = P_up · z (P_up f32, hidden_dim × rank). Neuron j is a candidate when
// |act(ĝ_j)| ≥ cutoff_l. A neuron is kept when act(g_j) ≠ 0 and |act(g_j)| ≥ τ_l.

import { arenaAlloc } from "../memory";
import { activate } from "../kernels/activation";
import { matvecF32 } from "../kernels/matvec_f32";
import { matvecQ8 } from "../kernels/matvec_q8";
import { quantizeQ8 } from "../kernels/quantize";
import { accumulatePairQ8, applyBlockScales, dotRowQ8 } from "../kernels/sparse_q8";
import { activation, dim, dim_pad, gated, hidden_dim, hidden_pad, n_layers } from "./config";

export const MODE_DENSE: i32 = 0;
export const MODE_ORACLE: i32 = 1;
export const MODE_PREDICTED: i32 = 2;

/** How the FFN of layers with bundles runs; set by the host per call. */
export let mode: i32 = MODE_DENSE;

// Per-layer table, LAYER_FIELDS u32/f32 slots each.
const FIELD_BUNDLES: i32 = 0;       // bundle base pointer, 0 = layer runs the dense matrices
const FIELD_DOWN_SCALES: i32 = 1;   // (hidden_pad / 32, dim_pad) f32
const FIELD_PRED_DOWN: i32 = 2;     // P_down quants, 0 = no predictor
const FIELD_PRED_DOWN_SCALES: i32 = 3;
const FIELD_PRED_UP: i32 = 4;       // (hidden_dim, rank) f32
const FIELD_RANK: i32 = 5;          // i32
const FIELD_THRESHOLD: i32 = 6;     // τ_l, f32
const FIELD_CUTOFF: i32 = 7;        // candidate cutoff, f32
const LAYER_FIELDS: i32 = 8;

// Per-layer counters, f64 each: tokens, candidates, kept.
const STAT_FIELDS: i32 = 3;

let layers: usize = 0;
let stats: usize = 0;
let accI32: usize = 0;    // (dim_pad) i32, integer sums of one neuron block
let hidden: usize = 0;    // (hidden_pad) f32, act(g) · u of kept neurons, zero elsewhere
let hiddenQ: usize = 0;   // (hidden_pad) i8
let hiddenS: usize = 0;   // (hidden_pad / 32) f32
let predicted: usize = 0; // (hidden_pad) f32, ĝ
let projected: usize = 0; // (maxRank rounded up to 4) f32, z

/** Bytes of one bundle. */
export function bundleStride(): i32 {
  return (3 * dim_pad + 2 * (dim_pad >> 5) * 4 + 63) & ~63;
}

/** Allocates the sparse tables and scratch for predictors of rank up to maxRank. Returns 0 when over budget. */
export function allocSparse(maxRank: i32): i32 {
  layers = arenaAlloc(<u64>(n_layers * LAYER_FIELDS * 4));
  stats = arenaAlloc(<u64>(n_layers * STAT_FIELDS * 8));
  accI32 = arenaAlloc(<u64>dim_pad << 2);
  hidden = arenaAlloc(<u64>hidden_pad << 2);
  hiddenQ = arenaAlloc(<u64>hidden_pad);
  hiddenS = arenaAlloc(<u64>(hidden_pad >> 5) << 2);
  predicted = arenaAlloc(<u64>hidden_pad << 2);
  projected = arenaAlloc(<u64>(((maxRank + 3) & ~3) + 4) << 2);
  return layers != 0 && stats != 0 && accI32 != 0 && hidden != 0 && hiddenQ != 0 && hiddenS != 0 &&
    predicted != 0 && projected != 0 ? 1 : 0;
}

/** Bytes allocSparse() takes, for the host's budget. */
export function sparseBytes(maxRank: i32): u64 {
  return <u64>(n_layers * LAYER_FIELDS * 4 + n_layers * STAT_FIELDS * 8 + dim_pad * 4 + hidden_pad * 4 +
    hidden_pad + (hidden_pad >> 5) * 4 + hidden_pad * 4 + ((((maxRank + 3) & ~3) + 4) << 2) + 8 * 64);
}

@inline function field(layer: i32, index: i32): usize {
  return layers + (<usize>(layer * LAYER_FIELDS + index) << 2);
}

export function setMode(value: i32): void {
  mode = value;
}

/** Registers the bundles and down scales of a layer. */
export function setBundles(layer: i32, bundles: usize, downScales: usize): void {
  store<u32>(field(layer, FIELD_BUNDLES), <u32>bundles);
  store<u32>(field(layer, FIELD_DOWN_SCALES), <u32>downScales);
}

/** Registers the predictor, threshold and cutoff of a layer. */
export function setSparsity(layer: i32, predDown: usize, predDownScales: usize, predUp: usize, rank: i32, threshold: f32, cutoff: f32): void {
  store<u32>(field(layer, FIELD_PRED_DOWN), <u32>predDown);
  store<u32>(field(layer, FIELD_PRED_DOWN_SCALES), <u32>predDownScales);
  store<u32>(field(layer, FIELD_PRED_UP), <u32>predUp);
  store<i32>(field(layer, FIELD_RANK), rank);
  store<f32>(field(layer, FIELD_THRESHOLD), threshold);
  store<f32>(field(layer, FIELD_CUTOFF), cutoff);
}

/** Overrides the threshold of a layer, and its cutoff unless cutoff is negative. */
export function setThreshold(layer: i32, threshold: f32, cutoff: f32): void {
  store<f32>(field(layer, FIELD_THRESHOLD), threshold);
  if (cutoff >= 0) store<f32>(field(layer, FIELD_CUTOFF), cutoff);
}

/** Returns 1 when layer l holds bundles, so its FFN runs here. */
@inline export function hasBundles(layer: i32): bool {
  return layers != 0 && load<u32>(field(layer, FIELD_BUNDLES)) != 0;
}

/** Pointer to the counters: (n_layers, 3) f64 = tokens, candidates, kept. */
export function statsPointer(): usize {
  return stats;
}

/** Adds one token's counts to layer l. Dense layers count every neuron as candidate and kept. */
export function countNeurons(layer: i32, candidates: i32, kept: i32): void {
  if (stats == 0) return;
  const at = stats + (<usize>(layer * STAT_FIELDS) << 3);
  store<f64>(at, load<f64>(at) + 1);
  store<f64>(at + 8, load<f64>(at + 8) + <f64>candidates);
  store<f64>(at + 16, load<f64>(at + 16) + <f64>kept);
}

/**
 * Runs the FFN of layer l from the quantized input (xq, xs) and writes the down projection to out
 * (dim f32). gateTrace, when not 0, receives every computed gate pre-activation (others stay 0).
 */
export function sparseFfn(layer: i32, xq: usize, xs: usize, out: usize, gateTrace: usize): void {
  const bundles = <usize>load<u32>(field(layer, FIELD_BUNDLES));
  const stride = <usize>bundleStride();
  const dp = <usize>dim_pad;
  const threshold = load<f32>(field(layer, FIELD_THRESHOLD));
  const cutoff = load<f32>(field(layer, FIELD_CUTOFF));
  const predUp = <usize>load<u32>(field(layer, FIELD_PRED_UP));
  const usePredictor = mode == MODE_PREDICTED && predUp != 0;
  const useThreshold = mode != MODE_DENSE;

  // predictor: z = P_down x, ĝ = P_up z
  if (usePredictor) {
    const rank = load<i32>(field(layer, FIELD_RANK));
    matvecQ8(projected, <usize>load<u32>(field(layer, FIELD_PRED_DOWN)), <usize>load<u32>(field(layer, FIELD_PRED_DOWN_SCALES)), xq, xs, rank, dim_pad);
    matvecF32(predicted, predUp, projected, hidden_dim, rank);
  }

  // One block of 32 neurons at a time: exact gate rows for candidates, threshold, up rows for
  // kept neurons, then the block's down columns while its bundles are still in cache. Blocks are
  // quantized on their own exactly as quantizeQ8 does over the whole vector, so the result equals
  // quantizing all of h first.
  const downScales = <usize>load<u32>(field(layer, FIELD_DOWN_SCALES));
  memory.fill(out, 0, <usize>dim_pad << 2);
  let candidates = 0;
  let kept = 0;
  const blocks = hidden_pad >> 5;
  for (let b = 0; b < blocks; b++) {
    const first = b << 5;
    const last = min(first + 32, hidden_dim);
    let keptInBlock = 0;
    for (let j = first; j < first + 32; j++) store<f32>(hidden + (<usize>j << 2), 0);

    for (let j = first; j < last; j++) {
      if (usePredictor && Mathf.abs(activate(load<f32>(predicted + (<usize>j << 2)), activation)) < cutoff) continue;
      candidates++;

      const bundle = bundles + <usize>j * stride;
      const g = dotRowQ8(bundle, bundle + 3 * dp, xq, xs, dim_pad);
      if (gateTrace != 0) store<f32>(gateTrace + (<usize>j << 2), g);
      const a = activate(g, activation);
      if (a == 0 || (useThreshold && Mathf.abs(a) < threshold)) continue;

      const h = gated ? a * dotRowQ8(bundle + dp, bundle + 3 * dp + (dp >> 3), xq, xs, dim_pad) : a;
      store<f32>(hidden + (<usize>j << 2), h);
      keptInBlock++;
    }
    kept += keptInBlock;
    // a block with no kept neuron adds f32(0) · scale to every output in the dense kernel, which
    // leaves the (never negative-zero) accumulator unchanged, so skipping it keeps the result exact
    if (keptInBlock == 0) continue;

    const blockQ = hiddenQ + <usize>first;
    const blockS = hiddenS + (<usize>b << 2);
    quantizeQ8(blockQ, blockS, hidden + (<usize>first << 2), 32);
    let pending = -1;
    for (let j = first; j < first + 32; j++) {
      const q = <i32>load<i8>(hiddenQ + <usize>j);
      if (q == 0) continue;
      if (pending < 0) {
        pending = j;
        continue;
      }
      const qPending = <i32>load<i8>(hiddenQ + <usize>pending);
      accumulatePairQ8(accI32, bundles + <usize>pending * stride + 2 * dp, bundles + <usize>j * stride + 2 * dp, qPending, q, dim_pad);
      pending = -1;
    }
    if (pending >= 0) {
      const column = bundles + <usize>pending * stride + 2 * dp;
      accumulatePairQ8(accI32, column, column, <i32>load<i8>(hiddenQ + <usize>pending), 0, dim_pad);
    }
    applyBlockScales(out, accI32, downScales + ((<usize>b * dp) << 2), load<f32>(blockS), dim_pad);
  }
  countNeurons(layer, candidates, kept);
}
