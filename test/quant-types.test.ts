import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FormatError } from "../src/errors.js";
import { ggufToModelFile, parseGGUF, writeGGUF, type GGUFFile } from "../src/gguf.js";
import { createModel } from "../src/model.js";
import { elementCount, f16BitsToF32, roundToF16, tensorToF32 } from "../src/quant.js";
import { dequantizeBF16, dequantizeQ6_K } from "../src/quant-k.js";
import { GGMLType, type TensorData, type Vocab } from "../src/types.js";

const QUANTS = fileURLToPath(new URL("../../shared/fixtures/quants/", import.meta.url));
const DEQUANT = join(QUANTS, "dequant");
const ARCHS = fileURLToPath(new URL("../../shared/fixtures/archs/", import.meta.url));

interface DequantCase {
  type: string;
  ggml_type_id: number;
  source_gguf: string;
  tensor: string;
  ne: number[];
  raw_file: string;
  f32_file: string;
  data_offset_in_gguf: number;
}

interface TensorRow {
  name: string;
  type: string;
  ne: number[];
  n_bytes: number;
}

const dequantCases = JSON.parse(readFileSync(join(DEQUANT, "dequant.json"), "utf8")) as DequantCase[];
const modelNames = readdirSync(QUANTS).filter((name) => name.endsWith(".gguf")).map((name) => name.slice(0, -".gguf".length));

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "dormant-quant-types-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Reads a file into a fresh buffer, so views start at byte 0 and byteOffset is the file offset. */
function readBytes(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}

function parseFixture(path: string): GGUFFile {
  return parseGGUF(readBytes(path), path);
}

function bitsOf(values: Float32Array): Uint32Array {
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
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

/** Returns the largest |a[i] − b[i]| / bound(i), so a result ≤ 1 means every value is within its bound. */
function worstRatio(a: Float32Array, b: Float32Array, bound: (i: number) => number): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / bound(i));
  return worst;
}

function halfAt(data: Uint8Array, at: number): number {
  return f16BitsToF32(data[at] | (data[at + 1] << 8));
}

/** Returns |d| of each value's block for a Q8_0 (34-byte) or Q4_0 (18-byte) tensor. */
function blockScales(tensor: TensorData): Float32Array {
  const blockBytes = tensor.type === GGMLType.Q8_0 ? 34 : 18;
  const scales = new Float32Array(elementCount(tensor.dims));
  for (let i = 0; i < scales.length; i++) scales[i] = Math.abs(halfAt(tensor.data, Math.floor(i / 32) * blockBytes));
  return scales;
}

/** Returns the quantization step of each value of a Q4_K (d · 6-bit scale) or Q6_K (d · int8 scale) tensor. */
function kQuantSteps(tensor: TensorData): Float32Array {
  const steps = new Float32Array(elementCount(tensor.dims));
  const { data } = tensor;
  for (let block = 0; block < steps.length / 256; block++) {
    if (tensor.type === GGMLType.Q4_K) {
      const at = block * 144;
      const d = halfAt(data, at);
      for (let j = 0; j < 8; j++) {
        const s = at + 4;
        const scale = j < 4 ? data[s + j] & 63 : (data[s + j + 4] & 15) | ((data[s + j - 4] >> 6) << 4);
        steps.fill(Math.abs(d * scale), block * 256 + j * 32, block * 256 + (j + 1) * 32);
      }
    } else {
      const at = block * 210;
      const d = halfAt(data, at + 208);
      for (let j = 0; j < 16; j++) {
        const scale = (data[at + 192 + j] << 24) >> 24;
        steps.fill(Math.abs(d * scale), block * 256 + j * 16, block * 256 + (j + 1) * 16);
      }
    }
  }
  return steps;
}

