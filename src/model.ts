/**
 * Model: places a parsed model file into wasm memory in the runtime layout, runs the
 * forward pass, owns the KV cache, and offers tokenize/detokenize/logits/generate.
 */

import { env } from "./env.js";
import { FormatError, OptionError, WasmError, optionMismatch } from "./errors.js";
import { readModelFile } from "./formats/index.js";
import type { ResolveOptions } from "./catalog.js";
import { readFileBytes } from "./io.js";
import { WASM_MEMORY_LIMIT, formatBytes, pad32, placeWeights, weightBytes } from "./placement.js";
import { isPathSource, readModelSource, type ModelSource } from "./source.js";
import { createTokenizer, type Tokenizer } from "./tokenizer/index.js";
import type { LlamaConfig, ModelFile } from "./types.js";
import { instantiateKernels, instantiateThreaded, type DormantExports, type KernelChoice, type KernelVariant } from "./wasm.js";
import type { ThreadPool } from "./threads.js";
import { generate, type GenerateOptions, type GeneratedPiece, type GenerationSummary } from "./generate.js";
import { readChatFormat, type ChatFormat, type ChatMessage } from "./chat-format.js";
import type { ChatOptions, ChatSummary } from "./chat.js";
import type { WorkerLoadOptions, WorkerModel } from "./worker.js";
import { checkOptionKeys, describeTypedValue, describeValue } from "./options.js";

export type Precision = "f32" | "int8";

/** Progress of loadModel: downloads, then reading and placing weights. */
export interface LoadProgress {
  phase: "download" | "read" | "place";
  /** File being downloaded or read, when there is one. */
  file?: string;
  loaded: number;
  total?: number;
  /** Set on an extra event when the model cache could not be read or written; the load goes on. */
  warning?: string;
}

export interface LoadOptions extends ResolveOptions {
  /** Weight precision in wasm memory: "int8" (default, blocks of 32 with one f32 scale) or "f32". */
  precision?: Precision;
  /** llama2.c tokenizer.bin path, for .bin checkpoints that are not resolved from the catalog. */
  tokenizer?: string;
  /** Positions the KV cache holds; default min(model context length, 4096). */
  contextLength?: number;
  /** Kernel module: "auto" (default) prefers relaxed SIMD where it validates and self-tests. */
  kernels?: KernelChoice;
  onProgress?: (progress: LoadProgress) => void;
  /**
   * Keeps downloaded http(s) models in the Cache API ("dormant-models-v1", keyed by URL) and loads
   * them from there next time. Default true; hosts without the Cache API (Node) ignore it.
   */
  cache?: boolean;
  /**
   * Sparsity data to run with (thresholds, predictor). Default: the file's `dormant.sparsity`
   * section when present. `null` ignores the file's data and runs the dense matrices.
   */
  sparsity?: RuntimeSparsity | null;
  /**
   * Stores the FFN as neuron-major bundles even without sparsity data, so thresholds can be set
   * later with setThresholds(). Default: true exactly when sparsity data is present.
   */
  bundles?: boolean;
  /**
   * Threads that run the forward pass, the calling one included (default 1). Above 1, Workers
   * share the model's wasm memory and each computes a slice of every large matrix and of
   * attention, with results bit-identical to one thread. This needs SharedArrayBuffer (in browsers,
   * a cross-origin isolated page). Without it the model runs on one thread, and
   * stats().threadsNote gives the reason.
   */
  threads?: number;
  /** Thread worker script; default dist/thread.js (Node, Deno) or dist/dormant.thread.js (browsers) beside the bundle. */
  threadUrl?: string | URL;
  /** `true` runs the model in a worker and returns a WorkerModel (see src/worker.ts and WorkerLoadOptions). */
  worker?: false;
}

/** Keys of LoadOptions, with those of ResolveOptions, for the unknown-key check. tsc rejects a list that differs. */
export const LOAD_OPTION_KEYS = {
  precision: true, tokenizer: true, contextLength: true, kernels: true, onProgress: true, cache: true, sparsity: true,
  bundles: true, threads: true, threadUrl: true, worker: true, catalog: true, searchDirectories: true, cacheDirectory: true,
  download: true, allowUnverified: true, signal: true, fetch: true, where: true,
} as const satisfies Record<keyof LoadOptions, true>;

/**
 * Keys of WorkerLoadOptions. The spread keeps `fetch`, which worker mode omits, so passing it gets
 * loadWorkerModel's message that a function cannot be copied to the worker.
 */
const WORKER_LOAD_OPTION_KEYS = { ...LOAD_OPTION_KEYS, workerUrl: true } as const satisfies Record<keyof WorkerLoadOptions, true>;

