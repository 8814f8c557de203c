/**
 * The configuration in force and its generation, and the one serialized way to change them.
 * SIGHUP (re-reading `--config`) and `PATCH /v1/config` both call {@linkcode ConfigKeeper.change}:
 * one at a time, each checks the generation it was based on, plans through `planConfig`
 * (validate, clamp to the host, diff, refuse restart-only keys), applies only when something
 * changed, and logs one line once every process serves with it.
 *
 * @module
 */

import type { ServeConfig, ServeOptions } from "./resolve_config.ts";
import { StaleGenerationError } from "../common/config_error.ts";
import { type ConfigPlan, describeChanges, planConfig } from "./config_plan.ts";
import type { RuntimeCapabilities } from "../adapters/runtime_adapter.ts";
import type { HostFacts } from "../host/host_facts.ts";
import {
  describeTlsFiles,
  readTlsFileContents,
  readTlsFiles,
  type TlsFileContents,
  tlsFilesDigest,
} from "../tls/tls_files.ts";

/** What a change asks for, built from the configuration in force at the moment it runs. */
export type ConfigRequest = (current: ServeConfig) => ServeOptions;

/** Options for one change. */
export interface ChangeOptions {
  /**
   * Apply only if the configuration is still at one of these generations (a client's
   * `If-Match`); otherwise throw {@linkcode StaleGenerationError}.
   * @default {undefined: whatever the generation}
   */
  ifGeneration?: number | readonly number[];
  /**
   * Who asks, for messages and the log line ("the patch", "the config file").
   * @default {"the change"}
   */
  origin?: string;
  /**
   * TLS files read ahead, off the event loop ({@linkcode change} reads them).
   * @default {undefined: read when needed}
   */
  tlsFiles?: TlsFileContents;
}

/** The outcome of a change (or of a dry run). */
export interface ConfigOutcome extends ConfigPlan {
  /** The generation in force afterwards: one more than before when anything changed. */
  generation: number;
}

/** Options for {@linkcode ConfigKeeper}. */
export interface ConfigKeeperOptions {
  /** What a key not asked for takes (this host's defaults). */
  defaults: ServeConfig;
  /** What every configuration is clamped to. */
  host: HostFacts;
  /**
   * What the runtime that serves can do (see {@linkcode PlanOptions.capabilities}).
   * @default {ANY_RUNTIME}
   */
  capabilities?: RuntimeCapabilities;
  /** Receives the one line each applied change gets, and its level. */
  log: (line: string, level?: "info" | "warn") => void;
  /**
   * Puts a configuration in force everywhere (every process and thread) and resolves when it
   * serves with it.
   * @default {() => {}}
   */
  apply?: (next: ServeConfig, generation: number) => Promise<void> | void;
}

/** The configuration in force, changed only through {@linkcode change}. */
export class ConfigKeeper {
  #config: ServeConfig;
  #generation = 1;
  /** The digest of the TLS files the listeners were last given ("" for plain TCP). */
  #tlsDigest: string;
  /** How that certificate is named in the change a renewal gets. */
  #tlsLabel = "";
  #queue: Promise<unknown> = Promise.resolve();
  readonly #options: ConfigKeeperOptions;

