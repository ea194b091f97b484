// The generation loop: stop conditions, streaming, determinism and cancellation.

import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import type { GenerateOptions } from "../src/generate.js";
import { loadModel, type Model } from "../src/model.js";

const GGUF = fileURLToPath(new URL("../../shared/models/stories260K.gguf", import.meta.url));

async function drain(iterator: AsyncGenerator<{ token: number; text: string }, { tokens: number[]; stopReason: string; generatedTokens: number }>) {
  let text = "";
  for (;;) {
    const next = await iterator.next();
    if (next.done) return { text, summary: next.value };
    text += next.value.text;
  }
}

describe("generate", () => {
  let model: Model;

  beforeAll(async () => {
    model = await loadModel(GGUF);
  });

  it("stops at maxTokens", async () => {
    const { summary } = await drain(model.generate("Once upon a time", { maxTokens: 7, temperature: 0 }));
    expect(summary.generatedTokens).toBe(7);
    expect(summary.stopReason).toBe("max_tokens");
  });

  it("stops at steps like llama2.c", async () => {
    const { summary } = await drain(model.generate("Once upon a time", { steps: 20, temperature: 0 }));
    // positions 0..19 run and the prompt fills 5 of them, so 16 tokens are sampled
    expect(summary.tokens).toHaveLength(21);
    expect(summary.stopReason).toBe("steps");
  });

  it("stops when the context is full", async () => {
    const small = await loadModel(GGUF, { contextLength: 24 });
    const { summary } = await drain(small.generate("Once upon a time", { temperature: 0, stopAtEos: false }));
    expect(summary.tokens).toHaveLength(25);
    expect(summary.stopReason).toBe("context");
  });

  it("streamed text equals detokenized ids", async () => {
    const { text, summary } = await drain(model.generate("Once upon a time", { maxTokens: 40, seed: 3 }));
    expect(text).toBe(model.detokenize(summary.tokens.slice(5)));
  });

  it("same seed gives same tokens", async () => {
    const first = await drain(model.generate("Once upon a time", { maxTokens: 30, seed: 11, temperature: 1 }));
    const second = await drain(model.generate("Once upon a time", { maxTokens: 30, seed: 11, temperature: 1 }));
    expect(second.summary.tokens).toEqual(first.summary.tokens);
  });

  it("abort signal stops a running generation", async () => {
    const controller = new AbortController();
    const iterator = model.generate("Once upon a time", { temperature: 0, stopAtEos: false, signal: controller.signal });
    await iterator.next();
    controller.abort(new Error("stopped by the test"));
    await expect(drain(iterator)).rejects.toThrow("stopped by the test");
  });

  it("an aborted signal rejects the first step", async () => {
    const controller = new AbortController();
    controller.abort();
    const iterator = model.generate("Once upon a time", { signal: controller.signal });
    await expect(iterator.next()).rejects.toThrow(/abort/i);
  });

  it("bad options throw at the call", () => {
    expect(() => model.generate("hi", { maxTokens: 0 })).toThrow("generate: option maxTokens is 0, expected an integer ≥ 1");
    expect(() => model.generate([1, 99999])).toThrow("generate: tokens: token 1 is 99999, expected an integer in [0, 511]");
    expect(() => model.generate("", { bos: false })).toThrow("generate: prompt: length is 0 tokens, expected at least 1 token (pass a non-empty prompt or set bos: true)");
  });

  it("string counts are quoted", () => {
    expect(() => model.generate("hi", { maxTokens: "5" as unknown as number })).toThrow('generate: option maxTokens is "5" (a string), expected an integer ≥ 1');
    expect(() => model.generate("hi", { steps: "20" as unknown as number })).toThrow('generate: option steps is "20" (a string), expected an integer in [1, 512]');
    expect(() => model.generate([1, "2" as unknown as number])).toThrow('generate: tokens: token 1 is "2" (a string), expected an integer in [0, 511]');
  });

  it("prompt of wrong type", () => {
    const expected = "expected a string, or an array of token ids";
    expect(() => model.generate(42 as unknown as string)).toThrow(`generate: arguments: prompt is 42 (a number), ${expected}`);
    expect(() => model.generate(null as unknown as string)).toThrow(`generate: arguments: prompt is null, ${expected}`);
    expect(() => model.generate({ text: "hi" } as unknown as string)).toThrow(`generate: arguments: prompt is an object, ${expected}`);
  });

  it("typed array prompt", async () => {
    const { summary } = await drain(model.generate(Int32Array.of(1, 403) as unknown as number[], { maxTokens: 3, temperature: 0 }));
    expect(summary.tokens.slice(0, 2)).toEqual([1, 403]);
    expect(summary.generatedTokens).toBe(3);
  });

  it("misspelled option throws", () => {
    expect(() => model.generate("Once", { maxtokens: 3 } as GenerateOptions)).toThrow(
      "generate: option maxtokens is not known, expected one of: maxTokens, steps, stopAtEos, stopTokens, bos, signal, " +
      "temperature, topK, topP, minP, repetitionPenalty, repetitionWindow, seed (did you mean maxTokens?)",
    );
  });
});
