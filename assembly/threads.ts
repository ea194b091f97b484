// Threads: the host starts N - 1 Workers that instantiate the threaded module over the same
// shared memory and call threadRun(). From then on the forward pass hands them slices of each
// large matrix, and of attention's heads, through a control block in that memory.
//
// Each wasm instance has its own globals, so nothing reaches a worker through a global: the
// control block carries the job and its arguments, and a snapshot of the model's configuration
// that each worker adopts once. Only the main instance allocates.
//
//   control + 0    generation  i32, bumped by the main thread once per job
//   control + 64   done        i32, workers that finished the current job
//   control + 128  sleepers    i32, workers blocked in memory.atomic.wait32
//   control + 132  started     i32, workers that entered threadRun (the host waits for all)
//   control + 136  waiting     i32, 1 while the main thread is blocked waiting for `done`
//   control + 140  failed      i32, 1 once a worker trapped: the main thread traps instead of waiting
//   control + 192  job kind, thread count, then 12 argument slots (i32)
//   control + 320  configuration snapshot, 13 i32
//
// One job is one barrier: the main thread publishes it, computes slice 0 itself and spins until
// every worker has counted itself done. Workers spin for a while after a job, because the next
// matrix follows within microseconds, and then sleep in memory.atomic.wait32 so an idle model
// costs no CPU. When the machine has more busy threads than cores, a worker can lose its core
// for a whole scheduler slice, and a main thread spinning for it would keep the core from it.
// So after a few hundred microseconds of spinning the main thread sleeps too, where it may: not
// on a browser page's thread, which must not block (the host says which at threadsInit).
//
// Slices split rows on 4-row group boundaries (heads, for attention) and each output element is
// computed by one thread with the same kernel and the same f32 steps, so results are bit-identical
// to one thread.

import { arenaAlloc } from "./memory";
import { matmatQ8, matmatRelaxed, matmatScratchBytes, setMatmatRelaxed, setMatmatScratch } from "./kernels/matmat_q8";
import { matvecF32 } from "./kernels/matvec_f32";
import { matvecQ8, matvecRelaxed, setMatvecRelaxed } from "./kernels/matvec_q8";
import { QK8 } from "./kernels/quantize";
import { dim, dim_pad, hidden_dim, hidden_pad, int8, n_heads, n_kv_heads, n_layers, seq_len, setConfig, vocab_size } from "./model/config";
import { PREFILL_BLOCK } from "./model/prefill";
import { adoptCaches, key_cache, value_cache } from "./model/state";
import { attendHeadAt } from "./model/forward";
import { adoptSparseJob, sparseDownSlice, sparseGateSlice } from "./model/sparse";

const GENERATION: usize = 0;
const DONE: usize = 64;
const SLEEPERS: usize = 128;
const STARTED: usize = 132;
const WAITING: usize = 136;
const FAILED: usize = 140;
const KIND: usize = 192;
const COUNT: usize = 196;
const ARGS: usize = 200;
const CONFIG: usize = 320;
const CONTROL_BYTES: u64 = 384;

const JOB_QUIT: i32 = 0;
const JOB_MATVEC_Q8: i32 = 1;
const JOB_MATMAT_Q8: i32 = 2;
const JOB_MATVEC_F32: i32 = 3;
const JOB_MATMAT_F32: i32 = 4;
const JOB_ATTENTION: i32 = 5;
const JOB_SPARSE_GATES: i32 = 6;
const JOB_SPARSE_DOWN: i32 = 7;
const JOB_MATVEC_Q8_SET: i32 = 8;

/** Matrices of one JOB_MATVEC_Q8_SET job, all read against the same input. */
const MAX_SET: i32 = 3;

/** Most threads a model runs on; attention gives each its own score row, of which there are n_heads. */
export const MAX_THREADS: i32 = 64;

/**
 * Multiply-adds below which a matrix runs on the main thread alone. A barrier costs on the order
 * of a microsecond (an estimate), more than the split saves on the small matrices of stories260K.
 */
export const MIN_PARALLEL_WORK: i64 = 1 << 16;

/**
 * Spin iterations (atomic loads, about a nanosecond each) before a worker sleeps: a few hundred
 * microseconds, which bridge the gaps between the matrices of a token, while an idle model stops
 * using CPU within a millisecond. With 2^16 here and 2^14 for the main thread, threads slept and
 * woke at many barriers of a token, and two threads decoded slower than one (60 against 109
 * tokens/s on the stories110M shape).
 */
const WORKER_SPIN_LIMIT: i32 = 1 << 18;

/** Spin iterations before a main thread that may block sleeps until the workers are done. */
const MAIN_SPIN_LIMIT: i32 = 1 << 18;

