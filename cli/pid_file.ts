/**
 * The pid file (`--pid-file`): where `tallyho reload|stop|upgrade` and scripts find the running
 * supervisor, the process signals go to. Written once the server serves, moved to the new
 * supervisor by an upgrade (the tree that takes over writes it when it serves alone), and removed
 * on stop by the supervisor it names only, so the old tree of an upgrade never removes the new
 * one's.
 *
 * @module
 */

import { readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { fileErrorReason } from "../server/common/file_error.ts";

/**
 * Writes `pid` to `path` atomically: a reader sees the old pid or the new one, never a part.
 *
 * @param path The pid file.
 * @param pid The supervisor's pid.
 * @throws {Error} When it cannot be written, saying why.
 */
export function writePidFile(path: string, pid: number): void {
  const temporary = `${path}.${pid}.tmp`;
  try {
    writeFileSync(temporary, `${pid}\n`, { mode: 0o644 });
    renameSync(temporary, path);
  } catch (error) {
    throw new Error(`Cannot write the pid file ${path}: ${fileErrorReason(error)}`);
  }
}

/**
 * Removes `path` if it still names `pid` (an upgrade's new tree may have written its own).
 *
 * @param path The pid file.
 * @param pid This supervisor's pid.
 */
export function removePidFile(path: string, pid: number): void {
  if (readPidFile(path) !== pid) return;
  try {
    unlinkSync(path);
  } catch {
    // Gone already.
  }
}

/**
 * The pid a pid file names, or null when there is no such file or it holds no pid.
 *
 * @param path The pid file.
 */
export function readPidFile(path: string): number | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return null;
  }
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}
