// Usage errors of the `dormant` command as a user meets them: output paths checked before any
// work, option values, model names and exit codes. They run dist/cli.js, which `npm test` builds.

import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SHARED_MODELS, cliRunner, writeOneModelCatalog, type Run } from "./helpers/cli.js";

const GGUF = join(SHARED_MODELS, "stories260K.gguf");
const BIN = join(SHARED_MODELS, "stories260K.bin");
const TOKENIZER = join(SHARED_MODELS, "tok512.bin");
const SAMPLE = fileURLToPath(new URL("../../shared/data/tinystories-valid-sample.txt", import.meta.url));
const directory = mkdtempSync(join(tmpdir(), "dormant-cli-errors-"));
const textPath = join(directory, "text.txt");
const sparsePath = join(directory, "s50.gguf");

const dormant = cliRunner(directory);

/** Asserts a failure before any work: the exit code, no stdout, and the message as the only stderr line. */
function expectError(run: Run, status: number, message: string | RegExp): void {
  expect(run.status, run.stderr).toBe(status);
  expect(run.stdout).toBe("");
  const lines = run.stderr.trimEnd().split("\n");
  expect(lines, run.stderr).toHaveLength(1);
  if (typeof message === "string") expect(lines[0]).toBe(message);
  else expect(lines[0]).toMatch(message);
}

beforeAll(async () => {
  writeFileSync(textPath, readFileSync(SAMPLE, "utf8").slice(0, 150_000));
  const run = await dormant(["calibrate", "--text", textPath, "--sparsity", "0.5", "--max-tokens", "3000", "--out", sparsePath, "--quiet"]);
  expect(run.status, run.stderr).toBe(0);
});

describe("output paths", () => {
  it("symlink to the input", async () => {
    const input = join(directory, "input.gguf");
    const link = join(directory, "link.gguf");
    writeFileSync(input, readFileSync(GGUF));
    symlinkSync(input, link);
    expectError(await dormant(["convert", "--model", input, "--out", link]), 2,
      `dormant convert: option --out is "${link}", which is the input file ${input}; expected a path other than the input (the command would replace its own input)`);
    expect(readFileSync(input).equals(readFileSync(GGUF))).toBe(true);
  });

  it("other spelling of the input", async () => {
    const input = join(directory, "spelled.gguf");
    writeFileSync(input, readFileSync(GGUF));
    mkdirSync(join(directory, "sub"), { recursive: true });
    const spelled = join(directory, "sub", "..", "spelled.gguf");
    const run = await dormant(["convert", "--model", input, "--out", spelled]);
    expectError(run, 2, `dormant convert: option --out is "${spelled}", which is the input file ${input}; expected a path other than the input (the command would replace its own input)`);
  });

  it("calibration text as --out", async () => {
    expectError(await dormant(["calibrate", "--text", textPath, "--sparsity", "0.5", "--out", textPath]), 2,
      `dormant calibrate: option --out is "${textPath}", which is the input file ${textPath}; expected a path other than the input (the command would replace its own input)`);
  });

  it("read-only target", async () => {
    const target = join(directory, "read-only.gguf");
    writeFileSync(target, "keep");
    chmodSync(target, 0o444);
    expectError(await dormant(["convert", "--model", GGUF, "--out", target]), 2,
      `dormant convert: option --out is "${target}", a read-only file; expected a writable file (change its permissions or choose another path)`);
    expect(readFileSync(target, "utf8")).toBe("keep");
  });

  it("writable target is replaced", async () => {
    const target = join(directory, "again.gguf");
    writeFileSync(target, "old");
    const run = await dormant(["convert", "--model", GGUF, "--out", target, "--quiet"]);
    expect(run.status, run.stderr).toBe(0);
    expect(readFileSync(target).equals(readFileSync(GGUF))).toBe(false);
    expect(readFileSync(target).subarray(0, 4).toString()).toBe("GGUF");
  });

  it("folder as a file output", async () => {
    expectError(await dormant(["convert", "--model", GGUF, "--out", directory]), 2,
      `dormant convert: option --out is "${directory}", an existing folder; expected the path of a file to write`);
    expectError(await dormant(["eval", "--text", textPath, "--against", "f32", "--report-md", `${directory}/`]), 2,
      `dormant eval: option --report-md is "${directory}/", an existing folder; expected the path of a file to write`);
  });

  it("missing folder before the work", async () => {
    const missing = join(directory, "no-such-folder");
    expectError(await dormant(["calibrate", "--text", textPath, "--sparsity", "0.5", "--out", join(missing, "x.gguf")]), 2,
      `dormant calibrate: option --out is "${join(missing, "x.gguf")}", but its folder ${missing} does not exist; expected a file in an existing folder`);
    expectError(await dormant(["eval", "--text", textPath, "--against", "f32", "--report-json", join(missing, "g.json")]), 2,
      `dormant eval: option --report-json is "${join(missing, "g.json")}", but its folder ${missing} does not exist; expected a file in an existing folder`);
  });

  it("file as --svg-dir", async () => {
    const report = join(directory, "report.html");
    expectError(await dormant(["inspect", "--model", sparsePath, "--text", textPath, "--report", report, "--svg-dir", textPath]), 2,
      `dormant inspect: option --svg-dir is "${textPath}", an existing file; expected a folder, or a new path to create one at`);
    expect(existsSync(report)).toBe(false);
  });
});

