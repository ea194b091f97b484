/**
 * Dequantizers for the GGUF tensor types BF16, Q4_0, Q4_K and Q6_K. Each returns the same f32
 * bits as ggml's `to_float` (dequantize_row_*) of llama.cpp c392e50, because every product below
 * is exact in f32 except the last operation, which rounds once as ggml's f32 arithmetic does.
 * All multi-byte fields are little-endian. Values run along a row, and no block spans two rows.
 *
 * BF16 (2 bytes per value): the upper half of an f32, so value bits = bf16 << 16.
 *
 * Q4_0 block (18 bytes, 32 values):
 *
 *   byte 0      2                                16 bytes                        18
 *        +------+-----------------------------------------------------------------+
 *        |  d   | qs[0] qs[1] ... qs[15]      low nibble: value j, high: j + 16    |
 *        | f16  |                                                                  |
 *        +------+-----------------------------------------------------------------+
 *   value[j] = d · ((qs[j] & 15) − 8),  value[j + 16] = d · ((qs[j] >> 4) − 8),  j = 0..15
 *
 * Q4_K super-block (144 bytes, 256 values in 8 sub-blocks of 32):
 *
 *   byte 0     2      4                    16                                    144
 *        +-----+------+--------------------+--------------------------------------+
 *        |  d  | dmin | s[0..11]           | qs[0..127]                           |
 *        | f16 | f16  | 8 × (6-bit scale,  | 32-byte group g contains sub-block   |
 *        |     |      |      6-bit min)    | 2g in the low nibbles and sub-block  |
 *        |     |      |                    | 2g + 1 in the high nibbles, g = 0..3 |
 *        +-----+------+--------------------+--------------------------------------+
 *   sub-block j < 4: scale = s[j] & 63,                         min = s[j + 4] & 63
 *   sub-block j ≥ 4: scale = (s[j + 4] & 15) | (s[j − 4] >> 6) << 4,
 *                    min   = (s[j + 4] >> 4) | (s[j] >> 6) << 4
 *   value = (d · scale) · q − (dmin · min),  q = 0..15
 *
 * Q6_K super-block (210 bytes, 256 values in 16 sub-blocks of 16):
 *
 *   byte 0                 128             192             208   210
 *        +-----------------+---------------+---------------+-----+
 *        | ql[0..127]      | qh[0..63]     | sc[0..15]     |  d  |
 *        | low 4 bits      | high 2 bits   | int8 scales   | f16 |
 *        +-----------------+---------------+---------------+-----+
 *   Each half h (values 128h..128h + 127) reads ql[64h..], qh[32h..]. For l = 0..31:
 *     value l      low ql[l] & 15        high (qh[l] >> 0) & 3
 *     value l + 32 low ql[l + 32] & 15   high (qh[l] >> 2) & 3
 *     value l + 64 low ql[l] >> 4        high (qh[l] >> 4) & 3
 *     value l + 96 low ql[l + 32] >> 4   high (qh[l] >> 6) & 3
 *   value[i] = (d · sc[i / 16]) · ((low | high << 4) − 32),  i = 0..255 within the super-block
 */

import { formatMismatch } from "./errors.js";
// quant.ts imports this module for tensorToF32. The cycle is safe because neither module calls the other at load time.
import { f16BitsToF32 } from "./quant.js";

/** Values per Q4_0 block. */
export const Q4_0_BLOCK_VALUES = 32;
/** Bytes per Q4_0 block: an f16 scale and 16 bytes of nibbles. */
export const Q4_0_BLOCK_BYTES = 18;
/** Values per K-quant super-block (ggml's QK_K). */
export const QK_K = 256;
/** Bytes per Q4_K super-block. */
export const Q4_K_BLOCK_BYTES = 144;
/** Bytes per Q6_K super-block. */
export const Q6_K_BLOCK_BYTES = 210;

interface BlockShape {
  type: string;
  values: number;
  bytes: number;
}

function checkBlocks(where: string, source: string, shape: BlockShape, data: Uint8Array, count: number): void {
  if (!Number.isSafeInteger(count) || count < 0 || count % shape.values !== 0) {
    formatMismatch(where, {
      source,
      field: "value count",
      actual: String(count),
      expected: `a multiple of ${shape.values} (one ${shape.type} block)`,
    });
  }
  const byteLength = (count / shape.values) * shape.bytes;
  if (data.length !== byteLength) {
    formatMismatch(where, {
      source,
      field: "data length",
      actual: `${data.length} bytes`,
      expected: `${byteLength} bytes for ${count} ${shape.type} values (${shape.bytes} bytes per block of ${shape.values})`,
    });
  }
}

function halfAt(data: Uint8Array, at: number): number {
  return f16BitsToF32(data[at] | (data[at + 1] << 8));
}

/** Expands `count` BF16 values to f32 by placing each in the upper 16 bits, which keeps NaN payloads. */
export function dequantizeBF16(data: Uint8Array, count: number, source = "data"): Float32Array {
  checkBlocks("dequantizeBF16", source, { type: "BF16", values: 1, bytes: 2 }, data, count);
  const out = new Float32Array(count);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < count; i++) bits[i] = (data[2 * i] | (data[2 * i + 1] << 8)) << 16;
  return out;
}

