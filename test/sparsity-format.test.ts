import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { FormatError, OptionError } from "../src/errors.js";
import { readModelFile } from "../src/formats/index.js";
import { GGUFValueType, metadataEntries, parseGGUF, writeGGUF, type GGUFValue } from "../src/gguf.js";
import { dequantizeQ8_0, quantizeQ8_0 } from "../src/quant.js";
import { predictorDownName, predictorUpName, readSparsity, writeSparsityGGUF, type SparsityData } from "../src/sparsity/format.js";
import { GGMLType, type ModelFile, type TensorData } from "../src/types.js";

const GGUF_PATH = fileURLToPath(new URL("../../shared/models/stories260K.gguf", import.meta.url));
const DIM = 64;
const HIDDEN_DIM = 172;
const N_LAYERS = 5;

const directory = mkdtempSync(join(tmpdir(), "dormant-sparsity-format-"));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

function loadStories(): ModelFile {
  return readModelFile(new Uint8Array(readFileSync(GGUF_PATH)), GGUF_PATH);
}

/** Returns deterministic values in [-1, 1) from a linear congruential sequence. */
function pseudoRandom(length: number, seed: number): Float32Array {
  const values = new Float32Array(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    values[i] = state / 2 ** 31 - 1;
  }
  return values;
}

function syntheticData(rank: number): SparsityData {
  const layers = Array.from({ length: N_LAYERS }, (_, layer) => layer);
  return {
    version: 1,
    sparsity: 0.5,
    rank,
    recall: 0.99,
    activation: "silu",
    thresholds: Float32Array.from(layers, (layer) => 0.01 * (layer + 1)),
    cutoffs: Float32Array.from(layers, (layer) => 0.005 * (layer + 1)),
    predictorDown: layers.map((layer) => pseudoRandom(rank * DIM, 10 + layer)),
    predictorUp: layers.map((layer) => pseudoRandom(HIDDEN_DIM * rank, 20 + layer)),
  };
}

/** Writes bytes into the temp directory and reads them back as a user's file. */
function roundTrip(bytes: Uint8Array, name: string): ModelFile {
  const path = join(directory, name);
  writeFileSync(path, bytes);
  return readModelFile(new Uint8Array(readFileSync(path)), path);
}

/** Writes a file with a valid sparsity section, changed by `edit`, and reads it back. */
function edited(name: string, edit: (metadata: Map<string, GGUFValue>, tensors: Map<string, TensorData>) => void): ModelFile {
  const gguf = parseGGUF(writeSparsityGGUF(loadStories(), syntheticData(8)), name);
  const metadata = new Map(gguf.metadata);
  const tensors = new Map(gguf.tensors);
  edit(metadata, tensors);
  return roundTrip(writeGGUF({ metadata: metadataEntries(metadata), tensors: [...tensors.values()] }), name);
}

function f32Array(values: number[]): GGUFValue {
  return { type: GGUFValueType.ARRAY, elementType: GGUFValueType.FLOAT32, value: values };
}

function u32(value: number): GGUFValue {
  return { type: GGUFValueType.UINT32, value };
}

function expectFormatError(file: ModelFile, message: string): void {
  expect(() => readSparsity(file)).toThrow(FormatError);
  expect(() => readSparsity(file)).toThrow(`loadModel: ${file.source}: ${message}`);
}

