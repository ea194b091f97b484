// Sparse FFN over neuron-major bundles: predictor → candidates → exact gate rows for the
// candidates → threshold τ_l → up rows and down columns only for the kept neurons.
//
// Bundle of neuron j (bundleStride() bytes, a multiple of 64), int8 in blocks of 32. Each row is
// followed by its scales, so a kernel finds them at row + dim_pad:
//
//   | gate row j | gate scales | up row j   | up scales | down column j | pad to 64 |
//     dim_pad i8   S bytes       dim_pad i8   S bytes     dim_pad i8
//
//   S = dim_pad / 32 f32, rounded up to 16 bytes. dim 768: 768 + 96 + 768 + 96 + 768 = 2496 bytes.
//
// Bundles of one layer lie back to back, hidden_pad of them, so a 32-neuron block is one
// contiguous range of 32 bundles. One kept neuron is one contiguous read. The scales of the down
// columns are shared by the 32 neurons of a block (they come from the rows of the down matrix,
// quantized along hidden_dim) and lie apart:
//
//   downScales  (hidden_pad / 32, dim_pad) f32: scale of output i for neuron block b
//
// Predictor of a layer: z = P_down · x (P_down int8, rank × dim_pad), then ĝ = P_up · zq with zq
// the Q8_0 quantization of z and P_up int8 (hidden_dim × rank_pad, rank_pad = rank rounded up to
// 32), both in the runtime layout of matvec_q8.ts. P_up's scales follow its quants at
// predictorUpScales(). Neuron j is a candidate when |act(ĝ_j)| ≥ cutoff_l (see candidates.ts),
// and kept when act(g_j) ≠ 0 and |act(g_j)| ≥ τ_l.
//
// Memory access: one thread read a region in order at about 25 GB/s, because the hardware
// prefetcher runs ahead. It read scattered rows of a few hundred bytes at 4-7 GB/s, bound by the
// cache misses in flight (micro-benchmarks on an EPYC Zen 4 VM, Node 20). Reading rows with gaps
// between them lost the prefetcher's stream just the same, and touching lines between kernel
// steps did not overlap with the compute. So when at least STREAM_FRACTION of the neurons are
// candidates, each 32-neuron block is first read whole in order (touchLines) and then computed
// from cache. Below that only the rows in use are read.
//
// Threads (assembly/threads.ts) split the FFN in two passes. The gate pass splits neuron blocks
// (gates, threshold, up rows, the block's quantized h). The down pass splits outputs, and each
// thread adds every block's columns to its own outputs in block order. One thread runs each
// block's down projection right after its gates instead, while its bundles are in cache. Both
// add the same values to each output in the same order, so the bits agree.

import { arenaAlloc } from "../memory";
import { activate } from "../kernels/activation";
import { BOUND_FIELDS, cutoffBounds, selectCandidates } from "../kernels/candidates";
import { matvecQ8 } from "../kernels/matvec_q8";
import { quantizeQ8 } from "../kernels/quantize";
import { dotRows4Q8, downColumnsQ8, touchLines } from "../kernels/sparse_q8";
import { activation, dim, dim_pad, gated, hidden_dim, hidden_pad, n_layers, pad32, setActivation } from "./config";
import { MAX_THREADS, MIN_PARALLEL_WORK, parallelMatvecQ8, parallelSparse, threadCount } from "../threads";

export const MODE_DENSE: i32 = 0;
export const MODE_ORACLE: i32 = 1;
export const MODE_PREDICTED: i32 = 2;

/** FFN mode of layers with bundles, set by the host per call. */
export let mode: i32 = MODE_DENSE;

// Per-layer table, LAYER_FIELDS u32/f32 slots each.
const FIELD_BUNDLES: i32 = 0;       // bundle base pointer, 0 = layer runs the dense matrices
const FIELD_DOWN_SCALES: i32 = 1;   // (hidden_pad / 32, dim_pad) f32
const FIELD_PRED_DOWN: i32 = 2;     // P_down quants, 0 = no predictor
const FIELD_PRED_DOWN_SCALES: i32 = 3;
const FIELD_PRED_UP: i32 = 4;       // P_up quants, then its scales
const FIELD_RANK: i32 = 5;          // i32
const FIELD_THRESHOLD: i32 = 6;     // τ_l, f32
const FIELD_CUTOFF: i32 = 7;        // candidate cutoff, f32
const LAYER_FIELDS: i32 = 8;

