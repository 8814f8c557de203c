/**
 * Starts a tallyho server in this process: validated configuration, one shared counter and a pool
 * of worker threads on one port.
 *
 * @module
 */

import { availableParallelism } from "node:os";
import { assertAddressFree } from "./address_probe.ts";
import { defaultConfig, resolveConfig, type ServeConfig, type ServeOptions } from "./config.ts";
import { SharedCounter } from "./shared_counter.ts";
import { ThreadPool } from "./thread_pool.ts";
import type { ThreadFigures } from "./thread_stats.ts";

/** Options for {@linkcode startServer} beyond the configuration. */
export interface StartOptions {
  /** Receives log lines; defaults to doing nothing. */
  log?: (line: string) => void;
  /** Called when threads crash in a loop; defaults to logging. */
  onCrashLoop?: (reason: string) => void;
}

/** A running server. */
export interface RunningServer {
  /** The configuration in force. */
  readonly config: ServeConfig;
  /** The port actually bound (differs from `config.port` when that was 0). */
  readonly port: number;
  /** Each thread's figures. */
  stats(): ThreadFigures[];
  /** The last number handed out, or `firstNumber - 1` before any. */
  lastNumber(): number;
  /** Stops accepting, finishes replies in flight, closes connections, ends the threads. */
  shutdown(): Promise<void>;
}

/**
 * Starts serving.
 *
 * @param options The configuration; unset fields take their defaults.
 * @param start Logging hooks.
 * @returns The running server.
 * @throws {TypeError | RangeError} For a bad option, naming it.
 * @throws {AddressInUseError} When the address is taken.
 *
 * @example
 * ```ts
 * const server = await startServer({ port: 0, threads: 2 });
 * console.log(server.port);
 * await server.shutdown();
 * ```
 */
export async function startServer(
  options: ServeOptions = {},
  start: StartOptions = {},
): Promise<RunningServer> {
  const config = resolveConfig(options, defaultConfig(availableParallelism()));
  await assertAddressFree(config.host, config.port);
  const counter = SharedCounter.create(config.firstNumber);
  const log = start.log ?? (() => {});
  const pool = await ThreadPool.start(config, counter, {
    log,
    onCrashLoop: start.onCrashLoop ?? ((reason) => log(`crash loop: ${reason}`)),
  });
  return {
    get config() {
      return pool.config;
    },
    port: pool.port,
    stats: () => pool.stats(),
    lastNumber: () => counter.last,
    shutdown: () => pool.shutdown(),
  };
}
