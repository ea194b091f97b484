// Test module entry (asconfig target "test"): every kernel beside its scalar reference, plus an
// allocator so tests can place inputs in linear memory. The release module does not include this file.

import { arenaAlloc, arenaReset } from "./memory";

export { matvecF32, matvecF32Ref } from "./kernels/matvec_f32";
export { quantizeQ8, quantizeQ8Ref, dequantizeRowQ8, dequantizeRowQ8Ref } from "./kernels/quantize";
export { matvecQ8, matvecQ8Ref, dotQ8SelfTest, matvecRelaxed, setMatvecRelaxed } from "./kernels/matvec_q8";
export { matmatQ8, matmatQ8Ref, matmatRelaxed, matmatScratchBytes, setMatmatRelaxed, setMatmatScratch } from "./kernels/matmat_q8";
export {
  rmsnorm,
  rmsnormRef,
  softmax,
  dotF32,
  dotF32Ref,
  axpyF32,
  axpyF32Ref,
  addF32,
  addF32Ref,
  swiglu,
  ropeAdjacent,
} from "./kernels/ops";

/** Arena budget for test inputs: 1 GiB, enough for a 4096 × 4096 f32 matrix several times over. */
const TEST_ARENA_BUDGET: u64 = 1 << 30;

let arenaReady = false;

/** Allocates size bytes, 64-byte aligned and zeroed. Returns 0 when the 1 GiB test budget is used up. */
export function alloc(size: i32): usize {
  if (!arenaReady) allocReset();
  return arenaAlloc(<u64>size);
}

/** Frees every allocation at once, so each test starts from an empty arena. */
export function allocReset(): void {
  arenaReset(TEST_ARENA_BUDGET);
  arenaReady = true;
}
export {
  dotRowQ8Ref,
  dotRows4Q8,
  dotRows4Q8Ref,
  downColumnsQ8,
  downColumnsQ8Ref,
  touchLines,
} from "./kernels/sparse_q8";
export { cutoffBounds, selectCandidates, selectCandidatesRef } from "./kernels/candidates";
export { readBytes, readBytesRef, readChunks, readChunksRef } from "./kernels/bandwidth";
export { dotPeak, dotPeakRef } from "./kernels/peak";
export { attentionScores, attentionScoresRef, attentionValues, attentionValuesRef } from "./kernels/attention";
