/**
 * The decode loop: feeds the prompt, samples one token per position, streams text, and
 * stops at EOS or BOS, at maxTokens, at the step limit, at the context length, or when
 * the AbortSignal fires.
 */

import { optionMismatch } from "./errors.js";
import { checkOptionKeys, describeTypedValue, describeValue } from "./options.js";
import { SAMPLER_OPTION_KEYS, Sampler, validateSamplerOptions, type SamplerOptions } from "./sampler.js";
import { TextStreamer } from "./tokenizer/stream.js";
import type { Model } from "./model.js";

export interface GenerateOptions extends SamplerOptions {
  /** Maximum tokens to generate after the prompt. Default: until the context is full. */
  maxTokens?: number;
  /** Positions to run, prompt included, as llama2.c's -n counts them. Default: the context length. */
  steps?: number;
  /** Stop when the model samples EOS or BOS (default true). */
  stopAtEos?: boolean;
  /** More token ids that stop generation as EOS does, when stopAtEos is on; chat() passes the end-of-turn token. */
  stopTokens?: readonly number[];
  /** Prepend BOS to a text prompt (default: the vocabulary's add_bos flag). Ignored for a prompt given as ids. */
  bos?: boolean;
  signal?: AbortSignal;
}

/** Keys of GenerateOptions for the unknown-key check. tsc rejects a list that differs from the interface. */
export const GENERATE_OPTION_KEYS = {
  maxTokens: true, steps: true, stopAtEos: true, stopTokens: true, bos: true, signal: true, ...SAMPLER_OPTION_KEYS,
} as const satisfies Record<keyof GenerateOptions, true>;

/** One streamed piece: the sampled token and the text it completes (may be empty mid UTF-8 sequence). */
export interface GeneratedPiece {
  /** The sampled id, or -1 for the final piece that flushes bytes which never completed a UTF-8 sequence. */
  token: number;
  text: string;
}

export interface GenerationSummary {
  /** Every token id, prompt first (BOS included when added). */
  tokens: number[];
  promptTokens: number;
  generatedTokens: number;
  stopReason: "eos" | "max_tokens" | "steps" | "context";
  prefillMs: number;
  decodeMs: number;
  tokensPerSecond: number;
}

function checkCount(name: string, value: unknown, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > max) {
    optionMismatch("generate", {
      source: `option ${name}`, field: name, actual: describeValue(value),
      expected: max === Number.MAX_SAFE_INTEGER ? "an integer ≥ 1" : `an integer in [1, ${max}]`,
    });
  }
  return value;
}

/** Checks that `prompt` is text or a list of token ids. The ids themselves are checked after tokenizing. */
function checkPrompt(prompt: unknown): void {
  const isIdList = Array.isArray(prompt) || (ArrayBuffer.isView(prompt) && !(prompt instanceof DataView));
  if (typeof prompt !== "string" && !isIdList) {
    optionMismatch("generate", {
      source: "arguments", field: "prompt", actual: describeTypedValue(prompt), expected: "a string, or an array of token ids",
    });
  }
}

/**
 * Gives the event loop a turn so timers, I/O and abort events run during long generations.
 * setTimeout(0) waits at least 1 ms in Node and 4 ms in browsers once timeouts nest. At one yield
 * per 20 ms that cost 5% of decode speed in Node and 10% in Chromium (bench/README.md, peers).
 * setImmediate (Node, Deno) and a MessageChannel message (browsers) run without that delay.
 */
