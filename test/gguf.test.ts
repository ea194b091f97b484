import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FormatError } from "../src/errors.js";
import { readModelFile } from "../src/formats/index.js";
import {
  ggufToModelFile,
  GGUFValueType,
  metadataEntries,
  parseGGUF,
  writeGGUF,
  type GGUFMetadataEntry,
  type GGUFValue,
} from "../src/gguf.js";
import { encodeQ8_0Blocks, f32ArrayToF16, quantizeQ8_0, tensorToF32 } from "../src/quant.js";
import { GGMLType, TokenType, type TensorData } from "../src/types.js";

const GGUF_PATH = fileURLToPath(new URL("../../shared/models/stories260K.gguf", import.meta.url));
const ggufBytes = new Uint8Array(readFileSync(GGUF_PATH));

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "dormant-gguf-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Writes bytes to a temp file and reads them back, as a user's file would arrive. */
function viaFile(name: string, bytes: Uint8Array): { path: string; bytes: Uint8Array } {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return { path, bytes: new Uint8Array(readFileSync(path)) };
}

function expectFormatError(run: () => unknown, message: string): void {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(FormatError);
  expect((caught as Error).message).toBe(message);
}

function f32Tensor(name: string, dims: number[], values?: number[]): TensorData {
  const count = dims.reduce((a, b) => a * b, 1);
  const data = Float32Array.from(values ?? Array.from({ length: count }, (_, i) => Math.sin(i + 1)));
  return { name, dims, type: GGMLType.F32, data: new Uint8Array(data.buffer) };
}

/** Rebuilds stories260K.gguf with metadata and tensors edited by the callbacks. */
function editedStories(
  editMetadata: (entries: GGUFMetadataEntry[]) => GGUFMetadataEntry[],
  editTensors: (tensors: TensorData[]) => TensorData[] = (t) => t,
): Uint8Array {
  const gguf = parseGGUF(ggufBytes, GGUF_PATH);
  return writeGGUF({ metadata: editMetadata(metadataEntries(gguf.metadata)), tensors: editTensors([...gguf.tensors.values()]) });
}

describe("parseGGUF", () => {
  it("reads stories260K header", () => {
    const gguf = parseGGUF(ggufBytes, GGUF_PATH);
    expect(gguf.version).toBe(3);
    expect(gguf.metadata.size).toBe(19);
    expect(gguf.tensors.size).toBe(48);
    expect(gguf.alignment).toBe(32);
    expect(gguf.dataOffset).toBe(14176);
  });

  it("reads metadata types", () => {
    const gguf = parseGGUF(ggufBytes, GGUF_PATH);
    expect(gguf.metadata.get("general.architecture")).toEqual({ type: GGUFValueType.STRING, value: "llama" });
    expect(gguf.metadata.get("llama.context_length")).toEqual({ type: GGUFValueType.UINT32, value: 512 });
    expect(gguf.metadata.get("llama.attention.layer_norm_rms_epsilon")).toEqual({ type: GGUFValueType.FLOAT32, value: Math.fround(1e-5) });
    const tokens = gguf.metadata.get("tokenizer.ggml.tokens") as GGUFValue & { elementType: GGUFValueType; value: string[] };
    expect(tokens.type).toBe(GGUFValueType.ARRAY);
    expect(tokens.elementType).toBe(GGUFValueType.STRING);
    expect(tokens.value.length).toBe(512);
    expect(tokens.value.slice(0, 4)).toEqual(["<unk>", "<s>", "</s>", "<0x00>"]);
  });

  it("reads tensor infos", () => {
    const gguf = parseGGUF(ggufBytes, GGUF_PATH);
    const ffnDown = gguf.tensors.get("blk.0.ffn_down.weight")!;
    expect(ffnDown.dims).toEqual([172, 64]);
    expect(ffnDown.type).toBe(GGMLType.F32);
    expect(ffnDown.data.byteOffset).toBe(14176 + 355840);
    expect(ffnDown.data.length).toBe(172 * 64 * 4);
    expect(ffnDown.data.buffer).toBe(ggufBytes.buffer);
  });

  it("rewrites stories260K byte for byte", () => {
    const gguf = parseGGUF(ggufBytes, GGUF_PATH);
    const written = writeGGUF({ metadata: metadataEntries(gguf.metadata), tensors: [...gguf.tensors.values()] });
    expect(written.length).toBe(ggufBytes.length);
    expect(Buffer.from(written).equals(Buffer.from(ggufBytes))).toBe(true);
  });
});

