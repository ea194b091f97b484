/** The `dormant pull` command: downloads a catalog model into the cache. */

import { OptionError } from "../errors.js";
import type { OptionSpecs, ParsedArgs } from "../args.js";
import { modelOptions, resolveModelArgument, stdout, writeJson } from "./common.js";

export const pullOptions: OptionSpecs = {
  catalog: modelOptions.catalog,
  json: modelOptions.json,
  quiet: modelOptions.quiet,
  help: modelOptions.help,
};

export async function runPull(args: ParsedArgs): Promise<void> {
  if (args.positionals.length !== 1) {
    throw new OptionError(`dormant pull: found ${args.positionals.length} model names, expected one`, {
      source: "arguments", field: "name", actual: String(args.positionals.length), expected: "1",
    });
  }
  const resolved = await resolveModelArgument("pull", args, { name: args.positionals[0], option: "name", subject: "model name", allowPath: false });
  if (args.options.json) {
    writeJson({ model: resolved.modelPath, tokenizer: resolved.tokenizerPath ?? null, downloaded: resolved.downloaded });
  } else {
    stdout.write(`${resolved.modelPath}\n${resolved.tokenizerPath ? `${resolved.tokenizerPath}\n` : ""}`);
  }
}
