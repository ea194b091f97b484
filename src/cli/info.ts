/** The `dormant info` command: prints a model's configuration and tensors. */

import type { OptionSpecs, ParsedArgs } from "../args.js";
import { GGMLType } from "../types.js";
import { modelOptions, readModelArgument, resolveModelArgument, stdout, writeJson } from "./common.js";

export const infoOptions: OptionSpecs = {
  model: modelOptions.model,
  tokenizer: modelOptions.tokenizer,
  catalog: modelOptions.catalog,
  json: modelOptions.json,
  quiet: modelOptions.quiet,
  help: modelOptions.help,
};

export async function runInfo(args: ParsedArgs): Promise<void> {
  const file = await readModelArgument(args, await resolveModelArgument("info", args));
  const tensors = [...file.tensors.values()].map((tensor) => ({
    name: tensor.name, dims: tensor.dims, type: tensorTypeName(tensor.type), bytes: tensor.data.length,
  }));
  const parameters = tensors.reduce((sum, tensor) => sum + tensor.dims.reduce((a, b) => a * b, 1), 0);
  if (args.options.json) {
    writeJson({
      source: file.source, format: file.format, config: file.config, parameters,
      vocab_size: file.vocab?.tokens.length ?? null, tensors,
    });
    return;
  }
  const c = file.config;
  stdout.write(
    `${file.source} (${file.format})\n` +
    `architecture ${c.architecture}, dim ${c.dim}, hidden_dim ${c.hidden_dim}, n_layers ${c.n_layers}, ` +
    `n_heads ${c.n_heads}, n_kv_heads ${c.n_kv_heads}, vocab_size ${c.vocab_size}, seq_len ${c.seq_len}\n` +
    `norm_eps ${c.norm_eps}, rope_theta ${c.rope_theta}, parameters ${parameters}, ` +
    `tokenizer ${file.vocab ? `${file.vocab.model} (${file.vocab.tokens.length} tokens)` : "missing"}\n`,
  );
  for (const tensor of tensors) stdout.write(`  ${tensor.name.padEnd(28)} ${tensor.type.padEnd(5)} [${tensor.dims.join(", ")}]\n`);
}

function tensorTypeName(type: number): string {
  return GGMLType[type] ?? `type ${type}`;
}
