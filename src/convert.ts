/**
 * Conversion of a loaded model (GGUF or llama2.c) to a GGUF v3 file that dormant and llama.cpp
 * both load: llama.* hyperparameters, tokenizer.ggml.* vocabulary, and F32 or Q8_0 tensors.
 */

import { optionMismatch } from "./errors.js";
import { checkOptionKeys } from "./options.js";
import { FFN_ACTIVATION_KEY, GGUFValueType, writeGGUF, type GGUFMetadataEntry, type GGUFValue } from "./gguf.js";
import { encodeQ8_0Blocks, quantizeQ8_0, Q8_0_BLOCK_VALUES, tensorToF32 } from "./quant.js";
import { GGMLType, type ModelFile, type TensorData } from "./types.js";

/** Options of convertToGGUF. */
export interface ConvertOptions {
  /** Tensor type: "f32" keeps every tensor F32, and "q8_0" stores 2-D matrices with rows of a multiple of 32 as Q8_0. */
  type: "f32" | "q8_0";
}

/** Keys of ConvertOptions; tsc rejects a list that differs from the interface. */
const CONVERT_OPTION_KEYS = { type: true } as const satisfies Record<keyof ConvertOptions, true>;

/** llama.cpp's llama_ftype values for general.file_type. */
const FILE_TYPE = { f32: 0, q8_0: 7 } as const;
/** ggml's quantization format version, written by llama.cpp for quantized files. */
const QUANTIZATION_VERSION = 2;

/** Keys that describe the source file's layout, so they are never copied from a GGUF source. */
const LAYOUT_KEYS = new Set(["general.alignment", "general.quantization_version"]);

function modelName(model: ModelFile): string {
  const stored = model.metadata.get("general.name") as GGUFValue | undefined;
  if (stored?.type === GGUFValueType.STRING) return stored.value as string;
  const base = model.source.split(/[\\/]/).pop() ?? model.source;
  return base.replace(/\.[^.]*$/, "") || "model";
}

function buildMetadata(model: ModelFile, options: ConvertOptions): GGUFMetadataEntry[] {
  const { config } = model;
  const vocab = model.vocab!;
  const u32 = (key: string, value: number): GGUFMetadataEntry => ({ key, type: GGUFValueType.UINT32, value });
  const f32 = (key: string, value: number): GGUFMetadataEntry => ({ key, type: GGUFValueType.FLOAT32, value });
  const metadata: GGUFMetadataEntry[] = [
    { key: "general.architecture", type: GGUFValueType.STRING, value: config.architecture },
    { key: "general.name", type: GGUFValueType.STRING, value: modelName(model) },
    u32("general.file_type", FILE_TYPE[options.type]),
  ];
  if (options.type === "q8_0") metadata.push(u32("general.quantization_version", QUANTIZATION_VERSION));
  if (config.activation !== "silu") metadata.push({ key: FFN_ACTIVATION_KEY, type: GGUFValueType.STRING, value: config.activation });
  metadata.push(
    u32(`${config.architecture}.context_length`, config.seq_len),
    u32(`${config.architecture}.embedding_length`, config.dim),
    u32(`${config.architecture}.block_count`, config.n_layers),
    u32(`${config.architecture}.feed_forward_length`, config.hidden_dim),
    u32(`${config.architecture}.rope.dimension_count`, config.dim / config.n_heads),
    u32(`${config.architecture}.attention.head_count`, config.n_heads),
    u32(`${config.architecture}.attention.head_count_kv`, config.n_kv_heads),
    f32(`${config.architecture}.attention.layer_norm_rms_epsilon`, config.norm_eps),
    f32(`${config.architecture}.rope.freq_base`, config.rope_theta),
    { key: "tokenizer.ggml.model", type: GGUFValueType.STRING, value: vocab.model },
    { key: "tokenizer.ggml.tokens", type: GGUFValueType.ARRAY, elementType: GGUFValueType.STRING, value: vocab.tokens },
    { key: "tokenizer.ggml.scores", type: GGUFValueType.ARRAY, elementType: GGUFValueType.FLOAT32, value: Array.from(vocab.scores) },
    { key: "tokenizer.ggml.token_type", type: GGUFValueType.ARRAY, elementType: GGUFValueType.INT32, value: Array.from(vocab.types) },
    u32("tokenizer.ggml.bos_token_id", vocab.bos_id),
    u32("tokenizer.ggml.eos_token_id", vocab.eos_id),
    { key: "tokenizer.ggml.add_bos_token", type: GGUFValueType.BOOL, value: vocab.add_bos },
    { key: "tokenizer.ggml.add_space_prefix", type: GGUFValueType.BOOL, value: vocab.add_space_prefix },
  );
  // Byte-level BPE vocabularies have no unknown token (unk_id -1), and llama.cpp omits the key then.
  if (vocab.unk_id >= 0) metadata.push(u32("tokenizer.ggml.unknown_token_id", vocab.unk_id));
  if (vocab.merges) {
    metadata.push({ key: "tokenizer.ggml.merges", type: GGUFValueType.ARRAY, elementType: GGUFValueType.STRING, value: vocab.merges });
  }
  if (vocab.pre) metadata.push({ key: "tokenizer.ggml.pre", type: GGUFValueType.STRING, value: vocab.pre });

  // Other keys of a GGUF source (license, chat template, dormant.* sparsity data) travel unchanged.
  const written = new Set(metadata.map((entry) => entry.key));
  for (const [key, value] of model.metadata) {
    if (written.has(key) || LAYOUT_KEYS.has(key)) continue;
    metadata.push({ key, ...(value as GGUFValue) });
  }
  return metadata;
}

