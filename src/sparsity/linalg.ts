/**
 * Dense f64 linear algebra for calibration: products, Cholesky factorization, triangular
 * inverse, thin SVD by one-sided Jacobi, and a seeded randomized range finder for truncated SVD.
 * Matrices are small (dim × dim, hidden_dim × dim), so plain loops in f64 are enough.
 */

import { formatMismatch } from "../errors.js";
import { Rng } from "../rng.js";

/** A dense row-major f64 matrix: element (i, j) is data[i · cols + j]. */
export interface Matrix {
  rows: number;
  cols: number;
  data: Float64Array;
}

/** Thin SVD a = u · diag(s) · vᵀ with k = min(rows, cols) or the requested rank. */
export interface SVD {
  /** (rows, k) with orthonormal columns (zero columns for zero singular values). */
  u: Matrix;
  /** (k) singular values, largest first. */
  s: Float64Array;
  /** (cols, k) with orthonormal columns. */
  v: Matrix;
}

/** Options of truncatedSVD and randomizedSVD. */
export interface TruncatedSVDOptions {
  /** Extra columns of the random test matrix beyond the rank; default 10. */
  oversampling?: number;
  /** Power iterations (A Aᵀ) applied to the range; default 2. */
  powerIterations?: number;
  /** Seed of the Gaussian test matrix, so results are deterministic; default 1. */
  seed?: number;
  /** Largest min(rows, cols) solved by an exact full SVD in truncatedSVD; default 256. */
  exactLimit?: number;
}

/** Sweeps after which one-sided Jacobi stops even if some pair is not yet orthogonal. */
const MAX_JACOBI_SWEEPS = 60;

/** Creates a rows × cols matrix, zero-filled unless data is given. */
export function createMatrix(rows: number, cols: number, data?: ArrayLike<number>): Matrix {
  const values = new Float64Array(rows * cols);
  if (data !== undefined) {
    if (data.length !== rows * cols) {
      formatMismatch("createMatrix", { source: "data", field: "length", actual: String(data.length), expected: `${rows * cols} (${rows} × ${cols})` });
    }
    values.set(data);
  }
  return { rows, cols, data: values };
}

/** Returns the identity matrix of size n. */
export function identity(n: number): Matrix {
  const result = createMatrix(n, n);
  for (let i = 0; i < n; i++) result.data[i * n + i] = 1;
  return result;
}

/** Returns aᵀ. */
export function transpose(a: Matrix): Matrix {
  const result = createMatrix(a.cols, a.rows);
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < a.cols; j++) result.data[j * a.rows + i] = a.data[i * a.cols + j];
  }
  return result;
}

function checkInner(where: string, left: number, right: number): void {
  if (left !== right) {
    formatMismatch(where, { source: "operands", field: "inner dimension", actual: `${left} and ${right}`, expected: "equal sizes" });
  }
}

/** Returns a · b. */
export function multiply(a: Matrix, b: Matrix): Matrix {
  checkInner("multiply", a.cols, b.rows);
  const result = createMatrix(a.rows, b.cols);
  const { data: out } = result;
  for (let i = 0; i < a.rows; i++) {
    const outRow = i * b.cols;
    for (let k = 0; k < a.cols; k++) {
      const factor = a.data[i * a.cols + k];
      if (factor === 0) continue;
      const bRow = k * b.cols;
      for (let j = 0; j < b.cols; j++) out[outRow + j] += factor * b.data[bRow + j];
    }
  }
  return result;
}

/** Returns aᵀ · b without forming aᵀ. */
export function multiplyTransposed(a: Matrix, b: Matrix): Matrix {
  checkInner("multiplyTransposed", a.rows, b.rows);
  const result = createMatrix(a.cols, b.cols);
  const { data: out } = result;
  for (let k = 0; k < a.rows; k++) {
    const aRow = k * a.cols;
    const bRow = k * b.cols;
    for (let i = 0; i < a.cols; i++) {
      const factor = a.data[aRow + i];
      if (factor === 0) continue;
      const outRow = i * b.cols;
      for (let j = 0; j < b.cols; j++) out[outRow + j] += factor * b.data[bRow + j];
    }
  }
  return result;
}

/**
 * Factors a symmetric positive definite matrix as a = L · Lᵀ and returns the lower triangle L.
 * Reads only the lower triangle of a. Throws when a pivot is not positive (a is not SPD).
 */
