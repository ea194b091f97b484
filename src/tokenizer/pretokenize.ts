/**
 * Pre-tokenizers of byte-level BPE vocabularies, chosen by GGUF `tokenizer.ggml.pre`. Each one is
 * a list of regexes applied in sequence, as in llama.cpp's `llm_tokenizer_bpe` (src/llama-vocab.cpp)
 * and `unicode_regex_split` (src/unicode.cpp). Every regex splits each chunk left by the previous
 * ones into its matches and the unmatched text between them, and both become chunks. A regex
 * reads one chunk at a time, so `$` and lookaheads stop at the chunk's end.
 *
 * The regex strings below are llama.cpp's, with one change of meaning for `\s` and `\S`. llama.cpp
 * turns every non-ASCII White_Space code point (U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028,
 * U+2029, U+202F, U+205F, U+3000) into U+000B before matching, then matches `\s` as the six ASCII
 * spaces [\t\n\v\f\r ]. `splitChunks` does the same on a copy of the text, and `compile` rewrites
 * `\s`/`\S` to that ASCII class. JavaScript's own `\s` would also match U+FEFF, which llama.cpp
 * treats as a letter-less, space-less symbol.
 */

/** Settings of one `tokenizer.ggml.pre` family, as llama.cpp applies them. */
export interface PreTokenizer {
  /** The regexes, applied in order; each has the `u` and `g` flags. */
  regexes: readonly RegExp[];
  /** Whether a chunk that is itself a token skips the merges (llama.cpp's ignore_merges). */
  ignoreMerges: boolean;
  /** Whether llama.cpp's detokenizer removes spaces before punctuation (clean_spaces). */
  cleanSpaces: boolean;
  /** Default of add_bos when the file has no `tokenizer.ggml.add_bos_token` key. */
  addBos: boolean;
}

/** GPT-2's pattern; llama.cpp's GPT2, STARCODER, FALCON and DEFAULT lists share it. */
const GPT2 = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`;

/**
 * Llama 3's pattern. tiktoken writes the contractions as `(?i:'s|'t|...)`, a modifier group that
 * older JavaScript engines reject, so the letters are spelled as classes instead, as llama.cpp does.
 */
const LLAMA3 = String.raw`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;

