/**
 * `tallyho serve`: resolves the configuration (defaults, then the `--config` file, then flags),
 * opens the number source, starts the supervisor and its children, and handles signals:
 * SIGTERM/SIGINT drain and exit 0 (a second one exits at once), SIGHUP re-reads the config file
 * and applies it only if it is valid.
 *
 * @module
 */

import process from "node:process";
import { createAdminApp } from "../admin/app.ts";
import { SupervisorBackend } from "../admin/supervisor_backend.ts";
import { assertAdminBindAllowed, resolveAdminToken } from "../admin/token.ts";
import { adminConnectionCap, RUNTIME, RUNTIME_VERSION, serveAdminHttp } from "./adapters/mod.ts";
import type { HttpServer } from "./adapters/http_server.ts";
import {
  clampToHost,
  defaultConfig,
  resolveConfig,
  type ServeConfig,
  type ServeOptions,
} from "./config.ts";
import { readHostFacts } from "./host_facts.ts";
import { ADDRESS_TABLE_BYTES } from "./limits/connection_gate.ts";
import { readConfigFile } from "./config_json.ts";
import { type LeaseSource, MemoryLeaseSource } from "./lease/lease_source.ts";
import { readRedisPassword } from "./lease/redis_password.ts";
import { StateFileLeaseSource } from "./lease/state_file.ts";
import { type ProcessFigures, Supervisor } from "./process/supervisor.ts";
import { VERSION } from "./version.ts";

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
 * @throws {RangeError} Naming the flag and what was given.
 */
export function parseAdminAddress(text: string): { hostname: string; port: number } | null {
  if (text === "off") return null;
  const match = /^(?:\[([^\]]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || port > 65535) {
    throw new RangeError(
      `'admin' must be HOST:PORT (such as 127.0.0.1:9001 or [::1]:9001) or off: got ${
        JSON.stringify(text)
      }`,
    );
  }
  return { hostname: match[1] ?? match[2]!, port };
}

/** Where the serve command writes. */
export interface ServeIo {
  out(line: string): void;
  err(line: string): void;
}

/**
 * Resolves the configuration: defaults derived from this host, then the config file, then the
 * flags; then lowers what the host cannot hold, with a warning for each.
 *
 * @param flags What the command line set.
 * @param configFile The `--config` file, if any.
 * @returns The validated configuration and the warnings.
 * @throws {ConfigFileError | TypeError | RangeError} Naming the file or the field.
 */
export function loadConfig(
  flags: ServeOptions,
  configFile: string | null,
): { config: ServeConfig; warnings: string[] } {
  const host = readHostFacts();
  const fromFile = configFile === null ? {} : readConfigFile(configFile);
  return clampToHost(resolveConfig({ ...fromFile, ...flags }, defaultConfig(host)), host);
}

/**
 * Opens where the numbers come from: a Redis key (`numbers`), a state file (`state`), or memory.
 *
 * @param config The resolved configuration.
 * @param log Receives the source's own lines (a Redis connection lost and back).
 * @returns The open source; nothing above it knows which kind it is.
 * @throws {StateFileError | RedisLeaseError | RedisPasswordError} Naming the problem.
 */
export async function openSource(
  config: ServeConfig,
  log: (line: string) => void,
): Promise<LeaseSource> {
  if (config.numbers !== null) {
    // Loaded only here: the Redis client costs ~170 ms to load, which the serving child
    // processes (started from the same entry point) and servers without Redis need not pay.
    const { RedisLeaseSource } = await import("./lease/redis_lease_source.ts");
    return await RedisLeaseSource.open(config.numbers, {
      password: readRedisPassword(config.numbersPasswordFile, process.env),
      firstNumber: config.firstNumber,
      caFile: config.numbersCaFile,
      log,
    });
  }
  return config.state === null
    ? new MemoryLeaseSource(config.firstNumber)
    : StateFileLeaseSource.open(config.state, config.firstNumber);
}

/**
 * Runs the server until a signal stops it.
 *
 * @param flags What the command line set.
 * @param configFile The `--config` file, if any.
 * @param io Where to write.
 * @returns The exit code.
 */
export async function runServe(
  flags: ServeOptions,
  configFile: string | null,
  io: ServeIo,
  adminFlags: AdminFlags = { address: DEFAULT_ADMIN_ADDRESS },
): Promise<number> {
  const { config, warnings } = loadConfig(flags, configFile);
  // The level is read at each line, so a live change of 'log-level' applies at once.
  let currentLevel = () => config.logLevel;
  const log = (line: string, level: "info" | "warn" = "info") => {
    const allowed = currentLevel();
    if (level === "info" && allowed !== "info") return;
    if (level === "warn" && allowed === "error") return;
    io.out(`tallyho: ${level === "warn" ? "warning: " : ""}${line}`);
  };
  // The admin API's settings are checked before anything starts, so a mistake costs nothing.
  const adminAddress = parseAdminAddress(adminFlags.address);
  const tokenOptions = adminFlags.tokenFile === undefined
    ? {}
    : { tokenFile: adminFlags.tokenFile };
  if (adminAddress) assertAdminBindAllowed(adminAddress.hostname, tokenOptions);
  const adminToken = adminAddress ? resolveAdminToken(tokenOptions) : null;
  for (const warning of warnings) io.err(`tallyho: warning: ${warning}`);
  // Installed before anything starts, so an early signal is never met by the default action.
  const signals = listenForSignals(io);
  const source = await openSource(config, log);
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
    supervisor = await Supervisor.start(config, source, { log, onCrashLoop: (r) => crashed(r) });
  } catch (error) {
    await source.close();
    throw error;
  }
  signals.onSecond = () => supervisor.kill();
  currentLevel = () => supervisor.config.logLevel;
  let admin: HttpServer | null = null;
  if (adminAddress && adminToken) {
    const backend = new SupervisorBackend(supervisor, {
      defaults: defaultConfig(readHostFacts()),
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
    if (configFile === null) {
      log("SIGHUP: no --config file to re-read; nothing changed");
      return;
    }
    try {
      const reloaded = loadConfig(flags, configFile);
      for (const warning of reloaded.warnings) io.err(`tallyho: warning: ${warning}`);
      await supervisor.applyConfig(reloaded.config);
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
    await admin?.stop();
    await supervisor.kill();
    return 1;
  }
  log(`${winner.name}: draining (up to ${supervisor.config.drainTimeoutMs} ms)`);
  await supervisor.shutdown();
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
      ` closed for want of leased numbers: ${unnumbered}`,
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

function listenForSignals(io: ServeIo): Signals {
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
