import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { convertToGGUF } from "../src/convert.js";
import { OptionError } from "../src/errors.js";
import { readModelFile } from "../src/formats/index.js";
import { GGUFValueType, parseGGUF, type GGUFValue } from "../src/gguf.js";
import { interleaveQ8Rows } from "../src/layout.js";
import {
  decodeQ8_0Blocks,
  decodeQ8_0Interleaved,
  dequantizeQ8_0,
  encodeQ8_0Blocks,
  f16BitsToF32,
  f32ToF16Bits,
  quantizeQ8_0,
  roundToF16,
  tensorToF32,
} from "../src/quant.js";
import { GGMLType, type ModelFile } from "../src/types.js";

const BIN_PATH = fileURLToPath(new URL("../../shared/models/stories260K.bin", import.meta.url));
const TOKENIZER_PATH = fileURLToPath(new URL("../../shared/models/tok512.bin", import.meta.url));
const GGUF_PATH = fileURLToPath(new URL("../../shared/models/stories260K.gguf", import.meta.url));

function loadStories(): ModelFile {
  return readModelFile(new Uint8Array(readFileSync(BIN_PATH)), BIN_PATH, {
    bytes: new Uint8Array(readFileSync(TOKENIZER_PATH)),
    source: TOKENIZER_PATH,
  });
}

function metadataValue(metadata: Map<string, GGUFValue>, key: string): unknown {
  return metadata.get(key)?.value;
}

describe("f16", () => {
  const cases: Array<[number, number]> = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff],
    [65519, 0x7bff],
    [65520, 0x7c00], // halfway to 65536: ties to even, which overflows to infinity
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -14, 0x0400], // smallest normal
    [1023 * 2 ** -24, 0x03ff], // largest subnormal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // halfway to the smallest subnormal: ties to even (zero)
    [1.5 * 2 ** -25, 0x0001],
    [3 * 2 ** -25, 0x0002], // halfway between 1 and 2 ulps: ties to even
    [1 + 2 ** -11, 0x3c00], // halfway above 1: ties to even
    [1 + 3 * 2 ** -11, 0x3c02],
    [2 ** -30, 0x0000],
    [-(2 ** -30), 0x8000],
    [1e-45, 0x0000], // an f32 subnormal
  ];
  for (const [value, bits] of cases) {
    it(`encodes ${Object.is(value, -0) ? "-0" : value}`, () => {
      expect(f32ToF16Bits(value)).toBe(bits);
    });
  }

  it("encodes NaN as quiet NaN", () => {
    const bits = f32ToF16Bits(NaN);
    expect(bits & 0x7c00).toBe(0x7c00);
    expect(bits & 0x03ff).not.toBe(0);
    expect(f16BitsToF32(bits)).toBeNaN();
  });

  it("decodes edge bits", () => {
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24);
    expect(f16BitsToF32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(f16BitsToF32(0x7bff)).toBe(65504);
    expect(f16BitsToF32(0x7c00)).toBe(Infinity);
    expect(f16BitsToF32(0xfc00)).toBe(-Infinity);
    expect(Object.is(f16BitsToF32(0x8000), -0)).toBe(true);
    expect(f16BitsToF32(0x7e00)).toBeNaN();
  });

  it("round-trips every f16", () => {
    for (let bits = 0; bits < 65536; bits++) {
      const value = f16BitsToF32(bits);
      if (Number.isNaN(value)) continue;
      if (f32ToF16Bits(value) !== bits) expect(f32ToF16Bits(value), `bits 0x${bits.toString(16)}`).toBe(bits);
    }
  });

  it("matches nearest-even search", () => {
    // Independent reference: the nearest finite f16 by search over all positive values, ties to even bits.
    const positives = Array.from({ length: 0x7c00 }, (_, bits) => f16BitsToF32(bits));
    let seed = 12345;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let n = 0; n < 20000; n++) {
      const magnitude = Math.fround(2 ** (random() * 44 - 28) * (1 + random()));
      if (magnitude >= 65520) continue;
      let low = 0;
      let high = positives.length - 1;
      while (high - low > 1) {
        const mid = (low + high) >> 1;
        if (positives[mid] <= magnitude) low = mid;
        else high = mid;
      }
      const below = magnitude - positives[low];
      const above = positives[high] - magnitude;
      let expected = low % 2 === 0 ? low : high;
      if (below < above) expected = low;
      if (above < below) expected = high;
      if (f32ToF16Bits(magnitude) !== expected) expect(f32ToF16Bits(magnitude), `value ${magnitude}`).toBe(expected);
      if (f32ToF16Bits(-magnitude) !== (expected | 0x8000)) expect(f32ToF16Bits(-magnitude)).toBe(expected | 0x8000);
    }
  });
});

