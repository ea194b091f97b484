// End-to-end tests of the `dormant` command as a user runs it: stdout, stderr, exit code.
// They run dist/cli.js, which `npm test` builds first.

import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SHARED_MODELS, cliRunner, writeOneModelCatalog, type Run } from "./helpers/cli.js";
import { writeGGUF, parseGGUF, metadataEntries } from "../src/gguf.js";

const GGUF = join(SHARED_MODELS, "stories260K.gguf");
const BIN = join(SHARED_MODELS, "stories260K.bin");
const TOKENIZER = join(SHARED_MODELS, "tok512.bin");
const directory = mkdtempSync(join(tmpdir(), "dormant-cli-"));

const dormant = cliRunner(directory);

/**
 * Asserts a clean failure: the exit code, no stack trace, and the message as the last line
 * of stderr (a finished progress bar may come before it).
 */
function expectFailure(run: Run, status: number, message: string | RegExp): void {
  expect(run.status).toBe(status);
  expect(run.stdout).toBe("");
  expect(run.stderr).not.toMatch(/\n\s+at /);
  const lastLine = run.stderr.trim().split("\n").pop();
  if (typeof message === "string") expect(lastLine).toBe(message);
  else expect(lastLine).toMatch(message);
}

function writeBadFile(name: string, bytes: Uint8Array): string {
  const path = join(directory, name);
  writeFileSync(path, bytes);
  return path;
}

describe("dormant generate", () => {
  it("prints a story from stories260K", async () => {
    const run = await dormant(["generate", "--seed", "7", "--max-tokens", "64", "Once upon a time"]);
    expect(run.status).toBe(0);
    expect(run.stdout.startsWith("Once upon a time")).toBe(true);
    expect(run.stdout.length).toBeGreaterThan(100);
    expect(run.stderr).toMatch(/^prompt 5 tokens, generated 64 tokens, [\d.]+ tokens\/s, precision int8, kernels simd128, threads 1\n$/);
  });

  it("matches llama2.c greedy text in f32", async () => {
    const run = await dormant(["generate", "--precision", "f32", "--temperature", "0", "--steps", "256", "--quiet", "Once upon a time"]);
    const expected = readFileSync(new URL("../../shared/reference/greedy/once_upon_a_time.txt", import.meta.url), "utf8");
    expect(run.status).toBe(0);
    expect(run.stdout).toBe(expected);
    expect(run.stderr).toBe("");
  });

  it("prints one JSON object with --json", async () => {
    const run = await dormant(["generate", "--json", "--temperature", "0", "--max-tokens", "20", "Once upon a time"]);
    expect(run.status).toBe(0);
    const json = JSON.parse(run.stdout);
    expect(Object.keys(json).sort()).toEqual(["text", "tokens", "tokens_per_second"]);
    expect(json.tokens.slice(0, 5)).toEqual([1, 403, 407, 261, 378]);
    expect(json.tokens).toHaveLength(25);
    expect(json.text.startsWith("Once upon a time")).toBe(true);
    expect(json.tokens_per_second).toBeGreaterThan(0);
  });

  it("prints every byte of a prompt outside the vocabulary", async () => {
    const run = await dormant(["generate", "--max-tokens", "1", "--quiet", "--", "Café ☕ 😀"]);
    expect(run.status).toBe(0);
    expect(run.stdout.startsWith("Café ☕ 😀")).toBe(true);
  });

  it("reads a llama2.c checkpoint with --tokenizer", async () => {
    const run = await dormant(["generate", "--model", BIN, "--tokenizer", TOKENIZER, "--temperature", "0", "--max-tokens", "8", "--quiet", "Once upon a time"]);
    expect(run.status).toBe(0);
    expect(run.stdout).toBe("Once upon a time, there was a little girl\n");
  });
});

