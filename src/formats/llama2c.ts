/**
 * Reader for llama2.c's legacy ("version 0") checkpoint, the `.bin` that `run.c` reads. It has no
 * magic. All numbers are little-endian:
 *
 *   +------------------------------------------------------------------------+
 *   | dim | hidden_dim | n_layers | n_heads | n_kv_heads | vocab_size | seq_len |  7 × int32
 *   +------------------------------------------------------------------------+
 *   | float32 arrays, row-major, matrices stored (out, in):                  |
 *   |   token_embedding (vocab_size, dim)                                    |
 *   |   rms_att (n_layers, dim)                                              |
 *   |   wq (n_layers, dim, dim)          wk (n_layers, kv_dim, dim)          |
 *   |   wv (n_layers, kv_dim, dim)       wo (n_layers, dim, dim)             |
 *   |   rms_ffn (n_layers, dim)                                              |
 *   |   w1 (n_layers, hidden_dim, dim)   w2 (n_layers, dim, hidden_dim)      |
 *   |   w3 (n_layers, hidden_dim, dim)                                       |
 *   |   rms_final (dim)                                                      |
 *   |   freq_cis_real (seq_len, head_size / 2)   legacy RoPE tables, skipped |
 *   |   freq_cis_imag (seq_len, head_size / 2)                               |
 *   |   wcls (vocab_size, dim)           only when vocab_size < 0            |
 *   +------------------------------------------------------------------------+
 *
 * A negative vocab_size marks a separate classifier. Otherwise the output shares token_embedding.
 * RoPE rotates adjacent pairs here, as in GGUF "llama" files, so Q and K need no permutation.
 */

import { formatMismatch } from "../errors.js";
import { GGMLType, type LlamaConfig, type ModelFile, type TensorData } from "../types.js";
import { validateModelTensors } from "./index.js";

const WHERE = "readLlama2cCheckpoint";
const HEADER_BYTES = 28;
const FLOAT_BYTES = 4;
/** llama2.c's export.py version 1 and 2 start with this uint32 ("ak42"). */
const LLAMA2C_V1_MAGIC = 0x616b3432;

/** Upper bounds that no real checkpoint exceeds, so a value above them means the file is something else. */
const HEADER_LIMITS = {
  dim: 65536,
  hidden_dim: 1 << 20,
  n_layers: 1024,
  n_heads: 1024,
  n_kv_heads: 1024,
  vocab_size: 1 << 22,
  seq_len: 1 << 20,
} as const;

/** A header value that is out of range, described for an error message. */
export interface HeaderProblem {
  field: string;
  actual: string;
  expected: string;
}

interface Header {
  dim: number;
  hidden_dim: number;
  n_layers: number;
  n_heads: number;
  n_kv_heads: number;
  vocab_size: number;
  seq_len: number;
  sharedClassifier: boolean;
}

function readHeader(bytes: Uint8Array): Header {
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const field = (i: number): number => view.getInt32(i * 4, true);
  const vocab = field(5);
  return {
    dim: field(0),
    hidden_dim: field(1),
    n_layers: field(2),
    n_heads: field(3),
    n_kv_heads: field(4),
    vocab_size: Math.abs(vocab),
    seq_len: field(6),
    sharedClassifier: vocab > 0,
  };
}

