/**
 * The main thread's side of the worker threads: starts them on one port, restarts one that dies,
 * grows or shrinks the pool live, passes configuration changes on and drains them all on
 * shutdown.
 *
 * @module
 */

import { LIMITS, type ServeConfig } from "../config/resolve_config.ts";
import { AddressInUseError } from "../host/address_in_use_error.ts";
import type { NumberLedger } from "../numbering/number_ledger.ts";
import { createGateBuffers, setOutOfDescriptors } from "../limits/connection_gate.ts";
import { monotonicNow } from "../common/clock.ts";
import { DeathWindow } from "../process/death_window.ts";
import { createStatsBuffer, readStats, type ThreadFigures } from "./thread_stats.ts";
import type { FromWorker, ToWorker } from "./_thread_messages.ts";
import { InlineThread, type ThreadPort } from "./inline_thread.ts";
import { endTurn } from "../common/listen_turns.ts";
import type { RuntimeAdapter } from "../adapters/mod.ts";

/** Options for {@linkcode ThreadPool.start}. */
export interface ThreadPoolOptions {
  /** Called with one line for the log; defaults to doing nothing. */
  log?: (line: string) => void;
  /**
   * Called when threads die faster than they can usefully be restarted: more than
   * `crashLimit` deaths within `crashWindowMs`.
   */
  onCrashLoop?: (reason: string) => void;
  /** Called when a thread had to wait for numbers, so more are leased at once. */
  onStarved?: () => void;
  /** Called when a thread numbered past the ledger's low-water mark, so more are leased now. */
  onLow?: () => void;
  /**
   * The runtime's adapter, for a pool started with one thread to serve it on this thread
   * (inline_thread.ts); without it every thread is a worker, which picks the runtime itself.
   */
  runtime?: RuntimeAdapter;
  /** @default {5} */
  crashLimit?: number;
  /** @default {10000} */
  crashWindowMs?: number;
}

// From source, and in `deno compile` output (which keeps module paths), the worker entry sits
// beside this module. `bun build --compile --splitting` (Bun 1.4) bundles this module into a chunk
// at the bundle's root, so `import.meta.url` names that chunk and the worker entry, included by
// compile.sh as a second entry point, is at `server/threads/worker_main.ts` under the root.
const WORKER_URL = import.meta.url.endsWith("/thread_pool.ts")
  ? new URL("./worker_main.ts", import.meta.url).href
  : new URL("./server/threads/worker_main.ts", import.meta.url).href;

/**
 * The turns every thread of this process takes to open a listener (common/listen_turns.ts): one
 * lock for the process, not one a pool, since a listener another pool opened in a thread's turn
 * could pass for its own; and each thread's id in them, unique across pools.
 */
const PROCESS_LISTEN_LOCK = new SharedArrayBuffer(4);
let nextListenHolder = 1;

interface Slot {
  /** A `Worker`, or thread 0 of a pool started with one thread, run inline (inline_thread.ts). */
  worker: ThreadPort;
  /** Its id in the listen turns. */
  listenHolder: number;
  listening: boolean;
  retired: boolean;
  /** Resolvers waiting for this thread to acknowledge a change, oldest first. */
  acks: Array<() => void>;
}

/**
 * Serving threads sharing one port, one number ledger and one stats buffer. A pool started with
 * one thread serves it on this thread (inline_thread.ts) instead of in a worker: thread 0 stays
 * there for the pool's life, and threads added live are workers beside it. A worker that dies is
 * started again; an error in the inline thread ends the process, whose supervisor starts another.
 */
export class ThreadPool {
  /** The port every thread listens on. */
  port = 0;
  /** Rows for the most threads a pool can have, so it can grow without moving them. */
  readonly statsBuffer: SharedArrayBuffer = createStatsBuffer(LIMITS.threads.max);
  #config: ServeConfig;
  readonly #ledger: NumberLedger;
  readonly #slots: Slot[] = [];
  readonly #log: (line: string) => void;
  readonly #onCrashLoop: (reason: string) => void;
  readonly #onStarved: () => void;
  readonly #onLow: () => void;
  readonly #crashLimit: number;
  readonly #runtime: RuntimeAdapter | undefined;
  readonly #crashWindowMs: number;
  readonly #deaths: DeathWindow;
  readonly #gateBuffers = createGateBuffers();
  #paused = false;
  #stopping = false;

