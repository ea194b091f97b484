// Kernels of the sparse FFN, which reads the rows of chosen neurons from neuron-major bundles.
//
//   dotRows4Q8       four Q8_0 rows at any addresses · quantized activations, with matvecQ8Ref's
//                    f32 steps per row, so a row computed here equals the dense kernel's row
//   accumulate4Q8    acc_i32[i] += Σ_k h_k · d_k[i] over four kept neurons of one 32-neuron block:
//                    the integer part of the down projection
//   applyBlockScales out[i] += f32(acc_i32[i]) · (scales[i] · hs), then acc = 0: closes one block
//   touchLines       loads one word per 64-byte cache line of a range
//
// A row here is `cols` quants followed directly by its cols / 32 f32 scales, as the bundles store it.
//
// The down projection of the dense kernel sums, per output i and neuron block b, the exact
// integer Σ_j hq_j · D[i, j], then adds f32(sum) · (ws[i, b] · hs[b]) in block order. The sparse
// path forms the same integers from the kept neurons only (the others have hq_j = 0) and closes
// the blocks in the same order, so with every neuron kept it reproduces the dense result bit for bit.

import { QK8 } from "./quantize";
import { dotBlock, prepareX0, prepareX1, sumLanes4 } from "./matvec_q8";

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
  const nb = cols / QK8;
  const s0 = w0 + <usize>cols;
  const s1 = w1 + <usize>cols;
  const s2 = w2 + <usize>cols;
  const s3 = w3 + <usize>cols;

  let acc_f32 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const offset = <usize>b * QK8;
    const xa = v128.load(xq + offset);
    const xb = v128.load(xq + offset, 16);
    const xa0 = prepareX0(xa);
    const xa1 = prepareX1(xa);
    const xb0 = prepareX0(xb);
    const xb1 = prepareX1(xb);

    const sum0 = dotBlock(w0 + offset, xa0, xa1, xb0, xb1);
    const sum1 = dotBlock(w1 + offset, xa0, xa1, xb0, xb1);
    const sum2 = dotBlock(w2 + offset, xa0, xa1, xb0, xb1);
    const sum3 = dotBlock(w3 + offset, xa0, xa1, xb0, xb1);
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

/** Adds Σ_k h_k · d_k[i] to the i32 accumulators acc[i] for i < n, k < 4. Scalar reference. */
export function accumulate4Q8Ref(acc: usize, d0: usize, d1: usize, d2: usize, d3: usize, h0: i32, h1: i32, h2: i32, h3: i32, n: i32): void {
  for (let i = 0; i < n; i++) {
    const offset = <usize>i;
    const term = h0 * <i32>load<i8>(d0 + offset) + h1 * <i32>load<i8>(d1 + offset) +
      h2 * <i32>load<i8>(d2 + offset) + h3 * <i32>load<i8>(d3 + offset);
    store<i32>(acc + (offset << 2), load<i32>(acc + (offset << 2)) + term);
  }
}

/**
 * Same as accumulate4Q8Ref with simd128. n a multiple of 16; h_k and d_k in [-127, 127], so two
 * i8 products add up in i16 without overflow (2 · 127 · 127 < 32768). A column may repeat with h = 0.
 */
export function accumulate4Q8(acc: usize, d0: usize, d1: usize, d2: usize, d3: usize, h0: i32, h1: i32, h2: i32, h3: i32, n: i32): void {
  const h0_i8 = i8x16.splat(<i8>h0);
  const h1_i8 = i8x16.splat(<i8>h1);
  const h2_i8 = i8x16.splat(<i8>h2);
  const h3_i8 = i8x16.splat(<i8>h3);
  for (let i = 0; i < n; i += 16) {
    const offset = <usize>i;
    const a = v128.load(d0 + offset);
    const b = v128.load(d1 + offset);
    const c = v128.load(d2 + offset);
    const d = v128.load(d3 + offset);
    const ab_lo_i16 = i16x8.add(i16x8.extmul_low_i8x16_s(a, h0_i8), i16x8.extmul_low_i8x16_s(b, h1_i8));
    const ab_hi_i16 = i16x8.add(i16x8.extmul_high_i8x16_s(a, h0_i8), i16x8.extmul_high_i8x16_s(b, h1_i8));
    const cd_lo_i16 = i16x8.add(i16x8.extmul_low_i8x16_s(c, h2_i8), i16x8.extmul_low_i8x16_s(d, h3_i8));
    const cd_hi_i16 = i16x8.add(i16x8.extmul_high_i8x16_s(c, h2_i8), i16x8.extmul_high_i8x16_s(d, h3_i8));
    const out = acc + (offset << 2);
    const sum0_i32 = i32x4.add(i32x4.extend_low_i16x8_s(ab_lo_i16), i32x4.extend_low_i16x8_s(cd_lo_i16));
    const sum1_i32 = i32x4.add(i32x4.extend_high_i16x8_s(ab_lo_i16), i32x4.extend_high_i16x8_s(cd_lo_i16));
    const sum2_i32 = i32x4.add(i32x4.extend_low_i16x8_s(ab_hi_i16), i32x4.extend_low_i16x8_s(cd_hi_i16));
    const sum3_i32 = i32x4.add(i32x4.extend_high_i16x8_s(ab_hi_i16), i32x4.extend_high_i16x8_s(cd_hi_i16));
    v128.store(out, i32x4.add(v128.load(out), sum0_i32));
    v128.store(out, i32x4.add(v128.load(out, 16), sum1_i32), 16);
    v128.store(out, i32x4.add(v128.load(out, 32), sum2_i32), 32);
    v128.store(out, i32x4.add(v128.load(out, 48), sum3_i32), 48);
  }
}

/** Adds f32(acc[i]) · (scales[i] · hs) to out[i] and clears acc[i], for i < n. Scalar reference. */
export function applyBlockScalesRef(out: usize, acc: usize, scales: usize, hs: f32, n: i32): void {
  for (let i = 0; i < n; i++) {
    const offset = <usize>i << 2;
    const sum = <f32>load<i32>(acc + offset);
    store<f32>(out + offset, load<f32>(out + offset) + sum * (load<f32>(scales + offset) * hs));
    store<i32>(acc + offset, 0);
  }
}

/** Same as applyBlockScalesRef with simd128, lane by lane the same f32 operations. n a multiple of 4. */
export function applyBlockScales(out: usize, acc: usize, scales: usize, hs: f32, n: i32): void {
  const hs_f32 = f32x4.splat(hs);
  const zero = i32x4.splat(0);
  for (let i = 0; i < n; i += 4) {
    const offset = <usize>i << 2;
    const sums_f32 = f32x4.convert_i32x4_s(v128.load(acc + offset));
    const scale = f32x4.mul(v128.load(scales + offset), hs_f32);
    v128.store(out + offset, f32x4.add(v128.load(out + offset), f32x4.mul(sums_f32, scale)));
    v128.store(acc + offset, zero);
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
