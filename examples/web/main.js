// The web example: loads stories260K into a Web Worker with a progress bar, then streams a story
// into the page with live tokens/s. Served by serve.mjs, which maps ./dist/, ./build/ and ./models/.
// Query parameters: model (URL of a GGUF file, default ./models/stories260K.gguf), maxTokens, seed.

import { loadModel } from "./dist/dormant.browser.js";

const parameters = new URLSearchParams(location.search);
const modelUrl = parameters.get("model") ?? "./models/stories260K.gguf";
// Without maxTokens the story runs until the model ends it or the context is full.
const maxTokens = parameters.has("maxTokens") ? Number(parameters.get("maxTokens")) : undefined;
const seed = parameters.has("seed") ? Number(parameters.get("seed")) : undefined;

const elements = {
  progress: document.getElementById("progress"),
  status: document.getElementById("status"),
  form: document.getElementById("form"),
  prompt: document.getElementById("prompt"),
  write: document.getElementById("write"),
  speed: document.getElementById("speed"),
  story: document.getElementById("story"),
};

/** Page state for tests and the console: "loading", "ready", "generating", "done" or "error". */
const example = { state: "loading", progress: [], text: "", summary: null, error: null, kernels: null, threads: null };
window.dormantExample = example;

function formatBytes(bytes) {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(0)} KiB`;
}

/** Shows download progress in bytes, then weight placement in tensors. */
function showProgress(progress) {
  example.progress.push({ ...progress });
  const { phase, loaded, total } = progress;
  if (total) elements.progress.value = loaded / total;
  if (phase === "download") {
    elements.status.textContent = `Downloading ${progress.file}: ${formatBytes(loaded)}${total ? ` of ${formatBytes(total)}` : ""}`;
  } else if (phase === "place") {
    elements.status.textContent = `Placing weights: ${loaded} of ${total} tensors`;
  } else {
    elements.status.textContent = `Reading ${progress.file ?? "the model"}`;
  }
}

/** The loaded model; null until loading succeeds, so a failed load leaves nothing to write with. */
let loadedModel = null;

function fail(error) {
  example.state = "error";
  example.error = `${error?.name ?? "Error"}: ${error?.message ?? String(error)}`;
  elements.status.textContent = example.error;
  elements.write.disabled = loadedModel === null;
}

/** Streams one story, updating the tokens/s line at most once per frame. */
async function writeStory(model) {
  example.state = "generating";
  example.text = "";
  elements.write.disabled = true;
  elements.story.textContent = elements.prompt.value;
  elements.speed.textContent = "";
  const started = performance.now();
  let tokens = 0;
  let frame = 0;
  const showSpeed = () => {
    frame = 0;
    const seconds = (performance.now() - started) / 1000;
    elements.speed.textContent = `${tokens} tokens, ${(tokens / seconds).toFixed(0)} tokens/s`;
  };
  const pieces = model.generate(elements.prompt.value, { maxTokens, seed });
  let step;
  while (!(step = await pieces.next()).done) {
    tokens++;
    example.text += step.value.text;
    elements.story.append(step.value.text);
    frame ||= requestAnimationFrame(showSpeed);
  }
  cancelAnimationFrame(frame);
  const summary = step.value;
  example.summary = { generatedTokens: summary.generatedTokens, tokensPerSecond: summary.tokensPerSecond, stopReason: summary.stopReason };
  elements.speed.textContent =
    `${summary.generatedTokens} tokens, ${summary.tokensPerSecond.toFixed(0)} tokens/s in the worker ` +
    `(${model.kernels}, ${model.precision}, ${example.threads} threads); stopped at ${summary.stopReason === "eos" ? "the end of the story" : summary.stopReason.replace("_", " ")}`;
  example.state = "done";
  elements.write.disabled = false;
}

async function start() {
  // two threads where the page is cross-origin isolated (serve.mjs sends the headers), else one
  const model = await loadModel(modelUrl, { worker: true, threads: 2, onProgress: showProgress });
  example.kernels = model.kernels;
  example.threads = model.stats().threads;
  elements.progress.value = 1;
  elements.status.textContent = `Loaded ${model.source.split("/").pop()}: ${model.config.n_layers} layers, dim ${model.config.dim}, ` +
    `vocabulary of ${model.config.vocab_size} tokens`;
  example.state = "ready";
  loadedModel = model;
  elements.form.addEventListener("submit", (event) => {
    event.preventDefault();
    writeStory(model).catch(fail);
  });
  await writeStory(model);
}

start().catch(fail);
