// How far sparsity goes before quality breaks: stories260K calibrated on the first half of the
// TinyStories sample at several target sparsities S, evaluated on the second half.
//
//   npm run build && node bench/sparsity-quality.mjs [--tokens N]
//
// Per S: perplexity of dense int8, oracle (exact gates, threshold τ_l) and predicted (low-rank
// predictor picks the candidates), predictor activation-mass recall on the held-out half, the
// share of neurons that are candidates, and the kept fraction measured by the runtime.

import { readFileSync } from "node:fs";
import {
  calibrate, collectActivations, createModel, evaluate, measureSparsity, readModelFile, splitDocuments,
} from "../dist/index.js";

const args = process.argv.slice(2);
const tokensAt = args.indexOf("--tokens");
const maxTokens = tokensAt === -1 ? undefined : Number(args[tokensAt + 1]);
const SPARSITIES = [0.3, 0.5, 0.7, 0.9];
const path = new URL("../../shared/models/stories260K.gguf", import.meta.url).pathname;
const corpus = new URL("../../shared/data/tinystories-valid-sample.txt", import.meta.url).pathname;

const documents = splitDocuments(readFileSync(corpus, "utf8"));
const half = Math.floor(documents.length / 2);
const calibrationText = documents.slice(0, half).join("\n<|endoftext|>\n");
const evaluationText = documents.slice(half).join("\n<|endoftext|>\n");

const file = readModelFile(readFileSync(path), path);
const dense = await createModel(file, { sparsity: null });
const denseResult = await evaluate(dense, evaluationText, { maxTokens });
const heldOut = await collectActivations(dense, evaluationText, { source: "second half", maxTokens });

console.log(`# stories260K, int8: calibrated on ${half} stories, evaluated on ${documents.length - half} (${denseResult.tokens} tokens)`);
console.log("| S | perplexity dense | oracle | predicted | predicted / dense | recall (mass) | candidates | kept |");
console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const sparsity of SPARSITIES) {
  const data = await calibrate(dense, file, calibrationText, { sparsity });
  const sparse = await createModel(file, { sparsity: data });
  sparse.setMode("oracle");
  const oracle = await evaluate(sparse, evaluationText, { maxTokens });
  sparse.setMode("predicted");
  const predicted = await evaluate(sparse, evaluationText, { maxTokens });
  const layers = sparse.layerStats();
  const kept = layers.reduce((sum, layer) => sum + layer.keptFraction, 0) / layers.length;
  const candidates = layers.reduce((sum, layer) => sum + layer.candidateFraction, 0) / layers.length;
  const measured = measureSparsity(heldOut, data);
  const recall = measured.reduce((sum, layer) => sum + layer.recall, 0) / measured.length;
  console.log(
    `| ${sparsity} | ${denseResult.perplexity.toFixed(3)} | ${oracle.perplexity.toFixed(3)} | ${predicted.perplexity.toFixed(3)} | ` +
    `${(predicted.perplexity / denseResult.perplexity).toFixed(3)} | ${recall.toFixed(4)} | ${candidates.toFixed(3)} | ${kept.toFixed(3)} |`,
  );
  sparse.dispose();
}
