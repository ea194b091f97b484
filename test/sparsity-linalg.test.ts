import { describe, expect, it } from "vitest";
import {
  cholesky, choleskySolve, createMatrix, gaussianMatrix, identity, invertLower, multiply, multiplyTransposed,
  orthonormalizeColumns, randomizedSVD, svd, transpose, truncatedSVD, type Matrix, type SVD,
} from "../src/sparsity/linalg.js";

function maxAbsDifference(a: Matrix, b: Matrix): number {
  let max = 0;
  for (let i = 0; i < a.data.length; i++) max = Math.max(max, Math.abs(a.data[i] - b.data[i]));
  return max;
}

function maxAbs(a: Matrix): number {
  return a.data.reduce((max, value) => Math.max(max, Math.abs(value)), 0);
}

/** Builds a random symmetric positive definite matrix B·Bᵀ + n·I. */
function randomSPD(n: number, seed: number): Matrix {
  const b = gaussianMatrix(n, n, seed);
  const a = multiply(b, transpose(b));
  for (let i = 0; i < n; i++) a.data[i * n + i] += n;
  return a;
}

/** Multiplies out u · diag(s) · vᵀ. */
function reconstruct({ u, s, v }: SVD): Matrix {
  const scaled = createMatrix(u.rows, u.cols, u.data);
  for (let i = 0; i < u.rows; i++) for (let j = 0; j < u.cols; j++) scaled.data[i * u.cols + j] *= s[j];
  return multiply(scaled, transpose(v));
}

/** Builds a rows × cols matrix with singular values `spectrum` and random singular vectors. */
function withSpectrum(rows: number, cols: number, spectrum: number[], seed: number): Matrix {
  const k = spectrum.length;
  const u = orthonormalizeColumns(gaussianMatrix(rows, k, seed));
  const v = orthonormalizeColumns(gaussianMatrix(cols, k, seed + 1));
  return reconstruct({ u, s: Float64Array.from(spectrum), v });
}

describe("cholesky", () => {
  for (const n of [1, 5, 33, 64]) {
    it(`factors a random SPD matrix of size ${n}`, () => {
      const a = randomSPD(n, n);
      const l = cholesky(a);
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) expect(l.data[i * n + j]).toBe(0);
      expect(maxAbsDifference(multiply(l, transpose(l)), a)).toBeLessThan(1e-12 * maxAbs(a));
    });
  }

  it("solves a linear system", () => {
    const n = 40;
    const a = randomSPD(n, 7);
    const x = gaussianMatrix(n, 1, 8);
    const b = multiply(a, x);
    const solved = choleskySolve(cholesky(a), b.data);
    for (let i = 0; i < n; i++) expect(Math.abs(solved[i] - x.data[i])).toBeLessThan(1e-10);
  });

  it("inverts the lower factor", () => {
    const n = 48;
    const l = cholesky(randomSPD(n, 11));
    const product = multiply(invertLower(l), l);
    expect(maxAbsDifference(product, identity(n))).toBeLessThan(1e-12);
  });

  it("rejects an indefinite matrix", () => {
    const a = createMatrix(2, 2, [1, 2, 2, 1]);
    expect(() => cholesky(a)).toThrow("cholesky: matrix: pivot 1 is -3, expected a positive number (the matrix is not positive definite)");
  });

  it("rejects a non-square matrix", () => {
    expect(() => cholesky(createMatrix(2, 3))).toThrow("cholesky: matrix: shape is 2 × 3, expected a square matrix");
  });
});

describe("products", () => {
  it("multiplyTransposed equals aᵀ · b", () => {
    const a = gaussianMatrix(9, 4, 1);
    const b = gaussianMatrix(9, 6, 2);
    expect(maxAbsDifference(multiplyTransposed(a, b), multiply(transpose(a), b))).toBeLessThan(1e-14);
  });

  it("rejects mismatched shapes", () => {
    expect(() => multiply(createMatrix(2, 3), createMatrix(2, 3))).toThrow("multiply: operands: inner dimension is 3 and 2, expected equal sizes");
  });
});

