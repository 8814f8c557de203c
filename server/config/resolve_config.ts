/**
 * The server's configuration: its shape, its defaults and its validation.
 *
 * Everything a caller may set is optional in {@linkcode ServeOptions}; {@linkcode resolveConfig}
 * fills the defaults and rejects a bad value with an error that names the field, its bounds and
 * what was given, before anything is started.
 *
 * @module
 */

import { CidrList } from "../limits/cidr_list.ts";
import { describe } from "../common/describe.ts";
import type { RuntimeCapabilities } from "../adapters/runtime_adapter.ts";
import { ConfigError, ConfigShapeError } from "../common/config_error.ts";
import type { HostFacts } from "../host/host_facts.ts";
import {
  BUDGET_BYTES_PER_CONNECTION,
  BUDGET_BYTES_PER_THREAD,
  defaultPerAddressCap,
  hostConnectionCap,
  RESERVED_FILES,
  THREADS_PER_CORE,
} from "./host_sizing.ts";
import {
  type KeysOfKind,
  OPTION_TABLE,
  type OptionType,
  SERVER_OPTION_ENTRIES,
} from "./option_table.ts";
import { isHostAddress } from "../host/host_address.ts";
import { firstUnprintable } from "../common/printable.ts";
import { isEtcdUrl, parseEtcdUrl } from "../lease/sources/etcd/etcd_url.ts";
import { parseRedisUrl } from "../lease/sources/redis/redis_url.ts";

/** How incoming bytes are cut into messages. */
export type Framing = "chunk" | "line";
/** Whether a connection keeps one number or every reply takes a new one. */
export type NumberBy = "connection" | "message";
/** Which log lines are written: `info` all, `warn` problems only, `error` failures only. */
export type LogLevel = "error" | "warn" | "info";

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
   * Most connections one process holds; over it a new connection is accepted and closed at once
   * (counted as `max_connections`). The default comes from the host: see {@linkcode HostFacts}.
   * @default {open-file limit - 256, or less where memory is short}
   */
  maxConnections?: number;
  /**
   * Most concurrent connections from one client address (0: no limit). With P processes each
   * process allows its share, `ceil(n / P)`. Unless set, it is derived from `maxConnections` and
   * `processes` (see {@linkcode defaultPerAddressCap}) so that one address can never hold every
   * connection and lock everyone else out; behind a load balancer or proxy every client shares
   * the balancer's few addresses, so set it (to 0, or to the connections one balancer may hold).
   * @default {a quarter of maxConnections x processes, at least 1}
   */
  maxConnectionsPerAddress?: number;
  /**
   * New connections per second one client address may open (0: no limit), as a token bucket.
   * With P processes each process allows `rate / P`.
   * @default {0}
   */
  connectionRate?: number;
  /**
   * Connections one address may open at once after a quiet spell (0: the same as the rate).
   * @default {0}
   */
  connectionBurst?: number;
  /**
   * Milliseconds a new connection may stay silent before it is closed (0: never).
   * @default {10000}
   */
  firstMessageTimeoutMs?: number;
  /**
   * Milliseconds a connection may stay idle, a line may stay unfinished, or a client may leave
   * replies unread before it is closed (0: never).
   * @default {60000}
   */
  idleTimeoutMs?: number;
  /**
   * Unsent reply bytes above which a connection stops being read (a client that does not read).
   * Replies owed are counted at the longest a reply can be; of them, at most this or 64 KiB,
   * whichever is less, is encoded and held in memory at a time.
   * @default {1048576}
   */
  maxPendingReplyBytes?: number;
  /**
   * Client ranges allowed to connect (CIDR); empty allows everyone not denied.
   * @default {[]}
   */
  allow?: string[];
  /**
   * Client ranges refused at once (CIDR); checked after `allow`.
   * @default {[]}
   */
  deny?: string[];
  /**
   * Whether connections from `proxyFrom` must start with a PROXY protocol header (v1 or v2); the
   * address in it is then the client for the allow/deny lists and the per-address cap and rate.
   * A connection from elsewhere that starts with a header is refused.
   * @default {false}
   */
  proxyProtocol?: boolean;
  /**
   * The load balancers trusted to send a PROXY header (CIDR); needed with `proxyProtocol`.
   * @default {[]}
   */
  proxyFrom?: string[];
  /**
   * Milliseconds a trusted balancer's connection may take to send its whole PROXY header.
   * @default {5000}
   */
  proxyHeaderTimeoutMs?: number;
  /**
   * PEM file of the certificate chain to serve TLS with; `null` serves plain TCP. Needs `tlsKey`.
   * Live: a change (to another file, or between TLS and plain) rebinds the listeners, and
   * connections already open keep the certificate they were served with.
   * @default {null}
   */
  tlsCert?: string | null;
  /**
   * PEM file of the certificate's private key; it should be readable by its owner only.
   * @default {null}
   */
  tlsKey?: string | null;
  /**
   * Which log lines are written. The start line and the stop line are always written.
   * @default {"info"}
   */
  logLevel?: LogLevel;
  /**
   * A Redis or etcd key that many servers lease their numbers from, as
   * `redis://HOST:PORT/DB?key=KEY`, `rediss://...` (TLS), or
   * `etcd://HOST:PORT[,HOST:PORT...]/KEY` (an etcd cluster's members), so that no two of them ever hand out the same number. Never holds a password (see
   * `numbersPasswordFile`). Cannot be set with `state`; `null` leaves the
   * numbers to `state` or to memory.
   * @default {null}
   */
  numbers?: string | null;
  /**
   * File holding the Redis password for `numbers`, or the etcd password of the URL's user (one
   * trailing line break is ignored). Without it a Redis password comes from the environment
   * variable `TALLYHO_REDIS_PASSWORD`, if set.
   * @default {null}
   */
  numbersPasswordFile?: string | null;
  /**
   * PEM file of the certificate authority to trust for a `rediss://` or `etcds://` `numbers`
   * URL, for a Redis or etcd members whose certificates no public CA signed; `null` trusts the
   * runtime's usual CAs.
   * @default {null}
   */
  numbersCaFile?: string | null;
  /**
   * PEM file of the client certificate to present to an `etcds://` cluster that asks for one
   * (etcd's `--client-cert-auth`); needs `numbersKeyFile`. `null` presents none.
   * @default {null}
   */
  numbersCertFile?: string | null;
  /**
   * PEM file of the client certificate's private key; it should be readable by its owner only.
   * @default {null}
   */
  numbersKeyFile?: string | null;
}