describe("dormant eval, convert, info, tokenize", () => {
  it("eval --perplexity --json reports perplexity, tokens and precision", async () => {
    const text = join(directory, "text.txt");
    writeFileSync(text, "Once upon a time, there was a little girl named Lily. She loved to play.\n<|endoftext|>\n");
    const run = await dormant(["eval", "--perplexity", "--text", text, "--json"]);
    expect(run.status).toBe(0);
    const json = JSON.parse(run.stdout);
    expect(Object.keys(json).sort()).toEqual(["perplexity", "precision", "tokens"]);
    expect(json.precision).toBe("int8");
    expect(json.perplexity).toBeGreaterThan(1);
    expect(json.perplexity).toBeLessThan(20);
  });

  it("convert writes a q8_0 GGUF that generates", async () => {
    const out = join(directory, "stories260K.q8_0.gguf");
    const convert = await dormant(["convert", "--model", BIN, "--tokenizer", TOKENIZER, "--type", "q8_0", "--out", out]);
    expect(convert.status).toBe(0);
    expect(convert.stderr).toMatch(/^wrote .*stories260K\.q8_0\.gguf: \d+ bytes, 47 tensors, type q8_0\n$/);
    const info = await dormant(["info", "--model", out, "--json"]);
    const json = JSON.parse(info.stdout);
    expect(json.config.dim).toBe(64);
    expect(json.tensors.find((t: { name: string }) => t.name === "blk.0.attn_q.weight").type).toBe("Q8_0");
    expect(json.tensors.find((t: { name: string }) => t.name === "blk.0.ffn_down.weight").type).toBe("F32");
    const generate = await dormant(["generate", "--model", out, "--max-tokens", "16", "--quiet", "Once upon a time"]);
    expect(generate.status).toBe(0);
    expect(generate.stdout.startsWith("Once upon a time")).toBe(true);
  });

  it("tokenize prints ids and pieces", async () => {
    const run = await dormant(["tokenize", "--bos", "--json", "--pieces", "Once upon a time"]);
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ tokens: [1, 403, 407, 261, 378], pieces: ["\n<s>\n", "▁Once", "▁upon", "▁a", "▁time"] });
  });
});

describe("dormant calibrate and eval against", () => {
  const sample = readFileSync(new URL("../../shared/data/tinystories-valid-sample.txt", import.meta.url), "utf8");
  const stories = sample.split("<|endoftext|>").filter((story) => story.trim() !== "");
  const half = Math.floor(stories.length / 2);

  it("calibrates and reports predictor recall per layer", async () => {
    const train = join(directory, "train.txt");
    const heldOut = join(directory, "heldout.txt");
    writeFileSync(train, stories.slice(0, half).join("<|endoftext|>"));
    writeFileSync(heldOut, stories.slice(half).join("<|endoftext|>"));
    const out = join(directory, "s50.gguf");
    const calibrate = await dormant(["calibrate", "--text", train, "--sparsity", "0.5", "--max-tokens", "4000", "--out", out, "--json"]);
    expect(calibrate.status).toBe(0);
    expect(JSON.parse(calibrate.stdout).thresholds).toHaveLength(5);

    const run = await dormant(["eval", "--model", out, "--text", heldOut, "--max-tokens", "2000", "--mode", "predicted", "--against", "dense", "--json"]);
    expect(run.status).toBe(0);
    const json = JSON.parse(run.stdout);
    for (const key of ["perplexity", "against_perplexity", "top1_agreement", "mean_kl", "kept_fraction", "layers"]) expect(json, key).toHaveProperty(key);
    expect(json.mode).toBe("predicted");
    expect(json.against).toBe("dense");
    expect(json.layers).toHaveLength(5);
    for (const layer of json.layers) {
      expect(layer.recall_mass).toBeGreaterThan(0.95);
      expect(layer.recall_count).toBeGreaterThan(0.9);
      expect(layer.precision).toBeGreaterThan(0.3);
      expect(layer.kept_fraction).toBeLessThan(0.6);
    }
  });

  it("rejects out-of-range sparsity and rank", async () => {
    const text = join(directory, "calibration.txt");
    writeFileSync(text, sample);
    const out = join(directory, "bad.gguf");
    expectFailure(await dormant(["calibrate", "--text", text, "--sparsity", "1.2", "--out", out]), 2,
      "calibrate: option --sparsity is 1.2, expected a number in [0, 0.99]");
    expectFailure(await dormant(["calibrate", "--text", text, "--sparsity", "0.5", "--rank", "65", "--out", out]), 2,
      /^calibrate: option --rank is 65, expected an integer in \[1, 64\]/);
  });

  it("rejects calibration text too short for the statistics", async () => {
    const text = join(directory, "short.txt");
    writeFileSync(text, "Once upon a time, there was a cat.\n<|endoftext|>\n");
    expectFailure(await dormant(["calibrate", "--text", text, "--sparsity", "0.5", "--out", join(directory, "short.gguf")]), 1,
      /^calibrate: .*short\.txt: calibration tokens is \d+, expected at least 256 = max\(4·dim, 256\) for dim = 64/);
  });
});

