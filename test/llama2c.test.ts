import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FormatError, OptionError } from "../src/errors.js";
import { readModelFile } from "../src/formats/index.js";
import { readLlama2cCheckpoint } from "../src/formats/llama2c.js";
import { parseGGUF } from "../src/gguf.js";
import { tensorToF32 } from "../src/quant.js";
import { GGMLType } from "../src/types.js";

const BIN_PATH = fileURLToPath(new URL("../../shared/models/stories260K.bin", import.meta.url));
const TOKENIZER_PATH = fileURLToPath(new URL("../../shared/models/tok512.bin", import.meta.url));
const GGUF_PATH = fileURLToPath(new URL("../../shared/models/stories260K.gguf", import.meta.url));
const binBytes = new Uint8Array(readFileSync(BIN_PATH));
const tokenizerBytes = new Uint8Array(readFileSync(TOKENIZER_PATH));

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "dormant-llama2c-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function viaFile(name: string, bytes: Uint8Array): { path: string; bytes: Uint8Array } {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return { path, bytes: new Uint8Array(readFileSync(path)) };
}

function expectError(run: () => unknown, type: typeof FormatError | typeof OptionError, message: string): void {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(type);
  expect((caught as Error).message).toBe(message);
}

/** Builds a tiny llama2.c checkpoint: dim 8, hidden_dim 16, 1 layer, 2 heads, 1 kv head, vocab 4, seq_len 3. */
function tinyCheckpoint(separateClassifier: boolean): { bytes: Uint8Array; floats: Float32Array } {
  const dim = 8, hidden = 16, vocab = 4, seq = 3, headSize = 4, kvDim = 4;
  const counts = [vocab * dim, dim, dim * dim, kvDim * dim, kvDim * dim, dim * dim, dim, hidden * dim, dim * hidden, hidden * dim, dim, seq * headSize / 2, seq * headSize / 2];
  if (separateClassifier) counts.push(vocab * dim);
  const total = counts.reduce((a, b) => a + b, 0);
  const floats = Float32Array.from({ length: total }, (_, i) => i / 7);
  const bytes = new Uint8Array(28 + total * 4);
  const view = new DataView(bytes.buffer);
  [dim, hidden, 1, 2, 1, separateClassifier ? -vocab : vocab, seq].forEach((value, i) => view.setInt32(i * 4, value, true));
  bytes.set(new Uint8Array(floats.buffer), 28);
  return { bytes, floats };
}

