/** The regression gate of `dormant eval`: a run against a reference, checked against bounds, with JSON and markdown reports. */

import { DormantError, OptionError } from "../errors.js";
import type { OptionSpecs, ParsedArgs } from "../args.js";
import {
  checkBoundRanges, checkBounds, checkCorpus, checkMeasurable, checkSameBase, DEFAULT_MAX_NEW_TOKENS, describeCheck, GateFailure, gateReportJson,
  gateReportMarkdown, mergeBounds, measureGate, parseBounds, parsePrompts, type Bounds, type GateProgress, type MetricName,
} from "../eval/gate.js";
import { readFileBytes, writeFileAtomic } from "../io.js";
import type { Model, SparsityMode } from "../model.js";
import { createProgressBar } from "../progress.js";
import type { ModelFile } from "../types.js";
import {
  checkOutputPath, createModelArgument, decodeText, modeChoices, readModelArgument, requireOption, resolvedLoadOptions, resolveModelArgument,
  setModeOption, stderr, stdout, writeJson,
} from "./common.js";

/** Flags that set one side of a gate bound, and the metric and side they set. */
const boundFlags: Record<string, { metric: MetricName; side: "min" | "max"; help: string }> = {
  "max-perplexity": { metric: "perplexity", side: "max", help: "largest allowed perplexity of the model" },
  "max-perplexity-ratio": { metric: "perplexity_ratio", side: "max", help: "largest allowed perplexity / reference perplexity" },
  "max-kl": { metric: "mean_kl", side: "max", help: "largest allowed mean KL(reference ‖ model), nats per token" },
  "min-top1": { metric: "top1_agreement", side: "min", help: "smallest allowed share of positions whose argmax agrees, in [0, 1]" },
  "min-recall": { metric: "recall", side: "min", help: "smallest allowed predictor recall of any layer, in [0, 1]" },
  "max-kept-fraction": { metric: "kept_fraction", side: "max", help: "largest allowed mean kept fraction of FFN neurons, in [0, 1]" },
  "min-greedy-tokens": { metric: "greedy_tokens", side: "min", help: "smallest allowed mean of greedy tokens that agree before the first difference" },
  "min-expected-tokens": { metric: "expected_tokens", side: "min", help: "smallest allowed mean of greedy tokens that match the expected text" },
};

export const builtinReferences: readonly string[] = ["int8", "f32", ...modeChoices];

/** Values of --against that work for a model file without sparsity data. */
export const denseReferences: readonly string[] = ["int8", "f32", "dense"];

export const gateOptions: OptionSpecs = {
  prompts: { kind: "string", help: 'prompt suite, JSON Lines: {"prompt": "...", "expected": "..."} per line; measures greedy agreement' },
  "max-new-tokens": { kind: "integer", min: 1, help: `greedy tokens per prompt at most (default ${DEFAULT_MAX_NEW_TOKENS})` },
  "against-mode": { kind: "string", choices: modeChoices, help: "FFN mode of an --against file (default: its own, predicted when it has a predictor)" },
  bounds: { kind: "string", help: 'bounds config, JSON: {"perplexity_ratio": {"max": 1.75}, ...}; a crossed bound exits with code 1' },
  ...Object.fromEntries(Object.entries(boundFlags).map(([name, flag]) => [name, { kind: "number" as const, help: flag.help }])),
  "report-json": { kind: "string", help: "write the JSON report of a gate run to this file" },
  "report-md": { kind: "string", help: "write a markdown summary of a gate run to this file" },
};

/** Returns whether an eval run is a gate run: it has a gate option, or a model file as the reference. */
export function isGateRun(args: ParsedArgs): boolean {
  const against = args.options.against as string | undefined;
  if (against !== undefined && !builtinReferences.includes(against)) return true;
  return Object.keys(gateOptions).some((name) => args.options[name] !== undefined);
}

/**
 * Reads and parses a file given by an option. The file is user input like the option itself, so
 * a missing or malformed file is bad usage (an OptionError, exit code 2).
 */
async function readOptionFile<T>(path: string, parse: (text: string, path: string) => T): Promise<T> {
  try {
    return parse(decodeText(await readFileBytes(path)), path);
  } catch (error) {
    if (!(error instanceof DormantError) || error instanceof OptionError) throw error;
    throw new OptionError(error.message, { source: error.source, field: error.field, actual: error.actual, expected: error.expected });
  }
}

