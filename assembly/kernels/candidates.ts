// Candidate test of the sparse FFN: neuron j is a candidate when |act(ĝ_j)| ≥ cutoff, with ĝ the
// predicted gate pre-activation and act() from activation.ts.
//
// Evaluating act() costs an exp() or tanh() per neuron. |act| is monotone on each side of its
// minimum (SiLU: at ĝ ≈ -1.278, |act| ≤ 0.2785 for ĝ < 0; GELU: at ĝ ≈ -0.752), so the cutoff
// maps to intervals of ĝ. cutoffBounds() finds them in f64 for the value bounds cutoff · (1 ± 2^-10)
// and stores eight f32:
//
//   | sureHigh | sureNegLow | sureNegHigh | maybeHigh | maybeNegLow | maybeNegHigh | all | pad |
//
//   sure candidate:    v ≥ sureHigh   or  sureNegLow  ≤ v ≤ sureNegHigh
//   sure non-candidate: v < maybeHigh and not (maybeNegLow ≤ v ≤ maybeNegHigh)
//   otherwise act(v) is evaluated exactly; all = 1 makes every neuron a candidate (ReLU, cutoff ≤ 0)
//
// The f32 act() is within a few ulp (≤ 2^-21 relative) of the exact function wherever the bounds
// are used, far inside the 2^-10 margin, so selectCandidates() equals selectCandidatesRef() for
// every input. GELU's f32 form cancels in 1 + tanh() for negative v, so its negative side is
// always evaluated exactly.

import { ACT_GELU, ACT_RELU, ACT_SILU, activate } from "./activation";

const MARGIN: f64 = 1.0 / 1024;
/** Below this, |SiLU| is under 1.5e-33; candidates there are decided by evaluating act(). */
const SILU_LOW: f64 = -80;
const BOUND_SURE_HIGH: i32 = 0;
const BOUND_SURE_NEG_LOW: i32 = 1;
const BOUND_SURE_NEG_HIGH: i32 = 2;
const BOUND_MAYBE_HIGH: i32 = 3;
const BOUND_MAYBE_NEG_LOW: i32 = 4;
const BOUND_MAYBE_NEG_HIGH: i32 = 5;
const BOUND_ALL: i32 = 6;
/** f32 slots of one bounds record. */
export const BOUND_FIELDS: i32 = 8;

const GELU_COEF_A: f64 = <f64><f32>0.044715;
const SQRT_2_OVER_PI: f64 = <f64><f32>0.7978845608028654;

function activate64(v: f64, kind: i32): f64 {
  if (kind == ACT_SILU) return v / (1 + Math.exp(-v));
  return 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * v * (1 + GELU_COEF_A * v * v)));
}

// Returns the v in [lo, hi] where |act| crosses target, for |act| monotone there, and rising
// true when |act| grows with v. The result is within f64 rounding of the crossing.
function crossing(lo: f64, hi: f64, target: f64, kind: i32, rising: bool): f64 {
  for (let i = 0; i < 200; i++) {
    const mid = 0.5 * (lo + hi);
    if (mid == lo || mid == hi) break;
    if ((Math.abs(activate64(mid, kind)) >= target) == rising) hi = mid;
    else lo = mid;
  }
  return 0.5 * (lo + hi);
}

// Rounds x to f32 towards +∞ (up) or −∞ by a step far larger than f32 rounding, so the rounded
// bound stays on the safe side of x.
function outward(x: f64, up: bool): f32 {
  const step = Math.abs(x) * (1.0 / 1048576) + 1e-37;
  return <f32>(up ? x + step : x - step);
}

// Location of the SiLU minimum: the root of 1 + v · (1 − σ(v)) on [-4, -0.5].
function siluMinimum(): f64 {
  let lo: f64 = -4;
  let hi: f64 = -0.5;
  for (let i = 0; i < 200; i++) {
    const mid = 0.5 * (lo + hi);
    const sigma = 1 / (1 + Math.exp(-mid));
    if (1 + mid * (1 - sigma) > 0) hi = mid;
    else lo = mid;
  }
  return 0.5 * (lo + hi);
}

