/**
 * Calibration of activation sparsity. The dense int8 model runs over calibration text, and per
 * layer l the host fits:
 *
 *   τ_l            the S-quantile of |act(g_j)| over all tokens and neurons, so a fraction S
 *                  falls below it
 *   P_up, P_down   a rank-r predictor ĝ = P_up (P_down x) of the gate pre-activation g = W_gate x,
 *                  the best rank-r fit of W_gate in the norm of the calibration inputs:
 *                  C = E[x xᵀ] + λI = L Lᵀ, W_gate L ≈ U_r S_r V_rᵀ, P_up = U_r S_r, P_down = V_rᵀ L⁻¹
 *   c_l            the largest candidate cutoff on |act(ĝ_j)| whose activation-mass recall over
 *                  the kept neurons (|act(g_j)| ≥ τ_l, act(g_j) ≠ 0) reaches the requested recall
 *
 * The predictor is evaluated as the runtime computes it: P_down and the input x quantized to Q8_0
 * blocks, P_up in f32.
 */

import { formatMismatch, optionMismatch } from "../errors.js";
import type { Model } from "../model.js";
import { splitDocuments } from "../eval/perplexity.js";
import { dequantizeQ8_0, quantizeQ8_0, tensorToF32 } from "../quant.js";
import type { LlamaConfig, ModelFile } from "../types.js";
import { MAX_SPARSITY, SPARSITY_VERSION, type SparsityData } from "./format.js";
import { cholesky, createMatrix, invertLower, multiply, multiplyTransposed, truncatedSVD } from "./linalg.js";

/** Progress of calibrate: tokens run through the model, then layers fitted. */
export interface CalibrationProgress {
  phase: "collect" | "fit";
  loaded: number;
  total: number;
}

/** Options of collectActivations. */
export interface CollectOptions {
  /** Largest number of tokens to run; default all tokens of the text. */
  maxTokens?: number;
  /** Largest number of |act(g_j)| values kept per layer; beyond it every k-th token is kept. Default 2^21. */
  maxValuesPerLayer?: number;
  onProgress?(progress: CalibrationProgress): void;
  signal?: AbortSignal;
  /** Name of the text in error messages, for example its path; default "text". */
  source?: string;
}

/** Options of fitSparsity. */
export interface FitOptions {
  /** Target sparsity S in [0, 0.99]: the fraction of |act(g_j)| below τ_l. */
  sparsity: number;
  /** Predictor rank; default defaultRank(). */
  rank?: number;
  /** Activation-mass recall the cutoffs must reach on the calibration text; default 0.99. */
  recall?: number;
  onProgress?(progress: CalibrationProgress): void;
  signal?: AbortSignal;
}

/** Options of calibrate. */
export type CalibrateOptions = FitOptions & Omit<CollectOptions, "maxValuesPerLayer">;

/** FFN inputs and activation magnitudes of one layer, gathered over the calibration text. */
export interface LayerActivations {
  /** (dim, dim) f64 Σ x xᵀ over every token run. */
  inputProducts: Float64Array;
  /** (samples, dim) f32 FFN inputs x of the sampled tokens. */
  inputs: Float32Array;
  /** (samples, hidden_dim) f32 |act(g_j)| of the sampled tokens. */
  magnitudes: Float32Array;
}

/** Activations that collectActivations gathered, per layer. */
export interface ActivationStatistics {
  dim: number;
  hidden_dim: number;
  activation: LlamaConfig["activation"];
  /** Tokens run; inputProducts sums over all of them. */
  tokens: number;
  /** Tokens kept in inputs and magnitudes: every stride-th token. */
  samples: number;
  stride: number;
  layers: LayerActivations[];
}

/** Measured behaviour of sparsity data on one layer of collected activations. */
export interface LayerSparsity {
  /** Fraction of neurons not kept: |act(g_j)| < τ_l or act(g_j) = 0. */
  sparsity: number;
  /** Activation mass of kept neurons that are also candidates, over the mass of kept neurons. */
  recall: number;
  /** Fraction of neurons that are candidates (|act(ĝ_j)| ≥ c_l). */
  candidates: number;
  /** Kept neurons that are also candidates, over all kept neurons (recall by count). */
  recallCount: number;
  /** Candidates that are kept, over all candidates: how much of the gate work was needed. */
  precision: number;
}