/** Bounds of a gate run: the --bounds file, with sides set by flags replacing the file's. */
async function gateBounds(args: ParsedArgs): Promise<Bounds> {
  const path = args.options.bounds as string | undefined;
  const fromFile = path === undefined ? {} : await readOptionFile(path, parseBounds);
  const fromFlags: Bounds = {};
  for (const [name, flag] of Object.entries(boundFlags)) {
    const value = args.options[name] as number | undefined;
    if (value !== undefined) fromFlags[flag.metric] = { ...fromFlags[flag.metric], [flag.side]: value };
  }
  return checkBoundRanges(mergeBounds(fromFile, fromFlags), "bounds");
}

/** Progress bars of a gate run, one per phase, on stderr. */
function gateProgress(args: ParsedArgs): ((progress: GateProgress) => void) | undefined {
  if (args.options.quiet || args.options.json) return undefined;
  const labels = { eval: ["eval", "tokens"], recall: ["eval: recall", "tokens"], greedy: ["eval: greedy", "prompts"] } as const;
  const bars = new Map<string, ReturnType<typeof createProgressBar>>();
  return (progress) => {
    let bar = bars.get(progress.phase);
    if (!bar) {
      const [label, unit] = labels[progress.phase];
      bar = createProgressBar(stderr, label, { unit });
      bars.set(progress.phase, bar);
    }
    bar.update(progress.loaded, progress.total);
    if (progress.loaded >= progress.total) bar.done();
  };
}

/**
 * Runs eval as a regression gate. The model runs against a reference: a precision, a mode of the
 * same file or another file of the same base model. Its metrics are checked against bounds and
 * the reports written, then a GateFailure (exit code 1) reports any crossed bound.
 */
export async function runEvalGate(args: ParsedArgs): Promise<void> {
  const { options } = args;
  const textPath = requireOption("eval", options.text as string | undefined, "text", "a path to a UTF-8 text file");
  const against = (options.against as string | undefined) ?? "int8";
  const againstFile = !builtinReferences.includes(against);
  if (options["against-mode"] !== undefined && !againstFile) {
    throw new OptionError(`dormant eval: option --against-mode is given with --against ${against}, expected it only with an --against model file`, {
      source: "option against-mode", field: "against-mode", actual: String(options["against-mode"]), expected: "an --against model file",
    });
  }
  const resolved = await resolveModelArgument("eval", args);
  const referenceResolved = againstFile
    ? await resolveModelArgument("eval", args, { name: against, option: "against", builtins: builtinReferences })
    : resolved;
  const promptsPath = options.prompts as string | undefined;
  const boundsPath = options.bounds as string | undefined;
  const inputs = [resolved.modelPath, referenceResolved.modelPath, textPath, promptsPath, boundsPath, options.tokenizer as string | undefined];
  for (const option of ["report-json", "report-md"]) {
    const path = options[option] as string | undefined;
    if (path !== undefined) await checkOutputPath("eval", { option, path, inputs });
  }

  const text = decodeText(await readFileBytes(textPath));
  checkCorpus(text, textPath);
  const prompts = promptsPath === undefined ? undefined : await readOptionFile(promptsPath, parsePrompts);
  const maxNewTokens = (options["max-new-tokens"] as number | undefined) ?? DEFAULT_MAX_NEW_TOKENS;
  const bounds = await gateBounds(args);

  // One --tokenizer serves a llama2.c checkpoint beside a GGUF, which carries its own vocabulary.
  const file = await readModelArgument(args, resolved, againstFile);
  const referenceFile = againstFile ? await readModelArgument(args, referenceResolved, true) : file;
  if (againstFile) {
    checkTokenizerUse(options.tokenizer as string | undefined, file, referenceFile);
    checkSameBase(file, referenceFile);
  }
  checkMeasurable(bounds, { prompts, predictor: file.sparsity !== undefined });

  const load = resolvedLoadOptions(args, resolved);
  const model = await createModelArgument("eval", file, load);
  if (options.mode) setModeOption("eval", model, options.mode as SparsityMode);
  let reference: Model;
  if (against === "int8" || against === "f32") {
    reference = await createModelArgument("eval", file, { ...load, precision: against, sparsity: null, onProgress: undefined });
  } else if (!againstFile) {
    reference = await createModelArgument("eval", referenceFile, { ...load, onProgress: undefined });
    setModeOption("eval", reference, against as SparsityMode, "against", denseReferences);
  } else {
    reference = await createModelArgument("eval", referenceFile, { ...resolvedLoadOptions(args, referenceResolved), onProgress: undefined });
    const mode = options["against-mode"] as SparsityMode | undefined;
    if (mode) setModeOption("eval", reference, mode, "against-mode");
  }

  const measurement = await measureGate(model, text, {
    reference, sparsity: model.hasPredictor ? file.sparsity : undefined, prompts, promptSource: promptsPath, maxNewTokens,
    maxTokens: options["max-tokens"] as number | undefined, source: textPath, onProgress: gateProgress(args),
  });
  const checks = checkBounds(measurement.metrics, bounds);
  const context = { model: file.source, mode: model.mode, precision: model.precision, against, text: textPath };
  const json = gateReportJson(context, measurement, checks);
  const encoder = new TextEncoder();
  if (options["report-json"] !== undefined) await writeFileAtomic(options["report-json"] as string, encoder.encode(`${JSON.stringify(json, null, 2)}\n`));
  if (options["report-md"] !== undefined) await writeFileAtomic(options["report-md"] as string, encoder.encode(gateReportMarkdown(context, measurement, checks)));
  model.dispose();
  reference.dispose();

  if (options.json) writeJson(json);
  else printGateSummary(measurement, against, reference.precision);
  if (checks.some((check) => !check.passed)) throw new GateFailure(checks);
  if (!options.quiet && !options.json && checks.length > 0) {
    stderr.write(`eval: ${checks.length} bounds checked, all passed (${checks.map(describeCheck).join("; ")})\n`);
  }
}

