/**
 * Placement of a parsed model file in wasm memory. It computes the byte budget of the runtime
 * layout and copies every tensor into the arena: as f32, as int8 blocks of 4 interleaved rows,
 * or as neuron-major FFN bundles with the sparsity predictor.
 */

import { FormatError, WasmError } from "./errors.js";
import { interleaveQ8Rows, paddedRows } from "./layout.js";
import { decodeQ8_0Blocks, decodeQ8_0Interleaved, quantizeQ8_0, tensorToF32 } from "./quant.js";
import { GGMLType, type LlamaConfig, type ModelFile, type TensorData } from "./types.js";
import type { DormantExports } from "./wasm.js";
import type { LoadProgress, Precision, RuntimeSparsity } from "./model.js";

/** The wasm32 address space: 65536 pages of 64 KiB. */
export const WASM_MEMORY_LIMIT = 4 * 1024 ** 3;

/** Weight slots of assembly/model/weights.ts, in the same numbering. */
export enum Slot {
  TOKEN_EMBD = 0, OUTPUT = 1, OUTPUT_NORM = 2, ATTN_NORM = 3, ATTN_Q = 4, ATTN_K = 5,
  ATTN_V = 6, ATTN_OUTPUT = 7, FFN_NORM = 8, FFN_GATE = 9, FFN_UP = 10, FFN_DOWN = 11,
  ATTN_Q_BIAS = 12, ATTN_K_BIAS = 13, ATTN_V_BIAS = 14, ROPE_FREQS = 15,
}

const layerMatrices: Array<[Slot, string]> = [
  [Slot.ATTN_Q, "attn_q"], [Slot.ATTN_K, "attn_k"], [Slot.ATTN_V, "attn_v"],
  [Slot.ATTN_OUTPUT, "attn_output"], [Slot.FFN_GATE, "ffn_gate"], [Slot.FFN_UP, "ffn_up"],
  [Slot.FFN_DOWN, "ffn_down"],
];

export const pad32 = (n: number): number => Math.ceil(n / 32) * 32;

const align64 = (n: number): number => Math.ceil(n / 64) * 64;

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

/** Bytes one matrix of (rows, cols) takes in the runtime layout. */
function matrixBytes(rows: number, cols: number, precision: Precision): number {
  if (precision === "f32") return align64(rows * cols * 4);
  const groupRows = paddedRows(rows);
  return align64(groupRows * pad32(cols)) + align64((groupRows * pad32(cols)) / 32 * 4);
}

/** Bytes of the scales after one bundle row: pad32(dim) / 32 f32, padded to 16 bytes. */
function bundleScaleBytes(dim: number): number {
  return Math.ceil(((pad32(dim) / 32) * 4) / 16) * 16;
}

/** Bytes of one neuron bundle; assembly/model/sparse.ts defines the layout. */
function bundleStride(dim: number): number {
  return align64(3 * pad32(dim) + 2 * bundleScaleBytes(dim));
}

/** Bytes of one layer's FFN as bundles plus down-column scales. */
function bundleBytes(config: LlamaConfig): number {
  return align64(pad32(config.hidden_dim) * bundleStride(config.dim)) +
    align64((pad32(config.hidden_dim) / 32) * pad32(config.dim) * 4);
}

/** Bytes of one layer's predictor of rank r: P_down and P_up, both int8 in the runtime layout. */
function predictorBytes(config: LlamaConfig, rank: number): number {
  return matrixBytes(rank, config.dim, "int8") + matrixBytes(config.hidden_dim, rank, "int8");
}

/** Bytes of all weights of `config` in the runtime layout. */
export function weightBytes(config: LlamaConfig, precision: Precision, tied: boolean, bundles = false, rank = 0): number {
  const { dim, hidden_dim, n_layers, n_heads, vocab_size } = config;
  const kvDim = (dim / n_heads) * config.n_kv_heads;
  const ffnMatrices = config.gated === false ? 2 : 3;
  const ffn = bundles
    ? bundleBytes(config) + (rank > 0 ? predictorBytes(config, rank) : 0)
    : matrixBytes(hidden_dim, dim, precision) * (ffnMatrices - 1) + matrixBytes(dim, hidden_dim, precision);
  const perLayer =
    // norms, plus room for the optional Q/K/V biases
    2 * align64(dim * 4) + align64(dim * 4) + 2 * align64(kvDim * 4) +
    matrixBytes(dim, dim, precision) * 2 +
    matrixBytes(kvDim, dim, precision) * 2 +
    ffn;
  const embedding = matrixBytes(vocab_size, dim, precision);
  // output norm, plus room for the optional RoPE frequency factors (head_size / 2 f32)
  return n_layers * perLayer + embedding * (tied ? 1 : 2) + align64(dim * 4) + align64((dim / n_heads) * 2);
}

