/**
 * Test fixture: a second local user, for attacks that another user on the same machine makes
 * (a TMPDIR they own, a name they create first in a shared directory). Adding a user needs root:
 * without it the tests that use one skip off CI with the reason (tests/_tools.ts).
 *
 * @module
 */

import { execFileSync, spawnSync } from "node:child_process";
import process from "node:process";
import { skipOffCi, toolMissing } from "./_tools.ts";

/** The user the attacks run as. */
export const SECOND_USER = "tallyho-test-other";

/** The `skip` option for a test that needs a second user. */
export const SKIP_WITHOUT_SECOND_USER = skipOffCi(
  process.getuid?.() !== 0
    ? "needs root, to add a second user (useradd) and run an attacker as it (setpriv)"
    : toolMissing("useradd", "passwd") ?? toolMissing("setpriv", "util-linux") ??
      toolMissing("python3", "python3"),
);

/** The second user's ids, once it exists. */
export interface SecondUser {
  uid: number;
  gid: number;
  /** `argv` run as the second user (no supplementary groups). */
  run(argv: string[]): string[];
  /** Removes the user, if this fixture added it. */
  remove(): void;
}

/**
 * Adds {@linkcode SECOND_USER} unless it exists (a system user, no home, no shell).
 *
 * @returns Its ids and how to run a command as it.
 */
export function secondUser(): SecondUser {
  let added = false;
  const id = (flag: string) => Number(execFileSync("id", [flag, SECOND_USER]).toString().trim());
  try {
    id("-u");
  } catch {
    execFileSync("useradd", [
      "--system",
      "--no-create-home",
      "--shell",
      "/usr/sbin/nologin",
      SECOND_USER,
    ]);
    added = true;
  }
  const uid = id("-u");
  const gid = id("-g");
  return {
    uid,
    gid,
    // A PATH of the system's own: a tool found in this user's (a pyenv shim under /root) may not
    // be one the second user can run.
    run: (argv) => [
      "setpriv",
      `--reuid=${uid}`,
      `--regid=${gid}`,
      "--clear-groups",
      "env",
      "PATH=/usr/local/bin:/usr/bin:/bin",
      ...argv,
    ],
    remove: () => {
      if (!added) return;
      // A process the test ran as the user may still be exiting ("userdel: user ... is
      // currently used by process N"): ended first, then the user is removed once it is gone.
      spawnSync("pkill", ["-KILL", "-u", SECOND_USER]);
      const pause = new Int32Array(new SharedArrayBuffer(4));
      for (let tries = 0; tries < 50; tries++) {
        if (spawnSync("userdel", [SECOND_USER]).status === 0) return;
        Atomics.wait(pause, 0, 0, 100);
      }
      throw new Error(`could not remove the test user ${SECOND_USER} within 5 s`);
    },
  };
}