describe("Q8_0", () => {
  it("rounds half away from zero", () => {
    // amax 127 gives d = 1, so q = roundf(x) exactly as C rounds.
    const values = new Float32Array(32);
    values.set([127, 2.5, -2.5, 0.5, -0.5, 1.49, -126.5]);
    const { quants, scales } = quantizeQ8_0(values, 32, 1);
    expect(scales[0]).toBe(1);
    expect(Array.from(quants.subarray(0, 7))).toEqual([127, 3, -3, 1, -1, 1, -127]);
  });

  it("quantizes zero block", () => {
    const { quants, scales } = quantizeQ8_0(new Float32Array(64), 64, 1);
    expect(Array.from(scales)).toEqual([0, 0]);
    expect(quants.every((q) => q === 0)).toBe(true);
  });

  it("pads row of 172 to 192", () => {
    const values = Float32Array.from({ length: 172 * 2 }, (_, i) => Math.sin(i) * 0.3);
    const q = quantizeQ8_0(values, 172, 2);
    expect(q.paddedRowLength).toBe(192);
    expect(q.quants.length).toBe(2 * 192);
    expect(q.scales.length).toBe(2 * 6);
    expect(Array.from(q.quants.subarray(172, 192)).every((x) => x === 0)).toBe(true);
    expect(Array.from(q.quants.subarray(192 + 172, 384)).every((x) => x === 0)).toBe(true);
    // The last block of a row holds 12 real values; its scale comes from those alone.
    const tail = values.subarray(160, 172);
    const amax = Math.max(...Array.from(tail, Math.abs));
    expect(q.scales[5]).toBe(roundToF16(Math.fround(amax / 127)));
  });

  it("round-trips through blocks", () => {
    const rows = 3;
    const values = Float32Array.from({ length: 64 * rows }, (_, i) => Math.cos(i * 0.7) * (1 + (i % 5)));
    const q = quantizeQ8_0(values, 64, rows);
    for (const scale of q.scales) expect(roundToF16(scale)).toBe(scale);
    const bytes = encodeQ8_0Blocks(q.quants, q.scales);
    expect(bytes.length).toBe(rows * 2 * 34);
    const decoded = decodeQ8_0Blocks(bytes, 64, rows);
    expect(Array.from(decoded.quants)).toEqual(Array.from(q.quants));
    expect(Array.from(decoded.scales)).toEqual(Array.from(q.scales));

    const restored = dequantizeQ8_0(decoded, 64, rows);
    for (let block = 0; block < rows * 2; block++) {
      const slice = values.subarray(block * 32, block * 32 + 32);
      const amax = Math.max(...Array.from(slice, Math.abs));
      const d = Math.fround(amax / 127);
      for (let i = 0; i < 32; i++) {
        const at = block * 32 + i;
        // The bound is half a step plus the f16 rounding error of the scale times the quant.
        const bound = d / 2 + Math.abs(q.quants[at]) * Math.abs(d - q.scales[block]) + 1e-7;
        expect(Math.abs(restored[at] - values[at])).toBeLessThanOrEqual(bound);
      }
    }
  });

  // rows around the groups of 4 and blocks per row of 1 to 3, with quants of -128 in the file
  it.each([[1, 32], [3, 64], [4, 96], [5, 32], [7, 64], [17, 96]] as const)(
    "decodes %i rows of %i straight into the interleaved layout",
    (rows, cols) => {
      const values = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.3) * (1 + (i % 7)));
      const q = quantizeQ8_0(values, cols, rows);
      for (let i = 5; i < q.quants.length; i += 37) q.quants[i] = -128;
      const bytes = encodeQ8_0Blocks(q.quants, q.scales);

      // the three steps it replaces: decode, clamp -128 to -127, interleave
      const decoded = decodeQ8_0Blocks(bytes, cols, rows);
      const clamped = decoded.quants.map((quant) => (quant === -128 ? -127 : quant));
      const expected = interleaveQ8Rows(clamped, decoded.scales, rows, cols);

      const groupRows = Math.ceil(rows / 4) * 4;
      const quants = new Int8Array(groupRows * cols);
      const scales = new Float32Array(groupRows * (cols / 32));
      decodeQ8_0Interleaved(bytes, cols, rows, quants, scales);
      expect(Array.from(quants)).toEqual(Array.from(expected.quants));
      expect(Array.from(scales)).toEqual(Array.from(expected.scales));
      expect(quants.includes(-128)).toBe(false);

      // a target that does not start on a 4-byte boundary takes the byte-by-byte path
      const unaligned = new Int8Array(new ArrayBuffer(groupRows * cols + 1), 1);
      decodeQ8_0Interleaved(bytes, cols, rows, unaligned, new Float32Array(scales.length));
      expect(Array.from(unaligned)).toEqual(Array.from(expected.quants));
    },
  );

  it("rejects mismatched lengths", () => {
    expect(() => quantizeQ8_0(new Float32Array(10), 4, 3)).toThrow("quantizeQ8_0: values: length is 10, expected 12 (3 rows × 4)");
    expect(() => encodeQ8_0Blocks(new Int8Array(40), new Float32Array(1))).toThrow("encodeQ8_0Blocks: quants: length is 40, expected 32 (32 per scale)");
    expect(() => decodeQ8_0Blocks(new Uint8Array(60), 64, 1)).toThrow(
      "decodeQ8_0Blocks: bytes: length is 60, expected 68 (2 blocks of 34 bytes for 1 rows × 64)",
    );
    const quants = new Int8Array(4 * 64);
    const scales = new Float32Array(4 * 2);
    expect(() => decodeQ8_0Interleaved(new Uint8Array(60), 64, 1, quants, scales)).toThrow(
      "decodeQ8_0Interleaved: bytes: length is 60, expected 68 (2 blocks of 34 bytes for 1 rows × 64)",
    );
    expect(() => decodeQ8_0Interleaved(new Uint8Array(34), 40, 1, quants, scales)).toThrow(
      "decodeQ8_0Interleaved: rowLength: value is 40, expected a multiple of 32",
    );
    expect(() => decodeQ8_0Interleaved(new Uint8Array(5 * 68), 64, 5, quants, scales)).toThrow(
      "decodeQ8_0Interleaved: targets: length is 256 quants and 8 scales, expected at least 512 and 16 (8 rows)",
    );
  });

  it("decodes a tensor to f32", () => {
    const values = Float32Array.from({ length: 32 * 2 }, (_, i) => i - 20);
    const q = quantizeQ8_0(values, 32, 2);
    const data = encodeQ8_0Blocks(q.quants, q.scales);
    const f32 = tensorToF32({ name: "w", dims: [32, 2], type: GGMLType.Q8_0, data });
    expect(Array.from(f32)).toEqual(Array.from(dequantizeQ8_0(q, 32, 2)));
    const halves = new Uint16Array([0x3c00, 0xc000, 0x0001]);
    const f16 = tensorToF32({ name: "h", dims: [3], type: GGMLType.F16, data: new Uint8Array(halves.buffer) });
    expect(Array.from(f16)).toEqual([1, -2, 2 ** -24]);
  });
});

