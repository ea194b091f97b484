// int8 kernel tests shared by the exact module (kernels.test.ts) and the relaxed-SIMD module
// (kernels-relaxed.test.ts). Every int8 result must be bit-identical to the scalar reference, and
// the reference must be bit-identical to a JavaScript model of the Q8_0 rule with f32 rounding.

import { interleaveQ8Rows } from "../src/layout.js";
import { beforeAll, beforeEach, describe, expect, test } from "vitest";
import {
  type KernelModule,
  type KernelVariant,
  loadKernelModule,
  padToBlock,
  randomF32,
  randomQuants,
  seededRandom,
} from "./wasm-harness.js";

/** Awkward lengths that hit every tail. int8 kernels round them up to whole blocks of 32. */
export const LENGTHS = [1, 15, 16, 17, 31, 33, 172, 4096];

/**
 * Row counts around the 4-row pass: full passes, remainders of 1 to 3, and both together; even
 * and odd numbers of groups, since matvecQ8 alternates between two halves of them (8 = 2 groups, 12 = 3).
 */
export const ROW_COUNTS = [1, 3, 4, 5, 7, 8, 12, 17];

const fround = Math.fround;

/** Returns undefined when both arrays hold the same bits, else a message naming the first differing index. */
export function findBitMismatch(
  actual: Float32Array | Int8Array,
  expected: Float32Array | Int8Array,
): string | undefined {
  if (actual.length !== expected.length) return `length ${actual.length}, expected ${expected.length}`;
  const a = actual instanceof Float32Array ? new Uint32Array(actual.buffer, actual.byteOffset, actual.length) : actual;
  const e = expected instanceof Float32Array ? new Uint32Array(expected.buffer, expected.byteOffset, expected.length) : expected;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i]) return `index ${i}: ${actual[i]}, expected ${expected[i]}`;
  }
  return undefined;
}

function roundHalfAwayFromZero(v: number): number {
  const whole = Math.trunc(v);
  return Math.abs(v - whole) >= 0.5 ? whole + Math.sign(v) : whole;
}

/** Quantizes x to Q8_0 in JavaScript, rounding each step to f32 as the kernels do. */
export function quantizeModel(x: Float32Array): { xq: Int8Array; xs: Float32Array } {
  const xq = new Int8Array(x.length);
  const xs = new Float32Array(x.length / 32);
  for (let b = 0; b < xs.length; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[b * 32 + i]));
    const d = fround(amax / 127);
    const id = d !== 0 ? fround(1 / d) : 0;
    xs[b] = d;
    for (let i = 0; i < 32; i++) {
      const q = roundHalfAwayFromZero(fround(x[b * 32 + i] * id));
      xq[b * 32 + i] = Math.min(127, Math.max(-127, q));
    }
  }
  return { xq, xs };
}

/** Computes out = W x for Q8_0 in JavaScript with the reference's f32 operations in its order. */
export function matvecQ8Model(
  wq: Int8Array,
  ws: Float32Array,
  xq: Int8Array,
  xs: Float32Array,
  rows: number,
  cols: number,
): Float32Array {
  const nb = cols / 32;
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    for (let b = 0; b < nb; b++) {
      let sum = 0;
      for (let i = 0; i < 32; i++) sum += wq[r * cols + b * 32 + i] * xq[b * 32 + i];
      acc = fround(acc + fround(sum * fround(ws[r * nb + b] * xs[b])));
    }
    out[r] = acc;
  }
  return out;
}

/** Returns values whose blocks span magnitudes 1e-4 to 1e4, so scales differ widely between blocks. */
function randomBlocks(random: () => number, n: number): Float32Array {
  const values = new Float32Array(n);
  for (let b = 0; b < n / 32; b++) {
    const scale = 10 ** (random() * 8 - 4);
    values.set(randomF32(random, 32, scale), b * 32);
  }
  return values;
}

interface QuantizeResult {
  xq: Int8Array;
  xs: Float32Array;
}

function runQuantize(m: KernelModule, x: Float32Array, kernel: "quantizeQ8" | "quantizeQ8Ref"): QuantizeResult {
  const n = x.length;
  const xPointer = m.putF32(n, x);
  const xqPointer = m.putI8(n);
  const xsPointer = m.putF32(n / 32);
  m.exports[kernel](xqPointer, xsPointer, xPointer, n);
  return { xq: m.i8(xqPointer, n).slice(), xs: m.f32(xsPointer, n / 32).slice() };
}

interface MatvecQ8Input {
  wq: Int8Array;
  ws: Float32Array;
  xq: Int8Array;
  xs: Float32Array;
  rows: number;
  cols: number;
}

