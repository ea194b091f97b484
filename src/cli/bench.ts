/** The `dormant bench` command: decode and prefill speed of real and generated models, as a table or JSON rows. */

import { OptionError } from "../errors.js";
import type { OptionSpecs, ParsedArgs } from "../args.js";
import { MAX_THREADS, createModel, loadModel, type Precision } from "../model.js";
import { benchModelFile, formatBenchTable, runBench } from "../bench.js";
import { writeFileAtomic } from "../io.js";
import { checkOutputPath, commaList, modelOptions, stderr, stdout, writeJson } from "./common.js";

export const benchOptions: OptionSpecs = {
  models: { kind: "string", help: "comma-separated models: stories260K, stories15M, stories110M, llama-1b (default stories260K,stories15M,stories110M)" },
  precision: { kind: "string", help: "comma-separated precisions: int8, f32 (default int8,f32)" },
  runs: { kind: "integer", help: "timed runs per figure after one warm-up, 1 to 100 (default 3)" },
  tokens: { kind: "integer", help: "tokens per decode run, 2 to 4096 (default 32)" },
  threads: { kind: "string", help: `comma-separated thread counts, each 1 to ${MAX_THREADS} (default 1)` },
  keep: { kind: "string", help: "comma-separated fractions of FFN neurons kept, in (0, 1], 1 = dense (default 1); below 1 runs int8 only, with a random predictor" },
  out: { kind: "string", help: "also write the rows as JSON to this file" },
  json: modelOptions.json,
  quiet: modelOptions.quiet,
  help: modelOptions.help,
};

export async function runBenchCommand(args: ParsedArgs): Promise<void> {
  const { options } = args;
  const precisions = commaList("bench", "precision", options.precision as string | undefined, ["int8", "f32"]);
  for (const precision of precisions) {
    if (precision !== "int8" && precision !== "f32") {
      throw new OptionError(`dormant bench: option --precision has "${precision}", expected int8 or f32`, {
        source: "option precision", field: "precision", actual: precision, expected: "int8 or f32",
      });
    }
  }
  const threads = commaList("bench", "threads", options.threads as string | undefined, ["1"]).map((item) => {
    const count = Number(item);
    if (!/^\d+$/.test(item) || count < 1 || count > MAX_THREADS) {
      const expected = `integers in [1, ${MAX_THREADS}]`;
      throw new OptionError(`dormant bench: option --threads has "${item}", expected ${expected}`, {
        source: "option threads", field: "threads", actual: item, expected,
      });
    }
    return count;
  });
  const keep = commaList("bench", "keep", options.keep as string | undefined, ["1"]).map((item) => {
    const fraction = Number(item);
    if (!Number.isFinite(fraction) || fraction <= 0 || fraction > 1) {
      throw new OptionError(`dormant bench: option --keep has "${item}", expected fractions in (0, 1]`, {
        source: "option keep", field: "keep", actual: item, expected: "fractions in (0, 1]",
      });
    }
    return fraction;
  });
  if (keep.some((fraction) => fraction < 1) && !precisions.includes("int8")) {
    throw new OptionError(`dormant bench: option --keep has fractions below 1, which run int8 only, but --precision is "${precisions.join(",")}"; add int8`, {
      source: "option keep", field: "keep", actual: keep.join(","), expected: "1 alone, or int8 among the precisions",
    });
  }
  const out = options.out as string | undefined;
  if (out !== undefined) await checkOutputPath("bench", { option: "out", path: out });
  const rows = await runBench({
    models: commaList("bench", "models", options.models as string | undefined, ["stories260K", "stories15M", "stories110M"]),
    precisions: precisions as Precision[],
    runs: (options.runs as number | undefined) ?? 3,
    tokens: (options.tokens as number | undefined) ?? 32,
    threads,
    keep,
    load: (name, precision, contextLength, threadCount, sparsity) => name === "stories260K"
      ? loadModel(name, { precision, contextLength, sparsity, threads: threadCount })
      : createModel(benchModelFile(name), { precision, contextLength, sparsity, threads: threadCount }),
    onProgress: options.quiet || options.json ? undefined : (label) => stderr.write(`bench: ${label}\n`),
  });
  if (out !== undefined) await writeFileAtomic(out, new TextEncoder().encode(`${JSON.stringify(rows, null, 2)}\n`));
  if (options.json) writeJson({ rows });
  else stdout.write(formatBenchTable(rows));
}
