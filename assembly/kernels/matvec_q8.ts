// int8 matrix × int8 vector: out = W x with W and x in Q8_0 blocks of 32.
//
// Runtime layout of W: rows are zero-padded to a multiple of 32 columns and to a multiple of 4
// rows. Each group of 4 rows is stored block-interleaved, so one pass over a group reads one
// contiguous stream instead of four. At 768 columns this was 2.4× faster on Node 20
// (bench/README.md, kernels section):
//
//   wq  group g: | r0 b0 | r1 b0 | r2 b0 | r3 b0 | r0 b1 | r1 b1 | ... |   32 i8 each, r = 4g + k
//   ws  group g: | r0 b0 | r1 b0 | r2 b0 | r3 b0 | r0 b1 | ... |           one f32 each
//   xq  (cols) i8 and xs (cols/32) f32, from quantizeQ8
//   out (rows) f32
//
//   out[r] = Σ_b (ws[r, b] · xs[b]) · Σ_{i<32} wq[r, 32b + i] · xq[32b + i]
//
// The block sum is exact in i32 (|sum| ≤ 32 · 127 · 128 < 2^24, so its f32 conversion is exact too),
// and a single f32 accumulator per row adds the blocks in increasing order. Every variant below
// performs those same f32 operations lane by lane, so all of them are bit-identical to matvecQ8Ref.
//
// The relaxed variant (built with --enable relaxed-simd) uses i32x4.relaxed_dot_i8x16_i7x16_add_s.
// Its second operand is read as unsigned on x86 and as signed on ARM, so it is only portable in
// 0..127: the kernel passes |xq| there and moves the activation's sign onto the weight. That
// requires weights in [-127, 127], because negating -128 overflows i8.
//
// The relaxed module contains both variants. On the x86 measured here the exact one is faster
// (bench/README.md, kernel hosts: relaxed 0.85–0.95× exact in Deno and Chromium). There the
// relaxed dot lowers to three instructions plus the two that move the sign, against widening
// loads and one i32x4.dot_i16x8_s per 8 quants. Where the relaxed dot is one instruction (ARM, AVX-VNNI) the relaxed
// variant should win, which is expected but not measured. So the host times both on the model's
// own weights at load and keeps the faster (setMatvecRelaxed). Both give the same bits.

import { QK8, q8BlockIndex } from "./quantize";

/** Whether matvecQ8 and dotRows4Q8 use the relaxed dot. Only the relaxed module can set it. */
let relaxedDot: bool = ASC_FEATURE_RELAXED_SIMD;

/** Selects the relaxed (1) or exact (0) dot for matvecQ8 and dotRows4Q8; the exact module ignores it. */
export function setMatvecRelaxed(relaxed: i32): void {
  relaxedDot = ASC_FEATURE_RELAXED_SIMD && relaxed != 0;
}

/** Returns 1 when matvecQ8 and dotRows4Q8 use the relaxed dot. */
export function matvecRelaxed(): i32 {
  return relaxedDot ? 1 : 0;
}

/** Computes out = W x for Q8_0 blocks. Scalar reference that defines the f32 summation order. */
export function matvecQ8Ref(out: usize, wq: usize, ws: usize, xq: usize, xs: usize, rows: i32, cols: i32): void {
  const nb = cols / QK8;

  for (let r = 0; r < rows; r++) {
    let acc: f32 = 0;
    for (let b = 0; b < nb; b++) {
      const index = q8BlockIndex(r, b, nb);
      const wBlock = wq + index * QK8;
      const xBlock = xq + <usize>b * QK8;
      let sum: i32 = 0;
      for (let i = 0; i < QK8; i++) {
        sum += <i32>load<i8>(wBlock + <usize>i) * <i32>load<i8>(xBlock + <usize>i);
      }
      const scale = load<f32>(ws + (index << 2)) * load<f32>(xs + (<usize>b << 2));
      acc += <f32>sum * scale;
    }
    store<f32>(out + (<usize>r << 2), acc);
  }
}

// Half a block of activations (16 quants at x), loaded once and shared by every row of a pass.
// Exact path: the quants widened to i16, loadX0 the first 8 and loadX1 the last 8; v128.load8x8_s
// widens while it loads (one instruction on x86, against two or three for a load and then
// i16x8.extend_high). Relaxed path: loadX0 gives |xq| and loadX1 the sign mask (all ones where
// xq < 0). The mask comes from a compare, not i8x16.shr_s(x, 7): x86 has no 8-bit shift, and with
// the shift the relaxed kernel ran at half speed in Node 20.
//
// `relaxed` in these inlined helpers is always a constant at the call site, so each caller
// compiles to one variant without a branch per block.
@inline
export function loadX0(x: usize, relaxed: bool): v128 {
  if (ASC_FEATURE_RELAXED_SIMD && relaxed) return i8x16.abs(v128.load(x));
  return v128.load8x8_s(x);
}

