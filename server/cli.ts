/**
 * The command line: `tallyho serve`, `tallyho --help`, `tallyho --version`.
 *
 * `main(args)` parses, validates and runs, and resolves with the exit code, so tests can call it;
 * only `mod.ts` calls `process.exit`. A user's mistake is one line naming what was wrong and what
 * was given, a usage hint and exit code 2; a failure to serve (a busy port) exits 1.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadMain } from "../bench/load/load_cli.ts";
import { RUNTIME, RUNTIME_VERSION } from "./adapters/mod.ts";
import { AddressInUseError } from "./adapters/thread_listener.ts";
import { describe, DURATION_KEYS, FLAG_NAMES, LIMITS, type ServeOptions } from "./config.ts";
import { ConfigFileError, parseDuration } from "./config_json.ts";
import { doctorMain } from "./doctor/doctor_main.ts";
import { RedisLeaseError } from "./lease/redis_lease_error.ts";
import { RedisPasswordError } from "./lease/redis_password.ts";
import { StateFileError } from "./lease/state_file.ts";
import { runChild } from "./process/child_main.ts";
import { CHILD_COMMAND } from "./process/supervisor.ts";
import { type AdminFlags, DEFAULT_ADMIN_ADDRESS, runServe } from "./serve_command.ts";
import { VERSION } from "./version.ts";

/** Exit code for a mistake in the command line. */
export const EXIT_USAGE = 2;
/** Exit code for a failure to serve. */
export const EXIT_FAILURE = 1;

/** Where the CLI writes; tests pass their own. */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

const defaultIo: CliIo = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
};

/** The usage text printed by `--help`. */
export function usage(): string {
  return `tallyho ${VERSION}: answers every TCP client with Hello World<N>, N never repeated.

Usage:
  tallyho [serve] [options]    start the server (the default command)
  tallyho load [options]       drive a server with load and check its numbers (load --help)
  tallyho --help               show this text
  tallyho --version            show the version and runtime
  tallyho doctor [--json]      check this host's TCP settings against floods

Options for serve:
  --host ADDRESS          address to listen on (default 0.0.0.0)
  --port PORT             TCP port, ${LIMITS.port.min}-${LIMITS.port.max}; 0 picks a free one (default 9000)
  --threads N             worker threads, each listening with SO_REUSEPORT (default: cores)
  --framing MODE          chunk: each read is one message; line: each \\n-ended line is (default chunk)
  --number-by MODE        connection: a client keeps its N; message: every reply takes a new N
                          (default connection)
  --greeting TEXT         text before the number (default "Hello World")
  --max-line-bytes N      longest line in line framing; longer closes the connection (default 65536)
  --first-number N        first number handed out, 1 to 2^53-1 (default 1)
  --drain-timeout TIME    how long a graceful stop waits, e.g. 10s or 500ms (default 10s)
  --processes N           serving processes under one supervisor, 1-64 (default 1)
  --max-connections N     connections one process holds; more are closed at once
                          (default: the open-file limit less 256, or less if memory is short)
  --max-connections-per-address N   concurrent connections per client address (default: a quarter
                                    of max-connections x processes; 0: off)
  --connection-rate N     new connections per second per client address (default 0: off)
  --connection-burst N    connections an address may open at once (default: the rate)
  --first-message-timeout TIME   close a connection silent this long (default 10s; 0 off)
  --idle-timeout TIME     close a connection idle, mid-line or not reading this long (default 60s)
  --max-pending-reply-bytes N    unsent replies above which a connection stops being read
                          (default 1048576)
  --log-level LEVEL       info, warn (problems only) or error (default info); the start and
                          stop lines are always written
  --admin HOST:PORT|off   the admin HTTP API (default 127.0.0.1:9001); a non-loopback address
                          needs a configured token
  --admin-token-file FILE the admin API's bearer token (or set TALLYHO_ADMIN_TOKEN); without
                          either, one is generated into a file only its owner can read
  --allow CIDR,...        only these client ranges may connect (default: all)
  --deny CIDR,...         client ranges refused at once (default: none)
  --state FILE            record the numbering high-water mark durably in FILE, so a restart
                          never repeats a number (default: none; numbers restart on restart)
  --numbers URL           lease numbers from a Redis key shared by many servers, so none of
                          them repeats a number: redis://HOST:PORT/KEY, or rediss:// for TLS
                          (not with --state; never put the password in the URL)
  --numbers-password-file FILE
                          file holding the Redis password (default: the environment variable
                          TALLYHO_REDIS_PASSWORD, if set)
  --numbers-ca-file FILE  PEM certificate authority to trust for a rediss:// Redis whose
                          certificate no public CA signed (default: the runtime's usual CAs)
  --config FILE           JSON file with the same keys as these flags; flags override it, and
                          SIGHUP re-reads it

Signals: SIGTERM/SIGINT drain and exit 0 (a second one exits at once); SIGHUP reloads --config.
Exit codes: 0 stopped cleanly, 1 could not serve, 2 bad command line or configuration.`;
}