  /**
   * @param initial The configuration the server started with (already planned).
   * @param options Defaults, host, log and how to apply.
   */
  constructor(initial: ServeConfig, options: ConfigKeeperOptions) {
    this.#config = initial;
    this.#options = options;
    this.#tlsDigest = tlsFilesDigest(initial.tlsCert, initial.tlsKey);
    if (this.#tlsDigest !== "") this.#tlsLabel = labelOf(initial);
  }

  /** The configuration in force. */
  get config(): ServeConfig {
    return this.#config;
  }

  /** Bumped by every applied change; the admin API's ETag. */
  get generation(): number {
    return this.#generation;
  }

  /** What a key set back to its default takes. */
  get defaults(): ServeConfig {
    return this.#options.defaults;
  }

  /**
   * Plans a change against the configuration in force without applying it.
   *
   * @param request What is asked for.
   * @param options The generation it was based on, and who asks.
   * @returns The plan, with the current generation.
   * @throws {StaleGenerationError | ConfigError} As {@linkcode change}.
   */
  plan(request: ConfigRequest, options: ChangeOptions = {}): ConfigOutcome {
    const expected = options.ifGeneration;
    if (expected !== undefined) {
      const list = typeof expected === "number" ? [expected] : expected;
      if (!list.includes(this.#generation)) {
        throw new StaleGenerationError(
          `The configuration is at generation ${this.#generation}, not ${list.join(" or ")}: ` +
            `it changed since it was read; read it again and reapply the change`,
        );
      }
    }
    const plan = planConfig(request(this.#config), {
      defaults: this.#options.defaults,
      host: this.#options.host,
      current: this.#config,
      ...(this.#options.capabilities === undefined
        ? {}
        : { capabilities: this.#options.capabilities }),
      ...(options.origin === undefined ? {} : { origin: options.origin }),
      ...(options.tlsFiles === undefined ? {} : { tlsFiles: options.tlsFiles }),
    });
    this.#addRenewal(plan, options.tlsFiles);
    return { ...plan, generation: this.#generation };
  }

  /**
   * Files renewed in place (same paths, new bytes: certbot's way) are a change of their own,
   * `tls-files`, so every reload (SIGHUP, any PATCH) puts them in force; the pair is checked
   * first (planConfig checks it only when a path changes), so a half-written renewal is refused
   * and the pair in force stays.
   */
  #addRenewal(plan: ConfigPlan, ahead: TlsFileContents | undefined): void {
    const { tlsCert, tlsKey } = plan.config;
    if (tlsCert === null || tlsKey === null) return;
    if ("tls-cert" in plan.changes || "tls-key" in plan.changes) return;
    const digest = tlsFilesDigest(tlsCert, tlsKey, ahead);
    if (digest === this.#tlsDigest) return;
    const files = readTlsFiles(tlsCert, tlsKey, {}, ahead);
    plan.warnings.push(...files.warnings);
    plan.changes["tls-files"] = { from: this.#tlsLabel, to: describeTlsFiles(files) };
  }

  #putTlsInForce(config: ServeConfig, ahead?: TlsFileContents): void {
    this.#tlsDigest = tlsFilesDigest(config.tlsCert, config.tlsKey, ahead);
    this.#tlsLabel = this.#tlsDigest === "" ? "" : labelOf(config, ahead);
  }

  /**
   * Applies a change after every earlier one has finished: plans it against the configuration
   * in force then, applies it only if something differs, and logs one line once it serves.
   *
   * @param request What is asked for.
   * @param options The generation it was based on, and who asks.
   * @returns The outcome; `changes` is empty (and the generation unchanged) when nothing differs.
   * @throws {StaleGenerationError} When the generation moved past `ifGeneration`.
   * @throws {ConfigError} For a bad value, an unknown key or a restart-only key.
   */
  change(request: ConfigRequest, options: ChangeOptions = {}): Promise<ConfigOutcome> {
    const run = this.#queue.then(async () => {
      const asked = request(this.#config);
      // The TLS files this plan may read, read first off the event loop: a path given through
      // PATCH, --config or SIGHUP may be on a slow disk (a device or a FIFO is refused unread).
      const tlsFiles = options.tlsFiles ?? await readTlsFileContents([
        asked.tlsCert,
        asked.tlsKey,
        this.#config.tlsCert,
        this.#config.tlsKey,
      ]);
      const plan = this.plan(() => asked, { ...options, tlsFiles });
      if (Object.keys(plan.changes).length === 0) return plan;
      this.#config = plan.config;
      this.#putTlsInForce(plan.config, tlsFiles);
      const generation = ++this.#generation;
      await this.#options.apply?.(plan.config, generation);
      this.#logChange(plan, generation);
      return { ...plan, generation };
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /**
   * Applies a change at once, for a keeper whose `apply` is synchronous (a server in memory with
   * nothing to wait for). Same rules as {@linkcode change}.
   *
   * @param request What is asked for.
   * @param options The generation it was based on, and who asks.
   * @returns The outcome.
   */
  changeNow(request: ConfigRequest, options: ChangeOptions = {}): ConfigOutcome {
    const plan = this.plan(request, options);
    if (Object.keys(plan.changes).length === 0) return plan;
    this.#config = plan.config;
    this.#putTlsInForce(plan.config);
    const generation = ++this.#generation;
    void this.#options.apply?.(plan.config, generation);
    this.#logChange(plan, generation);
    return { ...plan, generation };
  }

  #logChange(plan: ConfigPlan, generation: number): void {
    const clamped = plan.warnings.length === 0 ? "" : `; clamped: ${plan.warnings.join("; ")}`;
    this.#options.log(
      `configuration generation ${generation}: ${describeChanges(plan.changes)}${clamped}`,
      plan.warnings.length === 0 ? "info" : "warn",
    );
  }
}

function labelOf(config: ServeConfig, ahead?: TlsFileContents): string {
  try {
    return describeTlsFiles(readTlsFiles(config.tlsCert!, config.tlsKey!, {}, ahead));
  } catch (error) {
    return (error as Error).message;
  }
}
