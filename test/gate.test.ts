// `dormant eval` as a regression gate: bound checks and input errors in process, and the CLI
// (dist/cli.js, built by `npm test`) on stories260K files calibrated at 50% and 95% sparsity.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertToGGUF } from "../src/convert.js";
import { OptionError } from "../src/errors.js";
import {
  checkBounds, checkMeasurable, checkSameBase, describeCheck, greedyAgreement, METRIC_NAMES, mergeBounds, parseBounds, parsePrompts,
} from "../src/eval/gate.js";
import { splitDocuments } from "../src/eval/perplexity.js";
import { readModelFile } from "../src/formats/index.js";
import { createModel, type Model } from "../src/model.js";
import { collectActivations, fitSparsity } from "../src/sparsity/calibrate.js";
import { writeSparsityGGUF } from "../src/sparsity/format.js";
import type { ModelFile } from "../src/types.js";
import { syntheticModel } from "./helpers/synthetic.js";

const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));
const GGUF = fileURLToPath(new URL("../../shared/models/stories260K.gguf", import.meta.url));
const TEXT = fileURLToPath(new URL("../../shared/data/tinystories-valid-sample.txt", import.meta.url));
const directory = mkdtempSync(join(tmpdir(), "dormant-gate-"));

/** Calibration tokens of the test files; the README's numbers come from the whole first half. */
const CALIBRATION_TOKENS = 6000;
/** Tokens scored per gate run. */
const EVAL_TOKENS = "3000";
/** The README's bounds: a 50% file passes them, a 95% file does not. */
const BOUNDS = {
  perplexity_ratio: { max: 1.75 },
  mean_kl: { max: 0.6 },
  top1_agreement: { min: 0.6 },
  recall: { min: 0.97 },
  greedy_tokens: { min: 1.5 },
};
const BOUND_FLAGS = ["--max-perplexity-ratio", "1.75", "--max-kl", "0.6", "--min-top1", "0.6", "--min-recall", "0.97", "--min-greedy-tokens", "1.5"];

const documents = splitDocuments(readFileSync(TEXT, "utf8"));
const half = Math.floor(documents.length / 2);
const evaluationPath = join(directory, "second-half.txt");
const promptsPath = join(directory, "prompts.jsonl");
const boundsPath = join(directory, "bounds.json");
const files = { s50: join(directory, "s50.gguf"), s95: join(directory, "s95.gguf"), cutoffs: join(directory, "cutoffs.gguf") };

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function dormant(args: string[]): Promise<Run> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, DORMANT_CACHE: join(directory, "cache") } });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve) => child.on("close", (status) => resolve({ status, stdout, stderr })));
}

/** Asserts a clean failure before any output: the exit code and the message as the only stderr line. */
function expectError(run: Run, status: number, message: string): void {
  expect(run.status).toBe(status);
  expect(run.stdout).toBe("");
  expect(run.stderr).toBe(`${message}\n`);
}

/**
 * Builds a prompt suite from stories: each prompt is a story's first sentence and the next three
 * words, and the expected text is the rest of that second sentence.
 */