/** Maximum time of one sleep of the main thread, in nanoseconds, after which it checks the counter again. */
const MAIN_WAIT_NS: i64 = 1_000_000;

let control: usize = 0;
let threads: i32 = 1;
/** Whether the main thread may block in memory.atomic.wait32 (not on a browser page's thread). */
let mainMayBlock: bool = false;

/** Address of the counter of workers that entered threadRun, 0 before threadsInit; the host polls it. */
export function threadsStartedPointer(): usize {
  return control != 0 ? control + STARTED : 0;
}

/** Bytes of one worker's matmatQ8 scratch for the configured model. */
function workerScratchBytes(): usize {
  return (matmatScratchBytes(max(dim_pad, hidden_pad), PREFILL_BLOCK) + 63) & ~63;
}

/** Threads the forward pass splits work across (1 until threadsInit). */
export function threadCount(): i32 {
  return threads;
}

/**
 * Allocates the control block for `count` threads (main included) and records the configuration
 * the workers adopt. Call after modelInit. Returns the control pointer, 0 when over budget or
 * when this module was built without threads.
 */
export function threadsInit(count: i32, mayBlock: i32): usize {
  if (!ASC_FEATURE_THREADS || count < 2 || count > MAX_THREADS) return 0;
  mainMayBlock = mayBlock != 0;
  if (control == 0) control = arenaAlloc(CONTROL_BYTES);
  // each worker's own matmatQ8 scratch (the main thread's comes from allocPrefill)
  const scratch = arenaAlloc(<u64>(count - 1) * <u64>workerScratchBytes());
  if (control == 0 || scratch == 0) return 0;
  const config = control + CONFIG;
  store<i32>(config, dim);
  store<i32>(config, hidden_dim, 4);
  store<i32>(config, n_layers, 8);
  store<i32>(config, n_heads, 12);
  store<i32>(config, n_kv_heads, 16);
  store<i32>(config, vocab_size, 20);
  store<i32>(config, seq_len, 24);
  store<i32>(config, int8, 28);
  store<u32>(config, <u32>key_cache, 32);
  store<u32>(config, <u32>value_cache, 36);
  store<u32>(config, <u32>scratch, 40);
  store<u32>(config, <u32>workerScratchBytes(), 44);
  store<i32>(config, matmatRelaxed(), 48);
  store<i32>(config, matvecRelaxed(), 52);
  store<i32>(control + COUNT, count);
  threads = count;
  return control;
}

/** Bytes threadsInit(count) allocates. */
export function threadsBytes(count: i32): f64 {
  return <f64>(CONTROL_BYTES + 128) + <f64>(count - 1) * <f64>workerScratchBytes();
}

/** Start and end (exclusive) of slice `id` of `units` split across `count` threads. */
@inline function sliceStart(units: i32, id: i32, count: i32): i32 {
  return <i32>((<i64>units * <i64>id) / <i64>count);
}

@inline function arg(index: i32): i32 {
  return load<i32>(control + ARGS + (<usize>index << 2));
}

@inline function setArg(index: i32, value: i32): void {
  store<i32>(control + ARGS + (<usize>index << 2), value);
}

/** Computes slice `id` of `count` of out = W x (int8), split by 4-row groups. */
function matvecQ8Slice(out: usize, wq: usize, ws: usize, xq: usize, xs: usize, rows: i32, cols: i32, id: i32, count: i32): void {
  const groups = (rows + 3) >> 2;
  const g0 = sliceStart(groups, id, count);
  const g1 = sliceStart(groups, id + 1, count);
  if (g0 >= g1) return;
  const r0 = g0 << 2;
  const sliceRows = min(rows, g1 << 2) - r0;
  matvecQ8(out + (<usize>r0 << 2), wq + <usize>g0 * (<usize>cols << 2), ws + <usize>g0 * (<usize>(cols / QK8) << 4), xq, xs, sliceRows, cols);
}

