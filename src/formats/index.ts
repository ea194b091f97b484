/**
 * Entry point of the model-file readers: format detection and the tensor checks that every
 * format shares. Tensors use GGUF names and GGUF dims order (dims[0] = row length).
 */

import { formatMismatch, optionMismatch } from "../errors.js";
import { ggufToModelFile, hasGGUFMagic, parseGGUF } from "../gguf.js";
import type { LlamaConfig, ModelFile } from "../types.js";
import { checkLlama2cHeader, readLlama2cCheckpoint } from "./llama2c.js";
import { readTokenizerBin } from "./tokenizer-bin.js";

const WHERE_LOAD = "loadModel";

type ConfigField = "dim" | "hidden_dim" | "n_layers" | "n_heads" | "n_kv_heads" | "vocab_size" | "seq_len";

/** Names of the config fields as each format spells them, so messages can name the source of a value. */
function configLabels(file: ModelFile): Record<ConfigField, string> {
  if (file.format === "llama2c") {
    return {
      dim: "header dim", hidden_dim: "header hidden_dim", n_layers: "header n_layers", n_heads: "header n_heads",
      n_kv_heads: "header n_kv_heads", vocab_size: "header vocab_size", seq_len: "header seq_len",
    };
  }
  return {
    dim: "llama.embedding_length",
    hidden_dim: "llama.feed_forward_length",
    n_layers: "llama.block_count",
    n_heads: "llama.attention.head_count",
    n_kv_heads: "llama.attention.head_count_kv",
    vocab_size: file.vocab !== undefined ? "tokenizer.ggml.tokens count" : "token_embd.weight dims[1]",
    seq_len: "llama.context_length",
  };
}

/** One expected dimension and the config value that sets it. */
interface ExpectedDim {
  size: number;
  origin: string;
}

function checkConfig(file: ModelFile, labels: Record<ConfigField, string>): void {
  const config: LlamaConfig = file.config;
  const fail: (field: string, actual: string, expected: string) => never = (field, actual, expected) =>
    formatMismatch(WHERE_LOAD, { source: file.source, field, actual, expected });

  for (const field of Object.keys(labels) as ConfigField[]) {
    const value = config[field];
    if (!Number.isSafeInteger(value) || value < 1) fail(labels[field], String(value), "a positive integer");
  }
  if (config.dim % config.n_heads !== 0) {
    fail(labels.n_heads, String(config.n_heads), `a divisor of ${labels.dim} = ${config.dim}`);
  }
  if (config.n_heads % config.n_kv_heads !== 0) {
    fail(labels.n_kv_heads, String(config.n_kv_heads), `a divisor of ${labels.n_heads} = ${config.n_heads}`);
  }
  if (!(config.norm_eps > 0 && Number.isFinite(config.norm_eps))) fail("norm_eps", String(config.norm_eps), "a positive finite number");
  if (!(config.rope_theta > 0 && Number.isFinite(config.rope_theta))) fail("rope_theta", String(config.rope_theta), "a positive finite number");
}

/** Lists every tensor a llama model needs, with its expected GGUF dims. */
function expectedTensors(file: ModelFile, labels: Record<ConfigField, string>): Map<string, ExpectedDim[]> {
  const { dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size } = file.config;
  const head_size = dim / n_heads;
  const kv_dim = n_kv_heads * head_size;
  const d: ExpectedDim = { size: dim, origin: `${labels.dim} = ${dim}` };
  const q: ExpectedDim = { size: n_heads * head_size, origin: `${labels.dim} = ${dim}` };
  const kv: ExpectedDim = {
    size: kv_dim,
    origin: `kv_dim = ${labels.n_kv_heads} × head_size = ${n_kv_heads} × ${head_size}`,
  };
  const hidden: ExpectedDim = { size: hidden_dim, origin: `${labels.hidden_dim} = ${hidden_dim}` };
  const vocab: ExpectedDim = { size: vocab_size, origin: `${labels.vocab_size} = ${vocab_size}` };

  const expected = new Map<string, ExpectedDim[]>([
    ["token_embd.weight", [d, vocab]],
    ["output_norm.weight", [d]],
  ]);
  // RoPE frequency factors (Llama 3.1 and later) are optional, one per rotated pair.
  if (file.tensors.has("rope_freqs.weight")) {
    expected.set("rope_freqs.weight", [{ size: head_size / 2, origin: `head_size / 2 = ${head_size / 2}` }]);
  }
  for (let layer = 0; layer < n_layers; layer++) {
    const prefix = `blk.${layer}.`;
    expected.set(`${prefix}attn_norm.weight`, [d]);
    expected.set(`${prefix}attn_q.weight`, [d, q]);
    expected.set(`${prefix}attn_k.weight`, [d, kv]);
    expected.set(`${prefix}attn_v.weight`, [d, kv]);
    expected.set(`${prefix}attn_output.weight`, [q, d]);
    expected.set(`${prefix}ffn_norm.weight`, [d]);
    if (file.config.gated !== false) expected.set(`${prefix}ffn_gate.weight`, [d, hidden]);
    // Q/K/V biases (Qwen2) are optional, but must fit when present.
    if (file.tensors.has(`${prefix}attn_q.bias`)) expected.set(`${prefix}attn_q.bias`, [q]);
    if (file.tensors.has(`${prefix}attn_k.bias`)) expected.set(`${prefix}attn_k.bias`, [kv]);
    if (file.tensors.has(`${prefix}attn_v.bias`)) expected.set(`${prefix}attn_v.bias`, [kv]);
    expected.set(`${prefix}ffn_up.weight`, [d, hidden]);
    expected.set(`${prefix}ffn_down.weight`, [hidden, d]);
  }
  return expected;
}

