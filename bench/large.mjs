// A Llama-3.2-1B-shaped model (dim 2048, hidden 8192, 16 layers, 32 heads, 8 KV heads, vocab
// 128256) with random Q8_0 weights: load time, wasm memory and int8 decode tokens/s.
//
//   npm run build && node --max-old-space-size=8192 bench/large.mjs [--tokens 8] [--runs 3]

import os from "node:os";
import { SYNTHETIC_SHAPES, createModel, syntheticModel } from "../dist/index.js";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(args[at + 1]);
};
const tokens = option("tokens", 8);
const runs = option("runs", 3);
const generateStarted = performance.now();
const file = syntheticModel("llama-1b", SYNTHETIC_SHAPES["llama-1b"]);
const parameters = [...file.tensors.values()].reduce((sum, t) => sum + t.dims.reduce((a, b) => a * b, 1), 0);
const generateMs = performance.now() - generateStarted;

const loadStarted = performance.now();
const model = await createModel(file, { precision: "int8", contextLength: 256, sparsity: null });
const loadMs = performance.now() - loadStarted;
const memory = model.stats().memoryBytes;

const speeds = [];
for (let run = 0; run <= runs; run++) {
  const iterator = model.generate([1], { maxTokens: tokens, temperature: 0, stopAtEos: false });
  let next;
  do next = await iterator.next(); while (!next.done);
  if (run > 0) speeds.push(next.value.tokensPerSecond);
}
speeds.sort((a, b) => a - b);

console.log(`# 1B-shaped model, int8, one thread: ${os.cpus()[0].model}, Node ${process.version}`);
console.log(`parameters          ${(parameters / 1e9).toFixed(3)} B`);
console.log(`random weights made ${(generateMs / 1000).toFixed(1)} s (not part of loading)`);
console.log(`load (place int8)   ${(loadMs / 1000).toFixed(1)} s`);
console.log(`wasm memory used    ${(memory / 1024 ** 3).toFixed(2)} GiB (KV cache for 256 positions)`);
console.log(`decode              ${speeds[speeds.length >> 1].toFixed(2)} tokens/s (median of ${runs} runs x ${tokens} tokens)`);