@inline
export function loadX1(x: usize, relaxed: bool): v128 {
  if (ASC_FEATURE_RELAXED_SIMD && relaxed) return i8x16.lt_s(v128.load(x), i8x16.splat(0));
  return v128.load8x8_s(x, 8);
}

// Returns the i32x4 partial sums of one 32-quant block of one weight row. Their lanes add up to the block sum.
@inline
export function dotBlock(wBlock: usize, xa0: v128, xa1: v128, xb0: v128, xb1: v128, relaxed: bool): v128 {
  if (ASC_FEATURE_RELAXED_SIMD && relaxed) {
    const wa = v128.load(wBlock);
    const wb = v128.load(wBlock, 16);
    // w' = (w ^ s) - s, with s the sign mask, negates w where x < 0:
    // w' · |x| = w · x, and the second operand stays in 0..127
    const wa_signed = i8x16.sub(v128.xor(wa, xa1), xa1);
    const wb_signed = i8x16.sub(v128.xor(wb, xb1), xb1);
    const acc_i32 = i32x4.relaxed_dot_i8x16_i7x16_add_s(wa_signed, xa0, i32x4.splat(0));
    return i32x4.relaxed_dot_i8x16_i7x16_add_s(wb_signed, xb0, acc_i32);
  }
  // widening loads here too: 19% more GOPS than two loads and four extends (1024², in cache)
  const d0 = i32x4.dot_i16x8_s(v128.load8x8_s(wBlock), xa0);
  const d1 = i32x4.dot_i16x8_s(v128.load8x8_s(wBlock, 8), xa1);
  const d2 = i32x4.dot_i16x8_s(v128.load8x8_s(wBlock, 16), xb0);
  const d3 = i32x4.dot_i16x8_s(v128.load8x8_s(wBlock, 24), xb1);
  return i32x4.add(i32x4.add(d0, d1), i32x4.add(d2, d3));
}

// Transposes and adds four i32x4 partial sums: lane k of the result is the total of sK's lanes.
@inline
export function sumLanes4(s0: v128, s1: v128, s2: v128, s3: v128): v128 {
  const t01 = i32x4.add(v128.shuffle<i32>(s0, s1, 0, 4, 1, 5), v128.shuffle<i32>(s0, s1, 2, 6, 3, 7));
  const t23 = i32x4.add(v128.shuffle<i32>(s2, s3, 0, 4, 1, 5), v128.shuffle<i32>(s2, s3, 2, 6, 3, 7));
  return i32x4.add(v128.shuffle<i32>(t01, t23, 0, 1, 4, 5), v128.shuffle<i32>(t01, t23, 2, 3, 6, 7));
}

/**
 * Computes out = W x for Q8_0 blocks with simd128 (relaxed dot when built with relaxed SIMD).
 * Bit-identical to matvecQ8Ref. Requires the interleaved layout above (rows padded to a multiple
 * of 4), cols a multiple of 32, weights in [-127, 127] and xq from quantizeQ8. Writes only rows outputs.
 */
export function matvecQ8(out: usize, wq: usize, ws: usize, xq: usize, xs: usize, rows: i32, cols: i32): void {
  if (ASC_FEATURE_RELAXED_SIMD && relaxedDot) {
    matvecGroups(out, wq, ws, xq, xs, rows, cols, true);
  } else {
    matvecGroups(out, wq, ws, xq, xs, rows, cols, false);
  }
}

@inline
function matvecGroups(out: usize, wq: usize, ws: usize, xq: usize, xs: usize, rows: i32, cols: i32, relaxed: bool): void {
  const nb = cols / QK8;
  const groupBytes = <usize>cols * 4;
  const groupScaleBytes = <usize>nb * 16;

  // One group of four rows per pass: each activation load and its widening feed four rows.
  // Passes alternate between the first and the second half of the groups, so memory is read as
  // two sequential streams. From DRAM (40 matrices of 2048 × 768, 71 MB) that ran at 18.6 GB/s
  // against 15.0 GB/s for one stream, 82% of an in-order read instead of 68%. Four streams fell
  // back to 15 GB/s (EPYC VM, Node 20, 2026-12-05, bench/README.md under Kernels).
  const groups = (rows + 3) >> 2;
  const half = groups >> 1;
  for (let g = 0; g < half; g++) {
    const g2 = g + half;
    storeGroup(out + (<usize>g << 4), dotGroupQ8(wq + <usize>g * groupBytes, ws + <usize>g * groupScaleBytes, xq, xs, nb, relaxed), rows - (g << 2));
    storeGroup(out + (<usize>g2 << 4), dotGroupQ8(wq + <usize>g2 * groupBytes, ws + <usize>g2 * groupScaleBytes, xq, xs, nb, relaxed), rows - (g2 << 2));
  }
  if (groups & 1) {
    const g = groups - 1;
    storeGroup(out + (<usize>g << 4), dotGroupQ8(wq + <usize>g * groupBytes, ws + <usize>g * groupScaleBytes, xq, xs, nb, relaxed), rows - (g << 2));
  }
}

