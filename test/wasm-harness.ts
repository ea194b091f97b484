// Loads the kernel test module (assembly/testing.ts) and places test data in its memory.
//
// The module is rebuilt with asc when its .wasm is missing or older than any file under assembly/,
// so kernel tests never run against stale code.

import { readdir, readFile, stat } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import path from "node:path";
import asc from "assemblyscript/asc";

/** Which test module to load: exact simd128, or built with --enable relaxed-simd. */
export type KernelVariant = "exact" | "relaxed";

/** Exports of build/dormant-test*.wasm. Pointers are byte offsets into memory, and lengths are element counts. */
export interface KernelExports {
  memory: WebAssembly.Memory;
  alloc(size: number): number;
  allocReset(): void;
  matvecF32(out: number, w: number, x: number, rows: number, cols: number): void;
  matvecF32Ref(out: number, w: number, x: number, rows: number, cols: number): void;
  quantizeQ8(xq: number, xs: number, x: number, n: number): void;
  quantizeQ8Ref(xq: number, xs: number, x: number, n: number): void;
  dequantizeRowQ8(out: number, wq: number, ws: number, row: number, cols: number): void;
  dequantizeRowQ8Ref(out: number, wq: number, ws: number, row: number, cols: number): void;
  matvecQ8(out: number, wq: number, ws: number, xq: number, xs: number, rows: number, cols: number): void;
  matvecQ8Ref(out: number, wq: number, ws: number, xq: number, xs: number, rows: number, cols: number): void;
  dotQ8SelfTest(): number;
  /** 1 when matvecQ8 and dotRows4Q8 use the relaxed dot (relaxed module only). */
  matvecRelaxed(): number;
  setMatvecRelaxed(relaxed: number): void;
  rmsnorm(out: number, x: number, weight: number, n: number, eps: number): void;
  rmsnormRef(out: number, x: number, weight: number, n: number, eps: number): void;
  softmax(x: number, n: number): void;
  dotF32(a: number, b: number, n: number): number;
  dotF32Ref(a: number, b: number, n: number): number;
  axpyF32(y: number, a: number, x: number, n: number): void;
  axpyF32Ref(y: number, a: number, x: number, n: number): void;
  addF32(y: number, x: number, n: number): void;
  addF32Ref(y: number, x: number, n: number): void;
  swiglu(gate: number, up: number, n: number): void;
  ropeAdjacent(vec: number, headCount: number, head_size: number, pos: number, theta: number): void;
  attentionScores(scores: number, q: number, keys: number, stride: number, count: number, n: number, scale: number): void;
  attentionScoresRef(scores: number, q: number, keys: number, stride: number, count: number, n: number, scale: number): void;
  attentionValues(out: number, weights: number, values: number, stride: number, count: number, n: number): void;
  attentionValuesRef(out: number, weights: number, values: number, stride: number, count: number, n: number): void;
}

const repoRoot = fileURLToPath(new URL("..", import.meta.url));

/** Path of the test module for a variant, relative to the repository root. */
export function testWasmPath(variant: KernelVariant): string {
  return variant === "exact" ? "build/dormant-test.wasm" : "build/dormant-test-relaxed.wasm";
}

async function newestSourceTime(dir: string): Promise<number> {
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    const time = entry.isDirectory() ? await newestSourceTime(full) : (await stat(full)).mtimeMs;
    newest = Math.max(newest, time);
  }
  return newest;
}

async function buildIfStale(variant: KernelVariant): Promise<void> {
  const wasmFile = path.join(repoRoot, testWasmPath(variant));
  const built = await stat(wasmFile).then((s) => s.mtimeMs, () => 0);
  if (built > (await newestSourceTime(path.join(repoRoot, "assembly")))) return;

  const args = ["assembly/testing.ts", "--target", "test", "--outFile", testWasmPath(variant), "--baseDir", repoRoot];
  if (variant === "relaxed") args.push("--enable", "relaxed-simd");
  const log: string[] = [];
  const sink = { write: (text: string | Uint8Array) => log.push(String(text)) };
  const { error } = await asc.main(args, { stdout: sink, stderr: sink });
  if (error) throw new Error(`asc ${args.join(" ")} failed: ${error.message}\n${log.join("")}`);
}

/** Test module with helpers that copy data in and out of its memory. */
export class KernelModule {
  readonly exports: KernelExports;
  readonly bytes: Uint8Array;

  constructor(exports: KernelExports, bytes: Uint8Array) {
    this.exports = exports;
    this.bytes = bytes;
  }

  /** Frees every allocation, so each test starts from an empty arena. */
  reset(): void {
    this.exports.allocReset();
  }

  /** Allocates bytes (zeroed, 64-byte aligned) and returns the address. Throws when the arena is full. */
  alloc(bytes: number): number {
    const pointer = this.exports.alloc(bytes) >>> 0;
    if (pointer === 0) throw new Error(`alloc(${bytes}) returned 0: test arena budget exhausted`);
    return pointer;
  }

  /** Returns a Float32Array view. Make a new one after any call that can grow memory. */
  f32(pointer: number, n: number): Float32Array {
    return new Float32Array(this.exports.memory.buffer, pointer, n);
  }

  i8(pointer: number, n: number): Int8Array {
    return new Int8Array(this.exports.memory.buffer, pointer, n);
  }

  u32(pointer: number, n: number): Uint32Array {
    return new Uint32Array(this.exports.memory.buffer, pointer, n);
  }

  /** Allocates n f32 and copies values into them when given. */
  putF32(n: number, values?: ArrayLike<number>): number {
    const pointer = this.alloc(n * 4);
    if (values) this.f32(pointer, n).set(values);
    return pointer;
  }

  /** Allocates n i8 and copies values into them when given. */
  putI8(n: number, values?: ArrayLike<number>): number {
    const pointer = this.alloc(n);
    if (values) this.i8(pointer, n).set(values);
    return pointer;
  }
}

/** Builds the variant's test module when stale, then instantiates it (it has no imports). */
export async function loadKernelModule(variant: KernelVariant): Promise<KernelModule> {
  await buildIfStale(variant);
  const bytes = new Uint8Array(await readFile(path.join(repoRoot, testWasmPath(variant))));
  const { instance } = await WebAssembly.instantiate(bytes, {});
  return new KernelModule(instance.exports as unknown as KernelExports, bytes);
}

/** Returns a seeded generator of uniform numbers in [0, 1) (mulberry32), so failures reproduce. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Returns n values uniform in [-scale, scale), rounded to f32. */
export function randomF32(random: () => number, n: number, scale = 1): Float32Array {
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = (random() * 2 - 1) * scale;
  return values;
}

/** Returns n int8 quants uniform in [-127, 127], the range quantizeQ8 produces. */
export function randomQuants(random: () => number, n: number): Int8Array {
  const values = new Int8Array(n);
  for (let i = 0; i < n; i++) values[i] = Math.floor(random() * 255) - 127;
  return values;
}

/** Rounds n up to a multiple of 32, the Q8_0 block size. */
export function padToBlock(n: number): number {
  return Math.ceil(n / 32) * 32;
}
