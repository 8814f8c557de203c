/**
 * How this program runs itself again: for the supervisor's child processes, the same runtime and
 * entry point from source, or just the executable when compiled; for an upgrade, the path the
 * operator started, which may be a symlink the deploy has pointed elsewhere since.
 *
 * @module
 */

import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { basename, delimiter, isAbsolute, join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** A program and the arguments that come before tallyho's own. */
export interface SelfCommand {
  command: string;
  args: string[];
  /** The name the new process is given (its argv[0]) where `command` is not its path. */
  argv0?: string;
}

/** Linux's name for the running executable's file, which stays runnable once it is replaced. */
const PROC_SELF_EXE = "/proc/self/exe";

/**
 * The command that runs this tallyho again.
 *
 * @returns The program and its leading arguments.
 */
export function selfCommand(): SelfCommand {
  const execPath = process.execPath;
  if ("Bun" in globalThis) {
    const main = (globalThis as unknown as { Bun: { main: string } }).Bun.main;
    // A compiled executable's entry lives in Bun's embedded file system.
    // Where the path no longer names the file this process runs (a deploy deleted or replaced
    // it), run /proc/self/exe, which still is that file: a child restarted after a kill -9 then
    // runs this very program, as a fork would. By the path, the restart failed once the binary
    // was deleted (ENOENT) and ran another version's child beside this supervisor once it was
    // replaced. Otherwise the path, so that the kernel names the process after it (`ps -C`,
    // `top`, `pkill` read that name: by /proc/self/exe it would be "exe"). An upgrade runs the
    // path (startedCommand). Bun's standalone executable reads its modules from that file.
    if (main.startsWith("/$bunfs/") || main.includes("~BUN")) {
      return pathRunsThisFile(execPath)
        ? { command: execPath, args: [] }
        : { command: PROC_SELF_EXE, args: [], argv0: execPath };
    }
    return { command: execPath, args: [main] };
  }
  const deno = globalThis as unknown as { Deno: { mainModule: string } };
  if (!/^deno(\.exe)?$/.test(basename(execPath))) return { command: execPath, args: [] };
  return {
    command: execPath,
    args: ["run", "-A", "--unstable-net", fileURLToPath(deno.Deno.mainModule)],
  };
}

/** Whether `path` is the file this process runs (false once it is deleted or replaced). */
function pathRunsThisFile(path: string): boolean {
  let running;
  try {
    running = statSync(PROC_SELF_EXE);
  } catch {
    return true; // no /proc: the path is all there is
  }
  try {
    const named = statSync(path);
    return named.ino === running.ino && named.dev === running.dev;
  } catch {
    return false;
  }
}

/**
 * The command an upgrade runs: like {@linkcode selfCommand}, but a compiled executable started
 * through a symlink (`/opt/bin/tallyho -> tallyho-v1`) is run again through that path, so that a
 * deploy that points the link at v2 upgrades to v2. The runtime reports the link's target as
 * `process.execPath`; the path as started is argv[0] (`/proc/self/cmdline`), made absolute
 * against the directory and PATH of the start. Call it at start: it checks that the path names
 * the running executable then, and falls back to `execPath` when it does not (a wrapper that set
 * another argv[0]).
 *
 * @returns The program and its leading arguments.
 */
export function startedCommand(): SelfCommand {
  const self = selfCommand();
  if (self.args.length > 0) return self; // from source: the runtime and script, read again
  startedPath ??= pathStartedAs(process.execPath);
  return { command: startedPath, args: [] };
}

let startedPath: string | undefined;

function pathStartedAs(execPath: string): string {
  let argv0: string;
  try {
    argv0 = readFileSync("/proc/self/cmdline", "utf8").split("\0")[0] ?? "";
  } catch {
    return execPath; // not Linux: the resolved path is what there is
  }
  const candidates = argv0 === ""
    ? []
    : argv0.includes("/")
    ? [isAbsolute(argv0) ? argv0 : resolve(process.cwd(), argv0)]
    : (process.env.PATH ?? "").split(delimiter).filter((dir) => dir !== "").map((dir) =>
      join(resolve(dir), argv0)
    );
  for (const candidate of candidates) {
    if (sameFile(candidate, execPath)) return candidate;
  }
  return execPath;
}

function sameFile(path: string, execPath: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    const a = statSync(path);
    const b = statSync(execPath);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}
