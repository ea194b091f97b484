/**
 * GGUF v3 reader and writer, the one owner of that format. Layout (all little-endian):
 *
 *   +--------------------------------------------------------------+
 *   | magic "GGUF" | version u32 | n_tensors u64 | n_kv u64        |  header, 24 bytes
 *   +--------------------------------------------------------------+
 *   | n_kv × { key: string, type: u32, value }                     |  metadata
 *   +--------------------------------------------------------------+
 *   | n_tensors × { name: string, n_dims: u32, dims: u64 × n_dims, |  tensor infos
 *   |               type: u32, offset: u64 }                       |
 *   +--------------------------------------------------------------+
 *   | padding to general.alignment (default 32)                    |
 *   +--------------------------------------------------------------+
 *   | tensor data, each at an aligned offset from this point        |  data section
 *   +--------------------------------------------------------------+
 *
 *   string = { length: u64, UTF-8 bytes without terminator }
 *   array  = { element type: u32, count: u64, count × value }
 *
 * dims[0] is the row length (ggml's ne0). Version 2 has the same layout and is accepted, but
 * version 1 used 32-bit counts and is rejected.
 */

import { formatMismatch } from "./errors.js";
import { validateModelTensors } from "./formats/index.js";
import { elementCount, Q8_0_BLOCK_BYTES, Q8_0_BLOCK_VALUES } from "./quant.js";
import { Q4_0_BLOCK_BYTES, Q4_0_BLOCK_VALUES, Q4_K_BLOCK_BYTES, Q6_K_BLOCK_BYTES, QK_K } from "./quant-k.js";
import { GGMLType, type LlamaConfig, type ModelFile, type TensorData, type Vocab } from "./types.js";
import { findPreTokenizer } from "./tokenizer/pretokenize.js";
import { stripsAfterSpecialTokens } from "./tokenizer/special.js";

/** GGUF metadata value types, with the spec's ids. */
export enum GGUFValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** A scalar metadata value. 64-bit integers are numbers when safe (|x| ≤ 2^53 - 1), else bigints. */
export type GGUFScalar = number | bigint | boolean | string;

/** A metadata array. Nested arrays carry their own element type. */
export interface GGUFArrayValue {
  type: GGUFValueType.ARRAY;
  elementType: GGUFValueType;
  value: GGUFScalar[] | GGUFArrayValue[];
}

/** A metadata value with its stored type, so a file can be written back unchanged. */
export type GGUFValue =
  | { type: Exclude<GGUFValueType, GGUFValueType.ARRAY>; value: GGUFScalar }
  | GGUFArrayValue;

/** One metadata entry as writeGGUF takes it. */
export type GGUFMetadataEntry = { key: string } & GGUFValue;

/** A parsed GGUF file. Tensor data are views into the parsed bytes. */
export interface GGUFFile {
  version: number;
  metadata: Map<string, GGUFValue>;
  tensors: Map<string, TensorData>;
  alignment: number;
  /** Byte offset of the data section in the file. */
  dataOffset: number;
}

const GGUF_MAGIC = "GGUF";
const DEFAULT_ALIGNMENT = 32;
const MAX_DIMS = 4;
const MAX_ARRAY_DEPTH = 8;
const HEADER_BYTES = 24;
// Smallest possible encodings, used to reject implausible counts before looping over them.
const MIN_METADATA_ENTRY_BYTES = 8 + 4 + 1;
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8;

/** GGML type names by id (ggml's enum ggml_type), for messages about types dormant cannot read. */
const GGML_TYPE_NAMES: Record<number, string> = {
  0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 4: "Q4_2", 5: "Q4_3", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0",
  9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
  17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
  24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0",
  35: "TQ2_0", 39: "MXFP4",
};

/** Returns "Q4_K (type 12)"-style text for a GGML type id. */
export function ggmlTypeName(type: number): string {
  const name = GGML_TYPE_NAMES[type];
  return name === undefined ? `unknown type ${type}` : `${name} (type ${type})`;
}

/** Block shape of each type dormant reads (ggml's blck_size and type_size), in the order messages list them. */
const TYPE_BLOCKS: ReadonlyMap<GGMLType, { values: number; bytes: number }> = new Map([
  [GGMLType.F32, { values: 1, bytes: 4 }],
  [GGMLType.F16, { values: 1, bytes: 2 }],
  [GGMLType.BF16, { values: 1, bytes: 2 }],
  [GGMLType.Q8_0, { values: Q8_0_BLOCK_VALUES, bytes: Q8_0_BLOCK_BYTES }],
  [GGMLType.Q4_0, { values: Q4_0_BLOCK_VALUES, bytes: Q4_0_BLOCK_BYTES }],
  [GGMLType.Q4_K, { values: QK_K, bytes: Q4_K_BLOCK_BYTES }],
  [GGMLType.Q6_K, { values: QK_K, bytes: Q6_K_BLOCK_BYTES }],
]);

/** Names of the supported types, "F32, F16, BF16, Q8_0, Q4_0, Q4_K or Q6_K". */
const SUPPORTED_TYPE_LIST = (() => {
  const names = [...TYPE_BLOCKS.keys()].map((type) => GGMLType[type]);
  return `${names.slice(0, -1).join(", ")} or ${names[names.length - 1]}`;
})();

