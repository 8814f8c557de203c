/**
 * The server's configuration: its shape, its defaults and its validation.
 *
 * Everything a caller may set is optional in {@linkcode ServeOptions}; {@linkcode resolveConfig}
 * fills the defaults and rejects a bad value with an error that names the field, its bounds and
 * what was given, before anything is started.
 *
 * @module
 */

import { parseRedisUrl } from "./lease/redis_url.ts";

/** How incoming bytes are cut into messages. */
export type Framing = "chunk" | "line";
/** Whether a connection keeps one number or every reply takes a new one. */
export type NumberBy = "connection" | "message";

/** Largest number tallyho hands out: beyond it a JavaScript number is no longer exact. */
export const MAX_NUMBER = Number.MAX_SAFE_INTEGER;

/** Options for {@linkcode resolveConfig}; every field is optional. */
export interface ServeOptions {
  /**
   * Address to listen on.
   * @default {"0.0.0.0"}
   */
  host?: string;
  /**
   * TCP port; `0` picks a free one (the bound port is reported at start).
   * @default {9000}
   */
  port?: number;
  /**
   * Worker threads per process, each with its own listener on the port (SO_REUSEPORT).
   * @default {the number of cores}
   */
  threads?: number;
  /**
   * `chunk`: every read that delivers data is one message. `line`: every `\n`-ended line is one.
   * @default {"chunk"}
   */
  framing?: Framing;
  /**
   * `connection`: a connection takes its number with its first message and keeps it.
   * `message`: every reply takes a new number.
   * @default {"connection"}
   */
  numberBy?: NumberBy;
  /**
   * Text sent before the number in every reply.
   * @default {"Hello World"}
   */
  greeting?: string;
  /**
   * Longest line accepted in `line` framing, in bytes, without its `\n`; a longer one closes
   * that connection.
   * @default {65536}
   */
  maxLineBytes?: number;
  /**
   * The first number handed out.
   * @default {1}
   */
  firstNumber?: number;
  /**
   * Milliseconds a graceful stop waits for replies in flight before it closes what is left.
   * @default {10000}
   */
  drainTimeoutMs?: number;
  /**
   * Serving processes under the supervisor, each running `threads` threads on the port.
   * @default {1}
   */
  processes?: number;
  /**
   * File that records the numbering high-water mark durably, so a restart never repeats a
   * number; `null` keeps it in memory (numbers restart at `firstNumber` on the next start).
   * @default {null}
   */
  state?: string | null;
  /**
   * A Redis key that many servers lease their numbers from, as `redis://HOST:PORT/KEY` or
   * `rediss://HOST:PORT/KEY` (TLS), so that no two of them ever hand out the same number. Never
   * holds a password (see `numbersPasswordFile`). Cannot be set with `state`; `null` leaves the
   * numbers to `state` or to memory.
   * @default {null}
   */
  numbers?: string | null;
  /**
   * File holding the Redis password for `numbers` (one trailing line break is ignored). Without
   * it the password comes from the environment variable `TALLYHO_REDIS_PASSWORD`, if set.
   * @default {null}
   */
  numbersPasswordFile?: string | null;
  /**
   * PEM file of the certificate authority to trust for a `rediss://` `numbers` URL, for a Redis
   * whose certificate is not signed by a public CA; `null` trusts the runtime's usual CAs.
   * @default {null}
   */
  numbersCaFile?: string | null;
}

/** A fully resolved, validated configuration. */
export type ServeConfig = Required<ServeOptions>;

/** Bounds for the numeric options, shared by validation, usage text and (later) the admin API. */
export const LIMITS = {
  port: { min: 0, max: 65535 },
  threads: { min: 1, max: 256 },
  maxLineBytes: { min: 1, max: 64 * 1024 * 1024 },
  firstNumber: { min: 1, max: MAX_NUMBER },
  drainTimeoutMs: { min: 0, max: 3_600_000 },
  processes: { min: 1, max: 64 },
  greetingBytes: { min: 0, max: 1024 },
} as const;

/** The flag each option is set with on the command line, so errors speak the user's words. */
export const FLAG_NAMES: Record<keyof ServeOptions, string> = {
  host: "host",
  port: "port",
  threads: "threads",
  framing: "framing",
  numberBy: "number-by",
  greeting: "greeting",
  maxLineBytes: "max-line-bytes",
  firstNumber: "first-number",
  drainTimeoutMs: "drain-timeout",
  processes: "processes",
  state: "state",
  numbers: "numbers",
  numbersPasswordFile: "numbers-password-file",
  numbersCaFile: "numbers-ca-file",
};

/** Keys that only take effect when the listener is bound or the numbers are opened. */
export const RESTART_KEYS: ReadonlyArray<keyof ServeOptions> = [
  "host",
  "port",
  "firstNumber",
  "state",
  "numbers",
  "numbersPasswordFile",
  "numbersCaFile",
];

/**
 * Returns the defaults for this host.
 *
 * @param cores The number of cores to size the thread pool for.
 * @returns A complete configuration.
 */
export function defaultConfig(cores: number): ServeConfig {
  return {
    host: "0.0.0.0",
    port: 9000,
    threads: Math.max(1, Math.min(cores, LIMITS.threads.max)),
    framing: "chunk",
    numberBy: "connection",
    greeting: "Hello World",
    maxLineBytes: 64 * 1024,
    firstNumber: 1,
    drainTimeoutMs: 10_000,
    processes: 1,
    state: null,
    numbers: null,
    numbersPasswordFile: null,
    numbersCaFile: null,
  };
}