/** The part of a calibrated sparsity section that the runtime uses (see src/sparsity/format.ts). */
export interface RuntimeSparsity {
  rank: number;
  /** τ_l per layer: a neuron with |act(g)| below it is dormant. */
  thresholds: Float32Array;
  /** Candidate cutoff per layer on |act(ĝ)| of the predictor. */
  cutoffs: Float32Array;
  /** Per layer P_down, rank × dim row-major. */
  predictorDown: Float32Array[];
  /** Per layer P_up, hidden_dim × rank row-major. */
  predictorUp: Float32Array[];
}

/** FFN mode of layers with neuron bundles. */
export type SparsityMode = "dense" | "oracle" | "predicted";

/** Per-layer counters of the sparse FFN since the last resetStats(). */
export interface LayerStats {
  /** Tokens counted. */
  tokens: number;
  /** Mean fraction of neurons whose gate row was computed. */
  candidateFraction: number;
  /** Mean fraction of neurons kept (up row and down column read). */
  keptFraction: number;
  /** Mean bytes of FFN weights read per token, scales included. */
  ffnBytesPerToken: number;
}

/** Values of one traced position; views into wasm memory, valid until the next call. */
export interface TraceStep {
  logits: Float32Array;
  /** FFN input of layer l after its RMSNorm (dim values). */
  ffnInput(layer: number): Float32Array;
  /** Gate pre-activations of layer l (hidden_dim values; non-gated FFNs: the up projection). */
  gate(layer: number): Float32Array;
}

/** Counters of the last generate() or chat() run, and the static facts of the model. */
export interface ModelStats {
  precision: Precision;
  kernels: KernelVariant;
  /** Bytes of wasm linear memory the model uses (weights, KV cache, run state). */
  memoryBytes: number;
  promptTokens: number;
  generatedTokens: number;
  prefillMs: number;
  decodeMs: number;
  /** Decode forward passes per second (the first generated token counts as prefill). */
  tokensPerSecond: number;
  /** FFN mode of the last run. */
  mode: SparsityMode;
  /** Counters of the last run, one entry per layer. */
  layers: LayerStats[];
  /** Mean over layers of keptFraction. */
  keptFraction: number;
  /** Sum over layers of ffnBytesPerToken. */
  ffnBytesPerToken: number;
  /** Threads running the forward pass. */
  threads: number;
  /** Reason that fewer threads run than requested; absent when all of them run. */
  threadsNote?: string;
  /**
   * The dot products the relaxed-simd module kept after timing both at load, for decode
   * (matrix × vector, also the sparse FFN) and for prefill blocks. Both give the same bits.
   * Absent with the simd128 module and with precision "f32".
   */
  dots?: { matvec: DotKind; prefill: DotKind };
}

/** The relaxed dot (i32x4.relaxed_dot_i8x16_i7x16_add_s) or the exact one (i32x4.dot_i16x8_s). */
export type DotKind = "relaxed" | "exact";

/** Default cap of the KV cache length, so a model with a huge context fits by default. */
const DEFAULT_MAX_CONTEXT = 4096;

const MODE_NUMBERS: Record<SparsityMode, number> = { dense: 0, oracle: 1, predicted: 2 };
const ACTIVATION_NUMBERS: Record<LlamaConfig["activation"], number> = { silu: 0, relu: 1, gelu: 2 };
/** forwardBlock's logits argument (assembly/model/prefill.ts). */
const LOGITS_LAST = 0;
const LOGITS_ALL = 1;
const LOGITS_NONE = 2;

/**
 * Returns the worker-mode script beside this bundle: dist/worker.js (Node, Deno) or
 * dist/dormant.worker.js (browsers). Resolved here, in the entry bundle, for the same reason as
 * defaultThreadUrl: worker mode's code is a chunk in another folder.
 */
function defaultWorkerUrl(): URL {
  return env.isNode || env.isDeno ? new URL("./worker.js", import.meta.url) : new URL("./dormant.worker.js", import.meta.url);
}

/**
 * Returns the thread worker script beside this bundle: dist/thread.js (Node, Deno) or
 * dist/dormant.thread.js (browsers). Resolved here, in the entry bundle, because the code that
 * starts the threads is a chunk in another folder.
 */
function defaultThreadUrl(): URL {
  return env.isNode || env.isDeno ? new URL("./thread.js", import.meta.url) : new URL("./dormant.thread.js", import.meta.url);
}

/** Most threads a model runs on: MAX_THREADS of assembly/threads.ts, which sizes the per-thread scratch. */
export const MAX_THREADS = 64;

function checkThreads(value: unknown): number {
  if (value === undefined) return 1;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > MAX_THREADS) {
    optionMismatch("loadModel", {
      source: "option threads", field: "threads", actual: describeValue(value), expected: `an integer in [1, ${MAX_THREADS}]`,
    });
  }
  return value;
}

