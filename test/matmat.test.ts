// matmatQ8's blocked kernel (8 rows × 4 tokens per pass, with scratch) against matmatQ8Ref, bit
// for bit, on both test modules. Node 20 compiles the relaxed module only with V8 flags. Those
// cannot be set inside a running process, so on Node 20 the relaxed cases run in a child process.

import { execFileSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { type KernelVariant, loadKernelModule, testWasmPath } from "./wasm-harness.js";

interface MatmatCase {
  rows: number;
  cols: number;
  n: number;
  scratch: "exact" | "none";
  /** setMatmatRelaxed's argument: 1 runs the relaxed dot in the relaxed module (the exact module ignores it). */
  dot: 0 | 1;
}

interface MatmatResult {
  name: string;
  mismatch: string;
  scratchWritten: boolean;
  scratchOverrun: boolean;
  /** matmatRelaxed() after setMatmatRelaxed(dot). */
  relaxedDot: number;
}

const ROWS = [1, 4, 5, 7, 8, 9, 13, 64];
const COLS = [32, 96, 768];
const TOKENS = [1, 3, 4, 5, 7, 8, 16];
const RELAXED_FLAGS = ["--experimental-wasm-relaxed-simd", "--no-liftoff"];
const nodeMajor = Number(process.versions.node.split(".")[0]);
const repoRoot = fileURLToPath(new URL("..", import.meta.url));

function caseName(c: MatmatCase): string {
  return `rows ${c.rows}, cols ${c.cols}, n ${c.n}, scratch ${c.scratch}, dot ${c.dot ? "relaxed" : "exact"}`;
}

const cases: MatmatCase[] = ([0, 1] as const).flatMap((dot) => [
  ...ROWS.flatMap((rows) => COLS.flatMap((cols) => TOKENS.map((n) => ({ rows, cols, n, scratch: "exact" as const, dot })))),
  ...[1, 5, 16].map((n) => ({ rows: 9, cols: 96, n, scratch: "none" as const, dot })),
]);

/**
 * Runs each case on the module's exports and returns one result per case. Self-contained, with
 * no imports or outer variables, because the relaxed cases run its source text in a child process.
 */
function runMatmatCases(e: Record<string, any>, list: MatmatCase[]): MatmatResult[] {
  const GUARD_BYTES = 256;
  const FILL = 0x7fc01234;
  const alloc = (bytes: number): number => {
    const pointer = e.alloc(bytes) >>> 0;
    if (pointer === 0) throw new Error(`alloc(${bytes}) returned 0: test arena budget exhausted`);
    return pointer;
  };
  // mulberry32, so every case gets the same data in both processes
  const seeded = (seed: number) => {
    let state = seed >>> 0;
    return () => {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  };

  return list.map(({ rows, cols, n, scratch, dot }) => {
    e.allocReset();
    e.setMatmatRelaxed(dot);
    const relaxedDot = e.matmatRelaxed();
    const random = seeded(rows * 1009 + cols * 31 + n);
    const quants = () => Math.floor(random() * 255) - 127;
    const paddedRows = Math.ceil(rows / 4) * 4;
    const xStride = cols + 64;
    const outStride = rows + 3;
    const memory = () => e.memory.buffer as ArrayBuffer;

    const putI8 = (count: number): number => {
      const pointer = alloc(count);
      new Int8Array(memory(), pointer, count).set(Array.from({ length: count }, quants));
      return pointer;
    };
    const putF32 = (count: number, next: () => number): number => {
      const pointer = alloc(count * 4);
      new Float32Array(memory(), pointer, count).set(Array.from({ length: count }, next));
      return pointer;
    };

    const wq = putI8(paddedRows * cols);
    const ws = putF32(paddedRows * (cols / 32), () => (random() - 0.5) * 0.02);
    const xq = putI8(n * xStride);
    const xs = putF32(n * (xStride / 32), () => random() * 0.1);

    const scratchBytes = e.matmatScratchBytes(cols, n) >>> 0;
    const scratchPointer = alloc(scratchBytes + GUARD_BYTES);
    e.setMatmatScratch(scratch === "exact" ? scratchPointer : 0, scratchBytes);

    // outputs start as a NaN pattern, so writes past `rows` show up as differences
    const expected = alloc(n * outStride * 4);
    const actual = alloc(n * outStride * 4);
    new Uint32Array(memory(), expected, n * outStride).fill(FILL);
    new Uint32Array(memory(), actual, n * outStride).fill(FILL);
    e.matmatQ8Ref(expected, wq, ws, xq, xs, rows, cols, n, xStride, outStride);
    e.matmatQ8(actual, wq, ws, xq, xs, rows, cols, n, xStride, outStride);
    e.setMatmatScratch(0, 0);

    const want = new Uint32Array(memory(), expected, n * outStride);
    const got = new Uint32Array(memory(), actual, n * outStride);
    let mismatch = "";
    for (let i = 0; i < want.length && mismatch === ""; i++) {
      if (got[i] === want[i]) continue;
      mismatch = `token ${Math.floor(i / outStride)}, row ${i % outStride}: bits ${got[i]}, expected ${want[i]}`;
    }
    const scratchView = new Uint8Array(memory(), scratchPointer, scratchBytes + GUARD_BYTES);
    return {
      name: `rows ${rows}, cols ${cols}, n ${n}, scratch ${scratch}, dot ${dot ? "relaxed" : "exact"}`,
      mismatch,
      scratchWritten: scratchView.subarray(0, scratchBytes).some((byte) => byte !== 0),
      scratchOverrun: scratchView.subarray(scratchBytes).some((byte) => byte !== 0),
      relaxedDot,
    };
  });
}

/** Runs the cases on the relaxed module in a child Node with the V8 flags Node 20 needs. */
function runInChild(list: MatmatCase[]): MatmatResult[] {
  const wasmFile = path.join(repoRoot, testWasmPath("relaxed"));
  const script = [
    `import { readFileSync } from "node:fs";`,
    `const { instance } = await WebAssembly.instantiate(readFileSync(${JSON.stringify(wasmFile)}), {});`,
    `const runMatmatCases = ${runMatmatCases.toString()};`,
    `console.log(JSON.stringify(runMatmatCases(instance.exports, ${JSON.stringify(list)})));`,
  ].join("\n");
  const output = execFileSync(process.execPath, [...RELAXED_FLAGS, "--input-type=module", "-e", script], {
    encoding: "utf8",
    maxBuffer: 16 << 20,
  });
  return JSON.parse(output) as MatmatResult[];
}

async function resultsFor(variant: KernelVariant): Promise<MatmatResult[]> {
  if (variant === "exact" || nodeMajor >= 22) {
    const m = await loadKernelModule(variant);
    return runMatmatCases(m.exports as unknown as Record<string, any>, cases);
  }
  // builds the relaxed module when stale; this engine then rejects it, which the child does not
  await loadKernelModule(variant).catch((error: unknown) => {
    if (!(error instanceof WebAssembly.CompileError)) throw error;
  });
  return runInChild(cases);
}

describe.each(["exact", "relaxed"] as const)("matmatQ8, %s module", (variant) => {
  let results: MatmatResult[] = [];

  it("runs every case", async () => {
    results = await resultsFor(variant);
    expect(results.map((result) => result.name)).toEqual(cases.map(caseName));
  });

  it.each(cases.map((c, index) => [caseName(c), index] as const))(
    "%s matches reference",
    (_name, index) => {
      const result = results[index];
      expect(result, "results from the first test").toBeDefined();
      expect(result.mismatch).toBe("");
      expect(result.scratchOverrun).toBe(false);
      // the relaxed module runs the kernel asked for; the exact module has only the exact one
      expect(result.relaxedDot).toBe(variant === "relaxed" ? cases[index].dot : 0);
      // the blocked kernel runs for 4 or more tokens when it has scratch
      const blocked = cases[index].scratch === "exact" && cases[index].n >= 4;
      expect(result.scratchWritten, "blocked kernel wrote its scratch").toBe(blocked);
    },
  );
});
