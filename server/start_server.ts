/**
 * Starts a tallyho server in this process: validated configuration, a number ledger kept supplied
 * by a lease source, and a pool of worker threads on one port. The supervisor runs one of these
 * in each child process; tests and embedders can run one directly.
 *
 * @module
 */

import { assertAddressFree } from "./host/address_probe.ts";
import { runtime, type RuntimeCapabilities } from "./adapters/mod.ts";
import { DescriptorWatch } from "./host/descriptor_watch.ts";
import {
  defaultConfig,
  resolveConfig,
  type ServeConfig,
  type ServeOptions,
} from "./config/resolve_config.ts";
import { readHostFacts } from "./host/host_facts.ts";
import { LeaseKeeper } from "./numbering/lease_keeper.ts";
import { MemoryLeaseSource } from "./lease/lease_source.ts";
import { BLOCK_SIZE, NumberLedger } from "./numbering/number_ledger.ts";
import { ThreadPool } from "./threads/thread_pool.ts";
import type { ThreadFigures } from "./threads/thread_stats.ts";

/** Options for {@linkcode startServer} beyond the configuration. */
export interface StartOptions {
  /**
   * What the runtime that serves can do; this is an entry point (an embedder's), so it defaults
   * to the adapter of the runtime it runs on.
   * @default {runtime.capabilities from server/adapters/mod.ts}
   */
  capabilities?: RuntimeCapabilities;
  /** Receives log lines; defaults to doing nothing. */
  log?: (line: string) => void;
  /** Called when threads crash in a loop; defaults to logging. */
  onCrashLoop?: (reason: string) => void;
  /**
   * Leases `count` numbers and resolves with the first. Defaults to an in-memory source starting
   * at `firstNumber` (unique while this process lives).
   */
  leaseNumbers?: (count: number) => Promise<number>;
  /**
   * Port to join instead of `config.port`, and skip the probe: the supervisor already probed it
   * and another process of the same server may hold it.
   */
  joinPort?: number;
  /**
   * Watch this process's file descriptors and refuse new connections at once (counted) while
   * none is left, rather than leave them queued (see descriptor_watch.ts).
   * @default {true}
   */
  watchDescriptors?: boolean;
  /**
   * Fail to start, rather than listen and refuse clients, when the first lease fails: an
   * upgrade's new tree must hold numbers before it shares the port with a tree that has some.
   * @default {false}
   */
  leaseFirst?: boolean;
}

/** A running server. */
export interface RunningServer {
  /** The configuration in force. */
  readonly config: ServeConfig;
  /** The port actually bound (differs from `config.port` when that was 0). */
  readonly port: number;
  /** Each thread's figures. */
  stats(): ThreadFigures[];
  /** The highest number handed out so far, or 0 before any. */
  lastNumber(): number;
  /** Stops or starts accepting on every thread; open connections are served either way. */
  setPaused(paused: boolean): Promise<void>;
  /**
   * Leased numbers not yet handed out: when 0 and the lease source is down, new clients are
   * closed unanswered.
   */
  numbersRemaining(): number;
  /** Applies a new configuration (same host and port) to every thread. */
  configure(config: ServeConfig): Promise<void>;
  /** Stops accepting, finishes replies in flight, closes connections, ends the threads. */
  shutdown(): Promise<void>;
}

/**
 * Starts serving.
 *
 * @param options The configuration; unset fields take their defaults.
 * @param start Logging hooks and the lease source.
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
  const config = resolveConfig(
    options,
    defaultConfig(readHostFacts()),
    start.capabilities ?? runtime.capabilities,
  );
  if (start.joinPort === undefined) await assertAddressFree(config.host, config.port);
  const log = start.log ?? (() => {});
  const source = new MemoryLeaseSource(config.firstNumber);
  const leaseNumbers = start.leaseNumbers ?? ((count: number) => source.lease(count));
  const ledger = NumberLedger.create();
  const keeper = new LeaseKeeper(ledger, (blocks) => leaseNumbers(blocks * BLOCK_SIZE), {
    onError: (error) => log(`cannot lease numbers: ${error.message}; retrying`),
  });
  let pool: ThreadPool;
  try {
    try {
      await keeper.prime();
    } catch (error) {
      if (start.leaseFirst === true) {
        throw new Error(`cannot lease numbers: ${(error as Error).message}`);
      }
      // A process (re)started while the source is down (Redis unreachable) listens anyway and
      // refuses clients with a clean close until the keeper's retries get a lease. Failing here
      // would make the supervisor restart it in a loop and then stop the whole server, taking
      // down the processes that still hold numbers.
      log(
        `cannot lease numbers yet: ${
          (error as Error).message
        }; refusing clients until a lease succeeds`,
      );
    }
    pool = await ThreadPool.start(config, ledger, start.joinPort ?? config.port, {
      log,
      runtime,
      onCrashLoop: start.onCrashLoop ?? ((reason) => log(`crash loop: ${reason}`)),
      onStarved: () => keeper.starved(),
      onLow: () => keeper.check(),
    });
  } catch (error) {
    keeper.stop();
    throw error;
  }
  const watch = start.watchDescriptors === false ? null : watchDescriptors(pool, log);
  return {
    get config() {
      return pool.config;
    },
    port: pool.port,
    stats: () => pool.stats(),
    lastNumber: () => Math.max(0, ...pool.stats().map((thread) => thread.lastNumber)),
    numbersRemaining: () => Math.max(0, ledger.remaining),
    configure: (next) => pool.configure(next),
    setPaused: (paused) => pool.setPaused(paused),
    shutdown: async () => {
      watch?.stop();
      await pool.shutdown();
      keeper.stop();
    },
  };
}

/** Refuses new connections while the process is out of descriptors, saying so once each way. */
function watchDescriptors(pool: ThreadPool, log: (line: string) => void): DescriptorWatch {
  const refused = () => pool.stats().reduce((sum, thread) => sum + thread.rejectedNoDescriptors, 0);
  let before = 0;
  return new DescriptorWatch({
    onChange: (out) => {
      pool.setOutOfDescriptors(out);
      if (out) {
        before = refused();
        log(
          "out of file descriptors: new connections are closed at once and counted as " +
            "rejected (no_descriptors) until some are free; open ones are still served",
        );
      } else {
        log(`file descriptors free again: serving new connections (${refused() - before} refused)`);
      }
    },
  });
}
