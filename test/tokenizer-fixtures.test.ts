import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { FormatError, OptionError } from "../src/errors.js";
import { GGUFValueType, ggufToVocab, metadataEntries, parseGGUF, writeGGUF, type GGUFMetadataEntry } from "../src/gguf.js";
import { cleanSpaces } from "../src/tokenizer/bpe.js";
import { loadTokenizer } from "../src/index.js";
import { createTokenizer, type Tokenizer } from "../src/tokenizer/index.js";
import { findPreTokenizer, PRE_TOKENIZER_NAMES, splitChunks } from "../src/tokenizer/pretokenize.js";
import { TextStreamer } from "../src/tokenizer/stream.js";
import { TokenType, type Vocab } from "../src/types.js";

const shared = (path: string): string => fileURLToPath(new URL(`../../shared/${path}`, import.meta.url));
const vocabPath = (name: string): string => shared(`fixtures/tokenizers/ggml-vocab-${name}.gguf`);

const tempDir = mkdtempSync(join(tmpdir(), "dormant-bpe-"));
afterAll(() => rmSync(tempDir, { recursive: true, force: true }));

const vocabs = new Map<string, Vocab>();
const tokenizers = new Map<string, Tokenizer>();

/** Reads a GGUF's vocabulary once per test file. */
function loadVocab(path: string): Vocab {
  let vocab = vocabs.get(path);
  if (vocab === undefined) {
    vocab = ggufToVocab(parseGGUF(new Uint8Array(readFileSync(path)), path), path);
    vocabs.set(path, vocab);
  }
  return vocab;
}

function load(name: string): Tokenizer {
  let tokenizer = tokenizers.get(name);
  if (tokenizer === undefined) {
    tokenizer = createTokenizer(loadVocab(vocabPath(name)));
    tokenizers.set(name, tokenizer);
  }
  return tokenizer;
}

/** Reads llama.cpp's test inputs: cases separated (and ended) by "\n__ggml_vocab_test__\n". */
function readInputs(path: string): string[] {
  const inputs = readFileSync(`${path}.inp`, "utf8").split("\n__ggml_vocab_test__\n");
  inputs.pop();
  return inputs;
}

/** Reads the expected ids, one line per case, each id preceded by a space. */
function readOutputs(path: string): number[][] {
  return readFileSync(`${path}.out`, "utf8")
    .split("\n")
    .map((line) => (line.trim() === "" ? [] : line.trim().split(" ").map(Number)));
}

/** Asserts that `run` throws an instance of `type` with exactly `message`. */
function expectError(run: () => unknown, type: typeof FormatError | typeof OptionError, message: string): void {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(type);
  expect((caught as Error).message).toBe(message);
}