/** A fully resolved, validated configuration. */
export type ServeConfig = Required<ServeOptions>;

/**
 * The capabilities of a runtime that can do everything the configuration asks: what
 * {@linkcode resolveConfig} assumes unless told which runtime will serve.
 */
export const ANY_RUNTIME: RuntimeCapabilities = { tlsAfterProxyHeader: null };

type Bounds = { readonly min: number; readonly max: number };
type BoundedKey = KeysOfKind<"integer" | "duration"> & keyof ServeOptions;
type ChoiceKey = KeysOfKind<"choice"> & keyof ServeOptions;

/** Bounds for the numeric options (from the option table), and the greeting's bytes. */
export const LIMITS: { readonly [K in BoundedKey]: Bounds } & { readonly greetingBytes: Bounds } = {
  ...Object.fromEntries(
    SERVER_OPTION_ENTRIES.flatMap(([key, { type }]) =>
      type.kind === "integer" || type.kind === "duration"
        ? [[key, { min: type.min, max: type.max }]]
        : []
    ),
  ) as { readonly [K in BoundedKey]: Bounds },
  greetingBytes: { min: 0, max: OPTION_TABLE.greeting.type.maxBytes },
};

/** The values each choice option accepts (from the option table). */
export const CHOICES: { readonly [K in ChoiceKey]: readonly ServeConfig[K][] } = Object
  .fromEntries(
    SERVER_OPTION_ENTRIES.flatMap(([key, { type }]) =>
      type.kind === "choice" ? [[key, type.choices]] : []
    ),
  ) as { readonly [K in ChoiceKey]: readonly ServeConfig[K][] };

/** The flag each option is set with on the command line, so errors speak the user's words. */
export const FLAG_NAMES: Readonly<Record<keyof ServeOptions, string>> = Object.fromEntries(
  SERVER_OPTION_ENTRIES.map(([key, { flag }]) => [key, flag]),
) as Record<keyof ServeOptions, string>;

/** Keys whose values are durations (milliseconds inside, `10s` / `500ms` outside). */
export const DURATION_KEYS: ReadonlySet<keyof ServeOptions> = new Set(
  SERVER_OPTION_ENTRIES.filter(([, { type }]) => type.kind === "duration").map(([key]) => key),
);

