// Chat templates: rendering (exact prompt strings), tokenization with special tokens, streaming
// until end of turn, and the `dormant chat` command. Fixtures are copies of the random-weight
// architecture models with a chat template added, written to a temp dir.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatPrompt, FALLBACK_CHAT_TEMPLATE, renderChat, type ChatMessage, type ChatOptions } from "../src/chat.js";
import { FormatError, OptionError } from "../src/errors.js";
import { GGUFValueType, metadataEntries, parseGGUF, writeGGUF, type GGUFValue } from "../src/gguf.js";
import { loadModel, type Model } from "../src/model.js";
import type { TensorData } from "../src/types.js";

const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));
const ARCHS = fileURLToPath(new URL("../../shared/fixtures/archs/", import.meta.url));
const TOKENIZERS = fileURLToPath(new URL("../../shared/fixtures/tokenizers/", import.meta.url));
const STORIES = fileURLToPath(new URL("../../shared/models/stories260K.gguf", import.meta.url));
const directory = mkdtempSync(join(tmpdir(), "dormant-chat-"));

/** Qwen2's ChatML template: a default system turn when the conversation has none. */
const CHATML_TEMPLATE = String.raw`{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`;

/** Llama 3 Instruct's template: BOS, then a header and a trimmed body per message, each closed by <|eot_id|>. */
const LLAMA3_TEMPLATE = String.raw`{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}`;

const HI: ChatMessage[] = [{ role: "user", content: "Hi" }];

const CHATML_HI =
  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" +
  "<|im_start|>user\nHi<|im_end|>\n" +
  "<|im_start|>assistant\n";

const LLAMA3_HI =
  "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" +
  "<|start_header_id|>assistant<|end_header_id|>\n\n";

// Special ids of the fixtures: qwen2_style keeps Qwen2's, llama3_chat renames three plain tokens.
const QWEN_ENDOFTEXT = 2045;
const QWEN_IM_START = 2046;
const QWEN_IM_END = 2047;
const LLAMA_START_HEADER = 2043;
const LLAMA_END_HEADER = 2044;
const LLAMA_EOT = 2045;
const LLAMA_BOS = 2046;
const LLAMA_EOS = 2047;

/** Copies a GGUF into the temp dir after `edit` changes its metadata and tensors. */
function copyGGUF(from: string, name: string, edit: (metadata: Map<string, GGUFValue>, tensors: Map<string, TensorData>) => void): string {
  const gguf = parseGGUF(new Uint8Array(readFileSync(from)), from);
  edit(gguf.metadata, gguf.tensors);
  const path = join(directory, name);
  writeFileSync(path, writeGGUF({ metadata: metadataEntries(gguf.metadata), tensors: [...gguf.tensors.values()] }, gguf.alignment));
  return path;
}

function setTemplate(metadata: Map<string, GGUFValue>, template: string): void {
  metadata.set("tokenizer.chat_template", { type: GGUFValueType.STRING, value: template });
}

/**
 * Turns ids 2043..2045 of the truncated Llama 3 vocabulary into Llama 3's chat tokens (CONTROL)
 * and drops the merges that built the three old pieces.
 */
function addLlama3ChatTokens(metadata: Map<string, GGUFValue>): void {
  const tokens = [...(metadata.get("tokenizer.ggml.tokens")!.value as string[])];
  const types = [...(metadata.get("tokenizer.ggml.token_type")!.value as number[])];
  const removed = new Set(tokens.slice(LLAMA_START_HEADER, LLAMA_EOT + 1));
  const chatTokens = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"];
  chatTokens.forEach((text, i) => {
    tokens[LLAMA_START_HEADER + i] = text;
    types[LLAMA_START_HEADER + i] = 3;
  });
  const merges = (metadata.get("tokenizer.ggml.merges")!.value as string[]).filter((merge) => {
    const [left, right] = merge.split(" ");
    return !removed.has(left) && !removed.has(right) && !removed.has(left + right);
  });
  metadata.set("tokenizer.ggml.tokens", { type: GGUFValueType.ARRAY, elementType: GGUFValueType.STRING, value: tokens });
  metadata.set("tokenizer.ggml.token_type", { type: GGUFValueType.ARRAY, elementType: GGUFValueType.INT32, value: types });
  metadata.set("tokenizer.ggml.merges", { type: GGUFValueType.ARRAY, elementType: GGUFValueType.STRING, value: merges });
  metadata.set("tokenizer.ggml.eot_token_id", { type: GGUFValueType.UINT32, value: LLAMA_EOT });
}