// Per-layer counters, f64 each: tokens, candidates, kept.
const STAT_FIELDS: i32 = 3;

/**
 * Fraction of candidates from which the FFN streams whole blocks. With the stories110M shape on the
 * VM above, scattered reads were 10% faster at 0.33 candidates and streaming 4% faster at 0.44.
 */
const STREAM_FRACTION: f32 = 0.4;

let layers: usize = 0;
let stats: usize = 0;
let bounds: usize = 0;    // (n_layers, BOUND_FIELDS) f32, candidate bounds of each cutoff
let masks: usize = 0;     // (hidden_pad / 32) u32, candidate bit per neuron
let blockQ: usize = 0;    // (hidden_pad) i8, quantized act(g) · u of kept neurons, per block
let blockS: usize = 0;    // (hidden_pad / 32) f32, their scales
let blockNonzero: usize = 0; // (hidden_pad / 32) u32, neurons whose quant is not 0
let blockKept: usize = 0; // (hidden_pad / 32) i32, kept neurons
let job: usize = 0;       // (JOB_FIELDS) i32, the layer's pointers for worker threads
let scratchSets: usize = 0; // (MAX_THREADS, SCRATCH_BYTES), one scratch set per thread

// A thread's scratch set, at the offsets below.
let values: usize = 0;    // (32) f32, gate or up rows of one block
let acts: usize = 0;      // (32) f32, act(g) of one block
let hidden: usize = 0;    // (32) f32, act(g) · u of kept neurons, zero elsewhere
let columns: usize = 0;   // (32) u32, down column addresses of one block
let rows4: usize = 0;     // (4) f32, output of dotRows4Q8
let pairs: usize = 0;     // (32) i16, their weights hq
const SCRATCH_BYTES: i32 = 704;

let predicted: usize = 0; // (hidden_pad) f32, ĝ
let projected: usize = 0; // (pad32(maxRank)) f32, z; the padding stays zero
let projectedQ: usize = 0; // (pad32(maxRank)) i8
let projectedS: usize = 0; // (pad32(maxRank) / 32) f32
let sink: usize = 0;      // (1) i32, sum of touched words, stored so the loads stay

// The layer being computed, shared by the helpers below.
let bundleBase: usize = 0;
let stride: usize = 0;
let inputQ: usize = 0;
let inputS: usize = 0;
let threshold: f32 = 0;
let downScales: usize = 0;
let output: usize = 0;
let gateTrace: usize = 0;
let streaming: bool = false;

// Fields of the job descriptor that carries the layer to worker threads.
const JOB_BUNDLES: i32 = 0;
const JOB_STRIDE: i32 = 1;
const JOB_INPUT_Q: i32 = 2;
const JOB_INPUT_S: i32 = 3;
const JOB_THRESHOLD: i32 = 4;
const JOB_MODE: i32 = 5;
const JOB_DOWN_SCALES: i32 = 6;
const JOB_OUTPUT: i32 = 7;
const JOB_GATE_TRACE: i32 = 8;
const JOB_STREAMING: i32 = 9;
const JOB_ACTIVATION: i32 = 10;
const JOB_GATED: i32 = 11;
const JOB_MASKS: i32 = 12;
const JOB_BLOCK_Q: i32 = 13;
const JOB_BLOCK_S: i32 = 14;
const JOB_BLOCK_NONZERO: i32 = 15;
const JOB_BLOCK_KEPT: i32 = 16;
const JOB_SCRATCH: i32 = 17;
const JOB_FIELDS: i32 = 18;

