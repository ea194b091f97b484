// int8 matrix × block of int8 vectors, for prefill: OUT[t] = W X[t] for t < n.
//
// Same weight layout and the same per-row f32 steps as matvecQ8 (see matvec_q8.ts), so each
// OUT[t] is bit-identical to matvecQ8(W, X[t]):
//
//   xq   (n, xStride) i8, token t at xq + t · xStride; xs (n, xStride / 32) f32
//   out  (n, outStride) f32, token t's rows at out + t · outStride · 4
//
// The blocked kernel runs two 4-row groups (8 rows) against a tile of 4 tokens per pass. Before
// the passes over a group pair, it copies the pair's weights into scratch memory transposed. Each
// vector then contains one column slice of all 4 rows of a group, so lane k of every product
// belongs to row k. The block sums of 4 rows then build up in the lanes of one vector, with no
// horizontal sums, and each weight vector is loaded and widened once per group instead of once
// per token. The activations are copied once per call, 4 tokens interleaved, so one load brings
// a column slice of the whole tile:
//
//   exact    weights: vector p of a block = rows 0..3 × columns 2p, 2p+1, i16 (8 · cols bytes
//            per group). Activations: columns 2p, 2p+1 of tokens 0..3, i16 (16 bytes).
//            i32x4.dot_i16x8_s(weights, token k's pair broadcast) adds both products of row k in lane k.
//   relaxed  weights: vector q of a block = rows 0..3 × columns 4q..4q+3, as |w| and as a sign
//            mask (4 · cols bytes each per group). Activations: columns 4q..4q+3 of tokens 0..3, i8.
//            relaxed_dot(x ^ s - s, |w|) adds x · w over 4 columns of row k in lane k. The i7
//            operand |w| stays in 0..127, so x86 and ARM agree. This needs w and x in [-127, 127].
//
// Block sums are exact in i32 in any order. Per row and token the f32 steps are matvecQ8Ref's:
// acc += f32(blockSum) · (ws[r, b] · xs[t, b]) for each block b in increasing order.
//
// Preparing a group is the first read of its weights, which come from memory. So that they are
// already in cache by then, the tiles of each pass load one word per cache line of the next
// pass's weights as they go.
//
// Each wasm instance keeps its own scratch pointer in a global, so threads that share memory
// but not instances never share scratch. Without scratch (or with too little for the call) and
// for fewer than 4 tokens, the kernel runs one group per token instead, with the same results.

import { QK8 } from "./quantize";
import { dotGroupQ8, matvecQ8Ref, matvecRelaxed, storeGroup } from "./matvec_q8";

/** Tokens per pass of the blocked kernel. */
const TILE_TOKENS: i32 = 4;

let scratch: usize = 0;
let scratchBytes: usize = 0;
/**
 * Whether the relaxed module's blocked kernel uses the relaxed dot (the layouts above) or the
 * exact one. The exact one was faster on the x86 measured here (see passTile), and the relaxed one
 * is expected to win where the relaxed dot is one instruction. So the host times both on the
 * model's own weights at load and sets the faster (setMatmatRelaxed). Both give the same bits.
 */
let relaxedDot: bool = false;
/** Sum of the words that passTile touches ahead, kept so that the engine keeps the loads. */
let touchedSum: i32 = 0;

/**
 * Returns the scratch bytes that matmatQ8 needs for rows of `cols` columns and n tokens: the
 * transposed weights of two groups and the interleaved activations of ⌈n / 4⌉ token tiles.
 */
export function matmatScratchBytes(cols: i32, n: i32): usize {
  const tiles = <usize>((n + TILE_TOKENS - 1) / TILE_TOKENS);
  return (16 + 8 * tiles) * <usize>cols;
}

/**
 * Sets this instance's scratch memory for matmatQ8 (`bytes` at `pointer`, 0 for none). Each
 * thread needs its own buffer, because matmatQ8 overwrites it on every call.
 */
export function setMatmatScratch(pointer: usize, bytes: usize): void {
  scratch = pointer;
  scratchBytes = pointer != 0 ? bytes : 0;
}