/** Replaces row `target` of output.weight by 10 × row `source`, so `target` wins where `source` led with a positive logit. */
function boostOutputRow(tensors: Map<string, TensorData>, source: number, target: number): void {
  const output = tensors.get("output.weight")!;
  const rows = new Float32Array(output.data.slice().buffer);
  const dim = output.dims[0];
  for (let i = 0; i < dim; i++) rows[target * dim + i] = 10 * rows[source * dim + i];
  tensors.set("output.weight", { ...output, data: new Uint8Array(rows.buffer) });
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs dist/cli.js with `input` on stdin (a pipe, so the chat loop reads lines without prompts). */
function dormant(args: string[], input = ""): Promise<Run> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, DORMANT_CACHE: join(directory, "cache") } });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  child.stdin.end(input);
  return new Promise((resolve) => child.on("close", (status) => resolve({ status, stdout, stderr })));
}

async function collect(model: Model, messages: ChatMessage[], options: Parameters<Model["chat"]>[1]) {
  const pieces: { token: number; text: string }[] = [];
  const iterator = model.chat(messages, options);
  for (;;) {
    const next = await iterator.next();
    if (next.done) return { pieces, summary: next.value };
    pieces.push(next.value);
  }
}

let qwenChat: string;
let llamaChat: string;
const models: Model[] = [];

beforeAll(() => {
  qwenChat = copyGGUF(join(ARCHS, "qwen2_style.gguf"), "qwen2_chat.gguf", (metadata) => setTemplate(metadata, CHATML_TEMPLATE));
  llamaChat = copyGGUF(join(ARCHS, "llama3_style.gguf"), "llama3_chat.gguf", (metadata) => {
    addLlama3ChatTokens(metadata);
    setTemplate(metadata, LLAMA3_TEMPLATE);
  });
});

afterAll(() => {
  for (const model of models) model.dispose();
});

async function load(path: string): Promise<Model> {
  const model = await loadModel(path, { precision: "f32" });
  models.push(model);
  return model;
}

