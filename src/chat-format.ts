/**
 * The chat facts of a model file, read when the model loads. Kept apart from src/chat.ts, which
 * renders templates with @huggingface/jinja, so a bundle loads that library only on first chat().
 */

import { FormatError } from "./errors.js";
import { GGUFValueType, type GGUFValue } from "./gguf.js";
import { findEotId } from "./tokenizer/special.js";
import type { ModelFile } from "./types.js";

export const TEMPLATE_KEY = "tokenizer.chat_template";

/** One turn of a conversation. Roles are usually "system", "user" and "assistant". */
export interface ChatMessage {
  role: string;
  content: string;
}

export interface RenderChatOptions {
  /** Ends the prompt with the opening of an assistant turn (default true). */
  addGenerationPrompt?: boolean;
  /** Text of the BOS token, the template's `bos_token` (default ""). */
  bosToken?: string;
  /** Text of the EOS token, the template's `eos_token` (default ""). */
  eosToken?: string;
  /** File the template came from, for error messages (default "chat template"). */
  source?: string;
}

/** The chat facts of a model file: its template, the token texts it uses and the tokens that end a reply. */
export interface ChatFormat {
  /** `tokenizer.chat_template`, or null when the file has none. */
  template: string | null;
  bosToken: string;
  eosToken: string;
  /** Ids that end a reply: EOS and the end-of-turn token (`<|im_end|>`, `<|eot_id|>`, ...) when the vocabulary has one. */
  stopTokens: number[];
}

/** Reads the chat template, the BOS and EOS texts and the stop tokens of a parsed model file. */
export function readChatFormat(file: ModelFile): ChatFormat {
  const entry = file.metadata.get(TEMPLATE_KEY) as GGUFValue | undefined;
  if (entry !== undefined && entry.type !== GGUFValueType.STRING) {
    throw new FormatError(
      `loadModel: ${file.source}: metadata ${TEMPLATE_KEY} type is ${GGUFValueType[entry.type]}, expected STRING`,
      { source: file.source, field: TEMPLATE_KEY, actual: GGUFValueType[entry.type], expected: "STRING" },
    );
  }
  const vocab = file.vocab;
  const stopTokens: number[] = [];
  if (vocab) {
    stopTokens.push(vocab.eos_id);
    const eot = findEotId(vocab);
    if (eot !== undefined && eot !== vocab.eos_id) stopTokens.push(eot);
  }
  return {
    template: entry === undefined ? null : (entry.value as string),
    bosToken: vocab?.tokens[vocab.bos_id] ?? "",
    eosToken: vocab?.tokens[vocab.eos_id] ?? "",
    stopTokens,
  };
}