describe("readLlama2cCheckpoint", () => {
  it("reads stories260K config", () => {
    const model = readLlama2cCheckpoint(binBytes, BIN_PATH);
    expect(model.format).toBe("llama2c");
    expect(model.config).toEqual({
      architecture: "llama",
      dim: 64,
      hidden_dim: 172,
      n_layers: 5,
      n_heads: 8,
      n_kv_heads: 4,
      vocab_size: 512,
      seq_len: 512,
      norm_eps: 1e-5,
      rope_theta: 10000,
      activation: "silu",
      gated: true,
      rope_type: "norm",
      rope_scaling_factor: 1,
    });
    expect(model.vocab).toBeUndefined();
    expect(model.metadata.size).toBe(0);
  });

  it("names tensors in GGUF form", () => {
    const model = readLlama2cCheckpoint(binBytes, BIN_PATH);
    expect(model.tensors.size).toBe(2 + 9 * 5);
    expect(model.tensors.has("output.weight")).toBe(false);
    expect(model.tensors.get("token_embd.weight")!.dims).toEqual([64, 512]);
    expect(model.tensors.get("blk.4.attn_k.weight")!.dims).toEqual([64, 32]);
    expect(model.tensors.get("blk.4.attn_output.weight")!.dims).toEqual([64, 64]);
    expect(model.tensors.get("blk.4.ffn_gate.weight")!.dims).toEqual([64, 172]);
    expect(model.tensors.get("blk.4.ffn_down.weight")!.dims).toEqual([172, 64]);
    for (const tensor of model.tensors.values()) {
      expect(tensor.type).toBe(GGMLType.F32);
      expect(tensor.data.buffer).toBe(binBytes.buffer);
    }
  });

  it("matches stories260K.gguf values", () => {
    const model = readLlama2cCheckpoint(binBytes, BIN_PATH);
    const gguf = parseGGUF(new Uint8Array(readFileSync(GGUF_PATH)), GGUF_PATH);
    for (const [name, reference] of gguf.tensors) {
      const ours = model.tensors.get(name === "output.weight" ? "token_embd.weight" : name)!;
      expect(ours.dims, name).toEqual(reference.dims);
      expect(Buffer.from(ours.data).equals(Buffer.from(reference.data)), name).toBe(true);
    }
  });

  it("reads first and last floats", () => {
    const model = readLlama2cCheckpoint(binBytes, BIN_PATH);
    const view = new DataView(binBytes.buffer, binBytes.byteOffset);
    expect(tensorToF32(model.tensors.get("token_embd.weight")!)[0]).toBe(view.getFloat32(28, true));
    // rms_final is the last array before the two legacy RoPE tables (512 × 4 floats each).
    const rmsFinalEnd = binBytes.length - 2 * 512 * 4 * 4;
    const outputNorm = tensorToF32(model.tensors.get("output_norm.weight")!);
    expect(outputNorm[63]).toBe(view.getFloat32(rmsFinalEnd - 4, true));
  });

  it("reads separate classifier", () => {
    const { bytes, floats } = tinyCheckpoint(true);
    const model = readLlama2cCheckpoint(bytes, "tiny.bin");
    expect(model.config.vocab_size).toBe(4);
    const output = tensorToF32(model.tensors.get("output.weight")!);
    expect(model.tensors.get("output.weight")!.dims).toEqual([8, 4]);
    expect(Array.from(output)).toEqual(Array.from(floats.subarray(floats.length - 32)));
  });

  it("copies unaligned bytes", () => {
    const { bytes, floats } = tinyCheckpoint(false);
    const shifted = new Uint8Array(bytes.length + 1).subarray(1);
    shifted.set(bytes);
    const model = readLlama2cCheckpoint(shifted, "tiny.bin");
    const embedding = model.tensors.get("token_embd.weight")!;
    expect(embedding.data.byteOffset % 4).toBe(0);
    expect(Array.from(tensorToF32(embedding))).toEqual(Array.from(floats.subarray(0, 32)));
    const q = tensorToF32(model.tensors.get("blk.0.attn_q.weight")!);
    expect(q[0]).toBe(floats[32 + 8]);
  });
});

describe("readModelFile llama2c", () => {
  it("adds tokenizer vocab", () => {
    const model = readModelFile(binBytes, BIN_PATH, { bytes: tokenizerBytes, source: TOKENIZER_PATH });
    expect(model.format).toBe("llama2c");
    expect(model.vocab!.tokens.length).toBe(512);
    expect(model.vocab!.tokens[259]).toBe("▁t");
    expect(model.vocab!.bos_id).toBe(1);
  });

  it("reads without tokenizer", () => {
    const model = readModelFile(binBytes, BIN_PATH);
    expect(model.vocab).toBeUndefined();
    expect(model.config.dim).toBe(64);
  });

  it("rejects tokenizer for GGUF", () => {
    const gguf = new Uint8Array(readFileSync(GGUF_PATH));
    expectError(
      () => readModelFile(gguf, GGUF_PATH, { bytes: tokenizerBytes, source: TOKENIZER_PATH }),
      OptionError,
      `readModelFile: ${TOKENIZER_PATH}: tokenizer is given for a GGUF model, expected none, because ${GGUF_PATH} carries its own vocabulary`,
    );
  });
});

