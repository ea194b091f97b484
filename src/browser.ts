// The browser entry (dist/dormant.browser.js): the public API of index.ts without the parts that
// need a file system (the model catalog and its cache). loadModel takes a URL, Blob, File or bytes.

import type { evaluate as EvaluateFunction } from "./eval/perplexity.js";

export { loadModel, createModel, Model } from "./model.js";
export type { DotKind, LoadOptions, LoadProgress, ModelStats, Precision } from "./model.js";
export type { GenerateOptions, GeneratedPiece, GenerationSummary } from "./generate.js";
export type { SamplerOptions } from "./sampler.js";
export { splitDocuments } from "./eval/documents.js";
export type { EvaluateOptions, EvaluateResult } from "./eval/perplexity.js";
export { readModelFile } from "./formats/index.js";
export { parseGGUF, writeGGUF } from "./gguf.js";
export { convertToGGUF } from "./convert.js";
export { SpmTokenizer } from "./tokenizer/spm.js";
export { createTokenizer, loadTokenizer, type DecodeOptions, type EncodeOptions, type Tokenizer } from "./tokenizer/index.js";
export { DormantError, FormatError, OptionError, WasmError, ModelSourceError } from "./errors.js";
export { listCachedModels, deleteCachedModel, clearModelCache, MODEL_CACHE_NAME } from "./model-cache-api.js";
export type { CachedModel } from "./model-cache-api.js";
export { WorkerModel } from "./worker.js";
export type { WorkerLoadOptions } from "./worker.js";
export type { LlamaConfig, ModelFile, TensorData, Vocab } from "./types.js";
export type { ModelSource } from "./source.js";
export { setKernelModules } from "./wasm.js";
export type { KernelChoice, KernelModuleSource, KernelVariant } from "./wasm.js";

/**
 * Scores a text with a model (see src/eval/perplexity.ts). The evaluation code is a chunk loaded
 * on the first call, because most pages never evaluate and the startup JavaScript has a 100 KiB
 * budget.
 */
export async function evaluate(...args: Parameters<typeof EvaluateFunction>): ReturnType<typeof EvaluateFunction> {
  const { evaluate: run } = await import("./eval/perplexity.js");
  return run(...args);
}