const WHERE = "calibrate";
const DEFAULT_RECALL = 0.99;
const DEFAULT_MAX_VALUES = 2 ** 21;
/** Share of the dense FFN's multiply-adds that the default predictor rank may cost. */
const PREDICTOR_COST_SHARE = 0.08;
/** Milliseconds of work between yields to the event loop, where the signal is checked. */
const YIELD_INTERVAL_MS = 50;

/** Returns act(v) in f64: SiLU v·σ(v), ReLU max(0, v), or GELU's tanh approximation. */
export function activate(v: number, activation: LlamaConfig["activation"]): number {
  if (activation === "silu") return v / (1 + Math.exp(-v));
  if (activation === "relu") return v > 0 ? v : 0;
  return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
}

/** Returns the fewest calibration tokens that give C = E[x xᵀ] and the quantiles enough samples. */
export function minimumTokens(dim: number): number {
  // 4 samples per input dimension leave C = E[x xᵀ] far from rank-deficient, and 256 tokens give
  // even a tiny model (hidden_dim 172) about 44,000 magnitudes per layer for the quantile.
  return Math.max(4 * dim, 256);
}

/**
 * Returns the default predictor rank: the largest multiple of 4 (at least 4, at most
 * min(dim, hidden_dim)) whose cost r·(dim + hidden_dim) is at most 8% of the dense FFN's
 * multiply-adds, 3·dim·hidden_dim when gated and 2·dim·hidden_dim otherwise.
 * stories260K (dim 64, hidden_dim 172, gated): r ≤ 0.24·64·172/236 = 11.2, so r = 8.
 * NOTE: on stories260K at S = 0.5 and recall 0.99, rank 8 leaves 97–98% of the neurons as
 * candidates (rank 32: 82–92%). How well the rule filters on larger models is not measured yet.
 */
export function defaultRank(dim: number, hidden_dim: number, gated: boolean): number {
  const denseCost = (gated ? 3 : 2) * dim * hidden_dim;
  const limit = (PREDICTOR_COST_SHARE * denseCost) / (dim + hidden_dim);
  const rank = Math.max(4, Math.floor(limit / 4) * 4);
  return Math.min(rank, dim, hidden_dim);
}

// ---------------------------------------------------------------------------------------------
// option checks

function checkFitOptions(options: FitOptions, dim: number, hidden_dim: number): void {
  const { sparsity, rank, recall } = options;
  if (typeof sparsity !== "number" || !(sparsity >= 0 && sparsity <= MAX_SPARSITY)) {
    optionMismatch(WHERE, { source: "option sparsity", field: "sparsity", actual: String(sparsity), expected: `a number in [0, ${MAX_SPARSITY}]` });
  }
  const maxRank = Math.min(dim, hidden_dim);
  if (rank !== undefined && !(Number.isInteger(rank) && rank >= 1 && rank <= maxRank)) {
    const origin = maxRank === dim ? `dim = ${dim}` : `hidden_dim = ${hidden_dim}`;
    optionMismatch(WHERE, { source: "option rank", field: "rank", actual: String(rank), expected: `an integer in [1, ${maxRank}] (${origin})` });
  }
  if (recall !== undefined && (typeof recall !== "number" || !(recall > 0 && recall <= 1))) {
    optionMismatch(WHERE, { source: "option recall", field: "recall", actual: String(recall), expected: "a number in (0, 1]" });
  }
}

function checkMaxTokens(maxTokens: number | undefined, dim: number): void {
  if (maxTokens === undefined) return;
  const needed = minimumTokens(dim);
  if (!Number.isInteger(maxTokens) || maxTokens < needed) {
    optionMismatch(WHERE, {
      source: "option maxTokens", field: "maxTokens", actual: String(maxTokens),
      expected: `an integer ≥ ${needed} (the fewest calibration tokens, max(4·dim, 256) for dim = ${dim})`,
    });
  }
}