/**
 * Returns the index of the first NaN or infinity in values, or -1. x - x is 0 for every finite
 * x and NaN otherwise, so one subtraction covers both.
 */
export function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (value - value !== 0) return i;
  }
  return -1;
}

/** Replaces -128 by -127 in place. */
function clampMinimumQuant(quants: Int8Array): void {
  for (let i = 0; i < quants.length; i++) if (quants[i] === -128) quants[i] = -127;
}

/** Places every tensor of `file` into the wasm arena and registers it. */
export function placeWeights(
  file: ModelFile, wasm: DormantExports, precision: Precision, bundles: boolean,
  sparsity: RuntimeSparsity | null, onProgress?: (p: LoadProgress) => void,
): void {
  const { config, tensors, source } = file;
  const gated = config.gated !== false;
  const total = tensors.size;
  let placed = 0;

  const need = (name: string): TensorData => {
    const tensor = tensors.get(name);
    if (!tensor) {
      throw new FormatError(`loadModel: ${source}: tensor ${name} is missing, expected it in a ${config.architecture} model`, {
        source, field: name, actual: "missing", expected: "present",
      });
    }
    return tensor;
  };

  // A NaN or infinite weight makes every later activation NaN, so the model would print garbage
  // with no error. Each tensor is checked as it is placed: its f32 values, or for Q8_0 its block
  // scales (the quants are integers). `kind` names the checked numbers in the message.
  const requireFinite = (values: Float32Array, name: string, kind: string): Float32Array => {
    const index = firstNonFinite(values);
    if (index < 0) return values;
    let count = 0;
    for (let i = index; i < values.length; i++) if (values[i] - values[i] !== 0) count++;
    const found = `${count} non-finite ${kind}${count === 1 ? "" : "s"}`;
    throw new FormatError(
      `loadModel: ${source}: tensor ${name} has ${found} (the first, at index ${index}, is ${values[index]}), expected finite numbers (the file may be damaged)`,
      { source, field: name, actual: found, expected: "finite numbers" },
    );
  };

  const allocOrThrow = (bytes: number, name: string): number => {
    const pointer = wasm.alloc(bytes) >>> 0;
    if (pointer === 0) {
      throw new WasmError(`loadModel: ${source}: arena budget exceeded while placing ${name} (${bytes} bytes), expected the precomputed budget to hold every tensor`, {
        source, field: name, actual: `${bytes} bytes`, expected: "within budget",
      });
    }
    return pointer;
  };

  const placeVector = (slot: Slot, layer: number, name: string): void => {
    const values = requireFinite(tensorToF32(need(name)), name, "value");
    const pointer = allocOrThrow(values.byteLength, name);
    new Float32Array(wasm.memory.buffer, pointer, values.length).set(values);
    wasm.setWeight(slot, layer, pointer, 0);
    onProgress?.({ phase: "place", loaded: ++placed, total });
  };

  const placeMatrix = (slot: Slot, layer: number, name: string): [number, number] => {
    const tensor = need(name);
    const cols = tensor.dims[0];
    const rows = tensor.dims[1] ?? 1;
    if (precision === "f32") {
      const values = requireFinite(tensorToF32(tensor), name, "value");
      const pointer = allocOrThrow(values.byteLength, name);
      new Float32Array(wasm.memory.buffer, pointer, values.length).set(values);
      wasm.setWeight(slot, layer, pointer, 0);
      onProgress?.({ phase: "place", loaded: ++placed, total });
      return [pointer, 0];
    }
    // Q8_0 files already hold our blocks: they go into wasm memory in one pass. The relaxed-SIMD
    // kernel negates weights, so -128 must not occur. ggml's quantizer never writes it
    // (|x / d| <= 127), but other writers may; clamping moves such a weight by one step.
    if (tensor.type === GGMLType.Q8_0 && cols % 32 === 0) {
      const groupRows = paddedRows(rows);
      const quantPointer = allocOrThrow(groupRows * cols, name);
      const scalePointer = allocOrThrow(groupRows * (cols / 32) * 4, `${name} scales`);
      // the arena hands out zeroed memory, so the padding rows stay zero
      const scales = new Float32Array(wasm.memory.buffer, scalePointer, groupRows * (cols / 32));
      decodeQ8_0Interleaved(tensor.data, cols, rows, new Int8Array(wasm.memory.buffer, quantPointer, groupRows * cols), scales);
      requireFinite(scales, name, "block scale");
      wasm.setWeight(slot, layer, quantPointer, scalePointer);
      onProgress?.({ phase: "place", loaded: ++placed, total });
      return [quantPointer, scalePointer];
    }
    // anything else is quantized with the same rule
    const blocks = quantizeQ8_0(requireFinite(tensorToF32(tensor), name, "value"), cols, rows);
    const runtime = interleaveQ8Rows(blocks.quants, blocks.scales, rows, pad32(cols));
    const quantPointer = allocOrThrow(runtime.quants.byteLength, name);
    new Int8Array(wasm.memory.buffer, quantPointer, runtime.quants.length).set(runtime.quants);
    const scalePointer = allocOrThrow(runtime.scales.byteLength, `${name} scales`);
    new Float32Array(wasm.memory.buffer, scalePointer, runtime.scales.length).set(runtime.scales);
    wasm.setWeight(slot, layer, quantPointer, scalePointer);
    onProgress?.({ phase: "place", loaded: ++placed, total });
    return [quantPointer, scalePointer];
  };

  const [embeddingData, embeddingScales] = placeMatrix(Slot.TOKEN_EMBD, 0, "token_embd.weight");
  if (tensors.has("output.weight")) {
    placeMatrix(Slot.OUTPUT, 0, "output.weight");
  } else {
    // Tied classifier: the same rows serve the embedding lookup and the logits.
    wasm.setWeight(Slot.OUTPUT, 0, embeddingData, embeddingScales);
  }
  placeVector(Slot.OUTPUT_NORM, 0, "output_norm.weight");
  // Llama 3.1+ files carry per-pair RoPE frequency factors.
  if (tensors.has("rope_freqs.weight")) placeVector(Slot.ROPE_FREQS, 0, "rope_freqs.weight");
  /** Quantizes a tensor to row-major Q8_0 (rows, pad32(cols)) with the load-time rule. */
  const rowMajorQ8 = (name: string): { quants: Int8Array; scales: Float32Array; rows: number; cols: number } => {
    const tensor = need(name);
    const cols = tensor.dims[0];
    const rows = tensor.dims[1] ?? 1;
    const fromFile = tensor.type === GGMLType.Q8_0 && cols % 32 === 0;
    const blocks = fromFile
      ? decodeQ8_0Blocks(tensor.data, cols, rows)
      : quantizeQ8_0(requireFinite(tensorToF32(tensor), name, "value"), cols, rows);
    if (fromFile) {
      requireFinite(blocks.scales, name, "block scale");
      clampMinimumQuant(blocks.quants);
    }
    return { quants: blocks.quants, scales: blocks.scales, rows, cols: pad32(cols) };
  };

  /** Places the FFN of layer l as neuron-major bundles (layout in assembly/model/sparse.ts). */
  const placeBundles = (l: number): void => {
    const dimPad = pad32(config.dim);
    const hiddenPad = pad32(config.hidden_dim);
    const stride = wasm.bundleStride();
    const blocksPerRow = dimPad / 32;
    // section offsets: gate row, its scales, up row, its scales, down column
    const upAt = dimPad + bundleScaleBytes(config.dim);
    const downAt = 2 * upAt;
    const gate = rowMajorQ8(`blk.${l}.${gated ? "ffn_gate" : "ffn_up"}.weight`);
    const up = gated ? rowMajorQ8(`blk.${l}.ffn_up.weight`) : null;
    const down = rowMajorQ8(`blk.${l}.ffn_down.weight`);
    const bundlePointer = allocOrThrow(hiddenPad * stride, `blk.${l} bundles`);
    const bytes = new Uint8Array(wasm.memory.buffer, bundlePointer, hiddenPad * stride);
    const view = new DataView(wasm.memory.buffer, bundlePointer, hiddenPad * stride);
    const quantBytes = (values: Int8Array) => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    const gateBytes = quantBytes(gate.quants);
    const upBytes = up ? quantBytes(up.quants) : null;
    for (let j = 0; j < config.hidden_dim; j++) {
      const at = j * stride;
      bytes.set(gateBytes.subarray(j * dimPad, (j + 1) * dimPad), at);
      if (upBytes) bytes.set(upBytes.subarray(j * dimPad, (j + 1) * dimPad), at + upAt);
      for (let i = 0; i < config.dim; i++) bytes[at + downAt + i] = down.quants[i * down.cols + j] & 0xff;
      for (let b = 0; b < blocksPerRow; b++) {
        view.setFloat32(at + dimPad + b * 4, gate.scales[j * blocksPerRow + b], true);
        if (up) view.setFloat32(at + upAt + dimPad + b * 4, up.scales[j * blocksPerRow + b], true);
      }
    }
    // down scales: (hidden_pad / 32, dim_pad), scale of output i for neuron block b
    const downBlocks = hiddenPad / 32;
    const scalePointer = allocOrThrow(downBlocks * dimPad * 4, `blk.${l} down scales`);
    const scales = new Float32Array(wasm.memory.buffer, scalePointer, downBlocks * dimPad);
    for (let b = 0; b < downBlocks; b++) {
      for (let i = 0; i < config.dim; i++) scales[b * dimPad + i] = down.scales[i * downBlocks + b];
    }
    wasm.setBundles(l, bundlePointer, scalePointer);
    onProgress?.({ phase: "place", loaded: (placed += gated ? 3 : 2), total });
  };

  /** Places layer l's predictor, threshold and cutoff. */
  const placeSparsity = (l: number, data: RuntimeSparsity): void => {
    const rank = data.rank;
    const dimPad = pad32(config.dim);
    requireFinite(data.predictorDown[l], `blk.${l}.ffn_pred_down.weight`, "value");
    requireFinite(data.predictorUp[l], `blk.${l}.ffn_pred_up.weight`, "value");
    const down = quantizeQ8_0(data.predictorDown[l], config.dim, rank);
    const runtime = interleaveQ8Rows(down.quants, down.scales, rank, dimPad);
    const quantPointer = allocOrThrow(runtime.quants.byteLength, `blk.${l}.ffn_pred_down`);
    new Int8Array(wasm.memory.buffer, quantPointer, runtime.quants.length).set(runtime.quants);
    const scalePointer = allocOrThrow(runtime.scales.byteLength, `blk.${l}.ffn_pred_down scales`);
    new Float32Array(wasm.memory.buffer, scalePointer, runtime.scales.length).set(runtime.scales);
    // P_up as int8 rows of pad32(rank), its scales after the 64-aligned quants
    const up = quantizeQ8_0(data.predictorUp[l], rank, config.hidden_dim);
    const upRuntime = interleaveQ8Rows(up.quants, up.scales, config.hidden_dim, pad32(rank));
    const upScalesAt = align64(upRuntime.quants.byteLength);
    const upPointer = allocOrThrow(upScalesAt + upRuntime.scales.byteLength, `blk.${l}.ffn_pred_up`);
    new Int8Array(wasm.memory.buffer, upPointer, upRuntime.quants.length).set(upRuntime.quants);
    new Float32Array(wasm.memory.buffer, upPointer + upScalesAt, upRuntime.scales.length).set(upRuntime.scales);
    wasm.setSparsity(l, quantPointer, scalePointer, upPointer, rank, data.thresholds[l], data.cutoffs[l]);
  };

  for (let l = 0; l < config.n_layers; l++) {
    placeVector(Slot.ATTN_NORM, l, `blk.${l}.attn_norm.weight`);
    placeVector(Slot.FFN_NORM, l, `blk.${l}.ffn_norm.weight`);
    for (const [slot, short] of [[Slot.ATTN_Q_BIAS, "attn_q"], [Slot.ATTN_K_BIAS, "attn_k"], [Slot.ATTN_V_BIAS, "attn_v"]] as const) {
      if (tensors.has(`blk.${l}.${short}.bias`)) placeVector(slot, l, `blk.${l}.${short}.bias`);
    }
    for (const [slot, short] of layerMatrices) {
      if (slot === Slot.FFN_GATE || slot === Slot.FFN_UP || slot === Slot.FFN_DOWN) continue;
      placeMatrix(slot, l, `blk.${l}.${short}.weight`);
    }
    if (bundles) {
      placeBundles(l);
      if (sparsity) placeSparsity(l, sparsity);
    } else {
      // a non-gated FFN registers its up matrix as the gate: the kernel applies act() to it
      placeMatrix(Slot.FFN_GATE, l, `blk.${l}.${gated ? "ffn_gate" : "ffn_up"}.weight`);
      if (gated) placeMatrix(Slot.FFN_UP, l, `blk.${l}.ffn_up.weight`);
      placeMatrix(Slot.FFN_DOWN, l, `blk.${l}.ffn_down.weight`);
    }
  }
}