/** Returns whether dormant reads tensors of this GGML type. */
export function isSupportedType(type: number): type is GGMLType {
  return TYPE_BLOCKS.has(type);
}

/** Returns the values per block of a supported type: every row length must be a multiple of it. */
export function typeBlockValues(type: GGMLType): number {
  return TYPE_BLOCKS.get(type)!.values;
}

/** Computes the byte length of a tensor of a supported type whose dims[0] is a multiple of the block size. */
export function tensorByteLength(dims: readonly number[], type: GGMLType): number {
  const block = TYPE_BLOCKS.get(type)!;
  return (elementCount(dims) / block.values) * block.bytes;
}

/** Returns the expected-text for a row length that is not a multiple of the type's block size. */
function rowLengthExpectation(type: GGMLType): string {
  const values = typeBlockValues(type);
  return `a multiple of ${values} for ${GGMLType[type]} (one block is ${values} values)`;
}

function alignUp(offset: number, alignment: number): number {
  return Math.ceil(offset / alignment) * alignment;
}

// ---------------------------------------------------------------------------------------------
// reader

/** Bounds-checked little-endian reader that names the item being read in its errors. */
class Reader {
  offset = 0;
  /** The item being read, for truncation messages. */
  item = "header";
  private readonly view: DataView;
  // NOTE: strings must be valid UTF-8 as the GGUF spec requires. llama.cpp does not check this, so a
  // file with a broken token text that llama.cpp loads is rejected here, naming the key and byte.
  private readonly decoder = new TextDecoder("utf-8", { fatal: true });

  constructor(readonly bytes: Uint8Array, readonly source: string) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  fail(field: string, actual: string, expected: string, cause?: string): never {
    return formatMismatch("parseGGUF", { source: this.source, field, actual, expected }, cause);
  }

  need(count: number): void {
    if (count > this.remaining) {
      this.fail(this.item, `cut off at byte ${this.bytes.length}`, `${count} bytes at byte ${this.offset}`, "truncated file");
    }
  }

  u8(): number {
    this.need(1);
    return this.view.getUint8(this.offset++);
  }

  u32(): number {
    this.need(4);
    const value = this.view.getUint32(this.offset, true);
    this.offset += 4;
    return value;
  }

  u64(): number | bigint {
    this.need(8);
    const value = this.view.getBigUint64(this.offset, true);
    this.offset += 8;
    return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }

  i64(): number | bigint {
    this.need(8);
    const value = this.view.getBigInt64(this.offset, true);
    this.offset += 8;
    const safe = value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER);
    return safe ? Number(value) : value;
  }

  /** Reads a count or size that must fit a JS number and the bytes left. */
  count(field: string, bytesEach: number): number {
    const value = this.u64();
    const max = Math.floor(this.remaining / bytesEach);
    if (typeof value === "bigint" || value > max) {
      this.fail(field, String(value), `at most ${max} (${this.remaining} bytes left in the file)`, "corrupt length or truncated file");
    }
    return value;
  }

  string(field: string): string {
    const length = this.count(`${field} string length`, 1);
    const start = this.offset;
    this.offset += length;
    try {
      return this.decoder.decode(this.bytes.subarray(start, start + length));
    } catch {
      return this.fail(field, `invalid UTF-8 at byte ${start}`, "a UTF-8 string");
    }
  }

  scalar(type: GGUFValueType, field: string): GGUFScalar {
    const at = this.offset;
    switch (type) {
      case GGUFValueType.UINT8: return this.u8();
      case GGUFValueType.INT8: this.need(1); this.offset += 1; return this.view.getInt8(at);
      case GGUFValueType.UINT16: this.need(2); this.offset += 2; return this.view.getUint16(at, true);
      case GGUFValueType.INT16: this.need(2); this.offset += 2; return this.view.getInt16(at, true);
      case GGUFValueType.UINT32: return this.u32();
      case GGUFValueType.INT32: this.need(4); this.offset += 4; return this.view.getInt32(at, true);
      case GGUFValueType.FLOAT32: this.need(4); this.offset += 4; return this.view.getFloat32(at, true);
      case GGUFValueType.FLOAT64: this.need(8); this.offset += 8; return this.view.getFloat64(at, true);
      case GGUFValueType.UINT64: return this.u64();
      case GGUFValueType.INT64: return this.i64();
      case GGUFValueType.STRING: return this.string(field);
      case GGUFValueType.BOOL: {
        const byte = this.u8();
        if (byte > 1) this.fail(field, `byte ${byte} at byte ${at}`, "a bool (0 or 1)");
        return byte === 1;
      }
      default:
        return this.fail(`${field} type`, String(type), "a value type id 0..12");
    }
  }
}

const MIN_VALUE_BYTES: Record<number, number> = {
  [GGUFValueType.UINT8]: 1, [GGUFValueType.INT8]: 1, [GGUFValueType.BOOL]: 1,
  [GGUFValueType.UINT16]: 2, [GGUFValueType.INT16]: 2,
  [GGUFValueType.UINT32]: 4, [GGUFValueType.INT32]: 4, [GGUFValueType.FLOAT32]: 4,
  [GGUFValueType.UINT64]: 8, [GGUFValueType.INT64]: 8, [GGUFValueType.FLOAT64]: 8,
  [GGUFValueType.STRING]: 8, [GGUFValueType.ARRAY]: 12,
};