function yieldToEventLoop(): Promise<void> {
  const host = globalThis as { setImmediate?: (callback: () => void) => unknown };
  if (typeof host.setImmediate === "function") {
    const schedule = host.setImmediate;
    return new Promise((resolve) => void schedule(resolve));
  }
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

/**
 * Validates the options and the prompt at once, so a bad value throws from the call itself,
 * and returns the generator that streams the pieces.
 */
export function generate(
  model: Model, prompt: string | number[], options: GenerateOptions = {},
): AsyncGenerator<GeneratedPiece, GenerationSummary> {
  const seqLen = model.config.seq_len;
  checkOptionKeys("generate", options, GENERATE_OPTION_KEYS);
  checkPrompt(prompt);
  const sampling = validateSamplerOptions(options, "generate");
  const maxTokens = checkCount("maxTokens", options.maxTokens, Number.MAX_SAFE_INTEGER);
  const steps = checkCount("steps", options.steps, seqLen);

  const tokens = typeof prompt === "string" ? model.tokenize(prompt, { bos: options.bos }) : [...prompt];
  if (tokens.length === 0) {
    optionMismatch("generate", {
      source: "prompt", field: "length", actual: "0 tokens", expected: "at least 1 token (pass a non-empty prompt or set bos: true)",
    });
  }
  if (tokens.length >= seqLen) {
    optionMismatch("generate", {
      source: "prompt", field: "length", actual: `${tokens.length} tokens`,
      expected: `at most ${seqLen - 1}, so that one position of the ${seqLen}-token context is left to generate`,
    });
  }
  model.checkTokens(tokens, "generate");
  if (steps !== undefined && steps < tokens.length) {
    optionMismatch("generate", {
      source: "option steps", field: "steps", actual: String(steps),
      expected: `at least ${tokens.length}, the prompt's token count (steps counts positions, prompt included)`,
    });
  }

  return run(model, tokens, sampling, positionLimitFor(tokens.length, seqLen, steps, maxTokens), options);
}

/** Positions to feed: the context, the step count and the token budget each cap it. */
function positionLimitFor(promptTokens: number, seqLen: number, steps?: number, maxTokens?: number): { limit: number; reason: GenerationSummary["stopReason"] } {
  const limit = Math.min(seqLen, steps ?? seqLen, maxTokens !== undefined ? promptTokens - 1 + maxTokens : seqLen);
  let reason: GenerationSummary["stopReason"] = "max_tokens";
  if (limit === seqLen) reason = "context";
  else if (steps !== undefined && limit === steps) reason = "steps";
  return { limit, reason };
}

async function* run(
  model: Model, tokens: number[], sampling: ReturnType<typeof validateSamplerOptions>,
  positions: { limit: number; reason: GenerationSummary["stopReason"] }, options: GenerateOptions,
): AsyncGenerator<GeneratedPiece, GenerationSummary> {
  const promptTokens = tokens.length;
  const stopAtEos = options.stopAtEos ?? true;
  const stops = new Set([model.tokenizer.eosId, model.tokenizer.bosId, ...(options.stopTokens ?? [])]);
  const sampler = new Sampler(sampling, model.config.vocab_size);
  // Only new text is streamed; the last prompt token decides whether a leading space is kept.
  const streamer = new TextStreamer(model.tokenizer, tokens[promptTokens - 1]);

  // Positions 0..limit-1 are fed; the token sampled at the last one is not fed back.
  const positionLimit = positions.limit;
  let stopReason = positions.reason;

  model.resetStats();
  const started = performance.now();
  let decodeStarted = started;
  let lastYield = started;
  let prefillMs = 0;

  for (let pos = promptTokens - 1; pos < positionLimit; pos++) {
    options.signal?.throwIfAborted();
    // the whole prompt runs in prefill blocks; every later position is one decode step
    const logits = pos === promptTokens - 1 ? model.prefill(tokens) : model.step(tokens[pos], pos);
    const next = sampler.sample(logits, tokens);
    tokens.push(next);
    if (pos === promptTokens - 1) {
      decodeStarted = performance.now();
      prefillMs = decodeStarted - started;
    }
    if (stopAtEos && stops.has(next)) {
      stopReason = "eos";
      break;
    }
    yield { token: next, text: streamer.push(next) };

    const now = performance.now();
    if (now - lastYield > 20) {
      await yieldToEventLoop();
      lastYield = performance.now();
    }
  }
  const tail = streamer.flush();
  if (tail) yield { token: -1, text: tail };

  // Prefill ends with the first sampled token: its forward pass reads the last prompt token.
  // Every later token costs one decode forward pass, so decode speed counts generatedTokens - 1.
  const decodeMs = performance.now() - decodeStarted;
  const generatedTokens = tokens.length - promptTokens;
  const decodeTokens = Math.max(0, generatedTokens - 1);
  const summary: GenerationSummary = {
    tokens, promptTokens, generatedTokens, stopReason, prefillMs, decodeMs,
    tokensPerSecond: decodeMs > 0 ? (decodeTokens * 1000) / decodeMs : 0,
  };
  model.recordRun({ promptTokens, generatedTokens, prefillMs, decodeMs, tokensPerSecond: summary.tokensPerSecond });
  return summary;
}
