/**
 * Teacher-forced evaluation over a text corpus: perplexity of the next token and, when a
 * second model is given, how often both models put the same token on top.
 */

import { DormantError, FormatError, optionMismatch } from "../errors.js";
import { checkOptionKeys, describeValue } from "../options.js";
import type { Model } from "../model.js";
import { splitDocuments } from "./documents.js";

export interface EvaluateOptions {
  /** A second model run in lockstep; its argmax is compared with the first model's. */
  reference?: Model;
  /** Largest number of predicted tokens to score; default all. */
  maxTokens?: number;
  onProgress?: (progress: { phase: "eval"; loaded: number; total: number }) => void;
  signal?: AbortSignal;
}

/** Keys of EvaluateOptions; tsc rejects a list that differs from the interface. */
const EVALUATE_OPTION_KEYS = { reference: true, maxTokens: true, onProgress: true, signal: true } as const satisfies Record<keyof EvaluateOptions, true>;

export interface EvaluateResult {
  perplexity: number;
  /** Tokens scored (predicted), over all windows. */
  tokens: number;
  /** Mean negative log-likelihood in nats. */
  meanNll: number;
  /** Share of positions where the argmax equals the reference model's argmax (when a reference is given). */
  top1Agreement?: number;
  /** Perplexity of the reference model over the same tokens (when given). */
  referencePerplexity?: number;
  /** Mean over positions of KL(P_reference ‖ P_model) in nats (when a reference is given). */
  meanKl?: number;
}

export { splitDocuments } from "./documents.js";

/** Log-sum-exp of `logits`, computed stably in f64. */
function logSumExp(logits: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return max + Math.log(sum);
}

/**
 * Returns KL(P ‖ Q) in nats for the softmax distributions of `p` and `q` logits, given their
 * log-sum-exp values.
 */
function klDivergence(p: Float32Array, pLse: number, q: Float32Array, qLse: number): number {
  let sum = 0;
  for (let i = 0; i < p.length; i++) {
    const logP = p[i] - pLse;
    sum += Math.exp(logP) * (logP - (q[i] - qLse));
  }
  return Math.max(0, sum);
}

/**
 * Throws when a log-sum-exp is NaN or infinite: the logits then hold NaN or infinity, and every
 * metric computed from them would be NaN, or a false agreement of two NaN argmaxes.
 */
function requireFiniteLogits(lse: number, model: Model, position: number): void {
  if (Number.isFinite(lse)) return;
  throw new DormantError(
    `eval: ${model.source}: logits at scored position ${position} are not finite (their log-sum-exp is ${lse}), expected finite logits (activations overflowed in the model)`,
    { source: model.source, field: "logits", actual: String(lse), expected: "finite" },
  );
}

/** Index of the largest logit; the lowest index wins ties. */
export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/**
 * Splits each document's ids (BOS first) into windows of at most seq_len tokens. Each window
 * starts from an empty KV cache, so its first token is context only and is not scored.
 */
function windows(documents: number[][], seqLen: number): number[][] {
  const result: number[][] = [];
  for (const ids of documents) {
    for (let start = 0; start < ids.length - 1; start += seqLen - 1) {
      result.push(ids.slice(start, Math.min(ids.length, start + seqLen)));
    }
  }
  return result;
}

/** Evaluates `model` on `text` (documents separated by `<|endoftext|>` lines). */
export async function evaluate(model: Model, text: string, options: EvaluateOptions = {}, source = "text"): Promise<EvaluateResult> {
  checkOptionKeys("evaluate", options, EVALUATE_OPTION_KEYS);
  const { maxTokens } = options;
  if (maxTokens !== undefined && !(Number.isInteger(maxTokens) && maxTokens >= 1)) {
    optionMismatch("evaluate", { source: "option maxTokens", field: "maxTokens", actual: describeValue(maxTokens), expected: "an integer ≥ 1" });
  }
  const documents = splitDocuments(text).map((story) => model.tokenize(story));
  const seqLen = Math.min(model.config.seq_len, options.reference?.config.seq_len ?? Infinity);
  const all = windows(documents, seqLen);
  const total = Math.min(all.reduce((sum, ids) => sum + ids.length - 1, 0), options.maxTokens ?? Infinity);
  if (total < 1) {
    throw new FormatError(`eval: ${source}: scored tokens is 0, expected at least 1 (the text contains no document with two or more tokens)`, {
      source, field: "tokens", actual: "0", expected: "at least 1",
    });
  }

  let nll = 0;
  let referenceNll = 0;
  let kl = 0;
  let agree = 0;
  model.resetStats();
  options.reference?.resetStats();
  let scored = 0;
  let lastYield = performance.now();
  outer: for (const ids of all) {
    for (let pos = 0; pos < ids.length - 1; pos++) {
      if (scored >= total) break outer;
      const logits = model.step(ids[pos], pos);
      const lse = logSumExp(logits);
      requireFiniteLogits(lse, model, scored);
      nll += lse - logits[ids[pos + 1]];
      if (options.reference) {
        const referenceLogits = options.reference.step(ids[pos], pos);
        const referenceLse = logSumExp(referenceLogits);
        requireFiniteLogits(referenceLse, options.reference, scored);
        referenceNll += referenceLse - referenceLogits[ids[pos + 1]];
        kl += klDivergence(referenceLogits, referenceLse, logits, lse);
        if (argmax(logits) === argmax(referenceLogits)) agree++;
      }
      scored++;
    }
    options.onProgress?.({ phase: "eval", loaded: scored, total });
    if (performance.now() - lastYield > 50) {
      options.signal?.throwIfAborted();
      await new Promise((resolve) => setTimeout(resolve, 0));
      lastYield = performance.now();
    }
  }

  options.onProgress?.({ phase: "eval", loaded: scored, total });
  const result: EvaluateResult = { perplexity: Math.exp(nll / scored), tokens: scored, meanNll: nll / scored };
  if (options.reference) {
    result.top1Agreement = agree / scored;
    result.referencePerplexity = Math.exp(referenceNll / scored);
    result.meanKl = kl / scored;
  }
  return result;
}
