/**
 * `tallyho load`: the command line of the load generator.
 *
 * `loadMain(args, io)` parses, validates, runs and resolves with the exit code, so tests and
 * the command line's `main` can call it; the generator itself is load/ (`runLoad`); a user's mistake is one line naming the flag and what was given,
 * with exit code 2, before any connection is made.
 *
 * @module
 */

import { availableParallelism } from "node:os";
import process from "node:process";
import { parseArgs } from "node:util";
import { ConfigError } from "../server/config_error.ts";
import { parseDuration } from "../server/config_json.ts";
import { formatProgress, formatReport } from "../load/format_report.ts";
import {
  LOAD_LIMITS,
  type LoadOptions,
  resolveLoadOptions,
  type Workload,
  WORKLOADS,
} from "../load/load_options.ts";
import { exitCodeFor } from "../load/load_report.ts";
import { decodeMessage } from "../load/message_bytes.ts";
import { runLoad } from "../load/run_load.ts";
import {
  type CliIo,
  consoleIo,
  EXIT_USAGE,
  integerFlag,
  joinNegativeValues,
  UsageError,
  usageErrorFrom,
} from "./_io.ts";

/** The usage text of `tallyho load`. */
export function loadUsage(): string {
  return `tallyho load: drives a server that answers a line with a line, and checks its numbers.

Usage:
  tallyho load [options]

Options:
  --host ADDRESS        server address (default 127.0.0.1)
  --port PORT           server port (default 9000)
  --workload KIND       ${WORKLOADS.join(" | ")} (default closed)
                          closed:    persistent connections, one request in flight each
                          pipelined: persistent connections, --depth requests in flight each
                          connect:   connect, send, read the reply, close, repeat
                          idle:      open, one request each, then hold open (for memory)
  --connections N       connections at once (default 50)
  --depth N             requests in flight per connection, pipelined only (default 100)
  --duration TIME       how long to send, e.g. 500ms, 10s or 5m; at most 1h (default 10s)
  --count N             stop after N requests (connect: N connections) if sooner
  --threads N           client threads sharing the connections (default: cores)
  --message TEXT        request bytes; escapes \\r \\n \\t \\0 \\\\ \\xHH (default "PING\\r\\n");
                        connect may send "" when the server speaks first
  --source ADDRESS      local address to connect from, e.g. 127.0.0.2
  --timeout TIME        a reply later than this is an error; the end waits this long for
                        replies in flight (default 5s)
  --greeting TEXT       what a numbered reply starts with (default "Hello World")
  --json                print the whole report as JSON

Every "<greeting><N>" reply is checked: an N seen twice (on two connections, or on one connection
that numbers by message) is a bug in the server and fails the run. Other replies are counted.

Exit codes: 0 ran, every request was answered and every number checked out; 1 no reply at
all, or requests went unanswered past --timeout (against tallyho with --workload pipelined:
start it with --framing line); 2 bad command line; 3 the number check failed.`;
}

const LOAD_FLAGS = {
  host: { type: "string" },
  port: { type: "string" },
  workload: { type: "string" },
  connections: { type: "string" },
  depth: { type: "string" },
  duration: { type: "string" },
  count: { type: "string" },
  threads: { type: "string" },
  message: { type: "string" },
  source: { type: "string" },
  timeout: { type: "string" },
  greeting: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/**
 * Turns `load` flags into options.
 *
 * @param args The arguments after `load`.
 * @returns The options and whether to print JSON, or `"help"`.
 * @throws {UsageError} For an unknown flag or an unparsable value.
 */
function parseLoadArgs(args: string[]): { options: LoadOptions; json: boolean } | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args: joinNegativeValues(args, LOAD_FLAGS),
      options: LOAD_FLAGS,
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw usageErrorFrom(error as Error, "load", LOAD_FLAGS);
  }
  const v = parsed.values;
  if (v.help) return "help";
  const options: LoadOptions = {};
  if (v.host !== undefined) options.host = v.host;
  if (v.port !== undefined) options.port = integerFlag("port", v.port, false);
  if (v.workload !== undefined) options.workload = v.workload as Workload;
  if (v.connections !== undefined) {
    options.connections = integerFlag("connections", v.connections, false);
  }
  if (v.depth !== undefined) options.depth = integerFlag("depth", v.depth, false);
  if (v.duration !== undefined) {
    options.durationMs = parseDuration("duration", v.duration, LOAD_LIMITS.durationMs);
  }
  if (v.count !== undefined) options.count = integerFlag("count", v.count, false);
  if (v.threads !== undefined) options.threads = integerFlag("threads", v.threads, false);
  if (v.message !== undefined) options.message = decodeMessage(v.message);
  if (v.source !== undefined) options.source = v.source;
  if (v.timeout !== undefined) {
    options.timeoutMs = parseDuration("timeout", v.timeout, LOAD_LIMITS.timeoutMs);
  }
  if (v.greeting !== undefined) options.greeting = v.greeting;
  return { options, json: v.json === true };
}

function terminalProgress(): ((line: string | null) => void) | undefined {
  if (!process.stdout.isTTY) return undefined;
  return (line) => process.stdout.write(line === null ? "\r\x1b[K" : `\r\x1b[K${line}`);
}

/**
 * Runs `tallyho load`.
 *
 * @param args The arguments after `load`.
 * @param io Where to write; defaults to the console (with a progress line on a terminal).
 * @returns The exit code: 0 ok, 1 no reply at all or some never came, 2 bad command line,
 *   3 number check failed.
 */
export async function loadMain(args: string[], io: CliIo = consoleIo): Promise<number> {
  let parsed;
  let config;
  try {
    parsed = parseLoadArgs(args);
    if (parsed === "help") {
      io.out(loadUsage());
      return 0;
    }
    config = resolveLoadOptions(parsed.options, availableParallelism());
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      io.err(`tallyho: ${error.message}`);
      io.err(`Run 'tallyho load --help' for usage.`);
      return EXIT_USAGE;
    }
    throw error;
  }
  const progress = io.progress ?? terminalProgress();
  let onSignal = () => {};
  const stop = new Promise<void>((resolve) => (onSignal = resolve));
  process.on("SIGINT", onSignal);
  try {
    const report = await runLoad(config, {
      stop,
      onNote: (line) => io.err(`tallyho load: ${line}`),
      ...(progress ? { onProgress: (p) => progress(formatProgress(p)) } : {}),
    });
    progress?.(null);
    if (parsed.json) io.out(JSON.stringify(report, null, 2));
    else for (const line of formatReport(report)) io.out(line);
    if (report.failure !== null) io.err(`tallyho load: failed: ${report.failure}`);
    return exitCodeFor(report);
  } catch (error) {
    progress?.(null);
    io.err(`tallyho: load failed: ${(error as Error).message ?? String(error)}`);
    return 1;
  } finally {
    process.off("SIGINT", onSignal);
  }
}
