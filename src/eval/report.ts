/**
 * Activation profile of a sparse model: where its FFN neurons sleep. One traced pass over text
 * gives, per layer, the oracle active set A_t = { j : |act(g_j)| ≥ τ_l } of every token, and from
 * it:
 *
 *   firing frequency   share of tokens on which a neuron is active (hot and cold neurons)
 *   Jaccard            |A_t ∩ A_{t−1}| / |A_t ∪ A_{t−1}|, mean over consecutive tokens
 *   reuse(k)           Σ_t |A_t ∩ W_t,k| / Σ_t |A_t| with W_t,k = A_{t−1} ∪ … ∪ A_{t−k}: the hit rate
 *                      of a neuron cache that keeps the neurons of the last k tokens
 *   kept(τ)            share of (token, neuron) pairs with |act(g)| ≥ τ, over a sweep of τ
 *   recall             the predictor's activation-mass recall (measureSparsity)
 *
 * Tokens pair up only inside one context window (a document split at seq_len), because the
 * runtime starts each window from an empty KV cache.
 *
 * sweepSparsity then calibrates in memory at several target sparsities S from one activation pass
 * and measures perplexity, and measureModes runs the file's own data in each FFN mode.
 */

import { optionMismatch } from "../errors.js";
import { createModel, type LayerStats, type LoadOptions, type Model, type SparsityMode } from "../model.js";
import {
  activate, collectActivations, fitSparsity, measureSparsity, minimumTokens,
  type ActivationStatistics, type LayerSparsity,
} from "../sparsity/calibrate.js";
import { MAX_SPARSITY, readSparsity, type SparsityData } from "../sparsity/format.js";
import type { ModelFile } from "../types.js";
import { evaluate, splitDocuments } from "./perplexity.js";

export interface ProfileOptions {
  /** Largest number of tokens traced; default 4000. */
  maxTokens?: number;
  /** Window sizes k of the reuse measure; default 1, 2, 4, 8, 16, 32, 64. */
  windows?: number[];
  /** Quantiles of all layers' |act(g)| pooled, used as the thresholds of the kept(τ) sweep. */
  quantiles?: number[];
  /** Bins of the firing-frequency histogram over [0, 1]; default 20. */
  bins?: number;
  /** Largest number of |act(g)| values sampled per layer for kept(τ) and recall; default 2^20. */
  maxValuesPerLayer?: number;
  /** Name of the text in messages, for example its path; default "text". */
  source?: string;
  onProgress?(progress: { phase: "profile"; loaded: number; total: number }): void;
  signal?: AbortSignal;
}

/** Activation statistics of one layer. */
export interface LayerProfile {
  /** τ_l of the sparsity data. */
  threshold: number;
  /** Share of (token, neuron) pairs active. */
  keptFraction: number;
  /** (hidden_dim) share of tokens on which each neuron is active. */
  firingFrequency: Float64Array;
  /** Neurons per firing-frequency bin, bins of equal width over [0, 1]. */
  histogram: number[];
  /** Neurons active on at least HOT_FREQUENCY of the tokens. */
  hotNeurons: number;
  /** Neurons active on at most COLD_FREQUENCY of the tokens. */
  coldNeurons: number;
  /** Share of all activations that fall on the 10% most frequently active neurons. */
  topDecileShare: number;
  /** Mean Jaccard index of consecutive active sets. */
  jaccard: number;
  /** reuse(k) per window size. */
  reuse: number[];
  /** reuse(k) if neurons fired independently at their firing frequencies. */
  independentReuse: number[];
  /** Mean |W_t,k| / hidden_dim per window size: the share of neurons a cache of k tokens holds. */
  windowUnion: number[];
  /** kept(τ) per sweep threshold. */
  keptAtThreshold: number[];
  /** Predictor recall, candidates and sparsity on the sampled tokens. */
  predictor: LayerSparsity;
}

export interface ActivationProfile {
  /** Tokens traced. */
  tokens: number;
  /** Context windows the tokens came from. */
  contexts: number;
  hidden_dim: number;
  /** Tokens whose |act(g)| were sampled for kept(τ) and recall: every stride-th token. */
  sampledTokens: number;
  windows: number[];
  quantiles: number[];
  /** Sweep thresholds τ: the quantiles of all layers' sampled |act(g)| pooled. */
  sweepThresholds: number[];
  bins: number;
  layers: LayerProfile[];
}

