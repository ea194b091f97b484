// Option and argument checks of the public entry points: unknown keys with a suggested spelling,
// arguments of the wrong type, and values that show whether they were strings.

import { readFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from "vitest";
import { CHAT_OPTION_KEYS, type ChatOptions } from "../src/chat.js";
import { OptionError } from "../src/errors.js";
import { readModelFile } from "../src/formats/index.js";
import { GENERATE_OPTION_KEYS, type GenerateOptions } from "../src/generate.js";
import type * as Dormant from "../src/index.js";
import { LOAD_OPTION_KEYS, createModel, loadModel, type LoadOptions, type Model } from "../src/model.js";
import { checkOptionKeys, closestName, describeTypedValue, describeValue } from "../src/options.js";
import { SAMPLER_OPTION_KEYS, type SamplerOptions } from "../src/sampler.js";
import { convertToGGUF, type ConvertOptions } from "../src/convert.js";
import { evaluate, type EvaluateOptions } from "../src/eval/perplexity.js";
import { loadTokenizer, type EncodeOptions } from "../src/tokenizer/index.js";
import { setKernelModules } from "../src/wasm.js";

const GGUF = fileURLToPath(new URL("../../shared/models/stories260K.gguf", import.meta.url));
const DIST_INDEX = fileURLToPath(new URL("../dist/index.js", import.meta.url));

const LOAD_KEYS =
  "precision, tokenizer, contextLength, kernels, onProgress, cache, sparsity, bundles, threads, threadUrl, worker, " +
  "catalog, searchDirectories, cacheDirectory, download, allowUnverified, signal, fetch, where";
const GENERATE_KEYS =
  "maxTokens, steps, stopAtEos, stopTokens, bos, signal, temperature, topK, topP, minP, repetitionPenalty, repetitionWindow, seed";

/** Runs `run` and checks that it throws an OptionError with exactly `message`. */
async function expectOptionError(run: () => unknown, message: string): Promise<void> {
  let caught: unknown;
  try {
    await run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(OptionError);
  expect((caught as Error).message).toBe(message);
}

describe("key lists", () => {
  it("match the interfaces", () => {
    // The type checks run under tsc (npx tsc --noEmit -p .), not vitest. tsc fails here and at each
    // list's `satisfies` when a key is added to the interface or the list only.
    expectTypeOf<keyof typeof LOAD_OPTION_KEYS>().toEqualTypeOf<keyof LoadOptions>();
    expectTypeOf<keyof typeof GENERATE_OPTION_KEYS>().toEqualTypeOf<keyof GenerateOptions>();
    expectTypeOf<keyof typeof CHAT_OPTION_KEYS>().toEqualTypeOf<keyof ChatOptions>();
    expectTypeOf<keyof typeof SAMPLER_OPTION_KEYS>().toEqualTypeOf<keyof SamplerOptions>();
    expect(Object.keys(LOAD_OPTION_KEYS).join(", ")).toBe(LOAD_KEYS);
    expect(Object.keys(GENERATE_OPTION_KEYS).join(", ")).toBe(GENERATE_KEYS);
    expect(Object.keys(CHAT_OPTION_KEYS)).not.toContain("bos");
    expect(Object.keys(CHAT_OPTION_KEYS)).not.toContain("stopTokens");
  });
});

describe("closestName", () => {
  const names = ["precision", "threads", "contextLength", "maxTokens", "topK", "topP"];

  it("suggests near spellings", () => {
    expect(closestName("precison", names)).toBe("precision");
    expect(closestName("thread", names)).toBe("threads");
    expect(closestName("maxtokens", names)).toBe("maxTokens");
    expect(closestName("contextLenght", names)).toBe("contextLength");
    expect(closestName("topk", names)).toBe("topK");
  });

  it("stays quiet for far names", () => {
    expect(closestName("temp", names)).toBeUndefined();
    expect(closestName("context", names)).toBeUndefined();
    expect(closestName("x", names)).toBeUndefined();
  });
});

describe("describeValue", () => {
  it("quotes strings", () => {
    expect(describeValue("5")).toBe('"5" (a string)');
    expect(describeValue(5)).toBe("5");
    expect(describeValue("x".repeat(50))).toBe(`"${"x".repeat(40)}"… (a string)`);
  });

  it("names other types", () => {
    expect(describeValue(null)).toBe("null");
    expect(describeValue(undefined)).toBe("undefined");
    expect(describeValue(3n)).toBe("3n");
    expect(describeValue([1])).toBe("an array");
    expect(describeValue({})).toBe("an object");
    expect(describeValue(new Map())).toBe("an object (Map)");
    expect(describeValue(() => 1)).toBe("a function");
  });

  it("typed variant adds type", () => {
    expect(describeTypedValue(42)).toBe("42 (a number)");
    expect(describeTypedValue(true)).toBe("true (a boolean)");
    expect(describeTypedValue(3n)).toBe("3n (a bigint)");
    expect(describeTypedValue("a")).toBe('"a" (a string)');
  });
});

describe("checkOptionKeys", () => {
  const known = { alpha: true, beta: true } as const;

  it("accepts known and absent", () => {
    expect(() => checkOptionKeys("f", undefined, known)).not.toThrow();
    expect(() => checkOptionKeys("f", {}, known)).not.toThrow();
    expect(() => checkOptionKeys("f", { alpha: 1, beta: undefined }, known)).not.toThrow();
  });

  it("rejects unknown keys", async () => {
    await expectOptionError(() => checkOptionKeys("f", { alpah: 1 }, known), "f: option alpah is not known, expected one of: alpha, beta (did you mean alpha?)");
    // a misspelled key counts even when its value is undefined
    await expectOptionError(() => checkOptionKeys("f", { gamma: undefined }, known), "f: option gamma is not known, expected one of: alpha, beta");
  });

  it("rejects non-objects", async () => {
    await expectOptionError(() => checkOptionKeys("f", null, known), "f: arguments: options is null, expected an object");
    await expectOptionError(() => checkOptionKeys("f", 3, known), "f: arguments: options is 3 (a number), expected an object");
    await expectOptionError(() => checkOptionKeys("f", "fast", known), 'f: arguments: options is "fast" (a string), expected an object');
    await expectOptionError(() => checkOptionKeys("f", [], known), "f: arguments: options is an array, expected an object");
  });

  it("error fields", () => {
    let caught: OptionError | undefined;
    try {
      checkOptionKeys("f", { alpah: 1 }, known);
    } catch (error) {
      caught = error as OptionError;
    }
    expect(caught?.source).toBe("option alpah");
    expect(caught?.field).toBe("alpah");
    expect(caught?.actual).toBe("not known");
    expect(caught?.expected).toBe("one of: alpha, beta");
  });
});

describe("loadModel options", () => {
  it("misspelled key", async () => {
    await expectOptionError(
      () => loadModel(GGUF, { precison: "f32" } as LoadOptions),
      `loadModel: option precison is not known, expected one of: ${LOAD_KEYS} (did you mean precision?)`,
    );
  });

  it("worker mode adds workerUrl", async () => {
    await expectOptionError(
      () => loadModel(GGUF, { worker: true, thread: 2 } as unknown as LoadOptions),
      `loadModel: option thread is not known, expected one of: ${LOAD_KEYS}, workerUrl (did you mean threads?)`,
    );
    await expectOptionError(
      () => loadModel(GGUF, { workerUrl: "worker.js" } as unknown as LoadOptions),
      `loadModel: option workerUrl is not known, expected one of: ${LOAD_KEYS}`,
    );
  });

  it("options not an object", async () => {
    await expectOptionError(() => loadModel(GGUF, "f32" as unknown as LoadOptions), 'loadModel: arguments: options is "f32" (a string), expected an object');
  });

  it("string numbers quoted", async () => {
    await expectOptionError(
      () => loadModel(GGUF, { threads: "2" as unknown as number }),
      'loadModel: option threads is "2" (a string), expected an integer in [1, 64]',
    );
    await expectOptionError(
      () => loadModel(GGUF, { contextLength: "64" as unknown as number }),
      'loadModel: option contextLength is "64" (a string), expected an integer in [1, 512] (the model\'s context length)',
    );
  });

  it("createModel checks keys", async () => {
    const file = readModelFile(new Uint8Array(readFileSync(GGUF)), GGUF);
    await expectOptionError(
      () => createModel(file, { contextLenght: 64 } as LoadOptions),
      `createModel: option contextLenght is not known, expected one of: ${LOAD_KEYS} (did you mean contextLength?)`,
    );
  });
});

describe("other entry points", () => {
  const bytes = new Uint8Array(readFileSync(GGUF));

  it("createModel checks precision and kernels", async () => {
    const file = readModelFile(bytes, GGUF);
    await expectOptionError(
      () => createModel(file, { precision: "f16" as "f32" }),
      'createModel: option precision is "f16", expected "int8" or "f32"',
    );
    await expectOptionError(
      () => createModel(file, { kernels: "bogus" as "auto" }),
      'createModel: option kernels is "bogus", expected "auto", "exact" or "relaxed"',
    );
  });

  it("evaluate checks keys and maxTokens", async () => {
    const model = await loadModel(GGUF, { contextLength: 64 });
    await expectOptionError(
      () => evaluate(model, "Once upon a time.", { maxtokens: 5 } as EvaluateOptions),
      "evaluate: option maxtokens is not known, expected one of: reference, maxTokens, onProgress, signal (did you mean maxTokens?)",
    );
    await expectOptionError(() => evaluate(model, "Once upon a time.", { maxTokens: -5 }), "evaluate: option maxTokens is -5, expected an integer ≥ 1");
    await expectOptionError(() => evaluate(model, "Once upon a time.", { maxTokens: 2.5 }), "evaluate: option maxTokens is 2.5, expected an integer ≥ 1");
    model.dispose();
  });

  it("tokenizer encode and decode", async () => {
    const tokenizer = loadTokenizer(bytes, "stories260K.gguf");
    expect(tokenizer.encode("Once", { bos: true })).toEqual([1, 403]);
    await expectOptionError(
      () => tokenizer.encode("Once", { boss: true } as EncodeOptions),
      "encode: option boss is not known, expected one of: bos, eos, parseSpecial (did you mean bos?)",
    );
    await expectOptionError(() => tokenizer.encode(null as unknown as string), "encode: arguments: text is null, expected a string");
    await expectOptionError(
      () => tokenizer.decode([403], { specail: true } as { special?: boolean }),
      "decode: option specail is not known, expected one of: special, cleanSpaces (did you mean special?)",
    );
  });

  it("convertToGGUF options", async () => {
    const file = readModelFile(bytes, GGUF);
    await expectOptionError(
      () => convertToGGUF(file, undefined as unknown as ConvertOptions),
      'convertToGGUF: arguments: options is undefined, expected an object such as { type: "q8_0" }',
    );
    await expectOptionError(
      () => convertToGGUF(file, { type: "f32", extra: 1 } as ConvertOptions),
      "convertToGGUF: option extra is not known, expected one of: type",
    );
  });

  it("setKernelModules names", async () => {
    await expectOptionError(
      () => setKernelModules({ exact: "/nowhere.wasm" } as Parameters<typeof setKernelModules>[0]),
      "setKernelModules: option exact is not known, expected one of: simd128, relaxed-simd, simd128-threads, relaxed-simd-threads",
    );
  });
});

describe("Model arguments", () => {
  let model: Model;

  beforeAll(async () => {
    model = await loadModel(GGUF, { contextLength: 64 });
  });
  afterAll(() => model.dispose());

  it("tokenize text type", async () => {
    await expectOptionError(() => model.tokenize(null as unknown as string), "tokenize: arguments: text is null, expected a string");
    await expectOptionError(() => model.tokenize(7 as unknown as string), "tokenize: arguments: text is 7 (a number), expected a string");
    await expectOptionError(() => model.tokenize(["Once"] as unknown as string), "tokenize: arguments: text is an array, expected a string");
  });

  it("tokenize options", async () => {
    expect(model.tokenize("Once", { bos: false })).toEqual([403]);
    await expectOptionError(
      () => model.tokenize("Once", { bso: false } as { bos?: boolean }),
      "tokenize: option bso is not known, expected one of: bos (did you mean bos?)",
    );
    await expectOptionError(
      () => model.tokenize("Once", { bos: "no" as unknown as boolean }),
      'tokenize: option bos is "no" (a string), expected true or false',
    );
  });

  it("detokenize ids type", async () => {
    expect(model.detokenize(Int32Array.of(403) as unknown as number[])).toBe("Once");
    await expectOptionError(() => model.detokenize(null as unknown as number[]), "detokenize: arguments: ids is null, expected an array of token ids");
    await expectOptionError(() => model.detokenize("403" as unknown as number[]), 'detokenize: arguments: ids is "403" (a string), expected an array of token ids');
  });

  it("generate options not an object", async () => {
    await expectOptionError(() => model.generate("Once", null as unknown as GenerateOptions), "generate: arguments: options is null, expected an object");
  });
});

describe("worker mode", () => {
  let dormant: typeof Dormant;

  beforeAll(async () => {
    dormant = (await import(pathToFileURL(DIST_INDEX).href)) as typeof Dormant;
  });

  it("keys survive postMessage", async () => {
    const model = await dormant.loadModel(GGUF, { worker: true, precision: "f32", contextLength: 48, threads: 1, kernels: "exact", cache: false });
    try {
      expect(model.precision).toBe("f32");
      expect(model.config.seq_len).toBe(48);
      let summary: Dormant.GenerationSummary | undefined;
      const pieces = model.generate("Once", { maxTokens: 2, temperature: 0, stopAtEos: false, topK: 5, repetitionWindow: 8 });
      for (;;) {
        const next = await pieces.next();
        if (next.done) {
          summary = next.value;
          break;
        }
      }
      expect(summary.generatedTokens).toBe(2);
      expect(summary.stopReason).toBe("max_tokens");

      const misspelled = model.generate("Once", { maxtoken: 2 } as GenerateOptions);
      await expect(misspelled.next()).rejects.toMatchObject({
        name: "OptionError",
        message: `generate: option maxtoken is not known, expected one of: ${GENERATE_KEYS} (did you mean maxTokens?)`,
        field: "maxtoken",
      });
      await expect(model.tokenize(null as unknown as string)).rejects.toMatchObject({
        name: "OptionError",
        message: "tokenize: arguments: text is null, expected a string",
      });
    } finally {
      model.dispose();
    }
  });
});
