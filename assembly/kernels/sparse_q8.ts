// Kernels of the sparse FFN, which reads the rows of chosen neurons from neuron-major bundles.
//
//   dotRows4Q8       four Q8_0 rows at any addresses · quantized activations, with matvecQ8Ref's
//                    f32 steps per row, so a row computed here equals the dense kernel's row
//   downColumnsQ8    out[i] += f32(Σ_k h_k · d_k[i]) · (scales[i] · hs) over the kept neurons of
//                    one 32-neuron block: its down projection
//   touchLines       loads one word per 64-byte cache line of a range
//
// A row here is `cols` quants followed directly by its cols / 32 f32 scales, as the bundles store it.
//
// The down projection of the dense kernel sums, per output i and neuron block b, the exact
// integer Σ_j hq_j · D[i, j], then adds f32(sum) · (ws[i, b] · hs[b]) in block order. The sparse
// path forms the same integers from the kept neurons only (the others have hq_j = 0) and closes
// the blocks in the same order, so with every neuron kept it reproduces the dense result bit for bit.

import { QK8 } from "./quantize";
import { dotBlock, loadX0, loadX1, matvecRelaxed, sumLanes4 } from "./matvec_q8";

/** Returns Σ_b f32(Σ_i wq·xq) · (ws[b] · xs[b]) over cols / 32 blocks, scales at ws. Scalar reference. */
export function dotRowQ8Ref(wq: usize, ws: usize, xq: usize, xs: usize, cols: i32): f32 {
  const nb = cols / QK8;
  let acc: f32 = 0;
  for (let b = 0; b < nb; b++) {
    let sum: i32 = 0;
    for (let i = 0; i < QK8; i++) {
      const offset = <usize>(b * QK8 + i);
      sum += <i32>load<i8>(wq + offset) * <i32>load<i8>(xq + offset);
    }
    acc += <f32>sum * (load<f32>(ws + (<usize>b << 2)) * load<f32>(xs + (<usize>b << 2)));
  }
  return acc;
}

/** Computes dotRowQ8Ref(w_k, w_k + cols, xq, xs, cols) into out[k] for k < 4. Scalar reference. */
export function dotRows4Q8Ref(out: usize, w0: usize, w1: usize, w2: usize, w3: usize, xq: usize, xs: usize, cols: i32): void {
  store<f32>(out, dotRowQ8Ref(w0, w0 + <usize>cols, xq, xs, cols));
  store<f32>(out, dotRowQ8Ref(w1, w1 + <usize>cols, xq, xs, cols), 4);
  store<f32>(out, dotRowQ8Ref(w2, w2 + <usize>cols, xq, xs, cols), 8);
  store<f32>(out, dotRowQ8Ref(w3, w3 + <usize>cols, xq, xs, cols), 12);
}

/**
 * Same as dotRows4Q8Ref with simd128 (relaxed dot in the relaxed build): one pass shares each
 * activation block among four rows, and lane k of the f32 accumulator is row k. cols a multiple
 * of 32, weights in [-127, 127], out 16 bytes. Rows may repeat, so fewer than four rows run too.
 */
export function dotRows4Q8(out: usize, w0: usize, w1: usize, w2: usize, w3: usize, xq: usize, xs: usize, cols: i32): void {
  if (ASC_FEATURE_RELAXED_SIMD && matvecRelaxed()) {
    dotRows4(out, w0, w1, w2, w3, xq, xs, cols, true);
  } else {
    dotRows4(out, w0, w1, w2, w3, xq, xs, cols, false);
  }
}

@inline
function dotRows4(out: usize, w0: usize, w1: usize, w2: usize, w3: usize, xq: usize, xs: usize, cols: i32, relaxed: bool): void {
  const nb = cols / QK8;
  const s0 = w0 + <usize>cols;
  const s1 = w1 + <usize>cols;
  const s2 = w2 + <usize>cols;
  const s3 = w3 + <usize>cols;

  let acc_f32 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const offset = <usize>b * QK8;
    const xa0 = loadX0(xq + offset, relaxed);
    const xa1 = loadX1(xq + offset, relaxed);
    const xb0 = loadX0(xq + offset + 16, relaxed);
    const xb1 = loadX1(xq + offset + 16, relaxed);

    const sum0 = dotBlock(w0 + offset, xa0, xa1, xb0, xb1, relaxed);
    const sum1 = dotBlock(w1 + offset, xa0, xa1, xb0, xb1, relaxed);
    const sum2 = dotBlock(w2 + offset, xa0, xa1, xb0, xb1, relaxed);
    const sum3 = dotBlock(w3 + offset, xa0, xa1, xb0, xb1, relaxed);
    const sums_f32 = f32x4.convert_i32x4_s(sumLanes4(sum0, sum1, sum2, sum3));

    const scaleOffset = <usize>b << 2;
    let ws_f32 = v128.load32_zero(s0 + scaleOffset);
    ws_f32 = v128.load32_lane(s1 + scaleOffset, ws_f32, 1);
    ws_f32 = v128.load32_lane(s2 + scaleOffset, ws_f32, 2);
    ws_f32 = v128.load32_lane(s3 + scaleOffset, ws_f32, 3);
    const scale = f32x4.mul(ws_f32, v128.load32_splat(xs + scaleOffset));
    acc_f32 = f32x4.add(acc_f32, f32x4.mul(sums_f32, scale));
  }
  v128.store(out, acc_f32);
}