describe("dequantization references", () => {
  for (const entry of dequantCases) {
    it(`${entry.type} matches ggml bits`, () => {
      const raw = readBytes(join(DEQUANT, entry.raw_file));
      const expected = bitsOf(new Float32Array(readBytes(join(DEQUANT, entry.f32_file)).buffer));
      const values = tensorToF32({ name: entry.tensor, dims: entry.ne, type: entry.ggml_type_id, data: raw });

      expect(values.length).toBe(expected.length);
      const actual = bitsOf(values);
      const mismatches: string[] = [];
      for (let i = 0; i < expected.length && mismatches.length < 5; i++) {
        if (actual[i] !== expected[i]) mismatches.push(`value ${i}: 0x${actual[i].toString(16)}, expected 0x${expected[i].toString(16)}`);
      }
      expect(mismatches).toEqual([]);
    });

    it(`${entry.type} raw equals GGUF tensor`, () => {
      const gguf = parseFixture(join(QUANTS, entry.source_gguf));
      const tensor = gguf.tensors.get(entry.tensor)!;
      expect(tensor.type).toBe(entry.ggml_type_id);
      expect(tensor.dims).toEqual(entry.ne);
      expect(tensor.data.byteOffset).toBe(entry.data_offset_in_gguf);
      expect(Buffer.from(tensor.data).equals(readBytes(join(DEQUANT, entry.raw_file)))).toBe(true);
    });
  }
});

describe("BF16", () => {
  const specials = Float32Array.of(0, -0, 1, -2.5, 0.15625, 3.0e38, -1e-40, Infinity, -Infinity, 1.1754943508222875e-38);

  it("keeps upper f32 bits", () => {
    const source = new Uint32Array([...bitsOf(specials), 0x7fc12345, 0xffa00001, 0x3f8fffff]);
    const halves = new Uint16Array(source.length);
    for (let i = 0; i < source.length; i++) halves[i] = source[i] >>> 16;

    const values = dequantizeBF16(new Uint8Array(halves.buffer), halves.length);
    const expected = Array.from(source, (bits) => (bits & 0xffff0000) >>> 0);
    expect(Array.from(bitsOf(values))).toEqual(expected);
  });

  it("reads a BF16 GGUF", () => {
    const halves = new Uint16Array(bitsOf(Float32Array.of(1, -2, 0.5, 3, -0.25, 1024)).map((bits) => bits >>> 16));
    const tensor: TensorData = { name: "w", dims: [3, 2], type: GGMLType.BF16, data: new Uint8Array(halves.buffer) };
    const path = join(dir, "bf16.gguf");
    writeFileSync(path, writeGGUF({ metadata: [], tensors: [tensor] }));

    const parsed = parseFixture(path).tensors.get("w")!;
    expect(parsed.type).toBe(GGMLType.BF16);
    expect(Array.from(tensorToF32(parsed))).toEqual([1, -2, 0.5, 3, -0.25, 1024]);
  });
});

