/**
 * Byte-level BPE, the "gpt2" tokenizer of GGUF (GPT-2, Llama 3, Qwen2, DeepSeek, Falcon,
 * StarCoder). Encoding follows llama.cpp's `llm_tokenizer_bpe` (src/llama-vocab.cpp):
 *
 *   1. special and added tokens are split out of the text (special.ts);
 *   2. each remaining run is cut into chunks by the regexes of `tokenizer.ggml.pre` (pretokenize.ts);
 *   3. a chunk becomes one symbol per UTF-8 byte, spelled in GPT-2's byte-to-unicode alphabet;
 *   4. the adjacent pair with the lowest rank in `tokenizer.ggml.merges` merges, the leftmost
 *      one among equal ranks, until no adjacent pair has a rank.
 *
 * With ignore_merges (the Llama 3 family), a chunk that is itself a token skips step 4.
 * Step 4 keeps candidate pairs in a binary min-heap over a linked list of symbols, so a chunk
 * of n bytes costs O(n log n). Repeated chunks come from a cache.
 */

import { formatMismatch, optionMismatch } from "../errors.js";
import { TokenType, type Vocab } from "../types.js";
import type { DecodeOptions, EncodeOptions, Tokenizer } from "./index.js";
import { findPreTokenizer, PRE_TOKENIZER_NAMES, splitChunks, type PreTokenizer } from "./pretokenize.js";
import { checkDecodeOptions, checkEncodeArguments } from "./options.js";
import { findEotId, SpecialTokenSplitter } from "./special.js";

/**
 * GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves and the other 68 bytes
 * (controls, space, DEL, NBSP, soft hyphen) take the code points 256, 257, ... in byte order.
 */