function readValue(reader: Reader, type: number, field: string, depth: number): GGUFValue {
  if (type !== GGUFValueType.ARRAY) {
    return { type, value: reader.scalar(type, field) } as GGUFValue;
  }
  if (depth >= MAX_ARRAY_DEPTH) {
    reader.fail(`${field} array nesting`, `deeper than ${MAX_ARRAY_DEPTH}`, `at most ${MAX_ARRAY_DEPTH} levels`);
  }
  const elementType = reader.u32();
  const bytesEach = MIN_VALUE_BYTES[elementType];
  if (bytesEach === undefined) reader.fail(`${field} array element type`, String(elementType), "a value type id 0..12");
  const count = reader.count(`${field} array length`, bytesEach);

  if (elementType === GGUFValueType.ARRAY) {
    const nested: GGUFArrayValue[] = [];
    for (let i = 0; i < count; i++) nested.push(readValue(reader, elementType, `${field}[${i}]`, depth + 1) as GGUFArrayValue);
    return { type: GGUFValueType.ARRAY, elementType, value: nested };
  }
  const values: GGUFScalar[] = new Array(count);
  for (let i = 0; i < count; i++) values[i] = reader.scalar(elementType, `${field}[${i}]`);
  return { type: GGUFValueType.ARRAY, elementType, value: values };
}