describe("readSparsity", () => {
  it("returns undefined without a section", () => {
    expect(readSparsity(loadStories())).toBeUndefined();
  });

  it("round-trips F32 tensors exactly", () => {
    const data = syntheticData(8);
    const file = roundTrip(writeSparsityGGUF(loadStories(), data, { type: "f32" }), "f32.gguf");
    expect(file.tensors.get(predictorDownName(0))!.type).toBe(GGMLType.F32);
    expect(file.tensors.get(predictorUpName(0))!.type).toBe(GGMLType.F32);
    const read = readSparsity(file)!;
    // The file stores target and recall as FLOAT32.
    expect(read).toEqual({ ...data, recall: Math.fround(0.99) });
  });

  it("round-trips Q8_0 within quantization error", () => {
    const data = syntheticData(8);
    const file = roundTrip(writeSparsityGGUF(loadStories(), data, { type: "q8_0" }), "q8.gguf");
    // P_down rows are dim = 64 long, so Q8_0; P_up rows are rank = 8 long, so F32.
    expect(file.tensors.get(predictorDownName(0))!.type).toBe(GGMLType.Q8_0);
    expect(file.tensors.get(predictorUpName(0))!.type).toBe(GGMLType.F32);
    expect(file.tensors.get("blk.0.ffn_gate.weight")!.type).toBe(GGMLType.Q8_0);
    const read = readSparsity(file)!;
    expect(read.thresholds).toEqual(data.thresholds);
    expect(read.cutoffs).toEqual(data.cutoffs);
    for (let layer = 0; layer < N_LAYERS; layer++) {
      const expected = dequantizeQ8_0(quantizeQ8_0(data.predictorDown[layer], DIM, 8), DIM, 8);
      expect(read.predictorDown[layer]).toEqual(expected);
      for (let i = 0; i < expected.length; i++) expect(Math.abs(expected[i] - data.predictorDown[layer][i])).toBeLessThan(1.13 / 254);
      expect(read.predictorUp[layer]).toEqual(data.predictorUp[layer]);
    }
  });

  it("stores P_up as Q8_0 when rank is a multiple of 32", () => {
    const file = roundTrip(writeSparsityGGUF(loadStories(), syntheticData(32), { type: "q8_0" }), "rank32.gguf");
    expect(file.tensors.get(predictorUpName(4))!.type).toBe(GGMLType.Q8_0);
    expect(file.tensors.get(predictorUpName(4))!.dims).toEqual([32, HIDDEN_DIM]);
    expect(readSparsity(file)!.rank).toBe(32);
  });

  it("keeps the source type by default", () => {
    const file = roundTrip(writeSparsityGGUF(loadStories(), syntheticData(8)), "default.gguf");
    expect(file.tensors.get(predictorDownName(0))!.type).toBe(GGMLType.F32);
    expect(file.tensors.get("blk.0.ffn_gate.weight")!.type).toBe(GGMLType.F32);
  });

  it("replaces an existing section", () => {
    const first = roundTrip(writeSparsityGGUF(loadStories(), syntheticData(8)), "first.gguf");
    const data = { ...syntheticData(4), sparsity: 0.25 };
    const second = roundTrip(writeSparsityGGUF(first, data), "second.gguf");
    expect(readSparsity(second)).toEqual({ ...data, recall: Math.fround(0.99) });
    expect(second.tensors.get(predictorDownName(0))!.dims).toEqual([DIM, 4]);
  });

  it("rejects a newer version", () => {
    const file = edited("newer.gguf", (metadata) => metadata.set("dormant.sparsity.version", u32(2)));
    expectFormatError(file, "dormant.sparsity.version is 2, expected 1 (file written by a newer dormant; upgrade)");
  });

  it("rejects version 0", () => {
    const file = edited("v0.gguf", (metadata) => metadata.set("dormant.sparsity.version", u32(0)));
    expectFormatError(file, "dormant.sparsity.version is 0, expected 1");
  });

  it("rejects a missing key", () => {
    const file = edited("no-rank.gguf", (metadata) => metadata.delete("dormant.sparsity.rank"));
    expectFormatError(file, "dormant.sparsity.rank is missing, expected an integer in [1, 64] (every sparsity key is required once dormant.sparsity.version is present)");
  });

  it("rejects a key of the wrong type", () => {
    const file = edited("rank-type.gguf", (metadata) => metadata.set("dormant.sparsity.rank", { type: GGUFValueType.FLOAT32, value: 8 }));
    expectFormatError(file, "dormant.sparsity.rank type is FLOAT32, expected an integer type");
  });

  it("rejects an unknown measure", () => {
    const file = edited("measure.gguf", (metadata) => metadata.set("dormant.sparsity.measure", { type: GGUFValueType.STRING, value: "teal" }));
    expectFormatError(file, `dormant.sparsity.measure is "teal", expected "cats" (thresholds on |act(gate)|)`);
  });

  it("rejects a target out of range", () => {
    const file = edited("target.gguf", (metadata) => metadata.set("dormant.sparsity.target", { type: GGUFValueType.FLOAT32, value: 1 }));
    expectFormatError(file, "dormant.sparsity.target is 1, expected a number in [0, 0.99]");
  });

  it("rejects a recall out of range", () => {
    const file = edited("recall.gguf", (metadata) => metadata.set("dormant.sparsity.recall", { type: GGUFValueType.FLOAT32, value: 0 }));
    expectFormatError(file, "dormant.sparsity.recall is 0, expected a number in (0, 1]");
  });

  it("rejects a rank above dim", () => {
    const file = edited("rank65.gguf", (metadata) => metadata.set("dormant.sparsity.rank", u32(65)));
    expectFormatError(file, "dormant.sparsity.rank is 65, expected an integer in [1, 64] (min(dim, hidden_dim))");
  });

  it("rejects rank 0", () => {
    const file = edited("rank0.gguf", (metadata) => metadata.set("dormant.sparsity.rank", u32(0)));
    expectFormatError(file, "dormant.sparsity.rank is 0, expected an integer in [1, 64] (min(dim, hidden_dim))");
  });

  it("rejects thresholds of the wrong length", () => {
    const file = edited("thresholds4.gguf", (metadata) => metadata.set("dormant.sparsity.thresholds", f32Array([0.1, 0.1, 0.1, 0.1])));
    expectFormatError(file, "dormant.sparsity.thresholds length is 4, expected 5 (n_layers)");
  });

  it("rejects cutoffs of the wrong length", () => {
    const file = edited("cutoffs6.gguf", (metadata) => metadata.set("dormant.sparsity.cutoffs", f32Array([0, 0, 0, 0, 0, 0])));
    expectFormatError(file, "dormant.sparsity.cutoffs length is 6, expected 5 (n_layers)");
  });

  it("rejects thresholds of the wrong element type", () => {
    const file = edited("thresholds-int.gguf", (metadata) => metadata.set("dormant.sparsity.thresholds", {
      type: GGUFValueType.ARRAY, elementType: GGUFValueType.INT32, value: [0, 0, 0, 0, 0],
    }));
    expectFormatError(file, "dormant.sparsity.thresholds type is an array of INT32, expected an array of 5 FLOAT32 (n_layers)");
  });

  it("rejects a negative threshold", () => {
    const file = edited("negative.gguf", (metadata) => metadata.set("dormant.sparsity.thresholds", f32Array([0.1, -0.5, 0.1, 0.1, 0.1])));
    expectFormatError(file, "dormant.sparsity.thresholds[1] is -0.5, expected a finite number ≥ 0");
  });

  it("rejects a non-finite threshold", () => {
    const file = edited("nan.gguf", (metadata) => metadata.set("dormant.sparsity.thresholds", f32Array([0.1, 0.1, 0.1, NaN, 0.1])));
    expectFormatError(file, "dormant.sparsity.thresholds[3] is NaN, expected a finite number ≥ 0");
  });

  it("rejects an infinite cutoff", () => {
    const file = edited("inf.gguf", (metadata) => metadata.set("dormant.sparsity.cutoffs", f32Array([0, 0, Infinity, 0, 0])));
    expectFormatError(file, "dormant.sparsity.cutoffs[2] is Infinity, expected a finite number ≥ 0");
  });

  it("rejects a missing predictor tensor", () => {
    const file = edited("no-up.gguf", (_, tensors) => tensors.delete(predictorUpName(2)));
    expectFormatError(file, "tensor blk.2.ffn_pred_up.weight is missing, expected a tensor of shape [8, 172] from dormant.sparsity.rank = 8 and hidden_dim = 172");
  });

  it("rejects a predictor that contradicts the rank", () => {
    const file = edited("rank4.gguf", (metadata) => metadata.set("dormant.sparsity.rank", u32(4)));
    expectFormatError(file, "tensor blk.0.ffn_pred_down.weight shape is [64, 8], expected [64, 4] from dim = 64 and dormant.sparsity.rank = 4");
  });

  it("rejects a predictor that contradicts dim", () => {
    const file = edited("down-shape.gguf", (_, tensors) => {
      const values = pseudoRandom(8 * 32, 1);
      tensors.set(predictorDownName(1), { name: predictorDownName(1), dims: [32, 8], type: GGMLType.F32, data: new Uint8Array(values.buffer) });
    });
    expectFormatError(file, "tensor blk.1.ffn_pred_down.weight shape is [32, 8], expected [64, 8] from dim = 64 and dormant.sparsity.rank = 8");
  });
});

