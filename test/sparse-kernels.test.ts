// Sparse FFN kernels on the exact simd128 test module: every SIMD kernel against its scalar
// reference bit for bit, and the references against JavaScript models with f32 rounding.

import { beforeAll, beforeEach, describe, expect, test } from "vitest";
import { findBitMismatch, LENGTHS, matvecQ8Model, quantizeModel } from "./q8-cases.js";
import {
  type KernelExports, type KernelModule, loadKernelModule, padToBlock, randomF32, randomQuants, seededRandom,
} from "./wasm-harness.js";

/** Exports of assembly/kernels/sparse_q8.ts and candidates.ts in the test module. */
interface SparseExports extends KernelExports {
  dotRowQ8Ref(wq: number, ws: number, xq: number, xs: number, cols: number): number;
  dotRows4Q8(out: number, w0: number, w1: number, w2: number, w3: number, xq: number, xs: number, cols: number): void;
  dotRows4Q8Ref(out: number, w0: number, w1: number, w2: number, w3: number, xq: number, xs: number, cols: number): void;
  downColumnsQ8(out: number, columns: number, pairs: number, count: number, scales: number, hs: number, n: number): void;
  downColumnsQ8Ref(out: number, columns: number, pairs: number, count: number, scales: number, hs: number, n: number): void;
  touchLines(from: number, to: number): number;
  cutoffBounds(bounds: number, cutoff: number, kind: number): void;
  selectCandidates(masks: number, values: number, n: number, cutoff: number, kind: number, bounds: number): number;
  selectCandidatesRef(masks: number, values: number, n: number, cutoff: number, kind: number): number;
}

const ACTIVATIONS = [["silu", 0], ["relu", 1], ["gelu", 2]] as const;
/** f32 slots of one candidate-bounds record (BOUND_FIELDS in candidates.ts). */
const BOUND_FIELDS = 8;
/** Down column counts of one block: a pair, the fewest with two pairs, a typical and a full block. */
const COLUMN_COUNTS = [2, 4, 16, 32];

const fround = Math.fround;

/**
 * Relative distance from the cutoff below which the JavaScript act() model may round to the other
 * side: it computes exp and tanh in f64, while Mathf's f32 versions differ by up to a few ulp.
 */
const MODEL_ACT_TOL = 1e-5;