function readHeader(reader: Reader): { version: number; tensorCount: number; metadataCount: number } {
  if (reader.bytes.length === 0) reader.fail("file", "empty (0 bytes)", "a GGUF file");
  reader.need(4);
  const magicBytes = reader.bytes.subarray(0, 4);
  const magic = String.fromCharCode(...magicBytes);
  if (magic !== GGUF_MAGIC) {
    const hex = Array.from(magicBytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const cause = magic === "FUGG" ? "byte-swapped magic: a wrong-endian file" : "not a GGUF file, or a wrong-endian one";
    reader.fail("magic", `${JSON.stringify(magic)} (bytes ${hex})`, `"GGUF" (bytes 47 47 55 46)`, cause);
  }
  reader.offset = 4;
  const version = reader.u32();
  if (version !== 3 && version !== 2) {
    const swapped = version > 0xffff && (version & 0xffff) === 0;
    const cause = swapped
      ? "the version bytes are byte-swapped: a big-endian GGUF, which dormant does not read"
      : version === 1 ? "GGUF v1 used 32-bit counts; re-convert the model with a current llama.cpp" : "unknown GGUF version";
    reader.fail("version", String(version), "3 (or 2)", cause);
  }

  const tensorCount = reader.u64();
  const metadataCount = reader.u64();
  const room = reader.bytes.length - HEADER_BYTES;
  const maxMetadata = Math.floor(room / MIN_METADATA_ENTRY_BYTES);
  if (typeof metadataCount === "bigint" || metadataCount > maxMetadata) {
    reader.fail("metadata count", String(metadataCount), `at most ${maxMetadata} for a file of ${reader.bytes.length} bytes`, "corrupt header or truncated file");
  }
  const maxTensors = Math.floor((room - metadataCount * MIN_METADATA_ENTRY_BYTES) / MIN_TENSOR_INFO_BYTES);
  if (typeof tensorCount === "bigint" || tensorCount > maxTensors) {
    reader.fail("tensor count", String(tensorCount), `at most ${maxTensors} for a file of ${reader.bytes.length} bytes`, "corrupt header or truncated file");
  }
  return { version, tensorCount, metadataCount };
}

function readMetadata(reader: Reader, count: number): Map<string, GGUFValue> {
  const metadata = new Map<string, GGUFValue>();
  for (let i = 0; i < count; i++) {
    reader.item = `metadata entry ${i}`;
    const key = reader.string(`metadata entry ${i} key`);
    if (key === "") reader.fail(`metadata entry ${i} key`, "empty", "a non-empty key");
    if (metadata.has(key)) reader.fail(`metadata key ${key}`, "duplicated", "each key once");
    reader.item = `metadata ${key}`;
    const type = reader.u32();
    metadata.set(key, readValue(reader, type, `metadata ${key}`, 0));
  }
  return metadata;
}

interface TensorInfo {
  name: string;
  dims: number[];
  type: GGMLType;
  offset: number;
}

function readTensorInfo(reader: Reader, index: number, names: Set<string>): TensorInfo {
  reader.item = `tensor info ${index}`;
  const name = reader.string(`tensor info ${index} name`);
  if (name === "") reader.fail(`tensor info ${index} name`, "empty", "a non-empty name");
  if (names.has(name)) reader.fail(`tensor ${name}`, "duplicated", "each tensor name once");
  names.add(name);
  reader.item = `tensor info ${index} (${name})`;

  const nDims = reader.u32();
  if (nDims < 1 || nDims > MAX_DIMS) reader.fail(`tensor ${name} n_dims`, String(nDims), `1..${MAX_DIMS}`);
  const dims: number[] = [];
  for (let d = 0; d < nDims; d++) {
    const size = reader.u64();
    // Every supported type takes at least 4.5 bits per value (Q4_0, Q4_K), so no dimension exceeds twice the file length.
    if (typeof size === "bigint" || size < 1 || size > 2 * reader.bytes.length) {
      reader.fail(`tensor ${name} dims[${d}]`, String(size), `1..${2 * reader.bytes.length} for a file of ${reader.bytes.length} bytes`, "corrupt tensor info");
    }
    dims.push(size);
  }

  const type = reader.u32();
  if (!isSupportedType(type)) {
    reader.fail(`tensor ${name} type`, ggmlTypeName(type), SUPPORTED_TYPE_LIST, "dormant does not read this quantization yet, so use a file of one of these types");
  }
  // dims[0] is the row length, and ggml never lets a block span two rows.
  if (dims[0] % typeBlockValues(type) !== 0) {
    reader.fail(`tensor ${name} dims[0]`, String(dims[0]), rowLengthExpectation(type));
  }
  const offset = reader.u64();
  if (typeof offset === "bigint") {
    reader.fail(`tensor ${name} offset`, String(offset), `at most ${Number.MAX_SAFE_INTEGER}`, "corrupt tensor info");
  }
  return { name, dims, type, offset };
}

function readAlignment(reader: Reader, metadata: Map<string, GGUFValue>): number {
  const entry = metadata.get("general.alignment");
  if (entry === undefined) return DEFAULT_ALIGNMENT;
  if (entry.type !== GGUFValueType.UINT32) {
    reader.fail("metadata general.alignment type", GGUFValueType[entry.type], "UINT32");
  }
  const alignment = entry.value as number;
  if (alignment === 0 || (alignment & (alignment - 1)) !== 0) {
    reader.fail("metadata general.alignment", String(alignment), "a power of two");
  }
  return alignment;
}

/** Places each tensor in the data section, checking alignment, bounds and overlap. */
function placeTensors(reader: Reader, infos: TensorInfo[], alignment: number, dataOffset: number): Map<string, TensorData> {
  const length = reader.bytes.length;
  const tensors = new Map<string, TensorData>();
  const spans: Array<{ name: string; start: number; end: number }> = [];
  for (const info of infos) {
    if (info.offset % alignment !== 0) {
      reader.fail(`tensor ${info.name} offset`, String(info.offset), `a multiple of ${alignment} (general.alignment)`, "corrupt tensor info");
    }
    const byteLength = tensorByteLength(info.dims, info.type);
    const start = dataOffset + info.offset;
    const present = Math.max(0, Math.min(byteLength, length - start));
    if (present < byteLength) {
      reader.fail(
        `tensor ${info.name} data`,
        `${present} bytes present (file ends at byte ${length})`,
        `${byteLength} bytes at byte ${start} for ${GGMLType[info.type]} [${info.dims.join(", ")}]`,
        "truncated file",
      );
    }
    spans.push({ name: info.name, start, end: start + byteLength });
    tensors.set(info.name, { name: info.name, dims: info.dims, type: info.type, data: reader.bytes.subarray(start, start + byteLength) });
  }

  spans.sort((a, b) => a.start - b.start);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i].start < spans[i - 1].end) {
      const [previous, current] = [spans[i - 1], spans[i]];
      reader.fail(`tensor ${current.name} data`, `bytes ${current.start}..${current.end}`, `no overlap with tensor ${previous.name} at bytes ${previous.start}..${previous.end}`, "corrupt tensor info");
    }
  }
  return tensors;
}

/** Parses and validates a GGUF v3 (or v2) file. Tensor data stay views into `bytes`. */
export function parseGGUF(bytes: Uint8Array, source: string): GGUFFile {
  const reader = new Reader(bytes, source);
  const { version, tensorCount, metadataCount } = readHeader(reader);
  const metadata = readMetadata(reader, metadataCount);

  const names = new Set<string>();
  const infos: TensorInfo[] = [];
  for (let i = 0; i < tensorCount; i++) infos.push(readTensorInfo(reader, i, names));

  const alignment = readAlignment(reader, metadata);
  const dataOffset = alignUp(reader.offset, alignment);
  const tensors = placeTensors(reader, infos, alignment, dataOffset);
  return { version, metadata, tensors, alignment, dataOffset };
}

// ---------------------------------------------------------------------------------------------
// metadata → ModelFile

const WHERE_LOAD = "loadModel";
const INTEGER_TYPES = new Set([
  GGUFValueType.UINT8, GGUFValueType.INT8, GGUFValueType.UINT16, GGUFValueType.INT16, GGUFValueType.UINT32,
  GGUFValueType.INT32, GGUFValueType.UINT64, GGUFValueType.INT64,
]);
const FLOAT_TYPES = new Set([GGUFValueType.FLOAT32, GGUFValueType.FLOAT64]);

function typeName(type: GGUFValueType): string {
  return GGUFValueType[type] ?? `type ${type}`;
}