/** Points the scratch globals at scratch set `id`. */
function useScratch(id: i32): void {
  const base = scratchSets + <usize>id * <usize>SCRATCH_BYTES;
  values = base;
  acts = base + 128;
  hidden = base + 256;
  columns = base + 384;
  rows4 = base + 512;
  pairs = base + 576;
}

/** Bytes of one bundle. */
export function bundleStride(): i32 {
  return (3 * dim_pad + 2 * scaleBytes() + 63) & ~63;
}

/** Bytes of the scales of one bundle row: dim_pad / 32 f32, padded to 16. */
@inline function scaleBytes(): i32 {
  return ((dim_pad >> 5) * 4 + 15) & ~15;
}

/** Offset of the up row in a bundle. */
@inline function upOffset(): usize {
  return <usize>(dim_pad + scaleBytes());
}

/** Offset of the down column in a bundle. */
@inline function downOffset(): usize {
  return <usize>(2 * (dim_pad + scaleBytes()));
}

/** Returns the scales of P_up of rank `rank`: its quants ((hidden_dim + 3) & ~3, rank_pad) i8 come first, 64-aligned. */
@inline function predictorUpScales(predUp: usize, rank: i32): usize {
  return predUp + ((<usize>((hidden_dim + 3) & ~3) * <usize>pad32(rank) + 63) & ~63);
}

/** Allocates the sparse tables and scratch for predictors of rank up to maxRank. Returns 0 when over budget. */
export function allocSparse(maxRank: i32): i32 {
  const rankPad = pad32(max(maxRank, 1));
  layers = arenaAlloc(<u64>(n_layers * LAYER_FIELDS * 4));
  stats = arenaAlloc(<u64>(n_layers * STAT_FIELDS * 8));
  bounds = arenaAlloc(<u64>(n_layers * BOUND_FIELDS * 4));
  masks = arenaAlloc(<u64>(hidden_pad >> 5) << 2);
  blockQ = arenaAlloc(<u64>hidden_pad);
  blockS = arenaAlloc(<u64>(hidden_pad >> 5) << 2);
  blockNonzero = arenaAlloc(<u64>(hidden_pad >> 5) << 2);
  blockKept = arenaAlloc(<u64>(hidden_pad >> 5) << 2);
  job = arenaAlloc(<u64>JOB_FIELDS << 2);
  scratchSets = arenaAlloc(<u64>MAX_THREADS * <u64>SCRATCH_BYTES);
  if (scratchSets != 0) useScratch(0);
  predicted = arenaAlloc(<u64>hidden_pad << 2);
  projected = arenaAlloc(<u64>rankPad << 2);
  projectedQ = arenaAlloc(<u64>rankPad);
  projectedS = arenaAlloc(<u64>(rankPad >> 5) << 2);
  sink = arenaAlloc(4);
  return layers != 0 && stats != 0 && bounds != 0 && masks != 0 && blockQ != 0 && blockS != 0 && blockNonzero != 0 &&
    blockKept != 0 && job != 0 && scratchSets != 0 && predicted != 0 && projected != 0 &&
    projectedQ != 0 && projectedS != 0 && sink != 0 ? 1 : 0;
}

/** Bytes allocSparse() takes, for the host's budget. */
export function sparseBytes(maxRank: i32): u64 {
  const rankPad = pad32(max(maxRank, 1));
  const blocks = hidden_pad >> 5;
  const bytes = n_layers * (LAYER_FIELDS * 4 + STAT_FIELDS * 8 + BOUND_FIELDS * 4) + blocks * 4 +
    hidden_pad + 3 * blocks * 4 + JOB_FIELDS * 4 + MAX_THREADS * SCRATCH_BYTES +
    hidden_pad * 4 + rankPad * 4 + rankPad + (rankPad >> 5) * 4 + 4;
  // 15 allocations, each rounded up to the arena's 64-byte alignment
  return <u64>bytes + 15 * 64;
}

@inline function field(layer: i32, index: i32): usize {
  return layers + (<usize>(layer * LAYER_FIELDS + index) << 2);
}

