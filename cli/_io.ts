/**
 * What every command of the command line shares: where it writes, the usage error, and how
 * `node:util` `parseArgs` errors are worded for people.
 *
 * @module
 */

import { describe } from "../server/common/describe.ts";
import { didYouMean } from "../server/config/did_you_mean.ts";

/** Exit code for a mistake in the command line or the configuration. */
export const EXIT_USAGE = 2;
/** Exit code for a failure to do the work (a busy port, an unreadable state file). */
export const EXIT_FAILURE = 1;

/** Where a command writes; tests pass their own. */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  /**
   * Shows a live progress line (`null`: clear it). Only `tallyho load` draws one; without it,
   * a line is rewritten on stdout when stdout is a terminal.
   */
  progress?: (line: string | null) => void;
}

/** The console. */
export const consoleIo: CliIo = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
};

/** A mistake in the command line: printed as one line with a usage hint, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/**
 * Rewords an error from `node:util` `parseArgs`, whose messages run long and mention
 * positionals, into the one thing that matters.
 *
 * @param error What `parseArgs` threw.
 * @param command The subcommand, named in "Unknown option" (`""` for the top level).
 * @param flags The command's flags, for a "did you mean" after an unknown one.
 * @returns A {@linkcode UsageError}.
 */
export function usageErrorFrom(
  error: Error,
  command = "",
  flags: Record<string, unknown> = {},
): UsageError {
  const code = (error as { code?: string }).code;
  const flag = /'(-[^' ]*)/.exec(error.message)?.[1];
  const of = command === "" ? "" : ` for ${command}`;
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION": {
      const near = flag === undefined
        ? null
        : didYouMean(flag.replace(/^-+/, ""), Object.keys(flags));
      return new UsageError(
        `Unknown option '${flag}'${of}${near === null ? "" : ` (did you mean '--${near}'?)`}`,
      );
    }
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      // parseArgs says this both for a string flag without a value and a boolean flag given one.
      if (/does not take an argument/.test(error.message)) {
        return new UsageError(`Option '${flag ?? "?"}' takes no value`);
      }
      if (/ambiguous/.test(error.message)) {
        return new UsageError(
          `Option '${flag ?? "?"}' needs a value; one that starts with '-' is written ` +
            `${flag ?? "--flag"}=-VALUE`,
        );
      }
      return new UsageError(`Option '${flag ?? "?"}' needs a value`);
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return new UsageError(
        `Unexpected argument ${describe(/'([^']*)'/.exec(error.message)?.[1] ?? "")}`,
      );
    default:
      return new UsageError(error.message.split("\n")[0]!);
  }
}

/**
 * Reads a whole number given as a flag's text.
 *
 * @param flag The flag, for the error.
 * @param text What was given.
 * @param signed Whether a leading minus is allowed (the value's own bounds are checked later).
 * @returns The number.
 * @throws {UsageError} When the text is not an integer.
 */
export function integerFlag(flag: string, text: string, signed = true): number {
  if (!(signed ? /^-?\d+$/ : /^\d+$/).test(text)) {
    throw new UsageError(
      `'${flag}' must be ${signed ? "an integer" : "a whole number"}: got ${describe(text)}`,
    );
  }
  return Number(text);
}

/**
 * Joins a negative number to the flag before it (`--max-connections -1` becomes
 * `--max-connections=-1`), which `parseArgs` would otherwise read as a flag of its own and
 * answer "needs a value". The value then meets the flag's own bounds check, which names it.
 *
 * @param args The arguments.
 * @param flags The command's `parseArgs` options; only `string` flags take a value.
 * @returns The arguments with each negative number joined to its flag.
 */
export function joinNegativeValues(
  args: readonly string[],
  flags: Record<string, { type: "string" | "boolean" }>,
): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    const name = /^--([^=]+)$/.exec(arg)?.[1];
    if (
      name !== undefined && flags[name]?.type === "string" && next !== undefined &&
      /^-\d/.test(next)
    ) {
      joined.push(`${arg}=${next}`);
      i++;
    } else joined.push(arg);
  }
  return joined;
}
