// Runs in the page: keeps one wllama instance with one GGUF loaded and times greedy decode runs.
// bench/peers/browser.mjs calls these functions through playwright.

import { Wllama } from "/wllama/esm/index.js";

const quiet = { debug() {}, log() {}, warn: console.warn, error: console.error };
let wllama;
let settings;

/** Loads the model and resolves to what wllama set up: threads, isolation, llama.cpp version. */
window.loadWllama = async ({ modelUrl, threads, contextLength, prompt, tokens }) => {
  wllama = new Wllama({ default: "/wllama/esm/wasm/wllama.wasm" }, { suppressNativeLog: true, logger: quiet });
  // Compat mode would fetch a worker from a CDN. Chromium does not need it, and the network is closed.
  wllama.setCompat(null);
  const blob = await (await fetch(modelUrl)).blob();
  await wllama.loadModel([blob], { n_threads: threads, n_ctx: contextLength, n_gpu_layers: 0, n_parallel: 1 });
  settings = { prompt, tokens };
  return {
    threads: wllama.getNumThreads(),
    multithread: wllama.isMultithread(),
    isolated: crossOriginIsolated,
    llamaCpp: Wllama.getLibllamaVersion(),
    userAgent: navigator.userAgent,
  };
};

/**
 * Runs one greedy generation and resolves to its decode tokens/s, timed like dormant's: from
 * the first generated token to the last, counting one forward pass per later token.
 */
window.runWllama = async () => {
  const { prompt, tokens } = settings;
  // Each chunk carries the count of tokens predicted so far, so a chunk that contains several
  // tokens (a UTF-8 sequence spread over byte tokens) still counts right.
  const marks = [];
  let timings;
  await wllama.createCompletion({
    prompt, max_tokens: tokens, temperature: 0, top_k: 1, ignore_eos: true, cache_prompt: false,
    stream: true, timings_per_token: true,
    onData: (chunk) => {
      const now = performance.now();
      if (chunk.timings === undefined) return;
      marks.push([chunk.timings.predicted_n, now]);
      timings = chunk.timings;
    },
  });
  const [firstCount, firstTime] = marks[0];
  const [lastCount, lastTime] = marks[marks.length - 1];
  if (lastCount !== tokens) throw new Error(`wllama generated ${lastCount} tokens, expected ${tokens}`);
  return {
    tokensPerSecond: ((lastCount - firstCount) * 1000) / (lastTime - firstTime),
    serverTokensPerSecond: timings.predicted_per_second,
    promptTokens: timings.prompt_n,
  };
};

window.unloadWllama = async () => {
  await wllama?.exit();
  wllama = undefined;
};

window.wllamaReady = true;