function checkContextLength(value: unknown, fileSeqLen: number): number {
  if (value === undefined) return Math.min(fileSeqLen, DEFAULT_MAX_CONTEXT);
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > fileSeqLen) {
    optionMismatch("loadModel", {
      source: "option contextLength", field: "contextLength", actual: describeValue(value),
      expected: `an integer in [1, ${fileSeqLen}] (the model's context length)`,
    });
  }
  return value;
}

export class Model {
  readonly config: LlamaConfig;
  readonly precision: Precision;
  readonly kernels: KernelVariant;
  readonly tokenizer: Tokenizer;
  /** Path, URL or name the model came from. */
  readonly source: string;
  /** Whether the FFN is stored as neuron bundles, so oracle and predicted modes can run. */
  readonly sparse: boolean;
  /** Whether a predictor is loaded, so predicted mode can run. */
  readonly hasPredictor: boolean;
  /** The file's chat template (null without one), the BOS and EOS texts, and the ids that end a reply. */
  readonly chatFormat: ChatFormat;
  #wasm: DormantExports | null;
  #logitsView: Float32Array | null = null;
  #stats: ModelStats;
  #mode: SparsityMode;
  #trace = 0;
  #ffnInput = 0;
  #rank: number;
  #pool: ThreadPool | null;