/** A neuron active on at least this share of tokens counts as hot. */
export const HOT_FREQUENCY = 0.9;
/** A neuron active on at most this share of tokens counts as cold. */
export const COLD_FREQUENCY = 0.1;

const DEFAULT_PROFILE_TOKENS = 4000;
const DEFAULT_WINDOWS = [1, 2, 4, 8, 16, 32, 64];
const DEFAULT_QUANTILES = [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99];
const DEFAULT_BINS = 20;
const DEFAULT_MAX_VALUES = 2 ** 20;
const YIELD_INTERVAL_MS = 50;
const WHERE = "inspect";

/** Sparsity data as profileActivations reads it. */
export type ProfileSparsity = Pick<SparsityData, "rank" | "thresholds" | "cutoffs" | "predictorDown" | "predictorUp">;

/** Splits documents into token windows of at most seqLen, as calibration runs them. */
export function contextWindows(model: Model, text: string): number[][] {
  const result: number[][] = [];
  for (const story of splitDocuments(text)) {
    const ids = model.tokenize(story, { bos: true });
    for (let start = 0; start < ids.length; start += model.config.seq_len) result.push(ids.slice(start, start + model.config.seq_len));
  }
  return result;
}

function popcount(value: number): number {
  let v = value - ((value >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}

function checkIntegerList(name: string, values: number[], min: number): void {
  if (values.length === 0 || values.some((value) => !Number.isInteger(value) || value < min)) {
    optionMismatch(WHERE, { source: `option ${name}`, field: name, actual: `[${values.join(", ")}]`, expected: `a non-empty list of integers ≥ ${min}` });
  }
}

/** Accumulates the overlap measures of one layer over a stream of active sets. */
class OverlapCounter {
  readonly words: number;
  readonly #ring: Uint32Array;
  readonly #union: Uint32Array;
  readonly #maxWindow: number;
  readonly #windows: number[];
  jaccardSum = 0;
  jaccardCount = 0;
  readonly hits: Float64Array;
  readonly active: Float64Array;
  readonly unionSum: Float64Array;
  readonly counted: Float64Array;

  constructor(hidden_dim: number, windows: number[]) {
    this.words = Math.ceil(hidden_dim / 32);
    this.#windows = windows;
    this.#maxWindow = Math.max(...windows);
    this.#ring = new Uint32Array((this.#maxWindow + 1) * this.words);
    this.#union = new Uint32Array(this.words);
    this.hits = new Float64Array(windows.length);
    this.active = new Float64Array(windows.length);
    this.unionSum = new Float64Array(windows.length);
    this.counted = new Float64Array(windows.length);
  }

  /** Returns the slot of token `t` in the ring of the last maxWindow + 1 active sets. */
  slot(t: number): Uint32Array {
    const start = (t % (this.#maxWindow + 1)) * this.words;
    return this.#ring.subarray(start, start + this.words);
  }

  /** Adds the active set already written to slot(t); `pos` is its position in the context window. */
  add(t: number, pos: number): void {
    const current = this.slot(t);
    let size = 0;
    for (let w = 0; w < this.words; w++) size += popcount(current[w]);
    if (pos >= 1) {
      const previous = this.slot(t - 1);
      let intersection = 0;
      let union = 0;
      for (let w = 0; w < this.words; w++) {
        intersection += popcount(current[w] & previous[w]);
        union += popcount(current[w] | previous[w]);
      }
      this.jaccardSum += union > 0 ? intersection / union : 1;
      this.jaccardCount++;
    }
    // Grow W_t,k one token back at a time; a window size counts only when k predecessors exist.
    this.#union.fill(0);
    let next = 0;
    for (let back = 1; back <= Math.min(pos, this.#maxWindow); back++) {
      const earlier = this.slot(t - back);
      for (let w = 0; w < this.words; w++) this.#union[w] |= earlier[w];
      while (next < this.#windows.length && this.#windows[next] < back) next++;
      if (next >= this.#windows.length || this.#windows[next] !== back) continue;
      let hits = 0;
      let unionSize = 0;
      for (let w = 0; w < this.words; w++) {
        hits += popcount(current[w] & this.#union[w]);
        unionSize += popcount(this.#union[w]);
      }
      this.hits[next] += hits;
      this.active[next] += size;
      this.unionSum[next] += unionSize;
      this.counted[next]++;
    }
  }
}

/** Returns the fraction of values ≥ threshold in an ascending array. */
function shareAtLeast(sorted: Float32Array, threshold: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (sorted[middle] < threshold) low = middle + 1;
    else high = middle;
  }
  return sorted.length > 0 ? (sorted.length - low) / sorted.length : 0;
}

/** Summarizes firing counts: frequencies, histogram, hot and cold neurons, top-decile share. */
function firingSummary(counts: Float64Array, tokens: number, bins: number) {
  const firingFrequency = counts.map((count) => count / Math.max(1, tokens));
  const histogram = new Array<number>(bins).fill(0);
  for (const frequency of firingFrequency) histogram[Math.min(bins - 1, Math.floor(frequency * bins))]++;
  const sorted = Array.from(counts).sort((a, b) => b - a);
  const total = sorted.reduce((sum, count) => sum + count, 0);
  const top = sorted.slice(0, Math.max(1, Math.round(sorted.length / 10))).reduce((sum, count) => sum + count, 0);
  return {
    firingFrequency,
    histogram,
    hotNeurons: firingFrequency.filter((frequency) => frequency >= HOT_FREQUENCY).length,
    coldNeurons: firingFrequency.filter((frequency) => frequency <= COLD_FREQUENCY).length,
    topDecileShare: total > 0 ? top / total : 0,
  };
}

/** Returns Σ_j p_j (1 − (1 − p_j)^k) / Σ_j p_j, the reuse of independently firing neurons. */
function independentReuse(frequencies: Float64Array, k: number): number {
  let hits = 0;
  let active = 0;
  for (const p of frequencies) {
    hits += p * (1 - (1 - p) ** k);
    active += p;
  }
  return active > 0 ? hits / active : 0;
}

/**
 * Traces `model`'s dense path over `text` and measures, per layer, which neurons the thresholds
 * of `sparsity` keep: firing frequencies, overlap of consecutive active sets, reuse within
 * windows of k tokens, kept(τ) over a sweep of thresholds and the predictor's recall.
 */
export async function profileActivations(model: Model, sparsity: ProfileSparsity, text: string, options: ProfileOptions = {}): Promise<ActivationProfile> {
  const { dim, hidden_dim, n_layers, activation } = model.config;
  const windows = [...(options.windows ?? DEFAULT_WINDOWS)].sort((a, b) => a - b);
  checkIntegerList("windows", windows, 1);
  const quantiles = options.quantiles ?? DEFAULT_QUANTILES;
  const bins = options.bins ?? DEFAULT_BINS;
  const contexts = contextWindows(model, text);
  const total = Math.min(contexts.reduce((sum, ids) => sum + ids.length, 0), options.maxTokens ?? DEFAULT_PROFILE_TOKENS);
  if (total < 2) {
    optionMismatch(WHERE, { source: options.source ?? "text", field: "tokens", actual: String(total), expected: "at least 2" });
  }

  const maxSamples = Math.max(1, Math.floor((options.maxValuesPerLayer ?? DEFAULT_MAX_VALUES) / hidden_dim));
  const stride = Math.ceil(total / maxSamples);
  const samples = Math.ceil(total / stride);
  const counts = Array.from({ length: n_layers }, () => new Float64Array(hidden_dim));
  const overlaps = Array.from({ length: n_layers }, () => new OverlapCounter(hidden_dim, windows));
  // measureSparsity reads inputs and magnitudes only; inputProducts stays empty.
  const statistics: ActivationStatistics = {
    dim, hidden_dim, activation, tokens: total, samples, stride,
    layers: Array.from({ length: n_layers }, () => ({
      inputProducts: new Float64Array(0), inputs: new Float32Array(samples * dim), magnitudes: new Float32Array(samples * hidden_dim),
    })),
  };

  let t = 0;
  let used = 0;
  let lastYield = performance.now();
  for (const ids of contexts) {
    if (t >= total) break;
    used++;
    const end = Math.min(ids.length, total - t);
    for (let pos = 0; pos < end; pos++, t++) {
      const trace = model.traceStep(ids[pos], pos);
      const sample = t % stride === 0 ? t / stride : -1;
      for (let l = 0; l < n_layers; l++) {
        const gate = trace.gate(l);
        const threshold = sparsity.thresholds[l];
        const active = overlaps[l].slot(t);
        active.fill(0);
        const layer = statistics.layers[l];
        if (sample >= 0) layer.inputs.set(trace.ffnInput(l), sample * dim);
        for (let j = 0; j < hidden_dim; j++) {
          const magnitude = Math.abs(activate(gate[j], activation));
          if (sample >= 0) layer.magnitudes[sample * hidden_dim + j] = magnitude;
          // The runtime keeps a neuron when |act(g)| ≥ τ and act(g) ≠ 0.
          if (magnitude >= threshold && magnitude !== 0) {
            active[j >>> 5] |= 1 << (j & 31);
            counts[l][j]++;
          }
        }
        overlaps[l].add(t, pos);
      }
    }
    options.onProgress?.({ phase: "profile", loaded: t, total });
    if (performance.now() - lastYield > YIELD_INTERVAL_MS) {
      options.signal?.throwIfAborted();
      await new Promise((resolve) => setTimeout(resolve, 0));
      lastYield = performance.now();
    }
  }

  // One sort serves every quantile; thresholdForSparsity would copy the pooled values per quantile.
  const pooled = new Float32Array(samples * hidden_dim * n_layers);
  statistics.layers.forEach((layer, l) => pooled.set(layer.magnitudes, l * samples * hidden_dim));
  pooled.sort();
  const sweepThresholds = quantiles.map((q) => (q === 0 ? 0 : pooled[Math.min(pooled.length - 1, Math.floor(q * pooled.length))]));
  const predictor = measureSparsity(statistics, { version: 1, sparsity: 0, recall: 1, activation, ...sparsity });

  const layers = statistics.layers.map((layer, l): LayerProfile => {
    const sorted = layer.magnitudes.slice().sort();
    const firing = firingSummary(counts[l], total, bins);
    const overlap = overlaps[l];
    const activeSum = counts[l].reduce((sum, count) => sum + count, 0);
    return {
      threshold: sparsity.thresholds[l],
      keptFraction: activeSum / (total * hidden_dim),
      ...firing,
      jaccard: overlap.jaccardCount > 0 ? overlap.jaccardSum / overlap.jaccardCount : 0,
      reuse: windows.map((_, w) => (overlap.active[w] > 0 ? overlap.hits[w] / overlap.active[w] : 0)),
      independentReuse: windows.map((k) => independentReuse(firing.firingFrequency, k)),
      windowUnion: windows.map((_, w) => (overlap.counted[w] > 0 ? overlap.unionSum[w] / (overlap.counted[w] * hidden_dim) : 0)),
      keptAtThreshold: sweepThresholds.map((threshold) => shareAtLeast(sorted, threshold)),
      predictor: predictor[l],
    };
  });
  return { tokens: total, contexts: used, hidden_dim, sampledTokens: samples, windows, quantiles, sweepThresholds, bins, layers };
}

// ---------------------------------------------------------------------------------------------
// perplexity of the file's own data per mode, and of in-memory calibrations

/** Perplexity and runtime counters of one FFN mode. */
export interface ModeResult {
  mode: SparsityMode;
  perplexity: number;
  tokens: number;
  layers: LayerStats[];
}

/** Evaluates `model` on `text` in each FFN mode it supports and records its per-layer counters. */
export async function measureModes(
  model: Model, text: string,
  options: { maxTokens?: number; source?: string; signal?: AbortSignal; onProgress?(progress: { phase: "modes"; loaded: number; total: number }): void } = {},
): Promise<ModeResult[]> {
  const modes: SparsityMode[] = model.hasPredictor ? ["dense", "oracle", "predicted"] : ["dense", "oracle"];
  const previous = model.mode;
  const results: ModeResult[] = [];
  try {
    for (const mode of modes) {
      model.setMode(mode);
      const result = await evaluate(model, text, { maxTokens: options.maxTokens, signal: options.signal }, options.source);
      results.push({ mode, perplexity: result.perplexity, tokens: result.tokens, layers: model.layerStats() });
      options.onProgress?.({ phase: "modes", loaded: results.length, total: modes.length });
    }
  } finally {
    model.setMode(previous);
  }
  return results;
}

/** Perplexity at one target sparsity of the sweep. */
export interface SweepPoint {
  sparsity: number;
  oracle: number;
  predicted: number;
  /** Mean kept fraction over layers in oracle and predicted mode. */
  oracleKept: number;
  predictedKept: number;
  /** Mean candidate fraction over layers in predicted mode. */
  predictedCandidates: number;
}

export interface SparsitySweep {
  /** Perplexity of the dense int8 model. */
  dense: number;
  rank: number;
  /** Tokens of the calibration pass and tokens scored per evaluation. */
  calibrationTokens: number;
  evaluationTokens: number;
  points: SweepPoint[];
}

export interface SweepOptions {
  sparsities: number[];
  /** Predictor rank; default the calibration default. */
  rank?: number;
  /** Largest number of calibration tokens; raised to the calibration minimum max(4·dim, 256). */
  maxTokens?: number;
  /** Largest number of tokens scored per evaluation. */
  evalTokens?: number;
  kernels?: "auto" | "exact" | "relaxed";
  source?: string;
  onProgress?(progress: { phase: "sweep"; loaded: number; total: number }): void;
  signal?: AbortSignal;
}

function meanOf(layers: LayerStats[], key: "keptFraction" | "candidateFraction"): number {
  return layers.reduce((sum, layer) => sum + layer[key], 0) / Math.max(1, layers.length);
}

/**
 * Calibrates `file` in memory at each target sparsity from one activation pass over
 * `calibrationText`, and evaluates each calibration on `evaluationText` in oracle and predicted mode.
 */
export async function sweepSparsity(file: ModelFile, calibrationText: string, evaluationText: string, options: SweepOptions): Promise<SparsitySweep> {
  for (const sparsity of options.sparsities) {
    if (!(sparsity >= 0 && sparsity <= MAX_SPARSITY)) {
      optionMismatch(WHERE, { source: "option sparsities", field: "sparsities", actual: `[${options.sparsities.join(", ")}]`, expected: `numbers in [0, ${MAX_SPARSITY}]` });
    }
  }
  const dense = await createModel(file, { sparsity: null, kernels: options.kernels });
  const steps = options.sparsities.length + 2;
  let done = 0;
  const report = (): void => options.onProgress?.({ phase: "sweep", loaded: ++done, total: steps });
  try {
    const needed = minimumTokens(dense.config.dim);
    const statistics = await collectActivations(dense, calibrationText, {
      maxTokens: options.maxTokens === undefined ? undefined : Math.max(needed, options.maxTokens), source: options.source, signal: options.signal,
    });
    report();
    const evaluateText = (model: Model) => evaluate(model, evaluationText, { maxTokens: options.evalTokens, signal: options.signal }, options.source);
    const baseline = await evaluateText(dense);
    report();

    const points: SweepPoint[] = [];
    let rank = options.rank ?? 0;
    for (const sparsity of options.sparsities) {
      const data = await fitSparsity(statistics, file, { sparsity, rank: options.rank, signal: options.signal });
      rank = data.rank;
      const sparse = await createModel(file, { sparsity: data, kernels: options.kernels });
      try {
        sparse.setMode("oracle");
        const oracle = await evaluateText(sparse);
        const oracleLayers = sparse.layerStats();
        sparse.setMode("predicted");
        const predicted = await evaluateText(sparse);
        const predictedLayers = sparse.layerStats();
        points.push({
          sparsity, oracle: oracle.perplexity, predicted: predicted.perplexity,
          oracleKept: meanOf(oracleLayers, "keptFraction"), predictedKept: meanOf(predictedLayers, "keptFraction"),
          predictedCandidates: meanOf(predictedLayers, "candidateFraction"),
        });
      } finally {
        sparse.dispose();
      }
      report();
    }
    return { dense: baseline.perplexity, rank, calibrationTokens: statistics.tokens, evaluationTokens: baseline.tokens, points };
  } finally {
    dense.dispose();
  }
}

/** Everything `dormant inspect` reports about a sparse file. */
export interface InspectData {
  /** Path of the model file. */
  model: string;
  /** Text of the profile and the evaluations, for example "second half of FILE (94 documents)". */
  evaluationText: string;
  /** Text of the sweep's calibration. */
  calibrationText: string;
  /** The file's sparsity section. */
  sparsity: { target: number; rank: number; recall: number };
  profile: ActivationProfile;
  modes: ModeResult[];
  sweep: SparsitySweep;
}

/** Options of inspectModel. */
export interface InspectOptions {
  /** Tokens traced for the profile, and calibration tokens of the sweep; default 4000. */
  maxTokens?: number;
  /** Tokens scored per perplexity evaluation; default 2000. */
  evalTokens?: number;
  /** Target sparsities of the sweep; default 0.1, 0.3, 0.5, 0.7, 0.9. */
  sparsities?: number[];
  windows?: number[];
  /** Name of the text in messages and in the report, for example its path. */
  source?: string;
  /** Options for placing the model, for example kernels. */
  load?: Pick<LoadOptions, "kernels">;
  onProgress?(progress: { phase: "profile" | "modes" | "sweep"; loaded: number; total: number }): void;
  signal?: AbortSignal;
}

const DEFAULT_EVAL_TOKENS = 2000;
const DEFAULT_SPARSITIES = [0.1, 0.3, 0.5, 0.7, 0.9];

/**
 * Profiles a sparse model file on `text`. The first half of the documents calibrates the
 * sweep. The second half is traced for the profile and scored in each mode and at each sweep
 * point. A text of one document serves as both halves.
 */
export async function inspectModel(file: ModelFile, text: string, options: InspectOptions = {}): Promise<InspectData> {
  const source = options.source ?? "text";
  const data = readSparsity(file);
  if (!data) {
    optionMismatch(WHERE, { source: file.source, field: "dormant.sparsity.version", actual: "missing", expected: "a sparse file written by dormant calibrate" });
  }
  for (const [name, value] of [["maxTokens", options.maxTokens], ["evalTokens", options.evalTokens]] as const) {
    if (value !== undefined && !(Number.isInteger(value) && value >= 2)) {
      optionMismatch(WHERE, { source: `option ${name}`, field: name, actual: String(value), expected: "an integer ≥ 2" });
    }
  }
  const documents = splitDocuments(text);
  const half = Math.floor(documents.length / 2);
  const split = half >= 1;
  const join = (stories: string[]): string => stories.join("\n<|endoftext|>\n");
  const calibrationText = split ? join(documents.slice(0, half)) : text;
  const evaluationText = split ? join(documents.slice(half)) : text;
  const evalTokens = options.evalTokens ?? DEFAULT_EVAL_TOKENS;

  const model = await createModel(file, { ...options.load });
  let profile: ActivationProfile;
  let modes: ModeResult[];
  try {
    profile = await profileActivations(model, data, evaluationText, {
      maxTokens: options.maxTokens, windows: options.windows, source, signal: options.signal, onProgress: options.onProgress,
    });
    modes = await measureModes(model, evaluationText, { maxTokens: evalTokens, source, signal: options.signal, onProgress: options.onProgress });
  } finally {
    model.dispose();
  }
  const sweep = await sweepSparsity(file, calibrationText, evaluationText, {
    sparsities: options.sparsities ?? DEFAULT_SPARSITIES, rank: data.rank, maxTokens: options.maxTokens ?? DEFAULT_PROFILE_TOKENS,
    evalTokens, kernels: options.load?.kernels, source, signal: options.signal, onProgress: options.onProgress,
  });
  return {
    model: file.source,
    evaluationText: split ? `second half of ${source} (${documents.length - half} documents)` : `${source} (1 document)`,
    calibrationText: split ? `first half of ${source} (${half} documents), ${sweep.calibrationTokens} tokens` : `${source}, ${sweep.calibrationTokens} tokens`,
    sparsity: { target: data.sparsity, rank: data.rank, recall: data.recall },
    profile,
    modes,
    sweep,
  };
}
