/**
 * Builds the native client (native_client.c) with the machine's C compiler on first use, into
 * bench/native_client/.build/ (ignored by git), and again whenever the source is newer than the
 * binary.
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const SOURCE = join(HERE, "native_client.c");
const BINARY = join(HERE, ".build", "native_client");

/** The native client cannot be built here (no C compiler, or the build failed). */
export class NativeClientUnavailableError extends Error {
  override name = "NativeClientUnavailableError";
}

/** The C compiler to use: `$CC`, else `cc`. */
function compiler(): string {
  const cc = process.env.CC;
  return cc !== undefined && cc !== "" ? cc : "cc";
}

/**
 * Whether a C compiler answers here.
 *
 * @returns `true` when `$CC` (or `cc`) runs.
 */
export function hasCompiler(): boolean {
  try {
    execFileSync(compiler(), ["--version"], { stdio: "ignore", timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * The path of the built client, building it first when it is missing or older than its source.
 *
 * @returns The executable's path.
 * @throws {NativeClientUnavailableError} When there is no C compiler or the build fails.
 */
export function nativeClientPath(): string {
  return builtCProgram(SOURCE, BINARY, "the native client", "use '--driver tallyho-load'");
}

/**
 * Builds a one-file C program of bench/ into the `.build/` folder beside it (ignored by git) on
 * first use, and again whenever the source is newer than the executable.
 *
 * @param source The C file.
 * @param binary Where the executable goes.
 * @param what What it is, for an error message ("the native client").
 * @param instead What to do without it, for an error message ("use '--driver tallyho-load'").
 * @returns The executable's path.
 * @throws {NativeClientUnavailableError} When there is no C compiler or the build fails.
 */
export function builtCProgram(
  source: string,
  binary: string,
  what: string,
  instead: string,
): string {
  if (existsSync(binary) && statSync(binary).mtimeMs >= statSync(source).mtimeMs) return binary;
  if (!hasCompiler()) {
    throw new NativeClientUnavailableError(
      `Cannot build ${what}: no C compiler ('${compiler()}') on PATH. Install one ` +
        `(Debian: apt-get install gcc), set CC, or ${instead}`,
    );
  }
  mkdirSync(dirname(binary), { recursive: true });
  // Built beside and renamed into place, so a concurrent run never executes half a binary.
  const partial = `${binary}.${process.pid}`;
  try {
    execFileSync(compiler(), ["-O2", "-Wall", "-o", partial, source], {
      stdio: ["ignore", "ignore", "pipe"],
      timeout: 120_000,
    });
  } catch (error) {
    const stderr = (error as { stderr?: { toString(): string } }).stderr?.toString() ?? "";
    throw new NativeClientUnavailableError(
      `Cannot build ${what}: '${compiler()} ${source}' failed: ${
        stderr.trim() || (error as Error).message
      }; meanwhile, ${instead}`,
    );
  }
  renameSync(partial, binary);
  return binary;
}
