/**
 * Chat prompts: renders a model file's `tokenizer.chat_template` (a Jinja template, as in
 * Hugging Face Transformers) over a list of messages, tokenizes the result with special tokens
 * parsed, and streams the reply through generate() until an end-of-generation token.
 *
 * Templates run on @huggingface/jinja, the Jinja implementation of Transformers.js. It always
 * renders with Jinja's trim_blocks and lstrip_blocks on (version 0.5.13).
 */

import { Template } from "@huggingface/jinja";
import { FormatError, optionMismatch } from "./errors.js";
import { generate, type GenerateOptions, type GeneratedPiece, type GenerationSummary } from "./generate.js";
import type { Model } from "./model.js";
import { checkOptionKeys } from "./options.js";
import { SAMPLER_OPTION_KEYS } from "./sampler.js";
import { TEMPLATE_KEY, type ChatFormat, type ChatMessage, type RenderChatOptions } from "./chat-format.js";

/** A rendered and tokenized chat prompt. */
export interface ChatPrompt {
  /** The prompt as the template rendered it, special-token texts included. */
  text: string;
  tokens: number[];
  /** Whether dormant's fallback format was used because the file has no template. */
  fallback: boolean;
}

/** Options of chat(): generation options, without `bos`, since the template places BOS. */
export interface ChatOptions extends Omit<GenerateOptions, "bos" | "stopTokens"> {
  /** Ends the prompt with the opening of an assistant turn (default true). */
  addGenerationPrompt?: boolean;
}

/**
 * Keys of ChatOptions for the unknown-key check. tsc rejects a list that differs from the interface,
 * but not extra keys that come from a spread, so spreading GENERATE_OPTION_KEYS here would let
 * `bos` and `stopTokens` through unnoticed.
 */
export const CHAT_OPTION_KEYS = {
  addGenerationPrompt: true, maxTokens: true, steps: true, stopAtEos: true, signal: true, ...SAMPLER_OPTION_KEYS,
} as const satisfies Record<keyof ChatOptions, true>;

/** Summary of a finished chat() reply: the generation summary plus the prompt and the reply text. */
export interface ChatSummary extends GenerationSummary {
  /** The rendered prompt. */
  prompt: string;
  /** The reply text, without the stop token. */
  text: string;
  fallback: boolean;
}

/**
 * The format used for a file without `tokenizer.chat_template`: one paragraph per message that
 * starts with the capitalized role and a colon, then "Assistant:" as the generation prompt, as in
 * "System: Be brief.\n\nUser: Hi\n\nAssistant:". The tokenizer adds BOS when the vocabulary
 * does so by default.
 */
export const FALLBACK_CHAT_TEMPLATE =
  "{% for message in messages %}" +
  "{{ message['role'] | capitalize + ': ' + message['content'] + '\\n\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";


/** Checks that `messages` is a non-empty array of { role, content } with string values. */
function checkMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages) || messages.length === 0) {
    optionMismatch("chat", {
      source: "messages", field: "length", actual: Array.isArray(messages) ? "0 messages" : typeof messages,
      expected: "an array of at least one { role, content } message",
    });
  }
  messages.forEach((message, i) => {
    for (const key of ["role", "content"] as const) {
      const value = (message as unknown as Record<string, unknown> | null)?.[key];
      if (typeof value !== "string") {
        optionMismatch("chat", {
          source: "messages", field: `messages[${i}].${key}`, actual: value === null ? "null" : typeof value, expected: "a string",
        });
      }
    }
  });
}

/**
 * Renders a Jinja chat template over `messages` with the variables Transformers passes:
 * `messages`, `add_generation_prompt`, `bos_token` and `eos_token`. A template that fails to
 * parse or render, or calls raise_exception, throws a FormatError naming `options.source`.
 */
export function renderChat(template: string, messages: readonly ChatMessage[], options: RenderChatOptions = {}): string {
  checkMessages(messages);
  const source = options.source ?? "chat template";
  try {
    return new Template(template).render({
      messages: messages.map((message) => ({ ...message })),
      add_generation_prompt: options.addGenerationPrompt ?? true,
      bos_token: options.bosToken ?? "",
      eos_token: options.eosToken ?? "",
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new FormatError(
      `chat: ${source}: ${TEMPLATE_KEY} failed to render (${message}), expected a Jinja template over messages, add_generation_prompt, bos_token and eos_token`,
      { source, field: TEMPLATE_KEY, actual: message, expected: "a template that renders" },
    );
  }
}

/**
 * Renders `messages` with the model's chat template (or the fallback format when the file has
 * none) and tokenizes the prompt with special-token texts parsed. A file's template places BOS:
 * a prompt that starts with the BOS text gets the BOS id, and no other BOS is added.
 */
export function chatPrompt(model: Model, messages: readonly ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): ChatPrompt {
  const format = model.chatFormat;
  const fallback = format.template === null;
  const text = renderChat(format.template ?? FALLBACK_CHAT_TEMPLATE, messages, {
    addGenerationPrompt: options.addGenerationPrompt,
    bosToken: format.bosToken,
    eosToken: format.eosToken,
    source: model.source,
  });
  // The fallback format has no special tokens of its own, so message text stays plain text.
  if (fallback) return { text, tokens: model.tokenizer.encode(text, { parseSpecial: false }), fallback };

  // BOS goes in as its id, so it does not depend on how the tokenizer splits the BOS text
  // (a llama2.c tokenizer.bin spells it "\n<s>\n").
  const bos = format.bosToken !== "" && text.startsWith(format.bosToken);
  const body = bos ? text.slice(format.bosToken.length) : text;
  // NOTE: message text is part of the rendered prompt, so a special-token text inside a message
  // (say "<|im_end|>") becomes that token.
  return { text, tokens: model.tokenizer.encode(body, { bos, parseSpecial: true }), fallback };
}

/**
 * Streams the model's reply to `messages`. Options are validated and the prompt is rendered at
 * once, so a bad value or a broken template throws from the call itself. The reply ends at EOS,
 * BOS or the end-of-turn token, or at the limits of GenerateOptions.
 */
export function chat(model: Model, messages: readonly ChatMessage[], options: ChatOptions = {}): AsyncGenerator<GeneratedPiece, ChatSummary> {
  checkOptionKeys("chat", options, CHAT_OPTION_KEYS);
  const { addGenerationPrompt, ...generateOptions } = options;
  const prompt = chatPrompt(model, messages, { addGenerationPrompt });
  const pieces = generate(model, prompt.tokens, { ...generateOptions, stopTokens: model.chatFormat.stopTokens });
  return collectReply(pieces, prompt);
}

async function* collectReply(
  pieces: AsyncGenerator<GeneratedPiece, GenerationSummary>, prompt: ChatPrompt,
): AsyncGenerator<GeneratedPiece, ChatSummary> {
  let text = "";
  try {
    for (;;) {
      const next = await pieces.next();
      if (next.done) return { ...next.value, prompt: prompt.text, text, fallback: prompt.fallback };
      text += next.value.text;
      yield next.value;
    }
  } finally {
    // A consumer that stops early (break, return) closes the decode loop as well.
    await pieces.return(undefined as never);
  }
}

export { readChatFormat, TEMPLATE_KEY } from "./chat-format.js";
export type { ChatFormat, ChatMessage, RenderChatOptions } from "./chat-format.js";
