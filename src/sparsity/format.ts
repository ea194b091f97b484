/**
 * The sparsity section of a GGUF file: per-layer thresholds, candidate cutoffs and low-rank gate
 * predictors, under the `dormant.sparsity.` metadata namespace with a format version.
 *
 *   dormant.sparsity.version     u32        format version, 1
 *   dormant.sparsity.target      f32        target sparsity S (fraction of neurons below τ)
 *   dormant.sparsity.rank        u32        predictor rank r
 *   dormant.sparsity.recall      f32        activation-mass recall the cutoffs were fitted for
 *   dormant.sparsity.measure     string     "cats": thresholds apply to |act(gate)|
 *   dormant.sparsity.thresholds  f32[n_layers]  τ_l
 *   dormant.sparsity.cutoffs     f32[n_layers]  c_l: a neuron is a candidate when |act(ĝ_j)| ≥ c_l
 *
 *   blk.N.ffn_pred_down.weight   dims [dim, rank]         P_down (rank rows of dim)
 *   blk.N.ffn_pred_up.weight     dims [rank, hidden_dim]  P_up (hidden_dim rows of rank)
 *
 * The predicted gate is ĝ = P_up · (P_down · xb). A file without the version key runs dense.
 */

import { convertToGGUF, type ConvertOptions } from "../convert.js";
import { formatMismatch, optionMismatch } from "../errors.js";
import { GGUFValueType, type GGUFValue } from "../gguf.js";
import { tensorToF32 } from "../quant.js";
import { GGMLType, type ModelFile, type TensorData } from "../types.js";

/** Sparsity section version that this code writes and the newest it reads. */
export const SPARSITY_VERSION = 1;
/** Prefix of every sparsity metadata key. */
export const SPARSITY_PREFIX = "dormant.sparsity.";
/** The quantity thresholds apply to: |act(g_j)| of the gate pre-activation, as in CATS (Lee et al., arXiv 2404.08763). */
export const SPARSITY_MEASURE = "cats";
/** Largest target sparsity: at 1 every neuron would be dormant. */
export const MAX_SPARSITY = 0.99;

/** Calibrated sparsity of a model, one entry per layer. */
export interface SparsityData {
  version: number;
  /** Target sparsity S: the fraction of |act(g_j)| below τ_l on the calibration text. Stored as f32. */
  sparsity: number;
  rank: number;
  /** Activation-mass recall that the cutoffs were chosen for. Stored as f32. */
  recall: number;
  /** FFN activation the thresholds were measured with ("silu", "relu" or "gelu"). */
  activation: string;
  /** (n_layers) τ_l. */
  thresholds: Float32Array;
  /** (n_layers) candidate cutoffs c_l. */
  cutoffs: Float32Array;
  /** Per layer (rank, dim) row-major P_down. */
  predictorDown: Float32Array[];
  /** Per layer (hidden_dim, rank) row-major P_up. */
  predictorUp: Float32Array[];
}

/** Options of writeSparsityGGUF. */
export interface WriteSparsityOptions {
  /**
   * Tensor type, as in convertToGGUF: with "q8_0", P_down is Q8_0 when dim is a multiple of 32
   * and P_up when rank is. Default "q8_0" when the source contains a Q8_0 tensor, else "f32".
   */
  type?: ConvertOptions["type"];
}

const key = (name: string): string => SPARSITY_PREFIX + name;

/** Name of the P_down tensor of a layer. */
export function predictorDownName(layer: number): string {
  return `blk.${layer}.ffn_pred_down.weight`;
}

/** Name of the P_up tensor of a layer. */
export function predictorUpName(layer: number): string {
  return `blk.${layer}.ffn_pred_up.weight`;
}

const PREDICTOR_TENSOR = /^blk\.\d+\.ffn_pred_(down|up)\.weight$/;

// ---------------------------------------------------------------------------------------------
// reader

const INTEGER_TYPES = new Set([
  GGUFValueType.UINT8, GGUFValueType.INT8, GGUFValueType.UINT16, GGUFValueType.INT16, GGUFValueType.UINT32,
  GGUFValueType.INT32, GGUFValueType.UINT64, GGUFValueType.INT64,
]);
const FLOAT_TYPES = new Set([GGUFValueType.FLOAT32, GGUFValueType.FLOAT64]);

/** Typed getters over the sparsity keys whose errors name the file and the key. */
class SectionReader {
  constructor(private readonly file: ModelFile) {}

  fail(field: string, actual: string, expected: string, cause?: string): never {
    return formatMismatch("loadModel", { source: this.file.source, field, actual, expected }, cause);
  }

  private entry(name: string, expected: string): GGUFValue {
    const entry = this.file.metadata.get(key(name)) as GGUFValue | undefined;
    if (entry === undefined) this.fail(key(name), "missing", expected, "every sparsity key is required once dormant.sparsity.version is present");
    return entry;
  }

  integer(name: string, expected: string): number {
    const entry = this.entry(name, expected);
    if (!INTEGER_TYPES.has(entry.type)) this.fail(`${key(name)} type`, GGUFValueType[entry.type] ?? String(entry.type), "an integer type");
    return Number(entry.value);
  }