function integerIn(
  name: keyof typeof LIMITS & keyof ServeOptions,
  value: unknown,
): number {
  const { min, max } = LIMITS[name];
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `'${FLAG_NAMES[name]}' must be an integer from ${min} to ${max}: got ${describe(value)}`,
    );
  }
  return value;
}

function oneOf<T extends string>(name: keyof ServeOptions, value: unknown, choices: T[]): T {
  if (typeof value !== "string" || !(choices as string[]).includes(value)) {
    throw new RangeError(
      `'${FLAG_NAMES[name]}' must be one of ${choices.join(", ")}: got ${describe(value)}`,
    );
  }
  return value as T;
}

/**
 * Describes a value for an error message: strings quoted, everything else as JSON.
 *
 * @param value Anything a user gave.
 * @returns A short printable form.
 */
export function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || value === null) {
    return String(value);
  }
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? text.slice(0, 57) + "..." : text;
}

function stateFile(value: unknown): string | null {
  if (value === null) return null;
  if (typeof value !== "string" || value.length === 0) {
    throw new RangeError(`'state' must be a file path or null: got ${describe(value)}`);
  }
  return value;
}

function numbersUrl(value: unknown): string | null {
  if (value === null) return null;
  if (typeof value !== "string") {
    throw new RangeError(
      `'numbers' must be a redis://HOST:PORT/KEY URL or null: got ${describe(value)}`,
    );
  }
  parseRedisUrl(value);
  return value;
}

function numbersFile(
  name: "numbersPasswordFile" | "numbersCaFile",
  value: unknown,
  numbers: string | null,
): string | null {
  if (value === null) return null;
  const flag = FLAG_NAMES[name];
  if (typeof value !== "string" || value.length === 0) {
    throw new RangeError(`'${flag}' must be a file path or null: got ${describe(value)}`);
  }
  if (name === "numbersCaFile" && (numbers === null || !parseRedisUrl(numbers).tls)) {
    throw new RangeError(
      `'${flag}' is only used with a rediss:// (TLS) 'numbers' URL: got ${
        describe(value)
      } with numbers ${describe(numbers)}`,
    );
  }
  if (numbers === null) {
    throw new RangeError(
      `'${flag}' is only used with 'numbers' (a redis:// URL): got ${describe(value)} without it`,
    );
  }
  return value;
}

/**
 * Validates options and fills in defaults.
 *
 * @param options What the caller set; unknown keys are rejected.
 * @param base The configuration the options change (the defaults when omitted).
 * @returns The resolved configuration.
 * @throws {TypeError} When `options` is not an object or names an unknown key.
 * @throws {RangeError} When a value is out of its bounds; the message names the field.
 *
 * @example
 * ```ts
 * const config = resolveConfig({ port: 0, framing: "line" }, defaultConfig(2));
 * ```
 */
export function resolveConfig(options: ServeOptions, base: ServeConfig): ServeConfig {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new TypeError(`Options must be an object: got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!(key in FLAG_NAMES)) throw new TypeError(`Unknown option '${key}'`);
  }
  const merged = { ...base, ...options } as Record<keyof ServeConfig, unknown>;
  if (typeof merged.host !== "string" || merged.host.length === 0) {
    throw new RangeError(`'host' must be a non-empty address: got ${describe(merged.host)}`);
  }
  if (typeof merged.greeting !== "string") {
    throw new TypeError(`'greeting' must be a string: got ${describe(merged.greeting)}`);
  }
  const greetingBytes = new TextEncoder().encode(merged.greeting).length;
  if (greetingBytes > LIMITS.greetingBytes.max) {
    throw new RangeError(
      `'greeting' must be at most ${LIMITS.greetingBytes.max} bytes: got ${greetingBytes}`,
    );
  }
  if (/[\r\n]/.test(merged.greeting)) {
    throw new RangeError(
      `'greeting' must not contain a line break (it would break line framing): got ${
        describe(merged.greeting)
      }`,
    );
  }
  const state = stateFile(merged.state);
  const numbers = numbersUrl(merged.numbers);
  if (state !== null && numbers !== null) {
    throw new RangeError(
      `'state' and 'numbers' cannot both be set (numbers come from one place): got state ${
        describe(state)
      } and numbers ${describe(numbers)}`,
    );
  }
  return {
    host: merged.host,
    port: integerIn("port", merged.port),
    threads: integerIn("threads", merged.threads),
    framing: oneOf("framing", merged.framing, ["chunk", "line"]),
    numberBy: oneOf("numberBy", merged.numberBy, ["connection", "message"]),
    greeting: merged.greeting,
    maxLineBytes: integerIn("maxLineBytes", merged.maxLineBytes),
    firstNumber: integerIn("firstNumber", merged.firstNumber),
    drainTimeoutMs: integerIn("drainTimeoutMs", merged.drainTimeoutMs),
    processes: integerIn("processes", merged.processes),
    state,
    numbers,
    numbersPasswordFile: numbersFile("numbersPasswordFile", merged.numbersPasswordFile, numbers),
    numbersCaFile: numbersFile("numbersCaFile", merged.numbersCaFile, numbers),
  };
}