describe("llama2c errors", () => {
  it("rejects truncated file", () => {
    // w1 starts at byte 28 + 4 × (512·64 + 5·64 + 5·64·64 + 2·5·32·64 + 5·64·64 + 5·64) = 379,420.
    const file = viaFile("cut.bin", binBytes.slice(0, 400_000));
    expectError(
      () => readModelFile(file.bytes, file.path),
      FormatError,
      `readLlama2cCheckpoint: ${file.path}: array w1 (5 × 172 × 64 float32) is 20580 bytes present, expected 220160 bytes at byte 379420 (truncated file: the header implies 1056540 bytes, the file has 400000)`,
    );
  });

  it("rejects file cut in RoPE tables", () => {
    const file = viaFile("cut-rope.bin", binBytes.slice(0, binBytes.length - 4));
    expectError(
      () => readLlama2cCheckpoint(file.bytes, file.path),
      FormatError,
      `readLlama2cCheckpoint: ${file.path}: array freq_cis_imag (512 × 4 float32) is 8188 bytes present, expected 8192 bytes at byte 1048348 (truncated file: the header implies 1056540 bytes, the file has 1056536)`,
    );
  });

  it("rejects trailing bytes", () => {
    const longer = new Uint8Array(binBytes.length + 12);
    longer.set(binBytes);
    const file = viaFile("long.bin", longer);
    expectError(
      () => readLlama2cCheckpoint(file.bytes, file.path),
      FormatError,
      `readLlama2cCheckpoint: ${file.path}: file length is 1056552 bytes, expected 1056540 bytes from the header (dim 64, hidden_dim 172, n_layers 5, vocab_size 512, seq_len 512) (trailing bytes: a header that does not match the weights, or not a llama2.c v0 checkpoint)`,
    );
  });

  it("hints at unmarked classifier", () => {
    const { bytes } = tinyCheckpoint(true);
    new DataView(bytes.buffer).setInt32(20, 4, true);
    const file = viaFile("unmarked.bin", bytes);
    expectError(
      () => readLlama2cCheckpoint(file.bytes, file.path),
      FormatError,
      `readLlama2cCheckpoint: ${file.path}: file length is ${bytes.length} bytes, expected ${bytes.length - 128} bytes from the header (dim 8, hidden_dim 16, n_layers 1, vocab_size 4, seq_len 3) (the surplus fits a separate classifier wcls, which llama2.c marks with a negative vocab_size)`,
    );
  });

  it("rejects implausible header", () => {
    const bytes = binBytes.slice();
    new DataView(bytes.buffer).setInt32(0, 1 << 24, true);
    const file = viaFile("dim.bin", bytes);
    expectError(
      () => readLlama2cCheckpoint(file.bytes, file.path),
      FormatError,
      `readLlama2cCheckpoint: ${file.path}: header dim is 16777216, expected 1..65536 (implausible header: not a llama2.c v0 checkpoint, or a big-endian one)`,
    );
  });

  it("rejects heads not dividing dim", () => {
    const bytes = binBytes.slice();
    new DataView(bytes.buffer).setInt32(12, 7, true);
    const file = viaFile("heads.bin", bytes);
    expectError(
      () => readLlama2cCheckpoint(file.bytes, file.path),
      FormatError,
      `readLlama2cCheckpoint: ${file.path}: header n_heads is 7, expected a divisor of dim = 64 (implausible header: not a llama2.c v0 checkpoint, or a big-endian one)`,
    );
  });

  it("rejects neither format", () => {
    const file = viaFile("text.bin", new TextEncoder().encode("Once upon a time, there was a file that was not a model at all."));
    expectError(
      () => readModelFile(file.bytes, file.path),
      FormatError,
      `readModelFile: ${file.path}: magic is 4f 6e 63 65 ("Once"), expected "GGUF" or a plausible llama2.c v0 checkpoint header (neither format: as a llama2.c header, dim is 1701015119, expected 1..65536)`,
    );
  });

  it("rejects empty file", () => {
    const file = viaFile("empty.bin", new Uint8Array(0));
    expectError(
      () => readModelFile(file.bytes, file.path),
      FormatError,
      `readModelFile: ${file.path}: file is empty (0 bytes), expected a GGUF or llama2.c model`,
    );
  });

  it("rejects short file", () => {
    const file = viaFile("short.bin", Uint8Array.of(1, 2, 3));
    expectError(
      () => readModelFile(file.bytes, file.path),
      FormatError,
      `readModelFile: ${file.path}: magic is 01 02 03 ("..."), expected "GGUF" or a plausible llama2.c v0 checkpoint header (neither format: as a llama2.c header, header is 3 bytes, expected 28 bytes (7 int32))`,
    );
  });

  it("rejects version 1 export", () => {
    const bytes = new Uint8Array(256);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, 0x616b3432, true);
    view.setInt32(4, 1, true);
    const file = viaFile("v1.bin", bytes);
    expectError(
      () => readModelFile(file.bytes, file.path),
      FormatError,
      `readModelFile: ${file.path}: magic is 32 34 6b 61 ("24ka"), expected "GGUF" or a plausible llama2.c v0 checkpoint header (neither format: as a llama2.c header, magic is "ak42" (llama2.c export version 1), expected a version 0 (legacy_export) checkpoint, which has no magic)`,
    );
  });
});
