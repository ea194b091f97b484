// f32 vector operations of the forward pass: norm, softmax, dot, axpy, residual add, SwiGLU, RoPE.
//
// All vectors are f32 arrays of n values. Element-wise kernels give the same bits in their simd128
// and scalar forms because each lane does the same IEEE operations. Reductions (rmsnorm, dotF32)
// sum four lanes separately, so they differ from their left-to-right references by rounding only.
// Transcendentals use Mathf (compiled into the module, no host Math), so every engine gets the same bits.

export { dequantizeRowQ8, dequantizeRowQ8Ref } from "./quantize";

@inline
function sumLanesF32(v: v128): f32 {
  const t = f32x4.add(v, v128.shuffle<i32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1);
}

/** Computes out = weight · (x / rms(x)), rms = sqrt(mean(x²) + eps), as llama2.c does. Scalar reference. out may equal x. */
export function rmsnormRef(out: usize, x: usize, weight: usize, n: i32, eps: f32): void {
  let ss: f32 = 0;
  for (let i = 0; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    ss += v * v;
  }
  ss = ss / <f32>n + eps;
  ss = <f32>1 / Mathf.sqrt(ss);

  for (let i = 0; i < n; i++) {
    const offset = <usize>i << 2;
    store<f32>(out + offset, load<f32>(weight + offset) * (ss * load<f32>(x + offset)));
  }
}

/** Computes out = weight · (x / rms(x)) with simd128. Matches rmsnormRef up to the rounding of Σx². out may equal x. */
export function rmsnorm(out: usize, x: usize, weight: usize, n: i32, eps: f32): void {
  const n4 = n & ~3;

  let acc = f32x4.splat(0);
  let i = 0;
  for (; i < n4; i += 4) {
    const v = v128.load(x + (<usize>i << 2));
    acc = f32x4.add(acc, f32x4.mul(v, v));
  }
  let ss = sumLanesF32(acc);
  for (; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    ss += v * v;
  }
  ss = ss / <f32>n + eps;
  ss = <f32>1 / Mathf.sqrt(ss);

  const ssv = f32x4.splat(ss);
  i = 0;
  for (; i < n4; i += 4) {
    const offset = <usize>i << 2;
    v128.store(out + offset, f32x4.mul(v128.load(weight + offset), f32x4.mul(ssv, v128.load(x + offset))));
  }
  for (; i < n; i++) {
    const offset = <usize>i << 2;
    store<f32>(out + offset, load<f32>(weight + offset) * (ss * load<f32>(x + offset)));
  }
}

/** Replaces x (n ≥ 1 values) by softmax(x), subtracting the max first so exp cannot overflow. */
export function softmax(x: usize, n: i32): void {
  let maxValue = load<f32>(x);
  for (let i = 1; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    if (v > maxValue) maxValue = v;
  }

  let sum: f32 = 0;
  for (let i = 0; i < n; i++) {
    const offset = <usize>i << 2;
    const e = Mathf.exp(load<f32>(x + offset) - maxValue);
    store<f32>(x + offset, e);
    sum += e;
  }

  for (let i = 0; i < n; i++) {
    const offset = <usize>i << 2;
    store<f32>(x + offset, load<f32>(x + offset) / sum);
  }
}

/** Returns Σ a[i] · b[i], summed left to right. Scalar reference. */
export function dotF32Ref(a: usize, b: usize, n: i32): f32 {
  let sum: f32 = 0;
  for (let i = 0; i < n; i++) {
    const offset = <usize>i << 2;
    sum += load<f32>(a + offset) * load<f32>(b + offset);
  }
  return sum;
}

/** Returns Σ a[i] · b[i] with simd128 (four lane sums, then the tail). Matches dotF32Ref up to rounding. */
export function dotF32(a: usize, b: usize, n: i32): f32 {
  const n4 = n & ~3;

  let acc = f32x4.splat(0);
  let i = 0;
  for (; i < n4; i += 4) {
    const offset = <usize>i << 2;
    acc = f32x4.add(acc, f32x4.mul(v128.load(a + offset), v128.load(b + offset)));
  }
  let sum = sumLanesF32(acc);
  for (; i < n; i++) {
    const offset = <usize>i << 2;
    sum += load<f32>(a + offset) * load<f32>(b + offset);
  }
  return sum;
}

/** Adds a · x to y element-wise (no fused multiply-add). Scalar reference. */
export function axpyF32Ref(y: usize, a: f32, x: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const offset = <usize>i << 2;
    store<f32>(y + offset, load<f32>(y + offset) + a * load<f32>(x + offset));
  }
}

/** Adds a · x to y element-wise with simd128, bit-identical to axpyF32Ref. */
export function axpyF32(y: usize, a: f32, x: usize, n: i32): void {
  const n4 = n & ~3;
  const av = f32x4.splat(a);

  let i = 0;
  for (; i < n4; i += 4) {
    const offset = <usize>i << 2;
    v128.store(y + offset, f32x4.add(v128.load(y + offset), f32x4.mul(av, v128.load(x + offset))));
  }
  for (; i < n; i++) {
    const offset = <usize>i << 2;
    store<f32>(y + offset, load<f32>(y + offset) + a * load<f32>(x + offset));
  }
}

