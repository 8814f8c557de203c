/**
 * The main thread's side of the worker threads: starts them on one port, restarts one that dies,
 * passes configuration changes on and drains them all on shutdown.
 *
 * @module
 */

import type { ServeConfig } from "./config.ts";
import { AddressInUseError } from "./adapters/thread_listener.ts";
import type { SharedCounter } from "./shared_counter.ts";
import { createStatsBuffer, readStats, type ThreadFigures } from "./thread_stats.ts";
import type { FromWorker, ToWorker } from "./_thread_messages.ts";

/** Options for {@linkcode ThreadPool.start}. */
export interface ThreadPoolOptions {
  /** Called with one line for the log; defaults to doing nothing. */
  log?: (line: string) => void;
  /**
   * Called when threads die faster than they can usefully be restarted: more than
   * `crashLimit` deaths within `crashWindowMs`.
   */
  onCrashLoop?: (reason: string) => void;
  /** @default {5} */
  crashLimit?: number;
  /** @default {10000} */
  crashWindowMs?: number;
}

// From source, and in `deno compile` output (which keeps module paths), the worker entry sits
// beside this module. `bun build --compile` (Bun 1.4) bundles this module into the executable's
// entry, so `import.meta.url` names the executable and the worker entry, included by compile.sh as
// a second entry point, is at `server/worker_main.ts` under the bundle's root.
const WORKER_URL = import.meta.url.endsWith("/thread_pool.ts")
  ? new URL("./worker_main.ts", import.meta.url).href
  : new URL("./server/worker_main.ts", import.meta.url).href;

interface Slot {
  worker: Worker;
  listening: boolean;
}

/** Worker threads sharing one port, one counter and one stats buffer. */
export class ThreadPool {
  /** The port every thread listens on. */
  port = 0;
  readonly statsBuffer: SharedArrayBuffer;
  #config: ServeConfig;
  readonly #counter: SharedCounter;
  readonly #slots: Slot[] = [];
  readonly #log: (line: string) => void;
  readonly #onCrashLoop: (reason: string) => void;
  readonly #crashLimit: number;
  readonly #crashWindowMs: number;
  readonly #deaths: number[] = [];
  #stopping = false;

  private constructor(config: ServeConfig, counter: SharedCounter, options: ThreadPoolOptions) {
    this.#config = config;
    this.#counter = counter;
    this.statsBuffer = createStatsBuffer(config.threads);
    this.#log = options.log ?? (() => {});
    this.#onCrashLoop = options.onCrashLoop ?? (() => {});
    this.#crashLimit = options.crashLimit ?? 5;
    this.#crashWindowMs = options.crashWindowMs ?? 10_000;
  }

  /**
   * Starts `config.threads` threads listening on `config.host:config.port`. With port 0 the first
   * thread picks a free port and the others join it.
   *
   * @param config The resolved configuration.
   * @param counter The counter every thread takes numbers from.
   * @param options Logging and crash-loop handling.
   * @returns The running pool.
   * @throws {AddressInUseError} When the address is taken.
   */
  static async start(
    config: ServeConfig,
    counter: SharedCounter,
    options: ThreadPoolOptions = {},
  ): Promise<ThreadPool> {
    const pool = new ThreadPool(config, counter, options);
    try {
      pool.port = await pool.#startThread(0, config.port);
      await Promise.all(
        Array.from({ length: config.threads - 1 }, (_, i) => pool.#startThread(i + 1, pool.port)),
      );
    } catch (error) {
      pool.#stopping = true;
      for (const slot of pool.#slots) slot?.worker.terminate();
      throw error;
    }
    return pool;
  }

  #startThread(thread: number, port: number): Promise<number> {
    const worker = new Worker(WORKER_URL, { type: "module" });
    const slot: Slot = { worker, listening: false };
    this.#slots[thread] = slot;
    return new Promise((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<FromWorker>) => {
        const message = event.data;
        if (message.type === "listening") {
          slot.listening = true;
          resolve(message.port);
        } else if (message.type === "failed") {
          const error = message.code === "EADDRINUSE"
            ? new AddressInUseError(message.message)
            : new Error(message.message);
          reject(error);
        }
      };
      worker.onerror = (event: ErrorEvent) => {
        event.preventDefault?.();
        if (!slot.listening) {
          reject(new Error(`Thread ${thread} failed to start: ${event.message}`));
          return;
        }
        this.#restart(thread, event.message);
      };
      this.#post(worker, {
        type: "start",
        config: this.#config,
        port,
        thread,
        counterBuffer: this.#counter.buffer,
        statsBuffer: this.statsBuffer,
      });
    });
  }

  #restart(thread: number, reason: string): void {
    if (this.#stopping) return;
    this.#slots[thread]?.worker.terminate();
    const now = Date.now();
    this.#deaths.push(now);
    while (this.#deaths.length > 0 && this.#deaths[0]! < now - this.#crashWindowMs) {
      this.#deaths.shift();
    }
    if (this.#deaths.length > this.#crashLimit) {
      this.#onCrashLoop(
        `${this.#deaths.length} threads died within ${this.#crashWindowMs} ms; last: ${reason}`,
      );
      return;
    }
    this.#log(`thread ${thread} died (${reason}); restarting it`);
    this.#startThread(thread, this.port).catch((error) =>
      this.#restart(thread, (error as Error).message)
    );
  }

  #post(worker: Worker, message: ToWorker): void {
    worker.postMessage(message);
  }

  /** The configuration the threads serve with. */
  get config(): ServeConfig {
    return this.#config;
  }

  /**
   * Passes a new configuration to every thread; it applies to the next message each reads.
   *
   * @param config The new configuration (same host, port and thread count).
   */
  configure(config: ServeConfig): void {
    this.#config = config;
    for (const slot of this.#slots) this.#post(slot.worker, { type: "configure", config });
  }

  /** Each thread's figures, in thread order. */
  stats(): ThreadFigures[] {
    return readStats(this.statsBuffer);
  }

  /**
   * Drains every thread (stop accepting, finish replies in flight, close connections) and ends
   * them. Resolves within the configured drain timeout plus a short grace.
   */
  async shutdown(): Promise<void> {
    this.#stopping = true;
    const grace = this.#config.drainTimeoutMs + 1000;
    await Promise.all(this.#slots.map((slot) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, grace);
        slot.worker.onmessage = (event: MessageEvent<FromWorker>) => {
          if (event.data.type !== "drained") return;
          clearTimeout(timer);
          resolve();
        };
        this.#post(slot.worker, { type: "drain" });
      })
    ));
    for (const slot of this.#slots) slot.worker.terminate();
  }
}