@inline function layerBounds(layer: i32): usize {
  return bounds + (<usize>(layer * BOUND_FIELDS) << 2);
}

export function setMode(value: i32): void {
  mode = value;
}

/** Registers the bundles and down scales of a layer. */
export function setBundles(layer: i32, bundles: usize, downScales: usize): void {
  store<u32>(field(layer, FIELD_BUNDLES), <u32>bundles);
  store<u32>(field(layer, FIELD_DOWN_SCALES), <u32>downScales);
}

/** Registers the predictor, threshold and cutoff of a layer. Call after setActivation(). */
export function setSparsity(layer: i32, predDown: usize, predDownScales: usize, predUp: usize, rank: i32, threshold: f32, cutoff: f32): void {
  store<u32>(field(layer, FIELD_PRED_DOWN), <u32>predDown);
  store<u32>(field(layer, FIELD_PRED_DOWN_SCALES), <u32>predDownScales);
  store<u32>(field(layer, FIELD_PRED_UP), <u32>predUp);
  store<i32>(field(layer, FIELD_RANK), rank);
  store<f32>(field(layer, FIELD_THRESHOLD), threshold);
  store<f32>(field(layer, FIELD_CUTOFF), cutoff);
  cutoffBounds(layerBounds(layer), cutoff, activation);
}

/** Overrides the threshold of a layer, and its cutoff unless cutoff is negative. */
export function setThreshold(layer: i32, threshold: f32, cutoff: f32): void {
  store<f32>(field(layer, FIELD_THRESHOLD), threshold);
  if (cutoff >= 0) {
    store<f32>(field(layer, FIELD_CUTOFF), cutoff);
    cutoffBounds(layerBounds(layer), cutoff, activation);
  }
}

/** Returns true when layer l has bundles, so its FFN runs here. */
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

/** Runs the predictor of layer l on the quantized input and sets the candidate masks. Returns the candidate count. */
function predictCandidates(layer: i32): i32 {
  const rank = load<i32>(field(layer, FIELD_RANK));
  const rankPad = pad32(rank);
  const predUp = <usize>load<u32>(field(layer, FIELD_PRED_UP));
  matvecQ8(projected, <usize>load<u32>(field(layer, FIELD_PRED_DOWN)), <usize>load<u32>(field(layer, FIELD_PRED_DOWN_SCALES)), inputQ, inputS, rank, dim_pad);
  quantizeQ8(projectedQ, projectedS, projected, rankPad);
  parallelMatvecQ8(predicted, predUp, predictorUpScales(predUp, rank), projectedQ, projectedS, hidden_dim, rankPad);
  return selectCandidates(masks, predicted, hidden_dim, load<f32>(field(layer, FIELD_CUTOFF)), activation, layerBounds(layer));
}

/**
 * Runs only the predictor of layer l (and the candidate selection) on the quantized input, for
 * benchmarks. Returns the candidate count, or 0 for a layer without a predictor.
 */
export function predictOnly(layer: i32, xq: usize, xs: usize): i32 {
  if (load<u32>(field(layer, FIELD_PRED_UP)) == 0) return 0;
  inputQ = xq;
  inputS = xs;
  return predictCandidates(layer);
}

/** Marks every neuron as a candidate. */
function allCandidates(): void {
  const blocks = hidden_pad >> 5;
  for (let b = 0; b < blocks; b++) {
    const remaining = hidden_dim - (b << 5);
    store<u32>(masks + (<usize>b << 2), remaining >= 32 ? 0xffffffff : (<u32>1 << <u32>remaining) - 1);
  }
}

@inline function bundleRow(first: i32, k: u32, section: usize): usize {
  return bundleBase + <usize>(first + <i32>k) * stride + section;
}