/** Selects the relaxed (1) or exact (0) blocked kernel in the relaxed module; the exact module ignores it. */
export function setMatmatRelaxed(relaxed: i32): void {
  relaxedDot = ASC_FEATURE_RELAXED_SIMD && relaxed != 0;
}

/** Returns 1 when the blocked kernel uses the relaxed dot. */
export function matmatRelaxed(): i32 {
  return relaxedDot ? 1 : 0;
}

/** Computes OUT[t] = W X[t] for t < n with matvecQ8Ref, one token at a time. Scalar reference. */
export function matmatQ8Ref(
  out: usize, wq: usize, ws: usize, xq: usize, xs: usize, rows: i32, cols: i32, n: i32, xStride: i32, outStride: i32,
): void {
  for (let t = 0; t < n; t++) {
    const xOffset = <usize>t * <usize>xStride;
    matvecQ8Ref(out + ((<usize>t * <usize>outStride) << 2), wq, ws, xq + xOffset, xs + ((xOffset >> 5) << 2), rows, cols);
  }
}

/**
 * Computes OUT[t] = W X[t] for t < n, bit-identical to matmatQ8Ref. Same preconditions as
 * matvecQ8; xStride is a multiple of 32. Uses the blocked kernel when n ≥ 4 and setMatmatScratch
 * gave at least matmatScratchBytes(cols, n) bytes, else one group per token.
 */
export function matmatQ8(
  out: usize, wq: usize, ws: usize, xq: usize, xs: usize, rows: i32, cols: i32, n: i32, xStride: i32, outStride: i32,
): void {
  // below one tile, preparing the weights costs more than it saves
  if (n < TILE_TOKENS || matmatScratchBytes(cols, n) > scratchBytes) {
    matmatQ8PerToken(out, wq, ws, xq, xs, rows, cols, n, xStride, outStride);
    return;
  }

  const nb = cols / QK8;
  const groupBytes = <usize>cols * 4;
  const groupScaleBytes = <usize>nb * 16;
  const groupScratch = <usize>cols * 8;
  const weights = scratch;
  const tiles = scratch + 2 * groupScratch;
  const xsStride = <usize>(xStride >> 5) << 2;
  prepareTokens(tiles, xq, cols, n, xStride);

  for (let r = 0; r < rows; r += 8) {
    // a trailing single group runs as both groups of the pass, and only its first copy is stored
    const pair = rows - r > 4;
    const group = <usize>(r >> 2);
    prepareGroup(weights, wq + group * groupBytes, nb);
    if (pair) prepareGroup(weights + groupScratch, wq + (group + 1) * groupBytes, nb);
    const scales = ws + group * groupScaleBytes;
    const offsetB = pair ? groupScratch : 0;
    const scaleOffsetB = pair ? groupScaleBytes : 0;
    // tile k touches lines k · nb .. (k + 1) · nb - 1 of the next pass's weights
    const nextStart = wq + (group + 2) * groupBytes;
    const nextEnd = r + 8 >= rows ? nextStart : nextStart + (r + 12 < rows ? 2 : 1) * groupBytes;

    let t = 0;
    for (; t + TILE_TOKENS <= n; t += TILE_TOKENS) {
      const outRow = out + ((<usize>t * <usize>outStride + <usize>r) << 2);
      const tile = tiles + <usize>(t >> 2) * groupScratch;
      const touchStart = nextStart + <usize>(t >> 2) * <usize>nb * 64;
      passTile(
        weights, offsetB, scales, scaleOffsetB, nb, tile, xs + <usize>t * xsStride, xsStride,
        outRow, <usize>outStride << 2, rows - r, touchStart, nextEnd,
      );
    }
    for (; t < n; t++) {
      const tokenSlice = tiles + <usize>(t >> 2) * groupScratch + (<usize>(t & 3) << 2);
      const outRow = out + ((<usize>t * <usize>outStride + <usize>r) << 2);
      passToken(weights, offsetB, scales, scaleOffsetB, nb, tokenSlice, xs + <usize>t * xsStride, outRow, rows - r);
    }
  }
}

