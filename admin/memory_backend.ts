/**
 * An {@linkcode AdminBackend} held in memory: what the admin API's tests run against, and the
 * reference for what a real backend must do (plan every change through a `ConfigKeeper`, which
 * checks the generation and changes the configuration in one step; keep the listener's state
 * rules).
 *
 * @module
 */

import process from "node:process";
import {
  defaultConfig,
  type ServeConfig,
  type ServeOptions,
} from "../server/config/resolve_config.ts";
import { configToJson } from "../server/config/config_json.ts";
import { ConfigKeeper } from "../server/config/config_keeper.ts";
import { planConfig } from "../server/config/config_plan.ts";
import type { HostFacts } from "../server/host/host_facts.ts";
import { monotonicNow } from "../server/common/clock.ts";
import { RUNTIME, RUNTIME_VERSION } from "../server/adapters/mod.ts";
import { VERSION } from "../server/common/version.ts";
import type {
  AdminBackend,
  AdminInfo,
  ApplyConfigOptions,
  ConfigChange,
  ConfigSnapshot,
  ListenerState,
  ProcessStats,
} from "./backend.ts";
import { outcome, PATCH_ORIGIN, patchRequest } from "./patch_request.ts";
import { StateConflictError } from "./errors.ts";

/** Options for {@linkcode MemoryBackend}. */
export interface MemoryBackendOptions {
  /**
   * The configuration at start, over `defaults`.
   * @default {{}}
   */
  config?: ServeOptions;
  /**
   * What a key set to `null` returns to.
   * @default {defaultConfig(2)}
   */
  defaults?: ServeConfig;
  /**
   * The figures `stats()` reports until {@linkcode MemoryBackend.setStats} changes them.
   * @default {[]}
   */
  stats?: ProcessStats[];
  /**
   * The port reported as bound, when the configuration asks for port 0.
   * @default {the configured port}
   */
  boundPort?: number;
  /**
   * The clock, in milliseconds, for the uptime (monotonic: a step of the wall clock is no uptime).
   * @default {monotonicNow}
   */
  now?: () => number;
  /**
   * The host every change is clamped to.
   * @default {MEMORY_HOST: 2 cores, 20,000 open files, 4 GiB}
   */
  host?: HostFacts;
  /**
   * Receives the one line each applied change gets, as a server's log would.
   * @default {() => {}}
   */
  log?: (line: string, level?: "info" | "warn") => void;
}

/** The host a memory backend clamps to unless told otherwise: what `defaultConfig(2)` assumes. */
export const MEMORY_HOST: HostFacts = {
  cores: 2,
  openFiles: 20_000,
  memoryBytes: 4 * 1024 ** 3,
};

/** An admin backend with no server behind it. */
export class MemoryBackend implements AdminBackend {
  /** The listener's state. */
  state: ListenerState = "running";
  /** Whether numbers can be handed out (`/readyz` is 503 when not). */
  numbersAvailable = true;
  readonly #keeper: ConfigKeeper;
  readonly #boundPort: number;
  readonly #now: () => number;
  readonly #startedAt: number;
  #stats: ProcessStats[];

  /**
   * @param options Starting configuration, figures and clock.
   * @throws {ConfigError} For a bad starting configuration, naming the field.
   */
  constructor(options: MemoryBackendOptions = {}) {
    const defaults = options.defaults ?? defaultConfig(2);
    const host = options.host ?? MEMORY_HOST;
    const start = planConfig(options.config ?? {}, { defaults, host });
    this.#keeper = new ConfigKeeper(start.config, {
      defaults,
      host,
      log: options.log ?? (() => {}),
    });
    this.#boundPort = options.boundPort ?? this.current.port;
    this.#now = options.now ?? monotonicNow;
    this.#startedAt = this.#now();
    this.#stats = options.stats ?? [];
  }

  /** The configuration in force. */
  get current(): ServeConfig {
    return this.#keeper.config;
  }

  /** Its generation. */
  get generation(): number {
    return this.#keeper.generation;
  }

  /** Replaces the figures `stats()` reports. */
  setStats(stats: ProcessStats[]): void {
    this.#stats = stats;
  }

  info(): AdminInfo {
    return {
      version: VERSION,
      runtime: RUNTIME,
      runtimeVersion: RUNTIME_VERSION,
      pid: process.pid,
      uptimeSeconds: (this.#now() - this.#startedAt) / 1000,
      state: this.state,
      listen: { host: this.current.host, port: this.#boundPort },
      configGeneration: this.generation,
      numbersAvailable: this.numbersAvailable,
    };
  }

  stats(): ProcessStats[] {
    return structuredClone(this.#stats);
  }

  config(): ConfigSnapshot {
    return { generation: this.generation, config: configToJson(this.current) };
  }

  validateConfig(patch: unknown): ConfigChange {
    return outcome(this.#keeper.plan(patchRequest(patch), { origin: PATCH_ORIGIN }));
  }

  applyConfig(patch: unknown, options: ApplyConfigOptions = {}): ConfigChange {
    // Synchronous from the check to the change: nothing can slip in between.
    return outcome(this.#keeper.changeNow(patchRequest(patch), {
      origin: PATCH_ORIGIN,
      ...(options.ifGeneration === undefined ? {} : { ifGeneration: options.ifGeneration }),
    }));
  }

  pause(): void {
    this.#refuseWhileDraining("pause");
    this.state = "paused";
  }

  resume(): void {
    this.#refuseWhileDraining("resume");
    this.state = "running";
  }

  drain(): void {
    this.state = "draining";
  }

  #refuseWhileDraining(action: string): void {
    if (this.state === "draining") {
      throw new StateConflictError(`Cannot ${action} the listener: the server is draining`);
    }
  }
}