describe("quantized fixtures", () => {
  for (const name of modelNames) {
    it(`${name} parses and dequantizes`, () => {
      const gguf = parseFixture(join(QUANTS, `${name}.gguf`));
      const table = (JSON.parse(readFileSync(join(QUANTS, `${name}.json`), "utf8")) as { gguf: { tensors: TensorRow[] } }).gguf.tensors;
      expect(table.length).toBe(gguf.tensors.size);

      for (const row of table) {
        const tensor = gguf.tensors.get(row.name)!;
        expect(GGMLType[tensor.type], row.name).toBe(row.type);
        expect(tensor.dims, row.name).toEqual(row.ne);
        expect(tensor.data.length, row.name).toBe(row.n_bytes);
        const values = tensorToF32(tensor);
        expect(values.length, row.name).toBe(elementCount(row.ne));
        expect(values.every(Number.isFinite), row.name).toBe(true);
      }
    });
  }

  it("F16 is rounded F32 source", () => {
    const source = parseFixture(join(ARCHS, "llama3_style.gguf"));
    const half = parseFixture(join(QUANTS, "llama3_style.F16.gguf"));
    for (const [name, tensor] of half.tensors) {
      const exact = tensorToF32(source.tensors.get(name)!);
      const expected = tensor.type === GGMLType.F16 ? exact.map(roundToF16) : exact;
      expect(Array.from(bitsOf(tensorToF32(tensor))), name).toEqual(Array.from(bitsOf(expected)));
    }
  });

  // Bounds for ggml's Q8_0 and Q4_0 quantizers, in units of the stored f16 scale d' = f16(d),
  // where |d' − d| ≤ 2^-11 |d| while d is a normal f16 (the test checks d' ≥ 2^-14):
  // - Q8_0: d = amax / 127 and q = round(x / d), so |d' q − x| ≤ d / 2 + 127 |d' − d|.
  // - Q4_0: d = max / −8 for the signed value of largest |x|, q = min(15, ⌊x / d + 8.5⌋) − 8.
  //   Rounding costs half a step, but x / d = +8 is clipped to 7, a full step. So |d' q − x| ≤ d + 8 |d' − d|.
  // Against the F16 model, the f16 rounding of the weight itself adds at most 2^-11 |w| + 2^-25.
  const ULP = 2 ** -11;
  const blockBounds: Record<string, number> = {
    Q8_0: (0.5 + 127 * ULP) / (1 - ULP),
    Q4_0: (1 + 8 * ULP) / (1 - ULP),
  };

  for (const name of ["llama3_style.Q8_0", "llama3_style.Q4_0"]) {
    it(`${name} within block bound`, () => {
      const source = parseFixture(join(ARCHS, "llama3_style.gguf"));
      const half = parseFixture(join(QUANTS, "llama3_style.F16.gguf"));
      const quantized = parseFixture(join(QUANTS, `${name}.gguf`));

      for (const [tensorName, tensor] of quantized.tensors) {
        const values = tensorToF32(tensor);
        const exact = tensorToF32(source.tensors.get(tensorName)!);
        const rounded = tensorToF32(half.tensors.get(tensorName)!);
        if (tensor.type === GGMLType.F32) {
          expect(Array.from(values), tensorName).toEqual(Array.from(exact));
          continue;
        }
        const scales = blockScales(tensor);
        const factor = blockBounds[GGMLType[tensor.type]];
        expect(scales.reduce((a, b) => Math.min(a, b)), tensorName).toBeGreaterThanOrEqual(2 ** -14);
        expect(worstRatio(values, exact, (i) => factor * scales[i]), tensorName).toBeLessThanOrEqual(1);
        const f16Bound = (i: number) => factor * scales[i] + ULP * Math.abs(rounded[i]) + 2 ** -25;
        expect(worstRatio(values, rounded, f16Bound), tensorName).toBeLessThanOrEqual(1);
      }
    });
  }

  // Both K-quant files come from one F32 model that is not shipped, so they are compared with each
  // other. Each quantizer rounds to its grid (half a step), but ggml's scale search trades range for
  // a lower squared error and clips values beyond the grid, so one full step each is allowed.
  // Measured worst case: 0.81 of the sum.
  it("Q4_K_M within steps of Q6_K", () => {
    const q4 = parseFixture(join(QUANTS, "llama3_style_256.Q4_K_M.gguf"));
    const q6 = parseFixture(join(QUANTS, "llama3_style_256.Q6_K.gguf"));
    for (const [tensorName, tensor] of q4.tensors) {
      const other = q6.tensors.get(tensorName)!;
      const values = tensorToF32(tensor);
      const reference = tensorToF32(other);
      if (tensor.type === other.type) {
        // Same type from the same source: llama-quantize writes the same bytes.
        expect(Buffer.from(tensor.data).equals(other.data), tensorName).toBe(true);
        continue;
      }
      expect(tensor.type, tensorName).toBe(GGMLType.Q4_K);
      const q4Steps = kQuantSteps(tensor);
      const q6Steps = kQuantSteps(other);
      expect(worstRatio(values, reference, (i) => q4Steps[i] + q6Steps[i]), tensorName).toBeLessThanOrEqual(1);
    }
  });

  // The fixtures' tokenizer is byte-level BPE ("gpt2"), which this loader does not read yet, so a
  // stub vocabulary replaces it. This test covers weight placement only, not tokens or logits.
  for (const name of modelNames) {
    it(`${name} loads at f32`, async () => {
      const path = join(QUANTS, `${name}.gguf`);
      const gguf = parseFixture(path);
      for (const key of [...gguf.metadata.keys()]) if (key.startsWith("tokenizer.")) gguf.metadata.delete(key);
      const file = ggufToModelFile(gguf, path);
      const size = file.config.vocab_size;
      const vocab: Vocab = {
        model: "llama", tokens: Array.from({ length: size }, (_, i) => `<t${i}>`), scores: new Float32Array(size),
        types: new Int32Array(size).fill(1), bos_id: 0, eos_id: 1, unk_id: 2, add_bos: false, add_space_prefix: false,
      };

      const model = await createModel({ ...file, vocab }, { precision: "f32", sparsity: null });
      const rows = model.logits([2046, 791, 272, 391]);
      model.dispose();
      for (const row of rows) expect(row.every(Number.isFinite)).toBe(true);
    });
  }
});

