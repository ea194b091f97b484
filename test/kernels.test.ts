// Kernel tests on the exact simd128 test module: every SIMD kernel against its scalar reference,
// and the references against float64 or f32-rounded JavaScript models.

import { beforeAll, beforeEach, describe, expect, test } from "vitest";
import { describeQ8Kernels, findBitMismatch, LENGTHS, ROW_COUNTS } from "./q8-cases.js";
import { type KernelModule, loadKernelModule, randomF32, seededRandom } from "./wasm-harness.js";

/**
 * Largest |f32 result − exact result| of a sum of products, relative to Σ|product|. Four-lane and
 * left-to-right f32 sums of up to 4096 random terms measured below 1.2e-7. One dropped or doubled
 * term of average size (1/4096 of Σ|product|) exceeds it 200 times.
 */
const F32_SUM_REL_TOL = 1e-6;

/**
 * Largest relative error of a softmax output. Rounding x - max to f32 moves exp(x - max) by up to
 * |x - max| · 2^-24 relative (1e-6 for the spread of 16 tested), and the f32 sum of n terms adds more.
 */
const SOFTMAX_REL_TOL = 1e-5;

/** Largest |Δ| between a kernel using Mathf exp/sin/cos/pow and a float64 model, for values of order 1. */
const F32_TRANSCENDENTAL_TOL = 2e-6;

const fround = Math.fround;

/** Returns the index and values of the first element that is off by more than tolerance[i], or undefined. */
function findToleranceMismatch(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: (i: number) => number,
): string | undefined {
  for (let i = 0; i < expected.length; i++) {
    const error = Math.abs(actual[i] - expected[i]);
    if (!(error <= tolerance(i))) return `index ${i}: ${actual[i]}, expected ${expected[i]} ± ${tolerance(i)}`;
  }
  return undefined;
}

