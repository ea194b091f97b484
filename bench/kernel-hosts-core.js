// Timing code that Node, Deno and the Chromium page of bench/kernel-hosts.mjs all run, so the
// three hosts measure with the same source. It uses only WebAssembly and performance.now().
//
// For each shape it fills the exact and the relaxed test modules with the same matrix and vector.
// Then it times three kernels in turn, round after round: matvecQ8 in the exact module, matvecQ8
// in the relaxed module, and readBytes (exact module) over the matrix's quants and scales. Each
// kernel's turn starts with one untimed call that brings its own data back into the caches, then
// times a batch of calls in one timer span, so coarse browser timers still resolve a call.
// A shape with copies > 1 places that many matrices and each call takes the next one in turn, so
// with copies whose bytes exceed the last-level cache the kernels read from main memory, as a
// model's decode does.

/** Returns the median of a non-empty array of numbers. */
function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Fills length bytes at pointer with xorshift32 output, mapping −128 to −127 as matvecQ8 requires. */
function fillQuants(memory, pointer, length, seed) {
  const quants = new Int8Array(memory.buffer, pointer, length);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    const value = (state & 0xff) - 128;
    quants[i] = value === -128 ? -127 : value;
  }
}

/** Fills n f32 at pointer with values in [−1, 1) from a linear congruential generator. */
function fillF32(memory, pointer, n, seed) {
  const values = new Float32Array(memory.buffer, pointer, n);
  let state = seed >>> 0;
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    values[i] = state / 2 ** 31 - 1;
  }
}

function allocate(kernels, bytes) {
  const pointer = kernels.alloc(bytes) >>> 0;
  if (pointer === 0) throw new Error(`alloc(${bytes}) returned 0: the test module's 1 GiB arena is used up`);
  return pointer;
}

/**
 * Places `copies` rows × cols Q8_0 matrices (interleaved groups of four rows), a quantized vector
 * and an output in the module's memory, with the same contents for the same shape in every module.
 * Returns the first matrix as wq, ws and every one in `matrices`.
 */
function placeMatvec(kernels, rows, cols, copies) {
  kernels.allocReset();
  const quantBytes = rows * cols;
  const scaleBytes = (rows * cols / 32) * 4;
  const matrices = [];
  for (let copy = 0; copy < copies; copy++) {
    const wq = allocate(kernels, quantBytes);
    const ws = allocate(kernels, scaleBytes);
    fillQuants(kernels.memory, wq, quantBytes, 7 + copy);
    fillF32(kernels.memory, ws, rows * cols / 32, 11 + copy);
    matrices.push({ wq, ws });
  }
  const { wq, ws } = matrices[0];
  const x = allocate(kernels, cols * 4);
  const xq = allocate(kernels, cols);
  const xs = allocate(kernels, (cols / 32) * 4);
  const out = allocate(kernels, rows * 4);
  fillF32(kernels.memory, x, cols, 13);
  kernels.quantizeQ8(xq, xs, x, cols);
  return { wq, ws, xq, xs, out, quantBytes, scaleBytes, matrices };
}

/**
 * Instantiates the relaxed module when this engine validates it and its dotQ8SelfTest passes.
 * Returns { kernels } or { status } with the reason it cannot be used.
 */
async function loadRelaxed(relaxedBytes) {
  if (!WebAssembly.validate(relaxedBytes)) return { status: "rejected: the engine does not validate relaxed SIMD" };
  const { instance } = await WebAssembly.instantiate(relaxedBytes, {});
  if (instance.exports.dotQ8SelfTest() !== 1) return { status: "rejected: dotQ8SelfTest returned 0" };
  return { kernels: instance.exports, status: "ok" };
}