function promptSuite(stories: string[], count: number): string {
  const lines: string[] = [];
  for (const story of stories) {
    const match = /^([^.!?]*[.!?]"? )(\S+ \S+ \S+)([^.!?]*[.!?])/.exec(story);
    if (!match) continue;
    lines.push(JSON.stringify({ prompt: match[1] + match[2], expected: match[3] }));
    if (lines.length === count) break;
  }
  return `${lines.join("\n")}\n`;
}

function gateRun(model: string, extra: string[] = []): Promise<Run> {
  return dormant(["eval", "--model", model, "--text", evaluationPath, "--prompts", promptsPath, "--max-tokens", EVAL_TOKENS, "--quiet", ...extra]);
}

beforeAll(async () => {
  writeFileSync(evaluationPath, documents.slice(half).join("\n<|endoftext|>\n"));
  writeFileSync(promptsPath, promptSuite(documents.slice(half), 24));
  writeFileSync(boundsPath, JSON.stringify(BOUNDS));

  const file = readModelFile(readFileSync(GGUF), GGUF);
  const dense = await createModel(file, { sparsity: null });
  const statistics = await collectActivations(dense, documents.slice(0, half).join("\n<|endoftext|>\n"), { maxTokens: CALIBRATION_TOKENS });
  dense.dispose();
  const s50 = await fitSparsity(statistics, file, { sparsity: 0.5 });
  writeFileSync(files.s50, writeSparsityGGUF(file, s50));
  writeFileSync(files.s95, writeSparsityGGUF(file, await fitSparsity(statistics, file, { sparsity: 0.95 })));
  // Cutoffs four times too high drop candidates the thresholds keep, so recall falls.
  writeFileSync(files.cutoffs, writeSparsityGGUF(file, { ...s50, cutoffs: s50.cutoffs.map((cutoff) => cutoff * 4) }));
}, 120_000);

describe("gate inputs", () => {
  it("prompts skip blank lines", () => {
    const prompts = parsePrompts('{"prompt": "a"}\n\n{"prompt": "b", "expected": " c", "id": 7}\n', "p.jsonl");
    expect(prompts).toEqual([
      { prompt: "a", expected: undefined, id: undefined, line: 1 },
      { prompt: "b", expected: " c", id: "7", line: 3 },
    ]);
  });

  it("prompt line not JSON", () => {
    expect(() => parsePrompts('{"prompt": "a"}\n\n{prompt: "b"}\n', "p.jsonl")).toThrow(
      'eval: p.jsonl: line 3 is not JSON ("{prompt: \\"b\\"}"), expected one JSON object per line such as {"prompt": "Once upon a time"}',
    );
  });

  it("prompt line without prompt", () => {
    expect(() => parsePrompts('{"expected": "a"}', "p.jsonl")).toThrow("eval: p.jsonl: line 1: prompt is missing, expected a string");
    expect(() => parsePrompts('{"prompt": 3}', "p.jsonl")).toThrow("eval: p.jsonl: line 1: prompt is 3, expected a string");
  });

  it("prompt line with unknown key", () => {
    expect(() => parsePrompts('{"prompt": "a", "expect": "b"}', "p.jsonl")).toThrow(
      'eval: p.jsonl: line 1: key "expect" is not known, expected "prompt", "expected" or "id"',
    );
  });

  it("prompt suite empty", () => {
    expect(() => parsePrompts("\n \n", "p.jsonl")).toThrow('eval: p.jsonl: prompts is 0, expected at least one line such as {"prompt": "Once upon a time"}');
  });

  it("bounds with unknown metric", () => {
    const call = (): unknown => parseBounds('{"perplexity_ration": {"max": 1}}', "b.json");
    expect(call).toThrow(OptionError);
    expect(call).toThrow(`eval: b.json: metric "perplexity_ration" is not known, expected one of ${METRIC_NAMES.join(", ")}`);
  });

  it("bounds with bad values", () => {
    expect(() => parseBounds("{", "b.json")).toThrow('eval: b.json: contents is not JSON, expected an object such as {"perplexity_ratio": {"max": 1.75}}');
    expect(() => parseBounds('{"mean_kl": {"maximum": 1}}', "b.json")).toThrow('eval: b.json: mean_kl.maximum is not known, expected "min" or "max"');
    expect(() => parseBounds('{"mean_kl": {"max": "1"}}', "b.json")).toThrow('eval: b.json: mean_kl.max is "1", expected a finite number');
    expect(() => parseBounds('{"mean_kl": 1}', "b.json")).toThrow('eval: b.json: mean_kl is 1, expected an object with "min" and/or "max"');
    expect(() => parseBounds('{"mean_kl": {"min": 2, "max": 1}}', "b.json")).toThrow("eval: b.json: mean_kl.min is 2, expected at most mean_kl.max = 1");
  });

  it("flags replace file bounds", () => {
    expect(mergeBounds({ mean_kl: { min: 0, max: 1 } }, { mean_kl: { max: 0.5 }, recall: { min: 0.9 } })).toEqual({
      mean_kl: { min: 0, max: 0.5 }, recall: { min: 0.9 },
    });
  });

  it("checkBounds sides", () => {
    const checks = checkBounds({ perplexity_ratio: 1.8, top1_agreement: 0.7 }, { perplexity_ratio: { max: 1.75 }, top1_agreement: { min: 0.6, max: 0.65 } });
    expect(checks.map((check) => [check.metric, check.side, check.passed])).toEqual([
      ["perplexity_ratio", "max", false], ["top1_agreement", "min", true], ["top1_agreement", "max", false],
    ]);
    expect(describeCheck(checks[0])).toBe("perplexity_ratio is 1.8, expected at most 1.75");
    expect(describeCheck(checks[1])).toBe("top1_agreement is 0.7, expected at least 0.6");
  });

  it("bound on unmeasured metric", () => {
    expect(() => checkBounds({}, { recall: { min: 0.9 } })).toThrow(
      "eval: bounds: recall is not measured, expected a model with sparsity data (a predictor) and a corpus of at least max(4·dim, 256) tokens",
    );
    expect(() => checkMeasurable({ expected_tokens: { min: 1 } }, { prompts: [{ prompt: "a", line: 1 }], predictor: true })).toThrow(
      'eval: bounds: expected_tokens is not measured, expected a prompt suite with "expected" continuations',
    );
  });

  describe("checkSameBase", () => {
    const file = readModelFile(readFileSync(GGUF), GGUF);

    it("accepts the same base", () => {
      expect(() => checkSameBase(file, { ...file, source: "copy.gguf" })).not.toThrow();
    });

    it("names the differing dim", () => {
      const other: ModelFile = { ...file, source: "other.gguf", config: { ...file.config, n_kv_heads: 8 } };
      expect(() => checkSameBase(file, other)).toThrow(
        `eval: other.gguf: n_kv_heads is 8, expected 4 as in ${GGUF} (the two files come from different base models)`,
      );
    });

    it("names the differing token", () => {
      const tokens = file.vocab!.tokens.slice();
      tokens[300] = "▁zzq";
      const other: ModelFile = { ...file, source: "other.gguf", vocab: { ...file.vocab!, tokens } };
      expect(() => checkSameBase(file, other)).toThrow(
        `eval: other.gguf: tokenizer token 300 is "▁zzq", expected ${JSON.stringify(file.vocab!.tokens[300])} as in ${GGUF} (the two files come from different base models)`,
      );
    });
  });
});

describe("greedyAgreement", () => {
  let model: Model;
  let twin: Model;

  beforeAll(async () => {
    model = await createModel(readModelFile(readFileSync(GGUF), GGUF), { sparsity: null });
    twin = await createModel(readModelFile(readFileSync(GGUF), GGUF), { sparsity: null });
  });

  afterAll(() => {
    model.dispose();
    twin.dispose();
  });

  it("follows generate at temperature 0", async () => {
    const iterator = model.generate("Once upon a time", { temperature: 0, maxTokens: 20 });
    let next = await iterator.next();
    while (!next.done) next = await iterator.next();
    const generated = next.value.tokens.slice(next.value.promptTokens);
    const expected = model.detokenize(generated);

    const result = greedyAgreement(model, twin, { prompt: "Once upon a time", expected, line: 1 }, 20);
    expect(result.tokens).toEqual(generated);
    expect(result.agreeingTokens).toBe(20);
    expect(result.expectedTokens).toBe(20);
    expect(result.expectedLength).toBe(20);
  });

  it("stops at the first differing expected token", () => {
    const result = greedyAgreement(model, twin, { prompt: "Once upon a time", expected: ", there was a big dog", line: 1 }, 20);
    // The model writes ", there was a little girl": four tokens match, then "little" is not "big".
    expect(model.detokenize(result.tokens.slice(0, 4))).toBe(", there was a");
    expect(result.expectedTokens).toBe(4);
    expect(result.agreeingTokens).toBe(20);
  });

  it("rejects a prompt longer than the context", async () => {
    const short = await createModel(readModelFile(readFileSync(GGUF), GGUF), { sparsity: null, contextLength: 16 });
    const prompt = { prompt: "Once upon a time, there was a little girl named Lily. She loved to play.", line: 4 };
    const tokens = short.tokenize(prompt.prompt).length;
    expect(() => greedyAgreement(short, short, prompt, 8, "p.jsonl")).toThrow(
      `eval: p.jsonl: line 4: prompt is ${tokens} tokens, expected fewer than 16 (the context length)`,
    );
    short.dispose();
  });
});

describe("dormant eval gate", () => {
  it("50% file passes the README bounds", async () => {
    const reportJson = join(directory, "s50.json");
    const reportMd = join(directory, "s50.md");
    const run = await gateRun(files.s50, [...BOUND_FLAGS, "--report-json", reportJson, "--report-md", reportMd]);
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^perplexity [\d.]+ over 3000 tokens, kept 4\d\.\d%\n/);
    expect(run.stdout).toMatch(/\ngreedy: 24 prompts, [\d.]+ tokens agree before the first difference \(at most 64\), [\d.]+ match the expected text\n$/);

    const report = JSON.parse(readFileSync(reportJson, "utf8"));
    expect(report.passed).toBe(true);
    expect(report.tokens).toBe(3000);
    expect(report.against).toBe("int8");
    expect(report.bounds).toHaveLength(5);
    expect(report.layers).toHaveLength(5);
    expect(report.prompts).toHaveLength(24);
    expect(report.metrics.perplexity_ratio).toBeGreaterThan(1);
    expect(report.metrics.perplexity_ratio).toBeLessThan(1.75);
    expect(report.metrics.kept_fraction).toBeGreaterThan(0.45);
    expect(report.metrics.kept_fraction).toBeLessThan(0.55);
    for (const layer of report.layers) expect(layer.recall).toBeGreaterThan(0.97);

    const markdown = readFileSync(reportMd, "utf8");
    expect(markdown.startsWith("# dormant eval: passed\n")).toBe(true);
    expect(markdown).toMatch(/\n\| perplexity_ratio \| [\d.]+ \| ≤ 1\.75 \| pass \|\n/);
    expect(markdown).toMatch(/\n\| greedy_tokens \| [\d.]+ \| ≥ 1\.5 \| pass \|\n/);
  });

  it("95% file fails with exit code 1", async () => {
    const run = await gateRun(files.s95, ["--bounds", boundsPath, "--json"]);
    expect(run.status).toBe(1);
    const lines = run.stderr.trim().split("\n");
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^eval: bound crossed: perplexity_ratio is [\d.]+, expected at most 1\.75$/);
    expect(lines[1]).toMatch(/^eval: bound crossed: mean_kl is [\d.]+, expected at most 0\.6$/);
    expect(lines[2]).toMatch(/^eval: bound crossed: top1_agreement is 0\.[\d]+, expected at least 0\.6$/);
    expect(lines[3]).toMatch(/^eval: bound crossed: greedy_tokens is [\d.]+, expected at least 1\.5$/);

    const report = JSON.parse(run.stdout);
    expect(report.passed).toBe(false);
    expect(report.metrics.kept_fraction).toBeLessThan(0.07);
    const crossed = report.bounds.filter((bound: { passed: boolean }) => !bound.passed).map((bound: { metric: string }) => bound.metric);
    expect(crossed).toEqual(["perplexity_ratio", "mean_kl", "top1_agreement", "greedy_tokens"]);
  });

  it("tampered cutoffs cross the recall bound", async () => {
    const run = await dormant(["eval", "--model", files.cutoffs, "--text", evaluationPath, "--max-tokens", "1000", "--quiet", "--min-recall", "0.97"]);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/^eval: bound crossed: recall is 0\.9[0-6]\d*, expected at least 0\.97\n$/);
  });

  it("file reference of the same base", async () => {
    const run = await dormant(["eval", "--model", files.s50, "--against", files.s50, "--text", evaluationPath, "--max-tokens", "300", "--json"]);
    expect(run.status).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.against).toBe(files.s50);
    expect(report.metrics.perplexity_ratio).toBe(1);
    expect(report.metrics.top1_agreement).toBe(1);
    expect(report.metrics.mean_kl).toBe(0);
  });
});

