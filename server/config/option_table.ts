/**
 * Every option of `tallyho serve`, declared once: its flag, what it accepts, its default (from
 * the host where it depends on it), whether a running server can change it, and its text in
 * `--help` and in the reference table of docs/configuration.md. Everything else is derived from
 * this table: `LIMITS`, `CHOICES`, `FLAG_NAMES`, `DURATION_KEYS`, `RESTART_KEYS` and
 * `defaultConfig` (config.ts), the flag parser and `--help` (cli/), the `--config` file and
 * PATCH keys (config_json.ts), the admin API's schema (admin/config_schema.ts) and the docs'
 * reference table (option_reference.ts, held to the docs by tests/docs_test.ts).
 *
 * Adding an option: a field of `ServeOptions` (config.ts; the table does not compile without its
 * entry), its entry here, and its behaviour. A check that involves more than the key's own value
 * (a key that needs another) goes in `resolveConfig`.
 *
 * The order is `--help`'s, and that of the configuration's JSON (`GET /v1/config`, the schema).
 *
 * @module
 */

import { MAX_NUMBER } from "../common/max_number.ts";
import type { Framing, LogLevel, NumberBy, ServeConfig } from "./resolve_config.ts";
import type { HostFacts } from "../host/host_facts.ts";
import { LOG_FORMATS } from "../log_line.ts";
import {
  CONNECTIONS_MAX,
  defaultPerAddressCap,
  hostConnectionCap,
  THREADS_MAX,
} from "./host_sizing.ts";

/** What an option accepts. */
export type OptionType =
  /** An integer from `min` to `max`. */
  | { readonly kind: "integer"; readonly min: number; readonly max: number }
  /** A duration (`10s`, `500ms`; a bare number is seconds), `min` to `max` milliseconds. */
  | { readonly kind: "duration"; readonly min: number; readonly max: number }
  /** One of `choices`. */
  | { readonly kind: "choice"; readonly choices: readonly string[] }
  /** Text of at most `maxBytes` UTF-8 bytes (no limit when absent). */
  | { readonly kind: "string"; readonly maxBytes?: number }
  /** true or false; a switch on the command line. */
  | { readonly kind: "boolean" }
  /** CIDR ranges: comma-separated on the command line, a JSON array elsewhere. */
  | { readonly kind: "cidr-list" }
  /** A file path, or null for none. */
  | { readonly kind: "path" }
  /** A URL, or null for none. */
  | { readonly kind: "url" };

/**
 * When a change of the option takes effect. `live`: on a running server (`PATCH /v1/config`,
 * SIGHUP); `restart`: at the next start (a change is refused while running); `start`: a setting
 * of the command line, not of the server, read once at start (the admin API neither shows nor
 * takes it).
 */
export type OptionChange = "live" | "restart" | "start";

/** One row of the reference table in docs/configuration.md. */
export interface OptionDocs {
  /** The default column, Markdown. */
  readonly default: string;
  /** The bounds column, Markdown. */
  readonly bounds: string;
}

/** One option. */
export interface OptionEntry {
  /** Its flag without `--`, and its key in the `--config` file and the admin API. */
  readonly flag: string;
  /** What it accepts. */
  readonly type: OptionType;
  /** When a change takes effect. */
  readonly change: OptionChange;
  /**
   * Its lines in `--help`, as printed (two spaces, the flag, its text); `null` where the entry
   * before describes this one in its lines.
   */
  readonly usage: string | null;
  /**
   * Its row in the reference table; `"with previous"` where it shares the row of the entry
   * before, `null` where it has none (`--config`, a flag only).
   */
  readonly docs: OptionDocs | "with previous" | null;
}

/** An option of the server's configuration: it has a default. */
export interface ServerOptionEntry<T> extends OptionEntry {
  readonly change: "live" | "restart";
  /** The default, or how the host's facts give it. */
  readonly default: T | ((host: HostFacts) => T);
}

/** An option of the command line only (`--admin`, `--log-format`, `--config`). */
export interface CliOptionEntry extends OptionEntry {
  readonly change: "start";
  /** The default, as it would be written on the command line; none where unset means none. */
  readonly default?: string;
}

