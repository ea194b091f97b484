// Cold-cache FFN time per token of the stories110M shape in each FFN mode, to locate where the
// sparse path spends its time. Prints one line per setting.
//
//   npm run build && node bench/ffn-modes.mjs

import { createModel } from "../dist/index.js";
import { SHAPES, syntheticModel } from "./synthetic.mjs";
const shape = SHAPES.stories110M, RANK = 96;
const file = syntheticModel("s", shape);
const fill = (n) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 0.05);
const pred = { rank: RANK, thresholds: new Float32Array(12), cutoffs: new Float32Array(12).fill(1e9),
  predictorDown: Array.from({ length: 12 }, () => fill(RANK * 768)), predictorUp: Array.from({ length: 12 }, () => fill(2048 * RANK)) };
const m = await createModel(file, { contextLength: 40, sparsity: pred });
m.step(1, 0);
const t = m.traceStep(5, 1);
const inputs = Array.from({ length: 12 }, (_, l) => t.ffnInput(l).slice());
function cold() { const ts = []; for (let r = 0; r < 30; r++) { let s = 0; for (let l = 0; l < 12; l++) s += m.timeFfn(l, inputs[l], 1); ts.push(s); } ts.sort((a, b) => a - b); return ts[15]; }
console.log("predicted, no candidates:", cold().toFixed(3));
m.setMode("oracle"); m.setThresholds(new Float32Array(12).fill(1e9));
console.log("oracle, all gates, none kept:", cold().toFixed(3));
m.setThresholds(new Float32Array(12).fill(0));
console.log("oracle, all kept:", cold().toFixed(3));
m.setMode("dense");
console.log("bundles dense:", cold().toFixed(3));
const d = await createModel(file, { contextLength: 40, sparsity: null });
const ts = []; for (let r = 0; r < 30; r++) { let s = 0; for (let l = 0; l < 12; l++) s += d.timeFfn(l, inputs[l], 1); ts.push(s); } ts.sort((a, b) => a - b);
console.log("matrices dense:", ts[15].toFixed(3));