/** Runs matmatQ8 one group and one token at a time, without scratch. */
function matmatQ8PerToken(
  out: usize, wq: usize, ws: usize, xq: usize, xs: usize, rows: i32, cols: i32, n: i32, xStride: i32, outStride: i32,
): void {
  const nb = cols / QK8;
  const groupBytes = <usize>cols * 4;
  const groupScaleBytes = <usize>nb * 16;

  for (let r = 0; r < rows; r += 4) {
    const wGroup = wq + (<usize>(r >> 2)) * groupBytes;
    const sGroup = ws + (<usize>(r >> 2)) * groupScaleBytes;

    for (let t = 0; t < n; t++) {
      const xqT = xq + <usize>t * <usize>xStride;
      const xsT = xs + ((<usize>t * <usize>(xStride >> 5)) << 2);
      const outRow = out + ((<usize>t * <usize>outStride + <usize>r) << 2);
      // the dot that matvecQ8 uses, so a token or two of prefill computes what decode does
      const acc_f32 = ASC_FEATURE_RELAXED_SIMD && matvecRelaxed()
        ? dotGroupQ8(wGroup, sGroup, xqT, xsT, nb, true)
        : dotGroupQ8(wGroup, sGroup, xqT, xsT, nb, false);
      storeGroup(outRow, acc_f32, rows - r);
    }
  }
}

/**
 * Copies the activations of n tokens into 4-token tiles of 8 · cols bytes. The exact kernel's
 * tiles have 16 bytes per column pair, with token k's two i16 at 4k. The relaxed kernel's tiles
 * have 16 bytes per column quad, with token k's four i8 at 4k.
 */
function prepareTokens(tiles: usize, xq: usize, cols: i32, n: i32, xStride: i32): void {
  for (let t = 0; t < n; t++) {
    const source = xq + <usize>t * <usize>xStride;
    const target = tiles + <usize>(t >> 2) * (<usize>cols * 8) + (<usize>(t & 3) << 2);
    if (ASC_FEATURE_RELAXED_SIMD && relaxedDot) {
      for (let c = 0; c < cols; c += 4) store<u32>(target + (<usize>c << 2), load<u32>(source + <usize>c));
      continue;
    }
    for (let c = 0; c < cols; c += 16) {
      const x = v128.load(source + <usize>c);
      const low = i16x8.extend_low_i8x16_s(x);
      const high = i16x8.extend_high_i8x16_s(x);
      const pairs = target + (<usize>c << 3);
      v128.store32_lane(pairs, low, 0);
      v128.store32_lane(pairs, low, 1, 16);
      v128.store32_lane(pairs, low, 2, 32);
      v128.store32_lane(pairs, low, 3, 48);
      v128.store32_lane(pairs, high, 0, 64);
      v128.store32_lane(pairs, high, 1, 80);
      v128.store32_lane(pairs, high, 2, 96);
      v128.store32_lane(pairs, high, 3, 112);
    }
  }
}

/** Transposes one group of 4 interleaved rows (nb blocks at w) into `target`, laid out as the file comment shows. */
function prepareGroup(target: usize, w: usize, nb: i32): void {
  for (let b = 0; b < nb; b++) {
    // each half block: 16 bytes of each of the 4 rows
    for (let half = 0; half < 2; half++) {
      const source = w + <usize>b * 128 + <usize>half * 16;
      const r0 = v128.load(source);
      const r1 = v128.load(source, 32);
      const r2 = v128.load(source, 64);
      const r3 = v128.load(source, 96);
      if (ASC_FEATURE_RELAXED_SIMD && relaxedDot) {
        prepareQuads(target + <usize>b * 128 + <usize>half * 64, <usize>nb * 128, r0, r1, r2, r3);
      } else {
        preparePairs(target + <usize>b * 256 + <usize>half * 128, r0, r1, r2, r3);
      }
    }
  }
}