type Table =
  & { readonly [K in keyof ServeConfig]: ServerOptionEntry<ServeConfig[K]> }
  & { readonly [key: string]: ServerOptionEntry<unknown> | CliOptionEntry };

const DURATION_TEXT =
  "                          500ms, 10s, 5m or 1h, and a bare number is seconds";

/** The options, in `--help`'s order. */
export const OPTION_TABLE = {
  host: {
    flag: "host",
    type: { kind: "string" },
    default: "0.0.0.0",
    change: "restart",
    usage: "  --host ADDRESS          address to listen on (default 0.0.0.0)",
    docs: { default: "`0.0.0.0` (`npm start`: `127.0.0.1`)", bounds: "an address" },
  },
  port: {
    flag: "port",
    type: { kind: "integer", min: 0, max: 65535 },
    default: 9000,
    change: "restart",
    usage: "  --port PORT             TCP port, 0-65535; 0 picks a free one (default 9000)",
    docs: { default: "`9000`", bounds: "0 to 65535; 0 picks a free port" },
  },
  threads: {
    flag: "threads",
    type: { kind: "integer", min: 1, max: THREADS_MAX },
    default: (host: HostFacts) => Math.max(1, Math.min(host.cores, THREADS_MAX)),
    change: "live",
    usage:
      "  --threads N             worker threads, each listening with SO_REUSEPORT (default: cores)",
    docs: { default: "the cores", bounds: "1 to 256, at most 4 per core" },
  },
  framing: {
    flag: "framing",
    type: { kind: "choice", choices: ["chunk", "line"] satisfies Framing[] },
    default: "chunk",
    change: "live",
    usage:
      "  --framing MODE          chunk: each read is one message; line: each \\n-ended line is (default chunk)",
    docs: { default: "`chunk`", bounds: "`chunk`, `line`" },
  },
  numberBy: {
    flag: "number-by",
    type: { kind: "choice", choices: ["connection", "message"] satisfies NumberBy[] },
    default: "connection",
    change: "live",
    usage:
      "  --number-by MODE        connection: a client keeps its N; message: every reply takes a new N\n" +
      "                          (default connection)",
    docs: { default: "`connection`", bounds: "`connection`, `message`" },
  },
  greeting: {
    flag: "greeting",
    type: { kind: "string", maxBytes: 1024 },
    default: "Hello World",
    change: "live",
    usage: '  --greeting TEXT         text before the number (default "Hello World")',
    docs: { default: "`Hello World`", bounds: "at most 1024 bytes, printable" },
  },
  maxLineBytes: {
    flag: "max-line-bytes",
    type: { kind: "integer", min: 1, max: 64 * 1024 * 1024 },
    default: 64 * 1024,
    change: "live",
    usage:
      "  --max-line-bytes N      longest line in line framing; longer closes the connection (default 65536)",
    docs: { default: "`65536`", bounds: "1 to 67108864" },
  },
  firstNumber: {
    flag: "first-number",
    type: { kind: "integer", min: 1, max: MAX_NUMBER },
    default: 1,
    change: "restart",
    usage: "  --first-number N        first number handed out, 1 to 2^53-1 (default 1)",
    docs: { default: "`1`", bounds: "1 to 2^53 - 1" },
  },
  drainTimeoutMs: {
    flag: "drain-timeout",
    type: { kind: "duration", min: 0, max: 3_600_000 },
    default: 10_000,
    change: "live",
    usage:
      "  --drain-timeout TIME    how long a graceful stop waits, at most 1h (default 10s); TIME is\n" +
      DURATION_TEXT,
    docs: { default: "`10s`", bounds: "0 to 1 h" },
  },
  processes: {
    flag: "processes",
    type: { kind: "integer", min: 1, max: 64 },
    default: 1,
    change: "live",
    usage: "  --processes N           serving processes under one supervisor, 1-64 (default 1)",
    docs: { default: "`1`", bounds: "1 to 64" },
  },
  maxConnections: {
    flag: "max-connections",
    type: { kind: "integer", min: 1, max: CONNECTIONS_MAX },
    default: hostConnectionCap,
    change: "live",
    usage: "  --max-connections N     connections one process holds; more are closed at once\n" +
      "                          (default: the open-file limit less 256, or less if memory is short)",
    docs: { default: "open files - 256, or less (see below)", bounds: "1 to 10,000,000" },
  },
  maxConnectionsPerAddress: {
    flag: "max-connections-per-address",
    type: { kind: "integer", min: 0, max: CONNECTIONS_MAX },
    // The processes' default is 1; resolveConfig derives it again while it keeps this value.
    default: (host: HostFacts) => defaultPerAddressCap(hostConnectionCap(host), 1),
    change: "live",
    usage:
      "  --max-connections-per-address N   concurrent connections per client address (default: a quarter\n" +
      "                                    of max-connections x processes; 0: off)",
    docs: { default: "a quarter (see below)", bounds: "0 (off) to 10,000,000" },
  },
  connectionRate: {
    flag: "connection-rate",
    type: { kind: "integer", min: 0, max: CONNECTIONS_MAX },
    default: 0,
    change: "live",
    usage:
      "  --connection-rate N     new connections per second per client address (default 0: off)",
    docs: { default: "`0` (off)", bounds: "0 to 10,000,000 per second" },
  },
  connectionBurst: {
    flag: "connection-burst",
    type: { kind: "integer", min: 0, max: CONNECTIONS_MAX },
    default: 0,
    change: "live",
    usage: "  --connection-burst N    connections an address may open at once (default: the rate)",
    docs: { default: "the rate", bounds: "0 to 10,000,000" },
  },
  firstMessageTimeoutMs: {
    flag: "first-message-timeout",
    type: { kind: "duration", min: 0, max: 86_400_000 },
    default: 10_000,
    change: "live",
    usage:
      "  --first-message-timeout TIME   close a connection silent this long (default 10s; 0 off)",
    docs: { default: "`10s`", bounds: "0 (off) to 24 h" },
  },
  idleTimeoutMs: {
    flag: "idle-timeout",
    type: { kind: "duration", min: 0, max: 86_400_000 },
    default: 60_000,
    change: "live",
    usage:
      "  --idle-timeout TIME     close a connection idle, mid-line or not reading this long (default 60s)",
    docs: { default: "`60s`", bounds: "0 (off) to 24 h" },
  },
  maxPendingReplyBytes: {
    flag: "max-pending-reply-bytes",
    type: { kind: "integer", min: 1024, max: 1024 * 1024 * 1024 },
    default: 1024 * 1024,
    change: "live",
    usage:
      "  --max-pending-reply-bytes N    unsent replies above which a connection stops being read\n" +
      "                          (default 1048576)",
    docs: { default: "`1048576`", bounds: "1024 to 1 GiB" },
  },
  logLevel: {
    flag: "log-level",
    type: { kind: "choice", choices: ["error", "warn", "info"] satisfies LogLevel[] },
    default: "info",
    change: "live",
    usage:
      "  --log-level LEVEL       info, warn (problems only) or error (default info); the start and\n" +
      "                          stop lines are always written",
    docs: { default: "`info`", bounds: "`info`, `warn`, `error`" },
  },
  pidFile: {
    flag: "pid-file",
    type: { kind: "path" },
    change: "start",
    usage:
      "  --pid-file FILE         write the supervisor's pid there once it serves (an upgrade moves it\n" +
      "                          to the new supervisor; removed on stop): 'tallyho reload|stop|upgrade\n" +
      "                          --pid-file FILE' find the server by it",
    docs: { default: "none", bounds: "a file path" },
  },
  logFormat: {
    flag: "log-format",
    type: { kind: "choice", choices: LOG_FORMATS },
    default: "text",
    change: "start",
    usage:
      "  --log-format FORMAT     text: an ISO time and the level before each line; json: one object\n" +
      "                          a line {time, level, event, message, fields} (default text)",
    docs: { default: "`text`", bounds: "`text`, `json`" },
  },
  logRejectionsEvery: {
    flag: "log-rejections-every",
    type: { kind: "duration", min: 0, max: 86_400_000 },
    default: "10s",
    change: "start",
    usage:
      "  --log-rejections-every TIME   sum up refused and closed connections by reason at most this\n" +
      "                          often, one line per period, never one per connection (default 10s; 0 off)",
    docs: { default: "`10s`", bounds: "a duration; 0 off" },
  },
  admin: {
    flag: "admin",
    type: { kind: "string" },
    default: "127.0.0.1:9001",
    change: "start",
    usage:
      "  --admin HOST:PORT|off   the admin HTTP API (default 127.0.0.1:9001); a non-loopback address\n" +
      "                          needs a configured token",
    docs: { default: "`127.0.0.1:9001`", bounds: "`HOST:PORT` or `off`" },
  },
  adminAllowedHosts: {
    flag: "admin-allowed-hosts",
    type: { kind: "string" },
    change: "start",
    usage:
      "  --admin-allowed-hosts NAME[:PORT],...   more Host names the admin API answers (a DNS or\n" +
      "                          service name Prometheus scrapes by); without a port, on any port",
    docs: {
      default: "none: the admin address, localhost, 127.0.0.1 and [::1]",
      bounds: "names, comma-separated",
    },
  },
  adminTokenFile: {
    flag: "admin-token-file",
    type: { kind: "path" },
    change: "start",
    usage:
      "  --admin-token-file FILE the admin API's bearer token (or set TALLYHO_ADMIN_TOKEN); without\n" +
      "                          either, one is generated into a file only its owner can read, which\n" +
      "                          'tallyho admin-token --path' names",
    docs: {
      default: "none (see [token](admin-api.md#security-model))",
      bounds: "a file path",
    },
  },
  allow: {
    flag: "allow",
    type: { kind: "cidr-list" },
    default: () => [],
    change: "live",
    usage: "  --allow CIDR,...        only these client ranges may connect (default: all)",
    docs: { default: "all allowed, none denied", bounds: "CIDR ranges, IPv4 and IPv6" },
  },
  deny: {
    flag: "deny",
    type: { kind: "cidr-list" },
    default: () => [],
    change: "live",
    usage: "  --deny CIDR,...         client ranges refused at once (default: none)",
    docs: "with previous",
  },
  proxyProtocol: {
    flag: "proxy-protocol",
    type: { kind: "boolean" },
    default: false,
    change: "live",
    usage:
      "  --proxy-protocol        connections from --proxy-from must start with a PROXY v1 or v2 header,\n" +
      "                          whose address is the client for every per-address limit (default off)",
    docs: { default: "`false`", bounds: "`true`, `false`" },
  },
  proxyFrom: {
    flag: "proxy-from",
    type: { kind: "cidr-list" },
    default: () => [],
    change: "live",
    usage:
      "  --proxy-from CIDR,...   the load balancers trusted to send the header (needed with the above)",
    docs: { default: "none", bounds: "CIDR ranges; needed with the above" },
  },
  proxyHeaderTimeoutMs: {
    flag: "proxy-header-timeout",
    type: { kind: "duration", min: 1, max: 3_600_000 },
    default: 5000,
    change: "live",
    usage:
      "  --proxy-header-timeout TIME    close a balancer's connection whose header is not whole by then\n" +
      "                          (default 5s)",
    docs: { default: "`5s`", bounds: "1 ms to 1 h" },
  },
  tlsCert: {
    flag: "tls-cert",
    type: { kind: "path" },
    default: null,
    change: "live",
    usage: "  --tls-cert FILE         serve TLS with this PEM certificate chain (with --tls-key)",
    docs: { default: "none (plain TCP)", bounds: "PEM files, both or neither" },
  },
  tlsKey: {
    flag: "tls-key",
    type: { kind: "path" },
    default: null,
    change: "live",
    usage:
      "  --tls-key FILE          the certificate's PEM private key, readable by its owner only",
    docs: "with previous",
  },
  state: {
    flag: "state",
    type: { kind: "path" },
    default: null,
    change: "restart",
    usage:
      "  --state FILE            record the numbering high-water mark durably in FILE, so a restart\n" +
      "                          never repeats a number (default: none; numbers restart on restart)",
    docs: { default: "none (numbers kept in memory)", bounds: "a file path" },
  },
  numbers: {
    flag: "numbers",
    type: { kind: "url" },
    default: null,
    change: "restart",
    usage:
      "  --numbers URL           lease numbers from a Redis or etcd key shared by many servers, so\n" +
      "                          none of them repeats a number: redis://HOST:PORT/DB?key=KEY\n" +
      "                          (rediss:// for TLS) or etcd://HOST:PORT[,HOST:PORT...]/KEY (etcds://\n" +
      "                          for TLS) (not with --state; never put the password in the URL)",
    docs: { default: "none", bounds: "`redis[s]://` or `etcd[s]://` URL" },
  },
  numbersPasswordFile: {
    flag: "numbers-password-file",
    type: { kind: "path" },
    default: null,
    change: "restart",
    usage: "  --numbers-password-file FILE\n" +
      "                          file holding the Redis password, or the etcd password of the URL's\n" +
      "                          user (default for Redis: TALLYHO_REDIS_PASSWORD, if set)",
    docs: { default: "none (`TALLYHO_REDIS_PASSWORD`)", bounds: "a file path" },
  },
  numbersCaFile: {
    flag: "numbers-ca-file",
    type: { kind: "path" },
    default: null,
    change: "restart",
    usage:
      "  --numbers-ca-file FILE  PEM certificate authority to trust for a rediss:// Redis or etcds://\n" +
      "                          members whose certificates no public CA signed (default: the\n" +
      "                          runtime's usual CAs)",
    docs: { default: "none (the runtime's CAs)", bounds: "a PEM file, TLS URLs only" },
  },
  numbersCertFile: {
    flag: "numbers-cert-file",
    type: { kind: "path" },
    default: null,
    change: "restart",
    usage: "  --numbers-cert-file FILE, --numbers-key-file FILE\n" +
      "                          PEM client certificate and its key to present to etcds:// members\n" +
      "                          that ask for one (etcd's --client-cert-auth); the key readable by its\n" +
      "                          owner only",
    docs: { default: "none (no client certificate)", bounds: "a PEM file, etcds:// only" },
  },
  numbersKeyFile: {
    flag: "numbers-key-file",
    type: { kind: "path" },
    default: null,
    change: "restart",
    usage: null,
    docs: {
      default: "none; needed with `numbers-cert-file`",
      bounds: "a PEM file, its owner's only",
    },
  },
  config: {
    flag: "config",
    type: { kind: "path" },
    change: "start",
    usage: "  --config FILE           JSON file with the same keys as these flags (admin,\n" +
      "                          admin-token-file, log-format and log-rejections-every included, read\n" +
      "                          at start only); flags override it, and SIGHUP re-reads it",
    docs: null,
  },
} as const satisfies Table;

