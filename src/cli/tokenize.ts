/** The `dormant tokenize` command: prints the token ids of a text. */

import { OptionError } from "../errors.js";
import type { OptionSpecs, ParsedArgs } from "../args.js";
import { readModelFile } from "../formats/index.js";
import type { Vocab } from "../types.js";
import { ggufToVocab, hasGGUFMagic, parseGGUF } from "../gguf.js";
import { createTokenizer } from "../tokenizer/index.js";
import { readFileBytes } from "../io.js";
import { modelOptions, resolveModelArgument, stdout, writeJson } from "./common.js";

export const tokenizeOptions: OptionSpecs = {
  model: modelOptions.model,
  tokenizer: modelOptions.tokenizer,
  catalog: modelOptions.catalog,
  bos: { kind: "boolean", help: "prepend BOS" },
  pieces: { kind: "boolean", help: "print the piece of each token as well" },
  special: { kind: "boolean", help: "read special-token text such as <|eot_id|> as that token" },
  json: modelOptions.json,
  help: modelOptions.help,
};

/**
 * Reads --model for `tokenize`. A GGUF without tensors, such as llama.cpp's ggml-vocab-*.gguf,
 * gives only its vocabulary, whatever architecture it names.
 */
async function readVocabArgument(args: ParsedArgs): Promise<{ source: string; vocab?: Vocab }> {
  const resolved = await resolveModelArgument("tokenize", args);
  const bytes = await readFileBytes(resolved.modelPath);
  const tokenizerPath = (args.options.tokenizer as string | undefined) ?? resolved.tokenizerPath;
  if (hasGGUFMagic(bytes) && tokenizerPath === undefined) {
    const gguf = parseGGUF(bytes, resolved.modelPath);
    if (gguf.tensors.size === 0) return { source: resolved.modelPath, vocab: ggufToVocab(gguf, resolved.modelPath) };
  }
  const tokenizer = tokenizerPath ? { bytes: await readFileBytes(tokenizerPath), source: tokenizerPath } : undefined;
  return readModelFile(bytes, resolved.modelPath, tokenizer);
}

export async function runTokenize(args: ParsedArgs): Promise<void> {
  // An explicit "" is allowed (it prints a blank line or only BOS); no text at all is a usage error.
  if (args.positionals.length === 0) {
    throw new OptionError("dormant tokenize: the text is missing, expected it after the options, such as dormant tokenize \"Once upon a time\"", {
      source: "arguments", field: "text", actual: "missing", expected: "a text",
    });
  }
  const file = await readVocabArgument(args);
  if (!file.vocab) {
    throw new OptionError(`dormant tokenize: ${file.source}: tokenizer is missing, expected --tokenizer for a llama2.c checkpoint`, {
      source: file.source, field: "tokenizer", actual: "missing", expected: "a vocabulary",
    });
  }
  const tokenizer = createTokenizer(file.vocab, file.source);
  const text = args.positionals.join(" ");
  const ids = tokenizer.encode(text, { bos: Boolean(args.options.bos), parseSpecial: Boolean(args.options.special) });
  const pieces = ids.map((id) => file.vocab!.tokens[id]);
  if (args.options.json) {
    writeJson(args.options.pieces ? { tokens: ids, pieces } : { tokens: ids });
  } else if (args.options.pieces) {
    stdout.write(ids.map((id, i) => `${id}\t${JSON.stringify(pieces[i])}`).join("\n") + "\n");
  } else {
    stdout.write(`${ids.join(" ")}\n`);
  }
}
