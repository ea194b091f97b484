// Decode throughput: tokens/s of stories260K and of a stories110M-shaped model with random
// weights, f32 against int8, one thread. Prints a table; asserts nothing.
//
//   npm run build && node bench/decode.mjs [--runs 5] [--tokens 64]

import os from "node:os";
import { createModel, loadModel } from "../dist/index.js";
import { SHAPES, syntheticModel } from "./synthetic.mjs";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(args[at + 1]);
};
const runs = option("runs", 5);
const tokens = option("tokens", 64);
const stories260K = new URL("../../shared/models/stories260K.gguf", import.meta.url).pathname;

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

/** Median decode tokens/s of greedy generation from BOS, `runs` times `tokens` tokens. */
async function decodeSpeed(model) {
  const speeds = [];
  // One warm-up run lets the engine tier up the kernels before timing.
  for (let run = 0; run <= runs; run++) {
    const iterator = model.generate([model.tokenizer.bosId], { maxTokens: tokens, temperature: 0, stopAtEos: false });
    let next;
    do next = await iterator.next(); while (!next.done);
    if (run > 0) speeds.push(next.value.tokensPerSecond);
  }
  return median(speeds);
}

/** Median prefill tokens/s of a 128-token prompt (prefill blocks, logits of the last token). */
function prefillSpeed(model) {
  const prompt = Array.from({ length: 128 }, (_, i) => (i * 7919) % model.config.vocab_size);
  const speeds = [];
  for (let run = 0; run <= runs; run++) {
    const started = performance.now();
    model.prefill(prompt, 0);
    if (run > 0) speeds.push(128 / ((performance.now() - started) / 1000));
  }
  return median(speeds);
}

console.log(`# decode and prefill, one thread: ${os.cpus()[0].model}, Node ${process.version}, ${runs} runs x ${tokens} tokens (median)`);
console.log("model        precision  kernels        decode tok/s  prefill tok/s (128-token prompt)");
const results = {};
for (const name of ["stories260K", "stories110M"]) {
  const file = name === "stories260K" ? null : syntheticModel(name, SHAPES[name]);
  for (const precision of ["f32", "int8"]) {
    const model = file
      ? await createModel(file, { precision, contextLength: Math.max(tokens + 8, 136) })
      : await loadModel(stories260K, { precision });
    const speed = await decodeSpeed(model);
    const prefill = prefillSpeed(model);
    results[`${name}/${precision}`] = speed;
    console.log(`${name.padEnd(12)} ${precision.padEnd(10)} ${model.kernels.padEnd(14)} ${speed.toFixed(1).padStart(12)}  ${prefill.toFixed(1).padStart(13)}`);
    model.dispose();
  }
}
for (const name of ["stories260K", "stories110M"]) {
  const ratio = results[`${name}/int8`] / results[`${name}/f32`];
  console.log(`${name}: int8 / f32 decode = ${ratio.toFixed(2)}x`);
}
