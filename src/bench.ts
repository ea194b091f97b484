/**
 * `dormant bench`: decode and prefill tokens/s and where a decode step spends its time, for the
 * real stories260K and for generated models of larger shapes (random weights, since only speed
 * is measured on them). Medians over several runs; nothing here asserts a speed.
 */

import { optionMismatch } from "./errors.js";
import type { Model, Precision } from "./model.js";
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
  /** Loads a model by name or from a generated file; the CLI passes loadModel and createModel. */
  load(name: string, precision: Precision, contextLength: number, threads: number): Promise<Model>;
  onProgress?(label: string): void;
}

export interface BenchRow {
  model: string;
  precision: Precision;
  kernels: string;
  /** Threads that ran; fewer than asked when the host cannot share memory (see threads_note). */
  threads: number;
  threads_note?: string;
  decode_tokens_per_second: number;
  prefill_tokens_per_second: number;
  /** Milliseconds per decode token, split by stage; "other" is projections, norms and sampling. */
  ms_per_token: { attention: number; ffn: number; classifier: number; other: number };
}

/** Tokens of the prefill prompt. */
const PREFILL_TOKENS = 128;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Checks the bench options; throws an OptionError naming the first bad one. */
export function checkBenchOptions(options: Pick<BenchOptions, "models" | "runs" | "tokens" | "threads">): void {
  const known = ["stories260K", ...Object.keys(SYNTHETIC_SHAPES)];
  for (const name of options.models) {
    if (!known.includes(name)) {
      optionMismatch("bench", { source: "option models", field: "models", actual: JSON.stringify(name), expected: `one of ${known.join(", ")}` });
    }
  }
  if (!Number.isInteger(options.runs) || options.runs < 1 || options.runs > 100) {
    optionMismatch("bench", { source: "option runs", field: "runs", actual: String(options.runs), expected: "an integer in [1, 100]" });
  }
  if (!Number.isInteger(options.tokens) || options.tokens < 2 || options.tokens > 4096) {
    optionMismatch("bench", { source: "option tokens", field: "tokens", actual: String(options.tokens), expected: "an integer in [2, 4096]" });
  }
  for (const count of options.threads ?? [1]) {
    if (!Number.isInteger(count) || count < 1 || count > 64) {
      optionMismatch("bench", { source: "option threads", field: "threads", actual: String(count), expected: "integers in [1, 64]" });
    }
  }
}

/** Returns the model file of a generated shape, for the CLI's loader. */
export function benchModelFile(name: string) {
  return syntheticModel(name, SYNTHETIC_SHAPES[name]);
}

async function measure(model: Model, name: string, options: BenchOptions): Promise<BenchRow> {
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
  for (let run = 0; run < 4 * runs; run++) {
    let total = 0;
    for (let l = 0; l < inputs.length; l++) total += model.timeFfn(l, inputs[l], 1);
    ffn.push(total);
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
  const ffnMs = median(ffn);
  const decodeMs = 1000 / decodeSpeed;
  const stats = model.stats();
  return {
    model: name,
    precision: model.precision,
    kernels: model.kernels,
    threads: stats.threads,
    ...(stats.threadsNote ? { threads_note: stats.threadsNote } : {}),
    decode_tokens_per_second: decodeSpeed,
    prefill_tokens_per_second: median(prefill),
    ms_per_token: {
      attention: parts.attentionMs,
      ffn: ffnMs,
      classifier: parts.classifierMs,
      other: Math.max(0, decodeMs - parts.attentionMs - ffnMs - parts.classifierMs),
    },
  };
}

/** Runs every (model, precision, threads) triple and returns one row each. */
export async function runBench(options: BenchOptions): Promise<BenchRow[]> {
  checkBenchOptions(options);
  const rows: BenchRow[] = [];
  const contextLength = Math.max(options.tokens + 16, PREFILL_TOKENS + 16);
  for (const name of options.models) {
    for (const precision of options.precisions) {
      for (const threads of options.threads ?? [1]) {
        options.onProgress?.(`${name} ${precision} threads ${threads}`);
        const model = await options.load(name, precision, contextLength, threads);
        try {
          rows.push(await measure(model, name, options));
        } finally {
          model.dispose();
        }
      }
    }
  }
  return rows;
}

/** Formats rows as a fixed-width table. */
export function formatBenchTable(rows: BenchRow[]): string {
  const header = "model        precision  kernels        threads  decode tok/s  prefill tok/s  attention ms  ffn ms  classifier ms  other ms";
  const lines = rows.map((row) => [
    row.model.padEnd(12), row.precision.padEnd(10), row.kernels.padEnd(14), String(row.threads).padStart(7),
    row.decode_tokens_per_second.toFixed(1).padStart(12), row.prefill_tokens_per_second.toFixed(1).padStart(13),
    row.ms_per_token.attention.toFixed(3).padStart(12), row.ms_per_token.ffn.toFixed(3).padStart(7),
    row.ms_per_token.classifier.toFixed(3).padStart(13), row.ms_per_token.other.toFixed(3).padStart(9),
  ].join(" "));
  return [header, ...lines].join("\n") + "\n";
}
