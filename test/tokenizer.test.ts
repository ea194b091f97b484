import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { FormatError, OptionError } from "../src/errors.js";
import { bytesToPiece, pieceToBytes, readTokenizerBin } from "../src/formats/tokenizer-bin.js";
import { ggufToVocab, parseGGUF } from "../src/gguf.js";
import { SpmTokenizer } from "../src/tokenizer/spm.js";
import { TextStreamer } from "../src/tokenizer/stream.js";
import { TokenType, type Vocab } from "../src/types.js";

const shared = (path: string): string => fileURLToPath(new URL(`../../shared/${path}`, import.meta.url));
const tok512Path = shared("models/tok512.bin");
const tok512 = new Uint8Array(readFileSync(tok512Path));
const vocab = readTokenizerBin(tok512, tok512Path, 512);
const tokenizer = new SpmTokenizer(vocab);

interface Prompt {
  name: string;
  prompt: string;
  prompt_utf8_hex: string;
  tokens: number[];
  pieces: string[];
}
const reference = JSON.parse(readFileSync(shared("reference/tokenizer/encode.json"), "utf8")) as { prompts: Prompt[] };

const tempDir = mkdtempSync(join(tmpdir(), "dormant-tokenizer-"));
afterAll(() => rmSync(tempDir, { recursive: true, force: true }));

/** Writes a tokenizer.bin to the temp dir and returns its path. */
function writeTokenizerBin(name: string, maxTokenLength: number, entries: [number, Uint8Array | string][]): string {
  const pieces = entries.map(([, piece]) => (typeof piece === "string" ? new TextEncoder().encode(piece) : piece));
  const size = 4 + pieces.reduce((sum, piece) => sum + 8 + piece.length, 0);
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setInt32(0, maxTokenLength, true);
  let offset = 4;
  entries.forEach(([score], i) => {
    view.setFloat32(offset, score, true);
    view.setInt32(offset + 4, pieces[i].length, true);
    bytes.set(pieces[i], offset + 8);
    offset += 8 + pieces[i].length;
  });
  const path = join(tempDir, name);
  writeFileSync(path, bytes);
  return path;
}

