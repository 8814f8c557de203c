/**
 * One log line, as text or as JSON (`--log-format`).
 *
 * Text: `<ISO time> <level> <message>`, the message as it always was (`tallyho: process 0
 * listening (pid 42)`), so anything that searches the text still finds it. JSON: one object a
 * line, `{"time", "level", "event", "message", "fields"}`.
 *
 * The event and its fields are read from the message by {@linkcode classifyLogLine}, one table
 * for every line the server writes, rather than at each call site: the call sites live in many
 * files (the supervisor, the children, the lease sources, the config keeper) that pass plain
 * text, and a line nobody named yet still comes out as event `log` rather than being lost. A
 * caller that knows a line's values (the limits, where the numbers come from) passes them as
 * fields beside the text.
 *
 * Field names are kebab-case in JSON, like every config key and flag (`delay-ms`,
 * `closed-peer-error`): {@linkcode formatLogLine} converts them in one place, so the call sites
 * and the table below keep the names of the code that counts them.
 *
 * @module
 */

import { escapeUnprintable } from "./common/printable.ts";

/** How log lines are written. */
export type LogFormat = "text" | "json";
/** The log formats, for validation. */
export const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];
/** How bad a line is. */
export type LogLineLevel = "info" | "warn" | "error";

/** The environment variable that carries the format to the child processes. */
export const LOG_FORMAT_ENV = "TALLYHO_LOG_FORMAT";

/** A line's event name and the figures it carries. */
export interface LogEvent {
  event: string;
  fields: Record<string, string | number>;
}

type Rule = [RegExp, string, ...string[]];

// The event for each kind of line, and names for its captured figures. First match wins.
const RULES: Rule[] = [
  [
    /^tallyho \S+ on (\S+) \S+: listening on (\S+):(\d+) with (\d+) process/,
    "start",
    "runtime",
    "host",
    "port",
    "processes",
  ],
  [/^stopped; last number handed out: (\d+)/, "stop", "lastNumber"],
  [/^(SIGTERM|SIGINT|SIGQUIT|admin drain): draining/, "stop_requested", "reason"],
  [/^stopping: (.*)$/, "stop_crash_loop", "reason"],
  [/^process (\d+) listening \(pid (\d+)\)/, "child_start", "process", "pid"],
  [
    /^process (\d+) \(pid (\d+)\) died \(([^)]*)\); restarting in (\d+) ms/,
    "child_restart",
    "process",
    "pid",
    "how",
    "delayMs",
  ],
  [/^thread (\d+) died \(([^)]*)\); restarting it/, "thread_restart", "thread", "how"],
  [/^threads are crashing in a loop/, "thread_crash_loop"],
  [/^threads: (\d+) -> (\d+)/, "threads_changed", "from", "to"],
  [/^configuration generation (\d+)/, "config_change", "generation"],
  [/^SIGHUP: .*generation (\d+)/, "config_reload", "generation"],
  [/^SIGHUP: /, "config_reload"],
  [
    /^cannot lease (\d+) numbers to process (\d+): (.*?)(?:; serving from|$)/,
    "lease_failed",
    "count",
    "process",
    "error",
  ],
  [
    /^cannot lease numbers(?: yet)?: (.*?)(?:; retrying|; refusing clients|$)/,
    "lease_failed",
    "error",
  ],
  [
    /^leasing numbers again from (.*) after (\d+) failed lease/,
    "lease_recovered",
    "source",
    "failedLeases",
  ],
  [
    /^lost the connection to Redis at (\S+) \((.*)\); reconnecting/,
    "lease_connection_lost",
    "target",
    "error",
  ],
  [/^reconnected to Redis at (\S+)/, "lease_connection_back", "target"],
  [/^numbers (?:continue from|are kept in memory)/, "numbers"],
  [/^admin API on (\S+)/, "admin_start", "url"],
  [/^limits per process: /, "limits"],
  [/^rejected and closed in the last ([\d.]+) s: /, "rejections", "seconds"],
  [/^listener (paused|resumed)/, "listener", "state"],
  [/^out of file descriptors/, "descriptors"],
  [/^file descriptors free again: .*\((\d+) refused\)/, "descriptors", "refused"],
  [/^TLS with (.*), valid until (\S+)$/, "tls", "subject", "notAfter"],
];

/**
 * Names a log line's event and reads its figures.
 *
 * @param message The line without the `tallyho: ` prefix (and without `warning: `).
 * @returns The event (`log` when no rule knows the line) and its fields.
 */
export function classifyLogLine(message: string): LogEvent {
  for (const [pattern, event, ...names] of RULES) {
    const match = pattern.exec(message);
    if (!match) continue;
    const fields: Record<string, string | number> = {};
    names.forEach((name, i) => {
      const value = match[i + 1]!;
      fields[name] = /^\d+$/.test(value) ? Number(value) : value;
    });
    return { event, fields };
  }
  return { event: "log", fields: {} };
}

/**
 * Formats one line.
 *
 * @param format `text` or `json`.
 * @param level How bad it is.
 * @param line The line as tallyho always wrote it (`tallyho: ...`, `tallyho[process 0]: ...`).
 * @param extra Fields the caller knows beyond those read from the line.
 * @param now The time to stamp.
 * @returns The line to write.
 */
export function formatLogLine(
  format: LogFormat,
  level: LogLineLevel,
  line: string,
  extra: Record<string, string | number> = {},
  now: Date = new Date(),
): string {
  // Whatever a line quotes (a greeting, a path, an error from elsewhere) shows as escapes: a
  // control character or line separator never reaches the terminal or the log reader raw.
  if (format === "text") return `${now.toISOString()} ${level} ${escapeUnprintable(line)}`;
  const source = /^tallyho\[process (\d+)\]: /.exec(line);
  const message = line.replace(/^tallyho(\[process \d+\])?: (warning: |error: )?/, "");
  const { event, fields } = classifyLogLine(message);
  return escapeUnprintable(JSON.stringify({
    time: now.toISOString(),
    level,
    event,
    message,
    fields: kebabKeys({ ...(source ? { process: Number(source[1]) } : {}), ...fields, ...extra }),
  }));
}

/**
 * Formats an error that ends a command before it serves (a bad flag value, a busy port, a number
 * source that cannot be reached): `tallyho: <message>` as it always read in text, or one JSON
 * object of the same shape as every other line (event `start_failed`, level `error`) in json.
 *
 * @param format `text` or `json`.
 * @param message What went wrong, without the `tallyho: ` prefix.
 * @param fields What failed (the option's key, the file), and the exit code.
 * @param now The time to stamp.
 * @returns The line to write.
 */
export function formatStartFailure(
  format: LogFormat,
  message: string,
  fields: Record<string, string | number>,
  now: Date = new Date(),
): string {
  if (format === "text") return `tallyho: ${message}`;
  return escapeUnprintable(JSON.stringify({
    time: now.toISOString(),
    level: "error",
    event: "start_failed",
    message,
    fields: kebabKeys(fields),
  }));
}

/** `delayMs` -> `delay-ms`, `closedPeerError` -> `closed-peer-error`; kebab-case stays. */
function kebabKeys(fields: Record<string, string | number>): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [key, value] of Object.entries(fields)) {
    out[key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)] = value;
  }
  return out;
}

/**
 * The format the child processes write in, from {@linkcode LOG_FORMAT_ENV}.
 *
 * @param env The environment.
 * @returns `json` when it says so, else `text`.
 */
export function logFormatFromEnv(env: Record<string, string | undefined>): LogFormat {
  return env[LOG_FORMAT_ENV] === "json" ? "json" : "text";
}