describe("svd", () => {
  for (const [rows, cols] of [[30, 12], [12, 30], [172, 64], [1, 5], [7, 7]]) {
    it(`reconstructs a random ${rows} × ${cols} matrix`, () => {
      const a = gaussianMatrix(rows, cols, rows * 100 + cols);
      const result = svd(a);
      const k = Math.min(rows, cols);
      expect(result.s.length).toBe(k);
      for (let i = 1; i < k; i++) expect(result.s[i]).toBeLessThanOrEqual(result.s[i - 1]);
      expect(maxAbsDifference(reconstruct(result), a)).toBeLessThan(1e-12 * maxAbs(a) * k);
      expect(maxAbsDifference(multiplyTransposed(result.u, result.u), identity(k))).toBeLessThan(1e-12);
      expect(maxAbsDifference(multiplyTransposed(result.v, result.v), identity(k))).toBeLessThan(1e-12);
    });
  }

  it("recovers known singular values", () => {
    const spectrum = [5, 3, 1, 0.25, 1e-6];
    const result = svd(withSpectrum(20, 9, spectrum, 3));
    spectrum.forEach((sigma, i) => expect(Math.abs(result.s[i] - sigma)).toBeLessThan(1e-13 * spectrum[0]));
    for (let i = spectrum.length; i < 9; i++) expect(result.s[i]).toBeLessThan(1e-13);
  });
});

describe("randomizedSVD", () => {
  const spectrum = Array.from({ length: 80 }, (_, i) => 0.7 ** i);
  const a = withSpectrum(300, 120, spectrum, 21);

  it("matches the exact SVD on a decaying spectrum", () => {
    const rank = 10;
    const exact = svd(a);
    const approximate = randomizedSVD(a, rank, { oversampling: 8, powerIterations: 2, seed: 5 });
    for (let i = 0; i < rank; i++) {
      expect(Math.abs(approximate.s[i] - exact.s[i]) / exact.s[i]).toBeLessThan(1e-6);
      // Singular vectors agree up to sign.
      let cosine = 0;
      for (let r = 0; r < a.rows; r++) cosine += approximate.u.data[r * rank + i] * exact.u.data[r * exact.u.cols + i];
      expect(Math.abs(cosine)).toBeGreaterThan(1 - 1e-6);
    }
    // The truncation error of the best rank-r approximation is sigma_r in the spectral norm.
    const residual = maxAbsDifference(reconstruct(approximate), a);
    expect(residual).toBeLessThan(2 * spectrum[rank]);
  });

  it("is deterministic for a seed", () => {
    const first = randomizedSVD(a, 6, { seed: 9 });
    const second = randomizedSVD(a, 6, { seed: 9 });
    expect(second.u.data).toEqual(first.u.data);
    expect(second.s).toEqual(first.s);
    expect(second.v.data).toEqual(first.v.data);
  });

  it("gives full rank exactly", () => {
    const small = gaussianMatrix(40, 16, 4);
    const result = randomizedSVD(small, 16, { seed: 2 });
    expect(maxAbsDifference(reconstruct(result), small)).toBeLessThan(1e-12 * maxAbs(small) * 16);
  });

  it("rejects a rank above min(rows, cols)", () => {
    expect(() => randomizedSVD(a, 121)).toThrow("randomizedSVD: arguments: rank is 121, expected an integer in [1, 120] (min(rows, cols))");
  });
});

describe("truncatedSVD", () => {
  it("uses the exact SVD for small matrices", () => {
    const a = gaussianMatrix(50, 20, 6);
    const truncated = truncatedSVD(a, 5);
    const exact = svd(a);
    for (let i = 0; i < 5; i++) expect(truncated.s[i]).toBe(exact.s[i]);
  });

  it("uses the randomized SVD above the exact limit", () => {
    const spectrum = Array.from({ length: 30 }, (_, i) => 0.5 ** i);
    const a = withSpectrum(60, 40, spectrum, 8);
    const truncated = truncatedSVD(a, 4, { exactLimit: 10, seed: 3 });
    expect(truncated.s).toEqual(randomizedSVD(a, 4, { seed: 3 }).s);
    for (let i = 0; i < 4; i++) expect(Math.abs(truncated.s[i] - spectrum[i])).toBeLessThan(1e-9);
  });
});