describe("sparse FFN kernels", () => {
  let m: KernelModule;
  let k: SparseExports;

  beforeAll(async () => {
    m = await loadKernelModule("exact");
    k = m.exports as SparseExports;
  });

  beforeEach(() => {
    m.reset();
  });

  /** Places rows the way bundles hold them: quants, then their f32 scales, `stride` bytes apart. */
  function placeRows(quants: Int8Array, scales: Float32Array, rows: number, cols: number, stride: number): number {
    const base = m.alloc(rows * stride);
    const nb = cols / 32;
    for (let r = 0; r < rows; r++) {
      m.i8(base + r * stride, cols).set(quants.subarray(r * cols, (r + 1) * cols));
      m.f32(base + r * stride + cols, nb).set(scales.subarray(r * nb, (r + 1) * nb));
    }
    return base;
  }

  test.each(LENGTHS)("dotRows4Q8 length %i", (length) => {
    const cols = padToBlock(length);
    const nb = cols / 32;
    const random = seededRandom(5000 + length);
    const rows = 5;
    const quants = randomQuants(random, rows * cols);
    const scales = Float32Array.from(randomF32(random, rows * nb), (v) => Math.abs(v) + 0.01);
    const { xq, xs } = quantizeModel(randomF32(random, cols));
    const expected = matvecQ8Model(quants, scales, xq, xs, rows, cols);
    const stride = cols + nb * 4 + 80;
    const base = placeRows(quants, scales, rows, cols, stride);
    const xqPointer = m.putI8(cols, xq);
    const xsPointer = m.putF32(nb, xs);
    const row = (r: number) => base + r * stride;

    for (let r = 0; r < rows; r++) {
      const ref = new Float32Array([k.dotRowQ8Ref(row(r), row(r) + cols, xqPointer, xsPointer, cols)]);
      expect(findBitMismatch(ref, expected.subarray(r, r + 1)), `dotRowQ8Ref row ${r}`).toBeUndefined();
    }
    // rows out of order and one repeated, as the sparse FFN passes them
    const order = [3, 0, 4, 3];
    const selected = Float32Array.from(order, (r) => expected[r]);
    for (const kernel of ["dotRows4Q8Ref", "dotRows4Q8"] as const) {
      const out = m.putF32(4);
      k[kernel](out, row(order[0]), row(order[1]), row(order[2]), row(order[3]), xqPointer, xsPointer, cols);
      expect(findBitMismatch(m.f32(out, 4).slice(), selected), kernel).toBeUndefined();
    }
  });

  /** Computes out[i] + f32(Σ_k h_k · d_k[i]) · f32(scales[i] · hs) in JavaScript with f32 rounding. */
  function downModel(out: Float32Array, columns: Int8Array[], weights: number[], scales: Float32Array, hs: number): Float32Array {
    return Float32Array.from(out, (value, i) => {
      let sum = 0;
      for (let c = 0; c < columns.length; c++) sum += weights[c] * columns[c][i];
      return fround(value + fround(sum * fround(scales[i] * hs)));
    });
  }

  const downCases = COLUMN_COUNTS.flatMap((count) => LENGTHS.map((length) => [count, length] as const));
  test.each(downCases)("downColumnsQ8 %i columns, length %i", (count, length) => {
    const n = padToBlock(length);
    const random = seededRandom(7000 + count * 31 + length);
    const stride = n + 48;
    const data = randomQuants(random, count * n);
    const columns = Array.from({ length: count }, (_, c) => data.subarray(c * n, (c + 1) * n));
    const weights = Array.from(randomQuants(random, count));
    weights[0] = 127;
    weights[count - 1] = -127;
    const scales = Float32Array.from(randomF32(random, n), (v) => Math.abs(v) + 1e-3);
    const start = randomF32(random, n, 4);
    const hs = fround(0.0123);
    const expected = downModel(start, columns, weights, scales, hs);

    const base = m.alloc(count * stride);
    for (let c = 0; c < count; c++) m.i8(base + c * stride, n).set(columns[c]);
    const table = m.alloc(count * 4);
    m.u32(table, count).set(Array.from({ length: count }, (_, c) => base + c * stride));
    const pairs = m.alloc(count * 2);
    new Int16Array(m.exports.memory.buffer, pairs, count).set(weights);
    const scalesPointer = m.putF32(n, scales);
    for (const kernel of ["downColumnsQ8Ref", "downColumnsQ8"] as const) {
      const out = m.putF32(n, start);
      k[kernel](out, table, pairs, count, scalesPointer, hs, n);
      expect(findBitMismatch(m.f32(out, n).slice(), expected), kernel).toBeUndefined();
    }
  });

  test("touchLines sums one word per line", () => {
    const base = m.alloc(64 * 5);
    const words = m.u32(base, 16 * 5);
    for (let line = 0; line < 5; line++) {
      words[line * 16] = line + 1;
      words[line * 16 + 1] = 1000;
    }
    expect(k.touchLines(base, base + 64 * 5)).toBe(15);
    expect(k.touchLines(base + 64, base + 64 * 3)).toBe(5);
    // a range that starts inside a line reads that line too
    expect(k.touchLines(base + 70, base + 129)).toBe(5);
  });

  /** Returns values spread over ±range plus the bounds themselves and their f32 neighbours. */
  function candidateValues(random: () => number, n: number, range: number, bounds: Float32Array): Float32Array {
    const values = randomF32(random, n, range);
    const special: number[] = [0, -0, -1.278, 1e-30, -1e-30];
    for (const bound of bounds.subarray(0, 6)) {
      if (!Number.isFinite(bound)) continue;
      const bits = new Uint32Array(new Float32Array([bound]).buffer)[0];
      for (const delta of [-2, -1, 0, 1, 2]) special.push(new Float32Array(new Uint32Array([bits + delta]).buffer)[0]);
    }
    for (let i = 0; i < Math.min(n, special.length); i++) values[(i * 7) % n] = special[i];
    return values;
  }

  const CUTOFFS = [-1, 0, 1e-6, 0.01, 0.1, 0.2784, 0.27846, 0.2786, 0.5, 3];
  const candidateCases = ACTIVATIONS.flatMap(([name, kind]) => CUTOFFS.map((cutoff) => [name, cutoff, kind] as const));
  test.each(candidateCases)("selectCandidates %s cutoff %s", (_name, cutoff, kind) => {
    const bounds = m.alloc(BOUND_FIELDS * 4);
    k.cutoffBounds(bounds, cutoff, kind);
    const boundValues = m.f32(bounds, BOUND_FIELDS).slice();
    for (const length of LENGTHS) {
      const n = length;
      const random = seededRandom(9000 + kind * 100 + length);
      const range = cutoff > 0 ? Math.max(4 * cutoff, 4) : 8;
      const values = candidateValues(random, padToBlock(n), range, boundValues);
      const valuesPointer = m.putF32(values.length, values);
      const masks = m.alloc(values.length / 8);
      const refMasks = m.alloc(values.length / 8);
      const refCount = k.selectCandidatesRef(refMasks, valuesPointer, n, cutoff, kind);
      const count = k.selectCandidates(masks, valuesPointer, n, cutoff, kind, bounds);

      const words = values.length / 32;
      expect(Array.from(m.u32(masks, words)), `selectCandidates vs ref, length ${n}`).toEqual(Array.from(m.u32(refMasks, words)));
      expect(count, `selectCandidates count, length ${n}`).toBe(refCount);

      // the reference against a JavaScript model, except where |act| is within model error of the cutoff
      const refBits = m.u32(refMasks, words).slice();
      let bitsSet = 0;
      for (let j = 0; j < values.length; j++) {
        const bit = (refBits[j >> 5] >>> (j & 31)) & 1;
        bitsSet += bit;
        const magnitude = Math.abs(activateModel(values[j], kind));
        if (j >= n) {
          expect(bit, `padding value ${j} is no candidate`).toBe(0);
        } else if (Math.abs(magnitude - fround(cutoff)) > MODEL_ACT_TOL * Math.max(magnitude, 1e-30)) {
          expect(bit, `value ${values[j]} (|act| ${magnitude}), length ${n}`).toBe(magnitude >= fround(cutoff) ? 1 : 0);
        }
      }
      expect(refCount, `selectCandidatesRef count, length ${n}`).toBe(bitsSet);
    }
  });

  test("cutoffBounds ReLU", () => {
    const bounds = m.alloc(BOUND_FIELDS * 4);
    k.cutoffBounds(bounds, 0.5, 1);
    const values = m.f32(bounds, BOUND_FIELDS);
    expect(values[0], "sure above").toBe(0.5);
    expect(values[3], "maybe above").toBe(0.5);
    expect(values[6], "all").toBe(0);
    k.cutoffBounds(bounds, 0, 1);
    expect(m.f32(bounds, BOUND_FIELDS)[6], "all for cutoff 0").toBe(1);
  });

  test("cutoffBounds SiLU negative side", () => {
    const bounds = m.alloc(BOUND_FIELDS * 4);
    // below the SiLU minimum magnitude 0.2785 the negative side has a candidate interval around -1.278
    k.cutoffBounds(bounds, 0.2, 0);
    let values = m.f32(bounds, BOUND_FIELDS);
    expect(values[1], "sure low").toBeLessThan(-1.278);
    expect(values[2], "sure high").toBeGreaterThan(-1.278);
    expect(values[4], "maybe low").toBeLessThanOrEqual(values[1]);
    expect(values[5], "maybe high").toBeGreaterThanOrEqual(values[2]);
    // above it no negative value is a candidate
    k.cutoffBounds(bounds, 0.3, 0);
    values = m.f32(bounds, BOUND_FIELDS);
    expect(values[4], "maybe low").toBe(Infinity);
    expect(values[5], "maybe high").toBe(-Infinity);
  });
});

/** Computes act(v) with the f32 steps of activation.ts, but f64 exp and tanh (see MODEL_ACT_TOL). */
function activateModel(v: number, kind: number): number {
  if (kind === 0) return fround(v * fround(1 / fround(1 + fround(Math.exp(-v)))));
  if (kind === 1) return v > 0 ? v : 0;
  const inner = fround(fround(0.7978845608028654) * v * fround(1 + fround(fround(0.044715) * v * v)));
  return fround(fround(0.5 * v) * fround(1 + fround(Math.tanh(inner))));
}
