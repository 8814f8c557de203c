/**
 * The version, read from package.json so there is one place to change it, and what a compiled
 * build embeds about itself: the commit, the build date and the target. `compile.sh` passes those
 * as `bun build --define`s; run from source they are absent.
 *
 * @module
 */

import pkg from "../../package.json" with { type: "json" };

/** tallyho's version. */
export const VERSION: string = pkg.version;

// Replaced by `bun build --define` (compile.sh); undeclared, and so `undefined`, from source.
declare const TALLYHO_BUILD_COMMIT: string;
declare const TALLYHO_BUILD_DATE: string;
declare const TALLYHO_BUILD_TARGET: string;

/** What a compiled build says about itself. */
export interface BuildInfo {
  /** The git commit it was built from (12 hex digits, `-dirty` with uncommitted changes). */
  commit: string;
  /** When: the commit's time for a clean tree (so two builds of a commit are identical). */
  date: string;
  /** What it runs on, such as `linux-x64-baseline` or `linux-arm64`. */
  target: string;
}

/** The build's facts, or null when running from source. */
export const BUILD: BuildInfo | null = typeof TALLYHO_BUILD_COMMIT === "string"
  ? { commit: TALLYHO_BUILD_COMMIT, date: TALLYHO_BUILD_DATE, target: TALLYHO_BUILD_TARGET }
  : null;

/**
 * The line `tallyho --version` prints.
 *
 * @param runtime The runtime's name and version, such as `bun 1.4.5`.
 * @returns For example `tallyho 0.1.0 (commit 2e2d0ff1a2b3, built 2026-12-07T00:17:00Z, for
 * linux-x64; bun 1.4.5)`, or `tallyho 0.1.0 (bun 1.4.5)` from source.
 */
export function versionLine(runtime: string): string {
  const build = BUILD === null
    ? ""
    : `commit ${BUILD.commit}, built ${BUILD.date}, for ${BUILD.target}; `;
  return `tallyho ${VERSION} (${build}${runtime})`;
}