describe("bad input", () => {
  const rowCases: Array<[GGMLType, number, number, number]> = [
    // type, row length, bytes per block, values per block
    [GGMLType.Q4_K, 100, 144, 256],
    [GGMLType.Q6_K, 128, 210, 256],
    [GGMLType.Q4_0, 48, 18, 32],
  ];
  for (const [type, rowLength, blockBytes, blockValues] of rowCases) {
    const typeName = GGMLType[type];
    it(`rejects ${typeName} row of ${rowLength}`, () => {
      // The writer rejects such a row, so the file is written with type id 99 and patched.
      const data = new Uint8Array(Math.ceil(rowLength / blockValues) * blockBytes);
      const bytes = writeGGUF({ metadata: [], tensors: [{ name: "blk.0.attn_k.weight", dims: [rowLength, 1], type: 99 as GGMLType, data }] });
      bytes[bytes.indexOf(99, 24)] = type;
      const path = join(dir, `${typeName}-${rowLength}.gguf`);
      writeFileSync(path, bytes);

      expectFormatError(
        () => parseFixture(path),
        `parseGGUF: ${path}: tensor blk.0.attn_k.weight dims[0] is ${rowLength}, expected a multiple of ${blockValues} for ${typeName} (one block is ${blockValues} values)`,
      );
    });
  }

  it("writer rejects Q4_K row of 100", () => {
    expectFormatError(
      () => writeGGUF({ metadata: [], tensors: [{ name: "w", dims: [100, 2], type: GGMLType.Q4_K, data: new Uint8Array(288) }] }),
      "writeGGUF: model: tensor w dims[0] is 100, expected a multiple of 256 for Q4_K (one block is 256 values)",
    );
  });

  it("rejects truncated Q4_K data", () => {
    const full = readBytes(join(QUANTS, "llama3_style_256.Q4_K_M.gguf"));
    const tensors = [...parseGGUF(full, "full").tensors.values()];
    const last = tensors.reduce((a, b) => (a.data.byteOffset > b.data.byteOffset ? a : b));
    expect(last.type).toBe(GGMLType.Q4_K);
    const start = last.data.byteOffset;
    const end = start + 1000;
    const path = join(dir, "truncated-q4k.gguf");
    writeFileSync(path, full.subarray(0, end));

    expectFormatError(
      () => parseFixture(path),
      `parseGGUF: ${path}: tensor ${last.name} data is 1000 bytes present (file ends at byte ${end}), ` +
        `expected ${last.data.length} bytes at byte ${start} for Q4_K [${last.dims.join(", ")}] (truncated file)`,
    );
  });

  it("rejects Q4_K byte length", () => {
    expectFormatError(
      () => tensorToF32({ name: "blk.0.attn_k.weight", dims: [256], type: GGMLType.Q4_K, data: new Uint8Array(143) }),
      "dequantizeQ4_K: blk.0.attn_k.weight: data length is 143 bytes, expected 144 bytes for 256 Q4_K values (144 bytes per block of 256)",
    );
  });

  it("rejects Q6_K value count", () => {
    expectFormatError(
      () => dequantizeQ6_K(new Uint8Array(210), 200),
      "dequantizeQ6_K: data: value count is 200, expected a multiple of 256 (one Q6_K block)",
    );
  });
});
