/**
 * Reads the open-file limit (RLIMIT_NOFILE) of this process from `/proc/self/limits`.
 *
 * Every connection is one file descriptor, so this limit is how many clients tallyho can hold at
 * once. The doctor runs on the same runtime as the server, and Bun (1.4) and Deno (2.9) both raise
 * their soft limit to the hard one when they start, so what this process reads is what a tallyho
 * started from the same shell gets.
 *
 * @module
 */

import { errorReason } from "./_error_reason.ts";
import { type ProcOptions, readTextFile } from "./read_sysctls.ts";

/** The two open-file limits; `Infinity` stands for `unlimited`. */
export interface OpenFileLimit {
  soft: number;
  hard: number;
}

/**
 * Finds the `Max open files` row of a `/proc/<pid>/limits` text.
 *
 * @param text The file's content.
 * @returns The soft and hard limits.
 * @throws {RangeError} When the row is missing or its values are not numbers or `unlimited`.
 */
export function parseOpenFileLimit(text: string): OpenFileLimit {
  const row = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (!row) {
    throw new RangeError(
      `Cannot find 'Max open files' in the limits file: got ${JSON.stringify(text.slice(0, 60))}`,
    );
  }
  return { soft: limitValue(row[1]!), hard: limitValue(row[2]!) };
}

function limitValue(text: string): number {
  if (text === "unlimited") return Infinity;
  if (!/^\d+$/.test(text)) {
    throw new RangeError(
      `'Max open files' must be a number or unlimited: got ${JSON.stringify(text)}`,
    );
  }
  return Number(text);
}

/**
 * Reads this process's open-file limits.
 *
 * @param options Where to read from (`<procRoot>/self/limits`).
 * @returns The limits, or why they could not be read.
 */
export async function readOpenFileLimit(
  options: ProcOptions = {},
): Promise<OpenFileLimit | { error: string }> {
  const path = `${options.procRoot ?? "/proc"}/self/limits`;
  try {
    return parseOpenFileLimit(await (options.readFile ?? readTextFile)(path));
  } catch (error) {
    return { error: `cannot read ${path}: ${errorReason(error)}` };
  }
}
