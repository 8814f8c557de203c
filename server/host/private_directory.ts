/**
 * Whether a directory is safe to keep this user's private files under (the admin token, the admin
 * API's inner socket): nobody but this user and root may replace what is in it. A directory that
 * another user owns, or that others may write without the sticky bit, lets them rename this
 * user's entries away and put their own in their place (a socket that captures the admin token,
 * a token file of their choosing).
 *
 * @module
 */

import { realpathSync, statSync } from "node:fs";
import { dirname } from "node:path";
import process from "node:process";
import { ConfigError } from "../common/config_error.ts";
import { fileErrorReason } from "../common/file_error.ts";

/** A directory that other users could change under this user's files: refused. */
export class UnsafeDirectoryError extends ConfigError {
  override name = "UnsafeDirectoryError";
}

/** Options for {@linkcode assertSafeDirectory}. */
export interface SafeDirectoryOptions {
  /**
   * Whether entries may be created in `path` itself only by this user and root: a sticky
   * directory that others may write (such as /tmp) still lets them create a name first. Its
   * ancestors are held to the sticky rule only.
   * @default {false}
   */
  exclusive?: boolean;
  /**
   * The configuration key or variable the error names as its field.
   * @default {what}
   */
  field?: string;
  /**
   * What to do about it, appended to the message (`set TMPDIR to ...`).
   * @default {""}
   */
  advice?: string;
  /**
   * The user the files belong to.
   * @default {process.getuid()}
   */
  uid?: number;
}

/**
 * Checks `path` and every directory above it: each must be owned by this user or root, and one
 * that group or others may write must have the sticky bit (so they cannot rename or remove what
 * this user made in it). With `exclusive`, `path` itself must be writable by this user and root
 * only.
 *
 * @param path The directory.
 * @param what How the message names it, such as `TMPDIR`.
 * @param options See {@linkcode SafeDirectoryOptions}.
 * @throws {UnsafeDirectoryError} Naming the directory at fault and what is wrong with it.
 */
export function assertSafeDirectory(
  path: string,
  what: string,
  options: SafeDirectoryOptions = {},
): void {
  const uid = options.uid ?? process.getuid?.();
  if (uid === undefined) return; // Not a POSIX system: no owners to check.
  const field = options.field ?? what;
  let current: string;
  try {
    current = realpathSync(path);
  } catch (error) {
    throw new UnsafeDirectoryError(
      field,
      `Cannot use ${what} '${path}': ${fileErrorReason(error)}${
        options.advice ? `; ${options.advice}` : ""
      }`,
    );
  }
  let first = true;
  for (;;) {
    const stat = statSync(current);
    const fault = !stat.isDirectory()
      ? "is not a directory"
      : stat.uid !== uid && stat.uid !== 0
      ? `is owned by another user (uid ${stat.uid})`
      : first && options.exclusive && (stat.mode & 0o022) !== 0
      ? `can be written by other users (mode 0${(stat.mode & 0o7777).toString(8)})`
      : (stat.mode & 0o022) !== 0 && (stat.mode & 0o1000) === 0
      ? `can be written by other users without the sticky bit (mode 0${
        (stat.mode & 0o7777).toString(8)
      })`
      : null;
    if (fault !== null) {
      const at = current === path ? `'${path}'` : `'${path}' (at '${current}')`;
      throw new UnsafeDirectoryError(
        field,
        `Cannot keep private files in ${what} ${at}: it ${fault}, so another user could ` +
          `replace them${options.advice ? `; ${options.advice}` : ""}`,
      );
    }
    const parent = dirname(current);
    if (parent === current) return;
    current = parent;
    first = false;
  }
}