/** Computes the rows at `section` of the neurons in `mask` (block starting at `first`) into values[k]. */
function dotMaskedRows(mask: u32, first: i32, section: usize): void {
  let m = mask;
  while (m != 0) {
    const k0 = ctz(m);
    m &= m - 1;
    // missing rows repeat the first one, and their results are overwritten by it
    const k1 = m != 0 ? ctz(m) : k0;
    m &= m - 1;
    const k2 = m != 0 ? ctz(m) : k0;
    m &= m - 1;
    const k3 = m != 0 ? ctz(m) : k0;
    m &= m - 1;
    dotRows4Q8(rows4, bundleRow(first, k0, section), bundleRow(first, k1, section), bundleRow(first, k2, section),
      bundleRow(first, k3, section), inputQ, inputS, dim_pad);
    store<f32>(values + (<usize>k3 << 2), load<f32>(rows4, 12));
    store<f32>(values + (<usize>k2 << 2), load<f32>(rows4, 8));
    store<f32>(values + (<usize>k1 << 2), load<f32>(rows4, 4));
    store<f32>(values + (<usize>k0 << 2), load<f32>(rows4));
  }
}

/**
 * Adds the down projection of neuron block b (quants and scale from the gate pass) to outputs
 * i0..i0+n-1 of out. n and i0 are multiples of 16.
 */
function downBlock(b: i32, out: usize, i0: i32, n: i32): void {
  const mask = load<u32>(blockNonzero + (<usize>b << 2));
  if (mask == 0) return;
  const first = b << 5;
  const section = downOffset() + <usize>i0;
  const quants = blockQ + (<usize>b << 5);
  let count = 0;
  let m = mask;
  while (m != 0) {
    const k = ctz(m);
    m &= m - 1;
    store<u32>(columns + (<usize>count << 2), <u32>bundleRow(first, k, section));
    store<i16>(pairs + (<usize>count << 1), <i16>load<i8>(quants + <usize>k));
    count++;
  }
  // an odd count repeats the first column with weight 0
  if (count & 1) {
    store<u32>(columns + (<usize>count << 2), load<u32>(columns));
    store<i16>(pairs + (<usize>count << 1), 0);
    count++;
  }
  const scales = downScales + ((<usize>b * <usize>dim_pad + <usize>i0) << 2);
  downColumnsQ8(out + (<usize>i0 << 2), columns, pairs, count, scales, load<f32>(blockS + (<usize>b << 2)), n);
}

/**
 * Gate pass of neuron block b (candidates in `candidateMask`): exact gate rows, the threshold,
 * up rows of the kept neurons, and their quantized h with its nonzero mask for the down pass.
 * Returns the number of kept neurons.
 */
function gateBlock(b: i32, candidateMask: u32): i32 {
  const first = b << 5;
  const useThreshold = mode != MODE_DENSE;
  const flags = blockNonzero + (<usize>b << 2);
  store<u32>(flags, 0);
  if (candidateMask == 0) return 0;
  if (streaming) {
    const blockBytes = stride << 5;
    store<i32>(sink, touchLines(bundleBase + <usize>b * blockBytes, bundleBase + <usize>(b + 1) * blockBytes));
  }

  // exact gate rows of the candidates, then the threshold
  dotMaskedRows(candidateMask, first, 0);
  let keptMask: u32 = 0;
  let m = candidateMask;
  while (m != 0) {
    const k = ctz(m);
    m &= m - 1;
    const g = load<f32>(values + (<usize>k << 2));
    if (gateTrace != 0) store<f32>(gateTrace + (<usize>(first + <i32>k) << 2), g);
    const a = activate(g, activation);
    if (a == 0 || (useThreshold && Mathf.abs(a) < threshold)) continue;
    store<f32>(acts + (<usize>k << 2), a);
    keptMask |= <u32>1 << k;
  }
  // a block with no kept neuron adds f32(0) · scale to every output in the dense kernel, which
  // leaves the (never negative-zero) accumulator unchanged, so skipping it keeps the result exact
  if (keptMask == 0) return 0;

  // h = act(g) · up for kept neurons, zero elsewhere, quantized on its own exactly as quantizeQ8
  // quantizes this block of the whole vector
  if (gated) dotMaskedRows(keptMask, first, upOffset());
  memory.fill(hidden, 0, 128);
  m = keptMask;
  while (m != 0) {
    const k = ctz(m);
    m &= m - 1;
    const a = load<f32>(acts + (<usize>k << 2));
    store<f32>(hidden + (<usize>k << 2), gated ? a * load<f32>(values + (<usize>k << 2)) : a);
  }
  const quants = blockQ + (<usize>b << 5);
  quantizeQ8(quants, blockS + (<usize>b << 2), hidden, 32);

  // down columns with hq ≠ 0
  let nonzero: u32 = 0;
  m = keptMask;
  while (m != 0) {
    const k = ctz(m);
    m &= m - 1;
    if (load<i8>(quants + <usize>k) != 0) nonzero |= <u32>1 << k;
  }
  store<u32>(flags, nonzero);
  return popcnt(keptMask);
}