/** GPT-2's bytes_to_unicode alphabet, written out independently of src/tokenizer/bpe.ts. */
function byteSymbols(): string[] {
  const symbols: string[] = [];
  let shifted = 0;
  for (let byte = 0; byte < 256; byte++) {
    const printable = (byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || byte >= 0xae;
    symbols.push(String.fromCharCode(printable ? byte : 256 + shifted++));
  }
  return symbols;
}

/** Builds a byte-level vocabulary: the 256 byte symbols, then `extra` tokens. */
function tinyVocab(extra: string[], merges: string[], pre = "gpt-2"): Vocab {
  const tokens = [...byteSymbols(), ...extra];
  return {
    model: "gpt2", tokens, scores: new Float32Array(tokens.length), types: new Int32Array(tokens.length).fill(TokenType.NORMAL),
    bos_id: 0, eos_id: 0, unk_id: -1, add_bos: false, add_space_prefix: false, merges, pre,
  };
}

/** Writes the gpt-2 vocabulary with `edit` applied to its metadata and returns the file path. */
function writeEditedGpt2(name: string, edit: (entries: GGUFMetadataEntry[]) => GGUFMetadataEntry[]): string {
  const path = vocabPath("gpt-2");
  const entries = metadataEntries(parseGGUF(new Uint8Array(readFileSync(path)), path).metadata);
  const out = join(tempDir, name);
  writeFileSync(out, writeGGUF({ metadata: edit(entries), tensors: [] }));
  return out;
}

function replaceMerges(entries: GGUFMetadataEntry[], merges: string[]): GGUFMetadataEntry[] {
  return entries.map((entry) =>
    entry.key === "tokenizer.ggml.merges" ? { key: entry.key, type: GGUFValueType.ARRAY, elementType: GGUFValueType.STRING, value: merges } : entry,
  ) as GGUFMetadataEntry[];
}

const WITH_IDS = ["llama-spm", "phi-3", "llama-bpe", "qwen2", "gpt-2", "starcoder"];
const HELD_OUT = ["deepseek-llm", "falcon"];

describe("llama.cpp tokenizer vectors", () => {
  // test-tokenizer-0 encodes with add_special=false and parse_special=false: no BOS.
  for (const name of WITH_IDS) {
    it(`${name} ids`, () => {
      const tokenizer = load(name);
      const inputs = readInputs(vocabPath(name));
      const outputs = readOutputs(vocabPath(name));
      expect(inputs.length).toBe(46);
      inputs.forEach((text, i) => {
        expect(tokenizer.encode(text, { bos: false }), `case ${i}: ${JSON.stringify(text)}`).toEqual(outputs[i]);
      });
    });
  }

  for (const name of [...WITH_IDS, ...HELD_OUT]) {
    it(`${name} round trip`, () => {
      const tokenizer = load(name);
      for (const text of readInputs(vocabPath(name))) {
        expect(tokenizer.decode(tokenizer.encode(text, { bos: false })), JSON.stringify(text)).toBe(text);
      }
    });
  }

  // The expected ids of these two are kept aside, so only behaviour is checked here.
  for (const name of HELD_OUT) {
    it(`${name} is deterministic`, () => {
      const first = load(name);
      const second = createTokenizer(loadVocab(vocabPath(name)));
      for (const text of readInputs(vocabPath(name))) {
        const ids = first.encode(text, { bos: false });
        expect(first.encode(text, { bos: false })).toEqual(ids);
        expect(second.encode(text, { bos: false })).toEqual(ids);
        for (const id of ids) expect(id >= 0 && id < first.vocabSize).toBe(true);
      }
    });
  }

  // Truncated Llama 3 and Qwen2 vocabularies; the ids are llama.cpp's own, not HF's.
  for (const name of ["llama3_style", "qwen2_style"]) {
    it(`${name} truncated vocab`, () => {
      const path = shared(`fixtures/archs/${name}.gguf`);
      const tokenizer = createTokenizer(loadVocab(path));
      const outputs = readOutputs(path);
      readInputs(path).forEach((text, i) => {
        expect(tokenizer.encode(text, { bos: false }), `case ${i}: ${JSON.stringify(text)}`).toEqual(outputs[i]);
        expect(tokenizer.decode(outputs[i])).toBe(text);
      });
    });
  }
});

describe("llama.cpp clean_spaces", () => {
  // llama_detokenize drops spaces before punctuation for these vocabularies, so cases 32
  // ("... 😁 ?我想...") and 45 (" ?", " 's", "...") do not round-trip there.
  it("round trip exceptions", () => {
    const expected: Record<string, number[]> = {
      "llama-spm": [], "phi-3": [], "llama-bpe": [32, 45], qwen2: [], "gpt-2": [32, 45],
      "deepseek-llm": [], falcon: [32, 45], starcoder: [32, 45],
    };
    for (const [name, cases] of Object.entries(expected)) {
      const tokenizer = load(name);
      const failing = readInputs(vocabPath(name))
        .map((text, i) => (tokenizer.decode(tokenizer.encode(text, { bos: false }), { cleanSpaces: true }) === text ? -1 : i))
        .filter((i) => i >= 0);
      expect(failing, name).toEqual(cases);
    }
  });

  it("rules", () => {
    const clean = (text: string): string => new TextDecoder().decode(cleanSpaces(new TextEncoder().encode(text)));
    expect(clean("Hello , world ! Ok ? Yes .")).toBe("Hello, world! Ok? Yes.");
    expect(clean("it ' s")).toBe("it's");
    expect(clean("he 's I 'm we 're they 've")).toBe("he's I'm we're they've");
    expect(clean("don 't I 'd we 'll")).toBe("don 't I 'd we 'll");
    expect(clean("x ' ' y")).toBe("x'' y");
  });

  it("decode option", () => {
    const gpt2 = load("gpt-2");
    const ids = gpt2.encode("Hello , world !");
    expect(gpt2.decode(ids)).toBe("Hello , world !");
    expect(gpt2.decode(ids, { cleanSpaces: true })).toBe("Hello, world!");
    // Qwen2 has clean_spaces off in llama.cpp.
    const qwen2 = load("qwen2");
    expect(qwen2.decode(qwen2.encode("Hello , world !"), { cleanSpaces: true })).toBe("Hello , world !");
  });
});

describe("BOS and EOS", () => {
  it("add_bos defaults", () => {
    // llama-bpe has no add_bos_token key, but llama.cpp turns it on for that pre-tokenizer.
    const expected: Record<string, boolean> = {
      "llama-spm": true, "phi-3": true, "llama-bpe": true, qwen2: false, "gpt-2": false,
      "deepseek-llm": true, falcon: false, starcoder: false,
    };
    for (const [name, addBos] of Object.entries(expected)) {
      const tokenizer = load(name);
      const withoutBos = tokenizer.encode("Hello", { bos: false });
      expect(tokenizer.encode("Hello"), name).toEqual(addBos ? [tokenizer.bosId, ...withoutBos] : withoutBos);
    }
  });

  it("explicit bos and eos", () => {
    const tokenizer = load("llama-bpe");
    expect(tokenizer.encode("Hello world", { bos: true, eos: true })).toEqual([128000, 9906, 1917, 128001]);
    expect(tokenizer.encode("", { bos: false })).toEqual([]);
    expect(tokenizer.encode("")).toEqual([128000]);
  });

  it("ids of special tokens", () => {
    expect([load("llama-bpe").bosId, load("llama-bpe").eosId, load("llama-bpe").eotId]).toEqual([128000, 128001, 128009]);
    expect([load("qwen2").bosId, load("qwen2").eosId, load("qwen2").eotId]).toEqual([151643, 151643, 151645]);
    expect(load("gpt-2").eotId).toBe(50256);
    expect(load("phi-3").eotId).toBe(32007);
    expect(load("llama-spm").eotId).toBeUndefined();
  });
});

describe("special tokens", () => {
  it("control text is plain by default", () => {
    const tokenizer = load("llama-bpe");
    const ids = tokenizer.encode("<|eot_id|>", { bos: false });
    expect(ids).not.toContain(128009);
    expect(tokenizer.decode(ids)).toBe("<|eot_id|>");
    expect(tokenizer.encode("<|eot_id|>", { bos: false, parseSpecial: true })).toEqual([128009]);
  });

  it("chat header", () => {
    const tokenizer = load("llama-bpe");
    const text = "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>";
    const ids = tokenizer.encode(text, { bos: false, parseSpecial: true });
    expect(ids).toEqual([
      128006, ...tokenizer.encode("user", { bos: false }), 128007, ...tokenizer.encode("\n\nHi there", { bos: false }), 128009,
    ]);
    expect(tokenizer.decode(ids)).toBe("user\n\nHi there");
    expect(tokenizer.decode(ids, { special: true })).toBe(text);
  });

  it("control tokens print nothing", () => {
    const tokenizer = load("qwen2");
    const ids = [151644, ...tokenizer.encode("assistant", { bos: false }), 151645];
    expect(tokenizer.decode(ids)).toBe("assistant");
    expect(tokenizer.decode(ids, { special: true })).toBe("<|im_start|>assistant<|im_end|>");
    expect(tokenizer.pieceBytes(151645).length).toBe(0);
    expect(tokenizer.isControl(151645)).toBe(true);
    expect(tokenizer.isControl(ids[1])).toBe(false);
  });

  it("added tokens always match", () => {
    // DeepSeek's added tokens are USER_DEFINED: llama.cpp splits them out even without parseSpecial.
    const tokenizer = load("deepseek-llm");
    const id = 100014;
    expect(tokenizer.piece(id)).toBe("ü");
    const ids = tokenizer.encode("Führer", { bos: false });
    expect(ids).toContain(id);
    expect(ids).toEqual([...tokenizer.encode("F", { bos: false }), id, ...tokenizer.encode("hrer", { bos: false })]);
    expect(tokenizer.isControl(id)).toBe(false);
  });

  it("longest token claims first", () => {
    // llama.cpp matches "yzw" before "xy" because it is longer, though "xy" starts first.
    const vocab = tinyVocab(["xy", "yzw"], []);
    vocab.types[256] = TokenType.CONTROL;
    vocab.types[257] = TokenType.CONTROL;
    const tokenizer = createTokenizer(vocab);
    expect(tokenizer.encode("xyzw", { parseSpecial: true })).toEqual([0x78, 257]);
    expect(tokenizer.encode("xyxy", { parseSpecial: true })).toEqual([256, 256]);
  });

  it("phi-3 strips spaces after </s>", () => {
    // Phi-3's "</s>" is USER_DEFINED, and llama.cpp gives Phi-3 special tokens rstrip by model name.
    const tokenizer = load("phi-3");
    expect(tokenizer.encode("a</s>  b", { bos: false })).toEqual([
      ...tokenizer.encode("a", { bos: false }), 2, ...tokenizer.encode("b", { bos: false }),
    ]);
  });

  it("sentencepiece parseSpecial", () => {
    const tokenizer = load("llama-spm");
    expect(tokenizer.encode("<s>Hello", { bos: false })).not.toContain(1);
    // The run after a special token gets its own dummy-prefix space, as in llama.cpp.
    expect(tokenizer.encode("<s>Hello", { bos: false, parseSpecial: true })).toEqual([1, ...tokenizer.encode("Hello", { bos: false })]);
    // SpmTokenizer drops the dummy-prefix space after BOS, as llama2.c does.
    expect(tokenizer.decode([1, 15043], { special: true })).toBe("<s>Hello");
    expect(tokenizer.decode([1, 15043])).toBe("Hello");
  });
});

describe("BpeTokenizer merges", () => {
  // Ids 0..255 of tinyVocab are the byte symbols in byte order.
  const a = 0x61;
  const b = 0x62;

  it("lowest rank first", () => {
    // "b c" outranks "a b", so "abc" becomes "a" + "bc", then "a bc".
    const tokenizer = createTokenizer(tinyVocab(["ab", "bc", "abc"], ["b c", "a b", "a bc"]));
    expect(tokenizer.encode("abc")).toEqual([258]);
    expect(tokenizer.encode("ab")).toEqual([256]);
  });

  it("leftmost among equal ranks", () => {
    const tokenizer = createTokenizer(tinyVocab(["aa"], ["a a"]));
    expect(tokenizer.encode("aaa")).toEqual([256, a]);
    expect(tokenizer.encode("aaaa")).toEqual([256, 256]);
  });

  it("chunks never merge across", () => {
    // GPT-2's pre-tokenizer puts "a" and " b" in separate chunks, so "a Ġ" never applies.
    const tokenizer = createTokenizer(tinyVocab(["aĠ"], ["a Ġ"]));
    expect(tokenizer.encode("a b")).toEqual([a, byteSymbols().indexOf("Ġ"), b]);
  });

  it("lone surrogate as U+FFFD", () => {
    const tokenizer = load("gpt-2");
    expect(tokenizer.encode("a\uD800b")).toEqual(tokenizer.encode("a\uFFFDb"));
  });

  it("long chunk", () => {
    const tokenizer = createTokenizer(tinyVocab(["aa", "aaaa"], ["a a", "aa aa"]));
    const ids = tokenizer.encode("a".repeat(100_001));
    expect(ids.length).toBe(25_001);
    expect(ids.at(-1)).toBe(a);
  });
});

describe("pre-tokenizers", () => {
  const chunks = (name: string, text: string): string[] => splitChunks(text, findPreTokenizer(name)!.regexes);

  it("gpt-2", () => {
    expect(chunks("gpt-2", "Hello  world's 12345!!")).toEqual(["Hello", " ", " world", "'s", " 12345", "!!"]);
  });

  it("llama3 digits and contractions", () => {
    expect(chunks("llama-bpe", "Hello  world 12345 WE'RE")).toEqual(["Hello", " ", " world", " ", "123", "45", " WE", "'RE"]);
  });

  it("qwen2 single digits", () => {
    expect(chunks("qwen2", "x 123")).toEqual(["x", " ", "1", "2", "3"]);
  });

  it("falcon keeps gaps as chunks", () => {
    expect(chunks("falcon", "x 12345")).toEqual(["x", " ", "123", "45"]);
    expect(chunks("falcon", "a+=b")).toEqual(["a", "+=", "b"]);
  });

  it("starcoder digits", () => {
    expect(chunks("starcoder", "v12")).toEqual(["v", "1", "2"]);
  });

  it("deepseek-llm", () => {
    expect(chunks("deepseek-llm", "Hi 世界\n42")).toEqual(["Hi", " ", "世界", "\n", "42"]);
  });

  it("whitespace is llama.cpp's", () => {
    // U+3000 counts as a space; U+FEFF does not, although JavaScript's \s matches it.
    expect(chunks("llama-bpe", "a\u3000b")).toEqual(["a", "\u3000b"]);
    expect(chunks("gpt-2", "\uFEFF\uFEFFx")).toEqual(["\uFEFF\uFEFF", "x"]);
  });

  it("missing name is default", () => {
    expect(findPreTokenizer(undefined)).toBe(findPreTokenizer("default"));
    expect(findPreTokenizer("nope")).toBeUndefined();
  });
});

describe("TextStreamer with BPE", () => {
  // Emoji, CJK and Khmer cases, whose tokens often end inside a UTF-8 sequence.
  const cases = [18, 21, 22, 32, 45];

  for (const name of ["llama-bpe", "qwen2", "gpt-2"]) {
    it(`${name} emits whole characters`, () => {
      const tokenizer = load(name);
      const inputs = readInputs(vocabPath(name));
      let heldBack = 0;
      for (const i of cases) {
        const ids = tokenizer.encode(inputs[i], { bos: false });
        const streamer = new TextStreamer(tokenizer);
        const parts = ids.map((id) => streamer.push(id));
        parts.push(streamer.flush());
        expect(parts.join("")).toBe(inputs[i]);
        for (const part of parts) {
          expect(part).not.toContain("\uFFFD");
          expect(/\p{Cs}/u.test(part)).toBe(false);
        }
        heldBack += parts.filter((part, j) => part === "" && j < ids.length && tokenizer.pieceBytes(ids[j]).length > 0).length;
      }
      // Some tokens did end mid-character, so the streamer had to hold bytes back.
      expect(heldBack).toBeGreaterThan(0);
    });
  }
});

describe("BpeTokenizer errors", () => {
  it("merge with a missing piece", () => {
    const path = writeEditedGpt2("missing-piece.gguf", (entries) => {
      const merges = [...(entries.find((entry) => entry.key === "tokenizer.ggml.merges")!.value as string[])];
      merges[2] = "Ġ zzzqqq";
      return replaceMerges(entries, merges);
    });
    const vocab = ggufToVocab(parseGGUF(new Uint8Array(readFileSync(path)), path), path);
    expectError(
      () => createTokenizer(vocab, path),
      FormatError,
      `BpeTokenizer: ${path}: merges[2] "Ġ zzzqqq" is missing the piece "zzzqqq", expected its left, right and joined pieces to be tokens`,
    );
  });

  it("merge with a missing result", () => {
    const vocab = tinyVocab([], ["a b"]);
    expectError(
      () => createTokenizer(vocab),
      FormatError,
      'BpeTokenizer: vocab: merges[0] "a b" is missing the piece "ab", expected its left, right and joined pieces to be tokens',
    );
  });

  it("merge without a space", () => {
    expectError(
      () => createTokenizer(tinyVocab(["ab"], ["a b", "ab"])),
      FormatError,
      'BpeTokenizer: vocab: merges[1] "ab" is without a space, expected "left right"',
    );
  });

  it("missing merges", () => {
    const path = writeEditedGpt2("no-merges.gguf", (entries) => entries.filter((entry) => entry.key !== "tokenizer.ggml.merges"));
    expectError(
      () => ggufToVocab(parseGGUF(new Uint8Array(readFileSync(path)), path), path),
      FormatError,
      `loadModel: ${path}: metadata key tokenizer.ggml.merges is missing, expected an array of STRING`,
    );
  });

  it("unknown pre-tokenizer", () => {
    const names = PRE_TOKENIZER_NAMES.map((name) => JSON.stringify(name)).join(", ");
    expectError(
      () => createTokenizer(tinyVocab([], [], "nope")),
      FormatError,
      `BpeTokenizer: vocab: pre is "nope", expected one of ${names}`,
    );
  });

  it("unknown tokenizer model", () => {
    const path = writeEditedGpt2("bert.gguf", (entries) =>
      entries.map((entry) => (entry.key === "tokenizer.ggml.model" ? { ...entry, value: "bert" } : entry)) as GGUFMetadataEntry[],
    );
    expectError(
      () => ggufToVocab(parseGGUF(new Uint8Array(readFileSync(path)), path), path),
      FormatError,
      `loadModel: ${path}: metadata tokenizer.ggml.model is "bert", expected "llama" or "gpt2" (only SentencePiece and byte-level BPE vocabularies are supported so far)`,
    );
    expectError(
      () => createTokenizer({ ...tinyVocab([], []), model: "bert" }),
      FormatError,
      'createTokenizer: vocab: model is "bert", expected "llama" (SentencePiece BPE) or "gpt2" (byte-level BPE)',
    );
  });

  it("byte without a token", () => {
    const vocab = tinyVocab([], []);
    vocab.tokens[0x21] = "<not a byte>";
    const tokenizer = createTokenizer(vocab);
    expect(tokenizer.encode("a")).toEqual([0x61]);
    expectError(
      () => tokenizer.encode("!"),
      FormatError,
      'BpeTokenizer: vocab: byte 0x21 is missing (no token "!"), expected one token for each of the 256 byte symbols that the text needs',
    );
  });

  it("id out of range", () => {
    const tokenizer = load("gpt-2");
    expectError(() => tokenizer.decode([50257]), OptionError, "BpeTokenizer: token ids: id is 50257, expected an integer in [0, 50256]");
    expectError(() => tokenizer.pieceBytes(-1), OptionError, "BpeTokenizer: token ids: id is -1, expected an integer in [0, 50256]");
  });
});

describe("BpeTokenizer speed", () => {
  it("150 KB of text", () => {
    const text = readFileSync(shared("data/tinystories-valid-sample.txt"), "utf8");
    const tokenizer = load("llama-bpe");
    const started = performance.now();
    const ids = tokenizer.encode(text, { bos: false });
    const elapsed = performance.now() - started;
    expect(ids.length).toBeGreaterThan(30_000);
    expect(tokenizer.decode(ids)).toBe(text);
    // The bound is loose for slow machines; here it takes about 0.1 s.
    expect(elapsed).toBeLessThan(5_000);
  });
});

describe("dormant tokenize", () => {
  // Runs dist/cli.js, which `npm test` builds first.
  const cli = fileURLToPath(new URL("../dist/cli.js", import.meta.url));
  const tokenize = (...args: string[]) => spawnSync(process.execPath, [cli, "tokenize", ...args], { encoding: "utf8" });

  it("vocab-only GGUF", () => {
    const run = tokenize("--model", vocabPath("llama-bpe"), "--json", "Hello world");
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ tokens: [9906, 1917] });
  });

  it("special flag", () => {
    const run = tokenize("--model", vocabPath("qwen2"), "--special", "--pieces", "<|im_start|>hi");
    expect(run.status).toBe(0);
    expect(run.stdout).toBe('151644\t"<|im_start|>"\n6023\t"hi"\n');
  });
});

