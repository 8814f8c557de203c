/**
 * The supervisor: the first process. It owns the number space (a lease source), starts the
 * serving child processes by running its own executable again, leases them blocks of numbers
 * over their stdin/stdout, restarts a child that dies (with backoff, and gives up on a crash
 * loop), applies configuration changes to every child, and drains them all on shutdown.
 *
 * It never serves clients itself, so a crash in serving code never takes the number space down.
 *
 * @module
 */

import { ProcessStartError } from "./process_start_error.ts";
import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { assertAddressFree } from "../host/address_probe.ts";
import type { RuntimeCapabilities } from "../adapters/runtime_adapter.ts";
import { selfCommand } from "../adapters/self_command.ts";
import { AddressInUseError } from "../host/address_in_use_error.ts";
import type { ServeConfig } from "../config/resolve_config.ts";
import { ConfigKeeper } from "../config/config_keeper.ts";
import type { HostFacts } from "../host/host_facts.ts";
import type { LeaseSource } from "../lease/lease_source.ts";
import type { ThreadFigures } from "../threads/thread_stats.ts";
import { DeathWindow } from "./death_window.ts";
import { monotonicNow } from "../common/clock.ts";
import { childEnvironment } from "./child_env.ts";
import type { ProcessLeasing } from "./process_leasing.ts";
import { LeaseBroker } from "./lease_broker.ts";
import { readJsonLines, writeJsonLine } from "../common/json_lines.ts";
import type { FromChild, ToChild } from "./_process_messages.ts";
import { PendingRequests } from "../common/pending_requests.ts";
import { CHILD_COMMAND } from "./child_command.ts";
import { statsEveryMs } from "./_stats_every.ts";

/** Options for {@linkcode Supervisor.start}. */
export interface SupervisorOptions {
  /** Receives log lines with their level (`info` unless said otherwise). */
  log: (line: string, level?: "info" | "warn" | "error") => void;
  /** What a configuration key set back to its default takes: this host's defaults. */
  defaults: ServeConfig;
  /** What every configuration change is clamped to. */
  host: HostFacts;
  /**
   * What the runtime that serves can do (its adapter's): a change it cannot serve is refused.
   * @default {ANY_RUNTIME}
   */
  capabilities?: RuntimeCapabilities;
  /**
   * Child deaths within `crashWindowMs` that make a crash loop.
   * @default {5}
   */
  crashLimit?: number;
  /** @default {10000} */
  crashWindowMs?: number;
  /** Called once when children crash in a loop; the supervisor then stops. */
  onCrashLoop?: (reason: string) => void;
  /**
   * The highest number the tree this one takes over from (an upgrade) ever leased: every lease
   * must start above it, whatever the source says.
   * @default {none}
   */
  above?: number;
  /**
   * Whether the port is held by the tree this one takes over from, which the children join with
   * SO_REUSEPORT: then the exclusive probe (which would fail against it) is skipped.
   * @default {false}
   */
  sharedPort?: boolean;
  /**
   * Whether the first processes must lease their first block before they listen, and fail to
   * start when they cannot (an upgrade's new tree: it must not take clients, nor the port, from
   * a tree that still has numbers, while it has none).
   * @default {false}
   */
  leaseFirst?: boolean;
}

/** One serving process's figures, as the admin API and the shutdown log show them. */
export interface ProcessFigures {
  index: number;
  pid: number;
  threads: ThreadFigures[];
  /** Leased numbers the process has not handed out yet, as of its last report. */
  numbersRemaining: number;
  /** Resident memory in bytes, as of its last report (0 before the first). */
  rssBytes: number;
  /** CPU seconds it has used, as of its last report (0 before the first). */
  cpuSeconds: number;
  /** Times the process at this index died and was started again since the server started. */
  restarts: number;
  /** Seconds since this process (this pid) was started. */
  uptimeSeconds: number;
  /** Its leases through the supervisor, kept across restarts of the process at this index. */
  leasing: ProcessLeasing;
}