/** Expands `count` values (a multiple of 32) of Q4_0 blocks to f32. */
export function dequantizeQ4_0(data: Uint8Array, count: number, source = "data"): Float32Array {
  checkBlocks("dequantizeQ4_0", source, { type: "Q4_0", values: Q4_0_BLOCK_VALUES, bytes: Q4_0_BLOCK_BYTES }, data, count);
  const out = new Float32Array(count);
  const blocks = count / Q4_0_BLOCK_VALUES;
  const half = Q4_0_BLOCK_VALUES / 2;

  for (let block = 0; block < blocks; block++) {
    const at = block * Q4_0_BLOCK_BYTES;
    const d = halfAt(data, at);
    const first = block * Q4_0_BLOCK_VALUES;
    for (let j = 0; j < half; j++) {
      const byte = data[at + 2 + j];
      out[first + j] = d * ((byte & 15) - 8);
      out[first + half + j] = d * ((byte >> 4) - 8);
    }
  }
  return out;
}

/** Returns the 6-bit scale of sub-block j (0..7) from the 12 packed bytes at `at`. */
function q4KScale(data: Uint8Array, at: number, j: number): number {
  return j < 4 ? data[at + j] & 63 : (data[at + j + 4] & 15) | ((data[at + j - 4] >> 6) << 4);
}

/** Returns the 6-bit min of sub-block j (0..7) from the 12 packed bytes at `at`. */
function q4KMin(data: Uint8Array, at: number, j: number): number {
  return j < 4 ? data[at + j + 4] & 63 : (data[at + j + 4] >> 4) | ((data[at + j] >> 6) << 4);
}

/** Expands `count` values (a multiple of 256) of Q4_K super-blocks to f32. */
export function dequantizeQ4_K(data: Uint8Array, count: number, source = "data"): Float32Array {
  checkBlocks("dequantizeQ4_K", source, { type: "Q4_K", values: QK_K, bytes: Q4_K_BLOCK_BYTES }, data, count);
  const out = new Float32Array(count);
  const blocks = count / QK_K;

  for (let block = 0; block < blocks; block++) {
    const at = block * Q4_K_BLOCK_BYTES;
    const d = halfAt(data, at);
    const dmin = halfAt(data, at + 2);
    const packed = at + 4;
    let quants = at + 16;
    let o = block * QK_K;
    for (let j = 0; j < 8; j += 2) {
      // d · scale and dmin · min are exact (11 × 6 bits), like ggml's d1 and m1 in f32.
      const scaleLow = d * q4KScale(data, packed, j);
      const minLow = dmin * q4KMin(data, packed, j);
      const scaleHigh = d * q4KScale(data, packed, j + 1);
      const minHigh = dmin * q4KMin(data, packed, j + 1);
      // scale · q is exact, so the one rounding is that of the subtraction, with or without FMA.
      for (let l = 0; l < 32; l++) out[o + l] = scaleLow * (data[quants + l] & 15) - minLow;
      for (let l = 0; l < 32; l++) out[o + 32 + l] = scaleHigh * (data[quants + l] >> 4) - minHigh;
      quants += 32;
      o += 64;
    }
  }
  return out;
}

/** Expands `count` values (a multiple of 256) of Q6_K super-blocks to f32. */
export function dequantizeQ6_K(data: Uint8Array, count: number, source = "data"): Float32Array {
  checkBlocks("dequantizeQ6_K", source, { type: "Q6_K", values: QK_K, bytes: Q6_K_BLOCK_BYTES }, data, count);
  const out = new Float32Array(count);
  const signed = new Int8Array(data.buffer, data.byteOffset, data.length);
  const blocks = count / QK_K;

  for (let block = 0; block < blocks; block++) {
    const at = block * Q6_K_BLOCK_BYTES;
    const d = halfAt(data, at + 208);
    for (let h = 0; h < 2; h++) {
      const low = at + 64 * h;
      const high = at + 128 + 32 * h;
      const scales = at + 192 + 8 * h;
      const o = block * QK_K + 128 * h;
      for (let l = 0; l < 32; l++) {
        // d · sc is exact (11 × 8 bits), so the product with q rounds once, on the store, as in ggml.
        const s = l >> 4;
        const qh = data[high + l];
        const ql0 = data[low + l];
        const ql1 = data[low + l + 32];
        out[o + l] = d * signed[scales + s] * (((ql0 & 15) | ((qh & 3) << 4)) - 32);
        out[o + l + 32] = d * signed[scales + s + 2] * (((ql1 & 15) | (((qh >> 2) & 3) << 4)) - 32);
        out[o + l + 64] = d * signed[scales + s + 4] * (((ql0 >> 4) | (((qh >> 4) & 3) << 4)) - 32);
        out[o + l + 96] = d * signed[scales + s + 6] * (((ql1 >> 4) | (((qh >> 6) & 3) << 4)) - 32);
      }
    }
  }
  return out;
}
