/**
 * One tokenizer interface over the two GGUF vocabulary kinds: SentencePiece BPE
 * (`tokenizer.ggml.model` "llama", SpmTokenizer) and byte-level BPE ("gpt2", BpeTokenizer).
 * Both match special and added tokens in the text the way llama.cpp does (special.ts).
 */

import { formatMismatch, optionMismatch } from "../errors.js";
import { ggufToVocab, hasGGUFMagic, parseGGUF } from "../gguf.js";
import { TokenType, type Vocab } from "../types.js";
import { BpeTokenizer } from "./bpe.js";
import { SpecialTokenSplitter, findEotId } from "./special.js";
import { checkDecodeOptions, checkEncodeArguments } from "./options.js";
import { SpmTokenizer } from "./spm.js";
import type { PieceSource } from "./stream.js";

export interface EncodeOptions {
  /** Prepend BOS (default: the vocabulary's add_bos). */
  bos?: boolean;
  /** Append EOS (default: the vocabulary's add_eos, else false). */
  eos?: boolean;
  /**
   * Read the text of control and unknown tokens (such as "<|eot_id|>") as those tokens
   * (default false: such text is tokenized as plain text). Added (USER_DEFINED) tokens
   * are always matched, as in llama.cpp.
   */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** Print control and unknown tokens as their text (default false: they print nothing). */
  special?: boolean;
  /**
   * Remove spaces before punctuation as llama.cpp's `llama_detokenize` does for vocabularies with
   * clean_spaces (GPT-2, Llama 3, Falcon, StarCoder). Default false, so that decode equals the
   * concatenated pieceBytes that a TextStreamer prints.
   */
  cleanSpaces?: boolean;
}

/** A tokenizer of either vocabulary kind. */
export interface Tokenizer extends PieceSource {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  /** End-of-turn token of chat models (`<|eot_id|>`, `<|im_end|>`, ...), when the vocabulary has one. */
  readonly eotId: number | undefined;
  /** Splits `text` into token ids. */
  encode(text: string, options?: EncodeOptions): number[];
  /** Joins the text of `ids`. */
  decode(ids: ArrayLike<number>, options?: DecodeOptions): string;
  /** Returns the bytes that `id` adds to the output when it follows `previous` (undefined at the start). */
  pieceBytes(id: number, previous?: number): Uint8Array;
  /** Returns the text of `id` as the vocabulary spells it. */
  piece(id: number): string;
  /** Tells whether `id` is a CONTROL token. */
  isControl(id: number): boolean;
}

/**
 * Creates the tokenizer for `vocab.model`: "llama" (SentencePiece) or "gpt2" (byte-level BPE).
 * `source` names the vocabulary's file in error messages.
 */
export function createTokenizer(vocab: Vocab, source = "vocab"): Tokenizer {
  if (vocab.model === "llama") return new SentencePieceTokenizer(vocab);
  if (vocab.model === "gpt2") return new BpeTokenizer(vocab, source);
  return formatMismatch("createTokenizer", {
    source, field: "model", actual: JSON.stringify(vocab.model),
    expected: '"llama" (SentencePiece BPE) or "gpt2" (byte-level BPE)',
  });
}

/**
 * Parses a GGUF file, vocab-only or full, and creates the tokenizer of its `tokenizer.ggml.*`
 * metadata. `name` names the file in error messages.
 */
export function loadTokenizer(source: Uint8Array | ArrayBuffer, name = "<bytes>"): Tokenizer {
  const where = "loadTokenizer";
  let bytes: Uint8Array;
  if (source instanceof Uint8Array) bytes = source;
  else if (source instanceof ArrayBuffer || Object.prototype.toString.call(source) === "[object ArrayBuffer]") {
    bytes = new Uint8Array(source);
  } else {
    return optionMismatch(where, {
      source: "option source", field: "source", actual: describeValue(source), expected: "a Uint8Array or an ArrayBuffer holding a GGUF file",
    });
  }
  if (!hasGGUFMagic(bytes)) {
    const head = Array.from(bytes.subarray(0, 4));
    const hex = head.map((byte) => byte.toString(16).padStart(2, "0")).join(" ");
    const text = head.map((byte) => (byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : ".")).join("");
    formatMismatch(where, {
      source: name, field: "magic", actual: bytes.length === 0 ? "empty" : `${hex} (${JSON.stringify(text)})`,
      expected: '"GGUF" (a GGUF file, vocab-only or full)',
    });
  }
  const gguf = parseGGUF(bytes, name);
  if (!gguf.metadata.has("tokenizer.ggml.model")) {
    formatMismatch(where, {
      source: name, field: "metadata key tokenizer.ggml.model", actual: "missing", expected: "a vocabulary (tokenizer.ggml.* keys)",
    });
  }
  return createTokenizer(ggufToVocab(gguf, name), name);
}

/** Names a value's type for an error message: "a string", "an object (Map)", "undefined". */
function describeValue(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value !== "object") return `a ${typeof value}`;
  const constructorName = (value as object).constructor?.name;
  return constructorName ? `an object (${constructorName})` : "an object";
}

/** SpmTokenizer with special-token matching, EOS default and the Tokenizer interface. */
class SentencePieceTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly eotId: number | undefined;
  readonly #spm: SpmTokenizer;
  readonly #vocab: Vocab;
  readonly #special: SpecialTokenSplitter;

  constructor(vocab: Vocab) {
    this.#spm = new SpmTokenizer(vocab);
    this.#vocab = vocab;
    this.#special = new SpecialTokenSplitter(vocab);
    this.vocabSize = this.#spm.vocabSize;
    this.bosId = this.#spm.bosId;
    this.eosId = this.#spm.eosId;
    this.eotId = findEotId(vocab);
  }

  /**
   * Splits `text` into token ids. As in llama.cpp, each text run after a special token gets
   * its own dummy-prefix space.
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    checkEncodeArguments(text, options);
    const ids: number[] = [];
    if (options.bos ?? this.#vocab.add_bos) ids.push(this.bosId);
    for (const fragment of this.#special.split(text, options.parseSpecial ?? false)) {
      if (typeof fragment === "number") ids.push(fragment);
      else for (const id of this.#spm.encode(fragment, { bos: false })) ids.push(id);
    }
    if (options.eos ?? this.#vocab.add_eos ?? false) ids.push(this.eosId);
    return ids;
  }

  /** Joins the text of `ids`; see SpmTokenizer.decode. `cleanSpaces` has no effect on SentencePiece. */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    checkDecodeOptions(options);
    if (!options.special) return this.#spm.decode(ids);
    const encoder = new TextEncoder();
    const parts: Uint8Array[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      const printsText = this.isControl(id) || this.#vocab.types[id] === TokenType.UNKNOWN;
      parts.push(printsText ? encoder.encode(this.#vocab.tokens[id]) : this.#spm.pieceBytes(id, i === 0 ? undefined : ids[i - 1]));
    }
    const joined = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
    let offset = 0;
    for (const part of parts) {
      joined.set(part, offset);
      offset += part.length;
    }
    return new TextDecoder("utf-8", { ignoreBOM: true }).decode(joined);
  }

  pieceBytes(id: number, previous?: number): Uint8Array {
    return this.#spm.pieceBytes(id, previous);
  }

  piece(id: number): string {
    return this.#spm.piece(id);
  }

  isControl(id: number): boolean {
    this.#spm.piece(id); // throws the OptionError of an id out of range
    return this.#vocab.types[id] === TokenType.CONTROL;
  }
}
