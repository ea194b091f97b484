/** The `dormant eval` command: perplexity on a text file, optionally against a reference run. Gate runs are handled in ./gate.ts. */

import type { OptionSpecs, ParsedArgs } from "../args.js";
import type { ResolvedModel } from "../catalog.js";
import { evaluate } from "../eval/perplexity.js";
import { readFileBytes } from "../io.js";
import { createModel, type Model, type Precision, type SparsityMode } from "../model.js";
import { collectActivations, measureSparsity, type LayerSparsity } from "../sparsity/calibrate.js";
import type { SparsityData } from "../sparsity/format.js";
import { createProgressBar } from "../progress.js";
import {
  loadModelArgument, modeChoices, modelOptions, readModelArgument, requireOption, resolvedLoadOptions, resolveModelArgument, setModeOption, stderr, stdout,
  writeJson,
} from "./common.js";
import { denseReferences, gateOptions, isGateRun, runEvalGate } from "./gate.js";

export const evalOptions: OptionSpecs = {
  ...modelOptions,
  perplexity: { kind: "boolean", help: "compute perplexity (always computed; kept for clarity in scripts)" },
  text: { kind: "string", help: "UTF-8 text file; documents separated by <|endoftext|> lines" },
  "max-tokens": { kind: "integer", min: 1, help: "score at most this many tokens" },
  mode: { kind: "string", choices: modeChoices, help: "FFN mode of a file with sparsity data (default predicted)" },
  against: {
    kind: "string",
    help: "reference run: int8 or f32 (dense), dense, oracle or predicted (FFN mode of the same file), or a path to another model file of the same base model",
  },
  ...gateOptions,
};

export async function runEval(args: ParsedArgs): Promise<void> {
  if (isGateRun(args)) return runEvalGate(args);
  const { options } = args;
  const textPath = requireOption("eval", options.text as string | undefined, "text", "a path to a UTF-8 text file");
  const resolved = await resolveModelArgument("eval", args);
  const text = new TextDecoder("utf-8", { fatal: false }).decode(await readFileBytes(textPath));
  const model = await loadModelArgument("eval", args, resolved);
  if (options.mode) setModeOption("eval", model, options.mode as SparsityMode);

  const against = options.against as Precision | SparsityMode | undefined;
  let reference: Model | undefined;
  if (against === "int8" || against === "f32") {
    reference = await loadModelArgument("eval", args, resolved, { precision: against, sparsity: null, onProgress: undefined });
  } else if (against) {
    reference = await loadModelArgument("eval", args, resolved, { onProgress: undefined });
    setModeOption("eval", reference, against, "against", denseReferences);
  }

  const bar = options.quiet || options.json ? undefined : createProgressBar(stderr, "eval", { unit: "tokens" });
  const result = await evaluate(model, text, {
    reference,
    maxTokens: options["max-tokens"] as number | undefined,
    onProgress: bar ? (progress) => bar.update(progress.loaded, progress.total) : undefined,
  }, textPath);
  bar?.done();
  const layers = model.layerStats();
  const keptFraction = layers.reduce((sum, layer) => sum + layer.keptFraction, 0) / layers.length;
  const predictor = model.hasPredictor ? await measurePredictor(args, resolved, text, textPath) : undefined;

  if (options.json) {
    const json: Record<string, unknown> = { perplexity: result.perplexity, tokens: result.tokens, precision: model.precision };
    if (model.sparse) {
      json.mode = model.mode;
      json.kept_fraction = keptFraction;
      json.layers = layers.map((layer, l) => ({
        kept_fraction: layer.keptFraction, candidate_fraction: layer.candidateFraction,
        ffn_bytes_per_token: layer.ffnBytesPerToken,
        ...(predictor ? {
          recall_mass: predictor[l].recall, recall_count: predictor[l].recallCount, precision: predictor[l].precision,
        } : {}),
      }));
    }
    if (reference) {
      json.against = against;
      json.against_perplexity = result.referencePerplexity;
      json.top1_agreement = result.top1Agreement;
      json.mean_kl = result.meanKl;
    }
    writeJson(json);
    return;
  }
  stdout.write(`perplexity ${result.perplexity.toFixed(4)} over ${result.tokens} tokens (precision ${model.precision}, mode ${model.mode}, kept ${(keptFraction * 100).toFixed(1)}%)\n`);
  if (reference) {
    stdout.write(`perplexity ${result.referencePerplexity!.toFixed(4)} (${against}), ` +
      `top-1 agreement ${(result.top1Agreement! * 100).toFixed(2)}%, mean KL ${result.meanKl!.toExponential(3)} nats\n`);
  }
  if (model.sparse) {
    for (const [l, layer] of layers.entries()) {
      const recall = predictor
        ? `, predictor recall ${predictor[l].recall.toFixed(4)} (mass) ${predictor[l].recallCount.toFixed(4)} (count), precision ${predictor[l].precision.toFixed(4)}`
        : "";
      stdout.write(`  layer ${l}: kept ${(layer.keptFraction * 100).toFixed(1)}%, candidates ${(layer.candidateFraction * 100).toFixed(1)}%, ` +
        `FFN ${(layer.ffnBytesPerToken / 1024).toFixed(1)} KiB/token${recall}\n`);
    }
  }
}

/**
 * Measures the file's predictor against the oracle on `text`: the dense model's exact gate
 * activations decide which neurons are kept, and the predictor's candidates are compared with them.
 */
async function measurePredictor(args: ParsedArgs, resolved: ResolvedModel, text: string, textPath: string): Promise<LayerSparsity[] | undefined> {
  const file = await readModelArgument(args, resolved);
  if (!file.sparsity) return undefined;
  const dense = await createModel(file, { ...resolvedLoadOptions(args, resolved), sparsity: null, onProgress: undefined });
  const statistics = await collectActivations(dense, text, { maxTokens: args.options["max-tokens"] as number | undefined, source: textPath });
  dense.dispose();
  return measureSparsity(statistics, file.sparsity as SparsityData);
}
