// Runs in the page: keeps one dormant model loaded and times greedy decode runs the way
// bench/peers.mjs times dormant in Node. bench/peers/browser.mjs calls these through playwright.

import { loadModel } from "/dist/dormant.browser.js";

let model;
let settings;

/** Loads the model and resolves to what runs: kernels, threads (and why fewer), isolation. */
window.loadDormant = async ({ modelUrl, threads, contextLength, promptTokens, tokens }) => {
  model = await loadModel(modelUrl, { precision: "int8", contextLength, threads, cache: false });
  settings = { promptTokens, tokens };
  const stats = model.stats();
  return { kernels: model.kernels, threads: stats.threads, threadsNote: stats.threadsNote, isolated: crossOriginIsolated };
};

/** Runs one greedy generation; decode tokens/s counts from the first generated token to the last. */
window.runDormant = async () => {
  const { promptTokens, tokens } = settings;
  const generated = [];
  let first = 0;
  let last = 0;
  for await (const piece of model.generate(promptTokens, { maxTokens: tokens, temperature: 0, stopAtEos: false })) {
    if (piece.token < 0) continue;
    last = performance.now();
    if (generated.length === 0) first = last;
    generated.push(piece.token);
  }
  return { tokensPerSecond: ((generated.length - 1) * 1000) / (last - first), generated };
};

window.unloadDormant = () => {
  model?.dispose();
  model = undefined;
};

window.dormantReady = true;