/** Returns whether a tensor is stored as Q8_0 under the "q8_0" option. */
function isQuantizable(tensor: TensorData): boolean {
  return tensor.dims.length === 2 && tensor.dims[0] % Q8_0_BLOCK_VALUES === 0;
}

function convertTensor(tensor: TensorData, options: ConvertOptions): TensorData {
  if (options.type === "q8_0" && isQuantizable(tensor)) {
    // Requantizing Q8_0 could only lose precision, so its blocks are kept as they are.
    if (tensor.type === GGMLType.Q8_0) return tensor;
    const rowLength = tensor.dims[0];
    const rows = tensor.dims[1];
    const { quants, scales } = quantizeQ8_0(tensorToF32(tensor), rowLength, rows);
    return { name: tensor.name, dims: tensor.dims, type: GGMLType.Q8_0, data: encodeQ8_0Blocks(quants, scales) };
  }
  if (tensor.type === GGMLType.F32) return tensor;
  const values = tensorToF32(tensor);
  return { name: tensor.name, dims: tensor.dims, type: GGMLType.F32, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

/**
 * Converts a loaded model to GGUF v3 bytes. With "q8_0", 2-D matrices whose rows are a multiple
 * of 32 long become Q8_0 and the rest stay F32 (1-D norms, and rows like stories260K's
 * ffn_down, 172 long). Requires a vocabulary, because GGUF carries the tokenizer.
 */
export function convertToGGUF(model: ModelFile, options: ConvertOptions): Uint8Array {
  if (options === undefined) {
    optionMismatch("convertToGGUF", { source: "arguments", field: "options", actual: "undefined", expected: `an object such as { type: "q8_0" }` });
  }
  checkOptionKeys("convertToGGUF", options, CONVERT_OPTION_KEYS);
  if (options.type !== "f32" && options.type !== "q8_0") {
    optionMismatch("convertToGGUF", { source: "options", field: "type", actual: JSON.stringify(options.type), expected: `"f32" or "q8_0"` });
  }
  if (model.vocab === undefined) {
    optionMismatch(
      "convertToGGUF",
      { source: model.source, field: "vocabulary", actual: "missing", expected: "a vocabulary to store as tokenizer.ggml.*" },
      "a llama2.c checkpoint needs its tokenizer.bin",
    );
  }
  const metadata = buildMetadata(model, options);
  const tensors = [...model.tensors.values()].map((tensor) => convertTensor(tensor, options));
  return writeGGUF({ metadata, tensors });
}
