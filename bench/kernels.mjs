// Matrix × vector and matrix × block kernel throughput on the test modules (same kernels and -O3
// as the release build).
// Prints one line per kernel, shape and module. GOPS counts a multiply and an add as two operations.
// The "from memory" lines time many matrices in turn, more bytes than the last-level cache holds,
// so the weights come from DRAM as in a model's decode, beside readBytes over the same bytes.
//
//   npx asc assembly/testing.ts --target test
//   npx asc assembly/testing.ts --target test --enable relaxed-simd --outFile build/dormant-test-relaxed.wasm
//   node bench/kernels.mjs
//
// Node 20 runs the relaxed module only with V8 flags, so the script reruns itself with them.

import { spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

const RUNS = 25;
const WARMUP_RUNS = 3;
const SHAPES = [
  [4096, 4096],
  [1024, 1024],
  [2048, 32768],
];
const RELAXED_FLAGS = ["--experimental-wasm-relaxed-simd", "--no-liftoff"];
// matrix × block of 16 tokens (prefill): stories110M's attention and FFN shapes
const MATMAT_SHAPES = [
  [768, 768],
  [2048, 768],
];
const MATMAT_TOKENS = 16;

const modulePaths = {
  exact: new URL("../build/dormant-test.wasm", import.meta.url),
  relaxed: new URL("../build/dormant-test-relaxed.wasm", import.meta.url),
};

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function timeMedianMs(run) {
  for (let i = 0; i < WARMUP_RUNS; i++) run();
  const times = [];
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now();
    run();
    times.push(performance.now() - start);
  }
  return median(times);
}

// Fills memory with a fixed pseudo-random byte pattern (xorshift32), so runs are comparable.
function fillBytes(memory, pointer, length, seed) {
  const bytes = new Uint8Array(memory.buffer, pointer, length);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    bytes[i] = state & 0xff;
  }
}

function fillF32(memory, pointer, n, seed) {
  const values = new Float32Array(memory.buffer, pointer, n);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    values[i] = state / 2 ** 31 - 1;
  }
}

function alloc(e, bytes) {
  const pointer = e.alloc(bytes) >>> 0;
  if (pointer === 0) throw new Error(`alloc(${bytes}) returned 0: test arena budget exhausted`);
  return pointer;
}

/** Places a rows × cols int8 matrix (quants in [-127, 127], as the relaxed kernel requires) and its scales. */
function placeQ8Matrix(e, rows, cols) {
  const wq = alloc(e, rows * cols);
  fillBytes(e.memory, wq, rows * cols, 7);
  const quants = new Int8Array(e.memory.buffer, wq, rows * cols);
  for (let i = 0; i < quants.length; i++) if (quants[i] === -128) quants[i] = -127;
  const ws = alloc(e, rows * (cols / 32) * 4);
  fillF32(e.memory, ws, rows * (cols / 32), 11);
  return { wq, ws };
}

/** Places an f32 input of cols values, its quantizeQ8 form (xq, xs) and an output of rows f32. */
function placeVectors(e, rows, cols) {
  const x = alloc(e, cols * 4);
  fillF32(e.memory, x, cols, 13);
  const xq = alloc(e, cols);
  const xs = alloc(e, (cols / 32) * 4);
  e.quantizeQ8(xq, xs, x, cols);
  const out = alloc(e, rows * 4);
  return { x, xq, xs, out };
}

function benchModule(name, e) {
  for (const [rows, cols] of SHAPES) {
    e.allocReset();
    const ops = 2 * rows * cols;

    // int8 weights, activations from quantizeQ8
    const { wq, ws } = placeQ8Matrix(e, rows, cols);
    const { x, xq, xs, out } = placeVectors(e, rows, cols);
    const q8Ms = timeMedianMs(() => e.matvecQ8(out, wq, ws, xq, xs, rows, cols));
    console.log(`matvecQ8  ${rows}x${cols}  ${name.padEnd(7)}  ${(ops / q8Ms / 1e6).toFixed(1).padStart(6)} GOPS  ${q8Ms.toFixed(3)} ms`);

    if (name !== "exact") continue;
    const w = alloc(e, rows * cols * 4);
    fillF32(e.memory, w, rows * cols, 17);
    const f32Ms = timeMedianMs(() => e.matvecF32(out, w, x, rows, cols));
    console.log(`matvecF32 ${rows}x${cols}  ${name.padEnd(7)}  ${(ops / f32Ms / 1e6).toFixed(1).padStart(6)} GOPS  ${f32Ms.toFixed(3)} ms`);
  }
}

