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

import { ProcessStartError } from "../server/process/process_start_error.ts";
import process from "node:process";
import { RUNTIME, RUNTIME_VERSION } from "../server/adapters/mod.ts";
import { AddressInUseError } from "../server/address_in_use_error.ts";
import { describe } from "../server/common/describe.ts";
import { LIMITS } from "../server/config.ts";
import { ConfigError } from "../server/config_error.ts";
import { ConfigFileError } from "../server/config_json.ts";
import { EtcdLeaseError } from "../server/lease/etcd_lease_error.ts";
import { RedisLeaseError } from "../server/lease/redis_lease_error.ts";
import { RedisPasswordError } from "../server/lease/redis_password.ts";
import { StateFileError } from "../server/lease/state_file.ts";
import { runChild } from "../server/process/child_main.ts";
import { UpgradeFailedError } from "../server/process/upgrade_handover.ts";
import { CHILD_COMMAND } from "../server/process/supervisor.ts";
import { runHoldChild } from "../load/hold_child.ts";
import { HOLD_CHILD_COMMAND } from "../load/run_hold.ts";
import { VERSION, versionLine } from "../server/version.ts";
import { type CliIo, consoleIo, EXIT_FAILURE, EXIT_USAGE, UsageError } from "./_io.ts";
import { adminTokenMain } from "./admin_token.ts";
import { checkMain } from "./check.ts";
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
  --drain-timeout TIME    how long a graceful stop waits, at most 1h (default 10s); TIME is
                          500ms, 10s, 5m or 1h, and a bare number is seconds
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
  --log-format FORMAT     text: an ISO time and the level before each line; json: one object
                          a line {time, level, event, message, fields} (default text)
  --log-rejections-every TIME   sum up refused and closed connections by reason at most this
                          often, one line per period, never one per connection (default 10s; 0 off)
  --admin HOST:PORT|off   the admin HTTP API (default 127.0.0.1:9001); a non-loopback address
                          needs a configured token
  --admin-token-file FILE the admin API's bearer token (or set TALLYHO_ADMIN_TOKEN); without
                          either, one is generated into a file only its owner can read, which
                          'tallyho admin-token --path' names
  --allow CIDR,...        only these client ranges may connect (default: all)
  --deny CIDR,...         client ranges refused at once (default: none)
  --proxy-protocol        connections from --proxy-from must start with a PROXY v1 or v2 header,
                          whose address is the client for every per-address limit (default off)
  --proxy-from CIDR,...   the load balancers trusted to send the header (needed with the above)
  --proxy-header-timeout TIME    close a balancer's connection whose header is not whole by then
                          (default 5s)
  --tls-cert FILE         serve TLS with this PEM certificate chain (with --tls-key)
  --tls-key FILE          the certificate's PEM private key, readable by its owner only
  --state FILE            record the numbering high-water mark durably in FILE, so a restart
                          never repeats a number (default: none; numbers restart on restart)
  --numbers URL           lease numbers from a Redis or etcd key shared by many servers, so
                          none of them repeats a number: redis://HOST:PORT/DB?key=KEY
                          (rediss:// for TLS) or etcd://HOST:PORT[,HOST:PORT...]/KEY (etcds://
                          for TLS) (not with --state; never put the password in the URL)
  --numbers-password-file FILE
                          file holding the Redis password, or the etcd password of the URL's
                          user (default for Redis: TALLYHO_REDIS_PASSWORD, if set)
  --numbers-ca-file FILE  PEM certificate authority to trust for a rediss:// Redis or etcds://
                          members whose certificates no public CA signed (default: the
                          runtime's usual CAs)
  --numbers-cert-file FILE, --numbers-key-file FILE
                          PEM client certificate and its key to present to etcds:// members
                          that ask for one (etcd's --client-cert-auth); the key readable by its
                          owner only
  --config FILE           JSON file with the same keys as these flags (admin,
                          admin-token-file, log-format and log-rejections-every included, read
                          at start only); flags override it, and SIGHUP re-reads it

Signals: SIGTERM/SIGINT drain and exit 0 (a second one exits at once); SIGHUP reloads --config;
SIGUSR2 upgrades: the program at the same path takes the port and the numbers over, unnoticed.
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
    if (command === CHILD_COMMAND) return await runChild();
    if (command === HOLD_CHILD_COMMAND) return await runHoldChild(commandArgs);
    if (command === "doctor") return await doctorMain(commandArgs, io);
    if (command === "load") return await loadMain(commandArgs, io);
    if (command === "admin-token") return adminTokenMain(commandArgs, io);
    if (command === "check") return await checkMain(commandArgs, io);
    if (command !== "serve") throw new UsageError(`Unknown command ${describe(command)}`);
    const parsed = parseServeArgs(commandArgs);
    if (parsed === "help") return printUsage(io);
    if (parsed === "version") {
      io.out(versionLine(`${RUNTIME} ${RUNTIME_VERSION}`));
      return 0;
    }
    return await runServe(parsed, io);
  } catch (error) {
    if (
      error instanceof StateFileError || error instanceof RedisLeaseError ||
      error instanceof EtcdLeaseError || error instanceof RedisPasswordError ||
      error instanceof UpgradeFailedError || error instanceof ProcessStartError
    ) {
      io.err(`tallyho: ${error.message}`);
      return EXIT_FAILURE;
    }
    if (
      error instanceof UsageError || error instanceof ConfigError ||
      error instanceof ConfigFileError
    ) {
      io.err(`tallyho: ${error.message}`);
      io.err(`Run 'tallyho --help' for usage.`);
      return EXIT_USAGE;
    }
    if (error instanceof AddressInUseError) {
      io.err(`tallyho: ${error.message}`);
      return EXIT_FAILURE;
    }
    // Anything else is a bug in tallyho, never the user's mistake: say so, with the stack.
    io.err(
      `tallyho: internal error (a bug; please report it): ${
        (error as Error).stack ?? String(error)
      }`,
    );
    return EXIT_FAILURE;
  }
}

function printUsage(io: CliIo): number {
  io.out(usage());
  return 0;
}