/** Checks that the 28-byte header is a plausible llama2.c v0 header and returns the first problem, if any. */
export function checkLlama2cHeader(bytes: Uint8Array): HeaderProblem | undefined {
  if (bytes.length < HEADER_BYTES) {
    return { field: "header", actual: `${bytes.length} bytes`, expected: `${HEADER_BYTES} bytes (7 int32)` };
  }
  const first = new DataView(bytes.buffer, bytes.byteOffset, 8);
  if (first.getUint32(0, true) === LLAMA2C_V1_MAGIC) {
    const version = first.getInt32(4, true);
    return { field: "magic", actual: `"ak42" (llama2.c export version ${version})`, expected: "a version 0 (legacy_export) checkpoint, which has no magic" };
  }

  const header = readHeader(bytes);
  for (const [name, limit] of Object.entries(HEADER_LIMITS) as Array<[keyof typeof HEADER_LIMITS, number]>) {
    const value = header[name];
    if (value < 1 || value > limit) return { field: name, actual: String(value), expected: `1..${limit}` };
  }
  if (header.dim % header.n_heads !== 0) {
    return { field: "n_heads", actual: String(header.n_heads), expected: `a divisor of dim = ${header.dim}` };
  }
  if (header.n_heads % header.n_kv_heads !== 0) {
    return { field: "n_kv_heads", actual: String(header.n_kv_heads), expected: `a divisor of n_heads = ${header.n_heads}` };
  }
  if ((header.dim / header.n_heads) % 2 !== 0) {
    return { field: "head_size", actual: String(header.dim / header.n_heads), expected: "an even number (RoPE rotates pairs)" };
  }
  return undefined;
}

/** One float32 array of the file, with its shape as stored (row-major, (out, in)). */
interface StoredArray {
  name: string;
  shape: number[];
}

function storedArrays(header: Header): StoredArray[] {
  const { dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len } = header;
  const head_size = dim / n_heads;
  const kv_dim = n_kv_heads * head_size;
  const arrays: StoredArray[] = [
    { name: "token_embedding", shape: [vocab_size, dim] },
    { name: "rms_att", shape: [n_layers, dim] },
    { name: "wq", shape: [n_layers, n_heads * head_size, dim] },
    { name: "wk", shape: [n_layers, kv_dim, dim] },
    { name: "wv", shape: [n_layers, kv_dim, dim] },
    { name: "wo", shape: [n_layers, dim, n_heads * head_size] },
    { name: "rms_ffn", shape: [n_layers, dim] },
    { name: "w1", shape: [n_layers, hidden_dim, dim] },
    { name: "w2", shape: [n_layers, dim, hidden_dim] },
    { name: "w3", shape: [n_layers, hidden_dim, dim] },
    { name: "rms_final", shape: [dim] },
    { name: "freq_cis_real", shape: [seq_len, head_size / 2] },
    { name: "freq_cis_imag", shape: [seq_len, head_size / 2] },
  ];
  if (!header.sharedClassifier) arrays.push({ name: "wcls", shape: [vocab_size, dim] });
  return arrays;
}

function arrayBytes(array: StoredArray): number {
  return array.shape.reduce((product, size) => product * size, FLOAT_BYTES);
}

/** Checks the file length against the header: names the first array cut short, or the surplus. */
function checkLength(bytes: Uint8Array, source: string, header: Header, arrays: StoredArray[]): void {
  const total = arrays.reduce((sum, array) => sum + arrayBytes(array), HEADER_BYTES);
  if (bytes.length < total) {
    let start = HEADER_BYTES;
    for (const array of arrays) {
      const need = arrayBytes(array);
      if (start + need > bytes.length) {
        formatMismatch(
          WHERE,
          {
            source,
            field: `array ${array.name} (${array.shape.join(" × ")} float32)`,
            actual: `${Math.max(0, bytes.length - start)} bytes present`,
            expected: `${need} bytes at byte ${start}`,
          },
          `truncated file: the header implies ${total} bytes, the file has ${bytes.length}`,
        );
      }
      start += need;
    }
  }
  if (bytes.length > total) {
    const surplus = bytes.length - total;
    const classifierBytes = header.vocab_size * header.dim * FLOAT_BYTES;
    const cause = header.sharedClassifier && surplus === classifierBytes
      ? "the surplus fits a separate classifier wcls, which llama2.c marks with a negative vocab_size"
      : "trailing bytes: a header that does not match the weights, or not a llama2.c v0 checkpoint";
    formatMismatch(
      WHERE,
      {
        source,
        field: "file length",
        actual: `${bytes.length} bytes`,
        expected: `${total} bytes from the header (dim ${header.dim}, hidden_dim ${header.hidden_dim}, n_layers ${header.n_layers}, vocab_size ${header.vocab_size}, seq_len ${header.seq_len})`,
      },
      cause,
    );
  }
}

