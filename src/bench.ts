/**
 * `dormant bench`: decode and prefill tokens/s and where a decode step spends its time, for the
 * real stories260K and for generated models of larger shapes (random weights, since only speed
 * is measured on them). Medians over several runs; nothing here asserts a speed.
 */

import { optionMismatch } from "./errors.js";
import { MAX_THREADS, type Model, type Precision, type RuntimeSparsity } from "./model.js";
import { activate } from "./sparsity/calibrate.js";
import { SYNTHETIC_SHAPES, syntheticModel } from "./synthetic.js";

export interface BenchOptions {
  /** Model names: "stories260K" (loaded by name) or keys of SYNTHETIC_SHAPES. */
  models: string[];
  precisions: Precision[];
  /** Timed runs per figure, after one warm-up run. */
  runs: number;
  /** Tokens generated per decode run. */
  tokens: number;
  /** Thread counts to run each model with (default [1]). */
  threads?: number[];
  /**
   * Fractions of FFN neurons to keep (default [1]). 1 runs the dense matrices. A fraction below 1
   * runs int8 neuron bundles in predicted mode, with a random predictor and thresholds fitted to
   * keep that fraction (see forcedSparsity).
   */
  keep?: number[];
  /**
   * Loads a model by name or from a generated file, with the sparsity data given (null: dense);
   * the CLI passes loadModel and createModel.
   */
  load(name: string, precision: Precision, contextLength: number, threads: number, sparsity: RuntimeSparsity | null): Promise<Model>;
  onProgress?(label: string): void;
}

export interface BenchRow {
  model: string;
  precision: Precision;
  kernels: string;
  /** Fraction of FFN neurons the setting keeps: 1 for the dense matrices. */
  keep: number;
  /** Mean fraction of FFN neurons kept during the decode runs. */
  kept_fraction: number;
  /** Threads that ran; fewer than asked when the host cannot share memory (see threads_note). */
  threads: number;
  threads_note?: string;
  decode_tokens_per_second: number;
  prefill_tokens_per_second: number;
  /**
   * Milliseconds per decode token, split by stage. "ffn" excludes the sparsity predictor, which
   * has its own figure (0 without one), and "other" is projections, norms and sampling.
   */
  ms_per_token: { attention: number; ffn: number; predictor: number; classifier: number; other: number };
}

/** Tokens of the prefill prompt. */
const PREFILL_TOKENS = 128;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Checks the bench options; throws an OptionError naming the first bad one. */
export function checkBenchOptions(options: Pick<BenchOptions, "models" | "runs" | "tokens" | "threads" | "keep">): void {
  const known = ["stories260K", ...Object.keys(SYNTHETIC_SHAPES)];
  for (const name of options.models) {
    if (!known.includes(name)) {
      optionMismatch("dormant bench", { source: "option models", field: "models", actual: JSON.stringify(name), expected: `one of ${known.join(", ")}` });
    }
  }
  if (!Number.isInteger(options.runs) || options.runs < 1 || options.runs > 100) {
    optionMismatch("dormant bench", { source: "option runs", field: "runs", actual: String(options.runs), expected: "an integer in [1, 100]" });
  }
  if (!Number.isInteger(options.tokens) || options.tokens < 2 || options.tokens > 4096) {
    optionMismatch("dormant bench", { source: "option tokens", field: "tokens", actual: String(options.tokens), expected: "an integer in [2, 4096]" });
  }
  for (const count of options.threads ?? [1]) {
    if (!Number.isInteger(count) || count < 1 || count > MAX_THREADS) {
      optionMismatch("dormant bench", { source: "option threads", field: "threads", actual: String(count), expected: `integers in [1, ${MAX_THREADS}]` });
    }
  }
  for (const fraction of options.keep ?? [1]) {
    if (!Number.isFinite(fraction) || fraction <= 0 || fraction > 1) {
      optionMismatch("dormant bench", { source: "option keep", field: "keep", actual: String(fraction), expected: "fractions in (0, 1]" });
    }
  }
}

