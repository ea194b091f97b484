/**
 * SentencePiece-style BPE with byte fallback, the "llama" tokenizer of GGUF. Encoding follows
 * llama2.c run.c's `encode()` and llama.cpp's SPM tokenizer:
 *
 *   1. prepend the dummy-prefix space to non-empty text; spaces match the "▁" pieces;
 *   2. one symbol per code point; a code point with no piece becomes one BYTE token per
 *      UTF-8 byte (the "<0xAB>" pieces);
 *   3. repeatedly merge the adjacent pair whose concatenation is a piece with the highest
 *      score, the leftmost pair on ties, until no pair is a piece.
 *
 * Step 3 keeps candidate pairs in a max-heap over a linked list of symbols, so a text of n
 * code points costs O(n log n). run.c rescans the whole list after every merge, which is O(n²).
 */

import { formatMismatch, optionMismatch } from "../errors.js";
import { pieceToBytes } from "../formats/tokenizer-bin.js";
import { TokenType, type Vocab } from "../types.js";

export interface EncodeOptions {
  /** Prepend BOS (default: the vocabulary's add_bos). */
  bos?: boolean;
  /** Append EOS (default false). */
  eos?: boolean;
}

const SPACE = 0x20;
const REPLACEMENT = "\uFFFD";

/**
 * Token types whose pieces may match text. Control, byte and unknown pieces never match.
 * NOTE: llama.cpp splits user-defined pieces out of the text before merging; here they are
 * reached only through merges.
 */
const TEXT_TYPES = new Set<number>([TokenType.UNDEFINED, TokenType.NORMAL, TokenType.USER_DEFINED]);

export class SpmTokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly #vocab: Vocab;
  /** Map from text piece to the lowest id with that piece. */
  readonly #pieceIds = new Map<string, number>();
  /** Id of the "<0xAB>" token of each byte value, or unk_id when the vocabulary has none. */
  readonly #byteIds = new Int32Array(256);
  /** Output bytes of each id before the leading-space rule, empty for control tokens. */
  readonly #bytes: Uint8Array[];
  readonly #decoder = new TextDecoder("utf-8", { ignoreBOM: true });

  constructor(vocab: Vocab) {
    checkVocab(vocab);
    this.#vocab = vocab;
    this.vocabSize = vocab.tokens.length;
    this.bosId = vocab.bos_id;
    this.eosId = vocab.eos_id;
    this.#byteIds.fill(-1);
    this.#bytes = new Array(this.vocabSize);
    for (let id = 0; id < this.vocabSize; id++) {
      const piece = vocab.tokens[id];
      const type = vocab.types[id];
      if (TEXT_TYPES.has(type) && !this.#pieceIds.has(piece)) this.#pieceIds.set(piece, id);
      this.#bytes[id] = this.#outputBytes(id, piece, type);
    }
    for (let byte = 0; byte < 256; byte++) {
      if (this.#byteIds[byte] < 0) this.#byteIds[byte] = vocab.unk_id;
    }
  }

  /** Splits `text` into token ids. BOS is added when `options.bos` is true, by default when vocab.add_bos is. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids: number[] = [];
    if (options.bos ?? this.#vocab.add_bos) ids.push(this.bosId);
    if (text.length > 0) {
      const spaced = this.#vocab.add_space_prefix ? " " + text : text;
      for (const id of this.#mergeSymbols(spaced)) ids.push(id);
    }
    if (options.eos) ids.push(this.eosId);
    return ids;
  }

  /** Joins the text of `ids`. Control tokens add nothing and byte tokens add their raw byte. */
  decode(ids: ArrayLike<number>): string {
    const parts: Uint8Array[] = [];
    let length = 0;
    for (let i = 0; i < ids.length; i++) {
      const bytes = this.pieceBytes(ids[i], i === 0 ? undefined : ids[i - 1]);
      parts.push(bytes);
      length += bytes.length;
    }
    const joined = new Uint8Array(length);
    let offset = 0;
    for (const part of parts) {
      joined.set(part, offset);
      offset += part.length;
    }
    return this.#decoder.decode(joined);
  }

  /**
   * Returns the bytes that token `id` adds to the output when it follows `previous`
   * (undefined at the start of the text). SentencePiece drops the leading space of the
   * piece that opens the text or follows BOS, since that space is the dummy prefix.
   */
  pieceBytes(id: number, previous?: number): Uint8Array {
    this.#checkId(id, "id");
    const bytes = this.#bytes[id];
    const opensText = previous === undefined || previous === this.bosId;
    if (opensText && this.#vocab.add_space_prefix && bytes.length > 0 && bytes[0] === SPACE) {
      return bytes.subarray(1);
    }
    return bytes;
  }

  /** Returns the piece of `id` as the vocabulary spells it ("▁" for spaces, "<0xAB>" for bytes). */
  piece(id: number): string {
    this.#checkId(id, "id");
    return this.#vocab.tokens[id];
  }

  #checkId(id: number, field: string): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      optionMismatch("SpmTokenizer", {
        source: "token ids",
        field,
        actual: String(id),
        expected: `an integer in [0, ${this.vocabSize - 1}]`,
      });
    }
  }

  #outputBytes(id: number, piece: string, type: number): Uint8Array {
    switch (type) {
      case TokenType.CONTROL:
        return new Uint8Array(0);
      case TokenType.BYTE: {
        const match = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
        if (!match) {
          formatMismatch("SpmTokenizer", {
            source: "vocab",
            field: `token ${id}`,
            actual: JSON.stringify(piece),
            expected: 'a byte token spelled "<0xAB>"',
          });
        }
        const value = parseInt(match[1], 16);
        // The first id wins, as in the text-piece map.
        if (this.#byteIds[value] < 0) this.#byteIds[value] = id;
        return Uint8Array.of(value);
      }
      default:
        // Unknown tokens print their piece ("<unk>"), as run.c does.
        return pieceToBytes(piece.replaceAll("▁", " "));
    }
  }

  /** Runs steps 2 and 3 of the file comment over `text` and returns the ids in order. */
  #mergeSymbols(text: string): number[] {
    const symbols = this.#initialSymbols(text);
    const count = symbols.ids.length;
    const { ids, pieces } = symbols;
    const next = new Int32Array(count);
    const prev = new Int32Array(count);
    const version = new Uint32Array(count);
    for (let i = 0; i < count; i++) {
      next[i] = i + 1 < count ? i + 1 : -1;
      prev[i] = i - 1;
    }

    const heap = new PairHeap();
    const offer = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const a = pieces[left];
      const b = pieces[right];
      if (a === null || b === null) return;
      const id = this.#pieceIds.get(a + b);
      if (id === undefined) return;
      heap.push({ score: this.#vocab.scores[id], left, right, id, leftVersion: version[left], rightVersion: version[right] });
    };
    for (let i = 0; i + 1 < count; i++) offer(i, i + 1);

    for (let pair = heap.pop(); pair !== undefined; pair = heap.pop()) {
      const { left, right } = pair;
      // Skip pairs that an earlier merge broke up or changed.
      if (next[left] !== right || version[left] !== pair.leftVersion || version[right] !== pair.rightVersion) continue;
      ids[left] = pair.id;
      pieces[left] = pieces[left]! + pieces[right]!;
      version[left]++;
      version[right]++;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      next[right] = -2; // removed
      offer(prev[left], left);
      offer(left, next[left]);
    }

    const out: number[] = [];
    for (let i = count > 0 ? 0 : -1; i >= 0; i = next[i]) out.push(ids[i]);
    return out;
  }

  /**
   * Returns one symbol per code point with a piece, else one BYTE symbol per UTF-8 byte.
   * A space looks up the "▁" piece. A literal "▁" in the text takes the byte fallback, as in
   * run.c, whose pieces contain real spaces, so decode gives it back.
   * NOTE: llama.cpp reads a literal "▁" as a space, so its ids differ for such text.
   */
  #initialSymbols(text: string): { ids: number[]; pieces: (string | null)[] } {
    const ids: number[] = [];
    const pieces: (string | null)[] = [];
    const encoder = new TextEncoder();
    for (let char of text) {
      const code = char.codePointAt(0)!;
      // A lone surrogate has no UTF-8 form, and TextEncoder writes U+FFFD for it too.
      if (code >= 0xd800 && code <= 0xdfff) char = REPLACEMENT;
      const piece = char === " " ? "▁" : char;
      const id = char === "▁" ? undefined : this.#pieceIds.get(piece);
      if (id !== undefined) {
        ids.push(id);
        pieces.push(piece);
        continue;
      }
      // Byte tokens never merge, because run.c would need a "<0xAB><0xCD>" piece to merge
      // them into, and SentencePiece vocabularies have none.
      for (const byte of encoder.encode(char)) {
        ids.push(this.#byteIds[byte]);
        pieces.push(null);
      }
    }
    return { ids, pieces };
  }
}