/** The table's keys: the server's options and the command line's own. */
export type OptionKey = keyof typeof OPTION_TABLE;

/** The keys of the options of one type, such as `"integer" | "duration"`. */
export type KeysOfKind<Kind extends OptionType["kind"]> = {
  [K in OptionKey]: (typeof OPTION_TABLE)[K]["type"]["kind"] extends Kind ? K : never;
}[OptionKey];

/** The command line's own options: not the server's configuration, read once at start. */
export type CliOptionKey = {
  [K in OptionKey]: (typeof OPTION_TABLE)[K]["change"] extends "start" ? K : never;
}[OptionKey];

/** Every entry with its key, in the table's order. */
export const OPTION_ENTRIES: readonly (readonly [OptionKey, OptionEntry])[] = Object.entries(
  OPTION_TABLE,
) as [OptionKey, OptionEntry][];

/** The server's options (not the command line's own), in the table's order. */
export const SERVER_OPTION_ENTRIES: readonly (readonly [
  keyof ServeConfig,
  ServerOptionEntry<unknown>,
])[] = OPTION_ENTRIES.filter(([, entry]) => entry.change !== "start") as [
  keyof ServeConfig,
  ServerOptionEntry<unknown>,
][];

/**
 * The options part of `--help`: every entry's lines in the table's order.
 *
 * @returns The lines, joined.
 */
export function optionsUsage(): string {
  return OPTION_ENTRIES.flatMap(([, entry]) => entry.usage === null ? [] : [entry.usage]).join(
    "\n",
  );
}
