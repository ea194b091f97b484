/**
 * The `dormant inspect` report: one self-contained HTML file with inline CSS and inline SVG
 * plots. It has no scripts and loads nothing: its Content-Security-Policy allows no source.
 */

import { COLD_FREQUENCY, HOT_FREQUENCY, type InspectData } from "./report.js";
import { escapeXml, renderChart, type ChartSeries } from "./svg.js";

/** One plot of the report; `name` is also its .svg file name without the extension. */
export interface ReportFigure {
  name: string;
  title: string;
  /** Description of the plot and the definition of its quantity. */
  caption: string;
  svg: string;
  /** Number of series drawn. */
  series: number;
}

const layerName = (l: number): string => `layer ${l}`;
const percent = (value: number, digits = 1): string => `${(value * 100).toFixed(digits)}%`;
const kib = (bytes: number): string => (bytes / 1024).toFixed(1);
/** Formats an f32 value read from the file without its rounding noise: 0.99, not 0.9900000095. */
const short = (value: number): string => String(Number(value.toPrecision(6)));

/** Builds a figure from chart options, counting its series. */
function figure(name: string, caption: string, chart: Parameters<typeof renderChart>[0]): ReportFigure {
  return { name, title: chart.title, caption, svg: renderChart({ ...chart, id: name }), series: chart.series.length };
}

/** Builds the six plots of the report from the inspected data. */
export function inspectFigures(data: InspectData): ReportFigure[] {
  const { profile, sweep, modes } = data;
  const layers = profile.layers.map((_, l) => l);
  const figures: ReportFigure[] = [];

  figures.push(figure(
    "kept-vs-threshold",
    `Share of (token, neuron) pairs with |act(g)| ≥ τ, per layer, as τ sweeps the ${profile.quantiles.length} quantiles ` +
    `${profile.quantiles[0]}…${profile.quantiles[profile.quantiles.length - 1]} of all layers' |act(g)| pooled, ` +
    `on ${profile.sampledTokens} sampled tokens. ` +
    "Where a curve lies higher, that layer keeps more neurons at the same threshold; the file's own τ_l are in the layer table.",
    {
      title: "Kept fraction against threshold τ", xLabel: "threshold τ on |act(g)| (log scale)", yLabel: "kept fraction",
      xScale: "log", yDomain: [0, 1],
      series: profile.layers.map((layer, l) => ({
        name: layerName(l), markers: true,
        points: profile.sweepThresholds.map((threshold, q): [number, number] => [threshold, layer.keptAtThreshold[q]]),
      })),
    },
  ));

  const sparsities = sweep.points.map((point) => point.sparsity);
  const span: [number, number] = [Math.min(0, ...sparsities), Math.max(...sparsities)];
  figures.push(figure(
    "perplexity-vs-sparsity",
    `Perplexity on ${sweep.evaluationTokens} held-out tokens after calibrating in memory at each target sparsity S ` +
    `(${sweep.calibrationTokens} calibration tokens, predictor rank ${sweep.rank}). Oracle computes every gate and keeps ` +
    "|act(g)| ≥ τ_l; predicted computes gates only for the predictor's candidates. The dashed line is the dense int8 model.",
    {
      title: "Perplexity against target sparsity", xLabel: "target sparsity S", yLabel: "perplexity (log scale)", yScale: "log",
      series: [
        { name: "oracle", markers: true, points: sweep.points.map((point): [number, number] => [point.sparsity, point.oracle]) },
        { name: "predicted", markers: true, points: sweep.points.map((point): [number, number] => [point.sparsity, point.predicted]) },
        { name: "dense", dashed: true, points: [[span[0], sweep.dense], [span[1], sweep.dense]] },
      ],
    },
  ));

  const width = 1 / profile.bins;
  figures.push(figure(
    "firing-frequency",
    `Neurons per firing-frequency bin (width ${width}), per layer. A neuron's firing frequency is the share of the ` +
    `${profile.tokens} traced tokens on which |act(g)| ≥ τ_l. Hot neurons (frequency ≥ ${HOT_FREQUENCY}) sit at the right, ` +
    `cold ones (≤ ${COLD_FREQUENCY}) at the left.`,
    {
      title: "Firing-frequency histogram", xLabel: "firing frequency (share of tokens)", yLabel: "neurons", xDomain: [0, 1],
      series: profile.layers.map((layer, l) => ({
        name: layerName(l), markers: true,
        points: layer.histogram.map((count, bin): [number, number] => [(bin + 0.5) * width, count]),
      })),
    },
  ));

  const independent: ChartSeries = {
    name: "independent firing", dashed: true,
    points: profile.windows.map((k, w): [number, number] => [k, mean(profile.layers.map((layer) => layer.independentReuse[w]))]),
  };
  figures.push(figure(
    "window-reuse",
    "Reuse fraction of a neuron cache that holds the active neurons of the last k tokens: Σ_t |A_t ∩ (A_t−1 ∪ … ∪ A_t−k)| / Σ_t |A_t|, " +
    "over tokens with k predecessors in the same context window. k = 1 is the overlap between consecutive tokens. " +
    "The dashed line is what neurons firing independently at their own frequencies would give (mean over layers).",
    {
      title: "Reuse of the active set within windows of k tokens", xLabel: "window k (tokens, log scale)", yLabel: "reuse fraction",
      xScale: "log", xTicks: profile.windows, xDomain: [profile.windows[0], profile.windows[profile.windows.length - 1]],
      series: [
        ...profile.layers.map((layer, l) => ({
          name: layerName(l), markers: true, points: profile.windows.map((k, w): [number, number] => [k, layer.reuse[w]]),
        })),
        independent,
      ],
    },
  ));

  figures.push(figure(
    "predictor-recall",
    `Predictor recall per layer: activation mass of the neurons kept by τ_l that the predictor also marks as candidates, ` +
    `over the mass of all kept neurons, on ${profile.sampledTokens} sampled tokens. Candidates: share of neurons whose ` +
    "gate row predicted mode computes.",
    {
      title: "Predictor recall and candidates per layer", xLabel: "layer", yLabel: "share", xTicks: layers,
      series: [
        { name: "recall (mass)", markers: true, points: profile.layers.map((layer, l): [number, number] => [l, layer.predictor.recall]) },
        { name: "candidates", markers: true, points: profile.layers.map((layer, l): [number, number] => [l, layer.predictor.candidates]) },
      ],
    },
  ));

  figures.push(figure(
    "ffn-bytes",
    "FFN weight bytes read per token and layer, as the runtime counts them (scales included): dense reads every gate, up and down row; " +
    "oracle reads every gate row plus the up row and down column of kept neurons; predicted reads the predictor, the candidates' gate rows " +
    "and the kept neurons' up rows and down columns.",
    {
      title: "FFN bytes read per token", xLabel: "layer", yLabel: "KiB per token", xTicks: layers,
      series: modes.map((mode) => ({
        name: mode.mode, markers: true, points: mode.layers.map((layer, l): [number, number] => [l, layer.ffnBytesPerToken / 1024]),
      })),
    },
  ));
  return figures;
}

