// examples/deno/story.js on Deno 2 (npm's deno package), with read access to the model folder and
// the repository's dist/ and build/ only: no network, no environment, no prompts.

import { spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";

const repo = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
const modelsDirectory = fileURLToPath(new URL("../../shared/models", import.meta.url));
const modelPath = join(modelsDirectory, "stories260K.gguf");
const script = join(repo, "examples", "deno", "story.js");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the example with `--allow-read=<readable>` and the given arguments. */
function runStory(readable: string[], ...args: string[]): Promise<Run> {
  const denoArgs = [
    "deno", "run", "--no-remote", "--no-lock", "--no-config", "--no-prompt", `--allow-read=${readable.join(",")}`, script, ...args,
  ];
  return new Promise((done, fail) => {
    const child = spawn("npx", denoArgs, { cwd: repo, env: { ...process.env, DENO_NO_UPDATE_CHECK: "1" }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
    child.on("error", fail);
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}

const repoFolders = [join(repo, "dist"), join(repo, "build")];

describe("examples/deno", () => {
  test("prints a story", async () => {
    const run = await runStory([modelsDirectory, ...repoFolders], modelPath, "--max-tokens", "80", "--seed", "7");
    expect(run.stderr).toMatch(/^prompt 5 tokens, generated \d+ tokens, [\d.]+ tokens\/s, precision int8, kernels (simd128|relaxed-simd)\n$/);
    expect(run.code).toBe(0);
    expect(run.stdout.startsWith("Once upon a time")).toBe(true);
    expect(run.stdout.trim().length).toBeGreaterThan(80);
  });

  test("prints a story from a worker", async () => {
    const run = await runStory([modelsDirectory, ...repoFolders], modelPath, "One day", "--worker", "--max-tokens", "40", "--temperature", "0");
    expect(run.stderr).toMatch(/^prompt \d+ tokens, generated \d+ tokens, [\d.]+ tokens\/s, precision int8, kernels (simd128|relaxed-simd), in a worker\n$/);
    expect(run.code).toBe(0);
    expect(run.stdout.startsWith("One day")).toBe(true);
    expect(run.stdout.trim().length).toBeGreaterThan("One day".length);
  });

  test("fails without read permission", async () => {
    const run = await runStory(repoFolders, modelPath);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toBe(
      `story: loadModel: ${modelPath}: Requires read access to "${modelPath}", run again with the --allow-read flag\n`,
    );
  });

  test("fails on a bad option", async () => {
    const run = await runStory(repoFolders, modelPath, "--max-tokens", "many");
    expect(run.code).toBe(1);
    expect(run.stderr).toBe("story: --max-tokens is \"many\", expected a number\n");
  });
});
