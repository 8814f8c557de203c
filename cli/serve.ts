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

import process from "node:process";
import { parseArgs } from "node:util";
import { createAdminApp } from "../admin/app.ts";
import { SupervisorBackend } from "../admin/supervisor_backend.ts";
import { assertAdminBindAllowed, resolveAdminToken } from "../admin/token.ts";
import { assertAddressFree } from "../server/address_probe.ts";
import {
  adminConnectionCap,
  RUNTIME,
  RUNTIME_VERSION,
  serveAdminHttp,
} from "../server/adapters/mod.ts";
import type { HttpServer } from "../server/adapters/http_server.ts";
import { AddressInUseError } from "../server/address_in_use_error.ts";
import {
  defaultConfig,
  DURATION_KEYS,
  FLAG_NAMES,
  LIMITS,
  type ServeOptions,
} from "../server/config.ts";
import { ConfigError } from "../server/config_error.ts";
import { parseDuration, readConfigFile } from "../server/config_json.ts";
import { planConfig } from "../server/config_plan.ts";
import { readHostFacts } from "../server/host_facts.ts";
import { ADDRESS_TABLE_BYTES } from "../server/limits/connection_gate.ts";
import { openLeaseSource } from "../server/lease/open_lease_source.ts";
import { StateFileError } from "../server/lease/state_file.ts";
import { type ProcessFigures, Supervisor } from "../server/process/supervisor.ts";
import { VERSION } from "../server/version.ts";
import { type CliIo, integerFlag, usageErrorFrom } from "./_io.ts";

/** Where the admin API listens by default: loopback only. */
export const DEFAULT_ADMIN_ADDRESS = "127.0.0.1:9001";

/** The admin API's command-line settings. */
export interface AdminFlags {
  /** `HOST:PORT` (`[::1]:9001` for IPv6), or `off`. */
  address: string;
  /** The bearer token's file; see admin/token.ts for what happens without one. */
  tokenFile?: string;
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
}

const SERVE_FLAGS = {
  ...Object.fromEntries(Object.values(FLAG_NAMES).map((flag) => [flag, { type: "string" }])),
  config: { type: "string" },
  admin: { type: "string" },
  "admin-token-file": { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
} as const satisfies Record<string, { type: "string" | "boolean"; short?: string }>;

/**
 * Turns `serve` flags into options: integers for the numeric keys, durations for the timeouts,
 * comma-separated lists for `allow` and `deny`, text for the rest.
 *
 * @param args The arguments after the command.
 * @returns What was asked for, or `"help"` / `"version"`.
 * @throws {UsageError} For an unknown flag or an unparsable value.
 * @throws {ConfigError} For a duration that cannot be read.
 */
export function parseServeArgs(args: string[]): ServeArgs | "help" | "version" {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args, options: SERVE_FLAGS, strict: true, allowPositionals: false })
      .values;
  } catch (error) {
    throw usageErrorFrom(error as Error);
  }
  if (values.help) return "help";
  if (values.version) return "version";
  const options: Record<string, unknown> = {};
  for (const [option, flag] of Object.entries(FLAG_NAMES) as [keyof ServeOptions, string][]) {
    const text = values[flag];
    if (typeof text !== "string") continue;
    if (DURATION_KEYS.has(option)) options[option] = parseDuration(flag, text);
    else if (option in LIMITS) options[option] = integerFlag(flag, text);
    else if (option === "allow" || option === "deny") {
      options[option] = text === "" ? [] : text.split(",").map((range) => range.trim());
    } else options[option] = text;
  }
  const configFile = values.config;
  const tokenFile = values["admin-token-file"];
  return {
    options: options as ServeOptions,
    configFile: typeof configFile === "string" ? configFile : null,
    admin: {
      address: typeof values.admin === "string" ? values.admin : DEFAULT_ADMIN_ADDRESS,
      ...(typeof tokenFile === "string" ? { tokenFile } : {}),
    },
  };
}

/** What the configuration is asked to be: the `--config` file's keys under the flags. */
function requested(args: ServeArgs): ServeOptions {
  const fromFile = args.configFile === null ? {} : readConfigFile(args.configFile);
  return { ...fromFile, ...args.options };
}

/**
 * Checks that an address can be bound before anything starts, naming the flag that sets it.
 *
 * @throws {AddressInUseError} With the flag to change.
 */
