/**
 * The one way a configuration is decided, whatever asks for it (start-up, SIGHUP re-reading
 * `--config`, `PATCH /v1/config`): validate the options asked for over the defaults, clamp what
 * this host cannot hold (with a warning naming the limit), list what differs from the
 * configuration in force, and refuse a change to a key that needs a restart.
 *
 * {@linkcode ConfigKeeper} (config_keeper.ts) is the only caller that puts a plan in force.
 *
 * @module
 */

import { describe } from "../common/describe.ts";
import { clampToHost, FLAG_NAMES, resolveConfig, RESTART_KEYS } from "./resolve_config.ts";
import type { ServeConfig, ServeOptions } from "./resolve_config.ts";
import { RestartRequiredError } from "../common/config_error.ts";
import { configToJson } from "./config_json.ts";
import type { HostFacts } from "../host/host_facts.ts";
import type { RuntimeCapabilities } from "../adapters/runtime_adapter.ts";
import { readTlsFiles, type TlsFileContents } from "../tls/tls_files.ts";

/** A key's value before and after a change, as JSON with the flags' names. */
export interface ValueChange {
  from: unknown;
  to: unknown;
}

/** What a configuration request would put in force. */
export interface ConfigPlan {
  /** The resolved configuration, clamped to the host. */
  config: ServeConfig;
  /** The same as JSON with flag-named keys. */
  json: Record<string, unknown>;
  /** The keys whose values differ from the configuration in force, by flag name. */
  changes: Record<string, ValueChange>;
  /** What was lowered to fit this host, one sentence each (empty when nothing was). */
  warnings: string[];
}

/** Options for {@linkcode planConfig}. */
export interface PlanOptions {
  /**
   * What the runtime that serves can do (its adapter's `capabilities`); every route that runs a
   * server gives it.
   * @default {ANY_RUNTIME: validate as if it could do everything}
   */
  capabilities?: RuntimeCapabilities;
  /** What a key not asked for takes. */
  defaults: ServeConfig;
  /**
   * The host to clamp to; every route that runs a server gives it.
   * @default {undefined: validate only, clamp nothing}
   */
  host?: HostFacts;
  /**
   * The configuration in force; without it (at start-up) nothing is a change and every key may
   * be set.
   * @default {undefined}
   */
  current?: ServeConfig;
  /**
   * Who asks, as a restart-only refusal names it ("the patch", "the config file").
   * @default {"the change"}
   */
  origin?: string;
  /**
   * TLS files read ahead, off the event loop (see tls_files.ts).
   * @default {undefined: read when needed}
   */
  tlsFiles?: TlsFileContents;
}

/**
 * Plans a configuration.
 *
 * @param requested The options asked for; keys not given take the defaults.
 * @param options The defaults, the host and the configuration in force.
 * @returns The plan; nothing is applied.
 * @throws {ConfigError} For a value out of its bounds, naming the key.
 * @throws {ConfigShapeError} For an unknown key.
 * @throws {RestartRequiredError} When a key in `RESTART_KEYS` would change.
 *
 * @example
 * ```ts
 * const plan = planConfig({ greeting: "Hi" }, { defaults, host, current });
 * plan.changes; // { greeting: { from: "Hello World", to: "Hi" } }
 * ```
 */
export function planConfig(requested: ServeOptions, options: PlanOptions): ConfigPlan {
  let config = resolveConfig(requested, options.defaults, options.capabilities);
  let warnings: string[] = [];
  if (options.host !== undefined) ({ config, warnings } = clampToHost(config, options.host));
  // A server's TLS files are checked whenever they are set anew (start-up, or a change of either
  // path), so a bad certificate or key is refused here and the one in force stays.
  const current = options.current;
  if (
    options.host !== undefined && config.tlsCert !== null && config.tlsKey !== null &&
    (current === undefined || current.tlsCert !== config.tlsCert ||
      current.tlsKey !== config.tlsKey)
  ) {
    warnings = [
      ...warnings,
      ...readTlsFiles(config.tlsCert, config.tlsKey, {}, options.tlsFiles).warnings,
    ];
  }
  const json = configToJson(config);
  const changes: Record<string, ValueChange> = {};
  if (current !== undefined) {
    const before = configToJson(current);
    for (const [key, to] of Object.entries(json)) {
      const from = before[key];
      if (JSON.stringify(from) !== JSON.stringify(to)) changes[key] = { from, to };
    }
    for (const option of RESTART_KEYS) {
      const key = FLAG_NAMES[option];
      const change = changes[key];
      if (change === undefined) continue;
      throw new RestartRequiredError(
        key,
        `'${key}' cannot change while the server runs; a restart is needed: it is ${
          describe(change.from)
        }, ${options.origin ?? "the change"} asks for ${describe(change.to)}`,
      );
    }
  }
  return { config, json, changes, warnings };
}

/**
 * Describes a plan's changes for the one log line a change gets.
 *
 * @param changes What changes.
 * @returns `greeting "a" -> "b", threads 2 -> 4`, or `no change`.
 */
export function describeChanges(changes: Record<string, ValueChange>): string {
  const parts = Object.entries(changes).map(([key, { from, to }]) =>
    `${key} ${JSON.stringify(from)} -> ${JSON.stringify(to)}`
  );
  return parts.length === 0 ? "no change" : parts.join(", ");
}