describe("renderChat", () => {
  it("chatml with default system", () => {
    expect(renderChat(CHATML_TEMPLATE, HI)).toBe(CHATML_HI);
  });

  it("chatml conversation", () => {
    const messages: ChatMessage[] = [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello." },
      { role: "user", content: "Bye" },
    ];
    expect(renderChat(CHATML_TEMPLATE, messages)).toBe(
      "<|im_start|>system\nBe brief.<|im_end|>\n" +
      "<|im_start|>user\nHi<|im_end|>\n" +
      "<|im_start|>assistant\nHello.<|im_end|>\n" +
      "<|im_start|>user\nBye<|im_end|>\n" +
      "<|im_start|>assistant\n",
    );
  });

  it("chatml without generation prompt", () => {
    expect(renderChat(CHATML_TEMPLATE, HI, { addGenerationPrompt: false })).toBe(
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
    );
  });

  it("llama3 with system and trimmed content", () => {
    const messages: ChatMessage[] = [{ role: "system", content: "Be brief." }, { role: "user", content: "  Hi\n" }];
    expect(renderChat(LLAMA3_TEMPLATE, messages, { bosToken: "<|begin_of_text|>", eosToken: "<|end_of_text|>" })).toBe(
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>" +
      "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" +
      "<|start_header_id|>assistant<|end_header_id|>\n\n",
    );
  });

  it("llama3 template of a vocab file", () => {
    // ggml-vocab-llama-bpe.gguf carries Llama 3's template, which always adds the assistant header.
    const gguf = parseGGUF(new Uint8Array(readFileSync(join(TOKENIZERS, "ggml-vocab-llama-bpe.gguf"))), "llama-bpe");
    const template = gguf.metadata.get("tokenizer.chat_template")!.value as string;
    expect(renderChat(template, HI, { bosToken: "<|begin_of_text|>" })).toBe(LLAMA3_HI);
  });

  it("fallback format", () => {
    const messages: ChatMessage[] = [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }];
    expect(renderChat(FALLBACK_CHAT_TEMPLATE, messages)).toBe("System: Be brief.\n\nUser: Hi\n\nAssistant:");
    expect(renderChat(FALLBACK_CHAT_TEMPLATE, messages, { addGenerationPrompt: false })).toBe("System: Be brief.\n\nUser: Hi\n\n");
  });

  it("syntax error names the file", () => {
    const call = () => renderChat("{% for message in %}{% endfor %}", HI, { source: "broken.gguf" });
    expect(call).toThrow(FormatError);
    expect(call).toThrow(
      "chat: broken.gguf: tokenizer.chat_template failed to render (Unexpected token: CloseStatement), " +
      "expected a Jinja template over messages, add_generation_prompt, bos_token and eos_token",
    );
  });

  it("raise_exception names the file", () => {
    const template = "{% if messages[0]['role'] != 'system' %}{{ raise_exception('Conversations must start with a system message') }}{% endif %}";
    expect(() => renderChat(template, HI, { source: "strict.gguf" })).toThrow(
      "chat: strict.gguf: tokenizer.chat_template failed to render (Conversations must start with a system message), " +
      "expected a Jinja template over messages, add_generation_prompt, bos_token and eos_token",
    );
  });

  it("empty messages", () => {
    const call = () => renderChat(CHATML_TEMPLATE, []);
    expect(call).toThrow(OptionError);
    expect(call).toThrow("chat: messages: length is 0 messages, expected an array of at least one { role, content } message");
  });

  it("message without content", () => {
    const messages = [{ role: "user", content: "Hi" }, { role: "assistant" }] as ChatMessage[];
    expect(() => renderChat(CHATML_TEMPLATE, messages)).toThrow("chat: messages: messages[1].content is undefined, expected a string");
  });
});

describe("chat prompt", () => {
  it("qwen2 special tokens", async () => {
    const model = await load(qwenChat);
    const prompt = chatPrompt(model, HI);
    expect(prompt.text).toBe(CHATML_HI);
    expect(prompt.fallback).toBe(false);
    expect(prompt.tokens.filter((id) => id >= QWEN_ENDOFTEXT)).toEqual([QWEN_IM_START, QWEN_IM_END, QWEN_IM_START, QWEN_IM_END, QWEN_IM_START]);
    expect(prompt.tokens[0]).toBe(QWEN_IM_START);
    expect(model.tokenizer.decode(prompt.tokens, { special: true })).toBe(CHATML_HI);
    expect(model.chatFormat.stopTokens).toEqual([QWEN_ENDOFTEXT, QWEN_IM_END]);
  });

  it("raw text keeps special text plain", async () => {
    const model = await load(qwenChat);
    const ids = model.tokenize(CHATML_HI, { bos: false });
    expect(ids).not.toContain(QWEN_IM_START);
    expect(ids).not.toContain(QWEN_IM_END);
  });

  it("llama3 bos from the template", async () => {
    const model = await load(llamaChat);
    const prompt = chatPrompt(model, HI);
    expect(prompt.text).toBe(LLAMA3_HI);
    const special = prompt.tokens.filter((id) => id >= LLAMA_START_HEADER);
    expect(special).toEqual([LLAMA_BOS, LLAMA_START_HEADER, LLAMA_END_HEADER, LLAMA_EOT, LLAMA_START_HEADER, LLAMA_END_HEADER]);
    expect(prompt.tokens[0]).toBe(LLAMA_BOS);
    expect(model.tokenizer.decode(prompt.tokens, { special: true })).toBe(LLAMA3_HI);
    expect(model.chatFormat.stopTokens).toEqual([LLAMA_EOS, LLAMA_EOT]);
  });

  it("fallback on stories260K", async () => {
    const model = await load(STORIES);
    expect(model.chatFormat.template).toBeNull();
    const prompt = chatPrompt(model, HI);
    expect(prompt.fallback).toBe(true);
    expect(prompt.text).toBe("User: Hi\n\nAssistant:");
    expect(prompt.tokens).toEqual(model.tokenize("User: Hi\n\nAssistant:"));
  });
});