/** Writes the candidate bounds (BOUND_FIELDS f32, layout above) of `cutoff` for an activation kind. */
export function cutoffBounds(bounds: usize, cutoff: f32, kind: i32): void {
  const c = <f64>cutoff;
  const inf = Infinity;
  store<f32>(bounds + (BOUND_ALL << 2), 0);
  store<f32>(bounds + (BOUND_SURE_HIGH << 2), <f32>inf);
  setInterval(bounds, BOUND_SURE_NEG_LOW, inf, -inf);
  store<f32>(bounds + (BOUND_MAYBE_HIGH << 2), <f32>inf);
  setInterval(bounds, BOUND_MAYBE_NEG_LOW, inf, -inf);

  if (kind == ACT_RELU) {
    // |relu(v)| ≥ c is exactly v ≥ c for c > 0, and always true for c ≤ 0, NaN included
    if (c <= 0) store<f32>(bounds + (BOUND_ALL << 2), 1);
    store<f32>(bounds + (BOUND_SURE_HIGH << 2), cutoff);
    store<f32>(bounds + (BOUND_MAYBE_HIGH << 2), cutoff);
    return;
  }
  if (c <= 0) {
    // every finite v passes; ±∞ and NaN go to the exact test
    setInterval(bounds, BOUND_SURE_NEG_LOW, -<f64>f32.MAX_VALUE, <f64>f32.MAX_VALUE);
    setInterval(bounds, BOUND_MAYBE_NEG_LOW, -inf, inf);
    return;
  }

  // positive side: |act| rises from 0, and act(v) ≥ v / 2, so the crossing lies in [0, 2 · target]
  const sureValue = c * (1 + MARGIN);
  const maybeValue = c * (1 - MARGIN);
  store<f32>(bounds + (BOUND_SURE_HIGH << 2), outward(crossing(0, 2 * sureValue, sureValue, kind, true), true));
  store<f32>(bounds + (BOUND_MAYBE_HIGH << 2), outward(crossing(0, 2 * maybeValue, maybeValue, kind, true), false));
  if (kind == ACT_GELU) {
    setInterval(bounds, BOUND_MAYBE_NEG_LOW, -inf, 0);
    return;
  }

  // negative side of SiLU: |act| rises from SILU_LOW up to the minimum, then falls to 0 at v = 0
  const middle = siluMinimum();
  const peak = Math.abs(activate64(middle, kind));
  if (sureValue <= peak) {
    const low = Math.abs(activate64(SILU_LOW, kind)) >= sureValue ? SILU_LOW : crossing(SILU_LOW, middle, sureValue, kind, true);
    setInterval(bounds, BOUND_SURE_NEG_LOW, <f64>outward(low, true), <f64>outward(crossing(middle, 0, sureValue, kind, false), false));
  }
  if (maybeValue <= peak) {
    const low = Math.abs(activate64(SILU_LOW, kind)) >= maybeValue ? -inf : <f64>outward(crossing(SILU_LOW, middle, maybeValue, kind, true), false);
    setInterval(bounds, BOUND_MAYBE_NEG_LOW, low, <f64>outward(crossing(middle, 0, maybeValue, kind, false), true));
  }
}

@inline function setInterval(bounds: usize, field: i32, low: f64, high: f64): void {
  store<f32>(bounds + (<usize>field << 2), <f32>low);
  store<f32>(bounds + (<usize>(field + 1) << 2), <f32>high);
}

/**
 * Sets bit j % 32 of masks[j / 32] (u32) when |act(values[j])| ≥ cutoff, for j < n, and returns
 * the number of candidates. Bits of j ≥ n stay clear. Scalar reference.
 */
export function selectCandidatesRef(masks: usize, values: usize, n: i32, cutoff: f32, kind: i32): i32 {
  let count = 0;
  for (let b = 0; b < (n + 31) >> 5; b++) {
    let mask: u32 = 0;
    for (let k = 0; k < 32 && (b << 5) + k < n; k++) {
      const v = load<f32>(values + (<usize>((b << 5) + k) << 2));
      if (Mathf.abs(activate(v, kind)) >= cutoff) mask |= <u32>1 << k;
    }
    store<u32>(masks + (<usize>b << 2), mask);
    count += popcnt(mask);
  }
  return count;
}

/**
 * Same as selectCandidatesRef with simd128 compares against `bounds` from cutoffBounds(cutoff,
 * kind), so only values inside the margins run act(). values must have n rounded up to 32 readable f32.
 */
export function selectCandidates(masks: usize, values: usize, n: i32, cutoff: f32, kind: i32, bounds: usize): i32 {
  const all = load<f32>(bounds + (BOUND_ALL << 2)) != 0;
  const sureHigh = v128.load32_splat(bounds + (BOUND_SURE_HIGH << 2));
  const sureNegLow = v128.load32_splat(bounds + (BOUND_SURE_NEG_LOW << 2));
  const sureNegHigh = v128.load32_splat(bounds + (BOUND_SURE_NEG_HIGH << 2));
  const maybeHigh = v128.load32_splat(bounds + (BOUND_MAYBE_HIGH << 2));
  const maybeNegLow = v128.load32_splat(bounds + (BOUND_MAYBE_NEG_LOW << 2));
  const maybeNegHigh = v128.load32_splat(bounds + (BOUND_MAYBE_NEG_HIGH << 2));
  let count = 0;

  for (let b = 0; b < (n + 31) >> 5; b++) {
    const block = values + (<usize>b << 7);
    let mask: u32 = 0;
    let exact: u32 = 0;
    for (let g = 0; g < 8; g++) {
      const v = v128.load(block + (<usize>g << 4));
      const sure = v128.or(f32x4.ge(v, sureHigh), v128.and(f32x4.ge(v, sureNegLow), f32x4.le(v, sureNegHigh)));
      const maybe = v128.or(f32x4.ge(v, maybeHigh), v128.and(f32x4.ge(v, maybeNegLow), f32x4.le(v, maybeNegHigh)));
      mask |= <u32>i32x4.bitmask(sure) << (g << 2);
      exact |= <u32>i32x4.bitmask(v128.andnot(maybe, sure)) << (g << 2);
    }
    const valid = n - (b << 5) >= 32 ? <u32>0xffffffff : (<u32>1 << <u32>(n - (b << 5))) - 1;
    if (all) mask = 0xffffffff;
    else {
      exact &= valid;
      while (exact != 0) {
        const k = ctz(exact);
        exact &= exact - 1;
        if (Mathf.abs(activate(load<f32>(block + (<usize>k << 2)), kind)) >= cutoff) mask |= <u32>1 << k;
      }
    }
    mask &= valid;
    store<u32>(masks + (<usize>b << 2), mask);
    count += popcnt(mask);
  }
  return count;
}
