// int8 matrix × block of int8 vectors, for prefill: OUT[t] = W X[t] for t < n.
//
// Same weight layout and the same per-row f32 steps as matvecQ8 (see matvec_q8.ts), so each
// OUT[t] is bit-identical to matvecQ8(W, X[t]). The loop runs group-outer, token-inner: a group
// of 4 rows (4 · cols bytes, 3 KiB at cols = 768) stays in L1 while every token of the block
// reads it, so each weight byte comes from memory once per block instead of once per token.
//
//   xq   (n, xStride) i8, token t at xq + t · xStride; xs (n, xStride / 32) f32
//   out  (n, outStride) f32, token t's rows at out + t · outStride · 4

import { QK8 } from "./quantize";
import { dotGroupQ8, matvecQ8Ref, storeGroup } from "./matvec_q8";

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
 * matvecQ8; xStride is a multiple of 32.
 */
export function matmatQ8(
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
      storeGroup(outRow, dotGroupQ8(wGroup, sGroup, xqT, xsT, nb), rows - r);
    }
  }
}
