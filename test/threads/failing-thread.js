// A thread script that fails at once, for test/threads.test.ts: it counts itself started, then
// marks the threads failed, as src/thread-entry.ts does when a worker's threadRun traps.
import { parentPort } from "node:worker_threads";

/** Offset of the started counter in the control block (assembly/threads.ts). */
const STARTED_OFFSET = 132;

parentPort.once("message", ({ module, memory, control }) => {
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  Atomics.add(new Int32Array(memory.buffer), (control + STARTED_OFFSET) / 4, 1);
  instance.exports.threadFail(control);
});
parentPort.postMessage({ type: "ready" });
