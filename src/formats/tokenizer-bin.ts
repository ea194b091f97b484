/**
 * Reader for llama2.c's `tokenizer.bin`, the vocabulary file that sits beside a `.bin`
 * checkpoint. All numbers are little-endian:
 *
 *   ┌──────────────────────────┐
 *   │ i32 max_token_length     │  longest piece in bytes
 *   ├──────────────────────────┤  then vocab_size times:
 *   │ f32 score                │    merge priority, higher merges first
 *   │ i32 len                  │    piece length in bytes
 *   │ u8[len] piece            │    raw bytes, no terminator, " " where SentencePiece has "▁"
 *   └──────────────────────────┘
 *
 * The result is the GGUF form of the vocabulary (see src/types.ts), so the tokenizer reads
 * one shape whatever file the model came from.
 *
 * Pieces that are not valid UTF-8 are kept byte for byte with the "surrogate escape" rule
 * of Python's `errors="surrogateescape"`: each byte that does not belong to a valid sequence
 * becomes the lone surrogate U+DC00 + byte (U+DC80..U+DCFF). Valid text never holds a lone
 * surrogate, so `pieceToBytes` gives back the exact file bytes.
 */

import { formatMismatch } from "../errors.js";
import { TokenType, type Vocab } from "../types.js";

const WHERE = "readTokenizerBin";

/** Max accepted max_token_length. The longest piece of the Llama 2 vocabulary has 27 bytes. */
const MAX_TOKEN_LENGTH_LIMIT = 4096;

const BYTE_PIECE = /^<0x[0-9A-F]{2}>$/;

/** Reads a llama2.c tokenizer.bin into a GGUF-form Vocab of `vocabSize` tokens. */
export function readTokenizerBin(bytes: Uint8Array, source: string, vocabSize: number): Vocab {
  if (!Number.isInteger(vocabSize) || vocabSize < 3) {
    formatMismatch(WHERE, {
      source,
      field: "vocab_size",
      actual: String(vocabSize),
      expected: "an integer ≥ 3 (unk, bos and eos come first)",
    });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 4) {
    formatMismatch(
      WHERE,
      { source, field: "max_token_length", actual: `cut off (file is ${bytes.byteLength} bytes)`, expected: "4 bytes" },
      "truncated or empty file",
    );
  }
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength < 1 || maxTokenLength > MAX_TOKEN_LENGTH_LIMIT) {
    formatMismatch(
      WHERE,
      { source, field: "max_token_length", actual: String(maxTokenLength), expected: `1..${MAX_TOKEN_LENGTH_LIMIT}` },
      "not a llama2.c tokenizer.bin, or a big-endian file",
    );
  }

  const tokens: string[] = new Array(vocabSize);
  const scores = new Float32Array(vocabSize);
  const types = new Int32Array(vocabSize);
  let offset = 4;
  for (let id = 0; id < vocabSize; id++) {
    if (offset === bytes.byteLength) {
      formatMismatch(
        WHERE,
        { source, field: "token count", actual: String(id), expected: `${vocabSize} (vocab_size of the model)` },
        "tokenizer.bin belongs to a smaller vocabulary",
      );
    }
    if (offset + 8 > bytes.byteLength) {
      formatMismatch(
        WHERE,
        {
          source,
          field: `token ${id} header`,
          actual: `${bytes.byteLength - offset} bytes present`,
          expected: "8 bytes (f32 score, i32 length)",
        },
        "truncated file",
      );
    }
    const score = view.getFloat32(offset, true);
    const length = view.getInt32(offset + 4, true);
    offset += 8;
    if (Number.isNaN(score)) {
      formatMismatch(WHERE, { source, field: `token ${id} score`, actual: "NaN", expected: "a number" });
    }
    if (length < 0 || length > maxTokenLength) {
      formatMismatch(
        WHERE,
        { source, field: `token ${id} length`, actual: String(length), expected: `0..${maxTokenLength} (max_token_length)` },
        "corrupted file",
      );
    }
    if (offset + length > bytes.byteLength) {
      formatMismatch(
        WHERE,
        {
          source,
          field: `token ${id} piece`,
          actual: `${bytes.byteLength - offset} bytes present`,
          expected: `${length} bytes`,
        },
        "truncated file",
      );
    }
    const piece = bytesToPiece(bytes.subarray(offset, offset + length)).replaceAll(" ", "▁");
    offset += length;
    tokens[id] = piece;
    scores[id] = score;
    types[id] = tokenType(id, piece);
  }

  return {
    model: "llama",
    tokens,
    scores,
    types,
    bos_id: 1,
    eos_id: 2,
    unk_id: 0,
    add_bos: true,
    add_space_prefix: true,
  };
}

/** Returns the type by llama2.c's convention: id 0 unknown, ids 1 and 2 BOS and EOS, "<0xAB>" pieces bytes. */
function tokenType(id: number, piece: string): TokenType {
  if (id === 0) return TokenType.UNKNOWN;
  if (id === 1 || id === 2) return TokenType.CONTROL;
  if (BYTE_PIECE.test(piece)) return TokenType.BYTE;
  return TokenType.NORMAL;
}

/** Decodes UTF-8, escaping each byte outside a valid sequence as U+DC00 + byte. */
export function bytesToPiece(bytes: Uint8Array): string {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return decodeEscaped(bytes);
  }
}

/** Encodes a piece as UTF-8, turning escaped bytes U+DC80..U+DCFF back into raw bytes. */
export function pieceToBytes(piece: string): Uint8Array {
  if (!/[\uDC80-\uDCFF]/.test(piece)) return encoder.encode(piece);
  const out: number[] = [];
  for (const char of piece) {
    const code = char.codePointAt(0)!;
    if (code >= 0xdc80 && code <= 0xdcff) out.push(code - 0xdc00);
    else for (const b of encoder.encode(char)) out.push(b);
  }
  return Uint8Array.from(out);
}

const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

function decodeEscaped(bytes: Uint8Array): string {
  let text = "";
  let i = 0;
  while (i < bytes.length) {
    const length = validSequenceLength(bytes, i);
    if (length === 0) {
      text += String.fromCharCode(0xdc00 + bytes[i]);
      i += 1;
    } else {
      text += strictDecoder.decode(bytes.subarray(i, i + length));
      i += length;
    }
  }
  return text;
}

/** Returns the length of the valid UTF-8 sequence at `i`, or 0 (ranges of Unicode table 3-7). */
function validSequenceLength(bytes: Uint8Array, i: number): number {
  const b0 = bytes[i];
  if (b0 < 0x80) return 1;
  let length: number;
  let low = 0x80;
  let high = 0xbf;
  if (b0 >= 0xc2 && b0 <= 0xdf) length = 2;
  else if (b0 >= 0xe0 && b0 <= 0xef) {
    length = 3;
    if (b0 === 0xe0) low = 0xa0; // overlong
    if (b0 === 0xed) high = 0x9f; // surrogates
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    length = 4;
    if (b0 === 0xf0) low = 0x90; // overlong
    if (b0 === 0xf4) high = 0x8f; // above U+10FFFF
  } else return 0;
  if (i + length > bytes.length) return 0;
  const b1 = bytes[i + 1];
  if (b1 < low || b1 > high) return 0;
  for (let k = 2; k < length; k++) {
    const b = bytes[i + k];
    if (b < 0x80 || b > 0xbf) return 0;
  }
  return length;
}