describe("dormant bench", () => {
  it("prints rows with speed and stage times as JSON", async () => {
    const run = await dormant(["bench", "--models", "stories260K", "--precision", "int8", "--runs", "1", "--tokens", "4", "--json"]);
    expect(run.status).toBe(0);
    const { rows } = JSON.parse(run.stdout);
    expect(rows).toHaveLength(1);
    expect(rows[0].model).toBe("stories260K");
    expect(rows[0].decode_tokens_per_second).toBeGreaterThan(0);
    expect(rows[0].prefill_tokens_per_second).toBeGreaterThan(0);
    expect(Object.keys(rows[0].ms_per_token).sort()).toEqual(["attention", "classifier", "ffn", "other", "predictor"]);
    expect(rows[0].ms_per_token.predictor).toBe(0);
  });

  it("runs each kept fraction and thread count as its own row", async () => {
    const run = await dormant([
      "bench", "--models", "stories260K", "--precision", "int8,f32", "--keep", "1,0.5", "--threads", "1,2", "--runs", "1", "--tokens", "4", "--json",
    ]);
    expect(run.status, run.stderr).toBe(0);
    const { rows } = JSON.parse(run.stdout);
    // f32 runs dense only: int8 keep 1 and 0.5, f32 keep 1, each on 1 and 2 threads
    expect(rows.map((row: { precision: string; keep: number; threads: number }) => `${row.precision} ${row.keep} ${row.threads}`)).toEqual([
      "int8 1 1", "int8 1 2", "int8 0.5 1", "int8 0.5 2", "f32 1 1", "f32 1 2",
    ]);
    const sparse = rows[2];
    expect(sparse.ms_per_token.predictor).toBeGreaterThan(0);
    expect(sparse.kept_fraction).toBeGreaterThan(0.2);
    expect(sparse.kept_fraction).toBeLessThan(0.8);
    expect(rows[0].kept_fraction).toBe(1);
  });

  it("rejects a kept fraction outside (0, 1]", async () => {
    expectFailure(await dormant(["bench", "--keep", "0"]), 2, 'dormant bench: option --keep has "0", expected fractions in (0, 1]');
    expectFailure(await dormant(["bench", "--keep", "abc"]), 2, 'dormant bench: option --keep has "abc", expected fractions in (0, 1]');
  });

  it("rejects sparse settings without int8", async () => {
    expectFailure(await dormant(["bench", "--keep", "0.5", "--precision", "f32"]), 2,
      'dormant bench: option --keep has fractions below 1, which run int8 only, but --precision is "f32"; add int8');
  });

  it("rejects --out in a missing folder before running", async () => {
    const out = join(directory, "no-such-folder", "bench.json");
    expectFailure(await dormant(["bench", "--out", out]), 2,
      `dormant bench: option --out is "${out}", but its folder ${join(directory, "no-such-folder")} does not exist; expected a file in an existing folder`);
  });

  it("rejects an unknown model", async () => {
    expectFailure(await dormant(["bench", "--models", "gpt4"]), 2,
      'dormant bench: option --models is "gpt4", expected one of stories260K, stories15M, stories110M, llama-1b');
  });
});