describe("writeGGUF", () => {
  const metadata: GGUFMetadataEntry[] = [
    { key: "t.u8", type: GGUFValueType.UINT8, value: 255 },
    { key: "t.i8", type: GGUFValueType.INT8, value: -128 },
    { key: "t.u16", type: GGUFValueType.UINT16, value: 65535 },
    { key: "t.i16", type: GGUFValueType.INT16, value: -32768 },
    { key: "t.u32", type: GGUFValueType.UINT32, value: 4294967295 },
    { key: "t.i32", type: GGUFValueType.INT32, value: -2147483648 },
    { key: "t.f32", type: GGUFValueType.FLOAT32, value: Math.fround(0.1) },
    { key: "t.bool", type: GGUFValueType.BOOL, value: true },
    { key: "t.string", type: GGUFValueType.STRING, value: "héllo ▁wörld 🙂" },
    { key: "t.u64.small", type: GGUFValueType.UINT64, value: 2 ** 53 - 1 },
    { key: "t.u64.big", type: GGUFValueType.UINT64, value: 18446744073709551615n },
    { key: "t.i64", type: GGUFValueType.INT64, value: -9223372036854775808n },
    { key: "t.f64", type: GGUFValueType.FLOAT64, value: 0.1 },
    { key: "t.array.f32", type: GGUFValueType.ARRAY, elementType: GGUFValueType.FLOAT32, value: [1.5, -2, 0] },
    { key: "t.array.empty", type: GGUFValueType.ARRAY, elementType: GGUFValueType.INT32, value: [] },
    { key: "t.array.strings", type: GGUFValueType.ARRAY, elementType: GGUFValueType.STRING, value: ["a", "", "▁b"] },
    {
      key: "t.array.nested",
      type: GGUFValueType.ARRAY,
      elementType: GGUFValueType.ARRAY,
      value: [
        { type: GGUFValueType.ARRAY, elementType: GGUFValueType.UINT8, value: [1, 2] },
        { type: GGUFValueType.ARRAY, elementType: GGUFValueType.BOOL, value: [false] },
      ],
    },
  ];

  function sampleTensors(): TensorData[] {
    const values = Float32Array.from({ length: 64 * 3 }, (_, i) => Math.cos(i) * 3);
    const q = quantizeQ8_0(values, 64, 3);
    return [
      f32Tensor("a.f32", [5, 3]),
      { name: "b.f16", dims: [7], type: GGMLType.F16, data: new Uint8Array(f32ArrayToF16(Float32Array.of(1, 2, 3, 4, 5, 6, 7)).buffer) },
      { name: "c.q8_0", dims: [64, 3], type: GGMLType.Q8_0, data: encodeQ8_0Blocks(q.quants, q.scales) },
      f32Tensor("d.4d", [2, 1, 3, 2]),
    ];
  }

  for (const alignment of [32, 64, 1]) {
    it(`round-trips at alignment ${alignment}`, () => {
      const tensors = sampleTensors();
      const bytes = writeGGUF({ metadata, tensors }, alignment);
      const gguf = parseGGUF(bytes, "memory");
      expect(gguf.version).toBe(3);
      expect(gguf.alignment).toBe(alignment);
      expect(gguf.dataOffset % alignment).toBe(0);
      for (const entry of metadata) {
        const { key, ...value } = entry;
        expect(gguf.metadata.get(key)).toEqual(value);
      }
      expect(gguf.metadata.has("general.alignment")).toBe(alignment !== 32);
      for (const tensor of tensors) {
        const read = gguf.tensors.get(tensor.name)!;
        expect(read.dims).toEqual(tensor.dims);
        expect(read.type).toBe(tensor.type);
        expect(Array.from(read.data)).toEqual(Array.from(tensor.data));
        expect((read.data.byteOffset - gguf.dataOffset) % alignment).toBe(0);
      }
    });
  }

  it("writes a vocab-only file", () => {
    const bytes = writeGGUF({ metadata: [{ key: "general.architecture", type: GGUFValueType.STRING, value: "llama" }], tensors: [] });
    const gguf = parseGGUF(bytes, "memory");
    expect(gguf.tensors.size).toBe(0);
    expect(gguf.metadata.size).toBe(1);
  });

  it("rejects out-of-range value", () => {
    expectFormatError(
      () => writeGGUF({ metadata: [{ key: "x", type: GGUFValueType.UINT8, value: 256 }], tensors: [] }),
      "writeGGUF: model: metadata x is 256, expected an integer in 0..255 (UINT8)",
    );
  });

  it("rejects wrong data length", () => {
    const tensor = f32Tensor("w", [4, 2]);
    expectFormatError(
      () => writeGGUF({ metadata: [], tensors: [{ ...tensor, dims: [4, 3] }] }),
      "writeGGUF: model: tensor w data length is 32 bytes, expected 48 bytes for F32 [4, 3]",
    );
  });

  it("rejects duplicate tensor", () => {
    expectFormatError(
      () => writeGGUF({ metadata: [], tensors: [f32Tensor("w", [2]), f32Tensor("w", [2])] }),
      "writeGGUF: model: tensor w is duplicated, expected each tensor name once",
    );
  });
});