/** Runs slice `id` of the published job. */
function runSlice(kind: i32, id: i32, count: i32): void {
  if (kind == JOB_MATVEC_Q8_SET) {
    // args: count, xq, xs, cols, then out, wq, ws, rows of each matrix
    for (let m = 0; m < arg(0); m++) {
      const at = 4 + 4 * m;
      matvecQ8Slice(<usize>arg(at), <usize>arg(at + 1), <usize>arg(at + 2), <usize>arg(1), <usize>arg(2), arg(at + 3), arg(3), id, count);
    }
  } else if (kind == JOB_MATVEC_Q8) {
    // args: out, wq, ws, xq, xs, rows, cols
    matvecQ8Slice(<usize>arg(0), <usize>arg(1), <usize>arg(2), <usize>arg(3), <usize>arg(4), arg(5), arg(6), id, count);
  } else if (kind == JOB_MATMAT_Q8) {
    // args: out, wq, ws, xq, xs, rows, cols, n, xStride, outStride
    const rows = arg(5);
    const cols = arg(6);
    const groups = (rows + 3) >> 2;
    const g0 = sliceStart(groups, id, count);
    const g1 = sliceStart(groups, id + 1, count);
    if (g0 >= g1) return;
    const r0 = g0 << 2;
    const wq = <usize>arg(1) + <usize>g0 * (<usize>cols << 2);
    const ws = <usize>arg(2) + <usize>g0 * (<usize>(cols / QK8) << 4);
    matmatQ8(<usize>arg(0) + (<usize>r0 << 2), wq, ws, <usize>arg(3), <usize>arg(4), min(rows, g1 << 2) - r0, cols, arg(7), arg(8), arg(9));
  } else if (kind == JOB_MATVEC_F32 || kind == JOB_MATMAT_F32) {
    // args: out, w, x, rows, cols, n, xStride, outStride; 4-row passes keep their grouping
    const rows = arg(3);
    const cols = arg(4);
    const groups = (rows + 3) >> 2;
    const r0 = sliceStart(groups, id, count) << 2;
    const r1 = min(rows, sliceStart(groups, id + 1, count) << 2);
    if (r0 >= r1) return;
    const w = <usize>arg(1) + ((<usize>r0 * <usize>cols) << 2);
    const n = kind == JOB_MATVEC_F32 ? 1 : arg(5);
    for (let t = 0; t < n; t++) {
      const out = <usize>arg(0) + ((<usize>t * <usize>arg(7) + <usize>r0) << 2);
      matvecF32(out, w, <usize>arg(2) + ((<usize>t * <usize>arg(6)) << 2), r1 - r0, cols);
    }
  } else if (kind == JOB_SPARSE_GATES || kind == JOB_SPARSE_DOWN) {
    // args: job descriptor (model/sparse.ts), units (neuron blocks or 16-output groups)
    adoptSparseJob(<usize>arg(0), id);
    const units = arg(1);
    const u0 = sliceStart(units, id, count);
    const u1 = sliceStart(units, id + 1, count);
    if (kind == JOB_SPARSE_GATES) sparseGateSlice(u0, u1);
    else sparseDownSlice(u0, u1);
  } else if (kind == JOB_ATTENTION) {
    // args: pos0, layerCache, q, qStride, out, outStride, n, scores; units are (token, head) pairs
    const units = arg(6) * n_heads;
    const u1 = sliceStart(units, id + 1, count);
    const scores = <usize>arg(7) + ((<usize>id * <usize>seq_len) << 2);
    for (let u = sliceStart(units, id, count); u < u1; u++) {
      const t = u / n_heads;
      const h = u - t * n_heads;
      attendHeadAt(h, arg(0) + t, <usize>arg(1), <usize>arg(2) + ((<usize>t * <usize>arg(3)) << 2),
        <usize>arg(4) + ((<usize>t * <usize>arg(5)) << 2), scores);
    }
  }
}

/** Publishes the job whose arguments are set, runs slice 0, and returns when every slice is done. */
function runJob(kind: i32): void {
  if (ASC_FEATURE_THREADS) {
    if (atomic.load<i32>(control + FAILED) != 0) unreachable();
    store<i32>(control + KIND, kind);
    atomic.store<i32>(control + DONE, 0);
    atomic.add<i32>(control + GENERATION, 1);
    if (atomic.load<i32>(control + SLEEPERS) > 0) atomic.notify(control + GENERATION, threads - 1);
    runSlice(kind, 0, threads);
    // NOTE: a worker that is terminated from outside while it runs a slice never counts itself
    // done and never traps, so this loop waits for ever; only trapping workers set FAILED.
    let spins = 0;
    while (true) {
      const done = atomic.load<i32>(control + DONE);
      if (done >= threads - 1) break;
      // a worker that trapped never counts itself done: fail here rather than wait forever
      if (atomic.load<i32>(control + FAILED) != 0) unreachable();
      if (mainMayBlock && ++spins >= MAIN_SPIN_LIMIT) {
        // a worker that counts itself done after this store sees it and notifies; one that
        // counted before it changed `done`, so the wait returns at once
        atomic.store<i32>(control + WAITING, 1);
        atomic.wait<i32>(control + DONE, done, MAIN_WAIT_NS);
        atomic.store<i32>(control + WAITING, 0);
        spins = 0;
      }
    }
  }
}

