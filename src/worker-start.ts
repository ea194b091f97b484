/**
 * Worker mode, starting side: creates the worker, sends it the model to load and wraps it in a
 * WorkerModel (src/worker.ts). loadModel imports this module only when option worker is true,
 * so pages that never use a worker do not load it at startup.
 */

import { env } from "./env.js";
import { DormantError, optionMismatch } from "./errors.js";
import type { ModelSource } from "./source.js";
import {
  reviveError, WorkerModel, type WorkerLoadOptions, type WorkerModelInfo, type WorkerPort, type WorkerReply, type WorkerRequest,
} from "./worker.js";

interface PortHandlers {
  message(reply: WorkerReply): void;
  /** Called once when the worker fails or exits on its own; the port is unusable afterwards. */
  failure(description: string): void;
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

/**
 * Loads a model in a worker and returns its proxy. Load progress crosses as onProgress calls;
 * aborting options.signal terminates the worker and rejects with the signal's reason.
 * defaultUrl is the worker script used without option workerUrl.
 */
export async function loadWorkerModel(source: ModelSource, options: WorkerLoadOptions, defaultUrl: URL): Promise<WorkerModel> {
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
  const url = workerUrl === undefined ? defaultUrl : new URL(workerUrl, base);

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
