/**
 * `tallyho serve`: reads the command line, plans the configuration (defaults, then the
 * `--config` file, then flags, clamped to this host: the same `planConfig` that SIGHUP and the
 * admin API go through), checks every address before anything starts, opens the number source,
 * starts the supervisor and its children, wires the admin API to it, and handles signals:
 * SIGTERM/SIGINT drain and exit 0 (a second one exits at once), SIGHUP re-reads the config file
 * through the supervisor's `ConfigKeeper`.
 *
 * @module
 */

import { readFileSync, readlinkSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { ADMIN_PROBE_PATHS, createAdminApp } from "../admin/app.ts";
import { patchRequest } from "../admin/patch_request.ts";
import { SupervisorBackend } from "../admin/supervisor_backend.ts";
import { assertAdminBindAllowed, bearerTokenMatcher, resolveAdminToken } from "../admin/token.ts";
import { AddressUnusableError, assertAddressFree } from "../server/host/address_probe.ts";
import {
  ADMIN_LISTENER_FD_ENV,
  adminConnectionCaps,
  type CappedHttpServer,
  closeDescriptor,
  closeOnExec,
  duplicate,
  RUNTIME,
  runtime,
  RUNTIME_VERSION,
  serveAdminHttp,
} from "../server/adapters/mod.ts";
import { AddressInUseError } from "../server/host/address_in_use_error.ts";
import { describe } from "../server/common/describe.ts";
import { defaultConfig, type ServeOptions } from "../server/config/resolve_config.ts";
import {
  OPTION_ENTRIES,
  OPTION_TABLE,
  SERVER_OPTION_ENTRIES,
} from "../server/config/option_table.ts";
import { ConfigError } from "../server/common/config_error.ts";
import {
  ConfigFileError,
  parseDuration,
  readConfigFileWith,
} from "../server/config/config_json.ts";
import { type ConfigPlan, planConfig } from "../server/config/config_plan.ts";
import { type HostFacts, readHostFacts } from "../server/host/host_facts.ts";
import { readTlsFiles } from "../server/tls/tls_files.ts";
import { ADDRESS_TABLE_BYTES } from "../server/limits/connection_gate.ts";
import { openLeaseSource } from "../server/lease/open_lease_source.ts";
import { StateFileError } from "../server/lease/sources/state_file/state_file.ts";
import { type ProcessFigures, Supervisor } from "../server/process/supervisor.ts";
import { UPGRADE_CHANNEL_FD } from "../server/process/upgrade_handover.ts";
import { Takeover } from "../server/process/upgrade_takeover.ts";
import { SystemdNotifier } from "../server/systemd/mod.ts";
import { removePidFile, writePidFile } from "./pid_file.ts";
import { type UpgradeEvent, upgrader } from "./upgrade.ts";
import type { ReloadOutcome } from "../admin/backend.ts";
import { monotonicNow } from "../server/common/clock.ts";
import { VERSION } from "../server/common/version.ts";
import {
  formatLogLine,
  LOG_FORMAT_ENV,
  LOG_FORMATS,
  type LogFormat,
  type LogLineLevel,
} from "../server/log_line.ts";
import { type CliIo, integerFlag, joinNegativeValues, usageErrorFrom } from "./_io.ts";

/** This program's version and runtime, as an upgrade's two trees tell each other. */
const VERSION_TEXT = `tallyho ${VERSION} on ${RUNTIME} ${RUNTIME_VERSION}`;

/** Where the admin API listens by default: loopback only. */
export const DEFAULT_ADMIN_ADDRESS: string = OPTION_TABLE.admin.default;

/** The admin API's command-line settings. */
export interface AdminFlags {
  /**
   * `HOST:PORT` (`[::1]:9001` for IPv6), or `off`; unset, the config file's `admin` key, then
   * {@linkcode DEFAULT_ADMIN_ADDRESS}.
   */
  address?: string;
  /** The bearer token's file; see admin/token.ts for what happens without one. */
  tokenFile?: string;
  /** `--admin-allowed-hosts` as given: more `Host` names the admin API answers. */
  allowedHosts?: string;
}

/**
 * Reads `--admin`.
 *
 * @param text `HOST:PORT`, `[IPv6]:PORT` or `off`.
 * @returns Where to listen, or null for off.
 * @throws {ConfigError} Naming the flag and what was given.
 */
export function parseAdminAddress(text: string): { hostname: string; port: number } | null {
  if (text === "off") return null;
  const match = /^(?:\[([^\]]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || port > 65535) {
    throw new ConfigError(
      "admin",
      `'admin' must be HOST:PORT (such as 127.0.0.1:9001 or [::1]:9001) or off: got ${
        JSON.stringify(text)
      }`,
    );
  }
  return { hostname: match[1] ?? match[2]!, port };
}

/** What `tallyho serve`'s command line asked for. */
export interface ServeArgs {
  /** The options the flags set. */
  options: ServeOptions;
  /** The `--config` file, if any. */
  configFile: string | null;
  /** The admin API's flags. */
  admin: AdminFlags;
  /** `--log-format` as given (`text` or `json`); unset, the config file's, then `text`. */
  logFormat?: string;
  /**
   * `--log-rejections-every` as given: how often at most the summary of refused connections is
   * logged; unset, the config file's, then {@linkcode DEFAULT_REJECTION_LOG_EVERY}.
   */
  logRejectionsEvery?: string;
  /** `--pid-file` as given; unset, the config file's `pid-file`, then none. */
  pidFile?: string;
}

/** How often at most refused connections are summed up in the log. */
export const DEFAULT_REJECTION_LOG_EVERY: string = OPTION_TABLE.logRejectionsEvery.default;

/** The command line's own keys, which the config file may also hold: read at start only. */
const CLI_KEYS = OPTION_ENTRIES.filter(([key, entry]) =>
  entry.change === "start" && key !== "config"
)
  .map(([, entry]) => entry.flag);

const SERVE_FLAGS = {
  // A switch on the command line (`--proxy-protocol`), true or false in a config file or PATCH.
  ...Object.fromEntries(
    OPTION_ENTRIES.map((
      [, entry],
    ) => [entry.flag, { type: entry.type.kind === "boolean" ? "boolean" : "string" }]),
  ) as Record<string, { type: "string" | "boolean" }>,
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
} satisfies Record<string, { type: "string" | "boolean"; short?: string }>;

/**
 * Turns `serve` flags into options, each as its entry in the option table says: integers for the
 * numeric keys, durations for the timeouts, comma-separated lists for CIDR ranges, a switch for
 * a boolean, text for the rest.
 *
 * @param args The arguments after the command.
 * @returns What was asked for, or `"help"` / `"version"`.
 * @throws {UsageError} For an unknown flag or an unparsable value.
 * @throws {ConfigError} For a duration that cannot be read.
 */
export function parseServeArgs(args: string[]): ServeArgs | "help" | "version" {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: joinNegativeValues(args, SERVE_FLAGS),
      options: SERVE_FLAGS,
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    throw usageErrorFrom(error as Error, "", SERVE_FLAGS);
  }
  if (values.help) return "help";
  if (values.version) return "version";
  const options: Record<string, unknown> = {};
  for (const [option, { flag, type }] of SERVER_OPTION_ENTRIES) {
    const text = values[flag];
    if (typeof text === "boolean") options[option] = text;
    if (typeof text !== "string") continue;
    if (type.kind === "duration") options[option] = parseDuration(flag, text, type);
    else if (type.kind === "integer") options[option] = integerFlag(flag, text);
    else if (type.kind === "cidr-list") {
      options[option] = text === "" ? [] : text.split(",").map((range) => range.trim());
    } else options[option] = text;
  }
  const configFile = values.config;
  const tokenFile = values["admin-token-file"];
  const allowedHosts = values["admin-allowed-hosts"];
  const pidFile = values["pid-file"];
  const logFormat = values["log-format"];
  const logRejectionsEvery = values["log-rejections-every"];
  return {
    ...(typeof logFormat === "string" ? { logFormat } : {}),
    ...(typeof logRejectionsEvery === "string" ? { logRejectionsEvery } : {}),
    options: options as ServeOptions,
    configFile: typeof configFile === "string" ? configFile : null,
    ...(typeof pidFile === "string" ? { pidFile } : {}),
    admin: {
      ...(typeof values.admin === "string" ? { address: values.admin } : {}),
      ...(typeof tokenFile === "string" ? { tokenFile } : {}),
      ...(typeof allowedHosts === "string" ? { allowedHosts } : {}),
    },
  };
}

/** What the `--config` file holds: the server's options and the command line's own keys. */
export interface ServeFile {
  /** The server's options it sets. */
  options: ServeOptions;
  /** The command line's own keys it sets (`admin`, `log-format`, ...), as given. */
  extra: Record<string, unknown>;
}

/**
 * Reads the `--config` file, if there is one: once at start (SIGHUP reads it again).
 *
 * @param args What the command line asked for.
 * @returns What it holds; nothing without a file.
 * @throws {ConfigFileError} When it cannot be read or holds a bad key or value.
 */
export function readServeFile(args: ServeArgs): ServeFile {
  return args.configFile === null
    ? { options: {}, extra: {} }
    : readConfigFileWith(args.configFile, CLI_KEYS);
}

/**
 * What the configuration is asked to be: the `--config` file's keys under the flags.
 *
 * @param args What the command line asked for.
 * @param file The file as read; read now when not given (SIGHUP).
 * @returns The options.
 */
export function requested(args: ServeArgs, file: ServeFile = readServeFile(args)): ServeOptions {
  return { ...file.options, ...args.options };
}

/**
 * The command line's own settings (the admin API's, the log's): the flags over the config
 * file's `admin`, `admin-token-file`, `log-format` and `log-rejections-every` over the defaults.
 *
 * @param args What the command line asked for.
 * @param file The config file as read at start.
 * @throws {ConfigError} When the file gives one that is not a string.
 */
export function adminSettings(
  args: ServeArgs,
  file: ServeFile,
): {
  address: string;
  tokenFile?: string;
  allowedHosts: string[];
  logFormat: LogFormat;
  logRejectionsEveryMs: number;
} {
  const extra = file.extra;
  for (const key of CLI_KEYS) {
    if (key in extra && typeof extra[key] !== "string") {
      throw new ConfigError(
        key,
        `'${key}' in ${args.configFile} must be a string: got ${describe(extra[key])}`,
      );
    }
  }
  const tokenFile = args.admin.tokenFile ?? (extra["admin-token-file"] as string | undefined);
  return {
    address: args.admin.address ?? (extra.admin as string | undefined) ?? DEFAULT_ADMIN_ADDRESS,
    ...(tokenFile === undefined ? {} : { tokenFile }),
    allowedHosts: allowedHostsOf(
      args.admin.allowedHosts ?? (extra["admin-allowed-hosts"] as string | undefined),
    ),
    logFormat: logFormatOf(args.logFormat ?? (extra["log-format"] as string | undefined)),
    logRejectionsEveryMs: parseDuration(
      "log-rejections-every",
      args.logRejectionsEvery ?? extra["log-rejections-every"] ?? DEFAULT_REJECTION_LOG_EVERY,
      OPTION_TABLE.logRejectionsEvery.type,
    ),
  };
}

/**
 * `--admin-allowed-hosts`: names (`tallyho-01.example.com`, `tallyho.monitoring.svc`), each with
 * a port or without one (then any port), IPv6 addresses in brackets.
 */
function allowedHostsOf(value: string | undefined): string[] {
  if (value === undefined) return [];
  const hosts = value.split(",").map((host) => host.trim()).filter((host) => host !== "");
  for (const host of hosts) {
    if (
      !/^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i
        .test(host)
    ) {
      throw new ConfigError(
        "admin-allowed-hosts",
        `'admin-allowed-hosts' must be host names, each with or without :PORT, comma-separated: ` +
          `got ${describe(host)}`,
      );
    }
  }
  return hosts;
}

function logFormatOf(value: string | undefined): LogFormat {
  if (value === undefined) return OPTION_TABLE.logFormat.default;
  if (!(LOG_FORMATS as readonly string[]).includes(value)) {
    throw new ConfigError(
      "log-format",
      `'log-format' must be one of ${LOG_FORMATS.join(", ")}: got ${describe(value)}`,
    );
  }
  return value as LogFormat;
}

/**
 * Checks that an address can be bound before anything starts, naming the flag that sets it.
 *
 * @param host The address.
 * @param port The port.
 * @param flags The flags that set the address and the port (`--host`/`--port`, or `--admin`).
 * @throws {AddressInUseError} When the port is taken, with the flag to change.
 * @throws {ConfigError} When the address is not this machine's (exit 2, like a bad value).
 */
export async function assertFree(
  host: string,
  port: number,
  flags: { address: string; port: string },
): Promise<void> {
  try {
    await assertAddressFree(host, port);
  } catch (error) {
    if (error instanceof AddressUnusableError && error.code === "EACCES" && port > 0) {
      // The port is the problem, not the address: below ip_unprivileged_port_start only a
      // process with CAP_NET_BIND_SERVICE may bind.
      const key = flags.port.replace(/^--/, "");
      const start = unprivilegedPortStart();
      throw new ConfigError(
        key,
        `'${key}' ${key === "port" ? "" : "port "}${port} needs privileges here (EACCES): ` +
          `ports below ${start} are ` +
          `reserved for processes with CAP_NET_BIND_SERVICE. Use a port of ${start} or more, ` +
          `give tallyho that capability (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE; ` +
          `or setcap cap_net_bind_service=+ep on the binary), or lower ` +
          `net.ipv4.ip_unprivileged_port_start`,
      );
    }
    if (error instanceof AddressUnusableError) {
      const key = flags.address.replace(/^--/, "");
      throw new ConfigError(
        key,
        `'${key}' ${JSON.stringify(host)} cannot be listened on here (${error.code}): ` +
          `give one of this machine's addresses, 0.0.0.0 or ::`,
      );
    }
    if (!(error instanceof AddressInUseError)) throw error;
    throw new AddressInUseError(
      `${error.message} (is another server running? try another ${flags.port})`,
      flags.port.replace(/^--/, ""),
    );
  }
}

/** The first port any user may bind (`net.ipv4.ip_unprivileged_port_start`, 1024 by default). */
function unprivilegedPortStart(): number {
  try {
    const value = Number(readFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start", "utf8"));
    return Number.isInteger(value) ? value : 1024;
  } catch {
    return 1024;
  }
}

/**
 * Runs the server until a signal stops it.
 *
 * @param args What the command line asked for.
 * @param io Where to write.
 * @returns The exit code.
 */
export async function runServe(args: ServeArgs, io: CliIo): Promise<number> {
  // Started by an upgrade (cli/upgrade.ts): the old tree stops leasing once asked, and serves on
  // if this one fails to start, at once when told why.
  // The configuration is checked before the old tree is asked for anything: a bad one fails the
  // upgrade with the old tree's source never let go.
  // In an upgrade the config file is read inside the check, so that a bad one is told to the
  // old tree ("it failed: Config file ...") rather than ending this process unexplained.
  let read = null as ServeFile | null;
  const takeover = await Takeover.join(process.env, VERSION_TEXT, () => {
    read = readServeFile(args);
    planStart(args, read, readHostFacts());
    adminSettings(args, read);
  });
  const file = read ?? readServeFile(args);
  try {
    return await runServeTree(args, file, io, takeover);
  } catch (error) {
    await takeover?.fail((error as Error).message);
    throw error;
  }
}

/**
 * Plans the configuration to start with; a bad value that came from the `--config` file (not a
 * flag) is said as the file's ("Config file /etc/tallyho.json: 'threads' must be ..."), so the
 * operator knows where to look.
 */
function planStart(args: ServeArgs, file: ServeFile, host: HostFacts): ConfigPlan {
  try {
    return planConfig(requested(args, file), {
      defaults: defaultConfig(host),
      host,
      capabilities: runtime.capabilities,
    });
  } catch (error) {
    const field = error instanceof ConfigError ? error.field : undefined;
    const option = OPTION_ENTRIES.find(([, entry]) => entry.flag === field)?.[0];
    if (
      args.configFile !== null && option !== undefined && !(option in args.options) &&
      option in file.options
    ) {
      throw new ConfigFileError(`Config file ${args.configFile}: ${(error as Error).message}`, {
        file: args.configFile,
        field,
      });
    }
    throw error;
  }
}

async function runServeTree(
  args: ServeArgs,
  file: ServeFile,
  io: CliIo,
  takeover: Takeover | null,
): Promise<number> {
  const host = readHostFacts();
  const defaults = defaultConfig(host);
  const planned = planStart(args, file, host);
  const { warnings } = planned;
  // Port 0 in an upgrade means the port the old tree listens on, which this one shares with it.
  const config = takeover !== null && planned.config.port === 0
    ? { ...planned.config, port: takeover.handed.port }
    : planned.config;
  const sharedPort = takeover !== null && config.port === takeover.handed.port;
  // The level is read at each line, so a live change of 'log-level' applies at once.
  const settings = adminSettings(args, file);
  const format = settings.logFormat;
  // The children inherit the environment: they write their own lines in the same format.
  process.env[LOG_FORMAT_ENV] = format;
  const write = (
    stream: "out" | "err",
    level: LogLineLevel,
    line: string,
    extra?: Record<string, string | number>,
  ) => io[stream](formatLogLine(format, level, line, extra));
  let currentLevel = () => config.logLevel;
  const log = (
    line: string,
    level: LogLineLevel = "info",
    extra?: Record<string, string | number>,
  ) => {
    const allowed = currentLevel();
    if (level === "info" && allowed !== "info") return;
    if (level === "warn" && allowed === "error") return;
    const prefix = level === "info" ? "" : level === "warn" ? "warning: " : "error: ";
    write("out", level, `tallyho: ${prefix}${line}`, extra);
  };
  // systemd (Type=notify): does nothing unless $NOTIFY_SOCKET is set. Every message is sent from
  // this file; the call sites are marked "systemd:".
  const systemd = SystemdNotifier.fromEnv(process.env, runtime.openUnixDatagram, { log });
  // The admin API's settings and both addresses are checked before anything starts, so a
  // mistake or a busy port costs nothing and names the flag to change.
  const adminFlags = settings;
  const askedAdmin = parseAdminAddress(adminFlags.address);
  const handedAdmin = takeover?.handed.adminPort ?? null;
  const adminAddress = askedAdmin !== null && askedAdmin.port === 0 && handedAdmin !== null
    ? { ...askedAdmin, port: handedAdmin }
    : askedAdmin;
  // An upgrade passes the admin API's listening socket down (cli/upgrade.ts): the port is bound
  // without SO_REUSEPORT, so this tree accepts on that socket rather than binding it again.
  const inheritedAdminFd = takeInheritedFd(
    process.env,
    takeover !== null,
    (line) => write("err", "warn", `tallyho: warning: ${line}`),
  );
  // Not inherited by the serving processes started below (see closeOnExec).
  if (inheritedAdminFd !== undefined) closeOnExec(inheritedAdminFd);
  const tokenOptions = adminFlags.tokenFile === undefined
    ? {}
    : { tokenFile: adminFlags.tokenFile };
  if (adminAddress) assertAdminBindAllowed(adminAddress.hostname, tokenOptions);
  // In an upgrade the old tree holds the ports this one joins (SO_REUSEPORT), so the exclusive
  // probe is skipped for them; any other port is probed as at any start.
  if (!sharedPort) {
    await assertFree(config.host, config.port, { address: "--host", port: "--port" });
  }
  if (adminAddress && adminAddress.port !== handedAdmin) {
    await assertFree(adminAddress.hostname, adminAddress.port, {
      address: "--admin",
      port: "--admin",
    });
  }
  const adminToken = adminAddress ? resolveAdminToken(tokenOptions) : null;
  if (adminToken?.warning !== undefined) {
    write("err", "warn", `tallyho: warning: ${adminToken.warning}`);
  }
  for (const warning of warnings) write("err", "warn", `tallyho: warning: ${warning}`);
  // planConfig checked the certificate and key (its warnings are above); read for the log.
  const tls = config.tlsCert !== null && config.tlsKey !== null
    ? readTlsFiles(config.tlsCert, config.tlsKey)
    : null;
  if (tls !== null) {
    log(`TLS with ${tls.subject}, valid until ${new Date(tls.notAfter).toISOString()}`);
  }
  // Installed before anything starts, so an early signal is never met by the default action.
  const signals = listenForSignals(io);
  const opened = await openLeaseSource(config, log, {
    runtime,
    above: takeover?.handed.mark ?? 0,
  });
  const source = takeover === null ? opened : takeover.reporting(opened);
  // The old tree stopped leasing when this one said hello: its processes lease through this
  // tree from now on, while this one starts.
  takeover?.numbering((count) => opened.lease(count));
  if (config.state === null && config.numbers === null) {
    log(
      `numbers are kept in memory: they restart from ${config.firstNumber} on the next start` +
        ` (use --state FILE to make them unique across restarts)`,
      "info",
      { source: "memory", firstNumber: config.firstNumber },
    );
  } else {
    log(`numbers continue from ${source.next} (${source.description})`, "info", {
      next: source.next,
      source: source.description,
    });
  }
  let crashed: (reason: string) => void = () => {};
  const crashLoop = new Promise<string>((resolve) => (crashed = resolve));
  let supervisor: Supervisor;
  try {
    supervisor = await Supervisor.start(config, source, {
      log,
      defaults,
      host,
      capabilities: runtime.capabilities,
      onCrashLoop: (r) => crashed(r),
      // In an upgrade every process leases its first block before it listens, or the upgrade
      // fails: the old tree serves on rather than hand the port to a tree without numbers.
      ...(takeover === null ? {} : { above: takeover.handed.mark, sharedPort, leaseFirst: true }),
    });
  } catch (error) {
    await source.close();
    throw error;
  }
  signals.onSecond = () => supervisor.kill();
  currentLevel = () => supervisor.config.logLevel;
  // Set in closures (the deferred admin start): typed so that the checker does not narrow it.
  let admin = null as CappedHttpServer | null;
  let backend: SupervisorBackend | null = null;
  let lastUpgrade: UpgradeEvent | null = null;
  // The wall clock, read here: the admin API and /metrics give these as times of day.
  let lastReload: ReloadOutcome = {
    successful: true,
    lastAttemptAt: null,
    lastSuccessAt: Date.now(),
  };
  /** Serves the admin API on a port; set once it is configured. */
  let serveAdmin: ((port: number, fd?: number) => Promise<CappedHttpServer>) | null = null;
  let stoppedAdminPort: number | null = null;
  /** A copy of the admin listening socket while an upgrade's new tree takes over, or null. */
  let keptAdminFd: number | null = null;
  let adoptedAdminFd = false;
  let takingOverFrom = takeover?.handed.pid ?? null;
  const upgrade = upgrader({
    supervisor,
    adminPort: () => admin?.port ?? null,
    handOffAdmin: () => admin?.handOff() ?? null,
    adminHandedOff: () => admin?.handedOff(),
    takeBackAdmin: async () => await admin?.takeBack(),
    reopen: (mark) => openLeaseSource(config, log, { runtime, above: mark }),
    stopAdmin: async () => {
      const stopping = admin;
      admin = null;
      stoppedAdminPort = stopping?.port ?? null;
      // A copy of the listening socket, kept until the new tree serves alone: if it dies before,
      // this tree accepts on the socket again, and the port was never free for anyone to bind.
      const listening = stopping?.handOff() ?? null;
      keptAdminFd = listening === null ? null : duplicate(listening);
      // The requests it already accepted are answered meanwhile (for up to 2 s); the new tree
      // answers the rest, on the socket passed to it. The relay's listener closes as the stop
      // begins: a turn of the event loop later this tree accepts no more there (and where no
      // socket could be passed, the port is free for the new tree, which retries a bind that
      // comes too soon).
      const done = (stopping?.stop(2000) ?? Promise.resolve()).catch((error: Error) =>
        log(`upgrade: stopping the admin API: ${error.message}`, "warn")
      );
      await new Promise((resolve) => setTimeout(resolve, 0));
      return { done };
    },
    resumeAdmin: async () => {
      if (serveAdmin === null || stoppedAdminPort === null) return;
      const kept = keptAdminFd;
      keptAdminFd = null;
      if (kept !== null) {
        try {
          admin = await serveAdmin(stoppedAdminPort, kept);
          return;
        } catch (error) {
          closeDescriptor(kept);
          log(`upgrade: accepting on the admin socket again: ${(error as Error).message}`, "warn");
        }
      }
      // The tree that died may have left the socket open in its processes for a moment.
      const deadline = monotonicNow() + 5000;
      for (;;) {
        try {
          admin = await serveAdmin(stoppedAdminPort);
          return;
        } catch (error) {
          if (!(error instanceof AddressInUseError) || monotonicNow() > deadline) throw error;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    adminTakenOver: () => {
      if (keptAdminFd !== null) closeDescriptor(keptAdminFd);
      keptAdminFd = null;
    },
    stop: (reason) => signals.stop(reason),
    log,
    version: VERSION_TEXT,
    takingOverFrom: () => takingOverFrom,
    onEvent: (event) => {
      lastUpgrade = event;
      // systemd: the new supervisor takes the main PID once it serves alone; until then this
      // one stays silent, and speaks again (as the main PID) only if the upgrade failed.
      if (event.state === "upgrading") {
        systemd.quiet(`upgrading: new supervisor pid ${event.pid} is starting`);
      } else if (event.state === "failed") {
        systemd.reclaim(`${serviceStatus(supervisor)}; upgrade failed: ${event.reason ?? ""}`);
      }
    },
  });
  signals.onUpgrade = () => {
    try {
      upgrade("SIGUSR2");
    } catch (error) {
      log(`SIGUSR2: ${(error as Error).message}`, "warn");
    }
  };
  // An upgrade's new tree accepts on the admin socket passed to it (or binds the port, where none
  // was) only once the old one has closed its listener: until then the old tree answers there.
  const adminWaits = takeover !== null && adminAddress !== null &&
    adminAddress.port === handedAdmin;
  let deferredAdmin: (() => Promise<void>) | null = null;
  if (adminAddress && adminToken) {
    backend = new SupervisorBackend(supervisor, {
      drain: () => signals.stop("admin drain"),
      numbersAvailable: () => supervisor.numbersAvailable(),
      upgrade: () => upgrade("admin"),
      lastUpgrade: () => lastUpgrade,
      lastReload: () => lastReload,
    });
    const app = createAdminApp(backend, {
      token: adminToken.token,
      port: () => admin?.port ?? adminAddress.port,
      hostname: adminAddress.hostname,
      allowedHosts: settings.allowedHosts,
      log,
    });
    const isOperator = bearerTokenMatcher(adminToken.token);
    const caps = adminConnectionCaps(host.openFiles);
    serveAdmin = (port, fd) =>
      // Capped below the open-file limit so that idle connections cannot starve the lease path;
      // the probes and the token's holders keep a way in (server/adapters/_relay_book.ts).
      serveAdminHttp(app.fetch, {
        ...adminAddress,
        port,
        maxConnections: caps.relayed,
        maxReading: caps.reading,
        probePaths: ADMIN_PROBE_PATHS,
        isOperator,
        log,
        ...(fd === undefined ? {} : { fd }),
      });
    const serve = serveAdmin;
    // The socket an upgrade's old tree passed down, accepted on as it is (never bound again).
    const passed = adminAddress.port === handedAdmin ? inheritedAdminFd : undefined;
    adoptedAdminFd = passed !== undefined;
    const startAdmin = async () => {
      try {
        admin = passed !== undefined
          ? await serve(adminAddress.port, passed)
          : await serveAdminWhenFree(serve, adminAddress.port, adminWaits);
      } catch (error) {
        if (adminWaits) {
          // Taking over: the old tree has closed its admin API already, and clients matter
          // more than it. Said loudly; the next start (or upgrade) binds it again.
          log(
            `admin API not served: ${(error as Error).message}; clients are served, and a ` +
              `restart or upgrade binds it again`,
            "error",
          );
          return;
        }
        backend?.stop();
        await supervisor.kill();
        throw error;
      }
      log(
        `admin API on http://${
          adminAddress.hostname.includes(":") ? `[${adminAddress.hostname}]` : adminAddress.hostname
        }:${admin.port}/` +
          (adminToken.source === "generated"
            ? ` (bearer token ${
              adminToken.created ? "generated into" : "read from"
            } ${adminToken.path})`
            : adminToken.source === "env"
            ? " (bearer token from TALLYHO_ADMIN_TOKEN)"
            : ` (bearer token from ${adminToken.path})`),
      );
    };
    // In an upgrade the old tree answers on the admin port until this one listens: served then.
    if (adminWaits) deferredAdmin = startAdmin;
    else await startAdmin();
  }
  if (inheritedAdminFd !== undefined && !adoptedAdminFd) {
    closeDescriptor(inheritedAdminFd); // Passed down, but this tree serves no admin API there.
  }
  signals.onReload = async () => {
    const configFile = args.configFile;
    // systemd: RELOADING=1 now, READY=1 once the change is in force or refused (finally below).
    systemd.reloading(`reloading ${configFile ?? "the TLS files"}`);
    let outcome = "";
    const attemptAt = Date.now();
    try {
      // The same way in as the admin API's PATCH: serialized with it, planned against the
      // configuration in force when it runs, applied only if something changed. Without a
      // --config file the configuration in force is planned again as it is (an empty PATCH):
      // that re-reads the TLS files whatever named them (a renewed certificate, as certbot's
      // deploy hook asks for), and keeps what PATCH changed.
      const change = await supervisor.keeper.change(
        configFile === null ? patchRequest({}) : () => requested(args),
        { origin: configFile === null ? "SIGHUP" : `the config file ${configFile}` },
      );
      if (Object.keys(change.changes).length === 0) {
        const clamped = change.warnings.length === 0
          ? ""
          : `; clamped: ${change.warnings.join("; ")}`;
        const asked = configFile !== null
          ? `${configFile} asks for the configuration in force`
          : supervisor.config.tlsCert === null
          ? "no --config file to re-read and no TLS files; nothing changed"
          : "no --config file to re-read; the TLS files are unchanged";
        log(
          `SIGHUP: ${asked}; generation ${change.generation} stays${clamped}`,
          clamped === "" ? "info" : "warn",
        );
      }
      lastReload = { successful: true, lastAttemptAt: attemptAt, lastSuccessAt: attemptAt };
    } catch (error) {
      lastReload = {
        successful: false,
        lastAttemptAt: attemptAt,
        lastSuccessAt: lastReload.lastSuccessAt,
        reason: (error as Error).message,
      };
      outcome = `; last reload refused: ${(error as Error).message}`;
      log(
        `SIGHUP: configuration not applied, keeping generation ${supervisor.generation}: ${
          (error as Error).message
        }`,
        "warn",
      );
    } finally {
      systemd.ready(`${serviceStatus(supervisor)}${outcome}`);
    }
  };
  if (takeover !== null) {
    // Every process holds numbers: the old tree may stop accepting. It closes its admin API
    // first, then this tree binds the port; the old one then lets go.
    const released = takeover.listening(supervisor);
    const startAdmin = deferredAdmin;
    const adminServed = startAdmin === null
      ? Promise.resolve()
      : takeover.adminFree().then(() => startAdmin());
    await released;
    // The one place where this tree has taken over: from here it serves alone.
    takingOverFrom = null;
    const { pid, port, mark, version } = takeover.handed;
    lastUpgrade = {
      state: "took-over",
      origin: `pid ${pid}`,
      at: Date.now(),
      pid: process.pid,
      fromPid: pid,
      handoverMs: monotonicNow() - takeover.joinedAt,
    };
    log(
      `upgrade: took over from pid ${pid} on port ${port}, numbering above ${mark}; ` +
        `it no longer accepts` + (version === null ? "" : ` (it ran ${version})`),
    );
    await adminServed;
  }
  // Once it serves (in an upgrade: serves alone), so whoever reads it signals the right tree.
  const pidFile = args.pidFile ?? (file.extra["pid-file"] as string | undefined);
  if (pidFile !== undefined) {
    try {
      writePidFile(pidFile, process.pid);
    } catch (error) {
      log((error as Error).message, "warn");
    }
  }
  const c = supervisor.config;
  write(
    "out",
    "info",
    `tallyho ${VERSION} on ${RUNTIME} ${RUNTIME_VERSION}: listening on ${c.host}:${supervisor.port}` +
      ` with ${c.processes} process${c.processes === 1 ? "" : "es"} x ${c.threads} thread${
        c.threads === 1 ? "" : "s"
      } (framing ${c.framing}, numbering by ${c.numberBy})`,
  );
  log(
    `limits per process: ${c.maxConnections} connections` +
      `, ${c.maxConnectionsPerAddress || "unlimited"} per address` +
      `, ${c.connectionRate ? `${c.connectionRate}/s per address` : "no rate limit"}` +
      `; timeouts: first message ${c.firstMessageTimeoutMs} ms, idle ${c.idleTimeoutMs} ms` +
      `; address table ${ADDRESS_TABLE_BYTES} bytes`,
    "info",
    {
      maxConnections: c.maxConnections,
      maxConnectionsPerAddress: c.maxConnectionsPerAddress,
      connectionRate: c.connectionRate,
      firstMessageTimeoutMs: c.firstMessageTimeoutMs,
      idleTimeoutMs: c.idleTimeoutMs,
      addressTableBytes: ADDRESS_TABLE_BYTES,
    },
  );
  // systemd: ready once every process listens (and, after an upgrade, the old tree has let go:
  // this process becomes the unit's main PID), then a status line whenever it changes.
  systemd.ready(serviceStatus(supervisor), { mainPid: takeover !== null });
  const statusTimer = setInterval(() => systemd.status(serviceStatus(supervisor)), STATUS_EVERY_MS);
  const stopSummary = summarizeRejections(supervisor, settings.logRejectionsEveryMs, log);
  const winner = await Promise.race([
    signals.first.then((name) => ({ crash: false, name })),
    crashLoop.then((reason) => ({ crash: true, name: reason })),
  ]);
  stopSummary();
  clearInterval(statusTimer);
  // systemd: draining (after an upgrade handed over, this tree is quiet: not the main PID).
  systemd.stopping(`stopping (${winner.name}); last number ${supervisor.lastNumber()}`);
  if (winner.crash) {
    write("err", "error", `tallyho: stopping: ${winner.name}`);
    backend?.stop();
    await admin?.stop();
    await supervisor.kill();
    return 1;
  }
  log(`${winner.name}: draining (up to ${supervisor.config.drainTimeoutMs} ms)`);
  // A source that cannot record its end (a read-only state directory) still lets the stop finish
  // and says so in the last line: every number handed out was recorded at its lease.
  let notRecorded = "";
  try {
    await supervisor.shutdown();
  } catch (error) {
    if (!(error instanceof StateFileError)) throw error;
    notRecorded = `; not recorded: ${error.message}`;
  }
  backend?.stop();
  await admin?.stop();
  const processes = supervisor.processes();
  const perThread = processes.flatMap((p) => p.threads.map((t) => t.connectionsAccepted));
  const perProcess = processes.map((p) =>
    p.threads.reduce((sum, t) => sum + t.connectionsAccepted, 0)
  );
  const unnumbered = processes.reduce(
    (sum, p) => p.threads.reduce((s, t) => s + t.closedNumbersUnavailable, sum),
    0,
  );
  if (pidFile !== undefined) removePidFile(pidFile, process.pid);
  // Always written, whatever the log level: scripts read the last number from it.
  write(
    "out",
    "info",
    `tallyho: stopped; last number handed out: ${supervisor.lastNumber()};` +
      ` connections per process: [${perProcess.join(", ")}];` +
      ` connections per thread: [${perThread.join(", ")}];` +
      ` refused and closed: ${JSON.stringify(refusals(processes))};` +
      ` closed for want of leased numbers: ${unnumbered}${notRecorded}`,
  );
  return 0;
}

/** How often the systemd status line is refreshed (sent only when it changed). */
const STATUS_EVERY_MS = 2000;

/** The one-line summary that `systemctl status` shows (STATUS=). */
function serviceStatus(supervisor: Supervisor): string {
  const c = supervisor.config;
  return `serving ${supervisor.connectionsOpen()} connections on ${c.host}:${supervisor.port}` +
    ` (${c.processes} x ${c.threads}, configuration generation ${supervisor.generation});` +
    ` last number ${supervisor.lastNumber()}`;
}

/**
 * Serves the admin API on `port`; in an upgrade (`retry`) where the old tree could pass no socket
 * down (no `/proc`), a port still held for a moment by its closing listener is tried again for up
 * to 5 s.
 */
async function serveAdminWhenFree(
  serve: (port: number) => Promise<CappedHttpServer>,
  port: number,
  retry: boolean,
): Promise<CappedHttpServer> {
  const deadline = monotonicNow() + 5000;
  for (;;) {
    try {
      return await serve(port);
    } catch (error) {
      if (!retry || !(error instanceof AddressInUseError) || monotonicNow() > deadline) {
        throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/**
 * Takes the descriptor an upgrade passed down out of the environment (see cli/upgrade.ts), always
 * taking the variable out so that the serving processes never see it. Only a tree an upgrade
 * started (`takingOver`) has one: a socket after the handover channel. On any other start the
 * variable names one of this process's own descriptors, which this tree would accept on or close
 * as its own: set to its state file's lock, it let a second server number from the same file.
 */
function takeInheritedFd(
  env: Record<string, string | undefined>,
  takingOver: boolean,
  warn: (line: string) => void,
): number | undefined {
  const text = env[ADMIN_LISTENER_FD_ENV];
  delete env[ADMIN_LISTENER_FD_ENV];
  if (text === undefined) return undefined;
  const fd = /^\d+$/.test(text) ? Number(text) : -1;
  let link = "";
  try {
    link = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    // Not open (or no /proc, where the old tree could not have found a socket to pass).
  }
  if (takingOver && fd > UPGRADE_CHANNEL_FD && link.startsWith("socket:")) return fd;
  warn(
    `${ADMIN_LISTENER_FD_ENV}=${text} ignored: only an upgrade passes a socket that way` +
      (takingOver ? " (descriptor 4 on)" : "; unset it"),
  );
  return undefined;
}

/**
 * Logs, at most once every `everyMs`, the connections refused and closed since the last summary
 * by reason, and nothing when there were none: a flood makes one line per period, never one per
 * connection.
 *
 * @returns A function that stops it.
 */
function summarizeRejections(
  supervisor: Supervisor,
  everyMs: number,
  log: (line: string, level: "warn", extra: Record<string, number>) => void,
): () => void {
  if (everyMs === 0) return () => {};
  let last = refusals(supervisor.processes());
  const timer = setInterval(() => {
    const now = refusals(supervisor.processes());
    const since: Record<string, number> = {};
    for (const [reason, total] of Object.entries(now)) {
      // A restarted child counts from zero again: then all of its count is new.
      const added = total >= (last[reason] ?? 0) ? total - (last[reason] ?? 0) : total;
      if (added > 0) since[reason] = added;
    }
    last = now;
    if (Object.keys(since).length === 0) return;
    log(
      `rejected and closed in the last ${everyMs / 1000} s: ${JSON.stringify(since)}`,
      "warn",
      since,
    );
  }, everyMs);
  return () => clearInterval(timer);
}

/** Every refusal and forced close, summed over processes and threads, leaving out zeros. */
function refusals(processes: ProcessFigures[]): Record<string, number> {
  const totals: Record<string, number> = {};
  for (const thread of processes.flatMap((p) => p.threads)) {
    for (const [name, value] of Object.entries(thread)) {
      if (!/^(rejected|closed|untracked)/.test(name) || value === 0) continue;
      totals[name] = (totals[name] ?? 0) + value;
    }
  }
  return totals;
}

interface Signals {
  /** Resolves with the first SIGINT or SIGTERM (or {@linkcode stop}). */
  first: Promise<string>;
  /** Starts the drain as a first signal would. */
  stop(reason: string): void;
  onSecond: () => Promise<void>;
  onReload: () => Promise<void>;
  /** SIGUSR2: an upgrade (cli/upgrade.ts). */
  onUpgrade: () => void;
}

/** How close together two identical stop signals count as one (see listenForSignals). */
const SAME_KEYPRESS_MS = 300;

function listenForSignals(io: CliIo): Signals {
  let received = 0;
  let resolveFirst: (name: string) => void = () => {};
  const signals: Signals = {
    first: new Promise((resolve) => (resolveFirst = resolve)),
    stop: (reason) => {
      received++;
      resolveFirst(reason);
    },
    onSecond: () => Promise.resolve(),
    onReload: () => Promise.resolve(),
    onUpgrade: () => {},
  };
  let first = { name: "", at: -Infinity };
  const onStop = (name: string) => {
    const now = monotonicNow();
    // One Ctrl-C can arrive twice: a task runner (`deno task`, `npm start`) forwards the
    // terminal's SIGINT to tallyho, which already had it from the terminal's process group. The
    // same signal again within SAME_KEYPRESS_MS is that one keypress, not an operator's second.
    if (received > 0 && name === first.name && now - first.at < SAME_KEYPRESS_MS) return;
    received++;
    if (received === 1) {
      first = { name, at: now };
      return resolveFirst(name);
    }
    io.err(`tallyho: second ${name}: exiting at once`);
    signals.onSecond().finally(() => process.exit(1));
  };
  process.on("SIGINT", () => onStop("SIGINT"));
  process.on("SIGTERM", () => onStop("SIGTERM"));
  // nginx's graceful quit: the same drain as SIGTERM (its default action would dump core).
  process.on("SIGQUIT", () => onStop("SIGQUIT"));
  process.on("SIGHUP", () => signals.onReload());
  process.on("SIGUSR2", () => signals.onUpgrade());
  // nginx reopens its log files on SIGUSR1; tallyho writes to stdout and stderr, which the
  // service manager owns: nothing to reopen. Ignored on purpose, rather than ending the process.
  process.on(
    "SIGUSR1",
    () => io.err(`tallyho: SIGUSR1 ignored: logs go to stdout and stderr, nothing to reopen`),
  );
  return signals;
}
