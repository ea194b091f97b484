// The two halves of one attention head over its past positions, each over many positions per
// call: the scores q · k_t, and the sum of the value rows weighted by the softmaxed scores.
//
// Each kernel performs the f32 steps of the per-position helpers it replaces (dotF32 on each key,
// axpyF32 of each value row into a zeroed output), element by element in the same order, so the
// logits stay bit-identical. They are faster because four keys share each load of q, and the
// output stays in registers over all positions instead of being loaded and stored once per
// position.
//
//   keys, values: row t at base + t · stride f32; q and out: n f32

/** Sums the lanes as dotF32 does: (l0 + l2) + (l1 + l3). */
@inline
function sumLanes(v: v128): f32 {
  const t = f32x4.add(v, v128.shuffle<i32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1);
}

/**
 * Writes scores[t] = (q · k_t) · scale for t < count with the f32 steps of dotF32: four lane
 * sums over the first n & ~3 elements, combined as (l0 + l2) + (l1 + l3), then the rest added
 * one by one. Scalar reference.
 */
export function attentionScoresRef(scores: usize, q: usize, keys: usize, stride: i32, count: i32, n: i32, scale: f32): void {
  const n4 = n & ~3;
  for (let t = 0; t < count; t++) {
    const k = keys + ((<usize>t * <usize>stride) << 2);
    let l0: f32 = 0;
    let l1: f32 = 0;
    let l2: f32 = 0;
    let l3: f32 = 0;
    for (let i = 0; i < n4; i += 4) {
      const offset = <usize>i << 2;
      l0 += load<f32>(q + offset) * load<f32>(k + offset);
      l1 += load<f32>(q + offset, 4) * load<f32>(k + offset, 4);
      l2 += load<f32>(q + offset, 8) * load<f32>(k + offset, 8);
      l3 += load<f32>(q + offset, 12) * load<f32>(k + offset, 12);
    }
    let sum = (l0 + l2) + (l1 + l3);
    for (let i = n4; i < n; i++) {
      const offset = <usize>i << 2;
      sum += load<f32>(q + offset) * load<f32>(k + offset);
    }
    store<f32>(scores + (<usize>t << 2), sum * scale);
  }
}

/** Same as attentionScoresRef with simd128, four positions per pass. Bit-identical. */
export function attentionScores(scores: usize, q: usize, keys: usize, stride: i32, count: i32, n: i32, scale: f32): void {
  const n4 = n & ~3;
  const rowBytes = <usize>stride << 2;
  let t = 0;
  for (; t + 4 <= count; t += 4) {
    const k0 = keys + <usize>t * rowBytes;
    const k1 = k0 + rowBytes;
    const k2 = k1 + rowBytes;
    const k3 = k2 + rowBytes;
    let acc0 = f32x4.splat(0);
    let acc1 = f32x4.splat(0);
    let acc2 = f32x4.splat(0);
    let acc3 = f32x4.splat(0);
    for (let i = 0; i < n4; i += 4) {
      const offset = <usize>i << 2;
      const qv = v128.load(q + offset);
      acc0 = f32x4.add(acc0, f32x4.mul(qv, v128.load(k0 + offset)));
      acc1 = f32x4.add(acc1, f32x4.mul(qv, v128.load(k1 + offset)));
      acc2 = f32x4.add(acc2, f32x4.mul(qv, v128.load(k2 + offset)));
      acc3 = f32x4.add(acc3, f32x4.mul(qv, v128.load(k3 + offset)));
    }
    let s0 = sumLanes(acc0);
    let s1 = sumLanes(acc1);
    let s2 = sumLanes(acc2);
    let s3 = sumLanes(acc3);
    for (let i = n4; i < n; i++) {
      const offset = <usize>i << 2;
      const qi = load<f32>(q + offset);
      s0 += qi * load<f32>(k0 + offset);
      s1 += qi * load<f32>(k1 + offset);
      s2 += qi * load<f32>(k2 + offset);
      s3 += qi * load<f32>(k3 + offset);
    }
    const out = scores + (<usize>t << 2);
    store<f32>(out, s0 * scale);
    store<f32>(out, s1 * scale, 4);
    store<f32>(out, s2 * scale, 8);
    store<f32>(out, s3 * scale, 12);
  }
  for (; t < count; t++) {
    const k = keys + <usize>t * rowBytes;
    let acc = f32x4.splat(0);
    for (let i = 0; i < n4; i += 4) {
      const offset = <usize>i << 2;
      acc = f32x4.add(acc, f32x4.mul(v128.load(q + offset), v128.load(k + offset)));
    }
    let sum = sumLanes(acc);
    for (let i = n4; i < n; i++) {
      const offset = <usize>i << 2;
      sum += load<f32>(q + offset) * load<f32>(k + offset);
    }
    store<f32>(scores + (<usize>t << 2), sum * scale);
  }
}

