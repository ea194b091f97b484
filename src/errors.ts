/**
 * Typed errors of the host. Every message follows one form:
 *   `<where>: <file>: <field> is <found>, expected <expected>` (or `<where>: option <name> is ...`)
 * followed, when known, by the likely cause. Callers branch on the class or on `name`,
 * and read the structured fields instead of parsing the text.
 */

export interface ErrorDetails {
  /** File path, URL or option name that the error is about. */
  source?: string;
  /** Field, tensor or metadata key inside the source. */
  field?: string;
  /** Value found, as text. */
  actual?: string;
  /** Value expected, as text. */
  expected?: string;
}

/** Base class of every error that dormant throws on purpose. */
export class DormantError extends Error {
  readonly source?: string;
  readonly field?: string;
  readonly actual?: string;
  readonly expected?: string;

  constructor(message: string, details: ErrorDetails = {}) {
    super(message);
    this.name = "DormantError";
    this.source = details.source;
    this.field = details.field;
    this.actual = details.actual;
    this.expected = details.expected;
  }
}

/** A model, tokenizer or text file whose bytes contradict its format. */
export class FormatError extends DormantError {
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, details);
    this.name = "FormatError";
  }
}

/** An option or argument outside its allowed range. The CLI maps it to exit code 2. */
export class OptionError extends DormantError {
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, details);
    this.name = "OptionError";
  }
}

/** A failure inside or around the wasm module: memory budget, instantiation, self-test. */
export class WasmError extends DormantError {
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, details);
    this.name = "WasmError";
  }
}

/** A model that cannot be found or fetched, or whose bytes fail the checksum. */
export class ModelSourceError extends DormantError {
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, details);
    this.name = "ModelSourceError";
  }
}

/** Builds the standard message `<where>: <source>: <field> is <actual>, expected <expected>`. */
export function describeMismatch(where: string, details: Required<ErrorDetails>, cause?: string): string {
  // An option names itself: "generate: option topP is 1.5", not "option topP: topP is 1.5".
  const subject = details.source === `option ${details.field}` ? details.source : `${details.source}: ${details.field}`;
  const base = `${where}: ${subject} is ${details.actual}, expected ${details.expected}`;
  return cause ? `${base} (${cause})` : base;
}

/** Throws a FormatError with the standard message and structured fields. */
export function formatMismatch(where: string, details: Required<ErrorDetails>, cause?: string): never {
  throw new FormatError(describeMismatch(where, details, cause), details);
}

/** Throws an OptionError with the standard message and structured fields. */
export function optionMismatch(where: string, details: Required<ErrorDetails>, cause?: string): never {
  throw new OptionError(describeMismatch(where, details, cause), details);
}
