// Sparse FFN speed on a stories110M-shaped model with random weights: FFN time and decode
// tokens/s with a fixed fraction of neurons kept, against the dense int8 model.
//
//   npm run build && node bench/sparse.mjs [--runs 5] [--tokens 32]
//
// Random weights give no meaningful predictor, so the predictor here is random too (its cost is
// real: rank × (dim + hidden_dim) multiply-adds); its cutoff is set so that the candidate set
// is 10% larger than the kept set, and τ_l so that the kept fraction hits the target. The
// quality of the predictor is measured on the real model by `dormant eval`, not here.

import os from "node:os";
import { createModel } from "../dist/index.js";
import { SHAPES, syntheticModel } from "./synthetic.mjs";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(args[at + 1]);
};
const runs = option("runs", 5);
const tokens = option("tokens", 32);
const RANK = 96;
const KEEP = [0.5, 0.1];

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

const silu = (v) => v / (1 + Math.exp(-v));

/** Value below which a `fraction` of `values` falls. */
function quantile(values, fraction) {
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))];
}

function randomPredictor(shape, seed) {
  let state = seed;
  const random = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  };
  const fill = (n, scale) => Float32Array.from({ length: n }, () => random() * scale);
  return {
    down: Array.from({ length: shape.n_layers }, () => fill(RANK * shape.dim, 0.05)),
    up: Array.from({ length: shape.n_layers }, () => fill(shape.hidden_dim * RANK, 0.05)),
  };
}

/** Median decode tokens/s of greedy generation from BOS. */
async function decodeSpeed(model) {
  const speeds = [];
  for (let run = 0; run <= runs; run++) {
    const iterator = model.generate([1], { maxTokens: tokens, temperature: 0, stopAtEos: false });
    let next;
    do next = await iterator.next(); while (!next.done);
    if (run > 0) speeds.push(next.value.tokensPerSecond);
  }
  return median(speeds);
}

/**
 * Median milliseconds of all layers' FFNs on traced inputs, per token. Layers run in turn, as in
 * decode, so each layer's weights come from memory, not from a cache warmed by repetition.
 */
function ffnTime(model, inputs) {
  const times = [];
  for (let run = 0; run < runs * 10; run++) {
    let total = 0;
    for (let l = 0; l < inputs.length; l++) total += model.timeFfn(l, inputs[l], 1);
    times.push(total);
  }
  return median(times);
}

const shape = SHAPES.stories110M;
const file = syntheticModel("stories110M", shape);
const options = { precision: "int8", contextLength: tokens + 16 };

const dense = await createModel(file, { ...options, sparsity: null });
// FFN inputs of every layer at position 3 of a fixed token sequence
for (const [pos, token] of [1, 500, 9000].entries()) dense.step(token, pos);
const traced = dense.traceStep(1234, 3);
const inputs = Array.from({ length: shape.n_layers }, (_, l) => traced.ffnInput(l).slice());
const gates = Array.from({ length: shape.n_layers }, (_, l) => traced.gate(l).slice());
const denseFfn = ffnTime(dense, inputs);
const denseDecode = await decodeSpeed(dense);
dense.dispose();

console.log(`# sparse FFN, stories110M shape (dim ${shape.dim}, hidden ${shape.hidden_dim}, ${shape.n_layers} layers), int8, one thread`);
console.log(`# ${os.cpus()[0].model}, Node ${process.version}, predictor rank ${RANK}, median of ${runs} runs`);
console.log("setting              candidates  kept   FFN ms/token  FFN ratio  decode tok/s  decode ratio");
console.log(`dense int8           1.000       1.000  ${denseFfn.toFixed(3).padStart(12)}  ${"1.00".padStart(9)}  ${denseDecode.toFixed(1).padStart(12)}  ${"1.00".padStart(12)}`);

const predictor = randomPredictor(shape, 7);
for (const keep of KEEP) {
  // cutoff: the top (1.1 · keep) of |act(ĝ)| on the traced input; τ: keep `keep` overall
  const cutoffs = new Float32Array(shape.n_layers);
  const thresholds = new Float32Array(shape.n_layers);
  for (let l = 0; l < shape.n_layers; l++) {
    const z = new Float64Array(RANK);
    for (let r = 0; r < RANK; r++) {
      let sum = 0;
      for (let i = 0; i < shape.dim; i++) sum += predictor.down[l][r * shape.dim + i] * inputs[l][i];
      z[r] = sum;
    }
    const predicted = new Float64Array(shape.hidden_dim);
    for (let j = 0; j < shape.hidden_dim; j++) {
      let sum = 0;
      for (let r = 0; r < RANK; r++) sum += predictor.up[l][j * RANK + r] * z[r];
      predicted[j] = Math.abs(silu(sum));
    }
    const candidateFraction = Math.min(1, keep * 1.1);
    cutoffs[l] = quantile(predicted, 1 - candidateFraction);
    const candidateMagnitudes = [];
    for (let j = 0; j < shape.hidden_dim; j++) if (predicted[j] >= cutoffs[l]) candidateMagnitudes.push(Math.abs(silu(gates[l][j])));
    thresholds[l] = quantile(candidateMagnitudes, 1 - keep / candidateFraction);
  }
  const sparse = await createModel(file, {
    ...options,
    sparsity: { rank: RANK, thresholds, cutoffs, predictorDown: predictor.down, predictorUp: predictor.up },
  });
  sparse.resetStats();
  const ffn = ffnTime(sparse, inputs);
  const layers = sparse.layerStats();
  const candidates = layers.reduce((sum, layer) => sum + layer.candidateFraction, 0) / layers.length;
  const kept = layers.reduce((sum, layer) => sum + layer.keptFraction, 0) / layers.length;
  const decode = await decodeSpeed(sparse);
  console.log(
    `predicted, keep ${keep.toFixed(2)}  ${candidates.toFixed(3)}       ${kept.toFixed(3)}  ${ffn.toFixed(3).padStart(12)}  ` +
    `${(ffn / denseFfn).toFixed(2).padStart(9)}  ${decode.toFixed(1).padStart(12)}  ${(decode / denseDecode).toFixed(2).padStart(12)}`,
  );
  sparse.dispose();
}