describe("ggufToModelFile", () => {
  it("reads stories260K config", () => {
    const model = ggufToModelFile(parseGGUF(ggufBytes, GGUF_PATH), GGUF_PATH);
    expect(model.format).toBe("gguf");
    expect(model.config).toEqual({
      architecture: "llama",
      dim: 64,
      hidden_dim: 172,
      n_layers: 5,
      n_heads: 8,
      n_kv_heads: 4,
      vocab_size: 512,
      seq_len: 512,
      norm_eps: Math.fround(1e-5),
      rope_theta: 10000,
      activation: "silu",
      gated: true,
      rope_type: "norm",
      rope_scaling_factor: 1,
    });
  });

  it("reads stories260K vocab", () => {
    const { vocab } = ggufToModelFile(parseGGUF(ggufBytes, GGUF_PATH), GGUF_PATH);
    expect(vocab).toBeDefined();
    expect(vocab!.model).toBe("llama");
    expect(vocab!.tokens.length).toBe(512);
    expect(vocab!.tokens[259]).toBe("▁t");
    expect(vocab!.scores[511]).toBe(-252);
    expect(vocab!.types[0]).toBe(TokenType.UNKNOWN);
    expect(vocab!.types[1]).toBe(TokenType.CONTROL);
    expect(vocab!.types[3]).toBe(TokenType.BYTE);
    expect(vocab!.types[300]).toBe(TokenType.NORMAL);
    expect([vocab!.bos_id, vocab!.eos_id, vocab!.unk_id]).toEqual([1, 2, 0]);
    expect(vocab!.add_bos).toBe(true);
    expect(vocab!.add_space_prefix).toBe(true);
  });

  it("defaults head_count_kv to head_count", () => {
    const bytes = editedStories((entries) => entries.filter((e) => e.key !== "llama.attention.head_count_kv"), (tensors) =>
      tensors.map((t) => (/attn_[kv]\./.test(t.name) ? f32Tensor(t.name, [64, 64]) : t)),
    );
    const model = ggufToModelFile(parseGGUF(bytes, "memory"), "memory");
    expect(model.config.n_kv_heads).toBe(8);
  });
});