function checkFileMatchesModel(model: Model, file: ModelFile): void {
  for (const field of ["dim", "hidden_dim", "n_layers"] as const) {
    if (file.config[field] !== model.config[field]) {
      optionMismatch(
        WHERE,
        { source: file.source, field, actual: String(file.config[field]), expected: `${model.config[field]}, the model's value` },
        "pass the file that the model was loaded from",
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// collect

/** Splits each document's ids into consecutive windows of at most seqLen tokens. */
function windows(documents: number[][], seqLen: number): number[][] {
  const result: number[][] = [];
  for (const ids of documents) {
    for (let start = 0; start < ids.length; start += seqLen) result.push(ids.slice(start, start + seqLen));
  }
  return result;
}

/** Adds the lower triangle of x xᵀ to products (dim × dim). */
function addOuterProduct(products: Float64Array, x: Float32Array, dim: number): void {
  for (let i = 0; i < dim; i++) {
    const xi = x[i];
    if (xi === 0) continue;
    const row = i * dim;
    for (let j = 0; j <= i; j++) products[row + j] += xi * x[j];
  }
}

function mirrorLowerTriangle(products: Float64Array, dim: number): void {
  for (let i = 0; i < dim; i++) {
    for (let j = 0; j < i; j++) products[j * dim + i] = products[i * dim + j];
  }
}

/**
 * Runs the dense model over `text` (documents split at `<|endoftext|>` lines, each tokenized
 * with BOS, in windows of at most seq_len tokens) and gathers, per layer, Σ x xᵀ over every token
 * and the inputs x and magnitudes |act(g_j)| of every stride-th token.
 */
export async function collectActivations(model: Model, text: string, options: CollectOptions = {}): Promise<ActivationStatistics> {
  const { dim, hidden_dim, n_layers, seq_len, activation } = model.config;
  const source = options.source ?? "text";
  checkMaxTokens(options.maxTokens, dim);
  options.signal?.throwIfAborted();

  const documents = splitDocuments(text).map((story) => model.tokenize(story, { bos: true }));
  const all = windows(documents, seq_len);
  const available = all.reduce((sum, ids) => sum + ids.length, 0);
  const total = Math.min(available, options.maxTokens ?? Infinity);
  const needed = minimumTokens(dim);
  if (total < needed) {
    formatMismatch(
      WHERE,
      { source, field: "calibration tokens", actual: String(total), expected: `at least ${needed} = max(4·dim, 256) for dim = ${dim}` },
      `the text has ${documents.length} documents; use a longer calibration text`,
    );
  }

  // Every stride-th token is kept, so the kept values stay within maxValuesPerLayer.
  const maxSamples = Math.max(1, Math.floor((options.maxValuesPerLayer ?? DEFAULT_MAX_VALUES) / hidden_dim));
  const stride = Math.ceil(total / maxSamples);
  const samples = Math.ceil(total / stride);
  const layers: LayerActivations[] = Array.from({ length: n_layers }, () => ({
    inputProducts: new Float64Array(dim * dim),
    inputs: new Float32Array(samples * dim),
    magnitudes: new Float32Array(samples * hidden_dim),
  }));

  let tokens = 0;
  let lastYield = performance.now();
  for (const ids of all) {
    if (tokens >= total) break;
    const end = Math.min(ids.length, total - tokens);
    for (let pos = 0; pos < end; pos++) {
      const trace = model.traceStep(ids[pos], pos);
      const sample = tokens % stride === 0 ? tokens / stride : -1;
      for (let l = 0; l < n_layers; l++) {
        const x = trace.ffnInput(l);
        const layer = layers[l];
        addOuterProduct(layer.inputProducts, x, dim);
        if (sample < 0) continue;
        layer.inputs.set(x, sample * dim);
        const gate = trace.gate(l);
        const out = sample * hidden_dim;
        for (let j = 0; j < hidden_dim; j++) layer.magnitudes[out + j] = Math.abs(activate(gate[j], activation));
      }
      tokens++;
    }
    options.onProgress?.({ phase: "collect", loaded: tokens, total });
    if (performance.now() - lastYield > YIELD_INTERVAL_MS) {
      options.signal?.throwIfAborted();
      await new Promise((resolve) => setTimeout(resolve, 0));
      lastYield = performance.now();
    }
  }
  options.signal?.throwIfAborted();

  for (const layer of layers) mirrorLowerTriangle(layer.inputProducts, dim);
  return { dim, hidden_dim, activation, tokens, samples, stride, layers };
}

// ---------------------------------------------------------------------------------------------
// fit

/**
 * Returns the k-th smallest value (k from 0) by quickselect on a copy, in O(n) expected time.
 * A full sort of two million values was about six times slower in Node 20.
 */
function selectKth(values: Float32Array, k: number): number {
  const work = values.slice();
  let low = 0;
  let high = work.length - 1;
  while (low < high) {
    // Median of three pivot, so sorted or constant runs do not degrade to O(n²).
    const middle = (low + high) >>> 1;
    const pivot = Math.max(Math.min(work[low], work[middle]), Math.min(Math.max(work[low], work[middle]), work[high]));
    let i = low;
    let j = high;
    while (i <= j) {
      while (work[i] < pivot) i++;
      while (work[j] > pivot) j--;
      if (i <= j) {
        const swap = work[i];
        work[i++] = work[j];
        work[j--] = swap;
      }
    }
    if (k <= j) high = j;
    else if (k >= i) low = i;
    else return work[k];
  }
  return work[k];
}

/**
 * Returns τ such that a fraction `sparsity` of the magnitudes lies below it: the value at rank
 * floor(S·n) in ascending order, or exactly 0 for S = 0. Ties at τ are kept, so ReLU's exact zeros
 * give τ = 0 whenever they outnumber S·n.
 */
export function thresholdForSparsity(magnitudes: Float32Array, sparsity: number): number {
  if (sparsity === 0 || magnitudes.length === 0) return 0;
  return selectKth(magnitudes, Math.min(magnitudes.length - 1, Math.floor(sparsity * magnitudes.length)));
}

/**
 * Returns the largest cutoff c such that the masses whose score is ≥ c sum to at least
 * `recall` of all masses. Each score (≥ 0) and mass belong to one kept neuron of one token. The
 * result is one of the scores, so it is exact in f32. Without any mass it is 0.
 */
export function cutoffForRecall(scores: Float32Array, masses: Float32Array, recall: number): number {
  let totalMass = 0;
  for (let i = 0; i < masses.length; i++) totalMass += masses[i];
  if (totalMass === 0) return 0;
  const needed = recall * totalMass;

  // The bits of a non-negative f32 sort as its value, so a histogram of mass over the top 16 bits
  // finds the bucket where the recalled mass, summed from the largest scores down, reaches `needed`.
  const bits = new Uint32Array(scores.buffer, scores.byteOffset, scores.length);
  const histogram = new Float64Array(1 << 16);
  for (let i = 0; i < scores.length; i++) histogram[bits[i] >>> 16] += masses[i];
  let above = 0;
  let bucket = histogram.length - 1;
  while (bucket > 0 && above + histogram[bucket] < needed) above += histogram[bucket--];

  // Within that bucket, walk its scores from the largest down.
  const members: number[] = [];
  for (let i = 0; i < scores.length; i++) if (bits[i] >>> 16 === bucket) members.push(i);
  members.sort((a, b) => scores[b] - scores[a]);
  for (const i of members) {
    above += masses[i];
    if (above >= needed) return scores[i];
  }
  // Rounding in the sums can leave the walk just short of `needed`, so the smallest score is the cutoff.
  return members.length > 0 ? scores[members[members.length - 1]] : 0;
}

/** Fitted low-rank predictor of one layer, as the file stores it. */
export interface Predictor {
  /** (rank, dim) row-major P_down. */
  down: Float32Array;
  /** (hidden_dim, rank) row-major P_up. */
  up: Float32Array;
}

/**
 * Fits ĝ = P_up (P_down x) to g = W x for `weights` (hidden_dim, dim) row-major, weighting by
 * the inputs: it minimizes E‖(W − P_up P_down) x‖² = ‖(W − P_up P_down) L‖²_F with C = E[x xᵀ] = L Lᵀ.
 * With rank = dim it reproduces W up to f32 rounding.
 */
export function fitPredictor(weights: Float32Array, inputProducts: Float64Array, tokens: number, dim: number, hidden_dim: number, rank: number, seed = 1): Predictor {
  const covariance = createMatrix(dim, dim);
  let trace = 0;
  for (let i = 0; i < dim * dim; i++) covariance.data[i] = inputProducts[i] / tokens;
  for (let i = 0; i < dim; i++) trace += covariance.data[i * dim + i];
  // C is singular when the inputs span fewer than dim directions (few tokens, a norm weight near
  // zero). A ridge of 1e-6 of the mean eigenvalue makes Cholesky succeed and bounds L⁻¹, while it
  // moves the fit by about that relative amount.
  const ridge = trace > 0 ? (1e-6 * trace) / dim : 1e-12;
  for (let i = 0; i < dim; i++) covariance.data[i * dim + i] += ridge;

  const l = cholesky(covariance);
  const weighted = multiply(createMatrix(hidden_dim, dim, weights), l);
  const { u, s, v } = truncatedSVD(weighted, rank, { seed });

  const up = new Float32Array(hidden_dim * rank);
  for (let j = 0; j < hidden_dim; j++) {
    for (let k = 0; k < rank; k++) up[j * rank + k] = u.data[j * rank + k] * s[k];
  }
  const down = Float32Array.from(multiplyTransposed(v, invertLower(l)).data);
  return { down, up };
}

/** Quantizes x to Q8_0 blocks and back as the runtime's activation quantizer does (f32 scale, no f16 rounding). */
function quantizeInput(x: Float32Array, out: Float32Array): void {
  const fround = Math.fround;
  for (let start = 0; start < x.length; start += 32) {
    const end = Math.min(x.length, start + 32);
    let amax = 0;
    for (let i = start; i < end; i++) amax = Math.max(amax, Math.abs(x[i]));
    const d = fround(amax / 127);
    const inverse = d !== 0 ? fround(1 / d) : 0;
    for (let i = start; i < end; i++) {
      const scaled = fround(x[i] * inverse);
      const rounded = Math.abs(scaled - Math.trunc(scaled)) >= 0.5 ? Math.trunc(scaled) + Math.sign(scaled) : Math.trunc(scaled);
      out[i] = Math.max(-127, Math.min(127, rounded)) * d;
    }
  }
}

/**
 * Computes |act(ĝ_j)| for every sampled token of a layer as the runtime does: P_down and P_up in
 * Q8_0, the input x and the projection z quantized per block of 32 before each product.
 */
function predictedMagnitudes(layer: LayerActivations, predictor: Predictor, statistics: ActivationStatistics, rank: number): Float32Array {
  const { dim, hidden_dim, samples, activation } = statistics;
  const down = dequantizeQ8_0(quantizeQ8_0(predictor.down, dim, rank), dim, rank);
  const up = dequantizeQ8_0(quantizeQ8_0(predictor.up, rank, hidden_dim), rank, hidden_dim);
  const scores = new Float32Array(samples * hidden_dim);
  const x = new Float32Array(dim);
  const projection = new Float32Array(rank);
  const z = new Float32Array(rank);
  for (let t = 0; t < samples; t++) {
    quantizeInput(layer.inputs.subarray(t * dim, (t + 1) * dim), x);
    for (let k = 0; k < rank; k++) {
      let sum = 0;
      for (let i = 0; i < dim; i++) sum += down[k * dim + i] * x[i];
      projection[k] = Math.fround(sum);
    }
    quantizeInput(projection, z);
    for (let j = 0; j < hidden_dim; j++) {
      let sum = 0;
      for (let k = 0; k < rank; k++) sum += up[j * rank + k] * z[k];
      scores[t * hidden_dim + j] = Math.abs(activate(Math.fround(sum), activation));
    }
  }
  return scores;
}

/** Picks the (score, mass) pairs of kept neurons: mass ≥ τ and mass ≠ 0. */
function keptPairs(scores: Float32Array, magnitudes: Float32Array, threshold: number): { scores: Float32Array; masses: Float32Array } {
  const keptScores = new Float32Array(magnitudes.length);
  const masses = new Float32Array(magnitudes.length);
  let count = 0;
  for (let i = 0; i < magnitudes.length; i++) {
    const magnitude = magnitudes[i];
    if (magnitude < threshold || magnitude === 0) continue;
    keptScores[count] = scores[i];
    masses[count++] = magnitude;
  }
  return { scores: keptScores.subarray(0, count), masses: masses.subarray(0, count) };
}

/** Returns the f32 gate weights (hidden_dim, dim) of a layer: ffn_gate, or ffn_up for a non-gated FFN. */
function gateWeights(file: ModelFile, layer: number, gated: boolean): Float32Array {
  const name = `blk.${layer}.${gated ? "ffn_gate" : "ffn_up"}.weight`;
  const tensor = file.tensors.get(name);
  if (tensor === undefined) {
    formatMismatch(WHERE, { source: file.source, field: `tensor ${name}`, actual: "missing", expected: "present in every layer" });
  }
  return tensorToF32(tensor);
}

/**
 * Fits thresholds, predictors and cutoffs to collected activations. `file` supplies the gate
 * weights (ffn_gate, or ffn_up when the FFN is not gated).
 */
export async function fitSparsity(statistics: ActivationStatistics, file: ModelFile, options: FitOptions): Promise<SparsityData> {
  const { dim, hidden_dim, activation } = statistics;
  checkFitOptions(options, dim, hidden_dim);
  const gated = file.config.gated ?? file.tensors.has("blk.0.ffn_gate.weight");
  const rank = options.rank ?? defaultRank(dim, hidden_dim, gated);
  const recall = options.recall ?? DEFAULT_RECALL;
  const n_layers = statistics.layers.length;

  const thresholds = new Float32Array(n_layers);
  const cutoffs = new Float32Array(n_layers);
  const predictorDown: Float32Array[] = [];
  const predictorUp: Float32Array[] = [];
  for (let l = 0; l < n_layers; l++) {
    options.signal?.throwIfAborted();
    const layer = statistics.layers[l];
    const predictor = fitPredictor(gateWeights(file, l, gated), layer.inputProducts, statistics.tokens, dim, hidden_dim, rank, l + 1);
    predictorDown.push(predictor.down);
    predictorUp.push(predictor.up);

    // S = 0 keeps every neuron, and then every neuron must be a candidate too.
    if (options.sparsity > 0) {
      thresholds[l] = thresholdForSparsity(layer.magnitudes, options.sparsity);
      const kept = keptPairs(predictedMagnitudes(layer, predictor, statistics, rank), layer.magnitudes, thresholds[l]);
      cutoffs[l] = cutoffForRecall(kept.scores, kept.masses, recall);
    }
    options.onProgress?.({ phase: "fit", loaded: l + 1, total: n_layers });
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return {
    version: SPARSITY_VERSION, sparsity: options.sparsity, rank, recall, activation, thresholds, cutoffs, predictorDown, predictorUp,
  };
}

/**
 * Measures sparsity data on collected activations (for example of held-out text): per layer,
 * the fraction of neurons below τ_l and the predictor's activation-mass recall.
 */
export function measureSparsity(statistics: ActivationStatistics, data: SparsityData): LayerSparsity[] {
  return statistics.layers.map((layer, l) => {
    const threshold = data.thresholds[l];
    const scores = predictedMagnitudes(layer, { down: data.predictorDown[l], up: data.predictorUp[l] }, statistics, data.rank);
    let dormant = 0;
    let candidates = 0;
    let keptCandidates = 0;
    let keptMass = 0;
    let recalledMass = 0;
    for (let i = 0; i < layer.magnitudes.length; i++) {
      const magnitude = layer.magnitudes[i];
      const candidate = scores[i] >= data.cutoffs[l];
      if (candidate) candidates++;
      if (magnitude < threshold || magnitude === 0) {
        dormant++;
        continue;
      }
      keptMass += magnitude;
      if (candidate) {
        recalledMass += magnitude;
        keptCandidates++;
      }
    }
    const count = layer.magnitudes.length;
    const kept = count - dormant;
    return {
      sparsity: dormant / count,
      recall: keptMass > 0 ? recalledMass / keptMass : 1,
      candidates: candidates / count,
      recallCount: kept > 0 ? keptCandidates / kept : 1,
      precision: candidates > 0 ? keptCandidates / candidates : 1,
    };
  });
}

/**
 * Calibrates activation sparsity of `model` on `text`: runs the dense model, then fits per-layer
 * thresholds for the target sparsity, a low-rank gate predictor and candidate cutoffs for the
 * requested recall. `file` is the model file the model was loaded from (it supplies the gate
 * weights). Write the result with writeSparsityGGUF.
 */
export async function calibrate(model: Model, file: ModelFile, text: string, options: CalibrateOptions): Promise<SparsityData> {
  const { dim, hidden_dim } = model.config;
  checkFitOptions(options, dim, hidden_dim);
  checkMaxTokens(options.maxTokens, dim);
  checkFileMatchesModel(model, file);
  const statistics = await collectActivations(model, text, options);
  return fitSparsity(statistics, file, options);
}