/** Qwen2's pattern: Llama 3's with single digits. */
const QWEN2 = String.raw`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;

/**
 * Letters of DeepSeek LLM's second regex. They are escaped because six of them (U+1F7D, U+1FBE,
 * U+1FD3, U+1FDB, U+2126, U+212A) change under NFC normalization, which editors may apply.
 */
const DEEPSEEK_LETTERS = [
  String.raw`A-Za-z\u{B5}\u{C0}-\u{D6}\u{D8}-\u{F6}\u{F8}-\u{1BA}\u{1BC}-\u{1BF}\u{1C4}-\u{293}`,
  String.raw`\u{295}-\u{2AF}\u{370}-\u{373}\u{376}\u{377}\u{37B}-\u{37D}\u{37F}\u{386}\u{388}-\u{38A}\u{38C}`,
  String.raw`\u{38E}-\u{3A1}\u{3A3}-\u{3F5}\u{3F7}-\u{481}\u{48A}-\u{52F}\u{531}-\u{556}\u{10A0}-\u{10C5}`,
  String.raw`\u{13A0}-\u{13F5}\u{13F8}-\u{13FD}\u{1C90}-\u{1CBA}\u{1CBD}-\u{1CBF}\u{1D00}-\u{1D2B}`,
  String.raw`\u{1D6B}-\u{1D77}\u{1D79}-\u{1D9A}\u{1E00}-\u{1F15}\u{1F18}-\u{1F1D}\u{1F20}-\u{1F45}`,
  String.raw`\u{1F48}-\u{1F4D}\u{1F50}-\u{1F57}\u{1F59}\u{1F5B}\u{1F5D}\u{1F5F}-\u{1F7D}\u{1F80}-\u{1FB4}`,
  String.raw`\u{1FB6}-\u{1FBC}\u{1FBE}\u{1FC2}-\u{1FC4}\u{1FC6}-\u{1FCC}\u{1FD0}-\u{1FD3}\u{1FD6}-\u{1FDB}`,
  String.raw`\u{1FE0}-\u{1FEC}\u{1FF2}-\u{1FF4}\u{1FF6}-\u{1FFC}\u{2102}\u{2107}\u{210A}-\u{2113}\u{2115}`,
  String.raw`\u{2119}-\u{211D}\u{2124}\u{2126}\u{2128}\u{212A}-\u{212D}\u{212F}-\u{2134}\u{2139}`,
  String.raw`\u{213C}-\u{213F}\u{2145}-\u{2149}\u{214E}\u{2183}\u{2184}\u{2C00}-\u{2C7B}\u{2C7E}-\u{2CE4}`,
  String.raw`\u{2CEB}-\u{2CEE}\u{2CF2}\u{2CF3}\u{A640}-\u{A66D}\u{A680}-\u{A69B}\u{A722}-\u{A76F}`,
  String.raw`\u{A771}-\u{A787}\u{A78B}-\u{A78E}\u{AB70}-\u{ABBF}\u{FB00}-\u{FB06}\u{FB13}-\u{FB17}`,
  String.raw`\u{FF21}-\u{FF3A}\u{FF41}-\u{FF5A}\u{10400}-\u{1044F}\u{104B0}-\u{104D3}\u{104D8}-\u{104FB}`,
  String.raw`\u{10C80}-\u{10CB2}\u{10CC0}-\u{10CF2}\u{118A0}-\u{118DF}\u{1E900}-\u{1E943}`,
].join("");

/** DeepSeek LLM's six regexes: line breaks, Latin-like letters, ASCII and fullwidth punctuation, trailing spaces, CJK and Hangul, digits. */
const DEEPSEEK_LLM = [
  String.raw`[\r\n]`,
  String.raw`\s?[` + DEEPSEEK_LETTERS + "]+",
  String.raw`\s?[!-/:-~\u{FF01}-\u{FF0F}\u{FF1A}-\u{FF5E}\u{2018}-\u{201F}\u{3000}-\u{3002}]+`,
  String.raw`\s+$`,
  String.raw`[\u{4E00}-\u{9FA5}\u{800}-\u{4E00}\u{AC00}-\u{D7FF}]+`,
  String.raw`\p{N}+`,
];

/** DeepSeek Coder's five regexes. */
const DEEPSEEK_CODER = [String.raw`[\r\n]`, String.raw`\s?\p{L}+`, String.raw`\s?\p{P}+`, String.raw`[\u{4E00}-\u{9FA5}\u{800}-\u{4E00}\u{AC00}-\u{D7FF}]+`, String.raw`\p{N}`];

/** Falcon: runs of punctuation and symbols first, then GPT-2's pattern, then groups of three ASCII digits. */
const FALCON = [String.raw`[\p{P}\$\+<=>\^~\|` + "`" + String.raw`]+`, GPT2, String.raw`[0-9][0-9][0-9]`];

/** StarCoder: single digits first, then GPT-2's pattern. */
const STARCODER = [String.raw`\p{N}`, GPT2];

/** llama.cpp's fallback for `default` and for files without `tokenizer.ggml.pre`. */
const DEFAULT = [String.raw`[\p{P}\$\+<=>\^~\|]+`, GPT2, String.raw`\p{N}+`, String.raw`[0-9][0-9][0-9]`];

interface Family {
  patterns: readonly string[];
  ignoreMerges?: boolean;
  cleanSpaces?: boolean;
  addBos?: boolean;
}

/**
 * Pre-tokenizer names of llama.cpp (src/llama-vocab.cpp, `llama_vocab::impl::load`) and their
 * families. clean_spaces defaults to true for byte-level BPE there.
 */
const FAMILIES: Record<string, Family> = {
  default: { patterns: DEFAULT },
  "llama-bpe": { patterns: [LLAMA3], ignoreMerges: true, addBos: true },
  llama3: { patterns: [LLAMA3], ignoreMerges: true, addBos: true },
  "llama-v3": { patterns: [LLAMA3], ignoreMerges: true, addBos: true },
  falcon3: { patterns: [LLAMA3], ignoreMerges: true, addBos: true },
  dbrx: { patterns: [LLAMA3] },
  "smaug-bpe": { patterns: [LLAMA3] },
  "deepseek-llm": { patterns: DEEPSEEK_LLM, cleanSpaces: false },
  "deepseek-coder": { patterns: DEEPSEEK_CODER, cleanSpaces: false },
  falcon: { patterns: FALCON },
  "gpt-2": { patterns: [GPT2] },
  "phi-2": { patterns: [GPT2] },
  mpt: { patterns: [GPT2] },
  olmo: { patterns: [GPT2] },
  jais: { patterns: [GPT2] },
  starcoder: { patterns: STARCODER },
  refact: { patterns: STARCODER },
  codeshell: { patterns: STARCODER },
  exaone: { patterns: STARCODER },
  "minerva-7b": { patterns: STARCODER },
  "command-r": { patterns: STARCODER, cleanSpaces: false },
  smollm: { patterns: STARCODER, cleanSpaces: false },
  qwen2: { patterns: [QWEN2], cleanSpaces: false },
  "deepseek-r1-qwen": { patterns: [QWEN2], cleanSpaces: false },
  stablelm2: { patterns: [QWEN2] },
  megrez: { patterns: [QWEN2] },
};

/** Names accepted as `tokenizer.ggml.pre`, for error messages. */
export const PRE_TOKENIZER_NAMES: readonly string[] = Object.keys(FAMILIES);

const cache = new Map<string, PreTokenizer>();

/**
 * Returns the pre-tokenizer llama.cpp uses for `tokenizer.ggml.pre` = `name`, or undefined for a
 * name it does not know. A missing name means "default", as in llama.cpp.
 */
export function findPreTokenizer(name: string | undefined): PreTokenizer | undefined {
  const key = name ?? "default";
  if (!Object.hasOwn(FAMILIES, key)) return undefined;
  let found = cache.get(key);
  if (found === undefined) {
    const family = FAMILIES[key];
    found = {
      regexes: family.patterns.map(compile),
      ignoreMerges: family.ignoreMerges ?? false,
      cleanSpaces: family.cleanSpaces ?? true,
      addBos: family.addBos ?? false,
    };
    cache.set(key, found);
  }
  return found;
}

const ASCII_SPACE = String.raw`\t-\r `;

/**
 * Compiles one of llama.cpp's regex strings with `\s` and `\S` meaning the ASCII spaces (see the
 * file comment). Every other construct in the table is valid JavaScript with the `u` flag.
 * `\S` is rewritten only outside brackets, the only place the table uses it.
 */
export function compile(pattern: string): RegExp {
  let out = "";
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i];
    if (char === "\\") {
      const next = pattern[i + 1];
      i++;
      if (next === "s") out += inClass ? ASCII_SPACE : `[${ASCII_SPACE}]`;
      else if (next === "S" && !inClass) out += `[^${ASCII_SPACE}]`;
      else out += char + next;
      continue;
    }
    if (char === "[") inClass = true;
    else if (char === "]") inClass = false;
    out += char;
  }
  return new RegExp(out, "gu");
}

