/**
 * The check that only this user (or root) can change the state file's directory. Whoever can
 * write there can swap the state file for one with a lower mark (the checksum is not a secret, so
 * it proves nothing against a person), plant a symlink where the file or its lock will be, or
 * delete the lock file; every one of those repeats numbers. So such a directory is refused, never
 * tightened: it is often shared on purpose (`/tmp`), and changing its mode would break others.
 *
 * @module
 */

import { fileErrorReason } from "../../../common/file_error.ts";
import { statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { StateFileError } from "./state_file_error.ts";

/**
 * Checks that the directory of `path` is owned by this user or root and that no other user can
 * write to it.
 *
 * @param path The state file.
 * @throws {StateFileError} Naming the directory, what is wrong and what to do.
 */
export function assertPrivateStateDirectory(path: string): void {
  const directory = dirname(resolve(path));
  let stat;
  try {
    stat = statSync(directory);
  } catch (error) {
    throw new StateFileError(
      `Cannot use state file ${path}: its directory ${directory}: ${fileErrorReason(error)}`,
    );
  }
  const uid = process.getuid?.();
  if (uid === undefined) return; // No users to tell apart (Windows).
  if (stat.uid !== uid && stat.uid !== 0) {
    throw new StateFileError(
      `Cannot use state file ${path}: its directory ${directory} belongs to another user ` +
        `(uid ${stat.uid}), who could replace the file and make numbers repeat; ` +
        `keep the state file in a directory that you or root own`,
    );
  }
  if ((stat.mode & 0o022) !== 0) {
    const mode = (stat.mode & 0o7777).toString(8).padStart(4, "0");
    throw new StateFileError(
      `Cannot use state file ${path}: its directory ${directory} can be written by other ` +
        `users (mode ${mode}), who could replace the file and make numbers repeat; ` +
        // A sticky directory (/tmp) is shared on purpose: never suggest taking it from others.
        ((stat.mode & 0o1000) !== 0
          ? `keep it in a directory only you can write, for example: mkdir -m 0700 ${
            join(directory, "tallyho")
          }`
          : `keep it in a directory only you can write, or run: chmod go-w ${directory}`),
    );
  }
}