  private constructor(config: ServeConfig, ledger: NumberLedger, options: ThreadPoolOptions) {
    this.#config = config;
    this.#ledger = ledger;
    this.#log = options.log ?? (() => {});
    this.#onCrashLoop = options.onCrashLoop ?? (() => {});
    this.#onStarved = options.onStarved ?? (() => {});
    this.#onLow = options.onLow ?? (() => {});
    this.#crashLimit = options.crashLimit ?? 5;
    this.#runtime = options.runtime;
    this.#crashWindowMs = options.crashWindowMs ?? 10_000;
    this.#deaths = new DeathWindow(this.#crashWindowMs);
  }

  /**
   * Starts `config.threads` threads listening on `config.host:port`. With port 0 the first thread
   * picks a free port and the others join it.
   *
   * @param config The resolved configuration.
   * @param ledger The numbers every thread takes from.
   * @param port The port to bind (overrides `config.port`, so a process can join a port its
   *   supervisor already picked).
   * @param options Logging and crash-loop handling.
   * @returns The running pool.
   * @throws {AddressInUseError} When the address is taken.
   */
  static async start(
    config: ServeConfig,
    ledger: NumberLedger,
    port: number,
    options: ThreadPoolOptions = {},
  ): Promise<ThreadPool> {
    const pool = new ThreadPool(config, ledger, options);
    try {
      pool.port = await pool.#startThread(0, port, config.threads === 1);
      await Promise.all(
        Array.from({ length: config.threads - 1 }, (_, i) => pool.#startThread(i + 1, pool.port)),
      );
    } catch (error) {
      pool.#stopping = true;
      for (const slot of pool.#slots) if (slot) terminate(slot);
      throw error;
    }
    return pool;
  }

  #startThread(thread: number, port: number, inline = false): Promise<number> {
    const worker: ThreadPort = inline && this.#runtime !== undefined
      ? new InlineThread(this.#runtime)
      : new Worker(WORKER_URL, { type: "module" });
    const slot: Slot = {
      worker,
      listenHolder: nextListenHolder++,
      listening: false,
      retired: false,
      acks: [],
    };
    this.#slots[thread] = slot;
    return new Promise((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<FromWorker>) => {
        const message = event.data;
        if (message.type === "starved") this.#onStarved();
        else if (message.type === "low") this.#onLow();
        else if (message.type === "clock") {
          this.#post(worker, { type: "clock", now: monotonicNow() });
        } else if (message.type === "ack") slot.acks.shift()?.();
        else if (message.type === "listening") {
          slot.listening = true;
          if (this.#paused) {
            slot.acks.push(() => {});
            this.#post(worker, { type: "pause" });
          }
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
        if (!slot.retired) this.#restart(thread, event.message);
      };
      this.#post(worker, {
        type: "start",
        config: this.#config,
        port,
        thread,
        ledgerBuffer: this.#ledger.buffer,
        statsBuffer: this.statsBuffer,
        gateBuffers: this.#gateBuffers,
        listenLock: PROCESS_LISTEN_LOCK,
        listenHolder: slot.listenHolder,
      });
    });
  }