/** Typed getters over GGUF metadata whose errors name the key and the file. */
class MetadataReader {
  constructor(private readonly metadata: Map<string, GGUFValue>, private readonly source: string) {}

  fail(field: string, actual: string, expected: string, cause?: string): never {
    return formatMismatch(WHERE_LOAD, { source: this.source, field, actual, expected }, cause);
  }

  has(key: string): boolean {
    return this.metadata.has(key);
  }

  private get(key: string, expected: string): GGUFValue {
    const entry = this.metadata.get(key);
    if (entry === undefined) this.fail(`metadata key ${key}`, "missing", expected);
    return entry;
  }

  integer(key: string, fallback?: number): number {
    if (fallback !== undefined && !this.metadata.has(key)) return fallback;
    const entry = this.get(key, "an integer");
    if (!INTEGER_TYPES.has(entry.type)) this.fail(`metadata ${key} type`, typeName(entry.type), "an integer type");
    if (typeof entry.value === "bigint") this.fail(`metadata ${key}`, String(entry.value), `at most ${Number.MAX_SAFE_INTEGER}`);
    return entry.value as number;
  }

  positiveInteger(key: string, fallback?: number): number {
    const value = this.integer(key, fallback);
    if (value < 1) this.fail(`metadata ${key}`, String(value), "a positive integer");
    return value;
  }

  float(key: string, fallback: number): number {
    if (!this.metadata.has(key)) return fallback;
    const entry = this.get(key, "a number");
    if (!FLOAT_TYPES.has(entry.type)) this.fail(`metadata ${key} type`, typeName(entry.type), "FLOAT32 or FLOAT64");
    const value = entry.value as number;
    if (!(value > 0 && Number.isFinite(value))) this.fail(`metadata ${key}`, String(value), "a positive finite number");
    return value;
  }

  string(key: string): string {
    const entry = this.get(key, "a string");
    if (entry.type !== GGUFValueType.STRING) this.fail(`metadata ${key} type`, typeName(entry.type), "STRING");
    return entry.value as string;
  }

  bool(key: string, fallback: boolean): boolean {
    if (!this.metadata.has(key)) return fallback;
    const entry = this.get(key, "a bool");
    if (entry.type !== GGUFValueType.BOOL) this.fail(`metadata ${key} type`, typeName(entry.type), "BOOL");
    return entry.value as boolean;
  }

  array(key: string, elementTypes: Set<GGUFValueType>, expected: string): GGUFScalar[] {
    const entry = this.get(key, `an array of ${expected}`);
    if (entry.type !== GGUFValueType.ARRAY || !elementTypes.has(entry.elementType)) {
      const actual = entry.type === GGUFValueType.ARRAY ? `an array of ${typeName(entry.elementType)}` : typeName(entry.type);
      this.fail(`metadata ${key} type`, actual, `an array of ${expected}`);
    }
    return entry.value as GGUFScalar[];
  }
}

/**
 * Reads the `tokenizer.ggml.*` metadata of a GGUF file (also of a vocab-only file) into a Vocab:
 * "llama" (SentencePiece) or "gpt2" (byte-level BPE, with merges and a pre-tokenizer name).
 * Defaults follow llama.cpp's loader.
 */
export function ggufToVocab(gguf: GGUFFile, source: string): Vocab {
  const meta = new MetadataReader(gguf.metadata, source);
  const model = meta.string("tokenizer.ggml.model");
  if (model !== "llama" && model !== "gpt2") {
    meta.fail(
      "metadata tokenizer.ggml.model", JSON.stringify(model), `"llama" or "gpt2"`,
      "only SentencePiece and byte-level BPE vocabularies are supported so far",
    );
  }
  const bpe = model === "gpt2";

  const tokens = meta.array("tokenizer.ggml.tokens", new Set([GGUFValueType.STRING]), "STRING") as string[];
  if (tokens.length === 0) meta.fail("metadata tokenizer.ggml.tokens", "empty", "at least one token");
  // Byte-level BPE ranks merges instead of scoring pieces, so its files usually have no scores.
  const scores = bpe && !meta.has("tokenizer.ggml.scores")
    ? new Array<number>(tokens.length).fill(0)
    : meta.array("tokenizer.ggml.scores", FLOAT_TYPES, "FLOAT32");
  const types = meta.array("tokenizer.ggml.token_type", INTEGER_TYPES, "INT32");
  for (const [key, list] of [["tokenizer.ggml.scores", scores], ["tokenizer.ggml.token_type", types]] as const) {
    if (list.length !== tokens.length) {
      meta.fail(`metadata ${key} length`, String(list.length), `${tokens.length} (the length of tokenizer.ggml.tokens)`);
    }
  }

  const tokenId = (key: string, fallback: number): number => {
    const id = meta.integer(key, fallback);
    if (id < 0 || id >= tokens.length) meta.fail(`metadata ${key}`, String(id), `a token id in 0..${tokens.length - 1}`);
    return id;
  };
  const optionalTokenId = (key: string): number | undefined => (meta.has(key) ? tokenId(key, 0) : undefined);
  const optionalString = (key: string): string | undefined => (meta.has(key) ? meta.string(key) : undefined);
  const pre = bpe ? optionalString("tokenizer.ggml.pre") : undefined;
  // Defaults are llama.cpp's: SentencePiece's usual ids, and 11 for byte-level BPE.
  return {
    model,
    tokens,
    scores: Float32Array.from(scores as number[]),
    types: Int32Array.from(types as number[]),
    bos_id: tokenId("tokenizer.ggml.bos_token_id", bpe ? 11 : 1),
    eos_id: tokenId("tokenizer.ggml.eos_token_id", bpe ? 11 : 2),
    unk_id: bpe ? optionalTokenId("tokenizer.ggml.unknown_token_id") ?? -1 : tokenId("tokenizer.ggml.unknown_token_id", 0),
    add_bos: meta.bool("tokenizer.ggml.add_bos_token", bpe ? findPreTokenizer(pre)?.addBos ?? false : true),
    add_eos: meta.has("tokenizer.ggml.add_eos_token") ? meta.bool("tokenizer.ggml.add_eos_token", false) : undefined,
    add_space_prefix: meta.bool("tokenizer.ggml.add_space_prefix", !bpe),
    merges: bpe ? (meta.array("tokenizer.ggml.merges", new Set([GGUFValueType.STRING]), "STRING") as string[]) : undefined,
    pre,
    eot_id: optionalTokenId("tokenizer.ggml.eot_token_id"),
    special_rstrip: stripsAfterSpecialTokens(optionalString("general.name")) || undefined,
  };
}

