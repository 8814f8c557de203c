/**
 * How this program runs itself again, for the supervisor's child processes: the same runtime and
 * entry point from source, or just the executable when compiled.
 *
 * @module
 */

import { basename } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** A program and the arguments that come before tallyho's own. */
export interface SelfCommand {
  command: string;
  args: string[];
}

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
    if (main.startsWith("/$bunfs/") || main.includes("~BUN")) {
      return { command: execPath, args: [] };
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
