/**
 * The command line: `tallyho serve`, `tallyho --help`, `tallyho --version`.
 *
 * `main(args)` parses, validates and runs, and resolves with the exit code, so tests can call it;
 * only `mod.ts` calls `process.exit`. A user's mistake is one line naming what was wrong and what
 * was given, a usage hint and exit code 2; a failure to serve (a busy port) exits 1.
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { loadMain } from "../bench/load/load_cli.ts";
import { RUNTIME, RUNTIME_VERSION } from "./adapters/mod.ts";
import { AddressInUseError } from "./adapters/thread_listener.ts";
import { describe, FLAG_NAMES, LIMITS, type ServeOptions } from "./config.ts";
import { parseDuration } from "./config_json.ts";
import { startServer } from "./serve.ts";
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

Exit codes: 0 stopped cleanly, 1 could not serve, 2 bad command line.`;
}

class UsageError extends Error {
  override name = "UsageError";
}

const SERVE_FLAGS = {
  host: { type: "string" },
  port: { type: "string" },
  threads: { type: "string" },
  framing: { type: "string" },
  "number-by": { type: "string" },
  greeting: { type: "string" },
  "max-line-bytes": { type: "string" },
  "first-number": { type: "string" },
  "drain-timeout": { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
} as const;

function integerFlag(flag: string, text: string): number {
  if (!/^-?\d+$/.test(text)) {
    throw new UsageError(`'${flag}' must be an integer: got ${describe(text)}`);
  }
  return Number(text);
}

/**
 * Turns `serve` flags into options.
 *
 * @param args The arguments after the command.
 * @returns The options, or `"help"` / `"version"`.
 * @throws {UsageError} For an unknown flag or an unparsable value.
 */
function parseServeArgs(args: string[]): ServeOptions | "help" | "version" {
  let parsed;
  try {
    parsed = parseArgs({ args, options: SERVE_FLAGS, strict: true, allowPositionals: false });
  } catch (error) {
    throw new UsageError(rewordParseError(error as Error));
  }
  const v = parsed.values;
  if (v.help) return "help";
  if (v.version) return "version";
  const options: ServeOptions = {};
  if (v.host !== undefined) options.host = v.host;
  if (v.port !== undefined) options.port = integerFlag(FLAG_NAMES.port, v.port);
  if (v.threads !== undefined) options.threads = integerFlag(FLAG_NAMES.threads, v.threads);
  if (v.framing !== undefined) options.framing = v.framing as ServeOptions["framing"] & string;
  if (v["number-by"] !== undefined) {
    options.numberBy = v["number-by"] as ServeOptions["numberBy"] & string;
  }
  if (v.greeting !== undefined) options.greeting = v.greeting;
  if (v["max-line-bytes"] !== undefined) {
    options.maxLineBytes = integerFlag(FLAG_NAMES.maxLineBytes, v["max-line-bytes"]);
  }
  if (v["first-number"] !== undefined) {
    options.firstNumber = integerFlag(FLAG_NAMES.firstNumber, v["first-number"]);
  }
  if (v["drain-timeout"] !== undefined) {
    options.drainTimeoutMs = parseDuration(FLAG_NAMES.drainTimeoutMs, v["drain-timeout"]);
  }
  return options;
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
    if (command === "load") return await loadMain(commandArgs, io);
    if (command !== "serve") throw new UsageError(`Unknown command ${describe(command)}`);
    const options = parseServeArgs(commandArgs);
    if (options === "help") return printUsage(io);
    if (options === "version") {
      io.out(`tallyho ${VERSION} (${RUNTIME} ${RUNTIME_VERSION})`);
      return 0;
    }
    return await serve(options, io);
  } catch (error) {
    if (error instanceof UsageError || error instanceof RangeError || error instanceof TypeError) {
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

async function serve(options: ServeOptions, io: CliIo): Promise<number> {
  // Installed before the server starts, so a signal that arrives as soon as the start line is
  // printed is never met by the default action.
  const signal = new Promise<string>((resolve) => {
    let received = 0;
    const onSignal = (name: string) => {
      received++;
      if (received === 1) resolve(name);
      else {
        io.err(`tallyho: second ${name}: exiting at once`);
        process.exit(EXIT_FAILURE);
      }
    };
    process.on("SIGINT", () => onSignal("SIGINT"));
    process.on("SIGTERM", () => onSignal("SIGTERM"));
  });
  let crashed: ((reason: string) => void) | null = null;
  const crashLoop = new Promise<string>((resolve) => (crashed = resolve));
  const server = await startServer(options, {
    log: (line) => io.out(`tallyho: ${line}`),
    onCrashLoop: (reason) => crashed?.(reason),
  });
  const c = server.config;
  io.out(
    `tallyho ${VERSION} on ${RUNTIME} ${RUNTIME_VERSION}: listening on ${c.host}:${server.port}` +
      ` with ${c.threads} thread${c.threads === 1 ? "" : "s"}` +
      ` (framing ${c.framing}, numbering by ${c.numberBy}, first number ${c.firstNumber})`,
  );
  const winner = await Promise.race([
    signal.then((name) => ({ kind: "signal" as const, name })),
    crashLoop.then((reason) => ({ kind: "crash" as const, name: reason })),
  ]);
  if (winner.kind === "crash") {
    io.err(`tallyho: stopping: worker threads are crashing in a loop: ${winner.name}`);
    await server.shutdown();
    return EXIT_FAILURE;
  }
  io.out(`tallyho: ${winner.name}: draining (up to ${c.drainTimeoutMs} ms)`);
  await server.shutdown();
  const perThread = server.stats().map((thread) => thread.connectionsAccepted);
  io.out(
    `tallyho: stopped; last number handed out: ${server.lastNumber()};` +
      ` connections per thread: [${perThread.join(", ")}]`,
  );
  return 0;
}