/** Writes out[i] = Σ_t weights[t] · v_t[i] for i < n, adding to 0 in increasing t. Scalar reference. */
export function attentionValuesRef(out: usize, weights: usize, values: usize, stride: i32, count: i32, n: i32): void {
  for (let i = 0; i < n; i++) {
    let acc: f32 = 0;
    for (let t = 0; t < count; t++) {
      acc += load<f32>(weights + (<usize>t << 2)) * load<f32>(values + ((<usize>t * <usize>stride + <usize>i) << 2));
    }
    store<f32>(out + (<usize>i << 2), acc);
  }
}

/**
 * Same as attentionValuesRef with simd128: 32 outputs at a time stay in eight accumulators while
 * every position adds to them. Bit-identical.
 */
export function attentionValues(out: usize, weights: usize, values: usize, stride: i32, count: i32, n: i32): void {
  const rowBytes = <usize>stride << 2;
  let i = 0;
  for (; i + 32 <= n; i += 32) {
    let acc0 = f32x4.splat(0);
    let acc1 = f32x4.splat(0);
    let acc2 = f32x4.splat(0);
    let acc3 = f32x4.splat(0);
    let acc4 = f32x4.splat(0);
    let acc5 = f32x4.splat(0);
    let acc6 = f32x4.splat(0);
    let acc7 = f32x4.splat(0);
    let v = values + (<usize>i << 2);
    for (let t = 0; t < count; t++) {
      const w = v128.load32_splat(weights + (<usize>t << 2));
      acc0 = f32x4.add(acc0, f32x4.mul(w, v128.load(v)));
      acc1 = f32x4.add(acc1, f32x4.mul(w, v128.load(v, 16)));
      acc2 = f32x4.add(acc2, f32x4.mul(w, v128.load(v, 32)));
      acc3 = f32x4.add(acc3, f32x4.mul(w, v128.load(v, 48)));
      acc4 = f32x4.add(acc4, f32x4.mul(w, v128.load(v, 64)));
      acc5 = f32x4.add(acc5, f32x4.mul(w, v128.load(v, 80)));
      acc6 = f32x4.add(acc6, f32x4.mul(w, v128.load(v, 96)));
      acc7 = f32x4.add(acc7, f32x4.mul(w, v128.load(v, 112)));
      v += rowBytes;
    }
    const o = out + (<usize>i << 2);
    v128.store(o, acc0);
    v128.store(o, acc1, 16);
    v128.store(o, acc2, 32);
    v128.store(o, acc3, 48);
    v128.store(o, acc4, 64);
    v128.store(o, acc5, 80);
    v128.store(o, acc6, 96);
    v128.store(o, acc7, 112);
  }
  for (; i + 4 <= n; i += 4) {
    let acc = f32x4.splat(0);
    let v = values + (<usize>i << 2);
    for (let t = 0; t < count; t++) {
      acc = f32x4.add(acc, f32x4.mul(v128.load32_splat(weights + (<usize>t << 2)), v128.load(v)));
      v += rowBytes;
    }
    v128.store(out + (<usize>i << 2), acc);
  }
  for (; i < n; i++) {
    let acc: f32 = 0;
    for (let t = 0; t < count; t++) {
      acc += load<f32>(weights + (<usize>t << 2)) * load<f32>(values + ((<usize>t * <usize>stride + <usize>i) << 2));
    }
    store<f32>(out + (<usize>i << 2), acc);
  }
}