  float(name: string, expected: string): number {
    const entry = this.entry(name, expected);
    if (!FLOAT_TYPES.has(entry.type)) this.fail(`${key(name)} type`, GGUFValueType[entry.type] ?? String(entry.type), "FLOAT32");
    return entry.value as number;
  }

  string(name: string, expected: string): string {
    const entry = this.entry(name, expected);
    if (entry.type !== GGUFValueType.STRING) this.fail(`${key(name)} type`, GGUFValueType[entry.type] ?? String(entry.type), "STRING");
    return entry.value as string;
  }

  /** Reads an array of n_layers finite numbers ≥ 0. */
  layerValues(name: string): Float32Array {
    const { n_layers } = this.file.config;
    const expected = `an array of ${n_layers} FLOAT32 (n_layers)`;
    const entry = this.entry(name, expected);
    if (entry.type !== GGUFValueType.ARRAY || !FLOAT_TYPES.has(entry.elementType)) {
      const actual = entry.type === GGUFValueType.ARRAY ? `an array of ${GGUFValueType[entry.elementType]}` : GGUFValueType[entry.type];
      this.fail(`${key(name)} type`, actual ?? String(entry.type), expected);
    }
    const values = entry.value as number[];
    if (values.length !== n_layers) this.fail(`${key(name)} length`, String(values.length), `${n_layers} (n_layers)`);
    values.forEach((value, layer) => {
      if (!(Number.isFinite(value) && value >= 0)) this.fail(`${key(name)}[${layer}]`, String(value), "a finite number ≥ 0");
    });
    return Float32Array.from(values);
  }

  /** Reads a predictor tensor as f32 after checking its presence and dims. */
  predictor(name: string, dims: [number, number], origin: string): Float32Array {
    const tensor = this.file.tensors.get(name);
    const shape = `[${dims.join(", ")}]`;
    if (tensor === undefined) this.fail(`tensor ${name}`, "missing", `a tensor of shape ${shape} from ${origin}`);
    if (tensor.dims.length !== 2 || tensor.dims[0] !== dims[0] || tensor.dims[1] !== dims[1]) {
      this.fail(`tensor ${name} shape`, `[${tensor.dims.join(", ")}]`, `${shape} from ${origin}`);
    }
    return tensorToF32(tensor);
  }
}

/**
 * Reads the sparsity section of a model file, or returns undefined when the file has none
 * (no `dormant.sparsity.version` key). Throws a FormatError naming the file and the key or
 * tensor when the section contradicts itself or the model's config.
 */
export function readSparsity(file: ModelFile): SparsityData | undefined {
  if (!file.metadata.has(key("version"))) return undefined;
  const reader = new SectionReader(file);
  const { dim, hidden_dim, n_layers } = file.config;

  const version = reader.integer("version", String(SPARSITY_VERSION));
  if (version > SPARSITY_VERSION) {
    reader.fail(key("version"), String(version), String(SPARSITY_VERSION), "file written by a newer dormant; upgrade");
  }
  if (version !== SPARSITY_VERSION) reader.fail(key("version"), String(version), String(SPARSITY_VERSION));

  const measure = reader.string("measure", `"${SPARSITY_MEASURE}"`);
  if (measure !== SPARSITY_MEASURE) reader.fail(key("measure"), JSON.stringify(measure), `"${SPARSITY_MEASURE}" (thresholds on |act(gate)|)`);

  const sparsity = reader.float("target", `a number in [0, ${MAX_SPARSITY}]`);
  // The key is FLOAT32, and f32(0.99) is slightly above 0.99.
  if (!(sparsity >= 0 && sparsity <= Math.fround(MAX_SPARSITY))) reader.fail(key("target"), String(sparsity), `a number in [0, ${MAX_SPARSITY}]`);

  const maxRank = Math.min(dim, hidden_dim);
  const rank = reader.integer("rank", `an integer in [1, ${maxRank}]`);
  if (rank < 1 || rank > maxRank) reader.fail(key("rank"), String(rank), `an integer in [1, ${maxRank}] (min(dim, hidden_dim))`);

  const recall = reader.float("recall", "a number in (0, 1]");
  if (!(recall > 0 && recall <= 1)) reader.fail(key("recall"), String(recall), "a number in (0, 1]");

  const thresholds = reader.layerValues("thresholds");
  const cutoffs = reader.layerValues("cutoffs");

  const predictorDown: Float32Array[] = [];
  const predictorUp: Float32Array[] = [];
  const rankOrigin = `${key("rank")} = ${rank}`;
  for (let layer = 0; layer < n_layers; layer++) {
    predictorDown.push(reader.predictor(predictorDownName(layer), [dim, rank], `dim = ${dim} and ${rankOrigin}`));
    predictorUp.push(reader.predictor(predictorUpName(layer), [rank, hidden_dim], `${rankOrigin} and hidden_dim = ${hidden_dim}`));
  }
  return {
    version, sparsity, rank, recall, activation: file.config.activation, thresholds, cutoffs, predictorDown, predictorUp,
  };
}

