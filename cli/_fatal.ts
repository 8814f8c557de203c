/**
 * How the command line reports an error that ends it: one line and an exit code, written in the
 * log format `serve` was asked for, so that `--log-format json` (or the config file's
 * `"log-format": "json"`) covers a start-up failure too (a bad flag value, a busy port, a bad
 * config file, a number source that cannot be reached) and a log collector gets one JSON object
 * rather than a stray text line.
 *
 * @module
 */

import { ProcessStartError } from "../server/process/process_start_error.ts";
import { AddressInUseError } from "../server/host/address_in_use_error.ts";
import { ConfigError } from "../server/common/config_error.ts";
import { CONFIG_FILE_MAX_BYTES, ConfigFileError } from "../server/config/config_json.ts";
import { EtcdLeaseError } from "../server/lease/sources/etcd/etcd_lease_error.ts";
import { RedisLeaseError } from "../server/lease/sources/redis/redis_lease_error.ts";
import { RedisPasswordError } from "../server/lease/sources/redis/redis_password.ts";
import { StateFileError } from "../server/lease/sources/state_file/state_file.ts";
import { UpgradeFailedError } from "../server/process/upgrade_handover.ts";
import { readRegularFile } from "../server/host/regular_file.ts";
import { formatStartFailure, type LogFormat } from "../server/log_line.ts";
import { type CliIo, EXIT_FAILURE, EXIT_USAGE, UsageError } from "./_io.ts";

const HELP_HINT = "Run 'tallyho --help' for usage.";

/**
 * The log format a `serve` command line asks for, read without judging anything else in it, for
 * an error that ends it before the configuration is read: the last `--log-format`, or else the
 * `--config` file's `"log-format"`. Only `json` exactly gives json: where the format itself is
 * what is wrong (`--log-format xml`), or the file cannot be read, the error is plain text, the
 * one format every reader takes.
 *
 * @param args The arguments after the command.
 * @returns `json` or `text`.
 */
export function logFormatAsked(args: readonly string[]): LogFormat {
  let flag: string | undefined;
  let configFile: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") break;
    const [name, inline] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg] : [arg, null];
    if (name !== "--log-format" && name !== "--config") continue;
    const value = inline === null ? args[++i] : inline.slice(name.length + 1);
    if (name === "--log-format") flag = value;
    else configFile = value;
  }
  if (flag !== undefined) return flag === "json" ? "json" : "text";
  if (configFile === undefined) return "text";
  try {
    const json = JSON.parse(
      new TextDecoder().decode(readRegularFile(configFile, CONFIG_FILE_MAX_BYTES)),
    ) as unknown;
    const value = typeof json === "object" && json !== null
      ? (json as Record<string, unknown>)["log-format"]
      : undefined;
    return value === "json" ? "json" : "text";
  } catch {
    return "text"; // The error being reported says what is wrong with the file.
  }
}

/**
 * Writes the error that ends a command and says the exit code: a user's mistake (a usage or
 * configuration error) 2, a failure to serve 1, anything else a bug, 1 with its stack.
 *
 * @param error What was thrown.
 * @param io Where to write.
 * @param format The log format asked for ({@linkcode logFormatAsked}); `text` for commands
 *   other than serve.
 * @returns The exit code.
 */
export function reportFailure(error: unknown, io: CliIo, format: LogFormat): number {
  const fail = (code: number, fields: Record<string, string | number>, hint = false) => {
    const message = (error as Error).message;
    if (format === "text") {
      io.err(`tallyho: ${message}`);
      if (hint) io.err(HELP_HINT);
    } else {
      io.err(formatStartFailure("json", message, {
        ...fields,
        exitCode: code,
        ...(hint ? { hint: HELP_HINT } : {}),
      }));
    }
    return code;
  };
  if (error instanceof StateFileError) return fail(EXIT_FAILURE, { error: "state-file" });
  if (error instanceof RedisLeaseError || error instanceof RedisPasswordError) {
    return fail(EXIT_FAILURE, { error: "numbers", key: "numbers" });
  }
  if (error instanceof EtcdLeaseError) {
    return fail(EXIT_FAILURE, { error: "numbers", key: "numbers" });
  }
  if (error instanceof UpgradeFailedError) return fail(EXIT_FAILURE, { error: "upgrade" });
  if (error instanceof ProcessStartError) return fail(EXIT_FAILURE, { error: "process-start" });
  if (error instanceof ConfigFileError) {
    // The file is the problem, and the line names it and the key: --help would not help.
    return fail(EXIT_USAGE, {
      error: "config-file",
      ...(error.file === undefined ? {} : { file: error.file }),
      ...(error.field === undefined ? {} : { key: error.field }),
    });
  }
  if (error instanceof ConfigError) {
    return fail(EXIT_USAGE, {
      error: "config",
      ...(error.field === undefined ? {} : { key: error.field }),
    }, true);
  }
  if (error instanceof UsageError) return fail(EXIT_USAGE, { error: "usage" }, true);
  if (error instanceof AddressInUseError) {
    return fail(EXIT_FAILURE, {
      error: "address-in-use",
      ...(error.key === undefined ? {} : { key: error.key }),
    });
  }
  // Anything else is a bug in tallyho, never the user's mistake: say so, with the stack.
  const stack = (error as Error | null)?.stack ?? String(error);
  const bug = `internal error (a bug; please report it): ${stack}`;
  if (format === "text") io.err(`tallyho: ${bug}`);
  else {
    io.err(formatStartFailure(
      "json",
      `internal error (a bug; please report it): ${
        String(
          (error as Error | null)?.message ?? error,
        )
      }`,
      { error: "internal", exitCode: EXIT_FAILURE, stack },
    ));
  }
  return EXIT_FAILURE;
}
