/** The `dormant generate` command: continues a prompt and streams the text to stdout. */

import { OptionError } from "../errors.js";
import type { OptionSpecs, ParsedArgs } from "../args.js";
import type { Model, SparsityMode } from "../model.js";
import type { GenerationSummary } from "../generate.js";
import { validateSamplerOptions } from "../sampler.js";
import { loadModelArgument, modelOptions, resolveModelArgument, samplingOptions, setModeOption, stderr, stdout, writeJson } from "./common.js";

export const generateOptions: OptionSpecs = {
  ...modelOptions,
  prompt: { kind: "string", help: "prompt text (or give it as the first word after the options)" },
  steps: { kind: "integer", help: "positions to run, prompt included, as llama2.c counts them" },
  "max-tokens": { kind: "integer", min: 1, help: "tokens to generate after the prompt" },
  temperature: { kind: "number", help: "sampling temperature, 0 = greedy (default 0.8)" },
  "top-p": { kind: "number", help: "nucleus sampling mass in (0, 1] (default 0.9)" },
  "top-k": { kind: "integer", help: "keep only the k most likely tokens, 0 = off (default 0)" },
  "min-p": { kind: "number", help: "drop tokens below min-p times the top probability, 0 = off (default 0)" },
  "repeat-penalty": { kind: "number", help: "penalty for tokens in the last 64, 1 = off (default 1)" },
  seed: { kind: "integer", min: 0, help: "random seed for sampling (default: time)" },
};

export async function runGenerate(args: ParsedArgs): Promise<void> {
  const { options, positionals } = args;
  if (options.prompt !== undefined && positionals.length > 0) {
    throw new OptionError(`dormant generate: the prompt is given twice (--prompt and "${positionals[0]}"), expected one`, {
      source: "option prompt", field: "prompt", actual: "two prompts", expected: "one",
    });
  }
  if (positionals.length > 1) {
    throw new OptionError(`dormant generate: found ${positionals.length} prompt words, expected one argument (quote the prompt)`, {
      source: "arguments", field: "prompt", actual: `${positionals.length} words`, expected: "one",
    });
  }
  const prompt = (options.prompt as string | undefined) ?? positionals[0] ?? "";
  validateSamplerOptions(samplingOptions(args), "generate");
  const model = await loadModelArgument("generate", args, await resolveModelArgument("generate", args));
  if (options.mode) setModeOption("generate", model, options.mode as SparsityMode);
  const iterator = model.generate(prompt, { steps: options.steps as number | undefined, ...samplingOptions(args) });

  let text = prompt;
  if (!options.json) stdout.write(prompt);
  let summary: GenerationSummary;
  for (;;) {
    const next = await iterator.next();
    if (next.done) {
      summary = next.value;
      break;
    }
    text += next.value.text;
    if (!options.json) stdout.write(next.value.text);
  }

  if (options.json) {
    writeJson({ text, tokens: summary.tokens, tokens_per_second: summary.tokensPerSecond });
  } else {
    stdout.write("\n");
  }
  if (!options.quiet) stderr.write(summaryLine(summary, model));
  model.dispose();
}

/** Formats the stderr summary of one run: token counts, speed, precision, kernels and threads. */
export function summaryLine(summary: GenerationSummary, model: Model): string {
  const { threads, threadsNote } = model.stats();
  return `prompt ${summary.promptTokens} tokens, generated ${summary.generatedTokens} tokens, ` +
    `${summary.tokensPerSecond.toFixed(1)} tokens/s, precision ${model.precision}, kernels ${model.kernels}, ` +
    `threads ${threads}${threadsNote ? ` (${threadsNote})` : ""}\n`;
}
