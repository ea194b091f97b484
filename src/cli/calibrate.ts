/** The `dormant calibrate` command: fits sparsity thresholds and a predictor and writes them into a GGUF file. */

import type { OptionSpecs, ParsedArgs } from "../args.js";
import { readFileBytes, writeFileAtomic } from "../io.js";
import { calibrate } from "../sparsity/calibrate.js";
import { writeSparsityGGUF } from "../sparsity/format.js";
import { createProgressBar } from "../progress.js";
import {
  checkOutputPath, createModelArgument, modelOptions, readModelArgument, requireOption, resolvedLoadOptions, resolveModelArgument, stderr, writeJson,
} from "./common.js";

/** Model options without --mode: calibration always runs the dense model. */
const { mode: _calibrateIgnoresMode, ...denseModelOptions } = modelOptions;

export const calibrateOptions: OptionSpecs = {
  ...denseModelOptions,
  text: { kind: "string", help: "calibration text, UTF-8; documents separated by <|endoftext|> lines" },
  sparsity: { kind: "number", help: "target fraction S of dormant neurons per layer, in [0, 0.99]" },
  rank: { kind: "integer", help: "predictor rank (default: about 8% of the dense FFN cost)" },
  recall: { kind: "number", help: "activation-mass recall the candidate cutoff must reach, in (0, 1] (default 0.99)" },
  "max-tokens": { kind: "integer", min: 1, help: "run at most this many calibration tokens" },
  type: { kind: "string", choices: ["f32", "q8_0"], help: "tensor type of the written file (default: as the source)" },
  out: { kind: "string", help: "output .gguf path" },
};

export async function runCalibrate(args: ParsedArgs): Promise<void> {
  const { options } = args;
  const textPath = requireOption("calibrate", options.text as string | undefined, "text", "a path to a UTF-8 text file");
  const out = requireOption("calibrate", options.out as string | undefined, "out", "the path of the .gguf file to write");
  const sparsity = options.sparsity as number | undefined;
  if (sparsity === undefined) requireOption("calibrate", undefined, "sparsity", "a number in [0, 0.99]");
  const resolved = await resolveModelArgument("calibrate", args);
  await checkOutputPath("calibrate", {
    option: "out", path: out, inputs: [resolved.modelPath, (options.tokenizer as string | undefined) ?? resolved.tokenizerPath, textPath],
  });
  const text = new TextDecoder("utf-8", { fatal: false }).decode(await readFileBytes(textPath));
  const file = await readModelArgument(args, resolved);
  const model = await createModelArgument("calibrate", file, { ...resolvedLoadOptions(args, resolved), sparsity: null });

  const bars = new Map<string, ReturnType<typeof createProgressBar>>();
  const data = await calibrate(model, file, text, {
    sparsity: sparsity!,
    rank: options.rank as number | undefined,
    recall: options.recall as number | undefined,
    maxTokens: options["max-tokens"] as number | undefined,
    source: textPath,
    onProgress: options.quiet || options.json ? undefined : (progress) => {
      let bar = bars.get(progress.phase);
      if (!bar) {
        bar = progress.phase === "collect"
          ? createProgressBar(stderr, "calibrate: run", { unit: "tokens" })
          : createProgressBar(stderr, "calibrate: fit", { unit: "layers" });
        bars.set(progress.phase, bar);
      }
      bar.update(progress.loaded, progress.total);
      if (progress.loaded >= progress.total) bar.done();
    },
  });
  const bytes = writeSparsityGGUF(file, data, { type: options.type as "f32" | "q8_0" | undefined });
  await writeFileAtomic(out, bytes);
  model.dispose();

  if (options.json) {
    writeJson({
      out, sparsity: data.sparsity, rank: data.rank, recall: data.recall,
      thresholds: Array.from(data.thresholds), cutoffs: Array.from(data.cutoffs),
    });
  } else if (!options.quiet) {
    stderr.write(`wrote ${out}: sparsity ${data.sparsity}, rank ${data.rank}, recall ${data.recall}, ` +
      `thresholds ${Array.from(data.thresholds, (value) => value.toPrecision(3)).join(" ")}\n`);
  }
}
