// The public API of dormant. Anything not exported here is internal and may change.

export { loadModel, createModel, Model } from "./model.js";
export type { LoadOptions, LoadProgress, ModelStats, Precision } from "./model.js";
export type { GenerateOptions, GeneratedPiece, GenerationSummary } from "./generate.js";
export type { SamplerOptions } from "./sampler.js";
export { evaluate, splitDocuments } from "./eval/perplexity.js";
export type { EvaluateOptions, EvaluateResult } from "./eval/perplexity.js";
export { readModelFile } from "./formats/index.js";
export { parseGGUF, writeGGUF } from "./gguf.js";
export { convertToGGUF } from "./convert.js";
export { resolveModel, loadCatalog } from "./catalog.js";
export { SpmTokenizer } from "./tokenizer/spm.js";
export { DormantError, FormatError, OptionError, WasmError, ModelSourceError } from "./errors.js";
export type { LlamaConfig, ModelFile, TensorData, Vocab } from "./types.js";
export type { KernelChoice, KernelVariant } from "./wasm.js";