export function cholesky(a: Matrix): Matrix {
  if (a.rows !== a.cols) {
    formatMismatch("cholesky", { source: "matrix", field: "shape", actual: `${a.rows} × ${a.cols}`, expected: "a square matrix" });
  }
  const n = a.rows;
  const l = createMatrix(n, n);
  const { data } = l;
  for (let j = 0; j < n; j++) {
    let diagonal = a.data[j * n + j];
    for (let k = 0; k < j; k++) diagonal -= data[j * n + k] * data[j * n + k];
    if (!(diagonal > 0)) {
      formatMismatch("cholesky", { source: "matrix", field: `pivot ${j}`, actual: String(diagonal), expected: "a positive number" }, "the matrix is not positive definite");
    }
    const pivot = Math.sqrt(diagonal);
    data[j * n + j] = pivot;
    for (let i = j + 1; i < n; i++) {
      let sum = a.data[i * n + j];
      for (let k = 0; k < j; k++) sum -= data[i * n + k] * data[j * n + k];
      data[i * n + j] = sum / pivot;
    }
  }
  return l;
}

/** Returns L⁻¹ of a lower-triangular L with a nonzero diagonal (also lower-triangular). */
export function invertLower(l: Matrix): Matrix {
  const n = l.rows;
  const inverse = createMatrix(n, n);
  const { data } = inverse;
  // Column j of L⁻¹ solves L · x = e_j by forward substitution; x is zero above row j.
  for (let j = 0; j < n; j++) {
    data[j * n + j] = 1 / l.data[j * n + j];
    for (let i = j + 1; i < n; i++) {
      let sum = 0;
      for (let k = j; k < i; k++) sum += l.data[i * n + k] * data[k * n + j];
      data[i * n + j] = -sum / l.data[i * n + i];
    }
  }
  return inverse;
}

/** Solves (L · Lᵀ) x = b for x, given the Cholesky factor L. */
export function choleskySolve(l: Matrix, b: ArrayLike<number>): Float64Array {
  const n = l.rows;
  const x = Float64Array.from(b);
  for (let i = 0; i < n; i++) {
    let sum = x[i];
    for (let k = 0; k < i; k++) sum -= l.data[i * n + k] * x[k];
    x[i] = sum / l.data[i * n + i];
  }
  for (let i = n - 1; i >= 0; i--) {
    let sum = x[i];
    for (let k = i + 1; k < n; k++) sum -= l.data[k * n + i] * x[k];
    x[i] = sum / l.data[i * n + i];
  }
  return x;
}

/** Splits a row-major matrix into its columns. */
function columnsOf(a: Matrix): Float64Array[] {
  const columns: Float64Array[] = [];
  for (let j = 0; j < a.cols; j++) {
    const column = new Float64Array(a.rows);
    for (let i = 0; i < a.rows; i++) column[i] = a.data[i * a.cols + j];
    columns.push(column);
  }
  return columns;
}

/** Joins columns into a row-major matrix. */
function fromColumns(columns: Float64Array[], rows: number): Matrix {
  const result = createMatrix(rows, columns.length);
  columns.forEach((column, j) => {
    for (let i = 0; i < rows; i++) result.data[i * columns.length + j] = column[i];
  });
  return result;
}

function dot(x: Float64Array, y: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i] * y[i];
  return sum;
}

/**
 * Returns an orthonormal basis of the column space of a, one column per column of a, by modified
 * Gram-Schmidt run twice (one pass loses orthogonality when columns are nearly dependent).
 * A column that lies in the span of the previous ones becomes zero.
 */
export function orthonormalizeColumns(a: Matrix): Matrix {
  const columns = columnsOf(a);
  for (let j = 0; j < columns.length; j++) {
    const column = columns[j];
    const original = Math.sqrt(dot(column, column));
    for (let pass = 0; pass < 2; pass++) {
      for (let k = 0; k < j; k++) {
        const projection = dot(columns[k], column);
        for (let i = 0; i < column.length; i++) column[i] -= projection * columns[k][i];
      }
    }
    const norm = Math.sqrt(dot(column, column));
    // What is left after removing the span of earlier columns is rounding noise when it is this small.
    const scale = norm > 1e-12 * original && norm > 0 ? 1 / norm : 0;
    for (let i = 0; i < column.length; i++) column[i] *= scale;
  }
  return fromColumns(columns, a.rows);
}

/**
 * Computes the thin SVD of a with one-sided Jacobi rotations (Hestenes' method): rotate pairs of
 * columns until all are orthogonal, then the column norms are the singular values. It is
 * accurate to f64 rounding even for small singular values, unlike the eigenvalues of aᵀa.
 */
