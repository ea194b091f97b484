/**
 * Worker mode, host side: `loadModel(source, { worker: true })` runs the model in a Web Worker
 * (browsers, Deno) or a worker_threads Worker (Node) and returns a WorkerModel, a proxy with
 * Model's API for what crosses a thread boundary. The worker side is src/worker-entry.ts; the
 * messages of both sides are defined here.
 *
 * The worker script is dist/worker.js beside dist/index.js (Node, Deno) and
 * dist/dormant.worker.js beside dist/dormant.browser.js (browsers), found relative to the
 * bundle with `new URL(..., import.meta.url)`; option workerUrl points elsewhere.
 */

import { DormantError, FormatError, ModelSourceError, OptionError, WasmError, type ErrorDetails } from "./errors.js";
import type { ChatFormat, ChatMessage } from "./chat-format.js";
import type { ChatOptions, ChatSummary } from "./chat.js";
import type { GenerateOptions, GeneratedPiece, GenerationSummary } from "./generate.js";
import type { LoadOptions, LoadProgress, ModelStats, Precision, SparsityMode } from "./model.js";
import type { ModelSource } from "./source.js";
import type { LlamaConfig } from "./types.js";
import type { KernelVariant } from "./wasm.js";

/** Options of loadModel in worker mode. */
export interface WorkerLoadOptions extends Omit<LoadOptions, "worker" | "fetch"> {
  worker: true;
  /** Worker script; default dist/worker.js (Node, Deno) or dist/dormant.worker.js (browsers) beside the bundle. */
  workerUrl?: string | URL;
}

/** An error as it crosses the thread boundary: the class name, the message and the fields of DormantError. */
export interface SerializedError extends ErrorDetails {
  name: string;
  message: string;
}

/** Facts of the loaded model that the worker sends when loading ends; WorkerModel copies them. */
export interface WorkerModelInfo {
  config: LlamaConfig;
  precision: Precision;
  kernels: KernelVariant;
  source: string;
  sparse: boolean;
  hasPredictor: boolean;
  chatFormat: ChatFormat;
  mode: SparsityMode;
  stats: ModelStats;
}

/** Model methods that the worker runs for one result each. */
export type WorkerMethod = "tokenize" | "detokenize" | "logits" | "setMode";

/** Messages from the host to the worker. Every request but abort carries a fresh id; load is id 0. */
export type WorkerRequest =
  | { type: "load"; id: 0; source: ModelSource; fileName?: string; options: Record<string, unknown>; progress: boolean }
  | { type: "call"; id: number; method: WorkerMethod; args: unknown[] }
  | { type: "generate"; id: number; prompt: string | number[]; options: Record<string, unknown> }
  | { type: "chat"; id: number; messages: ChatMessage[]; options: Record<string, unknown> }
  | { type: "abort"; id: number };

/** Messages from the worker to the host. */
export type WorkerReply =
  | { type: "ready" }
  | { type: "progress"; progress: LoadProgress }
  | { type: "loaded"; info: WorkerModelInfo }
  | { type: "result"; id: number; value: unknown }
  | { type: "piece"; id: number; piece: GeneratedPiece }
  | { type: "done"; id: number; summary: GenerationSummary; stats: ModelStats }
  | { type: "error"; id: number; error: SerializedError };

/** Converts any thrown value into a message that structured clone keeps intact. */
export function serializeError(error: unknown): SerializedError {
  // DOMException (AbortError) is an Error too, in browsers, Node and Deno.
  if (!(error instanceof Error)) return { name: "Error", message: String(error) };
  const serialized: SerializedError = { name: error.name, message: error.message };
  if (error instanceof DormantError) {
    for (const key of ["source", "field", "actual", "expected"] as const) {
      if (error[key] !== undefined) serialized[key] = error[key];
    }
  }
  return serialized;
}

const dormantErrors: Record<string, new (message: string, details?: ErrorDetails) => DormantError> = {
  DormantError, FormatError, OptionError, WasmError, ModelSourceError,
};

