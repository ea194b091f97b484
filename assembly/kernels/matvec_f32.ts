// f32 matrix × vector: out[r] = Σ_c W[r, c] · x[c], W (rows, cols) f32 row-major, x (cols) f32, out (rows) f32.
//
// The simd128 kernel keeps four partial sums per row (one per lane) and adds them at the end. Its
// rounding therefore differs from the left-to-right reference, so tests compare the two with a tolerance.
//
// Two passes compute each row with the same f32 steps, so they give the same bits:
//   - matrices of at least STREAM_BYTES: two rows per pass, one from each half of the matrix, so
//     memory is read as two sequential streams. From DRAM (12 matrices of 2048 × 768, 75 MB) this
//     read 26–28 GB/s, as fast as a plain in-order read, where four adjacent rows per pass read
//     10–12 GB/s (EPYC VM, Node 20, 2026-12-05). Four rows, two from each half, fell back to 12.
//   - smaller matrices, which a model reuses from cache: four adjacent rows per pass, sharing each
//     load of x over four independent sums, 25 GOPS in L2 against 20 for two rows.

/** Matrix bytes from which matvecF32 reads two row streams. */
const STREAM_BYTES: usize = 256 << 10;

/** Computes out = W x in f32, summing each row left to right. Scalar reference. */
export function matvecF32Ref(out: usize, w: usize, x: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    const wRow = w + ((<usize>r * <usize>cols) << 2);
    let acc: f32 = 0;
    for (let c = 0; c < cols; c++) {
      acc += load<f32>(wRow + (<usize>c << 2)) * load<f32>(x + (<usize>c << 2));
    }
    store<f32>(out + (<usize>r << 2), acc);
  }
}

@inline
function sumLanesF32(v: v128): f32 {
  const t = f32x4.add(v, v128.shuffle<i32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1);
}

/**
 * Computes out = W x in f32 with simd128 (see the two passes above). cols may be any length, and
 * rows need no alignment. out must not alias W or x.
 */
export function matvecF32(out: usize, w: usize, x: usize, rows: i32, cols: i32): void {
  const rowBytes = <usize>cols << 2;
  if (<usize>rows * rowBytes >= STREAM_BYTES) {
    const half = rows >> 1;
    for (let r = 0; r < half; r++) {
      const r2 = r + half;
      dotRows2F32(out + (<usize>r << 2), out + (<usize>r2 << 2), w + <usize>r * rowBytes, w + <usize>r2 * rowBytes, x, cols);
    }
    // an odd last row pairs with itself
    if (rows & 1) {
      const last = rows - 1;
      dotRows2F32(out + (<usize>last << 2), out + (<usize>last << 2), w + <usize>last * rowBytes, w + <usize>last * rowBytes, x, cols);
    }
    return;
  }
  const cols4 = cols & ~3;

  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const w0 = w + <usize>r * rowBytes;
    const w1 = w0 + rowBytes;
    const w2 = w1 + rowBytes;
    const w3 = w2 + rowBytes;
    let acc0 = f32x4.splat(0);
    let acc1 = f32x4.splat(0);
    let acc2 = f32x4.splat(0);
    let acc3 = f32x4.splat(0);

    let c = 0;
    for (; c < cols4; c += 4) {
      const offset = <usize>c << 2;
      const xv = v128.load(x + offset);
      acc0 = f32x4.add(acc0, f32x4.mul(v128.load(w0 + offset), xv));
      acc1 = f32x4.add(acc1, f32x4.mul(v128.load(w1 + offset), xv));
      acc2 = f32x4.add(acc2, f32x4.mul(v128.load(w2 + offset), xv));
      acc3 = f32x4.add(acc3, f32x4.mul(v128.load(w3 + offset), xv));
    }
    let sum0 = sumLanesF32(acc0);
    let sum1 = sumLanesF32(acc1);
    let sum2 = sumLanesF32(acc2);
    let sum3 = sumLanesF32(acc3);
    for (; c < cols; c++) {
      const offset = <usize>c << 2;
      const xc = load<f32>(x + offset);
      sum0 += load<f32>(w0 + offset) * xc;
      sum1 += load<f32>(w1 + offset) * xc;
      sum2 += load<f32>(w2 + offset) * xc;
      sum3 += load<f32>(w3 + offset) * xc;
    }
    const outRow = out + (<usize>r << 2);
    store<f32>(outRow, sum0);
    store<f32>(outRow, sum1, 4);
    store<f32>(outRow, sum2, 8);
    store<f32>(outRow, sum3, 12);
  }

  // remaining rows one at a time
  for (; r < rows; r++) {
    const wRow = w + <usize>r * rowBytes;
    let acc = f32x4.splat(0);
    let c = 0;
    for (; c < cols4; c += 4) {
      const offset = <usize>c << 2;
      acc = f32x4.add(acc, f32x4.mul(v128.load(wRow + offset), v128.load(x + offset)));
    }
    let sum = sumLanesF32(acc);
    for (; c < cols; c++) {
      const offset = <usize>c << 2;
      sum += load<f32>(wRow + offset) * load<f32>(x + offset);
    }
    store<f32>(out + (<usize>r << 2), sum);
  }
}

/** Computes rows A and B of matvecF32 into outA and outB, with the f32 steps of the passes above. */
@inline
function dotRows2F32(outA: usize, outB: usize, wA: usize, wB: usize, x: usize, cols: i32): void {
  const cols4 = cols & ~3;
  let accA = f32x4.splat(0);
  let accB = f32x4.splat(0);
  let c = 0;
  for (; c < cols4; c += 4) {
    const offset = <usize>c << 2;
    const xv = v128.load(x + offset);
    accA = f32x4.add(accA, f32x4.mul(v128.load(wA + offset), xv));
    accB = f32x4.add(accB, f32x4.mul(v128.load(wB + offset), xv));
  }
  let sumA = sumLanesF32(accA);
  let sumB = sumLanesF32(accB);
  for (; c < cols; c++) {
    const offset = <usize>c << 2;
    const xc = load<f32>(x + offset);
    sumA += load<f32>(wA + offset) * xc;
    sumB += load<f32>(wB + offset) * xc;
  }
  store<f32>(outA, sumA);
  store<f32>(outB, sumB);
}