/**
 * Worker entry: adopts the configuration, then runs slices of published jobs until the quit job.
 * Blocks; call it from a Worker, never from the thread that runs forward().
 */
export function threadRun(controlPointer: usize, id: i32): void {
  if (!ASC_FEATURE_THREADS) return;
  control = controlPointer;
  threads = load<i32>(control + COUNT);
  const config = control + CONFIG;
  setConfig(load<i32>(config), load<i32>(config, 4), load<i32>(config, 8), load<i32>(config, 12), load<i32>(config, 16),
    load<i32>(config, 20), load<i32>(config, 24), 1e-5, 10000, load<i32>(config, 28));
  adoptCaches(<usize>load<u32>(config, 32), <usize>load<u32>(config, 36));
  const scratchBytes = <usize>load<u32>(config, 44);
  setMatmatScratch(<usize>load<u32>(config, 40) + <usize>(id - 1) * scratchBytes, scratchBytes);
  setMatmatRelaxed(load<i32>(config, 48));
  setMatvecRelaxed(load<i32>(config, 52));

  // the host publishes no job before every worker has read the generation and counted itself here
  let seen = atomic.load<i32>(control + GENERATION);
  atomic.add<i32>(control + STARTED, 1);
  while (true) {
    let spins = 0;
    let generation = atomic.load<i32>(control + GENERATION);
    while (generation == seen) {
      if (++spins >= WORKER_SPIN_LIMIT) {
        // a job published after this increment finds a sleeper and notifies; one published
        // before it changed the generation, so the wait returns at once
        atomic.add<i32>(control + SLEEPERS, 1);
        atomic.wait<i32>(control + GENERATION, seen, -1);
        atomic.sub<i32>(control + SLEEPERS, 1);
        spins = 0;
      }
      generation = atomic.load<i32>(control + GENERATION);
    }
    seen = generation;
    const kind = load<i32>(control + KIND);
    if (kind == JOB_QUIT) {
      atomic.add<i32>(control + DONE, 1);
      return;
    }
    runSlice(kind, id, threads);
    atomic.add<i32>(control + DONE, 1);
    if (atomic.load<i32>(control + WAITING) != 0) atomic.notify(control + DONE, 1);
  }
}

/**
 * Marks the threads of `controlPointer` failed and wakes the main thread, which then traps at its
 * barrier. A worker whose threadRun trapped calls it, so the model errors instead of hanging.
 */
export function threadFail(controlPointer: usize): void {
  if (!ASC_FEATURE_THREADS) return;
  atomic.store<i32>(controlPointer + FAILED, 1);
  atomic.notify(controlPointer + DONE, 1);
}

/** Returns 1 once a worker has failed (threadFail), else 0. */
export function threadsFailed(): i32 {
  if (!ASC_FEATURE_THREADS || control == 0) return 0;
  return atomic.load<i32>(control + FAILED) != 0 ? 1 : 0;
}

/** Ends every worker's threadRun and returns to one thread. */
export function threadsStop(): void {
  if (threads < 2) return;
  runJob(JOB_QUIT);
  threads = 1;
}

/**
 * out_m = W_m x for the first `count` (at most MAX_SET) of three int8 matrices that read the same
 * quantized input (query, key and value; gate and up). One barrier covers all of them: each
 * thread computes its share of every matrix in turn, and the outputs are those of matvecQ8.
 */
export function parallelMatvecQ8Set(
  count: i32, xq: usize, xs: usize, cols: i32,
  out0: usize, wq0: usize, ws0: usize, rows0: i32,
  out1: usize, wq1: usize, ws1: usize, rows1: i32,
  out2: usize, wq2: usize, ws2: usize, rows2: i32,
): void {
  let rowsTotal = <i64>rows0;
  if (count > 1) rowsTotal += <i64>rows1;
  if (count > 2) rowsTotal += <i64>rows2;
  if (threads < 2 || rowsTotal * <i64>cols < MIN_PARALLEL_WORK) {
    matvecQ8(out0, wq0, ws0, xq, xs, rows0, cols);
    if (count > 1) matvecQ8(out1, wq1, ws1, xq, xs, rows1, cols);
    if (count > 2) matvecQ8(out2, wq2, ws2, xq, xs, rows2, cols);
    return;
  }
  setArg(0, min(count, MAX_SET)); setArg(1, <i32>xq); setArg(2, <i32>xs); setArg(3, cols);
  setArg(4, <i32>out0); setArg(5, <i32>wq0); setArg(6, <i32>ws0); setArg(7, rows0);
  setArg(8, <i32>out1); setArg(9, <i32>wq1); setArg(10, <i32>ws1); setArg(11, rows1);
  setArg(12, <i32>out2); setArg(13, <i32>wq2); setArg(14, <i32>ws2); setArg(15, rows2);
  runJob(JOB_MATVEC_Q8_SET);
}