const standardErrors: Record<string, new (message: string) => Error> = {
  Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError,
};

/** Rebuilds an error of the same class, with the same message and fields, on this side. */
export function reviveError(error: SerializedError): Error {
  const { name, message, ...details } = error;
  const DormantClass = dormantErrors[name];
  if (DormantClass) return new DormantClass(message, details);
  if (name === "AbortError" || name === "TimeoutError") return new DOMException(message, name);
  const StandardClass = standardErrors[name];
  const revived = StandardClass ? new StandardClass(message) : new Error(message);
  if (!StandardClass) revived.name = name;
  return revived;
}

/** The host's end of a worker: Node's worker_threads and the Web Worker API behind one shape. */
export interface WorkerPort {
  post(request: WorkerRequest): void;
  /** Keeps the process alive while requests are pending (Node); the Web Worker API has no such switch. */
  hold(active: boolean): void;
  terminate(): void;
}

/** Handles one reply addressed to a request id. */
type ReplyHandler = (reply: WorkerReply) => void;

function disposedError(): OptionError {
  return new OptionError("Model: the model was disposed, expected a loaded model", {
    source: "model", field: "state", actual: "disposed", expected: "loaded",
  });
}

/**
 * A model that runs in a worker. Fields and stats() match Model's; tokenize, detokenize,
 * logits and setMode return promises, and generate() and chat() stream pieces as Model's do.
 * Option and prompt errors of generate() and chat() reject the first next() instead of throwing
 * from the call. Requests run in the worker one at a time, in the order they were made, except
 * tokenize and detokenize, which run at once. Call dispose() to terminate the worker.
 */
export class WorkerModel {
  readonly config: LlamaConfig;
  readonly precision: Precision;
  readonly kernels: KernelVariant;
  /** Path, URL or name the model came from. */
  readonly source: string;
  readonly sparse: boolean;
  readonly hasPredictor: boolean;
  readonly chatFormat: ChatFormat;
  #port: WorkerPort | null;
  #mode: SparsityMode;
  #stats: ModelStats;
  #nextId = 1;
  #handlers = new Map<number, ReplyHandler>();
  #failure: Error | null = null;

  /** @internal Use loadModel(source, { worker: true }). */
  constructor(port: WorkerPort, info: WorkerModelInfo) {
    this.#port = port;
    this.config = info.config;
    this.precision = info.precision;
    this.kernels = info.kernels;
    this.source = info.source;
    this.sparse = info.sparse;
    this.hasPredictor = info.hasPredictor;
    this.chatFormat = info.chatFormat;
    this.#mode = info.mode;
    this.#stats = info.stats;
    port.hold(false);
  }

  /** FFN mode of layers with neuron bundles, as of the last setMode() that finished. */
  get mode(): SparsityMode {
    return this.#mode;
  }

  /** Token ids of `text`, as Model.tokenize returns them. */
  tokenize(text: string, options: { bos?: boolean } = {}): Promise<number[]> {
    return this.#call("tokenize", [text, options]) as Promise<number[]>;
  }

  /** Text of `ids`, as Model.detokenize returns it. */
  detokenize(ids: number[]): Promise<string> {
    return this.#call("detokenize", [ids]) as Promise<string>;
  }

  /** Logits after each of `ids`, fed from position 0; one row per token, moved from the worker without a copy. */
  logits(ids: number[]): Promise<Float32Array[]> {
    return this.#call("logits", [ids]) as Promise<Float32Array[]>;
  }

  /** Selects how the FFN runs (see Model.setMode); rejects with the OptionError that Model throws. */
  async setMode(mode: SparsityMode): Promise<void> {
    await this.#call("setMode", [mode]);
    this.#mode = mode;
  }