describe("f32 kernels", () => {
  let m: KernelModule;

  beforeAll(async () => {
    m = await loadKernelModule("exact");
  });

  beforeEach(() => {
    m.reset();
  });

  /** Returns W x in f64 and, per row, the sum of |w · x| that bounds its f32 rounding error. */
  function matvecF64(w: Float32Array, x: Float32Array, rows: number, cols: number): { exact: Float64Array; magnitude: Float64Array } {
    const exact = new Float64Array(rows);
    const magnitude = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        exact[r] += w[r * cols + c] * x[c];
        magnitude[r] += Math.abs(w[r * cols + c] * x[c]);
      }
    }
    return { exact, magnitude };
  }

  const shapes = ROW_COUNTS.flatMap((rows) => LENGTHS.map((cols) => [rows, cols] as const));
  test.each(shapes)("matvecF32 %i rows, length %i", (rows, cols) => {
    const random = seededRandom(rows * 7919 + cols);
    const w = randomF32(random, rows * cols);
    const x = randomF32(random, cols);
    const { exact, magnitude } = matvecF64(w, x, rows, cols);

    const wPointer = m.putF32(rows * cols, w);
    const xPointer = m.putF32(cols, x);
    for (const kernel of ["matvecF32Ref", "matvecF32"] as const) {
      const outPointer = m.putF32(rows);
      m.exports[kernel](outPointer, wPointer, xPointer, rows, cols);
      const out = m.f32(outPointer, rows);
      expect(findToleranceMismatch(out, exact, (r) => F32_SUM_REL_TOL * magnitude[r]), kernel).toBeUndefined();
    }
  });

  // Matrices of 256 KiB and more take the two-stream pass, smaller ones the four-row pass
  // (assembly/kernels/matvec_f32.ts). Each row alone takes the four-row pass's one-row tail.
  test.each([[67, 1031], [64, 1024], [2, 32768], [3, 21851]] as const)("matvecF32 two-stream pass %i × %i: the bits of each row alone", (rows, cols) => {
    const random = seededRandom(rows * 31 + cols);
    const w = randomF32(random, rows * cols);
    const x = randomF32(random, cols);
    const wPointer = m.putF32(rows * cols, w);
    const xPointer = m.putF32(cols, x);
    const outPointer = m.putF32(rows);
    m.exports.matvecF32(outPointer, wPointer, xPointer, rows, cols);
    const whole = m.f32(outPointer, rows).slice();
    const alone = new Float32Array(rows);
    const rowPointer = m.putF32(1);
    for (let r = 0; r < rows; r++) {
      m.exports.matvecF32(rowPointer, wPointer + r * cols * 4, xPointer, 1, cols);
      alone[r] = m.f32(rowPointer, 1)[0];
    }
    expect(findBitMismatch(whole, alone)).toBeUndefined();
  });

  // one and three rows of 256 KiB: the two-stream pass pairs an odd last row with itself
  test.each([1, 3])("matvecF32 two-stream pass, %i long rows, against f64", (rows) => {
    const cols = 65536;
    const random = seededRandom(rows * 131 + 7);
    const w = randomF32(random, rows * cols);
    const x = randomF32(random, cols);
    const { exact, magnitude } = matvecF64(w, x, rows, cols);
    const outPointer = m.putF32(rows + 1);
    m.f32(outPointer, rows + 1).fill(-1);
    m.exports.matvecF32(outPointer, m.putF32(rows * cols, w), m.putF32(cols, x), rows, cols);
    const out = m.f32(outPointer, rows + 1);
    expect(findToleranceMismatch(out.subarray(0, rows), exact, (r) => F32_SUM_REL_TOL * magnitude[r])).toBeUndefined();
    expect(out[rows], "the value past the last row").toBe(-1);
  });

  test.each(LENGTHS)("dotF32 length %i", (n) => {
    const random = seededRandom(3000 + n);
    const a = randomF32(random, n);
    const b = randomF32(random, n);
    let exact = 0;
    let magnitude = 0;
    for (let i = 0; i < n; i++) {
      exact += a[i] * b[i];
      magnitude += Math.abs(a[i] * b[i]);
    }
    const aPointer = m.putF32(n, a);
    const bPointer = m.putF32(n, b);
    for (const kernel of ["dotF32Ref", "dotF32"] as const) {
      const result = m.exports[kernel](aPointer, bPointer, n);
      expect(Math.abs(result - exact), kernel).toBeLessThanOrEqual(F32_SUM_REL_TOL * magnitude);
    }
  });

  test.each(LENGTHS)("rmsnorm length %i", (n) => {
    const random = seededRandom(4000 + n);
    const x = randomF32(random, n, 3);
    const weight = randomF32(random, n);
    const eps = 1e-5;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[i] * x[i];
    const inverseRms = 1 / Math.sqrt(ss / n + eps);
    const expected = Array.from(x, (v, i) => weight[i] * v * inverseRms);

    const xPointer = m.putF32(n, x);
    const weightPointer = m.putF32(n, weight);
    for (const kernel of ["rmsnormRef", "rmsnorm"] as const) {
      const outPointer = m.putF32(n);
      m.exports[kernel](outPointer, xPointer, weightPointer, n, eps);
      const out = m.f32(outPointer, n);
      const tolerance = (i: number) => F32_SUM_REL_TOL * Math.abs(expected[i]) + 1e-7;
      expect(findToleranceMismatch(out, expected, tolerance), kernel).toBeUndefined();

      // in place (out = x), as the final norm of the forward pass runs
      const inPlacePointer = m.putF32(n, x);
      m.exports[kernel](inPlacePointer, inPlacePointer, weightPointer, n, eps);
      expect(findBitMismatch(m.f32(inPlacePointer, n), m.f32(outPointer, n)), `${kernel} in place`).toBeUndefined();
    }
  });

  test.each(LENGTHS)("axpyF32 length %i", (n) => {
    const random = seededRandom(5000 + n);
    const y = randomF32(random, n);
    const x = randomF32(random, n);
    const a = fround(-0.7311);
    const expected = Float32Array.from(y, (v, i) => fround(v + fround(a * x[i])));
    const xPointer = m.putF32(n, x);
    for (const kernel of ["axpyF32Ref", "axpyF32"] as const) {
      const yPointer = m.putF32(n, y);
      m.exports[kernel](yPointer, a, xPointer, n);
      expect(findBitMismatch(m.f32(yPointer, n), expected), kernel).toBeUndefined();
    }
  });

  test.each(LENGTHS)("addF32 length %i", (n) => {
    const random = seededRandom(6000 + n);
    const y = randomF32(random, n);
    const x = randomF32(random, n);
    const expected = Float32Array.from(y, (v, i) => fround(v + x[i]));
    const xPointer = m.putF32(n, x);
    for (const kernel of ["addF32Ref", "addF32"] as const) {
      const yPointer = m.putF32(n, y);
      m.exports[kernel](yPointer, xPointer, n);
      expect(findBitMismatch(m.f32(yPointer, n), expected), kernel).toBeUndefined();
    }
  });

  test.each(LENGTHS)("softmax length %i", (n) => {
    const x = randomF32(seededRandom(7000 + n), n, 8);
    const max = Math.max(...x);
    const exps = Array.from(x, (v) => Math.exp(v - max));
    const sum = exps.reduce((total, v) => total + v, 0);
    const expected = exps.map((v) => v / sum);

    const xPointer = m.putF32(n, x);
    m.exports.softmax(xPointer, n);
    const out = m.f32(xPointer, n);
    const tolerance = (i: number) => SOFTMAX_REL_TOL * expected[i];
    expect(findToleranceMismatch(out, expected, tolerance)).toBeUndefined();
    expect(Math.abs(out.reduce((total, v) => total + v, 0) - 1)).toBeLessThan(1e-5);
  });

  test("softmax large inputs", () => {
    const xPointer = m.putF32(3, [1000, 999, -1000]);
    m.exports.softmax(xPointer, 3);
    const out = Array.from(m.f32(xPointer, 3));
    const e = Math.exp(-1);
    expect(out[0]).toBeCloseTo(1 / (1 + e), 6);
    expect(out[1]).toBeCloseTo(e / (1 + e), 6);
    expect(out[2]).toBe(0);
  });

  test.each(LENGTHS)("swiglu length %i", (n) => {
    const random = seededRandom(8000 + n);
    const gate = randomF32(random, n, 6);
    const up = randomF32(random, n, 2);
    const expected = Array.from(gate, (v, i) => (v / (1 + Math.exp(-v))) * up[i]);
    const gatePointer = m.putF32(n, gate);
    const upPointer = m.putF32(n, up);
    m.exports.swiglu(gatePointer, upPointer, n);
    const tolerance = (i: number) => F32_TRANSCENDENTAL_TOL * Math.max(1, Math.abs(expected[i]));
    expect(findToleranceMismatch(m.f32(gatePointer, n), expected, tolerance)).toBeUndefined();
  });

  test("swiglu saturated gate", () => {
    const gatePointer = m.putF32(4, [-200, 200, 0, -0.5]);
    const upPointer = m.putF32(4, [3, 3, 3, 2]);
    m.exports.swiglu(gatePointer, upPointer, 4);
    const out = Array.from(m.f32(gatePointer, 4));
    expect(out[0]).toBe(-0);
    expect(out[1]).toBe(600);
    expect(out[2]).toBe(0);
    expect(out[3]).toBeCloseTo((-0.5 / (1 + Math.exp(0.5))) * 2, 6);
  });

  // llama2.c run.c: freq = 1 / powf(theta, head_dim / head_size), val = pos * freq, cosf/sinf, in f32
  function ropeModel(vec: Float32Array, headCount: number, head_size: number, pos: number, theta: number): Float64Array {
    const out = Float64Array.from(vec);
    for (let i = 0; i < head_size; i += 2) {
      const freq = fround(1 / fround(Math.pow(theta, fround(i / head_size))));
      const angle = fround(pos * freq);
      const cosAngle = fround(Math.cos(angle));
      const sinAngle = fround(Math.sin(angle));
      for (let h = 0; h < headCount; h++) {
        const j = h * head_size + i;
        out[j] = vec[j] * cosAngle - vec[j + 1] * sinAngle;
        out[j + 1] = vec[j] * sinAngle + vec[j + 1] * cosAngle;
      }
    }
    return out;
  }

  const ropeCases = [
    [8, 8, 1],
    [4, 8, 7],
    [8, 8, 511],
    [6, 64, 300],
    [2, 128, 4095],
  ] as const;
  test.each(ropeCases)("ropeAdjacent %i heads of %i, pos %i", (headCount, head_size, pos) => {
    const n = headCount * head_size;
    const vec = randomF32(seededRandom(9000 + pos), n);
    const expected = ropeModel(vec, headCount, head_size, pos, 10000);
    const vecPointer = m.putF32(n, vec);
    m.exports.ropeAdjacent(vecPointer, headCount, head_size, pos, 10000);
    expect(findToleranceMismatch(m.f32(vecPointer, n), expected, () => F32_TRANSCENDENTAL_TOL)).toBeUndefined();
  });

  test("ropeAdjacent pos 0 is identity", () => {
    const vec = randomF32(seededRandom(9999), 64);
    const vecPointer = m.putF32(64, vec);
    m.exports.ropeAdjacent(vecPointer, 8, 8, 0, 10000);
    expect(findBitMismatch(m.f32(vecPointer, 64), vec)).toBeUndefined();
  });

  test("ropeAdjacent theta 500000", () => {
    const vec = randomF32(seededRandom(500000), 128);
    const expected = ropeModel(vec, 1, 128, 1000, 500000);
    const vecPointer = m.putF32(128, vec);
    m.exports.ropeAdjacent(vecPointer, 1, 128, 1000, 500000);
    expect(findToleranceMismatch(m.f32(vecPointer, 128), expected, () => F32_TRANSCENDENTAL_TOL)).toBeUndefined();
  });
});

describeQ8Kernels("exact");