/** Rank of the random predictor of forcedSparsity. */
const FORCED_RANK = 96;

/** Value below which a `fraction` of `values` falls. */
function quantile(values: ArrayLike<number>, fraction: number): number {
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))];
}

/**
 * Returns sparsity data that keeps about `keep` of the FFN neurons of `dense` (a model loaded
 * without sparsity data), for speed measurements on models without a calibrated predictor. It
 * contains a random predictor of rank 96, whose cost is real though its choices are arbitrary, a
 * cutoff per layer that makes 1.1 · keep of the neurons candidates, and τ_l that keeps `keep` of
 * them. Both are fitted on the FFN inputs and gates of one position of a fixed token sequence.
 * @internal
 */
export function forcedSparsity(dense: Model, keep: number, seed = 7): RuntimeSparsity {
  const { n_layers, dim, hidden_dim, vocab_size, activation } = dense.config;
  const rank = FORCED_RANK;
  let state = seed;
  const random = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state / 2 ** 31 - 1) * 0.05;
  };
  const predictorDown = Array.from({ length: n_layers }, () => Float32Array.from({ length: rank * dim }, random));
  const predictorUp = Array.from({ length: n_layers }, () => Float32Array.from({ length: hidden_dim * rank }, random));

  const sequence = [1, 500, 9000, 1234].map((id) => id % vocab_size);
  for (let pos = 0; pos < 3; pos++) dense.step(sequence[pos], pos);
  const traced = dense.traceStep(sequence[3], 3);

  const cutoffs = new Float32Array(n_layers);
  const thresholds = new Float32Array(n_layers);
  const candidateFraction = Math.min(1, keep * 1.1);
  for (let l = 0; l < n_layers; l++) {
    const input = traced.ffnInput(l);
    const gate = traced.gate(l);
    const z = new Float64Array(rank);
    for (let r = 0; r < rank; r++) {
      let sum = 0;
      for (let i = 0; i < dim; i++) sum += predictorDown[l][r * dim + i] * input[i];
      z[r] = sum;
    }
    const predicted = new Float64Array(hidden_dim);
    for (let j = 0; j < hidden_dim; j++) {
      let sum = 0;
      for (let r = 0; r < rank; r++) sum += predictorUp[l][j * rank + r] * z[r];
      predicted[j] = Math.abs(activate(sum, activation));
    }
    cutoffs[l] = quantile(predicted, 1 - candidateFraction);
    const candidates: number[] = [];
    for (let j = 0; j < hidden_dim; j++) if (predicted[j] >= cutoffs[l]) candidates.push(Math.abs(activate(gate[j], activation)));
    thresholds[l] = quantile(candidates, 1 - keep / candidateFraction);
  }
  return { rank, thresholds, cutoffs, predictorDown, predictorUp };
}

/** Returns the model file of a generated shape, for the CLI's loader. */
export function benchModelFile(name: string) {
  return syntheticModel(name, SYNTHETIC_SHAPES[name]);
}

