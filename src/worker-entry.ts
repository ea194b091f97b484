/**
 * Worker mode, worker side: the script built as dist/worker.js (Node, Deno) and
 * dist/dormant.worker.js (browsers). It loads one model on the host's load request, runs the
 * calls of the WorkerModel proxy in src/worker.ts and streams the pieces of generate() and chat() back.
 */

import { env } from "./env.js";
import { DormantError } from "./errors.js";
import { loadModel, type LoadOptions, type LoadProgress, type Model, type SparsityMode } from "./model.js";
import { serializeError, type WorkerReply, type WorkerRequest } from "./worker.js";

/** The worker's end of the channel: Node's parentPort or the Web Worker global scope. */
interface ParentPort {
  post(reply: WorkerReply, transfer?: ArrayBuffer[]): void;
  listen(handler: (request: WorkerRequest) => void): void;
}

/** The parts of a Web Worker's global scope used here (tsconfig's lib has no "webworker"). */
interface WorkerScope {
  postMessage(message: unknown, transfer: ArrayBuffer[]): void;
  addEventListener(type: "message", listener: (event: MessageEvent<WorkerRequest>) => void): void;
}

async function connect(): Promise<ParentPort> {
  if (env.isNode) {
    const { parentPort } = await import("node:worker_threads");
    if (!parentPort) {
      throw new DormantError("dormant worker: parentPort is missing, expected this script to run in a Worker (loadModel with worker: true)");
    }
    return {
      post: (reply, transfer = []) => parentPort.postMessage(reply, transfer),
      listen: (handler) => parentPort.on("message", handler),
    };
  }
  const scope = globalThis as unknown as WorkerScope;
  return {
    post: (reply, transfer = []) => scope.postMessage(reply, transfer),
    listen: (handler) => scope.addEventListener("message", (event) => handler(event.data)),
  };
}

const port = await connect();
let model: Model | undefined;
/** Runs of generate, chat, logits and setMode, one at a time, because they share the model's KV cache and mode. */
let queue: Promise<void> = Promise.resolve();
/** Abort controllers of queued and running generate and chat requests, by request id. */
const controllers = new Map<number, AbortController>();

port.listen(receive);
port.post({ type: "ready" });

function receive(request: WorkerRequest): void {
  switch (request.type) {
    case "abort":
      controllers.get(request.id)?.abort();
      return;
    case "load":
      void load(request);
      return;
    case "call":
      // The tokenizer does not touch wasm memory, so it need not wait for a running generation.
      if (request.method === "tokenize" || request.method === "detokenize") answer(request);
      else enqueue(() => answer(request));
      return;
    case "generate":
    case "chat":
      controllers.set(request.id, new AbortController());
      enqueue(() => stream(request));
      return;
  }
}

/** Runs `task` after every earlier queued task; each task reports its own errors. */
function enqueue(task: () => void | Promise<void>): void {
  queue = queue.then(task);
}

function postError(id: number, error: unknown): void {
  port.post({ type: "error", id, error: serializeError(error) });
}

function loadedModel(): Model {
  if (!model) throw new DormantError("dormant worker: no model is loaded, expected a load request first");
  return model;
}

async function load(request: Extract<WorkerRequest, { type: "load" }>): Promise<void> {
  try {
    const onProgress = request.progress ? (progress: LoadProgress) => port.post({ type: "progress", progress }) : undefined;
    const options: LoadOptions = { ...(request.options as LoadOptions), worker: false, onProgress };
    const { source, fileName } = request;
    const named = fileName !== undefined && source instanceof Blob && !(source instanceof File) ? new File([source], fileName) : source;
    model = await loadModel(named, options);
    port.post({
      type: "loaded",
      info: {
        config: model.config, precision: model.precision, kernels: model.kernels, source: model.source, sparse: model.sparse,
        hasPredictor: model.hasPredictor, chatFormat: model.chatFormat, mode: model.mode, stats: model.stats(),
      },
    });
  } catch (error) {
    postError(request.id, error);
  }
}

function answer(request: Extract<WorkerRequest, { type: "call" }>): void {
  const { id, method, args } = request;
  try {
    const loaded = loadedModel();
    if (method === "tokenize") {
      port.post({ type: "result", id, value: loaded.tokenize(args[0] as string, args[1] as { bos?: boolean }) });
    } else if (method === "detokenize") {
      port.post({ type: "result", id, value: loaded.detokenize(args[0] as number[]) });
    } else if (method === "logits") {
      // Each row owns its buffer, so the rows move to the host without a copy.
      const rows = loaded.logits(args[0] as number[]);
      port.post({ type: "result", id, value: rows }, rows.map((row) => row.buffer as ArrayBuffer));
    } else {
      loaded.setMode(args[0] as SparsityMode);
      port.post({ type: "result", id, value: undefined });
    }
  } catch (error) {
    postError(id, error);
  }
}

async function stream(request: Extract<WorkerRequest, { type: "generate" | "chat" }>): Promise<void> {
  const { id } = request;
  const signal = controllers.get(id)?.signal;
  try {
    const loaded = loadedModel();
    const pieces = request.type === "chat"
      ? loaded.chat(request.messages, { ...request.options, signal })
      : loaded.generate(request.prompt, { ...request.options, signal });
    for (;;) {
      const step = await pieces.next();
      if (step.done) {
        port.post({ type: "done", id, summary: step.value, stats: loaded.stats() });
        return;
      }
      port.post({ type: "piece", id, piece: step.value });
    }
  } catch (error) {
    postError(id, error);
  } finally {
    controllers.delete(id);
  }
}