interface Child {
  index: number;
  process: ChildProcess;
  pid: number;
  threads: ThreadFigures[];
  /** Leased numbers the child had left at its last report. */
  numbersRemaining: number;
  exited: Promise<void>;
  /** The configuration generation the child last said it serves with. */
  generation: number;
  /** Set when the supervisor itself ends this child, so its exit is not a crash. */
  retiring: boolean;
  /** Whether it listens (it said so, and has not exited). */
  listening: boolean;
  /** When it was spawned, on the monotonic clock. */
  startedAt: number;
  rssBytes: number;
  cpuSeconds: number;
}

/** The running supervisor. */
export class Supervisor {
  /** The port every child listens on. */
  port = 0;
  /** The configuration in force and the one way to change it (SIGHUP and the admin API). */
  readonly keeper: ConfigKeeper;
  /** Every process's leases, from the one source. */
  readonly #broker: LeaseBroker;
  readonly #log: (line: string, level?: "info" | "warn" | "error") => void;
  readonly #crashLimit: number;
  readonly #crashWindowMs: number;
  readonly #onCrashLoop: (reason: string) => void;
  readonly #children: Child[] = [];
  readonly #deaths: DeathWindow;
  /** Restarts after a death, by process index. */
  readonly #restarts: number[] = [];
  /** The highest number any child ever reported, including children that have since died. */
  #highestNumberSeen = 0;
  #stopping = false;
  #paused = false;
  /**
   * Acknowledgements awaited from the children, by message id (unique across children), each
   * tagged with the configuration generation it needs.
   */
  readonly #acks = new PendingRequests<void, number>();

