/**
 * Number formats of model files: IEEE half precision and ggml's Q8_0 block.
 *
 * Q8_0 block (34 bytes, little-endian), 32 consecutive values of one row:
 *
 *   byte 0      2                                            34
 *        +------+--------------------------------------------+
 *        |  d   | q[0] q[1] ... q[31]                        |
 *        | f16  | int8 × 32                                  |
 *        +------+--------------------------------------------+
 *   value[i] = d · q[i]
 *
 * Typed-array views assume a little-endian host, as every wasm engine and every target is.
 */

import { formatMismatch } from "./errors.js";
import { dequantizeBF16, dequantizeQ4_0, dequantizeQ4_K, dequantizeQ6_K } from "./quant-k.js";
import { GGMLType, type TensorData } from "./types.js";

/** Values per Q8_0 block. */
export const Q8_0_BLOCK_VALUES = 32;
/** Bytes per Q8_0 block: an f16 scale and 32 int8 quants. */
export const Q8_0_BLOCK_BYTES = 34;

/** Q8_0 weights in the runtime layout: int8 quants and one f32 scale per block of 32. */
export interface Q8_0Tensor {
  /** (rows, paddedRowLength) int8. */
  quants: Int8Array;
  /** (rows, paddedRowLength / 32) f32, each exactly representable as f16. */
  scales: Float32Array;
  /** Row length rounded up to a multiple of 32, with zeros as padding values. */
  paddedRowLength: number;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);
let f16Table: Float32Array | undefined;

/** Converts a number to the bits of the nearest f16 (round to nearest, ties to even), via its f32 value. */
export function f32ToF16Bits(value: number): number {
  f32Scratch[0] = value;
  const bits = u32Scratch[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;

  if (exponent === 0xff) {
    // Keep NaN quiet and non-zero, whatever payload bits survive the shift.
    return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13);
  }

  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;

  if (halfExponent <= 0) {
    // The value is significand · 2^(exponent - 150) and an f16 subnormal is m · 2^-24, so m = significand >> (126 - exponent).
    const shift = 126 - exponent;
    if (shift > 24) return sign;
    const significand = mantissa | 0x800000;
    return sign | roundShiftEven(significand, shift);
  }

  // A carry out of the mantissa correctly bumps the exponent, up to infinity (0x7c00).
  const truncated = (halfExponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  const roundsUp = rest > 0x1000 || (rest === 0x1000 && (truncated & 1) === 1);
  return sign | (truncated + (roundsUp ? 1 : 0));
}

function roundShiftEven(value: number, shift: number): number {
  const truncated = value >>> shift;
  const rest = value & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  const roundsUp = rest > half || (rest === half && (truncated & 1) === 1);
  return truncated + (roundsUp ? 1 : 0);
}

/** Converts f16 bits to their exact value (every f16 is exactly an f32 and a JS number). */
export function f16BitsToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mantissa) * 2 ** (exponent - 25);
}

/** Rounds a number to the nearest f16 value and returns that value. */
export function roundToF16(value: number): number {
  return f16BitsToF32(f32ToF16Bits(value));
}

function halfTable(): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) f16Table[bits] = f16BitsToF32(bits);
  }
  return f16Table;
}

/** Converts an array of f16 bits to f32 values. */
export function f16ArrayToF32(halves: Uint16Array): Float32Array {
  const table = halfTable();
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) out[i] = table[halves[i]];
  return out;
}

/** Converts f32 values to f16 bits, rounding to nearest even. */
export function f32ArrayToF16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i]);
  return out;
}

