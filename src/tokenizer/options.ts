/** Argument checks of Tokenizer.encode and Tokenizer.decode, shared by both vocabulary kinds. */

import { optionMismatch } from "../errors.js";
import { checkOptionKeys, describeTypedValue } from "../options.js";
import type { DecodeOptions, EncodeOptions } from "./index.js";

/** Keys of EncodeOptions; tsc rejects a list that differs from the interface. */
const ENCODE_OPTION_KEYS = { bos: true, eos: true, parseSpecial: true } as const satisfies Record<keyof EncodeOptions, true>;

/** Keys of DecodeOptions; tsc rejects a list that differs from the interface. */
const DECODE_OPTION_KEYS = { special: true, cleanSpaces: true } as const satisfies Record<keyof DecodeOptions, true>;

/** Throws an OptionError unless `text` is a string and `options` has only EncodeOptions keys. */
export function checkEncodeArguments(text: unknown, options: unknown): void {
  if (typeof text !== "string") {
    optionMismatch("encode", { source: "arguments", field: "text", actual: describeTypedValue(text), expected: "a string" });
  }
  checkOptionKeys("encode", options, ENCODE_OPTION_KEYS);
}

/** Throws an OptionError unless `options` has only DecodeOptions keys. The ids are checked by the decoder. */
export function checkDecodeOptions(options: unknown): void {
  checkOptionKeys("decode", options, DECODE_OPTION_KEYS);
}