/** Keys that only take effect when the listener is bound or the numbers are opened. */
export const RESTART_KEYS: ReadonlyArray<keyof ServeOptions> = SERVER_OPTION_ENTRIES.filter((
  [, { change }],
) => change === "restart").map(([key]) => key);

/**
 * Returns the defaults for this host (the option table's).
 *
 * @param cores The number of cores to size the thread pool for, or the host's facts.
 * @returns A complete configuration.
 */
export function defaultConfig(cores: number | HostFacts): ServeConfig {
  const host: HostFacts = typeof cores === "number"
    ? { cores, openFiles: 20_000, memoryBytes: 4 * 1024 ** 3 }
    : cores;
  const config: Record<string, unknown> = {};
  for (const [key, entry] of SERVER_OPTION_ENTRIES) {
    config[key] = typeof entry.default === "function" ? entry.default(host) : entry.default;
  }
  return config as ServeConfig;
}

function integerIn(
  name: keyof typeof LIMITS & keyof ServeOptions,
  value: unknown,
): number {
  const { min, max } = LIMITS[name];
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(
      FLAG_NAMES[name],
      `'${FLAG_NAMES[name]}' must be an integer from ${min} to ${max}: got ${describe(value)}`,
    );
  }
  return value;
}

function oneOf<T extends string>(
  name: keyof ServeOptions,
  value: unknown,
  choices: readonly T[],
): T {
  if (typeof value !== "string" || !(choices as readonly string[]).includes(value)) {
    throw new ConfigError(
      FLAG_NAMES[name],
      `'${FLAG_NAMES[name]}' must be one of ${choices.join(", ")}: got ${describe(value)}`,
    );
  }
  return value as T;
}

/**
 * A value checked against what its option's entry says it accepts. What involves another key
 * (`proxy-protocol` needs `proxy-from`) or more than the type (the host is an address, the URL one
 * tallyho can lease from) is checked by {@linkcode resolveConfig} itself.
 */
function ownValue(key: keyof ServeOptions, type: OptionType, value: unknown): unknown {
  const flag = FLAG_NAMES[key];
  switch (type.kind) {
    case "integer":
    case "duration":
      return integerIn(key as BoundedKey, value);
    case "choice":
      return oneOf(key, value, type.choices);
    case "cidr-list":
      return cidrs(key, value);
    case "boolean":
      if (typeof value !== "boolean") {
        throw new ConfigError(flag, `'${flag}' must be true or false: got ${describe(value)}`);
      }
      return value;
    case "path":
      if (value !== null && (typeof value !== "string" || value.length === 0)) {
        throw new ConfigError(
          flag,
          `'${flag}' must be a file path or null: got ${describe(value)}`,
        );
      }
      return value;
    case "string":
      if (typeof value !== "string") {
        throw new ConfigError(flag, `'${flag}' must be a string: got ${describe(value)}`);
      }
      return value;
    case "url":
      return value;
  }
}

function cidrs(option: keyof ServeOptions, value: unknown): string[] {
  const name = FLAG_NAMES[option];
  if (!Array.isArray(value) || value.some((item) => typeof item !== "string")) {
    throw new ConfigError(name, `'${name}' must be a list of CIDR ranges: got ${describe(value)}`);
  }
  try {
    new CidrList(value, name);
  } catch (error) {
    // The list's parser names the range that is not valid; it is the operator's value, not a bug.
    if (error instanceof RangeError) throw new ConfigError(name, error.message);
    throw error;
  }
  return [...value];
}

function proxySettings(
  protocol: unknown,
  from: unknown,
  timeout: unknown,
): Pick<ServeConfig, "proxyProtocol" | "proxyFrom" | "proxyHeaderTimeoutMs"> {
  if (typeof protocol !== "boolean") {
    throw new ConfigError(
      "proxy-protocol",
      `'proxy-protocol' must be true or false: got ${describe(protocol)}`,
    );
  }
  const proxyFrom = cidrs("proxyFrom", from);
  if (protocol && proxyFrom.length === 0) {
    // Trusting every address would let any client choose the address it is counted by.
    throw new ConfigError(
      "proxy-from",
      `'proxy-protocol' needs 'proxy-from', the load balancers' CIDR ranges trusted to send ` +
        `the header: got none (set for example --proxy-from 10.0.0.5/32)`,
    );
  }
  return {
    proxyProtocol: protocol,
    proxyFrom,
    proxyHeaderTimeoutMs: integerIn("proxyHeaderTimeoutMs", timeout),
  };
}

