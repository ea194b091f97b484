// The tokenizer check every host runs, in plain JavaScript so Node, Deno, pages and workers share it.
// For each vocabulary it encodes llama.cpp's test cases (ggml-vocab-NAME.gguf.inp) without BOS,
// compares them with the expected ids (.out), decodes them back, and hashes every id it produced.

/** Separator after each case of an .inp file, the last one included. */
export const CASE_SEPARATOR = "\n__ggml_vocab_test__\n";

// ignoreBOM keeps a leading U+FEFF in a case instead of stripping it, as Node's readFileSync does.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

async function sha256Hex(text) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Splits an .inp file into its cases. */
function readCases(bytes) {
  const cases = decoder.decode(bytes).split(CASE_SEPARATOR);
  cases.pop();
  return cases;
}

/** Reads an .out file: one line of space-separated ids per case, empty for no ids. */
function readExpected(bytes) {
  return decoder.decode(bytes).split("\n").map((line) => (line.trim() === "" ? [] : line.trim().split(" ").map(Number)));
}

function sameIds(a, b) {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

/**
 * Checks the vocabularies `names` with `dormant.loadTokenizer`. `readFixture(fileName)` returns the
 * bytes of a file of the fixtures folder, such as "ggml-vocab-gpt-2.gguf.out".
 * Returns per vocabulary the case count, the indexes of cases whose ids differ from the .out line,
 * the indexes whose decoded text differs from the input, and the SHA-256 of the JSON of all ids.
 */
export async function probeTokenizers(dormant, readFixture, names, host) {
  const started = Date.now();
  const vocabs = {};
  for (const name of names) {
    const file = `ggml-vocab-${name}.gguf`;
    const [model, inp, out] = await Promise.all([readFixture(file), readFixture(`${file}.inp`), readFixture(`${file}.out`)]);
    const tokenizer = dormant.loadTokenizer(model, file);
    const cases = readCases(inp);
    const expected = readExpected(out);
    const produced = [];
    const mismatches = [];
    const roundTripFailures = [];
    cases.forEach((text, i) => {
      const ids = tokenizer.encode(text, { bos: false });
      produced.push(ids);
      if (expected[i] === undefined || !sameIds(ids, expected[i])) mismatches.push(i);
      if (tokenizer.decode(ids) !== text) roundTripFailures.push(i);
    });
    vocabs[name] = { cases: cases.length, mismatches, roundTripFailures, sha256: await sha256Hex(JSON.stringify(produced)) };
  }
  let scope = "node";
  if (typeof WorkerGlobalScope === "function" && globalThis instanceof WorkerGlobalScope) scope = "worker";
  else if (typeof Deno === "object") scope = "deno";
  else if (typeof document === "object") scope = "page";
  return { host, scope, vocabs, milliseconds: Date.now() - started };
}

/** Returns a readFixture that fetches files relative to `baseUrl` (a folder URL ending in "/"). */
export function fixtureReader(baseUrl) {
  return async (file) => {
    const url = new URL(file, baseUrl);
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: HTTP status is ${response.status}, expected 200`);
    return new Uint8Array(await response.arrayBuffer());
  };
}