/** Adds x to y element-wise. Scalar reference. */
export function addF32Ref(y: usize, x: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const offset = <usize>i << 2;
    store<f32>(y + offset, load<f32>(y + offset) + load<f32>(x + offset));
  }
}

/** Adds x to y element-wise with simd128, bit-identical to addF32Ref. */
export function addF32(y: usize, x: usize, n: i32): void {
  const n4 = n & ~3;

  let i = 0;
  for (; i < n4; i += 4) {
    const offset = <usize>i << 2;
    v128.store(y + offset, f32x4.add(v128.load(y + offset), v128.load(x + offset)));
  }
  for (; i < n; i++) {
    const offset = <usize>i << 2;
    store<f32>(y + offset, load<f32>(y + offset) + load<f32>(x + offset));
  }
}

/**
 * Replaces gate by silu(gate) · up, silu(v) = v / (1 + e^-v). Computed as v · (1 / (1 + e^-v)),
 * llama2.c's operation order, so f32 results match its logits.
 */
export function swiglu(gate: usize, up: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const offset = <usize>i << 2;
    let v = load<f32>(gate + offset);
    v *= <f32>1 / (<f32>1 + Mathf.exp(-v));
    v *= load<f32>(up + offset);
    store<f32>(gate + offset, v);
  }
}

/**
 * Rotates the adjacent pairs (v[2i], v[2i+1]) of each of headCount heads of head_size values by
 * pos · θ^(-2i / head_size), with llama2.c's f32 steps: freq = 1 / powf(θ, 2i / head_size), then
 * cosf and sinf of pos · freq. head_size must be even.
 */
export function ropeAdjacent(vec: usize, headCount: i32, head_size: i32, pos: i32, theta: f32): void {
  // the angle depends only on the pair index, so each cos/sin pair serves every head
  for (let i = 0; i < head_size; i += 2) {
    const freq = <f32>1 / Mathf.pow(theta, <f32>i / <f32>head_size);
    const angle = <f32>pos * freq;
    const cosAngle = Mathf.cos(angle);
    const sinAngle = Mathf.sin(angle);

    for (let h = 0; h < headCount; h++) {
      const pair = vec + ((<usize>h * <usize>head_size + <usize>i) << 2);
      const v0 = load<f32>(pair);
      const v1 = load<f32>(pair, 4);
      store<f32>(pair, v0 * cosAngle - v1 * sinAngle);
      store<f32>(pair, v0 * sinAngle + v1 * cosAngle, 4);
    }
  }
}

/**
 * Rotates the pairs (v[j], v[j + head_size/2]) of each of headCount heads by pos · θ^(-2j / head_size):
 * the "NEOX" rope of GPT-NeoX-style checkpoints (Qwen2, and Llama checkpoints converted without
 * the Q/K row permutation). Same angles and f32 steps as ropeAdjacent; only the pairing differs.
 */
export function ropeHalves(vec: usize, headCount: i32, head_size: i32, pos: i32, theta: f32): void {
  const half = head_size >> 1;
  for (let j = 0; j < half; j++) {
    const freq = <f32>1 / Mathf.pow(theta, <f32>(j << 1) / <f32>head_size);
    const angle = <f32>pos * freq;
    const cosAngle = Mathf.cos(angle);
    const sinAngle = Mathf.sin(angle);

    for (let h = 0; h < headCount; h++) {
      const first = vec + ((<usize>h * <usize>head_size + <usize>j) << 2);
      const second = first + (<usize>half << 2);
      const v0 = load<f32>(first);
      const v1 = load<f32>(second);
      store<f32>(first, v0 * cosAngle - v1 * sinAngle);
      store<f32>(second, v0 * sinAngle + v1 * cosAngle);
    }
  }
}

/**
 * Rotates like ropeAdjacent (or like ropeHalves when halves is 1), with llama.cpp's RoPE scaling.
 * The angle is pos · freqScale · θ^(-2i / head_size) / factors[i]. freqScale is 1 / (linear
 * scaling factor), and factors (head_size / 2 f32, or 0 for none) are the per-pair frequency
 * factors of a `rope_freqs.weight` tensor (Llama 3.1 and later).
 */
export function ropeScaled(vec: usize, headCount: i32, head_size: i32, pos: i32, theta: f32, halves: i32, freqScale: f32, factors: usize): void {
  const half = head_size >> 1;
  for (let j = 0; j < half; j++) {
    let freq = <f32>1 / Mathf.pow(theta, <f32>(j << 1) / <f32>head_size);
    if (factors != 0) freq /= load<f32>(factors + (<usize>j << 2));
    const angle = <f32>pos * freqScale * freq;
    const cosAngle = Mathf.cos(angle);
    const sinAngle = Mathf.sin(angle);

    for (let h = 0; h < headCount; h++) {
      const base = vec + ((<usize>h * <usize>head_size) << 2);
      const first = base + (<usize>(halves ? j : j << 1) << 2);
      const second = first + (halves ? <usize>half << 2 : 4);
      const v0 = load<f32>(first);
      const v1 = load<f32>(second);
      store<f32>(first, v0 * cosAngle - v1 * sinAngle);
      store<f32>(second, v0 * sinAngle + v1 * cosAngle);
    }
  }
}