function tlsSettings(
  cert: unknown,
  key: unknown,
  proxyProtocol: unknown,
  capabilities: RuntimeCapabilities,
): Pick<ServeConfig, "tlsCert" | "tlsKey"> {
  const tlsAfterProxyHeader = capabilities.tlsAfterProxyHeader;
  for (const [flag, value] of [["tls-cert", cert], ["tls-key", key]] as const) {
    if (value !== null && (typeof value !== "string" || value.length === 0)) {
      throw new ConfigError(flag, `'${flag}' must be a file path or null: got ${describe(value)}`);
    }
  }
  if ((cert === null) !== (key === null)) {
    const [given, missing] = cert === null ? ["tls-key", "tls-cert"] : ["tls-cert", "tls-key"];
    throw new ConfigError(
      missing,
      `'${given}' needs '${missing}' (TLS takes a certificate and its key, both PEM files): got ` +
        `${given} ${describe(cert ?? key)} without ${missing}`,
    );
  }
  if (cert !== null && proxyProtocol === true && tlsAfterProxyHeader !== null) {
    // A balancer sends the header in the clear before the TLS handshake; this runtime cannot
    // start TLS on a connection after reading it (its adapter's capabilities say why).
    throw new ConfigError(
      "proxy-protocol",
      `'proxy-protocol' cannot be combined with 'tls-cert' on this runtime (the header comes ` +
        `before TLS, and ${tlsAfterProxyHeader}): got proxy-protocol true with tls-cert ` +
        `${describe(cert)}; run on Bun (or the compiled binary), let the balancer end TLS, or ` +
        `pass TLS through without the PROXY protocol`,
    );
  }
  return { tlsCert: cert as string | null, tlsKey: key as string | null };
}

/**
 * Lowers what the host cannot hold, with a warning for each that names the limit, what was asked
 * and how to raise it. Every route a configuration takes (command line, `--config`, SIGHUP, the
 * admin API) goes through this, through `planConfig`.
 *
 * - `max-connections`: at most the open-file limit less {@linkcode RESERVED_FILES}, and no more
 *   than half the memory at {@linkcode BUDGET_BYTES_PER_CONNECTION} each ({@linkcode hostConnectionCap}).
 * - `threads`: at most {@linkcode THREADS_PER_CORE} per core.
 * - `processes` x `threads`: at most half the memory at {@linkcode BUDGET_BYTES_PER_THREAD} a
 *   thread; `processes` is lowered to fit.
 *
 * @param config A resolved configuration.
 * @param host The host's facts.
 * @returns The configuration to run with, and the warnings.
 */
export function clampToHost(
  config: ServeConfig,
  host: HostFacts,
): { config: ServeConfig; warnings: string[] } {
  const warnings: string[] = [];
  // A per-address cap that is still the derived default follows what the clamps below leave.
  const derived = config.maxConnectionsPerAddress ===
    defaultPerAddressCap(config.maxConnections, config.processes);
  const cap = hostConnectionCap(host);
  if (config.maxConnections > cap) {
    const byFiles = Math.max(1, host.openFiles - RESERVED_FILES);
    warnings.push(
      `'max-connections' ${config.maxConnections} is above what this process can hold: using ${cap} (` +
        (cap === byFiles
          ? `open-file limit ${host.openFiles} less ${RESERVED_FILES} reserved). ` +
            `Raise it with 'ulimit -n' (or LimitNOFILE= in a systemd unit) and restart`
          : `half of ${Math.round(host.memoryBytes / 1024 ** 2)} MiB of memory at ` +
            `${BUDGET_BYTES_PER_CONNECTION / 1024} KiB a connection)`),
    );
    config = { ...config, maxConnections: cap };
  }
  const threadCap = Math.max(1, Math.min(host.cores * THREADS_PER_CORE, LIMITS.threads.max));
  if (config.threads > threadCap) {
    warnings.push(
      `'threads' ${config.threads} is more than ${THREADS_PER_CORE} per core on this ` +
        `${host.cores}-core host: using ${threadCap} (threads beyond the cores only add ` +
        `context switches)`,
    );
    config = { ...config, threads: threadCap };
  }
  const totalThreads = Math.max(
    1,
    Math.floor(host.memoryBytes / 2 / BUDGET_BYTES_PER_THREAD),
  );
  if (config.processes * config.threads > totalThreads) {
    const processes = Math.max(1, Math.floor(totalThreads / config.threads));
    warnings.push(
      `'processes' ${config.processes} x 'threads' ${config.threads} is more serving threads ` +
        `than half of this host's ${Math.round(host.memoryBytes / 1024 ** 2)} MiB holds at ` +
        `${BUDGET_BYTES_PER_THREAD / 1024 ** 2} MiB a thread (${totalThreads}): using ` +
        `${processes} process${processes === 1 ? "" : "es"}`,
    );
    config = { ...config, processes };
  }
  if (derived) {
    config = {
      ...config,
      maxConnectionsPerAddress: defaultPerAddressCap(config.maxConnections, config.processes),
    };
  }
  return { config, warnings };
}

