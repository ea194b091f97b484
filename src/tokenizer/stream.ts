/**
 * Incremental detokenizer for generation. A character outside the vocabulary arrives as
 * several byte tokens, so text is released only once its UTF-8 sequence is complete.
 */

/** Tokenizer interface of the streamer: the bytes that one token adds after another. */
export interface PieceSource {
  pieceBytes(id: number, previous?: number): Uint8Array;
}

export class TextStreamer {
  readonly #tokenizer: PieceSource;
  #previous: number | undefined;
  // A streaming TextDecoder keeps an incomplete sequence until the next bytes complete it.
  readonly #decoder = new TextDecoder("utf-8", { ignoreBOM: true });

  /**
   * Creates a streamer. `previous` is the id before the first pushed one. Leave it out when
   * the stream starts the text, so that the dummy-prefix space of the first piece is dropped.
   */
  constructor(tokenizer: PieceSource, previous?: number) {
    this.#tokenizer = tokenizer;
    this.#previous = previous;
  }

  /** Adds one token and returns the text it completes, possibly "" mid UTF-8 sequence. */
  push(id: number): string {
    const bytes = this.#tokenizer.pieceBytes(id, this.#previous);
    this.#previous = id;
    return this.#decoder.decode(bytes, { stream: true });
  }

  /** Returns the buffered bytes as text and empties the buffer. An incomplete sequence becomes U+FFFD. */
  flush(): string {
    // A call without { stream: true } also resets the decoder for the next bytes.
    return this.#decoder.decode();
  }
}