describe("convertToGGUF", () => {
  it("keeps f32 values of stories260K", () => {
    const model = loadStories();
    const gguf = parseGGUF(convertToGGUF(model, { type: "f32" }), "converted.gguf");
    expect(gguf.tensors.size).toBe(model.tensors.size);
    for (const [name, source] of model.tensors) {
      const converted = gguf.tensors.get(name)!;
      expect(converted.type, name).toBe(GGMLType.F32);
      expect(converted.dims, name).toEqual(source.dims);
      expect(Buffer.from(converted.data).equals(Buffer.from(source.data)), name).toBe(true);
    }
    expect(metadataValue(gguf.metadata, "general.file_type")).toBe(0);
    expect(metadataValue(gguf.metadata, "general.name")).toBe("stories260K");
  });

  it("matches llama.cpp's stories260K.gguf", () => {
    const ours = parseGGUF(convertToGGUF(loadStories(), { type: "f32" }), "converted.gguf");
    const reference = parseGGUF(new Uint8Array(readFileSync(GGUF_PATH)), GGUF_PATH);

    for (const [name, tensor] of reference.tensors) {
      // llama.cpp writes the tied classifier out; convert leaves it absent, which means tied.
      const converted = ours.tensors.get(name === "output.weight" ? "token_embd.weight" : name)!;
      expect(converted.dims, name).toEqual(tensor.dims);
      expect(Buffer.from(converted.data).equals(Buffer.from(tensor.data)), name).toBe(true);
    }

    const sameKeys = [
      "general.architecture",
      "llama.context_length",
      "llama.embedding_length",
      "llama.feed_forward_length",
      "llama.block_count",
      "llama.attention.head_count",
      "llama.attention.head_count_kv",
      "llama.rope.dimension_count",
      "llama.attention.layer_norm_rms_epsilon",
      "tokenizer.ggml.model",
      "tokenizer.ggml.scores",
      "tokenizer.ggml.token_type",
      "tokenizer.ggml.bos_token_id",
      "tokenizer.ggml.eos_token_id",
      "tokenizer.ggml.unknown_token_id",
    ];
    for (const key of sameKeys) expect(ours.metadata.get(key), key).toEqual(reference.metadata.get(key));

    const ourTokens = metadataValue(ours.metadata, "tokenizer.ggml.tokens") as string[];
    const referenceTokens = metadataValue(reference.metadata, "tokenizer.ggml.tokens") as string[];
    // tok512.bin spells BOS and EOS "\n<s>\n" and "\n</s>\n"; llama.cpp's converter wrote "<s>" and "</s>".
    expect(ourTokens.slice(0, 3)).toEqual(["<unk>", "\n<s>\n", "\n</s>\n"]);
    expect(referenceTokens.slice(0, 3)).toEqual(["<unk>", "<s>", "</s>"]);
    expect(ourTokens.slice(3)).toEqual(referenceTokens.slice(3));
  });

  it("re-reads same config", () => {
    const model = loadStories();
    const bytes = convertToGGUF(model, { type: "f32" });
    const reread = readModelFile(bytes, "converted.gguf");
    expect(reread.format).toBe("gguf");
    // The GGUF stores norm_eps as float32.
    expect(reread.config).toEqual({ ...model.config, norm_eps: Math.fround(model.config.norm_eps) });
    expect(reread.vocab).toEqual(model.vocab);
  });

  it("quantizes to q8_0", () => {
    const model = loadStories();
    const bytes = convertToGGUF(model, { type: "q8_0" });
    const gguf = parseGGUF(bytes, "converted-q8.gguf");
    expect(metadataValue(gguf.metadata, "general.file_type")).toBe(7);
    expect(metadataValue(gguf.metadata, "general.quantization_version")).toBe(2);
    expect(gguf.tensors.get("token_embd.weight")!.type).toBe(GGMLType.Q8_0);
    expect(gguf.tensors.get("blk.0.attn_q.weight")!.type).toBe(GGMLType.Q8_0);
    expect(gguf.tensors.get("blk.0.ffn_gate.weight")!.type).toBe(GGMLType.Q8_0);
    expect(gguf.tensors.get("blk.0.ffn_down.weight")!.type).toBe(GGMLType.F32); // rows of 172
    expect(gguf.tensors.get("blk.0.ffn_norm.weight")!.type).toBe(GGMLType.F32);
    expect(bytes.length).toBeLessThan(convertToGGUF(model, { type: "f32" }).length / 2);

    for (const [name, source] of model.tensors) {
      const converted = gguf.tensors.get(name)!;
      const original = tensorToF32(source);
      const restored = tensorToF32(converted);
      if (converted.type === GGMLType.F32) {
        expect(Array.from(restored), name).toEqual(Array.from(original));
        continue;
      }
      let worst = 0;
      for (let block = 0; block < original.length / 32; block++) {
        const slice = original.subarray(block * 32, block * 32 + 32);
        const amax = Math.max(...Array.from(slice, Math.abs));
        for (let i = 0; i < 32; i++) {
          const error = Math.abs(restored[block * 32 + i] - slice[i]);
          worst = Math.max(worst, amax === 0 ? error : error / amax);
        }
      }
      // Half a quantization step is amax/254; the f16 scale adds at most 127 · 2^-11 of a step.
      expect(worst, name).toBeLessThanOrEqual((0.5 + 127 * 2 ** -11) / 127);
    }
  });

  it("matches load-time quantization", () => {
    const model = loadStories();
    const gguf = parseGGUF(convertToGGUF(model, { type: "q8_0" }), "converted-q8.gguf");
    const source = model.tensors.get("blk.2.attn_v.weight")!;
    const converted = gguf.tensors.get("blk.2.attn_v.weight")!;
    const atLoad = quantizeQ8_0(tensorToF32(source), source.dims[0], source.dims[1]);
    const fromFile = decodeQ8_0Blocks(converted.data, converted.dims[0], converted.dims[1]);
    expect(Array.from(fromFile.quants)).toEqual(Array.from(atLoad.quants));
    expect(Array.from(fromFile.scales)).toEqual(Array.from(atLoad.scales));
  });

  it("re-reads q8_0 config", () => {
    const model = loadStories();
    const reread = readModelFile(convertToGGUF(model, { type: "q8_0" }), "converted-q8.gguf");
    expect(reread.config).toEqual({ ...model.config, norm_eps: Math.fround(model.config.norm_eps) });
  });

  it("converts a GGUF source", () => {
    const source = readModelFile(new Uint8Array(readFileSync(GGUF_PATH)), GGUF_PATH);
    const gguf = parseGGUF(convertToGGUF(source, { type: "f32" }), "again.gguf");
    expect(gguf.tensors.has("output.weight")).toBe(true);
    expect(gguf.metadata.get("tokenizer.ggml.tokens")).toEqual(source.metadata.get("tokenizer.ggml.tokens"));
    expect(gguf.metadata.get("general.name")).toEqual({ type: GGUFValueType.STRING, value: "llama" });
    expect(gguf.metadata.get("tokenizer.ggml.padding_token_id")).toEqual({ type: GGUFValueType.UINT32, value: 4294967295 });
    expect(gguf.metadata.get("general.file_type")).toEqual({ type: GGUFValueType.UINT32, value: 0 });
  });

  it("keeps q8_0 blocks as they are", () => {
    const once = readModelFile(convertToGGUF(loadStories(), { type: "q8_0" }), "q8.gguf");
    const twice = parseGGUF(convertToGGUF(once, { type: "q8_0" }), "q8-again.gguf");
    for (const [name, tensor] of once.tensors) {
      expect(Buffer.from(twice.tensors.get(name)!.data).equals(Buffer.from(tensor.data)), name).toBe(true);
    }
  });

  it("rejects model without vocab", () => {
    const model = readModelFile(new Uint8Array(readFileSync(BIN_PATH)), BIN_PATH);
    let caught: unknown;
    try {
      convertToGGUF(model, { type: "f32" });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(OptionError);
    expect((caught as Error).message).toBe(
      `convertToGGUF: ${BIN_PATH}: vocabulary is missing, expected a vocabulary to store as tokenizer.ggml.* (a llama2.c checkpoint needs its tokenizer.bin)`,
    );
  });

  it("rejects unknown type option", () => {
    expect(() => convertToGGUF(loadStories(), { type: "q4_0" as "f32" })).toThrow(
      `convertToGGUF: options: type is "q4_0", expected "f32" or "q8_0"`,
    );
  });
});