describe("convert of other files", () => {
  it("keeps a byte-level BPE tokenizer through q8_0", async () => {
    const source = fileURLToPath(new URL("../../shared/fixtures/archs/qwen2_style.gguf", import.meta.url));
    const out = join(directory, "qwen2.q8_0.gguf");
    const convert = await dormant(["convert", "--model", source, "--type", "q8_0", "--out", out, "--quiet"]);
    expect(convert.status).toBe(0);
    const before = JSON.parse((await dormant(["tokenize", "--model", source, "--json", "Hello world 123"])).stdout);
    const after = JSON.parse((await dormant(["tokenize", "--model", out, "--json", "Hello world 123"])).stdout);
    expect(after.tokens).toEqual(before.tokens);
  });

  it("rejects --out naming the input", async () => {
    const copy = join(directory, "same.gguf");
    writeFileSync(copy, readFileSync(GGUF));
    expectFailure(await dormant(["convert", "--model", copy, "--out", copy]), 2,
      `dormant convert: option --out is "${copy}", which is the input file ${copy}; expected a path other than the input (the command would replace its own input)`);
    expect(readFileSync(copy).equals(readFileSync(GGUF))).toBe(true);
  });

  it("rejects steps shorter than the prompt", async () => {
    expectFailure(await dormant(["generate", "--steps", "3", "Once upon a time"]), 2,
      "generate: option --steps is 3, expected at least 5, the prompt's token count (steps counts positions, prompt included)");
  });
});

