/** The `dormant chat` command: replies through the model's chat template, to --message or to stdin lines. */

import { OptionError } from "../errors.js";
import type { OptionSpecs, ParsedArgs } from "../args.js";
import type { SparsityMode } from "../model.js";
import { validateSamplerOptions } from "../sampler.js";
import { chatPrompt, type ChatMessage, type ChatOptions, type ChatSummary } from "../chat.js";
import { loadModelArgument, modelOptions, resolveModelArgument, samplingOptions, setModeOption, stderr, stdout, writeJson } from "./common.js";
import { generateOptions, summaryLine } from "./generate.js";

export const chatOptions: OptionSpecs = {
  ...modelOptions,
  message: { kind: "string", help: "one user message: print the reply and exit (default: read one message per line from stdin)" },
  system: { kind: "string", help: "system message placed before the conversation" },
  "show-prompt": { kind: "boolean", help: "print each rendered prompt on stderr before the reply" },
  "max-tokens": generateOptions["max-tokens"],
  temperature: generateOptions.temperature,
  "top-p": generateOptions["top-p"],
  "top-k": generateOptions["top-k"],
  "min-p": generateOptions["min-p"],
  "repeat-penalty": generateOptions["repeat-penalty"],
  seed: generateOptions.seed,
};

/**
 * Replies to one message (--message) or to each line read from stdin, keeping the conversation:
 * every turn renders the whole conversation again and runs it from position 0.
 */
export async function runChat(args: ParsedArgs): Promise<void> {
  const { options, positionals } = args;
  if (positionals.length > 0) {
    throw new OptionError(`dormant chat: found ${positionals.length} words after the options, expected none (pass the message with --message)`, {
      source: "arguments", field: "message", actual: `${positionals.length} words`, expected: "none",
    });
  }
  // Options are checked before the model loads, so an error is the only line printed.
  validateSamplerOptions(samplingOptions(args), "chat");
  const model = await loadModelArgument("chat", args, await resolveModelArgument("chat", args));
  if (options.mode) setModeOption("chat", model, options.mode as SparsityMode);
  if (model.chatFormat.template === null) stderr.write("no chat template in the file; using dormant's fallback format\n");
  const messages: ChatMessage[] = [];
  if (options.system !== undefined) messages.push({ role: "system", content: options.system as string });
  const chatSettings: ChatOptions = samplingOptions(args);

  const reply = async (content: string): Promise<void> => {
    messages.push({ role: "user", content });
    if (options["show-prompt"]) stderr.write(`${chatPrompt(model, messages).text}\n`);
    const iterator = model.chat(messages, chatSettings);
    let summary: ChatSummary;
    for (;;) {
      const next = await iterator.next();
      if (next.done) {
        summary = next.value;
        break;
      }
      if (!options.json) stdout.write(next.value.text);
    }
    messages.push({ role: "assistant", content: summary.text });
    if (options.json) {
      writeJson({ prompt: summary.prompt, text: summary.text, tokens: summary.tokens, tokens_per_second: summary.tokensPerSecond });
    } else {
      stdout.write("\n");
    }
    if (!options.quiet) stderr.write(summaryLine(summary, model));
  };

  if (options.message !== undefined) {
    await reply(options.message as string);
  } else {
    const { createInterface } = await import("node:readline");
    const interactive = Boolean(process.stdin.isTTY);
    // The "> " prompt goes to stderr, so stdout carries only replies.
    const lines = createInterface({ input: process.stdin, output: interactive ? stderr : undefined, terminal: interactive });
    if (interactive) {
      stderr.write("Type a message and press Enter; Ctrl-D ends the chat.\n");
      lines.setPrompt("> ");
      lines.prompt();
    }
    try {
      for await (const line of lines) {
        if (line.trim() !== "") await reply(line);
        if (interactive) lines.prompt();
      }
    } finally {
      // A failed turn must not leave stdin open, or the process would wait for more input.
      lines.close();
    }
  }
  model.dispose();
}
