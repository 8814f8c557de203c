/**
 * Whether the open-file hard limit can be raised from here: the doctor's advice `ulimit -Hn N` only
 * works for a process allowed to raise it (root with CAP_SYS_RESOURCE, and not in a container that
 * dropped it). Tried in a shell of its own, so this process's limits stay as they are.
 *
 * @module
 */

import { execFile } from "node:child_process";

/**
 * Tries `ulimit -Hn to` in a child shell.
 *
 * @param to The hard limit to try.
 * @returns true when the shell could raise it, false when it was refused, null when no shell
 * could be run to tell.
 */
export function probeHardLimitRaise(to: number): Promise<boolean | null> {
  return new Promise((resolve) => {
    execFile("/bin/sh", ["-c", `ulimit -Hn ${Math.floor(to)}`], { timeout: 5000 }, (error) => {
      if (error === null) return resolve(true);
      // ENOENT: no /bin/sh; a signal: it was stopped. Neither says anything about the limit.
      const code = (error as { code?: unknown }).code;
      resolve(typeof code === "number" ? false : null);
    });
  });
}