describe("bad input", () => {
  const source = readFileSync(GGUF);

  it("truncated file", async () => {
    const path = writeBadFile("truncated.gguf", source.subarray(0, 600_000));
    expectFailure(await dormant(["generate", "--model", path, "hi"]), 1,
      `parseGGUF: ${path}: tensor blk.1.ffn_up.weight data is 4192 bytes present (file ends at byte 600000), expected 44032 bytes at byte 595808 for F32 [64, 172] (truncated file)`);
  });

  it("wrong magic", async () => {
    const bytes = Uint8Array.from(source);
    bytes.set([0x47, 0x47, 0x55, 0x58]);
    const path = writeBadFile("magic.gguf", bytes);
    expectFailure(await dormant(["info", "--model", path]), 1, new RegExp(`^readModelFile: ${path}: magic is 47 47 55 58 \\("GGUX"\\), expected "GGUF"`));
  });

  it("unsupported tensor type", async () => {
    const gguf = parseGGUF(source, GGUF);
    const tensors = [...gguf.tensors.values()].map((tensor) =>
      tensor.name === "blk.0.attn_q.weight" ? { ...tensor, type: 13, data: new Uint8Array(176 * 16) } : tensor);
    const path = writeBadFile("q5k.gguf", writeGGUF({ metadata: metadataEntries(gguf.metadata), tensors: tensors as never }));
    expectFailure(await dormant(["info", "--model", path]), 1, /^parseGGUF: .*q5k\.gguf: tensor blk\.0\.attn_q\.weight type is Q5_K \(type 13\), expected F32, F16, BF16, Q8_0, Q4_0, Q4_K or Q6_K/);
  });

  it("tensor shape that contradicts the config", async () => {
    const bytes = Uint8Array.from(source);
    const key = Buffer.from("llama.feed_forward_length");
    const at = Buffer.from(bytes).indexOf(key) + key.length + 4;
    new DataView(bytes.buffer).setUint32(at, 100, true);
    const path = writeBadFile("shape.gguf", bytes);
    expectFailure(await dormant(["generate", "--model", path, "hi"]), 1,
      `loadModel: ${path}: tensor blk.0.ffn_gate.weight shape is [64, 172], expected [64, 100] from llama.feed_forward_length = 100`);
  });

  it("model too large for 4 GiB of wasm memory", async () => {
    const bytes = Uint8Array.from(source);
    const key = Buffer.from("llama.context_length");
    const at = Buffer.from(bytes).indexOf(key) + key.length + 4;
    new DataView(bytes.buffer).setUint32(at, 100_000_000, true);
    const path = writeBadFile("context.gguf", bytes);
    expectFailure(await dormant(["generate", "--model", path, "--context", "100000000", "hi"]), 1,
      `loadModel: ${path}: wasm memory needed is 122.19 GiB (weights 333.6 KiB, KV cache and decode state 122.19 GiB for 100000000 positions, prefill and other buffers 444.7 KiB), expected at most 4 GiB, the wasm32 limit; use a smaller contextLength or a smaller model`);
  });

  it("prompt longer than the context", async () => {
    expectFailure(await dormant(["generate", "--context", "8", "Once upon a time there was a little girl named Lily"]), 2,
      "generate: prompt: length is 14 tokens, expected at most 7, so that one position of the 8-token context is left to generate");
  });

  it("out-of-range sampling options", async () => {
    expectFailure(await dormant(["generate", "--top-p", "1.5", "hi"]), 2, "generate: option --top-p is 1.5, expected a number in (0, 1]");
    expectFailure(await dormant(["generate", "--temperature", "-1", "hi"]), 2, /^generate: option --temperature is -1, expected a finite number/);
    expectFailure(await dormant(["generate", "--steps", "0", "hi"]), 2, "generate: option --steps is 0, expected an integer in [1, 512]");
    expectFailure(await dormant(["generate", "--top-k", "x", "hi"]), 2, "dormant generate: option --top-k is \"x\", expected a number");
    expectFailure(await dormant(["generate", "--precision", "f16", "hi"]), 2, "dormant generate: option --precision is \"f16\", expected one of int8, f32");
  });

  it("unknown model name", async () => {
    expectFailure(await dormant(["generate", "--model", "storiez", "hi"]), 1,
      "dormant generate: option --model is \"storiez\", not a model in the catalog (models/catalog.json); expected one of: stories260K, or a path to a .gguf or .bin file");
  });

  it("unknown command and option", async () => {
    expectFailure(await dormant(["generat"]), 2, /^dormant: command "generat" is not known, expected one of generate, /);
    expectFailure(await dormant(["generate", "--bogus"]), 2, /^dormant generate: option --bogus is not known, expected one of --model, /);
  });

  describe("download whose sha256 does not match", () => {
    let server: Server;
    let base: string;

    beforeAll(async () => {
      server = createServer((request, response) => {
        const bytes = Uint8Array.from(readFileSync(join(SHARED_MODELS, "tok512.bin")));
        bytes[100] ^= 0xff;
        response.writeHead(200, { "Content-Length": bytes.length });
        response.end(bytes);
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });

    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it("pull fails and names the url and both sums", async () => {
      const good = readFileSync(join(SHARED_MODELS, "tok512.bin"));
      const corrupted = Uint8Array.from(good);
      corrupted[100] ^= 0xff;
      const catalog = join(directory, "catalog.json");
      writeOneModelCatalog(catalog, "tiny", { name: "tok512.bin", url: `${base}/tok512.bin`, bytes: good });
      const found = createHash("sha256").update(corrupted).digest("hex");
      const expected = createHash("sha256").update(good).digest("hex");
      expectFailure(await dormant(["pull", "tiny", "--catalog", catalog], { DORMANT_MODELS: "" }), 1,
        `pull: ${base}/tok512.bin: sha256 is ${found}, expected ${expected} (download corrupted or catalog out of date)`);
    });
  });
});
