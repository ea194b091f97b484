/**
 * Evaluation as a regression gate: one model run against a reference over a text corpus and an
 * optional prompt suite, its metrics checked against bounds. The CLI (`dormant eval` with gate
 * options) prints the crossed bounds and exits with code 1 when any is crossed.
 *
 * Metrics (snake_case, as in the JSON report and the bounds file):
 *   perplexity, reference_perplexity, perplexity_ratio   teacher-forced over the corpus
 *   mean_kl              mean KL(P_reference ‖ P_model) per position, nats
 *   top1_agreement       share of positions where both argmaxes agree
 *   kept_fraction        mean over layers of the neurons kept per token (runtime counters)
 *   ffn_bytes_per_token  FFN weight bytes read per token, summed over layers
 *   recall               the lowest per-layer activation-mass recall of the predictor
 *   greedy_tokens        mean greedy tokens both models generate before they first differ
 *   expected_tokens      mean greedy tokens of the model that match a prompt's expected text
 */

import { DormantError, formatMismatch, optionMismatch } from "../errors.js";
import type { Model } from "../model.js";
import { collectActivations, measureSparsity, minimumTokens, type LayerSparsity } from "../sparsity/calibrate.js";
import type { SparsityData } from "../sparsity/format.js";
import { TokenType, type ModelFile } from "../types.js";
import { argmax, evaluate, splitDocuments } from "./perplexity.js";

/** Names of the metrics a bound can apply to, in report order. */
export const METRIC_NAMES = [
  "perplexity", "reference_perplexity", "perplexity_ratio", "mean_kl", "top1_agreement",
  "kept_fraction", "ffn_bytes_per_token", "recall", "greedy_tokens", "expected_tokens",
] as const;

export type MetricName = (typeof METRIC_NAMES)[number];

/** Measured metrics; a metric is absent when the run could not measure it. */
export type GateMetrics = Partial<Record<MetricName, number>>;

/** Allowed range of one metric; either side may be open. */
export interface Bound {
  min?: number;
  max?: number;
}

export type Bounds = Partial<Record<MetricName, Bound>>;

/** One side of a bound checked against its metric. */
export interface BoundCheck {
  metric: MetricName;
  value: number;
  side: "min" | "max";
  limit: number;
  passed: boolean;
}

/** One line of a prompt suite. */
export interface Prompt {
  prompt: string;
  /** Expected continuation of the prompt, compared token by token with the model's greedy text. */
  expected?: string;
  /** Optional name of the prompt in reports. */
  id?: string;
  /** Line number in the suite file, from 1. */
  line: number;
}

/** Greedy run of one prompt on both models. */
export interface PromptResult {
  prompt: Prompt;
  /** Prompt tokens, BOS included. */
  promptTokens: number;
  /** Greedy tokens both models generate before the first difference. */
  agreeingTokens: number;
  /** Leading greedy tokens of the model equal to the expected continuation's tokens. */
  expectedTokens?: number;
  /** Tokens of the expected continuation, up to the greedy limit. */
  expectedLength?: number;
  /** The model's greedy tokens, as far as they were run. */
  tokens: number[];
}

/** Per-layer measurements of the model under test. */
export interface GateLayer {
  keptFraction: number;
  candidateFraction: number;
  ffnBytesPerToken: number;
  /** Predictor recall and measured sparsity on the traced activations (models with a predictor). */
  measured?: LayerSparsity;
}

export interface GateMeasurement {
  /** Tokens scored for perplexity. */
  tokens: number;
  /** Tokens traced for the recall measurement (0 when not measured). */
  recallTokens: number;
  metrics: GateMetrics;
  layers: GateLayer[];
  prompts: PromptResult[];
  maxNewTokens: number;
}

/** Progress of measureGate: scored tokens, traced tokens, then prompts. */
export interface GateProgress {
  phase: "eval" | "recall" | "greedy";
  loaded: number;
  total: number;
}