/**
 * Supported architectures and their RoPE pairing, by llama.cpp's per-architecture rule: "llama"
 * rotates adjacent pairs (NORM), "qwen2" rotates the two halves of each head (NEOX).
 */
const ROPE_TYPES: Record<string, "norm" | "neox"> = { llama: "norm", qwen2: "neox" };

/**
 * Reads the RoPE scaling: none, or linear with `ARCH.rope.scaling.factor` (positions divided by
 * it). Llama 3.1's scaling arrives as the rope_freqs.weight tensor instead, which the model places.
 */
function ropeScalingFactor(meta: MetadataReader, key: (name: string) => string): number {
  const type = meta.has(key("rope.scaling.type")) ? meta.string(key("rope.scaling.type")) : "none";
  if (type === "none") return 1;
  if (type !== "linear") {
    meta.fail(`metadata ${key("rope.scaling.type")}`, JSON.stringify(type), '"none" or "linear"', "this RoPE scaling is not supported");
  }
  return meta.float(key("rope.scaling.factor"), 1);
}

/** GGUF key naming the FFN activation of llama-family files; llama.cpp files (SwiGLU) lack it. */
export const FFN_ACTIVATION_KEY = "dormant.ffn_activation";

/** Reads the FFN activation: "silu" (the default, as in every llama.cpp llama file), "relu" or "gelu". */
function ffnActivation(meta: MetadataReader, metadata: Map<string, GGUFValue>): LlamaConfig["activation"] {
  if (!metadata.has(FFN_ACTIVATION_KEY)) return "silu";
  const value = meta.string(FFN_ACTIVATION_KEY);
  if (value !== "silu" && value !== "relu" && value !== "gelu") {
    meta.fail(`metadata ${FFN_ACTIVATION_KEY}`, JSON.stringify(value), '"silu", "relu" or "gelu"');
  }
  return value;
}

/**
 * Builds a ModelFile from a parsed GGUF: the llama config from `llama.*` metadata, the vocabulary
 * when `tokenizer.ggml.model` is present, and the tensors, validated against the config.
 * ModelFile.metadata maps each key to its GGUFValue record (type and value).
 */
export function ggufToModelFile(gguf: GGUFFile, source: string): ModelFile {
  const meta = new MetadataReader(gguf.metadata, source);
  const architecture = meta.string("general.architecture");
  const ropeType = ROPE_TYPES[architecture];
  if (ropeType === undefined) {
    meta.fail(
      "metadata general.architecture", JSON.stringify(architecture),
      Object.keys(ROPE_TYPES).map((name) => `"${name}"`).join(" or "), "this architecture is not supported",
    );
  }
  const key = (name: string): string => `${architecture}.${name}`;

  const vocab = meta.has("tokenizer.ggml.model") ? ggufToVocab(gguf, source) : undefined;
  const embedding = gguf.tensors.get("token_embd.weight");
  if (vocab === undefined && embedding === undefined) {
    meta.fail("tensor token_embd.weight", "missing", "a tensor of shape [dim, vocab_size]", "and the file has no tokenizer.ggml.tokens to give vocab_size");
  }

  const n_heads = meta.positiveInteger(key("attention.head_count"));
  const config: LlamaConfig = {
    architecture,
    dim: meta.positiveInteger(key("embedding_length")),
    hidden_dim: meta.positiveInteger(key("feed_forward_length")),
    n_layers: meta.positiveInteger(key("block_count")),
    n_heads,
    n_kv_heads: meta.positiveInteger(key("attention.head_count_kv"), n_heads),
    vocab_size: vocab !== undefined ? vocab.tokens.length : embedding!.dims[1] ?? 1,
    seq_len: meta.positiveInteger(key("context_length")),
    norm_eps: meta.float(key("attention.layer_norm_rms_epsilon"), 1e-5),
    rope_theta: meta.float(key("rope.freq_base"), 10000),
    rope_type: ropeType,
    rope_scaling_factor: ropeScalingFactor(meta, key),
    activation: ffnActivation(meta, gguf.metadata),
    // A FFN without gate tensors is act(up x) followed by down.
    gated: gguf.tensors.has("blk.0.ffn_gate.weight"),
  };

  const file: ModelFile = { source, format: "gguf", config, tensors: gguf.tensors, vocab, metadata: gguf.metadata };
  validateModelTensors(file);
  return file;
}

