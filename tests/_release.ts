/**
 * Test fixture for the release tests (tests/release_*_test.ts, issue 22): the release under test,
 * when they run, and the time each step takes.
 *
 * They test what `npm run release` (release/build.sh) made, in the directory named by
 * `TALLYHO_RELEASE_DIR`: tests/run_all.sh builds the release once, in its release stage, and runs
 * them there, and leaves them out of the Bun and Deno passes. Without the variable they skip and
 * say how to run them. They need root (debootstrap, systemd-nspawn, binfmt_misc); off CI a missing
 * tool skips them with the reason, under CI it fails them.
 *
 * @module
 */

import { spawnSync, type SpawnSyncOptions } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { INSTALL_TOOLS, toolMissing } from "./_tools.ts";
import pkg from "../package.json" with { type: "json" };

/** The release directory under test, or null outside the release stage. */
export const RELEASE_DIR: string | null = process.env.TALLYHO_RELEASE_DIR || null;

/** tallyho's version, as the release names its files. */
export const VERSION: string = pkg.version;

/**
 * The `skip` option of a release test.
 *
 * @param tools The commands it needs, each with its Debian package.
 * @returns The reason to skip, or false to run (always false under CI: then it fails and says why).
 */
export function releaseSkip(tools: [command: string, aptPackage: string][]): string | false {
  if (RELEASE_DIR === null) {
    return "skipped: runs in the release stage of npm test (tests/run_all.sh), which builds the " +
      "release once; alone: npm run release && TALLYHO_RELEASE_DIR=dist/release bun test " +
      "tests/release_*_test.ts";
  }
  if (process.env.CI) return false;
  if (process.getuid?.() !== 0) {
    return "skipped: needs root (debootstrap, systemd-nspawn, binfmt_misc)";
  }
  for (const [command, aptPackage] of tools) {
    const missing = toolMissing(command, aptPackage);
    if (missing !== null) return `skipped: ${missing}`;
  }
  return false;
}

/**
 * Fails under CI when the release tests cannot run, naming what to install.
 *
 * @param tools As for {@linkcode releaseSkip}.
 */
export function requireReleaseTools(tools: [command: string, aptPackage: string][]): string {
  if (RELEASE_DIR === null || !existsSync(join(RELEASE_DIR, "SHA256SUMS"))) {
    throw new Error(`TALLYHO_RELEASE_DIR=${RELEASE_DIR} holds no release (npm run release)`);
  }
  if (process.getuid?.() !== 0) throw new Error("the release tests need root");
  for (const [command, aptPackage] of tools) {
    const missing = toolMissing(command, aptPackage);
    if (missing !== null) throw new Error(`${missing}; ${INSTALL_TOOLS}`);
  }
  return RELEASE_DIR;
}

/** The steps timed so far in this test process, in order. */
export const STEP_TIMES: { step: string; seconds: number }[] = [];

/**
 * Runs `body`, prints how long it took (the CI log keeps every step's time) and records it.
 *
 * @param step What it does.
 * @param body The step.
 * @returns What `body` returned.
 */
export async function timed<T>(step: string, body: () => T | Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await body();
  } finally {
    const seconds = (performance.now() - started) / 1000;
    STEP_TIMES.push({ step, seconds });
    console.log(`release step: ${step}: ${seconds.toFixed(1)} s`);
  }
}

/**
 * Runs a command to completion and fails, with its output, unless it exits 0.
 *
 * @param command The program.
 * @param args Its arguments.
 * @param options spawnSync's options (a 120 s timeout unless given).
 * @returns Its standard output.
 */
export function mustRun(
  command: string,
  args: string[],
  options: SpawnSyncOptions = {},
): string {
  const run = spawnSync(command, args, { encoding: "utf8", timeout: 120_000, ...options });
  if (run.status !== 0) {
    throw new Error(
      `${command} ${args.join(" ")} exited ${run.status ?? run.signal}` +
        `${run.error ? ` (${run.error.message})` : ""}:\n${run.stdout}${run.stderr}`,
    );
  }
  return String(run.stdout);
}