  /** @internal Use loadModel(). */
  constructor(
    file: ModelFile, wasm: DormantExports, variant: KernelVariant, precision: Precision, seqLen: number,
    sparse = false, rank = 0, threads: { pool: ThreadPool | null; note?: string } = { pool: null },
  ) {
    if (!file.vocab) {
      throw new FormatError(
        `loadModel: ${file.source}: tokenizer is missing, expected a GGUF with tokenizer.ggml.* metadata or a llama2.c tokenizer.bin (option tokenizer / --tokenizer)`,
        { source: file.source, field: "tokenizer", actual: "missing", expected: "a vocabulary" },
      );
    }
    this.config = { ...file.config, seq_len: seqLen };
    this.sparse = sparse;
    this.hasPredictor = rank > 0;
    this.#rank = rank;
    this.#mode = rank > 0 ? "predicted" : "dense";
    wasm.setMode(MODE_NUMBERS[this.#mode]);
    this.precision = precision;
    this.kernels = variant;
    this.source = file.source;
    this.tokenizer = createTokenizer(file.vocab, file.source);
    this.chatFormat = readChatFormat(file);
    this.#wasm = wasm;
    this.#pool = threads.pool;
    this.#stats = {
      precision, kernels: variant, memoryBytes: wasm.heapUsed(), promptTokens: 0, generatedTokens: 0,
      prefillMs: 0, decodeMs: 0, tokensPerSecond: 0, mode: this.#mode, layers: [], keptFraction: 1, ffnBytesPerToken: 0,
      threads: threads.pool?.count ?? 1, ...(threads.note ? { threadsNote: threads.note } : {}),
    };
    if (variant === "relaxed-simd" && precision === "int8") {
      const kind = (relaxed: number): DotKind => (relaxed ? "relaxed" : "exact");
      this.#stats.dots = { matvec: kind(wasm.matvecRelaxed()), prefill: kind(wasm.prefillRelaxed()) };
    }
  }

  /** FFN mode of layers with neuron bundles. */
  get mode(): SparsityMode {
    return this.#mode;
  }

  /**
   * Selects how the FFN runs: "dense" computes every neuron, "oracle" computes every gate row and
   * keeps neurons with |act(g)| ≥ τ_l, "predicted" computes gate rows only for the predictor's
   * candidates. Oracle and predicted need a model loaded with sparsity data (or bundles: true).
   */
  setMode(mode: SparsityMode): void {
    if (!(mode in MODE_NUMBERS)) {
      optionMismatch("setMode", {
        source: "option mode", field: "mode", actual: JSON.stringify(mode), expected: "\"dense\", \"oracle\" or \"predicted\"",
      });
    }
    if (mode !== "dense" && !this.sparse) {
      optionMismatch("setMode", {
        source: "option mode", field: "mode", actual: JSON.stringify(mode),
        expected: "\"dense\" for a model without sparsity data (run dormant calibrate first)",
      });
    }
    if (mode === "predicted" && !this.hasPredictor) {
      optionMismatch("setMode", {
        source: "option mode", field: "mode", actual: "\"predicted\"",
        expected: "\"dense\" or \"oracle\" for a model without a predictor",
      });
    }
    this.#mode = mode;
    this.#exports.setMode(MODE_NUMBERS[mode]);
  }

  /**
   * Overrides the per-layer thresholds τ_l (and candidate cutoffs, when given) of a model with
   * bundles, for experiments such as keeping a fixed fraction of neurons.
   */
  setThresholds(thresholds: ArrayLike<number>, cutoffs?: ArrayLike<number>): void {
    const { n_layers } = this.config;
    if (!this.sparse) {
      optionMismatch("setThresholds", {
        source: "model", field: "bundles", actual: "false", expected: "a model loaded with sparsity data or bundles: true",
      });
    }
    if (thresholds.length !== n_layers || (cutoffs && cutoffs.length !== n_layers)) {
      optionMismatch("setThresholds", {
        source: "option thresholds", field: "thresholds", actual: `${thresholds.length} values`, expected: `${n_layers} (one per layer)`,
      });
    }
    for (let l = 0; l < n_layers; l++) {
      this.#exports.setThreshold(l, thresholds[l], cutoffs ? cutoffs[l] : -1);
    }
  }

  /**
   * Runs the FFN of `layer` on `input` (dim values) `repeats` times and returns the mean
   * milliseconds per run. For benchmarks; the counters of stats() include these runs.
   * @internal
   */
  timeFfn(layer: number, input: Float32Array, repeats: number): number {
    return this.#timeLayer("ffn", layer, input, repeats);
  }

  /**
   * Runs the predictor of `layer` (with the candidate selection) on `input` `repeats` times and
   * returns the mean milliseconds per run (next to nothing for a layer without one). For benchmarks.
   * @internal
   */
  timePredictor(layer: number, input: Float32Array, repeats: number): number {
    return this.#timeLayer("predictor", layer, input, repeats);
  }

  #timeLayer(part: "ffn" | "predictor", layer: number, input: Float32Array, repeats: number): number {
    const wasm = this.#exports;
    if (this.#ffnInput === 0) this.#ffnInput = wasm.alloc(this.config.dim * 4) >>> 0;
    const pointer = this.#ffnInput;
    if (pointer === 0) {
      throw new WasmError(`timeFfn: ${this.source}: input of ${input.byteLength} bytes does not fit the arena, expected spare room`, {
        source: this.source, field: "input", actual: "over budget", expected: "spare room",
      });
    }
    new Float32Array(wasm.memory.buffer, pointer, input.length).set(input);
    const started = performance.now();
    if (part === "ffn") wasm.ffnRepeat(layer, pointer, repeats);
    else wasm.predictorRepeat(layer, pointer, repeats);
    return (performance.now() - started) / repeats;
  }

  /**
   * Mean milliseconds of the final norm and classifier, and of one layer's attention at `pos`
   * (all heads), on the state the last step left. For benchmarks.
   * @internal
   */
  timeParts(pos: number, repeats: number): { classifierMs: number; attentionMs: number } {
    const wasm = this.#exports;
    let started = performance.now();
    wasm.classifierRepeat(repeats);
    const classifierMs = (performance.now() - started) / repeats;
    started = performance.now();
    for (let l = 0; l < this.config.n_layers; l++) wasm.attentionRepeat(l, pos, repeats);
    const attentionMs = (performance.now() - started) / repeats;
    return { classifierMs, attentionMs };
  }

  /** Clears the per-layer neuron counters that stats() reports. */
  resetStats(): void {
    const wasm = this.#exports;
    new Float64Array(wasm.memory.buffer, wasm.sparseStats() >>> 0, this.config.n_layers * 3).fill(0);
  }

  /** Per-layer neuron counters since the last resetStats(). */
  layerStats(): LayerStats[] {
    const wasm = this.#exports;
    const { n_layers, hidden_dim, dim } = this.config;
    const counters = new Float64Array(wasm.memory.buffer, wasm.sparseStats() >>> 0, n_layers * 3);
    const rowBytes = pad32(dim) + (pad32(dim) / 32) * 4;
    const ffnMatrices = this.config.gated === false ? 2 : 3;
    const result: LayerStats[] = [];
    for (let l = 0; l < n_layers; l++) {
      const tokens = counters[l * 3];
      const candidates = tokens > 0 ? counters[l * 3 + 1] / tokens : 0;
      const kept = tokens > 0 ? counters[l * 3 + 2] / tokens : 0;
      let bytes: number;
      if (this.sparse && this.#mode !== "dense") {
        // gate row per candidate; up row and down column per kept neuron; the predictor when used
        const predictor = this.#mode === "predicted" ? this.#rank * rowBytes + hidden_dim * this.#rank * 4 : 0;
        bytes = candidates * rowBytes + kept * (ffnMatrices - 1) * rowBytes + predictor;
      } else {
        bytes = hidden_dim * ffnMatrices * rowBytes;
      }
      result.push({
        tokens,
        candidateFraction: candidates / hidden_dim,
        keptFraction: kept / hidden_dim,
        ffnBytesPerToken: bytes,
      });
    }
    return result;
  }

  /**
   * Runs one position of the dense FFN path and returns views of the logits, each layer's FFN
   * input and gate pre-activations, for calibration. Views are valid until the next call.
   */
  traceStep(token: number, pos: number): TraceStep {
    const wasm = this.#exports;
    const { n_layers, dim, hidden_dim } = this.config;
    if (this.#trace === 0) {
      this.#trace = wasm.alloc(n_layers * (dim + hidden_dim) * 4) >>> 0;
      if (this.#trace === 0) {
        throw new WasmError(`traceStep: ${this.source}: trace buffer of ${n_layers * (dim + hidden_dim) * 4} bytes does not fit the arena, expected room reserved at load`, {
          source: this.source, field: "trace", actual: "over budget", expected: "room for the trace buffer",
        });
      }
    }
    const previous = this.#mode;
    if (previous !== "dense") this.setMode("dense");
    wasm.setTrace(this.#trace);
    let logits: Float32Array;
    try {
      logits = this.step(token, pos);
    } finally {
      wasm.setTrace(0);
      if (previous !== "dense") this.setMode(previous);
    }
    const base = this.#trace;
    const memory = wasm.memory.buffer;
    return {
      logits,
      ffnInput: (layer) => new Float32Array(memory, base + layer * (dim + hidden_dim) * 4, dim),
      gate: (layer) => new Float32Array(memory, base + (layer * (dim + hidden_dim) + dim) * 4, hidden_dim),
    };
  }

  /** Returns a WasmError for the trap of a forward pass whose worker thread failed, else `error` itself. */
  #threadFailure(error: unknown): unknown {
    if (!this.#pool || this.#wasm?.threadsFailed() !== 1) return error;
    return new WasmError(
      `${this.source}: a thread worker failed, so the forward pass stopped; dispose the model and load it again (${(error as Error).message})`,
      { source: this.source, field: "threads", actual: "a failed worker", expected: `${this.#pool.count} running threads` },
    );
  }

  get #exports(): DormantExports {
    if (!this.#wasm) {
      throw new OptionError("Model: the model was disposed, expected a loaded model", {
        source: "model", field: "state", actual: "disposed", expected: "loaded",
      });
    }
    return this.#wasm;
  }

  /**
   * Token ids of `text`. BOS is prepended when `bos` is true; the default follows the vocabulary
   * (`tokenizer.ggml.add_bos_token`: true for Llama and llama2.c models, false for Qwen2).
   */
  tokenize(text: string, options: { bos?: boolean } = {}): number[] {
    if (typeof text !== "string") {
      optionMismatch("tokenize", { source: "arguments", field: "text", actual: describeTypedValue(text), expected: "a string" });
    }
    checkOptionKeys("tokenize", options, { bos: true });
    if (options.bos !== undefined && typeof options.bos !== "boolean") {
      optionMismatch("tokenize", { source: "option bos", field: "bos", actual: describeValue(options.bos), expected: "true or false" });
    }
    return this.tokenizer.encode(text, options.bos === undefined ? {} : { bos: options.bos });
  }

  /** Text of `ids`; control tokens print nothing and byte tokens join into UTF-8. */
  detokenize(ids: number[]): string {
    const value: unknown = ids;
    if (!Array.isArray(value) && !(ArrayBuffer.isView(value) && !(value instanceof DataView))) {
      optionMismatch("detokenize", { source: "arguments", field: "ids", actual: describeTypedValue(value), expected: "an array of token ids" });
    }
    return this.tokenizer.decode(ids);
  }

  /**
   * Runs one position and returns a view of the logits in wasm memory. The view is valid
   * until the next call; copy it to keep it.
   * @internal
   */
  step(token: number, pos: number): Float32Array {
    const wasm = this.#exports;
    let pointer: number;
    try {
      pointer = wasm.forward(token, pos) >>> 0;
    } catch (error) {
      throw this.#threadFailure(error);
    }
    if (!this.#logitsView || this.#logitsView.buffer !== wasm.memory.buffer || this.#logitsView.byteOffset !== pointer) {
      this.#logitsView = new Float32Array(wasm.memory.buffer, pointer, this.config.vocab_size);
    }
    return this.#logitsView;
  }

  /**
   * Runs `ids` at positions pos0.. in blocks of prefill tokens and returns a view of the last
   * token's logits (valid until the next call). Bit-identical to calling step() for each token.
   * @internal
   */
  prefill(ids: ArrayLike<number>, pos0 = 0): Float32Array {
    const wasm = this.#exports;
    const block = wasm.prefillBlock();
    let pointer = 0;
    for (let start = 0; start < ids.length; start += block) {
      const n = Math.min(block, ids.length - start);
      new Int32Array(wasm.memory.buffer, wasm.prefillTokenBuffer() >>> 0, n).set(Array.prototype.slice.call(ids, start, start + n));
      try {
        // only the last block's last token needs logits
        pointer = wasm.forwardBlock(n, pos0 + start, start + n < ids.length ? LOGITS_NONE : LOGITS_LAST) >>> 0;
      } catch (error) {
        throw this.#threadFailure(error);
      }
    }
    return new Float32Array(wasm.memory.buffer, pointer, this.config.vocab_size);
  }

  /** Checks that `ids` are valid token ids and fit the context; throws an OptionError otherwise. */
  checkTokens(ids: ArrayLike<number>, where: string): void {
    const { vocab_size, seq_len } = this.config;
    if (ids.length > seq_len) {
      optionMismatch(where, {
        source: "tokens", field: "length", actual: `${ids.length} tokens`,
        expected: `at most ${seq_len} (the context length)`,
      });
    }
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= vocab_size) {
        optionMismatch(where, {
          source: "tokens", field: `token ${i}`, actual: describeValue(id), expected: `an integer in [0, ${vocab_size - 1}]`,
        });
      }
    }
  }

  /**
   * Logits after each of `ids`, fed from position 0 (teacher forcing); one row per token. Runs
   * in prefill blocks, which give the same bits as feeding the tokens one at a time.
   */
  logits(ids: number[]): Float32Array[] {
    this.checkTokens(ids, "logits");
    const wasm = this.#exports;
    const block = wasm.prefillBlock();
    const vocab = this.config.vocab_size;
    const rows: Float32Array[] = [];
    for (let start = 0; start < ids.length; start += block) {
      const n = Math.min(block, ids.length - start);
      new Int32Array(wasm.memory.buffer, wasm.prefillTokenBuffer() >>> 0, n).set(ids.slice(start, start + n));
      let pointer: number;
      try {
        pointer = wasm.forwardBlock(n, start, LOGITS_ALL) >>> 0;
      } catch (error) {
        throw this.#threadFailure(error);
      }
      const all = new Float32Array(wasm.memory.buffer, pointer, n * vocab);
      for (let t = 0; t < n; t++) rows.push(all.slice(t * vocab, (t + 1) * vocab));
    }
    return rows;
  }

  /** Streams generated text for `prompt`; see GenerateOptions. The generator returns a summary. */
  generate(prompt: string | number[], options: GenerateOptions = {}): AsyncGenerator<GeneratedPiece, GenerationSummary> {
    return generate(this, prompt, options);
  }

  /**
   * Streams the reply to `messages`, rendered with the file's chat template (dormant's fallback
   * format when it has none); see src/chat.ts. The generator returns a summary with the prompt.
   * The template engine loads on the first step, so template and option errors reject that step.
   */
  chat(messages: readonly ChatMessage[], options: ChatOptions = {}): AsyncGenerator<GeneratedPiece, ChatSummary> {
    // The template engine loads on first use, so bundles without chat stay small.
    const model = this;
    return (async function* () {
      const { chat } = await import("./chat.js");
      return yield* chat(model, messages, options);
    })();
  }

  /** @internal Records the counters of a finished run. */
  recordRun(run: Pick<ModelStats, "promptTokens" | "generatedTokens" | "prefillMs" | "decodeMs" | "tokensPerSecond">): void {
    const layers = this.layerStats();
    this.#stats = {
      ...this.#stats, ...run, memoryBytes: this.#exports.heapUsed(), mode: this.#mode, layers,
      keptFraction: layers.reduce((sum, layer) => sum + layer.keptFraction, 0) / Math.max(1, layers.length),
      ffnBytesPerToken: layers.reduce((sum, layer) => sum + layer.ffnBytesPerToken, 0),
    };
  }

  /** Counters of the last run and facts of the loaded model. */
  stats(): ModelStats {
    return { ...this.#stats, layers: this.#stats.layers.map((layer) => ({ ...layer })) };
  }

  /** Releases the wasm instance and its memory; the model is unusable afterwards. */
  dispose(): void {
    this.#pool?.stop();
    this.#pool = null;
    this.#wasm = null;
    this.#logitsView = null;
  }
}

