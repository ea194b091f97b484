/**
 * Thread worker script: dist/thread.js (Node, Deno) and dist/dormant.thread.js (browsers). It
 * receives the threaded module, the shared memory and its slot, instantiates the module over
 * that memory and runs threadRun() until the model stops its threads. See src/threads.ts.
 */

import { env } from "./env.js";
import type { ThreadReply, ThreadStart } from "./threads.js";

interface Port {
  post(reply: ThreadReply): void;
  listen(handler: (start: ThreadStart) => void): void;
}

/** The parts of a Web Worker's global scope used here (tsconfig's lib has no "webworker"). */
interface WorkerScope {
  postMessage(message: unknown): void;
  addEventListener(type: "message", listener: (event: MessageEvent<ThreadStart>) => void): void;
  close(): void;
}

async function connect(): Promise<Port> {
  if (env.isNode) {
    const { parentPort } = await import("node:worker_threads");
    if (!parentPort) throw new Error("dormant thread: parentPort is missing, expected this script to run in a Worker");
    return { post: (reply) => parentPort.postMessage(reply), listen: (handler) => parentPort.once("message", handler) };
  }
  const scope = globalThis as unknown as WorkerScope;
  return { post: (reply) => scope.postMessage(reply), listen: (handler) => scope.addEventListener("message", (event) => handler(event.data)) };
}

const port = await connect();
port.listen(({ module, memory, control, id }) => {
  let exports: { threadRun(control: number, id: number): void; threadFail(control: number): void };
  try {
    const instance = new WebAssembly.Instance(module, { env: { memory } });
    exports = instance.exports as unknown as typeof exports;
  } catch (error) {
    port.post({ type: "error", message: (error as Error).message });
    return;
  }
  try {
    // blocks until threadsStop(); the host counts started threads in the control block
    exports.threadRun(control, id);
    port.post({ type: "stopped" });
  } catch (error) {
    // the main thread waits at a barrier for this worker: release it with the failure mark
    exports.threadFail(control);
    port.post({ type: "error", message: (error as Error).message });
  }
  if (!env.isNode) (globalThis as unknown as WorkerScope).close();
});
port.post({ type: "ready" });