/** out = W x for int8 W, split across threads when the matrix is large enough. See matvecQ8. */
export function parallelMatvecQ8(out: usize, wq: usize, ws: usize, xq: usize, xs: usize, rows: i32, cols: i32): void {
  if (threads < 2 || <i64>rows * <i64>cols < MIN_PARALLEL_WORK) {
    matvecQ8(out, wq, ws, xq, xs, rows, cols);
    return;
  }
  setArg(0, <i32>out); setArg(1, <i32>wq); setArg(2, <i32>ws); setArg(3, <i32>xq); setArg(4, <i32>xs);
  setArg(5, rows); setArg(6, cols);
  runJob(JOB_MATVEC_Q8);
}

/** OUT[t] = W X[t] for int8 W and t < n, split across threads by rows. See matmatQ8. */
export function parallelMatmatQ8(
  out: usize, wq: usize, ws: usize, xq: usize, xs: usize, rows: i32, cols: i32, n: i32, xStride: i32, outStride: i32,
): void {
  if (threads < 2 || <i64>rows * <i64>cols * <i64>n < MIN_PARALLEL_WORK) {
    matmatQ8(out, wq, ws, xq, xs, rows, cols, n, xStride, outStride);
    return;
  }
  setArg(0, <i32>out); setArg(1, <i32>wq); setArg(2, <i32>ws); setArg(3, <i32>xq); setArg(4, <i32>xs);
  setArg(5, rows); setArg(6, cols); setArg(7, n); setArg(8, xStride); setArg(9, outStride);
  runJob(JOB_MATMAT_Q8);
}

/**
 * OUT[t] = W X[t] for f32 W and t < n (x rows xStride f32 apart, out rows outStride apart),
 * split across threads by rows. n = 1 is one matrix × vector.
 */
export function parallelMatmatF32(out: usize, w: usize, x: usize, rows: i32, cols: i32, n: i32, xStride: i32, outStride: i32): void {
  if (threads < 2 || <i64>rows * <i64>cols * <i64>n < MIN_PARALLEL_WORK) {
    for (let t = 0; t < n; t++) {
      matvecF32(out + ((<usize>t * <usize>outStride) << 2), w, x + ((<usize>t * <usize>xStride) << 2), rows, cols);
    }
    return;
  }
  setArg(0, <i32>out); setArg(1, <i32>w); setArg(2, <i32>x); setArg(3, rows); setArg(4, cols);
  setArg(5, n); setArg(6, xStride); setArg(7, outStride);
  runJob(n == 1 ? JOB_MATVEC_F32 : JOB_MATMAT_F32);
}

/**
 * Attention of every head for tokens t < n at positions pos0 + t (queries q + t · qStride, outputs
 * out + t · outStride, in f32), split across threads by (token, head). scores contains one seq_len
 * row per thread, and every head's output is computed as attendHeadAt computes it alone.
 */
export function parallelAttention(pos0: i32, layerCache: usize, q: usize, qStride: i32, out: usize, outStride: i32, n: i32, scores: usize): void {
  if (threads < 2 || threads > n_heads || <i64>(pos0 + n) * <i64>n * <i64>dim < MIN_PARALLEL_WORK) {
    for (let t = 0; t < n; t++) {
      for (let h = 0; h < n_heads; h++) {
        attendHeadAt(h, pos0 + t, layerCache, q + ((<usize>t * <usize>qStride) << 2), out + ((<usize>t * <usize>outStride) << 2),
          scores + ((<usize>h * <usize>seq_len) << 2));
      }
    }
    return;
  }
  setArg(0, pos0); setArg(1, <i32>layerCache); setArg(2, <i32>q); setArg(3, qStride); setArg(4, <i32>out);
  setArg(5, outStride); setArg(6, n); setArg(7, <i32>scores);
  runJob(JOB_ATTENTION);
}

/**
 * Runs the sparse FFN of the layer in `descriptor` (model/sparse.ts) in two jobs: the gate pass
 * split by neuron blocks, then the down pass split by 16-output groups.
 */
export function parallelSparse(descriptor: usize, blocks: i32, groups: i32): void {
  setArg(0, <i32>descriptor);
  setArg(1, blocks);
  runJob(JOB_SPARSE_GATES);
  setArg(1, groups);
  runJob(JOB_SPARSE_DOWN);
}