// Exact layout: byte pairs are 16-bit elements, so a 4 × 8 transpose of them, then widening, gives
// 8 vectors of rows 0..3 × one column pair.
@inline
function preparePairs(target: usize, r0: v128, r1: v128, r2: v128, r3: v128): void {
  const rows01Low = v128.shuffle<i16>(r0, r1, 0, 8, 1, 9, 2, 10, 3, 11);
  const rows01High = v128.shuffle<i16>(r0, r1, 4, 12, 5, 13, 6, 14, 7, 15);
  const rows23Low = v128.shuffle<i16>(r2, r3, 0, 8, 1, 9, 2, 10, 3, 11);
  const rows23High = v128.shuffle<i16>(r2, r3, 4, 12, 5, 13, 6, 14, 7, 15);
  const pairs01 = v128.shuffle<i32>(rows01Low, rows23Low, 0, 4, 1, 5);
  const pairs23 = v128.shuffle<i32>(rows01Low, rows23Low, 2, 6, 3, 7);
  const pairs45 = v128.shuffle<i32>(rows01High, rows23High, 0, 4, 1, 5);
  const pairs67 = v128.shuffle<i32>(rows01High, rows23High, 2, 6, 3, 7);
  v128.store(target, i16x8.extend_low_i8x16_s(pairs01));
  v128.store(target, i16x8.extend_high_i8x16_s(pairs01), 16);
  v128.store(target, i16x8.extend_low_i8x16_s(pairs23), 32);
  v128.store(target, i16x8.extend_high_i8x16_s(pairs23), 48);
  v128.store(target, i16x8.extend_low_i8x16_s(pairs45), 64);
  v128.store(target, i16x8.extend_high_i8x16_s(pairs45), 80);
  v128.store(target, i16x8.extend_low_i8x16_s(pairs67), 96);
  v128.store(target, i16x8.extend_high_i8x16_s(pairs67), 112);
}

// Relaxed layout: byte quads are 32-bit elements, so a 4 × 4 transpose of them gives 4 vectors of
// rows 0..3 × one column quad, stored as |w| and, signBytes further on, as the sign mask.
@inline
function prepareQuads(target: usize, signBytes: usize, r0: v128, r1: v128, r2: v128, r3: v128): void {
  const rows01Low = v128.shuffle<i32>(r0, r1, 0, 4, 1, 5);
  const rows01High = v128.shuffle<i32>(r0, r1, 2, 6, 3, 7);
  const rows23Low = v128.shuffle<i32>(r2, r3, 0, 4, 1, 5);
  const rows23High = v128.shuffle<i32>(r2, r3, 2, 6, 3, 7);
  storeQuad(target, signBytes, v128.shuffle<i64>(rows01Low, rows23Low, 0, 2));
  storeQuad(target + 16, signBytes, v128.shuffle<i64>(rows01Low, rows23Low, 1, 3));
  storeQuad(target + 32, signBytes, v128.shuffle<i64>(rows01High, rows23High, 0, 2));
  storeQuad(target + 48, signBytes, v128.shuffle<i64>(rows01High, rows23High, 1, 3));
}

@inline
function storeQuad(target: usize, signBytes: usize, w: v128): void {
  v128.store(target, i8x16.abs(w));
  v128.store(target + signBytes, i8x16.lt_s(w, i8x16.splat(0)));
}

// x · w with the sign of w moved onto x: (x ^ s) - s is -x where w < 0.
@inline
function signedDot(x: v128, wAbs: v128, wSign: v128, acc: v128): v128 {
  return i32x4.relaxed_dot_i8x16_i7x16_add_s(i8x16.sub(v128.xor(x, wSign), wSign), wAbs, acc);
}

// One f32 step of matvecQ8Ref for the 4 rows of a group: acc + f32(sums) · (ws · xs).
@inline
function accumulateBlock(acc: v128, sums: v128, scales: v128, xScale: v128): v128 {
  return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(sums), f32x4.mul(scales, xScale)));
}

/**
 * Computes 8 rows for the 4 tokens of one tile and stores them at outRow, outStride bytes apart
 * per token. The rows are group A (transposed weights at `weights`, scales at `scales`) and group
 * B (offsetB and scaleOffsetB bytes further on, both 0 when B repeats A). The tile's activation
 * scales sit at xs, xsStride bytes apart. Only `remaining` rows are stored. Block b also loads
 * the word at touchStart + 64 · b when that is below touchEnd.
 */
