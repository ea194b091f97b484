// The computation every host runs, in plain JavaScript so Node, Deno, pages and workers share it.
// It continues the prompt greedily over POSITIONS positions and hashes the logits with Web Crypto.

export const PROMPT = "Once upon a time";
export const POSITIONS = 64;

function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Runs POSITIONS positions: prompt tokens first, then each position's argmax. */
async function greedy(model) {
  const prompt = model.tokenize(PROMPT);
  const vocabSize = model.config.vocab_size;
  // Little-endian on every host, whatever the machine's byte order.
  const bytes = new Uint8Array(POSITIONS * vocabSize * 4);
  const view = new DataView(bytes.buffer);
  const ids = [prompt[0]];
  for (let pos = 0; pos < POSITIONS; pos++) {
    const logits = model.step(ids[pos], pos);
    for (let i = 0; i < vocabSize; i++) view.setFloat32((pos * vocabSize + i) * 4, logits[i], true);
    ids.push(pos + 1 < prompt.length ? prompt[pos + 1] : argmax(logits));
  }
  return { ids, sha256: await sha256Hex(bytes), text: model.detokenize(ids) };
}

/** Loads `source` three times (f32 exact, int8 exact, int8 auto) and returns what each computed. */
export async function probeHost(dormant, source, host) {
  const progress = [];
  const started = Date.now();
  const f32Model = await dormant.loadModel(source, { precision: "f32", kernels: "exact", onProgress: (p) => progress.push({ ...p }) });
  const f32 = await greedy(f32Model);
  f32Model.dispose();
  const int8Model = await dormant.loadModel(source, { precision: "int8", kernels: "exact" });
  const int8 = await greedy(int8Model);
  int8Model.dispose();
  const autoModel = await dormant.loadModel(source, { precision: "int8", kernels: "auto" });
  const auto = { variant: autoModel.kernels, dots: autoModel.stats().dots ?? null, ...(await greedy(autoModel)) };
  autoModel.dispose();
  let scope = "node";
  if (typeof WorkerGlobalScope === "function" && globalThis instanceof WorkerGlobalScope) scope = "worker";
  else if (typeof Deno === "object") scope = "deno";
  else if (typeof document === "object") scope = "page";
  return { host, scope, f32, int8, auto, progress, milliseconds: Date.now() - started };
}