class UsageError extends Error {
  override name = "UsageError";
}

const SERVE_FLAGS = {
  ...Object.fromEntries(Object.values(FLAG_NAMES).map((flag) => [flag, { type: "string" }])),
  config: { type: "string" },
  admin: { type: "string" },
  "admin-token-file": { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
} as const satisfies Record<string, { type: "string" | "boolean"; short?: string }>;

function integerFlag(flag: string, text: string): number {
  if (!/^-?\d+$/.test(text)) {
    throw new UsageError(`'${flag}' must be an integer: got ${describe(text)}`);
  }
  return Number(text);
}

/**
 * Turns `serve` flags into options: integers for the numeric keys, durations for the timeouts,
 * comma-separated lists for `allow` and `deny`, text for the rest.
 *
 * @param args The arguments after the command.
 * @returns The options and the config file, or `"help"` / `"version"`.
 * @throws {UsageError} For an unknown flag or an unparsable value.
 */
function parseServeArgs(
  args: string[],
): { options: ServeOptions; configFile: string | null; admin: AdminFlags } | "help" | "version" {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args, options: SERVE_FLAGS, strict: true, allowPositionals: false })
      .values;
  } catch (error) {
    throw new UsageError(rewordParseError(error as Error));
  }
  if (values.help) return "help";
  if (values.version) return "version";
  const options: Record<string, unknown> = {};
  for (const [option, flag] of Object.entries(FLAG_NAMES) as [keyof ServeOptions, string][]) {
    const text = values[flag];
    if (typeof text !== "string") continue;
    if (DURATION_KEYS.has(option)) options[option] = parseDuration(flag, text);
    else if (option in LIMITS) options[option] = integerFlag(flag, text);
    else if (option === "allow" || option === "deny") {
      options[option] = text === "" ? [] : text.split(",").map((range) => range.trim());
    } else options[option] = text;
  }
  const configFile = values.config;
  const tokenFile = values["admin-token-file"];
  return {
    options: options as ServeOptions,
    configFile: typeof configFile === "string" ? configFile : null,
    admin: {
      address: typeof values.admin === "string" ? values.admin : DEFAULT_ADMIN_ADDRESS,
      ...(typeof tokenFile === "string" ? { tokenFile } : {}),
    },
  };
}

// node:util's messages run long and mention positionals; say the one thing that matters.
function rewordParseError(error: Error): string {
  const code = (error as { code?: string }).code;
  const flag = /'(-[^' ]*)/.exec(error.message)?.[1];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return `Unknown option '${flag}'`;
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    return `Option '${flag ?? "?"}' needs a value`;
  }
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
    const given = /'([^']*)'/.exec(error.message)?.[1] ?? "";
    return `Unexpected argument ${describe(given)}`;
  }
  return error.message.split("\n")[0]!;
}

/**
 * Runs the command line.
 *
 * @param args The arguments, without the runtime and script.
 * @param io Where to write; defaults to the console.
 * @returns The exit code, once the command is done (for `serve`, once the server has stopped).
 */
export async function main(args: string[], io: CliIo = defaultIo): Promise<number> {
  const [first, ...rest] = args;
  let command = "serve";
  let commandArgs = args;
  if (first !== undefined && !first.startsWith("-")) {
    command = first;
    commandArgs = rest;
  }
  try {
    if (command === "help") return printUsage(io);
    if (command === CHILD_COMMAND) return await runChild();
    if (command === "doctor") return await doctorMain(commandArgs, io);
    if (command === "load") return await loadMain(commandArgs, io);
    if (command !== "serve") throw new UsageError(`Unknown command ${describe(command)}`);
    const parsed = parseServeArgs(commandArgs);
    if (parsed === "help") return printUsage(io);
    if (parsed === "version") {
      io.out(`tallyho ${VERSION} (${RUNTIME} ${RUNTIME_VERSION})`);
      return 0;
    }
    return await runServe(parsed.options, parsed.configFile, io, parsed.admin);
  } catch (error) {
    if (
      error instanceof StateFileError || error instanceof RedisLeaseError ||
      error instanceof RedisPasswordError
    ) {
      io.err(`tallyho: ${error.message}`);
      return EXIT_FAILURE;
    }
    if (
      error instanceof UsageError || error instanceof RangeError || error instanceof TypeError ||
      error instanceof ConfigFileError
    ) {
      io.err(`tallyho: ${error.message}`);
      io.err(`Run 'tallyho --help' for usage.`);
      return EXIT_USAGE;
    }
    if (error instanceof AddressInUseError) {
      io.err(`tallyho: ${error.message} (is another server running? try another --port)`);
      return EXIT_FAILURE;
    }
    io.err(`tallyho: ${(error as Error).message ?? String(error)}`);
    return EXIT_FAILURE;
  }
}

function printUsage(io: CliIo): number {
  io.out(usage());
  return 0;
}
