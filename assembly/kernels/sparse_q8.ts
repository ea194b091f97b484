// Kernels of the sparse FFN, which reads one neuron at a time from neuron-major bundles.
//
//   dotRowQ8         one Q8_0 row (contiguous quants and scales) · quantized activations, with
//                    matvecQ8Ref's f32 steps, so a row computed here equals the dense kernel's row
//   accumulatePairQ8 acc_i32[i] += ha · da[i] + hb · db[i]: the integer part of the down
//                    projection for two kept neurons of the same 32-neuron block
//   applyBlockScales out[i] += f32(acc_i32[i]) · (scales[i] · hs), then acc = 0: closes one block
//
// The down projection of the dense kernel sums, per output i and neuron block b, the exact
// integer Σ_j hq_j · D[i, j], then adds f32(sum) · (ws[i, b] · hs[b]) in block order. The sparse
// path forms the same integers from the kept neurons only (the others have hq_j = 0) and closes
// the blocks in the same order, so with every neuron kept it reproduces the dense result bit for bit.

import { QK8 } from "./quantize";
import { dotBlock, prepareX0, prepareX1 } from "./matvec_q8";

/** Returns Σ_b f32(Σ_i wq·xq) · (ws[b] · xs[b]) over cols / 32 blocks. Scalar reference. */
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

/** Returns the same value as dotRowQ8Ref with simd128 (relaxed dot in the relaxed build). cols a multiple of 32. */
export function dotRowQ8(wq: usize, ws: usize, xq: usize, xs: usize, cols: i32): f32 {
  const nb = cols / QK8;
  let acc: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const offset = <usize>b * QK8;
    const xa = v128.load(xq + offset);
    const xb = v128.load(xq + offset, 16);
    const partial = dotBlock(wq + offset, prepareX0(xa), prepareX1(xa), prepareX0(xb), prepareX1(xb));
    const pair = i32x4.add(partial, v128.shuffle<i32>(partial, partial, 2, 3, 0, 1));
    const sum = i32x4.extract_lane(pair, 0) + i32x4.extract_lane(pair, 1);
    acc += <f32>sum * (load<f32>(ws + (<usize>b << 2)) * load<f32>(xs + (<usize>b << 2)));
  }
  return acc;
}

/** Adds ha · da[i] + hb · db[i] to the i32 accumulators acc[i] for i < n. Scalar reference. */
export function accumulatePairQ8Ref(acc: usize, da: usize, db: usize, ha: i32, hb: i32, n: i32): void {
  for (let i = 0; i < n; i++) {
    const offset = <usize>i << 2;
    const term = ha * <i32>load<i8>(da + <usize>i) + hb * <i32>load<i8>(db + <usize>i);
    store<i32>(acc + offset, load<i32>(acc + offset) + term);
  }
}

/**
 * Same as accumulatePairQ8Ref with simd128. n a multiple of 16; ha and hb in [-127, 127], so the
 * two i8 products add up in i16 without overflow (2 · 127 · 127 < 32768).
 */
export function accumulatePairQ8(acc: usize, da: usize, db: usize, ha: i32, hb: i32, n: i32): void {
  const ha_i8 = i8x16.splat(<i8>ha);
  const hb_i8 = i8x16.splat(<i8>hb);
  for (let i = 0; i < n; i += 16) {
    const a = v128.load(da + <usize>i);
    const b = v128.load(db + <usize>i);
    const lo_i16 = i16x8.add(i16x8.extmul_low_i8x16_s(a, ha_i8), i16x8.extmul_low_i8x16_s(b, hb_i8));
    const hi_i16 = i16x8.add(i16x8.extmul_high_i8x16_s(a, ha_i8), i16x8.extmul_high_i8x16_s(b, hb_i8));
    const out = acc + (<usize>i << 2);
    v128.store(out, i32x4.add(v128.load(out), i32x4.extend_low_i16x8_s(lo_i16)));
    v128.store(out, i32x4.add(v128.load(out, 16), i32x4.extend_high_i16x8_s(lo_i16)), 16);
    v128.store(out, i32x4.add(v128.load(out, 32), i32x4.extend_low_i16x8_s(hi_i16)), 32);
    v128.store(out, i32x4.add(v128.load(out, 48), i32x4.extend_high_i16x8_s(hi_i16)), 48);
  }
}

/** Adds f32(acc[i]) · (scales[i] · hs) to out[i] and clears acc[i], for i < n (n a multiple of 4). */
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
