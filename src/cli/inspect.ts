/** The `dormant inspect` command: writes an HTML report, and optionally .svg plots, of where a sparse model's neurons are dormant. */

import { OptionError } from "../errors.js";
import type { OptionSpecs, ParsedArgs } from "../args.js";
import { checkCorpus } from "../eval/gate.js";
import { inspectFigures, renderInspectHtml } from "../eval/html.js";
import { inspectModel } from "../eval/report.js";
import { joinPath, makeDirectory, readFileBytes, writeFileAtomic } from "../io.js";
import { createProgressBar } from "../progress.js";
import { checkOutputPath, decodeText, modelOptions, readModelArgument, requireOption, resolveModelArgument, stderr, writeJson } from "./common.js";

export const inspectOptions: OptionSpecs = {
  model: modelOptions.model,
  tokenizer: modelOptions.tokenizer,
  catalog: modelOptions.catalog,
  kernels: modelOptions.kernels,
  text: { kind: "string", help: "UTF-8 text; the first half of its documents calibrates the sweep, the second half is profiled and scored" },
  report: { kind: "string", help: "output .html file: one page with inline SVG plots, no scripts, loads nothing" },
  "svg-dir": { kind: "string", help: "also write each plot as an .svg file into this folder" },
  "max-tokens": { kind: "integer", min: 1, help: "tokens traced for the profile and for the sweep's calibration (default 4000)" },
  "eval-tokens": { kind: "integer", min: 1, help: "tokens scored per perplexity evaluation (default 2000)" },
  sparsities: { kind: "string", help: "target sparsities S of the sweep, comma-separated (default 0.1,0.3,0.5,0.7,0.9)" },
  windows: { kind: "string", help: "window sizes k of the reuse measure, comma-separated (default 1,2,4,8,16,32,64)" },
  json: modelOptions.json,
  quiet: modelOptions.quiet,
  help: modelOptions.help,
};

/** Parses a comma-separated list of numbers given to `--name`, each of which must pass `valid`. */
function numberList(command: string, name: string, raw: string, expected: string, valid: (value: number) => boolean): number[] {
  const fail = (): never => {
    throw new OptionError(`dormant ${command}: option --${name} is "${raw}", expected ${expected}`, {
      source: `option ${name}`, field: name, actual: raw, expected,
    });
  };
  const words = raw.trim() === "" ? fail() : raw.split(",").map((word) => word.trim());
  if (words.some((word) => word === "")) fail();
  const values = words.map(Number);
  if (values.some((value) => !Number.isFinite(value) || !valid(value))) fail();
  return values;
}

export async function runInspect(args: ParsedArgs): Promise<void> {
  const { options } = args;
  const textPath = requireOption("inspect", options.text as string | undefined, "text", "a path to a UTF-8 text file");
  const reportPath = requireOption("inspect", options.report as string | undefined, "report", "the path of the .html file to write");
  const sparsities = options.sparsities === undefined
    ? undefined
    : numberList("inspect", "sparsities", options.sparsities as string, "comma-separated numbers in [0, 0.99]", (value) => value >= 0 && value <= 0.99);
  const windows = options.windows === undefined
    ? undefined
    : numberList("inspect", "windows", options.windows as string, "comma-separated integers ≥ 1", (value) => Number.isInteger(value) && value >= 1);
  const svgDirectory = options["svg-dir"] as string | undefined;
  const resolved = await resolveModelArgument("inspect", args);
  const inputs = [resolved.modelPath, (options.tokenizer as string | undefined) ?? resolved.tokenizerPath, textPath];
  await checkOutputPath("inspect", { option: "report", path: reportPath, inputs });
  if (svgDirectory !== undefined) await checkOutputPath("inspect", { option: "svg-dir", path: svgDirectory, kind: "folder", inputs });
  const text = decodeText(await readFileBytes(textPath));
  checkCorpus(text, textPath, "inspect");
  const file = await readModelArgument(args, resolved);

  const bars = new Map<string, ReturnType<typeof createProgressBar>>();
  const quiet = Boolean(options.quiet || options.json);
  const data = await inspectModel(file, text, {
    maxTokens: options["max-tokens"] as number | undefined,
    evalTokens: options["eval-tokens"] as number | undefined,
    sparsities, windows, source: textPath,
    load: { kernels: (options.kernels as "auto" | "exact" | "relaxed" | undefined) ?? "auto" },
    onProgress: quiet ? undefined : (progress) => {
      let bar = bars.get(progress.phase);
      if (!bar) {
        bar = createProgressBar(stderr, `inspect: ${progress.phase}`, { unit: { profile: "tokens", modes: "modes", sweep: "steps" }[progress.phase] });
        bars.set(progress.phase, bar);
      }
      bar.update(progress.loaded, progress.total);
      if (progress.loaded >= progress.total) bar.done();
    },
  });

  const figures = inspectFigures(data);
  const encoder = new TextEncoder();
  await writeFileAtomic(reportPath, encoder.encode(renderInspectHtml(data, figures)));
  const svgPaths: string[] = [];
  if (svgDirectory !== undefined) {
    await makeDirectory(svgDirectory);
    for (const entry of figures) {
      const path = joinPath(svgDirectory, `${entry.name}.svg`);
      await writeFileAtomic(path, encoder.encode(entry.svg));
      svgPaths.push(path);
    }
  }

  const { profile, sweep } = data;
  if (options.json) {
    writeJson({
      report: reportPath, svg: svgPaths, tokens: profile.tokens, contexts: profile.contexts, sampled_tokens: profile.sampledTokens,
      windows: profile.windows,
      layers: profile.layers.map((layer) => ({
        threshold: layer.threshold, kept_fraction: layer.keptFraction, hot_neurons: layer.hotNeurons, cold_neurons: layer.coldNeurons,
        top_decile_share: layer.topDecileShare, jaccard: layer.jaccard, reuse: layer.reuse, independent_reuse: layer.independentReuse,
        window_union: layer.windowUnion, recall: layer.predictor.recall, candidates: layer.predictor.candidates,
        kept_at_threshold: layer.keptAtThreshold, histogram: layer.histogram,
      })),
      quantiles: profile.quantiles, sweep_thresholds: profile.sweepThresholds,
      modes: data.modes.map((mode) => ({
        mode: mode.mode, perplexity: mode.perplexity, ffn_bytes_per_token: mode.layers.map((layer) => layer.ffnBytesPerToken),
      })),
      sweep: { dense: sweep.dense, rank: sweep.rank, points: sweep.points },
    });
  } else if (!options.quiet) {
    stderr.write(`wrote ${reportPath}: ${figures.length} plots, ${profile.tokens} tokens traced` +
      `${svgPaths.length > 0 ? `, ${svgPaths.length} .svg files in ${svgDirectory}` : ""}\n`);
  }
}
