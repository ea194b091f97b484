// Module worker started by the offscreen document. It loads the packaged model once, from the
// extension's own files, and continues each text greedily.

import { loadModel } from "./dormant/dist/dormant.browser.js";

/** model/model.json, written by build.mjs: { "file": "stories260K.gguf", "bytes": 1185376 }. */
const manifestUrl = new URL("model/model.json", import.meta.url);
let loading;

/** Loads the model named by model/model.json on first use. Later calls share that model. */
function getModel() {
  loading ??= (async () => {
    const response = await fetch(manifestUrl);
    if (!response.ok) throw new Error(`${manifestUrl.href}: HTTP status is ${response.status}, expected 200 (rebuild the extension with --model)`);
    const { file } = await response.json();
    const url = new URL(file, manifestUrl).href;
    const model = await loadModel(url, { precision: "int8" });
    return { model, url, name: file.replace(/\.gguf$/i, "") };
  })();
  // A failed load is retried on the next request instead of failing forever.
  loading.catch(() => (loading = undefined));
  return loading;
}

/** Continues `text` for `maxTokens` tokens at temperature 0. */
async function continueText(text, maxTokens) {
  const { model, url, name } = await getModel();
  // Keep the end of a long selection: BOS plus as many trailing tokens as leave room for the reply.
  const ids = model.tokenize(text);
  const room = model.config.seq_len - maxTokens;
  const prompt = ids.length > room ? [ids[0], ...ids.slice(ids.length - room + 1)] : ids;

  const started = performance.now();
  let continuation = "";
  let generated = 0;
  for await (const piece of model.generate(prompt, { maxTokens, temperature: 0 })) {
    continuation += piece.text;
    if (piece.token >= 0) generated++;
  }
  return {
    continuation,
    promptTokens: prompt.length,
    tokens: generated,
    milliseconds: Math.round(performance.now() - started),
    model: name,
    modelUrl: url,
    kernels: model.kernels,
  };
}

self.onmessage = async (event) => {
  const { id, text, maxTokens } = event.data;
  try {
    self.postMessage({ id, ...(await continueText(text, maxTokens)) });
  } catch (error) {
    self.postMessage({ id, error: `${error?.name ?? "Error"}: ${error?.message ?? String(error)}` });
  }
};