async function assertFree(host: string, port: number, flag: string): Promise<void> {
  try {
    await assertAddressFree(host, port);
  } catch (error) {
    if (!(error instanceof AddressInUseError)) throw error;
    throw new AddressInUseError(
      `${error.message} (is another server running? try another ${flag})`,
    );
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
  const host = readHostFacts();
  const defaults = defaultConfig(host);
  const { config, warnings } = planConfig(requested(args), { defaults, host });
  // The level is read at each line, so a live change of 'log-level' applies at once.
  let currentLevel = () => config.logLevel;
  const log = (line: string, level: "info" | "warn" | "error" = "info") => {
    const allowed = currentLevel();
    if (level === "info" && allowed !== "info") return;
    if (level === "warn" && allowed === "error") return;
    io.out(`tallyho: ${level === "info" ? "" : level === "warn" ? "warning: " : "error: "}${line}`);
  };
  // The admin API's settings and both addresses are checked before anything starts, so a
  // mistake or a busy port costs nothing and names the flag to change.
  const adminAddress = parseAdminAddress(args.admin.address);
  const tokenOptions = args.admin.tokenFile === undefined
    ? {}
    : { tokenFile: args.admin.tokenFile };
  if (adminAddress) assertAdminBindAllowed(adminAddress.hostname, tokenOptions);
  await assertFree(config.host, config.port, "--port");
  if (adminAddress) await assertFree(adminAddress.hostname, adminAddress.port, "--admin");
  const adminToken = adminAddress ? resolveAdminToken(tokenOptions) : null;
  if (adminToken?.warning !== undefined) io.err(`tallyho: warning: ${adminToken.warning}`);
  for (const warning of warnings) io.err(`tallyho: warning: ${warning}`);
  // Installed before anything starts, so an early signal is never met by the default action.
  const signals = listenForSignals(io);
  const source = await openLeaseSource(config, log);
  if (config.state === null && config.numbers === null) {
    log(
      `numbers are kept in memory: they restart from ${config.firstNumber} on the next start` +
        ` (use --state FILE to make them unique across restarts)`,
    );
  } else {
    log(`numbers continue from ${source.next} (${source.description})`);
  }
  let crashed: (reason: string) => void = () => {};
  const crashLoop = new Promise<string>((resolve) => (crashed = resolve));
  let supervisor: Supervisor;
  try {
    supervisor = await Supervisor.start(config, source, {
      log,
      defaults,
      host,
      onCrashLoop: (r) => crashed(r),
    });
  } catch (error) {
    await source.close();
    throw error;
  }
  signals.onSecond = () => supervisor.kill();
  currentLevel = () => supervisor.config.logLevel;
  let admin: HttpServer | null = null;
  let backend: SupervisorBackend | null = null;
  if (adminAddress && adminToken) {
    backend = new SupervisorBackend(supervisor, {
      drain: () => signals.stop("admin drain"),
      numbersAvailable: () => supervisor.numbersAvailable(),
    });
    const app = createAdminApp(backend, {
      token: adminToken.token,
      port: () => admin?.port ?? adminAddress.port,
      hostname: adminAddress.hostname,
      log,
    });
    try {
      // Capped below the open-file limit so that idle connections cannot starve the lease path.
      admin = await serveAdminHttp(app.fetch, {
        ...adminAddress,
        maxConnections: adminConnectionCap(readHostFacts().openFiles),
        log,
      });
    } catch (error) {
      backend.stop();
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
  }
  signals.onReload = async () => {
    const configFile = args.configFile;
    if (configFile === null) {
      log("SIGHUP: no --config file to re-read; nothing changed");
      return;
    }
    try {
      // The same way in as the admin API's PATCH: serialized with it, planned against the
      // configuration in force when it runs, applied only if something changed.
      const change = await supervisor.keeper.change(() => requested(args), {
        origin: `the config file ${configFile}`,
      });
      if (Object.keys(change.changes).length === 0) {
        const clamped = change.warnings.length === 0
          ? ""
          : `; clamped: ${change.warnings.join("; ")}`;
        log(
          `SIGHUP: ${configFile} asks for the configuration in force; ` +
            `generation ${change.generation} stays${clamped}`,
          clamped === "" ? "info" : "warn",
        );
      }
    } catch (error) {
      log(
        `SIGHUP: configuration not applied, keeping generation ${supervisor.generation}: ${
          (error as Error).message
        }`,
        "warn",
      );
    }
  };
  const c = supervisor.config;
  io.out(
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
  );
  const winner = await Promise.race([
    signals.first.then((name) => ({ crash: false, name })),
    crashLoop.then((reason) => ({ crash: true, name: reason })),
  ]);
  if (winner.crash) {
    io.err(`tallyho: stopping: ${winner.name}`);
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
  // Always written, whatever the log level: scripts read the last number from it.
  io.out(
    `tallyho: stopped; last number handed out: ${supervisor.lastNumber()};` +
      ` connections per process: [${perProcess.join(", ")}];` +
      ` connections per thread: [${perThread.join(", ")}];` +
      ` refused and closed: ${JSON.stringify(refusals(processes))};` +
      ` closed for want of leased numbers: ${unnumbered}${notRecorded}`,
  );
  return 0;
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
}

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
  };
  const onStop = (name: string) => {
    received++;
    if (received === 1) return resolveFirst(name);
    io.err(`tallyho: second ${name}: exiting at once`);
    signals.onSecond().finally(() => process.exit(1));
  };
  process.on("SIGINT", () => onStop("SIGINT"));
  process.on("SIGTERM", () => onStop("SIGTERM"));
  process.on("SIGHUP", () => signals.onReload());
  return signals;
}