  #restart(thread: number, reason: string): void {
    if (this.#stopping) return;
    const dead = this.#slots[thread];
    if (dead) terminate(dead);
    // The thread that replaces it starts with the configuration and pause state in force, so
    // what the dead one still owed an acknowledgement for is in force there: release the waiters
    // rather than leave a change waiting for a thread that no longer exists.
    for (const ack of dead?.acks.splice(0) ?? []) ack();
    const deaths = this.#deaths.record();
    if (deaths > this.#crashLimit) {
      this.#onCrashLoop(
        `${deaths} threads died within ${this.#crashWindowMs} ms; last: ${reason}`,
      );
      return;
    }
    this.#log(`thread ${thread} died (${reason}); restarting it`);
    this.#startThread(thread, this.port).catch((error) =>
      this.#restart(thread, (error as Error).message)
    );
  }

  #post(worker: ThreadPort, message: ToWorker): void {
    worker.postMessage(message);
  }

  /** The configuration the threads serve with. */
  get config(): ServeConfig {
    return this.#config;
  }

  /** Threads serving now. */
  get threads(): number {
    return this.#slots.length;
  }

  /**
   * Passes a new configuration to every thread; it applies to the next message each reads.
   * A new thread count grows or shrinks the pool: new threads join the port, surplus ones drain
   * (their connections finish) and end. Resolves once every thread serves with it.
   *
   * @param config The new configuration (same host and port).
   */
  async configure(config: ServeConfig): Promise<void> {
    this.#config = config;
    // Resolves once every thread has confirmed, so a client that connects after this returns is
    // served with the new configuration.
    await this.#everyThread({ type: "configure", config });
    const current = this.#slots.length;
    if (config.threads > current) {
      await Promise.all(
        Array.from(
          { length: config.threads - current },
          (_, i) => this.#startThread(current + i, this.port),
        ),
      );
    } else if (config.threads < current) {
      const surplus = this.#slots.splice(config.threads);
      await Promise.all(surplus.map((slot) => this.#drainSlot(slot)));
      this.#log(`threads: ${current} -> ${config.threads}`);
    }
  }

  /**
   * Stops or starts accepting on every thread, now and for threads started later; open
   * connections are served either way. Resolves once every thread has done so.
   *
   * @param paused Whether to stop accepting.
   */
  async setPaused(paused: boolean): Promise<void> {
    this.#paused = paused;
    await this.#everyThread({ type: paused ? "pause" : "resume" });
  }

  /**
   * Closes every new connection at once (counted as `rejectedNoDescriptors`) while the process is
   * out of file descriptors, or serves them again; open connections are served either way.
   *
   * @param out Whether the process is out of descriptors (see descriptor_watch.ts).
   */
  setOutOfDescriptors(out: boolean): void {
    setOutOfDescriptors(this.#gateBuffers, out);
  }

  /** Sends a message every thread acknowledges, and resolves once all have. */
  #everyThread(message: ToWorker): Promise<unknown> {
    return Promise.all(this.#slots.map((slot) =>
      new Promise<void>((resolve) => {
        slot.acks.push(resolve);
        this.#post(slot.worker, message);
      })
    ));
  }

  /**
   * The figures of the threads serving now, in thread order. A thread retired by a shrink drops
   * out; one started again in its place continues its row, so counters never go backwards.
   */
  stats(): ThreadFigures[] {
    return readStats(this.statsBuffer).slice(0, this.#slots.length);
  }

  #drainSlot(slot: Slot): Promise<void> {
    slot.retired = true;
    const grace = this.#config.drainTimeoutMs + 1000;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, grace);
      slot.worker.onmessage = (event: MessageEvent<FromWorker>) => {
        if (event.data.type !== "drained") return;
        clearTimeout(timer);
        resolve();
      };
      this.#post(slot.worker, { type: "drain" });
    }).then(() => terminate(slot));
  }

  /**
   * Drains every thread (stop accepting, finish replies in flight, close connections) and ends
   * them. Resolves within the configured drain timeout plus a short grace.
   */
  async shutdown(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.#slots.map((slot) => this.#drainSlot(slot)));
  }
}

/** Ends a thread; a turn it held to listen (a worker ended inside it) is given back. */
function terminate(slot: Slot): void {
  slot.worker.terminate();
  endTurn({ lock: new Int32Array(PROCESS_LISTEN_LOCK), holder: slot.listenHolder });
}