describe("GGUF errors", () => {
  it("rejects file cut in header", () => {
    const file = viaFile("cut-header.gguf", ggufBytes.slice(0, 10));
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `parseGGUF: ${file.path}: header is cut off at byte 10, expected 8 bytes at byte 8 (truncated file)`,
    );
  });

  it("rejects file cut in tensor infos", () => {
    // Tensor info 47 (blk.4.ffn_norm.weight) ends at byte 14152; cut inside its offset field.
    const file = viaFile("cut-infos.gguf", ggufBytes.slice(0, 14148));
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `parseGGUF: ${file.path}: tensor info 47 (blk.4.ffn_norm.weight) is cut off at byte 14148, expected 8 bytes at byte 14144 (truncated file)`,
    );
  });

  it("rejects file cut in metadata", () => {
    const file = viaFile("cut-metadata.gguf", ggufBytes.slice(0, 2000));
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `parseGGUF: ${file.path}: metadata tokenizer.ggml.tokens array length is 512, expected at most 241 (1931 bytes left in the file) (corrupt length or truncated file)`,
    );
  });

  it("rejects metadata count beyond file", () => {
    const file = viaFile("cut-early.gguf", ggufBytes.slice(0, 100));
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `parseGGUF: ${file.path}: metadata count is 19, expected at most 5 for a file of 100 bytes (corrupt header or truncated file)`,
    );
  });

  it("rejects implausible tensor count", () => {
    const bytes = ggufBytes.slice(0, 4096);
    new DataView(bytes.buffer).setBigUint64(8, 1000n, true);
    const file = viaFile("count.gguf", bytes);
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `parseGGUF: ${file.path}: tensor count is 1000, expected at most 119 for a file of 4096 bytes (corrupt header or truncated file)`,
    );
  });

  it("rejects file cut in data", () => {
    const file = viaFile("cut-data.gguf", ggufBytes.slice(0, ggufBytes.length - 100));
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `parseGGUF: ${file.path}: tensor blk.4.ffn_norm.weight data is 156 bytes present (file ends at byte 1185276), expected 256 bytes at byte 1185120 for F32 [64] (truncated file)`,
    );
  });

  it("rejects empty file", () => {
    const file = viaFile("empty.gguf", new Uint8Array(0));
    expectFormatError(() => parseGGUF(file.bytes, file.path), `parseGGUF: ${file.path}: file is empty (0 bytes), expected a GGUF file`);
  });

  it("rejects wrong magic", () => {
    const file = viaFile("magic.gguf", Uint8Array.of(0x7f, 0x45, 0x4c, 0x46, 3, 0, 0, 0));
    expectFormatError(
      () => parseGGUF(file.bytes, file.path),
      `parseGGUF: ${file.path}: magic is "\u007fELF" (bytes 7f 45 4c 46), expected "GGUF" (bytes 47 47 55 46) (not a GGUF file, or a wrong-endian one)`,
    );
  });

  it("rejects byte-swapped magic", () => {
    const file = viaFile("swapped.gguf", Uint8Array.of(0x46, 0x55, 0x47, 0x47, 0, 0, 0, 3));
    expectFormatError(
      () => parseGGUF(file.bytes, file.path),
      `parseGGUF: ${file.path}: magic is "FUGG" (bytes 46 55 47 47), expected "GGUF" (bytes 47 47 55 46) (byte-swapped magic: a wrong-endian file)`,
    );
  });

  it("rejects version 1", () => {
    const bytes = ggufBytes.slice();
    bytes[4] = 1;
    const file = viaFile("v1.gguf", bytes);
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `parseGGUF: ${file.path}: version is 1, expected 3 (or 2) (GGUF v1 used 32-bit counts; re-convert the model with a current llama.cpp)`,
    );
  });

  it("rejects big-endian version", () => {
    const bytes = ggufBytes.slice();
    bytes.set([0, 0, 0, 3], 4);
    const file = viaFile("big-endian.gguf", bytes);
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `parseGGUF: ${file.path}: version is 50331648, expected 3 (or 2) (the version bytes are byte-swapped: a big-endian GGUF, which dormant does not read)`,
    );
  });

  it("rejects unsupported tensor type", () => {
    const q5k: TensorData = { name: "blk.0.attn_q.weight", dims: [256, 1], type: 13 as GGMLType, data: new Uint8Array(176) };
    const file = viaFile("q5k.gguf", writeGGUF({ metadata: [], tensors: [f32Tensor("token_embd.weight", [4, 2]), q5k] }));
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `parseGGUF: ${file.path}: tensor blk.0.attn_q.weight type is Q5_K (type 13), expected F32, F16, BF16, Q8_0, Q4_0, Q4_K or Q6_K (dormant does not read this quantization yet, so use a file of one of these types)`,
    );
  });

  it("rejects Q8_0 row of 48", () => {
    const raw: TensorData = { name: "w", dims: [48, 1], type: GGMLType.Q8_0, data: new Uint8Array(51) };
    const bytes = writeGGUF({ metadata: [], tensors: [{ ...raw, type: 99 as GGMLType }] });
    // Patch the type id 99 back to Q8_0, which the writer itself would refuse for this shape.
    const at = bytes.indexOf(99, 24);
    bytes[at] = GGMLType.Q8_0;
    const file = viaFile("q8-48.gguf", bytes);
    expectFormatError(
      () => parseGGUF(file.bytes, file.path),
      `parseGGUF: ${file.path}: tensor w dims[0] is 48, expected a multiple of 32 for Q8_0 (one block is 32 values)`,
    );
  });

  it("rejects duplicate tensor name", () => {
    const bytes = writeGGUF({ metadata: [], tensors: [f32Tensor("aa", [2]), f32Tensor("ab", [2])] });
    bytes[bytes.indexOf(0x62, 24)] = 0x61; // "ab" → "aa"
    const file = viaFile("duplicate.gguf", bytes);
    expectFormatError(() => parseGGUF(file.bytes, file.path), `parseGGUF: ${file.path}: tensor aa is duplicated, expected each tensor name once`);
  });

  it("rejects misaligned offset", () => {
    const bytes = writeGGUF({ metadata: [], tensors: [f32Tensor("a", [2]), f32Tensor("b", [2])] });
    // Tensor b's offset field is the last 8 bytes before the padding to the data section.
    const infoEnd = 24 + (8 + 1 + 4 + 8 + 4 + 8) * 2;
    new DataView(bytes.buffer).setBigUint64(infoEnd - 8, 4n, true);
    const file = viaFile("misaligned.gguf", bytes);
    expectFormatError(
      () => parseGGUF(file.bytes, file.path),
      `parseGGUF: ${file.path}: tensor b offset is 4, expected a multiple of 32 (general.alignment) (corrupt tensor info)`,
    );
  });

  it("rejects tensor shape contradicting config", () => {
    const bytes = editedStories((e) => e, (tensors) =>
      tensors.map((t) => (t.name === "blk.3.ffn_up.weight" ? f32Tensor(t.name, [64, 100]) : t)),
    );
    const file = viaFile("shape.gguf", bytes);
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `loadModel: ${file.path}: tensor blk.3.ffn_up.weight shape is [64, 100], expected [64, 172] from llama.feed_forward_length = 172`,
    );
  });

  it("rejects k shape against kv heads", () => {
    const bytes = editedStories((e) => e, (tensors) =>
      tensors.map((t) => (t.name === "blk.0.attn_k.weight" ? f32Tensor(t.name, [64, 64]) : t)),
    );
    const file = viaFile("kv.gguf", bytes);
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `loadModel: ${file.path}: tensor blk.0.attn_k.weight shape is [64, 64], expected [64, 32] from kv_dim = llama.attention.head_count_kv × head_size = 4 × 8`,
    );
  });

  it("rejects missing tensor", () => {
    const bytes = editedStories((e) => e, (tensors) => tensors.filter((t) => t.name !== "blk.2.attn_norm.weight"));
    const file = viaFile("missing-tensor.gguf", bytes);
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `loadModel: ${file.path}: tensor blk.2.attn_norm.weight is missing, expected a tensor of shape [64] (the file has 47 tensors)`,
    );
  });

  it("rejects layer beyond block_count", () => {
    const bytes = editedStories((entries) =>
      entries.map((e) => (e.key === "llama.block_count" ? { ...e, value: 4 } : e)) as GGUFMetadataEntry[],
    );
    const file = viaFile("layers.gguf", bytes);
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `loadModel: ${file.path}: tensor blk.4.attn_q.weight is present, expected layers 0..3 only from llama.block_count = 4`,
    );
  });

  it("rejects head_count not dividing dim", () => {
    const bytes = editedStories((entries) =>
      entries.map((e) => (e.key === "llama.attention.head_count" ? { ...e, value: 7 } : e)) as GGUFMetadataEntry[],
    );
    const file = viaFile("heads.gguf", bytes);
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `loadModel: ${file.path}: llama.attention.head_count is 7, expected a divisor of llama.embedding_length = 64`,
    );
  });

  it("rejects missing metadata key", () => {
    const bytes = editedStories((entries) => entries.filter((e) => e.key !== "llama.feed_forward_length"));
    const file = viaFile("missing-key.gguf", bytes);
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `loadModel: ${file.path}: metadata key llama.feed_forward_length is missing, expected an integer`,
    );
  });

  it("rejects wrong metadata type", () => {
    const bytes = editedStories((entries) =>
      entries.map((e) => (e.key === "llama.block_count" ? { key: e.key, type: GGUFValueType.FLOAT32, value: 5 } : e)),
    );
    const file = viaFile("key-type.gguf", bytes);
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `loadModel: ${file.path}: metadata llama.block_count type is FLOAT32, expected an integer type`,
    );
  });

  it("rejects wrong architecture", () => {
    const bytes = editedStories((entries) =>
      entries.map((e) => (e.key === "general.architecture" ? { ...e, value: "gemma" } : e)) as GGUFMetadataEntry[],
    );
    const file = viaFile("arch.gguf", bytes);
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `loadModel: ${file.path}: metadata general.architecture is "gemma", expected "llama" or "qwen2" (this architecture is not supported)`,
    );
  });

  it("rejects gpt2 vocab without merges", () => {
    const bytes = editedStories((entries) =>
      entries.map((e) => (e.key === "tokenizer.ggml.model" ? { ...e, value: "gpt2" } : e)) as GGUFMetadataEntry[],
    );
    const file = viaFile("gpt2.gguf", bytes);
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `loadModel: ${file.path}: metadata key tokenizer.ggml.merges is missing, expected an array of STRING`,
    );
  });

  it("rejects unknown tokenizer model", () => {
    const bytes = editedStories((entries) =>
      entries.map((e) => (e.key === "tokenizer.ggml.model" ? { ...e, value: "bert" } : e)) as GGUFMetadataEntry[],
    );
    const file = viaFile("bert.gguf", bytes);
    expect(() => readModelFile(file.bytes, file.path)).toThrow(`loadModel: ${file.path}: metadata tokenizer.ggml.model is "bert", expected "llama" or "gpt2"`);
  });

  it("rejects scores of wrong length", () => {
    const bytes = editedStories((entries) =>
      entries.map((e) =>
        e.key === "tokenizer.ggml.scores" ? { key: e.key, type: GGUFValueType.ARRAY, elementType: GGUFValueType.FLOAT32, value: [0, 0] } : e,
      ),
    );
    const file = viaFile("scores.gguf", bytes);
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `loadModel: ${file.path}: metadata tokenizer.ggml.scores length is 2, expected 512 (the length of tokenizer.ggml.tokens)`,
    );
  });

  it("rejects bos id outside vocab", () => {
    const bytes = editedStories((entries) =>
      entries.map((e) => (e.key === "tokenizer.ggml.bos_token_id" ? { ...e, value: 512 } : e)) as GGUFMetadataEntry[],
    );
    const file = viaFile("bos.gguf", bytes);
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `loadModel: ${file.path}: metadata tokenizer.ggml.bos_token_id is 512, expected a token id in 0..511`,
    );
  });
});

