// The module's whole ABI: numbers and pointers only, no GC objects across the boundary.
// The host reserves a budget, initializes the model (run state and weight table), places
// each tensor into arena memory it allocates here, registers it with setWeight, and then
// calls forward() once per position.

import { arenaAlloc, arenaReset, arenaUsed } from "./memory";
import { dotQ8SelfTest, matvecRelaxed as matvecKernelRelaxed } from "./kernels/matvec_q8";
import { setActivation as setActivationKind, setConfig, setRope as setRopeKind } from "./model/config";
import {
  allocSparse, bundleStride as sparseBundleStride, setBundles as setLayerBundles, setMode as setSparseMode,
  setSparsity as setLayerSparsity, setThreshold as setLayerThreshold, sparseBytes, statsPointer,
} from "./model/sparse";
import { allocStates, stateBytes } from "./model/state";
import { allocWeightTable, setWeight as setWeightSlot } from "./model/weights";
import { PREFILL_BLOCK, allocPrefill, forwardBlock as forwardTokens, prefillBytes, prefillProbe as probePrefill, prefillTokens } from "./model/prefill";
import { matmatRelaxed as blockedKernelRelaxed } from "./kernels/matmat_q8";
import {
  threadCount as threadTotal, threadRun as runThread, threadsBytes as threadBytes, threadsInit as initThreads,
  threadsStartedPointer as startedPointer, threadsStop as stopThreads, threadFail as failThreads,
  threadsFailed as threadsHaveFailed,
} from "./threads";
import { attentionRepeat as attentionRepeatLayer, classifierRepeat as classifierRepeatRun, ffnRepeat as ffnRepeatLayer, forward as forwardStep, predictorRepeat as predictorRepeatLayer, matvecProbe as probeMatvec, setTrace as setTracePointer } from "./model/forward";

/** Resets the arena with a budget in bytes (f64 so JavaScript passes a plain number). Returns 1 on success. */
export function reserve(budget: f64): i32 {
  return arenaReset(<u64>budget);
}

/** Allocates `bytes` from the arena, 64-byte aligned and zeroed. Returns 0 when over budget. */
export function alloc(bytes: f64): usize {
  return arenaAlloc(<u64>bytes);
}

/** Bytes of the arena in use. */
export function heapUsed(): f64 {
  return <f64>arenaUsed();
}

/** Configures the model and allocates its run state and weight table. Returns 1 on success, 0 when over budget. */
export function modelInit(
  dim: i32, hiddenDim: i32, nLayers: i32, nHeads: i32, nKvHeads: i32,
  vocabSize: i32, seqLen: i32, normEps: f32, ropeTheta: f32, int8: i32,
): i32 {
  setConfig(dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen, normEps, ropeTheta, int8);
  if (!allocWeightTable()) return 0;
  return allocStates();
}

/** Bytes modelInit() allocates for the run state of the configured model (call after setConfig via modelStateBytes). */
export function modelStateBytes(
  dim: i32, hiddenDim: i32, nLayers: i32, nHeads: i32, nKvHeads: i32, vocabSize: i32, seqLen: i32,
): f64 {
  setConfig(dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen, 1e-5, 10000, 1);
  return <f64>stateBytes() + <f64>(16 * nLayers * 8 + 64);
}

/** Registers tensor (slot, layer): data pointer and, for int8 matrices, the block-scale pointer. */
export function setWeight(slot: i32, layer: i32, data: usize, scales: usize): void {
  setWeightSlot(slot, layer, data, scales);
}

/** Runs one position and returns the logits pointer (vocab_size f32). */
export function forward(token: i32, pos: i32): usize {
  return forwardStep(token, pos);
}

/** Returns 1 when the int8 dot-product kernel computes a known case correctly on this engine. */
export function selfTest(): i32 {
  return dotQ8SelfTest();
}

/** Returns 1 in the module built with relaxed SIMD, 0 in the exact simd128 module. */
export function relaxedSimd(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}

/** Sets the FFN activation (0 SiLU, 1 ReLU, 2 GELU) and whether the FFN is gated. */
export function setActivation(kind: i32, gated: i32): void {
  setActivationKind(kind, gated);
}

/** Allocates the sparse-FFN tables and scratch (after modelInit). Returns 1 on success. */
export function sparseInit(maxRank: i32): i32 {
  return allocSparse(maxRank);
}

/** Bytes sparseInit() allocates for the configured model. */
export function sparseInitBytes(maxRank: i32): f64 {
  return <f64>sparseBytes(maxRank);
}

/** Bytes of one neuron bundle of the configured model. */
export function bundleStride(): i32 {
  return sparseBundleStride();
}

/** Registers the neuron bundles and down-column scales of a layer. */
export function setBundles(layer: i32, bundles: usize, downScales: usize): void {
  setLayerBundles(layer, bundles, downScales);
}

/** Registers a layer's predictor (P_down int8 + scales, P_up f32), rank, threshold and cutoff. */
export function setSparsity(layer: i32, predDown: usize, predDownScales: usize, predUp: usize, rank: i32, threshold: f32, cutoff: f32): void {
  setLayerSparsity(layer, predDown, predDownScales, predUp, rank, threshold, cutoff);
}

/** Selects the FFN mode of layers with bundles: 0 dense, 1 oracle, 2 predicted. */
export function setMode(mode: i32): void {
  setSparseMode(mode);
}