/** Checks the options that take one of a few words, precision and kernels, for loadModel and createModel. */
function checkChoices(where: string, options: LoadOptions): void {
  const precision = options.precision ?? "int8";
  if (precision !== "int8" && precision !== "f32") {
    optionMismatch(where, {
      source: "option precision", field: "precision", actual: JSON.stringify(precision), expected: "\"int8\" or \"f32\"",
    });
  }
  const kernels = options.kernels ?? "auto";
  if (kernels !== "auto" && kernels !== "exact" && kernels !== "relaxed") {
    optionMismatch(where, {
      source: "option kernels", field: "kernels", actual: JSON.stringify(kernels), expected: "\"auto\", \"exact\" or \"relaxed\"",
    });
  }
}

/**
 * Loads a model and places it in a fresh wasm instance. The source is a catalog name or path
 * (Node and Deno), a URL, a Blob or File, or bytes. A URL is fetched, and in browsers every
 * string is a URL.
 */
export function loadModel(source: ModelSource, options: WorkerLoadOptions): Promise<WorkerModel>;
export function loadModel(source: ModelSource, options?: LoadOptions): Promise<Model>;
export async function loadModel(source: ModelSource, options: LoadOptions | WorkerLoadOptions = {}): Promise<Model | WorkerModel> {
  checkOptionKeys("loadModel", options, options?.worker ? WORKER_LOAD_OPTION_KEYS : LOAD_OPTION_KEYS);
  // Any value but false and undefined goes to the worker, where a value other than true is rejected.
  if (options.worker !== undefined && options.worker !== false) {
    // worker mode is a chunk of its own in the browser bundle, loaded on first use
    const { loadWorkerModel } = await import("./worker-start.js");
    return loadWorkerModel(source, options as WorkerLoadOptions, defaultWorkerUrl());
  }
  checkChoices("loadModel", options);

  let file: ModelFile;
  if (isPathSource(source)) {
    // Loaded on demand so the browser bundle leaves the catalog and download code in a chunk it never fetches.
    const { resolveModel } = await import("./catalog.js");
    const resolved = await resolveModel(source, options);
    const bytes = await readFileBytes(resolved.modelPath);
    options.onProgress?.({ phase: "read", file: resolved.modelPath, loaded: bytes.length, total: bytes.length });
    const tokenizerPath = options.tokenizer ?? resolved.tokenizerPath;
    const tokenizer = tokenizerPath ? { bytes: await readFileBytes(tokenizerPath), source: tokenizerPath } : undefined;
    file = readModelFile(bytes, resolved.modelPath, tokenizer);
  } else {
    const { bytes, name } = await readModelSource(source, { where: "loadModel", onProgress: options.onProgress, cache: options.cache });
    file = readModelFile(bytes, name);
  }
  // the section reader is a chunk of its own: most files have no sparsity section
  if (file.sparsity === undefined && file.metadata.has("dormant.sparsity.version")) {
    const { readSparsity } = await import("./sparsity/format.js");
    file.sparsity = readSparsity(file);
  }
  return createModel(file, options);
}

