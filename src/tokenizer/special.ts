/**
 * Special-token matching before the text reaches a tokenizer, as llama.cpp's
 * `tokenizer_st_partition` (src/llama-vocab.cpp) does it:
 *
 *   - candidates are the CONTROL, USER_DEFINED and UNKNOWN tokens; without parseSpecial only
 *     the USER_DEFINED ones (HF "added tokens", such as DeepSeek's "ü") are matched;
 *   - longer tokens (in UTF-8 bytes) claim their text first; each claims its leftmost
 *     non-overlapping occurrences in the text not yet claimed;
 *   - a token with the rstrip (lstrip) attribute also swallows the ASCII spaces after (before) it.
 *
 * llama.cpp rescans every fragment for every candidate. This file finds all occurrences once with
 * a trie and replays the same claiming order over a per-character mask, so a vocabulary with
 * thousands of added tokens (DeepSeek has 2398) costs one pass over the text.
 */

import { TokenType, type Vocab } from "../types.js";

/** A run of plain text or one special-token id. */
export type Fragment = string | number;

interface TrieNode {
  children: Map<number, TrieNode>;
  /** Token whose text ends here, or -1. */
  id: number;
}

const FREE = 0;
const TOKEN = 1;
const STRIPPED = 2;

/**
 * Token texts that llama.cpp (src/llama-vocab.cpp) takes as end of turn when the file names no
 * eot_token_id. llama.cpp takes whichever it meets first in a hash map; here the list order decides.
 */
const EOT_TEXTS = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>", "_<EOT>", "<｜end▁of▁sentence｜>"];

/**
 * Tells whether llama.cpp gives special tokens the rstrip attribute for a model of this
 * `general.name`: it does for Phi-3 (names containing "phi-3" or "phi3", any case).
 */
export function stripsAfterSpecialTokens(name: string | undefined): boolean {
  const lower = (name ?? "").toLowerCase();
  return lower.includes("phi-3") || lower.includes("phi3");
}

/** Returns `vocab.eot_id`, else the first token whose text llama.cpp recognizes as end of turn, else undefined. */
export function findEotId(vocab: Vocab): number | undefined {
  if (vocab.eot_id !== undefined) return vocab.eot_id;
  for (const text of EOT_TEXTS) {
    const id = vocab.tokens.indexOf(text);
    if (id >= 0) return id;
  }
  return undefined;
}

export class SpecialTokenSplitter {
  readonly #root: TrieNode = { children: new Map(), id: -1 };
  readonly #types: Int32Array;
  /** Claiming order of each candidate id: longer UTF-8 text first, then the lower id. */
  readonly #priority = new Map<number, number>();
  readonly #lstrip = new Set<number>();
  readonly #rstrip = new Set<number>();
  readonly #hasUserDefined: boolean;

  constructor(vocab: Vocab) {
    this.#types = vocab.types;
    const encoder = new TextEncoder();
    const candidates: { id: number; bytes: number }[] = [];
    vocab.tokens.forEach((text, id) => {
      const type = vocab.types[id];
      const special = type === TokenType.CONTROL || type === TokenType.USER_DEFINED || type === TokenType.UNKNOWN;
      if (special && text.length > 0) candidates.push({ id, bytes: encoder.encode(text).length });
    });
    // NOTE: llama.cpp orders equal lengths with std::sort, which leaves their order unspecified.
    candidates.sort((a, b) => b.bytes - a.bytes || a.id - b.id);
    candidates.forEach(({ id }, rank) => {
      this.#priority.set(id, rank);
      this.#insert(vocab.tokens[id], id);
    });
    this.#hasUserDefined = candidates.some(({ id }) => vocab.types[id] === TokenType.USER_DEFINED);
    this.#setStripRules(vocab, candidates.map(({ id }) => id));
  }

  /** Splits `text` into plain runs and special-token ids, in order. Empty runs are left out. */
  split(text: string, parseSpecial: boolean): Fragment[] {
    if (text.length === 0) return [];
    if (this.#priority.size === 0 || (!parseSpecial && !this.#hasUserDefined)) return [text];
    const found = this.#occurrences(text, parseSpecial);
    if (found.length === 0) return [text];

    const state = new Uint8Array(text.length);
    const tokenEnd = new Map<number, { id: number; end: number }>();
    for (const { id, start, end } of found) {
      if (!isFree(state, start, end)) continue;
      state.fill(TOKEN, start, end);
      tokenEnd.set(start, { id, end });
      if (this.#lstrip.has(id)) {
        for (let i = start - 1; i >= 0 && state[i] === FREE && isAsciiSpace(text.charCodeAt(i)); i--) state[i] = STRIPPED;
      }
      if (this.#rstrip.has(id)) {
        for (let i = end; i < text.length && state[i] === FREE && isAsciiSpace(text.charCodeAt(i)); i++) state[i] = STRIPPED;
      }
    }
    return collectFragments(text, state, tokenEnd);
  }

  #insert(text: string, id: number): void {
    let node = this.#root;
    for (let i = 0; i < text.length; i++) {
      const unit = text.charCodeAt(i);
      let child = node.children.get(unit);
      if (child === undefined) {
        child = { children: new Map(), id: -1 };
        node.children.set(unit, child);
      }
      node = child;
    }
    // Two candidates with the same text: the one claimed first (lower id) wins, as in llama.cpp.
    if (node.id < 0) node.id = id;
  }

  /** Returns every occurrence of an allowed candidate, in claiming order. */
  #occurrences(text: string, parseSpecial: boolean): { id: number; start: number; end: number; rank: number }[] {
    const found: { id: number; start: number; end: number; rank: number }[] = [];
    for (let start = 0; start < text.length; start++) {
      let node: TrieNode | undefined = this.#root;
      for (let i = start; i < text.length; i++) {
        node = node.children.get(text.charCodeAt(i));
        if (node === undefined) break;
        const id = node.id;
        if (id >= 0 && (parseSpecial || this.#types[id] === TokenType.USER_DEFINED)) {
          found.push({ id, start, end: i + 1, rank: this.#priority.get(id)! });
        }
      }
    }
    found.sort((a, b) => a.rank - b.rank || a.start - b.start);
    return found;
  }

  /** Applies llama.cpp's per-model strip attributes (see Vocab.special_rstrip). */
  #setStripRules(vocab: Vocab, candidates: number[]): void {
    if (!vocab.special_rstrip) return;
    for (const id of candidates) this.#rstrip.add(id);
    const idOf = (text: string): number => vocab.tokens.indexOf(text);
    if (idOf("</s>") >= 0) this.#rstrip.add(idOf("</s>"));
    for (const text of ["<unk>", "<s>", "<|endoftext|>"]) this.#rstrip.delete(idOf(text));
  }
}

function isFree(state: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (state[i] !== FREE) return false;
  return true;
}

/** C's isspace in the "C" locale, which llama.cpp uses for lstrip and rstrip. */
function isAsciiSpace(unit: number): boolean {
  return unit === 0x20 || (unit >= 0x09 && unit <= 0x0d);
}

function collectFragments(text: string, state: Uint8Array, tokenEnd: Map<number, { id: number; end: number }>): Fragment[] {
  const fragments: Fragment[] = [];
  let i = 0;
  while (i < text.length) {
    if (state[i] === TOKEN) {
      const { id, end } = tokenEnd.get(i)!;
      fragments.push(id);
      i = end;
    } else if (state[i] === STRIPPED) {
      i++;
    } else {
      const start = i;
      while (i < text.length && state[i] === FREE) i++;
      fragments.push(text.slice(start, i));
    }
  }
  return fragments;
}
