/**
 * Test fixture: whether a system tool the tests drive is installed, and the `skip` option that
 * follows from it. Off CI a missing tool skips the tests that need it, with the reason (and
 * tests/run_all.sh counts the skips and names what to install); under CI (env CI set) nothing
 * skips, so the test runs and fails saying what is missing. The list of tools and their Debian
 * packages is `.ci/system_tools.sh`, which `.ci/run` uses to install them.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { test as nodeTest } from "node:test";
import { accessSync, constants, existsSync } from "node:fs";
import { delimiter, isAbsolute, join } from "node:path";
import process from "node:process";

/** What installs every tool the tests drive. */
export const INSTALL_TOOLS = "sudo bash .ci/system_tools.sh install";

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Why `command` cannot run here, or null when it can.
 *
 * @param command A command name looked up on PATH, or an absolute path.
 * @param aptPackage The Debian package that provides it.
 * @returns The reason, naming the package and how to install it.
 */
export function toolMissing(command: string, aptPackage: string): string | null {
  const found = isAbsolute(command)
    ? executable(command)
    : (process.env.PATH ?? "").split(delimiter).some((dir) =>
      dir !== "" && executable(join(dir, command))
    );
  return found
    ? null
    : `${command} is not installed (apt-get install ${aptPackage}, or ${INSTALL_TOOLS})`;
}

/**
 * Why a file a tool needs (a module, a library) is not here, or null when it is.
 *
 * @param path Its absolute path.
 * @param aptPackage The Debian package that provides it.
 * @returns The reason, naming the package and how to install it.
 */
export function fileMissing(path: string, aptPackage: string): string | null {
  return existsSync(path)
    ? null
    : `${path} is not installed (apt-get install ${aptPackage}, or ${INSTALL_TOOLS})`;
}

/**
 * The `skip` option for a test that needs a tool: the reason off CI, never under CI (where the
 * test then fails and says why).
 *
 * @param unavailable What {@linkcode toolMissing} said.
 */
export function skipOffCi(unavailable: string | null): string | false {
  return unavailable !== null && !process.env.CI ? `skipped: ${unavailable}` : false;
}

/**
 * A `test` for a file whose every test needs a tool: each skips with the reason off CI where the
 * tool is missing, and runs (and fails, saying why) under CI.
 *
 * @param skip What {@linkcode skipOffCi} said.
 * @returns The file's `test`.
 */
export function testNeeding(
  skip: string | false,
): (name: string, fn: () => void | Promise<void>) => void {
  return (name, fn) => nodeTest(name, { skip }, fn);
}

/**
 * Checks Prometheus text with `promtool check metrics` and throws with promtool's words when it
 * refuses it. Where promtool is missing the check fails under CI (which installs it) and is left
 * out off CI: for a test whose other checks stand without it.
 *
 * @param text What `/metrics` answered.
 */
export function promtoolCheck(text: string): void {
  const missing = toolMissing("promtool", "prometheus");
  if (missing !== null) {
    if (process.env.CI) throw new Error(`CI must have promtool: ${missing}`);
    return;
  }
  const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  if (check.status !== 0) {
    throw new Error(`promtool check metrics refused it:\n${check.stdout}${check.stderr}`);
  }
}