/** Writes `bytes` to the temp dir and reads them back as a tokenizer.bin of `vocabSize` tokens. */
function readBroken(name: string, bytes: Uint8Array, vocabSize = 512): () => Vocab {
  const path = join(tempDir, name);
  writeFileSync(path, bytes);
  return () => readTokenizerBin(readFileSync(path), path, vocabSize);
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

/** Returns the byte offset of token `id` in tok512.bin. */
function tokenOffset(id: number): number {
  const view = new DataView(tok512.buffer, tok512.byteOffset, tok512.byteLength);
  let offset = 4;
  for (let i = 0; i < id; i++) offset += 8 + view.getInt32(offset + 4, true);
  return offset;
}

/** Encodes the way run.c does: rescans every pair after each merge (O(n²)), as a cross-check. */
function naiveEncode(text: string): number[] {
  const pieceIds = new Map<string, number>();
  vocab.tokens.forEach((piece, id) => {
    if (vocab.types[id] === TokenType.NORMAL && !pieceIds.has(piece)) pieceIds.set(piece, id);
  });
  const symbols: { id: number; piece: string | null }[] = [];
  if (text.length > 0) {
    for (const char of " " + text) {
      const id = char === "▁" ? undefined : pieceIds.get(char.replace(" ", "▁"));
      if (id !== undefined) symbols.push({ id, piece: char.replace(" ", "▁") });
      else for (const byte of new TextEncoder().encode(char)) symbols.push({ id: byte + 3, piece: null });
    }
  }
  for (;;) {
    let best = -1;
    let bestScore = -Infinity;
    let bestId = -1;
    for (let i = 0; i + 1 < symbols.length; i++) {
      const a = symbols[i].piece;
      const b = symbols[i + 1].piece;
      if (a === null || b === null) continue;
      const id = pieceIds.get(a + b);
      if (id !== undefined && vocab.scores[id] > bestScore) {
        best = i;
        bestScore = vocab.scores[id];
        bestId = id;
      }
    }
    if (best < 0) break;
    symbols.splice(best, 2, { id: bestId, piece: symbols[best].piece! + symbols[best + 1].piece! });
  }
  return [1, ...symbols.map((s) => s.id)];
}

/** Returns a deterministic pseudo-random generator of [0, 1) numbers (mulberry32). */
function randomSource(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Returns a random well-formed string mixing ASCII, spaces, newlines, accents, CJK and emoji. */
function randomText(random: () => number, maxLength: number): string {
  const pools = [
    " ", "  ", "\n", "\t", "a", "e", "t", "The", " the", "Lily", ".", ",", "\"", "<s>", "</s>", "▁",
    "é", "ü", "ß", "☕", "😀", "👩‍👩‍👧", "日本", "\u0000", "\uFEFF", "\u{10FFFF}", "\r\n",
  ];
  let text = "";
  const length = Math.floor(random() * maxLength);
  for (let i = 0; i < length; i++) {
    const pick = random();
    if (pick < 0.6) text += pools[Math.floor(random() * pools.length)];
    else if (pick < 0.8) text += String.fromCharCode(0x20 + Math.floor(random() * 0x5f));
    else {
      // Any scalar value: skip the surrogate range, which has no UTF-8 form.
      let code = Math.floor(random() * 0x10ffff);
      if (code >= 0xd800 && code <= 0xdfff) code -= 0x800;
      text += String.fromCodePoint(code);
    }
  }
  return text;
}

describe("readTokenizerBin", () => {
  it("tok512 layout", () => {
    expect(vocab.model).toBe("llama");
    expect(vocab.tokens.length).toBe(512);
    expect(vocab.tokens.slice(0, 4)).toEqual(["<unk>", "\n<s>\n", "\n</s>\n", "<0x00>"]);
    expect(vocab.tokens[258]).toBe("<0xFF>");
    expect(vocab.tokens[259]).toBe("▁t");
    expect(vocab.tokens[410]).toBe("▁");
    expect([...vocab.types.slice(0, 4)]).toEqual([TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL, TokenType.BYTE]);
    expect(vocab.types[258]).toBe(TokenType.BYTE);
    expect(vocab.types[259]).toBe(TokenType.NORMAL);
    expect(vocab.scores[259]).toBe(-0);
    expect(vocab.scores[511]).toBe(-252);
    expect([vocab.bos_id, vocab.eos_id, vocab.unk_id, vocab.add_bos, vocab.add_space_prefix]).toEqual([1, 2, 0, true, true]);
  });

  it("invalid UTF-8 piece kept byte for byte", () => {
    const path = writeTokenizerBin("raw.bin", 6, [
      [0, "<unk>"], [0, "<s>"], [0, "</s>"], [0, "<0x95>"], [-1, Uint8Array.of(0xe2, 0x98)], [-2, "a b"],
    ]);
    const small = readTokenizerBin(readFileSync(path), path, 6);
    expect(small.tokens[4]).toBe("\uDCE2\uDC98");
    expect(small.tokens[5]).toBe("a▁b");
    expect([...pieceToBytes(small.tokens[4])]).toEqual([0xe2, 0x98]);
    // The two raw bytes and the byte token complete "☕" when decoded together.
    expect(new SpmTokenizer(small).decode([1, 4, 3, 5])).toBe("☕a b");
  });

  it("surrogate escape round trip", () => {
    const bytes = Uint8Array.of(0x61, 0xc0, 0xaf, 0xed, 0xa0, 0x80, 0xf4, 0x90, 0x80, 0x80, 0xc3, 0xa9, 0xf0, 0x9f, 0x98);
    const piece = bytesToPiece(bytes);
    expect(piece.startsWith("a")).toBe(true);
    expect(piece).toContain("é");
    expect([...pieceToBytes(piece)]).toEqual([...bytes]);
    expect(bytesToPiece(new TextEncoder().encode("Café ☕"))).toBe("Café ☕");
  });

  it("empty file", () => {
    expectError(
      readBroken("empty.bin", new Uint8Array(0)),
      FormatError,
      `readTokenizerBin: ${join(tempDir, "empty.bin")}: max_token_length is cut off (file is 0 bytes), expected 4 bytes (truncated or empty file)`,
    );
  });

  it("max_token_length implausible", () => {
    const zero = tok512.slice();
    new DataView(zero.buffer).setInt32(0, 0, true);
    expect(readBroken("zero-max.bin", zero)).toThrow(
      `readTokenizerBin: ${join(tempDir, "zero-max.bin")}: max_token_length is 0, expected 1..4096 (not a llama2.c tokenizer.bin, or a big-endian file)`,
    );
    const bigEndian = tok512.slice();
    new DataView(bigEndian.buffer).setInt32(0, 7, false);
    expect(readBroken("big-endian.bin", bigEndian)).toThrow(
      `readTokenizerBin: ${join(tempDir, "big-endian.bin")}: max_token_length is 117440512, expected 1..4096 (not a llama2.c tokenizer.bin, or a big-endian file)`,
    );
  });

  it("truncated piece", () => {
    const offset = tokenOffset(300);
    const cut = tok512.subarray(0, offset + 8 + 1);
    expect(readBroken("cut-piece.bin", cut)).toThrow(
      `readTokenizerBin: ${join(tempDir, "cut-piece.bin")}: token 300 piece is 1 bytes present, expected 3 bytes (truncated file)`,
    );
  });

  it("truncated header", () => {
    const cut = tok512.subarray(0, tokenOffset(77) + 5);
    expect(readBroken("cut-header.bin", cut)).toThrow(
      `readTokenizerBin: ${join(tempDir, "cut-header.bin")}: token 77 header is 5 bytes present, expected 8 bytes (f32 score, i32 length) (truncated file)`,
    );
  });

  it("negative length", () => {
    const bad = tok512.slice();
    new DataView(bad.buffer).setInt32(tokenOffset(5) + 4, -3, true);
    expect(readBroken("negative.bin", bad)).toThrow(
      `readTokenizerBin: ${join(tempDir, "negative.bin")}: token 5 length is -3, expected 0..7 (max_token_length) (corrupted file)`,
    );
  });

  it("huge length", () => {
    const bad = tok512.slice();
    new DataView(bad.buffer).setInt32(tokenOffset(400) + 4, 0x7fffffff, true);
    expect(readBroken("huge.bin", bad)).toThrow(
      `readTokenizerBin: ${join(tempDir, "huge.bin")}: token 400 length is 2147483647, expected 0..7 (max_token_length) (corrupted file)`,
    );
  });

  it("NaN score", () => {
    const bad = tok512.slice();
    new DataView(bad.buffer).setFloat32(tokenOffset(9), NaN, true);
    expect(readBroken("nan.bin", bad)).toThrow(`readTokenizerBin: ${join(tempDir, "nan.bin")}: token 9 score is NaN, expected a number`);
  });

  it("fewer tokens than vocab_size", () => {
    expect(readBroken("short.bin", tok512, 32000)).toThrow(
      `readTokenizerBin: ${join(tempDir, "short.bin")}: token count is 512, expected 32000 (vocab_size of the model) (tokenizer.bin belongs to a smaller vocabulary)`,
    );
  });

  it("bad vocab_size", () => {
    expect(() => readTokenizerBin(tok512, "tok512.bin", 2.5)).toThrow(
      "readTokenizerBin: tok512.bin: vocab_size is 2.5, expected an integer ≥ 3 (unk, bos and eos come first)",
    );
  });

  it("error fields", () => {
    try {
      readTokenizerBin(tok512, "tok512.bin", 600);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(FormatError);
      expect(error).toMatchObject({ source: "tok512.bin", field: "token count", actual: "512" });
    }
  });
});

describe("SpmTokenizer.encode", () => {
  for (const prompt of reference.prompts) {
    it(`reference ${prompt.name}`, () => {
      expect(Buffer.from(prompt.prompt, "utf8").toString("hex")).toBe(prompt.prompt_utf8_hex);
      const ids = tokenizer.encode(prompt.prompt);
      expect(ids).toEqual(prompt.tokens);
      expect(ids.map((id) => tokenizer.piece(id).replaceAll("▁", " "))).toEqual(prompt.pieces);
    });
  }

  it("bos and eos options", () => {
    expect(tokenizer.encode("Once upon a time", { bos: false })).toEqual([403, 407, 261, 378]);
    expect(tokenizer.encode("Once", { eos: true })).toEqual([1, 403, 2]);
    expect(tokenizer.encode("", { bos: false })).toEqual([]);
  });

  it("<s> is text", () => {
    const ids = tokenizer.encode("<s></s>", { bos: false });
    expect(ids).not.toContain(1);
    expect(ids).not.toContain(2);
    expect(tokenizer.decode(ids)).toBe("<s></s>");
  });

  it("byte fallback uses byte tokens", () => {
    // "☕" is not a piece: one token per UTF-8 byte, E2 98 95.
    expect(tokenizer.encode("☕", { bos: false })).toEqual([410, 0xe2 + 3, 0x98 + 3, 0x95 + 3]);
  });

  it("literal ▁ is not a space", () => {
    // run.c's pieces hold real spaces, so U+2581 in the text takes the byte fallback.
    expect(tokenizer.encode("▁", { bos: false })).toEqual([410, 0xe2 + 3, 0x96 + 3, 0x81 + 3]);
  });

  it("lone surrogate as U+FFFD", () => {
    expect(tokenizer.encode("a\uD800", { bos: false })).toEqual(tokenizer.encode("a\uFFFD", { bos: false }));
  });

  it("matches run.c merge order", () => {
    const story = readFileSync(shared("data/tinystories-valid-sample.txt"), "utf8");
    const random = randomSource(7);
    for (let i = 0; i < 150; i++) {
      const start = Math.floor(random() * (story.length - 400));
      const text = story.slice(start, start + Math.floor(random() * 400));
      expect(tokenizer.encode(text)).toEqual(naiveEncode(text));
    }
    for (let i = 0; i < 150; i++) {
      const text = randomText(random, 40);
      expect(tokenizer.encode(text)).toEqual(naiveEncode(text));
    }
  });

  it("long text is fast", () => {
    const story = readFileSync(shared("data/tinystories-valid-sample.txt"), "utf8");
    const text = story.repeat(Math.ceil(150_000 / story.length)).slice(0, 150_000);
    const started = performance.now();
    const ids = tokenizer.encode(text);
    const elapsed = performance.now() - started;
    expect(ids.length).toBeGreaterThan(30_000);
    expect(tokenizer.decode(ids)).toBe(text);
    // The bound is loose for slow machines. Here the heap takes about 0.2 s.
    expect(elapsed).toBeLessThan(5_000);
  });
});

describe("SpmTokenizer on llama.cpp vectors", () => {
  // llama.cpp's test-tokenizer-0 inputs and ids (no BOS), on the real Llama 2 and Phi-3 vocabularies.
  for (const name of ["llama-spm", "phi-3"]) {
    it(name, () => {
      const path = shared(`fixtures/tokenizers/ggml-vocab-${name}.gguf`);
      const spm = new SpmTokenizer(ggufToVocab(parseGGUF(new Uint8Array(readFileSync(path)), path), path));
      const inputs = readFileSync(`${path}.inp`, "utf8").split("\n__ggml_vocab_test__\n");
      inputs.pop();
      const outputs = readFileSync(`${path}.out`, "utf8").split("\n");
      expect(inputs.length).toBe(46);
      inputs.forEach((text, i) => {
        const expected = outputs[i].trim() === "" ? [] : outputs[i].trim().split(" ").map(Number);
        expect(spm.encode(text, { bos: false }), JSON.stringify(text)).toEqual(expected);
        expect(spm.decode(expected)).toBe(text);
      });
    });
  }

  it("stories260K.gguf vocab", () => {
    const path = shared("models/stories260K.gguf");
    const spm = new SpmTokenizer(ggufToVocab(parseGGUF(new Uint8Array(readFileSync(path)), path), path));
    for (const prompt of reference.prompts) expect(spm.encode(prompt.prompt)).toEqual(prompt.tokens);
  });
});

describe("SpmTokenizer.decode", () => {
  it("control tokens print nothing", () => {
    expect(tokenizer.decode([1, 403, 407, 2])).toBe("Once upon");
    expect(tokenizer.decode([1])).toBe("");
    expect(tokenizer.decode([2, 1, 2])).toBe("");
  });

  it("leading space after BOS", () => {
    expect(tokenizer.decode([1, 403])).toBe("Once");
    expect(tokenizer.decode([403, 407])).toBe("Once upon");
    expect(tokenizer.decode([407, 1, 403])).toBe("uponOnce");
    expect([...tokenizer.pieceBytes(403, 1)]).toEqual([...new TextEncoder().encode("Once")]);
    expect([...tokenizer.pieceBytes(403, 407)]).toEqual([...new TextEncoder().encode(" Once")]);
  });

  it("byte tokens join into UTF-8", () => {
    expect(tokenizer.decode([1, 412, 410, 229, 155, 152])).toBe("a ☕");
    expect(tokenizer.decode([229, 155])).toBe("\uFFFD");
  });

  it("unknown token prints its piece", () => {
    expect(tokenizer.decode([412, 0])).toBe("a<unk>");
  });

  it("bad id", () => {
    expectError(() => tokenizer.decode([5, 512]), OptionError, "SpmTokenizer: token ids: id is 512, expected an integer in [0, 511]");
    expect(() => tokenizer.pieceBytes(-1)).toThrow("SpmTokenizer: token ids: id is -1, expected an integer in [0, 511]");
  });

  it("round trip", () => {
    const fixed = [
      "", " ", "  ", "   ", "\n", "\n\n", " a", "a ", "a  b", " \n ", "Café ☕ 😀", "<s>", "\u0000", "\uFEFFbom",
      "▁", "▁▁x", "👩‍👩‍👧 family", "日本語", "\t tab", "Once upon a time, there was a little girl named Lily.",
    ];
    for (const text of fixed) {
      expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
      expect(tokenizer.decode(tokenizer.encode(text, { bos: false, eos: true }))).toBe(text);
    }
    const random = randomSource(2024);
    for (let i = 0; i < 500; i++) {
      const text = randomText(random, 30);
      expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
    }
  });
});

describe("SpmTokenizer vocab checks", () => {
  it("wrong model", () => {
    expectError(
      () => new SpmTokenizer({ ...vocab, model: "gpt2" }),
      FormatError,
      'SpmTokenizer: vocab: model is "gpt2", expected "llama" (SentencePiece BPE)',
    );
  });

  it("scores length", () => {
    expect(() => new SpmTokenizer({ ...vocab, scores: new Float32Array(3) })).toThrow(
      "SpmTokenizer: vocab: scores is 3 entries, expected 512 (one per token)",
    );
  });

  it("types length", () => {
    expect(() => new SpmTokenizer({ ...vocab, types: new Int32Array(0) })).toThrow(
      "SpmTokenizer: vocab: types is 0 entries, expected 512 (one per token)",
    );
  });

  it("bos out of range", () => {
    expect(() => new SpmTokenizer({ ...vocab, bos_id: 512 })).toThrow("SpmTokenizer: vocab: bos_id is 512, expected an id in [0, 511]");
  });

  it("empty vocab", () => {
    const empty: Vocab = { ...vocab, tokens: [], scores: new Float32Array(0), types: new Int32Array(0) };
    expect(() => new SpmTokenizer(empty)).toThrow("SpmTokenizer: vocab: tokens is empty, expected at least one token");
  });

  it("misspelled byte token", () => {
    const types = vocab.types.slice();
    types[259] = TokenType.BYTE;
    expect(() => new SpmTokenizer({ ...vocab, types })).toThrow(
      'SpmTokenizer: vocab: token 259 is "▁t", expected a byte token spelled "<0xAB>"',
    );
  });
});

describe("TextStreamer", () => {
  it("streams Café ☕ 😀", () => {
    const text = "Café ☕ 😀";
    const ids = tokenizer.encode(text);
    const streamer = new TextStreamer(tokenizer);
    const parts = ids.map((id) => streamer.push(id));
    parts.push(streamer.flush());
    expect(parts.join("")).toBe(tokenizer.decode(ids));
    expect(parts.join("")).toBe(text);
    // No part ends inside a UTF-8 sequence: each is well-formed text on its own.
    for (const part of parts) expect(part).not.toContain("\uFFFD");
    expect(parts).toContain("");
  });

  it("holds incomplete bytes", () => {
    const streamer = new TextStreamer(tokenizer);
    expect(streamer.push(1)).toBe("");
    expect(streamer.push(0xf0 + 3)).toBe("");
    expect(streamer.push(0x9f + 3)).toBe("");
    expect(streamer.push(0x98 + 3)).toBe("");
    expect(streamer.push(0x80 + 3)).toBe("😀");
  });

  it("flush emits leftovers as U+FFFD", () => {
    const streamer = new TextStreamer(tokenizer);
    streamer.push(412);
    expect(streamer.push(0xe2 + 3)).toBe("");
    expect(streamer.flush()).toBe("\uFFFD");
    expect(streamer.push(407)).toBe(" upon");
  });

  it("previous id keeps the space", () => {
    const streamer = new TextStreamer(tokenizer, 403);
    expect(streamer.push(407)).toBe(" upon");
    expect(new TextStreamer(tokenizer).push(407)).toBe("upon");
  });

  it("random text streams like decode", () => {
    const random = randomSource(99);
    for (let i = 0; i < 100; i++) {
      const ids = tokenizer.encode(randomText(random, 30));
      const streamer = new TextStreamer(tokenizer);
      let streamed = "";
      for (const id of ids) streamed += streamer.push(id);
      streamed += streamer.flush();
      expect(streamed).toBe(tokenizer.decode(ids));
    }
  });
});