describe("eval references", () => {
  it("unknown --against lists the references", async () => {
    expectError(await dormant(["eval", "--text", textPath, "--against", "int4"]), 1,
      'dormant eval: option --against is "int4", not a model in the catalog (models/catalog.json); ' +
      "expected one of: int8, f32, dense, oracle, predicted, stories260K, or a path to a .gguf or .bin file");
  });

  it("sparse mode on a dense model names --against", async () => {
    const message = 'dormant eval: option --against is "oracle", expected int8, f32 or dense for a model without sparsity data (run dormant calibrate first)';
    expectError(await dormant(["eval", "--text", textPath, "--max-tokens", "20", "--against", "oracle"]), 2, message);
    expectError(await dormant(["eval", "--text", textPath, "--max-tokens", "20", "--against", "oracle", "--min-top1", "0.1"]), 2, message);
  });

  it("checkpoint --against needs --tokenizer", async () => {
    expectError(await dormant(["eval", "--model", sparsePath, "--text", textPath, "--against", BIN]), 2,
      `dormant eval: option --against is ${BIN}, a llama2.c checkpoint without a vocabulary; expected --tokenizer with the tokenizer.bin of its base model`);
  });

  it("checkpoint --against with --tokenizer", async () => {
    const run = await dormant(["eval", "--model", sparsePath, "--text", textPath, "--max-tokens", "200", "--against", BIN, "--tokenizer", TOKENIZER, "--json"]);
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.against).toBe(BIN);
    expect(report.metrics.top1_agreement).toBeGreaterThan(0.3);
  });

  it("--tokenizer with two GGUF files", async () => {
    expectError(await dormant(["eval", "--model", sparsePath, "--text", textPath, "--against", GGUF, "--tokenizer", TOKENIZER]), 2,
      `dormant eval: option --tokenizer is ${TOKENIZER}, but --model and --against are both GGUF files; expected no --tokenizer, because both files carry their own vocabulary`);
  });
});