function runMatvecQ8(m: KernelModule, input: MatvecQ8Input, kernel: "matvecQ8" | "matvecQ8Ref"): Float32Array {
  const { rows, cols } = input;
  // the kernels read the runtime layout: groups of 4 rows, block-interleaved
  const runtime = interleaveQ8Rows(input.wq, input.ws, rows, cols);
  const wqPointer = m.putI8(runtime.quants.length, runtime.quants);
  const wsPointer = m.putF32(runtime.scales.length, runtime.scales);
  const xqPointer = m.putI8(cols, input.xq);
  const xsPointer = m.putF32(cols / 32, input.xs);
  const outPointer = m.putF32(rows);
  m.exports[kernel](outPointer, wqPointer, wsPointer, xqPointer, xsPointer, rows, cols);
  return m.f32(outPointer, rows).slice();
}

/** Returns the dots this module's matvecQ8 can run: 1 relaxed, 0 exact (setMatvecRelaxed). */
export function matvecDots(m: KernelModule): number[] {
  m.exports.setMatvecRelaxed(1);
  return m.exports.matvecRelaxed() === 1 ? [1, 0] : [0];
}

/** Checks matvecQ8Ref against the f32 model, and matvecQ8 with each dot against matvecQ8Ref. */
function expectMatvecQ8Exact(m: KernelModule, input: MatvecQ8Input): void {
  const expected = matvecQ8Model(input.wq, input.ws, input.xq, input.xs, input.rows, input.cols);
  const ref = runMatvecQ8(m, input, "matvecQ8Ref");
  expect(findBitMismatch(ref, expected), "matvecQ8Ref vs f32 model").toBeUndefined();
  const dots = matvecDots(m);
  for (const dot of dots) {
    m.exports.setMatvecRelaxed(dot);
    const simd = runMatvecQ8(m, input, "matvecQ8");
    expect(findBitMismatch(simd, ref), `matvecQ8 (${dot ? "relaxed" : "exact"} dot) vs matvecQ8Ref`).toBeUndefined();
  }
  // back to the module's default
  m.exports.setMatvecRelaxed(dots[0]);
}