/**
 * Times the relaxed module's two dots, for prefill blocks and for matrix × vector, on the model's
 * own query matrix and keeps the faster of each. They give the same bits, and which one is faster
 * depends on how the engine lowers the relaxed dot: several instructions on the x86 measured here,
 * and one expected (not measured) on ARM and AVX-VNNI. Each timing runs about 8 M multiply-adds,
 * so coarse browser timers resolve it. The two variants alternate over three rounds, and the
 * fastest round of each counts.
 */
function chooseDotKernels(wasm: DormantExports, config: LlamaConfig): void {
  const probes = [
    { run: wasm.prefillProbe, repeats: Math.ceil(8e6 / (config.dim * config.dim * wasm.prefillBlock())) },
    { run: wasm.matvecProbe, repeats: Math.ceil(8e6 / (config.dim * config.dim)) },
  ];
  for (const { run, repeats } of probes) {
    const times = Math.max(1, Math.min(4096, repeats));
    const best = [Infinity, Infinity];
    for (let round = 0; round < 3; round++) {
      for (const relaxed of [0, 1]) {
        const started = performance.now();
        run(relaxed, times);
        best[relaxed] = Math.min(best[relaxed], performance.now() - started);
      }
    }
    run(best[1] < best[0] ? 1 : 0, 0);
  }
}

