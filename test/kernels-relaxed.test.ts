// int8 kernel tests on the module built with --enable relaxed-simd. Node 20 runs it only with V8
// flags, which vitest.config.ts passes to this file's worker process (project "relaxed").

import { expect, test } from "vitest";
import { describeQ8Kernels } from "./q8-cases.js";
import { loadKernelModule } from "./wasm-harness.js";

test("relaxed module uses relaxed dot", async () => {
  const m = await loadKernelModule("relaxed");
  // i32x4.relaxed_dot_i8x16_i7x16_add_s is opcode 0xfd 0x113, LEB128-encoded as fd 93 02
  const opcode = Buffer.from([0xfd, 0x93, 0x02]);
  expect(Buffer.from(m.bytes).includes(opcode)).toBe(true);
});

describeQ8Kernels("relaxed");
