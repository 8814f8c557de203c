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

import { type OpenFileLimit, parseOpenFileLimit } from "../host/open_file_limit.ts";
import { errorReason } from "./_error_reason.ts";
import { type ProcOptions, readTextFile } from "./read_sysctls.ts";

export { type OpenFileLimit, parseOpenFileLimit };

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