/** Times each kernel's batches of calls over warmupRounds + rounds rounds. Returns, per kernel, the ms per call of each timed round. */
function timeInterleaved(runs, calls, rounds, warmupRounds) {
  const samples = runs.map(() => []);
  for (let round = 0; round < warmupRounds + rounds; round++) {
    // rotate the starting kernel so none of them always follows the same one
    for (let k = 0; k < runs.length; k++) {
      const index = (round + k) % runs.length;
      const run = runs[index];
      run();
      const start = performance.now();
      for (let call = 0; call < calls; call++) run();
      const elapsed = performance.now() - start;
      if (round >= warmupRounds) samples[index].push(elapsed / calls);
    }
  }
  return samples;
}

/** Returns a function that calls run(matrix) on the next of `matrices` each time. */
function rotating(matrices, run) {
  let next = 0;
  return () => {
    run(matrices[next]);
    next = (next + 1) % matrices.length;
  };
}

/**
 * Measures matvecQ8 (exact and relaxed modules) and readBytes on every shape.
 * options: { shapes: [[rows, cols, copies?], ...], rounds, warmupRounds, batchBytes }. batchBytes sets how
 * many bytes of matrix one timed batch reads, so a batch lasts milliseconds at every shape.
 * Returns { relaxedStatus, shapes: [{ rows, cols, matrixBytes, calls, checks, kernels }] }, with
 * each kernel's median, fastest round and samples in ms per call.
 */
export async function measureKernels(exactBytes, relaxedBytes, options) {
  const exact = (await WebAssembly.instantiate(exactBytes, {})).instance.exports;
  const relaxed = await loadRelaxed(relaxedBytes);
  const results = [];

  for (const [rows, cols, copies = 1] of options.shapes) {
    const exactData = placeMatvec(exact, rows, cols, copies);
    const relaxedData = relaxed.kernels ? placeMatvec(relaxed.kernels, rows, cols, copies) : undefined;
    const matrixBytes = exactData.quantBytes + exactData.scaleBytes;

    // checks: both modules compute the same outputs, and readBytes still computes its checksum
    const checks = {};
    const { wq, ws, xq, xs, out, quantBytes, scaleBytes } = exactData;
    exact.matvecQ8(out, wq, ws, xq, xs, rows, cols);
    const readChecksum = (matrix = exactData) => (exact.readBytes(matrix.wq, quantBytes) + exact.readBytes(matrix.ws, scaleBytes)) | 0;
    checks.readBytesMatchesRef = readChecksum() === ((exact.readBytesRef(wq, quantBytes) + exact.readBytesRef(ws, scaleBytes)) | 0);
    if (relaxedData) {
      const r = relaxedData;
      relaxed.kernels.matvecQ8(r.out, r.wq, r.ws, r.xq, r.xs, rows, cols);
      const exactOut = new Uint32Array(exact.memory.buffer, out, rows);
      const relaxedOut = new Uint32Array(relaxed.kernels.memory.buffer, r.out, rows);
      checks.relaxedBitIdentical = exactOut.every((bits, i) => bits === relaxedOut[i]);
    }

    let checksumSink = 0;
    const names = ["exact", "relaxed", "readBytes"];
    const runs = [
      rotating(exactData.matrices, (m) => exact.matvecQ8(out, m.wq, m.ws, xq, xs, rows, cols)),
      relaxedData && rotating(relaxedData.matrices, (m) => relaxed.kernels.matvecQ8(relaxedData.out, m.wq, m.ws, relaxedData.xq, relaxedData.xs, rows, cols)),
      rotating(exactData.matrices, (m) => { checksumSink ^= readChecksum(m); }),
    ];
    const active = names.filter((_, i) => runs[i]);
    const calls = Math.max(1, Math.round(options.batchBytes / matrixBytes));
    const samples = timeInterleaved(runs.filter(Boolean), calls, options.rounds, options.warmupRounds);

    const kernels = {};
    active.forEach((name, i) => (kernels[name] = { medianMs: median(samples[i]), fastestMs: Math.min(...samples[i]), samplesMs: samples[i] }));
    results.push({ rows, cols, copies, matrixBytes, calls, checks, checksumSink, kernels });
  }
  return { relaxedStatus: relaxed.status, shapes: results };
}