/**
 * Reads a llama2.c version-0 checkpoint. Tensors get GGUF names and GGUF dims, as F32 views into
 * `bytes` (or into one copy of it when `bytes` is not 4-byte aligned). The legacy RoPE tables are
 * skipped. The result has no vocab: readModelFile adds one from a tokenizer.bin.
 */
export function readLlama2cCheckpoint(bytes: Uint8Array, source: string): ModelFile {
  const problem = checkLlama2cHeader(bytes);
  if (problem !== undefined) {
    formatMismatch(
      WHERE,
      { source, field: `header ${problem.field}`, actual: problem.actual, expected: problem.expected },
      "implausible header: not a llama2.c v0 checkpoint, or a big-endian one",
    );
  }
  const header = readHeader(bytes);
  const arrays = storedArrays(header);
  checkLength(bytes, source, header, arrays);

  const aligned = bytes.byteOffset % FLOAT_BYTES === 0 ? bytes : bytes.slice();
  const starts = new Map<string, number>();
  let start = HEADER_BYTES;
  for (const array of arrays) {
    starts.set(array.name, start);
    start += arrayBytes(array);
  }

  const tensors = new Map<string, TensorData>();
  // Slices one layer of a stored array. `dims` are GGUF dims (in, out), the reverse of the stored (out, in).
  const add = (name: string, arrayName: string, dims: number[], layer = 0): void => {
    const length = dims.reduce((product, size) => product * size, FLOAT_BYTES);
    const at = starts.get(arrayName)! + layer * length;
    tensors.set(name, { name, dims, type: GGMLType.F32, data: aligned.subarray(at, at + length) });
  };

  const { dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size } = header;
  const head_size = dim / n_heads;
  const kv_dim = n_kv_heads * head_size;
  add("token_embd.weight", "token_embedding", [dim, vocab_size]);
  add("output_norm.weight", "rms_final", [dim]);
  if (!header.sharedClassifier) add("output.weight", "wcls", [dim, vocab_size]);
  for (let layer = 0; layer < n_layers; layer++) {
    const prefix = `blk.${layer}.`;
    add(`${prefix}attn_q.weight`, "wq", [dim, n_heads * head_size], layer);
    add(`${prefix}attn_k.weight`, "wk", [dim, kv_dim], layer);
    add(`${prefix}attn_v.weight`, "wv", [dim, kv_dim], layer);
    add(`${prefix}attn_output.weight`, "wo", [n_heads * head_size, dim], layer);
    add(`${prefix}attn_norm.weight`, "rms_att", [dim], layer);
    add(`${prefix}ffn_gate.weight`, "w1", [dim, hidden_dim], layer);
    add(`${prefix}ffn_down.weight`, "w2", [hidden_dim, dim], layer);
    add(`${prefix}ffn_up.weight`, "w3", [dim, hidden_dim], layer);
    add(`${prefix}ffn_norm.weight`, "rms_ffn", [dim], layer);
  }

  // The file does not store norm_eps, rope_theta or the activation, because run.c fixes them.
  const config: LlamaConfig = {
    architecture: "llama",
    dim,
    hidden_dim,
    n_layers,
    n_heads,
    n_kv_heads,
    vocab_size,
    seq_len: header.seq_len,
    norm_eps: 1e-5,
    rope_theta: 10000,
    activation: "silu",
    gated: true,
    rope_type: "norm",
    rope_scaling_factor: 1,
  };
  const file: ModelFile = { source, format: "llama2c", config, tensors, metadata: new Map() };
  validateModelTensors(file);
  return file;
}