/**
 * Checks that the model and --against files have vocabularies. A llama2.c checkpoint gets its
 * vocabulary from --tokenizer, so a checkpoint without one is an error, and so is a --tokenizer
 * that neither file uses.
 */
function checkTokenizerUse(tokenizer: string | undefined, file: ModelFile, referenceFile: ModelFile): void {
  for (const [option, entry] of [["model", file], ["against", referenceFile]] as const) {
    if (entry.format === "llama2c" && entry.vocab === undefined) {
      const expected = "--tokenizer with the tokenizer.bin of its base model";
      throw new OptionError(`dormant eval: option --${option} is ${entry.source}, a llama2.c checkpoint without a vocabulary; expected ${expected}`, {
        source: `option ${option}`, field: "tokenizer", actual: "missing", expected,
      });
    }
  }
  if (tokenizer !== undefined && file.format === "gguf" && referenceFile.format === "gguf") {
    const expected = "no --tokenizer, because both files carry their own vocabulary";
    throw new OptionError(`dormant eval: option --tokenizer is ${tokenizer}, but --model and --against are both GGUF files; expected ${expected}`, {
      source: "option tokenizer", field: "tokenizer", actual: tokenizer, expected,
    });
  }
}

function printGateSummary(measurement: Awaited<ReturnType<typeof measureGate>>, against: string, referencePrecision: string): void {
  const { metrics, layers, prompts } = measurement;
  const percent = (value: number, digits = 1): string => `${(value * 100).toFixed(digits)}%`;
  stdout.write(`perplexity ${metrics.perplexity!.toFixed(4)} over ${measurement.tokens} tokens, kept ${percent(metrics.kept_fraction!)}\n`);
  stdout.write(
    `perplexity ${metrics.reference_perplexity!.toFixed(4)} (${against === referencePrecision ? against : `${against}, ${referencePrecision}`}), ratio ${metrics.perplexity_ratio!.toFixed(4)}, ` +
    `top-1 agreement ${percent(metrics.top1_agreement!, 2)}, mean KL ${metrics.mean_kl!.toExponential(3)} nats\n`,
  );
  for (const [l, layer] of layers.entries()) {
    const recall = layer.measured ? `, recall ${percent(layer.measured.recall, 2)}` : "";
    stdout.write(`  layer ${l}: kept ${percent(layer.keptFraction)}, candidates ${percent(layer.candidateFraction)}${recall}, ` +
      `FFN ${(layer.ffnBytesPerToken / 1024).toFixed(1)} KiB/token\n`);
  }
  if (prompts.length > 0) {
    const expected = metrics.expected_tokens === undefined ? "" : `, ${metrics.expected_tokens.toFixed(1)} match the expected text`;
    stdout.write(`greedy: ${prompts.length} prompts, ${metrics.greedy_tokens!.toFixed(1)} tokens agree before the first difference ` +
      `(at most ${measurement.maxNewTokens})${expected}\n`);
  }
}
