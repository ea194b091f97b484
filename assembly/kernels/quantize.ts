// Activation quantization to Q8_0 blocks, the rule ggml uses for its Q8_0 type.
//
//   x  : n f32            ─►  xq : n i8,     q = round_half_away(x / d), clamped to [-127, 127]
//   one block = 32 values     xs : n/32 f32, d = max|x| / 127 of the block (0 for an all-zero block)
//
// The scale stays f32 (no f16 rounding), so one quantized vector feeds every matvec that reads it.

/** Values per Q8_0 block; every int8 row length is a multiple of it. */
export const QK8: i32 = 32;

/**
 * Returns the index of block b of row r in the runtime int8 matrix layout, where each group of
 * 4 rows stores its blocks interleaved (see matvec_q8.ts). Multiply by 32 for the quants' byte
 * offset and by 4 for the scale's.
 */
@inline
export function q8BlockIndex(r: i32, b: i32, nb: i32): usize {
  return (<usize>(r >> 2) * <usize>nb + <usize>b) * 4 + <usize>(r & 3);
}

/** Largest quant magnitude. -128 is never produced, so negating a quant cannot overflow. */
const Q8_MAX: i32 = 127;

// Computed from trunc and the exact fraction rather than trunc(v + 0.5 * sign), which rounds
// 0.49999997 up because the addition itself rounds.
@inline
function roundHalfAwayFromZero(v: f32): f32 {
  const whole = Mathf.trunc(v);
  return Mathf.abs(v - whole) >= 0.5 ? whole + copysign<f32>(1, v) : whole;
}

/** Quantizes n f32 values (n a multiple of 32) to int8 quants `xq` and one f32 scale per block in `xs`. Scalar reference. */
export function quantizeQ8Ref(xq: usize, xs: usize, x: usize, n: i32): void {
  const nb = n / QK8;

  for (let b = 0; b < nb; b++) {
    const xBlock = x + ((<usize>b * QK8) << 2);
    const qBlock = xq + <usize>b * QK8;
    let amax: f32 = 0;
    for (let i = 0; i < QK8; i++) {
      amax = Mathf.max(amax, Mathf.abs(load<f32>(xBlock + (<usize>i << 2))));
    }
    const d: f32 = amax / <f32>Q8_MAX;
    const id: f32 = d != 0 ? <f32>1 / d : 0;
    store<f32>(xs + (<usize>b << 2), d);

    for (let i = 0; i < QK8; i++) {
      const rounded = roundHalfAwayFromZero(load<f32>(xBlock + (<usize>i << 2)) * id);
      const q = min(Q8_MAX, max(-Q8_MAX, <i32>rounded));
      store<i8>(qBlock + <usize>i, <i8>q);
    }
  }
}

// Lane-wise copy of quantizeQ8Ref's rounding and clamp: the same f32 operations, so the same quants.
@inline
function quantizeLanes(v: v128, id: v128): v128 {
  const scaled = f32x4.mul(v, id);
  const whole = f32x4.trunc(scaled);
  const frac = f32x4.abs(f32x4.sub(scaled, whole));
  const awayOne = v128.or(v128.and(scaled, i32x4.splat(0x80000000)), f32x4.splat(1));
  const roundAway = f32x4.ge(frac, f32x4.splat(0.5));
  const rounded = f32x4.add(whole, v128.and(awayOne, roundAway));
  const q_i32 = i32x4.trunc_sat_f32x4_s(rounded);
  return i32x4.max_s(i32x4.min_s(q_i32, i32x4.splat(Q8_MAX)), i32x4.splat(-Q8_MAX));
}

/**
 * Quantizes n f32 values to Q8_0 with simd128, bit-identical to quantizeQ8Ref.
 * Requires n a multiple of 32 and xq, x 16-byte aligned.
 */
