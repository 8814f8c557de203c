/**
 * An {@linkcode AdminBackend} held in memory: what the admin API's tests run against, and the
 * reference for what a real backend must do (validate through `planConfigChange`, check the
 * generation and change the configuration in one step, keep the listener's state rules).
 *
 * @module
 */

import process from "node:process";
import {
  defaultConfig,
  resolveConfig,
  type ServeConfig,
  type ServeOptions,
} from "../server/config.ts";
import { configToJson } from "../server/config_json.ts";
import { monotonicNow } from "../server/monotonic_clock.ts";
import { RUNTIME, RUNTIME_VERSION } from "../server/adapters/mod.ts";
import { VERSION } from "../server/version.ts";
import type {
  AdminBackend,
  AdminInfo,
  ApplyConfigOptions,
  ConfigChange,
  ConfigSnapshot,
  ListenerState,
  ProcessStats,
} from "./backend.ts";
import { planConfigChange } from "./config_plan.ts";
import { StaleGenerationError, StateConflictError } from "./errors.ts";

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
}

/** An admin backend with no server behind it. */
export class MemoryBackend implements AdminBackend {
  /** The configuration in force. */
  current: ServeConfig;
  /** Its generation. */
  generation = 1;
  /** The listener's state. */
  state: ListenerState = "running";
  /** Whether numbers can be handed out (`/readyz` is 503 when not). */
  numbersAvailable = true;
  readonly #defaults: ServeConfig;
  readonly #boundPort: number;
  readonly #now: () => number;
  readonly #startedAt: number;
  #stats: ProcessStats[];

  /**
   * @param options Starting configuration, figures and clock.
   * @throws {TypeError | RangeError} For a bad starting configuration, naming the field.
   */
  constructor(options: MemoryBackendOptions = {}) {
    this.#defaults = options.defaults ?? defaultConfig(2);
    this.current = resolveConfig(options.config ?? {}, this.#defaults);
    this.#boundPort = options.boundPort ?? this.current.port;
    this.#now = options.now ?? monotonicNow;
    this.#startedAt = this.#now();
    this.#stats = options.stats ?? [];
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
    const plan = planConfigChange(this.current, patch, this.#defaults);
    return { generation: this.generation, config: plan.json, changes: plan.changes };
  }

  applyConfig(patch: unknown, options: ApplyConfigOptions = {}): ConfigChange {
    // Synchronous from the check to the change: nothing can slip in between.
    if (options.ifGeneration !== undefined && options.ifGeneration !== this.generation) {
      throw new StaleGenerationError(
        `The configuration is at generation ${this.generation}, not ${options.ifGeneration}: ` +
          `read it again and reapply the change`,
      );
    }
    const plan = planConfigChange(this.current, patch, this.#defaults);
    if (Object.keys(plan.changes).length > 0) {
      this.current = plan.config;
      this.generation++;
    }
    return { generation: this.generation, config: plan.json, changes: plan.changes };
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
