// int8 kernel tests on the module built with --enable relaxed-simd. Node 20 runs it only with V8
// flags, which vitest.config.ts passes to this file's worker process (project "relaxed").

import { expect, test } from "vitest";
import { describeQ8Kernels, findBitMismatch, LENGTHS, matvecQ8Model, quantizeModel } from "./q8-cases.js";
import { type KernelExports, loadKernelModule, padToBlock, randomF32, randomQuants, seededRandom } from "./wasm-harness.js";

/** The sparse FFN's row kernel and its reference (assembly/kernels/sparse_q8.ts). */
interface RowExports extends KernelExports {
  dotRows4Q8(out: number, w0: number, w1: number, w2: number, w3: number, xq: number, xs: number, cols: number): void;
  dotRows4Q8Ref(out: number, w0: number, w1: number, w2: number, w3: number, xq: number, xs: number, cols: number): void;
}

test("relaxed module uses relaxed dot", async () => {
  const m = await loadKernelModule("relaxed");
  // i32x4.relaxed_dot_i8x16_i7x16_add_s is opcode 0xfd 0x113, LEB128-encoded as fd 93 02
  const opcode = Buffer.from([0xfd, 0x93, 0x02]);
  expect(Buffer.from(m.bytes).includes(opcode)).toBe(true);
});

test("matvec dot choice per module", async () => {
  const relaxed = await loadKernelModule("relaxed");
  expect(relaxed.exports.matvecRelaxed()).toBe(1);
  relaxed.exports.setMatvecRelaxed(0);
  expect(relaxed.exports.matvecRelaxed()).toBe(0);
  // the self-test checks the relaxed dot whatever the choice, and leaves the choice alone
  expect(relaxed.exports.dotQ8SelfTest()).toBe(1);
  expect(relaxed.exports.matvecRelaxed()).toBe(0);
  relaxed.exports.setMatvecRelaxed(1);
  expect(relaxed.exports.matvecRelaxed()).toBe(1);

  const exact = await loadKernelModule("exact");
  exact.exports.setMatvecRelaxed(1);
  expect(exact.exports.matvecRelaxed()).toBe(0);
});

test.each(LENGTHS)("dotRows4Q8 with both dots, length %i", async (length) => {
  const m = await loadKernelModule("relaxed");
  const k = m.exports as RowExports;
  const cols = padToBlock(length);
  const nb = cols / 32;
  const random = seededRandom(7000 + length);
  const rows = 4;
  const quants = randomQuants(random, rows * cols);
  const scales = Float32Array.from(randomF32(random, rows * nb), (v) => Math.abs(v) + 0.01);
  const { xq, xs } = quantizeModel(randomF32(random, cols));
  const expected = matvecQ8Model(quants, scales, xq, xs, rows, cols);
  // rows as bundles hold them: quants, then their scales, an uneven stride apart
  const stride = cols + nb * 4 + 48;
  const base = m.alloc(rows * stride);
  for (let r = 0; r < rows; r++) {
    m.i8(base + r * stride, cols).set(quants.subarray(r * cols, (r + 1) * cols));
    m.f32(base + r * stride + cols, nb).set(scales.subarray(r * nb, (r + 1) * nb));
  }
  const xqPointer = m.putI8(cols, xq);
  const xsPointer = m.putF32(nb, xs);
  const row = (r: number) => base + r * stride;
  const order = [2, 0, 3, 1];
  const selected = Float32Array.from(order, (r) => expected[r]);
  for (const dot of [1, 0]) {
    k.setMatvecRelaxed(dot);
    const out = m.putF32(4);
    k.dotRows4Q8(out, row(order[0]), row(order[1]), row(order[2]), row(order[3]), xqPointer, xsPointer, cols);
    expect(findBitMismatch(m.f32(out, 4).slice(), selected), `dotRows4Q8, ${dot ? "relaxed" : "exact"} dot`).toBeUndefined();
  }
  k.setMatvecRelaxed(1);
});

describeQ8Kernels("relaxed");