describe("option values", () => {
  it("f32 on a sparse file names CLI flags", async () => {
    expectError(await dormant(["generate", "--model", sparsePath, "--precision", "f32", "hi"]), 2,
      'dormant generate: option --precision is "f32", expected int8 for a file with sparsity data (its sparse FFN runs int8 only); ' +
      "use --precision int8, or add --mode dense to run the file dense in f32");
    const run = await dormant(["generate", "--model", sparsePath, "--precision", "f32", "--mode", "dense", "--max-tokens", "4", "--json", "hi"]);
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).tokens.length).toBeGreaterThan(2);
  });

  it("zero --max-tokens", async () => {
    expectError(await dormant(["eval", "--text", textPath, "--max-tokens", "0"]), 2, "dormant eval: option --max-tokens is 0, expected an integer ≥ 1");
    expectError(await dormant(["chat", "--message", "Hi", "--max-tokens", "0"]), 2, "dormant chat: option --max-tokens is 0, expected an integer ≥ 1");
  });

  it("chat sampling error is the only line", async () => {
    expectError(await dormant(["chat", "--message", "Hi", "--top-p", "2"]), 2, "chat: option --top-p is 2, expected a number in (0, 1]");
  });

  it("bad --prompts files exit 2", async () => {
    const bad = join(directory, "bad.jsonl");
    writeFileSync(bad, "not json\n");
    expectError(await dormant(["eval", "--text", textPath, "--prompts", bad]), 2,
      `eval: ${bad}: line 1 is not JSON ("not json"), expected one JSON object per line such as {"prompt": "Once upon a time"}`);
    const missing = join(directory, "missing.jsonl");
    expectError(await dormant(["eval", "--text", textPath, "--prompts", missing]), 2, `readFile: ${missing}: file not found`);
  });

  it("sparsities checked before profiling", async () => {
    expectError(await dormant(["inspect", "--model", sparsePath, "--text", textPath, "--report", join(directory, "s.html"), "--sparsities", "0.5,1.5"]), 2,
      'dormant inspect: option --sparsities is "0.5,1.5", expected comma-separated numbers in [0, 0.99]');
  });

  it("empty list items", async () => {
    expectError(await dormant(["bench", "--threads", "1,,2"]), 2, 'dormant bench: option --threads is "1,,2", expected a comma-separated list with no empty items');
    expectError(await dormant(["bench", "--models", "stories260K,"]), 2, 'dormant bench: option --models is "stories260K,", expected a comma-separated list with no empty items');
  });

  it("missing integer value", async () => {
    expectError(await dormant(["generate", "--max-tokens"]), 2, "dormant generate: option --max-tokens is missing its value, expected an integer ≥ 1");
    expectError(await dormant(["generate", "--context"]), 2, "dormant generate: option --context is missing its value, expected an integer");
  });

  it("short option suggests a long one", async () => {
    expectError(await dormant(["generate", "-m", "x"]), 2, "dormant generate: option -m is not known, expected a long option such as --model (run dormant generate --help for the list)");
  });

  it("seed echoed as typed", async () => {
    expectError(await dormant(["generate", "--seed", "99999999999999999999", "hi"]), 2,
      "dormant generate: option --seed is 99999999999999999999, expected an integer in [0, 2^53)");
  });

  it("tokenize without text", async () => {
    expectError(await dormant(["tokenize"]), 2, 'dormant tokenize: the text is missing, expected it after the options, such as dormant tokenize "Once upon a time"');
  });

  it("no command prints usage on stderr", async () => {
    const run = await dormant([]);
    expect(run.status).toBe(2);
    expect(run.stdout).toBe("");
    expect(run.stderr).toMatch(/^usage: dormant <command> \[options\]\n/);
  });
});

describe("model names", () => {
  it("pull takes catalog names only", async () => {
    expectError(await dormant(["pull", "nosuch"]), 1, 'dormant pull: model name is "nosuch", not a model in the catalog (models/catalog.json); expected one of: stories260K');
    expectError(await dormant(["pull", "./x.gguf"]), 2, 'dormant pull: model name is "./x.gguf", a path, expected a model name from the catalog');
  });

  it("empty catalog", async () => {
    const catalog = join(directory, "empty-catalog.json");
    writeFileSync(catalog, JSON.stringify({ version: 1, models: {} }));
    expectError(await dormant(["generate", "--catalog", catalog, "hi"]), 1,
      `dormant generate: option --model is "stories260K", not a model in the catalog (${catalog}); ` +
      "expected a path to a .gguf or .bin file (the catalog lists no models; add one or pass another --catalog)");
  });

  describe("DORMANT_MODELS folder that does not exist", () => {
    let server: Server;
    let base: string;

    beforeAll(async () => {
      server = createServer((_request, response) => {
        response.writeHead(404);
        response.end();
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });

    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it("named in the model-not-found error", async () => {
      const bytes = readFileSync(GGUF);
      const catalog = join(directory, "catalog.json");
      writeOneModelCatalog(catalog, "tiny", { name: "tiny.gguf", url: `${base}/tiny.gguf`, bytes });
      const missing = join(directory, "no-models-here");
      const run = await dormant(["generate", "--catalog", catalog, "--model", "tiny", "--quiet", "hi"], { DORMANT_MODELS: missing });
      expect(run.status).toBe(1);
      expect(run.stdout).toBe("");
      expect(run.stderr.trimEnd().split("\n").pop()).toMatch(new RegExp(`^generate: ${base}/tiny\\.gguf: .*\\(DORMANT_MODELS folder ${missing} does not exist\\)$`));
    });
  });
});