// Times matmatQ8 with scratch (blocked kernel) and without (one group per token), alternating
// the two runs so that load from other processes hits both alike.
function benchMatmat(name, e) {
  for (const [rows, cols] of MATMAT_SHAPES) {
    e.allocReset();
    const n = MATMAT_TOKENS;
    const { wq, ws } = placeQ8Matrix(e, rows, cols);
    const x = alloc(e, n * cols * 4);
    fillF32(e.memory, x, n * cols, 13);
    const xq = alloc(e, n * cols);
    const xs = alloc(e, n * (cols / 32) * 4);
    for (let t = 0; t < n; t++) {
      e.quantizeQ8(xq + t * cols, xs + t * (cols / 32) * 4, x + t * cols * 4, cols);
    }
    const out = alloc(e, n * rows * 4);
    const scratchBytes = e.matmatScratchBytes(cols, n) >>> 0;
    const scratch = alloc(e, scratchBytes);

    const variants = { blocked: scratch, "per token": 0 };
    const times = { blocked: [], "per token": [] };
    for (let run = 0; run < WARMUP_RUNS + RUNS; run++) {
      for (const [variant, pointer] of Object.entries(variants)) {
        e.setMatmatScratch(pointer, scratchBytes);
        const start = performance.now();
        e.matmatQ8(out, wq, ws, xq, xs, rows, cols, n, cols, rows);
        if (run >= WARMUP_RUNS) times[variant].push(performance.now() - start);
      }
    }
    e.setMatmatScratch(0, 0);
    const ops = 2 * rows * cols * n;
    const figures = Object.entries(times).map(([variant, ms]) => {
      return `${variant} ${(ops / median(ms) / 1e6).toFixed(1).padStart(6)} GOPS`;
    });
    console.log(`matmatQ8  ${rows}x${cols} n=${n}  ${name.padEnd(7)}  ${figures.join("  ")}`);
  }
}

// 2048 × 768 is the FFN shape of stories110M; 40 int8 matrices are 63 MB, 12 f32 ones 75 MB.
const MEMORY_ROWS = 2048;
const MEMORY_COLS = 768;
const MEMORY_Q8_MATRICES = 40;
const MEMORY_F32_MATRICES = 12;
const MEMORY_RUNS = 15;

/** Times matvecQ8 and matvecF32 over matrices taken in turn from memory, beside readBytes over their bytes. */
function benchFromMemory(e) {
  const [rows, cols] = [MEMORY_ROWS, MEMORY_COLS];
  e.allocReset();
  const q8 = [];
  for (let i = 0; i < MEMORY_Q8_MATRICES; i++) q8.push(placeQ8Matrix(e, rows, cols));
  const f32 = [];
  for (let i = 0; i < MEMORY_F32_MATRICES; i++) {
    const w = alloc(e, rows * cols * 4);
    fillF32(e.memory, w, rows * cols, 17 + i);
    f32.push(w);
  }
  const { x, xq, xs, out } = placeVectors(e, rows, cols);

  // each set lies in one piece (the arena hands out consecutive 64-byte-aligned blocks and these
  // sizes are multiples of 64), so one readBytes call covers it
  const q8Bytes = MEMORY_Q8_MATRICES * (rows * cols + (rows * cols / 32) * 4);
  const f32Bytes = MEMORY_F32_MATRICES * rows * cols * 4;
  const runs = {
    matvecQ8: () => { for (const { wq, ws } of q8) e.matvecQ8(out, wq, ws, xq, xs, rows, cols); },
    "readBytes (int8 set)": () => e.readBytes(q8[0].wq, q8Bytes),
    matvecF32: () => { for (const w of f32) e.matvecF32(out, w, x, rows, cols); },
    "readBytes (f32 set)": () => e.readBytes(f32[0], f32Bytes),
  };
  const times = Object.fromEntries(Object.keys(runs).map((name) => [name, []]));
  for (let run = 0; run < WARMUP_RUNS + MEMORY_RUNS; run++) {
    for (const [name, fn] of Object.entries(runs)) {
      const start = performance.now();
      fn();
      if (run >= WARMUP_RUNS) times[name].push(performance.now() - start);
    }
  }
  const gbs = (name, bytes) => bytes / median(times[name]) / 1e6;
  const q8Rate = gbs("matvecQ8", q8Bytes);
  const q8Read = gbs("readBytes (int8 set)", q8Bytes);
  const f32Rate = gbs("matvecF32", f32Bytes);
  const f32Read = gbs("readBytes (f32 set)", f32Bytes);
  console.log(`matvecQ8  ${rows}x${cols} x${MEMORY_Q8_MATRICES} from memory  ${q8Rate.toFixed(1)} GB/s  readBytes ${q8Read.toFixed(1)} GB/s  ${(100 * q8Rate / q8Read).toFixed(0)}% of read`);
  console.log(`matvecF32 ${rows}x${cols} x${MEMORY_F32_MATRICES} from memory  ${f32Rate.toFixed(1)} GB/s  readBytes ${f32Read.toFixed(1)} GB/s  ${(100 * f32Rate / f32Read).toFixed(0)}% of read`);
}

