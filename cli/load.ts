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
import { ConfigError } from "../server/common/config_error.ts";
import { parseDuration } from "../server/config/config_json.ts";
import { formatProgress, formatReport } from "../load/format_report.ts";
import {
  LOAD_LIMITS,
  type LoadOptions,
  resolveLoadOptions,
  type Workload,
  WORKLOADS,
} from "../load/load_options.ts";
import { EXIT_CHECK_FAILED, exitCodeFor } from "../load/load_report.ts";
import { parseAddressList } from "../load/address_list.ts";
import { type HoldConfig, type HoldOptions, resolveHoldOptions } from "../load/hold_options.ts";
import { formatHoldReport, runHold } from "../load/run_hold.ts";
import { readHostFacts } from "../server/host/host_facts.ts";
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
                          hold:      idle over many client processes and addresses, paced;
                                     after --hold every connection is asked again
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

For --workload hold (up to millions of connections):
  --host ADDRESSES      server addresses, a list or block (127.0.0.0/24): a server on 0.0.0.0
                        answers on all, and each gives the client another 28,000 ports
  --source ADDRESSES    local addresses to connect from, a list or block (node:net sockets)
  --per-process N       connections per client process (default: open-file limit less 512);
                        as many processes are started as the connections need
  --rate N              new connections per second in all; 0 as fast as handshakes finish
                        (default 20000)
  --in-flight N         connections between connect and first reply at most, in all: what may
                        wait in the server's accept queues (default 500, under any backlog)
  --hold TIME           how long to hold every connection before asking each again (default 10s)
  --setup-timeout TIME  longest the set-up may take (default 10m)
  --server-pid PID      report the RSS of this process and its children (the supervisor)
  --probes N            fresh clients, one at a time, while holding (default 200)
  --probe-source ADDR   where the fresh clients connect from (default 127.0.9.1)
  --min-free MIB        stop when the machine has less memory available (default 512)
  --numbers-out FILE    write every number received to FILE, one a line, ascending

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
  "per-process": { type: "string" },
  rate: { type: "string" },
  "in-flight": { type: "string" },
  hold: { type: "string" },
  "setup-timeout": { type: "string" },
  "server-pid": { type: "string" },
  probes: { type: "string" },
  "probe-source": { type: "string" },
  "min-free": { type: "string" },
  "numbers-out": { type: "string" },
} as const;

const HOLD_ONLY_FLAGS = [
  "per-process",
  "rate",
  "in-flight",
  "hold",
  "setup-timeout",
  "server-pid",
  "probes",
  "probe-source",
  "min-free",
  "numbers-out",
] as const;

type ParsedValues = ReturnType<typeof parseArgs<{ options: typeof LOAD_FLAGS }>>["values"];

/**
 * Turns `load --workload hold` flags into hold options.
 *
 * @param v The parsed flags.
 * @returns The options.
 * @throws {UsageError} For a flag hold does not take.
 */
function holdOptionsFrom(v: ParsedValues): HoldOptions {
  for (const flag of ["depth", "count", "threads", "duration"] as const) {
    if (v[flag] !== undefined) {
      throw new UsageError(
        `'--${flag}' does not apply to --workload hold (see --rate, --hold, --setup-timeout): got ${
          v[flag]
        }`,
      );
    }
  }
  const options: HoldOptions = {};
  if (v.host !== undefined) options.hosts = parseAddressList("host", v.host);
  if (v.source !== undefined) options.sources = parseAddressList("source", v.source);
  if (v.port !== undefined) options.port = integerFlag("port", v.port, false);
  if (v.connections !== undefined) {
    options.connections = integerFlag("connections", v.connections, false);
  }
  if (v["per-process"] !== undefined) {
    options.perProcess = integerFlag("per-process", v["per-process"], false);
  }
  if (v.rate !== undefined) options.rate = integerFlag("rate", v.rate, true);
  if (v["in-flight"] !== undefined) {
    options.inFlight = integerFlag("in-flight", v["in-flight"], false);
  }
  const limit = { min: 0, max: 3_600_000 };
  if (v.hold !== undefined) options.holdMs = parseDuration("hold", v.hold, limit);
  if (v["setup-timeout"] !== undefined) {
    options.setupTimeoutMs = parseDuration("setup-timeout", v["setup-timeout"], limit);
  }
  if (v.timeout !== undefined) {
    options.timeoutMs = parseDuration("timeout", v.timeout, LOAD_LIMITS.timeoutMs);
  }
  if (v["server-pid"] !== undefined) {
    options.serverPid = integerFlag("server-pid", v["server-pid"], false);
  }
  if (v.probes !== undefined) options.probes = integerFlag("probes", v.probes, true);
  if (v["probe-source"] !== undefined) options.probeSource = v["probe-source"];
  if (v["min-free"] !== undefined) {
    options.minFreeBytes = integerFlag("min-free", v["min-free"], true) * 1024 ** 2;
  }
  if (v["numbers-out"] !== undefined) options.numbersOut = v["numbers-out"];
  if (v.message !== undefined) options.message = decodeMessage(v.message);
  if (v.greeting !== undefined) options.greeting = v.greeting;
  return options;
}

/**
 * Turns `load` flags into options.
 *
 * @param args The arguments after `load`.
 * @returns The options and whether to print JSON, or `"help"`.
 * @throws {UsageError} For an unknown flag or an unparsable value.
 */
function parseLoadArgs(
  args: string[],
): { options: LoadOptions; json: boolean } | { hold: HoldOptions; json: boolean } | "help" {
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
  if (v.workload === "hold") return { hold: holdOptionsFrom(v), json: v.json === true };
  for (const flag of HOLD_ONLY_FLAGS) {
    if (v[flag] !== undefined) {
      throw new UsageError(`'--${flag}' applies to --workload hold only: got --${flag} ${v[flag]}`);
    }
  }
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

/** Every this many progress lines, one is written when the output is not a terminal. */
const LOGGED_PROGRESS_EVERY = 5;

async function holdMain(config: HoldConfig, json: boolean, io: CliIo): Promise<number> {
  const progress = io.progress ?? terminalProgress();
  let lines = 0;
  let onSignal = () => {};
  const stop = new Promise<void>((resolve) => (onSignal = resolve));
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const report = await runHold(config, {
      stop,
      onNote: (line) => {
        progress?.(null);
        io.err(`tallyho load: ${line}`);
      },
      onProgress: (line) => {
        // Not on a terminal (a benchmark's log): a line every few seconds, not every second.
        if (progress) progress(line);
        else if (lines++ % LOGGED_PROGRESS_EVERY === 0) io.err(line);
      },
    });
    progress?.(null);
    if (json) io.out(JSON.stringify(report, null, 2));
    else for (const line of formatHoldReport(report)) io.out(line);
    if (!report.check.ok) return EXIT_CHECK_FAILED;
    return report.ok ? 0 : 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
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
    if ("hold" in parsed) {
      const holdConfig = resolveHoldOptions(parsed.hold, readHostFacts().openFiles);
      return await holdMain(holdConfig, parsed.json, io);
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
