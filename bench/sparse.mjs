// Sparse FFN speed on a stories110M-shaped model with random weights: FFN time and decode
// tokens/s with a fixed fraction of neurons kept, against the dense int8 model.
//
//   npm run build && node bench/sparse.mjs [--runs 5] [--tokens 32] [--threads 1]
//
// Random weights give no meaningful predictor, so the predictor here is random too, though its
// cost of rank × (dim + hidden_dim) multiply-adds is real (forcedSparsity in src/bench.ts). Its
// cutoff makes the candidate set 10% larger than the kept set, and τ_l makes the kept fraction
// hit the target. The quality of the predictor is measured on the real model by `dormant eval`.
//
// FFN time is cold-cache: every pass runs the 12 layers in turn, as decode does, on the traced
// inputs of one of INPUT_POSITIONS positions in rotation. Each input selects other neurons, so
// the rows of one pass are not left in the last-level cache by the pass before (with a single
// input, the 10% setting measured about 20% less time). Passes and generations of each setting
// alternate with the dense model's, and the ratios compare those pairs.

import os from "node:os";
import { createModel, forcedSparsity } from "../dist/index.js";
import { SHAPES, syntheticModel } from "./synthetic.mjs";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(args[at + 1]);
};
const runs = option("runs", 5);
const tokens = option("tokens", 32);
const threads = option("threads", 1);
const KEEP = [0.5, 0.3, 0.1];
/** Positions whose FFN inputs the cold passes rotate through. */
const INPUT_POSITIONS = 8;
/** Cold passes per run and input position. */
const PASSES = 2;

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

/** Tokens/s of one greedy generation from BOS. */
async function decodeSpeed(model) {
  const iterator = model.generate([1], { maxTokens: tokens, temperature: 0, stopAtEos: false });
  let next;
  do next = await iterator.next(); while (!next.done);
  return next.value.tokensPerSecond;
}

/** Milliseconds of all layers' FFNs for one token, layers in turn, on the inputs of `pass`. */
function ffnPass(model, pass) {
  const inputs = inputSets[pass % inputSets.length];
  let total = 0;
  for (let l = 0; l < inputs.length; l++) total += model.timeFfn(l, inputs[l], 1);
  return total;
}

/**
 * Medians of FFN time and decode speed of `model` and of the dense model, measured in
 * alternation so that both see the same machine load and each pass starts from caches that
 * the other model has filled.
 */
async function measurePair(model) {
  const ffn = { model: [], dense: [] };
  const decode = { model: [], dense: [] };
  for (let pass = 0; pass < runs * PASSES * inputSets.length; pass++) {
    ffn.dense.push(ffnPass(dense, pass));
    ffn.model.push(ffnPass(model, pass));
  }
  await decodeSpeed(dense);
  await decodeSpeed(model);
  for (let run = 0; run < runs; run++) {
    decode.dense.push(await decodeSpeed(dense));
    decode.model.push(await decodeSpeed(model));
  }
  return {
    ffn: median(ffn.model), denseFfn: median(ffn.dense),
    decode: median(decode.model), denseDecode: median(decode.dense),
  };
}

const shape = SHAPES.stories110M;
const file = syntheticModel("stories110M", shape);
const options = { precision: "int8", contextLength: Math.max(tokens, INPUT_POSITIONS + 3) + 16, threads };

const dense = await createModel(file, { ...options, sparsity: null });
// FFN inputs and gates of every layer at positions 3, 4, ... of a fixed token sequence
const sequence = [1, 500, 9000, 1234, 77, 4242, 31000, 8, 900, 15000, 2222];
for (let pos = 0; pos < 3; pos++) dense.step(sequence[pos], pos);
const inputSets = [];
for (let pos = 3; pos < 3 + INPUT_POSITIONS; pos++) {
  const traced = dense.traceStep(sequence[pos % sequence.length], pos);
  inputSets.push(Array.from({ length: shape.n_layers }, (_, l) => traced.ffnInput(l).slice()));
}

const rows = [];
const denseSamples = { ffn: [], decode: [] };
for (const keep of KEEP) {
  const sparse = await createModel(file, { ...options, sparsity: forcedSparsity(dense, keep) });
  sparse.resetStats();
  for (let pass = 0; pass < inputSets.length; pass++) ffnPass(sparse, pass);
  const layers = sparse.layerStats();
  const candidates = layers.reduce((sum, layer) => sum + layer.candidateFraction, 0) / layers.length;
  const kept = layers.reduce((sum, layer) => sum + layer.keptFraction, 0) / layers.length;
  const measured = await measurePair(sparse);
  denseSamples.ffn.push(measured.denseFfn);
  denseSamples.decode.push(measured.denseDecode);
  rows.push({ keep, candidates, kept, ...measured });
  sparse.dispose();
}

console.log(`# sparse FFN, stories110M shape (dim ${shape.dim}, hidden ${shape.hidden_dim}, ${shape.n_layers} layers), int8, ${dense.stats().threads} thread(s)`);
console.log(`# ${os.cpus()[0].model}, Node ${process.version}, predictor rank 96, medians of ${runs} runs, ${INPUT_POSITIONS} inputs in rotation`);
console.log("# ratios against the dense model measured in alternation with each setting");
console.log("setting              candidates  kept   FFN ms/token  FFN ratio  decode tok/s  decode ratio");
console.log(`dense int8           1.000       1.000  ${median(denseSamples.ffn).toFixed(3).padStart(12)}  ${"1.00".padStart(9)}  ${median(denseSamples.decode).toFixed(1).padStart(12)}  ${"1.00".padStart(12)}`);
for (const row of rows) {
  console.log(
    `predicted, keep ${row.keep.toFixed(2)}  ${row.candidates.toFixed(3)}       ${row.kept.toFixed(3)}  ${row.ffn.toFixed(3).padStart(12)}  ` +
    `${(row.ffn / row.denseFfn).toFixed(2).padStart(9)}  ${row.decode.toFixed(1).padStart(12)}  ${(row.decode / row.denseDecode).toFixed(2).padStart(12)}`,
  );
}