async function measure(model: Model, name: string, keep: number, options: BenchOptions): Promise<BenchRow> {
  const { runs, tokens } = options;
  const decode: number[] = [];
  for (let run = 0; run <= runs; run++) {
    const iterator = model.generate([model.tokenizer.bosId], { maxTokens: tokens, temperature: 0, stopAtEos: false });
    let next = await iterator.next();
    while (!next.done) next = await iterator.next();
    if (run > 0) decode.push(next.value.tokensPerSecond);
  }

  // Stage times on the state decode left: attention at the middle position, the classifier on
  // the last residual stream, and each layer's FFN in turn on inputs traced at one position.
  const parts = model.timeParts(tokens >> 1, 4 * runs);
  const traced = model.traceStep(model.tokenizer.bosId, 0);
  const inputs = Array.from({ length: model.config.n_layers }, (_, l) => traced.ffnInput(l).slice());
  const ffn: number[] = [];
  const predictor: number[] = [];
  for (let run = 0; run < 4 * runs; run++) {
    let total = 0;
    let predicting = 0;
    for (let l = 0; l < inputs.length; l++) {
      total += model.timeFfn(l, inputs[l], 1);
      if (model.hasPredictor) predicting += model.timePredictor(l, inputs[l], 1);
    }
    ffn.push(total);
    predictor.push(predicting);
  }

  const promptLength = Math.min(PREFILL_TOKENS, model.config.seq_len - 1);
  const prompt = Array.from({ length: promptLength }, (_, i) => (i * 7919) % model.config.vocab_size);
  const prefill: number[] = [];
  for (let run = 0; run <= runs; run++) {
    const started = performance.now();
    model.prefill(prompt, 0);
    if (run > 0) prefill.push((promptLength * 1000) / (performance.now() - started));
  }

  const decodeSpeed = median(decode);
  const predictorMs = median(predictor);
  const ffnMs = Math.max(0, median(ffn) - predictorMs);
  const decodeMs = 1000 / decodeSpeed;
  const stats = model.stats();
  return {
    model: name,
    precision: model.precision,
    kernels: model.kernels,
    keep,
    kept_fraction: stats.keptFraction,
    threads: stats.threads,
    ...(stats.threadsNote ? { threads_note: stats.threadsNote } : {}),
    decode_tokens_per_second: decodeSpeed,
    prefill_tokens_per_second: median(prefill),
    ms_per_token: {
      attention: parts.attentionMs,
      ffn: ffnMs,
      predictor: predictorMs,
      classifier: parts.classifierMs,
      other: Math.max(0, decodeMs - parts.attentionMs - ffnMs - predictorMs - parts.classifierMs),
    },
  };
}

/**
 * Runs every (model, precision, keep, threads) setting and returns one row each. Kept fractions
 * below 1 run int8 only.
 */
export async function runBench(options: BenchOptions): Promise<BenchRow[]> {
  checkBenchOptions(options);
  const rows: BenchRow[] = [];
  const contextLength = Math.max(options.tokens + 16, PREFILL_TOKENS + 16);
  for (const name of options.models) {
    for (const precision of options.precisions) {
      for (const keep of options.keep ?? [1]) {
        if (keep < 1 && precision !== "int8") continue;
        let sparsity: RuntimeSparsity | null = null;
        if (keep < 1) {
          const dense = await options.load(name, precision, contextLength, 1, null);
          try {
            sparsity = forcedSparsity(dense, keep);
          } finally {
            dense.dispose();
          }
        }
        for (const threads of options.threads ?? [1]) {
          options.onProgress?.(`${name} ${precision} keep ${keep} threads ${threads}`);
          const model = await options.load(name, precision, contextLength, threads, sparsity);
          try {
            rows.push(await measure(model, name, keep, options));
          } finally {
            model.dispose();
          }
        }
      }
    }
  }
  return rows;
}

/** Formats rows as a fixed-width table. */
export function formatBenchTable(rows: BenchRow[]): string {
  const header = "model        precision  kernels        keep  kept   threads  decode tok/s  prefill tok/s  attention ms  ffn ms  predictor ms  classifier ms  other ms";
  const lines = rows.map((row) => [
    row.model.padEnd(12), row.precision.padEnd(10), row.kernels.padEnd(14), row.keep.toFixed(2).padStart(4),
    row.kept_fraction.toFixed(2).padStart(5), String(row.threads).padStart(7),
    row.decode_tokens_per_second.toFixed(1).padStart(12), row.prefill_tokens_per_second.toFixed(1).padStart(13),
    row.ms_per_token.attention.toFixed(3).padStart(12), row.ms_per_token.ffn.toFixed(3).padStart(7),
    row.ms_per_token.predictor.toFixed(3).padStart(12),
    row.ms_per_token.classifier.toFixed(3).padStart(13), row.ms_per_token.other.toFixed(3).padStart(9),
  ].join(" "));
  return [header, ...lines].join("\n") + "\n";
}