describe("dormant eval gate errors", () => {
  it("empty corpus", async () => {
    const empty = join(directory, "empty.txt");
    writeFileSync(empty, "\n<|endoftext|>\n\n");
    const run = await dormant(["eval", "--model", GGUF, "--text", empty, "--min-top1", "0.5"]);
    expectError(run, 1, `eval: ${empty}: documents is 0, expected at least one document with text (the file is empty or holds only <|endoftext|> lines)`);
  });

  it("prompt line not JSON", async () => {
    const bad = join(directory, "bad.jsonl");
    writeFileSync(bad, '{"prompt": "Once upon a time"}\n{"prompt": "Tom"}\n{prompt: "The cat"}\n');
    const run = await dormant(["eval", "--model", GGUF, "--text", evaluationPath, "--prompts", bad]);
    expectError(run, 2, `eval: ${bad}: line 3 is not JSON ("{prompt: \\"The cat\\"}"), expected one JSON object per line such as {"prompt": "Once upon a time"}`);
  });

  it("unknown metric in bounds", async () => {
    const bounds = join(directory, "unknown.json");
    writeFileSync(bounds, '{"perplexity_ratio": {"max": 1.75}, "top1": {"min": 0.6}}');
    const run = await dormant(["eval", "--model", GGUF, "--text", evaluationPath, "--bounds", bounds]);
    expectError(run, 2, `eval: ${bounds}: metric "top1" is not known, expected one of ${METRIC_NAMES.join(", ")}`);
  });

  it("bound on unmeasured metric", async () => {
    const run = await dormant(["eval", "--model", GGUF, "--text", evaluationPath, "--min-greedy-tokens", "2"]);
    expectError(run, 2, "eval: bounds: greedy_tokens is not measured, expected a prompt suite (--prompts)");
  });

  it("--against-mode without a file", async () => {
    const run = await dormant(["eval", "--model", GGUF, "--text", evaluationPath, "--against", "f32", "--against-mode", "oracle"]);
    expectError(run, 2, "dormant eval: option --against-mode is given with --against f32, expected it only with an --against model file");
  });

  it("files of different base models", async () => {
    const other = join(directory, "synthetic.gguf");
    const shape = { dim: 32, hidden_dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, activation: "silu" as const, gated: true };
    writeFileSync(other, convertToGGUF(syntheticModel(shape), { type: "f32" }));
    const run = await dormant(["eval", "--model", GGUF, "--against", other, "--text", evaluationPath]);
    expectError(run, 2, `eval: ${other}: dim is 32, expected 64 as in ${GGUF} (the two files come from different base models)`);
  });

  it("files with different tokenizers", async () => {
    const file = readModelFile(readFileSync(GGUF), GGUF);
    const tokens = file.vocab!.tokens.slice();
    tokens[511] = "▁zzq";
    const other = join(directory, "tokens.gguf");
    writeFileSync(other, convertToGGUF({ ...file, vocab: { ...file.vocab!, tokens } }, { type: "f32" }));
    const run = await dormant(["eval", "--model", GGUF, "--against", other, "--text", evaluationPath]);
    expectError(run, 2, `eval: ${other}: tokenizer token 511 is "▁zzq", expected ${JSON.stringify(file.vocab!.tokens[511])} as in ${GGUF} (the two files come from different base models)`);
  });
});

describe("bound ranges", () => {
  it("rejects a share outside [0, 1]", async () => {
    const { checkBoundRanges } = await import("../src/eval/gate.js");
    expect(() => checkBoundRanges({ top1_agreement: { min: 1.5 } }, "bounds", "eval")).toThrow(
      "eval: bounds: top1_agreement.min is 1.5, expected a number in [0, 1]");
    expect(() => checkBoundRanges({ mean_kl: { max: -1 } }, "bounds", "eval")).toThrow(
      "eval: bounds: mean_kl.max is -1, expected a number in [0, ∞)");
  });
});