/**
 * Adds f32(Σ_k h_k · d_k[i]) · (scales[i] · hs) to out[i] for i < n, k < count: the down projection
 * of one neuron block. columns contains count u32 column addresses, and pairs the count i16 weights
 * h_k, so the u32 at pairs + 4p has h_2p in its low and h_2p+1 in its high half. Scalar reference.
 */
export function downColumnsQ8Ref(out: usize, columns: usize, pairs: usize, count: i32, scales: usize, hs: f32, n: i32): void {
  for (let i = 0; i < n; i++) {
    let sum: i32 = 0;
    for (let k = 0; k < count; k++) {
      const pair = load<u32>(pairs + (<usize>(k >> 1) << 2));
      const h = <i32>(k & 1 ? <i16>(pair >> 16) : <i16>pair);
      sum += h * <i32>load<i8>(<usize>load<u32>(columns + (<usize>k << 2)) + <usize>i);
    }
    const offset = <usize>i << 2;
    store<f32>(out + offset, load<f32>(out + offset) + <f32>sum * (load<f32>(scales + offset) * hs));
  }
}

/**
 * Same as downColumnsQ8Ref with simd128: 16 outputs at a time stay in four i32x4 accumulators
 * while every column adds to them, then the block scales apply once. Interleaving the bytes of
 * two columns gives (d_a[i], d_b[i]) pairs, so one i32x4.dot_i16x8_s adds h_a · d_a[i] + h_b · d_b[i]
 * for four outputs. count even, n a multiple of 16, h and d in [-127, 127].
 */
export function downColumnsQ8(out: usize, columns: usize, pairs: usize, count: i32, scales: usize, hs: f32, n: i32): void {
  const hs_f32 = f32x4.splat(hs);
  for (let i = 0; i < n; i += 16) {
    const offset = <usize>i;
    let acc0_i32 = i32x4.splat(0);
    let acc1_i32 = i32x4.splat(0);
    let acc2_i32 = i32x4.splat(0);
    let acc3_i32 = i32x4.splat(0);
    for (let k = 0; k < count; k += 2) {
      const a = v128.load(<usize>load<u32>(columns + (<usize>k << 2)) + offset);
      const b = v128.load(<usize>load<u32>(columns + (<usize>k << 2), 4) + offset);
      const h_i16 = v128.load32_splat(pairs + (<usize>k << 1));
      const ab_lo = v128.shuffle<u8>(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
      const ab_hi = v128.shuffle<u8>(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
      acc0_i32 = i32x4.add(acc0_i32, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(ab_lo), h_i16));
      acc1_i32 = i32x4.add(acc1_i32, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(ab_lo), h_i16));
      acc2_i32 = i32x4.add(acc2_i32, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(ab_hi), h_i16));
      acc3_i32 = i32x4.add(acc3_i32, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(ab_hi), h_i16));
    }
    const o = out + (offset << 2);
    const s = scales + (offset << 2);
    v128.store(o, f32x4.add(v128.load(o), f32x4.mul(f32x4.convert_i32x4_s(acc0_i32), f32x4.mul(v128.load(s), hs_f32))));
    v128.store(o, f32x4.add(v128.load(o, 16), f32x4.mul(f32x4.convert_i32x4_s(acc1_i32), f32x4.mul(v128.load(s, 16), hs_f32))), 16);
    v128.store(o, f32x4.add(v128.load(o, 32), f32x4.mul(f32x4.convert_i32x4_s(acc2_i32), f32x4.mul(v128.load(s, 32), hs_f32))), 32);
    v128.store(o, f32x4.add(v128.load(o, 48), f32x4.mul(f32x4.convert_i32x4_s(acc3_i32), f32x4.mul(v128.load(s, 48), hs_f32))), 48);
  }
}

/**
 * Loads the first word of every 64-byte line in [from, to) and returns their sum, which the
 * caller must use so the loads stay. Reading a region in order lets the hardware prefetcher
 * stream it, while reading only some rows of it does not (see assembly/model/sparse.ts).
 */
export function touchLines(from: usize, to: usize): i32 {
  let sum: i32 = 0;
  for (let line = from & ~63; line < to; line += 64) sum += load<i32>(line);
  return sum;
}