describe("loadTokenizer", () => {
  it("vocab-only GGUF", () => {
    const bytes = new Uint8Array(readFileSync(vocabPath("gpt-2")));
    const fromBytes = loadTokenizer(bytes, "gpt-2.gguf");
    const fromBuffer = loadTokenizer(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    expect(fromBytes.encode("Hello world")).toEqual(load("gpt-2").encode("Hello world"));
    expect(fromBuffer.encode("Hello world")).toEqual(fromBytes.encode("Hello world"));
  });

  it("model GGUF", () => {
    const tokenizer = loadTokenizer(new Uint8Array(readFileSync(shared("models/stories260K.gguf"))));
    expect(tokenizer.encode("Once upon a time")).toEqual([1, 403, 407, 261, 378]);
  });

  it("non-GGUF bytes", () => {
    const path = join(tempDir, "notes.txt");
    writeFileSync(path, "not a GGUF file\n");
    expectError(
      () => loadTokenizer(new Uint8Array(readFileSync(path)), path),
      FormatError,
      `loadTokenizer: ${path}: magic is 6e 6f 74 20 ("not "), expected "GGUF" (a GGUF file, vocab-only or full)`,
    );
    expectError(
      () => loadTokenizer(new Uint8Array([0x00, 0x01])),
      FormatError,
      'loadTokenizer: <bytes>: magic is 00 01 (".."), expected "GGUF" (a GGUF file, vocab-only or full)',
    );
    expectError(
      () => loadTokenizer(new ArrayBuffer(0), "empty.gguf"),
      FormatError,
      'loadTokenizer: empty.gguf: magic is empty, expected "GGUF" (a GGUF file, vocab-only or full)',
    );
  });

  it("GGUF without a vocabulary", () => {
    const path = join(tempDir, "no-vocab.gguf");
    writeFileSync(path, writeGGUF({ metadata: [{ key: "general.architecture", type: GGUFValueType.STRING, value: "llama" }], tensors: [] }));
    expectError(
      () => loadTokenizer(new Uint8Array(readFileSync(path)), path),
      FormatError,
      `loadTokenizer: ${path}: metadata key tokenizer.ggml.model is missing, expected a vocabulary (tokenizer.ggml.* keys)`,
    );
  });

  it("truncated GGUF", () => {
    const path = join(tempDir, "cut.gguf");
    writeFileSync(path, readFileSync(vocabPath("gpt-2")).subarray(0, 1000));
    expectError(
      () => loadTokenizer(new Uint8Array(readFileSync(path)), path),
      FormatError,
      `parseGGUF: ${path}: metadata tokenizer.ggml.tokens array length is 50257, expected at most 62 (496 bytes left in the file) ` +
        "(corrupt length or truncated file)",
    );
  });

  it("source of another type", () => {
    expectError(
      () => loadTokenizer("model.gguf" as unknown as Uint8Array),
      OptionError,
      "loadTokenizer: option source is a string, expected a Uint8Array or an ArrayBuffer holding a GGUF file",
    );
    expectError(
      () => loadTokenizer(new Map() as unknown as Uint8Array),
      OptionError,
      "loadTokenizer: option source is an object (Map), expected a Uint8Array or an ArrayBuffer holding a GGUF file",
    );
  });
});