/** Pointer to the per-layer counters (n_layers, 3) f64: tokens, candidates, kept; 0 before sparseInit. */
export function sparseStats(): usize {
  return statsPointer();
}

/** Sets the calibration trace buffer, (n_layers, dim + hidden_dim) f32; 0 turns tracing off. */
export function setTrace(pointer: usize): void {
  setTracePointer(pointer);
}

/** Overrides a layer's threshold τ_l, and its candidate cutoff unless cutoff is negative. */
export function setThreshold(layer: i32, threshold: f32, cutoff: f32): void {
  setLayerThreshold(layer, threshold, cutoff);
}

/** Runs the FFN of a layer `repeats` times on `input` (dim f32), for benchmarks. */
export function ffnRepeat(layer: i32, input: usize, repeats: i32): void {
  ffnRepeatLayer(layer, input, repeats);
}

/** Runs the predictor of a layer `repeats` times on `input` (dim f32), for benchmarks. */
export function predictorRepeat(layer: i32, input: usize, repeats: i32): void {
  predictorRepeatLayer(layer, input, repeats);
}

/** Sets the RoPE pairing (0 adjacent pairs as llama, 1 halves as NEOX/qwen2) and the linear scaling's position multiplier. */
export function setRope(neox: i32, freqScale: f32): void {
  setRopeKind(neox, freqScale);
}

/** Allocates the prefill block buffers (after modelInit). Returns 1 on success. */
export function prefillInit(): i32 {
  return allocPrefill();
}

/** Bytes prefillInit() allocates for the configured model. */
export function prefillInitBytes(): f64 {
  return <f64>prefillBytes();
}

/** Tokens per prefill block. */
export function prefillBlock(): i32 {
  return PREFILL_BLOCK;
}

/** Pointer to the token ids of the next block, (prefillBlock()) i32. */
export function prefillTokenBuffer(): usize {
  return prefillTokens();
}

/**
 * Runs n ≤ prefillBlock() tokens from prefillTokenBuffer() at positions pos0.. and returns the
 * logits pointer, by `logits`: 0 the last token's, 1 every token's (n, vocab_size), 2 none
 * (returns 0; for prompt blocks before the last).
 */
export function forwardBlock(n: i32, pos0: i32, logits: i32): usize {
  return forwardTokens(n, pos0, logits);
}

/** Runs the final norm and classifier `repeats` times on the current residual stream, for benchmarks. */
export function classifierRepeat(repeats: i32): void {
  classifierRepeatRun(repeats);
}

/** Runs one layer's attention at position pos `repeats` times on the current query, for benchmarks. */
export function attentionRepeat(layer: i32, pos: i32, repeats: i32): void {
  attentionRepeatLayer(layer, pos, repeats);
}

/**
 * Prepares `count` threads (main included) in the threaded module: allocates the control block and
 * snapshots the configuration. mayBlock is 0 when the calling thread must not block (a browser
 * page). Call after modelInit and before starting the workers. Returns the control pointer each
 * worker passes to threadRun, or 0 (unthreaded module, over budget, bad count).
 */
export function threadsInit(count: i32, mayBlock: i32): usize {
  return initThreads(count, mayBlock);
}

/** Bytes threadsInit(count) allocates for the configured model. */
export function threadsBytes(count: i32): f64 {
  return threadBytes(count);
}

/** Address of the i32 count of workers that entered threadRun (0 before threadsInit). */
export function threadsStarted(): usize {
  return startedPointer();
}

/** Worker entry: runs slices of the forward pass's jobs until threadsStop(). Blocks. */
export function threadRun(control: usize, id: i32): void {
  runThread(control, id);
}

/** Worker side, after its threadRun trapped: marks the threads failed so the main thread stops waiting. */
export function threadFail(control: usize): void {
  failThreads(control);
}

/** Returns 1 once a worker has failed; the forward pass then traps at its next barrier. */
export function threadsFailed(): i32 {
  return threadsHaveFailed();
}

/** Ends the workers' threadRun loops; the model runs on one thread afterwards. */
export function threadsStop(): void {
  stopThreads();
}

/** Threads the forward pass splits its work across. */
export function threadCount(): i32 {
  return threadTotal();
}

/**
 * Runs the prefill kernel on layer 0's query matrix `repeats` times with the relaxed (1) or exact
 * (0) dot and keeps that choice, so the host can time both. Only the relaxed module has two
 * kernels, and the exact module ignores `relaxed`.
 */
export function prefillProbe(relaxed: i32, repeats: i32): void {
  probePrefill(relaxed, repeats);
}

/** Returns 1 when prefill uses the relaxed dot. */
export function prefillRelaxed(): i32 {
  return blockedKernelRelaxed();
}

/**
 * Runs the int8 matrix × vector kernel on layer 0's query matrix `repeats` times with the relaxed
 * (1) or exact (0) dot, so the host can time both. The choice stays for decode, the sparse FFN
 * and short prefill blocks. Only the relaxed module has two, and the exact module ignores `relaxed`.
 */
export function matvecProbe(relaxed: i32, repeats: i32): void {
  probeMatvec(relaxed, repeats);
}

/** Returns 1 when the matrix × vector kernel uses the relaxed dot. */
export function matvecRelaxed(): i32 {
  return matvecKernelRelaxed();
}