/** Registers the int8 kernel tests for one build of the test module. */
export function describeQ8Kernels(variant: KernelVariant): void {
  describe(`int8 kernels, ${variant} module`, () => {
    let m: KernelModule;

    beforeAll(async () => {
      m = await loadKernelModule(variant);
    });

    beforeEach(() => {
      m.reset();
    });

    test("dotQ8SelfTest returns 1", () => {
      expect(m.exports.dotQ8SelfTest()).toBe(1);
    });

    test.each(LENGTHS)("quantizeQ8 length %i", (length) => {
      const n = padToBlock(length);
      const x = randomBlocks(seededRandom(1000 + length), n);
      const model = quantizeModel(x);
      const ref = runQuantize(m, x, "quantizeQ8Ref");
      const simd = runQuantize(m, x, "quantizeQ8");
      expect(findBitMismatch(ref.xq, model.xq), "quantizeQ8Ref quants vs model").toBeUndefined();
      expect(findBitMismatch(ref.xs, model.xs), "quantizeQ8Ref scales vs model").toBeUndefined();
      expect(findBitMismatch(simd.xq, ref.xq), "quantizeQ8 quants vs ref").toBeUndefined();
      expect(findBitMismatch(simd.xs, ref.xs), "quantizeQ8 scales vs ref").toBeUndefined();
    });

    test("quantizeQ8 zero block", () => {
      const x = new Float32Array(64);
      x.set(randomF32(seededRandom(7), 32), 32);
      for (const kernel of ["quantizeQ8Ref", "quantizeQ8"] as const) {
        const { xq, xs } = runQuantize(m, x, kernel);
        expect(Object.is(xs[0], 0), `${kernel} scale of zero block is +0`).toBe(true);
        expect(Array.from(xq.subarray(0, 32)), `${kernel} quants of zero block`).toEqual(new Array(32).fill(0));
        expect(xs[1], `${kernel} scale of random block`).toBeGreaterThan(0);
      }
    });

    test("quantizeQ8 ties round away from zero", () => {
      // amax 127 gives d = 1 and id = 1 exactly, so each x is its own scaled value
      const x = new Float32Array(32);
      const cases: Array<[number, number]> = [
        [127, 127], [2.5, 3], [-2.5, -3], [0.5, 1], [-0.5, -1], [1.5, 2], [-1.5, -2],
        [126.5, 127], [-126.5, -127], [0.49999997, 0], [-0.49999997, 0], [3.4999998, 3], [-3.5000002, -4],
      ];
      cases.forEach(([value], i) => (x[i] = value));
      for (const kernel of ["quantizeQ8Ref", "quantizeQ8"] as const) {
        const { xq, xs } = runQuantize(m, x, kernel);
        expect(xs[0], `${kernel} scale`).toBe(1);
        cases.forEach(([value, quant], i) => {
          expect(xq[i], `${kernel} quant of ${value}`).toBe(quant);
        });
      }
    });

    test("quantizeQ8 amax at block edges", () => {
      const random = seededRandom(11);
      const x = randomF32(random, 128, 0.5);
      x[0] = -3; // first lane of block 0
      x[63] = 5; // last lane of block 1
      x[64] = 2; // first lane of block 2, positive
      x[127] = -7; // last lane of block 3, negative
      const model = quantizeModel(x);
      for (const kernel of ["quantizeQ8Ref", "quantizeQ8"] as const) {
        const { xq, xs } = runQuantize(m, x, kernel);
        expect(findBitMismatch(xs, model.xs), `${kernel} scales`).toBeUndefined();
        expect(findBitMismatch(xq, model.xq), `${kernel} quants`).toBeUndefined();
        expect([xq[0], xq[63], xq[64], xq[127]], `${kernel} edge quants`).toEqual([-127, 127, 127, -127]);
      }
    });

    test("quantizeQ8 values of ±127", () => {
      const x = new Float32Array(64);
      for (let i = 0; i < 64; i++) x[i] = i % 2 === 0 ? 127 : -127;
      for (const kernel of ["quantizeQ8Ref", "quantizeQ8"] as const) {
        const { xq, xs } = runQuantize(m, x, kernel);
        expect(Array.from(xs), `${kernel} scales`).toEqual([1, 1]);
        expect(Array.from(xq), `${kernel} quants`).toEqual(Array.from(x));
      }
    });

    test.each(LENGTHS)("dequantizeRowQ8 length %i", (length) => {
      const cols = padToBlock(length);
      const random = seededRandom(2000 + length);
      const wq = randomQuants(random, cols);
      const ws = randomF32(random, cols / 32, 0.05);
      const expected = new Float32Array(cols);
      for (let c = 0; c < cols; c++) expected[c] = fround(ws[Math.floor(c / 32)] * wq[c]);

      // place the row as row 2 of a 3-row matrix, so the lookup crosses the interleaved layout
      const rows = 3;
      const matrixQuants = new Int8Array(rows * cols);
      const matrixScales = new Float32Array(rows * (cols / 32));
      matrixQuants.set(wq, 2 * cols);
      matrixScales.set(ws, 2 * (cols / 32));
      const runtime = interleaveQ8Rows(matrixQuants, matrixScales, rows, cols);
      for (const kernel of ["dequantizeRowQ8Ref", "dequantizeRowQ8"] as const) {
        const wqPointer = m.putI8(runtime.quants.length, runtime.quants);
        const wsPointer = m.putF32(runtime.scales.length, runtime.scales);
        const outPointer = m.putF32(cols);
        m.exports[kernel](outPointer, wqPointer, wsPointer, 2, cols);
        expect(findBitMismatch(m.f32(outPointer, cols), expected), kernel).toBeUndefined();
      }
    });

    const shapes = ROW_COUNTS.flatMap((rows) => LENGTHS.map((length) => [rows, length] as const));
    test.each(shapes)("matvecQ8 %i rows, length %i", (rows, length) => {
      const cols = padToBlock(length);
      const random = seededRandom(rows * 10007 + length);
      const wq = randomQuants(random, rows * cols);
      // the host zero-pads rows past their real length; do the same here
      if (length < cols) {
        for (let r = 0; r < rows; r++) wq.fill(0, r * cols + length, (r + 1) * cols);
      }
      const ws = randomF32(random, rows * (cols / 32), 0.02);
      const { xq, xs } = quantizeModel(randomBlocks(random, cols));
      expectMatvecQ8Exact(m, { wq, ws, xq, xs, rows, cols });
    });

    test("matvecQ8 extreme quants", () => {
      const rows = 7;
      const cols = 96;
      const wq = new Int8Array(rows * cols);
      const xq = new Int8Array(cols);
      xq.fill(-127, 0, 32);
      xq.fill(127, 32, 64);
      for (let i = 64; i < cols; i++) xq[i] = (i % 3) - 1;
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) wq[r * cols + c] = r % 2 === 0 ? 127 : -127;
      }
      const ws = new Float32Array(rows * 3).fill(1);
      const xs = new Float32Array([1, 1, 1]);
      expectMatvecQ8Exact(m, { wq, ws, xq, xs, rows, cols });

      // block sums of ∓32 · 127 · 127 cancel exactly, and the third block's quants sum to 1
      const out = runMatvecQ8(m, { wq, ws, xq, xs, rows, cols }, "matvecQ8");
      expect(out[0], "row of +127").toBe(127);
      expect(out[1], "row of -127").toBe(-127);
    });

    test("matvecQ8 zero activations", () => {
      const rows = 5;
      const cols = 64;
      const random = seededRandom(5);
      const wq = randomQuants(random, rows * cols);
      const ws = randomF32(random, rows * 2, 0.1);
      const { xq, xs } = quantizeModel(new Float32Array(cols));
      expectMatvecQ8Exact(m, { wq, ws, xq, xs, rows, cols });
      const out = runMatvecQ8(m, { wq, ws, xq, xs, rows, cols }, "matvecQ8");
      expect(Array.from(out)).toEqual([0, 0, 0, 0, 0]);
    });
  });
}