export interface GateOptions {
  /** The reference model, run over the same tokens. */
  reference: Model;
  /** Sparsity data of the model under test; its predictor recall is measured when given. */
  sparsity?: Pick<SparsityData, "rank" | "thresholds" | "cutoffs" | "predictorDown" | "predictorUp">;
  prompts?: Prompt[];
  /** Name of the prompt suite in messages, for example its path; default "prompts". */
  promptSource?: string;
  /** Largest number of tokens scored (and traced for recall); default all. */
  maxTokens?: number;
  /** Greedy tokens generated per prompt at most; default 64. */
  maxNewTokens?: number;
  /** Name of the corpus in messages, for example its path. */
  source?: string;
  onProgress?(progress: GateProgress): void;
  signal?: AbortSignal;
}

/** Error of a run whose metrics crossed bounds: one message line per crossed bound. */
export class GateFailure extends DormantError {
  readonly checks: BoundCheck[];

  constructor(checks: BoundCheck[], where = "eval") {
    const crossed = checks.filter((check) => !check.passed);
    super(crossed.map((check) => `${where}: bound crossed: ${describeCheck(check)}`).join("\n"), {
      source: "bounds", field: crossed.map((check) => check.metric).join(", "), actual: "crossed", expected: "within bounds",
    });
    this.name = "GateFailure";
    this.checks = checks;
  }
}

export const DEFAULT_MAX_NEW_TOKENS = 64;
const WHERE = "eval";

/** Formats a metric value with 4 significant digits and no trailing zeros. */
export function formatValue(value: number): string {
  if (Number.isInteger(value)) return String(value);
  return String(Number(value.toPrecision(4)));
}

/** Describes a check as "metric is value, expected at most limit". */
export function describeCheck(check: BoundCheck): string {
  const relation = check.side === "max" ? "at most" : "at least";
  return `${check.metric} is ${formatValue(check.value)}, expected ${relation} ${formatValue(check.limit)}`;
}

// ---------------------------------------------------------------------------------------------
// input files

/** Throws a FormatError when `text` contains no document (it is empty or has only `<|endoftext|>` lines). */
export function checkCorpus(text: string, source: string, where = WHERE): void {
  if (splitDocuments(text).length > 0) return;
  formatMismatch(where, {
    source, field: "documents", actual: "0",
    expected: "at least one document with text (the file is empty or holds only <|endoftext|> lines)",
  });
}

/** Shortens a line for an error message. */
function excerpt(line: string): string {
  const trimmed = line.trim();
  return JSON.stringify(trimmed.length > 40 ? `${trimmed.slice(0, 40)}…` : trimmed);
}

/**
 * Parses a prompt suite in JSON Lines: one object per line with a "prompt" string and optional
 * "expected" and "id". Blank lines are skipped.
 */