  /** Counters of the last finished run and facts of the loaded model. */
  stats(): ModelStats {
    return { ...this.#stats, layers: this.#stats.layers.map((layer) => ({ ...layer })) };
  }

  /** Streams generated text for `prompt`; see GenerateOptions. The signal aborts the run in the worker. */
  generate(prompt: string | number[], options: GenerateOptions = {}): AsyncGenerator<GeneratedPiece, GenerationSummary> {
    const { signal, ...rest } = options;
    return this.#stream({ type: "generate", id: 0, prompt, options: rest }, signal);
  }

  /** Streams the reply to `messages` (see Model.chat); the summary contains the prompt and the reply text. */
  chat(messages: readonly ChatMessage[], options: ChatOptions = {}): AsyncGenerator<GeneratedPiece, ChatSummary> {
    const { signal, ...rest } = options;
    return this.#stream({ type: "chat", id: 0, messages: [...messages], options: rest }, signal) as AsyncGenerator<GeneratedPiece, ChatSummary>;
  }

  /** Terminates the worker; pending requests reject and the model is unusable afterwards. */
  dispose(): void {
    this.#port?.terminate();
    this.#port = null;
    this.fail(disposedError());
  }

  /** @internal Routes a reply of the worker to the handler of its request. */
  receive(reply: WorkerReply): void {
    if ("id" in reply) this.#handlers.get(reply.id)?.(reply);
  }

  /** @internal Rejects every pending request; later requests reject with the same error. */
  fail(error: Error): void {
    this.#failure ??= error;
    this.#port?.terminate();
    this.#port = null;
    const failed: WorkerReply = { type: "error", id: 0, error: serializeError(error) };
    for (const handler of [...this.#handlers.values()]) handler(failed);
  }

  /** Registers a handler under a fresh id, keeping the Node process alive while any is pending. */
  #open(handler: ReplyHandler): { id: number; port: WorkerPort } {
    if (!this.#port) throw this.#failure ?? disposedError();
    const id = this.#nextId++;
    this.#handlers.set(id, handler);
    this.#port.hold(true);
    return { id, port: this.#port };
  }

  #close(id: number): void {
    this.#handlers.delete(id);
    if (this.#handlers.size === 0) this.#port?.hold(false);
  }

  #call(method: WorkerMethod, args: unknown[]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const { id, port } = this.#open((reply) => {
        this.#close(id);
        if (reply.type === "result") resolve(reply.value);
        else if (reply.type === "error") reject(this.#failure ?? reviveError(reply.error));
      });
      port.post({ type: "call", id, method, args });
    });
  }

  /** Sends a generate or chat request on the first next() and yields the pieces the worker streams back. */
  async *#stream(
    request: Extract<WorkerRequest, { type: "generate" | "chat" }>, signal: AbortSignal | undefined,
  ): AsyncGenerator<GeneratedPiece, GenerationSummary> {
    const replies: WorkerReply[] = [];
    let wake: (() => void) | undefined;
    const { id, port } = this.#open((reply) => {
      replies.push(reply);
      wake?.();
    });
    const abort = () => port.post({ type: "abort", id });
    signal?.addEventListener("abort", abort, { once: true });
    let finished = false;
    try {
      port.post({ ...request, id });
      if (signal?.aborted) abort();
      for (;;) {
        while (replies.length === 0) await new Promise<void>((resolve) => (wake = resolve));
        const reply = replies.shift() as WorkerReply;
        // After an abort the pieces still in flight are dropped; the run ends with the worker's error reply.
        if (reply.type === "piece") {
          if (!signal?.aborted) yield reply.piece;
          continue;
        }
        finished = true;
        if (this.#failure) throw this.#failure;
        if (signal?.aborted) throw signal.reason;
        if (reply.type === "error") throw reviveError(reply.error);
        if (reply.type === "done") {
          this.#stats = reply.stats;
          return reply.summary;
        }
      }
    } finally {
      signal?.removeEventListener("abort", abort);
      // A consumer that stops early (break, return) stops the run in the worker as well.
      if (!finished && this.#port) abort();
      this.#close(id);
    }
  }
}