/** Little-endian byte builder for GGUF files that writeGGUF would refuse to write. */
class RawGGUF {
  private readonly parts: number[] = [];

  constructor(tensors: number, entries: number, version = 3) {
    this.parts.push(0x47, 0x47, 0x55, 0x46);
    this.u32(version).u64(tensors).u64(entries);
  }

  u8(value: number): this {
    this.parts.push(value);
    return this;
  }

  u32(value: number): this {
    for (let i = 0; i < 4; i++) this.parts.push((value >>> (8 * i)) & 0xff);
    return this;
  }

  u64(value: number | bigint): this {
    const big = BigInt(value);
    for (let i = 0n; i < 8n; i++) this.parts.push(Number((big >> (8n * i)) & 0xffn));
    return this;
  }

  raw(bytes: number[]): this {
    this.u64(bytes.length);
    this.parts.push(...bytes);
    return this;
  }

  str(text: string): this {
    return this.raw(Array.from(new TextEncoder().encode(text)));
  }

  tensorInfo(name: string, dims: number[], type: number, offset: number): this {
    this.str(name).u32(dims.length);
    for (const size of dims) this.u64(size);
    return this.u32(type).u64(offset);
  }

  pad(length: number): this {
    while (this.parts.length < length) this.parts.push(0);
    return this;
  }

  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

describe("GGUF structure errors", () => {
  const nested = (depth: number): RawGGUF => {
    const raw = new RawGGUF(0, 1).str("n").u32(GGUFValueType.ARRAY);
    for (let i = 0; i < depth; i++) raw.u32(GGUFValueType.ARRAY).u64(1);
    return raw.u32(GGUFValueType.UINT8).u64(0).pad(400);
  };
  const cases: Array<[string, Uint8Array, string]> = [
    ["unknown value type", new RawGGUF(0, 1).str("a").u32(13).bytes(), "metadata a type is 13, expected a value type id 0..12"],
    ["invalid UTF-8 key", new RawGGUF(0, 1).raw([0xff, 0x41]).u32(0).u8(1).bytes(), "metadata entry 0 key is invalid UTF-8 at byte 32, expected a UTF-8 string"],
    ["empty key", new RawGGUF(0, 1).str("").u32(0).u8(1).pad(40).bytes(), "metadata entry 0 key is empty, expected a non-empty key"],
    ["duplicate key", new RawGGUF(0, 2).str("k").u32(0).u8(1).str("k").u32(0).u8(2).bytes(), "metadata key k is duplicated, expected each key once"],
    ["bool byte 2", new RawGGUF(0, 1).str("b").u32(GGUFValueType.BOOL).u8(2).bytes(), "metadata b is byte 2 at byte 37, expected a bool (0 or 1)"],
    ["unknown element type", new RawGGUF(0, 1).str("c").u32(GGUFValueType.ARRAY).u32(13).u64(0).bytes(), "metadata c array element type is 13, expected a value type id 0..12"],
    ["array nested too deep", nested(9).bytes(), `metadata n${"[0]".repeat(8)} array nesting is deeper than 8, expected at most 8 levels`],
    ["n_dims 5", new RawGGUF(1, 0).tensorInfo("t", [1, 1, 1, 1, 1], 0, 0).pad(200).bytes(), "tensor t n_dims is 5, expected 1..4"],
    ["dims 0", new RawGGUF(1, 0).tensorInfo("t", [4, 0], 0, 0).pad(200).bytes(), "tensor t dims[1] is 0, expected 1..400 for a file of 200 bytes (corrupt tensor info)"],
    [
      "alignment type",
      new RawGGUF(0, 1).str("general.alignment").u32(GGUFValueType.UINT8).u8(32).bytes(),
      "metadata general.alignment type is UINT8, expected UINT32",
    ],
    [
      "alignment 48",
      new RawGGUF(0, 1).str("general.alignment").u32(GGUFValueType.UINT32).u32(48).bytes(),
      "metadata general.alignment is 48, expected a power of two",
    ],
    [
      "overlapping tensors",
      new RawGGUF(2, 0).tensorInfo("a", [8], 0, 0).tensorInfo("b", [8], 0, 0).pad(160).bytes(),
      "tensor b data is bytes 96..128, expected no overlap with tensor a at bytes 96..128 (corrupt tensor info)",
    ],
  ];
  for (const [name, bytes, message] of cases) {
    it(`rejects ${name}`, () => {
      const file = viaFile(`${name.replaceAll(" ", "-")}.gguf`, bytes);
      expectFormatError(() => parseGGUF(file.bytes, file.path), `parseGGUF: ${file.path}: ${message}`);
    });
  }
});

describe("GGUF metadata errors", () => {
  const replace = (key: string, entry: GGUFValue) => (entries: GGUFMetadataEntry[]): GGUFMetadataEntry[] =>
    entries.map((e) => (e.key === key ? { key, ...entry } : e));
  const cases: Array<[string, (entries: GGUFMetadataEntry[]) => GGUFMetadataEntry[], string]> = [
    [
      "64-bit block count",
      replace("llama.block_count", { type: GGUFValueType.UINT64, value: 2n ** 60n }),
      "metadata llama.block_count is 1152921504606846976, expected at most 9007199254740991",
    ],
    ["zero context length", replace("llama.context_length", { type: GGUFValueType.UINT32, value: 0 }), "metadata llama.context_length is 0, expected a positive integer"],
    [
      "negative epsilon",
      replace("llama.attention.layer_norm_rms_epsilon", { type: GGUFValueType.FLOAT32, value: -1 }),
      "metadata llama.attention.layer_norm_rms_epsilon is -1, expected a positive finite number",
    ],
    [
      "integer epsilon",
      replace("llama.attention.layer_norm_rms_epsilon", { type: GGUFValueType.UINT32, value: 1 }),
      "metadata llama.attention.layer_norm_rms_epsilon type is UINT32, expected FLOAT32 or FLOAT64",
    ],
    [
      "architecture type",
      replace("general.architecture", { type: GGUFValueType.UINT32, value: 1 }),
      "metadata general.architecture type is UINT32, expected STRING",
    ],
    [
      "add_bos type",
      (entries) => [...entries, { key: "tokenizer.ggml.add_bos_token", type: GGUFValueType.UINT8, value: 1 }],
      "metadata tokenizer.ggml.add_bos_token type is UINT8, expected BOOL",
    ],
    [
      "scores as integers",
      replace("tokenizer.ggml.scores", { type: GGUFValueType.ARRAY, elementType: GGUFValueType.INT32, value: [] }),
      "metadata tokenizer.ggml.scores type is an array of INT32, expected an array of FLOAT32",
    ],
    [
      "tokens not an array",
      replace("tokenizer.ggml.tokens", { type: GGUFValueType.STRING, value: "a" }),
      "metadata tokenizer.ggml.tokens type is STRING, expected an array of STRING",
    ],
    [
      "empty tokens",
      replace("tokenizer.ggml.tokens", { type: GGUFValueType.ARRAY, elementType: GGUFValueType.STRING, value: [] }),
      "metadata tokenizer.ggml.tokens is empty, expected at least one token",
    ],
    [
      "missing token types",
      (entries) => entries.filter((e) => e.key !== "tokenizer.ggml.token_type"),
      "metadata key tokenizer.ggml.token_type is missing, expected an array of INT32",
    ],
  ];
  for (const [name, edit, message] of cases) {
    it(`rejects ${name}`, () => {
      const file = viaFile(`${name.replaceAll(" ", "-")}.gguf`, editedStories(edit));
      expectFormatError(() => readModelFile(file.bytes, file.path), `loadModel: ${file.path}: ${message}`);
    });
  }

  it("rejects no vocab and no embedding", () => {
    const bytes = editedStories(
      (entries) => entries.filter((e) => !e.key.startsWith("tokenizer.")),
      (tensors) => tensors.filter((t) => t.name !== "token_embd.weight"),
    );
    const file = viaFile("no-vocab.gguf", bytes);
    expectFormatError(
      () => readModelFile(file.bytes, file.path),
      `loadModel: ${file.path}: tensor token_embd.weight is missing, expected a tensor of shape [dim, vocab_size] (and the file has no tokenizer.ggml.tokens to give vocab_size)`,
    );
  });

  it("reads model without vocab", () => {
    const bytes = editedStories((entries) => entries.filter((e) => !e.key.startsWith("tokenizer.")));
    const model = readModelFile(bytes, "memory");
    expect(model.vocab).toBeUndefined();
    expect(model.config.vocab_size).toBe(512);
  });
});

describe("writeGGUF errors", () => {
  const cases: Array<[string, () => unknown, string]> = [
    ["alignment 48", () => writeGGUF({ metadata: [], tensors: [] }, 48), "alignment is 48, expected a power of two"],
    [
      "alignment key mismatch",
      () => writeGGUF({ metadata: [{ key: "general.alignment", type: GGUFValueType.UINT32, value: 64 }], tensors: [] }),
      "metadata general.alignment is UINT32 64, expected UINT32 32 (the alignment argument)",
    ],
    [
      "string as float",
      () => writeGGUF({ metadata: [{ key: "f", type: GGUFValueType.FLOAT32, value: "1" }], tensors: [] }),
      "metadata f is 1, expected a number (FLOAT32)",
    ],
    [
      "fractional integer",
      () => writeGGUF({ metadata: [{ key: "i", type: GGUFValueType.INT32, value: 1.5 }], tensors: [] }),
      "metadata i is 1.5, expected an integer in -2147483648..2147483647 (INT32)",
    ],
    [
      "duplicate key",
      () =>
        writeGGUF({
          metadata: [
            { key: "k", type: GGUFValueType.BOOL, value: true },
            { key: "k", type: GGUFValueType.BOOL, value: false },
          ],
          tensors: [],
        }),
      "metadata key k is duplicated, expected each key once",
    ],
    [
      "scalar in nested array",
      () => writeGGUF({ metadata: [{ key: "n", type: GGUFValueType.ARRAY, elementType: GGUFValueType.ARRAY, value: [1] as never }], tensors: [] }),
      "metadata n[0] is 1, expected a nested array value",
    ],
    [
      "Q8_0 row of 48",
      () => writeGGUF({ metadata: [], tensors: [{ name: "q", dims: [48, 1], type: GGMLType.Q8_0, data: new Uint8Array(51) }] }),
      "tensor q dims[0] is 48, expected a multiple of 32 for Q8_0 (one block is 32 values)",
    ],
    ["five dims", () => writeGGUF({ metadata: [], tensors: [f32Tensor("t", [1, 1, 1, 1, 1])] }), "tensor t dims is [1, 1, 1, 1, 1], expected 1..4 positive sizes"],
  ];
  for (const [name, run, message] of cases) {
    it(`rejects ${name}`, () => {
      expectFormatError(run, `writeGGUF: model: ${message}`);
    });
  }
});

describe("tensorToF32", () => {
  it("rejects unknown type", () => {
    expectFormatError(
      () => tensorToF32({ name: "blk.0.attn_q.weight", dims: [256], type: 13 as GGMLType, data: new Uint8Array(176) }),
      "tensorToF32: blk.0.attn_q.weight: type is 13, expected F32 (0), F16 (1), Q4_0 (2), Q8_0 (8), Q4_K (12), Q6_K (14) or BF16 (30)",
    );
  });

  it("reads unaligned F32", () => {
    const values = Float32Array.of(1.5, -2, 3.25);
    const shifted = new Uint8Array(13).subarray(1);
    shifted.set(new Uint8Array(values.buffer));
    expect(Array.from(tensorToF32({ name: "t", dims: [3], type: GGMLType.F32, data: shifted }))).toEqual([1.5, -2, 3.25]);
  });
});
