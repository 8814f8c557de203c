/**
 * Test fixture: what the end-to-end tests drive (the target), chosen by the test run rather than
 * implied by the runner. `TALLYHO_TARGET=bun|deno|binary` picks it; without it the target is the
 * runner's own runtime (so `bun test tests/` and `deno test ... tests/` each work on their own),
 * or the binary when `TALLYHO_BIN` names one. tests/run_all.sh sets it for every pass
 * (tests/passes.txt says which files run against which target).
 *
 * @module
 */

import { existsSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** What a test drives: tallyho from source on Bun or on Deno, or the compiled binary. */
export type Target = "bun" | "deno" | "binary";

/** A JavaScript runtime: one that runs tests, or tallyho from source. */
export type Runtime = "bun" | "deno";

/** The runtime running the tests. */
export const RUNNER: Runtime = "Bun" in globalThis ? "bun" : "deno";

/** The compiled binary built by ./compile.sh. */
const DEFAULT_BINARY = join(ROOT, "dist", "tallyho");

function chooseTarget(): Target {
  const named = process.env.TALLYHO_TARGET;
  const bin = process.env.TALLYHO_BIN;
  if (named === undefined || named === "") return bin ? "binary" : RUNNER;
  if (named !== "bun" && named !== "deno" && named !== "binary") {
    throw new Error(`TALLYHO_TARGET must be bun, deno or binary: got "${named}"`);
  }
  if (bin && named !== "binary") {
    throw new Error(
      `TALLYHO_BIN is set (${bin}) but TALLYHO_TARGET is "${named}": unset one of them`,
    );
  }
  if (named === "binary" && !bin) {
    if (!existsSync(DEFAULT_BINARY)) {
      throw new Error(
        `TALLYHO_TARGET=binary needs ${DEFAULT_BINARY} (run ./compile.sh) or TALLYHO_BIN`,
      );
    }
    // Tests that copy the binary (the upgrade tests) read TALLYHO_BIN: one name for one file.
    process.env.TALLYHO_BIN = DEFAULT_BINARY;
  }
  return named;
}

/** What the end-to-end tests drive in this run. */
export const TARGET: Target = chooseTarget();

/** The compiled binary under test, or null when the target runs from source. */
export const BINARY: string | null = TARGET === "binary" ? process.env.TALLYHO_BIN! : null;

/**
 * `test` for what only the compiled binary has (an upgrade of a moved or swapped executable): the
 * test exists in the binary pass and nowhere else. Skipped instead, it would count as a skip in
 * the Bun and Deno passes, which CI allows none of.
 */
export const binaryTest: typeof test = BINARY !== null
  ? test
  : ((() => {}) as unknown as typeof test);

/**
 * The runtime that runs code from source for this target: the target itself, or the runner's
 * own for the binary (a test that needs a helper script beside a binary has no other).
 */
export const SOURCE_RUNTIME: Runtime = TARGET === "binary" ? RUNNER : TARGET;

/**
 * The executable of `runtime`: this process's own when it is the runner, else the pinned one
 * npm installed in node_modules/.bin, else the one on PATH.
 *
 * @param runtime Bun or Deno.
 * @returns A path or a command name.
 */
export function runtimeExecutable(runtime: Runtime): string {
  if (runtime === RUNNER) return process.execPath;
  const pinned = join(ROOT, "node_modules", ".bin", runtime);
  return existsSync(pinned) ? pinned : runtime;
}

/**
 * The command that runs a TypeScript file on a runtime, with every permission.
 *
 * @param script The file.
 * @param args Its arguments.
 * @param runtime Which runtime runs it (default: {@linkcode SOURCE_RUNTIME}).
 * @returns The program and its arguments.
 */
export function scriptCommand(
  script: string,
  args: string[] = [],
  runtime: Runtime = SOURCE_RUNTIME,
): { cmd: string; argv: string[] } {
  const flags = runtime === "deno" ? ["run", "-A", "--unstable-net"] : [];
  return { cmd: runtimeExecutable(runtime), argv: [...flags, script, ...args] };
}