function passTile(
  weights: usize, offsetB: usize, scales: usize, scaleOffsetB: usize, nb: i32,
  tile: usize, xs: usize, xsStride: usize, outRow: usize, outStride: usize, remaining: i32,
  touchStart: usize, touchEnd: usize,
): void {
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let acc2 = f32x4.splat(0);
  let acc3 = f32x4.splat(0);
  let accB0 = f32x4.splat(0);
  let accB1 = f32x4.splat(0);
  let accB2 = f32x4.splat(0);
  let accB3 = f32x4.splat(0);
  let w = weights;
  let x = tile;
  let s = scales;
  let xScale = xs;

  for (let b = 0; b < nb; b++) {
    let sum0 = i32x4.splat(0);
    let sum1 = i32x4.splat(0);
    let sum2 = i32x4.splat(0);
    let sum3 = i32x4.splat(0);
    let sumB0 = i32x4.splat(0);
    let sumB1 = i32x4.splat(0);
    let sumB2 = i32x4.splat(0);
    let sumB3 = i32x4.splat(0);

    // a load is the only prefetch wasm has
    const line = touchStart + (<usize>b << 6);
    if (line < touchEnd) touchedSum += load<i32>(line);

    if (ASC_FEATURE_RELAXED_SIMD && relaxedDot) {
      // NOTE: on x86 without AVX-VNNI, V8 builds each relaxed dot from 3 to 5 instructions, and
      // there this branch ran at 46 GOPS against 65 for the exact one (Node 20, bench/kernels.mjs,
      // AMD EPYC with AVX-512 VNNI only). Where the relaxed dot is one instruction (ARM sdot,
      // AVX-VNNI) it does less work per product than the exact one; that was not measured.
      const signOffset = <usize>nb * 128;
      for (let q = 0; q < 8; q++) {
        const wAbs = v128.load(w);
        const wSign = v128.load(w + signOffset);
        const wAbsB = v128.load(w + offsetB);
        const wSignB = v128.load(w + offsetB + signOffset);
        const tokens = v128.load(x);
        const x0 = v128.shuffle<i32>(tokens, tokens, 0, 0, 0, 0);
        sum0 = signedDot(x0, wAbs, wSign, sum0);
        sumB0 = signedDot(x0, wAbsB, wSignB, sumB0);
        const x1 = v128.shuffle<i32>(tokens, tokens, 1, 1, 1, 1);
        sum1 = signedDot(x1, wAbs, wSign, sum1);
        sumB1 = signedDot(x1, wAbsB, wSignB, sumB1);
        const x2 = v128.shuffle<i32>(tokens, tokens, 2, 2, 2, 2);
        sum2 = signedDot(x2, wAbs, wSign, sum2);
        sumB2 = signedDot(x2, wAbsB, wSignB, sumB2);
        const x3 = v128.shuffle<i32>(tokens, tokens, 3, 3, 3, 3);
        sum3 = signedDot(x3, wAbs, wSign, sum3);
        sumB3 = signedDot(x3, wAbsB, wSignB, sumB3);
        w += 16;
        x += 16;
      }
    } else {
      // one column pair per step: unrolled by 2, this loop ran slower in Node 20 and Deno 2.9
      for (let p = 0; p < 16; p++) {
        const wPair = v128.load(w);
        const wPairB = v128.load(w + offsetB);
        const tokens = v128.load(x);
        const x0 = v128.shuffle<i32>(tokens, tokens, 0, 0, 0, 0);
        sum0 = i32x4.add(sum0, i32x4.dot_i16x8_s(wPair, x0));
        sumB0 = i32x4.add(sumB0, i32x4.dot_i16x8_s(wPairB, x0));
        const x1 = v128.shuffle<i32>(tokens, tokens, 1, 1, 1, 1);
        sum1 = i32x4.add(sum1, i32x4.dot_i16x8_s(wPair, x1));
        sumB1 = i32x4.add(sumB1, i32x4.dot_i16x8_s(wPairB, x1));
        const x2 = v128.shuffle<i32>(tokens, tokens, 2, 2, 2, 2);
        sum2 = i32x4.add(sum2, i32x4.dot_i16x8_s(wPair, x2));
        sumB2 = i32x4.add(sumB2, i32x4.dot_i16x8_s(wPairB, x2));
        const x3 = v128.shuffle<i32>(tokens, tokens, 3, 3, 3, 3);
        sum3 = i32x4.add(sum3, i32x4.dot_i16x8_s(wPair, x3));
        sumB3 = i32x4.add(sumB3, i32x4.dot_i16x8_s(wPairB, x3));
        w += 16;
        x += 16;
      }
    }

    const scalesA = v128.load(s);
    const scalesB = v128.load(s + scaleOffsetB);
    const xScale0 = v128.load32_splat(xScale);
    const xScale1 = v128.load32_splat(xScale + xsStride);
    const xScale2 = v128.load32_splat(xScale + 2 * xsStride);
    const xScale3 = v128.load32_splat(xScale + 3 * xsStride);
    acc0 = accumulateBlock(acc0, sum0, scalesA, xScale0);
    acc1 = accumulateBlock(acc1, sum1, scalesA, xScale1);
    acc2 = accumulateBlock(acc2, sum2, scalesA, xScale2);
    acc3 = accumulateBlock(acc3, sum3, scalesA, xScale3);
    accB0 = accumulateBlock(accB0, sumB0, scalesB, xScale0);
    accB1 = accumulateBlock(accB1, sumB1, scalesB, xScale1);
    accB2 = accumulateBlock(accB2, sumB2, scalesB, xScale2);
    accB3 = accumulateBlock(accB3, sumB3, scalesB, xScale3);
    s += 16;
    xScale += 4;
  }

  storeGroup(outRow, acc0, remaining);
  storeGroup(outRow + outStride, acc1, remaining);
  storeGroup(outRow + 2 * outStride, acc2, remaining);
  storeGroup(outRow + 3 * outStride, acc3, remaining);
  if (remaining <= 4) return;
  storeGroup(outRow + 16, accB0, remaining - 4);
  storeGroup(outRow + outStride + 16, accB1, remaining - 4);
  storeGroup(outRow + 2 * outStride + 16, accB2, remaining - 4);
  storeGroup(outRow + 3 * outStride + 16, accB3, remaining - 4);
}

