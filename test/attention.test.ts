// Attention kernels. The simd128 scores and weighted value sums must equal their scalar references
// bit for bit, on head sizes and position counts that reach every tail. The scores must also equal
// the per-position dotF32 they replace, and both references must agree with f64 sums.

import { beforeAll, beforeEach, describe, expect, test } from "vitest";
import { findBitMismatch } from "./q8-cases.js";
import { type KernelModule, loadKernelModule, randomF32, seededRandom } from "./wasm-harness.js";

/** Head sizes: below, at and past one vector, the 32-wide value chunk, and real heads (48, 64, 128). */
const HEAD_SIZES = [1, 3, 4, 5, 8, 31, 32, 33, 36, 48, 64, 67, 128];
/** Positions: below, at and past the four keys of one scores pass. */
const COUNTS = [1, 2, 3, 4, 5, 7, 8, 17];
/** Largest |f32 sum − f64 sum| relative to Σ|term| for these short sums (measured below 1e-7). */
const SUM_REL_TOL = 1e-6;

const cases = HEAD_SIZES.flatMap((n) => COUNTS.map((count) => [n, count] as const));

// The kernels use no relaxed instruction, so the exact module covers them.
describe("attention kernels", () => {
  let m: KernelModule;

  beforeAll(async () => {
    m = await loadKernelModule("exact");
  });

  beforeEach(() => {
    m.reset();
  });

  test.each(cases)("scores, head size %i, %i positions", (n, count) => {
    const random = seededRandom(n * 131 + count);
    const stride = n + 7;
    const scale = Math.fround(1 / Math.sqrt(n));
    const q = m.putF32(n, randomF32(random, n));
    const keysValues = randomF32(random, count * stride);
    const keys = m.putF32(count * stride, keysValues);
    const expected = m.putF32(count);
    const actual = m.putF32(count);
    m.exports.attentionScoresRef(expected, q, keys, stride, count, n, scale);
    m.exports.attentionScores(actual, q, keys, stride, count, n, scale);
    expect(findBitMismatch(m.f32(actual, count), m.f32(expected, count))).toBeUndefined();

    // the forward pass computed each score as dotF32(q, k_t) · scale before
    const perPosition = Float32Array.from({ length: count }, (_, t) => Math.fround(m.exports.dotF32(q, keys + t * stride * 4, n) * scale));
    expect(findBitMismatch(m.f32(actual, count), perPosition)).toBeUndefined();

    const qValues = m.f32(q, n);
    for (let t = 0; t < count; t++) {
      let exact = 0;
      let magnitude = 0;
      for (let i = 0; i < n; i++) {
        exact += qValues[i] * keysValues[t * stride + i] * scale;
        magnitude += Math.abs(qValues[i] * keysValues[t * stride + i] * scale);
      }
      expect(Math.abs(m.f32(expected, count)[t] - exact), `position ${t}`).toBeLessThanOrEqual(SUM_REL_TOL * magnitude + 1e-12);
    }
  });

  test.each(cases)("values, head size %i, %i positions", (n, count) => {
    const random = seededRandom(n * 977 + count);
    const stride = n + 5;
    const weightValues = randomF32(random, count);
    const valueRows = randomF32(random, count * stride);
    const weights = m.putF32(count, weightValues);
    const values = m.putF32(count * stride, valueRows);
    const expected = m.putF32(n);
    const actual = m.putF32(n + 4);
    // a guard past the outputs shows writes beyond n
    m.f32(actual, n + 4).fill(7);
    m.exports.attentionValuesRef(expected, weights, values, stride, count, n);
    m.exports.attentionValues(actual, weights, values, stride, count, n);
    expect(findBitMismatch(m.f32(actual, n), m.f32(expected, n))).toBeUndefined();
    expect(Array.from(m.f32(actual + n * 4, 4))).toEqual([7, 7, 7, 7]);

    for (let i = 0; i < n; i++) {
      let exact = 0;
      let magnitude = 0;
      for (let t = 0; t < count; t++) {
        exact += weightValues[t] * valueRows[t * stride + i];
        magnitude += Math.abs(weightValues[t] * valueRows[t * stride + i]);
      }
      expect(Math.abs(m.f32(expected, n)[i] - exact), `output ${i}`).toBeLessThanOrEqual(SUM_REL_TOL * magnitude + 1e-12);
    }
  });
});