export function svd(a: Matrix): SVD {
  if (a.rows < a.cols) {
    const { u, s, v } = svd(transpose(a));
    return { u: v, s, v: u };
  }
  const n = a.cols;
  const columns = columnsOf(a);
  const vColumns = columnsOf(identity(n));
  const norms = columns.map((column) => dot(column, column));
  // A dot product of length m carries a rounding error up to about m · ε · ‖a_p‖ · ‖a_q‖, so
  // columns count as orthogonal below that.
  const tolerance = a.rows * Number.EPSILON;

  for (let sweep = 0; sweep < MAX_JACOBI_SWEEPS; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const gamma = dot(columns[p], columns[q]);
        const alpha = norms[p];
        const beta = norms[q];
        if (Math.abs(gamma) <= tolerance * Math.sqrt(alpha * beta) || gamma === 0) continue;
        rotated = true;
        // The rotation that diagonalizes the 2 × 2 Gram matrix [[alpha, gamma], [gamma, beta]].
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        rotate(columns[p], columns[q], c, s);
        rotate(vColumns[p], vColumns[q], c, s);
        norms[p] = dot(columns[p], columns[p]);
        norms[q] = dot(columns[q], columns[q]);
      }
    }
    if (!rotated) break;
  }

  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => norms[j] - norms[i]);
  const s = new Float64Array(n);
  const uColumns: Float64Array[] = [];
  const sortedV: Float64Array[] = [];
  order.forEach((index, rank) => {
    const sigma = Math.sqrt(norms[index]);
    s[rank] = sigma;
    const column = columns[index];
    const inverse = sigma > 0 ? 1 / sigma : 0;
    uColumns.push(column.map((value) => value * inverse));
    sortedV.push(vColumns[index]);
  });
  return { u: fromColumns(uColumns, a.rows), s, v: fromColumns(sortedV, n) };
}

function rotate(x: Float64Array, y: Float64Array, c: number, s: number): void {
  for (let i = 0; i < x.length; i++) {
    const xi = x[i];
    const yi = y[i];
    x[i] = c * xi - s * yi;
    y[i] = s * xi + c * yi;
  }
}

/** Fills a rows × cols matrix with standard normal values from a seeded generator (Box-Muller). */
export function gaussianMatrix(rows: number, cols: number, seed: number): Matrix {
  const rng = new Rng(seed);
  const result = createMatrix(rows, cols);
  const { data } = result;
  for (let i = 0; i < data.length; i += 2) {
    // 1 - u lies in (0, 1], so the logarithm is finite.
    const radius = Math.sqrt(-2 * Math.log(1 - rng.randomF32()));
    const angle = 2 * Math.PI * rng.randomF32();
    data[i] = radius * Math.cos(angle);
    if (i + 1 < data.length) data[i + 1] = radius * Math.sin(angle);
  }
  return result;
}

/** Keeps the first `rank` singular triplets of an SVD. */
function leading(result: SVD, rank: number): SVD {
  const take = (m: Matrix): Matrix => {
    const out = createMatrix(m.rows, rank);
    for (let i = 0; i < m.rows; i++) {
      for (let j = 0; j < rank; j++) out.data[i * rank + j] = m.data[i * m.cols + j];
    }
    return out;
  };
  return { u: take(result.u), s: result.s.slice(0, rank), v: take(result.v) };
}

function checkRank(where: string, a: Matrix, rank: number): void {
  const limit = Math.min(a.rows, a.cols);
  if (!Number.isInteger(rank) || rank < 1 || rank > limit) {
    formatMismatch(where, { source: "arguments", field: "rank", actual: String(rank), expected: `an integer in [1, ${limit}] (min(rows, cols))` });
  }
}

/**
 * Approximates the leading `rank` singular triplets of a with a randomized range finder (Halko,
 * Martinsson and Tropp, "Finding structure with randomness"). Q spans a · Ω for a Gaussian Ω of
 * rank + oversampling columns, and power iterations refine it. The small matrix Qᵀa then gets an
 * exact SVD. The seed fixes Ω, so the result is deterministic.
 */
export function randomizedSVD(a: Matrix, rank: number, options: TruncatedSVDOptions = {}): SVD {
  checkRank("randomizedSVD", a, rank);
  const oversampling = options.oversampling ?? 10;
  const powerIterations = options.powerIterations ?? 2;
  const width = Math.min(rank + oversampling, Math.min(a.rows, a.cols));

  let q = orthonormalizeColumns(multiply(a, gaussianMatrix(a.cols, width, options.seed ?? 1)));
  for (let i = 0; i < powerIterations; i++) {
    // Re-orthonormalizing between products keeps small singular directions from drowning in rounding.
    const z = orthonormalizeColumns(multiplyTransposed(a, q));
    q = orthonormalizeColumns(multiply(a, z));
  }
  const small = svd(multiplyTransposed(q, a));
  return leading({ u: multiply(q, small.u), s: small.s, v: small.v }, rank);
}

/**
 * Returns the leading `rank` singular triplets of a: an exact SVD when min(rows, cols) is at most
 * options.exactLimit (default 256), else randomizedSVD.
 */
export function truncatedSVD(a: Matrix, rank: number, options: TruncatedSVDOptions = {}): SVD {
  checkRank("truncatedSVD", a, rank);
  if (Math.min(a.rows, a.cols) <= (options.exactLimit ?? 256)) return leading(svd(a), rank);
  return randomizedSVD(a, rank, options);
}
