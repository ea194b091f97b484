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
  // Blocks move as 8 words of 4 bytes; a block starts at a multiple of 32 bytes in both arrays.
  const aligned = quants.byteOffset % 4 === 0;
  const source = aligned ? new Uint32Array(quants.buffer, quants.byteOffset, (rows * cols) >> 2) : null;
  const target = new Uint32Array(outQuants.buffer);
  for (let r = 0; r < rows; r++) {
    const group = r >> 2;
    const lane = r & 3;
    for (let b = 0; b < nb; b++) {
      const index = (group * nb + b) * 4 + lane;
      const from = r * cols + b * 32;
      if (source) {
        const fromWord = from >> 2;
        const toWord = index * 8;
        for (let w = 0; w < 8; w++) target[toWord + w] = source[fromWord + w];
      } else {
        outQuants.set(quants.subarray(from, from + 32), index * 32);
      }
      outScales[index] = scales[r * nb + b];
    }
  }
  return { quants: outQuants, scales: outScales };
}