/**
 * Returns the four outputs of one group of 4 interleaved rows (quants at w, scales at s) against
 * the quantized vector (xq, xs) of nb blocks, with matvecQ8Ref's f32 steps in each lane.
 */
@inline
export function dotGroupQ8(w: usize, s: usize, xq: usize, xs: usize, nb: i32, relaxed: bool): v128 {
  let acc_f32 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const x = xq + <usize>b * QK8;
    const xa0 = loadX0(x, relaxed);
    const xa1 = loadX1(x, relaxed);
    const xb0 = loadX0(x + 16, relaxed);
    const xb1 = loadX1(x + 16, relaxed);

    const sum0 = dotBlock(w, xa0, xa1, xb0, xb1, relaxed);
    const sum1 = dotBlock(w + 32, xa0, xa1, xb0, xb1, relaxed);
    const sum2 = dotBlock(w + 64, xa0, xa1, xb0, xb1, relaxed);
    const sum3 = dotBlock(w + 96, xa0, xa1, xb0, xb1, relaxed);
    const sums_f32 = f32x4.convert_i32x4_s(sumLanes4(sum0, sum1, sum2, sum3));

    const scale = f32x4.mul(v128.load(s), v128.load32_splat(xs + (<usize>b << 2)));
    acc_f32 = f32x4.add(acc_f32, f32x4.mul(sums_f32, scale));
    w += 4 * QK8;
    s += 16;
  }
  return acc_f32;
}

/** Stores the outputs of one group: all four, or only the `remaining` real rows of the last group. */
@inline
export function storeGroup(outRow: usize, acc_f32: v128, remaining: i32): void {
  if (remaining >= 4) {
    v128.store(outRow, acc_f32);
    return;
  }
  // the last group ends in padding rows
  store<f32>(outRow, f32x4.extract_lane(acc_f32, 0));
  if (remaining > 1) store<f32>(outRow, f32x4.extract_lane(acc_f32, 1), 4);
  if (remaining > 2) store<f32>(outRow, f32x4.extract_lane(acc_f32, 2), 8);
}

// Self-test case: 5 rows (one full group and one partial group, padded to 8 rows) of 2 blocks,
// in static memory that the arena never hands out, so the test runs before the host places anything.
const SELF_TEST_ROWS: i32 = 5;
const SELF_TEST_PADDED_ROWS: i32 = 8;
const SELF_TEST_COLS: i32 = 64;
const selfTestW = memory.data(SELF_TEST_PADDED_ROWS * SELF_TEST_COLS, 16);
const selfTestWs = memory.data((SELF_TEST_PADDED_ROWS * SELF_TEST_COLS / QK8) << 2, 16);
const selfTestX = memory.data(SELF_TEST_COLS, 16);
const selfTestXs = memory.data((SELF_TEST_COLS / QK8) << 2, 16);
const selfTestOut = memory.data(SELF_TEST_ROWS << 2, 16);
const selfTestExpected = memory.data(SELF_TEST_ROWS << 2, 16);

/**
 * Runs matvecQ8 on a fixed case with negative activations and weights in [-127, 127] and returns 1
 * when it matches matvecQ8Ref bit for bit, else 0. Detects engines whose relaxed dot is wrong
 * (Node 20's baseline compiler).
 */
export function dotQ8SelfTest(): i32 {
  // both factors sweep the full range [-127, 127] with different strides
  for (let i = 0; i < SELF_TEST_ROWS * SELF_TEST_COLS; i++) {
    store<i8>(selfTestW + <usize>i, <i8>((i * 53 + 11) % 255 - 127));
  }
  for (let i = 0; i < SELF_TEST_COLS; i++) {
    store<i8>(selfTestX + <usize>i, <i8>((i * 37 + 5) % 255 - 127));
  }
  for (let b = 0; b < SELF_TEST_ROWS * SELF_TEST_COLS / QK8; b++) {
    store<f32>(selfTestWs + (<usize>b << 2), <f32>(b + 1) * 0.125);
  }
  for (let b = 0; b < SELF_TEST_COLS / QK8; b++) {
    store<f32>(selfTestXs + (<usize>b << 2), <f32>(b + 1) * 0.25);
  }

  matvecQ8Ref(selfTestExpected, selfTestW, selfTestWs, selfTestX, selfTestXs, SELF_TEST_ROWS, SELF_TEST_COLS);
  // the relaxed dot is what may be wrong, so the test runs it whatever the current choice
  const chosen = relaxedDot;
  relaxedDot = ASC_FEATURE_RELAXED_SIMD;
  matvecQ8(selfTestOut, selfTestW, selfTestWs, selfTestX, selfTestXs, SELF_TEST_ROWS, SELF_TEST_COLS);
  relaxedDot = chosen;
  for (let r = 0; r < SELF_TEST_ROWS; r++) {
    const offset = <usize>r << 2;
    if (load<u32>(selfTestOut + offset) != load<u32>(selfTestExpected + offset)) return 0;
  }
  return 1;
}