function mean(values: number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / Math.max(1, values.length);
}

function table(header: string[], rows: string[][]): string {
  const head = header.map((cell) => `<th>${escapeXml(cell)}</th>`).join("");
  const body = rows.map((row) => `<tr>${row.map((cell) => `<td>${escapeXml(cell)}</td>`).join("")}</tr>`).join("\n");
  return `<table>\n<thead><tr>${head}</tr></thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}

const STYLE = `
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1000px; padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.5rem; margin-bottom: 0.25rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
table { border-collapse: collapse; margin: 0.75rem 0; font-size: 0.9rem; display: block; overflow-x: auto; }
th, td { border: 1px solid #d4d4d4; padding: 0.2rem 0.55rem; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1.25rem 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #e4e4e4; }
figcaption { font-size: 0.88rem; color: #444; max-width: 720px; }
dt { font-weight: 600; margin-top: 0.5rem; }
dd { margin-left: 1.25rem; }
.meta { color: #555; font-size: 0.9rem; }
`;

/** Renders the whole report as one HTML document string. */
export function renderInspectHtml(data: InspectData, figures: ReportFigure[]): string {
  const { profile, modes, sweep } = data;
  const bytes = (mode: string, l: number): string => {
    const result = modes.find((entry) => entry.mode === mode);
    return result ? kib(result.layers[l].ffnBytesPerToken) : "";
  };

  const firingRows = profile.layers.map((layer, l) => [
    String(l), layer.threshold.toPrecision(4), percent(layer.keptFraction), String(layer.hotNeurons), String(layer.coldNeurons),
    percent(layer.topDecileShare), layer.jaccard.toFixed(3),
  ]);
  const firingHeader = ["layer", "τ_l", "kept", `hot (≥ ${HOT_FREQUENCY})`, `cold (≤ ${COLD_FREQUENCY})`, "top 10% share", "Jaccard t, t−1"];
  const reuseRows = profile.layers.map((layer, l) => [
    String(l), ...profile.windows.map((_, w) => `${percent(layer.reuse[w])} (${percent(layer.windowUnion[w], 0)})`),
  ]);
  const independentRow = ["independent", ...profile.windows.map((_, w) => percent(mean(profile.layers.map((layer) => layer.independentReuse[w]))))];
  const predictorRows = profile.layers.map((layer, l) => [
    String(l), percent(layer.predictor.recall, 2), percent(layer.predictor.candidates), bytes("dense", l), bytes("oracle", l), bytes("predicted", l),
  ]);
  const thresholdRows = profile.quantiles.map((q, i) => [
    String(q), profile.sweepThresholds[i].toPrecision(4), ...profile.layers.map((layer) => percent(layer.keptAtThreshold[i])),
  ]);
  const modeRows = modes.map((mode) => [
    mode.mode, mode.perplexity.toFixed(4), percent(mean(mode.layers.map((layer) => layer.keptFraction))),
    percent(mean(mode.layers.map((layer) => layer.candidateFraction))), kib(mode.layers.reduce((sum, layer) => sum + layer.ffnBytesPerToken, 0)),
  ]);
  const sweepRows = [
    ["dense", sweep.dense.toFixed(4), sweep.dense.toFixed(4), "100.0%", "100.0%"],
    ...sweep.points.map((point) => [
      String(point.sparsity), point.oracle.toFixed(4), point.predicted.toFixed(4), percent(point.predictedKept), percent(point.predictedCandidates),
    ]),
  ];

  const figureHtml = figures.map((entry) =>
    `<figure id="${entry.name}" data-series="${entry.series}">\n${entry.svg}<figcaption>${escapeXml(entry.caption)}</figcaption>\n</figure>`).join("\n");

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dormant inspect: ${escapeXml(data.model)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>Activation profile</h1>
<p class="meta">Model <code>${escapeXml(data.model)}</code>: target sparsity ${short(data.sparsity.target)}, predictor rank ${data.sparsity.rank}, recall target ${short(data.sparsity.recall)}.<br>
Profile and evaluations: ${escapeXml(data.evaluationText)}, ${profile.tokens} tokens traced in ${profile.contexts} context windows.<br>
Sweep calibration: ${escapeXml(data.calibrationText)}.</p>

<h2>Definitions</h2>
<dl>
<dt>Active set A_t</dt><dd>Neurons j of a layer with |act(g_j)| ≥ τ_l on token t, where g is the exact gate pre-activation of the dense path (oracle activity).</dd>
<dt>Kept fraction</dt><dd>Share of (token, neuron) pairs in the active set.</dd>
<dt>Firing frequency</dt><dd>Share of traced tokens on which a neuron is active. Hot: ≥ ${HOT_FREQUENCY}; cold: ≤ ${COLD_FREQUENCY}. Top 10% share: the share of all activations that fall on the 10% most frequently active neurons (10% means no skew).</dd>
<dt>Jaccard t, t−1</dt><dd>|A_t ∩ A_t−1| / |A_t ∪ A_t−1|, the mean over consecutive tokens of one context window.</dd>
<dt>Reuse fraction (window k)</dt><dd>Σ_t |A_t ∩ W| / Σ_t |A_t| with W = A_t−1 ∪ … ∪ A_t−k: the hit rate of a neuron cache that holds the neurons active in the last k tokens. Cache: the mean |W| as a share of hidden_dim, what such a cache holds.</dd>
<dt>Predictor recall</dt><dd>Activation mass Σ|act(g_j)| of active neurons that are also predictor candidates, over the mass of all active neurons.</dd>
</dl>

<h2>Firing per layer</h2>
${table(firingHeader, firingRows)}

<h2>Reuse fraction (cache share) per window k</h2>
${table(["layer", ...profile.windows.map((k) => `k = ${k}`)], [...reuseRows, independentRow])}

<h2>Predictor and FFN bytes per layer</h2>
${table(["layer", "recall", "candidates", "KiB dense", "KiB oracle", "KiB predicted"], predictorRows)}

<h2>File's own data by FFN mode</h2>
${table(["mode", "perplexity", "kept", "candidates", "FFN KiB/token"], modeRows)}

<h2>Plots</h2>
${figureHtml}

<h2>Kept fraction at the sweep thresholds</h2>
${table(["quantile", "τ", ...profile.layers.map((_, l) => layerName(l))], thresholdRows)}

<h2>Perplexity against target sparsity</h2>
${table(["S", "oracle", "predicted", "kept (predicted)", "candidates"], sweepRows)}
</body>
</html>
`;
}
