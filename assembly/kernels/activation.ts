// FFN activation functions, one scalar definition shared by the dense and the sparse FFN so
// both give the same bits. Kinds match the host's numbering in src/model.ts.

export const ACT_SILU: i32 = 0;
export const ACT_RELU: i32 = 1;
export const ACT_GELU: i32 = 2;

/** sqrt(2 / pi), for the tanh approximation of GELU that llama.cpp also uses. */
const GELU_COEF_A: f32 = 0.044715;
const SQRT_2_OVER_PI: f32 = 0.7978845608028654;

/** Returns act(v) for the activation kind: SiLU v·σ(v), ReLU max(0, v), or GELU (tanh approximation). */
@inline
export function activate(v: f32, kind: i32): f32 {
  if (kind == ACT_SILU) return v * (<f32>1 / (<f32>1 + Mathf.exp(-v)));
  if (kind == ACT_RELU) return v > 0 ? v : <f32>0;
  return <f32>0.5 * v * (<f32>1 + Mathf.tanh(SQRT_2_OVER_PI * v * (<f32>1 + GELU_COEF_A * v * v)));
}

/** Computes gate[i] = act(gate[i]) · up[i] (gated FFN) or act(gate[i]) (up = 0) for i < n. */
export function activateInPlace(gate: usize, up: usize, n: i32, kind: i32): void {
  for (let i = 0; i < n; i++) {
    const offset = <usize>i << 2;
    let v = activate(load<f32>(gate + offset), kind);
    if (up != 0) v *= load<f32>(up + offset);
    store<f32>(gate + offset, v);
  }
}
