/**
 * Threads, host side: starts the Workers (worker_threads in Node) that share a model's wasm
 * memory and run slices of its forward pass (assembly/threads.ts), and stops them. Loaded on
 * demand by createModel when `threads` is above 1, so single-threaded pages never download it.
 *
 * Sharing wasm memory needs SharedArrayBuffer; browsers offer it only to cross-origin isolated
 * pages (COOP same-origin, COEP require-corp). Where it is missing the model runs on one
 * thread and stats().threadsNote gives the reason.
 */

import { env } from "./env.js";
import { WasmError } from "./errors.js";
import type { DormantExports } from "./wasm.js";

/** First message to a thread worker. */
export interface ThreadStart {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: number;
  id: number;
}

/** Messages from a thread worker. */
export type ThreadReply = { type: "ready" } | { type: "stopped" } | { type: "error"; message: string };

/** How long the workers get to start, including compiling the module in their thread. */
const START_TIMEOUT_MS = 20_000;

/** Returns why this host cannot share wasm memory with workers, or null when it can. */
export function threadsUnavailable(): string | null {
  if ((env.isBrowser || env.isWorker) && !env.crossOriginIsolated) {
    return "the page is not cross-origin isolated (serve it with COOP same-origin and COEP require-corp), so SharedArrayBuffer is unavailable";
  }
  if (!env.hasSharedArrayBuffer) return "SharedArrayBuffer is unavailable on this host";
  return null;
}

interface ThreadWorker {
  post(start: ThreadStart): void;
  terminate(): void;
}

async function startWorker(url: URL, onReply: (reply: ThreadReply) => void, onFailure: (message: string) => void): Promise<ThreadWorker> {
  if (env.isNode) {
    const { Worker } = await import("node:worker_threads");
    const worker = new Worker(url, { execArgv: [] });
    worker.on("message", onReply);
    worker.on("error", (error: Error) => onFailure(error.message));
    // a model that is never disposed must not keep the process alive; unref after the
    // listeners, because adding a message listener refs the worker again
    worker.unref();
    return { post: (start) => worker.postMessage(start), terminate: () => void worker.terminate() };
  }
  const worker = new Worker(url, { type: "module" });
  worker.addEventListener("message", (event: MessageEvent<ThreadReply>) => onReply(event.data));
  worker.addEventListener("error", (event: ErrorEvent) => {
    event.preventDefault();
    onFailure(event.message || "the thread script failed to load or threw while it started");
  });
  return { post: (start) => worker.postMessage(start), terminate: () => worker.terminate() };
}

/** Workers running slices of one model's forward pass. */
export class ThreadPool {
  readonly count: number;
  #workers: ThreadWorker[];
  #wasm: DormantExports;

  private constructor(count: number, workers: ThreadWorker[], wasm: DormantExports) {
    this.count = count;
    this.#workers = workers;
    this.#wasm = wasm;
  }

  /**
   * Starts count - 1 workers over the memory of `wasm` (the threaded module, after modelInit)
   * and resolves when every one has entered threadRun. `scriptUrl` is the thread worker script,
   * `given` whether option threadUrl named it; `source` names the model in errors.
   */
  static async start(
    wasm: DormantExports, module: WebAssembly.Module, count: number, source: string, scriptUrl: URL, given: boolean,
  ): Promise<ThreadPool> {
    // a browser page's thread may not block in Atomics.wait; Node, Deno and workers may
    const control = wasm.threadsInit(count, env.isBrowser ? 0 : 1) >>> 0;
    if (control === 0) {
      throw new WasmError(`loadModel: ${source}: the thread control block does not fit the reserved budget`, {
        source, field: "memory", actual: "over budget", expected: "room for the thread control block",
      });
    }
    const workers: ThreadWorker[] = [];
    let failure: string | null = null;
    const fail = (message: string) => {
      failure ??= message;
    };
    const where = given ? "option threadUrl" : "dist/ beside the bundle, or set option threadUrl";
    const notStarted = (reason: string) => new WasmError(
      `loadModel: ${scriptUrl.href}: thread workers did not start: ${reason}; expected the thread script there (${where})`,
      { source: scriptUrl.href, field: "threads", actual: reason, expected: `${count - 1} running workers` },
    );
    try {
      for (let id = 1; id < count; id++) {
        let worker: ThreadWorker;
        try {
          worker = await startWorker(scriptUrl, (reply) => {
            if (reply.type === "ready") worker.post({ module, memory: wasm.memory, control, id });
            else if (reply.type === "error") fail(reply.message);
          }, fail);
        } catch (error) {
          // such as Node, which starts workers from file: URLs only
          throw notStarted((error as Error).message);
        }
        workers.push(worker);
      }
      const started = new Int32Array(wasm.memory.buffer, wasm.threadsStarted() >>> 0, 1);
      const deadline = Date.now() + START_TIMEOUT_MS;
      while (Atomics.load(started, 0) < count - 1) {
        if (failure !== null || Date.now() > deadline) {
          throw notStarted(failure ?? `only ${Atomics.load(started, 0)} of ${count - 1} started within ${START_TIMEOUT_MS / 1000} s`);
        }
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    } catch (error) {
      for (const worker of workers) worker.terminate();
      throw error;
    }
    return new ThreadPool(count, workers, wasm);
  }

  /** Ends the workers' loops and terminates them; the model runs on one thread afterwards. */
  stop(): void {
    if (this.#workers.length === 0) return;
    // after a worker failed, the quit job traps at once instead of waiting; terminating suffices
    if (this.#wasm.threadsFailed() !== 1) this.#wasm.threadsStop();
    for (const worker of this.#workers) worker.terminate();
    this.#workers = [];
  }
}