// ---------------------------------------------------------------------------------------------
// writer

/** Growable little-endian byte buffer for the header, metadata and tensor infos. */
class Writer {
  bytes = new Uint8Array(1024);
  view = new DataView(this.bytes.buffer);
  offset = 0;
  private readonly encoder = new TextEncoder();

  reserve(count: number): number {
    if (this.offset + count > this.bytes.length) {
      const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.offset + count));
      grown.set(this.bytes);
      this.bytes = grown;
      this.view = new DataView(grown.buffer);
    }
    const at = this.offset;
    this.offset += count;
    return at;
  }

  u32(value: number): void {
    const at = this.reserve(4);
    this.view.setUint32(at, value, true);
  }

  u64(value: number | bigint): void {
    const at = this.reserve(8);
    this.view.setBigUint64(at, BigInt(value), true);
  }

  string(value: string): void {
    const encoded = this.encoder.encode(value);
    this.u64(encoded.length);
    const at = this.reserve(encoded.length);
    this.bytes.set(encoded, at);
  }
}

const INTEGER_RANGES: Partial<Record<GGUFValueType, [bigint, bigint]>> = {
  [GGUFValueType.UINT8]: [0n, 255n],
  [GGUFValueType.INT8]: [-128n, 127n],
  [GGUFValueType.UINT16]: [0n, 65535n],
  [GGUFValueType.INT16]: [-32768n, 32767n],
  [GGUFValueType.UINT32]: [0n, 4294967295n],
  [GGUFValueType.INT32]: [-2147483648n, 2147483647n],
  [GGUFValueType.UINT64]: [0n, 18446744073709551615n],
  [GGUFValueType.INT64]: [-9223372036854775808n, 9223372036854775807n],
};

function writeFail(field: string, actual: string, expected: string): never {
  return formatMismatch("writeGGUF", { source: "model", field, actual, expected });
}

function writeScalar(writer: Writer, type: GGUFValueType, value: GGUFScalar, field: string): void {
  const range = INTEGER_RANGES[type];
  if (range !== undefined) {
    const isInteger = typeof value === "bigint" || (typeof value === "number" && Number.isSafeInteger(value));
    const big = isInteger ? BigInt(value as number | bigint) : 0n;
    if (!isInteger || big < range[0] || big > range[1]) {
      writeFail(field, String(value), `an integer in ${range[0]}..${range[1]} (${typeName(type)})`);
    }
    const at = writer.reserve(MIN_VALUE_BYTES[type]);
    const view = writer.view;
    switch (type) {
      case GGUFValueType.UINT8: view.setUint8(at, Number(big)); break;
      case GGUFValueType.INT8: view.setInt8(at, Number(big)); break;
      case GGUFValueType.UINT16: view.setUint16(at, Number(big), true); break;
      case GGUFValueType.INT16: view.setInt16(at, Number(big), true); break;
      case GGUFValueType.UINT32: view.setUint32(at, Number(big), true); break;
      case GGUFValueType.INT32: view.setInt32(at, Number(big), true); break;
      case GGUFValueType.UINT64: view.setBigUint64(at, big, true); break;
      default: view.setBigInt64(at, big, true); break;
    }
    return;
  }
  switch (type) {
    case GGUFValueType.FLOAT32:
    case GGUFValueType.FLOAT64: {
      if (typeof value !== "number") writeFail(field, String(value), `a number (${typeName(type)})`);
      const at = writer.reserve(MIN_VALUE_BYTES[type]);
      if (type === GGUFValueType.FLOAT32) writer.view.setFloat32(at, value, true);
      else writer.view.setFloat64(at, value, true);
      return;
    }
    case GGUFValueType.BOOL:
      if (typeof value !== "boolean") writeFail(field, String(value), "a boolean (BOOL)");
      writer.bytes[writer.reserve(1)] = value ? 1 : 0;
      return;
    case GGUFValueType.STRING:
      if (typeof value !== "string") writeFail(field, String(value), "a string (STRING)");
      writer.string(value);
      return;
    default:
      writeFail(`${field} type`, String(type), "a value type id 0..12");
  }
}