function stateFile(value: unknown): string | null {
  if (value === null) return null;
  if (typeof value !== "string" || value.length === 0) {
    throw new ConfigError("state", `'state' must be a file path or null: got ${describe(value)}`);
  }
  return value;
}

function numbersUrl(value: unknown): string | null {
  if (value === null) return null;
  if (typeof value !== "string") {
    throw new ConfigError(
      "numbers",
      `'numbers' must be a redis://HOST:PORT/DB?key=KEY or etcd://HOST:PORT/KEY URL or null: got ${
        describe(value)
      }`,
    );
  }
  try {
    if (isEtcdUrl(value)) parseEtcdUrl(value);
    else parseRedisUrl(value);
  } catch (error) {
    // The URL parser says what is wrong with the operator's URL (never its password).
    if (error instanceof RangeError) throw new ConfigError("numbers", error.message);
    throw error;
  }
  return value;
}

function numbersFile(
  name: "numbersPasswordFile" | "numbersCaFile" | "numbersCertFile" | "numbersKeyFile",
  value: unknown,
  numbers: string | null,
): string | null {
  if (value === null) return null;
  const flag = FLAG_NAMES[name];
  if (typeof value !== "string" || value.length === 0) {
    throw new ConfigError(flag, `'${flag}' must be a file path or null: got ${describe(value)}`);
  }
  const tls = numbers !== null &&
    (isEtcdUrl(numbers) ? parseEtcdUrl(numbers).tls : parseRedisUrl(numbers).tls);
  // A client certificate is etcd's only: the Redis client is not given one (not asked for yet).
  const clientSide = name === "numbersCertFile" || name === "numbersKeyFile";
  if (
    name !== "numbersPasswordFile" &&
    (!tls || (clientSide && !isEtcdUrl(numbers!)))
  ) {
    throw new ConfigError(
      flag,
      `'${flag}' is only used with ${
        clientSide ? "an etcds://" : "a rediss:// or etcds://"
      } (TLS) 'numbers' URL: got ${describe(value)} with numbers ${describe(numbers)}`,
    );
  }
  if (numbers === null) {
    throw new ConfigError(
      flag,
      `'${flag}' is only used with 'numbers' (a redis:// or etcd:// URL): got ${
        describe(value)
      } without it`,
    );
  }
  return value;
}

/** The client certificate for `etcds://`: both files or neither, and only with that URL. */
function clientCertificate(
  cert: unknown,
  key: unknown,
  numbers: string | null,
): { numbersCertFile: string | null; numbersKeyFile: string | null } {
  const certFile = numbersFile("numbersCertFile", cert, numbers);
  const keyFile = numbersFile("numbersKeyFile", key, numbers);
  if ((certFile === null) !== (keyFile === null)) {
    const [given, missing] = certFile === null
      ? ["numbers-key-file", "numbers-cert-file"]
      : ["numbers-cert-file", "numbers-key-file"];
    throw new ConfigError(
      missing,
      `'${given}' needs '${missing}' (a client certificate and its key go together): got ${
        describe(certFile ?? keyFile)
      } alone`,
    );
  }
  return { numbersCertFile: certFile, numbersKeyFile: keyFile };
}

