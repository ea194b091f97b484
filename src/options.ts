/**
 * Checks shared by the public entry points: unknown option keys, and the wording of a value
 * found where another was expected. Each options interface keeps its key list next to it as
 * `{ key: true, ... } satisfies Record<keyof Options, true>`, so tsc rejects a list that drifts.
 */

import { optionMismatch } from "./errors.js";

/** Keys of an options interface, as an object that tsc compares with the interface. */
export type OptionKeys = Readonly<Record<string, true>>;

/**
 * Describes a value for an option message. Strings are quoted and marked as strings, so that
 * `"5"` and `5` read differently; objects are described by their type only.
 */
export function describeValue(value: unknown): string {
  if (typeof value === "string") return `${quote(value)} (a string)`;
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "number" || typeof value === "boolean" || value === undefined || value === null) return String(value);
  return describeType(value);
}

/** Describes a value together with its type, for an argument of the wrong type: `42 (a number)`, `null`, `an array`. */
export function describeTypedValue(value: unknown): string {
  if (typeof value === "number" || typeof value === "boolean") return `${value} (a ${typeof value})`;
  if (typeof value === "bigint") return `${value}n (a bigint)`;
  return describeValue(value);
}

/** Names the type of a non-primitive value: "an array", "a function", "an object (Map)". */
function describeType(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (typeof value === "function") return "a function";
  if (typeof value === "symbol") return "a symbol";
  const constructorName = (value as object).constructor?.name;
  return constructorName && constructorName !== "Object" ? `an object (${constructorName})` : "an object";
}

/** Quotes a string as JSON, shortened to its first 40 characters, so a long prompt does not flood the message. */
function quote(text: string): string {
  return text.length > 40 ? `${JSON.stringify(text.slice(0, 40))}…` : JSON.stringify(text);
}

/**
 * Throws an OptionError when `options` is not an object or has a key that `known` lacks. Keys
 * whose value is undefined count too, because a misspelled key is a mistake whatever its value.
 * The message lists the known keys and suggests the closest one when the spelling is near.
 */
export function checkOptionKeys(where: string, options: unknown, known: OptionKeys): void {
  if (options === undefined) return;
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    optionMismatch(where, { source: "arguments", field: "options", actual: describeTypedValue(options), expected: "an object" });
  }
  const names = Object.keys(known);
  for (const key of Object.keys(options)) {
    if (Object.hasOwn(known, key)) continue;
    const closest = closestName(key, names);
    optionMismatch(
      where,
      { source: `option ${key}`, field: key, actual: "not known", expected: `one of: ${names.join(", ")}` },
      closest === undefined ? undefined : `did you mean ${closest}?`,
    );
  }
}

/**
 * Returns the name in `names` nearest to `key` by edit distance, ignoring case, when it is near
 * enough to be a likely misspelling: at most 1 edit for names up to 4 letters, else at most 2.
 */
export function closestName(key: string, names: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const name of names) {
    const distance = editDistance(lower, name.toLowerCase());
    if (distance < bestDistance) {
      best = name;
      bestDistance = distance;
    }
  }
  const allowed = key.length <= 4 ? 1 : 2;
  return bestDistance <= allowed ? best : undefined;
}

/** Counts the insertions, deletions, substitutions and swaps of adjacent letters that turn `a` into `b`. */
function editDistance(a: string, b: string): number {
  // rows[i][j] is the distance between the first i letters of a and the first j letters of b
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    rows.push(new Array<number>(b.length + 1).fill(0));
    rows[i][0] = i;
  }
  for (let j = 0; j <= b.length; j++) rows[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const substitution = a[i - 1] === b[j - 1] ? 0 : 1;
      let distance = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + substitution);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        distance = Math.min(distance, rows[i - 2][j - 2] + 1);
      }
      rows[i][j] = distance;
    }
  }
  return rows[a.length][b.length];
}