function writeValue(writer: Writer, entry: GGUFValue, field: string): void {
  if (entry.type !== GGUFValueType.ARRAY) {
    writeScalar(writer, entry.type, entry.value, field);
    return;
  }
  if (!Array.isArray(entry.value)) writeFail(field, typeof entry.value, "an array of values");
  writer.u32(entry.elementType);
  writer.u64(entry.value.length);
  entry.value.forEach((element: GGUFScalar | GGUFArrayValue, i: number) => {
    const elementField = `${field}[${i}]`;
    if (entry.elementType === GGUFValueType.ARRAY) {
      const nested = element as GGUFArrayValue;
      if (nested?.type !== GGUFValueType.ARRAY) writeFail(elementField, String(element), "a nested array value");
      writeValue(writer, nested, elementField);
    } else {
      writeScalar(writer, entry.elementType, element as GGUFScalar, elementField);
    }
  });
}

function checkTensorForWrite(tensor: TensorData, names: Set<string>): void {
  const field = `tensor ${tensor.name}`;
  if (tensor.name === "") writeFail("tensor name", "empty", "a non-empty name");
  if (names.has(tensor.name)) writeFail(field, "duplicated", "each tensor name once");
  names.add(tensor.name);
  if (tensor.dims.length < 1 || tensor.dims.length > MAX_DIMS || !tensor.dims.every((d) => Number.isSafeInteger(d) && d >= 1)) {
    writeFail(`${field} dims`, `[${tensor.dims.join(", ")}]`, `1..${MAX_DIMS} positive sizes`);
  }
  // Unsupported type ids are written with their bytes as given, so tests can build files that readers must reject.
  if (!isSupportedType(tensor.type)) return;
  if (tensor.dims[0] % typeBlockValues(tensor.type) !== 0) {
    writeFail(`${field} dims[0]`, String(tensor.dims[0]), rowLengthExpectation(tensor.type));
  }
  const byteLength = tensorByteLength(tensor.dims, tensor.type);
  if (tensor.data.length !== byteLength) {
    writeFail(`${field} data length`, `${tensor.data.length} bytes`, `${byteLength} bytes for ${GGMLType[tensor.type]} [${tensor.dims.join(", ")}]`);
  }
}

/**
 * Writes a GGUF v3 file. Each metadata entry carries its value type (arrays also their element
 * type). Tensor data are placed in order, each at a multiple of `alignment`. For an alignment
 * other than 32, `general.alignment` is added when absent. Tensors of a type id that
 * isSupportedType rejects are written with their bytes unchecked.
 */
export function writeGGUF(model: { metadata: GGUFMetadataEntry[]; tensors: TensorData[] }, alignment = DEFAULT_ALIGNMENT): Uint8Array {
  if (!Number.isSafeInteger(alignment) || alignment < 1 || (alignment & (alignment - 1)) !== 0 || alignment > 2 ** 30) {
    writeFail("alignment", String(alignment), "a power of two");
  }
  const metadata = [...model.metadata];
  const alignmentEntry = metadata.find((entry) => entry.key === "general.alignment");
  if (alignmentEntry === undefined && alignment !== DEFAULT_ALIGNMENT) {
    metadata.push({ key: "general.alignment", type: GGUFValueType.UINT32, value: alignment });
  } else if (alignmentEntry !== undefined && (alignmentEntry.type !== GGUFValueType.UINT32 || alignmentEntry.value !== alignment)) {
    writeFail("metadata general.alignment", `${typeName(alignmentEntry.type)} ${String(alignmentEntry.value)}`, `UINT32 ${alignment} (the alignment argument)`);
  }

  const writer = new Writer();
  const magicAt = writer.reserve(4);
  writer.bytes.set([0x47, 0x47, 0x55, 0x46], magicAt);
  writer.u32(3);
  writer.u64(model.tensors.length);
  writer.u64(metadata.length);

  const keys = new Set<string>();
  for (const entry of metadata) {
    if (entry.key === "") writeFail("metadata key", "empty", "a non-empty key");
    if (keys.has(entry.key)) writeFail(`metadata key ${entry.key}`, "duplicated", "each key once");
    keys.add(entry.key);
    writer.string(entry.key);
    writer.u32(entry.type);
    writeValue(writer, entry, `metadata ${entry.key}`);
  }

  const names = new Set<string>();
  const offsets: number[] = [];
  let dataLength = 0;
  for (const tensor of model.tensors) {
    checkTensorForWrite(tensor, names);
    writer.string(tensor.name);
    writer.u32(tensor.dims.length);
    for (const size of tensor.dims) writer.u64(size);
    writer.u32(tensor.type);
    writer.u64(dataLength);
    offsets.push(dataLength);
    dataLength = alignUp(dataLength + tensor.data.length, alignment);
  }

  const dataOffset = alignUp(writer.offset, alignment);
  const out = new Uint8Array(model.tensors.length > 0 ? dataOffset + dataLength : writer.offset);
  out.set(writer.bytes.subarray(0, writer.offset));
  model.tensors.forEach((tensor, i) => out.set(tensor.data, dataOffset + offsets[i]));
  return out;
}

/** Lists metadata in writeGGUF's entry form, in file order, so a parsed file can be written back. */
export function metadataEntries(metadata: Map<string, GGUFValue>): GGUFMetadataEntry[] {
  return [...metadata].map(([key, value]) => ({ key, ...value }));
}

/** Returns whether bytes start with the GGUF magic. */
export function hasGGUFMagic(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x47 && bytes[1] === 0x47 && bytes[2] === 0x55 && bytes[3] === 0x46;
}
