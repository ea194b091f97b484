/**
 * A small command-line parser with errors that name the option, the value found and the
 * value expected. `--name value` and `--name=value` both work; `--` ends the options.
 */

import { OptionError } from "./errors.js";

export type OptionKind = "string" | "number" | "integer" | "boolean";

export interface OptionSpec {
  kind: OptionKind;
  /** One-line help: what the option sets and in what unit. */
  help: string;
  /** Allowed values of a string option. */
  choices?: readonly string[];
}

export type OptionSpecs = Record<string, OptionSpec>;

export interface ParsedArgs {
  options: Record<string, string | number | boolean>;
  positionals: string[];
}

function usageError(command: string, message: string, field: string, actual: string, expected: string): never {
  throw new OptionError(`dormant ${command}: ${message}`, { source: `option ${field}`, field, actual, expected });
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
  return value;
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
      if (word.startsWith("-") && word.length > 1 && !/^-\d/.test(word)) {
        usageError(command, `option ${word} is not known, expected --name (run dormant ${command} --help)`, word, word, "--name");
      }
      positionals.push(word);
      continue;
    }

    const equals = word.indexOf("=");
    const name = word.slice(2, equals === -1 ? undefined : equals);
    const spec = specs[name];
    if (!spec) {
      const known = Object.keys(specs).map((key) => `--${key}`).join(", ");
      usageError(command, `option --${name} is not known, expected one of ${known}`, name, `--${name}`, known);
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
      if (i + 1 >= argv.length) usageError(command, `option --${name} is missing its value, expected ${spec.kind === "string" ? "a value" : `a ${spec.kind}`}`, name, "nothing", spec.kind);
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
