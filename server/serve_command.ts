/**
 * `tallyho serve`: resolves the configuration (defaults, then the `--config` file, then flags),
 * opens the number source, starts the supervisor and its children, and handles signals:
 * SIGTERM/SIGINT drain and exit 0 (a second one exits at once), SIGHUP re-reads the config file
 * and applies it only if it is valid.
 *
 * @module
 */

import { availableParallelism } from "node:os";
import process from "node:process";
import { RUNTIME, RUNTIME_VERSION } from "./adapters/mod.ts";
import { defaultConfig, resolveConfig, type ServeConfig, type ServeOptions } from "./config.ts";
import { readConfigFile } from "./config_json.ts";
import { type LeaseSource, MemoryLeaseSource } from "./lease/lease_source.ts";
import { readRedisPassword } from "./lease/redis_password.ts";
import { StateFileLeaseSource } from "./lease/state_file.ts";
import { Supervisor } from "./process/supervisor.ts";
import { VERSION } from "./version.ts";

/** Where the serve command writes. */
export interface ServeIo {
  out(line: string): void;
  err(line: string): void;
}

/**
 * Resolves the configuration: defaults, then the config file, then the flags.
 *
 * @param flags What the command line set.
 * @param configFile The `--config` file, if any.
 * @returns The validated configuration.
 * @throws {ConfigFileError | TypeError | RangeError} Naming the file or the field.
 */
export function loadConfig(flags: ServeOptions, configFile: string | null): ServeConfig {
  const fromFile = configFile === null ? {} : readConfigFile(configFile);
  return resolveConfig({ ...fromFile, ...flags }, defaultConfig(availableParallelism()));
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
): Promise<number> {
  const config = loadConfig(flags, configFile);
  const log = (line: string) => io.out(`tallyho: ${line}`);
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
  signals.onReload = async () => {
    if (configFile === null) {
      log("SIGHUP: no --config file to re-read; nothing changed");
      return;
    }
    try {
      await supervisor.applyConfig(loadConfig(flags, configFile));
    } catch (error) {
      log(
        `SIGHUP: configuration not applied, keeping generation ${supervisor.generation}: ${
          (error as Error).message
        }`,
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
  const winner = await Promise.race([
    signals.first.then((name) => ({ crash: false, name })),
    crashLoop.then((reason) => ({ crash: true, name: reason })),
  ]);
  if (winner.crash) {
    io.err(`tallyho: stopping: ${winner.name}`);
    await supervisor.kill();
    return 1;
  }
  log(`${winner.name}: draining (up to ${supervisor.config.drainTimeoutMs} ms)`);
  await supervisor.shutdown();
  const processes = supervisor.processes();
  const perThread = processes.flatMap((p) => p.threads.map((t) => t.connectionsAccepted));
  const perProcess = processes.map((p) =>
    p.threads.reduce((sum, t) => sum + t.connectionsAccepted, 0)
  );
  const unnumbered = processes.reduce(
    (sum, p) => p.threads.reduce((s, t) => s + t.closedNumbersUnavailable, sum),
    0,
  );
  log(
    `stopped; last number handed out: ${supervisor.lastNumber()};` +
      ` connections per process: [${perProcess.join(", ")}];` +
      ` connections per thread: [${perThread.join(", ")}];` +
      ` closed for want of leased numbers: ${unnumbered}`,
  );
  return 0;
}

interface Signals {
  /** Resolves with the first SIGINT or SIGTERM. */
  first: Promise<string>;
  onSecond: () => Promise<void>;
  onReload: () => Promise<void>;
}

function listenForSignals(io: ServeIo): Signals {
  let received = 0;
  let resolveFirst: (name: string) => void = () => {};
  const signals: Signals = {
    first: new Promise((resolve) => (resolveFirst = resolve)),
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