/**
 * Loads one word per cache line of the gate rows of every candidate in blocks b0..b1-1, in the
 * scattered mode, before any of them is computed. A kernel that reads scattered rows step by step
 * waits on each row's first lines in turn, while this loop has nothing between its loads, so the
 * misses overlap. The rows then come from L2: a layer's candidate gate rows are 0.2 MB at 10%
 * kept and 0.6 MB at 30% on the stories110M shape. There this cut the sparse FFN's time by about
 * 9% at 10% kept and 6% at 30% (medians of four alternated runs, bench/README.md).
 */
function touchCandidateGateRows(b0: i32, b1: i32): void {
  if (streaming) return;
  const rowBytes = <usize>(dim_pad + scaleBytes());
  let sum: i32 = 0;
  for (let b = b0; b < b1; b++) {
    let m = load<u32>(masks + (<usize>b << 2));
    while (m != 0) {
      const row = bundleRow(b << 5, ctz(m), 0);
      m &= m - 1;
      sum += touchLines(row, row + rowBytes);
    }
  }
  store<i32>(sink, sum);
}

/** Gate pass of blocks b0..b1-1 on this thread; records each block's kept count. */
export function sparseGateSlice(b0: i32, b1: i32): void {
  touchCandidateGateRows(b0, b1);
  for (let b = b0; b < b1; b++) {
    store<i32>(blockKept + (<usize>b << 2), gateBlock(b, load<u32>(masks + (<usize>b << 2))));
  }
}

/** Down pass of 16-output groups g0..g1-1 on this thread: every block, in block order. */
export function sparseDownSlice(g0: i32, g1: i32): void {
  if (g0 >= g1) return;
  const blocks = hidden_pad >> 5;
  for (let b = 0; b < blocks; b++) downBlock(b, output, g0 << 4, (g1 - g0) << 4);
}

/** Worker side: adopts the layer published in the job descriptor, and scratch set `id`. */
export function adoptSparseJob(descriptor: usize, id: i32): void {
  bundleBase = <usize>load<u32>(descriptor, JOB_BUNDLES << 2);
  stride = <usize>load<u32>(descriptor, JOB_STRIDE << 2);
  inputQ = <usize>load<u32>(descriptor, JOB_INPUT_Q << 2);
  inputS = <usize>load<u32>(descriptor, JOB_INPUT_S << 2);
  threshold = load<f32>(descriptor, JOB_THRESHOLD << 2);
  mode = load<i32>(descriptor, JOB_MODE << 2);
  downScales = <usize>load<u32>(descriptor, JOB_DOWN_SCALES << 2);
  output = <usize>load<u32>(descriptor, JOB_OUTPUT << 2);
  gateTrace = <usize>load<u32>(descriptor, JOB_GATE_TRACE << 2);
  streaming = load<i32>(descriptor, JOB_STREAMING << 2) != 0;
  setActivation(load<i32>(descriptor, JOB_ACTIVATION << 2), load<i32>(descriptor, JOB_GATED << 2));
  masks = <usize>load<u32>(descriptor, JOB_MASKS << 2);
  blockQ = <usize>load<u32>(descriptor, JOB_BLOCK_Q << 2);
  blockS = <usize>load<u32>(descriptor, JOB_BLOCK_S << 2);
  blockNonzero = <usize>load<u32>(descriptor, JOB_BLOCK_NONZERO << 2);
  blockKept = <usize>load<u32>(descriptor, JOB_BLOCK_KEPT << 2);
  scratchSets = <usize>load<u32>(descriptor, JOB_SCRATCH << 2);
  useScratch(id);
  // the touched-lines sum goes past the pairs, at offset 640 of this thread's set
  sink = scratchSets + <usize>id * <usize>SCRATCH_BYTES + 640;
}

