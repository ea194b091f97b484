// Runs the built `dormant` command (dist/cli.js, which `npm test` builds) as a user would, for the
// CLI tests: catalog models come from the shared models folder and downloads go to a test cache.

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const CLI = fileURLToPath(new URL("../../dist/cli.js", import.meta.url));
export const SHARED_MODELS = fileURLToPath(new URL("../../../shared/models/", import.meta.url));

/** Exit status and output of one run. */
export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Returns a function that runs the CLI with a cache inside `directory`. It does not block this
 * process, so servers started by the tests keep responding.
 */
export function cliRunner(directory: string): (args: string[], env?: Record<string, string>) => Promise<Run> {
  return (args, env = {}) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, DORMANT_MODELS: SHARED_MODELS, DORMANT_CACHE: join(directory, "cache"), ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    return new Promise((resolve) => child.on("close", (status) => resolve({ status, stdout, stderr })));
  };
}

/** Writes a catalog at `path` with one model, `name`, made of one file served at `url` with the sha256 and size of `bytes`. */
export function writeOneModelCatalog(path: string, name: string, file: { name: string; url: string; bytes: Uint8Array }): void {
  writeFileSync(path, JSON.stringify({
    version: 1,
    models: {
      [name]: {
        family: "llama", description: "test",
        files: [{ role: "model", name: file.name, url: file.url, sha256: createHash("sha256").update(file.bytes).digest("hex"), size: file.bytes.length }],
      },
    },
  }));
}