describe("Model.chat", () => {
  it("streams and stops", async () => {
    const model = await load(qwenChat);
    const { pieces, summary } = await collect(model, HI, { maxTokens: 12, seed: 5 });
    expect(pieces.length).toBeGreaterThan(0);
    expect(["eos", "max_tokens"]).toContain(summary.stopReason);
    expect(summary.prompt).toBe(CHATML_HI);
    expect(summary.text).toBe(pieces.map((piece) => piece.text).join(""));
    for (const piece of pieces) expect(model.chatFormat.stopTokens).not.toContain(piece.token);
  });

  for (const [name, fixture, stop] of [["qwen2", "qwen2_style.gguf", QWEN_IM_END], ["llama3", "llama3_style.gguf", LLAMA_EOT]] as const) {
    it(`${name} stops at end of turn`, async () => {
      const template = name === "qwen2" ? CHATML_TEMPLATE : LLAMA3_TEMPLATE;
      const edit = (metadata: Map<string, GGUFValue>) => {
        if (name === "llama3") addLlama3ChatTokens(metadata);
        setTemplate(metadata, template);
      };
      const plain = await load(copyGGUF(join(ARCHS, fixture), `${name}_plain.gguf`, edit));
      const first = (await collect(plain, HI, { temperature: 0, maxTokens: 1 })).summary.tokens.at(-1)!;
      expect(plain.chatFormat.stopTokens).not.toContain(first);

      // The end-of-turn row becomes 10 × the row of the greedy first token, so it wins the first step.
      const stopping = await load(copyGGUF(join(ARCHS, fixture), `${name}_stop.gguf`, (metadata, tensors) => {
        edit(metadata);
        boostOutputRow(tensors, first, stop);
      }));
      const { pieces, summary } = await collect(stopping, HI, { temperature: 0, maxTokens: 16 });
      expect(pieces).toEqual([]);
      expect(summary.stopReason).toBe("eos");
      expect(summary.generatedTokens).toBe(1);
      expect(summary.tokens.at(-1)).toBe(stop);
      expect(summary.text).toBe("");
    });
  }

  it("addGenerationPrompt stays out of generate", async () => {
    const model = await load(qwenChat);
    const { summary } = await collect(model, HI, { addGenerationPrompt: false, temperature: 0, maxTokens: 2 });
    expect(summary.prompt).toBe("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
    expect(summary.generatedTokens).toBeGreaterThan(0);
  });

  it("unknown option on first step", async () => {
    const model = await load(qwenChat);
    const keys = "addGenerationPrompt, maxTokens, steps, stopAtEos, signal, temperature, topK, topP, minP, repetitionPenalty, repetitionWindow, seed";
    const misspelled = model.chat(HI, { addGenerationPromt: false } as ChatOptions);
    await expect(misspelled.next()).rejects.toMatchObject({
      name: "OptionError",
      message: `chat: option addGenerationPromt is not known, expected one of: ${keys} (did you mean addGenerationPrompt?)`,
    });
    // chat() has no bos option, because the template places BOS
    const bos = model.chat(HI, { bos: true } as ChatOptions);
    await expect(bos.next()).rejects.toThrow(`chat: option bos is not known, expected one of: ${keys}`);
  });

  it("broken template on first step", async () => {
    const path = copyGGUF(join(ARCHS, "qwen2_style.gguf"), "broken_call.gguf", (metadata) => setTemplate(metadata, "{{ messages[0]['content'] | no_such_filter }}"));
    const model = await load(path);
    await expect(model.chat(HI).next()).rejects.toThrow(`chat: ${path}: tokenizer.chat_template failed to render (`);
  });

  it("template of wrong type", () => {
    const path = copyGGUF(join(ARCHS, "qwen2_style.gguf"), "template_u32.gguf", (metadata) => {
      metadata.set("tokenizer.chat_template", { type: GGUFValueType.UINT32, value: 7 });
    });
    return expect(loadModel(path)).rejects.toThrow(`loadModel: ${path}: metadata tokenizer.chat_template type is UINT32, expected STRING`);
  });
});

describe("dormant chat", () => {
  it("one message, qwen2", async () => {
    const run = await dormant(["chat", "--model", qwenChat, "--message", "Hi", "--max-tokens", "8", "--seed", "3", "--show-prompt"]);
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(run.status).toBe(0);
    expect(run.stderr.startsWith(`${CHATML_HI}\n`)).toBe(true);
    expect(run.stderr).not.toContain("fallback");
    const promptTokens = chatPrompt(await load(qwenChat), HI).tokens.length;
    expect(run.stderr).toMatch(new RegExp(`\nprompt ${promptTokens} tokens, generated [1-8] tokens, [\\d.]+ tokens/s`));
    expect(run.stdout.trim().length).toBeGreaterThan(0);
  });

  it("json, llama3 with system", async () => {
    const run = await dormant(["chat", "--model", llamaChat, "--system", "Be brief.", "--message", "Hi", "--max-tokens", "6", "--seed", "3", "--json"]);
    expect(run.status).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(Object.keys(result)).toEqual(["prompt", "text", "tokens", "tokens_per_second"]);
    expect(result.prompt).toBe(
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>" +
      "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    expect(result.tokens[0]).toBe(LLAMA_BOS);
    expect(result.tokens.length).toBeGreaterThan(17);
    expect(typeof result.text).toBe("string");
    expect(typeof result.tokens_per_second).toBe("number");
  });

  it("lines from stdin keep the conversation", async () => {
    const run = await dormant(["chat", "--model", qwenChat, "--max-tokens", "5", "--seed", "3", "--json"], "Hi\n\nTell me more\n");
    expect(run.status).toBe(0);
    const turns = run.stdout.trim().split("\n").map((line) => JSON.parse(line));
    expect(turns).toHaveLength(2);
    expect(turns[0].prompt).toBe(CHATML_HI);
    expect(turns[1].prompt).toBe(
      `${CHATML_HI}${turns[0].text}<|im_end|>\n<|im_start|>user\nTell me more<|im_end|>\n<|im_start|>assistant\n`,
    );
  });

  it("fallback note", async () => {
    const run = await dormant(["chat", "--model", STORIES, "--message", "Hi", "--max-tokens", "8", "--show-prompt"]);
    expect(run.status).toBe(0);
    expect(run.stderr.split("\n").slice(0, 3)).toEqual([
      "no chat template in the file; using dormant's fallback format",
      "User: Hi",
      "",
    ]);
    expect(run.stderr).toContain("Assistant:\n");
    expect(run.stdout.length).toBeGreaterThan(1);
  });

  it("broken template", async () => {
    const path = copyGGUF(join(ARCHS, "qwen2_style.gguf"), "broken_cli.gguf", (metadata) => setTemplate(metadata, "{% for message in messages %}{{ message['content'] }"));
    const run = await dormant(["chat", "--model", path, "--message", "Hi"]);
    expect(run.status).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr.trim()).toMatch(
      new RegExp(`^chat: ${path.replace(/[.\\/]/g, "\\$&")}: tokenizer\\.chat_template failed to render \\(.+\\), expected a Jinja template over messages, add_generation_prompt, bos_token and eos_token$`),
    );
  });

  it("words after the options", async () => {
    const run = await dormant(["chat", "--model", qwenChat, "Hi"]);
    expect(run.status).toBe(2);
    expect(run.stderr.trim()).toBe("dormant chat: found 1 words after the options, expected none (pass the message with --message)");
  });
});
