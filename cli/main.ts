/**
 * The command line, and the program's one composition root: `tallyho serve` (the default),
 * `tallyho load`, `tallyho doctor`, `--help`, `--version`. Only this folder knows that the
 * server (server/), the admin API (admin/) and the load generator (load/) exist together.
 *
 * `main(args)` parses, validates and runs, and resolves with the exit code, so tests can call it;
 * only `mod.ts` calls `process.exit`. A user's mistake is one line naming what was wrong and what
 * was given, a usage hint and exit code 2; a failure to serve (a busy port) exits 1; a bug (any
 * other error) exits 1 with its stack, so it is never mistaken for the user's.
 *
 * @module
 */

import process from "node:process";
import { RUNTIME, RUNTIME_VERSION } from "../server/adapters/mod.ts";
import { describe } from "../server/common/describe.ts";
import { optionsUsage } from "../server/config/option_table.ts";
import { VERSION, versionLine } from "../server/common/version.ts";
import { type CliIo, consoleIo, EXIT_FAILURE, EXIT_USAGE, UsageError } from "./_io.ts";
import { logFormatAsked, reportFailure } from "./_fatal.ts";
import { adminTokenMain } from "./admin_token.ts";
import { checkMain } from "./check.ts";
import { CONTROL_COMMANDS, type ControlCommand, controlMain } from "./control.ts";
import { doctorMain } from "./doctor.ts";
import { loadMain } from "./load.ts";
import { parseServeArgs, runServe } from "./serve.ts";

export { type CliIo, EXIT_FAILURE, EXIT_USAGE };

/** The usage text printed by `--help`. */
export function usage(): string {
  return `tallyho ${VERSION}: answers every TCP client with Hello World<N>, N never repeated.

Usage:
  tallyho [serve] [options]    start the server (the default command)
  tallyho load [options]       drive a server with load and check its numbers (load --help)
  tallyho --help               show this text
  tallyho --version            show the version and runtime
  tallyho doctor [--json]      check this host's TCP settings against floods; --tls-cert FILE:
                               how long the certificate has left; --connections N: what
                               holding N at once needs here
  tallyho admin-token [--path] print the admin API's token, or the file it is in
  tallyho check [options]      check a configuration (serve's options, e.g. --config FILE)
                               without starting: values, addresses, numbers; exit 0 or 2
  tallyho reload|stop|upgrade --pid-file FILE
                               signal the server that wrote FILE (serve --pid-file) and say
                               what happened: reloaded or refused, stopped, upgraded to pid N

Options for serve:
${optionsUsage()}

Signals (to the supervisor; serving processes ignore them): SIGTERM/SIGINT/SIGQUIT drain and exit
0 (a second one exits at once); SIGHUP reloads --config, or else re-reads the TLS files; SIGUSR2
upgrades: the program at the same path takes the port and the numbers over; SIGUSR1 is ignored.
Exit codes: 0 stopped cleanly, 1 could not serve, 2 bad command line or configuration.`;
}

/**
 * Runs the command line.
 *
 * @param args The arguments, without the runtime and script.
 * @param io Where to write; defaults to the console.
 * @returns The exit code, once the command is done (for `serve`, once the server has stopped).
 */
export async function main(args: string[], io: CliIo = consoleIo): Promise<number> {
  const [first, ...rest] = args;
  let command = "serve";
  let commandArgs = args;
  if (first !== undefined && !first.startsWith("-")) {
    command = first;
    commandArgs = rest;
  }
  // The binaries are Linux executables; from source, another system would fail later and less
  // clearly (SO_REUSEPORT spreading connections, /proc).
  if (
    process.platform !== "linux" && command !== "help" &&
    !/^--?(h|help|v|version)$/.test(first ?? "")
  ) {
    io.err(`tallyho: runs on Linux only (SO_REUSEPORT, /proc); this is ${process.platform}`);
    return EXIT_FAILURE;
  }
  try {
    if (command === "help") return printUsage(io);
    if (command === "doctor") return await doctorMain(commandArgs, io);
    if (command === "load") return await loadMain(commandArgs, io);
    if (command === "admin-token") return adminTokenMain(commandArgs, io);
    if (command === "check") return await checkMain(commandArgs, io);
    if (Object.hasOwn(CONTROL_COMMANDS, command)) {
      return await controlMain(command as ControlCommand, commandArgs, io);
    }
    if (command !== "serve") throw new UsageError(`Unknown command ${describe(command)}`);
    const parsed = parseServeArgs(commandArgs);
    if (parsed === "help") return printUsage(io);
    if (parsed === "version") {
      io.out(versionLine(`${RUNTIME} ${RUNTIME_VERSION}`));
      return 0;
    }
    return await runServe(parsed, io);
  } catch (error) {
    // In the log format serve was asked for: a start-up failure is a log line like the rest.
    return reportFailure(error, io, command === "serve" ? logFormatAsked(commandArgs) : "text");
  }
}

function printUsage(io: CliIo): number {
  io.out(usage());
  return 0;
}
