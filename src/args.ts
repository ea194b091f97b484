/**
 * A small command-line parser with errors that name the option, the value found and the
 * value expected. `--name value` and `--name=value` both work; `--` ends the options.
 */

import { OptionError } from "./errors.js";
import { closestName } from "./options.js";

export type OptionKind = "string" | "number" | "integer" | "boolean";

export interface OptionSpec {
  kind: OptionKind;
  /** One-line help: what the option sets and in what unit. */
  help: string;
  /** Allowed values of a string option. */
  choices?: readonly string[];
  /** Smallest allowed value of a number or integer option. */
  min?: number;
  /** Largest allowed value of a number or integer option. */
  max?: number;
}

export type OptionSpecs = Record<string, OptionSpec>;

export interface ParsedArgs {
  options: Record<string, string | number | boolean>;
  positionals: string[];
}

function usageError(command: string, message: string, field: string, actual: string, expected: string): never {
  throw new OptionError(`dormant ${command}: ${message}`, { source: `option ${field}`, field, actual, expected });
}

/**
 * Formats the allowed range of a number option for messages, such as "an integer ≥ 1". An
 * integer beyond 2^53 loses digits as a JavaScript number, so `unsafe` adds that limit.
 */
function describeRange(spec: OptionSpec, unsafe = false): string {
  const noun = spec.kind === "integer" ? "an integer" : "a number";
  let maxText: string | undefined;
  if (spec.max !== undefined) maxText = `${spec.max}]`;
  else if (unsafe) maxText = "2^53)";
  const minText = spec.min !== undefined ? `[${spec.min}` : "(-2^53";
  if (maxText !== undefined) return `${noun} in ${minText}, ${maxText}`;
  if (spec.min !== undefined) return `${noun} ≥ ${spec.min}`;
  return noun;
}

function convert(command: string, name: string, spec: OptionSpec, raw: string): string | number {
  if (spec.kind === "string") {
    if (spec.choices && !spec.choices.includes(raw)) {
      usageError(command, `option --${name} is "${raw}", expected one of ${spec.choices.join(", ")}`, name, raw, spec.choices.join(", "));
    }
    return raw;
  }
  const value = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(value)) {
    usageError(command, `option --${name} is "${raw}", expected a number`, name, raw, "a number");
  }
  if (spec.kind === "integer" && !Number.isInteger(value)) {
    usageError(command, `option --${name} is "${raw}", expected an integer`, name, raw, "an integer");
  }
  const outOfRange = (spec.min !== undefined && value < spec.min) || (spec.max !== undefined && value > spec.max) ||
    (spec.kind === "integer" && !Number.isSafeInteger(value));
  if (outOfRange) {
    // The message echoes the text as typed: Number() would round 99999999999999999999 up to 1e20.
    const expected = describeRange(spec, spec.kind === "integer" && !Number.isSafeInteger(value));
    usageError(command, `option --${name} is ${raw.trim()}, expected ${expected}`, name, raw, expected);
  }
  return value;
}

/** Returns the option of `specs` closest to a mistyped `word`, such as --model for -m or --modle. */
function closestOption(word: string, specs: OptionSpecs): string | undefined {
  const typed = word.replace(/^-+/, "").split("=")[0];
  if (typed === "") return undefined;
  const names = Object.keys(specs);
  const prefixed = names.find((name) => name.startsWith(typed));
  if (prefixed !== undefined) return `--${prefixed}`;
  const closest = closestName(typed, names);
  return closest && `--${closest}`;
}

/** Parses `argv` (the words after the command name) against `specs`. */
export function parseArgs(command: string, argv: string[], specs: OptionSpecs): ParsedArgs {
  const options: ParsedArgs["options"] = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (word === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!word.startsWith("--") || word === "-") {
      if (word === "-h" && specs.help) {
        options.help = true;
        continue;
      }
      if (word.startsWith("-") && word.length > 1 && !/^-\d/.test(word)) {
        const closest = closestOption(word, specs);
        const expected = closest ? `a long option such as ${closest}` : "a long option such as --help";
        usageError(command, `option ${word} is not known, expected ${expected} (run dormant ${command} --help for the list)`, word, word, expected);
      }
      positionals.push(word);
      continue;
    }

    const equals = word.indexOf("=");
    const name = word.slice(2, equals === -1 ? undefined : equals);
    const spec = specs[name];
    if (!spec) {
      const known = Object.keys(specs).map((key) => `--${key}`).join(", ");
      const closest = closestOption(name, specs);
      const hint = closest ? ` (did you mean ${closest}?)` : "";
      usageError(command, `option --${name} is not known, expected one of ${known}${hint}`, name, `--${name}`, known);
    }
    if (spec.kind === "boolean") {
      if (equals !== -1) usageError(command, `option --${name} takes no value, found "${word.slice(equals + 1)}"`, name, word, `--${name}`);
      options[name] = true;
      continue;
    }
    let raw: string;
    if (equals !== -1) {
      raw = word.slice(equals + 1);
    } else {
      if (i + 1 >= argv.length) {
        const expected = spec.kind === "string" ? "a value" : describeRange(spec);
        usageError(command, `option --${name} is missing its value, expected ${expected}`, name, "nothing", expected);
      }
      raw = argv[++i];
    }
    options[name] = convert(command, name, spec, raw);
  }
  return { options, positionals };
}

/** Formats the option list of a command for --help. */
export function formatOptions(specs: OptionSpecs): string {
  const width = Math.max(...Object.entries(specs).map(([name, spec]) => name.length + (spec.kind === "boolean" ? 0 : spec.kind.length + 3)));
  return Object.entries(specs)
    .map(([name, spec]) => {
      const left = spec.kind === "boolean" ? `--${name}` : `--${name} <${spec.kind}>`;
      return `  ${left.padEnd(width + 4)}  ${spec.help}`;
    })
    .join("\n");
}
