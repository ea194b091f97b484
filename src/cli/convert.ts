/** The `dormant convert` command: writes a llama2.c checkpoint or GGUF file as GGUF with f32 or q8_0 tensors. */

import { OptionError } from "../errors.js";
import type { OptionSpecs, ParsedArgs } from "../args.js";
import { convertToGGUF } from "../convert.js";
import { writeFileAtomic } from "../io.js";
import { checkOutputPath, modelOptions, readModelArgument, resolveModelArgument, stderr, writeJson } from "./common.js";

export const convertOptions: OptionSpecs = {
  model: { kind: "string", help: "llama2.c .bin checkpoint or GGUF file to convert" },
  tokenizer: { kind: "string", help: "llama2.c tokenizer.bin for a .bin checkpoint" },
  catalog: modelOptions.catalog,
  type: { kind: "string", choices: ["f32", "q8_0"], help: "tensor type: f32, or q8_0 (rows that are not multiples of 32 stay f32)" },
  out: { kind: "string", help: "output .gguf path" },
  json: { kind: "boolean", help: "print one JSON object on stdout" },
  quiet: { kind: "boolean", help: "print no summary line" },
  help: { kind: "boolean", help: "print this help" },
};

export async function runConvert(args: ParsedArgs): Promise<void> {
  const { options } = args;
  const out = options.out as string | undefined;
  if (!out) {
    throw new OptionError("dormant convert: option --out is missing, expected the path of the .gguf file to write", {
      source: "option out", field: "out", actual: "missing", expected: "a file path",
    });
  }
  const type = (options.type as "f32" | "q8_0" | undefined) ?? "f32";
  const resolved = await resolveModelArgument("convert", args);
  await checkOutputPath("convert", {
    option: "out", path: out, inputs: [resolved.modelPath, (options.tokenizer as string | undefined) ?? resolved.tokenizerPath],
  });
  const file = await readModelArgument(args, resolved);
  const bytes = convertToGGUF(file, { type });
  await writeFileAtomic(out, bytes);
  if (options.json) {
    writeJson({ out, type, bytes: bytes.length, tensors: file.tensors.size });
  } else if (!options.quiet) {
    stderr.write(`wrote ${out}: ${bytes.length} bytes, ${file.tensors.size} tensors, type ${type}\n`);
  }
}