export function quantizeQ8(xq: usize, xs: usize, x: usize, n: i32): void {
  const nb = n / QK8;

  for (let b = 0; b < nb; b++) {
    const xBlock = x + ((<usize>b * QK8) << 2);
    const v0 = v128.load(xBlock);
    const v1 = v128.load(xBlock, 16);
    const v2 = v128.load(xBlock, 32);
    const v3 = v128.load(xBlock, 48);
    const v4 = v128.load(xBlock, 64);
    const v5 = v128.load(xBlock, 80);
    const v6 = v128.load(xBlock, 96);
    const v7 = v128.load(xBlock, 112);

    // amax: max is exact, so the reduction order does not matter
    const m01 = f32x4.max(f32x4.abs(v0), f32x4.abs(v1));
    const m23 = f32x4.max(f32x4.abs(v2), f32x4.abs(v3));
    const m45 = f32x4.max(f32x4.abs(v4), f32x4.abs(v5));
    const m67 = f32x4.max(f32x4.abs(v6), f32x4.abs(v7));
    let m = f32x4.max(f32x4.max(m01, m23), f32x4.max(m45, m67));
    m = f32x4.max(m, v128.shuffle<i32>(m, m, 2, 3, 0, 1));
    m = f32x4.max(m, v128.shuffle<i32>(m, m, 1, 0, 3, 2));
    const amax = f32x4.extract_lane(m, 0);

    const d: f32 = amax / <f32>Q8_MAX;
    const id: f32 = d != 0 ? <f32>1 / d : 0;
    store<f32>(xs + (<usize>b << 2), d);

    // quants are already in [-127, 127], so the saturating narrows never saturate
    const idv = f32x4.splat(id);
    const q01_i16 = i16x8.narrow_i32x4_s(quantizeLanes(v0, idv), quantizeLanes(v1, idv));
    const q23_i16 = i16x8.narrow_i32x4_s(quantizeLanes(v2, idv), quantizeLanes(v3, idv));
    const q45_i16 = i16x8.narrow_i32x4_s(quantizeLanes(v4, idv), quantizeLanes(v5, idv));
    const q67_i16 = i16x8.narrow_i32x4_s(quantizeLanes(v6, idv), quantizeLanes(v7, idv));
    const qBlock = xq + <usize>b * QK8;
    v128.store(qBlock, i8x16.narrow_i16x8_s(q01_i16, q23_i16));
    v128.store(qBlock, i8x16.narrow_i16x8_s(q45_i16, q67_i16), 16);
  }
}

/** Expands row `row` of an interleaved int8 matrix (cols a multiple of 32) to f32: out[c] = scale · quant. Scalar reference. */
export function dequantizeRowQ8Ref(out: usize, wq: usize, ws: usize, row: i32, cols: i32): void {
  const nb = cols / QK8;
  for (let c = 0; c < cols; c++) {
    const index = q8BlockIndex(row, c / QK8, nb);
    const scale = load<f32>(ws + (index << 2));
    store<f32>(out + (<usize>c << 2), scale * <f32>load<i8>(wq + index * QK8 + <usize>(c % QK8)));
  }
}

/**
 * Expands row `row` of an interleaved int8 matrix to f32 with simd128 (for embedding lookups),
 * bit-identical to dequantizeRowQ8Ref.
 * Writes all cols values, padding included, so out needs room for cols f32.
 */
export function dequantizeRowQ8(out: usize, wq: usize, ws: usize, row: i32, cols: i32): void {
  const nb = cols / QK8;

  for (let b = 0; b < nb; b++) {
    const index = q8BlockIndex(row, b, nb);
    const scale = v128.load32_splat(ws + (index << 2));
    const qBlock = wq + index * QK8;
    const outBlock = out + ((<usize>b * QK8) << 2);
    const qa = v128.load(qBlock);
    const qb = v128.load(qBlock, 16);
    const qa_lo_i16 = i16x8.extend_low_i8x16_s(qa);
    const qa_hi_i16 = i16x8.extend_high_i8x16_s(qa);
    const qb_lo_i16 = i16x8.extend_low_i8x16_s(qb);
    const qb_hi_i16 = i16x8.extend_high_i8x16_s(qb);
    v128.store(outBlock, f32x4.mul(scale, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(qa_lo_i16))));
    v128.store(outBlock, f32x4.mul(scale, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(qa_lo_i16))), 16);
    v128.store(outBlock, f32x4.mul(scale, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(qa_hi_i16))), 32);
    v128.store(outBlock, f32x4.mul(scale, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(qa_hi_i16))), 48);
    v128.store(outBlock, f32x4.mul(scale, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(qb_lo_i16))), 64);
    v128.store(outBlock, f32x4.mul(scale, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(qb_lo_i16))), 80);
    v128.store(outBlock, f32x4.mul(scale, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(qb_hi_i16))), 96);
    v128.store(outBlock, f32x4.mul(scale, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(qb_hi_i16))), 112);
  }
}