/** Non-ASCII White_Space code points, which llama.cpp matches as U+000B. */
const WIDE_SPACES = /[\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]/g;

/**
 * Splits `text` into the chunks that BPE merges one at a time. The chunks concatenate to `text`.
 * With the `u` flag a lone surrogate is one code point, like the U+FFFD that replaces it in UTF-8.
 */
export function splitChunks(text: string, regexes: readonly RegExp[]): string[] {
  if (text.length === 0) return [];
  // Every mapped code point is one UTF-16 unit, so offsets into `matched` are offsets into `text`.
  const matched = text.replace(WIDE_SPACES, "\v");
  let bounds = [0, text.length];
  for (const regex of regexes) {
    const next = [0];
    for (let i = 0; i + 1 < bounds.length; i++) {
      splitOne(matched.slice(bounds[i], bounds[i + 1]), regex, bounds[i], next);
    }
    bounds = next;
  }
  const chunks: string[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) chunks.push(text.slice(bounds[i], bounds[i + 1]));
  return chunks;
}

/** Appends to `bounds` the end offsets of the matches of `regex` in `chunk` and of the gaps between them. */
function splitOne(chunk: string, regex: RegExp, base: number, bounds: number[]): void {
  let last = 0;
  regex.lastIndex = 0;
  for (let match = regex.exec(chunk); match !== null; match = regex.exec(chunk)) {
    const start = match.index;
    const end = start + match[0].length;
    // None of the table's patterns matches the empty string; the guard keeps a bad one from looping.
    if (end === start) {
      regex.lastIndex++;
      continue;
    }
    if (start > last) bounds.push(base + start);
    bounds.push(base + end);
    last = end;
  }
  if (last < chunk.length) bounds.push(base + chunk.length);
}
