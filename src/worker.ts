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

import { env } from "./env.js";
import { DormantError, FormatError, ModelSourceError, OptionError, WasmError, optionMismatch, type ErrorDetails } from "./errors.js";
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
interface WorkerPort {
  post(request: WorkerRequest): void;
  /** Keeps the process alive while requests are pending (Node); the Web Worker API has no such switch. */
  hold(active: boolean): void;
  terminate(): void;
}

interface PortHandlers {
  message(reply: WorkerReply): void;
  /** Called once when the worker fails or exits on its own; the port is unusable afterwards. */
  failure(description: string): void;
}

/** Returns the worker script of this bundle: dist/worker.js for Node and Deno, dist/dormant.worker.js for browsers. */
function defaultWorkerUrl(): URL {
  return env.isNode || env.isDeno ? new URL("./worker.js", import.meta.url) : new URL("./dormant.worker.js", import.meta.url);
}

async function startWorker(url: URL, handlers: PortHandlers): Promise<WorkerPort> {
  if (env.isNode) {
    const { Worker } = await import("node:worker_threads");
    // Node flags of the calling process (such as --input-type) can keep the script from starting, and
    // it needs none: V8 flags, which decide the wasm features, apply to the whole process anyway.
    const worker = new Worker(url, { execArgv: [] });
    worker.on("message", handlers.message);
    worker.on("error", (error: Error) => handlers.failure(error.message));
    worker.on("exit", (code: number) => handlers.failure(`the worker exited with code ${code}`));
    return {
      post: (request) => worker.postMessage(request),
      hold: (active) => (active ? worker.ref() : worker.unref()),
      terminate: () => void worker.terminate(),
    };
  }
  const worker = new Worker(url, { type: "module" });
  worker.addEventListener("message", (event: MessageEvent<WorkerReply>) => handlers.message(event.data));
  worker.addEventListener("error", (event: ErrorEvent) => {
    event.preventDefault();
    handlers.failure(event.message || "the script failed to load or threw while it started");
  });
  worker.addEventListener("messageerror", () => handlers.failure("a message from the worker could not be deserialized"));
  return {
    post: (request) => worker.postMessage(request),
    hold: () => undefined,
    terminate: () => worker.terminate(),
  };
}

/** Replaces what structured clone cannot copy: a URL becomes its href, and a relative URL string is resolved against the page. */
function cloneableSource(source: ModelSource): ModelSource {
  if (source instanceof URL) return source.href;
  // Without a file system every string is a URL; the worker would resolve it against its own script.
  const base = (globalThis as { location?: { href?: string } }).location?.href;
  if (typeof source === "string" && !env.hasFileSystem && base !== undefined) {
    try {
      return new URL(source, base).href;
    } catch {
      return source;
    }
  }
  return source;
}

/** Copies the options that cross to the worker; functions and signals stay here. */
function cloneableOptions(options: WorkerLoadOptions): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...options };
  for (const key of ["worker", "workerUrl", "onProgress", "signal"]) delete copy[key];
  for (const [key, value] of Object.entries(copy)) {
    if (typeof value === "function") {
      optionMismatch("loadModel", {
        source: `option ${key}`, field: key, actual: "a function", expected: "a value that can be copied to the worker (worker: true)",
      });
    }
  }
  return copy;
}

/** Handles one reply addressed to a request id. */
type ReplyHandler = (reply: WorkerReply) => void;

/**
 * Loads a model in a worker and returns its proxy. Load progress crosses as onProgress calls;
 * aborting options.signal terminates the worker and rejects with the signal's reason.
 */
export async function loadWorkerModel(source: ModelSource, options: WorkerLoadOptions): Promise<WorkerModel> {
  if (options.worker !== true) {
    optionMismatch("loadModel", { source: "option worker", field: "worker", actual: JSON.stringify(options.worker), expected: "true or false" });
  }
  const { workerUrl, onProgress, signal } = options;
  if (workerUrl !== undefined && typeof workerUrl !== "string" && !(workerUrl instanceof URL)) {
    optionMismatch("loadModel", { source: "option workerUrl", field: "workerUrl", actual: typeof workerUrl, expected: "a URL or a URL string" });
  }
  signal?.throwIfAborted();
  // Node 20 clones a File as a plain Blob, so its name, which error messages show, travels beside it.
  const fileName = typeof Blob === "function" && source instanceof Blob ? (source as { name?: unknown }).name : undefined;
  const request: WorkerRequest = {
    type: "load", id: 0, source: cloneableSource(source), fileName: typeof fileName === "string" ? fileName : undefined,
    options: cloneableOptions(options), progress: onProgress !== undefined,
  };
  const base = (globalThis as { location?: { href?: string } }).location?.href ?? import.meta.url;
  const url = workerUrl === undefined ? defaultWorkerUrl() : new URL(workerUrl, base);

  let port: WorkerPort | undefined;
  let ready = false;
  let model: WorkerModel | undefined;
  let settle: { resolve(info: WorkerModelInfo): void; reject(error: unknown): void } | undefined;
  let failed = false;
  const loaded = new Promise<WorkerModelInfo>((resolve, reject) => (settle = { resolve, reject }));
  // A failure before `await loaded` (abort while the worker starts) must not count as unhandled.
  loaded.catch(() => undefined);
  const fail = (error: unknown) => {
    failed = true;
    port?.terminate();
    settle?.reject(error);
  };
  const handlers: PortHandlers = {
    message(reply) {
      if (model) {
        model.receive(reply);
      } else if (failed) {
        // Replies already in flight when loading failed (progress, mostly) are dropped.
      } else if (reply.type === "ready") {
        // The worker listens from now on; the port may still be on its way back from startWorker.
        ready = true;
        port?.post(request);
      } else if (reply.type === "loaded") {
        settle?.resolve(reply.info);
      } else if (reply.type === "error") {
        fail(reviveError(reply.error));
      } else if (reply.type === "progress") {
        try {
          onProgress?.(reply.progress);
        } catch (error) {
          fail(error);
        }
      }
    },
    failure(description) {
      if (model) model.fail(workerFailure("WorkerModel", url, description));
      else fail(workerFailure("loadModel", url, description));
    },
  };
  const onAbort = () => fail(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    try {
      port = await startWorker(url, handlers);
    } catch (error) {
      throw workerFailure("loadModel", url, error instanceof Error ? error.message : String(error));
    }
    if (ready) port.post(request);
    model = new WorkerModel(port, await loaded);
    return model;
  } catch (error) {
    port?.terminate();
    throw error;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/** Describes a worker that failed to start (where is "loadModel") or stopped later (where is "WorkerModel"). */
function workerFailure(where: string, url: URL, description: string): DormantError {
  const hint = where === "loadModel" ? "; check that the worker script is served beside the bundle, or set option workerUrl" : "";
  return new DormantError(`${where}: ${url.href}: worker failed: ${description}${hint}`, {
    source: url.href, field: "worker", actual: description, expected: "a running worker",
  });
}

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