function describeShape(dims: readonly number[]): string {
  return `[${dims.join(", ")}]`;
}

/**
 * Checks the config for sanity and every tensor of a llama model against it: presence, and
 * shape in GGUF order. `output.weight` is optional (absent means tied to token_embd), and no
 * `blk.N.*` tensor may name a layer beyond n_layers. Other extra tensors are allowed.
 */
export function validateModelTensors(file: ModelFile): void {
  const labels = configLabels(file);
  checkConfig(file, labels);
  const fail: (field: string, actual: string, expected: string, cause?: string) => never = (field, actual, expected, cause) =>
    formatMismatch(WHERE_LOAD, { source: file.source, field, actual, expected }, cause);

  const expected = expectedTensors(file, labels);
  const embedding = expected.get("token_embd.weight")!;
  if (file.tensors.has("output.weight")) expected.set("output.weight", embedding);

  for (const [name, dims] of expected) {
    const sizes = dims.map((dim) => dim.size);
    const tensor = file.tensors.get(name);
    if (tensor === undefined) {
      fail(`tensor ${name}`, "missing", `a tensor of shape ${describeShape(sizes)}`, `the file has ${file.tensors.size} tensors`);
    }
    const matches = tensor.dims.length === sizes.length && tensor.dims.every((size, i) => size === sizes[i]);
    if (!matches) {
      const wrong = tensor.dims.length === sizes.length ? dims.filter((dim, i) => tensor.dims[i] !== dim.size) : dims;
      const origins = [...new Set(wrong.map((dim) => dim.origin))].join(" and ");
      fail(`tensor ${name} shape`, describeShape(tensor.dims), `${describeShape(sizes)} from ${origins}`);
    }
  }

  for (const name of file.tensors.keys()) {
    const layer = /^blk\.(\d+)\./.exec(name);
    if (layer !== null && Number(layer[1]) >= file.config.n_layers) {
      fail(`tensor ${name}`, "present", `layers 0..${file.config.n_layers - 1} only from ${labels.n_layers} = ${file.config.n_layers}`);
    }
  }
}

/** Describes the first 4 bytes as hex and text, for messages about unrecognized files. */
function describeMagic(bytes: Uint8Array): string {
  const head = bytes.subarray(0, 4);
  const hex = Array.from(head, (b) => b.toString(16).padStart(2, "0")).join(" ");
  const text = Array.from(head, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
  return `${hex} ("${text}")`;
}

/**
 * Reads a model file: GGUF when the bytes start with "GGUF", else a llama2.c version-0
 * checkpoint, with its vocabulary from an optional llama2.c tokenizer.bin.
 */
export function readModelFile(bytes: Uint8Array, source: string, tokenizer?: { bytes: Uint8Array; source: string }): ModelFile {
  if (bytes.length === 0) formatMismatch("readModelFile", { source, field: "file", actual: "empty (0 bytes)", expected: "a GGUF or llama2.c model" });
  if (hasGGUFMagic(bytes)) {
    if (tokenizer !== undefined) {
      optionMismatch("readModelFile", {
        source: tokenizer.source,
        field: "tokenizer",
        actual: "given for a GGUF model",
        expected: `none, because ${source} carries its own vocabulary`,
      });
    }
    return ggufToModelFile(parseGGUF(bytes, source), source);
  }

  const problem = checkLlama2cHeader(bytes);
  if (problem !== undefined) {
    formatMismatch(
      "readModelFile",
      { source, field: "magic", actual: describeMagic(bytes), expected: `"GGUF" or a plausible llama2.c v0 checkpoint header` },
      `neither format: as a llama2.c header, ${problem.field} is ${problem.actual}, expected ${problem.expected}`,
    );
  }

  const file = readLlama2cCheckpoint(bytes, source);
  if (tokenizer !== undefined) {
    file.vocab = readTokenizerBin(tokenizer.bytes, tokenizer.source, file.config.vocab_size);
  }
  return file;
}