/**
 * Validates options and fills in defaults.
 *
 * @param options What the caller set; unknown keys are rejected.
 * @param base The configuration the options change (the defaults when omitted).
 * @param capabilities What the runtime that will serve it can do (its adapter's); a runtime
 *   that cannot start TLS after a PROXY header refuses the two together.
 * @returns The resolved configuration.
 * @throws {ConfigShapeError} When `options` is not an object or names an unknown key.
 * @throws {ConfigError} When a value is out of its bounds; the message names the field.
 *
 * @example
 * ```ts
 * const config = resolveConfig({ port: 0, framing: "line" }, defaultConfig(2));
 * ```
 */
export function resolveConfig(
  options: ServeOptions,
  base: ServeConfig,
  capabilities: RuntimeCapabilities = ANY_RUNTIME,
): ServeConfig {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new ConfigShapeError(undefined, `Options must be an object: got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!(key in FLAG_NAMES)) throw new ConfigShapeError(key, `Unknown option '${key}'`);
  }
  const merged = { ...base, ...options } as Record<keyof ServeConfig, unknown>;
  if (typeof merged.host !== "string" || !isHostAddress(merged.host)) {
    throw new ConfigError(
      "host",
      `'host' must be an IPv4 or IPv6 address or a host name: got ${describe(merged.host)}`,
    );
  }
  if (typeof merged.greeting !== "string") {
    throw new ConfigError(
      "greeting",
      `'greeting' must be a string: got ${describe(merged.greeting)}`,
    );
  }
  const greetingBytes = new TextEncoder().encode(merged.greeting).length;
  if (greetingBytes > LIMITS.greetingBytes.max) {
    throw new ConfigError(
      "greeting",
      `'greeting' must be at most ${LIMITS.greetingBytes.max} bytes: got ${greetingBytes}`,
    );
  }
  if (/[\r\n]/.test(merged.greeting)) {
    throw new ConfigError(
      "greeting",
      `'greeting' must not contain a line break (it would break line framing): got ${
        describe(merged.greeting)
      }`,
    );
  }
  // It goes raw to every client: no terminal controls, invisible line breaks or reordering.
  const unprintable = firstUnprintable(merged.greeting);
  if (unprintable !== null) {
    throw new ConfigError(
      "greeting",
      `'greeting' must be printable text: no control characters, line or paragraph ` +
        `separators, bidirectional controls or lone surrogates: got ${
          describe(merged.greeting)
        }, which holds ${unprintable.codePoint} at character ${unprintable.index + 1}`,
    );
  }
  const state = stateFile(merged.state);
  const numbers = numbersUrl(merged.numbers);
  const maxConnections = integerIn("maxConnections", merged.maxConnections);
  const processes = integerIn("processes", merged.processes);
  // The per-address cap follows the connection cap and the process count while it is the derived
  // default: the base's is, and the options leave it unset or at that same value (a PATCH merges
  // the whole current configuration, so it passes the derived value back unchanged).
  const baseDerived = defaultPerAddressCap(base.maxConnections, base.processes);
  if (
    base.maxConnectionsPerAddress === baseDerived &&
    (options.maxConnectionsPerAddress === undefined ||
      options.maxConnectionsPerAddress === baseDerived)
  ) {
    merged.maxConnectionsPerAddress = defaultPerAddressCap(maxConnections, processes);
  }
  if (state !== null && numbers !== null) {
    throw new ConfigError(
      "numbers",
      `'state' and 'numbers' cannot both be set (numbers come from one place): got state ${
        describe(state)
      } and numbers ${describe(numbers)}`,
    );
  }
  // Each key's own value, as its entry in the option table says; then what involves other keys.
  const own: Record<string, unknown> = {};
  for (const [key, { type }] of SERVER_OPTION_ENTRIES) own[key] = ownValue(key, type, merged[key]);
  return {
    ...own as ServeConfig,
    host: merged.host,
    greeting: merged.greeting,
    processes,
    state,
    numbers,
    numbersPasswordFile: numbersFile("numbersPasswordFile", merged.numbersPasswordFile, numbers),
    numbersCaFile: numbersFile("numbersCaFile", merged.numbersCaFile, numbers),
    ...clientCertificate(merged.numbersCertFile, merged.numbersKeyFile, numbers),
    maxConnections,
    ...proxySettings(merged.proxyProtocol, merged.proxyFrom, merged.proxyHeaderTimeoutMs),
    ...tlsSettings(merged.tlsCert, merged.tlsKey, merged.proxyProtocol, capabilities),
  };
}