// int8 sets of about 64 MB with rows of 768 to 8192 columns: rows, cols, matrices
const ROW_LENGTH_SETS = [
  [2048, 768, 40],
  [4096, 1024, 16],
  [2048, 2048, 16],
  [4096, 4096, 4],
  [1024, 8192, 8],
];

/**
 * Times matvecQ8 from memory on sets whose rows grow longer, beside readBytes over the same
 * bytes. In cache the row length does not change the kernel's GOPS; from memory it does.
 */
function benchRowLengths(e) {
  for (const [rows, cols, count] of ROW_LENGTH_SETS) {
    e.allocReset();
    const set = [];
    for (let i = 0; i < count; i++) set.push(placeQ8Matrix(e, rows, cols));
    const { xq, xs, out } = placeVectors(e, rows, cols);
    const bytes = count * (rows * cols + (rows * cols / 32) * 4);
    const matvec = [];
    const read = [];
    for (let run = 0; run < WARMUP_RUNS + MEMORY_RUNS; run++) {
      let start = performance.now();
      for (const { wq, ws } of set) e.matvecQ8(out, wq, ws, xq, xs, rows, cols);
      if (run >= WARMUP_RUNS) matvec.push(performance.now() - start);
      start = performance.now();
      e.readBytes(set[0].wq, bytes);
      if (run >= WARMUP_RUNS) read.push(performance.now() - start);
    }
    const rate = bytes / median(matvec) / 1e6;
    const readRate = bytes / median(read) / 1e6;
    console.log(`matvecQ8  ${rows}x${cols} x${count} from memory  ${rate.toFixed(1)} GB/s  readBytes ${readRate.toFixed(1)} GB/s  ${(100 * rate / readRate).toFixed(0)}% of read`);
  }
}

// stories110M: 12 layers of four 768 × 768 and three 2048 × 768 matrices
const STORIES110M_LAYER_MACS = 4 * 768 * 768 + 3 * 2048 * 768;
const STORIES110M_LAYERS = 12;
const PEAK_STEPS = 1e7;

/**
 * Times dotPeak (assembly/kernels/peak.ts): the rate of the exact int8 dot step with nothing else
 * to do, an upper bound on every exact int8 kernel. At that rate, and with nothing but the
 * layers' matrices to compute, prefill of stories110M could run no faster than the printed bound.
 */
function benchPeak(e) {
  const ms = timeMedianMs(() => e.dotPeak(PEAK_STEPS));
  // 12 chains, 8 multiply-adds per i32x4.dot_i16x8_s, 2 operations per multiply-add
  const gops = (PEAK_STEPS * 12 * 8 * 2) / ms / 1e6;
  const tokensPerSecond = (gops * 1e9) / (2 * STORIES110M_LAYER_MACS * STORIES110M_LAYERS);
  console.log(`dotPeak   i32x4.dot_i16x8_s + i32x4.add, 12 chains  ${gops.toFixed(1)} GOPS  (stories110M prefill at most ${tokensPerSecond.toFixed(0)} tokens/s)`);
}

async function loadModule(variant) {
  const bytes = await readFile(modulePaths[variant]).catch(() => undefined);
  if (!bytes) {
    console.log(`${variant}: ${fileURLToPath(modulePaths[variant])} not found. Build it with the commands at the top of bench/kernels.mjs`);
    return undefined;
  }
  if (!WebAssembly.validate(bytes)) return null;
  const { instance } = await WebAssembly.instantiate(bytes, {});
  return instance.exports;
}

async function benchRelaxed() {
  const e = await loadModule("relaxed");
  if (e === undefined) return;
  if (e === null) {
    if (process.argv.includes("--relaxed-only")) {
      console.log("relaxed: this engine rejects relaxed SIMD even with V8 flags");
      return;
    }
    const child = spawnSync(process.execPath, [...RELAXED_FLAGS, fileURLToPath(import.meta.url), "--relaxed-only"], {
      stdio: "inherit",
    });
    if (child.status !== 0) console.log(`relaxed: rerun with ${RELAXED_FLAGS.join(" ")} exited with ${child.status}`);
    return;
  }
  if (e.dotQ8SelfTest() !== 1) {
    console.log("relaxed: dotQ8SelfTest failed on this engine, so the host would use the exact module");
    return;
  }
  benchModule("relaxed", e);
  benchMatmat("relaxed", e);
}

if (!process.argv.includes("--relaxed-only")) {
  console.log(`kernel throughput, median of ${RUNS} runs, one thread, Node ${process.versions.node}`);
  const exact = await loadModule("exact");
  if (exact) {
    benchPeak(exact);
    benchModule("exact", exact);
    benchMatmat("exact", exact);
    benchFromMemory(exact);
    benchRowLengths(exact);
  }
}
await benchRelaxed();