/** Places an already parsed model file into a fresh wasm instance. */
export async function createModel(file: ModelFile, options: LoadOptions = {}): Promise<Model> {
  checkOptionKeys("createModel", options, LOAD_OPTION_KEYS);
  checkChoices("createModel", options);
  const precision = options.precision ?? "int8";
  const config: LlamaConfig = { ...file.config, gated: file.config.gated ?? file.tensors.has("blk.0.ffn_gate.weight") };
  file = { ...file, config };
  const seqLen = checkContextLength(options.contextLength, config.seq_len);
  const threads = checkThreads(options.threads);
  if (options.threadUrl !== undefined && typeof options.threadUrl !== "string" && !(options.threadUrl instanceof URL)) {
    optionMismatch("loadModel", { source: "option threadUrl", field: "threadUrl", actual: typeof options.threadUrl, expected: "a URL or a URL string" });
  }
  const kernelsChosen = await instantiateKernels(options.kernels ?? "auto");
  let wasm = kernelsChosen.exports;
  const variant = kernelsChosen.variant;

  const tied = !file.tensors.has("output.weight");
  const sparsity = options.sparsity === null ? null : options.sparsity ?? file.sparsity ?? null;
  const bundles = options.bundles ?? sparsity !== null;
  if ((bundles || sparsity) && precision !== "int8") {
    optionMismatch("loadModel", {
      source: "option precision", field: "precision", actual: `"${precision}"`,
      expected: "\"int8\" for a model with sparsity data or bundles (the sparse FFN runs int8 only); pass sparsity: null to run f32 dense",
    });
  }
  if (sparsity && !bundles) {
    optionMismatch("loadModel", {
      source: "option bundles", field: "bundles", actual: "false", expected: "true when sparsity data is given",
    });
  }
  const rank = sparsity?.rank ?? 0;
  const weights = weightBytes(config, precision, tied, bundles, rank);
  const state = wasm.modelStateBytes(
    config.dim, config.hidden_dim, config.n_layers, config.n_heads, config.n_kv_heads, config.vocab_size, seqLen,
  );
  const trace = config.n_layers * (config.dim + config.hidden_dim) * 4;
  const budget = weights + state + wasm.sparseInitBytes(rank) + wasm.prefillInitBytes() + (threads > 1 ? wasm.threadsBytes(threads) : 0) + trace + 64 * 1024;
  const available = WASM_MEMORY_LIMIT - 1024 * 1024;

  // the threaded build runs over a shared memory sized for the budget; the sizes above came from
  // the unthreaded instance, which has the same layout
  let threadModule: WebAssembly.Module | null = null;
  let threadsNote: string | undefined;
  if (threads > 1 && budget <= available) {
    const { threadsUnavailable } = await import("./threads.js");
    const reason = threadsUnavailable();
    let failure = reason;
    if (failure === null) {
      try {
        const threaded = await instantiateThreaded(variant, budget + 1024 * 1024);
        if (threaded) {
          wasm = threaded.exports;
          threadModule = threaded.module;
        } else {
          failure = "this engine rejects the threaded module (WebAssembly threads)";
        }
      } catch (error) {
        // such as a page that serves dist/dormant.single.js without build/
        failure = (error as Error).message;
      }
    }
    if (failure !== null) threadsNote = `1 of ${threads} threads runs: ${failure}`;
  }
  if (budget > available || wasm.reserve(budget) !== 1) {
    throw new WasmError(
      `loadModel: ${file.source}: wasm memory needed is ${formatBytes(budget)} (weights ${formatBytes(weights)}, ` +
      `KV cache and decode state ${formatBytes(state)} for ${seqLen} positions, prefill and other buffers ${formatBytes(budget - weights - state)}), ` +
      `expected at most 4 GiB, the wasm32 limit; ` +
      (precision === "f32" ? `use precision "int8" or a smaller contextLength` : `use a smaller contextLength or a smaller model`),
      { source: file.source, field: "memory", actual: `${budget} bytes`, expected: `at most ${WASM_MEMORY_LIMIT} bytes` },
    );
  }

  if (wasm.modelInit(
    config.dim, config.hidden_dim, config.n_layers, config.n_heads, config.n_kv_heads,
    config.vocab_size, seqLen, config.norm_eps, config.rope_theta, precision === "int8" ? 1 : 0,
  ) !== 1) {
    throw new WasmError(`loadModel: ${file.source}: run state does not fit the reserved budget of ${budget} bytes`, {
      source: file.source, field: "memory", actual: "over budget", expected: `${budget} bytes`,
    });
  }

  wasm.setActivation(ACTIVATION_NUMBERS[config.activation], config.gated === false ? 0 : 1);
  wasm.setRope(config.rope_type === "neox" ? 1 : 0, 1 / (config.rope_scaling_factor ?? 1));
  if (wasm.sparseInit(rank) !== 1 || wasm.prefillInit() !== 1) {
    throw new WasmError(`loadModel: ${file.source}: sparse tables do not fit the reserved budget of ${budget} bytes`, {
      source: file.source, field: "memory", actual: "over budget", expected: `${budget} bytes`,
    });
  }
  placeWeights(file, wasm, precision, bundles, sparsity, options.onProgress);
  if (precision === "int8" && variant === "relaxed-simd") chooseDotKernels(wasm, config);
  let pool: ThreadPool | null = null;
  if (threadModule) {
    const { ThreadPool } = await import("./threads.js");
    const base = (globalThis as { location?: { href?: string } }).location?.href ?? import.meta.url;
    const url = options.threadUrl === undefined ? defaultThreadUrl() : new URL(options.threadUrl, base);
    pool = await ThreadPool.start(wasm, threadModule, threads, file.source, url, options.threadUrl !== undefined);
  }
  return new Model(file, wasm, variant, precision, seqLen, bundles, rank, { pool, note: threadsNote });
}
