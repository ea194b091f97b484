// Arithmetic peak of the exact int8 dot. One thread runs i32x4.dot_i16x8_s + i32x4.add pairs with
// nothing else to do. Each pair is 8 multiply-adds of widened int8 values, the step that the exact
// matrix kernels repeat (matvec_q8.ts, matmat_q8.ts), so its rate bounds their GOPS from above.
//
// Twelve independent chains keep the pairs in flight: each step sets
//
//   acc_k = acc_k + dot_i16x8_s(acc_k, ones)
//
// so a step of chain k needs the step before it, but no other chain. dot(acc, ones) adds the
// two signed 16-bit halves of each i32 lane. The function returns the wrapping i32 sum of every
// lane of every chain, so that the engine cannot drop the work.

/** Runs `steps` steps of the twelve chains above. Scalar reference for dotPeak. */
export function dotPeakRef(steps: i32): i32 {
  let sum: i32 = 0;
  for (let k = 0; k < 12; k++) {
    // the four lanes of a chain start equal and stay equal
    let lane: i32 = start(k);
    for (let s = 0; s < steps; s++) lane += <i32><i16>lane + <i32><i16>(lane >> 16);
    sum += 4 * lane;
  }
  return sum;
}

/** Returns the first value of chain k: odd multiples of 0x9e3779b9, so both 16-bit halves are busy. */
@inline function start(k: i32): i32 {
  return <i32>(0x9e3779b9 * <u32>(2 * k + 1));
}

@inline function step(acc: v128, ones: v128): v128 {
  return i32x4.add(acc, i32x4.dot_i16x8_s(acc, ones));
}

/** Runs `steps` steps of the twelve chains with SIMD and returns the same sum as dotPeakRef. */
export function dotPeak(steps: i32): i32 {
  const ones = i16x8.splat(1);
  let acc0 = i32x4.splat(start(0));
  let acc1 = i32x4.splat(start(1));
  let acc2 = i32x4.splat(start(2));
  let acc3 = i32x4.splat(start(3));
  let acc4 = i32x4.splat(start(4));
  let acc5 = i32x4.splat(start(5));
  let acc6 = i32x4.splat(start(6));
  let acc7 = i32x4.splat(start(7));
  let acc8 = i32x4.splat(start(8));
  let acc9 = i32x4.splat(start(9));
  let acc10 = i32x4.splat(start(10));
  let acc11 = i32x4.splat(start(11));

  for (let s = 0; s < steps; s++) {
    acc0 = step(acc0, ones);
    acc1 = step(acc1, ones);
    acc2 = step(acc2, ones);
    acc3 = step(acc3, ones);
    acc4 = step(acc4, ones);
    acc5 = step(acc5, ones);
    acc6 = step(acc6, ones);
    acc7 = step(acc7, ones);
    acc8 = step(acc8, ones);
    acc9 = step(acc9, ones);
    acc10 = step(acc10, ones);
    acc11 = step(acc11, ones);
  }

  let total = i32x4.add(i32x4.add(i32x4.add(acc0, acc1), i32x4.add(acc2, acc3)), i32x4.add(i32x4.add(acc4, acc5), i32x4.add(acc6, acc7)));
  total = i32x4.add(total, i32x4.add(i32x4.add(acc8, acc9), i32x4.add(acc10, acc11)));
  return i32x4.extract_lane(total, 0) + i32x4.extract_lane(total, 1) + i32x4.extract_lane(total, 2) + i32x4.extract_lane(total, 3);
}
