/**
 * Documents of a text corpus. Apart from the evaluation code, so that the browser bundle can
 * export splitDocuments at startup and load evaluate only when a page first calls it.
 */

/** The separator line of TinyStories-style corpora; other text is treated as one document. */
const STORY_SEPARATOR = "<|endoftext|>";

/** Splits a corpus into documents at `<|endoftext|>` lines, dropping leading whitespace and empty ones. */
export function splitDocuments(text: string): string[] {
  return text
    .split(STORY_SEPARATOR)
    .map((story) => story.replace(/^\s+/, "").replace(/\s+$/, ""))
    .filter((story) => story.length > 0);
}