const BYTE_CHARS: string[] = [];
/** Inverse of BYTE_CHARS by code point (0..323), -1 where no byte maps. */
const CHAR_BYTES = new Int16Array(256 + 68).fill(-1);
{
  let shifted = 0;
  for (let byte = 0; byte < 256; byte++) {
    const printable = (byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || byte >= 0xae;
    const code = printable ? byte : 256 + shifted++;
    BYTE_CHARS.push(String.fromCharCode(code));
    CHAR_BYTES[code] = byte;
  }
}

/** Chunks kept in the encode cache before it is cleared. */
const CACHE_LIMIT = 1 << 16;

const WHERE = "BpeTokenizer";

export class BpeTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly eotId: number | undefined;
  readonly #vocab: Vocab;
  /** File name for error messages. */
  readonly #source: string;
  readonly #pre: PreTokenizer;
  readonly #special: SpecialTokenSplitter;
  /** Map from token text to the lowest id with that text, over all token types. */
  readonly #ids = new Map<string, number>();
  /** Id of the one-symbol token of each byte, or -1 when the vocabulary has none. */
  readonly #byteIds = new Int32Array(256).fill(-1);
  /** Rank of each mergeable pair of ids. */
  readonly #ranks: PairRanks;
  /** Id of the merged token, by rank. */
  readonly #merged: Int32Array;
  /** Output bytes of each id, built on first use. */
  readonly #bytes: (Uint8Array | undefined)[];
  readonly #cache = new Map<string, number[]>();
  readonly #heap = new PairHeap();
  readonly #encoder = new TextEncoder();

  /** Creates the tokenizer of `vocab`; `source` names the vocabulary's file in error messages. */
  constructor(vocab: Vocab, source = "vocab") {
    this.#pre = checkVocab(vocab, source);
    this.#vocab = vocab;
    this.#source = source;
    this.vocabSize = vocab.tokens.length;
    this.bosId = vocab.bos_id;
    this.eosId = vocab.eos_id;
    this.eotId = findEotId(vocab);
    // NOTE: llama.cpp rejects a vocabulary with two tokens of the same text; here the lower id wins.
    vocab.tokens.forEach((text, id) => {
      if (!this.#ids.has(text)) this.#ids.set(text, id);
    });
    for (let byte = 0; byte < 256; byte++) this.#byteIds[byte] = this.#ids.get(BYTE_CHARS[byte]) ?? -1;
    const { ranks, merged } = this.#readMerges(vocab.merges!);
    this.#ranks = ranks;
    this.#merged = merged;
    this.#special = new SpecialTokenSplitter(vocab);
    this.#bytes = new Array(this.vocabSize);
  }

  /**
   * Splits `text` into token ids. BOS and EOS follow the vocabulary's add_bos / add_eos unless
   * `options.bos` / `options.eos` are set. With `parseSpecial`, the text of a control token (such as
   * "<|eot_id|>") becomes that token; without it only added (USER_DEFINED) tokens are matched.
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    checkEncodeArguments(text, options);
    const ids: number[] = [];
    if (options.bos ?? this.#vocab.add_bos) ids.push(this.bosId);
    for (const fragment of this.#special.split(text, options.parseSpecial ?? false)) {
      if (typeof fragment === "number") ids.push(fragment);
      else for (const chunk of splitChunks(fragment, this.#pre.regexes)) this.#encodeChunk(chunk, ids);
    }
    if (options.eos ?? this.#vocab.add_eos ?? false) ids.push(this.eosId);
    return ids;
  }

  /**
   * Joins the text of `ids`. Control, unknown and unused tokens add nothing unless
   * `options.special` is set, which prints control and unknown tokens as their text.
   * `options.cleanSpaces` applies llama.cpp's detokenizer clean-up for vocabularies that ask for it.
   */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    checkDecodeOptions(options);
    const parts: Uint8Array[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      const printsText = options.special && (this.isControl(id) || this.#vocab.types[id] === TokenType.UNKNOWN);
      parts.push(printsText ? this.#encoder.encode(this.#vocab.tokens[id]) : this.pieceBytes(id));
    }
    let bytes = concatBytes(parts);
    if (options.cleanSpaces && this.#pre.cleanSpaces) bytes = cleanSpaces(bytes);
    return new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes);
  }

  /**
   * Returns the bytes that token `id` adds to the output. In byte-level BPE they never depend on
   * the token before, so the Tokenizer interface's `previous` argument is not taken.
   */
  pieceBytes(id: number): Uint8Array {
    this.#checkId(id);
    let bytes = this.#bytes[id];
    if (bytes === undefined) {
      bytes = this.#outputBytes(id);
      this.#bytes[id] = bytes;
    }
    return bytes;
  }

  /** Returns the text of `id` as the vocabulary spells it ("Ġ" for a leading space). */
  piece(id: number): string {
    this.#checkId(id);
    return this.#vocab.tokens[id];
  }

  /** Tells whether `id` is a CONTROL token (BOS, EOS, chat markers). */
  isControl(id: number): boolean {
    this.#checkId(id);
    return this.#vocab.types[id] === TokenType.CONTROL;
  }

  #checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      optionMismatch(WHERE, {
        source: "token ids", field: "id", actual: String(id), expected: `an integer in [0, ${this.vocabSize - 1}]`,
      });
    }
  }

  /** Parses `tokenizer.ggml.merges` into the rank of each pair and the merged id of each rank. */
  #readMerges(merges: string[]): { ranks: PairRanks; merged: Int32Array } {
    const ranks = new PairRanks(merges.length);
    const merged = new Int32Array(merges.length);
    for (let rank = 0; rank < merges.length; rank++) {
      const line = merges[rank];
      // llama.cpp splits at the first space after the first character.
      const space = line.indexOf(" ", 1);
      if (space < 0) this.#failMerge(rank, "without a space", `"left right"`);
      const left = line.slice(0, space);
      const right = line.slice(space + 1);
      const leftId = this.#idOfMergePiece(rank, left);
      const rightId = this.#idOfMergePiece(rank, right);
      merged[rank] = this.#idOfMergePiece(rank, left + right);
      // A repeated pair keeps its first rank, as in llama.cpp.
      if (ranks.get(leftId, rightId) < 0) ranks.set(leftId, rightId, rank);
    }
    return { ranks, merged };
  }

  #idOfMergePiece(rank: number, piece: string): number {
    const id = this.#ids.get(piece);
    if (id === undefined) {
      this.#failMerge(rank, `missing the piece ${JSON.stringify(piece)}`, "its left, right and joined pieces to be tokens");
    }
    return id;
  }

  #failMerge(rank: number, actual: string, expected: string): never {
    const line = this.#vocab.merges![rank];
    return formatMismatch(WHERE, { source: this.#source, field: `merges[${rank}] ${JSON.stringify(line)}`, actual, expected });
  }

  /** Appends the ids of one pre-tokenized chunk (steps 3 and 4 of the file comment). */
  #encodeChunk(chunk: string, out: number[]): void {
    const cached = this.#cache.get(chunk);
    if (cached !== undefined) {
      for (const id of cached) out.push(id);
      return;
    }
    // TextEncoder writes a lone surrogate as the bytes of U+FFFD, which UTF-8 input cannot contain.
    const bytes = this.#encoder.encode(chunk);
    let ids: number[] | undefined;
    if (this.#pre.ignoreMerges) {
      let symbols = "";
      for (const byte of bytes) symbols += BYTE_CHARS[byte];
      const id = this.#ids.get(symbols);
      if (id !== undefined) ids = [id];
    }
    ids ??= this.#mergeBytes(bytes);
    if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
    this.#cache.set(chunk, ids);
    for (const id of ids) out.push(id);
  }

  /** Runs step 4 of the file comment over the byte symbols of one chunk. */
  #mergeBytes(bytes: Uint8Array): number[] {
    const count = bytes.length;
    const ids = new Int32Array(count);
    const next = new Int32Array(count);
    const prev = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      ids[i] = this.#byteIds[bytes[i]];
      if (ids[i] < 0) this.#failMissingByte(bytes[i]);
      next[i] = i + 1 < count ? i + 1 : -1;
      prev[i] = i - 1;
    }

    const heap = this.#heap;
    heap.clear();
    const offer = (left: number, right: number): void => {
      const rank = this.#ranks.get(ids[left], ids[right]);
      if (rank >= 0) heap.push(rank, left);
    };
    for (let i = 0; i + 1 < count; i++) offer(i, i + 1);

    while (heap.size > 0) {
      const rank = heap.topRank;
      const left = heap.pop();
      const right = next[left];
      // Skip entries that an earlier merge made stale: the left symbol was absorbed, or the
      // pair at `left` is now a different one.
      if (ids[left] < 0 || right < 0) continue;
      if (this.#ranks.get(ids[left], ids[right]) !== rank) continue;
      ids[left] = this.#merged[rank];
      ids[right] = -1;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      if (prev[left] >= 0) offer(prev[left], left);
      if (next[left] >= 0) offer(left, next[left]);
    }

    const out: number[] = [];
    for (let i = count > 0 ? 0 : -1; i >= 0; i = next[i]) out.push(ids[i]);
    return out;
  }

  #failMissingByte(byte: number): never {
    const hex = byte.toString(16).toUpperCase().padStart(2, "0");
    return formatMismatch(WHERE, {
      source: this.#source, field: `byte 0x${hex}`, actual: `missing (no token ${JSON.stringify(BYTE_CHARS[byte])})`,
      expected: "one token for each of the 256 byte symbols that the text needs",
    });
  }

  /** Output bytes of `id` as llama.cpp's token_to_piece prints them without `special`. */
  #outputBytes(id: number): Uint8Array {
    const text = this.#vocab.tokens[id];
    switch (this.#vocab.types[id]) {
      case TokenType.NORMAL:
        return byteLevelToBytes(text, this.#encoder);
      case TokenType.USER_DEFINED:
        // Added tokens are stored as plain text, not in the byte alphabet.
        return this.#encoder.encode(text);
      case TokenType.BYTE: {
        const match = /^<0x([0-9A-Fa-f]{2})>$/.exec(text);
        if (!match) {
          formatMismatch(WHERE, { source: this.#source, field: `token ${id}`, actual: JSON.stringify(text), expected: 'a byte token spelled "<0xAB>"' });
        }
        return Uint8Array.of(parseInt(match[1], 16));
      }
      default:
        // CONTROL, UNKNOWN, UNUSED and UNDEFINED print nothing, as in llama.cpp.
        return new Uint8Array(0);
    }
  }
}

/** Checks the fields a byte-level BPE vocabulary needs and returns its pre-tokenizer. */
function checkVocab(vocab: Vocab, source: string): PreTokenizer {
  const count = vocab.tokens.length;
  const fail = (field: string, actual: string, expected: string): never =>
    formatMismatch(WHERE, { source, field, actual, expected });
  if (vocab.model !== "gpt2") fail("model", JSON.stringify(vocab.model), '"gpt2" (byte-level BPE)');
  if (count === 0) fail("tokens", "empty", "at least one token");
  if (vocab.types.length !== count) fail("types", `${vocab.types.length} entries`, `${count} (one per token)`);
  if (vocab.merges === undefined) fail("merges", "missing", "the tokenizer.ggml.merges list");
  for (const [field, id] of [["bos_id", vocab.bos_id], ["eos_id", vocab.eos_id]] as const) {
    if (!Number.isInteger(id) || id < 0 || id >= count) fail(field, String(id), `an id in [0, ${count - 1}]`);
  }
  const pre = findPreTokenizer(vocab.pre);
  if (pre === undefined) {
    return fail("pre", JSON.stringify(vocab.pre), `one of ${PRE_TOKENIZER_NAMES.map((name) => JSON.stringify(name)).join(", ")}`);
  }
  return pre;
}

/** Maps a piece spelled in the byte alphabet back to its bytes. */
function byteLevelToBytes(text: string, encoder: TextEncoder): Uint8Array {
  const bytes: number[] = [];
  for (const char of text) {
    const code = char.codePointAt(0)!;
    const byte = code < CHAR_BYTES.length ? CHAR_BYTES[code] : -1;
    if (byte >= 0) {
      bytes.push(byte);
    } else {
      // NOTE: llama.cpp prints "[UNK_BYTE_0x…]" for a character outside the byte alphabet; here it keeps the character.
      for (const unit of encoder.encode(char)) bytes.push(unit);
    }
  }
  return Uint8Array.from(bytes);
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  const joined = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return joined;
}

const SPACE = 0x20;
const APOSTROPHE = 0x27;

/**
 * Applies the three `clean_spaces` passes of llama.cpp's `llama_detokenize` to UTF-8 bytes.
 * The first drops the space before "?", "!", "." and ",". The second turns " ' " into "'".
 * The third drops the space before "'s", "'m", "'re" and "'ve".
 */
export function cleanSpaces(input: Uint8Array): Uint8Array {
  const punctuation = new Set([0x3f, 0x21, 0x2e, 0x2c]);
  const first: number[] = [];
  input.forEach((byte, i) => {
    if (i > 0 && input[i - 1] === SPACE && punctuation.has(byte)) first.pop();
    first.push(byte);
  });

  // A consumed space after a lone apostrophe no longer counts as a space for later checks.
  const second: number[] = [];
  const consumed = new Set<number>();
  for (let i = 0; i < first.length; i++) {
    if (consumed.has(i)) continue;
    const before = i > 0 && !consumed.has(i - 1) ? first[i - 1] : -1;
    if (i > 0 && first[i] === APOSTROPHE && i + 1 < first.length && before === SPACE && first[i + 1] === SPACE) {
      second.pop();
      consumed.add(i + 1);
    }
    second.push(first[i]);
  }

  const third: number[] = [];
  second.forEach((byte, i) => {
    if (i > 0 && second[i - 1] === SPACE && byte === APOSTROPHE && i + 1 < second.length) {
      const [x1, x2] = [second[i + 1], second[i + 2]];
      const shortForm = x1 === 0x73 || x1 === 0x6d; // 's, 'm
      const longForm = i + 2 < second.length && x2 === 0x65 && (x1 === 0x72 || x1 === 0x76); // 're, 've
      if (shortForm || longForm) third.pop();
    }
    third.push(byte);
  });
  return Uint8Array.from(third);
}

/**
 * Open-addressing hash map from a pair of token ids to a merge rank, in typed arrays: a Map keyed
 * by left × vocab_size + right would need keys beyond the small-integer range, which V8 boxes.
 */
class PairRanks {
  readonly #lefts: Int32Array;
  readonly #rights: Int32Array;
  readonly #ranks: Int32Array;
  readonly #mask: number;

  constructor(count: number) {
    // A load factor of at most 1/2 keeps probe sequences short.
    let capacity = 16;
    while (capacity < count * 2) capacity *= 2;
    this.#lefts = new Int32Array(capacity).fill(-1);
    this.#rights = new Int32Array(capacity);
    this.#ranks = new Int32Array(capacity);
    this.#mask = capacity - 1;
  }

  /** Returns the rank of (left, right), or -1 when the pair has none. */
  get(left: number, right: number): number {
    for (let slot = this.#slot(left, right); ; slot = (slot + 1) & this.#mask) {
      const stored = this.#lefts[slot];
      if (stored < 0) return -1;
      if (stored === left && this.#rights[slot] === right) return this.#ranks[slot];
    }
  }

  /** Stores the rank of a pair that is not in the map yet. */
  set(left: number, right: number, rank: number): void {
    let slot = this.#slot(left, right);
    while (this.#lefts[slot] >= 0) slot = (slot + 1) & this.#mask;
    this.#lefts[slot] = left;
    this.#rights[slot] = right;
    this.#ranks[slot] = rank;
  }

  #slot(left: number, right: number): number {
    // Multiply-xorshift mixing, so that the low bits used as the slot depend on all input bits.
    let hash = Math.imul(left, 0x9e3779b1) ^ Math.imul(right, 0x85ebca77);
    hash = Math.imul(hash ^ (hash >>> 16), 0x7feb352d);
    return (hash ^ (hash >>> 15)) & this.#mask;
  }
}

/** Binary min-heap of (rank, left) pairs: lowest rank first, then the leftmost symbol. */
class PairHeap {
  #ranks = new Int32Array(64);
  #lefts = new Int32Array(64);
  size = 0;

  get topRank(): number {
    return this.#ranks[0];
  }

  clear(): void {
    this.size = 0;
  }

  push(rank: number, left: number): void {
    if (this.size === this.#ranks.length) this.#grow();
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(rank, left, this.#ranks[parent], this.#lefts[parent])) break;
      this.#ranks[i] = this.#ranks[parent];
      this.#lefts[i] = this.#lefts[parent];
      i = parent;
    }
    this.#ranks[i] = rank;
    this.#lefts[i] = left;
  }

  /** Removes the top pair and returns its left index. */
  pop(): number {
    const top = this.#lefts[0];
    const last = --this.size;
    const rank = this.#ranks[last];
    const left = this.#lefts[last];
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= last) break;
      if (child + 1 < last && before(this.#ranks[child + 1], this.#lefts[child + 1], this.#ranks[child], this.#lefts[child])) child++;
      if (!before(this.#ranks[child], this.#lefts[child], rank, left)) break;
      this.#ranks[i] = this.#ranks[child];
      this.#lefts[i] = this.#lefts[child];
      i = child;
    }
    this.#ranks[i] = rank;
    this.#lefts[i] = left;
    return top;
  }

  #grow(): void {
    const ranks = new Int32Array(this.#ranks.length * 2);
    const lefts = new Int32Array(this.#lefts.length * 2);
    ranks.set(this.#ranks);
    lefts.set(this.#lefts);
    this.#ranks = ranks;
    this.#lefts = lefts;
  }
}

function before(rank: number, left: number, otherRank: number, otherLeft: number): boolean {
  return rank < otherRank || (rank === otherRank && left < otherLeft);
}
