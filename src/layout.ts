/**
 * The runtime layout of int8 matrices in wasm memory (see assembly/kernels/matvec_q8.ts):
 * rows padded to a multiple of 4 and each group of 4 rows stored block-interleaved, so the
 * matrix-vector kernel reads one contiguous stream per group.
 */

/** Rows of the runtime layout: `rows` rounded up to a whole group of 4. */
export function paddedRows(rows: number): number {
  return Math.ceil(rows / 4) * 4;
}

/**
 * Reorders row-major Q8_0 quants (rows, cols) and scales (rows, cols/32) into the interleaved
 * layout. `cols` is a multiple of 32; the padding rows are zero.
 */
export function interleaveQ8Rows(
  quants: Int8Array, scales: Float32Array, rows: number, cols: number,
): { quants: Int8Array; scales: Float32Array } {
  const nb = cols / 32;
  const groups = paddedRows(rows) / 4;
  const outQuants = new Int8Array(groups * 4 * cols);
  const outScales = new Float32Array(groups * 4 * nb);
  for (let r = 0; r < rows; r++) {
    const group = r >> 2;
    const lane = r & 3;
    for (let b = 0; b < nb; b++) {
      const index = (group * nb + b) * 4 + lane;
      outQuants.set(quants.subarray(r * cols + b * 32, r * cols + b * 32 + 32), index * 32);
      outScales[index] = scales[r * nb + b];
    }
  }
  return { quants: outQuants, scales: outScales };
}