  private constructor(config: ServeConfig, source: LeaseSource, options: SupervisorOptions) {
    this.keeper = new ConfigKeeper(config, {
      defaults: options.defaults,
      host: options.host,
      ...(options.capabilities === undefined ? {} : { capabilities: options.capabilities }),
      log: options.log,
      apply: (next, generation) => this.#applyConfig(next, generation),
    });
    this.#broker = new LeaseBroker(source, {
      log: options.log,
      ...(options.above === undefined ? {} : { above: options.above }),
    });
    this.#log = options.log;
    this.#crashLimit = options.crashLimit ?? 5;
    this.#crashWindowMs = options.crashWindowMs ?? 10_000;
    this.#deaths = new DeathWindow(this.#crashWindowMs);
    this.#onCrashLoop = options.onCrashLoop ?? (() => {});
  }

  /**
   * Probes the address, then starts `config.processes` children and waits until all listen.
   *
   * @param config The resolved configuration.
   * @param source Where numbers come from.
   * @param options Logging and crash-loop handling.
   * @returns The running supervisor.
   * @throws {AddressInUseError} When the address is taken.
   */
  static async start(
    config: ServeConfig,
    source: LeaseSource,
    options: SupervisorOptions,
  ): Promise<Supervisor> {
    if (options.sharedPort !== true) await assertAddressFree(config.host, config.port);
    const supervisor = new Supervisor(config, source, options);
    try {
      const leaseFirst = options.leaseFirst === true;
      supervisor.port = await supervisor.#startChild(0, config.port, leaseFirst);
      await Promise.all(
        Array.from(
          { length: config.processes - 1 },
          (_, i) => supervisor.#startChild(i + 1, supervisor.port, leaseFirst),
        ),
      );
    } catch (error) {
      await supervisor.kill();
      throw error;
    }
    return supervisor;
  }

  #startChild(index: number, port: number, leaseFirst = false): Promise<number> {
    const self = selfCommand();
    const proc = spawn(self.command, [...self.args, CHILD_COMMAND], {
      stdio: ["pipe", "pipe", "inherit"],
      env: childEnvironment(process.env),
      ...(self.argv0 === undefined ? {} : { argv0: self.argv0 }),
    });
    // A child that could not be started (its executable gone) emits "error" and no "exit": it
    // counts as exited, or a stop would wait for it forever.
    const exited = new Promise<void>((resolve) => {
      proc.once("exit", () => resolve());
      proc.once("error", () => resolve());
    });
    const child: Child = {
      index,
      process: proc,
      pid: proc.pid ?? 0,
      threads: [],
      numbersRemaining: 0,
      exited,
      retiring: false,
      listening: false,
      generation: this.keeper.generation,
      startedAt: monotonicNow(),
      rssBytes: 0,
      cpuSeconds: 0,
    };
    this.#children[index] = child;
    return new Promise((resolve, reject) => {
      let listening = false;
      readJsonLines<FromChild>(proc.stdout!, {
        onMessage: (message) => {
          switch (message.type) {
            case "listening":
              listening = true;
              child.listening = true;
              child.numbersRemaining = message.remaining ?? 0;
              if (this.#paused) this.#send(child, { type: "pause", id: this.#acks.nextId() });
              this.#log(`process ${index} listening (pid ${message.pid})`);
              resolve(message.port);
              break;
            case "failed":
              reject(
                message.code === "EADDRINUSE"
                  ? new AddressInUseError(message.message)
                  : new ProcessStartError(`process ${index} failed to start: ${message.message}`),
              );
              break;
            case "lease":
              this.#lease(child, message.id, message.count);
              break;
            case "ack": {
              // Counted only from a child that serves with the generation asked for: one that
              // acknowledged without applying it would leave a process on the old configuration.
              if (message.generation !== undefined) child.generation = message.generation;
              const needed = this.#acks.tagOf(message.id);
              if (needed !== undefined && child.generation >= needed) {
                this.#acks.answer(message.id, undefined);
              }
              break;
            }
            case "stats":
              child.numbersRemaining = message.remaining;
              child.threads = message.threads;
              if (message.health) {
                child.rssBytes = message.health.rssBytes;
                child.cpuSeconds = message.health.cpuSeconds;
              }
              this.#noteHighest(message.threads);
              break;
            case "drained":
              child.threads = message.threads;
              child.numbersRemaining = message.remaining;
              this.#noteHighest(message.threads);
              break;
          }
        },
        onEnd: () => {},
        onBadLine: (line) =>
          this.#log(`process ${index} wrote a line that is not JSON: ${line}`, "warn"),
      });
      proc.once("exit", (code, signal) => {
        child.listening = false;
        if (!listening) {
          reject(
            new Error(`process ${index} exited (${signal ?? `code ${code}`}) before listening`),
          );
          return;
        }
        if (!this.#stopping && !child.retiring) this.#childDied(child, signal ?? `code ${code}`);
      });
      proc.once("error", (error) => {
        child.listening = false;
        if (!listening) {
          reject(new ProcessStartError(`process ${index} could not start: ${error.message}`));
        }
      });
      proc.stdin!.on("error", () => {}); // a dead child's stdin: its exit is handled above
      // The configuration in force now: a change that lands while this child starts is sent to
      // it as well, and the child applies it once its server exists.
      this.#send(child, {
        type: "start",
        index,
        port,
        config: this.keeper.config,
        generation: this.keeper.generation,
        ...(leaseFirst ? { leaseFirst } : {}),
      });
    });
  }

  /** Sends every child a message it acknowledges; resolves when all have, or have died. */
  #everyChild(message: (id: number) => ToChild, generation = 0): Promise<unknown> {
    return Promise.all(
      this.#children.filter((c) => c !== undefined).map((child) =>
        this.#askChild(child, message, generation)
      ),
    );
  }

  #askChild(child: Child, message: (id: number) => ToChild, generation = 0): Promise<unknown> {
    return this.#acks.ask((id) => {
      // A child that dies meanwhile answers by dying: it is restarted with the change.
      child.exited.then(() => this.#acks.answer(id, undefined));
      this.#send(child, message(id));
    }, generation);
  }

  #send(child: Child, message: ToChild): Promise<void> {
    if (child.process.stdin?.writable !== true) return Promise.resolve();
    return writeJsonLine(child.process.stdin, message);
  }

  #lease(child: Child, id: number, count: number): void {
    void this.#broker.lease(child.index, count).then((answer) =>
      this.#send(
        child,
        "first" in answer
          ? { type: "grant", id, first: answer.first }
          : { type: "deny", id, message: answer.denied },
      )
    );
  }

  #childDied(child: Child, how: string): void {
    const deaths = this.#deaths.record();
    if (deaths >= this.#crashLimit) {
      this.#onCrashLoop(
        `${deaths} child processes died within ${this.#crashWindowMs} ms` +
          ` (last: process ${child.index}, ${how})`,
      );
      return;
    }
    // Back off 100 ms, 200 ms, 400 ms ... for deaths close together.
    const delay = Math.min(100 * 2 ** (deaths - 1), 5000);
    this.#log(
      `process ${child.index} (pid ${child.pid}) died (${how}); restarting in ${delay} ms`,
      "warn",
    );
    this.#restarts[child.index] = (this.#restarts[child.index] ?? 0) + 1;
    setTimeout(() => {
      if (this.#stopping || this.#children[child.index] !== child) return;
      // A failed start is the new child's death: passing the old one would be ignored above
      // (it is no longer this.#children[index]) and the process would never come back.
      this.#startChild(child.index, this.port).catch((error) =>
        this.#childDied(this.#children[child.index] ?? child, (error as Error).message)
      );
    }, delay);
  }

  /**
   * Stops leasing for an upgrade (see {@linkcode LeaseBroker.release}).
   *
   * @returns The highest number this tree was ever granted.
   */
  releaseSource(): Promise<number> {
    return this.#broker.release();
  }

  /**
   * Leases from `source` from now on, and grants the leases that waited since
   * {@linkcode releaseSource} (see {@linkcode LeaseBroker.adopt}).
   *
   * @param source Where numbers come from now.
   */
  adoptSource(source: LeaseSource): void {
    this.#broker.adopt(source);
  }

  /**
   * Leases `count` numbers for the tree this one took over from (see
   * {@linkcode LeaseBroker.leaseFor}).
   *
   * @param count How many.
   * @returns The first.
   */
  leaseFor(count: number): Promise<number> {
    return this.#broker.leaseFor(count);
  }

  /** Connections open in every process, as of their last reports (each second). */
  connectionsOpen(): number {
    let open = 0;
    for (const child of this.#children) {
      for (const thread of child?.threads ?? []) open += thread.connectionsActive;
    }
    return open;
  }

  /** How often each serving process reports its figures: once a second (faster only in tests). */
  get statsEveryMs(): number {
    return statsEveryMs(process.env);
  }

  /** The configuration in force. */
  get config(): ServeConfig {
    return this.keeper.config;
  }

  /** Bumped by every applied change; the admin API's ETag. */
  get generation(): number {
    return this.keeper.generation;
  }

  /** Where numbers come from. */
  get source(): LeaseSource {
    return this.#broker.source;
  }

  /**
   * Puts a planned configuration in force on every child (the keeper's `apply`): live keys change
   * at once, the process count grows or shrinks. Resolves once every child serves with it; a
   * child that dies meanwhile is restarted with it anyway.
   */
  async #applyConfig(next: ServeConfig, generation: number): Promise<void> {
    await this.#everyChild(
      (id) => ({ type: "configure", id, config: next, generation }),
      generation,
    );
    const current = this.#children.length;
    if (next.processes > current) {
      await Promise.all(
        Array.from(
          { length: next.processes - current },
          (_, i) => this.#startChild(current + i, this.port),
        ),
      );
    } else if (next.processes < current) {
      const surplus = this.#children.splice(next.processes);
      await Promise.all(surplus.map((child) => this.#drainChild(child)));
    }
  }

  /**
   * Whether every listening process can number a new client now: false while the source is
   * refused as gone backwards, or while some process has used up the numbers it holds (leasing
   * fails, or waits on an upgrade's handover). Each process reports at once when it runs out and
   * when it has numbers again, so `/readyz` follows within about 100 ms.
   */
  numbersAvailable(): boolean {
    if (this.#broker.refusing) return false;
    return this.#children.every((child) =>
      child === undefined || !child.listening || child.retiring || child.numbersRemaining > 0
    );
  }

  /** Whether it is stopping (a drain or a kill has begun). */
  get stopping(): boolean {
    return this.#stopping;
  }

  #noteHighest(threads: ThreadFigures[]): void {
    for (const thread of threads) {
      this.#highestNumberSeen = Math.max(this.#highestNumberSeen, thread.lastNumber);
    }
  }

  /** Whether accepting is paused. */
  get paused(): boolean {
    return this.#paused;
  }

  /**
   * Stops or starts accepting in every process (and in processes started later); open
   * connections are served either way. While paused the kernel refuses new connections.
   *
   * @param paused Whether to stop accepting.
   */
  async setPaused(paused: boolean): Promise<void> {
    this.#paused = paused;
    if (paused) {
      // One process's listeners at a time: when two listeners of the port's SO_REUSEPORT group
      // close at once, the kernel may move a queued connection from the first to the second
      // just as the second empties its queue, and that connection is reset (tcp_migrate_req).
      // Closed one after the other, each queue moves to a listener that stays. A handshake
      // completing at the moment of a close is reset as well; that the adapter prevents
      // (server/adapters/_quiet_listener.ts: the resets measured over 50 upgrades were those).
      for (const child of this.#children) {
        if (child !== undefined) await this.#askChild(child, (id) => ({ type: "pause", id }));
      }
    } else {
      await this.#everyChild((id) => ({ type: "resume", id }));
    }
    this.#log(paused ? "listener paused: not accepting" : "listener resumed: accepting");
  }

  /** Each serving process's latest figures (reported every second). */
  processes(): ProcessFigures[] {
    const now = monotonicNow();
    return this.#children.filter((c) => c !== undefined).map((c) => ({
      index: c.index,
      pid: c.pid,
      threads: c.threads,
      numbersRemaining: c.numbersRemaining,
      rssBytes: c.rssBytes,
      cpuSeconds: c.cpuSeconds,
      restarts: this.#restarts[c.index] ?? 0,
      uptimeSeconds: (now - c.startedAt) / 1000,
      leasing: this.#broker.leasing(c.index),
    }));
  }

  /** The highest number any child has reported handing out. */
  lastNumber(): number {
    let highest = this.#highestNumberSeen;
    for (const child of this.#children) {
      for (const thread of child?.threads ?? []) highest = Math.max(highest, thread.lastNumber);
    }
    return highest;
  }

  async #drainChild(child: Child): Promise<void> {
    child.retiring = true;
    await this.#send(child, { type: "drain" });
    const grace = this.keeper.config.drainTimeoutMs + 2000;
    const timer = setTimeout(() => child.process.kill("SIGKILL"), grace);
    await child.exited;
    clearTimeout(timer);
  }

  /**
   * Drains every child (they stop accepting, finish replies in flight, close connections and
   * exit) within the drain timeout, killing any that overrun, then closes the lease source.
   */
  async shutdown(): Promise<void> {
    this.#stopping = true;
    await Promise.all(
      this.#children.filter((c) => c !== undefined).map((c) => this.#drainChild(c)),
    );
    await this.#broker.close();
  }

  /** Kills every child at once (a second signal, or a failed start) and closes the source. */
  async kill(): Promise<void> {
    this.#stopping = true;
    for (const child of this.#children) child?.process.kill("SIGKILL");
    await Promise.all(this.#children.filter((c) => c !== undefined).map((c) => c.exited));
    await this.#broker.close();
  }
}