export function parsePrompts(text: string, source: string, where = WHERE): Prompt[] {
  const prompts: Prompt[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === "") continue;
    const field = `line ${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      formatMismatch(where, { source, field, actual: `not JSON (${excerpt(line)})`, expected: 'one JSON object per line such as {"prompt": "Once upon a time"}' });
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      formatMismatch(where, { source, field, actual: excerpt(line), expected: 'a JSON object such as {"prompt": "Once upon a time"}' });
    }
    const entry = value as Record<string, unknown>;
    for (const key of Object.keys(entry)) {
      if (key !== "prompt" && key !== "expected" && key !== "id") {
        formatMismatch(where, { source, field: `${field}: key "${key}"`, actual: "not known", expected: '"prompt", "expected" or "id"' });
      }
    }
    if (typeof entry.prompt !== "string") {
      formatMismatch(where, { source, field: `${field}: prompt`, actual: entry.prompt === undefined ? "missing" : JSON.stringify(entry.prompt), expected: "a string" });
    }
    if (entry.expected !== undefined && typeof entry.expected !== "string") {
      formatMismatch(where, { source, field: `${field}: expected`, actual: JSON.stringify(entry.expected), expected: "a string" });
    }
    if (entry.id !== undefined && typeof entry.id !== "string" && typeof entry.id !== "number") {
      formatMismatch(where, { source, field: `${field}: id`, actual: JSON.stringify(entry.id), expected: "a string or a number" });
    }
    prompts.push({
      prompt: entry.prompt,
      expected: entry.expected as string | undefined,
      id: entry.id === undefined ? undefined : String(entry.id),
      line: i + 1,
    });
  }
  if (prompts.length === 0) {
    formatMismatch(where, { source, field: "prompts", actual: "0", expected: 'at least one line such as {"prompt": "Once upon a time"}' });
  }
  return prompts;
}

function isMetricName(name: string): name is MetricName {
  return (METRIC_NAMES as readonly string[]).includes(name);
}

/**
 * Parses a bounds config: a JSON object from metric names to {"min": number, "max": number},
 * for example {"perplexity_ratio": {"max": 1.75}, "top1_agreement": {"min": 0.6}}.
 */
export function parseBounds(text: string, source: string, where = WHERE): Bounds {
  const example = 'an object such as {"perplexity_ratio": {"max": 1.75}}';
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    optionMismatch(where, { source, field: "contents", actual: "not JSON", expected: example });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    optionMismatch(where, { source, field: "contents", actual: Array.isArray(value) ? "an array" : JSON.stringify(value), expected: example });
  }
  const bounds: Bounds = {};
  for (const [name, entry] of Object.entries(value as Record<string, unknown>)) {
    if (!isMetricName(name)) {
      optionMismatch(where, { source, field: `metric "${name}"`, actual: "not known", expected: `one of ${METRIC_NAMES.join(", ")}` });
    }
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      optionMismatch(where, { source, field: name, actual: JSON.stringify(entry), expected: 'an object with "min" and/or "max"' });
    }
    const bound: Bound = {};
    for (const [side, limit] of Object.entries(entry as Record<string, unknown>)) {
      if (side !== "min" && side !== "max") {
        optionMismatch(where, { source, field: `${name}.${side}`, actual: "not known", expected: '"min" or "max"' });
      }
      if (typeof limit !== "number" || !Number.isFinite(limit)) {
        optionMismatch(where, { source, field: `${name}.${side}`, actual: JSON.stringify(limit), expected: "a finite number" });
      }
      bound[side] = limit;
    }
    bounds[name] = bound;
  }
  return checkBoundRanges(bounds, source, where);
}

/** Merges bounds; a side set in `override` replaces the same side in `base`. */
export function mergeBounds(base: Bounds, override: Bounds): Bounds {
  const merged: Bounds = {};
  for (const name of METRIC_NAMES) {
    const bound = { ...base[name], ...override[name] };
    if (bound.min !== undefined || bound.max !== undefined) merged[name] = bound;
  }
  return merged;
}

/** Throws an OptionError for a bound whose min is above its max. */
export function checkBoundRanges(bounds: Bounds, source: string, where = WHERE): Bounds {
  for (const name of METRIC_NAMES) {
    const bound = bounds[name];
    const [lowest, highest, range] = METRIC_RANGES[name];
    for (const side of ["min", "max"] as const) {
      const value = bound?.[side];
      if (value !== undefined && (!Number.isFinite(value) || value < lowest || value > highest)) {
        optionMismatch(where, { source, field: `${name}.${side}`, actual: String(value), expected: `a number in ${range}` });
      }
    }
    if (bound?.min !== undefined && bound.max !== undefined && bound.min > bound.max) {
      optionMismatch(where, { source, field: `${name}.min`, actual: String(bound.min), expected: `at most ${name}.max = ${bound.max}` });
    }
  }
  return bounds;
}

/** Values a bound on each metric can take: lowest, highest, and the range as text. */
const METRIC_RANGES: Record<MetricName, [number, number, string]> = {
  perplexity: [1, Infinity, "[1, ∞)"],
  reference_perplexity: [1, Infinity, "[1, ∞)"],
  ffn_bytes_per_token: [0, Infinity, "[0, ∞)"],
  perplexity_ratio: [0, Infinity, "[0, ∞)"],
  mean_kl: [0, Infinity, "[0, ∞)"],
  top1_agreement: [0, 1, "[0, 1]"],
  recall: [0, 1, "[0, 1]"],
  kept_fraction: [0, 1, "[0, 1]"],
  greedy_tokens: [0, Infinity, "[0, ∞)"],
  expected_tokens: [0, Infinity, "[0, ∞)"],
};

/** Inputs that the metrics not measured by every run need. */
const METRIC_NEEDS: Partial<Record<MetricName, string>> = {
  recall: "a model with sparsity data (a predictor) and a corpus of at least max(4·dim, 256) tokens",
  greedy_tokens: "a prompt suite (--prompts)",
  expected_tokens: 'a prompt suite with "expected" continuations',
};

/**
 * Throws an OptionError for a bound on a metric that a run with these inputs cannot measure, so
 * the mistake shows before the model runs.
 */
export function checkMeasurable(bounds: Bounds, inputs: { prompts?: Prompt[]; predictor: boolean }, where = WHERE): void {
  const missing: Partial<Record<MetricName, boolean>> = {
    recall: !inputs.predictor,
    greedy_tokens: inputs.prompts === undefined,
    expected_tokens: !inputs.prompts?.some((prompt) => prompt.expected !== undefined),
  };
  for (const metric of METRIC_NAMES) {
    if (bounds[metric] && missing[metric]) {
      optionMismatch(where, { source: "bounds", field: metric, actual: "not measured", expected: METRIC_NEEDS[metric]! });
    }
  }
}

/**
 * Checks `metrics` against `bounds`, one check per bounded side. A bound on a metric the run did
 * not measure throws an OptionError naming what the metric needs.
 */
export function checkBounds(metrics: GateMetrics, bounds: Bounds, where = WHERE): BoundCheck[] {
  const checks: BoundCheck[] = [];
  for (const metric of METRIC_NAMES) {
    const bound = bounds[metric];
    if (!bound) continue;
    const value = metrics[metric];
    if (value === undefined) {
      optionMismatch(where, { source: "bounds", field: metric, actual: "not measured", expected: METRIC_NEEDS[metric] ?? "a measured metric" });
    }
    if (bound.min !== undefined) checks.push({ metric, value, side: "min", limit: bound.min, passed: value >= bound.min });
    if (bound.max !== undefined) checks.push({ metric, value, side: "max", limit: bound.max, passed: value <= bound.max });
  }
  return checks;
}

/**
 * Checks that two model files share a base model: config dims, layers, heads, vocabulary size
 * and the tokenizer's tokens. Throws an OptionError naming the first field that differs.
 */
export function checkSameBase(model: ModelFile, other: ModelFile, where = WHERE): void {
  const cause = "the two files come from different base models";
  for (const field of ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size"] as const) {
    if (other.config[field] !== model.config[field]) {
      optionMismatch(where, { source: other.source, field, actual: String(other.config[field]), expected: `${model.config[field]} as in ${model.source}` }, cause);
    }
  }
  const tokens = model.vocab?.tokens;
  const otherTokens = other.vocab?.tokens;
  if (!tokens || !otherTokens) {
    if (tokens !== otherTokens) {
      optionMismatch(where, { source: other.source, field: "tokenizer", actual: otherTokens ? "present" : "missing", expected: `${tokens ? "present" : "missing"} as in ${model.source}` }, cause);
    }
    return;
  }
  if (otherTokens.length !== tokens.length) {
    optionMismatch(where, { source: other.source, field: "tokenizer tokens", actual: String(otherTokens.length), expected: `${tokens.length} as in ${model.source}` }, cause);
  }
  // Control tokens are compared by position only: converters spell them differently (llama2.c's
  // tokenizer.bin has "\n<s>\n" where llama.cpp's GGUF has "<s>") without changing the model.
  const control = (file: ModelFile, id: number): boolean => file.vocab?.types[id] === TokenType.CONTROL;
  for (let id = 0; id < tokens.length; id++) {
    if (otherTokens[id] !== tokens[id] && !(control(model, id) && control(other, id))) {
      optionMismatch(where, {
        source: other.source, field: `tokenizer token ${id}`, actual: JSON.stringify(otherTokens[id]), expected: `${JSON.stringify(tokens[id])} as in ${model.source}`,
      }, cause);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// measurement

/** Token ids of a prompt's expected continuation, as they follow the prompt's own tokens. */
function expectedIds(model: Model, prompt: Prompt, promptIds: number[]): number[] | undefined {
  if (prompt.expected === undefined) return undefined;
  // Tokenizing prompt and continuation together keeps merges across the seam as generation makes them.
  const joined = model.tokenize(prompt.prompt + prompt.expected, { bos: true });
  const sharesPrefix = promptIds.every((id, i) => joined[i] === id);
  return sharesPrefix ? joined.slice(promptIds.length) : model.tokenize(prompt.expected, { bos: false });
}

/**
 * Runs greedy decoding of `prompt` on both models in lockstep, feeding the model's tokens, and
 * counts the tokens generated before the first difference. The model runs on while it still
 * matches the expected continuation. Generation stops at EOS or BOS, as generate() does.
 */
export function greedyAgreement(model: Model, reference: Model, prompt: Prompt, maxNewTokens: number, source = "prompts"): PromptResult {
  const seqLen = Math.min(model.config.seq_len, reference.config.seq_len);
  const ids = model.tokenize(prompt.prompt, { bos: true });
  if (ids.length >= seqLen) {
    optionMismatch(WHERE, { source, field: `line ${prompt.line}: prompt`, actual: `${ids.length} tokens`, expected: `fewer than ${seqLen} (the context length)` });
  }
  const expected = expectedIds(model, prompt, ids);
  const stopIds = new Set([model.tokenizer.eosId, model.tokenizer.bosId]);

  let modelNext = 0;
  let referenceNext = 0;
  for (let pos = 0; pos < ids.length; pos++) {
    modelNext = argmax(model.step(ids[pos], pos));
    referenceNext = argmax(reference.step(ids[pos], pos));
  }

  const tokens: number[] = [];
  let agreeing = 0;
  let matching = 0;
  let referenceAlive = true;
  let expectedAlive = expected !== undefined;
  const limit = Math.min(maxNewTokens, seqLen - ids.length);
  for (let n = 0; n < limit; n++) {
    if (referenceAlive && modelNext === referenceNext) agreeing++;
    else referenceAlive = false;
    if (expectedAlive && n < expected!.length && modelNext === expected![n]) matching++;
    else expectedAlive = false;
    tokens.push(modelNext);
    if (!referenceAlive && !expectedAlive) break;
    if (stopIds.has(modelNext) || n + 1 === limit) break;

    const pos = ids.length + n;
    const token = modelNext;
    modelNext = argmax(model.step(token, pos));
    if (referenceAlive) referenceNext = argmax(reference.step(token, pos));
  }

  const result: PromptResult = { prompt, promptTokens: ids.length, agreeingTokens: agreeing, tokens };
  if (expected !== undefined) {
    result.expectedTokens = matching;
    result.expectedLength = Math.min(expected.length, limit);
  }
  return result;
}

function mean(values: number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** Counts the tokens collectActivations would run on `text`, without running the model. */
function corpusTokens(model: Model, text: string): number {
  return splitDocuments(text).reduce((sum, story) => sum + model.tokenize(story, { bos: true }).length, 0);
}

/** Measures the predictor's per-layer recall on the dense activations `model` traces over `text`. */
async function measureRecall(model: Model, text: string, options: GateOptions): Promise<{ tokens: number; layers: LayerSparsity[] } | undefined> {
  const data = options.sparsity;
  if (!data) return undefined;
  const needed = minimumTokens(model.config.dim);
  const total = Math.min(corpusTokens(model, text), Math.max(needed, options.maxTokens ?? Infinity));
  // Quantiles of fewer tokens than calibration needs are too noisy to gate on.
  if (total < needed) return undefined;
  const statistics = await collectActivations(model, text, {
    maxTokens: total, source: options.source, signal: options.signal,
    onProgress: (progress) => options.onProgress?.({ phase: "recall", loaded: progress.loaded, total: progress.total }),
  });
  const full: SparsityData = { version: 1, sparsity: 0, recall: 1, activation: model.config.activation, ...data };
  return { tokens: statistics.tokens, layers: measureSparsity(statistics, full) };
}

/**
 * Measures `model` against `options.reference` on `text` (documents split at `<|endoftext|>`
 * lines): perplexity of both, mean KL, top-1 agreement, the runtime's per-layer counters, the
 * predictor's recall on traced activations and greedy agreement on the prompt suite.
 */
export async function measureGate(model: Model, text: string, options: GateOptions): Promise<GateMeasurement> {
  const source = options.source ?? "text";
  checkCorpus(text, source);
  const maxNewTokens = options.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) {
    optionMismatch(WHERE, { source: "option maxNewTokens", field: "maxNewTokens", actual: String(maxNewTokens), expected: "an integer ≥ 1" });
  }
  const { reference } = options;

  const result = await evaluate(model, text, {
    reference, maxTokens: options.maxTokens, signal: options.signal,
    onProgress: (progress) => options.onProgress?.({ phase: "eval", loaded: progress.loaded, total: progress.total }),
  }, source);
  // Counters are read now: the recall trace and the greedy runs below step the model again.
  const counting = model.sparse && model.mode !== "dense";
  const layers: GateLayer[] = model.layerStats().map((layer) => ({
    keptFraction: counting ? layer.keptFraction : 1,
    candidateFraction: counting ? layer.candidateFraction : 1,
    ffnBytesPerToken: layer.ffnBytesPerToken,
  }));

  const metrics: GateMetrics = {
    perplexity: result.perplexity,
    reference_perplexity: result.referencePerplexity!,
    perplexity_ratio: result.perplexity / result.referencePerplexity!,
    mean_kl: result.meanKl!,
    top1_agreement: result.top1Agreement!,
    kept_fraction: mean(layers.map((layer) => layer.keptFraction)),
    ffn_bytes_per_token: layers.reduce((sum, layer) => sum + layer.ffnBytesPerToken, 0),
  };

  const recall = await measureRecall(model, text, options);
  if (recall) {
    recall.layers.forEach((measured, l) => (layers[l].measured = measured));
    metrics.recall = Math.min(...recall.layers.map((layer) => layer.recall));
  }

  const prompts: PromptResult[] = [];
  for (const prompt of options.prompts ?? []) {
    options.signal?.throwIfAborted();
    prompts.push(greedyAgreement(model, reference, prompt, maxNewTokens, options.promptSource));
    options.onProgress?.({ phase: "greedy", loaded: prompts.length, total: options.prompts!.length });
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  if (prompts.length > 0) metrics.greedy_tokens = mean(prompts.map((entry) => entry.agreeingTokens));
  const withExpected = prompts.filter((entry) => entry.expectedTokens !== undefined);
  if (withExpected.length > 0) metrics.expected_tokens = mean(withExpected.map((entry) => entry.expectedTokens!));

  return { tokens: result.tokens, recallTokens: recall?.tokens ?? 0, metrics, layers, prompts, maxNewTokens };
}

// ---------------------------------------------------------------------------------------------
// reports

/** Facts of the run that a report shows besides the measurement. */
export interface GateContext {
  model: string;
  mode: string;
  precision: string;
  /** The reference as given: a precision, a mode or a path. */
  against: string;
  text: string;
}

/** Builds the JSON report: snake_case fields, one entry per layer, prompt and checked bound. */
export function gateReportJson(context: GateContext, measurement: GateMeasurement, checks: BoundCheck[]): Record<string, unknown> {
  return {
    passed: checks.every((check) => check.passed),
    model: context.model,
    mode: context.mode,
    precision: context.precision,
    against: context.against,
    text: context.text,
    tokens: measurement.tokens,
    recall_tokens: measurement.recallTokens,
    max_new_tokens: measurement.maxNewTokens,
    metrics: measurement.metrics,
    bounds: checks.map((check) => ({ metric: check.metric, value: check.value, [check.side]: check.limit, passed: check.passed })),
    layers: measurement.layers.map((layer) => ({
      kept_fraction: layer.keptFraction,
      candidate_fraction: layer.candidateFraction,
      ffn_bytes_per_token: layer.ffnBytesPerToken,
      recall: layer.measured?.recall ?? null,
      measured_sparsity: layer.measured?.sparsity ?? null,
      predicted_candidates: layer.measured?.candidates ?? null,
    })),
    prompts: measurement.prompts.map((entry) => ({
      line: entry.prompt.line,
      id: entry.prompt.id ?? null,
      prompt: entry.prompt.prompt,
      prompt_tokens: entry.promptTokens,
      agreeing_tokens: entry.agreeingTokens,
      expected_tokens: entry.expectedTokens ?? null,
      expected_length: entry.expectedLength ?? null,
    })),
  };
}

/** Escapes text for a markdown table cell. */
function cell(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\|/g, "\\|").replace(/\r?\n/g, " ");
}

function percent(value: number | undefined): string {
  return value === undefined ? "" : `${(value * 100).toFixed(1)}%`;
}

/** Builds the markdown summary: verdict, metrics with their bounds, layers and prompts. */
export function gateReportMarkdown(context: GateContext, measurement: GateMeasurement, checks: BoundCheck[]): string {
  const passed = checks.every((check) => check.passed);
  const lines = [
    `# dormant eval: ${checks.length === 0 ? "no bounds" : passed ? "passed" : "FAILED"}`,
    "",
    `Model \`${cell(context.model)}\` (mode ${context.mode}, ${context.precision}) against \`${cell(context.against)}\` ` +
      `on \`${cell(context.text)}\`: ${measurement.tokens} tokens scored, ${measurement.recallTokens} traced for recall.`,
    "",
    "| metric | value | bound | result |",
    "| --- | ---: | ---: | --- |",
  ];
  for (const metric of METRIC_NAMES) {
    const value = measurement.metrics[metric];
    if (value === undefined) continue;
    const own = checks.filter((check) => check.metric === metric);
    const bound = own.map((check) => `${check.side === "max" ? "≤" : "≥"} ${formatValue(check.limit)}`).join(", ");
    const result = own.length === 0 ? "" : own.every((check) => check.passed) ? "pass" : "**crossed**";
    lines.push(`| ${metric} | ${formatValue(value)} | ${bound} | ${result} |`);
  }

  lines.push("", "| layer | kept | candidates | predictor recall | FFN KiB/token |", "| ---: | ---: | ---: | ---: | ---: |");
  measurement.layers.forEach((layer, l) => {
    const recall = layer.measured ? `${(layer.measured.recall * 100).toFixed(2)}%` : "";
    lines.push(`| ${l} | ${percent(layer.keptFraction)} | ${percent(layer.candidateFraction)} | ${recall} | ${(layer.ffnBytesPerToken / 1024).toFixed(1)} |`);
  });

  if (measurement.prompts.length > 0) {
    lines.push(
      "",
      `Greedy continuations, at most ${measurement.maxNewTokens} tokens: tokens before the first difference from the reference, and leading tokens equal to the expected text.`,
      "",
      "| line | prompt | agreeing tokens | expected tokens |",
      "| ---: | --- | ---: | ---: |",
    );
    for (const entry of measurement.prompts) {
      const expected = entry.expectedTokens === undefined ? "" : `${entry.expectedTokens} / ${entry.expectedLength}`;
      lines.push(`| ${entry.prompt.line} | ${cell(entry.prompt.id ?? entry.prompt.prompt)} | ${entry.agreeingTokens} | ${expected} |`);
    }
  }
  return `${lines.join("\n")}\n`;
}