/** Writes the layer's pointers into the job descriptor for worker threads. */
function publishSparseJob(): usize {
  store<u32>(job, <u32>bundleBase, JOB_BUNDLES << 2);
  store<u32>(job, <u32>stride, JOB_STRIDE << 2);
  store<u32>(job, <u32>inputQ, JOB_INPUT_Q << 2);
  store<u32>(job, <u32>inputS, JOB_INPUT_S << 2);
  store<f32>(job, threshold, JOB_THRESHOLD << 2);
  store<i32>(job, mode, JOB_MODE << 2);
  store<u32>(job, <u32>downScales, JOB_DOWN_SCALES << 2);
  store<u32>(job, <u32>output, JOB_OUTPUT << 2);
  store<u32>(job, <u32>gateTrace, JOB_GATE_TRACE << 2);
  store<i32>(job, streaming ? 1 : 0, JOB_STREAMING << 2);
  store<i32>(job, activation, JOB_ACTIVATION << 2);
  store<i32>(job, gated ? 1 : 0, JOB_GATED << 2);
  store<u32>(job, <u32>masks, JOB_MASKS << 2);
  store<u32>(job, <u32>blockQ, JOB_BLOCK_Q << 2);
  store<u32>(job, <u32>blockS, JOB_BLOCK_S << 2);
  store<u32>(job, <u32>blockNonzero, JOB_BLOCK_NONZERO << 2);
  store<u32>(job, <u32>blockKept, JOB_BLOCK_KEPT << 2);
  store<u32>(job, <u32>scratchSets, JOB_SCRATCH << 2);
  return job;
}

/**
 * Runs the FFN of layer l from the quantized input (xq, xs) and writes the down projection to out
 * (dim f32). gateTrace, when not 0, receives every computed gate pre-activation (others stay 0).
 */
export function sparseFfn(layer: i32, xq: usize, xs: usize, out: usize, traceGates: usize): void {
  bundleBase = <usize>load<u32>(field(layer, FIELD_BUNDLES));
  stride = <usize>bundleStride();
  inputQ = xq;
  inputS = xs;
  threshold = load<f32>(field(layer, FIELD_THRESHOLD));
  downScales = <usize>load<u32>(field(layer, FIELD_DOWN_SCALES));
  output = out;
  gateTrace = traceGates;

  // predictor: candidates |act(ĝ)| ≥ cutoff; without it every neuron is a candidate
  let candidates = hidden_dim;
  if (mode == MODE_PREDICTED && load<u32>(field(layer, FIELD_PRED_UP)) != 0) {
    candidates = predictCandidates(layer);
  } else {
    allCandidates();
  }
  streaming = <f32>candidates >= STREAM_FRACTION * <f32>hidden_dim;

  memory.fill(out, 0, <usize>dim_pad << 2);
  const blocks = hidden_pad >> 5;
  let kept = 0;
  if (threadCount() > 1 && <i64>hidden_dim * <i64>dim >= MIN_PARALLEL_WORK) {
    parallelSparse(publishSparseJob(), blocks, dim_pad >> 4);
    for (let b = 0; b < blocks; b++) kept += load<i32>(blockKept + (<usize>b << 2));
  } else {
    // one block of 32 neurons at a time, closing its down projection while its bundles are in cache
    touchCandidateGateRows(0, blocks);
    for (let b = 0; b < blocks; b++) {
      kept += gateBlock(b, load<u32>(masks + (<usize>b << 2)));
      downBlock(b, out, 0, dim_pad);
    }
  }
  countNeurons(layer, candidates, kept);
}