/** Rounds half away from zero, as C's roundf does (Math.round rounds -2.5 to -2). */
function roundHalfAwayFromZero(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

/**
 * Quantizes a (rows, rowLength) f32 matrix to Q8_0 with ggml's reference rule, in f32 arithmetic:
 * d = amax / 127, q = roundf(x · (1 / d)), scale stored as f16(d). Rows are zero-padded to a
 * multiple of 32, so a row of 172 values becomes 6 blocks (192 values).
 */
export function quantizeQ8_0(values: Float32Array, rowLength: number, rows: number): Q8_0Tensor {
  if (values.length !== rowLength * rows) {
    formatMismatch("quantizeQ8_0", {
      source: "values",
      field: "length",
      actual: String(values.length),
      expected: `${rowLength * rows} (${rows} rows × ${rowLength})`,
    });
  }
  const blocksPerRow = Math.ceil(rowLength / Q8_0_BLOCK_VALUES);
  const paddedRowLength = blocksPerRow * Q8_0_BLOCK_VALUES;
  const quants = new Int8Array(rows * paddedRowLength);
  const scales = new Float32Array(rows * blocksPerRow);
  const fround = Math.fround;

  for (let row = 0; row < rows; row++) {
    for (let block = 0; block < blocksPerRow; block++) {
      const start = row * rowLength + block * Q8_0_BLOCK_VALUES;
      const end = row * rowLength + Math.min(rowLength, (block + 1) * Q8_0_BLOCK_VALUES);
      let amax = 0;
      for (let i = start; i < end; i++) amax = Math.max(amax, Math.abs(values[i]));

      const d = fround(amax / 127);
      const inverse = d !== 0 ? fround(1 / d) : 0;
      const out = row * paddedRowLength + block * Q8_0_BLOCK_VALUES;
      for (let i = start; i < end; i++) quants[out + i - start] = roundHalfAwayFromZero(fround(values[i] * inverse));
      scales[row * blocksPerRow + block] = roundToF16(d);
    }
  }
  return { quants, scales, paddedRowLength };
}

/** Expands Q8_0 weights to a (rows, rowLength) f32 matrix, dropping the row padding. */
export function dequantizeQ8_0(tensor: Q8_0Tensor, rowLength: number, rows: number): Float32Array {
  const { quants, scales, paddedRowLength } = tensor;
  const blocksPerRow = paddedRowLength / Q8_0_BLOCK_VALUES;
  const out = new Float32Array(rows * rowLength);
  for (let row = 0; row < rows; row++) {
    for (let i = 0; i < rowLength; i++) {
      const scale = scales[row * blocksPerRow + Math.floor(i / Q8_0_BLOCK_VALUES)];
      out[row * rowLength + i] = scale * quants[row * paddedRowLength + i];
    }
  }
  return out;
}

/** Packs quants and scales into GGUF Q8_0 blocks (34 bytes each: f16 d, then 32 int8). */
export function encodeQ8_0Blocks(quants: Int8Array, scales: Float32Array): Uint8Array {
  if (quants.length !== scales.length * Q8_0_BLOCK_VALUES) {
    formatMismatch("encodeQ8_0Blocks", {
      source: "quants",
      field: "length",
      actual: String(quants.length),
      expected: `${scales.length * Q8_0_BLOCK_VALUES} (32 per scale)`,
    });
  }
  const bytes = new Uint8Array(scales.length * Q8_0_BLOCK_BYTES);
  const view = new DataView(bytes.buffer);
  const quantBytes = new Uint8Array(quants.buffer, quants.byteOffset, quants.length);
  for (let block = 0; block < scales.length; block++) {
    const at = block * Q8_0_BLOCK_BYTES;
    view.setUint16(at, f32ToF16Bits(scales[block]), true);
    bytes.set(quantBytes.subarray(block * Q8_0_BLOCK_VALUES, (block + 1) * Q8_0_BLOCK_VALUES), at + 2);
  }
  return bytes;
}

/** Unpacks GGUF Q8_0 blocks of a (rows, rowLength) matrix into quants and f32 scales. */
export function decodeQ8_0Blocks(bytes: Uint8Array, rowLength: number, rows: number): Q8_0Tensor {
  const blocksPerRow = Math.ceil(rowLength / Q8_0_BLOCK_VALUES);
  const blocks = blocksPerRow * rows;
  if (bytes.length !== blocks * Q8_0_BLOCK_BYTES) {
    formatMismatch("decodeQ8_0Blocks", {
      source: "bytes",
      field: "length",
      actual: String(bytes.length),
      expected: `${blocks * Q8_0_BLOCK_BYTES} (${blocks} blocks of 34 bytes for ${rows} rows × ${rowLength})`,
    });
  }
  const table = halfTable();
  const quants = new Int8Array(blocks * Q8_0_BLOCK_VALUES);
  const scales = new Float32Array(blocks);
  const signed = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  for (let block = 0; block < blocks; block++) {
    const at = block * Q8_0_BLOCK_BYTES;
    scales[block] = table[bytes[at] | (bytes[at + 1] << 8)];
    quants.set(signed.subarray(at + 2, at + Q8_0_BLOCK_BYTES), block * Q8_0_BLOCK_VALUES);
  }
  return { quants, scales, paddedRowLength: blocksPerRow * Q8_0_BLOCK_VALUES };
}

/**
 * Writes GGUF Q8_0 blocks of a (rows, rowLength) matrix, rowLength a multiple of 32, straight into
 * the runtime layout of src/layout.ts: groups of 4 rows, block-interleaved, quants into `quants`
 * and f32 scales into `scales`. A quant of -128 is stored as -127, because the relaxed-SIMD kernel
 * negates weights. The padding rows of the last group are left as they are, so the targets must
 * start zeroed. Equal to decodeQ8_0Blocks, the clamp and interleaveQ8Rows, without their
 * intermediate arrays (a 110M-parameter model allocated about 240 MB of them per load).
 */
export function decodeQ8_0Interleaved(bytes: Uint8Array, rowLength: number, rows: number, quants: Int8Array, scales: Float32Array): void {
  const nb = rowLength / Q8_0_BLOCK_VALUES;
  if (!Number.isInteger(nb)) {
    formatMismatch("decodeQ8_0Interleaved", { source: "rowLength", field: "value", actual: String(rowLength), expected: "a multiple of 32" });
  }
  if (bytes.length !== rows * nb * Q8_0_BLOCK_BYTES) {
    formatMismatch("decodeQ8_0Interleaved", {
      source: "bytes",
      field: "length",
      actual: String(bytes.length),
      expected: `${rows * nb * Q8_0_BLOCK_BYTES} (${rows * nb} blocks of 34 bytes for ${rows} rows × ${rowLength})`,
    });
  }
  const groupRows = Math.ceil(rows / 4) * 4;
  if (quants.length < groupRows * rowLength || scales.length < groupRows * nb) {
    formatMismatch("decodeQ8_0Interleaved", {
      source: "targets",
      field: "length",
      actual: `${quants.length} quants and ${scales.length} scales`,
      expected: `at least ${groupRows * rowLength} and ${groupRows * nb} (${groupRows} rows)`,
    });
  }

  const table = halfTable();
  // Quants move as 8 words per block where the target allows it. With a byte loop, loading a
  // 110M-parameter Q8_0 model took 0.75 s in Node 20, and with words 0.43 s.
  const byWords = LITTLE_ENDIAN && quants.byteOffset % 4 === 0;
  const source = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const words = byWords ? new Int32Array(quants.buffer, quants.byteOffset, quants.length >> 2) : null;

  for (let r = 0; r < rows; r++) {
    const groupBase = (r >> 2) * nb * 4 + (r & 3);
    for (let b = 0; b < nb; b++) {
      const from = (r * nb + b) * Q8_0_BLOCK_BYTES;
      const index = groupBase + b * 4;
      scales[index] = table[bytes[from] | (bytes[from + 1] << 8)];
      const to = index * Q8_0_BLOCK_VALUES;
      let minimumSeen = !words;
      if (words) {
        for (let k = 0; k < 8; k++) {
          const word = source.getInt32(from + 2 + 4 * k, true);
          words[(to >> 2) + k] = word;
          // a byte of 0x80 (-128) becomes a zero byte, which (x - 0x01010101) & ~x & 0x80808080 detects
          const flipped = word ^ 0x80808080;
          if (((flipped - 0x01010101) & ~flipped & 0x80808080) !== 0) minimumSeen = true;
        }
      }
      if (!minimumSeen) continue;

      // the byte path, or a block with -128 in it
      for (let i = 0; i < Q8_0_BLOCK_VALUES; i++) {
        const quant = (bytes[from + 2 + i] << 24) >> 24;
        quants[to + i] = quant === -128 ? -127 : quant;
      }
    }
  }
}

/** Whether this platform stores typed-array elements little-endian, as GGUF stores them. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Counts the elements of a tensor from its dims. */
export function elementCount(dims: readonly number[]): number {
  return dims.reduce((product, size) => product * size, 1);
}

/**
 * Returns the f32 values of an F32, F16, BF16, Q8_0, Q4_0, Q4_K or Q6_K tensor in row-major order,
 * bit-identical to ggml's dequantizers. An aligned F32 tensor comes back as a view of its bytes
 * (no copy), so writing to it changes the source.
 */
export function tensorToF32(tensor: TensorData): Float32Array {
  const count = elementCount(tensor.dims);
  const { data } = tensor;
  switch (tensor.type) {
    case GGMLType.F32:
      if (data.byteOffset % 4 === 0) return new Float32Array(data.buffer, data.byteOffset, count);
      return new Float32Array(data.slice(0, count * 4).buffer);
    case GGMLType.F16: {
      const halves = data.byteOffset % 2 === 0
        ? new Uint16Array(data.buffer, data.byteOffset, count)
        : new Uint16Array(data.slice(0, count * 2).buffer);
      return f16ArrayToF32(halves);
    }
    case GGMLType.Q8_0: {
      const rowLength = tensor.dims[0];
      const rows = count / rowLength;
      return dequantizeQ8_0(decodeQ8_0Blocks(data, rowLength, rows), rowLength, rows);
    }
    case GGMLType.BF16:
      return dequantizeBF16(data, count, tensor.name);
    case GGMLType.Q4_0:
      return dequantizeQ4_0(data, count, tensor.name);
    case GGMLType.Q4_K:
      return dequantizeQ4_K(data, count, tensor.name);
    case GGMLType.Q6_K:
      return dequantizeQ6_K(data, count, tensor.name);
    default:
      return formatMismatch("tensorToF32", {
        source: tensor.name,
        field: "type",
        actual: String(tensor.type),
        expected: "F32 (0), F16 (1), Q4_0 (2), Q8_0 (8), Q4_K (12), Q6_K (14) or BF16 (30)",
      });
  }
}