describe("writeSparsityGGUF", () => {
  const cases: Array<[string, (data: SparsityData) => void, string]> = [
    ["version", (data) => { data.version = 2; }, "version is 2, expected 1"],
    ["sparsity", (data) => { data.sparsity = 1.2; }, "sparsity is 1.2, expected a number in [0, 0.99]"],
    ["recall", (data) => { data.recall = 0; }, "recall is 0, expected a number in (0, 1]"],
    ["rank", (data) => { data.rank = 100; }, "rank is 100, expected an integer in [1, 64] (min(dim, hidden_dim))"],
    ["activation", (data) => { data.activation = "relu"; }, `activation is "relu", expected "silu" (the model's activation)`],
    ["thresholds", (data) => { data.thresholds = new Float32Array(4); }, "thresholds length is 4, expected 5 (n_layers)"],
    ["cutoffs", (data) => { data.cutoffs[1] = -1; }, "cutoffs[1] is -1, expected a finite number ≥ 0"],
    ["predictorDown", (data) => { data.predictorDown.pop(); }, "predictorDown length is 4, expected 5 (n_layers)"],
    ["predictorUp", (data) => { data.predictorUp[3] = new Float32Array(10); }, "predictorUp[3] length is 10, expected 1376 (hidden_dim × rank = 172 × 8)"],
  ];
  for (const [name, edit, message] of cases) {
    it(`rejects bad ${name}`, () => {
      const data = syntheticData(8);
      edit(data);
      expect(() => writeSparsityGGUF(loadStories(), data)).toThrow(OptionError);
      expect(() => writeSparsityGGUF(loadStories(), data)).toThrow(`writeSparsityGGUF: sparsity data: ${message}`);
    });
  }
});