/**
 * Computes the 8 rows of passTile for one token, whose activations sit at `token` in its tile
 * (16 bytes per column pair or quad), and stores them at outRow.
 */
function passToken(
  weights: usize, offsetB: usize, scales: usize, scaleOffsetB: usize, nb: i32,
  token: usize, xs: usize, outRow: usize, remaining: i32,
): void {
  let acc = f32x4.splat(0);
  let accB = f32x4.splat(0);
  let w = weights;
  let x = token;
  let s = scales;
  let xScale = xs;

  for (let b = 0; b < nb; b++) {
    let sum = i32x4.splat(0);
    let sumB = i32x4.splat(0);
    if (ASC_FEATURE_RELAXED_SIMD && relaxedDot) {
      const signOffset = <usize>nb * 128;
      for (let q = 0; q < 8; q++) {
        const xQuad = v128.load32_splat(x);
        sum = signedDot(xQuad, v128.load(w), v128.load(w + signOffset), sum);
        sumB = signedDot(xQuad, v128.load(w + offsetB), v128.load(w + offsetB + signOffset), sumB);
        w += 16;
        x += 16;
      }
    } else {
      for (let p = 0; p < 16; p++) {
        const xPair = v128.load32_splat(x);
        sum = i32x4.add(sum, i32x4.dot_i16x8_s(v128.load(w), xPair));
        sumB = i32x4.add(sumB, i32x4.dot_i16x8_s(v128.load(w + offsetB), xPair));
        w += 16;
        x += 16;
      }
    }
    const xScale0 = v128.load32_splat(xScale);
    acc = accumulateBlock(acc, sum, v128.load(s), xScale0);
    accB = accumulateBlock(accB, sumB, v128.load(s + scaleOffsetB), xScale0);
    s += 16;
    xScale += 4;
  }

  storeGroup(outRow, acc, remaining);
  if (remaining > 4) storeGroup(outRow + 16, accB, remaining - 4);
}