function checkVocab(vocab: Vocab): void {
  const count = vocab.tokens.length;
  const fail = (field: string, actual: string, expected: string): never =>
    formatMismatch("SpmTokenizer", { source: "vocab", field, actual, expected });
  if (vocab.model !== "llama") fail("model", JSON.stringify(vocab.model), '"llama" (SentencePiece BPE)');
  if (count === 0) fail("tokens", "empty", "at least one token");
  if (vocab.scores.length !== count) fail("scores", `${vocab.scores.length} entries`, `${count} (one per token)`);
  if (vocab.types.length !== count) fail("types", `${vocab.types.length} entries`, `${count} (one per token)`);
  for (const [field, id] of [["bos_id", vocab.bos_id], ["eos_id", vocab.eos_id], ["unk_id", vocab.unk_id]] as const) {
    if (!Number.isInteger(id) || id < 0 || id >= count) fail(field, String(id), `an id in [0, ${count - 1}]`);
  }
}

interface Pair {
  score: number;
  /** Index of the left symbol, which orders pairs of equal score from left to right. */
  left: number;
  right: number;
  /** Id of the merged piece. */
  id: number;
  leftVersion: number;
  rightVersion: number;
}

/** Binary max-heap of pairs: highest score first, then the leftmost. */
class PairHeap {
  readonly #items: Pair[] = [];

  push(pair: Pair): void {
    const items = this.#items;
    items.push(pair);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(items[i], items[parent])) break;
      [items[i], items[parent]] = [items[parent], items[i]];
      i = parent;
    }
  }

  pop(): Pair | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    items[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let best = i;
      if (left < items.length && before(items[left], items[best])) best = left;
      if (right < items.length && before(items[right], items[best])) best = right;
      if (best === i) return top;
      [items[i], items[best]] = [items[best], items[i]];
      i = best;
    }
  }
}

function before(a: Pair, b: Pair): boolean {
  return a.score > b.score || (a.score === b.score && a.left < b.left);
}
