// Writes the plots of docs/activation-profile.md and prints the numbers its tables quote.
//
//   npm run build && node bench/profile.mjs [--max-tokens N] [--eval-tokens N]
//
// stories260K is calibrated at S = 0.5 on the first half of the TinyStories sample (as
// `dormant calibrate` does by default), then `dormant inspect` profiles the second half. The
// plots go to docs/activation-profile/*.svg, the HTML report to bench/out/activation-profile.html.

import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { splitDocuments } from "../dist/index.js";

const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const maxTokens = option("--max-tokens", "20000");
const evalTokens = option("--eval-tokens", "8000");

const path = (relative) => fileURLToPath(new URL(relative, import.meta.url));
const cli = path("../dist/cli.js");
const model = path("../../shared/models/stories260K.gguf");
const corpus = path("../../shared/data/tinystories-valid-sample.txt");
const out = path("./out/");
const svgDirectory = path("../docs/activation-profile/");
mkdirSync(out, { recursive: true });

// The calibration text is the first half of the documents, as inspect's sweep uses it.
const documents = splitDocuments(readFileSync(corpus, "utf8"));
const firstHalf = `${out}first-half.txt`;
writeFileSync(firstHalf, documents.slice(0, Math.floor(documents.length / 2)).join("\n<|endoftext|>\n"));

const sparse = `${out}stories260K.s50.gguf`;
const run = (argv) => execFileSync(process.execPath, [cli, ...argv], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
run(["calibrate", "--model", model, "--text", firstHalf, "--sparsity", "0.5", "--out", sparse, "--quiet"]);
const report = JSON.parse(run([
  "inspect", "--model", sparse, "--text", corpus, "--report", `${out}activation-profile.html`, "--svg-dir", svgDirectory,
  "--max-tokens", maxTokens, "--eval-tokens", evalTokens, "--json",
]));

const percent = (value, digits = 1) => `${(value * 100).toFixed(digits)}%`;
const row = (cells) => `| ${cells.join(" | ")} |`;
const layers = report.layers;
const layerColumns = layers.map((_, l) => `layer ${l}`);

console.log(
  `# stories260K, S = 0.5: ${report.tokens} tokens traced in ${report.contexts} context windows, ` +
  `${report.sampled_tokens} of them sampled for kept(τ) and recall, ${evalTokens} tokens per evaluation\n`,
);
console.log("## kept fraction at pooled quantile thresholds");
console.log(row(["quantile", "τ", ...layerColumns]));
console.log(row(["---:", "---:", ...layers.map(() => "---:")]));
report.quantiles.forEach((q, i) => console.log(row([q, report.sweep_thresholds[i].toPrecision(3), ...layers.map((layer) => percent(layer.kept_at_threshold[i]))])));

console.log("\n## firing and overlap");
console.log(row(["layer", "τ_l", "kept", "hot", "cold", "top 10% share", "Jaccard", ...report.windows.map((k) => `reuse k=${k}`), "independent k=1", "cache k=8", "recall", "candidates"]));
console.log(row(["---:", "---:", "---:", "---:", "---:", "---:", "---:", ...report.windows.map(() => "---:"), "---:", "---:", "---:", "---:"]));
const k8 = report.windows.indexOf(8);
layers.forEach((layer, l) => console.log(row([
  l, layer.threshold.toPrecision(3), percent(layer.kept_fraction), layer.hot_neurons, layer.cold_neurons, percent(layer.top_decile_share),
  layer.jaccard.toFixed(3), ...layer.reuse.map((value) => percent(value)), percent(layer.independent_reuse[0]),
  k8 >= 0 ? percent(layer.window_union[k8]) : "", percent(layer.recall, 2), percent(layer.candidates),
])));

console.log("\n## firing-frequency histogram (neurons per bin of 0.05)");
layers.forEach((layer, l) => console.log(`layer ${l}: ${layer.histogram.join(" ")}`));

console.log("\n## modes of the S = 0.5 file");
for (const mode of report.modes) {
  const total = mode.ffn_bytes_per_token.reduce((sum, bytes) => sum + bytes, 0);
  const perLayer = mode.ffn_bytes_per_token.map((bytes) => (bytes / 1024).toFixed(1)).join(" ");
  console.log(`${mode.mode}: perplexity ${mode.perplexity.toFixed(4)}, FFN ${(total / 1024).toFixed(1)} KiB/token (per layer ${perLayer})`);
}

console.log("\n## sweep");
console.log(row(["S", "oracle", "predicted", "kept", "candidates"]));
console.log(row(["---:", "---:", "---:", "---:", "---:"]));
console.log(row(["dense", report.sweep.dense.toFixed(3), report.sweep.dense.toFixed(3), "100%", "100%"]));
for (const point of report.sweep.points) {
  console.log(row([point.sparsity, point.oracle.toFixed(3), point.predicted.toFixed(3), percent(point.predictedKept), percent(point.predictedCandidates)]));
}
