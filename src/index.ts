// The public API of dormant. Anything not exported here is internal and may change.

export { loadModel, createModel, Model } from "./model.js";
export type { LayerStats, LoadOptions, LoadProgress, ModelStats, Precision, RuntimeSparsity, SparsityMode, TraceStep } from "./model.js";
export type { GenerateOptions, GeneratedPiece, GenerationSummary } from "./generate.js";
export type { SamplerOptions } from "./sampler.js";
export { chatPrompt, renderChat, FALLBACK_CHAT_TEMPLATE } from "./chat.js";
export type { ChatFormat, ChatMessage, ChatOptions, ChatPrompt, ChatSummary, RenderChatOptions } from "./chat.js";
export { evaluate, splitDocuments } from "./eval/perplexity.js";
export type { EvaluateOptions, EvaluateResult } from "./eval/perplexity.js";
export { readModelFile } from "./formats/index.js";
export { calibrate, collectActivations, fitSparsity, measureSparsity } from "./sparsity/calibrate.js";
export type { CalibrateOptions, LayerSparsity } from "./sparsity/calibrate.js";
export { readSparsity, writeSparsityGGUF } from "./sparsity/format.js";
export type { SparsityData } from "./sparsity/format.js";
export { parseGGUF, writeGGUF } from "./gguf.js";
export { convertToGGUF } from "./convert.js";
export { resolveModel, loadCatalog } from "./catalog.js";
export { SpmTokenizer } from "./tokenizer/spm.js";
export { createTokenizer, loadTokenizer, type DecodeOptions, type EncodeOptions, type Tokenizer } from "./tokenizer/index.js";
export { DormantError, FormatError, OptionError, WasmError, ModelSourceError } from "./errors.js";
export { listCachedModels, deleteCachedModel, clearModelCache, MODEL_CACHE_NAME } from "./model-cache-api.js";
export type { CachedModel } from "./model-cache-api.js";
export { WorkerModel } from "./worker.js";
export type { WorkerLoadOptions } from "./worker.js";
export type { LlamaConfig, ModelFile, TensorData, Vocab } from "./types.js";
export type { KernelChoice, KernelVariant } from "./wasm.js";
export { SYNTHETIC_SHAPES, syntheticModel } from "./synthetic.js";
export type { SyntheticShape } from "./synthetic.js";