// ---------------------------------------------------------------------------------------------
// writer

/** Checks that data fits the model's config before it is written. */
function checkData(file: ModelFile, data: SparsityData): void {
  const { dim, hidden_dim, n_layers } = file.config;
  const fail = (field: string, actual: string, expected: string): never =>
    optionMismatch("writeSparsityGGUF", { source: "sparsity data", field, actual, expected });

  if (data.version !== SPARSITY_VERSION) fail("version", String(data.version), String(SPARSITY_VERSION));
  if (!(data.sparsity >= 0 && data.sparsity <= MAX_SPARSITY)) fail("sparsity", String(data.sparsity), `a number in [0, ${MAX_SPARSITY}]`);
  if (!(data.recall > 0 && data.recall <= 1)) fail("recall", String(data.recall), "a number in (0, 1]");
  const maxRank = Math.min(dim, hidden_dim);
  if (!Number.isInteger(data.rank) || data.rank < 1 || data.rank > maxRank) {
    fail("rank", String(data.rank), `an integer in [1, ${maxRank}] (min(dim, hidden_dim))`);
  }
  if (data.activation !== file.config.activation) {
    fail("activation", JSON.stringify(data.activation), `${JSON.stringify(file.config.activation)} (the model's activation)`);
  }
  for (const name of ["thresholds", "cutoffs"] as const) {
    const values = data[name];
    if (values.length !== n_layers) fail(`${name} length`, String(values.length), `${n_layers} (n_layers)`);
    values.forEach((value, layer) => {
      if (!(Number.isFinite(value) && value >= 0)) fail(`${name}[${layer}]`, String(value), "a finite number ≥ 0");
    });
  }
  const shapes = [
    ["predictorDown", data.predictorDown, data.rank * dim, `rank × dim = ${data.rank} × ${dim}`],
    ["predictorUp", data.predictorUp, hidden_dim * data.rank, `hidden_dim × rank = ${hidden_dim} × ${data.rank}`],
  ] as const;
  for (const [name, matrices, size, origin] of shapes) {
    if (matrices.length !== n_layers) fail(`${name} length`, String(matrices.length), `${n_layers} (n_layers)`);
    matrices.forEach((matrix, layer) => {
      if (matrix.length !== size) fail(`${name}[${layer}] length`, String(matrix.length), `${size} (${origin})`);
    });
  }
}

function f32Tensor(name: string, dims: number[], values: Float32Array): TensorData {
  const copy = Float32Array.from(values);
  return { name, dims, type: GGMLType.F32, data: new Uint8Array(copy.buffer) };
}

/**
 * Writes the model as convertToGGUF does, plus the sparsity section. A sparsity section already
 * in the source (keys and predictor tensors) is replaced, not merged.
 */
export function writeSparsityGGUF(file: ModelFile, data: SparsityData, options: WriteSparsityOptions = {}): Uint8Array {
  checkData(file, data);
  const { dim, hidden_dim, n_layers } = file.config;
  const type = options.type ?? ([...file.tensors.values()].some((tensor) => tensor.type === GGMLType.Q8_0) ? "q8_0" : "f32");

  const metadata = new Map<string, unknown>();
  for (const [name, value] of file.metadata) if (!name.startsWith(SPARSITY_PREFIX)) metadata.set(name, value);
  const section: Array<[string, GGUFValue]> = [
    ["version", { type: GGUFValueType.UINT32, value: SPARSITY_VERSION }],
    ["target", { type: GGUFValueType.FLOAT32, value: data.sparsity }],
    ["rank", { type: GGUFValueType.UINT32, value: data.rank }],
    ["recall", { type: GGUFValueType.FLOAT32, value: data.recall }],
    ["measure", { type: GGUFValueType.STRING, value: SPARSITY_MEASURE }],
    ["thresholds", { type: GGUFValueType.ARRAY, elementType: GGUFValueType.FLOAT32, value: Array.from(data.thresholds) }],
    ["cutoffs", { type: GGUFValueType.ARRAY, elementType: GGUFValueType.FLOAT32, value: Array.from(data.cutoffs) }],
  ];
  for (const [name, value] of section) metadata.set(key(name), value);

  // Predictors go in as F32; convertToGGUF then stores as Q8_0 those whose rows are a multiple of 32 long.
  const tensors = new Map<string, TensorData>();
  for (const [name, tensor] of file.tensors) if (!PREDICTOR_TENSOR.test(name)) tensors.set(name, tensor);
  for (let layer = 0; layer < n_layers; layer++) {
    tensors.set(predictorDownName(layer), f32Tensor(predictorDownName(layer), [dim, data.rank], data.predictorDown[layer]));
    tensors.set(predictorUpName(layer), f32Tensor(predictorUpName(layer), [data.rank, hidden_dim], data.predictorUp[layer]));
  }
  return convertToGGUF({ ...file, metadata, tensors }, { type });
}
